/*
 * The trainer (ilm_trainer_*): a model's training graph, AdamW with its
 * schedule, the per-rank loader over a corpus, evaluation on held-out
 * shards, checkpoints and the metrics log, for one process.
 *
 * One optimizer step: take grad_accum micro-batches from the loader (copied,
 * since the loader reuses its arrays), count their targets, run forward and
 * backward on each with grad_scale = 1 / (all targets of the step), so the
 * gradient slab holds the gradient of the step's mean token loss; then the
 * global norm, the clip coefficient, the NaN/inf guard (a non-finite norm
 * skips the update, says so in the log and the metrics, and still counts
 * the step so a poisoned batch is not retried forever), AdamW, zero grads.
 *
 * Resume: the newest complete checkpoint under checkpoint_dir holds the
 * fp32 weights, the AdamW moments and trainer_state.json (step, loader
 * position, seed, tokens seen); everything else is a function of the config,
 * so a resumed run continues bit for bit where the saved one was.
 */
#include "train/ckpt.h"
#include "train/graph.h"
#include "quant/nf4.h"
#include "train/optim.h"
#include "corpus/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct batch_copy {
    int32_t *tokens, *labels, *positions, *cu_seqlens, *n_seqs;
} batch_copy;

struct ilm_trainer {
    /* config */
    char           *data_dir, *eval_dir, *ckpt_dir, *log_path, *model_path;
    int64_t         B, T, accum, steps, eval_interval, eval_batches, ckpt_interval, keep;
    uint64_t        seed;
    bool            resume, recompute, sft;
    int             threads;   /* the config's; 0: ilm_get_num_threads() */
    ilm__optim_opts opt;
    cJSON          *lora_cfg;  /* the "lora" section, parsed once the model is known */
    bool            lora;
    ilm__lora_opts  lora_opts;
    bool            qlora;     /* "qlora": the base quantized to 4 bits at load */
    ilm__q4_opts    q4_opts;
    /* state */
    ilm_model      *base;      /* LoRA: the frozen base the graph reads */
    ilm__graph     *g;
    float          *m, *v;       /* AdamW moments, [params.total] */
    ilm_corpus     *data, *eval;
    ilm__loader    *loader, *eval_loader;
    char           *eval_start;  /* the eval loader's initial state */
    batch_copy     *mb;          /* [accum] */
    int64_t         step;        /* optimizer steps done */
    uint64_t        tokens_seen;
    int64_t         resumed_from; /* -1: fresh start */
    char           *tok_files[5]; /* tokenizer files copied into checkpoints */
};

/* ---- configuration ------------------------------------------------------ */

static ilm_status dup_str(const char *s, char **out)
{
    *out = NULL;
    if (!s) return ILM_OK;
    *out = ilm__strdup(s);
    ILM__RETURN_IF(!*out, ILM_ERR_NOMEM, "trainer: out of memory");
    return ILM_OK;
}

/* Takes the 4-bit keys out of a "qlora" section (the rest is "lora"'s)
 * and parses them (ilm__q4_opts_parse). */
static ilm_status parse_q4(cJSON *section, ilm__q4_opts *o)
{
    cJSON *q = cJSON_CreateObject();
    ILM__RETURN_IF(!q, ILM_ERR_NOMEM, "trainer: out of memory");
    static const char *const keys[] = { "quant_type", "blocksize", "double_quant" };
    for (size_t i = 0; i < 3; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(section, keys[i]);
        if (v) cJSON_AddItemToObject(q, keys[i], v);
    }
    ilm_status st = ilm__q4_opts_parse(q, "qlora", o);
    cJSON_Delete(q);
    return st;
}

