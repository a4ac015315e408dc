/*
 * The linear kernel y[M,N] = x[M,K] W[N,K]^T for weights in any supported
 * ggml format: the driver (argument checks, activation quantization,
 * threading, the BLAS panel path) and the portable scalar kernels, which
 * are the reference the SIMD kernels (linear_avx2.c) are tested against.
 * Only the CPU backend calls it (backend.h's linear op).
 *
 * The method is the one llama.cpp made standard for CPU decoding: quantize
 * each activation row once to 8-bit blocks aligned with the weight blocks,
 * then every weight block contributes an exact integer dot product times
 * the weight scale and the activation scale, plus (for formats with an
 * offset or min) the scale times the activation block's sum.  Weights are
 * streamed once, never expanded, which is what makes decode (M = 1) fast:
 * it is bound by the bytes of W.
 *
 * For prompt-sized M, expanding W is amortised over M rows, and a BLAS
 * GEMM on dequantized panels of W beats the integer dot products.
 */
#include "backend/cpu/cpu.h"
#include "backend/cpu/linear.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- scalar activation quantizers ----------------------------------------- */

static int8_t q8(float v, float id)
{
    float t = v * id;
    /* fmaxf/fminf clamp a NaN to -127, as the SIMD max/min do. */
    t = fminf(fmaxf(t, -127.0f), 127.0f);
    return (int8_t)nearbyintf(t);
}

static void quant_q8a_scalar(const float *x, void *out, int64_t n)
{
    ilm__q8a *b = out;
    for (int64_t i = 0; i < n / 32; i++, x += 32) {
        float amax = 0.0f, d;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
        float id = ilm__act_iscale(amax, &d);
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) sum += b[i].q[j] = q8(x[j], id);
        b[i].d = d;
        b[i].sum = sum;
    }
}

static void quant_q8k_scalar(const float *x, void *out, int64_t n)
{
    ilm__q8k *b = out;
    for (int64_t i = 0; i < n / 256; i++, x += 256) {
        float amax = 0.0f, d;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(x[j]));
        float id = ilm__act_iscale(amax, &d);
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) s += b[i].q[j] = q8(x[j], id);
            b[i].bsums[g] = (int16_t)s;
        }
        b[i].d = d;
    }
}

/* ---- scalar dot products (the reference) --------------------------------- */

static float f16at(const uint8_t *p) { return ilm__f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

static float dot_f32(int64_t n, const uint8_t *w, const void *act)
{
    const float *x = act;
    float acc = 0.0f, v;
    for (int64_t i = 0; i < n; i++) {
        memcpy(&v, w + 4 * i, 4);
        acc += v * x[i];
    }
    return acc;
}

static float dot_f16(int64_t n, const uint8_t *w, const void *act)
{
    const float *x = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++) acc += f16at(w + 2 * i) * x[i];
    return acc;
}

static float dot_bf16(int64_t n, const uint8_t *w, const void *act)
{
    const float *x = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += ilm__bf16_to_f32((uint16_t)(w[2 * i] | w[2 * i + 1] << 8)) * x[i];
    return acc;
}

/* sum_j nibble_j * a_j over a block of 16 packed bytes: low nibbles are
 * elements 0-15, high nibbles 16-31 (ggml's q4 layout). */
static int32_t nib_dot(const uint8_t *qs, const int8_t *a)
{
    int32_t s = 0;
    for (int j = 0; j < 16; j++) s += (qs[j] & 0xf) * a[j] + (qs[j] >> 4) * a[j + 16];
    return s;
}

static float dot_q4_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 18)
        acc += f16at(w) * a[i].d * (float)(nib_dot(w + 2, a[i].q) - 8 * a[i].sum);
    return acc;
}

static float dot_q4_1(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 20)
        acc += f16at(w) * a[i].d * (float)nib_dot(w + 4, a[i].q) +
               f16at(w + 2) * a[i].d * (float)a[i].sum;
    return acc;
}

