/*
 * The evaluator end to end (src/eval/evaluator.c, docs/eval.md) on the real
 * SmolLM2 model: every mode's numbers recomputed here from the public
 * session API and the per-sample records, the output layout, resume after
 * a cancel, a benchmark that is only a config file, and bad tasks and data.
 */
#include "internlm.h"
#include "tests.h"
#include "eval/eval.h"

#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static bool exists(const char *dir, const char *rel)
{
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return stat(path, &sb) == 0;
}

static cJSON *read_rel(const char *dir, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return test_read_json(path);
}

/* An evaluator over `m` reading data from `dir`, writing to dir/out. */
static ilm_evaluator *evaluator(const ilm_model *m, const char *dir, const char *extra)
{
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"data_root\": \"%s\", \"config_dir\": \"%s\", \"out\": \"%s/out\", "
             "\"model_name\": \"smol\", \"context\": 512%s%s}",
             dir, dir, dir, extra ? ", " : "", extra ? extra : "");
    ilm_evaluator *e = NULL;
    ck_assert_msg(ilm_evaluator_create(m, cfg, &e) == ILM_OK, "%s", ilm_last_error());
    return e;
}

static cJSON *run(ilm_evaluator *e, const char *tasks)
{
    char *res = NULL;
    ilm_status st = ilm_evaluator_run(e, tasks, NULL, NULL, &res);
    ck_assert_msg(st == ILM_OK, "%s: %s", ilm_status_str(st), ilm_last_error());
    cJSON *j = cJSON_Parse(res);
    ilm_free(res);
    ck_assert_ptr_nonnull(j);
    return j;
}

static double metric(const cJSON *results, int dataset, const char *name)
{
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(results, "datasets"), dataset);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(d, "metrics"), name);
    ck_assert_msg(cJSON_IsNumber(v), "no metric '%s'", name);
    return v->valuedouble;
}

static const char quiz_csv[] =
    "What is the capital of France?,Paris,London,Berlin,Madrid,A\n"
    "\"How many legs does a spider have? (count, please)\",six,eight,ten,four,B\n"
    "Which planet is known as the red planet?,Venus,Jupiter,Mars,Saturn,C\n"
    "What do bees make?,milk,silk,wool,honey,D\n";

static const char quiz_task[] =
    "{\"reader\": {\"path\": \"quiz.csv\", \"header\": false,"
    "  \"columns\": [\"question\", \"A\", \"B\", \"C\", \"D\", \"answer\"]},"
    " \"prompt\": \"Question: {question}\\nAnswer:\", \"mode\": \"ppl\","
    " \"ppl\": {\"choices\": {\"A\": \" {A}\", \"B\": \" {B}\", \"C\": \" {C}\", \"D\": \" {D}\"},"
    "         \"gold\": \"{answer}\"}}";

/* The ids lm-eval scores: the pair encoded whole, cut where the context's
 * own encoding ends. */