static ilm_status parse(ilm_trainer *t, const cJSON *root, char **model_config)
{
    const char *model = NULL, *data = NULL, *eval = NULL, *ckpt = NULL, *log = NULL, *mode = NULL;
    const cJSON *mcfg = NULL, *optim = NULL, *lora = NULL, *qlora = NULL;
    int64_t seed = 0, threads = 0;
    t->B = 8, t->T = 256, t->accum = 1, t->eval_batches = 4, t->keep = 3;
    t->resume = true;
    const ilm__jfield f[] = {
        { "mode", ILM__J_STRING, &mode, false, 0, 0 },
        { "model", ILM__J_STRING, &model, false, 0, 0 },
        { "model_config", ILM__J_OBJECT, &mcfg, false, 0, 0 },
        { "seed", ILM__J_INT, &seed, false, 0, 9007199254740991.0 },
        { "data", ILM__J_STRING, &data, true, 0, 0 },
        { "eval_data", ILM__J_STRING, &eval, false, 0, 0 },
        { "batch", ILM__J_INT, &t->B, false, 1, 65536 },
        { "seqlen", ILM__J_INT, &t->T, false, 2, 1 << 20 },
        { "grad_accum", ILM__J_INT, &t->accum, false, 1, 65536 },
        { "steps", ILM__J_INT, &t->steps, true, 1, 1e12 },
        { "optimizer", ILM__J_OBJECT, &optim, false, 0, 0 },
        { "eval_interval", ILM__J_INT, &t->eval_interval, false, 0, 1e12 },
        { "eval_batches", ILM__J_INT, &t->eval_batches, false, 1, 1e6 },
        { "checkpoint_dir", ILM__J_STRING, &ckpt, false, 0, 0 },
        { "checkpoint_interval", ILM__J_INT, &t->ckpt_interval, false, 0, 1e12 },
        { "keep_checkpoints", ILM__J_INT, &t->keep, false, 1, 1e6 },
        { "resume", ILM__J_BOOL, &t->resume, false, 0, 0 },
        { "recompute", ILM__J_BOOL, &t->recompute, false, 0, 0 },
        { "log", ILM__J_STRING, &log, false, 0, 0 },
        { "threads", ILM__J_INT, &threads, false, 0, ILM__MAX_THREADS },
        { "lora", ILM__J_SECTION, &lora, false, 0, 0 },
        { "qlora", ILM__J_SECTION, &qlora, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(root, "", f, sizeof f / sizeof *f));
    ILM__RETURN_IF(!model == !mcfg, ILM_ERR_CONFIG,
                   "config: give exactly one of 'model' (a model to continue from) and "
                   "'model_config' (a config.json object for a new model)");
    if (mode && strcmp(mode, "pretrain") && strcmp(mode, "sft"))
        return ilm__error(ILM_ERR_CONFIG, "config: 'mode' is '%s', not \"pretrain\" or \"sft\"", mode);
    t->sft = mode && !strcmp(mode, "sft");
    ILM__RETURN_IF(t->sft && !model, ILM_ERR_CONFIG, "config: SFT needs 'model' (the model to fine-tune)");
    t->seed = (uint64_t)seed;
    t->threads = (int)threads;
    if (lora && cJSON_IsFalse(lora)) lora = NULL;
    if (qlora && cJSON_IsFalse(qlora)) qlora = NULL;
    ILM__RETURN_IF(lora && qlora, ILM_ERR_CONFIG, "config: give 'lora' or 'qlora', not both");
    if (lora || qlora) {
        /* QLoRA over 'model_config' trains over a random base made
         * directly in 4 bits: for memory measurements of large shapes. */
        ILM__RETURN_IF(!model && !qlora, ILM_ERR_CONFIG,
                       "config: 'lora' needs 'model' (the base model the adapter trains on)");
        t->lora = true;
        t->qlora = qlora != NULL;
        t->lora_cfg = cJSON_Duplicate(qlora ? qlora : lora, true);
        ILM__RETURN_IF(!t->lora_cfg, ILM_ERR_NOMEM, "trainer: out of memory");
        if (qlora) ILM__FORWARD(parse_q4(t->lora_cfg, &t->q4_opts));
    }
    /* The schedule's horizon is the run unless the config says otherwise. */
    ILM__FORWARD(ilm__optim_opts_parse(optim, "optimizer", &t->opt));
    if (!optim || !cJSON_GetObjectItemCaseSensitive(optim, "total_steps")) {
        t->opt.total_steps = t->steps;
        ILM__RETURN_IF(t->opt.schedule != ILM__LR_CONSTANT && t->opt.total_steps <= t->opt.warmup_steps,
                       ILM_ERR_CONFIG, "config: 'optimizer.warmup_steps' (%lld) must be below 'steps'",
                       (long long)t->opt.warmup_steps);
    }
    ILM__FORWARD(dup_str(model, &t->model_path));
    ILM__FORWARD(dup_str(data, &t->data_dir));
    ILM__FORWARD(dup_str(eval, &t->eval_dir));
    ILM__FORWARD(dup_str(ckpt, &t->ckpt_dir));
    ILM__FORWARD(dup_str(log, &t->log_path));
    if (mcfg) ILM__FORWARD(ilm__json_print(mcfg, model_config));
    return ILM_OK;
}

/* ---- pieces ------------------------------------------------------------- */

static ilm_status open_loader(ilm_corpus *c, const ilm_trainer *t, uint64_t seed, ilm__loader **out)
{
    ilm__shard *const *shards;
    size_t n;
    ILM__FORWARD(ilm__corpus_shards(c, &shards, &n));
    ilm__loader_config lc = { (int)t->B, (int)t->T, seed, 0, 1 };
    return ilm__loader_create(shards, n, &lc, out);
}

/* Checks the corpus against the model: ids must fit the vocabulary. */
static ilm_status check_corpus(const ilm_corpus *c, const char *dir, int32_t vocab, bool need_mask)
{
    ilm__shard *const *shards;
    size_t n;
    ILM__FORWARD(ilm__corpus_shards(c, &shards, &n));
    ILM__RETURN_IF(n == 0, ILM_ERR_CONFIG, "trainer: the corpus '%s' has no documents", dir);
    for (size_t i = 0; i < n; i++) {
        ILM__RETURN_IF(shards[i]->vocab_size > vocab, ILM_ERR_CONFIG,
                       "trainer: '%s' holds ids up to %d, the model's vocabulary has %d", shards[i]->path,
                       (int)shards[i]->vocab_size - 1, (int)vocab);
        ILM__RETURN_IF(need_mask && !shards[i]->has_mask, ILM_ERR_CONFIG,
                       "trainer: SFT needs chat shards with loss masks; '%s' has none (build the "
                       "corpus from chat records)", shards[i]->path);
    }
    return ILM_OK;
}

/* The tokenizer files of the corpus, to make every checkpoint a model
 * directory that `internlm generate` runs as it is. */
static ilm_status find_tokenizer_files(ilm_trainer *t)
{
    const char *name = ilm__corpus_tokenizer_name(t->data);
    if (!name || !*name) return ILM_OK;
    size_t k = 0;
    struct stat sb;
    if (name[0] != '/') {
        char *p = ilm__asprintf("%s/%s", t->data_dir, name);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "trainer: out of memory");
        t->tok_files[k++] = p;
    } else if (stat(name, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        static const char *const files[] = { "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                             "special_tokens_map.json" };
        for (size_t i = 0; i < 4; i++) {
            char *p = ilm__asprintf("%s/%s", name, files[i]);
            ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "trainer: out of memory");
            if (stat(p, &sb) == 0) t->tok_files[k++] = p;
            else ilm__free(p);
        }
    }
    return ILM_OK;
}

/* The model to start from: the newest checkpoint, the given model, or a
 * new one. */
static ilm_status start_model(ilm_trainer *t, const char *model_config, char **ckpt_path, ilm_model **out)
{
    *ckpt_path = NULL;
    int64_t step = -1;
    if (t->ckpt_dir && t->resume) ILM__FORWARD(ilm__ckpt_latest(t->ckpt_dir, ckpt_path, &step));
    if (*ckpt_path) t->resumed_from = step;
    if (*ckpt_path && !t->lora) return ilm_model_load(*ckpt_path, NULL, out);
    if (t->model_path) return ilm_model_load(t->model_path, NULL, out);
    return ilm__model_create(model_config, t->seed, t->qlora ? &t->q4_opts : NULL, out);
}

/* A whole number in [0, max] at `key` of a checkpoint's trainer state. */
static ilm_status state_count(const cJSON *st, const char *dir, const char *key, double max, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st, key);
    ILM__RETURN_IF(!cJSON_IsNumber(v), ILM_ERR_FORMAT, "trainer: '%s/trainer_state.json' has no number '%s'", dir,
                   key);
    const double d = v->valuedouble;
    ILM__RETURN_IF(!(d >= 0 && d <= max) || d != floor(d), ILM_ERR_FORMAT,
                   "trainer: '%s/trainer_state.json': '%s' is %g; it must be a whole number from 0 to %g", dir, key,
                   d, max);
    *out = (int64_t)d;
    return ILM_OK;
}

