/* `internlm generate`, `chat`, `score` and `perplexity`. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Options shared by the model commands. */
typedef struct model_args {
    const char *model, *adapter, *quantize, *prompt, *text, *ids, *file, *system;
    cJSON      *gen;     /* generation config being built */
    long        context; /* 0: not given (the session's default) */
    long        ctx_len, chunks;
    bool        json, chat;
} model_args;

/* Parses argv; `allowed` lists the long options the command takes. */
static int parse_args(const char *cmd, const char *help, const char *allowed, int argc,
                      char **argv, model_args *a, bool *helped)
{
    *a = (model_args){ .gen = cJSON_CreateObject() };
    *helped = false;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(o)) {
            fputs(help, stdout);
            *helped = true;
            return CLI_OK;
        }
        char key[64];
        snprintf(key, sizeof key, " %s ", o);
        if (strncmp(o, "--", 2) != 0 || !strstr(allowed, key))
            return cli_usage_error(cmd, "unknown option '%s'", o);
        if (strcmp(o, "--json") == 0) { a->json = true; continue; }
        if (strcmp(o, "--chat") == 0) { a->chat = true; continue; }
        if (strcmp(o, "--special") == 0) { cJSON_AddTrueToObject(a->gen, "special"); continue; }
        if (!v) return cli_usage_error(cmd, "%s needs a value", o);
        i++;
        if (strcmp(o, "--model") == 0) a->model = v;
        else if (strcmp(o, "--adapter") == 0) a->adapter = v;
        else if (strcmp(o, "--quantize") == 0) a->quantize = v;
        else if (strcmp(o, "--prompt") == 0) a->prompt = v;
        else if (strcmp(o, "--text") == 0) a->text = v;
        else if (strcmp(o, "--ids") == 0) a->ids = v;
        else if (strcmp(o, "--file") == 0) a->file = v;
        else if (strcmp(o, "--system") == 0) a->system = v;
        else {
            char *end;
            double d = strtod(v, &end);
            if (*end || end == v) return cli_usage_error(cmd, "%s wants a number, got '%s'", o, v);
            bool count = !strcmp(o, "--context") || !strcmp(o, "--ctx") || !strcmp(o, "--chunks");
            /* A count of 0 is not "the default": leaving the option out is. */
            if (count && !(d >= 1 && d <= 2147483647.0 && d == floor(d)))
                return cli_usage_error(cmd, "%s wants a whole number of at least 1, got '%s'", o, v);
            if (strcmp(o, "--context") == 0) a->context = (long)d;
            else if (strcmp(o, "--ctx") == 0) a->ctx_len = (long)d;
            else if (strcmp(o, "--chunks") == 0) a->chunks = (long)d;
            else {
                /* --max-tokens -> "max_tokens", etc.: the generation config keys */
                char k[64];
                size_t n = 0;
                for (const char *p = o + 2; *p && n < sizeof k - 1; p++) k[n++] = *p == '-' ? '_' : *p;
                k[n] = '\0';
                cJSON_AddNumberToObject(a->gen, k, d);
            }
        }
    }
    if (!a->model) return cli_usage_error(cmd, "--model PATH is required");
    return CLI_OK;
}

static int load(const model_args *a, ilm_model **m, ilm_session **s)
{
    ilm_status st = cli_model_load(a->model, a->adapter, a->quantize, m);
    char cfg[64] = "";
    if (a->context > 0) snprintf(cfg, sizeof cfg, "{\"context\": %ld}", a->context);
    if (st == ILM_OK) st = ilm_session_create(*m, cfg, s);
    if (st != ILM_OK) {
        ilm_model_free(*m);
        *m = NULL;
        return cli_fail(st);
    }
    return CLI_OK;
}

