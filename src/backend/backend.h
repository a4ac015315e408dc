/*
 * src/backend/ -- the op table every compute backend implements.
 *
 * Model, trainer and inference code call compute only through an
 * ilm__backend (like ggml's ggml_backend_i): they never touch a device
 * pointer's memory directly.  The CPU backend is the reference; every other
 * backend must agree with it op by op (tests/test_backend.c compares them
 * when the device is present).  Ops arrive with the issues that need them:
 * this first cut has buffers and the fp32 GEMM.
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
};

/* The CPU backend: always available, the reference for all others. */
const ilm__backend *ilm__backend_cpu(void);

#endif /* ILM_BACKEND_H */
