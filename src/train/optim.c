/* AdamW, the learning-rate schedule and gradient clipping (optim.h). */
#include "train/optim.h"

#include <math.h>
#include <string.h>

void ilm__optim_opts_default(ilm__optim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lr = 3e-4;
    o->min_lr = 0;
    o->warmup_steps = 0;
    o->schedule = ILM__LR_COSINE;
    o->total_steps = 1000;
    o->beta1 = 0.9;
    o->beta2 = 0.95;
    o->eps = 1e-8;
    o->weight_decay = 0.1;
    o->clip_norm = 1.0;
}

ilm_status ilm__optim_opts_parse(const cJSON *obj, const char *path, ilm__optim_opts *o)
{
    ilm__optim_opts_default(o);
    if (!obj) return ILM_OK;
    const char *schedule = NULL;
    const double big = 9007199254740992.0; /* 2^53 */
    const ilm__jfield f[] = {
        { "lr", ILM__J_NUMBER, &o->lr, false, 0, 1e6 },
        { "min_lr", ILM__J_NUMBER, &o->min_lr, false, 0, 1e6 },
        { "warmup_steps", ILM__J_INT, &o->warmup_steps, false, 0, big },
        { "schedule", ILM__J_STRING, &schedule, false, 0, 0 },
        { "total_steps", ILM__J_INT, &o->total_steps, false, 1, big },
        { "beta1", ILM__J_NUMBER, &o->beta1, false, 0, 1 },
        { "beta2", ILM__J_NUMBER, &o->beta2, false, 0, 1 },
        { "eps", ILM__J_NUMBER, &o->eps, false, 0, 1 },
        { "weight_decay", ILM__J_NUMBER, &o->weight_decay, false, 0, 1e6 },
        { "clip_norm", ILM__J_NUMBER, &o->clip_norm, false, 0, 1e30 },
    };
    ILM_FORWARD(ilm__json_fields(obj, path, f, sizeof f / sizeof f[0]));
    const char *sep = *path ? "." : "";
    if (schedule) {
        if (strcmp(schedule, "cosine") == 0) o->schedule = ILM__LR_COSINE;
        else if (strcmp(schedule, "linear") == 0) o->schedule = ILM__LR_LINEAR;
        else if (strcmp(schedule, "constant") == 0) o->schedule = ILM__LR_CONSTANT;
        else
            return ilm__error(ILM_ERR_CONFIG,
                              "config: '%s%sschedule' is \"%s\", not \"cosine\", \"linear\" or \"constant\"",
                              path, sep, schedule);
    }
    ILM_RETURN_IF(!(o->lr > 0), ILM_ERR_CONFIG, "config: '%s%slr' must be > 0", path, sep);
    ILM_RETURN_IF(o->min_lr > o->lr, ILM_ERR_CONFIG, "config: '%s%smin_lr' (%g) exceeds lr (%g)",
                  path, sep, o->min_lr, o->lr);
    ILM_RETURN_IF(o->beta1 >= 1, ILM_ERR_CONFIG, "config: '%s%sbeta1' must be < 1", path, sep);
    ILM_RETURN_IF(o->beta2 >= 1, ILM_ERR_CONFIG, "config: '%s%sbeta2' must be < 1", path, sep);
    ILM_RETURN_IF(!(o->eps > 0), ILM_ERR_CONFIG, "config: '%s%seps' must be > 0", path, sep);
    ILM_RETURN_IF(o->schedule != ILM__LR_CONSTANT && o->total_steps <= o->warmup_steps,
                  ILM_ERR_CONFIG, "config: '%s%stotal_steps' (%lld) must exceed warmup_steps (%lld)",
                  path, sep, (long long)o->total_steps, (long long)o->warmup_steps);
    return ILM_OK;
}

double ilm__optim_lr(const ilm__optim_opts *o, int64_t step)
{
    if (step < 0) step = 0;
    if (step <= o->warmup_steps && o->warmup_steps > 0)
        return o->lr * (double)step / (double)o->warmup_steps;
    if (o->schedule == ILM__LR_CONSTANT) return o->lr;
    if (step >= o->total_steps) return o->min_lr;
    const double p = (double)(step - o->warmup_steps) / (double)(o->total_steps - o->warmup_steps);
    if (o->schedule == ILM__LR_LINEAR) return o->lr - (o->lr - o->min_lr) * p;
    return o->min_lr + (o->lr - o->min_lr) * 0.5 * (1.0 + cos(M_PI * p));
}

/* ---- gradient norm ---------------------------------------------------------- */