static int print_text(void *user, const char *text, size_t len)
{
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static const char generate_help[] =
    "usage: internlm generate --model PATH --prompt TEXT [options]\n"
    "\n"
    "Continues TEXT (or, with --chat, answers it as a user message in the model's\n"
    "chat template) and streams the result.\n"
    "\n"
    "  --model PATH          HF model directory or .gguf file\n"
    "  --adapter DIR         a PEFT LoRA adapter applied at load (not merged)\n"
    "  --quantize nf4|fp4    the linears quantized to 4 bits at load (a QLoRA base)\n"
    "  --max-tokens N        (256)   --temperature T (0.8; 0 = greedy)\n"
    "  --top-k K (40)  --top-p P (0.95)  --min-p P (0.05)\n"
    "  --repetition-penalty R (1.0)  --seed S (0)  --context N\n"
    "  --chat                wrap the prompt in the chat template (as a user\n"
    "                        message: special tokens written in it stay text)\n"
    "  --special             recognise special tokens written in the prompt\n";

int cmd_generate(int argc, char **argv)
{
    model_args a;
    bool helped;
    int rc = parse_args("generate", generate_help,
                        " --model --adapter --quantize --prompt --max-tokens --temperature --top-k --top-p --min-p "
                        "--repetition-penalty --repeat-last-n --seed --context --chat --special ",
                        argc, argv, &a, &helped);
    if (rc == CLI_OK && !helped && !a.prompt) rc = cli_usage_error("generate", "--prompt is required");
    ilm_model *m = NULL;
    ilm_session *s = NULL;
    if (rc != CLI_OK || helped || (rc = load(&a, &m, &s)) != CLI_OK) {
        cJSON_Delete(a.gen);
        return rc;
    }
    ilm_status st = ILM_OK;
    if (a.chat) {
        /* The template's markers are control ids; the user's text is text,
         * whatever it holds (--special does not apply to it). */
        cJSON *msgs = cJSON_CreateArray(), *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "user");
        cJSON_AddStringToObject(msg, "content", a.prompt);
        cJSON_AddItemToArray(msgs, msg);
        char *j = cJSON_PrintUnformatted(msgs);
        int32_t *ids = NULL;
        size_t n = 0;
        st = ilm_chat_encode(m, j, &ids, &n);
        if (st == ILM_OK) st = ilm_session_eval(s, ids, n, NULL);
        ilm_free(ids);
        cJSON_free(j);
        cJSON_Delete(msgs);
    }
    char *cfg = cJSON_PrintUnformatted(a.gen);
    if (st == ILM_OK) st = ilm_session_generate(s, a.chat ? NULL : a.prompt, cfg, print_text, NULL, NULL);
    printf("\n");
    cJSON_free(cfg);
    cJSON_Delete(a.gen);
    ilm_session_free(s);
    ilm_model_free(m);
    return st == ILM_OK ? CLI_OK : cli_fail(st);
}

static const char chat_help[] =
    "usage: internlm chat --model PATH [--adapter DIR] [--system TEXT] [generation options]\n"
    "\n"
    "An interactive, multi-turn conversation in the model's chat template,\n"
    "streamed as it is generated.  Type a message and Enter; an empty line or\n"
    "end of input ends the chat.  Generation options as for `internlm generate`.\n";

/* Length of the common prefix of two id arrays. */
static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

