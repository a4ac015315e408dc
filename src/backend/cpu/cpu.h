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

#endif
