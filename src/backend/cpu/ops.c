/* The CPU reference of the forward ops (backend.h), fp32, OpenMP over rows
 * and heads.  Every loop that reduces does so in a fixed order, so results
 * do not depend on the thread count. */
#include "backend/backend.h"
#include "backend/cpu/cpu.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define ILM__X86 1
#endif

ilm_status ilm__cpu_rmsnorm(const ilm__backend *be, const float *x, const float *w, float *y,
                            int64_t T, int64_t C, float eps)
{
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T > 1)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * C;
        float *yr = y + t * C;
        double ss = 0; /* double: a row's sum of squares, exact enough for any C */
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float scale = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        for (int64_t c = 0; c < C; c++) yr[c] = xr[c] * scale * w[c];
    }
    return ILM_OK;
}

/* Rotates every pair of x[T, NH, D] by the angle of (cos, sin), or by its
 * negative (sign -1: the backward pass, whose gradient turns back by the
 * same angle; -(-s) and a - (-b) are exact, so the forward bits are kept). */
static void rotate(const ilm__backend *be, float *x, int64_t T, int64_t NH, int64_t D, const float *cos, const float *sin,
                   bool interleaved, float sign)
{
    const int64_t half = D / 2;
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T * NH > 64)
    for (int64_t th = 0; th < T * NH; th++) {
        int64_t t = th / NH;
        float *v = x + th * D;
        const float *c = cos + t * half, *s = sin + t * half;
        for (int64_t i = 0; i < half; i++) {
            int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            float va = v[a], vb = v[b], si = sign * s[i];
            v[a] = va * c[i] - vb * si;
            v[b] = vb * c[i] + va * si;
        }
    }
}

ilm_status ilm__cpu_rope(const ilm__backend *be, float *x, int64_t T, int64_t NH, int64_t D,
                         const float *cos, const float *sin, bool interleaved)
{
    rotate(be, x, T, NH, D, cos, sin, interleaved, 1.0f);
    return ILM_OK;
}

ilm_status ilm__cpu_rope_bwd(const ilm__backend *be, float *dx, int64_t T, int64_t NH, int64_t D,
                             const float *cos, const float *sin, bool interleaved)
{
    rotate(be, dx, T, NH, D, cos, sin, interleaved, -1.0f);
    return ILM_OK;
}

/* ---- attention -------------------------------------------------------- */

/* dot(a, b) and y += p * x over n floats.  The AVX2 versions keep eight
 * partial sums; which version runs is the instance's ISA level, so the
 * result depends on nothing but that level. */
#ifdef ILM__X86
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t n)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc0 = _mm256_add_ps(acc0, acc1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float sum = _mm_cvtss_f32(h);
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

__attribute__((target("avx2,fma"))) static void axpy_avx2(float *y, float p, const float *x, int64_t n)
{
    __m256 vp = _mm256_set1_ps(p);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vp, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += p * x[i];
}

/* exp on eight floats: Cephes' expf (x = n ln2 + r, |r| <= ln2 / 2, a
 * degree-5 polynomial for e^r, 2^n by the exponent bits), within 2 ulp of
 * expf; 0 below -87.3 (so exp(-inf) = 0), clamped at 88.7 above. */
__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.72283f);
    const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* The same on the first n < 8 floats of x (the rest read as 0). */
__attribute__((target("avx2,fma"))) static inline __m256 load_part(const float *x, int64_t n)
{
    float t[8] = { 0 };
    memcpy(t, x, (size_t)n * sizeof *t);
    return _mm256_loadu_ps(t);
}

__attribute__((target("avx2,fma"))) static void store_part(float *y, __m256 v, int64_t n)
{
    float t[8];
    _mm256_storeu_ps(t, v);
    memcpy(y, t, (size_t)n * sizeof *t);
}

/* Lanes sum into four double accumulators, added together at the end. */
__attribute__((target("avx2,fma"))) static double exp_sum_avx2(float *y, const float *x, float sub,
                                                               int64_t n)
{
    const __m256 vs = _mm256_set1_ps(sub);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i < n; i += 8) {
        const int64_t m = n - i < 8 ? n - i : 8;
        __m256 e = exp8(_mm256_sub_ps(m == 8 ? _mm256_loadu_ps(x + i) : load_part(x + i, m), vs));
        if (m < 8) /* the lanes past n must not add exp(0 - sub) */
            e = _mm256_and_ps(e, _mm256_castsi256_ps(_mm256_cmpgt_epi32(
                                     _mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))));
        if (y) {
            if (m == 8) _mm256_storeu_ps(y + i, e);
            else store_part(y + i, e, m);
        }
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double t[4];
    _mm256_storeu_pd(t, _mm256_add_pd(a0, a1));
    return (t[0] + t[1]) + (t[2] + t[3]);
}

