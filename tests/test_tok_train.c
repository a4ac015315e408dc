/* The SentencePiece-BPE trainer and the tokenizer.model writer: writer round
 * trips, deterministic training that respects the config, bad configs,
 * cancellation, and agreement with sentencepiece on a model our trainer
 * wrote (tests/fixtures/tokenizer/train/, made by
 * tools/reference/train_reference.py --fixtures). */
#include "tests.h"
#include "tokenizer/internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIXTURE_DIR "tests/fixtures/tokenizer/train"

/* ---- helpers ----------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = '\0';
    if (len) *len = got;
    return buf;
}

static void spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

/* A small corpus with structure to learn: words from a fixed list joined by
 * an RNG, numbers, some Chinese, leading spaces.  Deterministic. */
static void write_corpus(const char *path, int lines)
{
    static const char *words[] = { "the", "tokenizer", "learns", "pieces", "from",
                                   "text", "and", "merges", "pairs", "of", "symbols",
                                   "frequent", "bytes", "中文", "训练", "数据",
                                   "year", "2024", "1999", "is", "a", "number" };
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ilm__rng r;
    ilm__rng_init(&r, 7, 0);
    for (int i = 0; i < lines; i++) {
        if (i % 17 == 0) fputs("  ", f);
        int n = 3 + (int)ilm__rng_below(&r, 10);
        for (int j = 0; j < n; j++)
            fprintf(f, "%s%s", j ? " " : "",
                    words[ilm__rng_below(&r, sizeof words / sizeof *words)]);
        fputc('\n', f);
    }
    fclose(f);
}

static char *config(const char *fmt, ...) ILM__PRINTF(1, 2);
static char *config(const char *fmt, ...)
{
    static char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

/* ---- the writer -------------------------------------------------------- */

/* A hand-made tokenizer with every piece type and non-default options. */
static ilm_tokenizer *handmade(void)
{
    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm__tok_new(ILM__TOK_SPM_BPE, &t), ILM_OK);
    static const struct { const char *p; float s; uint8_t type; } v[] = {
        { "<unk>", 0, ILM__PIECE_UNKNOWN }, { "<s>", 0, ILM__PIECE_CONTROL },
        { "</s>", 0, ILM__PIECE_CONTROL },  { "<pad>", 0, ILM__PIECE_CONTROL },
        { "<|im_end|>", 0, ILM__PIECE_USER_DEFINED },
        { "▁t", -0.0f, ILM__PIECE_NORMAL }, { "he", -1, ILM__PIECE_NORMAL },
        { "▁the", -2.5f, ILM__PIECE_NORMAL }, { "▁", -3, ILM__PIECE_NORMAL },
        { "t", -4, ILM__PIECE_NORMAL },     { "h", -5, ILM__PIECE_NORMAL },
        { "e", -6, ILM__PIECE_NORMAL },     { "unused", -7, ILM__PIECE_UNUSED },
    };
    int32_t n = (int32_t)(sizeof v / sizeof *v);
    ck_assert_int_eq(ilm__tok_vocab_resize(t, n + 256), ILM_OK);
    for (int32_t i = 0; i < n; i++)
        ck_assert_int_eq(ilm__tok_set_piece(t, i, v[i].p, strlen(v[i].p), v[i].s, v[i].type,
                                            "test"), ILM_OK);
    for (int b = 0; b < 256; b++) { /* byte_fallback needs all 256, after the others here */
        char p[8];
        snprintf(p, sizeof p, "<0x%02X>", b);
        ck_assert_int_eq(ilm__tok_set_piece(t, n + b, p, 6, 0, ILM__PIECE_BYTE, "test"), ILM_OK);
    }
    t->unk_id = 0, t->bos_id = 1, t->eos_id = 2, t->pad_id = 3;
    t->spm.add_dummy_prefix = true;
    t->spm.remove_extra_whitespaces = true;
    t->spm.escape_whitespaces = true;
    t->spm.byte_fallback = true;
    t->spm.split_digits = false;
    t->spm.normalizer_name = ilm__strdup("identity");
    t->spm.unk_surface = ilm__strdup(" ?? ");
    ck_assert_int_eq(ilm__spm_finish(t), ILM_OK);
    return t;
}

