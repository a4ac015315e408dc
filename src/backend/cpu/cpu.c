/*
 * src/backend/cpu/ -- the CPU backend: the reference implementation of
 * every op in backend.h, and the fast path on machines without a GPU.
 * This file: the instance, the one GEMM policy, the data-movement ops and
 * the optimizer ops.  GEMM goes to OpenBLAS through CBLAS, always on one
 * thread inside our own OpenMP team; the other ops are our own.
 */
#include "backend/cpu/cpu.h"
#include "tensor/tensor.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the instance ----------------------------------------------------------- */

int ilm__cpu_threads(const ilm__backend *be)
{
    const int n = ilm__cpu_ctx_of(be)->threads;
    return n > 0 ? n : ilm__num_threads();
}

void *ilm__cpu_scratch_get(ilm__cpu_scratch *s, size_t bytes)
{
    if (bytes <= s->cap) return s->p;
    size_t cap = bytes + bytes / 4 + 256;
    void *p = ilm__realloc(s->p, cap);
    if (!p) return NULL;
    s->p = p;
    s->cap = cap;
    return p;
}

static void cpu_free_instance(ilm__backend *be)
{
    ilm__cpu_ctx *c = ilm__cpu_ctx_of(be);
    ilm__free(c->act.p);
    ilm__free(c->aux.p);
    for (int i = 0; i < c->n_panels; i++) ilm__free(c->panels[i].p);
    ilm__free(c->panels);
    ilm__free(c);
    ilm__free(be);
}

static ilm_status cpu_synchronize(const ilm__backend *be)
{
    (void)be; /* every CPU op has finished when it returns */
    return ILM_OK;
}

static void *cpu_alloc(const ilm__backend *be, size_t bytes)
{
    (void)be;
    void *p = ilm__malloc(bytes);
    if (!p) ilm__error(ILM_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    return p;
}

static void cpu_free_buf(const ilm__backend *be, void *ptr)
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

/* ---- GEMM ------------------------------------------------------------------- */

/* Below this many multiply-adds a gemm is one BLAS call on one thread. */
#define GEMM_SPLIT_MIN ((int64_t)1 << 21)
/* Rows (or columns) of C per block.  Every block packs the whole other
 * operand again, so small blocks cost packing: on the 2-core VM, bench
 * train's matmuls took 10-30 % less time with blocks of 256 than with 12
 * blocks per gemm (N = 2048 tokens, C = 512, F = 1408).  A dimension under
 * two blocks of 256 is cut into 4 blocks instead (multiples of 16, at
 * least 64), so a 256-square product still feeds several threads.  The
 * block depends on the dimension alone, never on the thread count. */
#define GEMM_BLOCK 256

static int gemm_block(int dim)
{
    if (dim >= 2 * GEMM_BLOCK) return GEMM_BLOCK;
    int bs = ((dim + 3) / 4 + 15) / 16 * 16;
    return bs < 64 ? 64 : bs;
}

static void sgemm1(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda > 0 ? lda : 1, B, ldb > 0 ? ldb : 1, beta, C, ldc);
}

