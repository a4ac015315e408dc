/*
 * src/train/ -- training: the training graph (this file; see graph.h for
 * the graph, its storage and its numerics), the optimizer and LR schedule
 * (optim.c), checkpoints (ckpt.c) and the trainer (trainer.c); Hybrid ZeRO
 * later.  The parameter layout and LoRA adapters are the model's
 * (model/params.h, model/lora.h).
 */
#include "train/graph.h"
#include "tensor/tensor.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Logits rows per cross-entropy chunk: at most this many floats of
 * logits exist at once (64 MB), whatever the vocabulary. */
#define LOGIT_FLOATS ((int64_t)1 << 24)

/* Floats of one dequantized panel of a frozen base weight (4 MB): the
 * rows per panel depend on the weight's width alone. */
#define PANEL_FLOATS ((int64_t)1 << 20)

/* One layer's saved activations (graph.h). */
typedef struct layer_acts {
    float *q, *k, *v, *att, *lse, *m, *gate, *up;
} layer_acts;

/* One adapter's A [r, in] and B [out, r] in the slab. */
typedef struct lora_ab {
    float *A, *B;
    size_t mask_off; /* its dropout bits start at N * mask_off words of g->masks */
} lora_ab;

struct ilm__graph {
    ilm__arch           a;
    ilm__backend       *be; /* the graph's own CPU instance */
    int                 threads;
    ilm__params         ps;
    float              *params, *grads; /* [ps.total] each */
    ilm_model          *view;
    bool                recompute;
    /* Scratch for the current (B, T) and recompute setting. */
    int64_t     B, T;
    bool        scratch_recompute;
    float      *scratch;
    int32_t    *cu;      /* [B*T + 1] the documents of the packed batch */
    layer_acts *acts;    /* [L], or all aliasing one set when recomputing */
    float *xs;           /* [L+1, N, C] layer inputs; xs[L] the final one */
    float *h, *dx, *dh;  /* [N, C] */
    float *f;            /* [N, F] silu(gate) * up, then its gradient */
    float *dq, *dk, *dv; /* [N, H*D], [N, KV*D] x 2 */
    float *datt;         /* [N, H*D] */
    float *qkv;          /* [N, (H+2KV)*D] InternLM2's fused projection */
    float *cos, *sin;    /* [N, D/2] */
    float *logits;       /* [rows, V] */
    int64_t logit_rows;
    bool    timing;
    double  op_s[ILM__GOP_COUNT];
    /* LoRA (graph.h): base is the frozen model (borrowed), NULL when every
     * parameter trains. */
    const ilm_model *base;
    ilm__lora_opts   lora;
    float            lora_s;
    lora_ab         *ab;        /* [L * ilm__n_layer_tensors]; A NULL: not adapted */
    uint64_t         drop_key;
    bool             drop_on;   /* dropout in this run (backward runs only) */
    bool             drop_gen;  /* draw the masks (the first forward) or reuse them */
    size_t           mask_words; /* words of dropout bits per token, all adapters */
    uint64_t        *masks;     /* [N * mask_words] the micro-batch's dropout bits */
    float           *u, *du;    /* [N, r] */
    float           *xd;        /* [N, max in] the dropped-out input */
    float           *panel;     /* dequantized rows of a base weight (PANEL_FLOATS) */
    float           *norm_sink; /* [C] gradients of frozen norms, discarded */
};

const char *const ilm__graph_op_names[ILM__GOP_COUNT] = {
    "embedding", "rmsnorm",   "matmul_qkv", "matmul_o",      "matmul_mlp", "matmul_lm_head",
    "rope",      "attention", "swiglu",     "cross_entropy", "other",
};

/* Runs `call` (an ilm_status expression) as op `op` of graph g: returns
 * on failure, and adds its time to the op when timing is on. */
#define OP(g, op, call)                                                \
    do {                                                               \
        if (!(g)->timing) {                                            \
            ILM__FORWARD(call);                                         \
        } else {                                                       \
            const double t0_ = ilm__now();                             \
            const ilm_status st_ = (call);                             \
            (g)->op_s[op] += ilm__now() - t0_;                         \
            ILM__FORWARD(st_);                                          \
        }                                                              \
    } while (0)
/* The same for a statement that cannot fail. */
#define OPV(g, op, stmt) OP(g, op, ((stmt), ILM_OK))

/* ---- creation ------------------------------------------------------------ */

static float *slot(ilm__graph *g, const char *name)
{
    const ilm__param *p = ilm__params_find(&g->ps, name);
    return p ? g->params + p->offset : NULL;
}

/* Fills the parameter slab from m and points the view's weights into it. */
static ilm_status build(ilm__graph *g, const ilm_model *m)
{
    const ilm__arch *a = &g->a;
    const bool i2 = a->kind == ILM__ARCH_INTERNLM2;
    const int64_t V = a->vocab_size, C = a->hidden_size;
    ilm_model *v = g->view;
    v->arch = *a;
    v->layers = ilm__calloc((size_t)a->n_layers, sizeof *v->layers);
    v->inv_freq = ilm__malloc((size_t)(a->head_dim / 2) * sizeof *v->inv_freq);
    v->chat_template = ilm__strdup(m->chat_template ? m->chat_template : "chatml");
    ILM__RETURN_IF(!v->layers || !v->inv_freq || !v->chat_template, ILM_ERR_NOMEM,
                   "graph: out of memory");
    memcpy(v->inv_freq, m->inv_freq, (size_t)(a->head_dim / 2) * sizeof *v->inv_freq);
    v->rope_attn_factor = m->rope_attn_factor;
    v->owned_bytes = g->ps.total * sizeof(float);

    float *p = slot(g, i2 ? "model.tok_embeddings.weight" : "model.embed_tokens.weight");
    ILM__FORWARD(ilm__weight_rows(&m->tok_embd, 0, m->tok_embd.rows, p, g->threads));
    v->tok_embd = (ilm__weight){ .type = ILM__DTYPE_F32, .rows = V, .cols = C, .data = p };
    p = slot(g, "model.norm.weight");
    memcpy(p, m->out_norm, (size_t)C * sizeof *p);
    v->out_norm = p;
    if (a->tie_embeddings) {
        v->output = v->tok_embd;
    } else {
        p = slot(g, i2 ? "output.weight" : "lm_head.weight");
        ILM__FORWARD(ilm__weight_rows(&m->output, 0, m->output.rows, p, g->threads));
        v->output = (ilm__weight){ .type = ILM__DTYPE_F32, .rows = V, .cols = C, .data = p };
    }
    for (int64_t l = 0; l < a->n_layers; l++) {
        const uint8_t *src = (const uint8_t *)&m->layers[l];
        uint8_t *dst = (uint8_t *)&v->layers[l];
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            const char *fmt = ilm__layer_name(a, lt);
            char name[ILM__PARAM_NAME];
            if (!fmt) continue;
            snprintf(name, sizeof name, fmt, (long long)l);
            p = slot(g, name);
            ILM__RETURN_IF(!p, ILM_ERR_INTERNAL, "graph: '%s' is not in the layout", name);
            if (lt->norm) {
                memcpy(p, *(const float *const *)(src + lt->field), (size_t)C * sizeof *p);
                *(const float **)(dst + lt->field) = p;
            } else {
                const ilm__weight *w = (const ilm__weight *)(src + lt->field);
                ILM__FORWARD(ilm__weight_rows(w, 0, w->rows, p, g->threads));
                *(ilm__weight *)(dst + lt->field) = (ilm__weight){
                    .type = ILM__DTYPE_F32, .rows = w->rows, .cols = w->cols, .data = p };
            }
        }
    }
    return ILM_OK;
}

