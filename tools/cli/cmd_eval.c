/* `internlm eval`: benchmarks as task configs (docs/eval.md). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char eval_help[] =
    "usage: internlm eval --model PATH (--tasks A,B,... | --task-config FILE.json) [options]\n"
    "\n"
    "Scores a model on benchmarks described by task configs (docs/eval.md) and\n"
    "prints the summary table; with --out, writes OpenCompass's layout there\n"
    "(predictions/, results/, summary/) and resumes from it.\n"
    "\n"
    "  --model PATH          HF model directory or .gguf file\n"
    "  --adapter DIR         a PEFT LoRA adapter applied at load (not merged)\n"
    "  --quantize nf4|fp4    the linears quantized to 4 bits at load (a QLoRA base)\n"
    "  --tasks A,B           task names, looked up as <config-dir>/<name>.json\n"
    "  --task-config FILE    a task config file (may be given more than once)\n"
    "  --config-dir DIR      (configs/eval)\n"
    "  --data-root DIR       where the tasks' data paths start (.)\n"
    "  --limit N             at most N samples per dataset\n"
    "  --shots K             few-shot examples for every task that has them\n"
    "  --out DIR             output directory\n"
    "  --model-name NAME     the model's name in the output (the model file's name)\n"
    "  --context N  --threads N\n"
    "  --no-resume           recompute datasets already in --out\n"
    "  --execute             run generated programs (HumanEval) in a sandbox\n"
    "  --json                print the results as JSON instead of the table\n";

typedef struct progress_state {
    char stage[128];
    double t0;
    uint64_t first;
} progress_state;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A bar with samples/s and the time left, on a terminal only. */
static int progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    progress_state *p = user;
    if (!isatty(STDERR_FILENO)) return 0;
    if (strcmp(p->stage, stage) != 0) {
        snprintf(p->stage, sizeof p->stage, "%s", stage);
        p->t0 = now();
        p->first = done;
    }
    double dt = now() - p->t0, rate = dt > 0 ? (double)(done - p->first) / dt : 0;
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    int width = 24, fill = total ? (int)(done * (uint64_t)width / total) : 0;
    fprintf(stderr, "\r\033[K%-28.28s [%.*s%*s] %llu/%llu %.1f/s ETA %.0fs", stage, fill,
            "########################", width - fill, "", (unsigned long long)done,
            (unsigned long long)total, rate, eta);
    fflush(stderr);
    return 0;
}

static void print_table(const char *results)
{
    cJSON *r = cJSON_Parse(results);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(r, "datasets");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(r, "groups");
    printf("%-44s %-8s %-18s %-8s %10s %8s\n", "dataset", "version", "metric", "mode", "value",
           "stderr");
    for (const cJSON *d = ds ? ds->child : NULL; d; d = d->next) {
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(d, "metrics");
        for (const cJSON *m = ms ? ms->child : NULL; m; m = m->next) {
            size_t len = strlen(m->string);
            if (len > 7 && strcmp(m->string + len - 7, "_stderr") == 0) continue;
            char se_key[96];
            snprintf(se_key, sizeof se_key, "%s_stderr", m->string);
            const cJSON *se = cJSON_GetObjectItemCaseSensitive(ms, se_key);
            printf("%-44s %-8s %-18s %-8s %10.2f", cJSON_GetObjectItem(d, "dataset")->valuestring,
                   cJSON_GetObjectItem(d, "version")->valuestring, m->string,
                   cJSON_GetObjectItem(d, "mode")->valuestring, m->valuedouble);
            if (se) printf(" %8.2f", se->valuedouble);
            printf("\n");
        }
    }
    for (const cJSON *g = gs ? gs->child : NULL; g; g = g->next) {
        char label[160];
        snprintf(label, sizeof label, "%s (%g datasets)",
                 cJSON_GetObjectItem(g, "group")->valuestring,
                 cJSON_GetObjectItem(g, "datasets")->valuedouble);
        printf("%-44s %-8s %-18s %-8s %10.2f naive, %.2f weighted\n", label,
               cJSON_GetObjectItem(g, "version")->valuestring,
               cJSON_GetObjectItem(g, "metric")->valuestring,
               cJSON_GetObjectItem(g, "mode")->valuestring,
               cJSON_GetObjectItem(g, "naive_average")->valuedouble,
               cJSON_GetObjectItem(g, "weighted_average")->valuedouble);
    }
    cJSON_Delete(r);
}

/* The model's name for the output: the file or directory name, without
 * a .gguf suffix. */
/* The last path component of `path`, without ".gguf"; "model" if none. */
static void base_name(const char *path, char *out, size_t n)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t k = len - b;
    if (k > 5 && strncmp(path + len - 5, ".gguf", 5) == 0) k -= 5;
    snprintf(out, n, "%.*s", (int)k, path + b);
    if (!out[0] || out[0] == '.') snprintf(out, n, "model");
}

/* The model's name in reports (and in --out, which resumes by it): the
 * model file's, then "+<quantize>" and the adapter's after a '+'. */
