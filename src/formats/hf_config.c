/*
 * hf_config.c -- Hugging Face config.json to ilm__arch and back.
 *
 * Defaults are transformers' own for each config class (LlamaConfig,
 * MistralConfig, InternLM3Config, and InternLM2Config from InternLM's
 * remote code), so a config that leaves a key out means what it means to
 * transformers.  Keys this library has no use for are ignored; the ones it
 * reads are type-checked.  A feature the model code does not implement
 * (biases, other activations, sliding windows, other RoPE scalings) is
 * ILM_ERR_UNSUPPORTED; a config that contradicts itself is ILM_ERR_FORMAT.
 */
#include "formats/arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum family { FAM_LLAMA, FAM_MISTRAL, FAM_INTERNLM3, FAM_INTERNLM2 } family;

static const struct known_arch {
    const char *arch, *model_type;
    family      fam;
} known_archs[] = {
    { "LlamaForCausalLM", "llama", FAM_LLAMA },
    { "MistralForCausalLM", "mistral", FAM_MISTRAL },
    { "InternLM3ForCausalLM", "internlm3", FAM_INTERNLM3 },
    { "InternLM2ForCausalLM", "internlm2", FAM_INTERNLM2 },
};
#define N_KNOWN (sizeof known_archs / sizeof known_archs[0])

typedef struct cfg {
    const cJSON *root;
    const char  *path;
} cfg;

/* The value of `key`, treating JSON null as absent (transformers writes
 * null for unset optional keys). */
static const cJSON *item(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNull(v) ? NULL : v;
}

/* `v` (the value of `key`) as an integer in [min, max]. */
static ilm_status int_value(const cfg *c, const char *key, const cJSON *v, int64_t min,
                            int64_t max, int64_t *out)
{
    ILM__RETURN_IF(!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
                      fabs(v->valuedouble) > 9007199254740992.0,
                   ILM_ERR_FORMAT, "%s: '%s' must be an integer", c->path, key);
    double d = v->valuedouble;
    ILM__RETURN_IF(d < (double)min || d > (double)max, ILM_ERR_FORMAT,
                   "%s: '%s' is %.0f, outside [%lld, %lld]", c->path, key, d, (long long)min,
                   (long long)max);
    *out = (int64_t)d;
    return ILM_OK;
}

static ilm_status get_int(const cfg *c, const cJSON *obj, const char *key, bool required,
                          int64_t def, int64_t min, int64_t max, int64_t *out)
{
    const cJSON *v = item(obj, key);
    if (!v) {
        ILM__RETURN_IF(required, ILM_ERR_FORMAT, "%s: '%s' is missing", c->path, key);
        *out = def;
        return ILM_OK;
    }
    return int_value(c, key, v, min, max, out);
}

/* A positive finite number (eps, theta, factors). */
static ilm_status get_pos(const cfg *c, const cJSON *obj, const char *key, bool required,
                          double def, double *out)
{
    const cJSON *v = item(obj, key);
    if (!v) {
        ILM__RETURN_IF(required, ILM_ERR_FORMAT, "%s: '%s' is missing", c->path, key);
        *out = def;
        return ILM_OK;
    }
    ILM__RETURN_IF(!cJSON_IsNumber(v), ILM_ERR_FORMAT, "%s: '%s' must be a number", c->path,
                   key);
    ILM__RETURN_IF(!(v->valuedouble > 0) || !isfinite(v->valuedouble) ||
                      v->valuedouble > 3.4e38,
                   ILM_ERR_FORMAT, "%s: '%s' is %g; it must be positive", c->path, key,
                   v->valuedouble);
    *out = v->valuedouble;
    return ILM_OK;
}

static ilm_status get_bool(const cfg *c, const char *key, bool def, bool *out)
{
    const cJSON *v = item(c->root, key);
    if (!v) {
        *out = def;
        return ILM_OK;
    }
    ILM__RETURN_IF(!cJSON_IsBool(v), ILM_ERR_FORMAT, "%s: '%s' must be true or false",
                   c->path, key);
    *out = cJSON_IsTrue(v);
    return ILM_OK;
}

