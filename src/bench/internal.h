/*
 * src/bench/ -- the benchmark harness behind `internlm bench` and
 * `make bench`.  Every benchmark returns JSON with absolute figures and the
 * ratio against a peer measured in the same run (DESIGN.md §8); for GEMM the
 * peer is the machine's own measured fp32 FMA peak.
 */
#ifndef ILM_BENCH_INTERNAL_H
#define ILM_BENCH_INTERNAL_H

#include "core/internal.h"

/* Measured fp32 peak of `threads` threads running FMA chains at once, in
 * GFLOP/s; *isa names the vector width that reached it. */
double ilm__bench_peak_gflops(int threads, const char **isa);

#endif
