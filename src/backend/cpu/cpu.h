/* The CPU backend's ops, shared between the files of src/backend/cpu/. */
#ifndef ILM_BACKEND_CPU_H
#define ILM_BACKEND_CPU_H

#include "backend/backend.h"

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

/* dot(a, b) and y += p * x over n floats: AVX2 + FMA when the machine
 * has them (chosen once per process), else scalar loops. */
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
const ilm__cpu_vec *ilm__cpu_vec_ops(void);

/* The training ops (train_ops.c); see backend.h. */
ilm_status ilm__cpu_embedding(const ilm__backend *be, const float *W, int64_t V, int64_t C,
                              const int32_t *ids, int64_t T, float *y);
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
