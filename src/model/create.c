/* Models made here rather than loaded: a new model from a config.json with
 * deterministic random weights (for pretraining from scratch), and saving
 * any model as a Hugging Face directory (config.json + model.safetensors)
 * that transformers and ilm_model_load read back. */
#include "model/internal.h"
#include "formats/safetensors.h"
#include "quant/nf4.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* n values normal(0, std) from Philox stream `stream` of `seed`, or all
 * `fill` when std is 0. */
static void fill_values(float *p, size_t n, uint64_t seed, uint64_t stream, float std, float fill)
{
    ilm__rng r;
    ilm__rng_init(&r, seed, stream);
    for (size_t i = 0; i < n; i++) p[i] = std > 0 ? std * ilm__rng_normal(&r) : fill;
}

/* How weights are made: fp32 (q4 NULL), or 4-bit linears and bf16
 * embedding and head, through one reused fp32 buffer. */
typedef struct maker {
    ilm_model          *m;
    uint64_t            seed, stream;
    const ilm__q4_opts *q4;
    float              *tmp;
    size_t              cap;
} maker;

static float *scratch(maker *k, size_t n)
{
    if (n > k->cap) {
        ilm__free(k->tmp);
        k->cap = 0;
        if (!(k->tmp = ilm__malloc(n * sizeof *k->tmp))) return NULL;
        k->cap = n;
    }
    return k->tmp;
}

/* A weight drawing from the next stream; `linear` marks a layer's linear
 * (made in 4 bits with q4; the embedding and head are made in bf16). */
static ilm_status make_weight(maker *k, ilm__weight *w, int64_t rows, int64_t cols, bool linear)
{
    const size_t n = (size_t)(rows * cols);
    const float std = 0.02f; /* transformers' initializer_range default */
    const uint64_t stream = k->stream++;
    *w = (ilm__weight){ .type = ILM__DTYPE_F32, .rows = rows, .cols = cols };
    if (!k->q4) {
        float *p = ilm__model_own(k->m, n * sizeof *p);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "model: out of memory for a [%lld, %lld] weight",
                       (long long)rows, (long long)cols);
        fill_values(p, n, k->seed, stream, std, 0);
        w->data = p;
        return ILM_OK;
    }
    float *v = scratch(k, n);
    ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "model: out of memory for a [%lld, %lld] weight",
                   (long long)rows, (long long)cols);
    fill_values(v, n, k->seed, stream, std, 0);
    if (linear) return ilm__weight_quantize_q4(k->m, w, v, k->q4);
    uint16_t *h = ilm__model_own(k->m, n * sizeof *h);
    ILM__RETURN_IF(!h, ILM_ERR_NOMEM, "model: out of memory for a [%lld, %lld] weight",
                   (long long)rows, (long long)cols);
    for (size_t i = 0; i < n; i++) h[i] = ilm__f32_to_bf16(v[i]);
    *w = (ilm__weight){ .type = ILM__DTYPE_BF16, .rows = rows, .cols = cols, .data = h };
    return ILM_OK;
}

static ilm_status make_norm(ilm_model *m, const float **out, int64_t n)
{
    float *p = ilm__model_own(m, (size_t)n * sizeof *p);
    ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "model: out of memory");
    fill_values(p, (size_t)n, 0, 0, 0, 1.0f);
    *out = p;
    return ILM_OK;
}

