/*
 * Half-precision conversions and the reference dequantization of ggml's
 * block formats.
 *
 * The block layouts are ggml's (ggml-common.h); the value formulas and the
 * order of the float32 operations follow the `gguf` Python package's
 * gguf/quants.py, which is the reference the tests compare with bit for
 * bit.  Where a product of an f16 scale and small integers is exact in
 * float32 the order does not matter, but the additions and subtractions of
 * a min (q4_1, q5_1, q2_k, q4_k, q5_k) round once, after the product, as
 * numpy's `d * q + m` does; the build never contracts them into an FMA
 * (-std=c11 implies -ffp-contract=off).
 */
#include "tensor/tensor.h"

#include <math.h>
#include <string.h>

/* ---- conversions -------------------------------------------------------- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float ilm__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        /* Zero or subnormal: man * 2^-24, exact in float32. */
        float v = (float)man * 0x1p-24f;
        return bits_f32(f32_bits(v) | sign);
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ilm__f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t exp = (u >> 23) & 0xff, man = u & 0x7fffff;
    if (exp == 0xff) {
        if (!man) return sign | 0x7c00;
        /* numpy keeps the top payload bits and forces a non-zero one. */
        uint16_t r = (uint16_t)(0x7c00 + (man >> 13));
        return sign | (r == 0x7c00 ? 0x7c01 : r);
    }
    if (exp >= 143) return sign | 0x7c00; /* >= 2^16: past the largest half */
    if (exp <= 112) {
        /* Below 2^-14: a subnormal half, man24 * 2^(exp-126) units of 2^-24,
         * rounded to nearest even (which may carry into the smallest
         * normal, 0x0400, the right encoding). */
        uint32_t shift = 126 - exp;
        if (shift > 24) return sign;
        uint32_t m24 = man | 0x800000u; /* exp > 0 here: shift <= 24 */
        uint32_t q = m24 >> shift, rem = m24 & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t q = ((exp - 112) << 10) | (man >> 13), rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++; /* may carry to inf */
    return sign | (uint16_t)q;
}

float ilm__bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ilm__f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0; /* torch's canonical NaN */
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* ---- block readers ------------------------------------------------------ */

static float rd_f16(const uint8_t *p) { return ilm__f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

/* The 6-bit scale and min of sub-block j (0..7) of a q4_k / q5_k block,
 * packed in 12 bytes: bytes 0-3 hold scales 0-3 (low 6 bits) and the top
 * 2 bits of scales 4-7; bytes 4-7 the same for mins; bytes 8-11 the low 4
 * bits of scale (low nibble) and min (high nibble) 4-7. */
static void k4_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* ---- per-type dequantization (one block each) --------------------------- */

static void dq_q4_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0xf) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

static void dq_q4_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0xf) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