static double score_pair(ilm_session *s, const ilm_tokenizer *tok, const char *ctx,
                         const char *cont)
{
    char whole[4096];
    snprintf(whole, sizeof whole, "%s%s", ctx, cont);
    int32_t *a = NULL, *w = NULL;
    size_t na = 0, nw = 0;
    ck_assert_int_eq(ilm_tokenizer_encode(tok, ctx, strlen(ctx), 0, &a, &na), ILM_OK);
    ck_assert_int_eq(ilm_tokenizer_encode(tok, whole, strlen(whole), 0, &w, &nw), ILM_OK);
    ck_assert_uint_gt(na, 0);
    ck_assert_uint_gt(nw, na);
    double ll = 0;
    ck_assert_int_eq(ilm_session_score(s, w, na, w + na, nw - na, &ll, NULL), ILM_OK);
    ilm_free(a);
    ilm_free(w);
    return ll;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

START_TEST(ppl_continuation_matches_session_scores)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "quiz.csv", quiz_csv);
    put(dir, "quiz.json", quiz_task);
    ilm_evaluator *e = evaluator(m, dir, "\"add_bos\": false");
    cJSON *r = run(e, "[\"quiz\"]");
    /* Every candidate's log-likelihood is the session's score of lm-eval's
     * split, and the three accuracies follow from them by hand. */
    cJSON *pred = read_rel(dir, "out/predictions/smol/quiz.json");
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, "{\"context\": 512}", &s), ILM_OK);
    const char *labels = "ABCD";
    double acc = 0, acc_norm = 0, acc_bytes = 0;
    int n = 0;
    const cJSON *sample;
    cJSON_ArrayForEach(sample, cJSON_GetObjectItem(pred, "samples"))
    {
        const char *prompt = cJSON_GetObjectItem(sample, "prompt")->valuestring;
        const char *gold = cJSON_GetObjectItem(sample, "gold")->valuestring;
        ck_assert_int_eq(gold[0], labels[n]);
        double best[3] = { -INFINITY, -INFINITY, -INFINITY };
        int arg[3] = { 0, 0, 0 }, i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(sample, "candidates"))
        {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            double ll = cJSON_GetObjectItem(c, "logprob")->valuedouble;
            ck_assert_double_eq_tol(ll, score_pair(s, ilm_model_tokenizer(m), prompt, text), 1e-9);
            const char *choice = text + 1; /* without the leading space, as lm-eval */
            double v[3] = { ll, ll / (double)utf8_chars(choice), ll / (double)strlen(choice) };
            for (int k = 0; k < 3; k++)
                if (v[k] > best[k]) best[k] = v[k], arg[k] = i;
            i++;
        }
        ck_assert_int_eq(i, 4);
        acc += arg[0] == n, acc_norm += arg[1] == n, acc_bytes += arg[2] == n;
        ck_assert_int_eq(cJSON_GetObjectItem(sample, "prediction")->valuestring[0], labels[arg[0]]);
        n++;
    }
    ck_assert_int_eq(n, 4);
    ck_assert_double_eq_tol(metric(r, 0, "acc"), 100 * acc / n, 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "acc_norm"), 100 * acc_norm / n, 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "acc_bytes"), 100 * acc_bytes / n, 1e-9);
    /* The sample standard error of a mean of 0/1 values. */
    double p = acc / n, se = 100 * sqrt(p * (1 - p) * n / (n - 1) / n);
    ck_assert_double_eq_tol(metric(r, 0, "acc_stderr"), se, 1e-9);
    printf("eval quiz on SmolLM2: acc %.0f acc_norm %.0f acc_bytes %.0f\n", metric(r, 0, "acc"),
           metric(r, 0, "acc_norm"), metric(r, 0, "acc_bytes"));
    /* OpenCompass's layout. */
    ck_assert(exists(dir, "out/results/smol/quiz.json"));
    char *csv = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/out/summary/summary.csv", dir);
    csv = test_slurp(path, NULL);
    ck_assert_msg(strncmp(csv, "dataset,version,metric,mode,smol\nquiz,", 38) == 0, "%s", csv);
    free(csv);
    ck_assert(exists(dir, "out/summary/summary.md") && exists(dir, "out/summary/summary.txt"));
    ilm_session_free(s);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

/* lm-eval moves the context's trailing whitespace to the continuation with
 * str.rstrip(), which takes Unicode whitespace too: a prompt ending in
 * U+00A0 U+3000 is scored as the context without those five bytes and the
 * continuation with them in front (the ASCII trim once left them in the
 * context). */
START_TEST(ppl_context_unicode_whitespace_moves)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "quiz.csv", quiz_csv);
    put(dir, "wsquiz.json",
        "{\"reader\": {\"path\": \"quiz.csv\", \"header\": false,"
        "  \"columns\": [\"question\", \"A\", \"B\", \"C\", \"D\", \"answer\"]},"
        " \"prompt\": \"Question: {question}\\nAnswer:\\u00a0\\u3000\", \"mode\": \"ppl\","
        " \"ppl\": {\"choices\": {\"A\": \"{A}\", \"B\": \"{B}\"}, \"gold\": \"A\"}}");
    ilm_evaluator *e = evaluator(m, dir, "\"add_bos\": false, \"limit\": 2");
    cJSON *r = run(e, "[\"wsquiz\"]");
    cJSON *pred = read_rel(dir, "out/predictions/smol/wsquiz.json");
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, "{\"context\": 512}", &s), ILM_OK);
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    const char ws[] = "\xc2\xa0\xe3\x80\x80"; /* U+00A0 U+3000 */
    int n = 0;
    const cJSON *sample;
    cJSON_ArrayForEach(sample, cJSON_GetObjectItem(pred, "samples"))
    {
        const char *prompt = cJSON_GetObjectItem(sample, "prompt")->valuestring;
        size_t len = strlen(prompt);
        ck_assert(len > 5 && strcmp(prompt + len - 5, ws) == 0);
        char ctx[512];
        snprintf(ctx, sizeof ctx, "%.*s", (int)(len - 5), prompt);
        ck_assert_int_eq(ctx[strlen(ctx) - 1], ':');
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(sample, "candidates"))
        {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            char cont[512];
            snprintf(cont, sizeof cont, "%s%s", ws, text);
            double ll = cJSON_GetObjectItem(c, "logprob")->valuedouble;
            ck_assert_double_eq_tol(ll, score_pair(s, tok, ctx, cont), 1e-9);
            /* The whitespace is scored: the ASCII trim's split differs. */
            ck_assert(fabs(ll - score_pair(s, tok, prompt, text)) > 1e-3);
        }
        n++;
    }
    ck_assert_int_eq(n, 2);
    ilm_session_free(s);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

/* OpenCompass's PPL reduction: lowest mean cross-entropy of the prompt with
 * the label, after the examples; subsets and their group averages. */