static double chunk_sqsum(const float *x, size_t n)
{
    /* Four running sums break the add dependency chain; their count and
     * order are fixed, so the result is too. */
    double s[4] = { 0, 0, 0, 0 };
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) s[k] += (double)x[i + k] * (double)x[i + k];
    for (; i < n; i++) s[0] += (double)x[i] * (double)x[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

double ilm__optim_sqnorm(const float *x, size_t n)
{
    /* Chunk sums of up to GROUP chunks at a time go to a stack array, in
     * parallel, then into the total in chunk order: the same additions in
     * the same order whatever the thread count, and no allocation. */
    enum { GROUP = 256 };
    const size_t chunk = ILM__OPTIM_CHUNK;
    const size_t n_chunks = (n + chunk - 1) / chunk;
    double part[GROUP], total = 0;
    for (size_t g0 = 0; g0 < n_chunks; g0 += GROUP) {
        const long ng = (long)(n_chunks - g0 < GROUP ? n_chunks - g0 : GROUP);
#pragma omp parallel for schedule(static) num_threads(ilm__num_threads()) if (ng > 1)
        for (long c = 0; c < ng; c++) {
            size_t lo = (g0 + (size_t)c) * chunk, hi = lo + chunk < n ? lo + chunk : n;
            part[c] = chunk_sqsum(x + lo, hi - lo);
        }
        for (long c = 0; c < ng; c++) total += part[c];
    }
    return total;
}

float ilm__optim_clip_coef(const ilm__optim_opts *o, double norm)
{
    if (!(o->clip_norm > 0)) return 1.0f;
    if (isnan(norm)) return NAN;
    double c = o->clip_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

/* ---- AdamW ------------------------------------------------------------------ */

/* The per-step constants, rounded to float once as torch rounds its Python
 * scalars when it hands them to a float kernel. */
typedef struct adamw_k {
    float decay;     /* 1 - lr * weight_decay */
    float one_m_b1;  /* 1 - beta1, the lerp weight */
    float b2, one_m_b2;
    float step_size; /* lr / (1 - beta1^t) */
    float bc2_sqrt;  /* sqrt(1 - beta2^t) */
    float eps;
    float scale;     /* the clip coefficient */
} adamw_k;

static void adamw_span(const adamw_k *k, bool decay, float *p, const float *gr, float *m, float *v,
                       size_t n)
{
#pragma omp for schedule(static) nowait
    for (size_t i = 0; i < n; i++) {
        const float g = gr[i] * k->scale;
        float pi = p[i];
        if (decay) pi *= k->decay;
        /* torch's lerp(m, g, w) for w < 0.5: m + w * (g - m). */
        const float mi = m[i] + k->one_m_b1 * (g - m[i]);
        const float vi = v[i] * k->b2 + k->one_m_b2 * g * g;
        const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
        p[i] = pi + (-k->step_size * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

ilm_status ilm__adamw_step(const ilm__optim_opts *o, const ilm__params *ps, size_t begin,
                           size_t end, int64_t step, double lr, float grad_scale, float *param,
                           const float *grad, float *m, float *v)
{
    ILM_RETURN_IF(!o || !ps || (begin < end && (!param || !grad || !m || !v)),
                  ILM_ERR_INVALID_ARG, "adamw: NULL argument");
    ILM_RETURN_IF(step < 1, ILM_ERR_INVALID_ARG, "adamw: step %lld; steps count from 1",
                  (long long)step);
    ILM_RETURN_IF(begin > end || end > ps->total, ILM_ERR_INVALID_ARG,
                  "adamw: range [%zu, %zu) is not inside the slab of %zu elements", begin, end,
                  ps->total);
    const double bc1 = 1.0 - pow(o->beta1, (double)step);
    const double bc2 = 1.0 - pow(o->beta2, (double)step);
    const adamw_k k = {
        .decay = (float)(1.0 - lr * o->weight_decay),
        .one_m_b1 = (float)(1.0 - o->beta1),
        .b2 = (float)o->beta2,
        .one_m_b2 = (float)(1.0 - o->beta2),
        .step_size = (float)(lr / bc1),
        .bc2_sqrt = (float)sqrt(bc2),
        .eps = (float)o->eps,
        .scale = grad_scale,
    };
    /* The first tensor that ends after `begin` (tensors are in offset order). */
    size_t lo = 0, hi = ps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps->p[mid].offset + ps->p[mid].numel <= begin) lo = mid + 1;
        else hi = mid;
    }
    const size_t first = lo;
#pragma omp parallel num_threads(ilm__num_threads())
    for (size_t t = first; t < ps->n && ps->p[t].offset < end; t++) {
        const ilm__param *pp = &ps->p[t];
        size_t a = pp->offset > begin ? pp->offset : begin;
        size_t b = pp->offset + pp->numel < end ? pp->offset + pp->numel : end;
        if (a >= b) continue;
        adamw_span(&k, pp->decay && o->weight_decay != 0, param + (a - begin), grad + (a - begin),
                   m + (a - begin), v + (a - begin), b - a);
    }
    return ILM_OK;
}
