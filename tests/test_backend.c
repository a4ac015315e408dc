/* The backend op table: the GEMM against its definition, buffers, every op
 * against the reference on every ISA level and thread count (the table a
 * device backend reuses), the GEMM benchmark and the CUDA device query. */
#include "tests.h"
#include "backend/backend.h"
#include "tensor/tensor.h"

#include <stddef.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* C = alpha op(A) op(B) + beta C in double, straight from the definition. */
static void naive_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                       int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            C[i * ldc + j] = (float)(alpha * s + beta * C[i * ldc + j]);
        }
}

static const struct { int M, N, K; } shapes[] = { { 1, 1, 1 }, { 7, 13, 5 }, { 33, 17, 65 },
                                                   { 64, 64, 64 }, { 3, 130, 1 } };

START_TEST(gemm_f32_matches_definition)
{
    const ilm__backend *be = test_cpu();
    int M = shapes[_i].M, N = shapes[_i].N, K = shapes[_i].K;
    ilm__rng r;
    ilm__rng_init(&r, 99, (uint64_t)_i);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            /* Padded strides, so row pitch and row length differ. */
            int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
            int arows = ta ? K : M, brows = tb ? N : K;
            float *A = malloc(sizeof(float) * arows * lda), *B = malloc(sizeof(float) * brows * ldb);
            float *C = malloc(sizeof(float) * M * ldc), *R = malloc(sizeof(float) * M * ldc);
            for (int i = 0; i < arows * lda; i++) A[i] = ilm__rng_normal(&r);
            for (int i = 0; i < brows * ldb; i++) B[i] = ilm__rng_normal(&r);
            for (int i = 0; i < M * ldc; i++) C[i] = R[i] = ilm__rng_normal(&r);
            ck_assert_int_eq(be->iface.gemm_f32(be, ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C, ldc),
                             ILM_OK);
            naive_gemm(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, R, ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    float got = C[i * ldc + j], want = R[i * ldc + j];
                    ck_assert_msg(fabsf(got - want) <= 1e-5f * (1.0f + sqrtf((float)K) + fabsf(want)),
                                  "%dx%dx%d ta=%d tb=%d at (%d,%d): %g vs %g", M, N, K, ta, tb, i, j,
                                  (double)got, (double)want);
                }
            for (int j = N; j < ldc; j++) /* padding is untouched */
                ck_assert(C[j] == R[j]);
            free(A); free(B); free(C); free(R);
        }
}
END_TEST

START_TEST(gemm_f32_rejects_bad_arguments)
{
    const ilm__backend *be = test_cpu();
    float a[4] = { 0 }, c[4] = { 0 };
    ck_assert_int_eq(be->iface.gemm_f32(be, false, false, -1, 2, 2, 1, a, 2, a, 2, 0, c, 2),
                     ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(be->iface.gemm_f32(be, false, false, 2, 2, 2, 1, a, 1, a, 2, 0, c, 2),
                     ILM_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "leading dimension"));
    ck_assert_int_eq(be->iface.gemm_f32(be, false, false, 0, 2, 2, 1, a, 2, a, 2, 0, c, 2), ILM_OK);
}
END_TEST

START_TEST(backend_buffers)
{
    const ilm__backend *be = test_cpu();
    ck_assert_int_eq(be->device.kind, ILM__BACKEND_CPU);
    ck_assert_int_eq(strncmp(be->device.name, "cpu (", 5), 0);
    ck_assert_int_eq(ilm__backend_check(be), ILM_OK);
    ck_assert_int_eq(be->iface.synchronize(be), ILM_OK);
    float host[5] = { 1, 2, 3, 4, 5 }, back[5] = { 0 };
    float *dev = be->iface.alloc(be, sizeof host);
    ck_assert_ptr_nonnull(dev);
    ck_assert_int_eq(be->iface.to_device(be, dev, host, sizeof host), ILM_OK);
    ck_assert_int_eq(be->iface.to_host(be, back, dev, sizeof host), ILM_OK);
    ck_assert_int_eq(memcmp(host, back, sizeof host), 0);
    be->iface.free_buf(be, dev);
    be->iface.free_buf(be, NULL);
}
END_TEST