START_TEST(ppl_whole_and_subset_groups)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "geo_test.csv", quiz_csv);
    put(dir, "bio_test.csv",
        "What do cows drink?,water,oil,ink,sand,A\nWhat color is grass?,blue,green,red,white,B\n");
    put(dir, "shots_dev.csv", "What is 1 + 1?,3,2,5,0,B\n");
    put(dir, "mc.json",
        "{\"reader\": {\"path\": \"{subset}_test.csv\", \"header\": false, \"subsets\": [\"geo\", "
        "\"bio\"],"
        "  \"columns\": [\"question\", \"A\", \"B\", \"C\", \"D\", \"answer\"],"
        "  \"fewshot_path\": \"shots_dev.csv\"},"
        " \"header\": \"Questions about {subset_text}.\\n\\n\","
        " \"fewshot\": {\"k\": 1, \"template\": \"{question}\\nA. {A}\\nB. {B}\\nAnswer: "
        "{answer}\\n\\n\"},"
        " \"prompt\": \"{question}\\nA. {A}\\nB. {B}\\nAnswer:\", \"mode\": \"ppl\","
        " \"ppl\": {\"choices\": {\"A\": \" A\", \"B\": \" B\", \"C\": \" C\", \"D\": \" D\"},"
        "         \"gold\": \"{answer}\", \"reduction\": \"whole\"}}");
    ilm_evaluator *e = evaluator(m, dir, NULL);
    cJSON *r = run(e, "[\"mc\"]");
    const cJSON *ds = cJSON_GetObjectItem(r, "datasets");
    ck_assert_int_eq(cJSON_GetArraySize(ds), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(ds, 0), "dataset")->valuestring,
                     "mc_geo");
    cJSON *pred = read_rel(dir, "out/predictions/smol/mc_bio.json");
    const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(pred, "samples"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "prompt")->valuestring,
                     "Questions about bio.\n\nWhat is 1 + 1?\nA. 3\nB. 2\nAnswer: B\n\n"
                     "What do cows drink?\nA. water\nB. oil\nAnswer:");
    /* Lowest mean NLL = highest logprob / tokens wins. */
    const cJSON *c;
    double best = -INFINITY;
    const char *want = NULL;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(s0, "candidates"))
    {
        double v = cJSON_GetObjectItem(c, "logprob")->valuedouble /
                   cJSON_GetObjectItem(c, "tokens")->valuedouble;
        if (v > best) best = v, want = cJSON_GetObjectItem(c, "label")->valuestring;
    }
    ck_assert_str_eq(cJSON_GetObjectItem(s0, "prediction")->valuestring, want);
    /* The group: naive and sample-weighted averages of the two. */
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "groups"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(g, "group")->valuestring, "mc");
    double geo = metric(r, 0, "acc"), bio = metric(r, 1, "acc");
    ck_assert_double_eq_tol(cJSON_GetObjectItem(g, "naive_average")->valuedouble, (geo + bio) / 2,
                            1e-9);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(g, "weighted_average")->valuedouble,
                            (4 * geo + 2 * bio) / 6, 1e-9);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

START_TEST(gen_postprocess_and_metric)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "math.jsonl",
        "{\"question\": \"What is 2 plus 3?\", \"answer\": \"2 + 3 = 5\\n#### 5\"}\n"
        "\n"
        "{\"question\": \"What is 10 minus 4?\", \"answer\": \"10 - 4 = 6\\n#### 6\"}\n"
        "{\"question\": \"What is 3 times 3?\", \"answer\": \"3 * 3 = 9\\n#### 9\"}\n");
    put(dir, "math.json",
        "{\"reader\": {\"path\": \"math.jsonl\"},"
        " \"fewshot\": {\"ids\": [0], \"template\": \"Question: {question}\\nAnswer: "
        "{answer}\\n\\n\"},"
        " \"prompt\": \"Question: {question}\\nAnswer:\", \"mode\": \"gen\","
        " \"gen\": {\"max_tokens\": 24, \"stop\": [\"Question:\", \"\\n\\n\"], \"postprocess\": "
        "\"gsm8k\","
        "         \"gold\": \"{answer}\", \"gold_postprocess\": \"gsm8k_gold\"}}");
    ilm_evaluator *e = evaluator(m, dir, NULL);
    cJSON *r = run(e, "[\"math\"]");
    cJSON *pred = read_rel(dir, "out/predictions/smol/math.json");
    const cJSON *samples = cJSON_GetObjectItem(pred, "samples"), *s;
    ck_assert_int_eq(cJSON_GetArraySize(samples), 2); /* row 0 is the example */
    double right = 0;
    cJSON_ArrayForEach(s, samples)
    {
        const char *out = cJSON_GetObjectItem(s, "output")->valuestring;
        const char *p = cJSON_GetObjectItem(s, "prediction")->valuestring;
        const char *g = cJSON_GetObjectItem(s, "gold")->valuestring;
        ck_assert_msg(!strstr(out, "Question:") && !strstr(out, "\n\n"), "stop string kept: %s",
                      out);
        ck_assert_msg(strstr(cJSON_GetObjectItem(s, "prompt")->valuestring, "#### 5"),
                      "no example");
        ck_assert(strcmp(g, "6") == 0 || strcmp(g, "9") == 0);
        /* The prediction is a number taken from the output (commas dropped),
         * or OpenCompass's "NULL" when the output has none. */
        char digits[4096];
        size_t k = 0;
        bool any = false;
        for (const char *q = out; *q && k + 1 < sizeof digits; q++) {
            if (*q != ',') digits[k++] = *q;
            any |= *q >= '0' && *q <= '9';
        }
        digits[k] = '\0';
        ck_assert_msg(any ? *p && strstr(digits, p) : !strcmp(p, "NULL"), "'%s' from '%s'", p, out);
        right += strcmp(p, g) == 0;
        printf("eval gen: output '%s' -> '%s' (gold %s)\n", out, p, g);
    }
    ck_assert_double_eq_tol(metric(r, 0, "accuracy"), 100 * right / 2, 1e-9);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