static ilm_status restore(ilm_trainer *t, const char *path)
{
    const ilm__params *ps = ilm__graph_params(t->g);
    ILM__FORWARD(ilm__ckpt_read_optim(path, ps, 0, ps->total, t->m, t->v));
    char *text = NULL;
    cJSON *st = NULL;
    ILM__FORWARD(ilm__ckpt_read_state(path, &text));
    ilm_status s = ilm__json_parse(text, "trainer_state.json", &st);
    ilm__free(text);
    ILM__FORWARD(s);
    const cJSON *loader = cJSON_GetObjectItemCaseSensitive(st, "loader");
    char *lstate = NULL;
    int64_t step = 0, seen = 0;
    if (!cJSON_IsObject(loader))
        s = ilm__error(ILM_ERR_FORMAT, "trainer: '%s/trainer_state.json' has no 'loader' object", path);
    /* Counts are checked before they are converted: a double out of range
     * (1e300) has no int64_t value, and a negative step would be blamed on
     * the optimizer later. */
    if (s == ILM_OK) s = state_count(st, path, "step", 1e12, &step);
    if (s == ILM_OK) s = state_count(st, path, "tokens_seen", 9007199254740992.0, &seen);
    if (s == ILM_OK && step != t->resumed_from)
        s = ilm__error(ILM_ERR_FORMAT, "trainer: '%s/trainer_state.json': 'step' is %lld but the checkpoint is "
                       "of step %lld", path, (long long)step, (long long)t->resumed_from);
    if (s == ILM_OK) s = ilm__json_print(loader, &lstate);
    if (s == ILM_OK) s = ilm__loader_restore(t->loader, lstate);
    if (s == ILM_OK) {
        t->step = step;
        t->tokens_seen = (uint64_t)seen;
    }
    ilm__free(lstate);
    cJSON_Delete(st);
    return s;
}

/* LoRA resume: the checkpoint's adapter into the graph's slab.  It must be
 * the adapter the config describes (same modules, rank and scale). */
static ilm_status restore_adapter(ilm_trainer *t, const char *path)
{
    ilm__lora_opts o;
    ilm__params ps;
    float *slab = NULL;
    ILM__FORWARD(ilm__lora_read(path, &t->base->arch, &o, &ps, &slab));
    const ilm__params *gp = ilm__graph_params(t->g);
    ilm_status s = ILM_OK;
    if (o.r != t->lora_opts.r || o.targets != t->lora_opts.targets ||
        o.rslora != t->lora_opts.rslora || o.alpha != t->lora_opts.alpha || ps.total != gp->total)
        s = ilm__error(ILM_ERR_CONFIG,
                       "trainer: the adapter in '%s' (r %lld, alpha %g) is not the one the "
                       "config's 'lora' describes (r %lld, alpha %g, and the same modules)",
                       path, (long long)o.r, o.alpha, (long long)t->lora_opts.r,
                       t->lora_opts.alpha);
    else memcpy(ilm__graph_param_slab(t->g), slab, ps.total * sizeof *slab);
    ilm__free(slab);
    ilm__params_free(&ps);
    return s;
}

/* A LoRA checkpoint's weights: the adapter, as PEFT writes it. */
static ilm_status save_adapter(const char *dir, const void *ctx)
{
    ilm_trainer *t = (ilm_trainer *)ctx;
    return ilm__lora_write(dir, &t->base->arch, &t->lora_opts, ilm__graph_params(t->g),
                           ilm__graph_param_slab(t->g), t->model_path);
}

void ilm_trainer_free(ilm_trainer *t)
{
    if (!t) return;
    ilm__graph_free(t->g);
    ilm_model_free(t->base);
    cJSON_Delete(t->lora_cfg);
    ilm__free(t->m);
    ilm__free(t->v);
    ilm__loader_free(t->loader);
    ilm__loader_free(t->eval_loader);
    ilm_corpus_free(t->data);
    ilm_corpus_free(t->eval);
    for (int64_t i = 0; t->mb && i < t->accum; i++) {
        ilm__free(t->mb[i].tokens);
        ilm__free(t->mb[i].labels);
        ilm__free(t->mb[i].positions);
        ilm__free(t->mb[i].cu_seqlens);
        ilm__free(t->mb[i].n_seqs);
    }
    ilm__free(t->mb);
    for (size_t i = 0; i < 5; i++) ilm__free(t->tok_files[i]);
    ilm__free(t->eval_start);
    ilm__free(t->data_dir);
    ilm__free(t->eval_dir);
    ilm__free(t->ckpt_dir);
    ilm__free(t->log_path);
    ilm__free(t->model_path);
    ilm__free(t);
}

