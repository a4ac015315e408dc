/* `internlm bench <what>`: benchmarks, each reporting absolute figures and a
 * ratio against a peer measured in the same run (DESIGN.md §8). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char gemm_help[] =
    "usage: internlm bench gemm [options]\n"
    "\n"
    "Measures fp32 GEMM GFLOP/s (n x n x n, OpenBLAS) and the machine's fp32\n"
    "peak (an FMA-throughput loop on every thread), and prints their ratio.\n"
    "\n"
    "options:\n"
    "  --sizes N,N,...   matrix sizes (default 256,512,1024,2048)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --min-time S      seconds per size at least (default 1.0)\n"
    "  --min-reps N      repetitions per size at least (default 3)\n"
    "  --json            print the result as JSON\n";

static void print_gemm_table(const cJSON *r)
{
    double peak = cJSON_GetObjectItem(r, "peak_gflops")->valuedouble;
    printf("fp32 GEMM on %d threads (OpenBLAS core: %s)\n",
           cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_GetObjectItem(r, "blas")->valuestring);
    printf("measured peak (%s FMA loop): %.1f GFLOP/s\n\n",
           cJSON_GetObjectItem(r, "peak_isa")->valuestring, peak);
    printf("%8s %6s %14s %16s %11s\n", "n", "reps", "best GFLOP/s", "median GFLOP/s",
           "% of peak");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "results")) {
        printf("%8d %6d %14.1f %16.1f %10.1f%%\n", cJSON_GetObjectItem(e, "n")->valueint,
               cJSON_GetObjectItem(e, "reps")->valueint,
               cJSON_GetObjectItem(e, "best_gflops")->valuedouble,
               cJSON_GetObjectItem(e, "median_gflops")->valuedouble,
               100.0 * cJSON_GetObjectItem(e, "fraction_of_peak")->valuedouble);
    }
}

/* Turns "256,512" into a JSON array; NULL if it is not a list of integers. */
static cJSON *parse_sizes(const char *s)
{
    cJSON *arr = cJSON_CreateArray();
    while (arr && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || (*end && *end != ',')) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, cJSON_CreateNumber((double)v));
        s = *end ? end + 1 : end;
    }
    return arr;
}

/* A command-line option that becomes a key of the benchmark's JSON config. */
typedef struct bench_opt {
    const char *flag, *key;
    char type; /* 'i' integer, 'n' number, 's' string, 'l' list of integers,
                  'p' comma-separated list of strings, 'b' 0 or 1, 'f' a JSON
                  file's object */
} bench_opt;

/* Parses argv into a JSON config by `opts`; --json sets *json.  Returns
 * CLI_OK or a usage error (after printing it); *help set means --help was
 * asked for and printed. */
static int parse_bench_args(const char *cmd, const char *help, const bench_opt *opts, int argc,
                            char **argv, cJSON *cfg, bool *json, bool *helped)
{
    *json = *helped = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(a)) {
            fputs(help, stdout);
            *helped = true;
            return CLI_OK;
        }
        if (strcmp(a, "--json") == 0) {
            *json = true;
            continue;
        }
        const bench_opt *o = opts;
        while (o->flag && strcmp(o->flag, a) != 0) o++;
        if (!o->flag || !v) return cli_usage_error(cmd, "unknown or incomplete option '%s'", a);
        char *end;
        cJSON *val = NULL;
        if (o->type == 's') {
            val = cJSON_CreateString(v);
        } else if (o->type == 'b') {
            if (!strcmp(v, "0") || !strcmp(v, "1")) val = cJSON_CreateBool(v[0] == '1');
        } else if (o->type == 'f') {
            FILE *f = fopen(v, "rb");
            size_t len;
            char *text = f ? cli_read_all(f, &len) : NULL;
            if (f) fclose(f);
            val = text ? cJSON_Parse(text) : NULL;
            free(text);
            if (val && !cJSON_IsObject(val)) {
                cJSON_Delete(val);
                val = NULL;
            }
        } else if (o->type == 'l') {
            val = parse_sizes(v);
        } else if (o->type == 'p') { /* comma-separated paths */
            val = cJSON_CreateArray();
            for (const char *p = v; val && *p;) {
                const char *e = strchr(p, ',');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                char *one = strndup(p, n);
                cJSON_AddItemToArray(val, cJSON_CreateString(one ? one : ""));
                free(one);
                p += n + (e ? 1 : 0);
            }
        } else {
            double d = strtod(v, &end);
            if (*end == '\0' && end != v && (o->type == 'n' || d == (double)(long)d))
                val = cJSON_CreateNumber(d);
        }
        if (!val) return cli_usage_error(cmd, "%s: bad value '%s'", a, v);
        cJSON_AddItemToObject(cfg, o->key, val);
        i++;
    }
    return CLI_OK;
}

