/* The CPU reference of the forward ops (backend.h), fp32, OpenMP over rows
 * and heads.  Every loop that reduces does so in a fixed order, so results
 * do not depend on the thread count. */
#include "backend/backend.h"
#include "backend/cpu/cpu.h"

#include <math.h>
#include <pthread.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define ILM__X86 1
#endif

ilm_status ilm__cpu_rmsnorm(const ilm__backend *be, const float *x, const float *w, float *y,
                            int64_t T, int64_t C, float eps)
{
    (void)be;
#pragma omp parallel for num_threads(ilm__num_threads()) if (T > 1)
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

ilm_status ilm__cpu_rope(const ilm__backend *be, float *x, int64_t T, int64_t NH, int64_t D,
                         const float *cos, const float *sin, bool interleaved)
{
    (void)be;
    const int64_t half = D / 2;
#pragma omp parallel for num_threads(ilm__num_threads()) if (T * NH > 64)
    for (int64_t th = 0; th < T * NH; th++) {
        int64_t t = th / NH;
        float *v = x + th * D;
        const float *c = cos + t * half, *s = sin + t * half;
        for (int64_t i = 0; i < half; i++) {
            int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            float va = v[a], vb = v[b];
            v[a] = va * c[i] - vb * s[i];
            v[b] = vb * c[i] + va * s[i];
        }
    }
    return ILM_OK;
}

/* ---- attention -------------------------------------------------------- */

/* dot(a, b) and y += p * x over n floats.  The AVX2 versions keep eight
 * partial sums; which version runs is decided once per process, so the
 * result does not depend on anything but the machine. */
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

#endif

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

static vec_ops g_vec = { dot_scalar, axpy_scalar };
static pthread_once_t g_vec_once = PTHREAD_ONCE_INIT;

static void pick_vec_ops(void)
{
#ifdef ILM__X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        g_vec = (vec_ops){ dot_avx2, axpy_avx2 };
#endif
}

const ilm__cpu_vec *ilm__cpu_vec_ops(void)
{
    pthread_once(&g_vec_once, pick_vec_ops);
    return &g_vec;
}

/* Positions per chunk when decoding: fixed, so the order of the partial
 * sums (and the bits of the result) do not depend on the thread count. */
#define ATT_CHUNK 64

/* One query (T = 1) over a long cache: the positions are split into chunks
 * shared among threads; each chunk scores all heads (reading every key row
 * once for its whole group), then, after a softmax per head, adds its part
 * of the weighted values, and the parts are summed in chunk order. */
static ilm_status attend_one(const vec_ops *vo, const float *q, const float *k, const float *v,
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
#pragma omp parallel num_threads(ilm__num_threads()) if (S >= 2 * ATT_CHUNK)
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
    (void)be;
    pthread_once(&g_vec_once, pick_vec_ops);
    const vec_ops vo = g_vec;
    const int64_t S = p0 + T, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    if (T == 1) return attend_one(&vo, q, k, v, out, S, H, KV, D, kv_stride, scale);
    /* Many queries (a prompt): each (query, kv head) pair is one task that
     * serves the whole group of query heads reading that kv head. */
    int failed = 0;
#pragma omp parallel num_threads(ilm__num_threads()) reduction(+ : failed)
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
    ILM_RETURN_IF(failed, ILM_ERR_NOMEM, "attention: out of memory for %lld scores", (long long)S);
    return ILM_OK;
}

ilm_status ilm__cpu_swiglu(const ilm__backend *be, const float *gate, const float *up, float *out,
                           int64_t n)
{
    (void)be;
#pragma omp parallel for num_threads(ilm__num_threads()) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
    return ILM_OK;
}

ilm_status ilm__cpu_add(const ilm__backend *be, float *y, const float *x, int64_t n)
{
    (void)be;
#pragma omp parallel for num_threads(ilm__num_threads()) if (n > 65536)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return ILM_OK;
}