/* The adapter of layer l's tensor i, or NULL. */
static const lora_ab *adapter(const ilm__graph *g, int64_t l, size_t i)
{
    const lora_ab *ab = g->ab ? &g->ab[(size_t)l * ilm__n_layer_tensors + i] : NULL;
    return ab && ab->A ? ab : NULL;
}

/* Words of dropout bits per token for an adapter whose input is `in` wide. */
static size_t mask_words(int64_t in) { return (size_t)(in + 63) / 64; }

static ilm_status check_base(const ilm__weight *w, const char *what, int64_t l)
{
    uint32_t block, bytes;
    ILM__RETURN_IF(!ilm__dtype_info(w->type, &block, &bytes), ILM_ERR_UNSUPPORTED,
                   "lora: layer %lld %s: weight type %s (%u) cannot be a frozen base",
                   (long long)l, what, ilm__dtype_name(w->type), w->type);
    ILM__RETURN_IF(w->cols > PANEL_FLOATS, ILM_ERR_UNSUPPORTED,
                   "lora: layer %lld %s: %lld columns is too wide", (long long)l, what,
                   (long long)w->cols);
    return ILM_OK;
}

/* LoRA: the adapter slab over the frozen base m (graph.h). */
static ilm_status build_lora(ilm__graph *g, const ilm_model *m, const ilm__lora_opts *o)
{
    const ilm__arch *a = &g->a;
    g->base = m;
    g->lora = *o;
    g->lora_s = ilm__lora_scale(o);
    ILM__FORWARD(ilm__lora_layout(a, o, &g->ps));
    g->params = ilm__calloc(g->ps.total, sizeof *g->params);
    g->grads = ilm__calloc(g->ps.total, sizeof *g->grads);
    g->ab = ilm__calloc((size_t)a->n_layers * ilm__n_layer_tensors, sizeof *g->ab);
    g->panel = ilm__malloc((size_t)PANEL_FLOATS * sizeof *g->panel);
    g->norm_sink = ilm__calloc((size_t)a->hidden_size, sizeof *g->norm_sink);
    ILM__RETURN_IF(!g->params || !g->grads || !g->ab || !g->panel || !g->norm_sink, ILM_ERR_NOMEM,
                   "lora: cannot allocate %zu MB of adapters and gradients",
                   2 * g->ps.total * sizeof(float) >> 20);
    ilm__lora_init(&g->ps, o, g->params);
    size_t k = 0;
    char module[ILM__PARAM_NAME];
    for (int64_t l = 0; l < a->n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            if (!ilm__lora_module(a, i, l, module, sizeof module)) continue;
            ILM__FORWARD(check_base((const ilm__weight *)((const uint8_t *)&m->layers[l] + lt->field),
                                    module, l));
            if (!(o->targets >> i & 1)) continue;
            lora_ab *ab = &g->ab[(size_t)l * ilm__n_layer_tensors + i];
            ab->A = g->params + g->ps.p[k].offset;
            ab->B = g->params + g->ps.p[k + 1].offset;
            ab->mask_off = g->mask_words;
            g->mask_words += mask_words(ilm__layer_size(a, lt->cols));
            k += 2;
        }
    ILM__FORWARD(check_base(&m->output, "output", -1));
    uint32_t block, bytes;
    ILM__RETURN_IF(!ilm__dtype_info(m->tok_embd.type, &block, &bytes), ILM_ERR_UNSUPPORTED,
                   "lora: embedding type %u", m->tok_embd.type);
    return ILM_OK;
}

