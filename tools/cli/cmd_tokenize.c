/* `internlm tokenize`, `internlm detokenize` and `internlm tokenizer train`. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_help[] =
    "usage: internlm tokenize --tokenizer PATH [--special] [--bos] [--eos] [--file F]\n"
    "\n"
    "Encodes text (from F, or standard input) and prints the ids on one line,\n"
    "separated by spaces.  Without flags the ids equal sentencepiece's\n"
    "encode(text) and tokenizers' encode(text, add_special_tokens=False).\n"
    "\n"
    "  --tokenizer PATH  tokenizer.model, tokenizer.json, a model directory or .gguf\n"
    "  --special         recognise special tokens such as <|im_start|> in the text\n"
    "  --bos, --eos      add the BOS / EOS token\n"
    "  --file F          read the text from F\n";

int cmd_tokenize(int argc, char **argv)
{
    const char *tok_path = NULL, *file = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(tokenize_help, stdout);
            return CLI_OK;
        } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) tok_path = argv[++i];
        else if (strcmp(a, "--file") == 0 && i + 1 < argc) file = argv[++i];
        else if (strcmp(a, "--special") == 0) flags |= ILM_TOKENIZE_SPECIAL;
        else if (strcmp(a, "--bos") == 0) flags |= ILM_TOKENIZE_BOS;
        else if (strcmp(a, "--eos") == 0) flags |= ILM_TOKENIZE_EOS;
        else return cli_usage_error("tokenize", "unknown or incomplete option '%s'", a);
    }
    if (!tok_path) return cli_usage_error("tokenize", "--tokenizer PATH is required");
    FILE *in = file ? fopen(file, "rb") : stdin;
    if (!in) {
        fprintf(stderr, "internlm tokenize: cannot open '%s': %s\n", file, strerror(errno));
        return CLI_ERROR;
    }
    size_t len = 0;
    char *text = cli_read_all(in, &len);
    if (file) fclose(in);
    if (!text) {
        fprintf(stderr, "internlm tokenize: cannot read the input\n");
        return CLI_ERROR;
    }
    ilm_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    ilm_status s = ilm_tokenizer_load(tok_path, &tok);
    if (s == ILM_OK) s = ilm_tokenizer_encode(tok, text, len, flags, &ids, &n);
    free(text);
    if (s != ILM_OK) {
        ilm_tokenizer_free(tok);
        return cli_fail(s);
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    ilm_free(ids);
    ilm_tokenizer_free(tok);
    return CLI_OK;
}

static const char detokenize_help[] =
    "usage: internlm detokenize --tokenizer PATH [--skip-special]\n"
    "\n"
    "Reads ids (separated by spaces or newlines) from standard input and prints\n"
    "the text they decode to.\n";

int cmd_detokenize(int argc, char **argv)
{
    const char *tok_path = NULL;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(detokenize_help, stdout);
            return CLI_OK;
        } else if (strcmp(a, "--tokenizer") == 0 && i + 1 < argc) tok_path = argv[++i];
        else if (strcmp(a, "--skip-special") == 0) flags |= ILM_DECODE_SKIP_SPECIAL;
        else return cli_usage_error("detokenize", "unknown or incomplete option '%s'", a);
    }
    if (!tok_path) return cli_usage_error("detokenize", "--tokenizer PATH is required");
    size_t len = 0, n = 0;
    char *input = cli_read_all(stdin, &len);
    if (!input) return cli_fail(ILM_ERR_NOMEM);
    int32_t *ids = cli_parse_ids(input, &n);
    free(input);
    if (!ids) return cli_usage_error("detokenize", "the input is not ids separated by spaces");
    ilm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t text_len = 0;
    ilm_status s = ilm_tokenizer_load(tok_path, &tok);
    if (s == ILM_OK) s = ilm_tokenizer_decode(tok, ids, n, flags, &text, &text_len);
    free(ids);
    ilm_tokenizer_free(tok);
    if (s != ILM_OK) return cli_fail(s);
    fwrite(text, 1, text_len, stdout);
    ilm_free(text);
    return CLI_OK;
}

static const char train_help[] =
    "usage: internlm tokenizer train --input FILE [--input FILE ...] --vocab-size N\n"
    "                                --out PATH [options]\n"
    "\n"
    "Learns a SentencePiece-BPE vocabulary from text files (one sentence per line)\n"
    "and writes a tokenizer.model that sentencepiece loads.\n"
    "\n"
    "options:\n"
    "  --input FILE               training text (repeat for several files)\n"
    "  --vocab-size N             pieces in the model, special and byte pieces included\n"
    "  --out PATH                 where to write the model\n"
    "  --no-byte-fallback         unknown characters become <unk> (default: bytes)\n"
    "  --no-split-digits          let digits merge (default: each digit alone)\n"
    "  --add-dummy-prefix         prefix the text with a space, like LLaMA-2\n"
    "  --user-defined-symbols S   comma-separated pieces always kept whole\n"
    "  --character-coverage X     share of characters to keep (default 0.9995)\n"
    "  --max-sentence-length N    skip longer lines (bytes, default 4192)\n"
    "  --input-sentence-size N    sample N lines (default 0: all)\n"
    "  --seed N                   seed for sampling\n";

static int tokenizer_train(int argc, char **argv)
{
    cJSON *cfg = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(cfg, "input");
    int rc = CLI_OK;
    for (int i = 1; i < argc && rc == CLI_OK; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (cli_is_help(a)) {
            fputs(train_help, stdout);
            cJSON_Delete(cfg);
            return CLI_OK;
        } else if (strcmp(a, "--no-byte-fallback") == 0) {
            cJSON_AddFalseToObject(cfg, "byte_fallback");
        } else if (strcmp(a, "--no-split-digits") == 0) {
            cJSON_AddFalseToObject(cfg, "split_digits");
        } else if (strcmp(a, "--add-dummy-prefix") == 0) {
            cJSON_AddTrueToObject(cfg, "add_dummy_prefix");
        } else if (!v) {
            rc = cli_usage_error("tokenizer train", "unknown or incomplete option '%s'", a);
        } else if (strcmp(a, "--input") == 0) {
            cJSON_AddItemToArray(inputs, cJSON_CreateString(v));
            i++;
        } else if (strcmp(a, "--out") == 0) {
            cJSON_AddStringToObject(cfg, "out", v);
            i++;
        } else if (strcmp(a, "--user-defined-symbols") == 0) {
            cJSON *syms = cJSON_AddArrayToObject(cfg, "user_defined_symbols");
            for (const char *p = v; *p;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                char *sym = strndup(p, n);
                cJSON_AddItemToArray(syms, cJSON_CreateString(sym));
                free(sym);
                p += n + (comma != NULL);
            }
            i++;
        } else {
            static const char *const num_flags[][2] = {
                { "--vocab-size", "vocab_size" }, { "--character-coverage", "character_coverage" },
                { "--max-sentence-length", "max_sentence_length" },
                { "--input-sentence-size", "input_sentence_size" }, { "--seed", "seed" } };
            const char *key = NULL;
            for (size_t k = 0; k < sizeof num_flags / sizeof *num_flags; k++)
                if (strcmp(a, num_flags[k][0]) == 0) key = num_flags[k][1];
            double d = key ? strtod(v, &end) : 0;
            if (!key || *end || end == v)
                rc = cli_usage_error("tokenizer train", "unknown option or bad value: %s %s", a, v);
            else
                cJSON_AddNumberToObject(cfg, key, d);
            i++;
        }
    }
    char *text = rc == CLI_OK ? cJSON_PrintUnformatted(cfg) : NULL;
    cJSON_Delete(cfg);
    if (rc != CLI_OK) return rc;
    ilm_status s = ilm_tokenizer_train(text, cli_progress, NULL);
    cJSON_free(text);
    cli_progress_done();
    if (s != ILM_OK) return cli_fail(s);
    return CLI_OK;
}

static const cli_command tokenizer_commands[] = {
    { "train", tokenizer_train, "learn a SentencePiece-BPE tokenizer.model from text" },
    { NULL, NULL, NULL },
};

int cmd_tokenizer(int argc, char **argv)
{
    return cli_dispatch("internlm tokenizer", tokenizer_commands, argc - 1, argv + 1);
}
