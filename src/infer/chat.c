/* Chat templates, built in (no Jinja): InternLM2 (with the environment role
 * and name= attributes of its tool protocol), ChatML (SmolLM2, Qwen),
 * LLaMA-2 and LLaMA-3.  The model picks one from its own template text
 * (src/model/model.c).
 *
 * Rendering records where the text came from a message: the template's
 * markers become control ids, and the messages' roles and contents are
 * encoded as plain text in which not even a marker is recognised
 * (ilm__tok_encode_guarded), so a user who writes "<|im_start|>" cannot
 * open a turn of their own.  The name= attribute belongs to InternLM2's
 * tool protocol (name=<|plugin|>): it is read with special tokens, as in
 * SFT data (src/corpus/sft.c). */
#include "infer/internal.h"
#include "tokenizer/internal.h"

#include <string.h>

const char *ilm__chat_end(const char *tmpl)
{
    if (strcmp(tmpl, "llama3") == 0) return "<|eot_id|>";
    if (strcmp(tmpl, "llama2") == 0) return "</s>";
    return "<|im_end|>";
}

/* The template's own token strings (at most 8, ilm__tok_guard's bound). */
static void markers(const char *tmpl, const char *const **v, size_t *n)
{
    static const char *const chatml[] = { "<s>", "<|im_start|>", "<|im_end|>" };
    static const char *const llama3[] = { "<|begin_of_text|>", "<|start_header_id|>",
                                          "<|end_header_id|>", "<|eot_id|>" };
    static const char *const llama2[] = { "<s>", "</s>" };
    if (strcmp(tmpl, "llama3") == 0) *v = llama3, *n = 4;
    else if (strcmp(tmpl, "llama2") == 0) *v = llama2, *n = 2;
    else *v = chatml, *n = 3;
}

static ilm_status put(ilm__chat_text *r, const char *s)
{
    return ilm__buf_append(&r->text, s, strlen(s));
}

/* Text from a message: appended, and its range noted. */
static ilm_status put_user(ilm__chat_text *r, const char *s)
{
    size_t start = r->text.n, len = strlen(s);
    ILM__FORWARD(ilm__buf_append(&r->text, s, len));
    if (len == 0) return ILM_OK;
    if (r->n_plain == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        size_t *v = ilm__realloc(r->plain, 2 * cap * sizeof *v);
        ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "chat: out of memory");
        r->plain = v;
        r->cap = cap;
    }
    r->plain[2 * r->n_plain] = start;
    r->plain[2 * r->n_plain + 1] = start + len;
    r->n_plain++;
    return ILM_OK;
}

static ilm_status field(const cJSON *msg, const char *key, bool required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, key);
    *out = cJSON_IsString(v) ? v->valuestring : NULL;
    ILM__RETURN_IF(v && !cJSON_IsString(v), ILM_ERR_CONFIG, "chat: '%s' must be a string", key);
    ILM__RETURN_IF(required && !*out, ILM_ERR_CONFIG, "chat: every message needs '%s'", key);
    return ILM_OK;
}

void ilm__chat_text_free(ilm__chat_text *r)
{
    ilm__buf_free(&r->text);
    ilm__free(r->plain);
    memset(r, 0, sizeof *r);
}

