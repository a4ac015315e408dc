/*
 * src/backend/ -- the op table every compute backend implements.
 *
 * Model, trainer and inference code call compute only through an
 * ilm__backend (like ggml's ggml_backend_i): they never touch a device
 * pointer's memory directly.  The CPU backend is the reference; every other
 * backend must agree with it op by op (tests/test_backend.c compares them
 * when the device is present).  Ops arrive with the issues that need them:
 * buffers, GEMM, the inference forward ops, and the training ops
 * (forward ops that save state for backward, and the backward ops).
 *
 * Shapes use the house letters; matrices are row-major.
 */
#ifndef ILM_BACKEND_H
#define ILM_BACKEND_H

#include "core/internal.h"

typedef enum ilm__backend_kind {
    ILM__BACKEND_CPU  = 0,
    ILM__BACKEND_CUDA = 1
} ilm__backend_kind;

/* The op table's version: a backend built against another one is refused
 * (ilm__backend_check), so an out-of-tree backend cannot be called through
 * a table whose layout it does not know. */
#define ILM__BACKEND_API_VERSION 1

typedef struct ilm__backend ilm__backend;

/* The device a backend instance computes on. */
typedef struct ilm__device {
    ilm__backend_kind kind;
    int               index;   /* cuda:N; 0 for the CPU */
    char              name[64];
} ilm__device;

/* One AdamW span: n elements of a tensor inside the optimizer's slab range
 * (train/optim.c makes them), and whether weight decay applies. */
typedef struct ilm__adamw_span {
    float       *p, *m, *v;
    const float *g;
    size_t       n;
    bool         decay;
} ilm__adamw_span;

/* The per-step AdamW constants, rounded to float once as torch rounds its
 * Python scalars when it hands them to a float kernel. */
typedef struct ilm__adamw_k {
    float decay;     /* 1 - lr * weight_decay */
    float one_m_b1;  /* 1 - beta1, the lerp weight */
    float b2, one_m_b2;
    float step_size; /* lr / (1 - beta1^t) */
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
    float scale;     /* the clip coefficient */
} ilm__adamw_k;

/* A backend instance is an interface (this table of functions), a device
 * and the instance's own context (for the CPU: its thread count, ISA level
 * and scratch; for CUDA: a stream, a cuBLAS handle and device buffers) --
 * the shape of ggml's ggml_backend.  An instance is used by one thread at
 * a time; many instances may compute over the same read-only weights at
 * once (sessions sharing a model each own one).  Every op is synchronous
 * on the CPU; a device backend may queue work, and `synchronize` waits for
 * it (copies to the host synchronize). */
