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

/* Quantizes n float32 values into dst in `type`: F32, F16, BF16, and the
 * block formats Q8_0, Q4_0 and Q4_1 as ggml's reference quantizers do them
 * (gguf.quants.quantize's bytes: scales as float16, roundf / trunc in
 * float32).  ILM_ERR_UNSUPPORTED for other types, ILM_ERR_INVALID_ARG for
 * n not a multiple of the block. */
ilm_status ilm__quantize(uint32_t type, const float *src, void *dst, int64_t n);

#endif /* ILM_TENSOR_TENSOR_H */
