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
};

/* The CPU backend: always available, the reference for all others. */
const ilm__backend *ilm__backend_cpu(void);

#endif /* ILM_BACKEND_H */
