/*
 * src/train/optim.h -- AdamW, the learning-rate schedule and gradient-norm
 * clipping, on the flat fp32 slabs of model/params.h.
 *
 * Every function works on an element range [begin, end) of the slabs and
 * never on a whole slab: a sharding layer (Hybrid ZeRO) owns ranges, and a
 * process may hold nothing but its own range of the gradients and moments.
 * Pointers therefore point at the range's first element: for a whole slab
 * `s` pass `s + begin`; for a shard-local buffer pass the buffer.
 *
 * One optimizer step, as torch does it (clip_grad_norm_ then AdamW.step):
 *
 *     double sq = ilm__optim_sqnorm(be, grad + begin, end - begin);
 *         (with ZeRO: sum sq over all ranges, the caller's all-reduce)
 *     double norm = sqrt(sq);
 *     if (!isfinite(norm)) skip the step          (the caller's decision)
 *     float c = ilm__optim_clip_coef(&opts, norm);
 *     ilm__adamw_step(be, &opts, ps, begin, end, step, ilm__optim_lr(&opts, step),
 *                     c, param + begin, grad + begin, m + begin, v + begin);
 *
 * All functions are reentrant; the two that compute run on the caller's
 * backend instance (its sqnorm and adamw ops) with that instance's threads.
 */
#ifndef ILM_TRAIN_OPTIM_H
#define ILM_TRAIN_OPTIM_H

#include "backend/backend.h"
#include "model/params.h"

typedef enum ilm__lr_schedule {
    ILM__LR_COSINE,   /* "cosine" (the default) */
    ILM__LR_LINEAR,   /* "linear" */
    ILM__LR_CONSTANT  /* "constant": lr after warmup, forever */
} ilm__lr_schedule;

typedef struct ilm__optim_opts {
    double           lr;            /* peak learning rate (default 3e-4) */
    double           min_lr;        /* floor of the decay, <= lr (default 0) */
    int64_t          warmup_steps;  /* default 0 */
    ilm__lr_schedule schedule;
    int64_t          total_steps;   /* decay horizon; > warmup_steps for cosine
                                       and linear (default 1000) */
    double           beta1, beta2;  /* defaults 0.9, 0.95 */
    double           eps;           /* default 1e-8 */
    double           weight_decay;  /* default 0.1; tensors with decay only */
    double           clip_norm;     /* max global L2 norm; 0 = off (default 1) */
} ilm__optim_opts;

/* The defaults above. */
void ilm__optim_opts_default(ilm__optim_opts *o);

/* Sets *o to the defaults, then reads the JSON object `obj` (NULL keeps the
 * defaults) with keys "lr", "min_lr", "warmup_steps", "schedule" ("cosine",
 * "linear" or "constant"), "total_steps", "beta1", "beta2", "eps",
 * "weight_decay" and "clip_norm".  `path` is the object's key path for
 * messages ("train.optimizer").
 * @return ILM_OK, or ILM_ERR_CONFIG naming the key: an unknown key, a wrong
 *         type, a value out of range (lr > 0, 0 <= min_lr <= lr,
 *         0 <= beta < 1, eps > 0, weight_decay >= 0, clip_norm >= 0,
 *         total_steps > warmup_steps unless the schedule is constant). */
ilm_status ilm__optim_opts_parse(const cJSON *obj, const char *path, ilm__optim_opts *o);

/* The learning rate of optimizer step `step`, counted from 1 like AdamW's
 * own step count (the one that drives bias correction):
 *   warmup (step <= warmup_steps, when warmup_steps > 0): lr * step /
 *       warmup_steps, so the first step of a 3-step warmup uses lr / 3 and
 *       step 3 uses lr; step 0 (before training) gives 0;
 *   then, with p = (step - warmup_steps) / (total_steps - warmup_steps):
 *       cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * p)) / 2
 *       linear:   lr - (lr - min_lr) * p
 *       constant: lr
 *   and min_lr from total_steps on (cosine and linear).
 * Negative steps are treated as 0. */
double ilm__optim_lr(const ilm__optim_opts *o, int64_t step);

/* The sum of squares of x[0 .. n) in double.  The result depends only on
 * the data, never on the thread count: the range is cut into fixed chunks
 * of ILM__SQNORM_CHUNK elements (from x[0]), each summed in order, and the
 * chunk sums are added in order.  Non-finite input gives a non-finite
 * result (inf or NaN), which is how the caller detects an overflowed or
 * poisoned gradient; a finite float's square cannot overflow a double.
 * Alignment gaps between tensors are summed too: they must hold zeros, as
 * slabs from ilm__calloc do when nothing writes there. */
double ilm__optim_sqnorm(const ilm__backend *be, const float *x, size_t n);

/* The factor gradients are multiplied by, as torch.nn.utils.clip_grad_norm_
 * computes it: min(1, clip_norm / (norm + 1e-6)); 1 when clipping is off.
 * A NaN norm gives NaN and an infinite one 0: skip such steps. */
float ilm__optim_clip_coef(const ilm__optim_opts *o, double norm);

/* One AdamW step (Loshchilov & Hutter, in torch.optim.AdamW's order) on the
 * slab elements [begin, end) of the layout `ps`, for every tensor element
 * inside the range; alignment gaps are neither read nor written.  For each
 * element, with g = grad * grad_scale (the clip coefficient):
 *     p -= lr * weight_decay * p             (tensors with decay only)
 *     m += (1 - beta1) * (g - m)
 *     v  = beta2 * v + (1 - beta2) * g * g
 *     p -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
 * `step` counts from 1.  param, grad, m and v point at slab element `begin`
 * (see the top of this file) and have end - begin elements; m and v start
 * at zero.  Elementwise, so splitting a range into pieces gives results
 * bit-identical to one call over the whole range.
 * @return ILM_OK, or ILM_ERR_INVALID_ARG (NULL pointer, step < 1,
 *         begin > end, end > ps->total). */
ilm_status ilm__adamw_step(const ilm__backend *be, const ilm__optim_opts *o, const ilm__params *ps,
                           size_t begin, size_t end, int64_t step, double lr,
                           float grad_scale, float *param, const float *grad,
                           float *m, float *v);

#endif /* ILM_TRAIN_OPTIM_H */