int cmd_chat(int argc, char **argv)
{
    model_args a;
    bool helped;
    int rc = parse_args("chat", chat_help,
                        " --model --adapter --quantize --system --max-tokens --temperature --top-k --top-p --min-p "
                        "--repetition-penalty --repeat-last-n --seed --context ",
                        argc, argv, &a, &helped);
    ilm_model *m = NULL;
    ilm_session *s = NULL;
    if (rc != CLI_OK || helped || (rc = load(&a, &m, &s)) != CLI_OK) {
        cJSON_Delete(a.gen);
        return rc;
    }
    char *cfg = cJSON_PrintUnformatted(a.gen);
    cJSON *msgs = cJSON_CreateArray();
    if (a.system) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", a.system);
        cJSON_AddItemToArray(msgs, sys);
    }
    ilm_status st = ILM_OK;
    char line[8192];
    for (;;) {
        fputs("> ", stderr);
        if (!fgets(line, sizeof line, stdin)) break;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0]) break;
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "user");
        cJSON_AddStringToObject(msg, "content", line);
        cJSON_AddItemToArray(msgs, msg);
        /* Encode the whole conversation (messages as plain text, so typed
         * "<|im_start|>" stays text), keep the cached prefix it shares with
         * the session, and generate from the rest. */
        char *j = cJSON_PrintUnformatted(msgs), *reply = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        st = ilm_chat_encode(m, j, &ids, &n);
        cJSON_free(j);
        if (st == ILM_OK) {
            const int32_t *have;
            size_t nh = ilm_session_tokens(s, &have), keep = common_prefix(have, nh, ids, n);
            if (keep == n && keep > 0) keep--; /* re-run one id to get logits */
            st = ilm_session_truncate(s, keep);
            if (st == ILM_OK) st = ilm_session_eval(s, ids + keep, n - keep, NULL);
        }
        ilm_free(ids);
        if (st == ILM_OK) st = ilm_session_generate(s, NULL, cfg, print_text, NULL, &reply);
        printf("\n");
        if (st != ILM_OK) break;
        cJSON *ans = cJSON_CreateObject();
        cJSON_AddStringToObject(ans, "role", "assistant");
        cJSON_AddStringToObject(ans, "content", reply);
        cJSON_AddItemToArray(msgs, ans);
        ilm_free(reply);
    }
    cJSON_Delete(msgs);
    cJSON_free(cfg);
    cJSON_Delete(a.gen);
    ilm_session_free(s);
    ilm_model_free(m);
    return st == ILM_OK ? CLI_OK : cli_fail(st);
}

/* The tokenizer files' BOS default (tokenizer_config.json's add_bos_token,
 * or the kind's). */
static bool tokenizer_adds_bos(const ilm_tokenizer *tok)
{
    char *info = NULL;
    bool add_bos = false;
    if (tok && ilm_tokenizer_info(tok, &info) == ILM_OK) {
        cJSON *j = cJSON_Parse(info);
        add_bos = cJSON_IsTrue(cJSON_GetObjectItem(j, "add_bos"));
        cJSON_Delete(j);
    }
    ilm_free(info);
    return add_bos;
}

static const char score_help[] =
    "usage: internlm score --model PATH [--adapter DIR] (--text TEXT | --ids \"1 2 3\") [--json]\n"
    "\n"
    "Per-token log-probabilities of the sequence under the model: token i is\n"
    "scored given the tokens before it (the first has no score), and their sum.\n"
    "Text is tokenized with the tokenizer's BOS setting.\n";

static void print_scores(const ilm_tokenizer *tok, const int32_t *ids, size_t n, const double *lp,
                         bool json)
{
    double sum = 0;
    for (size_t i = 1; i < n; i++) sum += lp[i];
    if (!json) {
        for (size_t i = 0; i < n; i++) {
            const char *piece = tok ? ilm_tokenizer_piece(tok, ids[i]) : NULL;
            if (i) printf("%6zu %8d  %-24s %12.6f\n", i, ids[i], piece ? piece : "", lp[i]);
            else printf("%6zu %8d  %-24s %12s\n", i, ids[i], piece ? piece : "", "(context)");
        }
        printf("sum of %zu log-probabilities: %.6f\n", n ? n - 1 : 0, sum);
        return;
    }
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "tokens");
    for (size_t i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        const char *piece = tok ? ilm_tokenizer_piece(tok, ids[i]) : NULL;
        cJSON_AddNumberToObject(e, "id", ids[i]);
        if (piece) cJSON_AddStringToObject(e, "piece", piece);
        if (i) cJSON_AddNumberToObject(e, "logprob", lp[i]);
        else cJSON_AddNullToObject(e, "logprob");
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddNumberToObject(j, "sum_logprob", sum);
    cJSON_AddNumberToObject(j, "scored", n ? (double)(n - 1) : 0);
    char *t = cJSON_PrintUnformatted(j);
    printf("%s\n", t);
    cJSON_free(t);
    cJSON_Delete(j);
}

