/*
 * src/backend/cpu/linear.h -- what the linear kernel's driver (linear.c) shares
 * with its instruction-set specific kernels (linear_avx2.c): the quantized
 * activation blocks and the dot-product signatures.
 */
#ifndef ILM_BACKEND_CPU_LINEAR_H
#define ILM_BACKEND_CPU_LINEAR_H

#include "tensor/tensor.h"

/* An activation block of 32 for the 32-element weight formats (q4_0 ..
 * q8_0): x ~= d * q, q = round(x * 127 / amax), and the integer sum of q,
 * which the formats with a zero point or offset need (q4_0's -8, q4_1's
 * min).  40 bytes, so consecutive blocks stay 8-byte aligned. */
typedef struct ilm__q8a {
    float   d;
    int32_t sum;
    int8_t  q[32];
} ilm__q8a;

/* An activation block of 256 for the k-quants, with the sums of q over
 * each 16 elements (the k-quants' sub-block mins and offsets use them). */
typedef struct ilm__q8k {
    float   d;
    int16_t bsums[16];
    int8_t  q[256];
} ilm__q8k;

/* The dot product of one weight row (nb blocks at w) with one activation
 * row (nb blocks of ilm__q8a / ilm__q8k, or nb floats for f32/f16/bf16
 * weights, whose "blocks" are single elements). */
typedef float (*ilm__dot_fn)(int64_t nb, const uint8_t *w, const void *act);

/* The same for four activation rows act_row bytes apart at once (the
 * weight block is unpacked once for the four); bit-identical to four calls
 * of the single-row kernel.  `aux` [nb][8] holds, per block, the four rows'
 * scales d and then their sums as floats (ilm__q8a_aux), so the per-row
 * scalar work of the block is done four rows at a time. */
typedef void (*ilm__dot4_fn)(int64_t nb, const uint8_t *w, const void *act, size_t act_row,
                             const float *aux, float out[4]);

/* Fills aux [nb][8] for the four q8a rows at act (act_row bytes apart). */
static inline void ilm__q8a_aux(int64_t nb, const void *act, size_t act_row, float *aux)
{
    for (int r = 0; r < 4; r++) {
        const ilm__q8a *a = (const ilm__q8a *)((const uint8_t *)act + (size_t)r * act_row);
        for (int64_t i = 0; i < nb; i++) {
            aux[i * 8 + r] = a[i].d;
            aux[i * 8 + 4 + r] = (float)a[i].sum;
        }
    }
}

/* The activation quantizers: n floats (a multiple of 32 or 256) into n/32
 * or n/256 blocks.  Both instruction sets give the same bits (round to
 * nearest even, scale computed the same way in scalar code). */
typedef void (*ilm__quant_act_fn)(const float *x, void *out, int64_t n);

/* The AVX2 kernels (NULL entries: the scalar kernel serves that type). */
ilm__dot_fn       ilm__avx2_dot(uint32_t wtype);
/* The four-row kernel (NULL: use ilm__avx2_dot); at ISA level
 * ILM__ISA_AVX512 on a CPU with AVX512-VNNI, the VNNI variant. */
ilm__dot4_fn      ilm__avx2_dot4(uint32_t wtype, int isa);
void              ilm__avx2_quant_q8a(const float *x, void *out, int64_t n);
void              ilm__avx2_quant_q8k(const float *x, void *out, int64_t n);

/* The block scale both quantizers use: 127/amax (0 for an all-zero
 * block), computed in scalar code so that the paths agree bit for bit. */
static inline float ilm__act_iscale(float amax, float *d)
{
    *d = amax / 127.0f;
    return amax > 0.0f ? 127.0f / amax : 0.0f;
}

#endif /* ILM_BACKEND_CPU_LINEAR_H */
