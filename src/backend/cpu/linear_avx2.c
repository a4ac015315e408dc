/*
 * AVX2 + FMA + F16C kernels for the linear op (x86-64).  Compiled with
 * function target attributes, not global flags, so the library still runs
 * on CPUs without them: linear.c calls them only when the backend
 * instance's ISA level (core/cpu.c, ILM_CPU) is ILM__ISA_AVX2 or higher.
 *
 * Integer dot products use vpmaddubsw (unsigned 8-bit weights times signed
 * 8-bit activations, pairs summed to 16 bits) and vpmaddwd (to 32 bits).
 * The unsigned operand is always a weight code below 64, or |w| for q8_0,
 * and activations are within [-127, 127], so the 16-bit pair sums never
 * saturate (2 * 128 * 127 < 32768).  The formats' offsets (q4_0's 8,
 * q5_0's 16, q6_k's 32) are applied through the activation block sums
 * instead of to the codes, so the codes stay unsigned.
 */
#include "backend/cpu/linear.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma,f16c")))

static inline TGT float f16at(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline TGT float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline TGT int32_t hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline TGT float hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 unsigned codes times 32 signed activations, as 8 lanes of int32. */
static inline TGT __m256i dot_u8s8(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* 16 bytes of packed nibbles -> 32 codes in element order (low nibbles
 * are elements 0-15, high nibbles 16-31). */
static inline TGT __m256i unpack_nibbles(const uint8_t *p)
{
    __m128i q = _mm_loadu_si128((const __m128i *)p);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0xf));
}

/* Bit j of a q5 block's qh as 0x10 in byte j. */
static inline TGT __m256i fifth_bits(const uint8_t *p)
{
    uint32_t qh;
    memcpy(&qh, p, 4);
    /* Byte j of the result takes byte j/8 of qh, then tests bit j%8. */
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
    b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

/* ---- activation quantizers (same bits as the scalar ones) --------------- */

/* Rounds 32 floats times id to int8 in element order, returning the four
 * int32 vectors' sum through *sum. */
static inline TGT __m256i q8_32(const float *x, float id, __m256i *s32)
{
    const __m256 vid = _mm256_set1_ps(id), lo = _mm256_set1_ps(-127.0f),
                 hi = _mm256_set1_ps(127.0f);
    __m256i v[4];
    for (int k = 0; k < 4; k++) {
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + 8 * k), vid);
        t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
        v[k] = _mm256_cvtps_epi32(t); /* MXCSR: round to nearest even */
    }
    s32[0] = _mm256_add_epi32(v[0], v[1]);
    s32[1] = _mm256_add_epi32(v[2], v[3]);
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline TGT float amax_n(const float *x, int n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < n; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    return hmax_ps(m);
}

TGT void ilm__avx2_quant_q8a(const float *x, void *out, int64_t n)
{
    ilm__q8a *b = out;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float d, id = ilm__act_iscale(amax_n(x, 32), &d);
        __m256i s[2];
        _mm256_storeu_si256((__m256i *)b[i].q, q8_32(x, id, s));
        b[i].d = d;
        b[i].sum = hsum_epi32(_mm256_add_epi32(s[0], s[1]));
    }
}

TGT void ilm__avx2_quant_q8k(const float *x, void *out, int64_t n)
{
    ilm__q8k *b = out;
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        float d, id = ilm__act_iscale(amax_n(x, 256), &d);
        for (int g = 0; g < 8; g++) {
            __m256i s[2];
            _mm256_storeu_si256((__m256i *)(b[i].q + 32 * g), q8_32(x + 32 * g, id, s));
            b[i].bsums[2 * g] = (int16_t)hsum_epi32(s[0]);
            b[i].bsums[2 * g + 1] = (int16_t)hsum_epi32(s[1]);
        }
        b[i].d = d;
    }
}

/* ---- float weights -------------------------------------------------------- */

static TGT float dot_f32(int64_t n, const uint8_t *w, const void *act)
{
    const float *x = act, *wf = (const float *)(const void *)w;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i), _mm256_loadu_ps(x + i), a0);
    float acc = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        float v;
        memcpy(&v, w + 4 * i, 4);
        acc += v * x[i];
    }
    return acc;
}

