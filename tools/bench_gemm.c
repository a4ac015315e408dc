/*
 * tools/bench_gemm.c -- the CPU backend's fp32 GEMM (src/backend/cpu/gemm.c)
 * against OpenBLAS's own threaded sgemm, the peer, in one process: rounds
 * alternate a few calls of each on the same operands, and the figure is
 * the best GFLOP/s of each and their ratio.  A development tool, not part
 * of the library: it links the static library to reach the backend.
 *
 *   make build/bench_gemm && build/bench_gemm [threads] [MxNxK[:tt] ...]
 *
 * ":tn" etc. transposes A and/or B (the training graph's backward shapes).
 * The default shapes: squares 256 ... 2048 and the 27.7M LLaMA's training
 * matmuls (bench train: 2048 tokens, C 512, F 1408).
 */
#include "backend/backend.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads);

typedef struct shape {
    int  M, N, K;
    bool ta, tb;
} shape;

static bool parse_shape(const char *s, shape *o)
{
    char t[3] = "nn";
    int n = sscanf(s, "%dx%dx%d:%2s", &o->M, &o->N, &o->K, t);
    if (n < 3 || o->M <= 0 || o->N <= 0 || o->K <= 0) return false;
    o->ta = t[0] == 't';
    o->tb = t[1] == 't';
    return true;
}

static double run_ours(const ilm__backend *be, const shape *s, const float *A, const float *B,
                       float *C)
{
    double t0 = ilm__now();
    (void)be->iface.gemm_f32(be, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, s->ta ? s->M : s->K, B,
                             s->tb ? s->K : s->N, 0.0f, C, s->N);
    return ilm__now() - t0;
}

static double run_peer(int threads, const shape *s, const float *A, const float *B, float *C)
{
    openblas_set_num_threads(threads);
    double t0 = ilm__now();
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                s->M, s->N, s->K, 1.0f, A, s->ta ? s->M : s->K, B, s->tb ? s->K : s->N, 0.0f, C,
                s->N);
    double dt = ilm__now() - t0;
    openblas_set_num_threads(1);
    return dt;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    static const char *defaults[] = { "256x256x256",      "512x512x512",     "1024x1024x1024",
                                      "2048x2048x2048",   "2048x1536x512",   "2048x2816x512",
                                      "2048x512x1408",    "2048x512x512:nt", "512x1408x2048:tn" };
    const char **names = argc > 2 ? (const char **)argv + 2 : defaults;
    int n_shapes = argc > 2 ? argc - 2 : (int)(sizeof defaults / sizeof *defaults);
    ilm__backend *be = NULL;
    if (threads < 1 || ilm__backend_cpu_create(threads, -1, &be) != ILM_OK) {
        fprintf(stderr, "bench_gemm: cannot create a CPU backend with %d threads\n", threads);
        return 1;
    }
    printf("%-20s %10s %10s %7s\n", "shape", "ours", "openblas", "ratio");
    for (int i = 0; i < n_shapes; i++) {
        shape s;
        if (!parse_shape(names[i], &s)) {
            fprintf(stderr, "bench_gemm: bad shape '%s' (MxNxK[:tt])\n", names[i]);
            return 1;
        }
        size_t na = (size_t)s.M * s.K, nb = (size_t)s.K * s.N, nc = (size_t)s.M * s.N;
        float *A = malloc(na * 4), *B = malloc(nb * 4), *C = calloc(nc, 4);
        ilm__rng r;
        ilm__rng_init(&r, 7, (uint64_t)i);
        for (size_t j = 0; j < na; j++) A[j] = ilm__rng_uniform(&r) - 0.5f;
        for (size_t j = 0; j < nb; j++) B[j] = ilm__rng_uniform(&r) - 0.5f;
        const double flops = 2.0 * s.M * s.N * s.K;
        /* Rounds of 3 calls each, alternating, until each side had 0.6 s. */
        double best_o = 1e30, best_p = 1e30, spent_o = 0, spent_p = 0;
        run_ours(be, &s, A, B, C);
        run_peer(threads, &s, A, B, C);
        while (spent_o < 0.6 || spent_p < 0.6) {
            for (int k = 0; k < 3; k++) {
                double t = run_ours(be, &s, A, B, C);
                spent_o += t;
                if (t < best_o) best_o = t;
            }
            for (int k = 0; k < 3; k++) {
                double t = run_peer(threads, &s, A, B, C);
                spent_p += t;
                if (t < best_p) best_p = t;
            }
        }
        printf("%-20s %10.1f %10.1f %7.2f\n", names[i], flops / best_o * 1e-9,
               flops / best_p * 1e-9, best_p / best_o);
        free(A);
        free(B);
        free(C);
    }
    ilm__backend_free(be);
    return 0;
}