/* ---- every op against the reference ------------------------------------
 *
 * In the spirit of llama.cpp's test-backend-ops: a table of op cases (each
 * op at several shapes and weight types), run on the backend under test
 * and on the reference, the CPU instance at the generic (scalar) level on
 * one thread; every output is compared by its normalized squared error
 * sum (a - b)^2 / sum b^2 against the op's tolerance.  Inputs are made on
 * the host from a seed and reach the backend through its own buffers
 * (alloc, to_device, to_host), so a device backend runs the same table:
 * ops_check_case(its_instance, cpu_reference, i) for every case.  On the CPU the table also proves
 * the determinism promise: every ISA level gives the same bits on 1, 2 and
 * 3 threads. */

typedef struct op_case {
    const char *op;
    int64_t     a, b, c, d; /* the op's sizes (see each runner) */
    uint32_t    type;       /* weight type for linear / embedding */
    double      tol;        /* largest normalized error allowed */
} op_case;

enum { OP_MAX_OUT = 4 };

/* The outputs of one run, copied back to the host. */
typedef struct op_out {
    float *v[OP_MAX_OUT];
    size_t n[OP_MAX_OUT];
    int    count;
} op_out;

/* Device buffers of one run, freed together. */
typedef struct op_run {
    const ilm__backend *be;
    void               *bufs[16];
    int                 n_bufs;
    op_out             *out;
} op_run;

static void *op_dev(op_run *r, const void *host, size_t bytes)
{
    void *d = r->be->iface.alloc(r->be, bytes ? bytes : 1);
    ck_assert_ptr_nonnull(d);
    if (host) ck_assert_int_eq(r->be->iface.to_device(r->be, d, host, bytes), ILM_OK);
    ck_assert_int_lt(r->n_bufs, 16);
    r->bufs[r->n_bufs++] = d;
    return d;
}

/* n floats drawn from normal(0, scale), on the device. */
static float *op_randn(op_run *r, ilm__rng *g, size_t n, float scale)
{
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = scale * ilm__rng_normal(g);
    float *d = op_dev(r, h, n * sizeof *h);
    free(h);
    return d;
}

static void op_keep(op_run *r, const float *dev, size_t n)
{
    op_out *o = r->out;
    ck_assert_int_lt(o->count, OP_MAX_OUT);
    o->v[o->count] = malloc(n * sizeof(float) + 1);
    ck_assert_int_eq(r->be->iface.to_host(r->be, o->v[o->count], dev, n * sizeof(float)), ILM_OK);
    o->n[o->count++] = n;
}

/* Rows of a weight type with sane scales: random bytes, then every block's
 * f16 scale (and min) set to a small positive value. */
static void *op_weights(op_run *r, ilm__rng *g, uint32_t type, int64_t rows, int64_t cols)
{
    uint32_t block, bytes;
    ck_assert(ilm__dtype_info(type, &block, &bytes));
    const size_t nb = (size_t)(rows * cols / block), total = nb * bytes;
    uint8_t *h = malloc(total);
    if (type == ILM__DTYPE_F32 || type == ILM__DTYPE_F16 || type == ILM__DTYPE_BF16) {
        for (size_t i = 0; i < nb; i++) {
            const float v = 0.5f * ilm__rng_normal(g);
            if (type == ILM__DTYPE_F32) memcpy(h + 4 * i, &v, 4);
            else {
                uint16_t u = type == ILM__DTYPE_F16 ? ilm__f32_to_f16(v) : ilm__f32_to_bf16(v);
                memcpy(h + 2 * i, &u, 2);
            }
        }
    } else {
        for (size_t i = 0; i < total; i++) h[i] = (uint8_t)(ilm__rng_u32(g) >> 24);
        /* q4_0 / q8_0: d; q4_1: d, m -- the leading f16s of a block. */
        const int n_f16 = type == ILM__DTYPE_Q4_1 ? 2 : 1;
        for (size_t i = 0; i < nb; i++)
            for (int k = 0; k < n_f16; k++) {
                uint16_t u = ilm__f32_to_f16(0.01f + 0.02f * ilm__rng_uniform(g));
                memcpy(h + i * bytes + 2 * k, &u, 2);
            }
    }
    void *d = op_dev(r, h, total);
    free(h);
    return d;
}

static int32_t *op_ids(op_run *r, ilm__rng *g, size_t n, int64_t below)
{
    int32_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (int32_t)ilm__rng_below(g, (uint32_t)below);
    int32_t *d = op_dev(r, h, n * sizeof *h);
    free(h);
    return d;
}

