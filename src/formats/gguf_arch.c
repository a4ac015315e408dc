/*
 * gguf_arch.c -- the architecture of a GGUF LLaMA file (llama.cpp's
 * "llama.*" keys, named as in gguf-py's constants.py) and a check of every
 * tensor's presence and shape against it.
 *
 * ggml lists dimensions fastest-varying first, so a PyTorch [rows, cols]
 * weight appears as dims [cols, rows]: token_embd.weight [V, C] is
 * dims {C, V}, attn_q.weight [H*D, C] is dims {C, H*D}.
 */
#include "formats/arch.h"
#include "formats/gguf.h"

#include <stdio.h>
#include <string.h>

/* ---- metadata ---------------------------------------------------------------- */

/* A required or optional (def used when absent) positive int32 size. */
static ilm_status get_size(const ilm__gguf *g, const char *key, bool required, int64_t def,
                           int32_t *out)
{
    uint32_t v;
    ilm_status s = ilm__gguf_get_u32(g, key, &v);
    if (s == ILM_ERR_NOT_FOUND) {
        ILM__RETURN_IF(required, ILM_ERR_FORMAT, "%s: key '%s' is missing", g->path, key);
        *out = (int32_t)def;
        return ILM_OK;
    }
    ILM__FORWARD(s);
    ILM__RETURN_IF(v == 0 || v > INT32_MAX, ILM_ERR_FORMAT, "%s: '%s' is %u", g->path, key,
                   (unsigned)v);
    *out = (int32_t)v;
    return ILM_OK;
}

static ilm_status get_pos_f32(const ilm__gguf *g, const char *key, bool required, float def,
                              float *out)
{
    ilm_status s = ilm__gguf_get_f32(g, key, out);
    if (s == ILM_ERR_NOT_FOUND) {
        ILM__RETURN_IF(required, ILM_ERR_FORMAT, "%s: key '%s' is missing", g->path, key);
        *out = def;
        return ILM_OK;
    }
    ILM__FORWARD(s);
    ILM__RETURN_IF(!(*out > 0) || *out > 3.4e38f, ILM_ERR_FORMAT, "%s: '%s' is %g", g->path,
                   key, (double)*out);
    return ILM_OK;
}

/* A token id, -1 when absent; it must lie inside the vocabulary. */
static ilm_status get_token(const ilm__gguf *g, const char *key, int32_t vocab, int32_t *out)
{
    uint32_t v;
    ilm_status s = ilm__gguf_get_u32(g, key, &v);
    if (s == ILM_ERR_NOT_FOUND) {
        *out = -1;
        return ILM_OK;
    }
    ILM__FORWARD(s);
    ILM__RETURN_IF(v >= (uint32_t)vocab, ILM_ERR_FORMAT, "%s: '%s' is %u but the vocabulary "
                   "has %d tokens", g->path, key, (unsigned)v, (int)vocab);
    *out = (int32_t)v;
    return ILM_OK;
}

static ilm_status read_rope_scaling(const ilm__gguf *g, ilm__arch *a)
{
    a->rope_scaling = ILM__ROPE_SCALING_NONE;
    a->rope_factor = 1.0f;
    ilm__gguf_str type;
    ilm_status s = ilm__gguf_get_str(g, "llama.rope.scaling.type", &type);
    if (s == ILM_ERR_NOT_FOUND) {
        /* Files from before the scaling.* keys carry a linear factor alone. */
        float f;
        s = ilm__gguf_get_f32(g, "llama.rope.scale_linear", &f);
        if (s == ILM_ERR_NOT_FOUND) return ILM_OK;
        ILM__FORWARD(s);
        ILM__RETURN_IF(!(f >= 1.0f) || f > 3.4e38f, ILM_ERR_FORMAT,
                       "%s: 'llama.rope.scale_linear' is %g", g->path, (double)f);
        if (f != 1.0f) {
            a->rope_scaling = ILM__ROPE_SCALING_LINEAR;
            a->rope_factor = f;
        }
        return ILM_OK;
    }
    ILM__FORWARD(s);
    if (ilm__gguf_str_eq(type, "none")) return ILM_OK;
    ILM__RETURN_IF(!ilm__gguf_str_eq(type, "linear"), ILM_ERR_UNSUPPORTED,
                   "%s: RoPE scaling '%.*s' is not supported (none, linear are)", g->path,
                   (int)type.n, type.p);
    ILM__FORWARD(get_pos_f32(g, "llama.rope.scaling.factor", true, 1.0f, &a->rope_factor));
    ILM__RETURN_IF(a->rope_factor < 1.0f, ILM_ERR_FORMAT,
                   "%s: 'llama.rope.scaling.factor' %g is below 1", g->path,
                   (double)a->rope_factor);
    a->rope_scaling = ILM__ROPE_SCALING_LINEAR;
    return ILM_OK;
}

