/*
 * sft.c -- chat records to tokens and a loss mask with the InternLM2 chat
 * template, the way XTuner's internlm2_chat template and encode_fn build
 * SFT samples:
 *
 *   BOS, then per message  <|im_start|>{role}\n{content}<|im_end|>\n
 *
 * (with " name={name}" after the role when an OpenAI message has a "name",
 * as InternLM2's tool protocol writes "environment name=<|plugin|>");
 * The markers (and the role, which we write ourselves) are tokenized with
 * ILM_TOKENIZE_SPECIAL; contents are tokenized without it and with the
 * markers guarded (ilm__tok_encode_guarded), so a user who writes
 * "<|im_start|>" gets those characters as text, never the control token --
 * not even from a SentencePiece model that has the markers as user-defined
 * pieces, which sentencepiece matches in any text.  Targets: the content of assistant messages and their closing
 * <|im_end|> (the model must learn to stop); the "\n" after <|im_end|> is
 * not a target (XTuner's SEP is added "without loss"), nor is the role
 * header.  A message's "loss" flag overrides its role's default.
 */
#include "corpus/internal.h"
#include "tokenizer/internal.h"

#include <stdio.h>
#include <string.h>

typedef struct msg {
    const char *role;
    const char *name;    /* InternLM2's "name=" attribute (tool calls), or NULL */
    const char *content;
    bool        loss;
    char       *owned; /* content built here (Alpaca), else NULL */
} msg;

typedef struct msgs {
    msg   *v;
    size_t n, cap;
} msgs;

static void msgs_free(msgs *m)
{
    for (size_t i = 0; i < m->n; i++) ilm__free(m->v[i].owned);
    ilm__free(m->v);
}

static ilm_status msgs_push(msgs *m, const char *role, const char *name, const char *content,
                            bool loss, char *owned)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 8;
        msg *v = ilm__realloc(m->v, cap * sizeof *v);
        if (!v) {
            ilm__free(owned);
            return ilm__error(ILM_ERR_NOMEM, "sft: out of memory");
        }
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = (msg){role, name, content, loss, owned};
    return ILM_OK;
}

static const char *str_field(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The InternLM2 roles; anything else would need its own template rule. */
static bool known_role(const char *r)
{
    return !strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant") ||
           !strcmp(r, "environment");
}

static ilm_status parse_openai(const cJSON *arr, msgs *out)
{
    ILM__RETURN_IF(!cJSON_IsArray(arr), ILM_ERR_FORMAT, "sft: 'messages' is not an array");
    int i = 0;
    for (const cJSON *m = arr->child; m; m = m->next, i++) {
        const char *role = str_field(m, "role"), *content = str_field(m, "content");
        ILM__RETURN_IF(!cJSON_IsObject(m) || !role || !content, ILM_ERR_FORMAT,
                       "sft: messages[%d] needs string 'role' and 'content'", i);
        ILM__RETURN_IF(!known_role(role), ILM_ERR_FORMAT,
                       "sft: messages[%d] has unknown role '%s'", i, role);
        const char *name = str_field(m, "name");
        ILM__RETURN_IF(cJSON_GetObjectItemCaseSensitive(m, "name") && (!name || !*name || strchr(name, '\n')),
                       ILM_ERR_FORMAT, "sft: messages[%d].name is not a one-line string", i);
        bool loss = !strcmp(role, "assistant");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, "loss");
        if (l) {
            ILM__RETURN_IF(!cJSON_IsBool(l), ILM_ERR_FORMAT,
                           "sft: messages[%d].loss is not a boolean", i);
            loss = cJSON_IsTrue(l);
        }
        ILM__FORWARD(msgs_push(out, role, name, content, loss, NULL));
    }
    return ILM_OK;
}