typedef ilm_status (*bench_fn)(const char *, ilm_progress_fn, void *, char **);

/* Runs one benchmark: options to config, the library call, then the table
 * (print_table) or the JSON. */
static int run_bench(const char *cmd, const char *help, const bench_opt *opts, bench_fn fn,
                     void (*print_table)(const cJSON *), int argc, char **argv)
{
    bool json, helped;
    cJSON *cfg = cJSON_CreateObject();
    int rc = parse_bench_args(cmd, help, opts, argc, argv, cfg, &json, &helped);
    char *cfg_text = rc == CLI_OK && !helped ? cJSON_PrintUnformatted(cfg) : NULL;
    cJSON_Delete(cfg);
    if (rc != CLI_OK || helped) return rc;
    char *result = NULL;
    ilm_status s = fn(cfg_text, cli_progress, NULL, &result);
    cJSON_free(cfg_text);
    cli_progress_done();
    if (s != ILM_OK) return cli_fail(s);
    if (json) {
        printf("%s\n", result);
    } else {
        cJSON *r = cJSON_Parse(result);
        print_table(r);
        cJSON_Delete(r);
    }
    ilm_free(result);
    return CLI_OK;
}

static const char corpus_help[] =
    "usage: internlm bench corpus --tokenizer PATH [--inputs P,P,...] [options]\n"
    "\n"
    "Runs the corpus pipeline (internlm corpus build, default settings) on the\n"
    "inputs and prints MB/s for clean + filter, dedup, tokenize + pack and the\n"
    "whole pipeline.  The default inputs are the Debian fortunes, fortunes-zh\n"
    "and King James Bible texts (tools/debian_text.sh).  tools/bench_dedup.py\n"
    "times datasketch's MinHash on the same text in the same run.\n"
    "\n"
    "options:\n"
    "  --tokenizer PATH  tokenizer (required)\n"
    "  --inputs P,P,...  files or directories\n"
    "  --threads N       threads (default: all cores)\n"
    "  --reps N          runs, best kept (default 3)\n"
    "  --json            print the result as JSON\n";

static void print_corpus_table(const cJSON *r)
{
    printf("corpus pipeline on %d threads: %.1f MB in, %.0f -> %.0f documents, %.0f tokens\n",
           cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_GetObjectItem(r, "input_bytes")->valuedouble / 1e6,
           cJSON_GetObjectItem(r, "documents_in")->valuedouble,
           cJSON_GetObjectItem(r, "documents_out")->valuedouble,
           cJSON_GetObjectItem(r, "tokens")->valuedouble);
    static const char *const k[][2] = { { "clean + filter", "clean_filter_mb_s" },
                                        { "dedup", "dedup_mb_s" },
                                        { "tokenize + pack", "tokenize_pack_mb_s" },
                                        { "whole pipeline", "pipeline_mb_s" } };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        printf("  %-16s %8.1f MB/s\n", k[i][0], cJSON_GetObjectItem(r, k[i][1])->valuedouble);
}

static const bench_opt corpus_opts[] = {
    { "--tokenizer", "tokenizer", 's' }, { "--inputs", "inputs", 'p' },
    { "--threads", "threads", 'i' }, { "--reps", "reps", 'i' }, { NULL, NULL, 0 },
};

static int bench_corpus(int argc, char **argv)
{
    /* Without --inputs: the Debian texts that are installed. */
    static const char *const defaults[] = {
        "/usr/share/games/fortunes/fortunes", "/usr/share/games/fortunes/literature",
        "/usr/share/games/fortunes/riddles", "/usr/share/games/fortunes/people",
        "/usr/share/games/fortunes/tang300", "/usr/share/games/fortunes/song100",
        "/usr/share/games/fortunes/chinese", ".cache/debian/kjv.txt",
    };
    bool has_inputs = false;
    for (int i = 1; i < argc; i++) has_inputs |= !strcmp(argv[i], "--inputs");
    char list[4096] = "";
    char **args = argv;
    if (!has_inputs) {
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            if (access(defaults[i], R_OK) == 0)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? "," : "", defaults[i]);
        args = malloc((size_t)(argc + 2) * sizeof *args);
        if (!args) return CLI_ERROR;
        memcpy(args, argv, (size_t)argc * sizeof *args);
        args[argc] = "--inputs";
        args[argc + 1] = list;
        argc += *list ? 2 : 0;
    }
    int rc = run_bench("bench corpus", corpus_help, corpus_opts, ilm_bench_corpus, print_corpus_table,
                       argc, args);
    if (args != argv) free(args);
    return rc;
}