static inline TGT __m256 ld_f16(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

static inline TGT __m256 ld_bf16(const uint8_t *p)
{
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

#define HALF_DOT(name, LOAD, SCALAR)                                                        \
    static TGT float name(int64_t n, const uint8_t *w, const void *act)                    \
    {                                                                                      \
        const float *x = act;                                                              \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                       \
        int64_t i = 0;                                                                     \
        for (; i + 32 <= n; i += 32) {                                                     \
            a0 = _mm256_fmadd_ps(LOAD(w + 2 * i), _mm256_loadu_ps(x + i), a0);             \
            a1 = _mm256_fmadd_ps(LOAD(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);    \
            a2 = _mm256_fmadd_ps(LOAD(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);   \
            a3 = _mm256_fmadd_ps(LOAD(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);   \
        }                                                                                  \
        for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(LOAD(w + 2 * i), _mm256_loadu_ps(x + i), a0); \
        float acc = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));  \
        for (; i < n; i++) acc += SCALAR(w + 2 * i) * x[i];                               \
        return acc;                                                                        \
    }

static inline TGT float bf16at(const uint8_t *p) { return ilm__bf16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

HALF_DOT(dot_f16, ld_f16, f16at)
HALF_DOT(dot_bf16, ld_bf16, bf16at)

/* ---- 32-element formats ------------------------------------------------- */

static TGT float dot_q4_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 18) {
        float s = f16at(w) * a[i].d;
        __m256i p = dot_u8s8(unpack_nibbles(w + 2), _mm256_loadu_si256((const __m256i *)a[i].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc);
        off += s * (float)a[i].sum;
    }
    return hsum_ps(acc) - 8.0f * off;
}

static TGT float dot_q4_1(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 20) {
        __m256i p = dot_u8s8(unpack_nibbles(w + 4), _mm256_loadu_si256((const __m256i *)a[i].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16at(w) * a[i].d), acc);
        off += f16at(w + 2) * a[i].d * (float)a[i].sum;
    }
    return hsum_ps(acc) + off;
}

/* One q4_1 weight row against four activation rows (act_row bytes apart):
 * the nibbles and scales are unpacked once for all four, and the block's
 * scalar terms (d_w * d_a and min * d_a * sum) are formed for the four rows
 * in one vector operation each, with the same operations in the same order
 * as dot_q4_1, so the results are bit-identical to four single calls.  DOT
 * is the u8 x s8 -> four-product int32 sums: vpmaddubsw + vpmaddwd with
 * AVX2, vpdpbusd with AVX-512 VNNI (the same integers in one instruction). */
#define DEFINE_DOT4_Q4_1(name, attrs, DOT)                                                        \
    attrs static void name(int64_t nb, const uint8_t *w, const void *act, size_t act_row,       \
                           const float *aux, float out[4])                                       \
    {                                                                                            \
        const ilm__q8a *a[4];                                                                    \
        for (int r = 0; r < 4; r++) a[r] = (const ilm__q8a *)((const uint8_t *)act + r * act_row); \
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),        \
                          _mm256_setzero_ps() };                                                 \
        __m128 off = _mm_setzero_ps();                                                           \
        for (int64_t i = 0; i < nb; i++, w += 20, aux += 8) {                                    \
            __m256i q = unpack_nibbles(w + 4);                                                   \
            __m128 ad = _mm_loadu_ps(aux), sum = _mm_loadu_ps(aux + 4);                          \
            float scale[4];                                                                      \
            _mm_storeu_ps(scale, _mm_mul_ps(_mm_set1_ps(f16at(w)), ad));                         \
            off = _mm_add_ps(off, _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(f16at(w + 2)), ad), sum));    \
            for (int r = 0; r < 4; r++) {                                                        \
                __m256i p = DOT(q, _mm256_loadu_si256((const __m256i *)a[r][i].q));              \
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(scale[r]), acc[r]); \
            }                                                                                    \
        }                                                                                        \
        float o[4];                                                                              \
        _mm_storeu_ps(o, off);                                                                   \
        for (int r = 0; r < 4; r++) out[r] = hsum_ps(acc[r]) + o[r];                             \
    }

#define DOT_VNNI(u, s) _mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s))
DEFINE_DOT4_Q4_1(dot4_q4_1, TGT, dot_u8s8)
DEFINE_DOT4_Q4_1(dot4_q4_1_vnni,
                 __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni"))), DOT_VNNI)

static TGT float dot_q5_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 22) {
        float s = f16at(w) * a[i].d;
        __m256i q = _mm256_or_si256(unpack_nibbles(w + 6), fifth_bits(w + 2));
        __m256i p = dot_u8s8(q, _mm256_loadu_si256((const __m256i *)a[i].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc);
        off += s * (float)a[i].sum;
    }
    return hsum_ps(acc) - 16.0f * off;
}

static TGT float dot_q5_1(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 24) {
        __m256i q = _mm256_or_si256(unpack_nibbles(w + 8), fifth_bits(w + 4));
        __m256i p = dot_u8s8(q, _mm256_loadu_si256((const __m256i *)a[i].q));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16at(w) * a[i].d), acc);
        off += f16at(w + 2) * a[i].d * (float)a[i].sum;
    }
    return hsum_ps(acc) + off;
}