static ilm_status parse_xtuner(const cJSON *arr, msgs *out)
{
    ILM__RETURN_IF(!cJSON_IsArray(arr), ILM_ERR_FORMAT,
                   "sft: 'conversation' is not an array");
    int i = 0;
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        const char *sys = str_field(t, "system"), *in = str_field(t, "input"),
                   *outp = str_field(t, "output");
        ILM__RETURN_IF(!cJSON_IsObject(t) || !in || !outp, ILM_ERR_FORMAT,
                       "sft: conversation[%d] needs string 'input' and 'output'", i);
        ILM__RETURN_IF(cJSON_GetObjectItemCaseSensitive(t, "system") && !sys,
                       ILM_ERR_FORMAT, "sft: conversation[%d].system is not a string", i);
        /* XTuner writes a system message only when the turn carries a
         * non-empty one. */
        if (sys && *sys) ILM__FORWARD(msgs_push(out, "system", NULL, sys, false, NULL));
        ILM__FORWARD(msgs_push(out, "user", NULL, in, false, NULL));
        ILM__FORWARD(msgs_push(out, "assistant", NULL, outp, true, NULL));
    }
    return ILM_OK;
}

static ilm_status parse_alpaca(const cJSON *rec, msgs *out)
{
    const char *ins = str_field(rec, "instruction"), *in = str_field(rec, "input"),
               *outp = str_field(rec, "output");
    ILM__RETURN_IF(!ins || !outp, ILM_ERR_FORMAT,
                   "sft: an Alpaca record needs string 'instruction' and 'output'");
    ILM__RETURN_IF(cJSON_GetObjectItemCaseSensitive(rec, "input") && !in,
                   ILM_ERR_FORMAT, "sft: Alpaca 'input' is not a string");
    /* instruction, then "\n" and the input when there is one (XTuner's
     * alpaca_map_fn adds the "\n" even for an empty input; we do not). */
    char *user = (in && *in) ? ilm__asprintf("%s\n%s", ins, in) : ilm__strdup(ins);
    ILM__RETURN_IF(!user, ILM_ERR_NOMEM, "sft: out of memory");
    ILM__FORWARD(msgs_push(out, "user", NULL, user, false, user));
    return msgs_push(out, "assistant", NULL, outp, true, NULL);
}

static ilm_status parse_record(const cJSON *rec, msgs *out)
{
    ILM__RETURN_IF(!cJSON_IsObject(rec), ILM_ERR_FORMAT, "sft: record is not an object");
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(rec, "messages"))) return parse_openai(v, out);
    if ((v = cJSON_GetObjectItemCaseSensitive(rec, "conversation")))
        return parse_xtuner(v, out);
    if (cJSON_GetObjectItemCaseSensitive(rec, "instruction")) return parse_alpaca(rec, out);
    return ilm__error(ILM_ERR_FORMAT, "sft: record has none of 'messages', "
                                      "'conversation', 'instruction'");
}

/* The template's markers, which message content must never produce. */
static const char *const k_markers[] = { "<|im_start|>", "<|im_end|>" };

/* Appends the tokens of `text` with the same mask value for all: template
 * text with `flags`, or (user) message content, as plain text in which not
 * even a marker is recognised. */
static ilm_status put(const ilm_tokenizer *tok, const char *text, unsigned flags, bool user,
                      uint8_t m, ilm__ids *ids, ilm__buf *mask)
{
    size_t len = strlen(text), first = ids->n;
    if (user) {
        const size_t whole[2] = { 0, len };
        const ilm__tok_guard g = { whole, 1, k_markers, 2 };
        ILM__FORWARD(ilm__tok_encode_guarded(tok, text, len, 0, &g, ids));
    } else {
        int32_t *v = NULL;
        size_t n = 0;
        ILM__FORWARD(ilm_tokenizer_encode(tok, text, len, flags, &v, &n));
        ilm_status st = ILM_OK;
        for (size_t i = 0; i < n && st == ILM_OK; i++) st = ilm__ids_push(ids, v[i]);
        ilm_free(v);
        ILM__FORWARD(st);
    }
    for (size_t i = first; i < ids->n; i++) ILM__FORWARD(ilm__buf_putc(mask, (char)m));
    return ILM_OK;
}