static void model_name(const char *path, const char *quantize, const char *adapter, char *out,
                       size_t n)
{
    base_name(path, out, n);
    size_t used = strlen(out);
    if (quantize) snprintf(out + used, n - used, "+%s", quantize);
    if (!adapter) return;
    char a[128];
    base_name(adapter, a, sizeof a);
    used = strlen(out);
    snprintf(out + used, n - used, "+%s", a);
}

static bool whole_number(const char *v, long min, long *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= min && d <= 2147483647.0 && d == floor(d))) return false;
    *out = (long)d;
    return true;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *adapter = NULL, *quantize = NULL, *tasks = NULL, *out = NULL, *name = NULL;
    cJSON *cfg = cJSON_CreateObject(), *list = cJSON_CreateArray();
    bool json = false;
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (cli_is_help(o)) {
            fputs(eval_help, stdout);
            cJSON_Delete(cfg);
            cJSON_Delete(list);
            return CLI_OK;
        }
        if (strcmp(o, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(o, "--execute") == 0) {
            cJSON_AddTrueToObject(cfg, "execute");
            continue;
        }
        if (strcmp(o, "--no-resume") == 0) {
            cJSON_AddFalseToObject(cfg, "resume");
            continue;
        }
        bool known = !strcmp(o, "--model") || !strcmp(o, "--adapter") || !strcmp(o, "--quantize") ||
                     !strcmp(o, "--tasks") ||
                     !strcmp(o, "--task-config") || !strcmp(o, "--config-dir") ||
                     !strcmp(o, "--data-root") || !strcmp(o, "--limit") || !strcmp(o, "--shots") ||
                     !strcmp(o, "--out") || !strcmp(o, "--model-name") || !strcmp(o, "--context") ||
                     !strcmp(o, "--threads");
        if (!known) {
            rc = cli_usage_error("eval", "unknown option '%s'", o);
            break;
        }
        if (!v) {
            rc = cli_usage_error("eval", "%s needs a value", o);
            break;
        }
        i++;
        if (!strcmp(o, "--model"))
            model = v;
        else if (!strcmp(o, "--adapter"))
            adapter = v;
        else if (!strcmp(o, "--quantize"))
            quantize = v;
        else if (!strcmp(o, "--tasks"))
            tasks = v;
        else if (!strcmp(o, "--task-config"))
            cJSON_AddItemToArray(list, cJSON_CreateString(v));
        else if (!strcmp(o, "--config-dir"))
            cJSON_AddStringToObject(cfg, "config_dir", v);
        else if (!strcmp(o, "--data-root"))
            cJSON_AddStringToObject(cfg, "data_root", v);
        else if (!strcmp(o, "--out"))
            out = v;
        else if (!strcmp(o, "--model-name"))
            name = v;
        else if (!whole_number(v, !strcmp(o, "--shots") ? 0 : 1, &n))
            rc = cli_usage_error("eval", "%s wants a whole number, got '%s'", o, v);
        else
            cJSON_AddNumberToObject(cfg,
                                    o[2] == 'l'   ? "limit"
                                    : o[2] == 's' ? "shots"
                                    : o[2] == 'c' ? "context"
                                                  : "threads",
                                    (double)n);
    }
    if (rc == CLI_OK && !model) rc = cli_usage_error("eval", "--model PATH is required");
    for (const char *p = tasks; rc == CLI_OK && p && *p;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        char one[256];
        if (n == 0 || n >= sizeof one) {
            rc =
                cli_usage_error("eval", "--tasks wants names separated by commas, got '%s'", tasks);
            break;
        }
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        cJSON_AddItemToArray(list, cJSON_CreateString(one));
        p = q ? q + 1 : p + n;
    }
    if (rc == CLI_OK && cJSON_GetArraySize(list) == 0)
        rc = cli_usage_error("eval", "--tasks or --task-config is required");
    if (rc != CLI_OK) {
        cJSON_Delete(cfg);
        cJSON_Delete(list);
        return rc;
    }
    char mname[256];
    if (name)
        snprintf(mname, sizeof mname, "%s", name);
    else
        model_name(model, quantize, adapter, mname, sizeof mname);
    cJSON_AddStringToObject(cfg, "model_name", mname);
    if (out) cJSON_AddStringToObject(cfg, "out", out);
    char *cfg_text = cJSON_PrintUnformatted(cfg), *list_text = cJSON_PrintUnformatted(list);
    cJSON_Delete(cfg);
    cJSON_Delete(list);
    ilm_model *m = NULL;
    ilm_evaluator *e = NULL;
    char *results = NULL;
    progress_state ps = { "", 0, 0 };
    ilm_status st = cli_model_load(model, adapter, quantize, &m);
    if (st == ILM_OK) st = ilm_evaluator_create(m, cfg_text, &e);
    if (st == ILM_OK) st = ilm_evaluator_run(e, list_text, progress, &ps, &results);
    cli_progress_done();
    if (st == ILM_OK && json)
        printf("%s\n", results);
    else if (st == ILM_OK)
        print_table(results);
    ilm_free(results);
    ilm_evaluator_free(e);
    ilm_model_free(m);
    cJSON_free(cfg_text);
    cJSON_free(list_text);
    return st == ILM_OK ? CLI_OK : cli_fail(st);
}
