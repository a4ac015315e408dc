/* LoRA options, adapter layout and initialisation (lora.h). */
#include "model/lora.h"
#include "formats/safetensors.h"
#include "model/internal.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>

void ilm__lora_opts_default(ilm__lora_opts *o)
{
    memset(o, 0, sizeof *o);
    o->r = 64;
    o->alpha = 16;
    o->dropout = 0.1;
    o->seed = 0x10a;
    for (size_t i = 0; i < ilm__n_layer_tensors; i++)
        if (!ilm__layer_tensors[i].norm) o->targets |= 1u << i;
}

float ilm__lora_scale(const ilm__lora_opts *o)
{
    return (float)(o->rslora ? o->alpha / sqrt((double)o->r) : o->alpha / (double)o->r);
}

bool ilm__lora_module(const ilm__arch *a, size_t i, int64_t l, char *buf, size_t cap)
{
    if (i >= ilm__n_layer_tensors || ilm__layer_tensors[i].norm) return false;
    const char *fmt = ilm__layer_name(a, &ilm__layer_tensors[i]);
    if (!fmt) return false;
    int n = snprintf(buf, cap, fmt, (long long)l);
    const size_t suffix = strlen(".weight");
    if (n < 0 || (size_t)n >= cap || (size_t)n < suffix) return false;
    buf[n - suffix] = '\0';
    return true;
}

/* PEFT's rule: the module path equals the target or ends in "." target. */
static bool matches(const char *module, const char *target)
{
    size_t m = strlen(module), t = strlen(target);
    if (t == 0 || t > m) return false;
    return strcmp(module + m - t, target) == 0 && (t == m || module[m - t - 1] == '.');
}

/* The linears arch a has, as target bits. */
static uint32_t all_linears(const ilm__arch *a)
{
    uint32_t all = 0;
    char module[ILM__PARAM_NAME];
    for (size_t i = 0; i < ilm__n_layer_tensors; i++)
        if (ilm__lora_module(a, i, 0, module, sizeof module)) all |= 1u << i;
    return all;
}

static ilm_status parse_targets(const cJSON *v, const char *where, const ilm__arch *a,
                                uint32_t *out)
{
    const uint32_t all = all_linears(a);
    char module[ILM__PARAM_NAME];
    if (cJSON_IsString(v) && strcmp(v->valuestring, "all-linear") == 0) {
        *out = all;
        return ILM_OK;
    }
    ILM__RETURN_IF(!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0, ILM_ERR_CONFIG,
                   "config: '%s.target_modules' must be \"all-linear\" or a non-empty array of "
                   "module names", where);
    uint32_t t = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        ILM__RETURN_IF(!cJSON_IsString(e), ILM_ERR_CONFIG,
                       "config: '%s.target_modules' holds a value that is not a string", where);
        uint32_t hit = 0;
        for (size_t i = 0; i < ilm__n_layer_tensors; i++)
            if ((all >> i & 1) && ilm__lora_module(a, i, 0, module, sizeof module) &&
                matches(module, e->valuestring))
                hit |= 1u << i;
        /* Layer 0's paths stand for every layer's: a target applies to
         * all layers (PEFT's layers_to_transform is not supported). */
        ILM__RETURN_IF(!hit, ILM_ERR_CONFIG,
                       "config: '%s.target_modules': '%s' matches no linear layer of this %s "
                       "model", where, e->valuestring,
                       a->kind == ILM__ARCH_INTERNLM2 ? "InternLM2" : "LLaMA");
        t |= hit;
    }
    *out = t;
    return ILM_OK;
}