ilm_status ilm__graph_create(const ilm_model *m, const ilm__graph_opts *opts, ilm__graph **out)
{
    ILM__RETURN_IF(!m || !out, ILM_ERR_INVALID_ARG, "graph: NULL argument");
    *out = NULL;
    const ilm__arch *a = &m->arch;
    ILM__RETURN_IF(a->n_heads % a->n_kv_heads != 0 || a->head_dim % 2 != 0, ILM_ERR_UNSUPPORTED,
                   "graph: %d heads over %d kv heads of dim %d", a->n_heads, a->n_kv_heads,
                   a->head_dim);
    /* The graph reads base weights only: an adapter applied at load would
     * be silently dropped. */
    ILM__RETURN_IF(m->adapter, ILM_ERR_UNSUPPORTED,
                   "graph: the model has the adapter '%s' applied; train from the base model "
                   "(or from its merge, ilm_model_save)",
                   m->adapter);
    ilm__graph *g = ilm__calloc(1, sizeof *g);
    ILM__RETURN_IF(!g, ILM_ERR_NOMEM, "graph: out of memory");
    g->a = *a;
    g->recompute = opts && opts->recompute;
    g->threads = opts && opts->threads > 0 ? opts->threads : ilm__num_threads();
    ilm_status st = ilm__backend_cpu_create(opts ? opts->threads : 0, -1, &g->be);
    if (st == ILM_OK && opts && opts->lora) {
        st = build_lora(g, m, opts->lora);
    } else if (st == ILM_OK) {
        st = ilm__params_layout(a, &g->ps);
        if (st == ILM_OK) {
            g->params = ilm__calloc(g->ps.total, sizeof *g->params);
            g->grads = ilm__calloc(g->ps.total, sizeof *g->grads);
            g->view = ilm__calloc(1, sizeof *g->view);
            if (!g->params || !g->grads || !g->view)
                st = ilm__error(ILM_ERR_NOMEM,
                                "graph: cannot allocate %zu MB of parameters and gradients",
                                2 * g->ps.total * sizeof(float) >> 20);
        }
        if (st == ILM_OK) st = build(g, m);
    }
    if (st != ILM_OK) {
        ilm__graph_free(g);
        return st;
    }
    *out = g;
    return ILM_OK;
}

static void free_scratch(ilm__graph *g)
{
    ilm__free(g->scratch);
    ilm__free(g->cu);
    ilm__free(g->acts);
    ilm__free(g->masks);
    g->masks = NULL;
    g->scratch = NULL;
    g->cu = NULL;
    g->acts = NULL;
    g->B = g->T = 0;
}

void ilm__graph_free(ilm__graph *g)
{
    if (!g) return;
    free_scratch(g);
    /* The view owns nothing but its tables: ilm_model_free releases those
     * and leaves the slab alone (n_owned is 0). */
    ilm_model_free(g->view);
    ilm__params_free(&g->ps);
    ilm__free(g->params);
    ilm__free(g->grads);
    ilm__free(g->ab);
    ilm__free(g->panel);
    ilm__free(g->norm_sink);
    ilm__backend_free(g->be);
    ilm__free(g);
}

const ilm__backend *ilm__graph_backend(const ilm__graph *g) { return g->be; }

const ilm__params *ilm__graph_params(const ilm__graph *g) { return &g->ps; }
float *ilm__graph_param_slab(ilm__graph *g) { return g->params; }
float *ilm__graph_grad_slab(ilm__graph *g) { return g->grads; }
ilm_model *ilm__graph_model(ilm__graph *g) { return g->view ? g->view : (ilm_model *)g->base; }
void ilm__graph_set_recompute(ilm__graph *g, bool on) { g->recompute = on; }
void ilm__graph_set_dropout_key(ilm__graph *g, uint64_t key) { g->drop_key = key; }

void ilm__graph_set_timing(ilm__graph *g, bool on)
{
    g->timing = on;
    memset(g->op_s, 0, sizeof g->op_s);
}

const double *ilm__graph_op_seconds(const ilm__graph *g) { return g->op_s; }

void ilm__graph_zero_grad(ilm__graph *g)
{
    memset(g->grads, 0, g->ps.total * sizeof *g->grads);
}

/* ---- scratch ------------------------------------------------------------- */

/* Lays g's scratch out from `base` (NULL: only counts, and g may be NULL)
 * for arch a with adapters of rank r (0: none) and returns its length in
 * floats. */
static size_t layout(ilm__graph *g, const ilm__arch *a, int64_t r, int64_t N, bool recompute,
                     float *base)
{
    const int64_t C = a->hidden_size, F = a->intermediate_size, H = a->n_heads,
                  KV = a->n_kv_heads, D = a->head_dim, L = a->n_layers, V = a->vocab_size;
    const int64_t HD = H * D, KVD = KV * D;
    const int64_t X = a->kind == ILM__ARCH_INTERNLM2 ? (H + 2 * KV) * D : 0;
    const int64_t rows = N < LOGIT_FLOATS / V ? N : (LOGIT_FLOATS / V > 0 ? LOGIT_FLOATS / V : 1);
    size_t off = 0;
#define TAKE(dst, n)                                                   \
    do {                                                               \
        if (base) (dst) = base + off;                                  \
        off += ((size_t)(n) + 15) / 16 * 16; /* 64-byte aligned */     \
    } while (0)
    TAKE(g->xs, (L + 1) * N * C);
    TAKE(g->h, N * C);
    TAKE(g->dx, N * C);
    TAKE(g->dh, N * C);
    TAKE(g->f, N * F);
    TAKE(g->dq, N * HD);
    TAKE(g->dk, N * KVD);
    TAKE(g->dv, N * KVD);
    TAKE(g->datt, N * HD);
    TAKE(g->qkv, N * X);
    TAKE(g->cos, N * D / 2);
    TAKE(g->sin, N * D / 2);
    TAKE(g->logits, rows * V);
    int64_t in_max = C > F ? C : F;
    if (HD > in_max) in_max = HD;
    TAKE(g->u, N * r);
    TAKE(g->du, N * r);
    TAKE(g->xd, r ? N * in_max : 0);
    const int64_t sets = recompute ? 1 : L;
    for (int64_t l = 0; l < sets; l++) {
        TAKE(g->acts[l].q, N * HD);
        TAKE(g->acts[l].k, N * KVD);
        TAKE(g->acts[l].v, N * KVD);
        TAKE(g->acts[l].att, N * HD);
        TAKE(g->acts[l].lse, N * H);
        TAKE(g->acts[l].m, N * C);
        TAKE(g->acts[l].gate, N * F);
        TAKE(g->acts[l].up, N * F);
    }
#undef TAKE
    if (base) {
        g->logit_rows = rows;
        for (int64_t l = sets; l < L; l++) g->acts[l] = g->acts[0];
    }
    return off;
}

static uint64_t activation_bytes(const ilm__arch *a, int64_t r, size_t words, bool recompute,
                                 int64_t B, int64_t T)
{
    if (B <= 0 || T <= 0) return 0;
    return (uint64_t)layout(NULL, a, r, B * T, recompute, NULL) * sizeof(float) +
           (uint64_t)(B * T + 1) * sizeof(int32_t) + (uint64_t)(B * T) * words * sizeof(uint64_t);
}

