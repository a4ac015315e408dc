/* src/train/optim.c: AdamW + clip_grad_norm_ + the warmup/cosine schedule
 * replayed against torch (fixtures from tools/reference/optim_fixtures.py),
 * the schedule's shapes, range splitting, the thread independence of the
 * gradient norm, and configs that must be refused. */
#include "tests.h"
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/train/"

/* The gap sentinel: AdamW must leave alignment gaps exactly as they were. */
#define GAP 1234.5f

static void assert_error_mentions(const char *what)
{
    ck_assert_msg(strstr(ilm_last_error(), what) != NULL, "message '%s' does not mention '%s'",
                  ilm_last_error(), what);
}

/* A layout of named tensors laid out as ilm__params_layout lays them out
 * (each starting at a multiple of ILM__PARAM_ALIGN). */
static void layout_add(ilm__params *ps, const char *name, int64_t rows, int64_t cols, int ndim,
                       bool decay)
{
    ps->p = realloc(ps->p, (ps->n + 1) * sizeof *ps->p);
    ilm__param *p = &ps->p[ps->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->numel = (size_t)(rows * cols);
    p->offset = ps->total;
    p->decay = decay;
    ps->total += (p->numel + ILM__PARAM_ALIGN - 1) / ILM__PARAM_ALIGN * ILM__PARAM_ALIGN;
}

static bool in_tensor(const ilm__params *ps, size_t i)
{
    for (size_t t = 0; t < ps->n; t++)
        if (i >= ps->p[t].offset && i < ps->p[t].offset + ps->p[t].numel) return true;
    return false;
}

/* Scatters n packed values (tensors back to back) into a slab. */
static void scatter(const ilm__params *ps, const float *packed, float *slab)
{
    for (size_t t = 0, k = 0; t < ps->n; t++)
        for (size_t j = 0; j < ps->p[t].numel; j++) slab[ps->p[t].offset + j] = packed[k++];
}

/* ---- the torch reference ------------------------------------------------------ */

/* Tolerances.  lr: both sides evaluate the same double formula (torch via
 * LambdaLR's base_lr * f / base_lr), so 1e-12 relative.  Norm: torch sums
 * float32 squares in float32, we in double: a few float ulps, 1e-6
 * relative.  Parameters and moments: the same float32 operations as torch's
 * single-tensor AdamW, but torch's vectorised CPU kernels may fuse
 * multiply-adds (lerp) and its clip coefficient comes from its float32
 * norm, so results differ by an ulp or two per step.  Those are ulps of the
 * tensor's scale, not of each value: a parameter is p + update with |p| up
 * to ~1.5, and a moment a running sum of terms of the gradients' size, so a
 * value that passes near zero carries an absolute error of the scale's ulp
 * (measured: 1.2e-7 for parameters, 3.7e-9 for exp_avg, 4.7e-10 for
 * exp_avg_sq, i.e. under 1e-7 of each tensor's largest magnitude).  Hence
 * |ours - torch| <= 1e-6 * (|torch| + max |torch| over the tensor), about
 * ten times the errors seen.  One wrong term (bias correction, decay on the
 * wrong tensor, no clipping) moves values by 1e-4 relative or more; the
 * test after this one checks that it does. */
#define TOL_REL 1e-6

static void check_close(const char *what, int step, const ilm__params *ps, const float *slab,
                        const float *want_packed, double *max_rel)
{
    for (size_t t = 0, k = 0; t < ps->n; t++) {
        double scale = 0;
        for (size_t j = 0; j < ps->p[t].numel; j++) scale = fmax(scale, fabs(want_packed[k + j]));
        for (size_t j = 0; j < ps->p[t].numel; j++, k++) {
            double got = slab[ps->p[t].offset + j], want = want_packed[k];
            double err = fabs(got - want);
            ck_assert_msg(err <= TOL_REL * (fabs(want) + scale),
                          "step %d: %s %s[%zu] = %.9g, torch %.9g", step, what, ps->p[t].name, j,
                          got, want);
            if (err / scale > *max_rel) *max_rel = err / scale;
        }
    }
}

START_TEST(adamw_matches_torch)
{
    cJSON *meta = test_read_json(FIX "adamw_ref.json");
    size_t nbytes = 0;
    float *blob = (float *)test_slurp(FIX "adamw_ref.f32", &nbytes);
    ilm__optim_opts o;
    ck_assert_msg(ilm__optim_opts_parse(cJSON_GetObjectItem(meta, "optimizer"), "optimizer", &o) ==
                      ILM_OK, "%s", ilm_last_error());
    ilm__params ps = { 0 };
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(meta, "tensors")) {
        const cJSON *sh = cJSON_GetObjectItem(t, "shape");
        int nd = cJSON_GetArraySize(sh);
        int64_t rows = nd == 2 ? cJSON_GetArrayItem(sh, 0)->valueint : 1;
        int64_t cols = cJSON_GetArrayItem(sh, nd - 1)->valueint;
        layout_add(&ps, cJSON_GetObjectItem(t, "name")->valuestring, rows, cols, nd,
                   cJSON_IsTrue(cJSON_GetObjectItem(t, "decay")));
    }
    size_t N = 0;
    for (size_t i = 0; i < ps.n; i++) N += ps.p[i].numel;
    ck_assert_uint_gt(ps.total, N); /* the layout has gaps to check */
    const int steps = cJSON_GetObjectItem(meta, "steps")->valueint;
    ck_assert_uint_eq(nbytes, (1 + 2 * (size_t)steps + 2) * N * sizeof(float));

    float *p = malloc(ps.total * sizeof *p), *g = calloc(ps.total, sizeof *g);
    float *m = malloc(ps.total * sizeof *m), *v = malloc(ps.total * sizeof *v);
    for (size_t i = 0; i < ps.total; i++) p[i] = m[i] = v[i] = GAP;
    for (size_t i = 0; i < ps.total; i++)
        if (in_tensor(&ps, i)) m[i] = v[i] = 0;
    scatter(&ps, blob, p);
    const cJSON *lrs = cJSON_GetObjectItem(meta, "lr"), *norms = cJSON_GetObjectItem(meta, "grad_norm");
    double max_rel = 0;
    int clipped = 0;
    for (int s = 1; s <= steps; s++) {
        scatter(&ps, blob + (size_t)(2 * s - 1) * N, g);
        double lr = ilm__optim_lr(&o, s), want_lr = cJSON_GetArrayItem(lrs, s - 1)->valuedouble;
        ck_assert_msg(fabs(lr - want_lr) <= 1e-12 * want_lr, "step %d: lr %.17g, torch %.17g", s, lr,
                      want_lr);
        double norm = sqrt(ilm__optim_sqnorm(test_cpu(), g, ps.total));
        double want_norm = cJSON_GetArrayItem(norms, s - 1)->valuedouble;
        ck_assert_msg(fabs(norm - want_norm) <= 1e-6 * want_norm, "step %d: norm %.9g, torch %.9g", s,
                      norm, want_norm);
        float c = ilm__optim_clip_coef(&o, norm);
        clipped += c < 1;
        ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, ps.total, s, lr, c, p, g, m, v), ILM_OK);
        check_close("param", s, &ps, p, blob + (size_t)(2 * s) * N, &max_rel);
    }
    ck_assert_int_eq(clipped, 2); /* the fixture clips steps 2 and 6 */
    check_close("exp_avg", steps, &ps, m, blob + (size_t)(2 * steps + 1) * N, &max_rel);
    check_close("exp_avg_sq", steps, &ps, v, blob + (size_t)(2 * steps + 2) * N, &max_rel);
    for (size_t i = 0; i < ps.total; i++)
        if (!in_tensor(&ps, i))
            ck_assert_msg(p[i] == GAP && m[i] == GAP && v[i] == GAP, "gap element %zu was written", i);
    /* The parameters moved far more than the tolerance: the check has teeth. */
    double moved = 0;
    for (size_t i = 0; i < N; i++)
        moved = fmax(moved, fabs(blob[(size_t)(2 * steps) * N + i] - blob[i]));
    ck_assert_msg(moved > 1e-2, "parameters moved only %g", moved);
    printf("adamw vs torch: max difference %.3g of a tensor's scale over %d steps\n", max_rel, steps);
    free(p);
    free(g);
    free(m);
    free(v);
    free(ps.p);
    free(blob);
    cJSON_Delete(meta);
}
END_TEST

