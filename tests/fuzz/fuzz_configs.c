/* The JSON configs the library accepts, each through its public entry
 * point: byte 0 picks the target (table below), the rest is the config.
 * A bad config must fail cleanly; a good one does one step of work (the
 * progress callback cancels, generation stops at its first text).
 *
 * The harness runs in its private directory, which holds small assets the
 * configs may name: "m" (a tiny model), "t.model" (a tokenizer), "x.txt"
 * (text), "c" (a corpus of x.txt).  Targets that write files get those
 * assets back after each input.  Inputs that would reach outside the
 * directory (a string starting with '/' or holding "..") or ask for
 * minutes of work (a size key over 256, "threads" over 4) are skipped;
 * their parsing is the same as that of the inputs that run.  Seeds: one
 * good config per target, written by the seed mode; json.dict. */
#include "fuzz.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { T_SESSION, T_MODEL_LOAD, T_GENERATE, T_CORPUS_BUILD, T_TRAINER, T_TOKENIZER_TRAIN, T_MODEL_CREATE,
       T_BENCH_GEMM, T_BENCH_GENERATE, T_BENCH_TOKENIZE, T_BENCH_CORPUS, T_BENCH_TRAIN, T_COUNT };

static const char *const g_names[T_COUNT] = {
    "session", "model_load", "generate", "corpus_build", "trainer", "tokenizer_train", "model_create",
    "bench_gemm", "bench_generate", "bench_tokenize", "bench_corpus", "bench_train",
};

#define TINY_CONFIG                                                                                      \
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 2000, "      \
    "\"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, " \
    "\"num_key_value_heads\": 1, \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-5, "              \
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}"

/* One good config per target: the seeds. */
static const char *const g_seeds[T_COUNT] = {
    "{\"context\": 16, \"threads\": 1}",
    "{\"threads\": 1}",
    "{\"max_tokens\": 4, \"temperature\": 0.7, \"top_k\": 5, \"top_p\": 0.9, \"min_p\": 0.01, "
    "\"repetition_penalty\": 1.1, \"repeat_last_n\": 8, \"seed\": 3, \"stop\": [\"\\n\"], "
    "\"special\": true, \"add_bos\": false}",
    "{\"inputs\": [\"x.txt\"], \"output\": \"o\", \"tokenizer\": \"t.model\", \"mode\": \"pretrain\", "
    "\"overwrite\": true, \"max_length\": 0, \"shard_tokens\": 64, \"clean\": {}, \"filter\": false, "
    "\"dedup\": false}",
    "{\"data\": \"c\", \"eval_data\": \"c\", \"model_config\": " TINY_CONFIG ", \"steps\": 2, "
    "\"batch\": 2, \"seqlen\": 8, \"grad_accum\": 1, \"seed\": 7, \"optimizer\": {\"lr\": 1e-2, "
    "\"warmup_steps\": 1, \"min_lr\": 1e-3, \"schedule\": \"cosine\"}, \"checkpoint_dir\": \"k\", "
    "\"log\": \"k.jsonl\", \"eval_interval\": 1, \"eval_batches\": 1, \"resume\": true, \"threads\": 1}",
    "{\"input\": [\"x.txt\"], \"out\": \"o.model\", \"vocab_size\": 300, \"byte_fallback\": true, "
    "\"split_digits\": true, \"user_defined_symbols\": [\"<x>\"], \"character_coverage\": 0.99, "
    "\"add_dummy_prefix\": false, \"max_sentence_length\": 256, \"input_sentence_size\": 0, \"seed\": 1}",
    TINY_CONFIG,
    "{\"sizes\": [8, 16], \"threads\": 1, \"min_time\": 0.01, \"min_reps\": 1}",
    "{\"model\": \"m\", \"prompt_tokens\": 4, \"gen_tokens\": 2, \"threads\": 1, \"reps\": 1}",
    "{\"tokenizer\": \"t.model\", \"file\": \"x.txt\", \"threads\": 1, \"min_time\": 0.01}",
    "{\"inputs\": [\"x.txt\"], \"tokenizer\": \"t.model\", \"threads\": 1, \"reps\": 1, \"filter\": {}, "
    "\"dedup\": false}",
    "{\"model_config\": " TINY_CONFIG ", \"batch\": 1, \"seqlen\": 8, \"docs_per_row\": 2, \"steps\": 1, "
    "\"warmup\": 0, \"threads\": 1, \"recompute\": true}",
};