ilm_status ilm__lora_opts_parse(const cJSON *section, const char *where, const ilm__arch *a,
                                ilm__lora_opts *o)
{
    const cJSON *targets = NULL;
    int64_t seed = (int64_t)o->seed;
    const ilm__jfield fields[] = {
        { "r", ILM__J_INT, &o->r, false, 1, 4096 },
        { "alpha", ILM__J_NUMBER, &o->alpha, false, 1e-6, 1e6 },
        { "dropout", ILM__J_NUMBER, &o->dropout, false, 0, 0.999 },
        { "rslora", ILM__J_BOOL, &o->rslora, false, 0, 0 },
        { "seed", ILM__J_INT, &seed, false, 0, 9007199254740991.0 },
    };
    /* target_modules is a string or an array: checked on its own. */
    cJSON *copy = cJSON_Duplicate(section, true);
    ILM__RETURN_IF(!copy, ILM_ERR_NOMEM, "config: out of memory");
    targets = cJSON_GetObjectItemCaseSensitive(section, "target_modules");
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "target_modules");
    ilm_status st = ilm__json_fields(copy, where, fields, sizeof fields / sizeof *fields);
    cJSON_Delete(copy);
    ILM__FORWARD(st);
    if (targets) ILM__FORWARD(parse_targets(targets, where, a, &o->targets));
    o->targets &= all_linears(a);
    o->seed = (uint64_t)seed;
    return ILM_OK;
}

ilm_status ilm__lora_layout(const ilm__arch *a, const ilm__lora_opts *o, ilm__params *out)
{
    ILM__RETURN_IF(!a || !o || !out, ILM_ERR_INVALID_ARG, "lora: NULL argument");
    memset(out, 0, sizeof *out);
    size_t cap = (size_t)a->n_layers * ilm__n_layer_tensors * 2;
    out->p = ilm__calloc(cap ? cap : 1, sizeof *out->p);
    ILM__RETURN_IF(!out->p, ILM_ERR_NOMEM, "lora: out of memory");
    char module[ILM__PARAM_NAME - 32]; /* room for the prefix and suffix */
    for (int64_t l = 0; l < a->n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            if (!(o->targets >> i & 1) || !ilm__lora_module(a, i, l, module, sizeof module))
                continue;
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            const int64_t rows = ilm__layer_size(a, lt->rows), cols = ilm__layer_size(a, lt->cols);
            const int64_t shape[2][2] = { { o->r, cols }, { rows, o->r } };
            for (int ab = 0; ab < 2; ab++) {
                ilm__param *p = &out->p[out->n++];
                snprintf(p->name, sizeof p->name, "base_model.model.%s.lora_%c.weight", module,
                         ab ? 'B' : 'A');
                p->ndim = 2;
                p->shape[0] = shape[ab][0];
                p->shape[1] = shape[ab][1];
                p->numel = (size_t)(p->shape[0] * p->shape[1]);
                p->offset = out->total;
                p->decay = true;
                out->total += (p->numel + ILM__PARAM_ALIGN - 1) / ILM__PARAM_ALIGN * ILM__PARAM_ALIGN;
            }
        }
    if (out->n == 0) {
        ilm__params_free(out);
        return ilm__error(ILM_ERR_CONFIG, "lora: no linear layer is targeted");
    }
    return ILM_OK;
}

void ilm__lora_init(const ilm__params *ps, const ilm__lora_opts *o, float *slab)
{
    memset(slab, 0, ps->total * sizeof *slab);
    for (size_t i = 0; i < ps->n; i++) {
        const ilm__param *p = &ps->p[i];
        if (!strstr(p->name, ".lora_A.")) continue; /* B stays zero */
        ilm__rng rng;
        ilm__rng_init(&rng, o->seed, (uint64_t)i);
        const float bound = (float)(1.0 / sqrt((double)p->shape[1]));
        for (size_t k = 0; k < p->numel; k++)
            slab[p->offset + k] = (2.0f * ilm__rng_uniform(&rng) - 1.0f) * bound;
    }
}

/* ---- PEFT's files ------------------------------------------------------------ */

