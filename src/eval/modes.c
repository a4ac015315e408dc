/*
 * src/eval/modes.c -- the three modes over session scoring (docs/eval.md):
 * how a row becomes a prompt and token ids, one sample of ppl, gen or
 * rolling as a JSON record, and the metrics computed from those records.
 */
#include "eval/run.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* UTF-8 code points: Python's len() of the decoded text (a byte that is not
 * valid UTF-8 counts as one). */
static size_t chars(const char *s)
{
    size_t n = 0, len = strlen(s);
    for (size_t i = 0; i < len; n++) ilm__utf8_next(s, len, &i);
    return n;
}

static bool is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Words as lm-eval counts them: len(re.split(r"\s+", doc)), one more than
 * the runs of (Unicode) whitespace. */
static size_t words(const char *s)
{
    size_t n = 1, len = strlen(s);
    bool in_space = false;
    for (size_t i = 0; i < len;) {
        bool sp = ilm__py_isspace(ilm__utf8_next(s, len, &i));
        if (sp && !in_space) n++;
        in_space = sp;
    }
    return n;
}

/* ---- tokens ------------------------------------------------------------------- */

static ilm_status encode(const ilm_evaluator *e, const char *text, size_t n, bool bos,
                         ilm__ids *out)
{
    int32_t *ids = NULL;
    size_t k = 0;
    ILM__FORWARD(ilm_tokenizer_encode(e->tok, text, n, bos ? ILM_TOKENIZE_BOS : 0, &ids, &k));
    ilm__free(out->v);
    out->v = ids;
    out->n = out->cap = k;
    return ILM_OK;
}

/* The context as ids: plain text (with BOS per add_bos), or, for a chat
 * task, one user turn in the model's template ending with the assistant's
 * opening. */
static ilm_status context_ids(const ilm_evaluator *e, const ilm__task *t, const char *ctx,
                              ilm__ids *out)
{
    if (!t->chat) return encode(e, ctx, strlen(ctx), e->add_bos, out);
    cJSON *msgs = cJSON_CreateArray(), *msg = cJSON_CreateObject();
    if (msg) cJSON_AddItemToArray(msgs, msg);
    bool ok = msgs && msg && cJSON_AddStringToObject(msg, "role", "user") &&
              cJSON_AddStringToObject(msg, "content", ctx);
    char *text = NULL;
    ilm_status st =
        ok ? ilm__json_print(msgs, &text) : ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    cJSON_Delete(msgs);
    int32_t *ids = NULL;
    size_t k = 0;
    if (st == ILM_OK) st = ilm_chat_encode(e->m, text, &ids, &k);
    ilm__free(text);
    ILM__FORWARD(st);
    ilm__free(out->v);
    out->v = ids;
    out->n = out->cap = k;
    return ILM_OK;
}

/* Context and continuation ids as lm-eval splits them: trailing whitespace
 * of the context (context.rstrip(), Unicode whitespace) moves to the continuation, the pair is encoded whole and
 * cut where the context's own encoding ends.  An empty context becomes the
 * prefix token.  A chat context is the template's ids and the continuation
 * is encoded on its own. */
static ilm_status pair_ids(const ilm_evaluator *e, const ilm__task *t, const char *ctx,
                           const char *cont, ilm__ids *a, ilm__ids *b)
{
    if (t->chat) {
        ILM__FORWARD(context_ids(e, t, ctx, a));
        return encode(e, cont, strlen(cont), false, b);
    }
    size_t n = strlen(ctx), k = ilm__py_rstrip_len(ctx, n);
    ilm__buf whole = { 0 };
    ilm_status st = ilm__buf_append(&whole, ctx, n);
    if (st == ILM_OK) st = ilm__buf_append(&whole, cont, strlen(cont));
    if (st == ILM_OK) st = encode(e, whole.p, whole.n, e->add_bos, b);
    ilm__buf_free(&whole);
    if (st == ILM_OK) st = encode(e, ctx, k, e->add_bos, a);
    ILM__FORWARD(st);
    size_t cut = a->n < b->n ? a->n : b->n;
    if (cut == 0) { /* no context at all: condition on the prefix token */
        ILM__FORWARD(ilm__ids_push(a, e->prefix_id));
        return ILM_OK;
    }
    memcpy(a->v, b->v, cut * sizeof *a->v);
    a->n = cut;
    memmove(b->v, b->v + cut, (b->n - cut) * sizeof *b->v);
    b->n -= cut;
    return ILM_OK;
}