/* cos/sin tables [T, D/2] of positions 0..T-1 (theta 10000). */
static void op_rope_tables(op_run *r, int64_t T, int64_t D, float **cs, float **sn)
{
    float *c = malloc((size_t)(T * D / 2) * sizeof *c), *s = malloc((size_t)(T * D / 2) * sizeof *s);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < D / 2; i++) {
            double a = (double)t * pow(10000.0, -2.0 * (double)i / (double)D);
            c[t * D / 2 + i] = (float)cos(a);
            s[t * D / 2 + i] = (float)sin(a);
        }
    *cs = op_dev(r, c, (size_t)(T * D / 2) * sizeof *c);
    *sn = op_dev(r, s, (size_t)(T * D / 2) * sizeof *s);
    free(c);
    free(s);
}

/* Packed documents: cu[0..n] over T tokens, n = min(3, T). */
static int32_t *op_cu(op_run *r, int64_t T, int64_t *n_seqs)
{
    int32_t h[4] = { 0, (int32_t)(T / 3), (int32_t)(2 * T / 3 + 1), (int32_t)T };
    int64_t n = 3;
    if (T < 4) {
        h[1] = (int32_t)T;
        n = 1;
    }
    *n_seqs = n;
    return op_dev(r, h, sizeof h);
}

#define OK(call) ck_assert_msg((call) == ILM_OK, "%s: %s", c->op, ilm_last_error())