ilm_status ilm__model_create(const char *config, uint64_t seed, const ilm__q4_opts *q4,
                             ilm_model **out)
{
    ILM__RETURN_IF(!out || !config, ILM_ERR_INVALID_ARG, "ilm_model_create: NULL argument");
    *out = NULL;
    ilm_model *m = ilm__calloc(1, sizeof *m);
    ILM__RETURN_IF(!m, ILM_ERR_NOMEM, "model: out of memory");
    ilm_status st = ilm__arch_from_hf_config(config, strlen(config), "config", &m->arch);
    const ilm__arch *a = &m->arch;
    /* Every weight draws from its own Philox stream, numbered in a fixed
     * order, so the model depends on the seed alone (not on threads). */
    maker k = { .m = m, .seed = seed, .stream = 1, .q4 = q4 };
    if (st == ILM_OK && !(m->layers = ilm__calloc((size_t)a->n_layers, sizeof *m->layers)))
        st = ilm__error(ILM_ERR_NOMEM, "model: out of memory");
    const int64_t C = a->hidden_size;
    if (st == ILM_OK) st = make_weight(&k, &m->tok_embd, a->vocab_size, C, false);
    if (st == ILM_OK) st = make_norm(m, &m->out_norm, C);
    if (st == ILM_OK && a->tie_embeddings) m->output = m->tok_embd;
    else if (st == ILM_OK) st = make_weight(&k, &m->output, a->vocab_size, C, false);
    for (int64_t l = 0; st == ILM_OK && l < a->n_layers; l++) {
        uint8_t *y = (uint8_t *)&m->layers[l];
        for (size_t i = 0; st == ILM_OK && i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            if (!ilm__layer_name(a, lt)) continue;
            st = lt->norm ? make_norm(m, (const float **)(y + lt->field), C)
                          : make_weight(&k, (ilm__weight *)(y + lt->field), ilm__layer_size(a, lt->rows),
                                        ilm__layer_size(a, lt->cols), true);
        }
    }
    ilm__free(k.tmp);
    if (st == ILM_OK) m->chat_template = ilm__strdup(a->kind == ILM__ARCH_INTERNLM2 ? "internlm2" : "chatml");
    if (st == ILM_OK && !m->chat_template) st = ilm__error(ILM_ERR_NOMEM, "model: out of memory");
    if (st == ILM_OK) st = ilm__rope_init(m);
    if (st != ILM_OK) {
        ilm_model_free(m);
        return st;
    }
    *out = m;
    return ILM_OK;
}

ilm_status ilm_model_create(const char *config, uint64_t seed, ilm_model **out)
{
    return ilm__model_create(config, seed, NULL, out);
}

/* ---- saving ------------------------------------------------------------ */

/* Tensors go out as stored when the file can hold them (f32, f16, bf16
 * without change; 4-bit weights as bitsandbytes' keys, with a
 * quantization_config); the rest are produced one at a time as the file is
 * written, in fp32: GGUF quantizations dequantized, GGUF's q/k rows put
 * back in Hugging Face order, an applied adapter merged (W + s B A) -- into
 * the dequantized values of a 4-bit base, so a model with an adapter is
 * written in fp32 throughout. */
typedef struct saver {
    const ilm_model    *m;
    bool                q4;     /* 4-bit weights go out in bitsandbytes' layout */
    ilm__q4_hf         *hf;     /* per 4-bit weight: its keys */
    size_t              n_hf;
    ilm__st_out        *t;
    struct produced {
        const ilm__weight *w;   /* the weight to produce, or NULL: written as stored */
        bool               qk;  /* a q or k weight */
    } *p;                       /* per tensor */
    size_t              n;
    int64_t            *shapes; /* 2 per tensor */
    char               *names;  /* 96 per tensor */
    float              *buf;    /* the tensor being produced */
    size_t              buf_cap;
    ilm__backend       *be;     /* for the merge's GEMM */
} saver;

/* Bytes per element of the types the file holds (f32, f16, bf16, u8). */
static uint32_t elem_bytes(uint32_t type)
{
    uint32_t block = 1, bytes = 1;
    (void)ilm__dtype_info(type, &block, &bytes);
    return bytes / block;
}

static bool is_fp(uint32_t type)
{
    return type == ILM__DTYPE_F32 || type == ILM__DTYPE_F16 || type == ILM__DTYPE_BF16;
}

static void add(saver *s, const char *name, uint32_t type, const void *data, const int64_t *shape,
                int n_dims, const ilm__weight *w, bool qk)
{
    size_t i = s->n++;
    snprintf(s->names + 96 * i, 96, "%s", name);
    memcpy(s->shapes + 2 * i, shape, 2 * sizeof *shape);
    s->p[i] = (struct produced){ w, qk };
    s->t[i] = (ilm__st_out){ s->names + 96 * i, type, n_dims, s->shapes + 2 * i, data };
}

