/* `internlm bench train`: training tokens/s of a new model (forward,
 * backward, clipping and AdamW, the trainer's steps without its data
 * loader) and the time split by op; tools/bench_train.py runs PyTorch
 * eager (transformers) on the same architecture, batch and threads in the
 * same run. */
#include "bench/internal.h"
#include "train/graph.h"
#include "train/optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The default model: a 27.7M-parameter LLaMA (V 8192, C 512, L 6, H = KV
 * = 8 of D 64, F 1408, untied), the size of the goal. */
static const char default_model[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 8192, "
    "\"hidden_size\": 512, \"intermediate_size\": 1408, \"num_hidden_layers\": 6, "
    "\"num_attention_heads\": 8, \"num_key_value_heads\": 8, \"max_position_embeddings\": 4096, "
    "\"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false, "
    "\"hidden_act\": \"silu\"}";

/* A batch of B rows of T deterministic random tokens, each row cut into
 * `docs` documents of (nearly) equal length; labels are the next token
 * inside the document, -100 at its end, positions restart per document. */
typedef struct bench_batch {
    int32_t *tokens, *labels, *positions, *cu, *n_seqs;
} bench_batch;

static ilm_status make_batch(bench_batch *b, int64_t B, int64_t T, int64_t docs, int64_t V)
{
    const size_t bt = (size_t)(B * T);
    b->tokens = ilm__malloc(bt * sizeof(int32_t));
    b->labels = ilm__malloc(bt * sizeof(int32_t));
    b->positions = ilm__malloc(bt * sizeof(int32_t));
    b->cu = ilm__malloc((size_t)(B * (T + 1)) * sizeof(int32_t));
    b->n_seqs = ilm__malloc((size_t)B * sizeof(int32_t));
    ILM__RETURN_IF(!b->tokens || !b->labels || !b->positions || !b->cu || !b->n_seqs, ILM_ERR_NOMEM,
                   "bench train: out of memory for a %lld x %lld batch", (long long)B, (long long)T);
    ilm__rng rng;
    ilm__rng_init(&rng, 42, 0);
    for (size_t i = 0; i < bt; i++) b->tokens[i] = (int32_t)ilm__rng_below(&rng, (uint32_t)V);
    for (int64_t r = 0; r < B; r++) {
        int32_t *cu = b->cu + r * (T + 1);
        b->n_seqs[r] = (int32_t)docs;
        for (int64_t d = 0; d <= docs; d++) cu[d] = (int32_t)(d * T / docs);
        for (int64_t d = 0; d < docs; d++)
            for (int64_t t = cu[d]; t < cu[d + 1]; t++) {
                const int64_t i = r * T + t;
                b->positions[i] = (int32_t)(t - cu[d]);
                b->labels[i] = t + 1 < cu[d + 1] ? b->tokens[i + 1] : -100;
            }
    }
    return ILM_OK;
}

static void free_batch(bench_batch *b)
{
    ilm__free(b->tokens);
    ilm__free(b->labels);
    ilm__free(b->positions);
    ilm__free(b->cu);
    ilm__free(b->n_seqs);
}

/* One training step as the trainer takes it: forward + backward of the
 * mean loss, global-norm clipping and AdamW, zeroing the gradients.
 * *opt_s gets the optimizer's share of the time. */
static ilm_status step(ilm__graph *g, const ilm__optim_opts *o, const bench_batch *b, int64_t B,
                       int64_t T, int64_t n, float *m, float *v, double *loss, double *opt_s)
{
    const ilm__params *ps = ilm__graph_params(g);
    int64_t targets = 0;
    for (int64_t i = 0; i < B * T; i++) targets += b->labels[i] != -100;
    double sum;
    int64_t nt;
    ILM__FORWARD(ilm__graph_forward_backward(g, b->tokens, b->labels, b->positions, b->cu, b->n_seqs,
                                            B, T, targets ? 1.0f / (float)targets : 0.0f, &sum, &nt));
    *loss = nt ? sum / (double)nt : NAN;
    const double t0 = ilm__now();
    float *grad = ilm__graph_grad_slab(g);
    const ilm__backend *be = ilm__graph_backend(g);
    const double norm = sqrt(ilm__optim_sqnorm(be, grad, ps->total));
    ILM__FORWARD(ilm__adamw_step(be, o, ps, 0, ps->total, n, ilm__optim_lr(o, n), ilm__optim_clip_coef(o, norm),
                                ilm__graph_param_slab(g), grad, m, v));
    ilm__graph_zero_grad(g);
    *opt_s = ilm__now() - t0;
    return ILM_OK;
}

static ilm_status report(const char *model_config, const ilm__graph *g, int64_t B, int64_t T,
                         int64_t docs, int64_t steps, int64_t warmup, int64_t threads,
                         bool recompute, int64_t lora_r, double seconds, double best, double opt_s,
                         double loss0, double loss1, char **result)
{
    cJSON *j = cJSON_CreateObject(), *ops = cJSON_CreateObject(), *mc = cJSON_Parse(model_config);
    ilm_status st = ILM_OK;
    if (!j || !ops || !mc) {
        cJSON_Delete(j);
        cJSON_Delete(ops);
        cJSON_Delete(mc);
        return ilm__error(ILM_ERR_NOMEM, "bench train: out of memory");
    }
    const double per = 1.0 / (double)steps, *s = ilm__graph_op_seconds(g);
    const ilm__params *ps = ilm__graph_params(g);
    size_t n_params = 0;
    for (size_t i = 0; i < ps->n; i++) n_params += ps->p[i].numel;
    cJSON_AddItemToObject(j, "model_config", mc);
    cJSON_AddNumberToObject(j, "parameters", (double)n_params);
    cJSON_AddNumberToObject(j, "batch", (double)B);
    cJSON_AddNumberToObject(j, "seqlen", (double)T);
    cJSON_AddNumberToObject(j, "docs_per_row", (double)docs);
    cJSON_AddNumberToObject(j, "steps", (double)steps);
    cJSON_AddNumberToObject(j, "warmup", (double)warmup);
    cJSON_AddNumberToObject(j, "threads", (double)threads);
    cJSON_AddBoolToObject(j, "recompute", recompute);
    cJSON_AddNumberToObject(j, "lora_r", (double)lora_r);
    cJSON_AddNumberToObject(j, "tokens_per_s", (double)(B * T * steps) / seconds);
    cJSON_AddNumberToObject(j, "best_tokens_per_s", (double)(B * T) / best);
    cJSON_AddNumberToObject(j, "step_seconds", seconds * per);
    cJSON_AddNumberToObject(j, "first_loss", loss0);
    cJSON_AddNumberToObject(j, "last_loss", loss1);
    for (int i = 0; i < ILM__GOP_COUNT; i++)
        cJSON_AddNumberToObject(ops, ilm__graph_op_names[i], s[i] * per);
    cJSON_AddNumberToObject(ops, "optimizer", opt_s * per);
    cJSON_AddItemToObject(j, "op_seconds_per_step", ops);
    st = ilm__json_print(j, result);
    cJSON_Delete(j);
    return st;
}

ilm_status ilm_bench_train(const char *config, ilm_progress_fn progress, void *user, char **result)
{
    ILM__RETURN_IF(!result, ILM_ERR_INVALID_ARG, "ilm_bench_train: result is NULL");
    *result = NULL;
    int64_t B = 8, T = 256, steps = 5, warmup = 2, docs = 1, threads = ilm__num_threads(), lora_r = 0;
    bool recompute = false;
    const cJSON *mcfg = NULL;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "bench train config", &root));
    const ilm__jfield f[] = {
        { "model_config", ILM__J_OBJECT, &mcfg, false, 0, 0 },
        { "batch", ILM__J_INT, &B, false, 1, 65536 },
        { "seqlen", ILM__J_INT, &T, false, 2, 1 << 20 },
        { "docs_per_row", ILM__J_INT, &docs, false, 1, 1 << 20 },
        { "steps", ILM__J_INT, &steps, false, 1, 1000000 },
        { "warmup", ILM__J_INT, &warmup, false, 0, 1000000 },
        { "threads", ILM__J_INT, &threads, false, 1, 4096 },
        { "recompute", ILM__J_BOOL, &recompute, false, 0, 0 },
        { "lora_r", ILM__J_INT, &lora_r, false, 0, 4096 },
    };
    ilm_status st = ilm__json_fields(root, "", f, sizeof f / sizeof *f);
    if (st == ILM_OK && docs > T)
        st = ilm__error(ILM_ERR_CONFIG, "bench train: docs_per_row %lld is more than seqlen %lld",
                        (long long)docs, (long long)T);
    char *model_config = NULL;
    if (st == ILM_OK && mcfg && !(model_config = cJSON_PrintUnformatted(mcfg)))
        st = ilm__error(ILM_ERR_NOMEM, "bench train: out of memory");
    const char *mc = model_config ? model_config : default_model;
    ilm_model *m = NULL;
    ilm__graph *g = NULL;
    bench_batch b = { 0 };
    float *mom = NULL, *var = NULL;
    if (st == ILM_OK) st = ilm_model_create(mc, 1234, &m);
    /* LoRA: rank lora_r, alpha 2r, dropout 0.05 on every linear of the
     * layers (tools/bench_lora.py gives peft the same), the base frozen. */
    ilm__lora_opts lo;
    ilm__lora_opts_default(&lo);
    lo.r = lora_r;
    lo.alpha = 2.0 * (double)lora_r;
    lo.dropout = 0.05;
    if (st == ILM_OK) {
        const ilm__graph_opts go = { recompute, (int)threads, lora_r ? &lo : NULL };
        st = ilm__graph_create(m, &go, &g);
    }
    if (st == ILM_OK && lora_r) ilm__lora_init(ilm__graph_params(g), &lo, ilm__graph_param_slab(g));
    if (st == ILM_OK) st = make_batch(&b, B, T, docs, m->arch.vocab_size);
    if (st == ILM_OK) {
        const size_t n = ilm__graph_params(g)->total;
        mom = ilm__calloc(n, sizeof *mom);
        var = ilm__calloc(n, sizeof *var);
        if (!mom || !var) st = ilm__error(ILM_ERR_NOMEM, "bench train: out of memory for AdamW state");
    }
    ilm__optim_opts o;
    ilm__optim_opts_default(&o);
    o.schedule = ILM__LR_CONSTANT;
    double seconds = 0, best = INFINITY, opt_s = 0, loss0 = NAN, loss1 = NAN;
    for (int64_t i = 0; i < warmup + steps && st == ILM_OK; i++) {
        if (progress && progress(user, i < warmup ? "warmup" : "train", (uint64_t)i,
                                 (uint64_t)(warmup + steps))) {
            st = ilm__error(ILM_ERR_CANCELLED, "bench train: cancelled");
            break;
        }
        if (i == warmup) ilm__graph_set_timing(g, true);
        ilm__graph_set_dropout_key(g, (uint64_t)i); /* new masks each step, as the trainer draws */
        double loss = NAN, os = 0, t0 = ilm__now();
        st = step(g, &o, &b, B, T, i + 1, mom, var, &loss, &os);
        const double dt = ilm__now() - t0;
        if (i == 0) loss0 = loss;
        loss1 = loss;
        if (i < warmup) continue;
        seconds += dt;
        opt_s += os;
        if (dt < best) best = dt;
    }
    if (st == ILM_OK)
        st = report(mc, g, B, T, docs, steps, warmup, threads, recompute, lora_r, seconds, best, opt_s,
                    loss0, loss1, result);
    ilm__free(mom);
    ilm__free(var);
    free_batch(&b);
    ilm__graph_free(g);
    ilm_model_free(m);
    cJSON_free(model_config);
    cJSON_Delete(root);
    return st;
}
