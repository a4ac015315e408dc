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
    ILM__FORWARD(ilm__json_fields(obj, path, f, sizeof f / sizeof f[0]));
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
    ILM__RETURN_IF(!(o->lr > 0), ILM_ERR_CONFIG, "config: '%s%slr' must be > 0", path, sep);
    ILM__RETURN_IF(o->min_lr > o->lr, ILM_ERR_CONFIG, "config: '%s%smin_lr' (%g) exceeds lr (%g)",
                   path, sep, o->min_lr, o->lr);
    ILM__RETURN_IF(o->beta1 >= 1, ILM_ERR_CONFIG, "config: '%s%sbeta1' must be < 1", path, sep);
    ILM__RETURN_IF(o->beta2 >= 1, ILM_ERR_CONFIG, "config: '%s%sbeta2' must be < 1", path, sep);
    ILM__RETURN_IF(!(o->eps > 0), ILM_ERR_CONFIG, "config: '%s%seps' must be > 0", path, sep);
    ILM__RETURN_IF(o->schedule != ILM__LR_CONSTANT && o->total_steps <= o->warmup_steps,
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

double ilm__optim_sqnorm(const ilm__backend *be, const float *x, size_t n)
{
    double sq = 0;
    if (be->iface.sqnorm(be, x, n, &sq) != ILM_OK) return NAN;
    return sq;
}

float ilm__optim_clip_coef(const ilm__optim_opts *o, double norm)
{
    if (!(o->clip_norm > 0)) return 1.0f;
    if (isnan(norm)) return NAN;
    double c = o->clip_norm / (norm + 1e-6);
    return c < 1.0 ? (float)c : 1.0f;
}

/* ---- AdamW ------------------------------------------------------------------ */

ilm_status ilm__adamw_step(const ilm__backend *be, const ilm__optim_opts *o, const ilm__params *ps, size_t begin,
                           size_t end, int64_t step, double lr, float grad_scale, float *param,
                           const float *grad, float *m, float *v)
{
    ILM__RETURN_IF(!o || !ps || (begin < end && (!param || !grad || !m || !v)),
                   ILM_ERR_INVALID_ARG, "adamw: NULL argument");
    ILM__RETURN_IF(step < 1, ILM_ERR_INVALID_ARG, "adamw: step %lld; steps count from 1",
                   (long long)step);
    ILM__RETURN_IF(begin > end || end > ps->total, ILM_ERR_INVALID_ARG,
                   "adamw: range [%zu, %zu) is not inside the slab of %zu elements", begin, end,
                  ps->total);
    const double bc1 = 1.0 - pow(o->beta1, (double)step);
    const double bc2 = 1.0 - pow(o->beta2, (double)step);
    const ilm__adamw_k k = {
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
    size_t n_spans = 0;
    for (size_t t = first; t < ps->n && ps->p[t].offset < end; t++) n_spans++;
    ilm__adamw_span *spans = ilm__malloc((n_spans ? n_spans : 1) * sizeof *spans);
    ILM__RETURN_IF(!spans, ILM_ERR_NOMEM, "adamw: out of memory");
    n_spans = 0;
    for (size_t t = first; t < ps->n && ps->p[t].offset < end; t++) {
        const ilm__param *pp = &ps->p[t];
        size_t a = pp->offset > begin ? pp->offset : begin;
        size_t b = pp->offset + pp->numel < end ? pp->offset + pp->numel : end;
        if (a >= b) continue;
        const size_t o0 = a - begin;
        spans[n_spans++] = (ilm__adamw_span){ param + o0, m + o0, v + o0, grad + o0, b - a,
                                              pp->decay && o->weight_decay != 0 };
    }
    const ilm_status st = be->iface.adamw(be, &k, spans, n_spans);
    ilm__free(spans);
    return st;
}