typedef struct ilm__backend_iface {
    unsigned api_version; /* ILM__BACKEND_API_VERSION */

    /* Frees the instance and everything it owns (scratch, handles). */
    void       (*free)(ilm__backend *be);
    /* Waits until every queued op has finished. */
    ilm_status (*synchronize)(const ilm__backend *be);

    /* Device memory owned by the backend.  `alloc` returns NULL on failure
     * with the reason set as the thread's error; `free_buf` accepts NULL.
     * Copies are synchronous. */
    void      *(*alloc)(const ilm__backend *be, size_t bytes);
    void       (*free_buf)(const ilm__backend *be, void *ptr);
    ilm_status (*to_device)(const ilm__backend *be, void *dst, const void *src, size_t bytes);
    ilm_status (*to_host)(const ilm__backend *be, void *dst, const void *src, size_t bytes);

    /* C[M,N] = alpha * op(A) op(B) + beta * C, fp32, row-major, where op(A)
     * is A[M,K] (or A[K,M] transposed when trans_a) and op(B) is B[K,N] (or
     * B[N,K] transposed when trans_b: the linear layer's y = x W^T).  lda,
     * ldb, ldc are the row strides of the stored matrices. */
    ilm_status (*gemm_f32)(const ilm__backend *be, bool trans_a, bool trans_b,
                           int M, int N, int K, float alpha,
                           const float *A, int lda, const float *B, int ldb,
                           float beta, float *C, int ldc);

    /* ---- the forward pass of LLaMA-shaped models (fp32 activations) ---- */

    /* y[T,C] = x[T,C] / sqrt(mean(x^2) + eps) * w[C]; y may be x. */
    ilm_status (*rmsnorm)(const ilm__backend *be, const float *x, const float *w, float *y,
                          int64_t T, int64_t C, float eps);

    /* Rotates x[T, NH, D] in place: pair (a, b) of each head turns by the
     * angle whose cosine and sine are cos[t, i] and sin[t, i] (tables
     * [T, D/2] from the model).  The pairs are (i, i + D/2), HF's
     * "rotate_half", or (2i, 2i+1) when interleaved. */
    ilm_status (*rope)(const ilm__backend *be, float *x, int64_t T, int64_t NH, int64_t D,
                       const float *cos, const float *sin, bool interleaved);

    /* Causal attention of T queries at positions p0 .. p0+T-1 over keys
     * and values at positions 0 .. p0+T-1:
     *   q[T, H, D]; k, v: position s, kv-head j at k + s*kv_stride + j*D;
     *   out[T, H, D].  Query head h reads kv head h / (H / KV); scores are
     * scaled by 1/sqrt(D), softmax in fp32. */
    ilm_status (*attention)(const ilm__backend *be, const float *q, const float *k,
                            const float *v, float *out, int64_t T, int64_t p0, int64_t H,
                            int64_t KV, int64_t D, int64_t kv_stride);

    /* out[n] = silu(gate[n]) * up[n]. */
    ilm_status (*swiglu)(const ilm__backend *be, const float *gate, const float *up, float *out,
                         int64_t n);

    /* KV cache append: rows pos .. pos+T-1 of cache[*, width] = x[T, width]. */
    ilm_status (*kv_append)(const ilm__backend *be, float *cache, int64_t pos, const float *x,
                            int64_t T, int64_t width);

    /* InternLM2's fused projection: qkv[T, KV*(g+2)*D], grouped per KV head
     * as [q x g, k, v] (g = H / KV), to q[T,H,D], k and v [T,KV,D]; and its
     * inverse (for the gradient). */
    ilm_status (*qkv_split)(const ilm__backend *be, const float *qkv, int64_t T, int64_t H,
                            int64_t KV, int64_t D, float *q, float *k, float *v);
    ilm_status (*qkv_merge)(const ilm__backend *be, const float *q, const float *k,
                            const float *v, int64_t T, int64_t H, int64_t KV, int64_t D,
                            float *qkv);

    /* y[n] += x[n]. */
    ilm_status (*add)(const ilm__backend *be, float *y, const float *x, int64_t n);

    /* y[M,N] = x[M,K] W[N,K]^T with W's rows stored in ggml type `wtype`
     * (f32, f16, bf16 or a quantized type), row-major. */
    ilm_status (*linear)(const ilm__backend *be, uint32_t wtype, const void *W, int64_t N,
                         int64_t K, const float *x, int64_t M, float *y);

    /* ---- training: forward ops that save what backward needs, and the
     * backward ops (fp32; gradients named d<x>).  Weight gradients are
     * always accumulated (+=), so micro-batches add up in place; input
     * gradients are written.  Matmul gradients need no op of their own:
     * dX = dY W and dW += dY^T X are gemm_f32 with trans flags. ---- */

    /* y[T,C] = W[ids[t], :] of a table W[V,C] in ggml type `wtype` (f32
     * for training, any type a model file stores for inference: rows are
     * dequantized); ILM_ERR_RANGE for an id outside [0, V). */
    ilm_status (*embedding)(const ilm__backend *be, uint32_t wtype, const void *W, int64_t V,
                            int64_t C, const int32_t *ids, int64_t T, float *y);
    /* dW[V,C] += sum over t with ids[t] = v of dy[t, :], summed in token
     * order whatever the thread count. */
    ilm_status (*embedding_bwd)(const ilm__backend *be, float *dW, int64_t V, int64_t C,
                                const int32_t *ids, int64_t T, const float *dy);

    /* The gradient of rmsnorm (same x, w, eps): dx[T,C] from dy[T,C], and
     * dw[C] += sum_t dy * x / rms(x).  dx may be dy. */
    ilm_status (*rmsnorm_bwd)(const ilm__backend *be, const float *x, const float *w,
                              const float *dy, float *dx, float *dw, int64_t T, int64_t C,
                              float eps);

    /* The gradient of rope: the transpose of a rotation is the rotation by
     * the negative angle, applied in place to dx[T, NH, D] with the same
     * cos/sin tables [T, D/2] (one row per token, so packed documents whose
     * positions restart are handled by the caller's tables). */
    ilm_status (*rope_bwd)(const ilm__backend *be, float *dx, int64_t T, int64_t NH, int64_t D,
                           const float *cos, const float *sin, bool interleaved);

    /* Causal attention over packed documents.  The T tokens are cut into
     * n_seqs documents by cu_seqlens[n_seqs + 1] (0 = cu[0] < ... <
     * cu[n_seqs] = T); a query attends to the keys of its own document up
     * to itself.  q, out [T,H,D]; k, v [T,KV,D]; query head h reads kv head
     * h / (H / KV); scale 1/sqrt(D).  lse[T,H] gets each row's
     * log-sum-exp of the scaled scores (for the backward). */
    ilm_status (*attention_train)(const ilm__backend *be, const float *q, const float *k,
                                  const float *v, float *out, float *lse,
                                  const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                  int64_t H, int64_t KV, int64_t D);
    /* Its gradient: dq[T,H,D], dk, dv [T,KV,D] (written) from dout[T,H,D]
     * and the forward's q, k, v, out and lse.  One task owns a (document,
     * kv head) and sums its dk, dv in a fixed order, so no two threads
     * ever add into the same element. */
    ilm_status (*attention_train_bwd)(const ilm__backend *be, const float *q, const float *k,
                                      const float *v, const float *out, const float *lse,
                                      const float *dout, float *dq, float *dk, float *dv,
                                      const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                      int64_t H, int64_t KV, int64_t D);

    /* The gradient of swiglu: dgate[n], dup[n] from dout[n]; dgate may be
     * gate and dup may be up. */
    ilm_status (*swiglu_bwd)(const ilm__backend *be, const float *dout, const float *gate,
                             const float *up, float *dgate, float *dup, int64_t n);

    /* Softmax cross-entropy of logits[N,V] against labels[N] (a label of
     * -100 is ignored; any other outside [0, V) is ILM_ERR_RANGE).
     * *loss_sum gets the sum over targets of -log softmax(logits)[label]
     * (rows summed in order, in double) and *n_targets their count.  When
     * dlogits is not NULL it gets (softmax - onehot(label)) * dscale, zero
     * on ignored rows; dlogits may be logits. */
    ilm_status (*cross_entropy)(const ilm__backend *be, const float *logits,
                                const int32_t *labels, int64_t N, int64_t V, float dscale,
                                float *dlogits, double *loss_sum, int64_t *n_targets);

    /* ---- the optimizer (train/optim.h states the semantics) ---- */

    /* *out = sum of x[i]^2 in double, in fixed chunks of ILM__SQNORM_CHUNK
     * summed in order whatever the thread count. */
    ilm_status (*sqnorm)(const ilm__backend *be, const float *x, size_t n, double *out);
    /* One AdamW step over the spans (elementwise, so the split into spans
     * and threads never changes the bits). */
    ilm_status (*adamw)(const ilm__backend *be, const ilm__adamw_k *k,
                        const ilm__adamw_span *spans, size_t n_spans);
} ilm__backend_iface;

