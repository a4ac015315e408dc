/* Gradients: every training op of the backend against central finite
 * differences of its forward, thread-count independence of the reductions,
 * and the training graph (src/train/graph.c) against transformers' loss and
 * gradients (fixtures: tools/reference/train_fixtures.py).
 *
 * Finite differences.  Each check takes a scalar f = sum(R * op(x)) with a
 * fixed random R, computed in double from the op's fp32 outputs, and
 * compares the op's backward (fed dy = R) with (f(x + e) - f(x - e)) / 2e
 * for every input element, as the relative norm error
 * |fd - analytic| / |analytic| over the whole tensor.  With e = 1e-2 on
 * O(1) inputs the truncation error is O(e^2 f''') ~ 1e-4 relative at
 * most, and the fp32 rounding of f (a sum of ~100 O(1) terms, ~1e-6
 * absolute) divided by 2e adds ~5e-5 per element; the errors seen are
 * 2e-6 .. 4e-5, so the tolerance 5e-4 leaves a margin of ten, while a
 * wrong gradient (a sign, a missing term, a transposed index) gives errors
 * of order 1. */
#include "tests.h"
#include "internlm.h"
#include "backend/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FD_EPS 1e-2
#define FD_TOL 5e-4

static float *randn(ilm__rng *r, int64_t n, float s)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    for (int64_t i = 0; i < n; i++) p[i] = s * ilm__rng_normal(r);
    return p;
}