/* Drops the oldest context ids so that context + `room` fits the session
 * (lm-eval's left truncation); at least one context id stays.  Returns
 * whether anything was dropped. */
static ilm_status fit(const ilm_evaluator *e, ilm__ids *a, size_t room, const char *where,
                      bool *dropped)
{
    *dropped = false;
    ILM__RETURN_IF(room + 1 > (size_t)e->context, ILM_ERR_RANGE,
                   "eval: %s: %zu continuation tokens do not fit a context of %lld", where, room,
                   (long long)e->context);
    if (a->n + room <= (size_t)e->context) return ILM_OK;
    size_t keep = (size_t)e->context - room, drop = a->n - keep;
    memmove(a->v, a->v + drop, keep * sizeof *a->v);
    a->n = keep;
    *dropped = true;
    return ILM_OK;
}

/* The session holds `ids` with logits after the last one, recomputing only
 * what differs from what it holds. */
static ilm_status prefill(ilm_session *s, const int32_t *ids, size_t n)
{
    const int32_t *have;
    size_t h = ilm_session_tokens(s, &have), keep = 0;
    while (keep < h && keep + 1 < n && have[keep] == ids[keep]) keep++;
    ILM__FORWARD(ilm_session_truncate(s, keep));
    return ilm_session_eval(s, ids + keep, n - keep, NULL);
}

/* ---- rows and prompts --------------------------------------------------------- */

typedef struct row_view {
    const ilm__table *t;
    size_t row;
    bool check; /* ilm__template_check: any known name gives "" */
    const char *subset, *subset_text;
    const char *completion; /* {completion} of a program template, or NULL */
} row_view;

static const char *row_slot(void *user, const char *name, size_t len)
{
    const row_view *r = user;
    if (r->subset && len == 6 && memcmp(name, "subset", 6) == 0) return r->subset;
    if (r->subset && len == 11 && memcmp(name, "subset_text", 11) == 0) return r->subset_text;
    if (r->completion && len == 10 && memcmp(name, "completion", 10) == 0) return r->completion;
    for (size_t c = 0; c < r->t->n_cols; c++)
        if (strlen(r->t->cols[c]) == len && memcmp(r->t->cols[c], name, len) == 0)
            return r->check ? "" : ilm__table_cell(r->t, r->row, (long)c);
    return NULL;
}

ilm_status ilm__dataset_render(const ilm__dataset *d, const char *tmpl, const char *what,
                               const ilm__table *t, size_t row, ilm__buf *out)
{
    row_view v = { t, row, false, d->subset, d->subset_text, NULL };
    return ilm__template_render(tmpl, what, row_slot, &v, out);
}

ilm_status ilm__dataset_check(const ilm__dataset *d, const char *tmpl, const char *what,
                              const ilm__table *t)
{
    if (!tmpl) return ILM_OK;
    row_view v = { t, 0, true, d->subset, d->subset_text,
                   tmpl == d->t->program ? "" : NULL };
    return ilm__template_check(tmpl, what, row_slot, &v);
}

/* A rendered template as a new string (ilm__free). */
static ilm_status render_str(const ilm__dataset *d, const char *tmpl, const char *what, size_t row,
                             char **out)
{
    ilm__buf b = { 0 };
    ilm_status st = ilm__dataset_render(d, tmpl, what, &d->test, row, &b);
    if (st == ILM_OK && !b.p) st = ilm__buf_append(&b, "", 0);
    if (st != ILM_OK) {
        ilm__buf_free(&b);
        return st;
    }
    *out = b.p;
    return ILM_OK;
}

/* header + in-context examples + prompt of a test row. */
static ilm_status context_text(const ilm__dataset *d, size_t row, ilm__buf *out)
{
    out->n = 0;
    if (d->t->preamble)
        ILM__FORWARD(ilm__dataset_render(d, d->t->preamble, "header", &d->test, row, out));
    ILM__FORWARD(ilm__buf_append(out, d->ice, strlen(d->ice)));
    if (d->t->prompt)
        ILM__FORWARD(ilm__dataset_render(d, d->t->prompt, "prompt", &d->test, row, out));
    if (!out->p) ILM__FORWARD(ilm__buf_append(out, "", 0));
    return ILM_OK;
}

