/* The backend op table (CPU reference ops), the GEMM benchmark and the
 * CUDA device query. */
#include "tests.h"
#include "backend/backend.h"

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