static double dot_d(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* f(ctx) evaluated at x +- FD_EPS for each element; returns the relative
 * norm error against `analytic`. */
typedef double (*scalar_fn)(void *ctx);

static double fd_error(float *x, int64_t n, const float *analytic, scalar_fn f, void *ctx)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + (float)FD_EPS;
        double fp = f(ctx);
        x[i] = keep - (float)FD_EPS;
        double fm = f(ctx);
        x[i] = keep;
        double fd = (fp - fm) / (2 * FD_EPS), d = fd - analytic[i];
        num += d * d;
        den += (double)analytic[i] * analytic[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

#define CHECK_FD(what, err)                                                              \
    do {                                                                                 \
        double e_ = (err);                                                               \
        printf("grad %-28s finite-difference rel err %.2e\n", what, e_);                  \
        ck_assert_msg(e_ <= FD_TOL, "%s: gradient differs from finite differences by %g", \
                      what, e_);                                                         \
    } while (0)

/* ---- embedding ---------------------------------------------------------- */

START_TEST(embedding_gathers_and_scatters)
{
    const ilm__backend *be = ilm__backend_cpu();
    enum { V = 11, C = 70, T = 9 };
    ilm__rng r;
    ilm__rng_init(&r, 1, 0);
    float *W = randn(&r, V * C, 1), *y = malloc(T * C * sizeof *y), *dy = randn(&r, T * C, 1);
    const int32_t ids[T] = { 3, 0, 3, 10, 7, 3, 0, 1, 10 }; /* repeats */
    ck_assert_int_eq(be->embedding(be, W, V, C, ids, T, y), ILM_OK);
    for (int t = 0; t < T; t++) ck_assert(memcmp(y + t * C, W + ids[t] * C, C * sizeof *y) == 0);
    float *dW = calloc(V * C, sizeof *dW);
    for (int i = 0; i < V * C; i++) dW[i] = 0.5f; /* accumulates */
    ck_assert_int_eq(be->embedding_bwd(be, dW, V, C, ids, T, dy), ILM_OK);
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) {
            float want = 0.5f;
            for (int t = 0; t < T; t++)
                if (ids[t] == v) want += dy[t * C + c];
            ck_assert_msg(dW[v * C + c] == want, "dW[%d,%d] = %g, want %g", v, c,
                          (double)dW[v * C + c], (double)want);
        }
    const int32_t bad[1] = { V };
    ck_assert_int_eq(be->embedding(be, W, V, C, bad, 1, y), ILM_ERR_RANGE);
    ck_assert_int_eq(be->embedding_bwd(be, dW, V, C, bad, 1, dy), ILM_ERR_RANGE);
    free(W); free(y); free(dy); free(dW);
}
END_TEST

/* ---- rmsnorm ------------------------------------------------------------ */

typedef struct { const ilm__backend *be; float *x, *w, *y, *R; int64_t T, C; } norm_ctx;

static double norm_f(void *p)
{
    norm_ctx *c = p;
    c->be->rmsnorm(c->be, c->x, c->w, c->y, c->T, c->C, 1e-5f);
    return dot_d(c->R, c->y, c->T * c->C);
}

START_TEST(rmsnorm_backward_matches_finite_differences)
{
    const ilm__backend *be = ilm__backend_cpu();
    enum { T = 5, C = 70 }; /* C spans two column blocks */
    ilm__rng r;
    ilm__rng_init(&r, 2, 0);
    norm_ctx c = { be, randn(&r, T * C, 1), randn(&r, C, 1), malloc(T * C * sizeof(float)),
                   randn(&r, T * C, 1), T, C };
    float *dx = malloc(T * C * sizeof *dx), *dw = calloc(C, sizeof *dw);
    ck_assert_int_eq(be->rmsnorm_bwd(be, c.x, c.w, c.R, dx, dw, T, C, 1e-5f), ILM_OK);
    CHECK_FD("rmsnorm dx", fd_error(c.x, T * C, dx, norm_f, &c));
    CHECK_FD("rmsnorm dw", fd_error(c.w, C, dw, norm_f, &c));
    /* dw accumulates; dx may overwrite dy. */
    float *dw2 = malloc(C * sizeof *dw2), *dy = malloc(T * C * sizeof *dy);
    for (int i = 0; i < C; i++) dw2[i] = 1.0f;
    memcpy(dy, c.R, T * C * sizeof *dy);
    ck_assert_int_eq(be->rmsnorm_bwd(be, c.x, c.w, dy, dy, dw2, T, C, 1e-5f), ILM_OK);
    ck_assert(memcmp(dy, dx, T * C * sizeof *dx) == 0);
    for (int i = 0; i < C; i++) ck_assert_float_eq_tol(dw2[i], 1.0f + dw[i], 1e-5f);
    free(c.x); free(c.w); free(c.y); free(c.R); free(dx); free(dw); free(dw2); free(dy);
}
END_TEST

/* ---- rope --------------------------------------------------------------- */

typedef struct { const ilm__backend *be; float *x, *y, *R, *cs, *sn; int64_t T, NH, D; bool il; } rope_ctx;

static double rope_f(void *p)
{
    rope_ctx *c = p;
    memcpy(c->y, c->x, (size_t)(c->T * c->NH * c->D) * sizeof *c->y);
    c->be->rope(c->be, c->y, c->T, c->NH, c->D, c->cs, c->sn, c->il);
    return dot_d(c->R, c->y, c->T * c->NH * c->D);
}

START_TEST(rope_backward_matches_finite_differences)
{
    const ilm__backend *be = ilm__backend_cpu();
    enum { T = 6, NH = 3, D = 8, N = T * NH * D };
    ilm__rng r;
    ilm__rng_init(&r, 3, (uint64_t)_i);
    /* Packed positions: two documents, the second restarting at 0. */
    const int pos[T] = { 0, 1, 2, 0, 1, 2 };
    float cs[T * D / 2], sn[T * D / 2];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D / 2; i++) {
            double a = pos[t] * pow(1e4, -2.0 * i / D);
            cs[t * D / 2 + i] = (float)cos(a);
            sn[t * D / 2 + i] = (float)sin(a);
        }
    rope_ctx c = { be, randn(&r, N, 1), malloc(N * sizeof(float)), randn(&r, N, 1), cs, sn, T, NH,
                   D, _i == 1 };
    float *dx = malloc(N * sizeof *dx);
    memcpy(dx, c.R, N * sizeof *dx);
    ck_assert_int_eq(be->rope_bwd(be, dx, T, NH, D, cs, sn, c.il), ILM_OK);
    CHECK_FD(c.il ? "rope (interleaved) dx" : "rope (rotate_half) dx", fd_error(c.x, N, dx, rope_f, &c));
    /* The backward undoes the forward. */
    memcpy(c.y, c.x, N * sizeof *c.y);
    be->rope(be, c.y, T, NH, D, cs, sn, c.il);
    be->rope_bwd(be, c.y, T, NH, D, cs, sn, c.il);
    for (int i = 0; i < N; i++) ck_assert_float_eq_tol(c.y[i], c.x[i], 1e-5f);
    free(c.x); free(c.y); free(c.R); free(dx);
}
END_TEST