static ilm_status read_metadata(const ilm__gguf *g, ilm__arch *a)
{
    const char *gp = g->path;
    ilm__gguf_str arch;
    ilm_status s = ilm__gguf_get_str(g, "general.architecture", &arch);
    ILM__RETURN_IF(s == ILM_ERR_NOT_FOUND, ILM_ERR_FORMAT,
                   "%s: key 'general.architecture' is missing", gp);
    ILM__FORWARD(s);
    ILM__RETURN_IF(!ilm__gguf_str_eq(arch, "llama"), ILM_ERR_UNSUPPORTED,
                   "%s: architecture '%.*s' is not supported (only llama)", gp, (int)arch.n,
                   arch.p);
    a->kind = ILM__ARCH_LLAMA;

    int32_t experts = 0;
    ILM__FORWARD(get_size(g, "llama.expert_count", false, 0, &experts));
    ILM__RETURN_IF(experts > 0, ILM_ERR_UNSUPPORTED,
                   "%s: mixture of experts (llama.expert_count %d) is not supported", gp,
                   (int)experts);

    ILM__FORWARD(get_size(g, "llama.block_count", true, 0, &a->n_layers));
    ILM__FORWARD(get_size(g, "llama.embedding_length", true, 0, &a->hidden_size));
    ILM__FORWARD(get_size(g, "llama.feed_forward_length", true, 0, &a->intermediate_size));
    ILM__FORWARD(get_size(g, "llama.attention.head_count", true, 0, &a->n_heads));
    ILM__FORWARD(get_size(g, "llama.attention.head_count_kv", false, a->n_heads,
                         &a->n_kv_heads));
    ILM__RETURN_IF(a->n_heads % a->n_kv_heads != 0, ILM_ERR_FORMAT,
                   "%s: head_count %d is not a multiple of head_count_kv %d", gp,
                   (int)a->n_heads, (int)a->n_kv_heads);
    ILM__FORWARD(get_size(g, "llama.context_length", true, 0, &a->max_position));
    ILM__FORWARD(get_pos_f32(g, "llama.attention.layer_norm_rms_epsilon", true, 0,
                            &a->rms_eps));
    ILM__FORWARD(get_pos_f32(g, "llama.rope.freq_base", false, 10000.0f, &a->rope_theta));

    /* The head size: key_length when the file says it, else C / H. */
    int32_t def_d = a->hidden_size % a->n_heads == 0 ? a->hidden_size / a->n_heads : -1;
    int32_t kd, vd, rd;
    ILM__FORWARD(get_size(g, "llama.attention.key_length", false, def_d, &kd));
    ILM__RETURN_IF(kd < 0, ILM_ERR_FORMAT,
                   "%s: embedding_length %d is not a multiple of head_count %d", gp,
                   (int)a->hidden_size, (int)a->n_heads);
    ILM__FORWARD(get_size(g, "llama.attention.value_length", false, kd, &vd));
    ILM__RETURN_IF(vd != kd, ILM_ERR_UNSUPPORTED,
                   "%s: key_length %d and value_length %d differ", gp, (int)kd, (int)vd);
    ILM__FORWARD(get_size(g, "llama.rope.dimension_count", false, kd, &rd));
    ILM__RETURN_IF(rd != kd, ILM_ERR_UNSUPPORTED, "%s: RoPE over %d of the head's %d "
                   "dimensions (partial rotary) is not supported", gp, (int)rd, (int)kd);
    ILM__RETURN_IF(kd % 2 != 0, ILM_ERR_FORMAT, "%s: head size %d is odd; RoPE rotates pairs",
                   gp, (int)kd);
    ILM__RETURN_IF((int64_t)kd * a->n_heads > INT32_MAX, ILM_ERR_FORMAT,
                   "%s: head_count x head size overflows", gp);
    a->head_dim = kd;
    ILM__FORWARD(read_rope_scaling(g, a));
    a->rope_interleaved = true;

    /* The vocabulary: llama.vocab_size, else the tokenizer's token list. */
    const ilm__gguf_kv *tokens = NULL;
    s = ilm__gguf_get_arr(g, "tokenizer.ggml.tokens", ILM__GGUF_STRING, &tokens);
    if (s != ILM_ERR_NOT_FOUND) ILM__FORWARD(s);
    else tokens = NULL;
    ILM__FORWARD(get_size(g, "llama.vocab_size", false, -1, &a->vocab_size));
    if (a->vocab_size < 0) {
        ILM__RETURN_IF(!tokens, ILM_ERR_FORMAT,
                       "%s: neither 'llama.vocab_size' nor 'tokenizer.ggml.tokens' gives the "
                       "vocabulary size", gp);
        ILM__RETURN_IF(tokens->count == 0 || tokens->count > INT32_MAX, ILM_ERR_FORMAT,
                       "%s: 'tokenizer.ggml.tokens' has %llu tokens", gp,
                       (unsigned long long)tokens->count);
        a->vocab_size = (int32_t)tokens->count;
    } else {
        ILM__RETURN_IF(tokens && tokens->count != (uint64_t)a->vocab_size, ILM_ERR_FORMAT,
                       "%s: llama.vocab_size %d but tokenizer.ggml.tokens has %llu", gp,
                       (int)a->vocab_size, (unsigned long long)tokens->count);
    }
    ILM__FORWARD(get_token(g, "tokenizer.ggml.bos_token_id", a->vocab_size, &a->bos_id));
    ILM__FORWARD(get_token(g, "tokenizer.ggml.eos_token_id", a->vocab_size, &a->eos_id));
    ILM__FORWARD(get_token(g, "tokenizer.ggml.padding_token_id", a->vocab_size, &a->pad_id));
    return ILM_OK;
}