uint64_t ilm__graph_activation_bytes(const ilm__graph *g, int64_t B, int64_t T)
{
    if (!g) return 0;
    const bool lora = g->base != NULL;
    return activation_bytes(&g->a, lora ? g->lora.r : 0,
                            lora && g->lora.dropout > 0 ? g->mask_words : 0, g->recompute, B, T);
}

uint64_t ilm__graph_plan_activation_bytes(const ilm__arch *a, const ilm__lora_opts *lora,
                                          bool recompute, int64_t B, int64_t T)
{
    size_t words = 0;
    char module[ILM__PARAM_NAME];
    for (int64_t l = 0; lora && lora->dropout > 0 && l < a->n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++)
            if ((lora->targets >> i & 1) && ilm__lora_module(a, i, l, module, sizeof module))
                words += mask_words(ilm__layer_size(a, ilm__layer_tensors[i].cols));
    return activation_bytes(a, lora ? lora->r : 0, words, recompute, B, T);
}

static ilm_status ensure_scratch(ilm__graph *g, int64_t B, int64_t T)
{
    if (g->scratch && g->B == B && g->T == T && g->scratch_recompute == g->recompute) return ILM_OK;
    free_scratch(g);
    const int64_t N = B * T;
    const int64_t r = g->base ? g->lora.r : 0;
    size_t n = layout(g, &g->a, r, N, g->recompute, NULL);
    g->scratch = ilm__malloc(n * sizeof *g->scratch);
    g->cu = ilm__malloc((size_t)(N + 1) * sizeof *g->cu);
    g->acts = ilm__calloc((size_t)g->a.n_layers, sizeof *g->acts);
    if (g->base && g->lora.dropout > 0)
        g->masks = ilm__malloc((size_t)N * g->mask_words * sizeof *g->masks);
    if (!g->scratch || !g->cu || !g->acts || (g->base && g->lora.dropout > 0 && !g->masks)) {
        free_scratch(g);
        return ilm__error(ILM_ERR_NOMEM, "graph: cannot allocate %zu MB of activations for %lld x %lld",
                          n * sizeof(float) >> 20, (long long)B, (long long)T);
    }
    layout(g, &g->a, r, N, g->recompute, g->scratch);
    g->B = B;
    g->T = T;
    g->scratch_recompute = g->recompute;
    return ILM_OK;
}

/* ---- matmuls on the backend's gemm ----------------------------------------- */

/* Y[N,out] = X[N,in] W[out,in]^T + beta Y. */
static ilm_status mm(const ilm__graph *g, const float *X, int64_t N, int64_t in, const float *W,
                     int64_t out, float *Y, float beta)
{
    return g->be->iface.gemm_f32(g->be, false, true, (int)N, (int)out, (int)in, 1.0f, X, (int)in, W,
                           (int)in, beta, Y, (int)out);
}

/* dX[N,in] = dY[N,out] W[out,in] + beta dX. */
static ilm_status mm_dx(const ilm__graph *g, const float *dY, int64_t N, int64_t out,
                        const float *W, int64_t in, float *dX, float beta)
{
    return g->be->iface.gemm_f32(g->be, false, false, (int)N, (int)in, (int)out, 1.0f, dY, (int)out, W,
                           (int)in, beta, dX, (int)in);
}

/* dW[out,in] += dY[N,out]^T X[N,in]. */
static ilm_status mm_dw(const ilm__graph *g, const float *dY, int64_t N, int64_t out,
                        const float *X, int64_t in, float *dW)
{
    return g->be->iface.gemm_f32(g->be, true, false, (int)out, (int)in, (int)N, 1.0f, dY, (int)out, X,
                           (int)in, 1.0f, dW, (int)in);
}

/* The gradient slab's element for a parameter slab pointer. */
static float *grad_of(const ilm__graph *g, const void *param)
{
    return g->grads + ((const float *)param - g->params);
}

static const float *W(const ilm__weight *w) { return (const float *)w->data; }

/* ---- linears: trainable fp32, or a frozen base with an adapter ------------- */

/* One linear of the graph: y = x W^T (+ the adapter's term). */
typedef struct lin {
    const ilm__weight *w;  /* fp32 in the slab, or the frozen base in any type */
    float             *gw; /* its gradient; NULL when frozen */
    const lora_ab     *ab; /* NULL: no adapter */
    float             *gA, *gB;
    uint64_t           id; /* names the dropout stream */
} lin;

static size_t tensor_index(size_t field)
{
    for (size_t i = 0; i < ilm__n_layer_tensors; i++)
        if (ilm__layer_tensors[i].field == field) return i;
    return 0; /* not reached: every field is in the table */
}

/* Layer l's linear at `field` (offsetof(ilm__layer, ...)). */
static lin lin_at(ilm__graph *g, int64_t l, size_t field)
{
    const ilm_model *m = ilm__graph_model(g);
    const ilm__weight *w = (const ilm__weight *)((const uint8_t *)&m->layers[l] + field);
    const size_t i = tensor_index(field);
    lin L = { w, g->base ? NULL : grad_of(g, w->data), adapter(g, l, i), NULL, NULL,
              (uint64_t)l * ilm__n_layer_tensors + i };
    if (L.ab) {
        L.gA = grad_of(g, L.ab->A);
        L.gB = grad_of(g, L.ab->B);
    }
    return L;
}

/* Rows of a panel of a weight `cols` wide. */
static int64_t panel_rows(int64_t cols) { return PANEL_FLOATS / cols; }

/* Y[N,out] = X[N,in] W^T + beta Y for any stored W. */
static ilm_status base_fwd(const ilm__graph *g, const ilm__weight *w, const float *X, int64_t N,
                           float *Y, float beta)
{
    const int64_t out = w->rows, in = w->cols;
    if (w->type == ILM__DTYPE_F32) return mm(g, X, N, in, W(w), out, Y, beta);
    const int64_t P = panel_rows(in);
    for (int64_t n0 = 0; n0 < out; n0 += P) {
        const int64_t rows = out - n0 < P ? out - n0 : P;
        ILM__FORWARD(ilm__weight_rows(w, n0, rows, g->panel, g->threads));
        ILM__FORWARD(g->be->iface.gemm_f32(g->be, false, true, (int)N, (int)rows, (int)in, 1.0f, X,
                                           (int)in, g->panel, (int)in, beta, Y + n0, (int)out));
    }
    return ILM_OK;
}