/* Without the clip coefficient, or with decay on every tensor, the replay
 * leaves the tolerance: the reference test can fail. */
START_TEST(adamw_reference_detects_mistakes)
{
    cJSON *meta = test_read_json(FIX "adamw_ref.json");
    float *blob = (float *)test_slurp(FIX "adamw_ref.f32", NULL);
    ilm__optim_opts o;
    ck_assert_int_eq(ilm__optim_opts_parse(cJSON_GetObjectItem(meta, "optimizer"), "", &o), ILM_OK);
    for (int variant = 0; variant < 2; variant++) {
        ilm__params ps = { 0 };
        layout_add(&ps, "weight", 6, 7, 2, true);
        layout_add(&ps, "norm", 1, 7, 1, variant == 1);
        layout_add(&ps, "embedding", 11, 7, 2, variant == 1);
        const size_t N = 42 + 7 + 77;
        float *p = calloc(ps.total, 4), *g = calloc(ps.total, 4), *m = calloc(ps.total, 4),
              *v = calloc(ps.total, 4);
        scatter(&ps, blob, p);
        double worst = 0;
        for (int s = 1; s <= 10; s++) {
            scatter(&ps, blob + (size_t)(2 * s - 1) * N, g);
            float c = variant == 0 ? 1.0f : ilm__optim_clip_coef(&o, sqrt(ilm__optim_sqnorm(test_cpu(), g, ps.total)));
            ilm__adamw_step(test_cpu(), &o, &ps, 0, ps.total, s, ilm__optim_lr(&o, s), c, p, g, m, v);
            for (size_t t = 0, k = 0; t < ps.n; t++)
                for (size_t j = 0; j < ps.p[t].numel; j++, k++) {
                    double want = blob[(size_t)(2 * s) * N + k];
                    worst = fmax(worst, fabs(p[ps.p[t].offset + j] - want) / (fabs(want) + 1e-3));
                }
        }
        ck_assert_msg(worst > 100 * TOL_REL, "variant %d stays within %g", variant, worst);
        free(p);
        free(g);
        free(m);
        free(v);
        free(ps.p);
    }
    free(blob);
    cJSON_Delete(meta);
}
END_TEST

