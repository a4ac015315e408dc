/* The CPU backend's context and ops, shared between the files of
 * src/backend/cpu/:
 *   cpu.c          the instance (threads, ISA level, scratch), GEMM, the
 *                  data-movement ops and the optimizer ops
 *   ops.c          the inference forward ops
 *   train_ops.c    the training forward ops and the backward ops
 *   linear.c       the linear op's driver and scalar kernels
 *   linear_avx2.c  its AVX2 / AVX-512 kernels */
#ifndef ILM_BACKEND_CPU_H
#define ILM_BACKEND_CPU_H

#include "backend/backend.h"

/* A buffer that grows to the largest size asked for and is kept for the
 * instance's life (freed with it). */
typedef struct ilm__cpu_scratch {
    void  *p;
    size_t cap;
} ilm__cpu_scratch;

typedef struct ilm__cpu_ctx {
    int     threads;    /* <= 0: ilm__num_threads() at each call */
    int     isa;        /* ILM__ISA_*: the highest kernel level used */
    int64_t gemm_min_m; /* 0: the linear op's default */
    /* The linear op's scratch: quantized activations and their four-row
     * terms (the calling thread's), and one dequantized panel per thread. */
    ilm__cpu_scratch  act, aux;
    ilm__cpu_scratch *panels;
    int               n_panels;
} ilm__cpu_ctx;

static inline ilm__cpu_ctx *ilm__cpu_ctx_of(const ilm__backend *be)
{
    return (ilm__cpu_ctx *)be->ctx;
}

/* The instance's thread count for the next parallel region. */
int ilm__cpu_threads(const ilm__backend *be);
/* Grows s to at least `bytes`; NULL when out of memory (s unchanged). */
void *ilm__cpu_scratch_get(ilm__cpu_scratch *s, size_t bytes);

/* The matmul every fp32 product goes through (gemm_f32, the linear op's
 * f32 and panel paths): C is cut into fixed blocks of rows or columns that
 * depend on M, N and K alone, each one single-threaded BLAS call, shared
 * by the instance's OpenMP team; small products are one call.  Every
 * element of C comes from one call over the whole K, so the bits depend on
 * neither the thread count nor how the BLAS would have split the work. */
void ilm__cpu_gemm(const ilm__backend *be, bool ta, bool tb, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc);

/* y[M,N] = x[M,K] W[N,K]^T, fp32 out (backend.h's linear; linear.c).  W
 * is row-major: row n is K/block blocks of type `wtype` (the same row
 * bytes as a GGUF tensor whose dims are [K, N]); K must be a multiple of
 * the block size.
 *
 * Quantized W: each row of x is first quantized to 8-bit blocks (absmax
 * scale, round to nearest even), and each output is a sum over blocks of
 * exact integer dot products times the two scales.  The result therefore
 * differs from the exact x W^T by at most, per output,
 *     sum_k |W[n,k]| * amax(x block of k) / 254
 * (half a quantization step of x) plus float32 rounding of the per-block
 * terms, about (K/block + 4) * 2^-24 * sum_k |W[n,k] x[k]|.  When M is
 * large enough to pay for it, panels of W are dequantized instead and
 * multiplied in fp32 by the BLAS (no activation rounding at all).
 * f32, f16 and bf16 W are fp32 dot products (no activation rounding).
 *
 * Every output element is computed by one thread in a fixed order, so the
 * result does not depend on the thread count.  Decode-sized calls (small
 * M) allocate nothing after the first: the scratch is the instance's and
 * grows to the largest M*K seen. */
ilm_status ilm__cpu_linear(const ilm__backend *be, uint32_t wtype, const void *W, int64_t N,
                           int64_t K, const float *x, int64_t M, float *y);

ilm_status ilm__cpu_rmsnorm(const ilm__backend *be, const float *x, const float *w, float *y,
                            int64_t T, int64_t C, float eps);
ilm_status ilm__cpu_rope(const ilm__backend *be, float *x, int64_t T, int64_t NH, int64_t D,
                         const float *cos, const float *sin, bool interleaved);
ilm_status ilm__cpu_attention(const ilm__backend *be, const float *q, const float *k,
                              const float *v, float *out, int64_t T, int64_t p0, int64_t H,
                              int64_t KV, int64_t D, int64_t kv_stride);
ilm_status ilm__cpu_swiglu(const ilm__backend *be, const float *gate, const float *up, float *out,
                           int64_t n);
ilm_status ilm__cpu_add(const ilm__backend *be, float *y, const float *x, int64_t n);

/* dot(a, b) and y += p * x over n floats: AVX2 + FMA when the instance's
 * ISA level allows, else scalar loops. */
typedef struct ilm__cpu_vec {
    float (*dot)(const float *, const float *, int64_t);
    void  (*axpy)(float *, float, const float *, int64_t);
    /* y[i] = exp(x[i] - sub) for i < n (y may be x; NULL: not stored),
     * returning the sum of the y[i] in double, added in a fixed order. */
    double (*exp_sum)(float *y, const float *x, float sub, int64_t n);
    /* The gradient of out[i] = silu(g[i]) * u[i] (dg may be g, du u). */
    void (*swiglu_bwd)(const float *d, const float *g, const float *u, float *dg, float *du,
                       int64_t n);
} ilm__cpu_vec;
const ilm__cpu_vec *ilm__cpu_vec_ops(const ilm__backend *be);

/* The training ops (train_ops.c); see backend.h. */
ilm_status ilm__cpu_embedding(const ilm__backend *be, uint32_t wtype, const void *W, int64_t V,
                              int64_t C, const int32_t *ids, int64_t T, float *y);
ilm_status ilm__cpu_embedding_bwd(const ilm__backend *be, float *dW, int64_t V, int64_t C,
                                  const int32_t *ids, int64_t T, const float *dy);
ilm_status ilm__cpu_rmsnorm_bwd(const ilm__backend *be, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, int64_t T, int64_t C,
                                float eps);
ilm_status ilm__cpu_rope_bwd(const ilm__backend *be, float *dx, int64_t T, int64_t NH, int64_t D,
                             const float *cos, const float *sin, bool interleaved);
ilm_status ilm__cpu_attention_train(const ilm__backend *be, const float *q, const float *k,
                                    const float *v, float *out, float *lse,
                                    const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                    int64_t H, int64_t KV, int64_t D);
ilm_status ilm__cpu_attention_train_bwd(const ilm__backend *be, const float *q, const float *k,
                                        const float *v, const float *out, const float *lse,
                                        const float *dout, float *dq, float *dk, float *dv,
                                        const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                        int64_t H, int64_t KV, int64_t D);
ilm_status ilm__cpu_swiglu_bwd(const ilm__backend *be, const float *dout, const float *gate,
                               const float *up, float *dgate, float *dup, int64_t n);
ilm_status ilm__cpu_cross_entropy(const ilm__backend *be, const float *logits,
                                  const int32_t *labels, int64_t N, int64_t V, float dscale,
                                  float *dlogits, double *loss_sum, int64_t *n_targets);

#endif
