/*
 * src/model/ -- models: architecture, weights, the forward pass (see
 * internal.h for the files of this folder).
 *
 * This file loads a model from a Hugging Face directory (config.json +
 * safetensors, LLaMA or InternLM2 tensor names) or from a GGUF file
 * ("llama" metadata, llama.cpp tensor names), checks every tensor's shape
 * against the architecture, and builds the weight table the forward pass
 * reads.
 */
#include "model/internal.h"
#include "model/lora.h"
#include "quant/nf4.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "tensor/tensor.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* ---- owned buffers ----------------------------------------------------- */

void *ilm__model_own(ilm_model *m, size_t bytes)
{
    void **list = ilm__realloc(m->owned, (m->n_owned + 1) * sizeof *list);
    if (!list) return NULL;
    m->owned = list;
    void *p = ilm__malloc(bytes ? bytes : 1);
    if (p) {
        m->owned[m->n_owned++] = p;
        m->owned_bytes += bytes;
    }
    return p;
}

/* A tensor found in either file kind, in PyTorch order: shape [rows, cols]
 * (a vector has rows 1). */
typedef struct found {
    uint32_t       type;
    int64_t        rows, cols;
    int32_t        n_dims;
    const uint8_t *data;
    uint64_t       n_bytes;
} found;

static ilm_status find(const ilm_model *m, const char *path, const char *name, found *f)
{
    if (m->gguf) {
        const ilm__gguf_tensor *t = ilm__gguf_find_tensor(m->gguf, name);
        ILM__RETURN_IF(!t, ILM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
        ILM__RETURN_IF(t->n_dims > 2, ILM_ERR_FORMAT, "%s: tensor '%s' has %u dimensions", path,
                       name, t->n_dims);
        *f = (found){ t->type, (int64_t)t->dims[1], (int64_t)t->dims[0], (int32_t)t->n_dims,
                      t->data, t->n_bytes };
        return ILM_OK;
    }
    const ilm__st_tensor *t = ilm__st_find(m->st, name);
    ILM__RETURN_IF(!t, ILM_ERR_FORMAT, "%s: tensor '%s' is missing", path, name);
    ILM__RETURN_IF(t->n_dims < 1 || t->n_dims > 2, ILM_ERR_FORMAT,
                   "%s: tensor '%s' has %d dimensions", path, name, t->n_dims);
    ILM__RETURN_IF(t->type == UINT32_MAX, ILM_ERR_FORMAT, "%s: tensor '%s' has dtype %s", path, name,
                   t->dtype);
    *f = (found){ t->type, t->n_dims == 2 ? t->shape[0] : 1, t->shape[t->n_dims - 1], t->n_dims,
                  t->data, t->n_bytes };
    return ILM_OK;
}

/* A bitsandbytes 4-bit weight `name` of exactly [rows, cols] (its codes
 * stay in the mapping). */
static ilm_status matrix_q4(ilm_model *m, const char *path, const char *name, int64_t rows,
                            int64_t cols, ilm__weight *w)
{
    ilm__q4 **list = ilm__realloc(m->q4, (m->n_q4 + 1) * sizeof *list);
    ILM__RETURN_IF(!list, ILM_ERR_NOMEM, "model: out of memory");
    m->q4 = list;
    ilm__q4 *q = ilm__calloc(1, sizeof *q);
    ILM__RETURN_IF(!q, ILM_ERR_NOMEM, "model: out of memory");
    ilm_status st = ilm__q4_hf_read(m->st, name, q);
    if (st == ILM_OK && (q->n_dims != 2 || q->shape[0] != rows || q->shape[1] != cols))
        st = ilm__error(ILM_ERR_FORMAT,
                        "%s: 4-bit tensor '%s' is %dD [%lld, %lld] but the architecture needs "
                        "[%lld, %lld]",
                        path, name, (int)q->n_dims, (long long)q->shape[0],
                        (long long)(q->n_dims > 1 ? q->shape[1] : 0), (long long)rows, (long long)cols);
    if (st != ILM_OK) {
        ilm__q4_free(q);
        ilm__free(q);
        return st;
    }
    m->q4[m->n_q4++] = q;
    *w = (ilm__weight){ .type = q->kind == ILM__Q4_FP4 ? ILM__DTYPE_FP4 : ILM__DTYPE_NF4,
                        .rows = rows, .cols = cols, .data = q };
    m->mapped_bytes += ilm__weight_bytes(w);
    return ILM_OK;
}

/* A weight matrix of exactly [rows, cols]; a layer's linear (`linear`) may
 * be a bitsandbytes 4-bit weight, the embedding and head may not (as
 * bitsandbytes leaves them). */
static ilm_status matrix(ilm_model *m, const char *path, const char *name, int64_t rows,
                         int64_t cols, ilm__weight *w, bool linear)
{
    if (m->st && ilm__q4_hf_present(m->st, name)) {
        ILM__RETURN_IF(!linear, ILM_ERR_FORMAT,
                       "%s: tensor '%s' is 4-bit; only the layers' linears may be", path, name);
        return matrix_q4(m, path, name, rows, cols, w);
    }
    found f;
    ILM__FORWARD(find(m, path, name, &f));
    ILM__RETURN_IF(f.n_dims != 2 || f.rows != rows || f.cols != cols, ILM_ERR_FORMAT,
                   "%s: tensor '%s' is [%lld, %lld] but the architecture needs [%lld, %lld]", path,
                   name, (long long)f.rows, (long long)f.cols, (long long)rows, (long long)cols);
    uint32_t block, bytes;
    ILM__RETURN_IF(!ilm__dtype_info(f.type, &block, &bytes) || cols % block != 0,
                   ILM_ERR_FORMAT, "%s: tensor '%s' has type %s, unusable for a %lld-wide row",
                   path, name, ilm__dtype_name(f.type), (long long)cols);
    *w = (ilm__weight){ .type = f.type, .rows = rows, .cols = cols, .data = f.data };
    m->mapped_bytes += f.n_bytes;
    return ILM_OK;
}

/* A vector of exactly n elements, converted to fp32 in a buffer we own. */
static ilm_status vector(ilm_model *m, const char *path, const char *name, int64_t n,
                         const float **out)
{
    found f;
    ILM__FORWARD(find(m, path, name, &f));
    ILM__RETURN_IF(f.rows * f.cols != n || (f.n_dims == 2 && f.rows != 1), ILM_ERR_FORMAT,
                   "%s: tensor '%s' has %lld elements but the architecture needs %lld", path, name,
                   (long long)(f.rows * f.cols), (long long)n);
    float *v = ilm__model_own(m, (size_t)n * sizeof *v);
    ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "model: out of memory");
    ILM__FORWARD(ilm__dequantize(f.type, f.data, v, n));
    *out = v;
    return ILM_OK;
}