/* ---- the schedule -------------------------------------------------------------- */

static ilm__optim_opts opts_from(const char *json)
{
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ilm__optim_opts o;
    ck_assert_msg(ilm__optim_opts_parse(j, "", &o) == ILM_OK, "%s: %s", json, ilm_last_error());
    cJSON_Delete(j);
    return o;
}

#define ASSERT_NEAR(a, b) ck_assert_msg(fabs((a) - (b)) <= 1e-15 + 1e-12 * fabs(b), "%.17g != %.17g", (a), (b))

START_TEST(schedule_shapes)
{
    ilm__optim_opts o = opts_from("{\"lr\": 1, \"min_lr\": 0.1, \"warmup_steps\": 4, \"total_steps\": 14}");
    ck_assert_int_eq(o.schedule, ILM__LR_COSINE);
    ASSERT_NEAR(ilm__optim_lr(&o, -3), 0.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 0), 0.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 1), 0.25);
    ASSERT_NEAR(ilm__optim_lr(&o, 3), 0.75);
    ASSERT_NEAR(ilm__optim_lr(&o, 4), 1.0);            /* the peak, at the end of warmup */
    ASSERT_NEAR(ilm__optim_lr(&o, 9), 0.1 + 0.9 * 0.5); /* halfway: cos(pi/2) = 0 */
    ASSERT_NEAR(ilm__optim_lr(&o, 14), 0.1);
    ASSERT_NEAR(ilm__optim_lr(&o, 1000), 0.1);
    for (int s = 5; s <= 14; s++) ck_assert(ilm__optim_lr(&o, s) < ilm__optim_lr(&o, s - 1));

    o = opts_from("{\"lr\": 2, \"min_lr\": 0.5, \"warmup_steps\": 2, \"total_steps\": 12, \"schedule\": \"linear\"}");
    ASSERT_NEAR(ilm__optim_lr(&o, 1), 1.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 2), 2.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 7), 2.0 - 1.5 * 0.5);
    ASSERT_NEAR(ilm__optim_lr(&o, 11), 2.0 - 1.5 * 0.9);
    ASSERT_NEAR(ilm__optim_lr(&o, 12), 0.5);
    ASSERT_NEAR(ilm__optim_lr(&o, 50), 0.5);

    o = opts_from("{\"lr\": 3, \"warmup_steps\": 3, \"schedule\": \"constant\", \"total_steps\": 2}");
    ASSERT_NEAR(ilm__optim_lr(&o, 1), 1.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 3), 3.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 4), 3.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 1000000), 3.0);

    /* No warmup: the first step already decays from the peak. */
    o = opts_from("{\"lr\": 1, \"total_steps\": 4}");
    ASSERT_NEAR(ilm__optim_lr(&o, 0), 1.0);
    ASSERT_NEAR(ilm__optim_lr(&o, 2), 0.5);
    ASSERT_NEAR(ilm__optim_lr(&o, 4), 0.0);
}
END_TEST