int cmd_score(int argc, char **argv)
{
    model_args a;
    bool helped;
    int rc = parse_args("score", score_help, " --model --adapter --quantize --text --ids --json --context ", argc, argv,
                        &a, &helped);
    if (rc == CLI_OK && !helped && !a.text == !a.ids)
        rc = cli_usage_error("score", "give exactly one of --text and --ids");
    cJSON_Delete(a.gen);
    int32_t *ids = NULL;
    size_t n = 0;
    if (rc == CLI_OK && !helped && a.ids && !(ids = cli_parse_ids(a.ids, &n)))
        rc = cli_usage_error("score", "--ids wants ids separated by spaces");
    ilm_model *m = NULL;
    ilm_session *s = NULL;
    if (rc != CLI_OK || helped || (rc = load(&a, &m, &s)) != CLI_OK) {
        free(ids);
        return rc;
    }
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    ilm_status st = ILM_OK;
    if (a.text) {
        int32_t *t = NULL;
        st = tok ? ilm_tokenizer_encode(tok, a.text, strlen(a.text),
                                        tokenizer_adds_bos(tok) ? ILM_TOKENIZE_BOS : 0, &t, &n)
                 : ILM_ERR_STATE;
        if (st == ILM_OK && (ids = malloc((n ? n : 1) * sizeof *ids))) memcpy(ids, t, n * sizeof *ids);
        ilm_free(t);
        if (st == ILM_OK && !ids) st = ILM_ERR_NOMEM;
    }
    double *lp = st == ILM_OK ? malloc((n ? n : 1) * sizeof *lp) : NULL;
    if (st == ILM_OK && !lp) st = ILM_ERR_NOMEM;
    if (st == ILM_OK) st = ilm_session_logprobs(s, ids, n, lp);
    if (st == ILM_OK) print_scores(tok, ids, n, lp, a.json);
    free(lp);
    free(ids);
    ilm_session_free(s);
    ilm_model_free(m);
    return st == ILM_OK ? CLI_OK : cli_fail(st);
}

static const char perplexity_help[] =
    "usage: internlm perplexity --model PATH [--adapter DIR] --file F [--ctx N] [--chunks K]\n"
    "\n"
    "Perplexity of the text in F the way llama.cpp's llama-perplexity computes it:\n"
    "the whole text is tokenized once, cut into chunks of N tokens (default 512),\n"
    "each evaluated from an empty cache (its first token replaced by BOS when the\n"
    "tokenizer adds one), and only the second half of each chunk is scored.\n";