static ilm_model *g_model;
static ilm_session *g_session;
static char g_work[FUZZ_PATH_MAX], g_pack[FUZZ_PATH_MAX];

static const char x_txt[] =
    "The quick brown fox jumps over the lazy dog.\n"
    "Pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump!\n"
    "Sphinx of black quartz, judge my vow. 0123456789\n"
    "{\"text\": \"not json, just a line\"}\n";

/* The assets, made once in g_work and packed into g_pack for restoring. */
static void make_assets(void)
{
    char path[FUZZ_PATH_MAX];
    fuzz_join(path, g_work, "m");
    if (fuzz_tiny_model(path, 0, 2000) != 0) fuzz_fail("tiny model", ilm_last_error());
    size_t n = 0;
    uint8_t *tok = fuzz_slurp(fuzz_spm_path(0), &n);
    fuzz_join(path, g_work, "t.model");
    if (!tok || fuzz_write(path, tok, n) != 0) fuzz_fail("tokenizer", path);
    free(tok);
    fuzz_join(path, g_work, "x.txt");
    fuzz_write(path, x_txt, sizeof x_txt - 1);
    if (chdir(g_work) != 0) fuzz_fail("chdir", g_work);
    if (ilm_corpus_build("{\"inputs\": [\"x.txt\"], \"output\": \"c\", \"tokenizer\": \"t.model\", "
                         "\"filter\": false, \"dedup\": false}",
                         NULL, NULL, NULL) != ILM_OK)
        fuzz_fail("corpus", ilm_last_error());
    fuzz_join(g_pack, fuzz_dir(), "assets.pack");
    if (fuzz_pack_dir(g_work, g_pack) != 0) fuzz_fail("pack", g_pack);
}

static void restore_assets(void)
{
    size_t n = 0;
    uint8_t *p = fuzz_slurp(g_pack, &n);
    if (!p) fuzz_fail("read", g_pack);
    fuzz_unpack(g_work, p, n, "x");
    free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (fuzz_seed_dir()) {
        for (int t = 0; t < T_COUNT; t++) {
            size_t n = strlen(g_seeds[t]);
            uint8_t *p = malloc(n + 1);
            p[0] = (uint8_t)t;
            memcpy(p + 1, g_seeds[t], n);
            fuzz_seed(g_names[t], p, n + 1);
            free(p);
        }
        exit(0);
    }
    fuzz_limit_memory();
    ilm_set_num_threads(1);
    fuzz_join(g_work, fuzz_dir(), "work");
    fuzz_reset_dir(g_work);
    make_assets();
    if (ilm_model_load("m", NULL, &g_model) != ILM_OK ||
        ilm_session_create(g_model, "{\"context\": 64}", &g_session) != ILM_OK)
        fuzz_fail("tiny model", ilm_last_error());
    return 0;
}

static const char *const g_size_keys[] = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "batch", "seqlen", "grad_accum",
    "sizes", "prompt_tokens", "gen_tokens", "reps", "min_reps", "steps", "warmup", "max_tokens",
    "eval_batches", "docs_per_row", "context", "min_time", "max_sentence_length",
};

/* Whether the parsed config may run (see the top of the file). */
static int runnable(const cJSON *v, int size_key)
{
    if (cJSON_IsString(v))
        return v->valuestring[0] != '/' && !strstr(v->valuestring, "..");
    if (cJSON_IsNumber(v)) return !size_key || v->valuedouble <= 256;
    for (const cJSON *c = v->child; c; c = c->next) {
        int key = size_key;
        if (v->type == cJSON_Object) {
            key = 0;
            for (size_t i = 0; i < sizeof g_size_keys / sizeof *g_size_keys; i++)
                key |= strcmp(c->string, g_size_keys[i]) == 0;
            if (strcmp(c->string, "threads") == 0 && cJSON_IsNumber(c) && c->valuedouble > 4) return 0;
        }
        if (!runnable(c, key)) return 0;
    }
    return 1;
}