/* ---- the modes: one sample each, as a JSON object ------------------------------ */

static ilm_status ppl_sample(ilm__dataset *d, size_t row, cJSON *sample)
{
    const ilm__task *t = d->t;
    ilm_evaluator *e = d->e;
    ilm__buf ctx = { 0 }, masked = { 0 }, whole = { 0 };
    ilm__ids a = { 0 }, b = { 0 };
    char *gold = NULL, *cont = NULL;
    ilm_status st = context_text(d, row, &ctx);
    if (st == ILM_OK) st = render_str(d, t->gold, "ppl.gold", row, &gold);
    size_t g = t->n_choices;
    if (st == ILM_OK) {
        char *p = gold, *q = gold + strlen(gold);
        while (is_space(*p)) p++;
        while (q > p && is_space(q[-1])) *--q = '\0';
        for (size_t i = 0; i < t->n_choices && g == t->n_choices; i++)
            if (strcmp(t->labels[i], p) == 0) g = i;
        if (g == t->n_choices)
            st = ilm__error(ILM_ERR_FORMAT,
                            "eval: '%s' line %zu: the gold label '%s' is not one "
                            "of the task's candidates",
                            d->test.path, d->test.lines[row], p);
    }
    if (st == ILM_OK && t->reduction == ILM__RED_WHOLE) {
        /* The masked part: header and examples (OpenCompass's ice). */
        if (t->preamble) st = ilm__dataset_render(d, t->preamble, "header", &d->test, row, &masked);
        if (st == ILM_OK) st = ilm__buf_append(&masked, d->ice, strlen(d->ice));
    }
    cJSON *cands = cJSON_AddArrayToObject(sample, "candidates");
    if (st == ILM_OK && !cands) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    double best[3] = { -INFINITY, -INFINITY, -INFINITY };
    size_t arg[3] = { 0, 0, 0 };
    bool truncated = false;
    for (size_t i = 0; st == ILM_OK && i < t->n_choices; i++) {
        ilm__free(cont);
        cont = NULL;
        st = render_str(d, t->choices[i], "ppl.choices", row, &cont);
        if (st != ILM_OK) break;
        if (t->reduction == ILM__RED_CONTINUATION) {
            st = pair_ids(e, t, ctx.p, cont, &a, &b);
        } else {
            whole.n = 0;
            st = ilm__buf_append(&whole, ctx.p, ctx.n);
            if (st == ILM_OK) st = ilm__buf_append(&whole, cont, strlen(cont));
            if (st == ILM_OK)
                st = pair_ids(e, t, masked.p ? masked.p : "", whole.p + masked.n, &a, &b);
        }
        if (st == ILM_OK && b.n == 0)
            st = ilm__error(ILM_ERR_FORMAT, "eval: '%s' line %zu: candidate '%s' has no tokens",
                            d->test.path, d->test.lines[row], t->labels[i]);
        bool dropped = false;
        char where[64];
        snprintf(where, sizeof where, "line %zu", d->test.lines[row]);
        if (st == ILM_OK) st = fit(e, &a, b.n, where, &dropped);
        truncated |= dropped;
        double ll = 0;
        int greedy = 0;
        if (st == ILM_OK) st = ilm_session_score(e->s, a.v, a.n, b.v, b.n, &ll, &greedy);
        if (st != ILM_OK) break;
        /* lm-eval normalizes by the choice without its target delimiter,
         * the whitespace the continuation starts with. */
        const char *choice = cont;
        while (is_space(*choice)) choice++;
        size_t nc = chars(choice), nb = strlen(choice);
        double score[3] = { ll, nc ? ll / (double)nc : ll, nb ? ll / (double)nb : ll };
        if (t->reduction == ILM__RED_WHOLE) score[0] = ll / (double)b.n; /* -mean NLL */
        for (int k = 0; k < 3; k++)
            if (score[k] > best[k]) best[k] = score[k], arg[k] = i;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(cands, c);
        if (!c || !cJSON_AddStringToObject(c, "label", t->labels[i]) ||
            !cJSON_AddStringToObject(c, "text", cont) ||
            !cJSON_AddNumberToObject(c, "logprob", ll) ||
            !cJSON_AddNumberToObject(c, "tokens", (double)b.n) ||
            !cJSON_AddNumberToObject(c, "chars", (double)nc) ||
            !cJSON_AddNumberToObject(c, "bytes", (double)nb) ||
            !cJSON_AddBoolToObject(c, "greedy", greedy))
            st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    }
    if (st == ILM_OK) {
        bool ok = cJSON_AddStringToObject(sample, "prompt", ctx.p) &&
                  cJSON_AddStringToObject(sample, "prediction", t->labels[arg[0]]) &&
                  cJSON_AddStringToObject(sample, "gold", t->labels[g]) &&
                  cJSON_AddNumberToObject(sample, "acc", arg[0] == g);
        if (ok && t->reduction == ILM__RED_CONTINUATION)
            ok = cJSON_AddNumberToObject(sample, "acc_norm", arg[1] == g) &&
                 cJSON_AddNumberToObject(sample, "acc_bytes", arg[2] == g);
        if (ok && truncated) ok = cJSON_AddBoolToObject(sample, "truncated", true);
        if (!ok) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    }
    ilm__buf_free(&ctx);
    ilm__buf_free(&masked);
    ilm__buf_free(&whole);
    ilm__free(a.v);
    ilm__free(b.v);
    ilm__free(gold);
    ilm__free(cont);
    return st;
}