int cmd_perplexity(int argc, char **argv)
{
    model_args a;
    bool helped;
    int rc = parse_args("perplexity", perplexity_help, " --model --adapter --quantize --file --ctx --chunks --json ",
                        argc, argv, &a, &helped);
    cJSON_Delete(a.gen);
    if (rc == CLI_OK && !helped && !a.file) rc = cli_usage_error("perplexity", "--file is required");
    if (rc != CLI_OK || helped) return rc;
    long n_ctx = a.ctx_len > 0 ? a.ctx_len : 512;
    a.context = n_ctx;
    FILE *f = fopen(a.file, "rb");
    if (!f) {
        fprintf(stderr, "internlm perplexity: cannot open '%s': %s\n", a.file, strerror(errno));
        return CLI_ERROR;
    }
    size_t got = 0;
    char *text = cli_read_all(f, &got);
    fclose(f);
    if (!text) return cli_fail(ILM_ERR_NOMEM);
    /* llama.cpp drops one trailing newline of the file. */
    if (got && text[got - 1] == '\n') got--;
    ilm_model *m = NULL;
    ilm_session *s = NULL;
    if ((rc = load(&a, &m, &s)) != CLI_OK) {
        free(text);
        return rc;
    }
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    bool add_bos = tokenizer_adds_bos(tok);
    int32_t *ids = NULL;
    size_t n = 0;
    ilm_status st = tok ? ilm_tokenizer_encode(tok, text, got, add_bos ? ILM_TOKENIZE_BOS : 0, &ids, &n)
                        : ILM_ERR_STATE;
    free(text);
    size_t chunks = n / (size_t)n_ctx;
    if (a.chunks > 0 && (size_t)a.chunks < chunks) chunks = (size_t)a.chunks;
    double nll = 0;
    size_t count = 0;
    double *lp = malloc((size_t)n_ctx * sizeof *lp);
    int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
    if (st == ILM_OK && (!lp || !chunk)) st = ILM_ERR_NOMEM;
    for (size_t c = 0; c < chunks && st == ILM_OK; c++) {
        memcpy(chunk, ids + c * (size_t)n_ctx, (size_t)n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = ilm_tokenizer_bos(tok);
        st = ilm_session_truncate(s, 0);
        if (st == ILM_OK) st = ilm_session_logprobs(s, chunk, (size_t)n_ctx, lp);
        /* Positions n_ctx/2 .. n_ctx-2 predict the next token. */
        for (long i = n_ctx / 2 + 1; st == ILM_OK && i < n_ctx; i++) {
            nll -= lp[i];
            count++;
        }
        if (st == ILM_OK) fprintf(stderr, "[%zu] %.4f\n", c + 1, exp(nll / (double)count));
    }
    if (st == ILM_OK && !count) {
        fprintf(stderr, "internlm perplexity: the text has fewer than %ld tokens\n", n_ctx);
        rc = CLI_ERROR;
    } else if (st == ILM_OK && a.json) {
        printf("{\"ppl\":%.6f,\"mean_nll\":%.6f,\"chunks\":%zu,\"ctx\":%ld,\"scored\":%zu}\n",
               exp(nll / (double)count), nll / (double)count, chunks, n_ctx, count);
    } else if (st == ILM_OK) {
        printf("perplexity %.4f over %zu tokens (%zu chunks of %ld)\n", exp(nll / (double)count),
               count, chunks, n_ctx);
    }
    free(lp);
    free(chunk);
    ilm_free(ids);
    ilm_session_free(s);
    ilm_model_free(m);
    if (rc != CLI_OK) return rc;
    return st == ILM_OK ? CLI_OK : cli_fail(st);
}

static const char merge_help[] =
    "usage: internlm merge --model BASE --adapter DIR --out DIR\n"
    "\n"
    "Merges a PEFT LoRA adapter into its base (W + s B A) and writes a Hugging Face\n"
    "directory (config.json, model.safetensors; the base's tokenizer files when it\n"
    "is a directory) that transformers and this library load.  Merged weights are\n"
    "fp32, as are the GGUF quantizations of a .gguf base (q/k rows put back in\n"
    "Hugging Face order); other weights keep their type.  Tensors are written one\n"
    "at a time.\n";

/* The base directory's tokenizer and generation files, copied as they are. */
static ilm_status copy_side_files(const char *from, const char *to)
{
    static const char *const names[] = { "tokenizer.json", "tokenizer.model", "tokenizer_config.json",
                                         "special_tokens_map.json", "generation_config.json",
                                         "vocab.json", "merges.txt", NULL };
    for (const char *const *n = names; *n; n++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", from, *n);
        snprintf(dst, sizeof dst, "%s/%s", to, *n);
        FILE *f = fopen(src, "rb");
        if (!f) continue;
        size_t len = 0;
        char *data = cli_read_all(f, &len);
        fclose(f);
        FILE *g = data ? fopen(dst, "wb") : NULL;
        bool ok = g && fwrite(data, 1, len, g) == len;
        if (g && fclose(g) != 0) ok = false;
        free(data);
        if (!ok) {
            fprintf(stderr, "internlm merge: cannot copy %s to %s: %s\n", src, dst, strerror(errno));
            return ILM_ERR_IO;
        }
    }
    return ILM_OK;
}

int cmd_merge(int argc, char **argv)
{
    const char *model = NULL, *adapter = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(o)) {
            fputs(merge_help, stdout);
            return CLI_OK;
        }
        const char **slot = !strcmp(o, "--model") ? &model : !strcmp(o, "--adapter") ? &adapter
                            : !strcmp(o, "--out") ? &out : NULL;
        if (!slot) return cli_usage_error("merge", "unknown option '%s'", o);
        if (!v) return cli_usage_error("merge", "%s needs a value", o);
        *slot = argv[++i];
    }
    if (!model || !adapter || !out)
        return cli_usage_error("merge", "--model, --adapter and --out are required");
    ilm_model *m = NULL;
    ilm_status st = cli_model_load(model, adapter, NULL, &m);
    if (st == ILM_OK) st = ilm_model_save(m, out);
    ilm_model_free(m);
    if (st != ILM_OK) return cli_fail(st);
    struct stat sb;
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode) && copy_side_files(model, out) != ILM_OK)
        return CLI_ERROR;
    if (!S_ISDIR(sb.st_mode))
        fprintf(stderr, "internlm merge: %s is a GGUF file: its tokenizer is not written to %s\n",
                model, out);
    printf("merged %s + %s -> %s\n", model, adapter, out);
    return CLI_OK;
}