/* dX[N,in] = dY[N,out] W + beta dX for any stored W: panel by panel, in
 * order, so the sum over out runs in a fixed order. */
static ilm_status base_dx(const ilm__graph *g, const ilm__weight *w, const float *dY, int64_t N,
                          float *dX, float beta)
{
    const int64_t out = w->rows, in = w->cols;
    if (w->type == ILM__DTYPE_F32) return mm_dx(g, dY, N, out, W(w), in, dX, beta);
    const int64_t P = panel_rows(in);
    for (int64_t n0 = 0; n0 < out; n0 += P) {
        const int64_t rows = out - n0 < P ? out - n0 : P;
        ILM__FORWARD(ilm__weight_rows(w, n0, rows, g->panel, g->threads));
        ILM__FORWARD(g->be->iface.gemm_f32(g->be, false, false, (int)N, (int)in, (int)rows, 1.0f,
                                           dY + n0, (int)out, g->panel, (int)in,
                                           n0 == 0 ? beta : 1.0f, dX, (int)in));
    }
    return ILM_OK;
}

/* Dropout for adapter L: dst = src * mask * keep, or dst += that.  The
 * mask is one bit per element of the adapter's input, kept for the
 * micro-batch: the first forward draws it (g->drop_gen), the recomputed
 * forward and the backward reuse it.  Row t's bits come from the stream
 * (linear, t) under (seed, drop_key), 16 bits per element: an element is
 * kept when its draw is at least thr = p 2^16, and scaled by
 * keep = 2^16 / (2^16 - thr), so its expectation is exactly its value. */
static void dropout_apply(const ilm__graph *g, const lin *L, const float *src, int64_t N,
                          float *dst, bool accumulate)
{
    const int64_t in = L->w->cols, W = (in + 63) / 64;
    uint64_t *bits = g->masks + (size_t)N * L->ab->mask_off;
    const uint32_t thr = (uint32_t)(g->lora.dropout * 65536.0 + 0.5);
    const float keep = 65536.0f / (float)(65536 - thr);
    const bool gen = g->drop_gen;
    const uint64_t seed = g->lora.seed ^ (g->drop_key * 0x9e3779b97f4a7c15ull);
    float scale[256][8];
    for (int b = 0; b < 256; b++)
        for (int k = 0; k < 8; k++) scale[b][k] = b >> k & 1 ? keep : 0.0f;
#pragma omp parallel for num_threads(g->threads) schedule(static)
    for (int64_t t = 0; t < N; t++) {
        uint64_t *row = bits + (size_t)t * (size_t)W;
        if (gen) {
            ilm__rng r;
            ilm__rng_init(&r, seed, (L->id << 32) ^ (uint64_t)t);
            memset(row, 0, (size_t)W * sizeof *row);
            for (int64_t j = 0; j < in; j += 2) {
                const uint32_t u = ilm__rng_u32(&r);
                if ((u & 0xffff) >= thr) row[j >> 6] |= 1ull << (j & 63);
                if (j + 1 < in && (u >> 16) >= thr) row[(j + 1) >> 6] |= 1ull << ((j + 1) & 63);
            }
        }
        /* Eight elements per mask byte, through a table of their scales
         * (0 or keep): a fixed-width multiply the compiler vectorizes. */
        const float *x = src + t * in;
        float *y = dst + t * in;
        const uint8_t *mb = (const uint8_t *)row; /* little-endian: element j is bit j */
        int64_t j = 0;
        for (; j + 8 <= in; j += 8) {
            const float *f = scale[mb[j >> 3]];
            if (accumulate)
                for (int k = 0; k < 8; k++) y[j + k] += x[j + k] * f[k];
            else
                for (int k = 0; k < 8; k++) y[j + k] = x[j + k] * f[k];
        }
        for (; j < in; j++) {
            const float v = row[j >> 6] >> (j & 63) & 1 ? x[j] * keep : 0.0f;
            y[j] = accumulate ? y[j] + v : v;
        }
    }
}

/* The adapter's input: X, or X dropped out into g->xd. */
static const float *lora_input(const ilm__graph *g, const lin *L, const float *X, int64_t N)
{
    if (!g->drop_on || g->lora.dropout <= 0) return X;
    dropout_apply(g, L, X, N, g->xd, false);
    return g->xd;
}

/* Y[N,out] = X W^T + beta Y, plus s (dropout(X) A^T) B^T. */
static ilm_status lin_fwd(const ilm__graph *g, const lin *L, const float *X, int64_t N, float *Y,
                          float beta)
{
    ILM__FORWARD(base_fwd(g, L->w, X, N, Y, beta));
    if (!L->ab) return ILM_OK;
    const ilm__backend *be = g->be;
    const int r = (int)g->lora.r, in = (int)L->w->cols, out = (int)L->w->rows;
    const float *xin = lora_input(g, L, X, N);
    ILM__FORWARD(be->iface.gemm_f32(be, false, true, (int)N, r, in, 1.0f, xin, in, L->ab->A, in,
                                    0.0f, g->u, r));
    return be->iface.gemm_f32(be, false, true, (int)N, out, r, g->lora_s, g->u, r, L->ab->B, r,
                              1.0f, Y, out);
}

/* dX += (du A) * dropout's mask / (1 - p), du in g->du. */
static ilm_status lora_dx_du(const ilm__graph *g, const lin *L, int64_t N, float *dX)
{
    const ilm__backend *be = g->be;
    const int r = (int)g->lora.r, in = (int)L->w->cols;
    if (!g->drop_on || g->lora.dropout <= 0)
        return be->iface.gemm_f32(be, false, false, (int)N, in, r, 1.0f, g->du, r, L->ab->A, in,
                                  1.0f, dX, in);
    ILM__FORWARD(be->iface.gemm_f32(be, false, false, (int)N, in, r, 1.0f, g->du, r, L->ab->A, in,
                                    0.0f, g->xd, in));
    dropout_apply(g, L, g->xd, N, dX, true);
    return ILM_OK;
}