/* sigmoid(g) = 1 / (1 + exp(-g)). */
__attribute__((target("avx2,fma"))) static inline __m256 sigmoid8(__m256 g)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

/* d silu / dg = s (1 + g (1 - s)) with s = sigmoid(g). */
__attribute__((target("avx2,fma"))) static void swiglu_bwd_avx2(const float *d, const float *g,
                                                                const float *u, float *dg,
                                                                float *du, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 vg = _mm256_loadu_ps(g + i), vu = _mm256_loadu_ps(u + i), vd = _mm256_loadu_ps(d + i);
        const __m256 s = sigmoid8(vg), ds = _mm256_mul_ps(vd, s);
        _mm256_storeu_ps(du + i, _mm256_mul_ps(ds, vg));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(ds, vu),
                                               _mm256_fmadd_ps(vg, _mm256_sub_ps(one, s), one)));
    }
    for (; i < n; i++) {
        const float gi = g[i], ui = u[i], di = d[i], s = 1.0f / (1.0f + expf(-gi));
        du[i] = di * gi * s;
        dg[i] = di * ui * s * (1.0f + gi * (1.0f - s));
    }
}

#endif

static double exp_sum_scalar(float *y, const float *x, float sub, int64_t n)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        const float e = expf(x[i] - sub);
        if (y) y[i] = e;
        sum += e;
    }
    return sum;
}

static void swiglu_scalar(const float *g, const float *u, float *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void swiglu_bwd_scalar(const float *d, const float *g, const float *u, float *dg, float *du,
                              int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i], ui = u[i], di = d[i], s = 1.0f / (1.0f + expf(-gi));
        du[i] = di * gi * s;
        dg[i] = di * ui * s * (1.0f + gi * (1.0f - s));
    }
}

