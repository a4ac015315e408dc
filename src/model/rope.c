/* RoPE frequencies, as transformers computes them (rope_init_fn of each
 * rope_type): inv_freq_i = theta^(-2i/D) for i < D/2, then
 *   linear:  inv_freq / factor (positions divided by the factor);
 *   llama3:  low-frequency bands (wavelength > original_max / low_factor)
 *            divided by factor, high-frequency bands kept, the band between
 *            interpolated smoothly;
 *   dynamic: past max_position the base becomes
 *            theta * (factor * n / max_position - (factor - 1))^(D / (D-2)).
 * Angles are computed in double and rounded once. */
#include "model/internal.h"

#include <math.h>
#include <string.h>

double ilm__rope_dynamic_base(const ilm__arch *a, int64_t n_ctx)
{
    double theta = a->rope_theta;
    if (a->rope_scaling != ILM__ROPE_SCALING_DYNAMIC || n_ctx <= a->max_position) return theta;
    double f = a->rope_factor, D = a->head_dim;
    return theta * pow(f * (double)n_ctx / a->max_position - (f - 1.0), D / (D - 2.0));
}

static void base_inv_freq(const ilm__arch *a, double base, float *inv_freq)
{
    int64_t half = a->head_dim / 2;
    for (int64_t i = 0; i < half; i++)
        inv_freq[i] = (float)(1.0 / pow(base, (double)(2 * i) / (double)a->head_dim));
}

ilm_status ilm__rope_init(ilm_model *m)
{
    const ilm__arch *a = &m->arch;
    int64_t half = a->head_dim / 2;
    m->inv_freq = ilm__malloc((size_t)half * sizeof *m->inv_freq);
    ILM__RETURN_IF(!m->inv_freq, ILM_ERR_NOMEM, "model: out of memory");
    base_inv_freq(a, a->rope_theta, m->inv_freq);
    m->rope_attn_factor = 1.0f;
    if (a->rope_scaling == ILM__ROPE_SCALING_LINEAR) {
        for (int64_t i = 0; i < half; i++) m->inv_freq[i] = (float)(m->inv_freq[i] / a->rope_factor);
    } else if (a->rope_scaling == ILM__ROPE_SCALING_LLAMA3) {
        double old_ctx = a->rope_original_max_position, f = a->rope_factor;
        double lo = a->rope_low_freq_factor, hi = a->rope_high_freq_factor;
        double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
        for (int64_t i = 0; i < half; i++) {
            double inv = m->inv_freq[i], wavelen = 2.0 * M_PI / inv;
            if (wavelen > low_wavelen) {
                inv = inv / f;
            } else if (wavelen >= high_wavelen) { /* between the bands */
                double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                inv = (1.0 - smooth) * inv / f + smooth * inv;
            }
            m->inv_freq[i] = (float)inv;
        }
    }
    return ILM_OK;
}

void ilm__rope_tables(const ilm_model *m, const int32_t *pos, int64_t T, int64_t n_ctx,
                      float *cos_t, float *sin_t)
{
    const ilm__arch *a = &m->arch;
    int64_t half = a->head_dim / 2;
    float dyn[512];
    const float *inv = m->inv_freq;
    if (a->rope_scaling == ILM__ROPE_SCALING_DYNAMIC && n_ctx > a->max_position && half <= 512) {
        base_inv_freq(a, ilm__rope_dynamic_base(a, n_ctx), dyn);
        inv = dyn;
    }
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < half; i++) {
            double angle = (double)pos[t] * (double)inv[i];
            cos_t[t * half + i] = (float)cos(angle) * m->rope_attn_factor;
            sin_t[t * half + i] = (float)sin(angle) * m->rope_attn_factor;
        }
}

ilm_status ilm__rope_permute_rows(int64_t D, int64_t rows, int64_t width, float *x, bool to_hf)
{
    float *tmp = ilm__malloc((size_t)(D * width) * sizeof *tmp);
    ILM__RETURN_IF(!tmp, ILM_ERR_NOMEM, "model: out of memory");
    for (float *head = x; head < x + rows * width; head += D * width) {
        memcpy(tmp, head, (size_t)(D * width) * sizeof *tmp);
        for (int64_t half = 0; half < 2; half++)
            for (int64_t k = 0; k < D / 2; k++) {
                const int64_t hf = half * (D / 2) + k, gg = 2 * k + half;
                memcpy(head + (to_hf ? hf : gg) * width, tmp + (to_hf ? gg : hf) * width,
                       (size_t)width * sizeof *tmp);
            }
    }
    ilm__free(tmp);
    return ILM_OK;
}