static const char quantize_help[] =
    "usage: internlm quantize --model IN --format F --out OUT [--blocksize N]\n"
    "                         [--no-double-quant]\n"
    "\n"
    "  nf4, fp4          every linear of the layers in bitsandbytes' 4-bit format\n"
    "                    (blocks of N elements, default 64, double quantization\n"
    "                    unless --no-double-quant): OUT is a Hugging Face\n"
    "                    directory with its quantization_config that transformers\n"
    "                    + bitsandbytes load, as does this library; the codes are\n"
    "                    bitsandbytes' own.  IN is any model this library loads;\n"
    "                    its tokenizer files are copied when IN is a directory.\n"
    "  q8_0, q4_0, q4_1  IN a GGUF file, OUT a GGUF file llama.cpp loads: every\n"
    "                    matrix requantized as ggml's reference quantizers do, the\n"
    "                    metadata and tokenizer carried over.\n"
    "\n"
    "One tensor is converted at a time.\n";

int cmd_quantize(int argc, char **argv)
{
    const char *model = NULL, *format = NULL, *out = NULL, *blocksize = NULL;
    bool nested = true;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_is_help(o)) {
            fputs(quantize_help, stdout);
            return CLI_OK;
        }
        if (!strcmp(o, "--no-double-quant")) {
            nested = false;
            continue;
        }
        const char **slot = !strcmp(o, "--model") ? &model : !strcmp(o, "--format") ? &format
                            : !strcmp(o, "--out") ? &out : !strcmp(o, "--blocksize") ? &blocksize
                            : NULL;
        if (!slot) return cli_usage_error("quantize", "unknown option '%s'", o);
        if (!v) return cli_usage_error("quantize", "%s needs a value", o);
        *slot = argv[++i];
    }
    if (!model || !format || !out)
        return cli_usage_error("quantize", "--model, --format and --out are required");
    const bool q4 = !strcmp(format, "nf4") || !strcmp(format, "fp4");
    if (!q4 && strcmp(format, "q8_0") && strcmp(format, "q4_0") && strcmp(format, "q4_1"))
        return cli_usage_error("quantize", "--format is '%s', not nf4, fp4, q8_0, q4_0 or q4_1",
                               format);
    if (!q4 && (blocksize || !nested))
        return cli_usage_error("quantize", "--blocksize and --no-double-quant are for nf4 and fp4");
    char *end = NULL;
    long bs = blocksize ? strtol(blocksize, &end, 10) : 64;
    if (blocksize && (*end || bs <= 0))
        return cli_usage_error("quantize", "--blocksize wants a whole number, got '%s'", blocksize);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "format", format);
    if (q4) {
        cJSON_AddNumberToObject(cfg, "blocksize", (double)bs);
        cJSON_AddBoolToObject(cfg, "double_quant", nested);
    }
    char *text = cJSON_PrintUnformatted(cfg);
    cJSON_Delete(cfg);
    ilm_status st = ilm_model_quantize(model, out, text);
    cJSON_free(text);
    if (st != ILM_OK) return cli_fail(st);
    struct stat sb;
    if (q4 && stat(model, &sb) == 0 && S_ISDIR(sb.st_mode) && copy_side_files(model, out) != ILM_OK)
        return CLI_ERROR;
    if (q4)
        printf("quantized %s -> %s (%s, blocksize %ld%s)\n", model, out, format, bs,
               nested ? ", double quantization" : "");
    else
        printf("quantized %s -> %s (%s)\n", model, out, format);
    return CLI_OK;
}