/* du = s dY B. */
static ilm_status lora_du(const ilm__graph *g, const lin *L, const float *dY, int64_t N)
{
    const int r = (int)g->lora.r, out = (int)L->w->rows;
    return g->be->iface.gemm_f32(g->be, false, false, (int)N, r, out, g->lora_s, dY, out,
                                 L->ab->B, r, 0.0f, g->du, r);
}

/* The adapter's part of dX (dX += ...), for a linear whose base part
 * base_dx added: linears that share an input add their dX one by one. */
static ilm_status lora_dx(const ilm__graph *g, const lin *L, const float *dY, int64_t N, float *dX)
{
    if (!L->ab) return ILM_OK;
    ILM__FORWARD(lora_du(g, L, dY, N));
    return lora_dx_du(g, L, N, dX);
}

/* The backward of lin_fwd for dY [N,out] and its input X: the weight's
 * gradient (trainable) or the adapter's (u recomputed), then, unless dX is
 * NULL, dX = dY W + beta dX plus the adapter's term. */
static ilm_status lin_bwd(const ilm__graph *g, const lin *L, const float *dY, int64_t N,
                          const float *X, float *dX, float beta)
{
    const ilm__backend *be = g->be;
    const int64_t out = L->w->rows, in = L->w->cols;
    if (L->gw) ILM__FORWARD(mm_dw(g, dY, N, out, X, in, L->gw));
    if (L->ab) {
        const int r = (int)g->lora.r;
        const float *xin = lora_input(g, L, X, N);
        ILM__FORWARD(be->iface.gemm_f32(be, false, true, (int)N, r, (int)in, 1.0f, xin, (int)in,
                                        L->ab->A, (int)in, 0.0f, g->u, r));
        /* dB += s dY^T u;  du = s dY B;  dA += du^T x. */
        ILM__FORWARD(be->iface.gemm_f32(be, true, false, (int)out, r, (int)N, g->lora_s, dY,
                                        (int)out, g->u, r, 1.0f, L->gB, r));
        ILM__FORWARD(lora_du(g, L, dY, N));
        ILM__FORWARD(be->iface.gemm_f32(be, true, false, r, (int)in, (int)N, 1.0f, g->du, r, xin,
                                        (int)in, 1.0f, L->gA, (int)in));
    }
    if (!dX) return ILM_OK;
    ILM__FORWARD(base_dx(g, L->w, dY, N, dX, beta));
    return L->ab ? lora_dx_du(g, L, N, dX) : ILM_OK;
}

/* A norm weight's gradient: its slab slot, or the sink when frozen. */
static float *norm_grad(const ilm__graph *g, const float *w)
{
    return g->base ? g->norm_sink : grad_of(g, w);
}

/* ---- forward and backward of one layer ------------------------------------- */

/* x_l -> acts (and x_l+1 when write_out). */
static ilm_status layer_forward(ilm__graph *g, int64_t l, int64_t N, int64_t n_docs,
                                bool write_out)
{
    const ilm__arch *a = &g->a;
    const ilm__backend *be = g->be;
    const ilm__layer *ly = &ilm__graph_model(g)->layers[l];
    const layer_acts *s = &g->acts[l];
    const int64_t C = a->hidden_size, F = a->intermediate_size, H = a->n_heads, KV = a->n_kv_heads,
                  D = a->head_dim;
    const float *x = g->xs + l * N * C;
    g->drop_gen = write_out; /* the first forward draws the masks; recompute reuses them */
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm(be, x, ly->attn_norm, g->h, N, C, a->rms_eps));
    if (a->kind == ILM__ARCH_INTERNLM2) {
        const lin wqkv = lin_at(g, l, offsetof(ilm__layer, wqkv));
        OP(g, ILM__GOP_MM_QKV, lin_fwd(g, &wqkv, g->h, N, g->qkv, 0));
        OP(g, ILM__GOP_OTHER, be->iface.qkv_split(be, g->qkv, N, H, KV, D, s->q, s->k, s->v));
    } else {
        const lin wq = lin_at(g, l, offsetof(ilm__layer, wq)),
                  wk = lin_at(g, l, offsetof(ilm__layer, wk)),
                  wv = lin_at(g, l, offsetof(ilm__layer, wv));
        OP(g, ILM__GOP_MM_QKV, lin_fwd(g, &wq, g->h, N, s->q, 0));
        OP(g, ILM__GOP_MM_QKV, lin_fwd(g, &wk, g->h, N, s->k, 0));
        OP(g, ILM__GOP_MM_QKV, lin_fwd(g, &wv, g->h, N, s->v, 0));
    }
    OP(g, ILM__GOP_ROPE, be->iface.rope(be, s->q, N, H, D, g->cos, g->sin, a->rope_interleaved));
    OP(g, ILM__GOP_ROPE, be->iface.rope(be, s->k, N, KV, D, g->cos, g->sin, a->rope_interleaved));
    OP(g, ILM__GOP_ATTENTION,
       be->iface.attention_train(be, s->q, s->k, s->v, s->att, s->lse, g->cu, n_docs, N, H, KV, D));
    OPV(g, ILM__GOP_OTHER, memcpy(s->m, x, (size_t)(N * C) * sizeof *s->m));
    const lin wo = lin_at(g, l, offsetof(ilm__layer, wo));
    OP(g, ILM__GOP_MM_O, lin_fwd(g, &wo, s->att, N, s->m, 1)); /* residual in beta */
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm(be, s->m, ly->ffn_norm, g->h, N, C, a->rms_eps));
    const lin wg = lin_at(g, l, offsetof(ilm__layer, w_gate)),
              wu = lin_at(g, l, offsetof(ilm__layer, w_up));
    OP(g, ILM__GOP_MM_MLP, lin_fwd(g, &wg, g->h, N, s->gate, 0));
    OP(g, ILM__GOP_MM_MLP, lin_fwd(g, &wu, g->h, N, s->up, 0));
    if (!write_out) return ILM_OK;
    OP(g, ILM__GOP_SWIGLU, be->iface.swiglu(be, s->gate, s->up, g->f, N * F));
    float *y = g->xs + (l + 1) * N * C;
    OPV(g, ILM__GOP_OTHER, memcpy(y, s->m, (size_t)(N * C) * sizeof *y));
    const lin wd = lin_at(g, l, offsetof(ilm__layer, w_down));
    OP(g, ILM__GOP_MM_MLP, lin_fwd(g, &wd, g->f, N, y, 1));
    return ILM_OK;
}