/* lm-eval's loglikelihood_rolling of `text` by hand (no BOS): windows of w
 * ids, the first after the prefix token, each full one after the id before
 * it, the last, shorter one after as many as fill its input of w. */
static double rolling_by_hand(const ilm_model *m, ilm_session *s, const char *text, size_t w,
                              size_t *n_ids)
{
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(ilm_tokenizer_encode(tok, text, strlen(text), 0, &ids, &n), ILM_OK);
    int32_t prefix = ilm_tokenizer_bos(tok) >= 0 ? ilm_tokenizer_bos(tok) : ilm_tokenizer_eos(tok);
    double ll = 0;
    for (size_t at = 0; at < n; at += w) {
        size_t k = n - at < w ? n - at : w, c = at ? w + 1 - k : 1;
        double part;
        ck_assert_int_eq(
            ilm_session_score(s, at ? ids + at - c : &prefix, c, ids + at, k, &part, NULL), ILM_OK);
        ll += part;
    }
    ilm_free(ids);
    *n_ids = n;
    return ll;
}

/* lm-eval's wikitext: a file of articles (a " = Title = " line starts one)
 * is one sample per article, each detokenized before scoring but counted
 * (words, bytes) as written; the perplexities weigh the articles by their
 * words and bytes: exp(-sum(ll) / sum(words)), never a mean of per-article
 * figures. */
START_TEST(rolling_articles_weighted_over_documents)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "wiki.txt",
        " \n"
        " = Alpha = \n"
        " Alpha is a letter ( the first ) , said \" Bob \" .\n"
        " = = History = = \n"
        " It came from 1 @,@ 000 years ago . \n"
        " = Beta = \n"
        " Beta follows alpha . \n");
    put(dir, "wiki.json",
        "{\"reader\": {\"path\": \"wiki.txt\", \"format\": \"text\","
        "             \"document_start\": \"^ = [^=].* = $\"},"
        " \"mode\": \"rolling\","
        " \"rolling\": {\"text\": \"{text}\", \"window\": 8, \"preprocess\": \"wikitext_detokenizer\"}}");
    ilm_evaluator *e = evaluator(m, dir, "\"add_bos\": false");
    cJSON *r = run(e, "[\"wiki\"]");
    cJSON *pred = read_rel(dir, "out/predictions/smol/wiki.json");
    /* By hand: the articles as lm-eval's detokenizer leaves them, and
     * len(re.split(r"\s+", page)) and the UTF-8 length of each page. */
    static const struct {
        const char *scored;
        double      words, bytes;
    } docs[] = {
        { " = Alpha =\nAlpha is a letter (the first), said \"Bob\" .\n== History ==\nIt came from "
          "1,000 years ago. ",
          33, 116 },
        { " = Beta =\nBeta follows alpha. ", 9, 33 },
    };
    const cJSON *samples = cJSON_GetObjectItem(pred, "samples");
    ck_assert_int_eq(cJSON_GetArraySize(samples), 2); /* the blank first line is no article */
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, "{\"context\": 64}", &s), ILM_OK);
    double ll = 0, words = 0, bytes = 0, tokens = 0;
    for (int i = 0; i < 2; i++) {
        const cJSON *sm = cJSON_GetArrayItem(samples, i);
        size_t n = 0;
        double want = rolling_by_hand(m, s, docs[i].scored, 8, &n);
        ck_assert_double_eq_tol(cJSON_GetObjectItem(sm, "logprob")->valuedouble, want, 1e-6);
        ck_assert_double_eq(cJSON_GetObjectItem(sm, "tokens")->valuedouble, (double)n);
        ck_assert_double_eq(cJSON_GetObjectItem(sm, "words")->valuedouble, docs[i].words);
        ck_assert_double_eq(cJSON_GetObjectItem(sm, "bytes")->valuedouble, docs[i].bytes);
        ll += want, words += docs[i].words, bytes += docs[i].bytes, tokens += (double)n;
    }
    ck_assert_double_eq_tol(metric(r, 0, "word_perplexity"), exp(-ll / words), 1e-6);
    ck_assert_double_eq_tol(metric(r, 0, "byte_perplexity"), exp(-ll / bytes), 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "bits_per_byte"), -ll / bytes / log(2.0), 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "token_perplexity"), exp(-ll / tokens), 1e-9);
    printf("eval wikitext articles on SmolLM2: word_perplexity %.2f over %g words\n",
           metric(r, 0, "word_perplexity"), words);
    ilm_session_free(s);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

