/* The `internlm` command: dispatch to subcommands and shared helpers. */
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_fail(ilm_status s)
{
    fprintf(stderr, "internlm: %s: %s\n", ilm_status_str(s), ilm_last_error());
    return CLI_ERROR;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "internlm %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'internlm %s --help')\n", cmd);
    va_end(ap);
    return CLI_USAGE;
}

char *cli_read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = realloc(buf, (cap *= 2) + 1);
        if (!nb) free(buf);
        buf = nb;
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
    }
    if (buf) buf[n] = '\0';
    *len = n;
    return buf;
}

int32_t *cli_parse_ids(const char *s, size_t *n)
{
    size_t cap = 64;
    int32_t *v = malloc(cap * sizeof *v);
    *n = 0;
    for (char *end; v && *s;) {
        while (*s == ' ' || *s == ',' || *s == '\n' || *s == '\t' || *s == '\r') s++;
        if (!*s) break;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (end == s || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return NULL;
        }
        if (*n == cap) {
            int32_t *nv = realloc(v, (cap *= 2) * sizeof *v);
            if (!nv) free(v);
            v = nv;
            if (!v) return NULL;
        }
        v[(*n)++] = (int32_t)x;
        s = end;
    }
    return v;
}

ilm_status cli_model_load(const char *path, const char *adapter, const char *quantize,
                          ilm_model **m)
{
    if (!adapter && !quantize) return ilm_model_load(path, NULL, m);
    cJSON *cfg = cJSON_CreateObject();
    if (adapter) cJSON_AddStringToObject(cfg, "adapter", adapter);
    if (quantize)
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cfg, "quantize"), "quant_type", quantize);
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    ilm_status st = ilm_model_load(path, text, m);
    cJSON_free(text);
    return st;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

static void print_table(FILE *f, const char *prog, const cli_command *table)
{
    fprintf(f, "usage: %s <command> [options]\n\ncommands:\n", prog);
    for (const cli_command *c = table; c->name; c++)
        fprintf(f, "  %-12s %s\n", c->name, c->summary);
    fprintf(f, "\nRun '%s <command> --help' for a command's options.\n", prog);
}

int cli_dispatch(const char *prog, const cli_command *table, int argc, char **argv)
{
    if (argc < 1 || cli_is_help(argv[0]) || strcmp(argv[0], "help") == 0) {
        print_table(argc < 1 ? stderr : stdout, prog, table);
        return argc < 1 ? CLI_USAGE : CLI_OK;
    }
    for (const cli_command *c = table; c->name; c++)
        if (strcmp(c->name, argv[0]) == 0) return c->run(argc, argv);
    fprintf(stderr, "%s: unknown command '%s'\n\n", prog, argv[0]);
    print_table(stderr, prog, table);
    return CLI_USAGE;
}

int cli_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user;
    if (!isatty(STDERR_FILENO)) return 0;
    if (total) {
        int width = 30, fill = (int)(done * (uint64_t)width / (done > total ? done : total));
        fprintf(stderr, "\r%-16s [%.*s%*s] %llu/%llu", stage, fill,
                "##############################", width - fill, "",
                (unsigned long long)done, (unsigned long long)total);
    } else {
        fprintf(stderr, "\r%-16s %llu", stage, (unsigned long long)done);
    }
    fflush(stderr);
    return 0;
}

void cli_progress_done(void)
{
    if (isatty(STDERR_FILENO)) fputs("\r\033[K", stderr);
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("usage: internlm version\n\nPrints the library version and how it was built (JSON).\n");
        return CLI_OK;
    }
    printf("internlm %s\n%s\n", ilm_version_string(), ilm_build_info());
    return CLI_OK;
}

int cmd_info(int argc, char **argv)
{
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("usage: internlm info\n\n"
               "Prints the build, the CPU threads in use and the CUDA devices found.\n");
        return CLI_OK;
    }
    printf("libinternlm %s\nbuild:   %s\nthreads: %d\n", ilm_version_string(),
           ilm_build_info(), ilm_get_num_threads());
    int n = 0;
    ilm_status s = ilm_cuda_device_count(&n);
    if (s != ILM_OK) {
        printf("cuda:    none (%s: %s)\n", ilm_status_str(s), ilm_last_error());
        return CLI_OK;
    }
    for (int i = 0; i < n; i++) {
        char *json = NULL;
        s = ilm_cuda_device_info(i, &json);
        if (s != ILM_OK) return cli_fail(s);
        printf("cuda %d:  %s\n", i, json);
        ilm_free(json);
    }
    return CLI_OK;
}

static const cli_command commands[] = {
    { "bench", cmd_bench, "benchmarks against a peer measured in the same run" },
    { "chat", cmd_chat, "interactive chat with a model" },
    { "corpus", cmd_corpus, "data pipeline: build, stats, sample token shards" },
    { "detokenize", cmd_detokenize, "ids (standard input) to text" },
    { "eval", cmd_eval, "score a model on benchmarks (task configs)" },
    { "generate", cmd_generate, "continue a prompt with a model" },
    { "info", cmd_info, "build features, threads and devices" },
    { "merge", cmd_merge, "merge a LoRA adapter into its base model (HF directory)" },
    { "perplexity", cmd_perplexity, "perplexity of a text file (llama-perplexity's way)" },
    { "plan", cmd_plan, "memory a training config will take, without running it" },
    { "pretrain", cmd_pretrain, "train a model from scratch or continue pretraining" },
    { "quantize", cmd_quantize, "a model's linears to bitsandbytes' NF4 / FP4 (HF directory)" },
    { "score", cmd_score, "per-token log-probabilities of a sequence" },
    { "sft", cmd_sft, "supervised fine-tuning on chat shards" },
    { "tokenize", cmd_tokenize, "text to token ids" },
    { "tokenizer", cmd_tokenizer, "tokenizer tools: train" },
    { "version", cmd_version, "print the version and build facts" },
    { NULL, NULL, NULL },
};

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) return cmd_version(1, argv + 1);
    return cli_dispatch("internlm", commands, argc - 1, argv + 1);
}