static ilm_status add_w(saver *s, const char *name, const ilm__weight *w, bool qk)
{
    const int64_t shape[2] = { w->rows, w->cols };
    const bool permute = qk && s->m->arch.rope_interleaved;
    if (s->q4 && ilm__weight_is_q4(w)) {
        ilm__q4_hf *h = &s->hf[s->n_hf];
        ILM__FORWARD(ilm__q4_hf_tensors(w->data, name, h));
        s->n_hf++;
        for (size_t j = 0; j < h->n; j++) {
            const int64_t sh[2] = { h->t[j].shape[0], h->t[j].n_dims > 1 ? h->t[j].shape[1] : 0 };
            add(s, h->t[j].name, h->t[j].type, h->t[j].data, sh, h->t[j].n_dims, NULL, false);
        }
    } else if (is_fp(w->type) && !w->lora_r && !permute) {
        add(s, name, w->type, w->data, shape, 2, NULL, false);
    } else {
        add(s, name, ILM__DTYPE_F32, NULL, shape, 2, w, qk);
    }
    return ILM_OK;
}

static void add_norm(saver *s, const char *name, const float *v, int64_t n)
{
    const int64_t shape[2] = { n, 0 };
    add(s, name, ILM__DTYPE_F32, v, shape, 1, NULL, false);
}

static ilm_status produce(void *ctx, size_t i, const void **data)
{
    saver *s = ctx;
    const ilm__weight *w = s->p[i].w;
    const size_t n = (size_t)(w->rows * w->cols);
    if (n > s->buf_cap) {
        ilm__free(s->buf);
        s->buf_cap = 0;
        ILM__RETURN_IF(!(s->buf = ilm__malloc(n * sizeof *s->buf)), ILM_ERR_NOMEM,
                       "model: out of memory saving '%s'", s->t[i].name);
        s->buf_cap = n;
    }
    ILM__FORWARD(ilm__weight_rows(w, 0, w->rows, s->buf, s->m->threads));
    if (w->lora_r) /* W += (s B) A, in the stored row order */
        ILM__FORWARD(s->be->iface.gemm_f32(s->be, false, false, (int)w->rows, (int)w->cols,
                                           (int)w->lora_r, 1.0f, w->lora_b, (int)w->lora_r,
                                           w->lora_a, (int)w->cols, 1.0f, s->buf, (int)w->cols));
    if (s->p[i].qk && s->m->arch.rope_interleaved)
        ILM__FORWARD(ilm__rope_permute_rows(s->m->arch.head_dim, w->rows, w->cols, s->buf, true));
    *data = s->buf;
    return ILM_OK;
}

static ilm_status collect(saver *s)
{
    const ilm_model *m = s->m;
    const ilm__arch *a = &m->arch;
    const bool i2 = a->kind == ILM__ARCH_INTERNLM2;
    ILM__FORWARD(add_w(s, i2 ? "model.tok_embeddings.weight" : "model.embed_tokens.weight",
                       &m->tok_embd, false));
    for (int64_t l = 0; l < a->n_layers; l++) {
        const uint8_t *y = (const uint8_t *)&m->layers[l];
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            const char *fmt = ilm__layer_name(a, lt);
            char n[96];
            if (!fmt) continue;
            snprintf(n, sizeof n, fmt, (long long)l);
            if (lt->norm)
                add_norm(s, n, *(const float *const *)(y + lt->field), a->hidden_size);
            else
                ILM__FORWARD(add_w(s, n, (const ilm__weight *)(y + lt->field),
                                   lt->field == offsetof(ilm__layer, wq) ||
                                       lt->field == offsetof(ilm__layer, wk)));
        }
    }
    add_norm(s, "model.norm.weight", m->out_norm, a->hidden_size);
    if (!a->tie_embeddings)
        ILM__FORWARD(add_w(s, i2 ? "output.weight" : "lm_head.weight", &m->output, false));
    /* Wider elements first, so every tensor stays aligned to its element
     * size behind the 4-bit weights' bytes (a stable insertion sort). */
    for (size_t i = 1; i < s->n; i++)
        for (size_t j = i; j > 0 && elem_bytes(s->t[j].type) > elem_bytes(s->t[j - 1].type); j--) {
            ilm__st_out t = s->t[j];
            s->t[j] = s->t[j - 1];
            s->t[j - 1] = t;
            struct produced p = s->p[j];
            s->p[j] = s->p[j - 1];
            s->p[j - 1] = p;
        }
    return ILM_OK;
}

