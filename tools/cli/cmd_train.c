/* `internlm pretrain` and `internlm sft`: a training run from a JSON config,
 * with a progress line, a metrics log and a loss plot at the end. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char train_help[] =
    "usage: internlm %s --config FILE [--plot FILE]\n"
    "\n"
    "%s\n"
    "\n"
    "The config (JSON; keys in docs/training.md): \"data\" (a corpus directory from\n"
    "`internlm corpus build`), %s, \"steps\", \"batch\",\n"
    "\"seqlen\", \"grad_accum\", \"optimizer\" {lr, min_lr, warmup_steps, schedule,\n"
    "weight_decay, clip_norm, ...}, \"eval_data\", \"eval_interval\", \"checkpoint_dir\",\n"
    "\"checkpoint_interval\", \"keep_checkpoints\", \"resume\", \"recompute\", \"log\"\n"
    "(metrics JSONL), \"seed\", \"threads\", \"lora\" {r, alpha, dropout, rslora,\n"
    "target_modules} (train a LoRA adapter on the frozen \"model\", which may be\n"
    "quantized; checkpoints hold the adapter as PEFT writes it; docs/finetune.md).\n"
    "A run with a checkpoint_dir resumes from\n"
    "its newest complete checkpoint.  The loss curve is written as SVG to --plot\n"
    "(default: loss.svg beside the log, or in the checkpoint directory).\n";

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void fmt_time(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60) snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else snprintf(buf, n, "%.0fs", s);
}

typedef struct curve {
    double *x, *y, *ex, *ey;
    size_t  n, en, cap, ecap;
} curve;

static void curve_add(double **x, double **y, size_t *n, size_t *cap, double a, double b)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        *x = realloc(*x, *cap * sizeof **x);
        *y = realloc(*y, *cap * sizeof **y);
        if (!*x || !*y) exit(CLI_ERROR);
    }
    (*x)[*n] = a;
    (*y)[(*n)++] = b;
}

static void curve_metrics(curve *c, const cJSON *m)
{
    double step = num(m, "step"), loss = num(m, "loss"), ev = num(m, "eval_loss");
    if (isfinite(loss)) curve_add(&c->x, &c->y, &c->n, &c->cap, step, loss);
    if (isfinite(ev)) curve_add(&c->ex, &c->ey, &c->en, &c->ecap, step, ev);
}

/* The whole history from the metrics log (a resumed run appends to it). */
static void curve_from_log(curve *c, const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    c->n = c->en = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *m = cJSON_Parse(line);
        if (m) curve_metrics(c, m);
        cJSON_Delete(m);
    }
    free(line);
    fclose(f);
}