static float dot_scalar(const float *a, const float *b, int64_t n)
{
    float s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_scalar(float *y, float p, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += p * x[i];
}

typedef ilm__cpu_vec vec_ops;

static const vec_ops k_vec_scalar = { dot_scalar, axpy_scalar, exp_sum_scalar, swiglu_bwd_scalar };
#ifdef ILM__X86
static const vec_ops k_vec_avx2 = { dot_avx2, axpy_avx2, exp_sum_avx2, swiglu_bwd_avx2 };
#endif

const ilm__cpu_vec *ilm__cpu_vec_ops(const ilm__backend *be)
{
#ifdef ILM__X86
    if (ilm__cpu_ctx_of(be)->isa >= ILM__ISA_AVX2) return &k_vec_avx2;
#endif
    (void)be;
    return &k_vec_scalar;
}

/* Positions per chunk when decoding: fixed, so the order of the partial
 * sums (and the bits of the result) do not depend on the thread count. */
#define ATT_CHUNK 64

/* One query (T = 1) over a long cache: the positions are split into chunks
 * shared among threads; each chunk scores all heads (reading every key row
 * once for its whole group), then, after a softmax per head, adds its part
 * of the weighted values, and the parts are summed in chunk order. */
static ilm_status attend_one(const ilm__backend *be, const vec_ops *vo, const float *q, const float *k, const float *v,
                             float *out, int64_t S, int64_t H, int64_t KV, int64_t D,
                             int64_t kv_stride, float scale)
{
    const int64_t group = H / KV, n_chunks = (S + ATT_CHUNK - 1) / ATT_CHUNK;
    float *scores = ilm__malloc((size_t)(H * S) * sizeof *scores);
    float *part = ilm__malloc((size_t)(n_chunks * H * D) * sizeof *part);
    float *norm = ilm__malloc((size_t)(2 * H) * sizeof *norm);
    if (!scores || !part || !norm) {
        ilm__free(scores);
        ilm__free(part);
        ilm__free(norm);
        return ilm__error(ILM_ERR_NOMEM, "attention: out of memory for %lld positions", (long long)S);
    }
#pragma omp parallel num_threads(ilm__cpu_threads(be)) if (S >= 2 * ATT_CHUNK)
    {
#pragma omp for schedule(static)
        for (int64_t c = 0; c < n_chunks; c++)
            for (int64_t s = c * ATT_CHUNK; s < S && s < (c + 1) * ATT_CHUNK; s++)
                for (int64_t h = 0; h < H; h++)
                    scores[h * S + s] = vo->dot(q + h * D, k + s * kv_stride + (h / group) * D, D) * scale;
#pragma omp for schedule(static)
        for (int64_t h = 0; h < H; h++) {
            float mx = -INFINITY, sum = 0;
            for (int64_t s = 0; s < S; s++) mx = fmaxf(mx, scores[h * S + s]);
            for (int64_t s = 0; s < S; s++) {
                scores[h * S + s] = expf(scores[h * S + s] - mx);
                sum += scores[h * S + s];
            }
            norm[h] = 1.0f / sum;
        }
#pragma omp for schedule(static)
        for (int64_t c = 0; c < n_chunks; c++) {
            float *pc = part + c * H * D;
            memset(pc, 0, (size_t)(H * D) * sizeof *pc);
            for (int64_t s = c * ATT_CHUNK; s < S && s < (c + 1) * ATT_CHUNK; s++)
                for (int64_t h = 0; h < H; h++)
                    vo->axpy(pc + h * D, scores[h * S + s], v + s * kv_stride + (h / group) * D, D);
        }
#pragma omp for schedule(static)
        for (int64_t h = 0; h < H; h++) {
            float *o = out + h * D;
            memset(o, 0, (size_t)D * sizeof *o);
            for (int64_t c = 0; c < n_chunks; c++) vo->axpy(o, norm[h], part + (c * H + h) * D, D);
        }
    }
    ilm__free(scores);
    ilm__free(part);
    ilm__free(norm);
    return ILM_OK;
}

ilm_status ilm__cpu_attention(const ilm__backend *be, const float *q, const float *k,
                              const float *v, float *out, int64_t T, int64_t p0, int64_t H,
                              int64_t KV, int64_t D, int64_t kv_stride)
{
    const vec_ops vo = *ilm__cpu_vec_ops(be);
    const int64_t S = p0 + T, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    if (T == 1) return attend_one(be, &vo, q, k, v, out, S, H, KV, D, kv_stride, scale);
    /* Many queries (a prompt): each (query, kv head) pair is one task that
     * serves the whole group of query heads reading that kv head. */
    int failed = 0;
#pragma omp parallel num_threads(ilm__cpu_threads(be)) reduction(+ : failed)
    {
        float *scores = ilm__malloc((size_t)(group * S) * sizeof *scores);
        if (!scores) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t tj = 0; tj < T * KV; tj++) {
            if (!scores) continue;
            const int64_t t = tj / KV, j = tj % KV, n = p0 + t + 1; /* causal */
            const float *qg = q + (t * H + j * group) * D;
            for (int64_t s = 0; s < n; s++) {
                const float *kr = k + s * kv_stride + j * D;
                for (int64_t g = 0; g < group; g++) scores[g * S + s] = vo.dot(qg + g * D, kr, D) * scale;
            }
            for (int64_t g = 0; g < group; g++) {
                float *sc = scores + g * S, mx = -INFINITY, sum = 0;
                for (int64_t s = 0; s < n; s++) mx = fmaxf(mx, sc[s]);
                for (int64_t s = 0; s < n; s++) {
                    sc[s] = expf(sc[s] - mx);
                    sum += sc[s];
                }
                float inv = 1.0f / sum, *o = out + (t * H + j * group + g) * D;
                memset(o, 0, (size_t)D * sizeof *o);
                for (int64_t s = 0; s < n; s++) vo.axpy(o, sc[s] * inv, v + s * kv_stride + j * D, D);
            }
        }
        ilm__free(scores);
    }
    ILM__RETURN_IF(failed, ILM_ERR_NOMEM, "attention: out of memory for %lld scores", (long long)S);
    return ILM_OK;
}

/* Blocks of elements per task of the elementwise ops: fixed, so the
 * vector and tail loops split the data the same way for any thread count. */
#define EW_BLOCK 16384

/* With libm's expf, not the vector exp: inference shares this op, and the
 * 8-bit activations of the quantized kernels turn exp's last-bit
 * differences into logit changes of 0.1 (tests/test_model.c's tolerance
 * against llama.cpp).  Training uses the vector exp in its backward. */
ilm_status ilm__cpu_swiglu(const ilm__backend *be, const float *gate, const float *up, float *out,
                           int64_t n)
{
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (n > 2 * EW_BLOCK) schedule(static)
    for (int64_t i = 0; i < n; i += EW_BLOCK)
        swiglu_scalar(gate + i, up + i, out + i, n - i < EW_BLOCK ? n - i : EW_BLOCK);
    return ILM_OK;
}

ilm_status ilm__cpu_add(const ilm__backend *be, float *y, const float *x, int64_t n)
{
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return ILM_OK;
}