/* q5: the nibble dot plus 16 times the dot of the fifth bits. */
static int32_t q5_dot(const uint8_t *qh4, const uint8_t *qs, const int8_t *a)
{
    uint32_t qh = (uint32_t)qh4[0] | (uint32_t)qh4[1] << 8 | (uint32_t)qh4[2] << 16 |
                  (uint32_t)qh4[3] << 24;
    int32_t s = nib_dot(qs, a), h = 0;
    for (int j = 0; j < 32; j++) h += (int32_t)((qh >> j) & 1) * a[j];
    return s + 16 * h;
}

static float dot_q5_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 22)
        acc += f16at(w) * a[i].d * (float)(q5_dot(w + 2, w + 6, a[i].q) - 16 * a[i].sum);
    return acc;
}

static float dot_q5_1(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 24)
        acc += f16at(w) * a[i].d * (float)q5_dot(w + 4, w + 8, a[i].q) +
               f16at(w + 2) * a[i].d * (float)a[i].sum;
    return acc;
}

static float dot_q8_0(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8a *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 34) {
        int32_t s = 0;
        for (int j = 0; j < 32; j++) s += (int8_t)w[2 + j] * a[i].q[j];
        acc += f16at(w) * a[i].d * (float)s;
    }
    return acc;
}

/* The k-quants: per block, the integer dot of each 16- or 32-element
 * sub-block times its integer scale, summed in integers, times d * da; the
 * mins times the activation's sub-block sums likewise times dmin * da.
 * Element layouts are documented in quants.c. */
static float dot_q2_k(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8k *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 84) {
        const uint8_t *sc = w, *qs = w + 16;
        int32_t sum = 0, msum = 0;
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int e = 16 * k; e < 16 * k + 16; e++)
                s += ((qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) * a[i].q[e];
            sum += (sc[k] & 0xf) * s;
            msum += (sc[k] >> 4) * a[i].bsums[k];
        }
        acc += f16at(w + 80) * a[i].d * (float)sum - f16at(w + 82) * a[i].d * (float)msum;
    }
    return acc;
}

static float dot_q3_k(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8k *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 110) {
        const uint8_t *hm = w, *qs = w + 32, *sc = w + 96;
        int32_t sum = 0;
        for (int k = 0; k < 16; k++) {
            int lo = (k < 8 ? sc[k] : sc[k - 8] >> 4) & 0xf;
            int scale = (lo | ((sc[8 + k % 4] >> (2 * (k / 4))) & 3) << 4) - 32;
            int32_t s = 0;
            for (int e = 16 * k; e < 16 * k + 16; e++) {
                int q = ((qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3) -
                        (((hm[e % 32] >> (e / 32)) & 1) ? 0 : 4);
                s += q * a[i].q[e];
            }
            sum += scale * s;
        }
        acc += f16at(w + 108) * a[i].d * (float)sum;
    }
    return acc;
}

static void k4_sm(const uint8_t *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

static float dot_q45_k(int64_t nb, const uint8_t *w, const void *act, bool five)
{
    const ilm__q8k *a = act;
    size_t bytes = five ? 176 : 144;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += bytes) {
        const uint8_t *qh = w + 16, *qs = w + (five ? 48 : 16);
        int32_t sum = 0, msum = 0;
        for (int j = 0; j < 8; j++) {
            int sc, m;
            k4_sm(w + 4, j, &sc, &m);
            int32_t s = 0;
            for (int e = 32 * j; e < 32 * j + 32; e++) {
                int q = (qs[32 * (e / 64) + e % 32] >> (4 * ((e % 64) / 32))) & 0xf;
                if (five) q |= ((qh[e % 32] >> (e / 32)) & 1) << 4;
                s += q * a[i].q[e];
            }
            sum += sc * s;
            msum += m * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
        }
        acc += f16at(w) * a[i].d * (float)sum - f16at(w + 2) * a[i].d * (float)msum;
    }
    return acc;
}

static float dot_q4_k(int64_t nb, const uint8_t *w, const void *act)
{
    return dot_q45_k(nb, w, act, false);
}