static ilm_status read_config(const char *path, const ilm__arch *a, ilm__lora_opts *o)
{
    ilm__mmap mm;
    ILM__FORWARD(ilm__mmap_open(path, &mm));
    cJSON *j = cJSON_ParseWithLength((const char *)mm.data, mm.size);
    ilm__mmap_close(&mm);
    ILM__RETURN_IF(!cJSON_IsObject(j), (cJSON_Delete(j), ILM_ERR_FORMAT),
                   "'%s' is not a JSON object", path);
    ilm_status st = ILM_OK;
    const cJSON *v;
#define GET(k) cJSON_GetObjectItemCaseSensitive(j, k)
#define FAIL(code, ...)                                                                       \
    do {                                                                                      \
        st = ilm__error(code, __VA_ARGS__);                                                   \
        goto out;                                                                             \
    } while (0)
    v = GET("peft_type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA") != 0)
        FAIL(ILM_ERR_UNSUPPORTED, "'%s': peft_type must be \"LORA\"", path);
    v = GET("r");
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 4096 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        FAIL(ILM_ERR_FORMAT, "'%s': r must be an integer in [1, 4096]", path);
    o->r = (int64_t)v->valuedouble;
    v = GET("lora_alpha");
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || v->valuedouble > 1e6)
        FAIL(ILM_ERR_FORMAT, "'%s': lora_alpha must be a positive number", path);
    o->alpha = v->valuedouble;
    v = GET("lora_dropout");
    if (v && (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= 1))
        FAIL(ILM_ERR_FORMAT, "'%s': lora_dropout must be in [0, 1)", path);
    o->dropout = v ? v->valuedouble : 0;
    v = GET("use_rslora");
    o->rslora = cJSON_IsTrue(v);
    /* What this library does not implement is refused, never ignored. */
    v = GET("bias");
    if (v && !(cJSON_IsString(v) && strcmp(v->valuestring, "none") == 0))
        FAIL(ILM_ERR_UNSUPPORTED, "'%s': bias other than \"none\" is not supported", path);
    static const char *const off[] = { "fan_in_fan_out", "use_dora", "lora_bias" };
    for (size_t i = 0; i < sizeof off / sizeof *off; i++)
        if (cJSON_IsTrue(GET(off[i])))
            FAIL(ILM_ERR_UNSUPPORTED, "'%s': %s is not supported", path, off[i]);
    static const char *const empty[] = { "modules_to_save", "rank_pattern", "alpha_pattern",
                                         "layers_to_transform", "target_parameters" };
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        v = GET(empty[i]);
        if (v && !cJSON_IsNull(v) && !((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child))
            FAIL(ILM_ERR_UNSUPPORTED, "'%s': %s is not supported", path, empty[i]);
    }
    (void)a;
out:
#undef GET
#undef FAIL
    cJSON_Delete(j);
    return st;
}

/* Layer tensor index of PEFT key `name` ("base_model.model.<module>.lora_X.weight")
 * for arch a, with its layer and X; false when it names none. */
static bool parse_key(const ilm__arch *a, const char *name, size_t *i_out, int64_t *l_out,
                      char *ab)
{
    static const char prefix[] = "base_model.model.";
    const size_t np = sizeof prefix - 1, n = strlen(name);
    static const char sa[] = ".lora_A.weight", sb[] = ".lora_B.weight";
    const size_t ns = sizeof sa - 1;
    if (n <= np + ns || strncmp(name, prefix, np) != 0) return false;
    if (strcmp(name + n - ns, sa) == 0) *ab = 'A';
    else if (strcmp(name + n - ns, sb) == 0) *ab = 'B';
    else return false;
    char module[ILM__PARAM_NAME];
    const size_t nm = n - np - ns;
    if (nm >= sizeof module) return false;
    memcpy(module, name + np, nm);
    module[nm] = '\0';
    /* "model.layers.<l>.": the layer number, then the tensor's path. */
    long long l;
    int used = 0;
    if (sscanf(module, "model.layers.%lld.%n", &l, &used) != 1 || used == 0 || l < 0 ||
        l >= a->n_layers)
        return false;
    char want[ILM__PARAM_NAME];
    for (size_t i = 0; i < ilm__n_layer_tensors; i++)
        if (ilm__lora_module(a, i, l, want, sizeof want) && strcmp(want, module) == 0) {
            *i_out = i;
            *l_out = l;
            return true;
        }
    return false;
}

/* An adapter trained over a GGUF base has B's rows in GGUF's q/k order
 * (ilm__rope_permute_rows); PEFT's files are for the Hugging Face model,
 * so B of q_proj and k_proj is permuted on the way out and back on the
 * way in. */