START_TEST(opts_defaults_and_refusals)
{
    ilm__optim_opts o;
    ck_assert_int_eq(ilm__optim_opts_parse(NULL, "", &o), ILM_OK);
    ck_assert(o.lr == 3e-4 && o.beta1 == 0.9 && o.beta2 == 0.95 && o.eps == 1e-8 &&
              o.weight_decay == 0.1 && o.clip_norm == 1.0 && o.schedule == ILM__LR_COSINE);
    static const struct { const char *json, *mention; } bad[] = {
        { "{\"lrr\": 1}", "train.optimizer.lrr" },
        { "{\"schedule\": \"cosin\"}", "schedule" },
        { "{\"schedule\": 3}", "schedule" },
        { "{\"lr\": 0}", "lr" },
        { "{\"lr\": -1}", "lr" },
        { "{\"lr\": \"1e-3\"}", "lr" },
        { "{\"lr\": 1e-3, \"min_lr\": 1e-2}", "min_lr" },
        { "{\"warmup_steps\": 10, \"total_steps\": 10}", "total_steps" },
        { "{\"warmup_steps\": 2.5}", "warmup_steps" },
        { "{\"beta1\": 1}", "beta1" },
        { "{\"beta2\": 1.5}", "beta2" },
        { "{\"eps\": 0}", "eps" },
        { "{\"weight_decay\": -0.1}", "weight_decay" },
        { "{\"clip_norm\": -1}", "clip_norm" },
        { "[1]", "train.optimizer" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *j = cJSON_Parse(bad[i].json);
        ck_assert_ptr_nonnull(j);
        ck_assert_msg(ilm__optim_opts_parse(j, "train.optimizer", &o) == ILM_ERR_CONFIG, "%s accepted",
                      bad[i].json);
        assert_error_mentions(bad[i].mention);
        cJSON_Delete(j);
    }
}
END_TEST

/* ---- ranges, threads, non-finite gradients --------------------------------------- */

static void fill(float *x, size_t n, uint64_t seed, float std)
{
    ilm__rng r;
    ilm__rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = std * ilm__rng_normal(&r);
}

START_TEST(adamw_range_split_is_bit_identical)
{
    ilm__params ps = { 0 };
    layout_add(&ps, "a", 37, 29, 2, true);
    layout_add(&ps, "n", 1, 29, 1, false);
    layout_add(&ps, "b", 101, 53, 2, true);
    layout_add(&ps, "e", 7, 3, 2, false);
    const size_t T = ps.total;
    ilm__optim_opts o = opts_from("{\"lr\": 0.01, \"weight_decay\": 0.3}");
    float *p1 = malloc(T * 4), *m1 = calloc(T, 4), *v1 = calloc(T, 4), *g = malloc(T * 4);
    float *p2 = malloc(T * 4), *m2 = calloc(T, 4), *v2 = calloc(T, 4);
    fill(p1, T, 1, 1.0f);
    memcpy(p2, p1, T * 4);
    /* Split points: in the middle of a tensor, inside a gap, at a tensor
     * start, and an empty piece. */
    const size_t cuts[] = { 0, 500, 500, ps.p[1].offset - 3, ps.p[2].offset, ps.p[2].offset + 1234, T };
    for (int s = 1; s <= 3; s++) {
        fill(g, T, 100 + (uint64_t)s, 0.1f);
        ilm_set_num_threads(2);
        ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, T, s, 0.01, 0.7f, p1, g, m1, v1), ILM_OK);
        for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++) {
            size_t a = cuts[c], b = cuts[c + 1], n = b - a;
            ilm_set_num_threads((int)c % 3 + 1);
            /* Shard-local buffers, as a ZeRO rank holds them. */
            float *lp = malloc(n * 4 + 4), *lm = malloc(n * 4 + 4), *lv = malloc(n * 4 + 4);
            memcpy(lp, p2 + a, n * 4);
            memcpy(lm, m2 + a, n * 4);
            memcpy(lv, v2 + a, n * 4);
            ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, a, b, s, 0.01, 0.7f, lp, g + a, lm, lv), ILM_OK);
            memcpy(p2 + a, lp, n * 4);
            memcpy(m2 + a, lm, n * 4);
            memcpy(v2 + a, lv, n * 4);
            free(lp);
            free(lm);
            free(lv);
        }
        ck_assert(memcmp(p1, p2, T * 4) == 0);
        ck_assert(memcmp(m1, m2, T * 4) == 0);
        ck_assert(memcmp(v1, v2, T * 4) == 0);
    }
    /* Decay only where the layout says so: a zero gradient step with decay
     * on shrinks "a" and leaves "n" (m, v are zero, so Adam adds nothing). */
    float *p3 = malloc(T * 4), *z = calloc(T, 4), *m3 = calloc(T, 4), *v3 = calloc(T, 4);
    fill(p3, T, 7, 1.0f);
    float a0 = p3[0], n0 = p3[ps.p[1].offset];
    ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, T, 1, 0.5, 1.0f, p3, z, m3, v3), ILM_OK);
    ck_assert_float_eq(p3[0], a0 * (float)(1 - 0.5 * 0.3));
    ck_assert_float_eq(p3[ps.p[1].offset], n0);
    /* Bad arguments. */
    ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, T, 0, 0.01, 1, p1, g, m1, v1), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, T + 1, 1, 0.01, 1, p1, g, m1, v1), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 9, 8, 1, 0.01, 1, p1, g, m1, v1), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__adamw_step(test_cpu(), &o, &ps, 0, T, 1, 0.01, 1, NULL, g, m1, v1), ILM_ERR_INVALID_ARG);
    ilm_set_num_threads(0);
    free(p1), free(m1), free(v1), free(g), free(p2), free(m2), free(v2);
    free(p3), free(z), free(m3), free(v3);
    free(ps.p);
}
END_TEST