static TGT float dot_q8_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
    int64_t i = 0;
    /* Two blocks per step: two independent FMA chains hide their latency. */
    for (; i + 2 <= nb; i += 2, w += 68) {
        __m256i q0 = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i q1 = _mm256_loadu_si256((const __m256i *)(w + 36));
        __m256i x0 = _mm256_loadu_si256((const __m256i *)a[i].q);
        __m256i x1 = _mm256_loadu_si256((const __m256i *)a[i + 1].q);
        __m256i p0 = dot_u8s8(_mm256_sign_epi8(q0, q0), _mm256_sign_epi8(x0, q0));
        __m256i p1 = dot_u8s8(_mm256_sign_epi8(q1, q1), _mm256_sign_epi8(x1, q1));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16at(w) * a[i].d), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(f16at(w + 34) * a[i + 1].d),
                               acc1);
    }
    for (; i < nb; i++, w += 34) {
        __m256i q = _mm256_loadu_si256((const __m256i *)(w + 2));
        __m256i x = _mm256_loadu_si256((const __m256i *)a[i].q);
        __m256i p = dot_u8s8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(x, q));
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16at(w) * a[i].d), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ---- k-quants ----------------------------------------------------------- */

/* q4_k: per block the 8 sub-block scales multiply 16-bit pair sums inside
 * vpmaddwd, so the block's integer sum is one vector; the mins meet the
 * activation's 16-element sums in scalar code. */
static TGT float dot_q4_k(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    float off = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 144) {
        const uint8_t *s = w + 4, *qs = w + 16;
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 4; j++) {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
            sc[j + 4] = (uint8_t)((s[j + 8] & 0xf) | ((s[j] >> 6) << 4));
            mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
        }
        int32_t msum = 0;
        for (int j = 0; j < 8; j++) msum += mn[j] * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
        __m256i sumi = _mm256_setzero_si256();
        const __m256i m4 = _mm256_set1_epi8(0xf);
        for (int c = 0; c < 4; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(a[i].q + 64 * c)));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a[i].q + 64 * c + 32)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * c])));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * c + 1])));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(f16at(w) * a[i].d), acc);
        off += f16at(w + 2) * a[i].d * (float)msum;
    }
    return hsum_ps(acc) - off;
}

/* q6_k: codes 0..63 (the -32 goes through the 16-element activation
 * sums); each 32-code group spans two 16-element scales, one per 128-bit
 * lane of the pair sums. */
static TGT float dot_q6_k(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8k *a = act;
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0xf), m2 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < nb; i++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        int32_t off = 0;
        for (int k = 0; k < 16; k++) off += sc[k] * a[i].bsums[k];
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 2; c++) {
            const uint8_t *ql = w + 64 * c, *qh = w + 128 + 32 * c;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i h = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4)),
                _mm256_or_si256(_mm256_and_si256(l1, m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4)),
            };
            for (int s = 0; s < 4; s++) {
                int k = 8 * c + 2 * s;
                __m256i p = _mm256_maddubs_epi16(
                    q[s], _mm256_loadu_si256((const __m256i *)(a[i].q + 128 * c + 32 * s)));
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[k + 1]), _mm_set1_epi16(sc[k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        /* Fold the -32 offset into lane 0 of the integer sum. */
        sumi = _mm256_add_epi32(sumi, _mm256_setr_epi32(-32 * off, 0, 0, 0, 0, 0, 0, 0));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(f16at(w + 208) * a[i].d), acc);
    }
    return hsum_ps(acc);
}

ilm__dot_fn ilm__avx2_dot(uint32_t wtype)
{
    switch (wtype) {
    case ILM__DTYPE_F32: return dot_f32;
    case ILM__DTYPE_F16: return dot_f16;
    case ILM__DTYPE_BF16: return dot_bf16;
    case ILM__DTYPE_Q4_0: return dot_q4_0;
    case ILM__DTYPE_Q4_1: return dot_q4_1;
    case ILM__DTYPE_Q5_0: return dot_q5_0;
    case ILM__DTYPE_Q5_1: return dot_q5_1;
    case ILM__DTYPE_Q8_0: return dot_q8_0;
    case ILM__DTYPE_Q4_K: return dot_q4_k;
    case ILM__DTYPE_Q6_K: return dot_q6_k;
    default: return NULL;
    }
}

ilm__dot4_fn ilm__avx2_dot4(uint32_t wtype, int isa)
{
    if (wtype != ILM__DTYPE_Q4_1) return NULL;
    return isa >= ILM__ISA_AVX512 && ilm__isa_vnni() ? dot4_q4_1_vnni : dot4_q4_1;
}

#else /* not x86-64 with GCC/Clang: the scalar kernels serve every type */

ilm__dot_fn ilm__avx2_dot(uint32_t wtype) { (void)wtype; return NULL; }
ilm__dot4_fn ilm__avx2_dot4(uint32_t wtype, int isa) { (void)wtype; (void)isa; return NULL; }
void ilm__avx2_quant_q8a(const float *x, void *out, int64_t n) { (void)x; (void)out; (void)n; }
void ilm__avx2_quant_q8k(const float *x, void *out, int64_t n) { (void)x; (void)out; (void)n; }

#endif