/* NULL when absent or null. */
static ilm_status get_str(const cfg *c, const cJSON *obj, const char *key, const char **out)
{
    const cJSON *v = item(obj, key);
    *out = NULL;
    if (!v) return ILM_OK;
    ILM__RETURN_IF(!cJSON_IsString(v), ILM_ERR_FORMAT, "%s: '%s' must be a string", c->path,
                   key);
    *out = v->valuestring;
    return ILM_OK;
}

/* A bias switch that must be off. */
static ilm_status no_bias(const cfg *c, const char *key, bool def)
{
    bool on;
    ILM__FORWARD(get_bool(c, key, def, &on));
    ILM__RETURN_IF(on, ILM_ERR_UNSUPPORTED, "%s: '%s' is %s; biased projections are not "
                   "supported", c->path, key, item(c->root, key) ? "true" : "true by default");
    return ILM_OK;
}

/* A special token id: an integer, null (none: -1), or for eos a list. */
static ilm_status get_token(const cfg *c, const char *key, int64_t def, int64_t vocab,
                            int32_t *out)
{
    const cJSON *v = item(c->root, key);
    int64_t id = def;
    if (cJSON_IsArray(v)) {
        /* LLaMA-3 instruct configs list several end tokens (128001, 128008,
         * 128009); ilm__arch has one, so the first stands for them and the
         * generation config keeps the full stop list. */
        const cJSON *first = cJSON_GetArrayItem(v, 0);
        ILM__RETURN_IF(!first || strcmp(key, "eos_token_id") != 0, ILM_ERR_FORMAT,
                       "%s: '%s' must be an integer", c->path, key);
        ILM__FORWARD(int_value(c, key, first, -1, INT32_MAX, &id));
    } else if (v) {
        ILM__FORWARD(int_value(c, key, v, -1, INT32_MAX, &id));
    }
    ILM__RETURN_IF(id >= vocab, ILM_ERR_FORMAT, "%s: '%s' is %lld but vocab_size is %lld",
                   c->path, key, (long long)id, (long long)vocab);
    *out = (int32_t)id;
    return ILM_OK;
}