static bool needs_permute(const ilm__arch *a, const ilm__param *p)
{
    size_t i;
    int64_t l;
    char ab;
    if (!a->rope_interleaved || !parse_key(a, p->name, &i, &l, &ab) || ab != 'B') return false;
    const size_t field = ilm__layer_tensors[i].field;
    return field == offsetof(ilm__layer, wq) || field == offsetof(ilm__layer, wk);
}

ilm_status ilm__lora_read(const char *dir, const ilm__arch *a, ilm__lora_opts *o,
                          ilm__params *ps, float **slab)
{
    ILM__RETURN_IF(!dir || !a || !o || !ps || !slab, ILM_ERR_INVALID_ARG, "lora: NULL argument");
    memset(ps, 0, sizeof *ps);
    *slab = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    ilm__lora_opts_default(o);
    o->dropout = 0;
    ILM__FORWARD(read_config(path, a, o));
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    ilm__safetensors *st = NULL;
    ILM__FORWARD(ilm__st_open(path, &st));
    ilm_status s = ILM_OK;
    /* The targets are what the tensors name; every layer must have them. */
    o->targets = 0;
    const size_t n = ilm__st_count(st);
    for (size_t k = 0; k < n && s == ILM_OK; k++) {
        const ilm__st_tensor *t = ilm__st_get(st, k);
        size_t i;
        int64_t l;
        char ab;
        if (!parse_key(a, t->name, &i, &l, &ab))
            s = ilm__error(ILM_ERR_FORMAT,
                           "'%s': tensor '%s' is not a LoRA matrix of a linear layer of this "
                           "model",
                           path, t->name);
        else o->targets |= 1u << i;
    }
    if (s == ILM_OK) s = ilm__lora_layout(a, o, ps);
    if (s == ILM_OK && ps->n != n)
        s = ilm__error(ILM_ERR_UNSUPPORTED,
                       "'%s': %zu tensors where adapting the same modules in every layer takes "
                       "%zu (adapters on some layers only are not supported)",
                       path, n, ps->n);
    if (s == ILM_OK && !(*slab = ilm__calloc(ps->total ? ps->total : 1, sizeof **slab)))
        s = ilm__error(ILM_ERR_NOMEM, "lora: out of memory");
    for (size_t k = 0; k < ps->n && s == ILM_OK; k++) {
        const ilm__param *p = &ps->p[k];
        const ilm__st_tensor *t = ilm__st_find(st, p->name);
        if (!t)
            s = ilm__error(ILM_ERR_FORMAT, "'%s': tensor '%s' is missing", path, p->name);
        else if (t->type == UINT32_MAX || t->n_dims != 2 || t->shape[0] != p->shape[0] ||
                 t->shape[1] != p->shape[1])
            s = ilm__error(ILM_ERR_FORMAT,
                           "'%s': tensor '%s' must be F32, F16 or BF16 of shape [%lld, %lld]",
                           path, p->name, (long long)p->shape[0], (long long)p->shape[1]);
        else
            s = ilm__dequantize(t->type, t->data, *slab + p->offset, (int64_t)p->numel);
        if (s == ILM_OK && needs_permute(a, p))
            s = ilm__rope_permute_rows(a->head_dim, p->shape[0], p->shape[1], *slab + p->offset,
                                       false);
    }
    ilm__st_close(st);
    if (s != ILM_OK) {
        ilm__free(*slab);
        *slab = NULL;
        ilm__params_free(ps);
    }
    return s;
}

