/*
 * src/infer/ -- inference on top of a model: sessions (this file: a KV
 * cache and the tokens in it), sampling (sample.c), generation with stop
 * conditions and streaming (generate.c), chat templates (chat.c).
 *
 * A session is used by one thread at a time; many sessions may share one
 * model.
 */
#include "infer/internal.h"

#include <math.h>
#include <string.h>

ilm_status ilm_session_create(const ilm_model *m, const char *config, ilm_session **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_session_create: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!m, ILM_ERR_INVALID_ARG, "ilm_session_create: model is NULL");
    int64_t ctx = m->arch.max_position < 2048 ? m->arch.max_position : 2048;
    int64_t threads = m->threads;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "session config", &root));
    const ilm__jfield fields[] = {
        { "context", ILM__J_INT, &ctx, false, 1, 1 << 24 },
        { "threads", ILM__J_INT, &threads, false, 0, ILM__MAX_THREADS },
    };
    ilm_status st = ilm__json_fields(root, "", fields, 2);
    cJSON_Delete(root);
    ILM__FORWARD(st);

    ilm_session *s = ilm__calloc(1, sizeof *s);
    ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "session: out of memory");
    s->m = m;
    s->tokens = ilm__malloc((size_t)ctx * sizeof *s->tokens);
    s->logits = ilm__malloc((size_t)m->arch.vocab_size * sizeof *s->logits);
    st = !s->tokens || !s->logits ? ilm__error(ILM_ERR_NOMEM, "session: out of memory")
                                  : ilm__backend_cpu_create((int)threads, -1, &s->be);
    if (st == ILM_OK) st = ilm__kv_init(m, ctx, &s->kv);
    if (st != ILM_OK) {
        ilm_session_free(s);
        return st;
    }
    *out = s;
    return ILM_OK;
}

void ilm_session_free(ilm_session *s)
{
    if (!s) return;
    ilm__kv_free(&s->kv);
    ilm__backend_free(s->be);
    ilm__free(s->tokens);
    ilm__free(s->logits);
    ilm__free(s);
}

size_t ilm_session_length(const ilm_session *s) { return s ? (size_t)s->kv.n : 0; }

size_t ilm_session_tokens(const ilm_session *s, const int32_t **ids)
{
    if (ids) *ids = s ? s->tokens : NULL;
    return s ? (size_t)s->kv.n : 0;
}
size_t ilm_session_context(const ilm_session *s) { return s ? (size_t)s->kv.capacity : 0; }

ilm_status ilm_session_truncate(ilm_session *s, size_t n)
{
    ILM__RETURN_IF(!s, ILM_ERR_INVALID_ARG, "ilm_session_truncate: session is NULL");
    ILM__RETURN_IF(n > (size_t)s->kv.n, ILM_ERR_RANGE, "session: cannot keep %zu of %lld tokens", n,
                   (long long)s->kv.n);
    /* Positions past n are simply overwritten by the next evaluation. */
    s->kv.n = (int64_t)n;
    s->has_logits = false;
    return ILM_OK;
}

/* Runs ids through the model in chunks (bounding activation memory);
 * all_logits, when non-NULL, receives [n, V]. */
static ilm_status eval(ilm_session *s, const int32_t *ids, size_t n, float *all_logits)
{
    ILM__RETURN_IF(!s || (!ids && n), ILM_ERR_INVALID_ARG, "session: NULL argument");
    ILM__RETURN_IF(n > (size_t)(s->kv.capacity - s->kv.n), ILM_ERR_RANGE,
                   "session: %zu tokens do not fit: %lld of %lld context positions are used", n,
                   (long long)s->kv.n, (long long)s->kv.capacity);
    const int64_t V = s->m->arch.vocab_size, chunk = 512;
    for (size_t i = 0; i < n; i += (size_t)chunk) {
        int64_t T = (int64_t)(n - i) < chunk ? (int64_t)(n - i) : chunk;
        bool last = i + (size_t)T == n;
        memcpy(s->tokens + s->kv.n, ids + i, (size_t)T * sizeof *ids);
        ilm_status st;
        if (all_logits) {
            st = ilm__forward(s->be, s->m, &s->kv, ids + i, T, true, all_logits + (int64_t)i * V);
            if (st == ILM_OK && last) memcpy(s->logits, all_logits + (int64_t)(n - 1) * V, (size_t)V * sizeof *s->logits);
        } else {
            st = ilm__forward(s->be, s->m, &s->kv, ids + i, T, false, s->logits);
        }
        if (st != ILM_OK) {
            s->has_logits = false;
            return st;
        }
    }
    s->has_logits = n > 0 || s->has_logits;
    return ILM_OK;
}