static ilm_status alloc_batches(ilm_trainer *t)
{
    t->mb = ilm__calloc((size_t)t->accum, sizeof *t->mb);
    ILM__RETURN_IF(!t->mb, ILM_ERR_NOMEM, "trainer: out of memory");
    size_t bt = (size_t)(t->B * t->T), cu = (size_t)(t->B * (t->T + 1));
    for (int64_t i = 0; i < t->accum; i++) {
        batch_copy *b = &t->mb[i];
        b->tokens = ilm__malloc(bt * sizeof(int32_t));
        b->labels = ilm__malloc(bt * sizeof(int32_t));
        b->positions = ilm__malloc(bt * sizeof(int32_t));
        b->cu_seqlens = ilm__malloc(cu * sizeof(int32_t));
        b->n_seqs = ilm__malloc((size_t)t->B * sizeof(int32_t));
        ILM__RETURN_IF(!b->tokens || !b->labels || !b->positions || !b->cu_seqlens || !b->n_seqs,
                       ILM_ERR_NOMEM, "trainer: out of memory for %lld micro-batches of %lld x %lld",
                       (long long)t->accum, (long long)t->B, (long long)t->T);
    }
    return ILM_OK;
}

/* Orders a log's lines by step, then by position. */
typedef struct log_line {
    int64_t step;
    size_t  index;
} log_line;

static int by_step(const void *a, const void *b)
{
    const log_line *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* The step of one log line, or -1 when it is not a whole metrics line (a
 * line cut short by a kill). */
static int64_t line_step(const char *p, size_t n)
{
    char *text = ilm__strndup(p, n);
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "step");
    int64_t step = cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= 1e12 ? (int64_t)v->valuedouble : -1;
    cJSON_Delete(o);
    ilm__free(text);
    return step;
}

/* On resume from the checkpoint of step R, the metrics log is made to hold
 * exactly one line for each logged step <= R (the last one written: the
 * history that led to the checkpoint) and none after R, since those steps
 * run again now; lines that do not parse (cut by a kill) go too.  A log
 * that already is so is not rewritten; otherwise it is rewritten
 * atomically. */
static ilm_status trim_log(const ilm_trainer *t)
{
    if (!t->log_path) return ILM_OK;
    struct stat sb;
    if (stat(t->log_path, &sb) != 0 && errno == ENOENT) return ILM_OK;
    ilm__mmap m;
    ILM__FORWARD(ilm__mmap_open(t->log_path, &m));
    const char *text = (const char *)m.data;
    size_t n_lines = 0;
    for (size_t i = 0; i < m.size; i++) n_lines += text[i] == '\n';
    if (m.size && text[m.size - 1] != '\n') n_lines++;
    log_line *lines = ilm__calloc(n_lines + 1, sizeof *lines);
    size_t *start = ilm__calloc(n_lines + 2, sizeof *start);
    bool *keep = ilm__calloc(n_lines + 1, sizeof *keep);
    ilm_status s = !lines || !start || !keep ? ilm__error(ILM_ERR_NOMEM, "trainer: out of memory") : ILM_OK;
    size_t k = 0;
    for (size_t i = 0; s == ILM_OK && i < m.size; k++) {
        const char *nl = memchr(text + i, '\n', m.size - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : m.size;
        start[k] = i;
        lines[k] = (log_line){ nl ? line_step(text + i, end - i - 1) : -1, k };
        i = end;
    }
    if (s == ILM_OK) start[k] = m.size;
    bool change = false;
    if (s == ILM_OK) {
        qsort(lines, k, sizeof *lines, by_step);
        for (size_t i = 0; i < k; i++) {
            const bool last = i + 1 == k || lines[i + 1].step != lines[i].step;
            keep[lines[i].index] = lines[i].step >= 1 && lines[i].step <= t->step && last;
            change = change || !keep[lines[i].index];
        }
    }
    if (s == ILM_OK && change) {
        ilm__buf out = { 0 };
        for (size_t i = 0; s == ILM_OK && i < k; i++)
            if (keep[i]) s = ilm__buf_append(&out, text + start[i], start[i + 1] - start[i]);
        if (s == ILM_OK) s = ilm__atomic_write_buf(t->log_path, out.n ? out.p : "", out.n);
        ilm__buf_free(&out);
        if (s == ILM_OK)
            ilm__log(ILM_LOG_INFO, "trainer: the log '%s' now ends at step %lld, the checkpoint's", t->log_path,
                     (long long)t->step);
    }
    ilm__free(lines);
    ilm__free(start);
    ilm__free(keep);
    ilm__mmap_close(&m);
    return s;
}

ilm_status ilm_trainer_create(const char *config, ilm_trainer **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_trainer_create: out is NULL");
    *out = NULL;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "config", &root));
    ilm_trainer *t = ilm__calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
    }
    t->resumed_from = -1;
    char *mcfg = NULL, *ckpt = NULL;
    ilm_model *m = NULL;
    ilm_status s = parse(t, root, &mcfg);
    cJSON_Delete(root);
    if (s == ILM_OK) s = ilm_corpus_open(t->data_dir, &t->data);
    if (s == ILM_OK && t->eval_dir) s = ilm_corpus_open(t->eval_dir, &t->eval);
    if (s == ILM_OK) s = start_model(t, mcfg, &ckpt, &m);
    if (s == ILM_OK && t->qlora) s = ilm__model_quantize_q4(m, &t->q4_opts);
    if (s == ILM_OK && t->lora) {
        ilm__lora_opts_default(&t->lora_opts);
        t->lora_opts.seed = t->seed;
        s = ilm__lora_opts_parse(t->lora_cfg, t->qlora ? "qlora" : "lora", &m->arch, &t->lora_opts);
    }
    if (s == ILM_OK) {
        const ilm__graph_opts go = { t->recompute, t->threads, t->lora ? &t->lora_opts : NULL };
        s = ilm__graph_create(m, &go, &t->g);
    }
    if (t->lora) t->base = m; /* the graph reads it in place */
    else ilm_model_free(m);
    if (s == ILM_OK && t->lora && ckpt) s = restore_adapter(t, ckpt);
    const ilm__params *ps = s == ILM_OK ? ilm__graph_params(t->g) : NULL;
    int32_t vocab = s == ILM_OK ? ilm__graph_model(t->g)->arch.vocab_size : 0;
    if (s == ILM_OK) s = check_corpus(t->data, t->data_dir, vocab, t->sft);
    if (s == ILM_OK && t->eval) s = check_corpus(t->eval, t->eval_dir, vocab, t->sft);
    if (s == ILM_OK) {
        t->m = ilm__calloc(ps->total, sizeof *t->m);
        t->v = ilm__calloc(ps->total, sizeof *t->v);
        if (!t->m || !t->v) s = ilm__error(ILM_ERR_NOMEM, "trainer: out of memory for AdamW state");
    }
    if (s == ILM_OK) s = open_loader(t->data, t, t->seed, &t->loader);
    if (s == ILM_OK && t->eval) s = open_loader(t->eval, t, t->seed ^ 0x5eed5eedull, &t->eval_loader);
    if (s == ILM_OK && t->eval) s = ilm__loader_state(t->eval_loader, &t->eval_start);
    if (s == ILM_OK) s = alloc_batches(t);
    if (s == ILM_OK) s = find_tokenizer_files(t);
    if (s == ILM_OK && ckpt) s = restore(t, ckpt);
    if (s == ILM_OK && ckpt) s = trim_log(t);
    if (s == ILM_OK && ckpt)
        ilm__log(ILM_LOG_INFO, "trainer: resumed from '%s' (step %lld)", ckpt, (long long)t->step);
    ilm__free(ckpt);
    ilm__free(mcfg);
    if (s != ILM_OK) {
        ilm_trainer_free(t);
        return s;
    }
    *out = t;
    return ILM_OK;
}