static void op_run_case(op_run *r, const op_case *c, uint64_t seed)
{
    const ilm__backend *be = r->be;
    ilm__rng g;
    ilm__rng_init(&g, seed, 0);
    const char *op = c->op;
    if (!strcmp(op, "gemm_f32")) { /* a M, b N, c K, d: trans bits */
        const int M = (int)c->a, N = (int)c->b, K = (int)c->c;
        const bool ta = c->d & 1, tb = c->d & 2;
        float *A = op_randn(r, &g, (size_t)M * K, 1), *B = op_randn(r, &g, (size_t)K * N, 1);
        float *C = op_randn(r, &g, (size_t)M * N, 1);
        OK(be->iface.gemm_f32(be, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C, N));
        op_keep(r, C, (size_t)M * N);
    } else if (!strcmp(op, "rmsnorm") || !strcmp(op, "rmsnorm_bwd")) { /* a T, b C */
        const int64_t T = c->a, C = c->b;
        float *x = op_randn(r, &g, (size_t)(T * C), 2), *w = op_randn(r, &g, (size_t)C, 1);
        float *y = op_dev(r, NULL, (size_t)(T * C) * sizeof(float));
        if (op[7]) {
            float *dy = op_randn(r, &g, (size_t)(T * C), 1), *dw = op_randn(r, &g, (size_t)C, 1);
            OK(be->iface.rmsnorm_bwd(be, x, w, dy, y, dw, T, C, 1e-5f));
            op_keep(r, dw, (size_t)C);
        } else {
            OK(be->iface.rmsnorm(be, x, w, y, T, C, 1e-5f));
        }
        op_keep(r, y, (size_t)(T * C));
    } else if (!strcmp(op, "rope") || !strcmp(op, "rope_bwd")) { /* a T, b NH, c D, d interleaved */
        const int64_t T = c->a, NH = c->b, D = c->c;
        float *x = op_randn(r, &g, (size_t)(T * NH * D), 1), *cs, *sn;
        op_rope_tables(r, T, D, &cs, &sn);
        OK((op[4] ? be->iface.rope_bwd : be->iface.rope)(be, x, T, NH, D, cs, sn, c->d != 0));
        op_keep(r, x, (size_t)(T * NH * D));
    } else if (!strcmp(op, "attention")) { /* a T, b p0, c H, d KV; D 32 */
        const int64_t T = c->a, p0 = c->b, H = c->c, KV = c->d, D = 32, S = p0 + T;
        float *q = op_randn(r, &g, (size_t)(T * H * D), 1);
        float *k = op_randn(r, &g, (size_t)(S * KV * D), 1), *v = op_randn(r, &g, (size_t)(S * KV * D), 1);
        float *o = op_dev(r, NULL, (size_t)(T * H * D) * sizeof(float));
        OK(be->iface.attention(be, q, k, v, o, T, p0, H, KV, D, KV * D));
        op_keep(r, o, (size_t)(T * H * D));
    } else if (!strcmp(op, "attention_train") || !strcmp(op, "attention_train_bwd")) {
        const int64_t T = c->a, H = c->b, KV = c->c, D = c->d;
        int64_t ns;
        int32_t *cu = op_cu(r, T, &ns);
        float *q = op_randn(r, &g, (size_t)(T * H * D), 1);
        float *k = op_randn(r, &g, (size_t)(T * KV * D), 1), *v = op_randn(r, &g, (size_t)(T * KV * D), 1);
        float *o = op_dev(r, NULL, (size_t)(T * H * D) * sizeof(float));
        float *lse = op_dev(r, NULL, (size_t)(T * H) * sizeof(float));
        OK(be->iface.attention_train(be, q, k, v, o, lse, cu, ns, T, H, KV, D));
        if (op[15]) {
            float *dout = op_randn(r, &g, (size_t)(T * H * D), 1);
            float *dq = op_dev(r, NULL, (size_t)(T * H * D) * sizeof(float));
            float *dk = op_dev(r, NULL, (size_t)(T * KV * D) * sizeof(float));
            float *dv = op_dev(r, NULL, (size_t)(T * KV * D) * sizeof(float));
            OK(be->iface.attention_train_bwd(be, q, k, v, o, lse, dout, dq, dk, dv, cu, ns, T, H, KV, D));
            op_keep(r, dq, (size_t)(T * H * D));
            op_keep(r, dk, (size_t)(T * KV * D));
            op_keep(r, dv, (size_t)(T * KV * D));
        } else {
            op_keep(r, o, (size_t)(T * H * D));
            op_keep(r, lse, (size_t)(T * H));
        }
    } else if (!strcmp(op, "swiglu") || !strcmp(op, "swiglu_bwd") || !strcmp(op, "add")) { /* a n */
        const size_t n = (size_t)c->a;
        float *a = op_randn(r, &g, n, 3), *b = op_randn(r, &g, n, 1);
        if (!strcmp(op, "add")) {
            OK(be->iface.add(be, a, b, (int64_t)n));
            op_keep(r, a, n);
        } else if (op[6]) {
            float *d = op_randn(r, &g, n, 1);
            OK(be->iface.swiglu_bwd(be, d, a, b, a, b, (int64_t)n));
            op_keep(r, a, n);
            op_keep(r, b, n);
        } else {
            float *o = op_dev(r, NULL, n * sizeof(float));
            OK(be->iface.swiglu(be, a, b, o, (int64_t)n));
            op_keep(r, o, n);
        }
    } else if (!strcmp(op, "kv_append")) { /* a pos, b T, c width */
        const int64_t pos = c->a, T = c->b, W = c->c;
        float *cache = op_randn(r, &g, (size_t)((pos + T) * W), 1), *x = op_randn(r, &g, (size_t)(T * W), 1);
        OK(be->iface.kv_append(be, cache, pos, x, T, W));
        op_keep(r, cache, (size_t)((pos + T) * W));
    } else if (!strcmp(op, "qkv_split") || !strcmp(op, "qkv_merge")) { /* a T, b H, c KV, d D */
        const int64_t T = c->a, H = c->b, KV = c->c, D = c->d, X = T * (H + 2 * KV) * D;
        float *qkv = op_randn(r, &g, (size_t)X, 1), *q = op_randn(r, &g, (size_t)(T * H * D), 1);
        float *k = op_randn(r, &g, (size_t)(T * KV * D), 1), *v = op_randn(r, &g, (size_t)(T * KV * D), 1);
        if (op[4] == 's') {
            OK(be->iface.qkv_split(be, qkv, T, H, KV, D, q, k, v));
            op_keep(r, q, (size_t)(T * H * D));
            op_keep(r, k, (size_t)(T * KV * D));
            op_keep(r, v, (size_t)(T * KV * D));
        } else {
            OK(be->iface.qkv_merge(be, q, k, v, T, H, KV, D, qkv));
            op_keep(r, qkv, (size_t)X);
        }
    } else if (!strcmp(op, "linear")) { /* a M, b N, c K */
        const int64_t M = c->a, N = c->b, K = c->c;
        void *W = op_weights(r, &g, c->type, N, K);
        float *x = op_randn(r, &g, (size_t)(M * K), 1);
        float *y = op_dev(r, NULL, (size_t)(M * N) * sizeof(float));
        OK(be->iface.linear(be, c->type, W, N, K, x, M, y));
        op_keep(r, y, (size_t)(M * N));
    } else if (!strcmp(op, "embedding") || !strcmp(op, "embedding_bwd")) { /* a V, b C, c T */
        const int64_t V = c->a, C = c->b, T = c->c;
        int32_t *ids = op_ids(r, &g, (size_t)T, V);
        if (op[9]) {
            float *dW = op_randn(r, &g, (size_t)(V * C), 1), *dy = op_randn(r, &g, (size_t)(T * C), 1);
            OK(be->iface.embedding_bwd(be, dW, V, C, ids, T, dy));
            op_keep(r, dW, (size_t)(V * C));
        } else {
            void *W = op_weights(r, &g, c->type, V, C);
            float *y = op_dev(r, NULL, (size_t)(T * C) * sizeof(float));
            OK(be->iface.embedding(be, c->type, W, V, C, ids, T, y));
            op_keep(r, y, (size_t)(T * C));
        }
    } else if (!strcmp(op, "cross_entropy")) { /* a N, b V */
        const int64_t N = c->a, V = c->b;
        float *l = op_randn(r, &g, (size_t)(N * V), 3);
        int32_t *h = malloc((size_t)N * sizeof *h);
        for (int64_t i = 0; i < N; i++) h[i] = i % 5 == 3 ? -100 : (int32_t)ilm__rng_below(&g, (uint32_t)V);
        int32_t *lab = op_dev(r, h, (size_t)N * sizeof *h);
        free(h);
        double sum = 0;
        int64_t nt = 0;
        OK(be->iface.cross_entropy(be, l, lab, N, V, 0.5f, l, &sum, &nt));
        op_keep(r, l, (size_t)(N * V));
        float *s = op_dev(r, NULL, 2 * sizeof(float));
        const float hs[2] = { (float)sum, (float)nt };
        ck_assert_int_eq(be->iface.to_device(be, s, hs, sizeof hs), ILM_OK);
        op_keep(r, s, 2);
    } else if (!strcmp(op, "sqnorm")) { /* a n */
        const size_t n = (size_t)c->a;
        float *x = op_randn(r, &g, n, 1);
        double sq = 0;
        OK(be->iface.sqnorm(be, x, n, &sq));
        const float h = (float)sq;
        op_keep(r, op_dev(r, &h, sizeof h), 1);
    } else if (!strcmp(op, "adamw")) { /* a n, b spans */
        const size_t n = (size_t)c->a;
        float *p = op_randn(r, &g, n, 1), *gr = op_randn(r, &g, n, 1);
        float *m = op_randn(r, &g, n, 0.1f), *v = op_dev(r, NULL, n * sizeof(float));
        float *vh = malloc(n * sizeof *vh);
        for (size_t i = 0; i < n; i++) vh[i] = 0.01f * ilm__rng_uniform(&g);
        ck_assert_int_eq(be->iface.to_device(be, v, vh, n * sizeof *vh), ILM_OK);
        free(vh);
        ilm__adamw_span spans[8];
        const size_t ns = (size_t)c->b;
        for (size_t i = 0; i < ns; i++) {
            const size_t lo = n * i / ns, hi = n * (i + 1) / ns;
            spans[i] = (ilm__adamw_span){ p + lo, m + lo, v + lo, gr + lo, hi - lo, i % 2 == 0 };
        }
        const ilm__adamw_k k = { 0.999f, 0.1f, 0.95f, 0.05f, 3e-4f, 0.2f, 1e-8f, 0.7f };
        OK(be->iface.adamw(be, &k, spans, ns));
        op_keep(r, p, n);
        op_keep(r, m, n);
        op_keep(r, v, n);
    } else {
        ck_abort_msg("no runner for op %s", op);
    }
}