/* g->dx: d loss / d x_l+1 on entry, d loss / d x_l on return.  Destroys
 * the layer's gate and up. */
static ilm_status layer_backward(ilm__graph *g, int64_t l, int64_t N, int64_t n_docs)
{
    const ilm__arch *a = &g->a;
    const ilm__backend *be = g->be;
    const ilm__layer *ly = &ilm__graph_model(g)->layers[l];
    const layer_acts *s = &g->acts[l];
    const int64_t C = a->hidden_size, F = a->intermediate_size, H = a->n_heads, KV = a->n_kv_heads,
                  D = a->head_dim;
    const float *x = g->xs + l * N * C;
    float *dx = g->dx, *dh = g->dh;
    g->drop_gen = false;
    /* MLP: x_l+1 = m + f Wd^T with f = silu(gate) * up. */
    const lin wd = lin_at(g, l, offsetof(ilm__layer, w_down)),
              wg = lin_at(g, l, offsetof(ilm__layer, w_gate)),
              wu = lin_at(g, l, offsetof(ilm__layer, w_up));
    OP(g, ILM__GOP_SWIGLU, be->iface.swiglu(be, s->gate, s->up, g->f, N * F));
    OP(g, ILM__GOP_MM_MLP, lin_bwd(g, &wd, dx, N, g->f, g->f, 0));
    OP(g, ILM__GOP_SWIGLU, be->iface.swiglu_bwd(be, g->f, s->gate, s->up, s->gate, s->up, N * F));
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm(be, s->m, ly->ffn_norm, g->h, N, C, a->rms_eps));
    OP(g, ILM__GOP_MM_MLP, lin_bwd(g, &wg, s->gate, N, g->h, NULL, 0));
    OP(g, ILM__GOP_MM_MLP, lin_bwd(g, &wu, s->up, N, g->h, NULL, 0));
    OP(g, ILM__GOP_MM_MLP, base_dx(g, wg.w, s->gate, N, dh, 0));
    OP(g, ILM__GOP_MM_MLP, base_dx(g, wu.w, s->up, N, dh, 1));
    OP(g, ILM__GOP_MM_MLP, lora_dx(g, &wg, s->gate, N, dh));
    OP(g, ILM__GOP_MM_MLP, lora_dx(g, &wu, s->up, N, dh));
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm_bwd(be, s->m, ly->ffn_norm, dh, dh,
                                                  norm_grad(g, ly->ffn_norm), N, C, a->rms_eps));
    OP(g, ILM__GOP_OTHER, be->iface.add(be, dx, dh, N * C)); /* dx: d loss / d m */
    /* Attention: m = x_l + att Wo^T. */
    const lin wo = lin_at(g, l, offsetof(ilm__layer, wo));
    OP(g, ILM__GOP_MM_O, lin_bwd(g, &wo, dx, N, s->att, g->datt, 0));
    OP(g, ILM__GOP_ATTENTION,
       be->iface.attention_train_bwd(be, s->q, s->k, s->v, s->att, s->lse, g->datt, g->dq, g->dk, g->dv,
                               g->cu, n_docs, N, H, KV, D));
    OP(g, ILM__GOP_ROPE, be->iface.rope_bwd(be, g->dq, N, H, D, g->cos, g->sin, a->rope_interleaved));
    OP(g, ILM__GOP_ROPE, be->iface.rope_bwd(be, g->dk, N, KV, D, g->cos, g->sin, a->rope_interleaved));
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm(be, x, ly->attn_norm, g->h, N, C, a->rms_eps));
    if (a->kind == ILM__ARCH_INTERNLM2) {
        const lin wqkv = lin_at(g, l, offsetof(ilm__layer, wqkv));
        OP(g, ILM__GOP_OTHER, be->iface.qkv_merge(be, g->dq, g->dk, g->dv, N, H, KV, D, g->qkv));
        OP(g, ILM__GOP_MM_QKV, lin_bwd(g, &wqkv, g->qkv, N, g->h, dh, 0));
    } else {
        const lin wq = lin_at(g, l, offsetof(ilm__layer, wq)),
                  wk = lin_at(g, l, offsetof(ilm__layer, wk)),
                  wv = lin_at(g, l, offsetof(ilm__layer, wv));
        OP(g, ILM__GOP_MM_QKV, lin_bwd(g, &wq, g->dq, N, g->h, NULL, 0));
        OP(g, ILM__GOP_MM_QKV, lin_bwd(g, &wk, g->dk, N, g->h, NULL, 0));
        OP(g, ILM__GOP_MM_QKV, lin_bwd(g, &wv, g->dv, N, g->h, NULL, 0));
        OP(g, ILM__GOP_MM_QKV, base_dx(g, wq.w, g->dq, N, dh, 0));
        OP(g, ILM__GOP_MM_QKV, base_dx(g, wk.w, g->dk, N, dh, 1));
        OP(g, ILM__GOP_MM_QKV, base_dx(g, wv.w, g->dv, N, dh, 1));
        OP(g, ILM__GOP_MM_QKV, lora_dx(g, &wq, g->dq, N, dh));
        OP(g, ILM__GOP_MM_QKV, lora_dx(g, &wk, g->dk, N, dh));
        OP(g, ILM__GOP_MM_QKV, lora_dx(g, &wv, g->dv, N, dh));
    }
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm_bwd(be, x, ly->attn_norm, dh, dh,
                                                  norm_grad(g, ly->attn_norm), N, C, a->rms_eps));
    OP(g, ILM__GOP_OTHER, be->iface.add(be, dx, dh, N * C));
    return ILM_OK;
}

/* ---- the whole model ---------------------------------------------------------- */