/* ---- tensor names ------------------------------------------------------ */

#define LT(f, n, r, c, a, b, g) { offsetof(ilm__layer, f), n, r, c, a, b, g }
const ilm__layer_tensor ilm__layer_tensors[] = {
    LT(attn_norm, true, 0, 0, "model.layers.%lld.input_layernorm.weight",
       "model.layers.%lld.attention_norm.weight", "blk.%lld.attn_norm.weight"),
    LT(ffn_norm, true, 0, 0, "model.layers.%lld.post_attention_layernorm.weight",
       "model.layers.%lld.ffn_norm.weight", "blk.%lld.ffn_norm.weight"),
    LT(wq, false, 'Q', 'C', "model.layers.%lld.self_attn.q_proj.weight", NULL, "blk.%lld.attn_q.weight"),
    LT(wk, false, 'K', 'C', "model.layers.%lld.self_attn.k_proj.weight", NULL, "blk.%lld.attn_k.weight"),
    LT(wv, false, 'K', 'C', "model.layers.%lld.self_attn.v_proj.weight", NULL, "blk.%lld.attn_v.weight"),
    LT(wqkv, false, 'X', 'C', NULL, "model.layers.%lld.attention.wqkv.weight", NULL),
    LT(wo, false, 'C', 'Q', "model.layers.%lld.self_attn.o_proj.weight",
       "model.layers.%lld.attention.wo.weight", "blk.%lld.attn_output.weight"),
    LT(w_gate, false, 'F', 'C', "model.layers.%lld.mlp.gate_proj.weight",
       "model.layers.%lld.feed_forward.w1.weight", "blk.%lld.ffn_gate.weight"),
    LT(w_up, false, 'F', 'C', "model.layers.%lld.mlp.up_proj.weight",
       "model.layers.%lld.feed_forward.w3.weight", "blk.%lld.ffn_up.weight"),
    LT(w_down, false, 'C', 'F', "model.layers.%lld.mlp.down_proj.weight",
       "model.layers.%lld.feed_forward.w2.weight", "blk.%lld.ffn_down.weight"),
};
#undef LT
const size_t ilm__n_layer_tensors = sizeof ilm__layer_tensors / sizeof *ilm__layer_tensors;