/* ---- attention ---------------------------------------------------------- */

enum { AT = 13, AH = 4, AKV = 2, AD = 8, ANS = 3 };
static const int32_t a_cu[ANS + 1] = { 0, 5, 6, 13 }; /* a document of one token too */

typedef struct { const ilm__backend *be; float *q, *k, *v, *o, *lse, *R; } att_ctx;

static double att_f(void *p)
{
    att_ctx *c = p;
    c->be->attention_train(c->be, c->q, c->k, c->v, c->o, c->lse, a_cu, ANS, AT, AH, AKV, AD);
    return dot_d(c->R, c->o, AT * AH * AD);
}

START_TEST(attention_forward_equals_per_document_attention)
{
    const ilm__backend *be = ilm__backend_cpu();
    ilm__rng r;
    ilm__rng_init(&r, 4, 0);
    float *q = randn(&r, AT * AH * AD, 1), *k = randn(&r, AT * AKV * AD, 1),
          *v = randn(&r, AT * AKV * AD, 1);
    float *o = malloc(AT * AH * AD * sizeof *o), *ref = malloc(AT * AH * AD * sizeof *ref),
          *lse = malloc(AT * AH * sizeof *lse);
    ck_assert_int_eq(be->attention_train(be, q, k, v, o, lse, a_cu, ANS, AT, AH, AKV, AD), ILM_OK);
    /* Each document alone through the inference op (causal from 0). */
    for (int d = 0; d < ANS; d++) {
        int s0 = a_cu[d], n = a_cu[d + 1] - s0;
        ck_assert_int_eq(be->attention(be, q + s0 * AH * AD, k + s0 * AKV * AD, v + s0 * AKV * AD,
                                       ref + s0 * AH * AD, n, 0, AH, AKV, AD, AKV * AD), ILM_OK);
    }
    for (int i = 0; i < AT * AH * AD; i++) ck_assert_float_eq_tol(o[i], ref[i], 1e-5f);
    /* lse from its definition, in double. */
    for (int t = 0; t < AT; t++) {
        int d = 0;
        while (a_cu[d + 1] <= t) d++;
        for (int h = 0; h < AH; h++) {
            double s = 0;
            for (int u = a_cu[d]; u <= t; u++)
                s += exp(dot_d(q + (t * AH + h) * AD, k + (u * AKV + h / 2) * AD, AD) / sqrt(AD));
            ck_assert_msg(fabs(lse[t * AH + h] - log(s)) < 1e-5, "lse[%d,%d] %g vs %g", t, h,
                          (double)lse[t * AH + h], log(s));
        }
    }
    const int32_t bad[3] = { 0, 7, 7 };
    ck_assert_int_eq(be->attention_train(be, q, k, v, o, lse, bad, 2, 7, AH, AKV, AD),
                     ILM_ERR_INVALID_ARG);
    free(q); free(k); free(v); free(o); free(ref); free(lse);
}
END_TEST

START_TEST(attention_backward_matches_finite_differences)
{
    const ilm__backend *be = ilm__backend_cpu();
    ilm__rng r;
    ilm__rng_init(&r, 5, 0);
    att_ctx c = { be, randn(&r, AT * AH * AD, 1), randn(&r, AT * AKV * AD, 1),
                  randn(&r, AT * AKV * AD, 1), malloc(AT * AH * AD * sizeof(float)),
                  malloc(AT * AH * sizeof(float)), randn(&r, AT * AH * AD, 1) };
    att_f(&c);
    float *dq = malloc(AT * AH * AD * sizeof *dq), *dk = malloc(AT * AKV * AD * sizeof *dk),
          *dv = malloc(AT * AKV * AD * sizeof *dv);
    ck_assert_int_eq(be->attention_train_bwd(be, c.q, c.k, c.v, c.o, c.lse, c.R, dq, dk, dv, a_cu,
                                             ANS, AT, AH, AKV, AD), ILM_OK);
    CHECK_FD("attention dq", fd_error(c.q, AT * AH * AD, dq, att_f, &c));
    CHECK_FD("attention dk", fd_error(c.k, AT * AKV * AD, dk, att_f, &c));
    CHECK_FD("attention dv", fd_error(c.v, AT * AKV * AD, dv, att_f, &c));
    free(c.q); free(c.k); free(c.v); free(c.o); free(c.lse); free(c.R); free(dq); free(dk); free(dv);
}
END_TEST