/* ---- steps -------------------------------------------------------------- */

static void copy_batch(batch_copy *d, const ilm__batch *b, int64_t B, int64_t T)
{
    size_t bt = (size_t)(B * T) * sizeof(int32_t);
    memcpy(d->tokens, b->tokens, bt);
    memcpy(d->labels, b->labels, bt);
    memcpy(d->positions, b->positions, bt);
    memcpy(d->cu_seqlens, b->cu_seqlens, (size_t)(B * (T + 1)) * sizeof(int32_t));
    memcpy(d->n_seqs, b->n_seqs, (size_t)B * sizeof(int32_t));
}

ilm_status ilm_trainer_evaluate(ilm_trainer *t, double *loss)
{
    ILM__RETURN_IF(!t || !loss, ILM_ERR_INVALID_ARG, "ilm_trainer_evaluate: NULL argument");
    ILM__RETURN_IF(!t->eval_loader, ILM_ERR_CONFIG, "trainer: no 'eval_data' in the config");
    /* The same held-out batches every time. */
    ILM__FORWARD(ilm__loader_restore(t->eval_loader, t->eval_start));
    double sum = 0;
    int64_t n = 0;
    for (int64_t i = 0; i < t->eval_batches; i++) {
        const ilm__batch *b;
        double ls;
        int64_t nt;
        ILM__FORWARD(ilm__loader_next(t->eval_loader, &b));
        ILM__FORWARD(ilm__graph_forward(t->g, b->tokens, b->labels, b->positions, b->cu_seqlens, b->n_seqs,
                                       t->B, t->T, &ls, &nt));
        sum += ls;
        n += nt;
    }
    *loss = n ? sum / (double)n : NAN;
    return ILM_OK;
}

static ilm_status state_json(const ilm_trainer *t, char **out)
{
    char *loader = NULL;
    ILM__FORWARD(ilm__loader_state(t->loader, &loader));
    cJSON *l = cJSON_Parse(loader), *o = cJSON_CreateObject();
    ilm__free(loader);
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)t->seed);
    ilm_status s = ILM_OK;
    if (!l || !o || !cJSON_AddNumberToObject(o, "version", 1) ||
        !cJSON_AddNumberToObject(o, "step", (double)t->step) ||
        !cJSON_AddNumberToObject(o, "tokens_seen", (double)t->tokens_seen) ||
        !cJSON_AddStringToObject(o, "seed", seed) ||
        !cJSON_AddNumberToObject(o, "lr", ilm__optim_lr(&t->opt, t->step)) ||
        !cJSON_AddItemToObject(o, "loader", l)) {
        if (l && !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "loader"))) cJSON_Delete(l);
        s = ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
    }
    if (s == ILM_OK) s = ilm__json_print(o, out);
    cJSON_Delete(o);
    return s;
}

ilm_status ilm_trainer_checkpoint(ilm_trainer *t, char **path)
{
    ILM__RETURN_IF(!t, ILM_ERR_INVALID_ARG, "ilm_trainer_checkpoint: NULL argument");
    if (path) *path = NULL;
    ILM__RETURN_IF(!t->ckpt_dir, ILM_ERR_CONFIG, "trainer: no 'checkpoint_dir' in the config");
    const ilm__params *ps = ilm__graph_params(t->g);
    char *state = NULL;
    ILM__FORWARD(state_json(t, &state));
    ilm_status s = t->lora ? ilm__ckpt_write(t->ckpt_dir, t->step, (int)t->keep, save_adapter, t,
                                             ps, 0, ps->total, t->m, t->v, state,
                                             (const char *const *)t->tok_files)
                           : ilm__ckpt_write(t->ckpt_dir, t->step, (int)t->keep,
                                             ilm__ckpt_save_model, ilm__graph_model(t->g), ps, 0,
                                             ps->total, t->m, t->v, state,
                                             (const char *const *)t->tok_files);
    ilm__free(state);
    if (s == ILM_OK && path) {
        *path = ilm__asprintf("%s/step-%08lld", t->ckpt_dir, (long long)t->step);
        if (!*path) s = ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
    }
    return s;
}