int64_t ilm__layer_size(const ilm__arch *a, char which)
{
    int64_t Q = (int64_t)a->n_heads * a->head_dim, K = (int64_t)a->n_kv_heads * a->head_dim;
    switch (which) {
    case 'C': return a->hidden_size;
    case 'F': return a->intermediate_size;
    case 'Q': return Q;
    case 'K': return K;
    default: return Q + 2 * K; /* 'X' */
    }
}

static ilm_status load_layer(ilm_model *m, const char *path, int64_t l)
{
    const ilm__arch *a = &m->arch;
    uint8_t *y = (uint8_t *)&m->layers[l];
    for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
        const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
        const char *fmt = m->gguf ? lt->gguf : ilm__layer_name(a, lt);
        if (!fmt) continue; /* not part of this layout */
        char name[160];
        snprintf(name, sizeof name, fmt, (long long)l);
        if (lt->norm)
            ILM__FORWARD(vector(m, path, name, a->hidden_size, (const float **)(y + lt->field)));
        else
            ILM__FORWARD(matrix(m, path, name, ilm__layer_size(a, lt->rows),
                               ilm__layer_size(a, lt->cols), (ilm__weight *)(y + lt->field), true));
    }
    return ILM_OK;
}

static ilm_status load_weights(ilm_model *m, const char *path)
{
    const ilm__arch *a = &m->arch;
    const int64_t V = a->vocab_size, C = a->hidden_size;
    m->layers = ilm__calloc((size_t)a->n_layers, sizeof *m->layers);
    ILM__RETURN_IF(!m->layers, ILM_ERR_NOMEM, "model: out of memory");
    const bool gguf = m->gguf != NULL, i2 = a->kind == ILM__ARCH_INTERNLM2;
    ILM__FORWARD(matrix(m, path, gguf ? "token_embd.weight" : i2 ? "model.tok_embeddings.weight"
                                                                : "model.embed_tokens.weight",
                       V, C, &m->tok_embd, false));
    ILM__FORWARD(vector(m, path, gguf ? "output_norm.weight" : "model.norm.weight", C, &m->out_norm));
    if (a->tie_embeddings) {
        m->output = m->tok_embd;
    } else {
        ILM__FORWARD(matrix(m, path, gguf ? "output.weight" : i2 ? "output.weight" : "lm_head.weight",
                           V, C, &m->output, false));
    }
    for (int64_t l = 0; l < a->n_layers; l++)
        ILM__FORWARD(load_layer(m, path, l));
    return ILM_OK;
}

/* ---- chat templates ---------------------------------------------------- */

/* Picks a built-in template from the model's own template text (Jinja in
 * tokenizer_config.json or tokenizer.chat_template), else from the
 * architecture and vocabulary. */
static const char *pick_template(const ilm_model *m, const char *jinja)
{
    if (jinja && strstr(jinja, "<|start_header_id|>")) return "llama3";
    if (jinja && strstr(jinja, "[INST]")) return "llama2";
    if (jinja && strstr(jinja, "<|im_start|>"))
        return m->arch.kind == ILM__ARCH_INTERNLM2 ? "internlm2" : "chatml";
    if (m->arch.kind == ILM__ARCH_INTERNLM2) return "internlm2";
    if (m->tok && ilm_tokenizer_piece_id(m->tok, "<|im_start|>") >= 0) return "chatml";
    if (m->tok && ilm_tokenizer_piece_id(m->tok, "<|start_header_id|>") >= 0) return "llama3";
    return "llama2";
}

/* ---- loading ----------------------------------------------------------- */

/* config.json's quantization_config: none, or bitsandbytes 4-bit (NF4 or
 * FP4, uint8 storage), whose weights matrix_q4 reads. */