ilm_status ilm__lora_write(const char *dir, const ilm__arch *a, const ilm__lora_opts *o,
                           const ilm__params *ps, const float *slab, const char *base_name)
{
    ILM__RETURN_IF(!dir || !a || !o || !ps || !slab, ILM_ERR_INVALID_ARG, "lora: NULL argument");
    ILM__RETURN_IF(mkdir(dir, 0777) != 0 && errno != EEXIST, ILM_ERR_IO,
                   "lora: cannot create '%s': %s", dir, strerror(errno));
    char path[4096];
    ilm__st_out *outs = ilm__calloc(ps->n ? ps->n : 1, sizeof *outs);
    float **perm = ilm__calloc(ps->n ? ps->n : 1, sizeof *perm);
    ilm_status st = outs && perm ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "lora: out of memory");
    for (size_t k = 0; k < ps->n && st == ILM_OK; k++) {
        const ilm__param *p = &ps->p[k];
        const float *data = slab + p->offset;
        if (needs_permute(a, p)) {
            perm[k] = ilm__malloc(p->numel * sizeof *perm[k]);
            if (perm[k]) memcpy(perm[k], data, p->numel * sizeof *perm[k]);
            st = perm[k] ? ilm__rope_permute_rows(a->head_dim, p->shape[0], p->shape[1], perm[k], true)
                         : ilm__error(ILM_ERR_NOMEM, "lora: out of memory");
            data = perm[k];
        }
        outs[k] = (ilm__st_out){ p->name, ILM__DTYPE_F32, 2, p->shape, data };
    }
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    static const char *const meta[] = { "format", "pt", NULL };
    if (st == ILM_OK) st = ilm__st_write(path, outs, ps->n, meta);
    for (size_t k = 0; perm && k < ps->n; k++) ilm__free(perm[k]);
    ilm__free(perm);
    ilm__free(outs);
    ILM__FORWARD(st);

    cJSON *j = cJSON_CreateObject(), *targets = cJSON_AddArrayToObject(j, "target_modules");
    char module[ILM__PARAM_NAME];
    for (size_t i = 0; i < ilm__n_layer_tensors; i++)
        if ((o->targets >> i & 1) && ilm__lora_module(a, i, 0, module, sizeof module)) {
            const char *last = strrchr(module, '.');
            cJSON_AddItemToArray(targets, cJSON_CreateString(last ? last + 1 : module));
        }
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddStringToObject(j, "base_model_name_or_path", base_name ? base_name : "");
    cJSON_AddNumberToObject(j, "r", (double)o->r);
    cJSON_AddNumberToObject(j, "lora_alpha", o->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", o->dropout);
    cJSON_AddBoolToObject(j, "use_rslora", o->rslora);
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddBoolToObject(j, "fan_in_fan_out", false);
    cJSON_AddBoolToObject(j, "inference_mode", true);
    cJSON_AddBoolToObject(j, "init_lora_weights", true);
    cJSON_AddNullToObject(j, "modules_to_save");
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    ILM__RETURN_IF(!text, ILM_ERR_NOMEM, "lora: out of memory");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    st = ilm__atomic_write_buf(path, text, strlen(text));
    cJSON_free(text);
    return st;
}

ilm_status ilm__lora_attach(ilm_model *m, const char *dir)
{
    ilm__lora_opts o;
    ilm__params ps;
    float *slab;
    ILM__FORWARD(ilm__lora_read(dir, &m->arch, &o, &ps, &slab));
    char *name = ilm__strdup(dir);
    if (!name) {
        ilm__free(slab);
        ilm__params_free(&ps);
        return ilm__error(ILM_ERR_NOMEM, "lora: out of memory");
    }
    /* The layout's order: layers, their tensors, A before B. */
    const float s = ilm__lora_scale(&o);
    char module[ILM__PARAM_NAME];
    size_t k = 0;
    for (int64_t l = 0; l < m->arch.n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            if (!(o.targets >> i & 1) || !ilm__lora_module(&m->arch, i, l, module, sizeof module))
                continue;
            const ilm__param *pa = &ps.p[k++], *pb = &ps.p[k++];
            float *b = slab + pb->offset;
            for (size_t j = 0; j < pb->numel; j++) b[j] *= s;
            ilm__weight *w = (ilm__weight *)((uint8_t *)&m->layers[l] + ilm__layer_tensors[i].field);
            w->lora_r = o.r;
            w->lora_a = slab + pa->offset;
            w->lora_b = b;
        }
    m->lora_slab = slab;
    m->lora_r = o.r;
    m->adapter = name;
    m->owned_bytes += ps.total * sizeof *slab;
    ilm__params_free(&ps);
    return ILM_OK;
}