static ilm_status gen_config(const ilm__task *t, char **out)
{
    cJSON *c = cJSON_CreateObject();
    bool ok = c && cJSON_AddNumberToObject(c, "temperature", 0) &&
              cJSON_AddNumberToObject(c, "max_tokens", (double)t->max_tokens);
    if (ok && t->stop) {
        cJSON *stop = cJSON_Duplicate(t->stop, true);
        ok = stop && cJSON_AddItemToObject(c, "stop", stop);
    }
    ilm_status st = ok ? ilm__json_print(c, out) : ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    cJSON_Delete(c);
    return st;
}

static ilm_status gen_sample(ilm__dataset *d, size_t row, cJSON *sample)
{
    const ilm__task *t = d->t;
    ilm_evaluator *e = d->e;
    ilm__buf ctx = { 0 }, pred = { 0 }, gold = { 0 };
    ilm__ids a = { 0 };
    char *cfg = NULL, *text = NULL, *gold_raw = NULL;
    ilm_status st = context_text(d, row, &ctx);
    if (st == ILM_OK) st = context_ids(e, t, ctx.p, &a);
    bool dropped = false;
    size_t room = (size_t)t->max_tokens < (size_t)e->context - 1 ? (size_t)t->max_tokens
                                                                 : (size_t)e->context - 1;
    if (st == ILM_OK) st = fit(e, &a, room, "gen", &dropped);
    if (st == ILM_OK) st = prefill(e->s, a.v, a.n);
    if (st == ILM_OK) st = gen_config(t, &cfg);
    if (st == ILM_OK) st = ilm_session_generate(e->s, NULL, cfg, NULL, NULL, &text);
    if (st == ILM_OK) st = ilm__postproc_apply(t->pp, text, strlen(text), t->options, &pred);
    if (st == ILM_OK) st = render_str(d, t->gold ? t->gold : "", "gen.gold", row, &gold_raw);
    if (st == ILM_OK)
        st = ilm__postproc_apply(t->gold_pp, gold_raw, strlen(gold_raw), t->options, &gold);
    if (st == ILM_OK && !pred.p) st = ilm__buf_append(&pred, "", 0);
    if (st == ILM_OK && !gold.p) st = ilm__buf_append(&gold, "", 0);
    ilm__exec_result run = { 0 };
    if (st == ILM_OK && t->program) {
        /* HumanEval: the prompt, the completion and the tests, run. */
        row_view v = { &d->test, row, false, d->subset, d->subset_text, pred.p };
        ilm__buf prog = { 0 };
        ilm__exec_opts o;
        ilm__exec_defaults(&o);
        o.timeout_s = t->timeout;
        st = ilm__template_render(t->program, "gen.program", row_slot, &v, &prog);
        if (st == ILM_OK) st = ilm__exec_program(t->interpreter, prog.p ? prog.p : "", prog.n, &o, &run);
        ilm__buf_free(&prog);
    }
    if (st == ILM_OK) {
        double score = 0;
        switch (t->metric) {
        case ILM__METRIC_ACCURACY:
        case ILM__METRIC_EXACT_MATCH: score = ilm__metric_exact(pred.p, gold.p); break;
        case ILM__METRIC_F1: score = ilm__metric_f1(pred.p, gold.p); break;
        case ILM__METRIC_ROUGE_L: score = ilm__metric_rouge_l(pred.p, gold.p); break;
        case ILM__METRIC_BLEU: score = 0; break; /* a corpus statistic: aggregated later */
        case ILM__METRIC_PASS_AT_1: score = run.passed; break;
        }
        bool ok = cJSON_AddStringToObject(sample, "prompt", ctx.p) &&
                  cJSON_AddStringToObject(sample, "output", text) &&
                  cJSON_AddStringToObject(sample, "prediction", pred.p) &&
                  cJSON_AddStringToObject(sample, "gold", gold.p) &&
                  cJSON_AddNumberToObject(sample, "score", score);
        if (ok && dropped) ok = cJSON_AddBoolToObject(sample, "truncated", true);
        if (ok && t->program)
            ok = cJSON_AddBoolToObject(sample, "timed_out", run.timed_out) &&
                 cJSON_AddNumberToObject(sample, "exit_code", run.exit_code) &&
                 cJSON_AddNumberToObject(sample, "signal", run.signal) &&
                 cJSON_AddBoolToObject(sample, "network_isolated", run.network_isolated);
        if (!ok) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    }
    ilm__buf_free(&ctx);
    ilm__buf_free(&pred);
    ilm__buf_free(&gold);
    ilm__free(a.v);
    ilm__free(cfg);
    ilm_free(text);
    ilm__free(gold_raw);
    return st;
}

