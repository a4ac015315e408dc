/*
 * The machine's measured fp32 peak: every thread runs independent chains of
 * fused multiply-adds, enough of them to cover the FMA latency on every
 * FMA port, so the loop is bound only by FMA throughput.  The result is the
 * honest ceiling a GEMM on this machine can approach (DESIGN.md §8), taken
 * as the best over the vector widths the CPU supports.
 */
#include "bench/internal.h"

#include <math.h>
#include <stdio.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ILM__X86 1
#endif

/* Each kernel runs `iters` iterations of `chains` dependent FMA chains and
 * returns a value derived from them, so the compiler cannot drop the work.
 * Flops per iteration: chains * lanes * 2. */
typedef float (*fma_kernel)(long iters);

#ifdef ILM__X86
#define FMA_CHAINS 12
__attribute__((target("avx2,fma"))) static float fma_avx2(long iters)
{
    __m256 acc[FMA_CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
    for (int c = 0; c < FMA_CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int c = 0; c < FMA_CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    }
    __m256 s = acc[0];
    for (int c = 1; c < FMA_CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float fma_avx512(long iters)
{
    __m512 acc[FMA_CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
    for (int c = 0; c < FMA_CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int c = 0; c < FMA_CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    }
    __m512 s = acc[0];
    for (int c = 1; c < FMA_CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}
#endif

static float fma_scalar(long iters)
{
    float acc[8];
    for (int c = 0; c < 8; c++) acc[c] = (float)c;
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < 8; c++) acc[c] = fmaf(acc[c], 0.999999f, 1e-6f);
    return acc[0] + acc[7];
}

/* Runs `k` on `threads` threads at once; returns GFLOP/s of the slowest. */
static double run_parallel(fma_kernel k, long iters, double flops_per_iter, int threads)
{
    volatile float sink = 0;
    double t0 = ilm__now();
#pragma omp parallel num_threads(threads)
    {
        float r = k(iters);
#pragma omp atomic
        sink += r;
    }
    double dt = ilm__now() - t0;
    (void)sink;
    return (double)threads * (double)iters * flops_per_iter / dt * 1e-9;
}

/* Best of several ~0.2 s runs after calibrating the iteration count. */
static double measure(fma_kernel k, double flops_per_iter, int threads)
{
    long iters = 1 << 16;
    for (;;) {
        double t0 = ilm__now();
        k(iters);
        if (ilm__now() - t0 > 0.05 || iters > (1L << 40)) break;
        iters *= 2;
    }
    iters *= 4; /* about 0.2 s */
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double g = run_parallel(k, iters, flops_per_iter, threads);
        if (g > best) best = g;
    }
    return best;
}

double ilm__bench_peak_gflops(int threads, const char **isa)
{
    double best = measure(fma_scalar, 8 * 2, threads);
    *isa = "scalar";
#ifdef ILM__X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        double g = measure(fma_avx2, FMA_CHAINS * 8 * 2, threads);
        if (g > best) { best = g; *isa = "avx2"; }
    }
    if (__builtin_cpu_supports("avx512f")) {
        double g = measure(fma_avx512, FMA_CHAINS * 16 * 2, threads);
        if (g > best) { best = g; *isa = "avx512"; }
    }
#endif
    return best;
}