START_TEST(rolling_windows_and_perplexities)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    const char *doc = "The quick brown fox jumps over the lazy dog. It was a sunny day in the "
                      "village, and the children were playing  near the old mill.\n";
    put(dir, "doc.txt", doc);
    put(dir, "roll.json",
        "{\"reader\": {\"path\": \"doc.txt\", \"format\": \"text\"},"
        " \"mode\": \"rolling\", \"rolling\": {\"text\": \"{text}\", \"window\": 8}}");
    ilm_evaluator *e = evaluator(m, dir, NULL);
    cJSON *r = run(e, "[\"roll\"]");
    /* By hand: windows of 8 ids, each after the id before it. */
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, "{\"context\": 64}", &s), ILM_OK);
    size_t n = 0;
    double ll = rolling_by_hand(m, s, doc, 8, &n);
    ck_assert_uint_gt(n, 16);
    double bytes = (double)strlen(doc), words = 1; /* re.split(r"\s+"): one more than the runs */
    for (const char *q = doc; *q; q++)
        words += (*q == ' ' || *q == '\n') && (q == doc || (q[-1] != ' ' && q[-1] != '\n'));
    ck_assert_double_eq_tol(metric(r, 0, "bits_per_byte"), -ll / bytes / log(2.0), 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "byte_perplexity"), exp(-ll / bytes), 1e-9);
    ck_assert_double_eq_tol(metric(r, 0, "word_perplexity"), exp(-ll / words), 1e-6);
    ck_assert_double_eq_tol(metric(r, 0, "token_perplexity"), exp(-ll / (double)n), 1e-9);
    ilm_session_free(s);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

static int cancel_after_two(void *user, const char *stage, uint64_t done, uint64_t total)
{
    (void)user, (void)stage, (void)total;
    return done >= 2;
}

/* An interrupted dataset continues from its saved samples; a finished one
 * is read back; a changed prompt is a new version and runs again. */
START_TEST(resume_after_cancel_and_versions)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "quiz.csv", quiz_csv);
    put(dir, "quiz.json", quiz_task);
    ilm_evaluator *e = evaluator(m, dir, NULL);
    char *res = NULL;
    ck_assert_int_eq(ilm_evaluator_run(e, "[\"quiz\"]", cancel_after_two, NULL, &res),
                     ILM_ERR_CANCELLED);
    ck_assert_ptr_null(res);
    cJSON *tmp = read_rel(dir, "out/predictions/smol/tmp_quiz.json");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(tmp, "samples")), 2);
    cJSON_Delete(tmp);
    cJSON *resumed = run(e, "[\"quiz\"]");
    ck_assert(!exists(dir, "out/predictions/smol/tmp_quiz.json"));
    ilm_evaluator_free(e);
    /* The same numbers as a run that was never interrupted. */
    char *fresh_dir = test_tmpdir();
    put(fresh_dir, "quiz.csv", quiz_csv);
    put(fresh_dir, "quiz.json", quiz_task);
    e = evaluator(m, fresh_dir, NULL);
    cJSON *fresh = run(e, "[\"quiz\"]");
    ilm_evaluator_free(e);
    const char *keys[] = { "acc", "acc_norm", "acc_bytes" };
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq(metric(resumed, 0, keys[k]), metric(fresh, 0, keys[k]));
    /* Finished: read back, not recomputed. */
    e = evaluator(m, dir, NULL);
    cJSON *again = run(e, "[\"quiz\"]");
    const cJSON *d1 = cJSON_GetArrayItem(cJSON_GetObjectItem(resumed, "datasets"), 0);
    const cJSON *d2 = cJSON_GetArrayItem(cJSON_GetObjectItem(again, "datasets"), 0);
    ck_assert_double_eq(cJSON_GetObjectItem(d1, "seconds")->valuedouble,
                        cJSON_GetObjectItem(d2, "seconds")->valuedouble);
    /* A changed prompt is another version. */
    char *task = strdup(quiz_task);
    char *at = strstr(task, "Question: ");
    memcpy(at, "Q:        ", 10);
    put(dir, "quiz.json", task);
    cJSON *changed = run(e, "[\"quiz\"]");
    const cJSON *d3 = cJSON_GetArrayItem(cJSON_GetObjectItem(changed, "datasets"), 0);
    ck_assert_str_ne(cJSON_GetObjectItem(d1, "version")->valuestring,
                     cJSON_GetObjectItem(d3, "version")->valuestring);
    free(task);
    cJSON_Delete(changed);
    cJSON_Delete(again);
    cJSON_Delete(fresh);
    cJSON_Delete(resumed);
    ilm_evaluator_free(e);
    test_rmtree(fresh_dir);
    free(fresh_dir);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

