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

typedef struct ilm__backend ilm__backend;

struct ilm__backend {
    const char        *name;
    ilm__backend_kind  kind;

    /* Device memory.  `alloc` returns NULL on failure with the reason set as
     * the thread's error; `free` accepts NULL.  Copies are synchronous. */
    void      *(*alloc)(const ilm__backend *be, size_t bytes);
    void       (*free)(const ilm__backend *be, void *ptr);
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

    /* y[T,C] = W[ids[t], :] of an fp32 table W[V,C]; ILM_ERR_RANGE for an
     * id outside [0, V). */
    ilm_status (*embedding)(const ilm__backend *be, const float *W, int64_t V, int64_t C,
                            const int32_t *ids, int64_t T, float *y);
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
};

/* The CPU backend: always available, the reference for all others. */
const ilm__backend *ilm__backend_cpu(void);

#endif /* ILM_BACKEND_H */