static ilm_status append_log(const ilm_trainer *t, const char *line)
{
    if (!t->log_path) return ILM_OK;
    /* The log may live in the checkpoint directory, made at the first
     * checkpoint: make its directory (one level) now. */
    const char *slash = strrchr(t->log_path, '/');
    if (slash && slash != t->log_path) {
        char *dir = ilm__asprintf("%.*s", (int)(slash - t->log_path), t->log_path);
        ILM__RETURN_IF(!dir, ILM_ERR_NOMEM, "trainer: out of memory");
        int rc = mkdir(dir, 0777);
        int err = errno;
        ilm__free(dir);
        ILM__RETURN_IF(rc != 0 && err != EEXIST, ILM_ERR_IO, "trainer: cannot create the directory of '%s': %s",
                       t->log_path, strerror(err));
    }
    FILE *f = fopen(t->log_path, "a");
    ILM__RETURN_IF(!f, ILM_ERR_IO, "trainer: cannot open the log '%s': %s", t->log_path, strerror(errno));
    bool ok = fputs(line, f) >= 0 && fputc('\n', f) != EOF;
    ok = (fclose(f) == 0) && ok;
    ILM__RETURN_IF(!ok, ILM_ERR_IO, "trainer: cannot write the log '%s'", t->log_path);
    return ILM_OK;
}

ilm_status ilm_trainer_step(ilm_trainer *t, char **metrics)
{
    ILM__RETURN_IF(!t, ILM_ERR_INVALID_ARG, "ilm_trainer_step: NULL argument");
    if (metrics) *metrics = NULL;
    /* A step past the end would be logged and checkpointed as part of the
     * run and prune its real last checkpoint. */
    ILM__RETURN_IF(t->step >= t->steps, ILM_ERR_RANGE,
                   "trainer: the run is finished: %lld of %lld steps are done (raise \"steps\" to train on)",
                   (long long)t->step, (long long)t->steps);
    const double t0 = ilm__now();
    const ilm__params *ps = ilm__graph_params(t->g);
    int64_t targets = 0;
    for (int64_t i = 0; i < t->accum; i++) {
        const ilm__batch *b;
        ILM__FORWARD(ilm__loader_next(t->loader, &b));
        copy_batch(&t->mb[i], b, t->B, t->T);
        for (int64_t k = 0; k < t->B * t->T; k++) targets += b->labels[k] != ILM__IGNORE;
    }
    /* Gradients accumulate over the micro-batches and are zeroed after the
     * update, and on every failure too: a failed step leaves nothing
     * behind for the next one, and the step count only moves on success. */
    double loss_sum = 0;
    const float scale = targets ? 1.0f / (float)targets : 0.0f;
    ilm_status st = ILM_OK;
    for (int64_t i = 0; st == ILM_OK && i < t->accum; i++) {
        const batch_copy *b = &t->mb[i];
        double ls = 0;
        int64_t nt;
        ilm__graph_set_dropout_key(t->g, (uint64_t)(t->step * t->accum + i));
        st = ilm__graph_forward_backward(t->g, b->tokens, b->labels, b->positions, b->cu_seqlens,
                                         b->n_seqs, t->B, t->T, scale, &ls, &nt);
        loss_sum += ls;
    }
    const ilm__backend *be = ilm__graph_backend(t->g);
    const int64_t step = t->step + 1;
    float *grad = ilm__graph_grad_slab(t->g);
    const double norm = st == ILM_OK ? sqrt(ilm__optim_sqnorm(be, grad, ps->total)) : NAN;
    const double lr = ilm__optim_lr(&t->opt, step);
    const float coef = ilm__optim_clip_coef(&t->opt, norm);
    const double loss = targets ? loss_sum / (double)targets : NAN;
    const bool skip = !isfinite(norm) || !isfinite(loss);
    if (st == ILM_OK && skip)
        ilm__log(ILM_LOG_WARN, "trainer: step %lld skipped: the loss (%g) or gradient norm (%g) is not finite",
                 (long long)step, loss, norm);
    else if (st == ILM_OK)
        st = ilm__adamw_step(be, &t->opt, ps, 0, ps->total, step, lr, coef,
                             ilm__graph_param_slab(t->g), grad, t->m, t->v);
    ilm__graph_zero_grad(t->g);
    ILM__FORWARD(st);
    t->step = step;
    t->tokens_seen += (uint64_t)(t->accum * t->B * t->T);
    const double secs = ilm__now() - t0;

    cJSON *o = cJSON_CreateObject();
    ILM__RETURN_IF(!o, ILM_ERR_NOMEM, "trainer: out of memory");
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    cJSON_AddNumberToObject(o, "steps", (double)t->steps);
    if (isfinite(loss)) cJSON_AddNumberToObject(o, "loss", loss);
    else cJSON_AddNullToObject(o, "loss");
    cJSON_AddNumberToObject(o, "lr", lr);
    if (isfinite(norm)) cJSON_AddNumberToObject(o, "grad_norm", norm);
    else cJSON_AddNullToObject(o, "grad_norm");
    cJSON_AddBoolToObject(o, "skipped", skip);
    cJSON_AddNumberToObject(o, "targets", (double)targets);
    cJSON_AddNumberToObject(o, "tokens_seen", (double)t->tokens_seen);
    cJSON_AddNumberToObject(o, "seconds", secs);
    cJSON_AddNumberToObject(o, "tokens_per_s", secs > 0 ? (double)(t->accum * t->B * t->T) / secs : 0);
    ilm_status s = ILM_OK;
    if (t->eval_loader && t->eval_interval && (t->step % t->eval_interval == 0 || t->step == t->steps)) {
        double el;
        s = ilm_trainer_evaluate(t, &el);
        if (s == ILM_OK) cJSON_AddNumberToObject(o, "eval_loss", el);
    }
    /* The step's line goes to the log before its checkpoint is written: a
     * run killed once the checkpoint is complete has logged the step, and a
     * run killed before resumes from an earlier checkpoint, whose resume
     * drops the lines after it (trim_log).  So every step up to the
     * resumed one has exactly one line. */
    const bool ckpt_due = t->ckpt_dir && ((t->ckpt_interval && t->step % t->ckpt_interval == 0) ||
                                          t->step == t->steps);
    if (s == ILM_OK && ckpt_due) {
        char *path = ilm__asprintf("%s/step-%08lld", t->ckpt_dir, (long long)t->step);
        if (!path || !cJSON_AddStringToObject(o, "checkpoint", path)) s = ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
        ilm__free(path);
    }
    char *line = NULL;
    if (s == ILM_OK) s = ilm__json_print(o, &line);
    cJSON_Delete(o);
    if (s == ILM_OK) s = append_log(t, line);
    if (s == ILM_OK && ckpt_due) s = ilm_trainer_checkpoint(t, NULL);
    if (s == ILM_OK && metrics) *metrics = line;
    else ilm__free(line);
    return s;
}