/* ---- swiglu ------------------------------------------------------------- */

typedef struct { const ilm__backend *be; float *g, *u, *y, *R; int64_t n; } swi_ctx;

static double swi_f(void *p)
{
    swi_ctx *c = p;
    c->be->swiglu(c->be, c->g, c->u, c->y, c->n);
    return dot_d(c->R, c->y, c->n);
}

START_TEST(swiglu_backward_matches_finite_differences)
{
    const ilm__backend *be = ilm__backend_cpu();
    enum { N = 97 };
    ilm__rng r;
    ilm__rng_init(&r, 6, 0);
    swi_ctx c = { be, randn(&r, N, 2), randn(&r, N, 1), malloc(N * sizeof(float)), randn(&r, N, 1), N };
    float *dg = malloc(N * sizeof *dg), *du = malloc(N * sizeof *du);
    ck_assert_int_eq(be->swiglu_bwd(be, c.R, c.g, c.u, dg, du, N), ILM_OK);
    CHECK_FD("swiglu dgate", fd_error(c.g, N, dg, swi_f, &c));
    CHECK_FD("swiglu dup", fd_error(c.u, N, du, swi_f, &c));
    /* In place: dgate over gate, dup over up. */
    float *g2 = malloc(N * sizeof *g2), *u2 = malloc(N * sizeof *u2);
    memcpy(g2, c.g, N * sizeof *g2);
    memcpy(u2, c.u, N * sizeof *u2);
    ck_assert_int_eq(be->swiglu_bwd(be, c.R, g2, u2, g2, u2, N), ILM_OK);
    ck_assert(memcmp(g2, dg, N * sizeof *dg) == 0 && memcmp(u2, du, N * sizeof *du) == 0);
    free(c.g); free(c.u); free(c.y); free(c.R); free(dg); free(du); free(g2); free(u2);
}
END_TEST

/* ---- cross-entropy ------------------------------------------------------ */

enum { CN = 7, CV = 19 };
static const int32_t ce_labels[CN] = { 3, -100, 18, 0, 3, -100, 11 };

typedef struct { const ilm__backend *be; float *l; } ce_ctx;

static double ce_f(void *p)
{
    ce_ctx *c = p;
    double s;
    int64_t n;
    c->be->cross_entropy(c->be, c->l, ce_labels, CN, CV, 1.0f, NULL, &s, &n);
    return s;
}

START_TEST(cross_entropy_matches_definition_and_finite_differences)
{
    const ilm__backend *be = ilm__backend_cpu();
    ilm__rng r;
    ilm__rng_init(&r, 7, 0);
    ce_ctx c = { be, randn(&r, CN * CV, 3) };
    float *d = malloc(CN * CV * sizeof *d);
    double s;
    int64_t n;
    ck_assert_int_eq(be->cross_entropy(be, c.l, ce_labels, CN, CV, 1.0f, d, &s, &n), ILM_OK);
    ck_assert_int_eq(n, 5);
    double want = 0;
    for (int i = 0; i < CN; i++) {
        if (ce_labels[i] == -100) {
            for (int v = 0; v < CV; v++) ck_assert(d[i * CV + v] == 0.0f);
            continue;
        }
        double z = 0;
        for (int v = 0; v < CV; v++) z += exp((double)c.l[i * CV + v]);
        want += log(z) - c.l[i * CV + ce_labels[i]];
    }
    ck_assert_msg(fabs(s - want) < 1e-9 * fabs(want), "loss %.12g vs %.12g", s, want);
    CHECK_FD("cross-entropy dlogits", fd_error(c.l, CN * CV, d, ce_f, &c));
    /* Scaled and in place. */
    float *l2 = malloc(CN * CV * sizeof *l2);
    memcpy(l2, c.l, CN * CV * sizeof *l2);
    ck_assert_int_eq(be->cross_entropy(be, l2, ce_labels, CN, CV, 0.25f, l2, &s, &n), ILM_OK);
    for (int i = 0; i < CN * CV; i++) ck_assert_float_eq_tol(l2[i], 0.25f * d[i], 1e-7f);
    int32_t bad[CN];
    memcpy(bad, ce_labels, sizeof bad);
    bad[2] = CV;
    ck_assert_int_eq(be->cross_entropy(be, c.l, bad, CN, CV, 1.0f, d, &s, &n), ILM_ERR_RANGE);
    free(c.l); free(d); free(l2);
}
END_TEST