static int train(const char *cmd, const char *mode, int argc, char **argv)
{
    const char *config = NULL, *plot = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            bool sft = !strcmp(mode, "sft");
            printf(train_help, cmd,
                   sft ? "Full-parameter supervised fine-tuning on chat shards (loss on assistant\n"
                         "turns only, as the corpus's masks say)."
                       : "Pretraining: a new model from \"model_config\" (a config.json object), or\n"
                         "continued pretraining of \"model\" (a model directory).",
                   sft ? "\"model\" (the model directory to fine-tune)" : "\"model_config\" or \"model\"");
            return CLI_OK;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--plot") && i + 1 < argc) plot = argv[++i];
        else return cli_usage_error(cmd, "unknown or incomplete option '%s'", argv[i]);
    }
    if (!config) return cli_usage_error(cmd, "--config FILE is required");
    FILE *f = fopen(config, "rb");
    if (!f) {
        fprintf(stderr, "internlm %s: cannot open '%s': %s\n", cmd, config, strerror(errno));
        return CLI_ERROR;
    }
    size_t len;
    char *text = cli_read_all(f, &len);
    fclose(f);
    cJSON *cfg = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        fprintf(stderr, "internlm %s: '%s' is not a JSON object\n", cmd, config);
        return CLI_ERROR;
    }
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(cfg, "mode");
    if (given && (!cJSON_IsString(given) || strcmp(given->valuestring, mode))) {
        /* The message quotes the config: print it before the config is freed. */
        const bool known = cJSON_IsString(given) &&
                           (!strcmp(given->valuestring, "pretrain") || !strcmp(given->valuestring, "sft"));
        int rc = known ? cli_usage_error(cmd, "'%s' says \"mode\": \"%s\"; use `internlm %s`", config,
                                         given->valuestring, given->valuestring)
                       : cli_usage_error(cmd, "'%s': \"mode\" must be \"%s\" for `internlm %s`", config,
                                         mode, cmd);
        cJSON_Delete(cfg);
        return rc;
    }
    if (!given) cJSON_AddStringToObject(cfg, "mode", mode);
    char log_buf[4096] = "", plot_buf[4096];
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(cfg, "log");
    const cJSON *ck = cJSON_GetObjectItemCaseSensitive(cfg, "checkpoint_dir");
    if (cJSON_IsString(log)) snprintf(log_buf, sizeof log_buf, "%s", log->valuestring);
    if (!plot) {
        if (*log_buf) {
            snprintf(plot_buf, sizeof plot_buf, "%s", log_buf);
            char *slash = strrchr(plot_buf, '/');
            snprintf(slash ? slash + 1 : plot_buf, sizeof plot_buf - (size_t)(slash ? slash + 1 - plot_buf : 0),
                     "loss.svg");
        } else if (cJSON_IsString(ck)) {
            snprintf(plot_buf, sizeof plot_buf, "%s/loss.svg", ck->valuestring);
        } else {
            snprintf(plot_buf, sizeof plot_buf, "loss.svg");
        }
        plot = plot_buf;
    }
    char *cfg_text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    ilm_trainer *t = NULL;
    ilm_status s = ilm_trainer_create(cfg_text, &t);
    cJSON_free(cfg_text);
    if (s != ILM_OK) return cli_fail(s);

    char *info = NULL;
    double steps = NAN;
    if (ilm_trainer_info(t, &info) == ILM_OK) {
        cJSON *i = cJSON_Parse(info);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(i, "memory");
        double resumed = num(i, "resumed_from");
        steps = num(i, "steps");
        printf("%s: %.2fM parameters, %g tokens per step (%g x %g x %g), %g threads\n", cmd,
               num(i, "parameters") / 1e6, num(i, "tokens_per_step"), num(i, "batch"), num(i, "seqlen"),
               num(i, "grad_accum"), num(i, "threads"));
        printf("memory: parameters %.1f MB, gradients %.1f MB, optimizer %.1f MB, activations %.1f MB\n",
               num(m, "parameters") / 1e6, num(m, "gradients") / 1e6, num(m, "optimizer") / 1e6,
               num(m, "activations") / 1e6);
        if (resumed >= 0) printf("resumed from the checkpoint of step %.0f\n", resumed);
        fflush(stdout);
        cJSON_Delete(i);
        ilm_free(info);
    }
    /* A finished run (resumed from its last checkpoint) does nothing: no
     * step, no log line, no checkpoint, no plot. */
    if ((double)ilm_trainer_steps_done(t) >= steps) {
        printf("%s: the run is already finished (%lld of %.0f steps done); nothing to do (raise \"steps\" in "
               "'%s' to train on)\n", cmd, (long long)ilm_trainer_steps_done(t), steps, config);
        ilm_trainer_free(t);
        return CLI_OK;
    }
    curve c = { 0 };
    const bool tty = isatty(STDOUT_FILENO);
    double elapsed = 0;
    int64_t first = ilm_trainer_steps_done(t), total = 0;
    for (;;) {
        char *mj = NULL;
        if (total && ilm_trainer_steps_done(t) >= total) break;
        s = ilm_trainer_step(t, &mj);
        if (s != ILM_OK) break;
        cJSON *m = cJSON_Parse(mj);
        ilm_free(mj);
        total = (int64_t)num(m, "steps");
        int64_t step = (int64_t)num(m, "step");
        elapsed += num(m, "seconds");
        double eta = elapsed / (double)(step - first) * (double)(total - step);
        char eta_s[32];
        fmt_time(eta, eta_s, sizeof eta_s);
        curve_metrics(&c, m);
        printf("%sstep %lld/%lld  loss %.4f  lr %.2e  grad norm %.3f  %.0f tok/s  ETA %s%s", tty ? "\r" : "",
               (long long)step, (long long)total, num(m, "loss"), num(m, "lr"), num(m, "grad_norm"),
               num(m, "tokens_per_s"), eta_s, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "skipped"))
                                                  ? "  (skipped: non-finite)" : "");
        bool event = isfinite(num(m, "eval_loss")) || cJSON_GetObjectItemCaseSensitive(m, "checkpoint");
        if (!tty || event || step == total) printf("\n");
        if (isfinite(num(m, "eval_loss"))) printf("  eval loss %.4f\n", num(m, "eval_loss"));
        const cJSON *cp = cJSON_GetObjectItemCaseSensitive(m, "checkpoint");
        if (cJSON_IsString(cp)) printf("  checkpoint %s\n", cp->valuestring);
        fflush(stdout);
        cJSON_Delete(m);
    }
    if (s == ILM_OK) {
        if (*log_buf) curve_from_log(&c, log_buf);
        cli_series series[2] = { { "train loss", c.x, c.y, c.n }, { "eval loss", c.ex, c.ey, c.en } };
        if (cli_plot_svg(plot, "loss", series, c.en ? 2 : 1) == 0) printf("loss curve: %s\n", plot);
        else fprintf(stderr, "internlm %s: could not write the plot '%s'\n", cmd, plot);
    }
    free(c.x), free(c.y), free(c.ex), free(c.ey);
    ilm_trainer_free(t);
    return s == ILM_OK ? CLI_OK : cli_fail(s);
}