int64_t ilm_trainer_steps_done(const ilm_trainer *t) { return t ? t->step : 0; }

const ilm_model *ilm_trainer_model(const ilm_trainer *t) { return t ? ilm__graph_model(t->g) : NULL; }

ilm_status ilm_trainer_run(ilm_trainer *t, ilm_progress_fn progress, void *user)
{
    ILM__RETURN_IF(!t, ILM_ERR_INVALID_ARG, "ilm_trainer_run: NULL argument");
    while (t->step < t->steps) {
        ILM__FORWARD(ilm_trainer_step(t, NULL));
        if (progress && progress(user, "train", (uint64_t)t->step, (uint64_t)t->steps))
            return ilm__error(ILM_ERR_CANCELLED, "trainer: cancelled at step %lld", (long long)t->step);
    }
    return ILM_OK;
}

ilm_status ilm_trainer_info(const ilm_trainer *t, char **json)
{
    ILM__RETURN_IF(!t || !json, ILM_ERR_INVALID_ARG, "ilm_trainer_info: NULL argument");
    *json = NULL;
    const ilm__params *ps = ilm__graph_params(t->g);
    uint64_t params = 0;
    for (size_t i = 0; i < ps->n; i++) params += ps->p[i].numel;
    const uint64_t slab = (uint64_t)ps->total * sizeof(float);
    cJSON *o = cJSON_CreateObject(), *mem = o ? cJSON_AddObjectToObject(o, "memory") : NULL;
    ILM__RETURN_IF(!mem, (cJSON_Delete(o), ILM_ERR_NOMEM), "trainer: out of memory");
    cJSON_AddNumberToObject(o, "parameters", (double)params);
    cJSON_AddStringToObject(o, "method", t->qlora ? "qlora" : t->lora ? "lora" : "full");
    if (t->base) {
        cJSON_AddStringToObject(o, "base_type", ilm__dtype_name(t->base->layers[0].w_up.type));
        cJSON_AddNumberToObject(mem, "base", (double)ilm_model_memory(t->base));
    }
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    cJSON_AddNumberToObject(o, "steps", (double)t->steps);
    cJSON_AddNumberToObject(o, "resumed_from", (double)t->resumed_from);
    cJSON_AddNumberToObject(o, "batch", (double)t->B);
    cJSON_AddNumberToObject(o, "seqlen", (double)t->T);
    cJSON_AddNumberToObject(o, "grad_accum", (double)t->accum);
    cJSON_AddNumberToObject(o, "tokens_per_step", (double)(t->B * t->T * t->accum));
    cJSON_AddNumberToObject(o, "threads", t->threads > 0 ? t->threads : ilm__num_threads());
    cJSON_AddNumberToObject(mem, "parameters", (double)slab);
    cJSON_AddNumberToObject(mem, "gradients", (double)slab);
    cJSON_AddNumberToObject(mem, "optimizer", 2.0 * (double)slab);
    cJSON_AddNumberToObject(mem, "activations", (double)ilm__graph_activation_bytes(t->g, t->B, t->T));
    cJSON_AddNumberToObject(mem, "batches", (double)(t->accum * (5 * t->B * t->T + 2 * t->B)) * 4.0);
    ilm_status s = ilm__json_print(o, json);
    cJSON_Delete(o);
    return s;
}

/* ---- the memory plan ----------------------------------------------------- */

/* Adds `bytes` under the type's name in `by` (the base's bytes by type). */
static void add_bytes(cJSON *by, uint32_t type, double bytes)
{
    const char *name = ilm__dtype_name(type);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(by, name);
    if (v) cJSON_SetNumberValue(v, v->valuedouble + bytes);
    else cJSON_AddNumberToObject(by, name, bytes);
}

/* One weight of the base as the run will hold it: a layer's linear under
 * QLoRA in 4 bits, otherwise as stored (w; NULL for a model not made yet:
 * fp32, or bf16 for the embedding and head of a 4-bit base). */