static const bench_opt gemm_opts[] = {
    { "--sizes", "sizes", 'l' }, { "--threads", "threads", 'i' },
    { "--min-time", "min_time", 'n' }, { "--min-reps", "min_reps", 'i' }, { NULL, NULL, 0 },
};

static int bench_gemm(int argc, char **argv)
{
    return run_bench("bench gemm", gemm_help, gemm_opts, ilm_bench_gemm, print_gemm_table, argc,
                     argv);
}

static const char tokenize_help[] =
    "usage: internlm bench tokenize --tokenizer PATH --file F [options]\n"
    "\n"
    "Encodes every line of F as one document, on one thread and on all threads,\n"
    "and prints MB/s.  tools/bench_tokenize.py runs sentencepiece and tokenizers\n"
    "on the same file in the same run and prints the ratios.\n"
    "\n"
    "options:\n"
    "  --tokenizer PATH  tokenizer.model, tokenizer.json, model directory or .gguf\n"
    "  --file F          text file (one document per line)\n"
    "  --threads N       threads for the batch measurement (default: all cores)\n"
    "  --min-time S      seconds per measurement at least (default 1.0)\n"
    "  --json            print the result as JSON\n";

static void print_tokenize_table(const cJSON *r)
{
    printf("tokenizer %s on %s\n", cJSON_GetObjectItem(r, "tokenizer")->valuestring,
           cJSON_GetObjectItem(r, "file")->valuestring);
    printf("%.0f bytes, %.0f documents, %.0f tokens, loaded in %.3f s\n",
           cJSON_GetObjectItem(r, "bytes")->valuedouble,
           cJSON_GetObjectItem(r, "documents")->valuedouble,
           cJSON_GetObjectItem(r, "tokens")->valuedouble,
           cJSON_GetObjectItem(r, "load_seconds")->valuedouble);
    printf("1 thread:   %8.2f MB/s\n%d threads: %8.2f MB/s\n",
           cJSON_GetObjectItem(r, "single_thread_mb_s")->valuedouble,
           cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_GetObjectItem(r, "batch_mb_s")->valuedouble);
}

static const bench_opt tokenize_opts[] = {
    { "--tokenizer", "tokenizer", 's' }, { "--file", "file", 's' },
    { "--threads", "threads", 'i' }, { "--min-time", "min_time", 'n' }, { NULL, NULL, 0 },
};

static int bench_tokenize(int argc, char **argv)
{
    return run_bench("bench tokenize", tokenize_help, tokenize_opts, ilm_bench_tokenize,
                     print_tokenize_table, argc, argv);
}

static const char generate_help[] =
    "usage: internlm bench generate --model PATH [options]\n"
    "\n"
    "Prompt processing and decode tokens/s of a model (greedy decoding of a fixed\n"
    "pseudo-random prompt).  tools/bench_generate.py runs llama.cpp on the same\n"
    "GGUF in the same run and prints the ratios.\n"
    "\n"
    "options:\n"
    "  --model PATH         HF model directory or .gguf file\n"
    "  --prompt-tokens N    prompt length (512)\n"
    "  --gen-tokens N       tokens to generate (128)\n"
    "  --threads N          threads (default: all cores)\n"
    "  --reps N             repetitions, best kept (3)\n"
    "  --json               print the result as JSON\n";

static void print_generate_table(const cJSON *r)
{
    printf("model %s on %d threads (%.1f MB of weights, loaded in %.2f s)\n",
           cJSON_GetObjectItem(r, "model")->valuestring, cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_GetObjectItem(r, "weight_bytes")->valuedouble / 1e6,
           cJSON_GetObjectItem(r, "load_seconds")->valuedouble);
    printf("prompt %4d tokens: %9.1f tokens/s\n", cJSON_GetObjectItem(r, "prompt_tokens")->valueint,
           cJSON_GetObjectItem(r, "prompt_tokens_per_s")->valuedouble);
    printf("decode %4d tokens: %9.1f tokens/s\n", cJSON_GetObjectItem(r, "gen_tokens")->valueint,
           cJSON_GetObjectItem(r, "decode_tokens_per_s")->valuedouble);
}