static ilm_status parse_rope_scaling(const cfg *c, family fam, ilm__arch *a)
{
    a->rope_scaling = ILM__ROPE_SCALING_NONE;
    a->rope_factor = 1.0f;
    a->rope_low_freq_factor = 0.0f;
    a->rope_high_freq_factor = 0.0f;
    a->rope_original_max_position = 0;
    /* transformers 5 writes "rope_parameters" (rope_theta folded in) where
     * earlier versions and hub files have "rope_scaling"; it reads both and
     * so does this. */
    const cJSON *rp = item(c->root, "rope_parameters");
    const cJSON *rs = rp ? rp : item(c->root, "rope_scaling");
    const char *key = rp ? "rope_parameters" : "rope_scaling";
    if (!rs) return ILM_OK;
    ILM__RETURN_IF(!cJSON_IsObject(rs), ILM_ERR_FORMAT, "%s: '%s' must be an object", c->path,
                   key);
    if (rp && item(rp, "rope_theta")) {
        double theta;
        ILM__FORWARD(get_pos(c, rp, "rope_theta", true, 0, &theta));
        ILM__RETURN_IF(item(c->root, "rope_theta") && (float)theta != a->rope_theta,
                       ILM_ERR_FORMAT, "%s: rope_parameters.rope_theta %g and rope_theta %g "
                       "disagree", c->path, theta, (double)a->rope_theta);
        a->rope_theta = (float)theta;
    }
    const char *type = NULL, *rope_type = NULL;
    ILM__FORWARD(get_str(c, rs, "type", &type));
    ILM__FORWARD(get_str(c, rs, "rope_type", &rope_type));
    ILM__RETURN_IF(type && rope_type && strcmp(type, rope_type) != 0, ILM_ERR_FORMAT,
                   "%s: rope_scaling: 'type' '%s' and 'rope_type' '%s' disagree", c->path, type,
                   rope_type);
    const char *t = rope_type ? rope_type : type;
    ILM__RETURN_IF(!t, ILM_ERR_FORMAT, "%s: %s has no 'rope_type' or 'type'", c->path, key);
    if (fam == FAM_INTERNLM2) {
        /* InternLM2Config._rope_scaling_validation: exactly {type, factor},
         * type linear or dynamic. */
        ILM__RETURN_IF(strcmp(t, "linear") != 0 && strcmp(t, "dynamic") != 0,
                       ILM_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported for "
                       "InternLM2 (linear, dynamic are)", c->path, t);
        ILM__RETURN_IF(!rp && (cJSON_GetArraySize(rs) != 2 || !type), ILM_ERR_FORMAT,
                       "%s: InternLM2's rope_scaling must hold exactly 'type' and 'factor'",
                       c->path);
    }
    if (strcmp(t, "default") == 0) return ILM_OK;
    double factor;
    ILM__FORWARD(get_pos(c, rs, "factor", true, 1.0, &factor));
    ILM__RETURN_IF(factor < 1.0, ILM_ERR_FORMAT, "%s: rope_scaling factor %g is below 1",
                   c->path, factor);
    a->rope_factor = (float)factor;
    int64_t orig;
    if (strcmp(t, "linear") == 0) {
        a->rope_scaling = ILM__ROPE_SCALING_LINEAR;
    } else if (strcmp(t, "dynamic") == 0) {
        /* NTK scaling starts past the original context (transformers'
         * _compute_dynamic_ntk_parameters). */
        a->rope_scaling = ILM__ROPE_SCALING_DYNAMIC;
        ILM__FORWARD(get_int(c, rs, "original_max_position_embeddings", false, a->max_position,
                            1, INT32_MAX, &orig));
        a->rope_original_max_position = (int32_t)orig;
    } else if (strcmp(t, "llama3") == 0) {
        a->rope_scaling = ILM__ROPE_SCALING_LLAMA3;
        double lo, hi;
        ILM__FORWARD(get_pos(c, rs, "low_freq_factor", true, 1.0, &lo));
        ILM__FORWARD(get_pos(c, rs, "high_freq_factor", true, 1.0, &hi));
        ILM__FORWARD(get_int(c, rs, "original_max_position_embeddings", true, 0, 1, INT32_MAX,
                            &orig));
        /* The smooth band divides by high - low. */
        ILM__RETURN_IF(hi <= lo, ILM_ERR_FORMAT, "%s: rope_scaling high_freq_factor %g is not "
                       "above low_freq_factor %g", c->path, hi, lo);
        a->rope_low_freq_factor = (float)lo;
        a->rope_high_freq_factor = (float)hi;
        a->rope_original_max_position = (int32_t)orig;
    } else {
        return ilm__error(ILM_ERR_UNSUPPORTED, "%s: rope_scaling type '%s' is not supported "
                          "(linear, dynamic, llama3 are)", c->path, t);
    }
    return ILM_OK;
}

static ilm_status find_family(const cfg *c, family *fam)
{
    const cJSON *archs = item(c->root, "architectures");
    const char *arch = NULL, *mt = NULL;
    if (archs) {
        ILM__RETURN_IF(!cJSON_IsArray(archs) || !cJSON_IsString(cJSON_GetArrayItem(archs, 0)),
                       ILM_ERR_FORMAT, "%s: 'architectures' must be a list of strings",
                       c->path);
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    }
    ILM__FORWARD(get_str(c, c->root, "model_type", &mt));
    ILM__RETURN_IF(!arch && !mt, ILM_ERR_FORMAT, "%s: neither 'architectures' nor "
                   "'model_type' says what the model is", c->path);
    for (size_t i = 0; i < N_KNOWN; i++) {
        const struct known_arch *k = &known_archs[i];
        if (arch ? strcmp(arch, k->arch) != 0 : strcmp(mt, k->model_type) != 0) continue;
        ILM__RETURN_IF(arch && mt && strcmp(mt, k->model_type) != 0, ILM_ERR_FORMAT,
                       "%s: architecture '%s' with model_type '%s' (expected '%s')", c->path,
                       arch, mt, k->model_type);
        *fam = k->fam;
        return ILM_OK;
    }
    return ilm__error(ILM_ERR_UNSUPPORTED, "%s: %s '%s' is not supported (LlamaForCausalLM, "
                      "MistralForCausalLM, InternLM3ForCausalLM and InternLM2ForCausalLM are)",
                      c->path, arch ? "architecture" : "model_type", arch ? arch : mt);
}

