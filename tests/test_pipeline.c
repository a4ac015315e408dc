/* The corpus pipeline end to end (ilm_corpus_build, ilm_corpus_open, the
 * `internlm corpus` commands) on the Debian text corpora, with planted
 * duplicates and garbage, and on chat data. */
#include "tests.h"
#include "corpus/internal.h"
#include "internlm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORTUNES "/usr/share/games/fortunes/"

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "no number '%s'", k);
    return v->valuedouble;
}

/* in = out + dropped for every stage, and each stage takes what the one
 * before it gave. */
static void check_counts(const cJSON *report)
{
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(report, "stages");
    static const char *const names[] = { "clean", "filter", "dedup", "tokenize" };
    double prev = num(cJSON_GetObjectItemCaseSensitive(stages, "ingest"), "records");
    for (size_t i = 0; i < 4; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(stages, names[i]);
        double in = num(s, "documents_in"), out = num(s, "documents_out"), dropped = 0;
        for (const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "dropped")->child; d; d = d->next)
            dropped += d->valuedouble;
        ck_assert_msg(in == out + dropped, "%s: %g in, %g out, %g dropped", names[i], in, out, dropped);
        ck_assert_msg(in == prev, "%s takes %g documents, the stage before gave %g", names[i], in, prev);
        prev = out;
    }
    ck_assert_double_eq(prev, num(report, "documents"));
}

static double dropped(const cJSON *report, const char *stage, const char *why)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(report, "stages"), stage);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "dropped"), why);
    return d ? d->valuedouble : 0;
}