/* lm-eval's loglikelihood_rolling (get_rolling_token_windows with context
 * length 1): the document's ids, encoded with the BOS setting, in disjoint
 * windows of `w` predicted ids whose input is w ids long: the first after
 * the prefix token, each full one after the one id before it, the last one
 * after as many ids before it as fill its input. */
static ilm_status rolling_sample(ilm__dataset *d, size_t row, cJSON *sample)
{
    ilm_evaluator *e = d->e;
    char *doc = NULL;
    ilm__buf scored = { 0 };
    ilm__ids ids = { 0 };
    ilm_status st = render_str(d, d->t->text, "rolling.text", row, &doc);
    /* lm-eval's wikitext scores the detokenized page but counts the words
     * and bytes of the page as it is. */
    if (st == ILM_OK) st = ilm__postproc_apply(d->t->preprocess, doc, strlen(doc), NULL, &scored);
    /* As lm-eval: the document encoded with the BOS setting (a BOS is then
     * scored too, after the prefix token). */
    if (st == ILM_OK) st = encode(e, scored.p, scored.n, e->add_bos, &ids);
    size_t w = d->t->window > 0 ? (size_t)d->t->window : (size_t)e->context - 1;
    if (st == ILM_OK && w + 1 > (size_t)e->context)
        st = ilm__error(ILM_ERR_CONFIG,
                        "eval: 'rolling.window' %zu does not fit a context of "
                        "%lld",
                        w, (long long)e->context);
    double ll = 0;
    for (size_t at = 0; st == ILM_OK && at < ids.n; at += w) {
        /* A window's input is w ids: a full one has one id of context, the
         * last (shorter) one the w + 1 - n ids before it. */
        size_t n = ids.n - at < w ? ids.n - at : w, k = at ? w + 1 - n : 1;
        const int32_t *ctx = at ? ids.v + at - (k < at ? k : at) : &e->prefix_id;
        double part = 0;
        st = ilm_session_score(e->s, ctx, at ? (k < at ? k : at) : 1, ids.v + at, n, &part, NULL);
        ll += part;
    }
    if (st == ILM_OK && (!cJSON_AddNumberToObject(sample, "logprob", ll) ||
                         !cJSON_AddNumberToObject(sample, "tokens", (double)ids.n) ||
                         !cJSON_AddNumberToObject(sample, "words", (double)words(doc)) ||
                         !cJSON_AddNumberToObject(sample, "bytes", (double)strlen(doc))))
        st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    ilm__free(doc);
    ilm__buf_free(&scored);
    ilm__free(ids.v);
    return st;
}