/* Bad tasks and data: a clear status naming the file, row or key, and the
 * output directory keeps what it had. */
START_TEST(bad_tasks_and_data)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "quiz.csv", quiz_csv);
    put(dir, "quiz.json", quiz_task);
    put(dir, "empty.csv", "");
    put(dir, "ragged.csv", "q,a,b,c,d,A\nq2,a,b,A\n");
    put(dir, "badgold.csv", "q,a,b,c,d,E\n");
    ilm_evaluator *e = evaluator(m, dir, NULL);
    cJSON_Delete(run(e, "[\"quiz\"]"));
    char *before = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/out/results/smol/quiz.json", dir);
    before = test_slurp(path, NULL);
    static const struct {
        const char *task;
        ilm_status want;
        const char *says;
    } cases[] = {
        { "[\"nosuchtask\"]", ILM_ERR_CONFIG, "nosuchtask" },
        { "[\"../quiz\"]", ILM_ERR_CONFIG, "no file" },
        { "[]", ILM_ERR_CONFIG, "non-empty" },
        { "[{\"reader\": {\"path\": \"quiz.csv\", \"columns\": [\"question\", \"A\", \"B\", \"C\", "
          "\"D\", \"answer\"]},"
          " \"prompt\": \"{question} {topic}\", \"mode\": \"ppl\","
          " \"ppl\": {\"choices\": {\"A\": \"a\", \"B\": \"b\"}, \"gold\": \"{answer}\"}}]",
          ILM_ERR_CONFIG, "topic" },
        { "[{\"reader\": {\"path\": \"badgold.csv\", \"columns\": [\"question\", \"A\", \"B\", "
          "\"C\", \"D\", \"answer\"]},"
          " \"prompt\": \"{question}\", \"mode\": \"ppl\","
          " \"ppl\": {\"choices\": {\"A\": \" {A}\", \"B\": \" {B}\"}, \"gold\": \"{answer}\"}}]",
          ILM_ERR_FORMAT, "badgold.csv" },
        { "[{\"reader\": {\"path\": \"empty.csv\", \"columns\": [\"q\"]}, \"prompt\": \"{q}\", "
          "\"mode\": \"gen\","
          " \"gen\": {\"gold\": \"{q}\"}}]",
          ILM_ERR_FORMAT, "empty.csv" },
        { "[{\"reader\": {\"path\": \"ragged.csv\", \"columns\": [\"question\", \"A\", \"B\", "
          "\"C\", \"D\", \"answer\"]},"
          " \"prompt\": \"{question}\", \"mode\": \"gen\", \"gen\": {\"gold\": \"{answer}\"}}]",
          ILM_ERR_FORMAT, "2" },
        { "[{\"reader\": {\"path\": \"quiz.csv\"}, \"prompt\": \"x\", \"mode\": \"ppl\"}]",
          ILM_ERR_CONFIG, "ppl" },
        { "[{\"reader\": {\"path\": \"quiz.csv\"}, \"prompt\": \"x\", \"mode\": \"gen\", "
          "\"gen\": {\"gold\": \"x\", \"postprocess\": \"nope\"}}]",
          ILM_ERR_CONFIG, "nope" },
        { "[{\"reader\": {\"path\": \"quiz.csv\", \"pathx\": 1}, \"mode\": \"rolling\", "
          "\"rolling\": {\"text\": \"x\"}}]",
          ILM_ERR_CONFIG, "pathx" },
        { "[{\"reader\": {\"path\": \"quiz.csv\", \"document_start\": \"^ = \"}, "
          "\"mode\": \"rolling\", \"rolling\": {\"text\": \"x\"}}]",
          ILM_ERR_CONFIG, "'reader.document_start' needs \"format\": \"text\"" },
        { "[{\"reader\": {\"path\": \"quiz.csv\", \"format\": \"text\", \"document_start\": "
          "\"(\"}, \"mode\": \"rolling\", \"rolling\": {\"text\": \"{text}\"}}]",
          ILM_ERR_CONFIG, "not a regular expression" },
        { "[{\"reader\": {\"path\": \"quiz.csv\", \"format\": \"text\"}, \"mode\": \"rolling\", "
          "\"rolling\": {\"text\": \"{text}\", \"preprocess\": \"wikitext\"}}]",
          ILM_ERR_CONFIG, "'rolling.preprocess' names no post-processor: 'wikitext'" },
        { "[{\"reader\": {\"path\": \"quiz.csv\"}, \"prompt\": \"{\", \"mode\": \"gen\", "
          "\"gen\": {\"gold\": \"x\"}}]",
          ILM_ERR_CONFIG, "prompt" },
        { "[{\"reader\": {\"path\": \"missing.csv\"}, \"prompt\": \"x\", \"mode\": \"gen\", "
          "\"gen\": {\"gold\": \"x\"}}]",
          ILM_ERR_IO, "missing.csv" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *res = NULL;
        ilm_status st = ilm_evaluator_run(e, cases[i].task, NULL, NULL, &res);
        ck_assert_msg(st == cases[i].want, "case %zu: %s (%s), want %s", i, ilm_status_str(st),
                      ilm_last_error(), ilm_status_str(cases[i].want));
        ck_assert_msg(strstr(ilm_last_error(), cases[i].says), "case %zu: '%s' does not say '%s'",
                      i, ilm_last_error(), cases[i].says);
        ck_assert_ptr_null(res);
    }
    char *after = test_slurp(path, NULL);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
    /* Bad evaluator configs. */
    ilm_evaluator *bad = NULL;
    ck_assert_int_eq(ilm_evaluator_create(m, "{\"model_name\": \"../x\"}", &bad), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_evaluator_create(m, "{\"limit\": -1}", &bad), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_evaluator_create(m, "{\"shots\": 2.5}", &bad), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_evaluator_create(NULL, NULL, &bad), ILM_ERR_INVALID_ARG);
    ck_assert_ptr_null(bad);
    ilm_evaluator_free(e);
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

/* A benchmark no code mentions, from a config file, through the CLI. */
START_TEST(new_benchmark_is_a_config_file)
{
    const char *model = test_pydeps_file(TEST_SMOLLM2);
    if (!model) return;
    char model_path[4096];
    snprintf(model_path, sizeof model_path, "%s", model);
    char *dir = test_tmpdir();
    put(dir, "animals.jsonl",
        "{\"sound\": \"woof\", \"animal\": \"dog\", \"legs\": 4}\n"
        "{\"sound\": \"meow\", \"animal\": \"cat\", \"legs\": 4}\n"
        "{\"sound\": \"moo\", \"animal\": \"cow\", \"legs\": 4}\n");
    put(dir, "animal_sounds.json",
        "{\"description\": \"Which animal makes the sound?\","
        " \"reader\": {\"path\": \"animals.jsonl\"},"
        " \"prompt\": \"The animal that says {sound} is the\", \"mode\": \"ppl\","
        " \"ppl\": {\"choices\": {\"dog\": \" dog\", \"cat\": \" cat\", \"cow\": \" cow\"},"
        "         \"gold\": \"{animal}\"}}");
    char cmd[16384], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s/internlm eval --model %s --task-config %s/animal_sounds.json --data-root %s "
             "--out %s/out --limit 3",
             test_build_dir(), model_path, dir, dir, dir);
    int rc = test_run(cmd, &out);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "animal_sounds") && strstr(out, "acc_norm"), "%s", out);
    printf("eval cli: %s", out);
    free(out);
    ck_assert(exists(dir, "out/results/SmolLM2-135M-Instruct.Q4_1/animal_sounds.json"));
    /* Usage errors exit 2. */
    snprintf(cmd, sizeof cmd, "%s/internlm eval --model %s", test_build_dir(), model_path);
    ck_assert_int_eq(test_run(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/internlm eval --model %s --tasks x --limit 0", test_build_dir(),
             model_path);
    ck_assert_int_eq(test_run(cmd, &out), 2);
    free(out);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The sandbox for generated programs: exit status, timeouts that kill the
 * process group, memory limits, an empty working directory, no network
 * where the kernel gives a namespace, and an interpreter that is missing. */
START_TEST(exec_sandbox)
{
    ilm__exec_opts o;
    ilm__exec_defaults(&o);
    ilm__exec_result r;
    const char *ok = "import os\nassert os.listdir('.') == ['program'], os.listdir('.')\n"
                     "open('scratch.txt', 'w').write('x')\n";
    ck_assert_int_eq(ilm__exec_program("python3", ok, strlen(ok), &o, &r), ILM_OK);
    ck_assert_msg(r.passed && r.exit_code == 0, "exit %d signal %d", r.exit_code, r.signal);
    const char *fail = "raise SystemExit(3)\n";
    ck_assert_int_eq(ilm__exec_program("python3", fail, strlen(fail), &o, &r), ILM_OK);
    ck_assert(!r.passed && r.exit_code == 3 && !r.timed_out);
    /* A loop, with a child of its own: both gone at the timeout. */
    o.timeout_s = 0.5;
    const char *loop = "import subprocess\nsubprocess.Popen(['sleep', '30'])\nwhile True: pass\n";
    ck_assert_int_eq(ilm__exec_program("python3", loop, strlen(loop), &o, &r), ILM_OK);
    ck_assert(!r.passed && r.timed_out);
    ck_assert_msg(r.seconds < 3, "%.2f s", r.seconds);
    /* The address-space limit: a 4 GiB buffer fails inside the program. */
    ilm__exec_defaults(&o);
    o.memory_bytes = (size_t)512 << 20;
    const char *big = "x = bytearray(4 << 30)\n";
    ck_assert_int_eq(ilm__exec_program("python3", big, strlen(big), &o, &r), ILM_OK);
    ck_assert(!r.passed && !r.timed_out);
    /* The network: a listening socket of ours is out of its reach. */
    ilm__exec_defaults(&o);
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    ck_assert_int_eq(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(srv, 4), 0);
    ck_assert_int_eq(getsockname(srv, (struct sockaddr *)&a, &alen), 0);
    char net[256];
    snprintf(net, sizeof net,
             "import socket, sys\ntry:\n    socket.create_connection(('127.0.0.1', %d), 2)\n"
             "except OSError:\n    sys.exit(5)\n", ntohs(a.sin_port));
    ck_assert_int_eq(ilm__exec_program("python3", net, strlen(net), &o, &r), ILM_OK);
    if (r.network_isolated)
        ck_assert_msg(r.exit_code == 5, "connected from the sandbox (exit %d)", r.exit_code);
    else
        test_skip("exec: this kernel gives no network namespace; the network is not isolated");
    close(srv);
    ck_assert_int_eq(ilm__exec_program("no-such-interpreter-here", ok, strlen(ok), &o, &r),
                     ILM_ERR_UNSUPPORTED);
}
END_TEST

/* HumanEval's path: a program template with {completion}, run only when
 * the evaluator is told to, scored pass@1; then the shipped config on the
 * first real problem. */
START_TEST(gen_programs_pass_at_1)
{
    ilm_model *m = test_smollm2();
    if (!m) return;
    char *dir = test_tmpdir();
    put(dir, "code.jsonl",
        "{\"prompt\": \"def add(a, b):\\n\", \"test\": \"assert add(2, 3) == 5\"}\n"
        "{\"prompt\": \"def sub(a, b):\\n\", \"test\": \"assert sub(2, 3) == 1\"}\n");
    /* This program leaves the completion out (the shipped config puts it
     * after the prompt), so the verdicts are known: the first passes, the
     * second fails. */
    put(dir, "code.json",
        "{\"reader\": {\"path\": \"code.jsonl\"}, \"prompt\": \"{prompt}\", \"mode\": \"gen\","
        " \"gen\": {\"max_tokens\": 8, \"stop\": [\"\\ndef\"], \"metric\": \"pass_at_1\","
        "  \"program\": \"{prompt}    return a + b\\n{test}\\n\"}}");
    ilm_evaluator *e = evaluator(m, dir, NULL);
    char *res = NULL;
    ck_assert_int_eq(ilm_evaluator_run(e, "[\"code\"]", NULL, NULL, &res), ILM_ERR_CONFIG);
    ck_assert_msg(strstr(ilm_last_error(), "execute"), "%s", ilm_last_error());
    ilm_evaluator_free(e);
    e = evaluator(m, dir, "\"execute\": true");
    cJSON *r = run(e, "[\"code\"]");
    ck_assert_double_eq(metric(r, 0, "pass_at_1"), 50);
    cJSON *pred = read_rel(dir, "out/predictions/smol/code.json");
    const cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(pred, "samples"), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(s0, "exit_code")->valueint, 0);
    ck_assert(!cJSON_IsTrue(cJSON_GetObjectItem(s0, "timed_out")));
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    /* The shipped config on the first real problem. */
    const char *he = test_shared_file("humaneval/HumanEval.jsonl.gz");
    if (he) {
        char root[4096], cfg[8192];
        snprintf(root, sizeof root, "%.*s", (int)(strlen(he) - strlen("/humaneval/HumanEval.jsonl.gz")), he);
        snprintf(cfg, sizeof cfg,
                 "{\"data_root\": \"%s\", \"config_dir\": \"configs/eval\", \"limit\": 1, "
                 "\"execute\": true}", root);
        ck_assert_int_eq(ilm_evaluator_create(m, cfg, &e), ILM_OK);
        r = run(e, "[\"humaneval\"]");
        double p = metric(r, 0, "pass_at_1");
        ck_assert(p == 0 || p == 100);
        printf("eval humaneval: SmolLM2 pass@1 %.0f on the first problem\n", p);
        cJSON_Delete(r);
        ilm_evaluator_free(e);
    }
    test_rmtree(dir);
    free(dir);
    ilm_model_free(m);
}
END_TEST

Suite *suite_eval(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("evaluator");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, ppl_continuation_matches_session_scores);
    tcase_add_test(tc, ppl_context_unicode_whitespace_moves);
    tcase_add_test(tc, ppl_whole_and_subset_groups);
    tcase_add_test(tc, gen_postprocess_and_metric);
    tcase_add_test(tc, rolling_windows_and_perplexities);
    tcase_add_test(tc, rolling_articles_weighted_over_documents);
    tcase_add_test(tc, resume_after_cancel_and_versions);
    tcase_add_test(tc, bad_tasks_and_data);
    tcase_add_test(tc, new_benchmark_is_a_config_file);
    tcase_add_test(tc, exec_sandbox);
    tcase_add_test(tc, gen_programs_pass_at_1);
    suite_add_tcase(s, tc);
    return s;
}