/* q5_0 / q5_1: the fifth bit of element j is bit j of the u32 qh. */
static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    uint32_t qh = rd_u32(b + 2);
    for (int j = 0; j < 16; j++) {
        int lo = (b[6 + j] & 0xf) | ((qh >> j) & 1) << 4;
        int hi = (b[6 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void dq_q5_1(const uint8_t *b, float *y)
{
    float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh = rd_u32(b + 4);
    for (int j = 0; j < 16; j++) {
        int lo = (b[8 + j] & 0xf) | ((qh >> j) & 1) << 4;
        int hi = (b[8 + j] >> 4) | ((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y)
{
    float d = rd_f16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* q2_k, 84 bytes: scales[16] (low nibble scale, high nibble min per 16
 * elements), qs[64] (2-bit values: element 128c + 32s + j sits in bits
 * 2s..2s+1 of qs[32c + j]), f16 d, f16 dmin.  x = d*sc*q - dmin*m. */
static void dq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    for (int e = 0; e < 256; e++) {
        int k = e / 16, c = e / 128, s = (e % 128) / 32, j = e % 32;
        float dl = d * (float)(sc[k] & 0xf), ml = dmin * (float)(sc[k] >> 4);
        int q = (qs[32 * c + j] >> (2 * s)) & 3;
        y[e] = dl * (float)q - ml;
    }
}

/* The signed 6-bit scale k (0..15) of a q3_k block: its low 4 bits are
 * nibble k/8 of byte k%8, its high 2 bits are bits 2(k/4).. of byte
 * 8 + k%4; stored with an offset of 32. */
static int q3k_scale(const uint8_t *s, int k)
{
    int lo = (k < 8 ? s[k] : s[k - 8] >> 4) & 0xf;
    int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* q3_k, 110 bytes: hmask[32] (element e's high bit is bit e/32 of
 * hmask[e%32]; a clear bit subtracts 4), qs[64] (as q2_k), scales[12],
 * f16 d.  x = d*scale*q. */
static void dq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32, *sc = b + 96;
    float d = rd_f16(b + 108);
    for (int e = 0; e < 256; e++) {
        int c = e / 128, s = (e % 128) / 32, j = e % 32;
        float dl = d * (float)q3k_scale(sc, e / 16);
        int q = ((qs[32 * c + j] >> (2 * s)) & 3) - (((hm[j] >> (e / 32)) & 1) ? 0 : 4);
        y[e] = dl * (float)q;
    }
}

/* q4_k, 144 bytes: f16 d, f16 dmin, scales[12], qs[128] (element
 * 64c + 32h + j is nibble h of qs[32c + j]).  x = (d*sc)*q - dmin*m per
 * sub-block of 32. */
static void dq_q4_k(const uint8_t *b, float *y)
{
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4, *qs = b + 16;
    for (int e = 0; e < 256; e++) {
        int sc, m, c = e / 64, h = (e % 64) / 32, j = e % 32;
        k4_scale_min(s, e / 32, &sc, &m);
        int q = (qs[32 * c + j] >> (4 * h)) & 0xf;
        y[e] = (d * (float)sc) * (float)q - dmin * (float)m;
    }
}

/* q5_k, 176 bytes: as q4_k with qh[32] before qs: element e's fifth bit
 * is bit e/32 of qh[e%32]. */
static void dq_q5_k(const uint8_t *b, float *y)
{
    float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *qs = b + 48;
    for (int e = 0; e < 256; e++) {
        int sc, m, c = e / 64, h = (e % 64) / 32, j = e % 32;
        k4_scale_min(s, e / 32, &sc, &m);
        int q = ((qs[32 * c + j] >> (4 * h)) & 0xf) | ((qh[j] >> (e / 32)) & 1) << 4;
        y[e] = (d * (float)sc) * (float)q - dmin * (float)m;
    }
}

/* q6_k, 210 bytes: ql[128] (element 128c + 64h + j: nibble h of
 * ql[64c + j]), qh[64] (its top 2 bits: bits 2s.. of qh[32c + j] with
 * s = (e%128)/32, j = e%32), int8 scales[16], f16 d.  x = (d*sc)*(q-32). */
static void dq_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rd_f16(b + 208);
    for (int e = 0; e < 256; e++) {
        int c = e / 128, h = (e % 128) / 64, s = (e % 128) / 32;
        int lo = (ql[64 * c + e % 64] >> (4 * h)) & 0xf;
        int hi = (qh[32 * c + e % 32] >> (2 * s)) & 3;
        y[e] = (d * (float)sc[e / 16]) * (float)((lo | hi << 4) - 32);
    }
}

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn dq_fn(uint32_t type)
{
    switch (type) {
    case ILM__DTYPE_Q4_0: return dq_q4_0;
    case ILM__DTYPE_Q4_1: return dq_q4_1;
    case ILM__DTYPE_Q5_0: return dq_q5_0;
    case ILM__DTYPE_Q5_1: return dq_q5_1;
    case ILM__DTYPE_Q8_0: return dq_q8_0;
    case ILM__DTYPE_Q2_K: return dq_q2_k;
    case ILM__DTYPE_Q3_K: return dq_q3_k;
    case ILM__DTYPE_Q4_K: return dq_q4_k;
    case ILM__DTYPE_Q5_K: return dq_q5_k;
    case ILM__DTYPE_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

ilm_status ilm__dequantize(uint32_t type, const void *src, float *dst, int64_t n)
{
    uint32_t block, bytes;
    bool known = ilm__dtype_info(type, &block, &bytes);
    dq_block_fn fn = dq_fn(type);
    ILM__RETURN_IF(!known || (!fn && type != ILM__DTYPE_F32 && type != ILM__DTYPE_F16 &&
                             type != ILM__DTYPE_BF16),
                   ILM_ERR_UNSUPPORTED, "dequantize: type %s (%u) is not supported",
                   ilm__dtype_name(type), type);
    ILM__RETURN_IF(n < 0 || n % block != 0, ILM_ERR_INVALID_ARG,
                   "dequantize: %lld elements is not a multiple of the %s block of %u",
                   (long long)n, ilm__dtype_name(type), block);
    ILM__RETURN_IF(n > 0 && (!src || !dst), ILM_ERR_INVALID_ARG, "dequantize: NULL buffer");
    const uint8_t *p = src;
    switch (type) {
    case ILM__DTYPE_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return ILM_OK;
    case ILM__DTYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rd_f16(p + 2 * i);
        return ILM_OK;
    case ILM__DTYPE_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = ilm__bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return ILM_OK;
    default:
        for (int64_t i = 0; i < n / block; i++) fn(p + (size_t)i * bytes, dst + i * block);
        return ILM_OK;
    }
}

/* ---- reference quantization (the block formats the GGUF writer emits) ----- */

static void wr_f16(uint8_t *p, float v)
{
    const uint16_t h = ilm__f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* Half away from zero as gguf.quants' np_roundf computes it (ggml's
 * roundf): every step exact, no v + 0.5 that could round up. */
static float round_away(float v)
{
    const float a = fabsf(v), fl = floorf(a), b = fl + floorf(2.0f * (a - fl));
    return v < 0 ? -b : v > 0 ? b : 0.0f;
}

static void q_q8_0(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)round_away(x[j] * id);
}

/* Codes 0..15 of v = trunc(x * id + bias), as gguf.quants computes them. */
static uint8_t q4_code(float v)
{
    v = truncf(v);
    return v >= 15.0f ? 15 : v <= 0.0f ? 0 : (uint8_t)v;
}

static void q_q4_0(const float *x, uint8_t *b)
{
    float amax = 0, max = 0; /* the value of largest magnitude, the first one */
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / -8.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(q4_code(x[j] * id + 8.5f) | q4_code(x[j + 16] * id + 8.5f) << 4);
}

static void q_q4_1(const float *x, uint8_t *b)
{
    float min = x[0], max = x[0];
    for (int j = 1; j < 32; j++) {
        min = fminf(min, x[j]);
        max = fmaxf(max, x[j]);
    }
    const float d = (max - min) / 15.0f, id = d != 0 ? 1.0f / d : 0.0f;
    wr_f16(b, d);
    wr_f16(b + 2, min);
    for (int j = 0; j < 16; j++)
        b[4 + j] = (uint8_t)(q4_code((x[j] - min) * id + 0.5f) |
                             q4_code((x[j + 16] - min) * id + 0.5f) << 4);
}

ilm_status ilm__quantize(uint32_t type, const float *src, void *dst, int64_t n)
{
    void (*fn)(const float *, uint8_t *) = type == ILM__DTYPE_Q8_0   ? q_q8_0
                                           : type == ILM__DTYPE_Q4_0 ? q_q4_0
                                           : type == ILM__DTYPE_Q4_1 ? q_q4_1
                                                                     : NULL;
    uint8_t *p = dst;
    switch (type) {
    case ILM__DTYPE_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        return ILM_OK;
    case ILM__DTYPE_F16:
        for (int64_t i = 0; i < n; i++) wr_f16(p + 2 * i, src[i]);
        return ILM_OK;
    case ILM__DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            const uint16_t h = ilm__f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return ILM_OK;
    default:
        break;
    }
    ILM__RETURN_IF(!fn, ILM_ERR_UNSUPPORTED, "quantize: type %s (%u) is not written",
                   ilm__dtype_name(type), type);
    ILM__RETURN_IF(n < 0 || n % 32 != 0, ILM_ERR_INVALID_ARG,
                   "quantize: %lld elements is not a multiple of the %s block of 32", (long long)n,
                   ilm__dtype_name(type));
    uint32_t block, bytes;
    ilm__dtype_info(type, &block, &bytes);
    for (int64_t i = 0; i < n / 32; i++) fn(src + i * 32, p + (size_t)i * bytes);
    return ILM_OK;
}
