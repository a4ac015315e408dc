/*
 * src/backend/cpu/ -- the CPU backend: the reference implementation of
 * every op in backend.h, and the fast path on machines without a GPU.
 * GEMM goes to OpenBLAS through CBLAS; element-wise and quantized ops are
 * our own, parallelised with OpenMP.
 */
#include "backend/cpu/cpu.h"
#include "tensor/tensor.h"

#include <cblas.h>
#include <string.h>

static void *cpu_alloc(const ilm__backend *be, size_t bytes)
{
    (void)be;
    void *p = ilm__malloc(bytes);
    if (!p) ilm__error(ILM_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    return p;
}

static void cpu_free(const ilm__backend *be, void *ptr)
{
    (void)be;
    ilm__free(ptr);
}

static ilm_status cpu_copy(const ilm__backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes) memmove(dst, src, bytes);
    return ILM_OK;
}

/* Below this many multiply-adds a gemm is one BLAS call on one thread. */
#define GEMM_SPLIT_MIN ((int64_t)1 << 21)
/* Rows (or columns) of C per block of a split gemm.  Every block packs the
 * whole other operand again, so small blocks cost packing: on the 2-core
 * VM, bench train's matmuls took 10-30 % less time with blocks of 256 than
 * with 12 blocks per gemm (N = 2048 tokens, C = 512, F = 1408). */
#define GEMM_BLOCK 256

/* With the BLAS on one thread (the training graph sets it so), a large gemm
 * is cut into blocks of C rows (or columns, whichever C has more of), one
 * single-threaded BLAS call each, shared by our OpenMP team: one pool of
 * threads, none spinning while another wants the core.  The blocks depend
 * on M, N and K alone, never on the thread count, and every element of C
 * is computed by one call, so the bits do not depend on the thread count. */
static void gemm_split(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    const bool rows = M >= N;
    const int dim = rows ? M : N;
    const int bs = GEMM_BLOCK;
    const int n_blocks = (dim + bs - 1) / bs;
#pragma omp parallel for num_threads(ilm__num_threads()) schedule(static, 1)
    for (int b = 0; b < n_blocks; b++) {
        const int o = b * bs, n = dim - o < bs ? dim - o : bs;
        if (rows)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        n, N, K, alpha, ta ? A + o : A + (size_t)o * lda, lda, B, ldb, beta,
                        C + (size_t)o * ldc, ldc);
        else
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        M, n, K, alpha, A, lda, tb ? B + (size_t)o * ldb : B + o, ldb, beta, C + o,
                        ldc);
    }
}

static ilm_status cpu_gemm_f32(const ilm__backend *be, bool trans_a, bool trans_b,
                               int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb,
                               float beta, float *C, int ldc)
{
    (void)be;
    ILM_RETURN_IF(M < 0 || N < 0 || K < 0, ILM_ERR_INVALID_ARG,
                  "gemm: negative size %dx%dx%d", M, N, K);
    ILM_RETURN_IF(lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N,
                  ILM_ERR_INVALID_ARG, "gemm: leading dimension smaller than a row");
    if (M == 0 || N == 0) return ILM_OK;
    if (K > 0 && (int64_t)M * N * K >= GEMM_SPLIT_MIN && ilm__blas_threads() == 1) {
        gemm_split(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return ILM_OK;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda > 0 ? lda : 1, B, ldb > 0 ? ldb : 1, beta, C, ldc);
    return ILM_OK;
}

/* Every weight type goes to the tensor layer's linear kernel: integer dot
 * products on 8-bit activations for quantized W at small M, dequantized
 * panels and the BLAS for large M, and the BLAS directly for f32 W. */
static ilm_status cpu_linear(const ilm__backend *be, uint32_t wtype, const void *W, int64_t N,
                             int64_t K, const float *x, int64_t M, float *y)
{
    (void)be;
    return ilm__linear(wtype, W, N, K, x, M, y);
}

static const ilm__backend cpu_backend = {
    .name = "cpu",
    .kind = ILM__BACKEND_CPU,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .gemm_f32 = cpu_gemm_f32,
    .rmsnorm = ilm__cpu_rmsnorm,
    .rope = ilm__cpu_rope,
    .attention = ilm__cpu_attention,
    .swiglu = ilm__cpu_swiglu,
    .add = ilm__cpu_add,
    .linear = cpu_linear,
    .embedding = ilm__cpu_embedding,
    .embedding_bwd = ilm__cpu_embedding_bwd,
    .rmsnorm_bwd = ilm__cpu_rmsnorm_bwd,
    .rope_bwd = ilm__cpu_rope_bwd,
    .attention_train = ilm__cpu_attention_train,
    .attention_train_bwd = ilm__cpu_attention_train_bwd,
    .swiglu_bwd = ilm__cpu_swiglu_bwd,
    .cross_entropy = ilm__cpu_cross_entropy,
};

const ilm__backend *ilm__backend_cpu(void) { return &cpu_backend; }