/* Encodes every message; ends[i] = token count after message i. */
static ilm_status encode_all(const ilm_tokenizer *tok, const msgs *m, ilm__ids *ids,
                             ilm__buf *mask, size_t *ends, bool *has_loss)
{
    int32_t bos = ilm_tokenizer_bos(tok);
    if (bos >= 0) {
        ILM__FORWARD(ilm__ids_push(ids, bos));
        ILM__FORWARD(ilm__buf_putc(mask, 0));
    }
    for (size_t i = 0; i < m->n; i++) {
        const msg *g = &m->v[i];
        /* The header is ours (role) or the tool protocol's (name=, whose
         * values such as <|plugin|> are special tokens). */
        char *header = ilm__asprintf("<|im_start|>%s%s%s\n", g->role, g->name ? " name=" : "",
                                     g->name ? g->name : "");
        ILM__RETURN_IF(!header, ILM_ERR_NOMEM, "sft: out of memory");
        uint8_t l = g->loss ? 1 : 0;
        ilm_status st = put(tok, header, ILM_TOKENIZE_SPECIAL, false, 0, ids, mask);
        ilm__free(header);
        ILM__FORWARD(st);
        ILM__FORWARD(put(tok, g->content, 0, true, l, ids, mask));
        ILM__FORWARD(put(tok, "<|im_end|>", ILM_TOKENIZE_SPECIAL, false, l, ids, mask));
        ILM__FORWARD(put(tok, "\n", 0, false, 0, ids, mask));
        ends[i] = ids->n;
        has_loss[i] = g->loss;
    }
    return ILM_OK;
}

/* The truncation rule (docs/formats.md): keep the longest prefix of whole
 * messages that fits max_length; then drop trailing messages that have no
 * targets (a question without its answer teaches nothing).  Returns the
 * number of messages kept. */
static size_t fit(const size_t *ends, const bool *has_loss, size_t n_msgs,
                  size_t max_length)
{
    size_t k = n_msgs;
    if (max_length > 0 && n_msgs > 0 && ends[n_msgs - 1] > max_length) {
        while (k > 0 && ends[k - 1] > max_length) k--;
        while (k > 0 && !has_loss[k - 1]) k--;
    }
    return k;
}

ilm_status ilm__sft_encode(const ilm_tokenizer *tok, const cJSON *record,
                           size_t max_length, int32_t **ids_out, uint8_t **mask_out,
                           size_t *n_out, bool *kept, ilm__sft_stats *stats)
{
    ILM__RETURN_IF(!tok || !record || !ids_out || !mask_out || !n_out || !kept,
                   ILM_ERR_INVALID_ARG, "sft: NULL argument");
    *ids_out = NULL;
    *mask_out = NULL;
    *n_out = 0;
    *kept = false;
    ILM__RETURN_IF(ilm_tokenizer_piece_id(tok, "<|im_start|>") < 0 ||
                      ilm_tokenizer_piece_id(tok, "<|im_end|>") < 0,
                   ILM_ERR_UNSUPPORTED,
                   "sft: the tokenizer has no <|im_start|>/<|im_end|> tokens "
                   "(load the model directory with its tokenizer_config.json)");

    msgs m = {0};
    ilm__ids ids = {0};
    ilm__buf mask = {0};
    size_t *ends = NULL;
    bool *has_loss = NULL;
    ilm_status st = parse_record(record, &m);
    if (st == ILM_OK && m.n == 0)
        st = ilm__error(ILM_ERR_FORMAT, "sft: record has no messages");
    if (st == ILM_OK) {
        ends = ilm__calloc(m.n, sizeof *ends);
        has_loss = ilm__calloc(m.n, sizeof *has_loss);
        st = ends && has_loss ? encode_all(tok, &m, &ids, &mask, ends, has_loss)
                              : ilm__error(ILM_ERR_NOMEM, "sft: out of memory");
    }
    if (st == ILM_OK) {
        size_t k = fit(ends, has_loss, m.n, max_length);
        size_t n = k ? ends[k - 1] : 0;
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) any = mask.p[i] != 0;
        if (!any) {
            if (stats) stats->dropped_samples++;
        } else {
            if (stats) {
                stats->samples++;
                if (k < m.n) {
                    stats->truncated++;
                    stats->dropped_messages += m.n - k;
                }
            }
            uint8_t *mk = ilm__malloc(n);
            if (!mk) {
                st = ilm__error(ILM_ERR_NOMEM, "sft: out of memory");
            } else {
                memcpy(mk, mask.p, n);
                *ids_out = ids.v;
                *mask_out = mk;
                *n_out = n;
                *kept = true;
                ids.v = NULL;
            }
        }
    }
    ilm__free(ids.v);
    ilm__buf_free(&mask);
    ilm__free(ends);
    ilm__free(has_loss);
    msgs_free(&m);
    return st;
}