static ilm_status check_quantization(const char *text, size_t len, const char *path)
{
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    ilm_status st = ILM_OK;
    if (q && !cJSON_IsNull(q)) {
        const cJSON *method = cJSON_GetObjectItemCaseSensitive(q, "quant_method"),
                    *in4 = cJSON_GetObjectItemCaseSensitive(q, "load_in_4bit"),
                    *in8 = cJSON_GetObjectItemCaseSensitive(q, "load_in_8bit"),
                    *type = cJSON_GetObjectItemCaseSensitive(q, "bnb_4bit_quant_type"),
                    *storage = cJSON_GetObjectItemCaseSensitive(q, "bnb_4bit_quant_storage");
        if (!cJSON_IsObject(q) || !cJSON_IsString(method))
            st = ilm__error(ILM_ERR_CONFIG, "%s: 'quantization_config' has no 'quant_method'", path);
        else if (strcmp(method->valuestring, "bitsandbytes") != 0)
            st = ilm__error(ILM_ERR_CONFIG,
                            "%s: 'quantization_config.quant_method' is '%s'; this library reads "
                            "bitsandbytes 4-bit models",
                            path, method->valuestring);
        else if (cJSON_IsTrue(in8) || !cJSON_IsTrue(in4))
            st = ilm__error(ILM_ERR_CONFIG,
                            "%s: 'quantization_config': bitsandbytes 8-bit (LLM.int8) is not "
                            "supported, only load_in_4bit",
                            path);
        else if (type && (!cJSON_IsString(type) || (strcmp(type->valuestring, "nf4") &&
                                                     strcmp(type->valuestring, "fp4"))))
            st = ilm__error(ILM_ERR_CONFIG,
                            "%s: 'quantization_config.bnb_4bit_quant_type' must be \"nf4\" or "
                            "\"fp4\"",
                            path);
        else if (storage && (!cJSON_IsString(storage) || strcmp(storage->valuestring, "uint8")))
            st = ilm__error(ILM_ERR_CONFIG,
                            "%s: 'quantization_config.bnb_4bit_quant_storage' must be \"uint8\"",
                            path);
    }
    cJSON_Delete(root);
    return st;
}

static ilm_status load_hf(ilm_model *m, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    ilm__mmap cfg;
    ILM__FORWARD(ilm__mmap_open(path, &cfg));
    ilm_status st = ilm__arch_from_hf_config((const char *)cfg.data, cfg.size, path, &m->arch);
    if (st == ILM_OK) st = check_quantization((const char *)cfg.data, cfg.size, path);
    ilm__mmap_close(&cfg);
    ILM__FORWARD(st);
    ILM__FORWARD(ilm__st_open(dir, &m->st));
    ILM__FORWARD(load_weights(m, dir));
    /* The tokenizer and its chat template, when the directory has them. */
    if (ilm_tokenizer_load(dir, &m->tok) != ILM_OK) m->tok = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    /* A missing or unreadable tokenizer_config.json only means no template
     * of its own: pick_template falls back on the vocabulary. */
    cJSON *j = NULL;
    if (ilm__json_read_file(path, &j) != ILM_OK) j = NULL;
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
    m->chat_template = ilm__strdup(pick_template(m, cJSON_IsString(tmpl) ? tmpl->valuestring : NULL));
    cJSON_Delete(j);
    return m->chat_template ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "model: out of memory");
}

static ilm_status load_gguf(ilm_model *m, const char *path)
{
    ILM__FORWARD(ilm__gguf_open(path, &m->gguf));
    ILM__FORWARD(ilm__arch_from_gguf(m->gguf, &m->arch));
    ILM__FORWARD(load_weights(m, path));
    if (ilm_tokenizer_load(path, &m->tok) != ILM_OK) m->tok = NULL;
    ilm__gguf_str s = { 0 };
    char *jinja = ilm__gguf_get_str(m->gguf, "tokenizer.chat_template", &s) == ILM_OK
                      ? ilm__strndup(s.p, s.n) : NULL;
    m->chat_template = ilm__strdup(pick_template(m, jinja));
    ilm__free(jinja);
    return m->chat_template ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "model: out of memory");
}

