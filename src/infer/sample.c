/* Sampling: repetition penalty, then greedy or temperature with top-k,
 * top-p (nucleus) and min-p filtering, in the order HF's and llama.cpp's
 * samplers apply them.  Randomness comes from the session's Philox stream,
 * so a seed reproduces a generation on every platform. */
#include "infer/internal.h"

#include <math.h>
#include <stdlib.h>

void ilm__sampling_defaults(ilm__sampling *p)
{
    *p = (ilm__sampling){ .temperature = 0.8, .top_k = 40, .top_p = 0.95, .min_p = 0.05,
                          .repetition_penalty = 1.0, .repeat_last_n = 64, .seed = 0 };
}

typedef struct cand {
    float   logit;
    int32_t id;
} cand;

static int by_logit_desc(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id; /* ties: lower id first, for determinism */
}

/* Restores the min-heap (worst candidate at the root, by_logit_desc order)
 * below position i. */
static void heap_down(cand *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && by_logit_desc(&h[l], &h[w]) > 0) w = l;
        if (r < n && by_logit_desc(&h[r], &h[w]) > 0) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

int32_t ilm__sample(const float *logits, int64_t V, const ilm__sampling *p,
                    const int32_t *history, size_t n_history, ilm__rng *rng, void *work)
{
    cand *c = work;
    for (int64_t i = 0; i < V; i++) c[i] = (cand){ logits[i], (int32_t)i };
    if (p->repetition_penalty != 1.0 && n_history) {
        size_t from = p->repeat_last_n > 0 && (size_t)p->repeat_last_n < n_history
                          ? n_history - (size_t)p->repeat_last_n : 0;
        for (size_t i = from; i < n_history; i++) {
            int32_t id = history[i];
            if (id < 0 || id >= V || c[id].id < 0) continue;
            float *l = &c[id].logit;
            *l = *l > 0 ? (float)(*l / p->repetition_penalty) : (float)(*l * p->repetition_penalty);
            c[id].id = -1 - id; /* mark: penalised once however often it repeats */
        }
        for (int64_t i = 0; i < V; i++)
            if (c[i].id < 0) c[i].id = -1 - c[i].id;
    }
    if (p->temperature <= 0) { /* greedy: the first of the best (lowest id) */
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (c[i].logit > c[best].logit) best = i;
        return c[best].id;
    }
    /* Keep the top k (or all), sorted, as probabilities at the temperature.
     * With top-k the best k are gathered first in one pass (a min-heap on
     * the front of the array), so a 50k vocabulary is not sorted per token. */
    int64_t n = p->top_k > 0 && p->top_k < V ? p->top_k : V;
    if (n < V) {
        for (int64_t i = n / 2 - 1; i >= 0; i--) heap_down(c, n, i);
        for (int64_t i = n; i < V; i++) {
            if (by_logit_desc(&c[i], &c[0]) >= 0) continue; /* not better than the heap's worst */
            c[0] = c[i];
            heap_down(c, n, 0);
        }
    }
    qsort(c, (size_t)n, sizeof *c, by_logit_desc);
    double mx = c[0].logit, sum = 0;
    float *prob = (float *)(c + V);
    for (int64_t i = 0; i < n; i++) {
        prob[i] = (float)exp((c[i].logit - mx) / p->temperature);
        sum += prob[i];
    }
    /* min-p: drop what is less likely than min_p times the best; top-p:
     * keep the smallest prefix holding top_p of the mass. */
    int64_t keep = n;
    if (p->min_p > 0)
        for (int64_t i = 1; i < keep; i++)
            if (prob[i] < p->min_p * prob[0]) keep = i;
    if (p->top_p < 1.0) {
        double acc = 0, total = 0;
        for (int64_t i = 0; i < keep; i++) total += prob[i];
        for (int64_t i = 0; i < keep; i++) {
            acc += prob[i];
            if (acc >= p->top_p * total) {
                keep = i + 1;
                break;
            }
        }
    }
    sum = 0;
    for (int64_t i = 0; i < keep; i++) sum += prob[i];
    double r = (double)ilm__rng_uniform(rng) * sum, acc = 0;
    for (int64_t i = 0; i < keep; i++) {
        acc += prob[i];
        if (r < acc) return c[i].id;
    }
    return c[keep - 1].id;
}