void ilm__cpu_gemm(const ilm__backend *be, bool ta, bool tb, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta, float *C,
                   int ldc)
{
    if (K == 0 || (int64_t)M * N * K < GEMM_SPLIT_MIN) {
        sgemm1(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* Blocks of C's rows, or of its columns when it has more of those. */
    const bool rows = M >= N;
    const int dim = rows ? M : N, bs = gemm_block(dim), n_blocks = (dim + bs - 1) / bs;
    const int nt = ilm__cpu_threads(be);
#pragma omp parallel for num_threads(nt < n_blocks ? nt : n_blocks) schedule(static, 1)
    for (int b = 0; b < n_blocks; b++) {
        const int o = b * bs, n = dim - o < bs ? dim - o : bs;
        if (rows)
            sgemm1(ta, tb, n, N, K, alpha, ta ? A + o : A + (size_t)o * lda, lda, B, ldb, beta,
                   C + (size_t)o * ldc, ldc);
        else
            sgemm1(ta, tb, M, n, K, alpha, A, lda, tb ? B + (size_t)o * ldb : B + o, ldb, beta,
                   C + o, ldc);
    }
}

static ilm_status cpu_gemm_f32(const ilm__backend *be, bool trans_a, bool trans_b,
                               int M, int N, int K, float alpha,
                               const float *A, int lda, const float *B, int ldb,
                               float beta, float *C, int ldc)
{
    ILM__RETURN_IF(M < 0 || N < 0 || K < 0, ILM_ERR_INVALID_ARG,
                   "gemm: negative size %dx%dx%d", M, N, K);
    ILM__RETURN_IF(lda < (trans_a ? M : K) || ldb < (trans_b ? K : N) || ldc < N,
                   ILM_ERR_INVALID_ARG, "gemm: leading dimension smaller than a row");
    if (M == 0 || N == 0) return ILM_OK;
    ilm__cpu_gemm(be, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return ILM_OK;
}

/* ---- data movement ---------------------------------------------------------- */

static ilm_status cpu_kv_append(const ilm__backend *be, float *cache, int64_t pos, const float *x,
                                int64_t T, int64_t width)
{
    (void)be;
    ILM__RETURN_IF(pos < 0 || T < 0 || width < 0, ILM_ERR_INVALID_ARG,
                   "kv_append: negative position or size");
    if (T) memcpy(cache + pos * width, x, (size_t)(T * width) * sizeof *x);
    return ILM_OK;
}

static ilm_status check_heads(int64_t H, int64_t KV, const char *op)
{
    ILM__RETURN_IF(KV <= 0 || H <= 0 || H % KV != 0, ILM_ERR_INVALID_ARG,
                   "%s: %lld heads cannot be grouped over %lld kv heads", op, (long long)H,
                   (long long)KV);
    return ILM_OK;
}

static ilm_status cpu_qkv_split(const ilm__backend *be, const float *qkv, int64_t T, int64_t H,
                                int64_t KV, int64_t D, float *q, float *k, float *v)
{
    ILM__FORWARD(check_heads(H, KV, "qkv_split"));
    const int64_t g = H / KV, row = KV * (g + 2) * D;
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T * row > 262144)
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < KV; j++) {
            const float *grp = qkv + t * row + j * (g + 2) * D;
            memcpy(q + (t * H + j * g) * D, grp, (size_t)(g * D) * sizeof *q);
            memcpy(k + (t * KV + j) * D, grp + g * D, (size_t)D * sizeof *k);
            memcpy(v + (t * KV + j) * D, grp + (g + 1) * D, (size_t)D * sizeof *v);
        }
    return ILM_OK;
}

static ilm_status cpu_qkv_merge(const ilm__backend *be, const float *q, const float *k,
                                const float *v, int64_t T, int64_t H, int64_t KV, int64_t D,
                                float *qkv)
{
    ILM__FORWARD(check_heads(H, KV, "qkv_merge"));
    const int64_t g = H / KV, row = KV * (g + 2) * D;
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T * row > 262144)
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < KV; j++) {
            float *grp = qkv + t * row + j * (g + 2) * D;
            memcpy(grp, q + (t * H + j * g) * D, (size_t)(g * D) * sizeof *q);
            memcpy(grp + g * D, k + (t * KV + j) * D, (size_t)D * sizeof *k);
            memcpy(grp + (g + 1) * D, v + (t * KV + j) * D, (size_t)D * sizeof *v);
        }
    return ILM_OK;
}

/* ---- the optimizer ---------------------------------------------------------- */

/* One chunk's sum of squares: four lanes in a fixed order. */
static double chunk_sqsum(const float *x, size_t n)
{
    double s[4] = { 0, 0, 0, 0 };
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++) s[0] += (double)x[i] * (double)x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

static ilm_status cpu_sqnorm(const ilm__backend *be, const float *x, size_t n, double *out)
{
    /* Chunk sums of up to GROUP chunks at a time go to a stack array, in
     * parallel, then into the total in chunk order: the same additions in
     * the same order whatever the thread count, and no allocation. */
    enum { GROUP = 256 };
    const size_t chunk = ILM__SQNORM_CHUNK;
    const size_t n_chunks = (n + chunk - 1) / chunk;
    double part[GROUP], total = 0;
    for (size_t g0 = 0; g0 < n_chunks; g0 += GROUP) {
        const long ng = (long)(n_chunks - g0 < GROUP ? n_chunks - g0 : GROUP);
#pragma omp parallel for schedule(static) num_threads(ilm__cpu_threads(be)) if (ng > 1)
        for (long c = 0; c < ng; c++) {
            size_t lo = (g0 + (size_t)c) * chunk, hi = lo + chunk < n ? lo + chunk : n;
            part[c] = chunk_sqsum(x + lo, hi - lo);
        }
        for (long c = 0; c < ng; c++) total += part[c];
    }
    *out = total;
    return ILM_OK;
}