static void op_execute(const ilm__backend *be, const op_case *c, uint64_t seed, op_out *out)
{
    op_run r = { .be = be, .out = out };
    *out = (op_out){ 0 };
    op_run_case(&r, c, seed);
    ck_assert_int_eq(be->iface.synchronize(be), ILM_OK);
    for (int i = 0; i < r.n_bufs; i++) be->iface.free_buf(be, r.bufs[i]);
}

static void op_out_free(op_out *o)
{
    for (int i = 0; i < o->count; i++) free(o->v[i]);
}

#define Q8 ILM__DTYPE_Q8_0
static const op_case op_cases[] = {
    { "gemm_f32", 1, 1, 1, 0, 0, 1e-12 },       { "gemm_f32", 7, 13, 5, 1, 0, 1e-12 },
    { "gemm_f32", 33, 17, 65, 2, 0, 1e-12 },    { "gemm_f32", 200, 300, 64, 3, 0, 1e-12 },
    { "gemm_f32", 40, 600, 128, 2, 0, 1e-12 },  /* blocked: M*N*K >= 2^21 */
    { "rmsnorm", 1, 64, 0, 0, 0, 1e-12 },       { "rmsnorm", 9, 70, 0, 0, 0, 1e-12 },
    { "rmsnorm_bwd", 9, 70, 0, 0, 0, 1e-10 },   { "rmsnorm_bwd", 300, 200, 0, 0, 0, 1e-10 },
    { "rope", 5, 3, 8, 0, 0, 1e-12 },           { "rope", 70, 4, 64, 1, 0, 1e-12 },
    { "rope_bwd", 5, 3, 8, 1, 0, 1e-12 },       { "rope_bwd", 70, 4, 64, 0, 0, 1e-12 },
    { "attention", 1, 0, 4, 4, 0, 1e-10 },      { "attention", 1, 300, 8, 2, 0, 1e-10 },
    { "attention", 7, 5, 4, 2, 0, 1e-10 },      { "attention", 40, 0, 6, 3, 0, 1e-10 },
    { "attention_train", 3, 2, 1, 8, 0, 1e-10 }, { "attention_train", 50, 4, 2, 16, 0, 1e-10 },
    { "attention_train_bwd", 3, 2, 1, 8, 0, 1e-9 }, { "attention_train_bwd", 50, 4, 2, 16, 0, 1e-9 },
    { "swiglu", 1, 0, 0, 0, 0, 1e-12 },         { "swiglu", 1003, 0, 0, 0, 0, 1e-12 },
    { "swiglu_bwd", 7, 0, 0, 0, 0, 1e-10 },     { "swiglu_bwd", 1003, 0, 0, 0, 0, 1e-10 },
    { "add", 1, 0, 0, 0, 0, 0 },                { "add", 4099, 0, 0, 0, 0, 0 },
    { "kv_append", 0, 1, 16, 0, 0, 0 },         { "kv_append", 37, 5, 64, 0, 0, 0 },
    { "qkv_split", 3, 4, 2, 8, 0, 0 },          { "qkv_split", 9, 6, 6, 16, 0, 0 },
    { "qkv_merge", 3, 4, 2, 8, 0, 0 },          { "qkv_merge", 9, 6, 6, 16, 0, 0 },
    { "linear", 1, 37, 64, 0, ILM__DTYPE_F32, 1e-12 },   { "linear", 9, 37, 64, 0, ILM__DTYPE_F32, 1e-12 },
    { "linear", 1, 37, 64, 0, ILM__DTYPE_F16, 1e-12 },   { "linear", 9, 301, 512, 0, ILM__DTYPE_F16, 1e-12 },
    { "linear", 1, 37, 64, 0, ILM__DTYPE_BF16, 1e-12 },  { "linear", 9, 37, 64, 0, ILM__DTYPE_BF16, 1e-12 },
    { "linear", 1, 37, 64, 0, ILM__DTYPE_Q4_0, 1e-10 },  { "linear", 33, 37, 256, 0, ILM__DTYPE_Q4_0, 1e-10 },
    { "linear", 1, 37, 64, 0, ILM__DTYPE_Q4_1, 1e-10 },  { "linear", 33, 301, 512, 0, ILM__DTYPE_Q4_1, 1e-10 },
    { "linear", 1, 37, 64, 0, Q8, 1e-10 },              { "linear", 5, 37, 128, 0, Q8, 1e-10 },
    { "embedding", 11, 64, 9, 0, ILM__DTYPE_F32, 0 },    { "embedding", 11, 64, 9, 0, ILM__DTYPE_F16, 0 },
    { "embedding", 50, 96, 33, 0, Q8, 0 },              { "embedding", 50, 96, 33, 0, ILM__DTYPE_Q4_1, 0 },
    { "embedding_bwd", 11, 70, 9, 0, 0, 1e-12 },        { "embedding_bwd", 7, 64, 300, 0, 0, 1e-12 },
    { "cross_entropy", 1, 17, 0, 0, 0, 1e-10 },         { "cross_entropy", 40, 1000, 0, 0, 0, 1e-10 },
    { "sqnorm", 1, 0, 0, 0, 0, 1e-12 },                 { "sqnorm", 70000, 0, 0, 0, 0, 1e-12 },
    { "adamw", 5, 1, 0, 0, 0, 1e-12 },                  { "adamw", 10007, 5, 0, 0, 0, 1e-12 },
};
#undef Q8
enum { N_OP_CASES = sizeof op_cases / sizeof *op_cases };