/* ---- determinism -------------------------------------------------------- */

/* The reductions give the same bits with 1 thread and with 3. */
START_TEST(backward_ops_do_not_depend_on_thread_count)
{
    const ilm__backend *be = ilm__backend_cpu();
    enum { T = 300, C = 200, V = 17, H = 4, KV = 2, D = 16 };
    const int32_t cu[4] = { 0, 100, 101, T };
    ilm__rng r;
    ilm__rng_init(&r, 8, 0);
    float *x = randn(&r, T * C, 1), *w = randn(&r, C, 1), *dy = randn(&r, T * C, 1);
    float *q = randn(&r, T * H * D, 1), *k = randn(&r, T * KV * D, 1), *v = randn(&r, T * KV * D, 1);
    float *dout = randn(&r, T * H * D, 1);
    int32_t *ids = malloc(T * sizeof *ids);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)ilm__rng_below(&r, V);
    float *res[2][7];
    for (int run = 0; run < 2; run++) {
        ilm_set_num_threads(run == 0 ? 1 : 3);
        float **o = res[run];
        o[0] = malloc(T * C * sizeof(float));
        o[1] = calloc(C, sizeof(float));
        o[2] = calloc(V * C, sizeof(float));
        o[3] = malloc(T * H * D * sizeof(float));
        o[4] = malloc(T * H * D * sizeof(float));
        o[5] = malloc(T * KV * D * sizeof(float));
        o[6] = malloc(T * KV * D * sizeof(float));
        float *att = malloc(T * H * D * sizeof(float)), *lse = malloc(T * H * sizeof(float));
        ck_assert_int_eq(be->rmsnorm_bwd(be, x, w, dy, o[0], o[1], T, C, 1e-5f), ILM_OK);
        ck_assert_int_eq(be->embedding_bwd(be, o[2], V, C, ids, T, dy), ILM_OK);
        ck_assert_int_eq(be->attention_train(be, q, k, v, att, lse, cu, 3, T, H, KV, D), ILM_OK);
        ck_assert_int_eq(be->attention_train_bwd(be, q, k, v, att, lse, dout, o[4], o[5], o[6], cu,
                                                 3, T, H, KV, D), ILM_OK);
        memcpy(o[3], att, T * H * D * sizeof(float));
        free(att);
        free(lse);
    }
    ilm_set_num_threads(0);
    const size_t sz[7] = { T * C, C, V * C, T * H * D, T * H * D, T * KV * D, T * KV * D };
    for (int i = 0; i < 7; i++) {
        ck_assert_msg(memcmp(res[0][i], res[1][i], sz[i] * sizeof(float)) == 0,
                      "output %d differs between 1 and 3 threads", i);
        free(res[0][i]);
        free(res[1][i]);
    }
    free(x); free(w); free(dy); free(q); free(k); free(v); free(dout); free(ids);
}
END_TEST

Suite *suite_grad(void)
{
    Suite *s = suite_create("grad");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, embedding_gathers_and_scatters);
    tcase_add_test(tc, rmsnorm_backward_matches_finite_differences);
    tcase_add_loop_test(tc, rope_backward_matches_finite_differences, 0, 2);
    tcase_add_test(tc, attention_forward_equals_per_document_attention);
    tcase_add_test(tc, attention_backward_matches_finite_differences);
    tcase_add_test(tc, swiglu_backward_matches_finite_differences);
    tcase_add_test(tc, cross_entropy_matches_definition_and_finite_differences);
    tcase_add_test(tc, backward_ops_do_not_depend_on_thread_count);
    suite_add_tcase(s, tc);
    return s;
}