/* Checks the batch and builds the packed document list and RoPE tables;
 * returns the number of documents in *n_docs. */
static ilm_status prepare(ilm__graph *g, const int32_t *positions, const int32_t *cu_seqlens,
                          const int32_t *n_seqs, int64_t B, int64_t T, int64_t *n_docs)
{
    ILM__RETURN_IF(B <= 0 || T <= 0 || B * T > INT32_MAX, ILM_ERR_INVALID_ARG,
                   "graph: batch of %lld x %lld tokens", (long long)B, (long long)T);
    ILM__FORWARD(ensure_scratch(g, B, T));
    int64_t n = 0;
    g->cu[0] = 0;
    for (int64_t b = 0; b < B; b++) {
        const int32_t *cu = cu_seqlens + b * (T + 1);
        ILM__RETURN_IF(n_seqs[b] < 1 || n_seqs[b] > T || cu[0] != 0 || cu[n_seqs[b]] != T,
                       ILM_ERR_INVALID_ARG,
                       "graph: row %lld: cu_seqlens must run from 0 to %lld in n_seqs = %d steps",
                       (long long)b, (long long)T, n_seqs[b]);
        for (int32_t i = 1; i <= n_seqs[b]; i++) g->cu[++n] = (int32_t)(b * T) + cu[i];
    }
    *n_docs = n;
    int32_t maxpos = 0;
    for (int64_t t = 0; t < B * T; t++) {
        ILM__RETURN_IF(positions[t] < 0, ILM_ERR_INVALID_ARG, "graph: position %d at %lld",
                       positions[t], (long long)t);
        if (positions[t] > maxpos) maxpos = positions[t];
    }
    ilm__rope_tables(ilm__graph_model(g), positions, B * T, (int64_t)maxpos + 1, g->cos, g->sin);
    return ILM_OK;
}

static ilm_status run(ilm__graph *g, const int32_t *tokens, const int32_t *labels,
                      const int32_t *positions, const int32_t *cu_seqlens, const int32_t *n_seqs,
                      int64_t B, int64_t T, bool backward, float grad_scale, double *loss_sum,
                      int64_t *n_targets)
{
    ILM__RETURN_IF(!g || !tokens || !labels || !positions || !cu_seqlens || !n_seqs || !loss_sum ||
                      !n_targets, ILM_ERR_INVALID_ARG, "graph: NULL argument");
    const ilm__arch *a = &g->a;
    const ilm__backend *be = g->be;
    const ilm_model *v = ilm__graph_model(g);
    const int64_t C = a->hidden_size, V = a->vocab_size, L = a->n_layers, N = B * T;
    int64_t n_docs = 0;
    ILM__FORWARD(prepare(g, positions, cu_seqlens, n_seqs, B, T, &n_docs));
    g->drop_on = backward;

    OP(g, ILM__GOP_EMBEDDING, be->iface.embedding(be, v->tok_embd.type, v->tok_embd.data, V, C,
                                                  tokens, N, g->xs));
    for (int64_t l = 0; l < L; l++) ILM__FORWARD(layer_forward(g, l, N, n_docs, true));

    /* Head: final norm, logits and loss by row chunks; in backward the
     * chunk's logits become its gradient in place, giving dh and dWout. */
    const float *xL = g->xs + L * N * C;
    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm(be, xL, v->out_norm, g->h, N, C, a->rms_eps));
    double total = 0;
    int64_t count = 0;
    for (int64_t r0 = 0; r0 < N; r0 += g->logit_rows) {
        const int64_t rows = N - r0 < g->logit_rows ? N - r0 : g->logit_rows;
        double s;
        int64_t c;
        OP(g, ILM__GOP_MM_LM_HEAD, base_fwd(g, &v->output, g->h + r0 * C, rows, g->logits, 0));
        OP(g, ILM__GOP_CROSS_ENTROPY, be->iface.cross_entropy(be, g->logits, labels + r0, rows, V, grad_scale,
                                      backward ? g->logits : NULL, &s, &c));
        total += s;
        count += c;
        if (!backward) continue;
        OP(g, ILM__GOP_MM_LM_HEAD, base_dx(g, &v->output, g->logits, rows, g->dh + r0 * C, 0));
        if (!g->base)
            OP(g, ILM__GOP_MM_LM_HEAD, mm_dw(g, g->logits, rows, V, g->h + r0 * C, C,
                                             grad_of(g, v->output.data)));
    }
    *loss_sum = total;
    *n_targets = count;
    if (!backward) return ILM_OK;

    OP(g, ILM__GOP_RMSNORM, be->iface.rmsnorm_bwd(be, xL, v->out_norm, g->dh, g->dx,
                                                  norm_grad(g, v->out_norm), N, C, a->rms_eps));
    for (int64_t l = L - 1; l >= 0; l--) {
        if (g->scratch_recompute) ILM__FORWARD(layer_forward(g, l, N, n_docs, false));
        ILM__FORWARD(layer_backward(g, l, N, n_docs));
    }
    if (!g->base)
        OP(g, ILM__GOP_EMBEDDING, be->iface.embedding_bwd(be, grad_of(g, v->tok_embd.data), V, C,
                                                          tokens, N, g->dx));
    return ILM_OK;
}

ilm_status ilm__graph_forward_backward(ilm__graph *g, const int32_t *tokens,
                                       const int32_t *labels, const int32_t *positions,
                                       const int32_t *cu_seqlens, const int32_t *n_seqs,
                                       int64_t B, int64_t T, float grad_scale,
                                       double *loss_sum, int64_t *n_targets)
{
    return run(g, tokens, labels, positions, cu_seqlens, n_seqs, B, T, true, grad_scale, loss_sum,
               n_targets);
}

ilm_status ilm__graph_forward(ilm__graph *g, const int32_t *tokens, const int32_t *labels,
                              const int32_t *positions, const int32_t *cu_seqlens,
                              const int32_t *n_seqs, int64_t B, int64_t T, double *loss_sum,
                              int64_t *n_targets)
{
    return run(g, tokens, labels, positions, cu_seqlens, n_seqs, B, T, false, 0.0f, loss_sum,
               n_targets);
}
