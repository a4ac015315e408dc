/*
 * tools/bench_linear.c -- times the CPU backend's linear op
 * on SmolLM2-135M's matrix shapes, for decode (M = 1) and a prompt chunk
 * (M = 128), and prints microseconds per call, GB/s of weight bytes
 * streamed and GFLOP/s.  A development tool, not part of the library: it
 * links the static library to reach the internal kernel.
 *
 *   make build/bench_linear && build/bench_linear [threads] [types...]
 *
 * Types are ggml names (q4_1 q8_0 q4_0 q4_k q6_k f16 ...); the default is
 * SmolLM2's own mix: q4_1 for the layers, q8_0 for the tied output.
 */
#include "backend/backend.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t type_by_name(const char *s)
{
    for (uint32_t t = 0; t < 64; t++)
        if (strcmp(ilm__dtype_name(t), s) == 0) return t;
    return UINT32_MAX;
}

/* Random codes with sane f16 scales (the first bytes of the block for the
 * 32-element formats; the k-quants read any bytes as valid). */
static void *random_weights(uint32_t type, int64_t N, int64_t K, size_t *bytes_out)
{
    uint32_t block, bytes;
    ilm__dtype_info(type, &block, &bytes);
    size_t total = (size_t)N * (size_t)(K / block) * bytes;
    uint8_t *w = malloc(total);
    ilm__rng r;
    ilm__rng_init(&r, 1, type);
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)ilm__rng_u32(&r);
    if (type == ILM__DTYPE_F32)
        for (size_t i = 0; i < total / 4; i++) ((float *)(void *)w)[i] = ilm__rng_normal(&r);
    else if (type == ILM__DTYPE_F16 || type == ILM__DTYPE_BF16)
        for (size_t i = 0; i < total / 2; i++) {
            float v = ilm__rng_normal(&r) * 0.05f;
            uint16_t h = type == ILM__DTYPE_F16 ? ilm__f32_to_f16(v) : ilm__f32_to_bf16(v);
            memcpy(w + 2 * i, &h, 2);
        }
    else if (block == 32)
        for (size_t b = 0; b < total / bytes; b++) {
            uint16_t h = ilm__f32_to_f16(0.01f);
            memcpy(w + b * bytes, &h, 2);
        }
    *bytes_out = total;
    return w;
}

static ilm__backend *g_be;

static ilm_status lin(uint32_t type, const void *w, int64_t N, int64_t K, const float *x,
                      int64_t M, float *y)
{
    return g_be->iface.linear(g_be, type, w, N, K, x, M, y);
}

static void bench(uint32_t type, const char *what, int64_t N, int64_t K, int64_t M)
{
    size_t wbytes;
    void *w = random_weights(type, N, K, &wbytes);
    float *x = malloc((size_t)(M * K) * sizeof(float)), *y = malloc((size_t)(M * N) * sizeof(float));
    ilm__rng r;
    ilm__rng_init(&r, 2, 0);
    for (int64_t i = 0; i < M * K; i++) x[i] = ilm__rng_normal(&r);
    if (lin(type, w, N, K, x, M, y) != ILM_OK) {
        printf("%-6s %-10s failed: %s\n", ilm__dtype_name(type), what, ilm_last_error());
        return;
    }
    /* Best of 5 runs of enough calls to fill about 0.1 s each. */
    double best = INFINITY;
    int reps = 1;
    for (double t0 = ilm__now(); ilm__now() - t0 < 0.05; reps *= 2)
        for (int i = 0; i < reps; i++) (void)lin(type, w, N, K, x, M, y);
    for (int run = 0; run < 5; run++) {
        double t0 = ilm__now();
        for (int i = 0; i < reps; i++) (void)lin(type, w, N, K, x, M, y);
        double t = (ilm__now() - t0) / reps;
        if (t < best) best = t;
    }
    printf("%-6s %-10s %6lld x %-5lld M=%-4lld %10.2f us  %7.2f GB/s  %8.2f GFLOP/s\n",
           ilm__dtype_name(type), what, (long long)N, (long long)K, (long long)M, best * 1e6,
           (double)wbytes / best * 1e-9, 2.0 * (double)(M * N * K) / best * 1e-9);
    free(w);
    free(x);
    free(y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (ilm__backend_cpu_create(threads, -1, &g_be) != ILM_OK) {
        printf("%s\n", ilm_last_error());
        return 1;
    }
    /* BENCH_GEMM_MIN_M=m moves the switch to dequantized panels + BLAS. */
    const char *gm = getenv("BENCH_GEMM_MIN_M");
    if (gm) ilm__backend_cpu_set_gemm_min_m(g_be, atoll(gm));
    printf("linear op on %s, %d threads\n", g_be->device.name, threads);
    static const struct { const char *what; int64_t N, K; } shapes[] = {
        { "q/o", 576, 576 }, { "k/v", 192, 576 }, { "gate/up", 1536, 576 },
        { "down", 576, 1536 }, { "output", 49152, 576 },
    };
    uint32_t types[16];
    int nt = 0;
    for (int i = 2; i < argc && nt < 16; i++) {
        uint32_t t = type_by_name(argv[i]);
        if (t == UINT32_MAX) {
            fprintf(stderr, "unknown type %s\n", argv[i]);
            return 2;
        }
        types[nt++] = t;
    }
    static const int64_t Ms[] = { 1, 128 };
    for (int mi = 0; mi < 2; mi++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            if (nt == 0) {
                uint32_t t = strcmp(shapes[s].what, "output") == 0 ? ILM__DTYPE_Q8_0 : ILM__DTYPE_Q4_1;
                bench(t, shapes[s].what, shapes[s].N, shapes[s].K, Ms[mi]);
            }
            for (int i = 0; i < nt; i++) bench(types[i], shapes[s].what, shapes[s].N, shapes[s].K, Ms[mi]);
        }
    ilm__backend_free(g_be);
    return 0;
}