/* ---- tensors ----------------------------------------------------------------- */

/* Per-layer tensors: name suffix and the two ggml dims, as indices into
 * the size table built in check_tensors. */
enum { SZ_C, SZ_F, SZ_Q, SZ_KV, SZ_ONE };
static const struct layer_tensor {
    const char *suffix;
    int         d0, d1; /* SZ_ONE as d1 for a vector */
} layer_tensors[] = {
    { "attn_norm.weight", SZ_C, SZ_ONE },  { "attn_q.weight", SZ_C, SZ_Q },
    { "attn_k.weight", SZ_C, SZ_KV },      { "attn_v.weight", SZ_C, SZ_KV },
    { "attn_output.weight", SZ_Q, SZ_C },  { "ffn_norm.weight", SZ_C, SZ_ONE },
    { "ffn_gate.weight", SZ_C, SZ_F },     { "ffn_up.weight", SZ_C, SZ_F },
    { "ffn_down.weight", SZ_F, SZ_C },
};
#define N_LAYER_TENSORS (sizeof layer_tensors / sizeof layer_tensors[0])

static ilm_status check_shape(const ilm__gguf *g, const char *name, uint64_t d0, uint64_t d1,
                              bool vector, bool required, bool *present)
{
    const ilm__gguf_tensor *t = ilm__gguf_find_tensor(g, name);
    if (present) *present = t != NULL;
    if (!t) {
        ILM__RETURN_IF(required, ILM_ERR_FORMAT, "%s: tensor '%s' is missing", g->path, name);
        return ILM_OK;
    }
    bool ok = t->n_dims == (vector ? 1u : 2u) && t->dims[0] == d0 &&
              (vector || t->dims[1] == d1);
    if (ok) return ILM_OK;
    char got[96] = "", want[48];
    for (uint32_t i = 0, at = 0; i < t->n_dims && at < sizeof got; i++)
        at += (uint32_t)snprintf(got + at, sizeof got - at, "%s%llu", i ? ", " : "",
                                 (unsigned long long)t->dims[i]);
    if (vector) snprintf(want, sizeof want, "%llu", (unsigned long long)d0);
    else snprintf(want, sizeof want, "%llu, %llu", (unsigned long long)d0,
                  (unsigned long long)d1);
    return ilm__error(ILM_ERR_FORMAT, "%s: tensor '%s' has ggml dims [%s] but the metadata "
                      "implies [%s]", g->path, name, got, want);
}