static cJSON *build(const char *config, ilm_status want)
{
    char *rep = NULL;
    ilm_status s = ilm_corpus_build(config, NULL, NULL, &rep);
    ck_assert_msg(s == want, "ilm_corpus_build: %s: %s", ilm_status_str(s), ilm_last_error());
    if (s != ILM_OK) return NULL;
    cJSON *r = cJSON_Parse(rep);
    ilm_free(rep);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* The first `skip`+1.. paragraphs of a fortune file joined by spaces
 * into one paragraph of at least `min` bytes. */
static char *paragraph(const char *file, int skip, size_t min)
{
    char *all = test_slurp(file, NULL), *p = all, *r = calloc(1, 1);
    for (int i = 0; strlen(r) < min; i++) {
        char *end = strstr(p, "\n%\n");
        ck_assert_ptr_nonnull(end);
        if (i >= skip) {
            size_t n = strlen(r);
            r = realloc(r, n + (size_t)(end - p) + 2);
            if (n) r[n++] = ' ';
            for (const char *q = p; q < end; q++) r[n++] = *q == '\n' ? ' ' : *q;
            r[n] = 0;
        }
        p = end + 3;
    }
    free(all);
    return r;
}

START_TEST(pipeline_debian_corpora)
{
    const char *tok_path = test_shared_file("tokenizers/internlm2.model");
    if (!tok_path || access(FORTUNES "fortunes", R_OK) || access(FORTUNES "tang300", R_OK)) return;
    char *dir = test_tmpdir(), path[4096];
    /* Planted: three exact copies of a fortune, a near copy (one word
     * changed) of a long one, garbage (binary, invalid UTF-8 in a real
     * text, boilerplate), and a document that cleaning empties. */
    char *exact = paragraph(FORTUNES "fortunes", 0, 200), *near = paragraph(FORTUNES "fortunes", 5, 1500);
    char *changed = strdup(near), *sp = strchr(changed + 300, ' ');
    ck_assert_ptr_nonnull(sp);
    memcpy(sp + 1, "zebra", sp[1] && sp[2] && sp[3] && sp[4] && sp[5] ? 5 : 0);
    FILE *g = fopen((snprintf(path, sizeof path, "%s/planted.txt", dir), path), "wb");
    fprintf(g, "%s\n\n%s\n\n%s\n\n%s\n\n%s\n\n", exact, exact, exact, near, changed);
    fputs("\x01\x02\xff\xfe\x80\x81 \x00\x7f\x90\xc3\x28 \xe2\x82 \xf0\x9f\n\n", g);
    fputs("A perfectly ordinary sentence about the weather, with a broken byte \xff here and "
          "more words after it so that it passes the length filter easily today.\n\n", g);
    for (int i = 0; i < 30; i++) fputs("Click here to subscribe to our newsletter!\n", g);
    fputs("\n\x1b[31m\x1b[0m\x01\x02\n", g);
    fclose(g);
    char *kjv = NULL;
    if (access(".cache/debian/kjv.txt", R_OK) == 0) kjv = realpath(".cache/debian/kjv.txt", NULL);
    else test_skip(".cache/debian/kjv.txt is missing (tools/debian_text.sh); using the fortunes only");
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"inputs\": [\"" FORTUNES "fortunes\", \"" FORTUNES "tang300\", \"" FORTUNES "song100\", "
             "\"%s/planted.txt\"%s%s%s], \"output\": \"%s/out\", \"tokenizer\": \"%s\", "
             "\"filter\": {\"min_words\": 5}}",
             dir, kjv ? ", \"" : "", kjv ? kjv : "", kjv ? "\"" : "", dir, tok_path);
    cJSON *rep = build(cfg, ILM_OK);
    check_counts(rep);
    ck_assert_double_ge(dropped(rep, "dedup", "exact"), 2);
    ck_assert_double_ge(dropped(rep, "dedup", "near"), 1);
    ck_assert_double_ge(dropped(rep, "clean", "empty"), 1);
    ck_assert_double_ge(dropped(rep, "filter", "dup_lines") + dropped(rep, "filter", "dup_line_chars"), 1);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(rep, "mode")->valuestring, "pretrain");

    /* What survives, computed here by the stages one at a time in stream
     * order, must be exactly what the shards decode to. */
    const char *paths[5] = { FORTUNES "fortunes", FORTUNES "tang300", FORTUNES "song100", NULL, kjv };
    snprintf(path, sizeof path, "%s/planted.txt", dir);
    paths[3] = path;
    ilm__ingest *in;
    ck_assert_int_eq(ilm__ingest_open(paths, kjv ? 5 : 4, NULL, &in), ILM_OK);
    ilm__clean_opts co;
    ilm__clean_opts_default(&co);
    ilm__filter_opts fo;
    ilm__filter_opts_default(&fo);
    fo.min_words = 5;
    ilm__dedup_opts dopt;
    ilm__dedup_opts_default(&dopt);
    ilm__dedup *dd;
    ck_assert_int_eq(ilm__dedup_create(&dopt, &dd), ILM_OK);
    ilm_corpus *c;
    char od[4096];
    snprintf(od, sizeof od, "%s/out", dir);
    ck_assert_msg(ilm_corpus_open(od, &c) == ILM_OK, "%s", ilm_last_error());
    const ilm_tokenizer *tok = ilm_corpus_tokenizer(c);
    ck_assert_ptr_nonnull(tok);
    uint64_t k = 0, replaced = 0;
    ilm__buf clean = { 0 };
    for (;;) {
        ilm__record r;
        bool done;
        ck_assert_int_eq(ilm__ingest_next(in, &r, &done), ILM_OK);
        if (done) break;
        const char *why;
        ck_assert_int_eq(ilm__clean(&co, r.text, r.len, &clean, &why), ILM_OK);
        if (why || ilm__filter_check(&fo, clean.p, clean.n)) continue;
        int v;
        ck_assert_int_eq(ilm__dedup_check(dd, clean.p, clean.n, &v), ILM_OK);
        if (v == ILM__DEDUP_EXACT || v == ILM__DEDUP_NEAR) continue;
        int32_t *ids;
        size_t n;
        ck_assert_int_eq(ilm_corpus_document(c, k, &ids, NULL, &n), ILM_OK);
        ck_assert_uint_ge(n, 3);
        ck_assert_int_eq(ids[0], ilm_tokenizer_bos(tok));
        ck_assert_int_eq(ids[n - 1], ilm_tokenizer_eos(tok));
        char *text;
        size_t len;
        ck_assert_int_eq(ilm_tokenizer_decode(tok, ids + 1, n - 2, 0, &text, &len), ILM_OK);
        ck_assert_msg(len == clean.n && !memcmp(text, clean.p, len),
                      "document %llu decodes to\n%s\nnot the cleaned\n%s", (unsigned long long)k, text, clean.p);
        if (strstr(text, "\xef\xbf\xbd")) replaced++;
        ilm_free(text);
        ilm_free(ids);
        k++;
    }
    ck_assert_uint_eq(k, ilm_corpus_num_documents(c));
    ck_assert_uint_ge(replaced, 1); /* the broken byte became U+FFFD */
    int32_t *ids;
    size_t n;
    ck_assert_int_eq(ilm_corpus_document(c, k, &ids, NULL, &n), ILM_ERR_RANGE);
    ilm__buf_free(&clean);
    ilm__dedup_free(dd);
    ilm__ingest_free(in);
    ilm__clean_opts_free(&co);
    ilm_corpus_free(c);

    /* The CLI over the same corpus; a second build into it needs
     * "overwrite". */
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/internlm corpus stats %s/out", test_build_dir(), dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"target_tokens\""));
    free(out);
    snprintf(cmd, sizeof cmd, "%s/internlm corpus sample %s/out --n 3 --seed 7", test_build_dir(), dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "--- document"));
    free(out);
    ck_assert_ptr_null(build(cfg, ILM_ERR_IO));
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "overwrite"));

    cJSON_Delete(rep);
    free(kjv);
    free(exact);
    free(near);
    free(changed);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Chat records: SFT shards with loss masks equal to ilm__sft_encode's. */
