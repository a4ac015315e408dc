/* The CPU reference of the forward ops (backend.h), fp32, OpenMP over rows
 * and heads.  Every loop that reduces does so in a fixed order, so results
 * do not depend on the thread count. */
#include "backend/backend.h"
#include "backend/cpu/cpu.h"

#include <math.h>
#include <string.h>

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

ilm_status ilm__cpu_attention(const ilm__backend *be, const float *q, const float *k,
                              const float *v, float *out, int64_t T, int64_t p0, int64_t H,
                              int64_t KV, int64_t D, int64_t kv_stride)
{
    (void)be;
    const int64_t S = p0 + T, group = H / KV;
    const float scale = 1.0f / sqrtf((float)D);
    int failed = 0;
#pragma omp parallel num_threads(ilm__num_threads()) reduction(+ : failed)
    {
        float *scores = ilm__malloc((size_t)S * sizeof *scores);
        if (!scores) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t th = 0; th < T * H; th++) {
            if (!scores) continue;
            int64_t t = th / H, h = th % H, j = h / group, n = p0 + t + 1; /* causal */
            const float *qv = q + th * D;
            float mx = -INFINITY;
            for (int64_t s = 0; s < n; s++) {
                const float *kv = k + s * kv_stride + j * D;
                float dot = 0;
                for (int64_t d = 0; d < D; d++) dot += qv[d] * kv[d];
                scores[s] = dot * scale;
                if (scores[s] > mx) mx = scores[s];
            }
            float sum = 0;
            for (int64_t s = 0; s < n; s++) {
                scores[s] = expf(scores[s] - mx);
                sum += scores[s];
            }
            float *o = out + th * D;
            memset(o, 0, (size_t)D * sizeof *o);
            for (int64_t s = 0; s < n; s++) {
                const float *vv = v + s * kv_stride + j * D;
                float p = scores[s] / sum;
                for (int64_t d = 0; d < D; d++) o[d] += p * vv[d];
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