START_TEST(writer_round_trip)
{
    char *dir = test_tmpdir();
    char path[512], path2[512];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    snprintf(path2, sizeof path2, "%s/again.model", dir);
    ilm_tokenizer *a = handmade();
    ck_assert_int_eq(ilm__spm_write_model(a, path), ILM_OK);
    ilm_tokenizer *b = NULL;
    ck_assert_msg(ilm_tokenizer_load(path, &b) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(b->n_vocab, a->n_vocab);
    for (int32_t i = 0; i < a->n_vocab; i++) {
        ck_assert_str_eq(b->piece[i], a->piece[i]);
        ck_assert_msg(b->score[i] == a->score[i], "score of %d", (int)i);
        ck_assert_int_eq(b->type[i], a->type[i]);
    }
    ck_assert_int_eq(b->unk_id, 0);
    ck_assert_int_eq(b->bos_id, 1);
    ck_assert_int_eq(b->eos_id, 2);
    ck_assert_int_eq(b->pad_id, 3);
    ck_assert(b->spm.add_dummy_prefix && b->spm.remove_extra_whitespaces);
    ck_assert(b->spm.escape_whitespaces && b->spm.byte_fallback && !b->spm.split_digits);
    ck_assert(!b->spm.treat_whitespace_as_suffix);
    ck_assert_str_eq(b->spm.normalizer_name, "identity");
    ck_assert_str_eq(b->spm.unk_surface, " ?? ");
    /* Writing what was read gives the same bytes: the writer is a fixed
     * point of load + write. */
    ck_assert_int_eq(ilm__spm_write_model(b, path2), ILM_OK);
    size_t n1, n2;
    char *x = slurp(path, &n1), *y = slurp(path2, &n2);
    ck_assert(n1 == n2 && memcmp(x, y, n1) == 0);
    free(x);
    free(y);
    ilm_tokenizer_free(a);
    ilm_tokenizer_free(b);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(writer_rejects_other_kinds_and_gaps)
{
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/x.model", dir);
    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm__tok_new(ILM__TOK_BYTE_BPE, &t), ILM_OK);
    ck_assert_int_eq(ilm__spm_write_model(t, path), ILM_ERR_UNSUPPORTED);
    ilm_tokenizer_free(t);
    ck_assert_int_eq(ilm__tok_new(ILM__TOK_SPM_BPE, &t), ILM_OK);
    ck_assert_int_eq(ilm__tok_vocab_resize(t, 2), ILM_OK);
    ck_assert_int_eq(ilm__tok_set_piece(t, 0, "<unk>", 5, 0, ILM__PIECE_UNKNOWN, "t"), ILM_OK);
    ck_assert_int_eq(ilm__spm_write_model(t, path), ILM_ERR_INVALID_ARG); /* id 1 is a gap */
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "piece 1 is empty"));
    ck_assert(!exists(path));
    ck_assert_uint_eq(dir_entries(dir), 0);
    ilm_tokenizer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(writer_fixture_is_a_fixed_point)
{
    /* The committed model was written by this writer; reading and writing
     * it again must reproduce it byte for byte. */
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/again.model", dir);
    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm_tokenizer_load(FIXTURE_DIR "/tokenizer.model", &t), ILM_OK);
    ck_assert_int_eq(ilm__spm_write_model(t, path), ILM_OK);
    size_t n1, n2;
    char *x = slurp(FIXTURE_DIR "/tokenizer.model", &n1), *y = slurp(path, &n2);
    ck_assert(x && y && n1 == n2 && memcmp(x, y, n1) == 0);
    free(x);
    free(y);
    ilm_tokenizer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- training ---------------------------------------------------------- */

typedef struct progress_log {
    int n_count, n_merge, cancel_after;
    uint64_t last_merge_done, merge_total;
} progress_log;

static int on_progress(void *user, const char *stage, uint64_t done, uint64_t total)
{
    progress_log *p = user;
    if (strcmp(stage, "count") == 0) p->n_count++;
    if (strcmp(stage, "merge") == 0) {
        p->n_merge++;
        p->last_merge_done = done;
        p->merge_total = total;
    }
    return p->cancel_after > 0 && p->n_count + p->n_merge >= p->cancel_after;
}