static const bench_opt generate_opts[] = {
    { "--model", "model", 's' }, { "--prompt-tokens", "prompt_tokens", 'i' },
    { "--gen-tokens", "gen_tokens", 'i' }, { "--threads", "threads", 'i' },
    { "--reps", "reps", 'i' }, { NULL, NULL, 0 },
};

static int bench_generate(int argc, char **argv)
{
    return run_bench("bench generate", generate_help, generate_opts, ilm_bench_generate,
                     print_generate_table, argc, argv);
}

static const char train_help[] =
    "usage: internlm bench train [options]\n"
    "\n"
    "Training tokens/s (forward + backward + AdamW) of a new model on random\n"
    "tokens, and the time per step split by op.  tools/bench_train.py runs\n"
    "PyTorch (transformers) on the same model and batch in the same run and\n"
    "prints the ratio.\n"
    "\n"
    "options:\n"
    "  --model-config F  config.json of the architecture (default: a 27.7M\n"
    "                    LLaMA, V 8192, C 512, L 6, H 8, F 1408)\n"
    "  --batch N         rows per step (8)\n"
    "  --seqlen N        tokens per row (256)\n"
    "  --docs-per-row N  documents packed in a row (1)\n"
    "  --steps N         timed steps (5)\n"
    "  --warmup N        untimed steps first (2)\n"
    "  --threads N       threads (default: all cores)\n"
    "  --recompute 0|1   recompute activations in backward (0)\n"
    "  --lora-r R        train a LoRA adapter of rank R (alpha 2R, dropout 0.05,\n"
    "                    every linear) on the frozen model instead (0: all weights)\n"
    "  --json            print the result as JSON\n";

static void print_train_table(const cJSON *r)
{
    printf("%.1fM parameters, batch %d x %d (%d document(s) per row), %d threads%s\n",
           cJSON_GetObjectItem(r, "parameters")->valuedouble / 1e6,
           cJSON_GetObjectItem(r, "batch")->valueint, cJSON_GetObjectItem(r, "seqlen")->valueint,
           cJSON_GetObjectItem(r, "docs_per_row")->valueint,
           cJSON_GetObjectItem(r, "threads")->valueint,
           cJSON_IsTrue(cJSON_GetObjectItem(r, "recompute")) ? ", recompute" : "");
    printf("%d timed steps after %d warm-up: %.1f tokens/s (best step %.1f), %.3f s per step\n",
           cJSON_GetObjectItem(r, "steps")->valueint, cJSON_GetObjectItem(r, "warmup")->valueint,
           cJSON_GetObjectItem(r, "tokens_per_s")->valuedouble,
           cJSON_GetObjectItem(r, "best_tokens_per_s")->valuedouble,
           cJSON_GetObjectItem(r, "step_seconds")->valuedouble);
    printf("loss %.4f (first step) -> %.4f (last)\n\ntime per step by op (forward + backward):\n",
           cJSON_GetObjectItem(r, "first_loss")->valuedouble,
           cJSON_GetObjectItem(r, "last_loss")->valuedouble);
    const double total = cJSON_GetObjectItem(r, "step_seconds")->valuedouble;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(r, "op_seconds_per_step"))
        printf("  %-16s %8.1f ms %6.1f%%\n", e->string, 1e3 * e->valuedouble,
               total > 0 ? 100.0 * e->valuedouble / total : 0.0);
}

static const bench_opt train_opts[] = {
    { "--model-config", "model_config", 'f' }, { "--batch", "batch", 'i' },
    { "--seqlen", "seqlen", 'i' }, { "--docs-per-row", "docs_per_row", 'i' },
    { "--steps", "steps", 'i' }, { "--warmup", "warmup", 'i' }, { "--threads", "threads", 'i' },
    { "--recompute", "recompute", 'b' }, { "--lora-r", "lora_r", 'i' }, { NULL, NULL, 0 },
};

static int bench_train(int argc, char **argv)
{
    return run_bench("bench train", train_help, train_opts, ilm_bench_train, print_train_table,
                     argc, argv);
}

static const cli_command bench_commands[] = {
    { "gemm", bench_gemm, "fp32 GEMM GFLOP/s against the measured FMA peak" },
    { "generate", bench_generate, "prompt and decode tokens/s of a model" },
    { "tokenize", bench_tokenize, "tokenizer MB/s on a text file" },
    { "corpus", bench_corpus, "corpus pipeline MB/s per stage" },
    { "train", bench_train, "training tokens/s and the time by op" },
    { NULL, NULL, NULL },
};

int cmd_bench(int argc, char **argv)
{
    return cli_dispatch("internlm bench", bench_commands, argc - 1, argv + 1);
}