ilm_status ilm__chat_render(const char *tmpl, const cJSON *messages, ilm__chat_text *r)
{
    ILM__RETURN_IF(!cJSON_IsArray(messages), ILM_ERR_CONFIG, "chat: messages must be an array");
    const bool llama3 = strcmp(tmpl, "llama3") == 0, llama2 = strcmp(tmpl, "llama2") == 0;
    const bool internlm2 = strcmp(tmpl, "internlm2") == 0;
    if (internlm2) ILM__FORWARD(put(r, "<s>"));
    if (llama3) ILM__FORWARD(put(r, "<|begin_of_text|>"));
    const char *pending_system = NULL; /* LLaMA-2 folds it into the next user turn */
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages) {
        const char *role, *content, *name;
        ILM__RETURN_IF(!cJSON_IsObject(msg), ILM_ERR_CONFIG, "chat: a message must be an object");
        ILM__FORWARD(field(msg, "role", true, &role));
        ILM__FORWARD(field(msg, "content", true, &content));
        ILM__FORWARD(field(msg, "name", false, &name));
        if (llama2) {
            if (strcmp(role, "system") == 0) {
                pending_system = content;
            } else if (strcmp(role, "user") == 0) {
                ILM__FORWARD(put(r, "<s>[INST] "));
                if (pending_system) {
                    ILM__FORWARD(put(r, "<<SYS>>\n"));
                    ILM__FORWARD(put_user(r, pending_system));
                    ILM__FORWARD(put(r, "\n<</SYS>>\n\n"));
                    pending_system = NULL;
                }
                ILM__FORWARD(put_user(r, content));
                ILM__FORWARD(put(r, " [/INST]"));
            } else if (strcmp(role, "assistant") == 0) {
                ILM__FORWARD(put(r, " "));
                ILM__FORWARD(put_user(r, content));
                ILM__FORWARD(put(r, " </s>"));
            } else {
                return ilm__error(ILM_ERR_CONFIG, "chat: LLaMA-2 has no '%s' role", role);
            }
        } else if (llama3) {
            ILM__FORWARD(put(r, "<|start_header_id|>"));
            ILM__FORWARD(put_user(r, role));
            ILM__FORWARD(put(r, "<|end_header_id|>\n\n"));
            ILM__FORWARD(put_user(r, content));
            ILM__FORWARD(put(r, "<|eot_id|>"));
        } else {
            ILM__RETURN_IF(!internlm2 && strcmp(role, "environment") == 0, ILM_ERR_CONFIG,
                           "chat: the environment role is InternLM2's");
            ILM__FORWARD(put(r, "<|im_start|>"));
            ILM__FORWARD(put_user(r, role));
            if (name) {
                ILM__FORWARD(put(r, " name="));
                ILM__FORWARD(put(r, name));
            }
            ILM__FORWARD(put(r, "\n"));
            ILM__FORWARD(put_user(r, content));
            ILM__FORWARD(put(r, "<|im_end|>\n"));
        }
    }
    if (llama2) return ILM_OK; /* the assistant answers after [/INST] */
    return put(r, llama3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                         : "<|im_start|>assistant\n");
}

/* Parses and renders messages_json. */
static ilm_status render(const ilm_model *m, const char *messages_json, ilm__chat_text *r)
{
    cJSON *msgs = cJSON_Parse(messages_json);
    ILM__RETURN_IF(!msgs, ILM_ERR_CONFIG, "chat: messages are not valid JSON");
    ilm_status st = ilm__chat_render(m->chat_template, msgs, r);
    cJSON_Delete(msgs);
    if (st == ILM_OK && !r->text.p) st = ilm__buf_append(&r->text, "", 0);
    return st;
}

ilm_status ilm_chat_apply(const ilm_model *m, const char *messages_json, char **prompt)
{
    ILM__RETURN_IF(!m || !messages_json || !prompt, ILM_ERR_INVALID_ARG, "ilm_chat_apply: NULL argument");
    *prompt = NULL;
    ilm__chat_text r = { 0 };
    ilm_status st = render(m, messages_json, &r);
    if (st == ILM_OK) {
        *prompt = r.text.p;
        r.text.p = NULL;
    }
    ilm__chat_text_free(&r);
    return st;
}

ilm_status ilm_chat_encode(const ilm_model *m, const char *messages_json, int32_t **ids,
                           size_t *n_ids)
{
    ILM__RETURN_IF(!m || !messages_json || !ids || !n_ids, ILM_ERR_INVALID_ARG,
                   "ilm_chat_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    ILM__RETURN_IF(!m->tok, ILM_ERR_STATE, "ilm_chat_encode: the model has no tokenizer");
    ilm__chat_text r = { 0 };
    ilm_status st = render(m, messages_json, &r);
    ilm__ids out = { 0 };
    if (st == ILM_OK) {
        ilm__tok_guard g = { r.plain, r.n_plain, NULL, 0 };
        markers(m->chat_template, &g.markers, &g.n_markers);
        st = ilm__tok_encode_guarded(m->tok, r.text.p, r.text.n, ILM_TOKENIZE_SPECIAL, &g, &out);
    }
    if (st == ILM_OK && !out.v) { /* a non-NULL array even when empty */
        st = ilm__ids_push(&out, 0);
        out.n = 0;
    }
    ilm__chat_text_free(&r);
    if (st != ILM_OK) {
        ilm__free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return ILM_OK;
}

const char *ilm_model_chat_template(const ilm_model *m) { return m ? m->chat_template : NULL; }