static void adamw_span(const ilm__adamw_k *k, const ilm__adamw_span *s)
{
    float *p = s->p, *m = s->m, *v = s->v;
    const float *gr = s->g;
#pragma omp for schedule(static) nowait
    for (size_t i = 0; i < s->n; i++) {
        const float g = gr[i] * k->scale;
        float pi = p[i];
        if (s->decay) pi *= k->decay;
        /* torch's lerp(m, g, w) for w < 0.5: m + w * (g - m). */
        const float mi = m[i] + k->one_m_b1 * (g - m[i]);
        const float vi = v[i] * k->b2 + k->one_m_b2 * g * g;
        const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
        p[i] = pi + (-k->step_size * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

static ilm_status cpu_adamw(const ilm__backend *be, const ilm__adamw_k *k,
                            const ilm__adamw_span *spans, size_t n_spans)
{
#pragma omp parallel num_threads(ilm__cpu_threads(be))
    for (size_t i = 0; i < n_spans; i++) adamw_span(k, &spans[i]);
    return ILM_OK;
}

/* ---- the table -------------------------------------------------------------- */

static const ilm__backend_iface cpu_iface = {
    .api_version = ILM__BACKEND_API_VERSION,
    .free = cpu_free_instance,
    .synchronize = cpu_synchronize,
    .alloc = cpu_alloc,
    .free_buf = cpu_free_buf,
    .to_device = cpu_copy,
    .to_host = cpu_copy,
    .gemm_f32 = cpu_gemm_f32,
    .rmsnorm = ilm__cpu_rmsnorm,
    .rope = ilm__cpu_rope,
    .attention = ilm__cpu_attention,
    .swiglu = ilm__cpu_swiglu,
    .kv_append = cpu_kv_append,
    .qkv_split = cpu_qkv_split,
    .qkv_merge = cpu_qkv_merge,
    .add = ilm__cpu_add,
    .linear = ilm__cpu_linear,
    .embedding = ilm__cpu_embedding,
    .embedding_bwd = ilm__cpu_embedding_bwd,
    .rmsnorm_bwd = ilm__cpu_rmsnorm_bwd,
    .rope_bwd = ilm__cpu_rope_bwd,
    .attention_train = ilm__cpu_attention_train,
    .attention_train_bwd = ilm__cpu_attention_train_bwd,
    .swiglu_bwd = ilm__cpu_swiglu_bwd,
    .cross_entropy = ilm__cpu_cross_entropy,
    .sqnorm = cpu_sqnorm,
    .adamw = cpu_adamw,
};

ilm_status ilm__backend_cpu_create(int threads, int isa, ilm__backend **out)
{
    *out = NULL;
    ilm__blas_single_thread();
    ilm__backend *be = ilm__calloc(1, sizeof *be);
    ilm__cpu_ctx *c = ilm__calloc(1, sizeof *c);
    if (!be || !c) {
        ilm__free(be);
        ilm__free(c);
        return ilm__error(ILM_ERR_NOMEM, "cpu backend: out of memory");
    }
    const int best = ilm__isa();
    c->threads = threads > 0 ? threads : 0;
    c->isa = isa < 0 || isa > best ? best : isa;
    be->iface = cpu_iface;
    be->device = (ilm__device){ .kind = ILM__BACKEND_CPU, .index = 0 };
    snprintf(be->device.name, sizeof be->device.name, "cpu (%s)", ilm__isa_name(c->isa));
    be->ctx = c;
    *out = be;
    return ILM_OK;
}

void ilm__backend_cpu_set_threads(ilm__backend *be, int threads)
{
    ilm__cpu_ctx_of(be)->threads = threads > 0 ? threads : 0;
}

void ilm__backend_cpu_set_gemm_min_m(ilm__backend *be, int64_t m)
{
    ilm__cpu_ctx_of(be)->gemm_min_m = m > 0 ? m : 0;
}

void ilm__backend_free(ilm__backend *be)
{
    if (be) be->iface.free(be);
}

ilm_status ilm__backend_check(const ilm__backend *be)
{
    ILM__RETURN_IF(!be || be->iface.api_version != ILM__BACKEND_API_VERSION, ILM_ERR_BACKEND,
                   "backend %s: op table version %u, this library needs %u",
                   be ? be->device.name : "(none)", be ? be->iface.api_version : 0,
                   ILM__BACKEND_API_VERSION);
    return ILM_OK;
}