static ilm_status parse(const cfg *c, ilm__arch *a)
{
    family fam = FAM_LLAMA;
    ILM__FORWARD(find_family(c, &fam));
    a->kind = fam == FAM_INTERNLM2 ? ILM__ARCH_INTERNLM2 : ILM__ARCH_LLAMA;

    const char *act;
    ILM__FORWARD(get_str(c, c->root, "hidden_act", &act));
    ILM__RETURN_IF(act && strcmp(act, "silu") != 0, ILM_ERR_UNSUPPORTED,
                   "%s: hidden_act '%s' is not supported (only silu)", c->path, act);

    int64_t v;
    const cJSON *r = c->root;
    ILM__FORWARD(get_int(c, r, "vocab_size", true, 0, 1, INT32_MAX, &v));
    a->vocab_size = (int32_t)v;
    ILM__FORWARD(get_int(c, r, "hidden_size", true, 0, 1, INT32_MAX, &v));
    a->hidden_size = (int32_t)v;
    ILM__FORWARD(get_int(c, r, "intermediate_size", true, 0, 1, INT32_MAX, &v));
    a->intermediate_size = (int32_t)v;
    ILM__FORWARD(get_int(c, r, "num_hidden_layers", true, 0, 1, INT32_MAX, &v));
    a->n_layers = (int32_t)v;
    ILM__FORWARD(get_int(c, r, "num_attention_heads", true, 0, 1, INT32_MAX, &v));
    a->n_heads = (int32_t)v;
    ILM__FORWARD(get_int(c, r, "num_key_value_heads", false, a->n_heads, 1, INT32_MAX, &v));
    a->n_kv_heads = (int32_t)v;
    ILM__RETURN_IF(a->n_heads % a->n_kv_heads != 0, ILM_ERR_FORMAT,
                   "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                   c->path, (int)a->n_heads, (int)a->n_kv_heads);

    /* InternLM2's modeling code derives the head size; the others honour
     * an explicit head_dim (InternLM3 and Mistral-Nemo set one). */
    if (fam == FAM_INTERNLM2 || !item(r, "head_dim")) {
        ILM__RETURN_IF(a->hidden_size % a->n_heads != 0, ILM_ERR_FORMAT,
                       "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                       c->path, (int)a->hidden_size, (int)a->n_heads);
        a->head_dim = a->hidden_size / a->n_heads;
    } else {
        ILM__FORWARD(get_int(c, r, "head_dim", true, 0, 1, INT32_MAX, &v));
        a->head_dim = (int32_t)v;
    }
    ILM__RETURN_IF(a->head_dim % 2 != 0, ILM_ERR_FORMAT,
                   "%s: head size %d is odd; RoPE rotates pairs", c->path, (int)a->head_dim);
    ILM__RETURN_IF((int64_t)a->n_heads * a->head_dim > INT32_MAX, ILM_ERR_FORMAT,
                   "%s: num_attention_heads x head_dim overflows", c->path);
    double prf;
    ILM__FORWARD(get_pos(c, r, "partial_rotary_factor", false, 1.0, &prf));
    ILM__RETURN_IF(prf != 1.0, ILM_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not "
                   "supported", c->path, prf);

    int64_t def_pos = fam == FAM_MISTRAL ? 4096 * 32 : 2048;
    ILM__FORWARD(get_int(c, r, "max_position_embeddings", false, def_pos, 1, INT32_MAX, &v));
    a->max_position = (int32_t)v;
    double d;
    ILM__FORWARD(get_pos(c, r, "rms_norm_eps", false, 1e-6, &d));
    a->rms_eps = (float)d;
    ILM__FORWARD(get_pos(c, r, "rope_theta", false, 10000.0, &d));
    a->rope_theta = (float)d;
    ILM__FORWARD(parse_rope_scaling(c, fam, a));
    a->rope_interleaved = false; /* HF checkpoints use rotate_half */
    ILM__FORWARD(get_bool(c, "tie_word_embeddings", false, &a->tie_embeddings));

    switch (fam) {
    case FAM_LLAMA:
        ILM__FORWARD(no_bias(c, "attention_bias", false));
        ILM__FORWARD(no_bias(c, "mlp_bias", false));
        break;
    case FAM_MISTRAL: {
        /* A window at least as long as the context never masks anything. */
        int64_t win;
        ILM__FORWARD(get_int(c, r, "sliding_window", false, -1, 1, INT32_MAX, &win));
        if (!cJSON_GetObjectItemCaseSensitive(r, "sliding_window")) win = 4096;
        ILM__RETURN_IF(win > 0 && win < a->max_position, ILM_ERR_UNSUPPORTED,
                       "%s: sliding_window %lld (shorter than max_position_embeddings %d) is "
                       "not supported", c->path, (long long)win, (int)a->max_position);
        break;
    }
    case FAM_INTERNLM3:
        ILM__FORWARD(no_bias(c, "qkv_bias", false));
        ILM__FORWARD(no_bias(c, "bias", false));
        break;
    case FAM_INTERNLM2:
        ILM__FORWARD(no_bias(c, "bias", true)); /* InternLM2Config's default */
        break;
    }

    ILM__FORWARD(get_token(c, "bos_token_id", 1, a->vocab_size, &a->bos_id));
    ILM__FORWARD(get_token(c, "eos_token_id", 2, a->vocab_size, &a->eos_id));
    ILM__FORWARD(get_token(c, "pad_token_id", fam == FAM_INTERNLM2 ? 0 : -1, a->vocab_size,
                          &a->pad_id));
    return ILM_OK;
}

ilm_status ilm__arch_from_hf_config(const char *json, size_t len, const char *path,
                                    ilm__arch *out)
{
    ILM__RETURN_IF(!json || !out, ILM_ERR_INVALID_ARG, "config.json: NULL argument");
    if (!path) path = "config.json";
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse_object(json, len, path, &root));
    ilm__arch a = { 0 };
    cfg c = { root, path };
    ilm_status s = parse(&c, &a);
    cJSON_Delete(root);
    if (s == ILM_OK) *out = a;
    return s;
}

/* ---- writing ----------------------------------------------------------------- */

/* A float as JSON: integral values with ".0" (as Python writes floats, so
 * transformers reads a float back), others in the fewest digits that give
 * the same float. */
static void fmt_float(char *buf, size_t n, float v)
{
    if (v == floorf(v) && fabsf(v) < 1e15f) {
        snprintf(buf, n, "%.1f", (double)v);
        return;
    }
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

typedef struct jkv {
    const char *key;
    char        val[640];
} jkv;

static int jkv_cmp(const void *a, const void *b)
{
    return strcmp(((const jkv *)a)->key, ((const jkv *)b)->key);
}

static void put(jkv *kv, size_t *n, const char *key, const char *fmt, ...) ILM__PRINTF(4, 5);
static void put(jkv *kv, size_t *n, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kv[*n].key = key;
    vsnprintf(kv[*n].val, sizeof kv[*n].val, fmt, ap);
    va_end(ap);
    (*n)++;
}

static void put_id(jkv *kv, size_t *n, const char *key, int32_t id)
{
    if (id < 0) put(kv, n, key, "null");
    else put(kv, n, key, "%d", (int)id);
}

static ilm_status check_arch(const ilm__arch *a)
{
    ILM__RETURN_IF(a->kind != ILM__ARCH_LLAMA && a->kind != ILM__ARCH_INTERNLM2,
                   ILM_ERR_INVALID_ARG, "config.json: unknown architecture kind %d",
                   (int)a->kind);
    ILM__RETURN_IF(a->vocab_size <= 0 || a->hidden_size <= 0 || a->intermediate_size <= 0 ||
                      a->n_layers <= 0 || a->n_heads <= 0 || a->n_kv_heads <= 0 ||
                      a->head_dim <= 0 || a->max_position <= 0 ||
                      a->n_heads % a->n_kv_heads != 0 || !(a->rms_eps > 0) ||
                      !(a->rope_theta > 0),
                   ILM_ERR_INVALID_ARG, "config.json: the architecture has a non-positive or "
                   "inconsistent size");
    /* A GGUF model's Q/K rows were permuted for adjacent-pair RoPE; writing
     * them under an HF config would silently rotate the wrong pairs. */
    ILM__RETURN_IF(a->rope_interleaved, ILM_ERR_UNSUPPORTED,
                   "config.json: HF models use rotate_half RoPE; un-permute the Q/K rows of "
                   "an interleaved (GGUF) model before writing it as a Hugging Face model");
    return ILM_OK;
}

ilm_status ilm__arch_to_hf_config(const ilm__arch *a, char **json)
{
    ILM__RETURN_IF(!a || !json, ILM_ERR_INVALID_ARG, "config.json: NULL argument");
    *json = NULL;
    ILM__FORWARD(check_arch(a));
    bool il2 = a->kind == ILM__ARCH_INTERNLM2;
    char f[64], g[64], h[64];
    char rope[512] = "null";
    switch (a->rope_scaling) {
    case ILM__ROPE_SCALING_NONE:
        break;
    case ILM__ROPE_SCALING_LINEAR:
    case ILM__ROPE_SCALING_DYNAMIC: {
        const char *t = a->rope_scaling == ILM__ROPE_SCALING_LINEAR ? "linear" : "dynamic";
        fmt_float(f, sizeof f, a->rope_factor);
        bool orig = a->rope_scaling == ILM__ROPE_SCALING_DYNAMIC &&
                    a->rope_original_max_position > 0 &&
                    a->rope_original_max_position != a->max_position;
        ILM__RETURN_IF(il2 && orig, ILM_ERR_UNSUPPORTED, "config.json: InternLM2's dynamic "
                       "RoPE scaling cannot start before max_position_embeddings");
        if (il2)
            snprintf(rope, sizeof rope, "{\n    \"factor\": %s,\n    \"type\": \"%s\"\n  }", f, t);
        else if (orig)
            snprintf(rope, sizeof rope, "{\n    \"factor\": %s,\n    "
                     "\"original_max_position_embeddings\": %d,\n    \"rope_type\": \"%s\",\n"
                     "    \"type\": \"%s\"\n  }", f, (int)a->rope_original_max_position, t, t);
        else
            snprintf(rope, sizeof rope, "{\n    \"factor\": %s,\n    \"rope_type\": \"%s\",\n"
                     "    \"type\": \"%s\"\n  }", f, t, t);
        break;
    }
    case ILM__ROPE_SCALING_LLAMA3:
        ILM__RETURN_IF(il2, ILM_ERR_UNSUPPORTED,
                       "config.json: InternLM2 has no llama3 RoPE scaling");
        fmt_float(f, sizeof f, a->rope_factor);
        fmt_float(g, sizeof g, a->rope_high_freq_factor);
        fmt_float(h, sizeof h, a->rope_low_freq_factor);
        snprintf(rope, sizeof rope, "{\n    \"factor\": %s,\n    \"high_freq_factor\": %s,\n"
                 "    \"low_freq_factor\": %s,\n    \"original_max_position_embeddings\": %d,\n"
                 "    \"rope_type\": \"llama3\",\n    \"type\": \"llama3\"\n  }", f, g, h,
                 (int)a->rope_original_max_position);
        break;
    default:
        return ilm__error(ILM_ERR_INVALID_ARG, "config.json: unknown RoPE scaling %d",
                          (int)a->rope_scaling);
    }
    ILM__RETURN_IF(il2 && (int64_t)a->head_dim * a->n_heads != a->hidden_size,
                   ILM_ERR_UNSUPPORTED, "config.json: InternLM2 needs head_dim x heads = "
                   "hidden_size");

    jkv kv[32];
    size_t n = 0;
    put(kv, &n, "architectures", "[\n    \"%s\"\n  ]",
        il2 ? "InternLM2ForCausalLM" : "LlamaForCausalLM");
    put(kv, &n, "model_type", "\"%s\"", il2 ? "internlm2" : "llama");
    if (il2) {
        /* What InternLM's own configs carry: transformers finds the
         * InternLM2 classes through auto_map in the model's remote code
         * (trust_remote_code=True). */
        put(kv, &n, "auto_map", "{\n    \"AutoConfig\": \"configuration_internlm2.InternLM2Config\","
            "\n    \"AutoModel\": \"modeling_internlm2.InternLM2ForCausalLM\",\n"
            "    \"AutoModelForCausalLM\": \"modeling_internlm2.InternLM2ForCausalLM\"\n  }");
        put(kv, &n, "attn_implementation", "\"eager\"");
        put(kv, &n, "bias", "false");
    } else {
        put(kv, &n, "attention_bias", "false");
        put(kv, &n, "mlp_bias", "false");
        put(kv, &n, "head_dim", "%d", (int)a->head_dim);
    }
    put(kv, &n, "hidden_act", "\"silu\"");
    put(kv, &n, "vocab_size", "%d", (int)a->vocab_size);
    put(kv, &n, "hidden_size", "%d", (int)a->hidden_size);
    put(kv, &n, "intermediate_size", "%d", (int)a->intermediate_size);
    put(kv, &n, "num_hidden_layers", "%d", (int)a->n_layers);
    put(kv, &n, "num_attention_heads", "%d", (int)a->n_heads);
    put(kv, &n, "num_key_value_heads", "%d", (int)a->n_kv_heads);
    put(kv, &n, "max_position_embeddings", "%d", (int)a->max_position);
    fmt_float(f, sizeof f, a->rms_eps);
    put(kv, &n, "rms_norm_eps", "%s", f);
    fmt_float(f, sizeof f, a->rope_theta);
    put(kv, &n, "rope_theta", "%s", f);
    put(kv, &n, "rope_scaling", "%s", rope);
    put(kv, &n, "tie_word_embeddings", "%s", a->tie_embeddings ? "true" : "false");
    put_id(kv, &n, "bos_token_id", a->bos_id);
    put_id(kv, &n, "eos_token_id", a->eos_id);
    put_id(kv, &n, "pad_token_id", a->pad_id);
    put(kv, &n, "use_cache", "true");

    /* transformers' to_json_string: sorted keys, two-space indent. */
    qsort(kv, n, sizeof kv[0], jkv_cmp);
    ilm__buf b = { 0 };
    ilm_status s = ilm__buf_append(&b, "{\n", 2);
    for (size_t i = 0; i < n && s == ILM_OK; i++)
        s = ilm__buf_printf(&b, "  \"%s\": %s%s\n", kv[i].key, kv[i].val,
                            i + 1 < n ? "," : "");
    if (s == ILM_OK) s = ilm__buf_append(&b, "}\n", 2);
    if (s != ILM_OK) {
        ilm__buf_free(&b);
        return ilm__error(ILM_ERR_NOMEM, "config.json: out of memory");
    }
    *json = b.p;
    return ILM_OK;
}