static float dot_q5_k(int64_t nb, const uint8_t *w, const void *act)
{
    return dot_q45_k(nb, w, act, true);
}

static float dot_q6_k(int64_t nb, const uint8_t *w, const void *act)
{
    const ilm__q8k *a = act;
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++, w += 210) {
        const uint8_t *ql = w, *qh = w + 128;
        const int8_t *sc = (const int8_t *)(w + 192);
        int32_t sum = 0;
        for (int k = 0; k < 16; k++) {
            int32_t s = 0;
            for (int e = 16 * k; e < 16 * k + 16; e++) {
                int lo = (ql[64 * (e / 128) + e % 64] >> (4 * ((e % 128) / 64))) & 0xf;
                int hi = (qh[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
                s += (lo | hi << 4) * a[i].q[e];
            }
            /* q - 32: subtract 32 times the activation sum of the group. */
            sum += sc[k] * (s - 32 * a[i].bsums[k]);
        }
        acc += f16at(w + 208) * a[i].d * (float)sum;
    }
    return acc;
}

/* ---- dispatch ------------------------------------------------------------- */

enum act_kind { ACT_F32, ACT_Q8A, ACT_Q8K };

typedef struct lin_type {
    enum act_kind act;
    ilm__dot_fn   dot;
} lin_type;

static bool lin_scalar(uint32_t t, lin_type *o)
{
    switch (t) {
    case ILM__DTYPE_F32:  *o = (lin_type){ ACT_F32, dot_f32 }; return true;
    case ILM__DTYPE_F16:  *o = (lin_type){ ACT_F32, dot_f16 }; return true;
    case ILM__DTYPE_BF16: *o = (lin_type){ ACT_F32, dot_bf16 }; return true;
    case ILM__DTYPE_Q4_0: *o = (lin_type){ ACT_Q8A, dot_q4_0 }; return true;
    case ILM__DTYPE_Q4_1: *o = (lin_type){ ACT_Q8A, dot_q4_1 }; return true;
    case ILM__DTYPE_Q5_0: *o = (lin_type){ ACT_Q8A, dot_q5_0 }; return true;
    case ILM__DTYPE_Q5_1: *o = (lin_type){ ACT_Q8A, dot_q5_1 }; return true;
    case ILM__DTYPE_Q8_0: *o = (lin_type){ ACT_Q8A, dot_q8_0 }; return true;
    case ILM__DTYPE_Q2_K: *o = (lin_type){ ACT_Q8K, dot_q2_k }; return true;
    case ILM__DTYPE_Q3_K: *o = (lin_type){ ACT_Q8K, dot_q3_k }; return true;
    case ILM__DTYPE_Q4_K: *o = (lin_type){ ACT_Q8K, dot_q4_k }; return true;
    case ILM__DTYPE_Q5_K: *o = (lin_type){ ACT_Q8K, dot_q5_k }; return true;
    case ILM__DTYPE_Q6_K: *o = (lin_type){ ACT_Q8K, dot_q6_k }; return true;
    default: return false;
    }
}

/* When panels and the BLAS take over from the dot products.  Measured on
 * the 2-core AVX-512 EPYC CI machine with the SmolLM2 shapes
 * (tools/bench_linear.c): for the quantized formats the integer path with
 * row tiling matched or beat dequantize + sgemm even at M = 128, so they
 * stay on it; f16/bf16 rows switch at M = 8. */
#define GEMM_MIN_M_HALF 8

/* ---- the BLAS panel path (prompt-sized M) ----------------------------------- */

/* Cuts W into panels of a fixed height (about 512 KB of floats, a multiple
 * of 16 rows) that depends on K alone; each thread of the team dequantizes
 * a panel into its own buffer and multiplies it with one single-threaded
 * BLAS call, so neither the thread count nor the BLAS's own partitioning
 * changes a bit of y. */
static ilm_status linear_panels(const ilm__backend *be, uint32_t wtype, const uint8_t *W,
                                size_t row_bytes, int64_t N, int64_t K, const float *x, int64_t M,
                                float *y)
{
    ilm__cpu_ctx *c = ilm__cpu_ctx_of(be);
    int64_t P = (int64_t)(1 << 17) / K;
    P = P < 16 ? 16 : P - P % 16;
    if (P > N) P = N;
    const int64_t n_panels = (N + P - 1) / P;
    int nt = ilm__cpu_threads(be);
    if (nt > n_panels) nt = (int)n_panels;
    if (nt > c->n_panels) {
        ilm__cpu_scratch *grown = ilm__realloc(c->panels, (size_t)nt * sizeof *grown);
        ILM__RETURN_IF(!grown, ILM_ERR_NOMEM, "linear: out of memory");
        for (int i = c->n_panels; i < nt; i++) grown[i] = (ilm__cpu_scratch){ 0 };
        c->panels = grown;
        c->n_panels = nt;
    }
    /* Every buffer is grown before the team starts: nothing inside the
     * parallel region can fail. */
    for (int i = 0; i < nt; i++)
        ILM__RETURN_IF(!ilm__cpu_scratch_get(&c->panels[i], (size_t)P * (size_t)K * sizeof(float)),
                       ILM_ERR_NOMEM, "linear: cannot allocate a %lldx%lld panel", (long long)P,
                       (long long)K);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        float *panel = c->panels[t].p;
#pragma omp for schedule(static, 1)
        for (int64_t p = 0; p < n_panels; p++) {
            const int64_t n0 = p * P, rows = N - n0 < P ? N - n0 : P;
            (void)ilm__dequantize(wtype, W + (size_t)n0 * row_bytes, panel, rows * K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)rows, (int)K, 1.0f,
                        x, (int)K, panel, (int)K, 0.0f, y + n0, (int)N);
        }
    }
    return ILM_OK;
}