START_TEST(train_small_corpus)
{
    char *dir = test_tmpdir();
    char corpus[512], m1[512], m2[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(m1, sizeof m1, "%s/a.model", dir);
    snprintf(m2, sizeof m2, "%s/b.model", dir);
    write_corpus(corpus, 3000);
    const char *cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 360, "
                             "\"user_defined_symbols\": [\"<|im_start|>\", \"<|im_end|>\"], "
                             "\"seed\": 5}", corpus, m1);
    progress_log log = { 0 };
    ck_assert_msg(ilm_tokenizer_train(cfg, on_progress, &log) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_gt(log.n_count, 0);
    ck_assert_int_gt(log.n_merge, 0);
    ck_assert_uint_eq(log.last_merge_done, log.merge_total);
    cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 360, "
                 "\"user_defined_symbols\": [\"<|im_start|>\", \"<|im_end|>\"], "
                 "\"seed\": 5}", corpus, m2);
    ck_assert_int_eq(ilm_tokenizer_train(cfg, NULL, NULL), ILM_OK);
    size_t n1, n2;
    char *x = slurp(m1, &n1), *y = slurp(m2, &n2);
    ck_assert_msg(n1 == n2 && memcmp(x, y, n1) == 0, "same config, different files");
    free(x);
    free(y);

    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm_tokenizer_load(m1, &t), ILM_OK);
    ck_assert_int_eq(ilm_tokenizer_vocab_size(t), 360);
    ck_assert_str_eq(t->piece[0], "<unk>");
    ck_assert_int_eq(t->type[0], ILM__PIECE_UNKNOWN);
    ck_assert_str_eq(t->piece[1], "<s>");
    ck_assert_int_eq(t->type[1], ILM__PIECE_CONTROL);
    ck_assert_str_eq(t->piece[2], "</s>");
    ck_assert_int_eq(t->type[2], ILM__PIECE_CONTROL);
    ck_assert_str_eq(t->piece[3], "<|im_start|>");
    ck_assert_str_eq(t->piece[4], "<|im_end|>");
    ck_assert_int_eq(t->type[3], ILM__PIECE_USER_DEFINED);
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        ck_assert_str_eq(t->piece[5 + b], want);
        ck_assert_int_eq(t->type[5 + b], ILM__PIECE_BYTE);
    }
    ck_assert(t->spm.byte_fallback && t->spm.split_digits && !t->spm.add_dummy_prefix);
    ck_assert(!t->spm.remove_extra_whitespaces);
    ck_assert_str_eq(t->spm.normalizer_name, "identity");
    /* Learned pieces: scores 0, -1, -2, ... and digits never merged. */
    bool saw_word = false;
    for (int32_t i = 261; i < t->n_vocab; i++) {
        ck_assert_int_eq(t->type[i], ILM__PIECE_NORMAL);
        ck_assert_msg(t->score[i] == -(float)(i - 261), "score of %d", (int)i);
        if (t->piece_len[i] > 1)
            ck_assert_msg(!strpbrk(t->piece[i], "0123456789"), "digit merged in '%s'",
                          t->piece[i]);
        if (strcmp(t->piece[i], "▁tokenizer") == 0) saw_word = true;
    }
    ck_assert(saw_word);
    ck_assert_int_ge(ilm_tokenizer_piece_id(t, "▁"), 261);
    ck_assert_int_ge(ilm_tokenizer_piece_id(t, "训练"), 261);
    /* The user-defined symbols are matched in text. */
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ilm_tokenizer_encode(t, "<|im_end|>the", 13, 0, &ids, &n), ILM_OK);
    ck_assert_uint_ge(n, 2);
    ck_assert_int_eq(ids[0], 4);
    ilm_free(ids);
    ilm_tokenizer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_options)
{
    char *dir = test_tmpdir();
    char corpus[512], m[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(m, sizeof m, "%s/m.model", dir);
    write_corpus(corpus, 2000);
    /* split_digits off: numbers merge; no byte fallback; dummy prefix. */
    const char *cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 110, "
                             "\"split_digits\": false, \"byte_fallback\": false, "
                             "\"add_dummy_prefix\": true, \"character_coverage\": 1.0}",
                             corpus, m);
    ck_assert_msg(ilm_tokenizer_train(cfg, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm_tokenizer_load(m, &t), ILM_OK);
    ck_assert_int_eq(t->n_vocab, 110);
    ck_assert(!t->spm.byte_fallback && !t->spm.split_digits && t->spm.add_dummy_prefix);
    ck_assert_int_eq(t->type[3], ILM__PIECE_NORMAL); /* no byte pieces */
    ck_assert_int_ge(ilm_tokenizer_piece_id(t, "▁2024"), 3);
    ck_assert_int_ge(ilm_tokenizer_piece_id(t, "▁the"), 3);
    ilm_tokenizer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_sampling_and_long_lines)
{
    char *dir = test_tmpdir();
    char corpus[512], m1[512], m2[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(m1, sizeof m1, "%s/a.model", dir);
    snprintf(m2, sizeof m2, "%s/b.model", dir);
    write_corpus(corpus, 2000);
    /* One long line holds the only 'Q's and 'Z's; it is skipped. */
    FILE *f = fopen(corpus, "ab");
    for (int i = 0; i < 200; i++) fputs("QZ QZ ", f);
    fputc('\n', f);
    fclose(f);
    for (int k = 0; k < 2; k++) {
        const char *cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 350, "
                                 "\"max_sentence_length\": 200, \"input_sentence_size\": 800, "
                                 "\"seed\": 11}", corpus, k ? m2 : m1);
        ck_assert_msg(ilm_tokenizer_train(cfg, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
    }
    size_t n1, n2;
    char *x = slurp(m1, &n1), *y = slurp(m2, &n2);
    ck_assert(n1 == n2 && memcmp(x, y, n1) == 0);
    free(x);
    free(y);
    /* Another seed samples other lines. */
    ck_assert_int_eq(ilm_tokenizer_train(config("{\"input\": [\"%s\"], \"out\": \"%s\", "
                                                "\"vocab_size\": 350, \"input_sentence_size\": "
                                                "800, \"max_sentence_length\": 200, \"seed\": 12}",
                                                corpus, m2), NULL, NULL), ILM_OK);
    x = slurp(m1, &n1), y = slurp(m2, &n2);
    ck_assert(n1 != n2 || memcmp(x, y, n1) != 0);
    free(x);
    free(y);
    /* All lines but the long one: no Q or Z.  With it: both. */
    ilm_tokenizer *t = NULL;
    for (int k = 0; k < 2; k++) {
        const char *cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 350, "
                                 "\"max_sentence_length\": %d}", corpus, m1, k ? 4192 : 200);
        ck_assert_msg(ilm_tokenizer_train(cfg, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
        ck_assert_int_eq(ilm_tokenizer_load(m1, &t), ILM_OK);
        ck_assert_int_eq(ilm_tokenizer_piece_id(t, "Q") >= 0, k);
        ck_assert_int_eq(ilm_tokenizer_piece_id(t, "Z") >= 0, k);
        ilm_tokenizer_free(t);
    }
    t = NULL;
    ilm_tokenizer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_cancel_writes_nothing)
{
    char *dir = test_tmpdir();
    char corpus[512], m[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(m, sizeof m, "%s/m.model", dir);
    write_corpus(corpus, 2000);
    for (int after = 1; after <= 3; after++) {
        progress_log log = { .cancel_after = after };
        const char *cfg = config("{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 400}",
                                 corpus, m);
        ck_assert_int_eq(ilm_tokenizer_train(cfg, on_progress, &log), ILM_ERR_CANCELLED);
        ck_assert_ptr_nonnull(strstr(ilm_last_error(), "cancelled"));
        ck_assert(!exists(m));
        ck_assert_uint_eq(dir_entries(dir), 1); /* only the corpus: no temp file */
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Bad configs: {format (one %s for the corpus path, one for out), status,
 * what the message must mention}. */
static const struct { const char *cfg; ilm_status st; const char *msg; } bad[] = {
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, \"vocabsize\": 1}",
      ILM_ERR_CONFIG, "vocabsize" },
    { "{\"out\": \"%s%s\", \"vocab_size\": 300}", ILM_ERR_CONFIG, "input" },
    { "{\"input\": [\"%s\"], \"vocab_size\": 300%.0s}", ILM_ERR_CONFIG, "out" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\"}", ILM_ERR_CONFIG, "vocab_size" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": \"300\"}", ILM_ERR_CONFIG,
      "vocab_size" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300.5}", ILM_ERR_CONFIG,
      "vocab_size" },
    { "{\"input\": \"%s\", \"out\": \"%s\", \"vocab_size\": 300}", ILM_ERR_CONFIG, "input" },
    { "{\"input\": [], \"out\": \"%s%s\", \"vocab_size\": 300}", ILM_ERR_CONFIG, "input" },
    { "{\"input\": [\"%s\", 3], \"out\": \"%s\", \"vocab_size\": 300}", ILM_ERR_CONFIG,
      "input[1]" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, \"byte_fallback\": 1}",
      ILM_ERR_CONFIG, "byte_fallback" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, "
      "\"character_coverage\": 0}", ILM_ERR_CONFIG, "character_coverage" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, "
      "\"character_coverage\": 1.5}", ILM_ERR_CONFIG, "character_coverage" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, "
      "\"user_defined_symbols\": [\"<s>\"]}", ILM_ERR_CONFIG, "<s>" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, "
      "\"user_defined_symbols\": [\"ab\", \"ab\"]}", ILM_ERR_CONFIG, "ab" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300, "
      "\"user_defined_symbols\": [\"\"]}", ILM_ERR_CONFIG, "user_defined_symbols[0]" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 100}", ILM_ERR_CONFIG,
      "too small" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 100000}", ILM_ERR_CONFIG,
      "too large" },
    { "{\"input\": [\"%s.missing\"], \"out\": \"%s\", \"vocab_size\": 300}", ILM_ERR_IO,
      "missing" },
    { "{\"input\": [\"%s\"], \"out\": \"%s/no/such/dir/m.model\", \"vocab_size\": 300}",
      ILM_ERR_IO, "no/such/dir" },
    { "[1, 2]%.0s%.0s", ILM_ERR_CONFIG, "object" },
    { "{\"input\": [\"%s\"], \"out\": \"%s\", \"vocab_size\": 300", ILM_ERR_CONFIG, "" },
};

START_TEST(train_bad_config)
{
    char *dir = test_tmpdir();
    char corpus[512], m[512];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(m, sizeof m, "%s/m.model", dir);
    write_corpus(corpus, 300);
    const char *cfg = config(bad[_i].cfg, corpus, strstr(bad[_i].cfg, "no/such") ? dir : m);
    ilm_status st = ilm_tokenizer_train(cfg, NULL, NULL);
    ck_assert_msg(st == bad[_i].st, "%s: got %s (%s)", cfg, ilm_status_str(st), ilm_last_error());
    ck_assert_msg(strstr(ilm_last_error(), bad[_i].msg), "message '%s' lacks '%s'",
                  ilm_last_error(), bad[_i].msg);
    ck_assert(!exists(m));
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_directory_input_and_empty_corpus)
{
    char *dir = test_tmpdir();
    char empty[512], m[512];
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    snprintf(m, sizeof m, "%s/m.model", dir);
    spit(empty, "\n\n");
    ck_assert_int_eq(ilm_tokenizer_train(config("{\"input\": [\"%s\"], \"out\": \"%s\", "
                                                "\"vocab_size\": 300}", dir, m), NULL, NULL),
                     ILM_ERR_IO);
    ck_assert_int_eq(ilm_tokenizer_train(config("{\"input\": [\"%s\"], \"out\": \"%s\", "
                                                "\"vocab_size\": 300}", empty, m), NULL, NULL),
                     ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "no usable sentences"));
    ck_assert_int_eq(ilm_tokenizer_train(NULL, NULL, NULL), ILM_ERR_CONFIG);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- against sentencepiece --------------------------------------------- */

START_TEST(train_reproduces_fixture_model)
{
    /* Training on the committed text with the committed config gives the
     * committed model byte for byte: the trainer is deterministic across
     * runs, builds and machines. */
    char *dir = test_tmpdir();
    char m[512];
    snprintf(m, sizeof m, "%s/m.model", dir);
    char *cfg_text = slurp(FIXTURE_DIR "/config.json", NULL);
    ck_assert_ptr_nonnull(cfg_text);
    cJSON *cfg = cJSON_Parse(cfg_text);
    free(cfg_text);
    cJSON *input = cJSON_CreateArray();
    cJSON_AddItemToArray(input, cJSON_CreateString(FIXTURE_DIR "/train.txt"));
    cJSON_ReplaceItemInObject(cfg, "input", input);
    cJSON_ReplaceItemInObject(cfg, "out", cJSON_CreateString(m));
    char *text = cJSON_PrintUnformatted(cfg);
    ck_assert_msg(ilm_tokenizer_train(text, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
    free(text);
    cJSON_Delete(cfg);
    size_t n1, n2;
    char *x = slurp(FIXTURE_DIR "/tokenizer.model", &n1), *y = slurp(m, &n2);
    ck_assert_msg(n1 == n2 && memcmp(x, y, n1) == 0,
                  "trained model differs from the fixture (%zu vs %zu bytes): regenerate "
                  "with tools/reference/train_reference.py --fixtures if intended", n2, n1);
    free(x);
    free(y);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(encode_matches_sentencepiece_on_trained_model)
{
    ilm_tokenizer *t = NULL;
    ck_assert_int_eq(ilm_tokenizer_load(FIXTURE_DIR "/tokenizer.model", &t), ILM_OK);
    FILE *f = fopen(FIXTURE_DIR "/heldout.jsonl", "rb");
    ck_assert_ptr_nonnull(f);
    char *line = NULL;
    size_t cap = 0, n_lines = 0, n_ids = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_Parse(line);
        ck_assert_ptr_nonnull(j);
        const cJSON *text = cJSON_GetObjectItem(j, "text"), *want = cJSON_GetObjectItem(j, "ids");
        ck_assert(cJSON_IsString(text) && cJSON_IsArray(want));
        int32_t *ids;
        size_t n;
        const char *s = text->valuestring;
        ck_assert_int_eq(ilm_tokenizer_encode(t, s, strlen(s), 0, &ids, &n), ILM_OK);
        ck_assert_msg(n == (size_t)cJSON_GetArraySize(want), "line %zu '%s': %zu ids, want %d",
                      n_lines, s, n, cJSON_GetArraySize(want));
        size_t k = 0;
        for (const cJSON *v = want->child; v; v = v->next, k++)
            ck_assert_msg(ids[k] == (int32_t)v->valueint, "line %zu '%s': id %zu is %d, want %d",
                          n_lines, s, k, ids[k], v->valueint);
        n_ids += n;
        ilm_free(ids);
        cJSON_Delete(j);
        n_lines++;
    }
    free(line);
    fclose(f);
    ck_assert_uint_gt(n_lines, 200);
    ck_assert_uint_gt(n_ids, 5000);
    ilm_tokenizer_free(t);
}
END_TEST

Suite *suite_tok_train(void)
{
    Suite *s = suite_create("tok_train");
    TCase *t = tcase_create("writer");
    tcase_add_test(t, writer_round_trip);
    tcase_add_test(t, writer_rejects_other_kinds_and_gaps);
    tcase_add_test(t, writer_fixture_is_a_fixed_point);
    suite_add_tcase(s, t);

    t = tcase_create("train");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, train_small_corpus);
    tcase_add_test(t, train_options);
    tcase_add_test(t, train_sampling_and_long_lines);
    tcase_add_test(t, train_cancel_writes_nothing);
    tcase_add_loop_test(t, train_bad_config, 0, (int)(sizeof bad / sizeof *bad));
    tcase_add_test(t, train_directory_input_and_empty_corpus);
    suite_add_tcase(s, t);

    t = tcase_create("sentencepiece");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, train_reproduces_fixture_model);
    tcase_add_test(t, encode_matches_sentencepiece_on_trained_model);
    suite_add_tcase(s, t);
    return s;
}