START_TEST(pipeline_sft)
{
    char *dir = test_tmpdir(), path[4096], cmd[8192];
    snprintf(path, sizeof path, "%s/tok", dir);
    if (!test_chat_tokenizer_dir(path)) {
        test_rmtree(dir);
        free(dir);
        return;
    }
    static const char *const recs[] = {
        "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
        "\"content\": \"1+1?\"}, {\"role\": \"assistant\", \"content\": \"2\"}]}",
        "{\"conversation\": [{\"system\": \"S\", \"input\": \"你好\", \"output\": \"你好！\"}]}",
        "{\"instruction\": \"Translate.\", \"input\": \"bonjour\", \"output\": \"hello\"}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"only a question\"}]}",
        "{\"text\": \"a pretraining document in chat data\"}",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"1+1?\"}, {\"role\": \"assistant\", "
        "\"content\": \"2\"}], \"broken",
        "{\"instruction\": \"Translate.\", \"input\": \"bonjour\", \"output\": \"hello\"}",
    };
    snprintf(path, sizeof path, "%s/chat.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (size_t i = 0; i < sizeof recs / sizeof *recs; i++) fprintf(f, "%s\n", recs[i]);
    fclose(f);
    char cfg[8192];
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s\"], \"output\": \"%s/out\", \"tokenizer\": \"%s/tok\", "
             "\"filter\": false}", path, dir, dir);
    cJSON *rep = build(cfg, ILM_OK);
    check_counts(rep);
    ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(rep, "mode")->valuestring, "sft");
    ck_assert_double_eq(num(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "stages"),
                                                             "ingest"), "malformed"), 1);
    ck_assert_double_eq(dropped(rep, "tokenize", "text_in_sft"), 1);
    ck_assert_double_eq(dropped(rep, "tokenize", "no_target_tokens"), 1);
    ck_assert_double_eq(dropped(rep, "dedup", "exact"), 1);
    ck_assert_double_eq(num(rep, "documents"), 3);

    ilm_corpus *c;
    snprintf(path, sizeof path, "%s/out", dir);
    ck_assert_msg(ilm_corpus_open(path, &c) == ILM_OK, "%s", ilm_last_error());
    for (uint64_t i = 0; i < 3; i++) {
        cJSON *rec = cJSON_Parse(recs[i]);
        int32_t *want_ids, *ids;
        uint8_t *want_mask, *mask;
        size_t want_n, n;
        bool kept;
        ilm__sft_stats st = { 0 };
        ck_assert_int_eq(ilm__sft_encode(ilm_corpus_tokenizer(c), rec, 0, &want_ids, &want_mask, &want_n,
                                         &kept, &st),
                         ILM_OK);
        ck_assert_int_eq(ilm_corpus_document(c, i, &ids, &mask, &n), ILM_OK);
        ck_assert_uint_eq(n, want_n);
        ck_assert_mem_eq(ids, want_ids, n * sizeof *ids);
        ck_assert_mem_eq(mask, want_mask, n);
        ilm_free(ids);
        ilm_free(mask);
        ilm__free(want_ids);
        ilm__free(want_mask);
        cJSON_Delete(rec);
    }
    ilm_corpus_free(c);
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/internlm corpus sample %s/out --n 2", test_build_dir(), dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "[[<|im_start|>") && strstr(out, "<|im_start|>assistant\n]]"), "%s", out);
    free(out);
    cJSON_Delete(rep);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(pipeline_bad_input)
{
    const char *tok = test_shared_file("tokenizers/internlm2.model");
    if (!tok) return;
    char *dir = test_tmpdir(), path[4096], cfg[8192];
    /* Config errors name the key. */
    ck_assert_ptr_null(build("{\"inputs\": []}", ILM_ERR_CONFIG));
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s\"], \"output\": \"%s/o\", \"tokenizer\": \"%s\", "
             "\"dedup\": {\"bandz\": 4}}", tok, dir, tok);
    ck_assert_ptr_null(build(cfg, ILM_ERR_CONFIG));
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "dedup.bandz"));
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s\"], \"output\": \"%s/o\", \"tokenizer\": \"%s\", "
             "\"filter\": true}", tok, dir, tok);
    ck_assert_ptr_null(build(cfg, ILM_ERR_CONFIG));
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s/missing\"], \"output\": \"%s/o\", \"tokenizer\": \"%s\"}",
             dir, dir, tok);
    ck_assert_ptr_null(build(cfg, ILM_ERR_IO));

    /* A truncated gzip file and an empty file: counted, the rest kept. */
    snprintf(path, sizeof path, "%s/in", dir);
    ck_assert_int_eq(mkdir(path, 0777), 0);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s/in && for i in $(seq 1 400); do echo \"{\\\"text\\\": \\\"document number $i "
             "has several words in it so that nothing filters it out\\\"}\"; done > a.jsonl && "
             "gzip -c a.jsonl | head -c 300 > b.jsonl.gz && : > c.txt", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s/in\"], \"output\": \"%s/o\", \"tokenizer\": \"%s\", "
             "\"filter\": false, \"dedup\": false}", dir, dir, tok);
    cJSON *rep = build(cfg, ILM_OK);
    check_counts(rep);
    const cJSON *ing = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "stages"), "ingest");
    ck_assert_double_eq(num(ing, "bad_files"), 1);
    ck_assert_double_ge(num(rep, "documents"), 400);
    cJSON_Delete(rep);

    /* "overwrite" replaces what a build wrote and leaves other files. */
    snprintf(cmd, sizeof cmd, "cd %s/o && : > keep.txt && : > shard-00009.shard", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    cfg[strlen(cfg) - 1] = 0;
    strcat(cfg, ", \"overwrite\": true}");
    rep = build(cfg, ILM_OK);
    cJSON_Delete(rep);
    snprintf(cmd, sizeof cmd, "cd %s/o && test -f keep.txt && test ! -e shard-00009.shard", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);

    /* A failing overwrite (chat data, a tokenizer without the chat tokens)
     * leaves the old corpus as it was, and no work directory behind; the
     * corpus's own tokenizer.model can build its replacement. */
    ilm_corpus *c = NULL;
    snprintf(path, sizeof path, "%s/o", dir);
    ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_OK);
    const uint64_t docs = ilm_corpus_num_documents(c);
    ilm_corpus_free(c);
    snprintf(cmd, sizeof cmd, "cd %s && md5sum o/* > sums && echo '{\"messages\": [{\"role\": \"user\", "
             "\"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}' > chat.jsonl", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    char cfg2[8192];
    snprintf(cfg2, sizeof cfg2, "{\"inputs\": [\"%s/chat.jsonl\"], \"output\": \"%s/o/\", \"tokenizer\": \"%s\", "
             "\"overwrite\": true}", dir, dir, tok);
    ck_assert_ptr_null(build(cfg2, ILM_ERR_UNSUPPORTED));
    snprintf(cmd, sizeof cmd, "cd %s && md5sum -c --quiet sums && test -z \"$(ls -A o | grep build)\" && "
             "test -z \"$(ls -A . | grep build)\"", dir);
    ck_assert_msg(test_run(cmd, NULL) == 0, "the failed build changed the old corpus or left files");
    snprintf(cfg2, sizeof cfg2, "{\"inputs\": [\"%s/in\"], \"output\": \"%s/o\", \"tokenizer\": "
             "\"%s/o/tokenizer.model\", \"filter\": false, \"dedup\": false, \"overwrite\": true}", dir, dir, dir);
    rep = build(cfg2, ILM_OK);
    cJSON_Delete(rep);
    ck_assert_msg(ilm_corpus_open(path, &c) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(ilm_corpus_num_documents(c), docs);
    ck_assert_ptr_nonnull(ilm_corpus_tokenizer(c));
    ilm_corpus_free(c);
    snprintf(cmd, sizeof cmd, "cd %s && test -f o/keep.txt && test -z \"$(ls -A o | grep build)\"", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);

    /* A corpus whose shard or manifest lies. */
    ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_OK);
    ilm_corpus_free(c);
    snprintf(cmd, sizeof cmd, "cd %s/o && cp corpus.json m.json && sed -i 's/\"documents\":\\t*[0-9]*/"
             "\"documents\": 5/' corpus.json", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_ERR_FORMAT);
    /* Counts no integer holds (found by tests/fuzz/fuzz_corpus.c: they were
     * cast to uint64_t, which is undefined behaviour). */
    static const char *const counts[] = { "-1", "1e30", "2.5" };
    for (size_t k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "cd %s/o && sed 's/\"documents\":\t*[0-9]*/\"documents\": %s/' m.json > corpus.json",
                 dir, counts[k]);
        ck_assert_int_eq(test_run(cmd, NULL), 0);
        ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(ilm_last_error(), "documents"));
    }
    snprintf(cmd, sizeof cmd, "cd %s/o && mv m.json corpus.json && truncate -s -3 shard-00000.shard", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_ERR_FORMAT);
    snprintf(cmd, sizeof cmd, "cd %s/o && echo '{\"format\": \"ilm-corpus\"' > corpus.json", dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    ck_assert_int_eq(ilm_corpus_open(path, &c), ILM_ERR_FORMAT);
    ck_assert_int_eq(ilm_corpus_open(dir, &c), ILM_ERR_IO); /* no manifest */
    ck_assert_ptr_null(c);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(pipeline_bench)
{
    const char *tok = test_shared_file("tokenizers/internlm2.model");
    if (!tok || access(FORTUNES "fortunes", R_OK)) return;
    char cfg[4096], *res = NULL;
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"" FORTUNES "fortunes\"], \"tokenizer\": \"%s\", \"reps\": 1, \"filter\": {\"min_words\": 5}, "
             "\"threads\": 2}", tok);
    ck_assert_msg(ilm_bench_corpus(cfg, NULL, NULL, &res) == ILM_OK, "%s", ilm_last_error());
    cJSON *r = cJSON_Parse(res);
    static const char *const keys[] = { "clean_filter_mb_s", "dedup_mb_s", "tokenize_pack_mb_s", "pipeline_mb_s",
                                        "input_bytes", "tokens" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) ck_assert_double_gt(num(r, keys[i]), 0);
    cJSON_Delete(r);
    ilm_free(res);
}
END_TEST

Suite *suite_pipeline(void)
{
    Suite *s = suite_create("pipeline");
    TCase *tc = tcase_create("pipeline");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, pipeline_debian_corpora);
    tcase_add_test(tc, pipeline_sft);
    tcase_add_test(tc, pipeline_bad_input);
    tcase_add_test(tc, pipeline_bench);
    suite_add_tcase(s, tc);
    return s;
}