static double plan_weight(const ilm_trainer *t, cJSON *by, const ilm__weight *w, int64_t rows,
                          int64_t cols, bool linear)
{
    uint32_t type = t->qlora && !linear ? ILM__DTYPE_BF16 : ILM__DTYPE_F32;
    double bytes;
    if (t->qlora && linear) {
        type = t->q4_opts.kind == ILM__Q4_FP4 ? ILM__DTYPE_FP4 : ILM__DTYPE_NF4;
        bytes = (double)ilm__q4_bytes(rows * cols, &t->q4_opts);
    } else if (w) {
        type = w->type;
        bytes = (double)ilm__weight_bytes(w);
    } else {
        bytes = (double)(rows * cols) * (type == ILM__DTYPE_BF16 ? 2 : 4);
    }
    add_bytes(by, type, bytes);
    return bytes;
}

/* The base's weights by type (norms fp32), for LoRA / QLoRA runs. */
static double plan_base(const ilm_trainer *t, const ilm__arch *a, const ilm_model *m, cJSON *by)
{
    const int64_t V = a->vocab_size, C = a->hidden_size;
    double total = plan_weight(t, by, m ? &m->tok_embd : NULL, V, C, false);
    if (!a->tie_embeddings) total += plan_weight(t, by, m ? &m->output : NULL, V, C, false);
    double norms = (double)C * 4 * (double)(2 * a->n_layers + 1);
    add_bytes(by, ILM__DTYPE_F32, norms);
    total += norms;
    for (int64_t l = 0; l < a->n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            if (lt->norm || !ilm__layer_name(a, lt)) continue;
            const ilm__weight *w =
                m ? (const ilm__weight *)((const uint8_t *)&m->layers[l] + lt->field) : NULL;
            total += plan_weight(t, by, w, ilm__layer_size(a, lt->rows), ilm__layer_size(a, lt->cols),
                                 true);
        }
    return total;
}

static ilm_status plan(ilm_trainer *t, const char *mcfg, cJSON *o)
{
    ilm_model *m = NULL;
    ilm__arch a;
    /* A model named is mapped, not read: its header and types are enough. */
    if (t->model_path) ILM__FORWARD(ilm_model_load(t->model_path, NULL, &m));
    ilm_status s = m ? ILM_OK : ilm__arch_from_hf_config(mcfg, strlen(mcfg), "model_config", &a);
    if (m) a = m->arch;
    if (s == ILM_OK && t->lora) {
        ilm__lora_opts_default(&t->lora_opts);
        t->lora_opts.seed = t->seed;
        s = ilm__lora_opts_parse(t->lora_cfg, t->qlora ? "qlora" : "lora", &a, &t->lora_opts);
    }
    ilm__params ps = { 0 };
    if (s == ILM_OK) s = t->lora ? ilm__lora_layout(&a, &t->lora_opts, &ps) : ilm__params_layout(&a, &ps);
    if (s != ILM_OK) {
        ilm_model_free(m);
        return s;
    }
    uint64_t params = 0;
    for (size_t i = 0; i < ps.n; i++) params += ps.p[i].numel;
    const double slab = (double)ps.total * sizeof(float);
    ilm__params_free(&ps);
    const ilm__lora_opts *lo = t->lora ? &t->lora_opts : NULL;
    const double act_on = (double)ilm__graph_plan_activation_bytes(&a, lo, true, t->B, t->T),
                 act_off = (double)ilm__graph_plan_activation_bytes(&a, lo, false, t->B, t->T),
                 batches = (double)(t->accum * (5 * t->B * t->T + 2 * t->B)) * 4.0;
    cJSON_AddStringToObject(o, "method", t->qlora ? "qlora" : t->lora ? "lora" : "full");
    cJSON_AddNumberToObject(o, "trainable_parameters", (double)params);
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    /* Full training copies the model into the fp32 parameter slab and
     * frees it; LoRA keeps the base beside the adapter. */
    double base = 0;
    if (t->lora) base = plan_base(t, &a, m, cJSON_AddObjectToObject(mem, "base_by_type"));
    cJSON_AddNumberToObject(mem, "base", base);
    cJSON_AddNumberToObject(mem, "parameters", slab);
    cJSON_AddNumberToObject(mem, "gradients", slab);
    cJSON_AddNumberToObject(mem, "optimizer", 2 * slab);
    cJSON_AddNumberToObject(mem, "activations", t->recompute ? act_on : act_off);
    cJSON_AddNumberToObject(mem, "activations_recompute", act_on);
    cJSON_AddNumberToObject(mem, "activations_no_recompute", act_off);
    cJSON_AddNumberToObject(mem, "batches", batches);
    cJSON_AddNumberToObject(mem, "total", base + 4 * slab + (t->recompute ? act_on : act_off) + batches);
    /* What a session over the trained model needs per token of context. */
    cJSON_AddNumberToObject(mem, "kv_cache_per_token",
                            2.0 * a.n_layers * a.n_kv_heads * a.head_dim * sizeof(float));
    ilm_model_free(m);
    return cJSON_IsObject(mem) ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
}

ilm_status ilm_trainer_plan(const char *config, char **json)
{
    ILM__RETURN_IF(!json, ILM_ERR_INVALID_ARG, "ilm_trainer_plan: json is NULL");
    *json = NULL;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "config", &root));
    ilm_trainer *t = ilm__calloc(1, sizeof *t);
    cJSON *o = cJSON_CreateObject();
    char *mcfg = NULL;
    ilm_status s = t && o ? parse(t, root, &mcfg) : ilm__error(ILM_ERR_NOMEM, "trainer: out of memory");
    cJSON_Delete(root);
    if (s == ILM_OK) s = plan(t, mcfg, o);
    if (s == ILM_OK) s = ilm__json_print(o, json);
    cJSON_Delete(o);
    ilm__free(mcfg);
    ilm_trainer_free(t);
    return s;
}