/* sum (a - b)^2 / sum b^2 (0 when both are all zero). */
static double nmse(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? num / den : num;
}

/* Runs op_cases[i] on `be` and on the reference; fails on an output whose
 * normalized error exceeds the case's tolerance or is not finite. */
static void ops_check_case(const ilm__backend *be, const ilm__backend *ref, size_t i)
{
    const op_case *c = &op_cases[i];
    op_out got, want;
    op_execute(ref, c, 1000 + i, &want);
    op_execute(be, c, 1000 + i, &got);
    ck_assert_int_eq(got.count, want.count);
    for (int k = 0; k < got.count; k++) {
        const double e = nmse(got.v[k], want.v[k], want.n[k]);
        ck_assert_msg(isfinite(e) && e <= c->tol,
                      "%s (%lld, %lld, %lld, %lld, %s) output %d on %s: normalized error %.3g > %.3g",
                      c->op, (long long)c->a, (long long)c->b, (long long)c->c, (long long)c->d,
                      c->type ? ilm__dtype_name(c->type) : "-", k, be->device.name, e, c->tol);
    }
    op_out_free(&got);
    op_out_free(&want);
}

START_TEST(every_op_matches_the_reference)
{
    ilm__backend *ref = test_cpu_new(1, ILM__ISA_GENERIC);
    /* Every CPU ISA level, each on 1, 2 and 3 threads: within tolerance of
     * the reference, and the same bits for every thread count. */
    for (int isa = ILM__ISA_GENERIC; isa <= ilm__isa(); isa++) {
        op_out first = { 0 };
        for (int t = 1; t <= 3; t++) {
            ilm__backend *be = test_cpu_new(t, isa);
            ops_check_case(be, ref, (size_t)_i);
            op_out o;
            op_execute(be, &op_cases[_i], 1000 + (uint64_t)_i, &o);
            if (t == 1) {
                first = o;
            } else {
                for (int k = 0; k < o.count; k++)
                    ck_assert_msg(!memcmp(first.v[k], o.v[k], o.n[k] * sizeof(float)),
                                  "%s output %d at %s: %d threads change bits", op_cases[_i].op, k,
                                  ilm__isa_name(isa), t);
                op_out_free(&o);
            }
            ilm__backend_free(be);
        }
        op_out_free(&first);
    }
    ilm__backend_free(ref);
}
END_TEST

