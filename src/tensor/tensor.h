/*
 * src/tensor/tensor.h -- element conversions, the reference dequantization
 * of ggml's block formats and the linear kernel (y = x W^T with W stored in
 * any of those formats) that the CPU backend runs.
 *
 * Internal: nothing here is part of the ABI.
 */
#ifndef ILM_TENSOR_TENSOR_H
#define ILM_TENSOR_TENSOR_H

#include "core/internal.h"
#include "tensor/dtype.h"

/* ---- scalar conversions (quants.c) -------------------------------------- */

/* IEEE binary16 <-> binary32.  f32 -> f16 rounds to nearest, ties to even,
 * overflows to infinity and keeps NaN a NaN (numpy's astype(float16)
 * semantics, bit for bit).  f16 -> f32 is exact. */
float    ilm__f16_to_f32(uint16_t h);
uint16_t ilm__f32_to_f16(float f);

/* bfloat16 (the top half of a binary32).  f32 -> bf16 rounds to nearest,
 * ties to even, and turns every NaN into 0x7fc0, as torch does. */
float    ilm__bf16_to_f32(uint16_t h);
uint16_t ilm__f32_to_bf16(float f);

/* ---- reference dequantization (quants.c) -------------------------------- */

/* Expands n elements of type `type` at src into dst[n].  Bit-exact with
 * gguf.quants.dequantize (PyPI `gguf`): each value is computed in float32
 * with the same operations in the same order as its numpy code.  Types:
 * f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k,
 * q6_k; others are ILM_ERR_UNSUPPORTED.  n must be a multiple of the
 * type's block size (ILM_ERR_INVALID_ARG otherwise). */
ilm_status ilm__dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/* ---- the linear kernel (linear.c) --------------------------------------- */

/* y[M,N] = x[M,K] W[N,K]^T, fp32 out.  W is row-major: row n is K/block
 * blocks of type `wtype` (the same row bytes as a GGUF tensor whose dims
 * are [K, N]); K must be a multiple of the block size.
 *
 * Quantized W: each row of x is first quantized to 8-bit blocks (absmax
 * scale, round to nearest even), and each output is a sum over blocks of
 * exact integer dot products times the two scales.  The result therefore
 * differs from the exact x W^T by at most, per output,
 *     sum_k |W[n,k]| * amax(x block of k) / 254
 * (half a quantization step of x) plus float32 rounding of the per-block
 * terms, about (K/block + 4) * 2^-24 * sum_k |W[n,k] x[k]|.  When M is
 * large enough to pay for it, panels of W are dequantized instead and
 * multiplied in fp32 by the BLAS (no activation rounding at all).
 * f32, f16 and bf16 W are fp32 dot products (no activation rounding).
 *
 * Every output element is computed by one thread in a fixed order, so the
 * result does not depend on the thread count.  Decode-sized calls (small
 * M) allocate nothing after the first call on a thread: the activation
 * scratch is per thread and grows to the largest M*K seen. */
ilm_status ilm__linear(uint32_t wtype, const void *W, int64_t N, int64_t K, const float *x,
                       int64_t M, float *y);

/* Which kernels ilm__linear uses: ILM__ISA_AUTO (the best the CPU has, the
 * default), ILM__ISA_SCALAR (the portable reference) or ILM__ISA_AVX2
 * (AVX2+FMA+F16C; if the CPU lacks it, the scalar kernels run).  Set by
 * tests and benchmarks to compare the paths; not thread-safe against
 * concurrent ilm__linear calls. */
enum { ILM__ISA_AUTO = 0, ILM__ISA_SCALAR = 1, ILM__ISA_AVX2 = 2 };
void ilm__linear_set_isa(int isa);

/* The smallest M at which ilm__linear switches a quantized or half W to
 * dequantized panels and the BLAS (for tests of both paths; <= 0 restores
 * the default). */
void ilm__linear_set_gemm_min_m(int64_t m);

#endif /* ILM_TENSOR_TENSOR_H */