#define ILM__SQNORM_CHUNK 8192

struct ilm__backend {
    ilm__backend_iface iface;
    ilm__device        device;
    void              *ctx;
};

/* A new CPU backend instance (the reference for all others) computing with
 * `threads` threads (<= 0: the process default, ilm_get_num_threads(), at
 * each call) and kernels up to instruction-set level `isa` (< 0: ilm__isa(),
 * the machine's best or ILM_CPU's).  Puts the BLAS on one thread for the
 * process (the first time).  Free with ilm__backend_free. */
ilm_status ilm__backend_cpu_create(int threads, int isa, ilm__backend **out);
/* Frees an instance of any backend; NULL is accepted. */
void ilm__backend_free(ilm__backend *be);
/* ILM_ERR_BACKEND unless the instance's table has this build's version. */
ilm_status ilm__backend_check(const ilm__backend *be);

/* The CPU instance's knobs, for tests and benchmarks of both kernel
 * paths: the thread count, and the smallest M at which the linear op
 * switches quantized / half weights to dequantized panels and the BLAS
 * (<= 0: the default). */
void ilm__backend_cpu_set_threads(ilm__backend *be, int threads);
void ilm__backend_cpu_set_gemm_min_m(ilm__backend *be, int64_t m);

#endif /* ILM_BACKEND_H */
