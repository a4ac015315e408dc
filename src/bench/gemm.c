/* `internlm bench gemm`: fp32 GEMM throughput of the CPU backend against
 * the machine's measured FMA peak. */
#include "backend/backend.h"
#include "bench/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *openblas_get_corename(void);

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct gemm_opts {
    int64_t *sizes;
    size_t   n_sizes;
    int64_t  threads;
    double   min_time;
    int64_t  min_reps;
} gemm_opts;

static ilm_status parse_opts(const char *config, gemm_opts *o)
{
    cJSON *root = NULL;
    const cJSON *sizes = NULL;
    o->threads = ilm__num_threads();
    o->min_time = 1.0;
    o->min_reps = 3;
    ILM__FORWARD(ilm__json_parse(config, "bench gemm config", &root));
    const ilm__jfield fields[] = {
        { "sizes", ILM__J_ARRAY, &sizes, false, 0, 0 },
        { "threads", ILM__J_INT, &o->threads, false, 1, 4096 },
        { "min_time", ILM__J_NUMBER, &o->min_time, false, 0, 3600 },
        { "min_reps", ILM__J_INT, &o->min_reps, false, 1, 1000000 },
    };
    ilm_status st = ilm__json_fields(root, "", fields, sizeof fields / sizeof *fields);
    if (st == ILM_OK && sizes) {
        st = ilm__json_int_array(sizes, "sizes", 1, 16384, &o->sizes, &o->n_sizes);
        if (st == ILM_OK && o->n_sizes == 0)
            st = ilm__error(ILM_ERR_CONFIG, "config: 'sizes' must not be empty");
    } else if (st == ILM_OK) {
        static const int64_t defaults[] = { 256, 512, 1024, 2048 };
        o->n_sizes = 4;
        o->sizes = ilm__malloc(sizeof defaults);
        if (!o->sizes) st = ilm__error(ILM_ERR_NOMEM, "bench gemm: out of memory");
        else memcpy(o->sizes, defaults, sizeof defaults);
    }
    cJSON_Delete(root);
    if (st != ILM_OK) {
        ilm__free(o->sizes);
        o->sizes = NULL;
    }
    return st;
}

/* Times repeated n×n×n GEMMs; fills best and median GFLOP/s. */
static ilm_status time_size(const ilm__backend *be, int n, const gemm_opts *o,
                            ilm_progress_fn progress, void *user,
                            cJSON *results)
{
    size_t nn = (size_t)n * (size_t)n;
    float *A = ilm__malloc(nn * sizeof *A), *B = ilm__malloc(nn * sizeof *B),
          *C = ilm__calloc(nn, sizeof *C);
    size_t cap = 64, reps = 0;
    double *g = ilm__malloc(cap * sizeof *g);
    ilm_status st = ILM_OK;
    if (!A || !B || !C || !g) {
        st = ilm__error(ILM_ERR_NOMEM, "bench gemm: cannot allocate %dx%d matrices", n, n);
        goto out;
    }
    ilm__rng rng;
    ilm__rng_init(&rng, 1234, (uint64_t)n);
    for (size_t i = 0; i < nn; i++) {
        A[i] = ilm__rng_uniform(&rng) - 0.5f;
        B[i] = ilm__rng_uniform(&rng) - 0.5f;
    }
    char stage[64];
    snprintf(stage, sizeof stage, "gemm %d", n);
    const double flops = 2.0 * (double)n * n * n;
    /* One untimed call warms caches, page tables and the thread team. */
    st = be->iface.gemm_f32(be, false, false, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    double spent = 0;
    while (st == ILM_OK && (spent < o->min_time || reps < (size_t)o->min_reps)) {
        if (progress && progress(user, stage, reps, (uint64_t)o->min_reps)) {
            st = ilm__error(ILM_ERR_CANCELLED, "bench gemm: cancelled at n=%d", n);
            break;
        }
        double t0 = ilm__now();
        st = be->iface.gemm_f32(be, false, false, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = ilm__now() - t0;
        spent += dt;
        if (reps == cap) {
            double *ng = ilm__realloc(g, 2 * cap * sizeof *g);
            if (!ng) { st = ilm__error(ILM_ERR_NOMEM, "bench gemm: out of memory"); break; }
            g = ng;
            cap *= 2;
        }
        g[reps++] = flops / dt * 1e-9;
    }
    if (st == ILM_OK) {
        qsort(g, reps, sizeof *g, cmp_double);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "n", n);
        cJSON_AddNumberToObject(r, "reps", (double)reps);
        cJSON_AddNumberToObject(r, "best_gflops", g[reps - 1]);
        cJSON_AddNumberToObject(r, "median_gflops", g[reps / 2]);
        cJSON_AddItemToArray(results, r);
    }
out:
    ilm__free(A);
    ilm__free(B);
    ilm__free(C);
    ilm__free(g);
    return st;
}

ilm_status ilm_bench_gemm(const char *config, ilm_progress_fn progress, void *user,
                          char **result)
{
    ILM__RETURN_IF(!result, ILM_ERR_INVALID_ARG, "ilm_bench_gemm: result is NULL");
    *result = NULL;
    gemm_opts o = { 0 };
    ILM__FORWARD(parse_opts(config, &o));

    ilm__backend *be = NULL;
    ILM__FORWARD(ilm__backend_cpu_create((int)o.threads, -1, &be));
    const char *isa = "";
    double peak = ilm__bench_peak_gflops((int)o.threads, &isa);

    cJSON *root = cJSON_CreateObject(), *results = cJSON_CreateArray();
    ilm_status st = ILM_OK;
    for (size_t i = 0; i < o.n_sizes && st == ILM_OK; i++)
        st = time_size(be, (int)o.sizes[i], &o, progress, user, results);
    /* The peak is measured again after the GEMMs and the better figure
     * kept, so a busy moment during one measurement does not inflate the
     * fraction. */
    if (st == ILM_OK) {
        const char *isa2 = "";
        double peak2 = ilm__bench_peak_gflops((int)o.threads, &isa2);
        if (peak2 > peak) {
            peak = peak2;
            isa = isa2;
        }
    }
    ilm__backend_free(be);

    if (st == ILM_OK) {
        for (cJSON *r = results->child; r; r = r->next)
            cJSON_AddNumberToObject(r, "fraction_of_peak",
                                    cJSON_GetObjectItem(r, "best_gflops")->valuedouble / peak);
        cJSON_AddNumberToObject(root, "threads", (double)o.threads);
        cJSON_AddNumberToObject(root, "peak_gflops", peak);
        cJSON_AddStringToObject(root, "peak_isa", isa);
        cJSON_AddStringToObject(root, "blas", openblas_get_corename());
        cJSON_AddItemToObject(root, "results", results);
        results = NULL;
        st = ilm__json_print(root, result);
    }
    cJSON_Delete(results);
    cJSON_Delete(root);
    ilm__free(o.sizes);
    return st;
}
