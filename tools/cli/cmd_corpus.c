/* `internlm corpus build | stats | sample`. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char build_help[] =
    "usage: internlm corpus build --config FILE [--report FILE]\n"
    "\n"
    "Runs the data pipeline (ingest, clean, quality filters, dedup, tokenize)\n"
    "described by the JSON config and writes token shards to its \"output\"\n"
    "directory with report.json and corpus.json.  Prints the per-stage report;\n"
    "--report also writes it to FILE.  Config keys: docs/corpus.md.\n";

static const char stats_help[] =
    "usage: internlm corpus stats DIR\n"
    "\n"
    "Prints a corpus's manifest and token statistics as JSON.\n";

static const char sample_help[] =
    "usage: internlm corpus sample DIR [--n N] [--seed S]\n"
    "\n"
    "Decodes N documents (default 5) picked at random (seed S, default 0).\n"
    "Tokens that are not training targets (the masked prompt turns of chat\n"
    "data) are printed between [[ and ]].\n";

static void print_stage(const cJSON *stages, const char *name)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(stages, name);
    if (!s) return;
    double in = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "documents_in"));
    double out = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "documents_out"));
    double bin = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "bytes_in"));
    double bout = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "bytes_out"));
    printf("  %-9s %10.0f -> %10.0f docs  %12.0f -> %12.0f bytes", name, in, out, bin, bout);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "dropped");
    const char *sep = "  dropped: ";
    for (const cJSON *e = d ? d->child : NULL; e; e = e->next, sep = ", ")
        printf("%s%s %.0f", sep, e->string, e->valuedouble);
    printf("\n");
}

static int corpus_build(int argc, char **argv)
{
    const char *config = NULL, *report_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(build_help, stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--report") && i + 1 < argc) report_path = argv[++i];
        else return cli_usage_error("corpus build", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!config) return cli_usage_error("corpus build", "--config FILE is required");
    FILE *f = fopen(config, "rb");
    if (!f) {
        fprintf(stderr, "internlm corpus build: cannot open '%s': %s\n", config, strerror(errno));
        return CLI_ERROR;
    }
    size_t len;
    char *text = cli_read_all(f, &len), *report = NULL;
    fclose(f);
    if (!text) {
        fprintf(stderr, "internlm corpus build: cannot read '%s'\n", config);
        return CLI_ERROR;
    }
    ilm_status s = ilm_corpus_build(text, cli_progress, NULL, &report);
    free(text);
    cli_progress_done();
    if (s != ILM_OK) return cli_fail(s);
    cJSON *r = cJSON_Parse(report);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(r, "stages");
    const cJSON *ing = cJSON_GetObjectItemCaseSensitive(stages, "ingest");
    printf("ingest: %.0f files (%.0f unreadable), %.0f records, %.0f malformed lines\n",
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ing, "files")),
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ing, "bad_files")),
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ing, "records")),
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ing, "malformed")));
    static const char *const names[] = { "clean", "filter", "dedup", "tokenize" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) print_stage(stages, names[i]);
    printf("wrote %.0f documents, %.0f tokens in %d shard(s) (%s mode) in %.1f s\n",
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "documents")),
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "tokens")),
           cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "shards")),
           cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "mode")),
           cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(r, "seconds")));
    cJSON_Delete(r);
    int rc = CLI_OK;
    if (report_path) {
        FILE *o = fopen(report_path, "wb");
        if (!o || fputs(report, o) == EOF || fclose(o) != 0) {
            fprintf(stderr, "internlm corpus build: cannot write '%s'\n", report_path);
            rc = CLI_ERROR;
        }
    }
    ilm_free(report);
    return rc;
}

static int corpus_stats(int argc, char **argv)
{
    if (argc == 2 && cli_is_help(argv[1])) {
        fputs(stats_help, stdout);
        return CLI_OK;
    }
    if (argc != 2) return cli_usage_error("corpus stats", "expected one corpus directory");
    ilm_corpus *c = NULL;
    char *json = NULL;
    ilm_status s = ilm_corpus_open(argv[1], &c);
    if (s == ILM_OK) s = ilm_corpus_info(c, &json);
    ilm_corpus_free(c);
    if (s != ILM_OK) return cli_fail(s);
    cJSON *j = cJSON_Parse(json);
    char *pretty = j ? cJSON_Print(j) : NULL;
    printf("%s\n", pretty ? pretty : json);
    cJSON_free(pretty);
    cJSON_Delete(j);
    ilm_free(json);
    return CLI_OK;
}

/* Decodes ids [n] with masked runs between [[ and ]]. */
static ilm_status print_doc(const ilm_tokenizer *tok, const int32_t *ids, const uint8_t *mask, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && mask[j] == mask[i]) j++;
        char *text;
        size_t len;
        ilm_status s = ilm_tokenizer_decode(tok, ids + i, j - i, 0, &text, &len);
        if (s != ILM_OK) return s;
        printf("%s%.*s%s", mask[i] ? "" : "[[", (int)len, text, mask[i] ? "" : "]]");
        ilm_free(text);
        i = j;
    }
    printf("\n");
    return ILM_OK;
}

static int corpus_sample(int argc, char **argv)
{
    const char *dir = NULL;
    long n = 5;
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (cli_is_help(argv[i])) {
            fputs(sample_help, stdout);
            return CLI_OK;
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            n = strtol(argv[++i], &end, 10);
            if (*end || n < 1) return cli_usage_error("corpus sample", "--n needs a positive integer");
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], &end, 10);
            if (*end) return cli_usage_error("corpus sample", "--seed needs an integer");
        } else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else return cli_usage_error("corpus sample", "unknown or incomplete option '%s'", argv[i]);
    }
    if (!dir) return cli_usage_error("corpus sample", "expected a corpus directory");
    ilm_corpus *c = NULL;
    ilm_status s = ilm_corpus_open(dir, &c);
    if (s == ILM_OK && !ilm_corpus_tokenizer(c)) {
        ilm_corpus_free(c);
        fprintf(stderr, "internlm corpus sample: '%s' names no tokenizer\n", dir);
        return CLI_ERROR;
    }
    uint64_t docs = s == ILM_OK ? ilm_corpus_num_documents(c) : 0;
    /* splitmix64 picks: a small, fixed, documented choice. */
    uint64_t x = seed;
    for (long k = 0; s == ILM_OK && k < n && docs; k++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        uint64_t i = (z ^ (z >> 31)) % docs;
        int32_t *ids = NULL;
        uint8_t *mask = NULL;
        size_t len = 0;
        s = ilm_corpus_document(c, i, &ids, &mask, &len);
        if (s == ILM_OK) {
            printf("--- document %llu (%zu tokens)\n", (unsigned long long)i, len);
            s = print_doc(ilm_corpus_tokenizer(c), ids, mask, len);
        }
        ilm_free(ids);
        ilm_free(mask);
    }
    ilm_corpus_free(c);
    return s == ILM_OK ? CLI_OK : cli_fail(s);
}

static const cli_command corpus_commands[] = {
    { "build", corpus_build, "clean, filter, dedup and tokenize text into shards" },
    { "stats", corpus_stats, "a corpus's manifest and token statistics" },
    { "sample", corpus_sample, "decode random documents (masked tokens marked)" },
    { NULL, NULL, NULL },
};

int cmd_corpus(int argc, char **argv)
{
    return cli_dispatch("internlm corpus", corpus_commands, argc - 1, argv + 1);
}