START_TEST(every_op_has_a_case)
{
    /* A new op in the table gets a case here, or this fails. */
    static const char *const ops[] = {
        "gemm_f32", "rmsnorm", "rope", "attention", "swiglu", "kv_append", "qkv_split", "qkv_merge",
        "add", "linear", "embedding", "embedding_bwd", "rmsnorm_bwd", "rope_bwd", "attention_train",
        "attention_train_bwd", "swiglu_bwd", "cross_entropy", "sqnorm", "adamw" };
    /* The compute ops of ilm__backend_iface: everything after the buffer
     * functions (api_version, free, synchronize, alloc, free_buf,
     * to_device, to_host). */
    const size_t n_ptrs = (sizeof(ilm__backend_iface) - offsetof(ilm__backend_iface, gemm_f32)) /
                          sizeof(void (*)(void));
    ck_assert_uint_eq(n_ptrs, sizeof ops / sizeof *ops);
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        bool found = false;
        for (size_t k = 0; k < N_OP_CASES; k++) found |= !strcmp(op_cases[k].op, ops[i]);
        ck_assert_msg(found, "op %s has no case in op_cases", ops[i]);
    }
}
END_TEST

/* ---- the GEMM benchmark ------------------------------------------------ */

static int n_progress;
static int count_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)done; (void)total;
    ck_assert_ptr_null(user);
    ck_assert_ptr_nonnull(strstr(stage, "gemm "));
    n_progress++;
    return 0;
}