#define ROW_TILE 16

/* ---- the entry point ----------------------------------------------------- */

ilm_status ilm__cpu_linear(const ilm__backend *be, uint32_t wtype, const void *W, int64_t N,
                           int64_t K, const float *x, int64_t M, float *y)
{
    ilm__cpu_ctx *c = ilm__cpu_ctx_of(be);
    uint32_t block, bytes;
    lin_type lt;
    ILM__RETURN_IF(!ilm__dtype_info(wtype, &block, &bytes) || !lin_scalar(wtype, &lt),
                   ILM_ERR_UNSUPPORTED, "linear: weight type %s (%u) is not supported",
                   ilm__dtype_name(wtype), wtype);
    ILM__RETURN_IF(M < 0 || N < 0 || K < 0, ILM_ERR_INVALID_ARG,
                   "linear: negative size %lldx%lldx%lld", (long long)M, (long long)N,
                   (long long)K);
    ILM__RETURN_IF(K % block != 0, ILM_ERR_INVALID_ARG,
                   "linear: K = %lld is not a multiple of the %s block of %u", (long long)K,
                   ilm__dtype_name(wtype), block);
    ILM__RETURN_IF(M > INT32_MAX || N > INT32_MAX || K > INT32_MAX, ILM_ERR_RANGE,
                   "linear: %lldx%lldx%lld is too large", (long long)M, (long long)N,
                   (long long)K);
    if (M == 0 || N == 0) return ILM_OK;
    ILM__RETURN_IF(!W || !x || !y, ILM_ERR_INVALID_ARG, "linear: NULL buffer");
    if (K == 0) {
        memset(y, 0, (size_t)M * (size_t)N * sizeof(float));
        return ILM_OK;
    }
    const uint8_t *w = W;
    size_t row_bytes = (size_t)(K / block) * bytes;
    int64_t nb = K / block;

    if (wtype == ILM__DTYPE_F32 && M > 1) {
        ilm__cpu_gemm(be, false, true, (int)M, (int)N, (int)K, 1.0f, x, (int)K, W, (int)K, 0.0f,
                      y, (int)N);
        return ILM_OK;
    }
    int64_t gemm_min = c->gemm_min_m ? c->gemm_min_m
                                     : lt.act == ACT_F32 ? GEMM_MIN_M_HALF : INT64_MAX;
    if (M >= gemm_min) return linear_panels(be, wtype, w, row_bytes, N, K, x, M, y);

    ilm__dot_fn dot = lt.dot;
    ilm__dot4_fn dot4 = NULL;
    ilm__quant_act_fn quant = lt.act == ACT_Q8A ? quant_q8a_scalar : quant_q8k_scalar;
    if (c->isa >= ILM__ISA_AVX2) {
        ilm__dot_fn v = ilm__avx2_dot(wtype);
        if (v) dot = v;
        dot4 = ilm__avx2_dot4(wtype, c->isa);
        quant = lt.act == ACT_Q8A ? ilm__avx2_quant_q8a : ilm__avx2_quant_q8k;
    }

    /* The activations, quantized once per call (f32 W reads x as is). */
    const void *act = x;
    size_t act_row = (size_t)K * sizeof(float);
    if (lt.act != ACT_F32) {
        act_row = lt.act == ACT_Q8A ? (size_t)(K / 32) * sizeof(ilm__q8a)
                                    : (size_t)(K / 256) * sizeof(ilm__q8k);
        void *buf = ilm__cpu_scratch_get(&c->act, act_row * (size_t)M);
        ILM__RETURN_IF(!buf, ILM_ERR_NOMEM, "linear: cannot allocate %lld quantized rows",
                       (long long)M);
        for (int64_t m = 0; m < M; m++)
            quant(x + m * K, (uint8_t *)buf + (size_t)m * act_row, K);
        act = buf;
    }

    /* The four-row kernel's per-block terms, for every group of four rows. */
    float *aux = NULL;
    if (dot4 && M >= 4) {
        aux = ilm__cpu_scratch_get(&c->aux, (size_t)(M / 4) * (size_t)nb * 8 * sizeof(float));
        ILM__RETURN_IF(!aux, ILM_ERR_NOMEM, "linear: out of memory");
        for (int64_t g = 0; g < M / 4; g++)
            ilm__q8a_aux(nb, (const uint8_t *)act + (size_t)(4 * g) * act_row, act_row,
                         aux + g * nb * 8);
    }

    /* Rows of W split evenly across threads (each output is one dot
     * product, so the split never changes a bit); small matrices stay on
     * one thread, where waking the team would cost more than it saves. */
    int nt = ilm__cpu_threads(be);
    if ((double)N * (double)row_bytes * (double)M < 32768.0) nt = 1;
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = 0, T = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        T = omp_get_num_threads();
#endif
        int64_t n0 = N * t / T, n1 = N * (t + 1) / T;
        /* Tiles of ROW_TILE weight rows (a few KB, kept in L1) meet each
         * activation row in turn, so for M > 1 neither side streams from
         * L2 per output. */
        for (int64_t nt0 = n0; nt0 < n1; nt0 += ROW_TILE) {
            int64_t nt1 = nt0 + ROW_TILE < n1 ? nt0 + ROW_TILE : n1;
            int64_t m = 0;
            for (; dot4 && m + 4 <= M; m += 4) {
                const uint8_t *am = (const uint8_t *)act + (size_t)m * act_row;
                for (int64_t n = nt0; n < nt1; n++) {
                    float r[4];
                    dot4(nb, w + (size_t)n * row_bytes, am, act_row, aux + (m / 4) * nb * 8, r);
                    for (int k = 0; k < 4; k++) y[(m + k) * N + n] = r[k];
                }
            }
            for (; m < M; m++) {
                const uint8_t *am = (const uint8_t *)act + (size_t)m * act_row;
                for (int64_t n = nt0; n < nt1; n++)
                    y[m * N + n] = dot(nb, w + (size_t)n * row_bytes, am);
            }
        }
    }
    return ILM_OK;
}