/* config.json: the architecture, and bitsandbytes' quantization_config
 * when 4-bit weights are written as they are. */
static ilm_status config_json(const saver *s, char **out)
{
    ilm__arch hf = s->m->arch;
    hf.rope_interleaved = false; /* produce() put q/k rows back in HF order */
    ILM__FORWARD(ilm__arch_to_hf_config(&hf, out));
    if (!s->q4) return ILM_OK;
    const ilm__q4 *q = s->m->q4[0];
    cJSON *j = cJSON_Parse(*out), *qc = cJSON_CreateObject();
    ilm__free(*out);
    *out = NULL;
    if (j && qc) {
        cJSON_AddStringToObject(qc, "quant_method", "bitsandbytes");
        cJSON_AddBoolToObject(qc, "load_in_4bit", true);
        cJSON_AddBoolToObject(qc, "load_in_8bit", false);
        cJSON_AddStringToObject(qc, "bnb_4bit_quant_type", q->kind == ILM__Q4_FP4 ? "fp4" : "nf4");
        cJSON_AddBoolToObject(qc, "bnb_4bit_use_double_quant", q->nested);
        cJSON_AddStringToObject(qc, "bnb_4bit_compute_dtype", "float32");
        cJSON_AddStringToObject(qc, "bnb_4bit_quant_storage", "uint8");
        cJSON_AddItemToObject(j, "quantization_config", qc);
        qc = NULL;
    }
    ilm_status st = j ? ilm__json_print(j, out) : ilm__error(ILM_ERR_NOMEM, "model: out of memory");
    cJSON_Delete(qc);
    cJSON_Delete(j);
    return st;
}

ilm_status ilm_model_save(const ilm_model *m, const char *dir)
{
    ILM__RETURN_IF(!m || !dir, ILM_ERR_INVALID_ARG, "ilm_model_save: NULL argument");
    ILM__RETURN_IF(mkdir(dir, 0777) != 0 && errno != EEXIST, ILM_ERR_IO,
                   "cannot create directory '%s': %s", dir, strerror(errno));
    /* A 4-bit weight takes up to 6 tensors. */
    size_t cap = ((size_t)m->arch.n_layers * ilm__n_layer_tensors + 4) * 6;
    saver s = { .m = m, .q4 = m->n_q4 > 0 && !m->adapter };
    s.hf = s.q4 ? ilm__calloc(m->n_q4, sizeof *s.hf) : NULL;
    s.t = ilm__calloc(cap, sizeof *s.t);
    s.p = ilm__calloc(cap, sizeof *s.p);
    s.shapes = ilm__calloc(cap * 2, sizeof *s.shapes);
    s.names = ilm__calloc(cap, 96);
    ilm_status st = !s.t || !s.p || !s.shapes || !s.names || (s.q4 && !s.hf)
                        ? ilm__error(ILM_ERR_NOMEM, "model: out of memory") : ILM_OK;
    if (st == ILM_OK && m->adapter) st = ilm__backend_cpu_create(m->threads, -1, &s.be);
    if (st == ILM_OK) st = collect(&s);
    char path[4096], *cfg = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const meta[] = { "format", "pt", NULL };
    if (st == ILM_OK) st = ilm__st_write_stream(path, s.t, s.n, meta, produce, &s);
    if (st == ILM_OK) st = config_json(&s, &cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (st == ILM_OK) st = ilm__atomic_write_buf(path, cfg, strlen(cfg));
    ilm__free(cfg);
    ilm__backend_free(s.be);
    for (size_t i = 0; i < s.n_hf; i++) ilm__q4_hf_free(&s.hf[i]);
    ilm__free(s.hf);
    ilm__free(s.buf);
    ilm__free(s.t);
    ilm__free(s.p);
    ilm__free(s.shapes);
    ilm__free(s.names);
    return st;
}