START_TEST(bench_gemm_reports_json)
{
    char *out = NULL;
    ck_assert_int_eq(ilm_bench_gemm("{\"sizes\": [32, 48], \"min_time\": 0, \"min_reps\": 2,"
                                    " \"threads\": 1}", count_progress, NULL, &out),
                     ILM_OK);
    ck_assert_int_ge(n_progress, 4);
    cJSON *j = cJSON_Parse(out);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "threads")->valueint, 1);
    double peak = cJSON_GetObjectItem(j, "peak_gflops")->valuedouble;
    ck_assert(peak > 0.1);
    const cJSON *res = cJSON_GetObjectItem(j, "results");
    ck_assert_int_eq(cJSON_GetArraySize(res), 2);
    const cJSON *r0 = cJSON_GetArrayItem(res, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(r0, "n")->valueint, 32);
    ck_assert_int_ge(cJSON_GetObjectItem(r0, "reps")->valueint, 2);
    double best = cJSON_GetObjectItem(r0, "best_gflops")->valuedouble;
    ck_assert(best > 0 && best >= cJSON_GetObjectItem(r0, "median_gflops")->valuedouble);
    ck_assert(fabs(cJSON_GetObjectItem(r0, "fraction_of_peak")->valuedouble - best / peak) < 1e-9);
    cJSON_Delete(j);
    ilm_free(out);
}
END_TEST

static int cancel_at_once(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user; (void)stage; (void)done; (void)total;
    return 1;
}

START_TEST(bench_gemm_cancel_and_bad_config)
{
    char *out = (char *)1;
    ck_assert_int_eq(ilm_bench_gemm("{\"sizes\": [16], \"min_time\": 0}", cancel_at_once, NULL, &out),
                     ILM_ERR_CANCELLED);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ilm_bench_gemm("{\"size\": [16]}", NULL, NULL, &out), ILM_ERR_CONFIG);
    ck_assert_str_eq(ilm_last_error(), "config: unknown key 'size'");
    ck_assert_int_eq(ilm_bench_gemm("{\"sizes\": []}", NULL, NULL, &out), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_bench_gemm("{\"sizes\": [0]}", NULL, NULL, &out), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_bench_gemm("{\"threads\": \"2\"}", NULL, NULL, &out), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_bench_gemm(NULL, NULL, NULL, NULL), ILM_ERR_INVALID_ARG);
}
END_TEST

/* ---- devices ----------------------------------------------------------- */

START_TEST(cuda_device_query_reports_through_status)
{
    const char *built = getenv("ILM_CUDA");
    int n = -1;
    ilm_status st = ilm_cuda_device_count(&n);
    if (built && strcmp(built, "0") == 0) {
        ck_assert_int_eq(st, ILM_ERR_UNSUPPORTED);
        ck_assert_int_eq(n, 0);
    } else if (st == ILM_OK) {
        /* A GPU machine: the device answers and runs the probe kernel. */
        ck_assert_int_ge(n, 1);
        char *json = NULL;
        ck_assert_int_eq(ilm_cuda_device_info(0, &json), ILM_OK);
        ck_assert_ptr_nonnull(strstr(json, "\"probe_kernel\":\"ok\""));
        ilm_free(json);
        ck_assert_int_eq(ilm_cuda_device_info(n, &json), ILM_ERR_RANGE);
    } else {
        ck_assert_msg(st == ILM_ERR_NO_DEVICE, "got %s: %s", ilm_status_str(st), ilm_last_error());
        ck_assert_int_eq(n, 0);
        ck_assert_ptr_nonnull(strstr(ilm_last_error(), "cuda:"));
        char *json = (char *)1;
        ck_assert_int_eq(ilm_cuda_device_info(0, &json), ILM_ERR_NO_DEVICE);
        ck_assert_ptr_null(json);
    }
    ck_assert_int_eq(ilm_cuda_device_count(NULL), built && strcmp(built, "0") == 0
                                                      ? ILM_ERR_UNSUPPORTED : ILM_ERR_INVALID_ARG);
}
END_TEST

Suite *suite_backend(void)
{
    Suite *s = suite_create("backend");
    TCase *t = tcase_create("cpu");
    tcase_add_loop_test(t, gemm_f32_matches_definition, 0, (int)(sizeof shapes / sizeof *shapes));
    tcase_add_test(t, gemm_f32_rejects_bad_arguments);
    tcase_add_test(t, backend_buffers);
    suite_add_tcase(s, t);
    t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, every_op_matches_the_reference, 0, N_OP_CASES);
    tcase_add_test(t, every_op_has_a_case);
    suite_add_tcase(s, t);

    t = tcase_create("bench");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, bench_gemm_reports_json);
    tcase_add_test(t, bench_gemm_cancel_and_bad_config);
    suite_add_tcase(s, t);

    t = tcase_create("devices");
    tcase_add_test(t, cuda_device_query_reports_through_status);
    suite_add_tcase(s, t);
    return s;
}