/* ---- aggregation: metrics from the samples array ------------------------------ */

double ilm__eval_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static ilm_status add_mean(cJSON *metrics, const cJSON *samples, const char *key, const char *name,
                           double scale)
{
    size_t n = (size_t)cJSON_GetArraySize(samples), i = 0;
    double *x = ilm__malloc((n ? n : 1) * sizeof *x), mean = 0, se = 0;
    ILM__RETURN_IF(!x, ILM_ERR_NOMEM, "eval: out of memory");
    for (const cJSON *s = samples->child; s; s = s->next) x[i++] = ilm__eval_num(s, key) * scale;
    ilm__mean_stderr(x, n, &mean, &se);
    ilm__free(x);
    char se_name[64];
    snprintf(se_name, sizeof se_name, "%s_stderr", name);
    ILM__RETURN_IF(!cJSON_AddNumberToObject(metrics, name, mean) ||
                       !cJSON_AddNumberToObject(metrics, se_name, se),
                   ILM_ERR_NOMEM, "eval: out of memory");
    return ILM_OK;
}

ilm_status ilm__eval_aggregate(const ilm__task *t, const cJSON *samples, cJSON *metrics)
{
    if (t->mode == ILM__MODE_PPL) {
        ILM__FORWARD(add_mean(metrics, samples, "acc", "acc", 100));
        if (t->reduction == ILM__RED_CONTINUATION) {
            ILM__FORWARD(add_mean(metrics, samples, "acc_norm", "acc_norm", 100));
            ILM__FORWARD(add_mean(metrics, samples, "acc_bytes", "acc_bytes", 100));
        }
        return ILM_OK;
    }
    if (t->mode == ILM__MODE_GEN) {
        if (t->metric != ILM__METRIC_BLEU)
            return add_mean(metrics, samples, "score", ilm__metric_name(t->metric), 100);
        ilm__bleu b;
        memset(&b, 0, sizeof b);
        for (const cJSON *s = samples->child; s; s = s->next) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(s, "prediction");
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(s, "gold");
            ILM__FORWARD(ilm__bleu_add(&b, cJSON_IsString(p) ? p->valuestring : "",
                                       cJSON_IsString(g) ? g->valuestring : ""));
        }
        ILM__RETURN_IF(!cJSON_AddNumberToObject(metrics, "bleu", ilm__bleu_score(&b)),
                       ILM_ERR_NOMEM, "eval: out of memory");
        return ILM_OK;
    }
    double ll = 0, tokens = 0, w = 0, bytes = 0;
    for (const cJSON *s = samples->child; s; s = s->next) {
        ll += ilm__eval_num(s, "logprob");
        tokens += ilm__eval_num(s, "tokens");
        w += ilm__eval_num(s, "words");
        bytes += ilm__eval_num(s, "bytes");
    }
    ILM__RETURN_IF(
        !cJSON_AddNumberToObject(metrics, "word_perplexity", exp(-ll / (w ? w : 1))) ||
            !cJSON_AddNumberToObject(metrics, "byte_perplexity", exp(-ll / (bytes ? bytes : 1))) ||
            !cJSON_AddNumberToObject(metrics, "bits_per_byte",
                                     -ll / (bytes ? bytes : 1) / log(2.0)) ||
            !cJSON_AddNumberToObject(metrics, "token_perplexity", exp(-ll / (tokens ? tokens : 1))),
        ILM_ERR_NOMEM, "eval: out of memory");
    return ILM_OK;
}

ilm_status ilm__eval_sample(ilm__dataset *d, size_t row, cJSON *sample)
{
    if (d->t->mode == ILM__MODE_PPL) return ppl_sample(d, row, sample);
    if (d->t->mode == ILM__MODE_GEN) return gen_sample(d, row, sample);
    return rolling_sample(d, row, sample);
}