/* Whether `name` (n bytes) is one a LLaMA model has, for L layers. */
static bool known_name(const char *name, size_t n, int32_t n_layers)
{
    static const char *const globals[] = { "token_embd.weight", "output_norm.weight",
                                           "output.weight" };
    for (size_t i = 0; i < 3; i++)
        if (strlen(globals[i]) == n && memcmp(globals[i], name, n) == 0) return true;
    if (n < 5 || memcmp(name, "blk.", 4) != 0) return false;
    size_t i = 4;
    int64_t layer = 0;
    if (name[i] < '0' || name[i] > '9' || (name[i] == '0' && i + 1 < n && name[i + 1] != '.'))
        return false;
    while (i < n && name[i] >= '0' && name[i] <= '9' && layer < n_layers)
        layer = layer * 10 + (name[i++] - '0');
    if (layer >= n_layers || i >= n || name[i] != '.') return false;
    i++;
    for (size_t k = 0; k < N_LAYER_TENSORS; k++) {
        const char *s = layer_tensors[k].suffix;
        if (strlen(s) == n - i && memcmp(s, name + i, n - i) == 0) return true;
    }
    return false;
}

static ilm_status check_tensors(const ilm__gguf *g, ilm__arch *a)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ilm__gguf_str nm = g->tensors[i].name;
        if (known_name(nm.p, nm.n, a->n_layers)) continue;
        ILM__RETURN_IF(ilm__gguf_str_eq(nm, "rope_freqs.weight"), ILM_ERR_UNSUPPORTED,
                       "%s: tensor 'rope_freqs.weight' (per-frequency RoPE factors, as "
                       "LLaMA-3.1 files carry) is not supported", g->path);
        return ilm__error(ILM_ERR_UNSUPPORTED, "%s: tensor '%.*s' has no place in a LLaMA "
                          "model of %d layers", g->path, (int)nm.n, nm.p, (int)a->n_layers);
    }
    uint64_t C = (uint64_t)a->hidden_size, V = (uint64_t)a->vocab_size;
    ILM__FORWARD(check_shape(g, "token_embd.weight", C, V, false, true, NULL));
    ILM__FORWARD(check_shape(g, "output_norm.weight", C, 1, true, true, NULL));
    bool has_output;
    ILM__FORWARD(check_shape(g, "output.weight", C, V, false, false, &has_output));
    a->tie_embeddings = !has_output;

    const uint64_t sz[] = {
        [SZ_C] = C,
        [SZ_F] = (uint64_t)a->intermediate_size,
        [SZ_Q] = (uint64_t)a->n_heads * (uint64_t)a->head_dim,
        [SZ_KV] = (uint64_t)a->n_kv_heads * (uint64_t)a->head_dim,
        [SZ_ONE] = 1,
    };
    char name[64];
    for (int32_t l = 0; l < a->n_layers; l++)
        for (size_t k = 0; k < N_LAYER_TENSORS; k++) {
            const struct layer_tensor *lt = &layer_tensors[k];
            snprintf(name, sizeof name, "blk.%d.%s", (int)l, lt->suffix);
            ILM__FORWARD(check_shape(g, name, sz[lt->d0], sz[lt->d1], lt->d1 == SZ_ONE, true,
                                    NULL));
        }
    return ILM_OK;
}

ilm_status ilm__arch_from_gguf(const struct ilm__gguf *g, ilm__arch *out)
{
    ILM__RETURN_IF(!g || !out, ILM_ERR_INVALID_ARG, "gguf arch: NULL argument");
    ilm__arch a = { 0 };
    ILM__FORWARD(read_metadata(g, &a));
    ILM__FORWARD(check_tensors(g, &a));
    *out = a;
    return ILM_OK;
}