/* Whether a bench gemm config is well formed, so that it would measure the
 * machine's peak (seconds under the sanitizers) before any progress call:
 * such configs are skipped (the seed shows that they parse); the others
 * run, and must fail cleanly. */
static int gemm_well_formed(const cJSON *v)
{
    if (!cJSON_IsObject(v)) return 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!strcmp(c->string, "sizes") && cJSON_IsArray(c)) {
            for (const cJSON *e = c->child; e; e = e->next)
                if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 1e6) return 0;
        } else if (strcmp(c->string, "threads") && strcmp(c->string, "min_time") &&
                   strcmp(c->string, "min_reps")) {
            return 0;
        } else if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > 1e6) {
            return 0;
        }
    }
    return 1;
}

static int stop_text(void *user, const char *text, size_t len)
{
    (void)text, (void)len;
    return ++*(int *)user >= 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int target = data[0] % T_COUNT;
    char *cfg = malloc(size);
    memcpy(cfg, data + 1, size - 1);
    cfg[size - 1] = 0;
    cJSON *pre = cJSON_Parse(cfg);
    int run = !pre || (runnable(pre, 0) && !(target == T_BENCH_GEMM && gemm_well_formed(pre)));
    cJSON_Delete(pre);
    if (!run) {
        free(cfg);
        return -1; /* not added to the corpus */
    }
    char *out = NULL;
    ilm_status s = ILM_OK;
    switch (target) {
    case T_SESSION: {
        ilm_session *ses = NULL;
        s = ilm_session_create(g_model, cfg, &ses);
        if (s == ILM_OK) {
            const int32_t ids[3] = { 1, 2, 3 };
            (void)ilm_session_eval(ses, ids, 3, NULL);
        }
        ilm_session_free(ses);
        break;
    }
    case T_MODEL_LOAD: {
        ilm_model *m = NULL;
        s = ilm_model_load("m", cfg, &m);
        ilm_model_free(m);
        break;
    }
    case T_GENERATE: {
        int calls = 0;
        (void)ilm_session_truncate(g_session, 0);
        s = ilm_session_generate(g_session, "Hello", cfg, stop_text, &calls, &out);
        break;
    }
    case T_CORPUS_BUILD: s = ilm_corpus_build(cfg, fuzz_cancel, NULL, &out); break;
    case T_TRAINER: {
        ilm_trainer *t = NULL;
        s = ilm_trainer_create(cfg, &t);
        if (s == ILM_OK) {
            char *info = NULL;
            if (ilm_trainer_info(t, &info) == ILM_OK) ilm_free(info);
        }
        ilm_trainer_free(t);
        break;
    }
    case T_TOKENIZER_TRAIN: s = ilm_tokenizer_train(cfg, fuzz_cancel, NULL); break;
    case T_MODEL_CREATE: {
        ilm_model *m = NULL;
        s = ilm_model_create(cfg, 1, &m);
        ilm_model_free(m);
        break;
    }
    case T_BENCH_GEMM: s = ilm_bench_gemm(cfg, fuzz_cancel, NULL, &out); break;
    case T_BENCH_GENERATE: s = ilm_bench_generate(cfg, fuzz_cancel, NULL, &out); break;
    case T_BENCH_TOKENIZE: s = ilm_bench_tokenize(cfg, fuzz_cancel, NULL, &out); break;
    case T_BENCH_CORPUS: s = ilm_bench_corpus(cfg, fuzz_cancel, NULL, &out); break;
    case T_BENCH_TRAIN: s = ilm_bench_train(cfg, fuzz_cancel, NULL, &out); break;
    }
    if (s != ILM_OK && out) fuzz_fail(g_names[target], "output after a failure");
    if (s != ILM_OK && !*ilm_last_error()) fuzz_fail(g_names[target], "a failure without a message");
    ilm_free(out);
    free(cfg);
    if (target == T_CORPUS_BUILD || target == T_TRAINER || target == T_TOKENIZER_TRAIN ||
        target == T_BENCH_CORPUS)
        restore_assets();
    return 0;
}
