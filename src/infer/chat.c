/* Chat templates, built in (no Jinja): InternLM2 (with the environment role
 * and name= attributes of its tool protocol), ChatML (SmolLM2, Qwen),
 * LLaMA-2 and LLaMA-3.  The model picks one from its own template text
 * (src/model/model.c). */
#include "infer/internal.h"

#include <string.h>

const char *ilm__chat_end(const char *tmpl)
{
    if (strcmp(tmpl, "llama3") == 0) return "<|eot_id|>";
    if (strcmp(tmpl, "llama2") == 0) return "</s>";
    return "<|im_end|>";
}

static ilm_status put(ilm__buf *b, const char *s) { return ilm__buf_append(b, s, strlen(s)); }

static ilm_status field(const cJSON *msg, const char *key, bool required, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, key);
    *out = cJSON_IsString(v) ? v->valuestring : NULL;
    ILM_RETURN_IF(v && !cJSON_IsString(v), ILM_ERR_CONFIG, "chat: '%s' must be a string", key);
    ILM_RETURN_IF(required && !*out, ILM_ERR_CONFIG, "chat: every message needs '%s'", key);
    return ILM_OK;
}

ilm_status ilm__chat_render(const char *tmpl, const cJSON *messages, ilm__buf *out)
{
    ILM_RETURN_IF(!cJSON_IsArray(messages), ILM_ERR_CONFIG, "chat: messages must be an array");
    const bool llama3 = strcmp(tmpl, "llama3") == 0, llama2 = strcmp(tmpl, "llama2") == 0;
    const bool internlm2 = strcmp(tmpl, "internlm2") == 0;
    if (internlm2) ILM_FORWARD(put(out, "<s>"));
    if (llama3) ILM_FORWARD(put(out, "<|begin_of_text|>"));
    const char *pending_system = NULL; /* LLaMA-2 folds it into the next user turn */
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages) {
        const char *role, *content, *name;
        ILM_RETURN_IF(!cJSON_IsObject(msg), ILM_ERR_CONFIG, "chat: a message must be an object");
        ILM_FORWARD(field(msg, "role", true, &role));
        ILM_FORWARD(field(msg, "content", true, &content));
        ILM_FORWARD(field(msg, "name", false, &name));
        if (llama2) {
            if (strcmp(role, "system") == 0) {
                pending_system = content;
            } else if (strcmp(role, "user") == 0) {
                ILM_FORWARD(put(out, "<s>[INST] "));
                if (pending_system) {
                    ILM_FORWARD(ilm__buf_printf(out, "<<SYS>>\n%s\n<</SYS>>\n\n", pending_system));
                    pending_system = NULL;
                }
                ILM_FORWARD(ilm__buf_printf(out, "%s [/INST]", content));
            } else if (strcmp(role, "assistant") == 0) {
                ILM_FORWARD(ilm__buf_printf(out, " %s </s>", content));
            } else {
                return ilm__error(ILM_ERR_CONFIG, "chat: LLaMA-2 has no '%s' role", role);
            }
        } else if (llama3) {
            ILM_FORWARD(ilm__buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n%s<|eot_id|>",
                                        role, content));
        } else {
            ILM_RETURN_IF(!internlm2 && strcmp(role, "environment") == 0, ILM_ERR_CONFIG,
                          "chat: the environment role is InternLM2's");
            ILM_FORWARD(ilm__buf_printf(out, "<|im_start|>%s%s%s\n%s<|im_end|>\n", role,
                                        name ? " name=" : "", name ? name : "", content));
        }
    }
    if (llama2) return ILM_OK; /* the assistant answers after [/INST] */
    return put(out, llama3 ? "<|start_header_id|>assistant<|end_header_id|>\n\n"
                           : "<|im_start|>assistant\n");
}

ilm_status ilm_chat_apply(const ilm_model *m, const char *messages_json, char **prompt)
{
    ILM_RETURN_IF(!m || !messages_json || !prompt, ILM_ERR_INVALID_ARG, "ilm_chat_apply: NULL argument");
    *prompt = NULL;
    cJSON *msgs = cJSON_Parse(messages_json);
    ILM_RETURN_IF(!msgs, ILM_ERR_CONFIG, "chat: messages are not valid JSON");
    ilm__buf b = { 0 };
    ilm_status st = ilm__chat_render(m->chat_template, msgs, &b);
    cJSON_Delete(msgs);
    if (st == ILM_OK && !b.p) st = ilm__buf_append(&b, "", 0);
    if (st != ILM_OK) {
        ilm__buf_free(&b);
        return st;
    }
    *prompt = b.p;
    return ILM_OK;
}

const char *ilm_model_chat_template(const ilm_model *m) { return m ? m->chat_template : NULL; }