START_TEST(sqnorm_is_thread_independent)
{
    const size_t n = 70 * ILM__SQNORM_CHUNK + 517; /* not a whole number of chunks */
    float *x = malloc(n * sizeof *x);
    fill(x, n, 3, 0.01f);
    double ref = 0, sums[4];
    long double exact = 0;
    for (size_t i = 0; i < n; i++) exact += (long double)x[i] * x[i];
    for (int t = 1; t <= 4; t++) {
        ilm_set_num_threads(t);
        sums[t - 1] = ilm__optim_sqnorm(test_cpu(), x, n);
    }
    ilm_set_num_threads(0);
    ref = sums[0];
    for (int t = 1; t < 4; t++)
        ck_assert_msg(memcmp(&sums[t], &ref, sizeof ref) == 0, "%d threads: %.17g != %.17g", t + 1,
                      sums[t], ref);
    ck_assert_msg(fabsl(ref - exact) <= 1e-13L * exact, "%.17g vs %.17Lg", ref, exact);
    ck_assert(ilm__optim_sqnorm(test_cpu(), x, 0) == 0);
    ck_assert(ilm__optim_sqnorm(test_cpu(), x, 1) == (double)x[0] * x[0]);

    /* Non-finite gradients stay visible, whichever chunk holds them. */
    x[n - 1] = INFINITY;
    ck_assert(isinf(ilm__optim_sqnorm(test_cpu(), x, n)));
    x[n - 1] = 0;
    x[12345] = NAN;
    ck_assert(isnan(ilm__optim_sqnorm(test_cpu(), x, n)));
    x[12345] = 3e38f; /* finite: its square fits a double */
    ck_assert(isfinite(ilm__optim_sqnorm(test_cpu(), x, n)));
    free(x);

    ilm__optim_opts o;
    ilm__optim_opts_default(&o);
    ck_assert_float_eq(ilm__optim_clip_coef(&o, 0.5), 1.0f);
    ck_assert_float_eq(ilm__optim_clip_coef(&o, 4.0), (float)(1.0 / (4.0 + 1e-6)));
    ck_assert_float_eq(ilm__optim_clip_coef(&o, INFINITY), 0.0f);
    ck_assert(isnan(ilm__optim_clip_coef(&o, NAN)));
    o.clip_norm = 0; /* off */
    ck_assert_float_eq(ilm__optim_clip_coef(&o, 1e30), 1.0f);
}
END_TEST

Suite *suite_optim(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, adamw_matches_torch);
    tcase_add_test(tc, adamw_reference_detects_mistakes);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedule");
    tcase_add_test(tc, schedule_shapes);
    tcase_add_test(tc, opts_defaults_and_refusals);
    suite_add_tcase(s, tc);
    tc = tcase_create("slabs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, adamw_range_split_is_bit_identical);
    tcase_add_test(tc, sqnorm_is_thread_independent);
    suite_add_tcase(s, tc);
    return s;
}