ilm_status ilm_model_load(const char *path, const char *config, ilm_model **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_model_load: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "ilm_model_load: path is NULL");
    cJSON *root = NULL;
    int64_t threads = 0;
    const char *adapter_cfg = NULL;
    const cJSON *quantize = NULL;
    ILM__FORWARD(ilm__json_parse(config, "model config", &root));
    const ilm__jfield fields[] = { { "threads", ILM__J_INT, &threads, false, 0, ILM__MAX_THREADS },
                                   { "adapter", ILM__J_STRING, &adapter_cfg, false, 0, 0 },
                                   { "quantize", ILM__J_OBJECT, &quantize, false, 0, 0 } };
    ilm_status st = ilm__json_fields(root, "", fields, 3);
    ilm__q4_opts q4;
    const bool quant = quantize != NULL; /* the tree goes before the options are used */
    if (st == ILM_OK && quant) st = ilm__q4_opts_parse(quantize, "quantize", &q4);
    char *adapter = st == ILM_OK && adapter_cfg ? ilm__strdup(adapter_cfg) : NULL;
    cJSON_Delete(root);
    ILM__FORWARD(st);
    ILM__RETURN_IF(adapter_cfg && !adapter, ILM_ERR_NOMEM, "model: out of memory");

    ilm_model *m = ilm__calloc(1, sizeof *m);
    if (!m) {
        ilm__free(adapter);
        return ilm__error(ILM_ERR_NOMEM, "model: out of memory");
    }
    m->threads = (int)threads;
    struct stat sb;
    if (stat(path, &sb) != 0) st = ilm__error(ILM_ERR_IO, "cannot open '%s'", path);
    else st = S_ISDIR(sb.st_mode) ? load_hf(m, path) : load_gguf(m, path);
    if (st == ILM_OK) {
        const ilm__arch *a = &m->arch;
        if (a->head_dim % 2 != 0 || a->head_dim > 1024)
            st = ilm__error(ILM_ERR_UNSUPPORTED, "%s: head_dim %d", path, a->head_dim);
        else if (a->rope_scaling == ILM__ROPE_SCALING_LLAMA3 && m->arch.rope_interleaved)
            st = ilm__error(ILM_ERR_UNSUPPORTED, "%s: LLaMA-3 RoPE scaling in a GGUF file", path);
    }
    if (st == ILM_OK) st = ilm__rope_init(m);
    if (st == ILM_OK && quant) st = ilm__model_quantize_q4(m, &q4);
    if (st == ILM_OK && adapter) st = ilm__lora_attach(m, adapter);
    ilm__free(adapter);
    if (st != ILM_OK) {
        ilm_model_free(m);
        return st;
    }
    *out = m;
    return ILM_OK;
}

void ilm_model_free(ilm_model *m)
{
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) ilm__free(m->owned[i]);
    ilm__free(m->owned);
    ilm__free(m->layers);
    ilm__free(m->inv_freq);
    ilm__free(m->chat_template);
    ilm__free(m->lora_slab);
    ilm__free(m->adapter);
    for (size_t i = 0; i < m->n_q4; i++) {
        ilm__q4_free(m->q4[i]);
        ilm__free(m->q4[i]);
    }
    ilm__free(m->q4);
    ilm_tokenizer_free(m->tok);
    if (m->st) ilm__st_close(m->st);
    if (m->gguf) ilm__gguf_close(m->gguf);
    ilm__free(m);
}

const ilm_tokenizer *ilm_model_tokenizer(const ilm_model *m) { return m ? m->tok : NULL; }

uint64_t ilm_model_memory(const ilm_model *m)
{
    return m ? m->mapped_bytes + m->owned_bytes : 0;
}

ilm_status ilm_model_info(const ilm_model *m, char **json)
{
    ILM__RETURN_IF(!m || !json, ILM_ERR_INVALID_ARG, "ilm_model_info: NULL argument");
    const ilm__arch *a = &m->arch;
    cJSON *j = cJSON_CreateObject();
    ILM__RETURN_IF(!j, ILM_ERR_NOMEM, "model: out of memory");
    cJSON_AddStringToObject(j, "architecture", a->kind == ILM__ARCH_INTERNLM2 ? "internlm2" : "llama");
    cJSON_AddNumberToObject(j, "vocab_size", a->vocab_size);
    cJSON_AddNumberToObject(j, "hidden_size", a->hidden_size);
    cJSON_AddNumberToObject(j, "intermediate_size", a->intermediate_size);
    cJSON_AddNumberToObject(j, "layers", a->n_layers);
    cJSON_AddNumberToObject(j, "heads", a->n_heads);
    cJSON_AddNumberToObject(j, "kv_heads", a->n_kv_heads);
    cJSON_AddNumberToObject(j, "head_dim", a->head_dim);
    cJSON_AddNumberToObject(j, "max_position", a->max_position);
    cJSON_AddNumberToObject(j, "rope_theta", a->rope_theta);
    cJSON_AddBoolToObject(j, "tied_embeddings", a->tie_embeddings);
    cJSON_AddStringToObject(j, "weight_type", ilm__dtype_name(m->layers[0].w_up.type));
    cJSON_AddNumberToObject(j, "weight_bytes", (double)m->mapped_bytes);
    cJSON_AddNumberToObject(j, "owned_bytes", (double)m->owned_bytes);
    cJSON_AddStringToObject(j, "chat_template", m->chat_template);
    cJSON_AddBoolToObject(j, "tokenizer", m->tok != NULL);
    if (m->adapter) {
        cJSON_AddStringToObject(j, "adapter", m->adapter);
        cJSON_AddNumberToObject(j, "adapter_r", (double)m->lora_r);
    }
    ilm_status st = ilm__json_print(j, json);
    cJSON_Delete(j);
    return st;
}