int cmd_pretrain(int argc, char **argv) { return train("pretrain", "pretrain", argc, argv); }

int cmd_sft(int argc, char **argv) { return train("sft", "sft", argc, argv); }

static const char plan_help[] =
    "usage: internlm plan --config FILE [--json]\n"
    "\n"
    "The memory a training run of FILE (an `internlm pretrain` / `sft` config:\n"
    "full training, \"lora\" or \"qlora\") will take, without running it: the\n"
    "frozen base by weight type, the trainable parameters, their gradients and\n"
    "AdamW state, the activations with and without recompute, the batches, and\n"
    "the KV cache a session over the model needs per token.\n";

int cmd_plan(int argc, char **argv)
{
    const char *config = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(plan_help, stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = true;
        else return cli_usage_error("plan", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!config) return cli_usage_error("plan", "--config FILE is required");
    FILE *f = fopen(config, "rb");
    if (!f) {
        fprintf(stderr, "internlm plan: cannot open '%s': %s\n", config, strerror(errno));
        return CLI_ERROR;
    }
    size_t len;
    char *text = cli_read_all(f, &len);
    fclose(f);
    char *out = NULL;
    ilm_status st = text ? ilm_trainer_plan(text, &out) : ILM_ERR_NOMEM;
    free(text);
    if (st != ILM_OK) return cli_fail(st);
    cJSON *o = cJSON_Parse(out);
    if (json || !o) {
        printf("%s\n", out);
    } else {
        const cJSON *mem = cJSON_GetObjectItem(o, "memory"), *by = cJSON_GetObjectItem(mem, "base_by_type");
        const double MB = 1 << 20;
        printf("%s: %.2fM trainable parameters\n", cJSON_GetObjectItem(o, "method")->valuestring,
               num(o, "trainable_parameters") / 1e6);
        printf("  %-28s %10.1f MB\n", "base (frozen)", num(mem, "base") / MB);
        for (const cJSON *b = by ? by->child : NULL; b; b = b->next)
            printf("    %-26s %10.1f MB\n", b->string, b->valuedouble / MB);
        static const char *const rows[][2] = {
            { "parameters", "parameters" },   { "gradients", "gradients" },
            { "optimizer", "optimizer (AdamW m, v)" }, { "activations", "activations" },
            { "batches", "batches" },
        };
        for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
            printf("  %-28s %10.1f MB\n", rows[i][1], num(mem, rows[i][0]) / MB);
        printf("    %-26s %10.1f MB\n", "with recompute", num(mem, "activations_recompute") / MB);
        printf("    %-26s %10.1f MB\n", "without recompute", num(mem, "activations_no_recompute") / MB);
        printf("  %-28s %10.1f MB\n", "total", num(mem, "total") / MB);
        printf("  %-28s %10.1f KB\n", "KV cache per token (infer)", num(mem, "kv_cache_per_token") / 1024);
    }
    cJSON_Delete(o);
    ilm_free(out);
    return CLI_OK;
}