ilm_status ilm_session_eval(ilm_session *s, const int32_t *ids, size_t n, const float **logits)
{
    if (logits) *logits = NULL;
    ILM__FORWARD(eval(s, ids, n, NULL));
    if (logits && s->has_logits) *logits = s->logits;
    return ILM_OK;
}

ilm_status ilm_session_eval_all(ilm_session *s, const int32_t *ids, size_t n, float *logits)
{
    ILM__RETURN_IF(!logits, ILM_ERR_INVALID_ARG, "ilm_session_eval_all: logits is NULL");
    return eval(s, ids, n, logits);
}

const float *ilm_session_logits(const ilm_session *s)
{
    return s && s->has_logits ? s->logits : NULL;
}

/* log softmax(row)[id], in double; also whether id is the argmax. */
static double logprob(const float *row, int64_t V, int32_t id, bool *is_max)
{
    float mx = row[0];
    int64_t arg = 0;
    for (int64_t i = 1; i < V; i++)
        if (row[i] > mx) {
            mx = row[i];
            arg = i;
        }
    double sum = 0;
    for (int64_t i = 0; i < V; i++) sum += exp((double)row[i] - mx);
    if (is_max) *is_max = arg == id;
    return (double)row[id] - mx - log(sum);
}

ilm_status ilm_session_logprobs(ilm_session *s, const int32_t *ids, size_t n, double *out)
{
    ILM__RETURN_IF(!s || !out || (!ids && n), ILM_ERR_INVALID_ARG, "ilm_session_logprobs: NULL argument");
    const int64_t V = s->m->arch.vocab_size;
    float *all = ilm__malloc((n ? n : 1) * (size_t)V * sizeof *all);
    ILM__RETURN_IF(!all, ILM_ERR_NOMEM, "session: out of memory for %zu rows of logits", n);
    /* The first token is predicted by what the session already holds. */
    bool prior = s->has_logits;
    if (n && prior) out[0] = logprob(s->logits, V, ids[0], NULL);
    else if (n) out[0] = NAN;
    ilm_status st = eval(s, ids, n, all);
    for (size_t i = 1; st == ILM_OK && i < n; i++)
        out[i] = logprob(all + (int64_t)(i - 1) * V, V, ids[i], NULL);
    ilm__free(all);
    return st;
}

ilm_status ilm_session_score(ilm_session *s, const int32_t *ctx, size_t n_ctx, const int32_t *cont,
                             size_t n_cont, double *sum_logprob, int *is_greedy)
{
    ILM__RETURN_IF(!s || !sum_logprob || (!ctx && n_ctx) || (!cont && n_cont) || n_ctx == 0,
                   ILM_ERR_INVALID_ARG, "ilm_session_score: needs a non-empty context");
    /* Reuse the cached prefix this session shares with the context. */
    size_t keep = 0;
    while (keep < (size_t)s->kv.n && keep < n_ctx - 1 && s->tokens[keep] == ctx[keep]) keep++;
    ILM__FORWARD(ilm_session_truncate(s, keep));
    ILM__FORWARD(eval(s, ctx + keep, n_ctx - keep, NULL));
    const int64_t V = s->m->arch.vocab_size;
    float *all = ilm__malloc((n_cont ? n_cont : 1) * (size_t)V * sizeof *all);
    ILM__RETURN_IF(!all, ILM_ERR_NOMEM, "session: out of memory");
    double sum = 0;
    bool greedy = true, is_max;
    if (n_cont) {
        sum += logprob(s->logits, V, cont[0], &is_max);
        greedy &= is_max;
    }
    ilm_status st = eval(s, cont, n_cont, all);
    for (size_t i = 1; st == ILM_OK && i < n_cont; i++) {
        sum += logprob(all + (int64_t)(i - 1) * V, V, cont[i], &is_max);
        greedy &= is_max;
    }
    ilm__free(all);
    ILM__FORWARD(st);
    *sum_logprob = sum;
    if (is_greedy) *is_greedy = greedy;
    return ILM_OK;
}
