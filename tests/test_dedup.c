/* Deduplication quality on real text: corpora built from Debian fortunes
 * (English) and Tang/Song poems (Chinese) with planted exact and near
 * duplicates at controlled mutation rates.  The truth is brute force: the
 * test shingles every document itself (its own code, the rules dedup.c
 * states), computes the Jaccard similarity of every pair, and calls a
 * document a duplicate when an earlier one is at J >= 0.8.  Recall and
 * precision of the MinHash + LSH verdicts against that truth must both reach
 * 0.95. */
#include "tests.h"
#include "corpus/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORTUNES "/usr/share/games/fortunes/"

/* ---- a small deterministic RNG of the test's own (xorshift64*) ---------- */

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 2685821657736338717ull;
}
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

/* ---- documents as arrays of units (words or code points) --------------- */

typedef struct doc {
    char  *text;
    size_t len;
    bool   planted_exact; /* a case/space variant of an earlier document */
} doc;

typedef struct corpus {
    doc   *d;
    size_t n, cap;
} corpus;

static void corpus_add(corpus *c, char *text, bool planted_exact)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->d = realloc(c->d, c->cap * sizeof *c->d);
    }
    c->d[c->n++] = (doc){text, strlen(text), planted_exact};
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->d[i].text);
    free(c->d);
}

static bool sp(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Splits text into units: words (whitespace-separated) or, for CJK, the
 * UTF-8 sequences of non-whitespace code points.  Units are malloc'd. */
static size_t units_of(const char *t, bool cjk, char ***out)
{
    size_t n = 0, cap = 64;
    char **u = malloc(cap * sizeof *u);
    size_t len = strlen(t);
    for (size_t i = 0; i < len;) {
        if (sp(t[i])) { i++; continue; }
        size_t s = i;
        if (cjk) {
            uint32_t cp;
            size_t k = ilm__utf8_decode(t + i, len - i, &cp);
            i += k ? k : 1;
        } else {
            while (i < len && !sp(t[i])) i++;
        }
        if (n == cap) u = realloc(u, (cap *= 2) * sizeof *u);
        u[n++] = strndup(t + s, i - s);
    }
    *out = u;
    return n;
}

static char *join(char **u, size_t n, bool cjk)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(u[i]) + 1;
    char *s = malloc(len), *p = s;
    for (size_t i = 0; i < n; i++) {
        if (i && !cjk) *p++ = ' ';
        p += sprintf(p, "%s", u[i]);
    }
    *p = 0;
    return s;
}

static void units_free(char **u, size_t n)
{
    for (size_t i = 0; i < n; i++) free(u[i]);
    free(u);
}

/* A copy of `text` whose units are each replaced (by a random unit of
 * `vocab`) with probability p and deleted with probability p / 2. */
static char *mutate(const char *text, bool cjk, double p, char **vocab, size_t nv)
{
    char **u;
    size_t n = units_of(text, cjk, &u), m = 0;
    char **out = malloc((n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        double r = rnd01();
        if (r < p) out[m++] = vocab[rnd() % nv];
        else if (r < 1.5 * p) continue;
        else out[m++] = u[i];
    }
    char *s = join(out, m, cjk);
    free(out);
    units_free(u, n);
    return s;
}

/* A case and whitespace variant: the same document after normalization. */
static char *respace(const char *text)
{
    size_t n = strlen(text);
    char *s = malloc(2 * n + 3), *p = s;
    *p++ = ' ';
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (c >= 'a' && c <= 'z' && (i % 3 == 0)) c -= 32;
        *p++ = c;
        if (c == ' ') *p++ = '\t';
    }
    *p++ = '\n';
    *p = 0;
    return s;
}

/* ---- the brute-force truth ------------------------------------------------ */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted, distinct shingle hashes of a text: n units joined by one
 * space (words, ASCII-lowercased) or nothing (code points). */
static size_t shingle_set(const char *text, bool cjk, int ng, uint64_t **out)
{
    char **u;
    size_t n = units_of(text, cjk, &u);
    for (size_t i = 0; i < n && !cjk; i++)
        for (char *c = u[i]; *c; c++)
            if (*c >= 'A' && *c <= 'Z') *c += 32;
    size_t m = n == 0 ? 0 : n < (size_t)ng ? 1 : n - (size_t)ng + 1;
    size_t take = n < (size_t)ng ? n : (size_t)ng;
    uint64_t *s = malloc((m + 1) * sizeof *s);
    for (size_t i = 0; i < m; i++) {
        char *j = join(u + i, take, cjk);
        s[i] = fnv(j, strlen(j));
        free(j);
    }
    qsort(s, m, sizeof *s, cmp_u64);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (k == 0 || s[k - 1] != s[i]) s[k++] = s[i];
    units_free(u, n);
    *out = s;
    return k;
}

static double jaccard(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    size_t i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (a[i] == b[j]) { inter++; i++; j++; }
        else if (a[i] < b[j]) i++;
        else j++;
    }
    size_t uni = na + nb - inter;
    return uni ? (double)inter / (double)uni : 1.0;
}

/* truth[i] = whether an earlier document is at J >= 0.8 (brute force). */
static bool *truth_of(const corpus *c, bool cjk, int ng)
{
    uint64_t **sets = malloc(c->n * sizeof *sets);
    size_t *ns = malloc(c->n * sizeof *ns);
    for (size_t i = 0; i < c->n; i++) ns[i] = shingle_set(c->d[i].text, cjk, ng, &sets[i]);
    bool *t = calloc(c->n, 1);
    for (size_t i = 0; i < c->n; i++)
        for (size_t j = 0; j < i && !t[i]; j++)
            if (ns[i] && ns[j] && jaccard(sets[i], ns[i], sets[j], ns[j]) >= 0.8) t[i] = true;
    for (size_t i = 0; i < c->n; i++) free(sets[i]);
    free(sets);
    free(ns);
    return t;
}

/* Runs the dedup over the corpus in order; verdicts [n] (malloc'd). */
static int *run_dedup(const corpus *c, const ilm__dedup_opts *o, ilm__dedup **keep)
{
    ilm__dedup *d = NULL;
    ck_assert_msg(ilm__dedup_create(o, &d) == ILM_OK, "%s", ilm_last_error());
    int *v = malloc(c->n * sizeof *v);
    for (size_t i = 0; i < c->n; i++)
        ck_assert_int_eq(ilm__dedup_check(d, c->d[i].text, c->d[i].len, &v[i]), ILM_OK);
    if (keep) *keep = d;
    else ilm__dedup_free(d);
    return v;
}

static void score(const corpus *c, const bool *truth, const int *v, const char *what,
                  double *recall, double *precision)
{
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < c->n; i++) {
        bool pred = v[i] == ILM__DEDUP_EXACT || v[i] == ILM__DEDUP_NEAR;
        tp += pred && truth[i];
        fp += pred && !truth[i];
        fn += !pred && truth[i];
        if (c->d[i].planted_exact)
            ck_assert_msg(v[i] == ILM__DEDUP_EXACT, "%s: planted exact copy %zu not removed", what, i);
    }
    *recall = tp + fn ? (double)tp / (double)(tp + fn) : 1.0;
    *precision = tp + fp ? (double)tp / (double)(tp + fp) : 1.0;
    printf("dedup %s: %zu docs, %zu true duplicates (J >= 0.8), recall %.4f, precision %.4f"
           " (tp %zu, fp %zu, fn %zu)\n", what, c->n, tp + fn, *recall, *precision, tp, fp, fn);
}

/* ---- corpora --------------------------------------------------------------- */

/* Fortune entries of `file` ("\n%\n"-separated), ANSI colour codes removed. */
static size_t entries(const char *file, char ***out)
{
    char path[256];
    snprintf(path, sizeof path, FORTUNES "%s", file);
    char *t = test_slurp(path, NULL);
    size_t n = 0, cap = 256;
    char **e = malloc(cap * sizeof *e);
    char *p = t;
    while (*p) {
        char *end = strstr(p, "\n%\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *s = malloc(len + 1), *q = s;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == 0x1b) {
                while (i < len && p[i] != 'm') i++;
                continue;
            }
            *q++ = p[i];
        }
        *q = 0;
        if (n == cap) e = realloc(e, (cap *= 2) * sizeof *e);
        e[n++] = s;
        p = end ? end + 3 : p + len;
    }
    free(t);
    *out = e;
    return n;
}

/* Base documents: consecutive entries joined until at least min_units
 * units, at most max_docs of them. */
static size_t bases(const char *const *files, bool cjk, size_t min_units,
                    size_t max_docs, char ***out)
{
    char **b = malloc(max_docs * sizeof *b);
    size_t nb = 0;
    for (const char *const *f = files; *f && nb < max_docs; f++) {
        char **e;
        size_t ne = entries(*f, &e);
        char *acc = NULL;
        for (size_t i = 0; i < ne; i++) {
            if (nb < max_docs) {
                size_t al = acc ? strlen(acc) : 0;
                acc = realloc(acc, al + strlen(e[i]) + 2);
                if (!al) acc[0] = 0;
                strcat(acc, "\n");
                strcat(acc, e[i]);
                char **u;
                size_t nu = units_of(acc, cjk, &u);
                units_free(u, nu);
                if (nu >= min_units) {
                    b[nb++] = acc;
                    acc = NULL;
                }
            }
            free(e[i]);
        }
        free(acc);
        free(e);
    }
    *out = b;
    return nb;
}

/* Base documents first, then for each base: mutated copies at low rates
 * (J mostly well above 0.8), at high rates (J well below), and for every
 * fifth a case/space variant (an exact duplicate); the copies shuffled. */
static void build(corpus *c, char **b, size_t nb, bool cjk, const double *lo,
                  size_t nlo, const double *hi, size_t nhi)
{
    char **vocab = NULL;
    size_t nv = 0;
    for (size_t i = 0; i < nb; i++) {
        char **u;
        size_t n = units_of(b[i], cjk, &u);
        vocab = realloc(vocab, (nv + n) * sizeof *vocab);
        memcpy(vocab + nv, u, n * sizeof *u);
        nv += n;
        free(u);
    }
    for (size_t i = 0; i < nb; i++) corpus_add(c, strdup(b[i]), false);
    size_t first = c->n;
    for (size_t i = 0; i < nb; i++) {
        for (size_t k = 0; k < nlo; k++) corpus_add(c, mutate(b[i], cjk, lo[k], vocab, nv), false);
        for (size_t k = 0; k < nhi; k++) corpus_add(c, mutate(b[i], cjk, hi[k], vocab, nv), false);
        if (i % 5 == 0) corpus_add(c, cjk ? strdup(b[i]) : respace(b[i]), true);
    }
    for (size_t i = c->n - 1; i > first; i--) {
        size_t j = first + rnd() % (i - first + 1);
        doc t = c->d[i];
        c->d[i] = c->d[j];
        c->d[j] = t;
    }
    units_free(vocab, nv);
}

static const char *const EN_FILES[] = {"fortunes", "literature", "wisdom", "science",
                                       "people", "computers", "humorists", NULL};
static const char *const ZH_FILES[] = {"tang300", "song100", NULL};

static void english(corpus *c)
{
    rs = 88172645463325252ull;
    char **b;
    size_t nb = bases(EN_FILES, false, 100, 250, &b);
    ck_assert_uint_ge(nb, 200);
    const double lo[] = {0.003, 0.01}, hi[] = {0.06, 0.15};
    build(c, b, nb, false, lo, 2, hi, 2);
    for (size_t i = 0; i < nb; i++) free(b[i]);
    free(b);
}

static void chinese(corpus *c)
{
    rs = 1234567ull;
    char **b;
    size_t nb = bases(ZH_FILES, true, 150, 150, &b);
    ck_assert_uint_ge(nb, 100);
    const double lo[] = {0.003, 0.01}, hi[] = {0.06, 0.15};
    build(c, b, nb, true, lo, 2, hi, 2);
    for (size_t i = 0; i < nb; i++) free(b[i]);
    free(b);
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(english_recall_precision)
{
    corpus c = {0};
    english(&c);
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    bool *truth = truth_of(&c, false, o.ngram);
    ilm__dedup *d = NULL;
    int *v = run_dedup(&c, &o, &d);
    double r, p;
    score(&c, truth, v, "english", &r, &p);
    ck_assert_msg(r >= 0.95 && p >= 0.95, "recall %.4f precision %.4f", r, p);
    cJSON *rep = cJSON_CreateObject();
    ck_assert_int_eq(ilm__dedup_report(d, rep), ILM_OK);
    char *s = cJSON_PrintUnformatted(rep);
    printf("dedup english report: %s\n", s);
    ck_assert_uint_gt(ilm__dedup_memory(d), 0);
    ck_assert_double_eq(cJSON_GetObjectItem(rep, "memory_bytes")->valuedouble,
                        (double)ilm__dedup_memory(d));
    cJSON_free(s);
    cJSON_Delete(rep);
    ilm__dedup_free(d);
    free(v);
    free(truth);
    corpus_free(&c);
}
END_TEST

START_TEST(chinese_characters)
{
    corpus c = {0};
    chinese(&c);
    for (size_t i = 0; i < c.n; i++) ck_assert(ilm__dedup_is_cjk(c.d[i].text, c.d[i].len));
    ck_assert(!ilm__dedup_is_cjk("plain English text, 一 two", 28));
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    bool *truth = truth_of(&c, true, o.char_ngram);
    int *v = run_dedup(&c, &o, NULL);
    double r, p;
    score(&c, truth, v, "chinese", &r, &p);
    ck_assert_msg(r >= 0.95 && p >= 0.95, "recall %.4f precision %.4f", r, p);
    free(v);
    free(truth);
    corpus_free(&c);
}
END_TEST

START_TEST(deterministic_for_a_seed)
{
    corpus c = {0};
    english(&c);
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    int *v1 = run_dedup(&c, &o, NULL), *v2 = run_dedup(&c, &o, NULL);
    ck_assert_mem_eq(v1, v2, c.n * sizeof *v1);
    uint64_t s1[128], s2[128];
    ilm__dedup *a = NULL, *b = NULL;
    ck_assert_int_eq(ilm__dedup_create(&o, &a), ILM_OK);
    o.seed = 7;
    ck_assert_int_eq(ilm__dedup_create(&o, &b), ILM_OK);
    ilm__dedup_signature(a, c.d[0].text, c.d[0].len, s1);
    ilm__dedup_signature(b, c.d[0].text, c.d[0].len, s2);
    ck_assert(memcmp(s1, s2, sizeof s1) != 0);
    /* The batch API on threads gives the very same signatures. */
    const char *texts[64];
    size_t lens[64];
    for (int i = 0; i < 64; i++) { texts[i] = c.d[i].text; lens[i] = c.d[i].len; }
    uint64_t *sigs = malloc(64 * 128 * sizeof *sigs);
    ck_assert_int_eq(ilm__dedup_sign_batch(a, texts, lens, 64, sigs, NULL), ILM_OK);
    for (int i = 0; i < 64; i++) {
        ilm__dedup_signature(a, texts[i], lens[i], s1);
        ck_assert_mem_eq(s1, sigs + i * 128, sizeof s1);
    }
    free(sigs);
    ilm__dedup_free(a);
    ilm__dedup_free(b);
    /* Another seed: other verdicts maybe, the same quality. */
    bool *truth = truth_of(&c, false, o.ngram);
    int *v3 = run_dedup(&c, &o, NULL);
    double r, p;
    score(&c, truth, v3, "english seed 7", &r, &p);
    ck_assert_msg(r >= 0.95 && p >= 0.95, "recall %.4f precision %.4f", r, p);
    free(truth);
    free(v1);
    free(v2);
    free(v3);
    corpus_free(&c);
}
END_TEST

/* The AVX-512 fold gives the scalar fold's signatures, slot for slot, also
 * when num_perm is not a multiple of the vector width. */
START_TEST(simd_equals_scalar)
{
    corpus c = {0};
    english(&c);
    static const int perms[][2] = { { 128, 16 }, { 20, 4 }, { 7, 7 }, { 1, 1 } };
    for (size_t t = 0; t < sizeof perms / sizeof perms[0]; t++) {
        ilm__dedup_opts o;
        ilm__dedup_opts_default(&o);
        o.num_perm = perms[t][0];
        o.bands = perms[t][1];
        o.rows = o.num_perm / o.bands;
        ilm__dedup *d = NULL;
        ck_assert_int_eq(ilm__dedup_create(&o, &d), ILM_OK);
        uint64_t s1[128], s2[128];
        for (size_t i = 0; i < c.n && i < 200; i++) {
            ilm__dedup_use_simd(d, true);
            size_t n1 = ilm__dedup_signature(d, c.d[i].text, c.d[i].len, s1);
            ilm__dedup_use_simd(d, false);
            size_t n2 = ilm__dedup_signature(d, c.d[i].text, c.d[i].len, s2);
            ck_assert_uint_eq(n1, n2);
            ck_assert_mem_eq(s1, s2, (size_t)o.num_perm * sizeof *s1);
        }
        ilm__dedup_free(d);
    }
    corpus_free(&c);
}
END_TEST

START_TEST(exact_normalization)
{
    uint64_t a[2], b[2], e[2];
    ilm__dedup_exact_hash("Hello  World\n", 13, a);
    ilm__dedup_exact_hash(" hello\tworld", 12, b);
    ck_assert(a[0] == b[0] && a[1] == b[1]);
    ilm__dedup_exact_hash("hello world!", 12, b);
    ck_assert(a[0] != b[0] || a[1] != b[1]);
    ilm__dedup_exact_hash("", 0, e);
    ilm__dedup_exact_hash(" \n\t", 3, b);
    ck_assert(e[0] == b[0] && e[1] == b[1]);
    /* Exact only: a copy is caught, a one-word change is not. */
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    o.near = false;
    ilm__dedup *d = NULL;
    ck_assert_int_eq(ilm__dedup_create(&o, &d), ILM_OK);
    int v;
    ck_assert_int_eq(ilm__dedup_check(d, "a b c d e f", 11, &v), ILM_OK);
    ck_assert_int_eq(v, ILM__DEDUP_UNIQUE);
    ck_assert_int_eq(ilm__dedup_check(d, "A B  C d e f ", 13, &v), ILM_OK);
    ck_assert_int_eq(v, ILM__DEDUP_EXACT);
    ck_assert_int_eq(ilm__dedup_check(d, "a b c d e g", 11, &v), ILM_OK);
    ck_assert_int_eq(v, ILM__DEDUP_UNIQUE);
    /* Invalid UTF-8 and empty text are documents like any other. */
    ck_assert_int_eq(ilm__dedup_check(d, "\xff\xfe\x80", 3, &v), ILM_OK);
    ck_assert_int_eq(ilm__dedup_check(d, "", 0, &v), ILM_OK);
    ck_assert_int_eq(v, ILM__DEDUP_UNIQUE);
    ck_assert_int_eq(ilm__dedup_check(d, "  ", 2, &v), ILM_OK);
    ck_assert_int_eq(v, ILM__DEDUP_EXACT);
    ilm__dedup_free(d);
}
END_TEST

START_TEST(memory_cap)
{
    corpus c = {0};
    english(&c);
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    o.max_memory = 200000;
    ilm__dedup *d = NULL;
    int *v = run_dedup(&c, &o, &d);
    size_t not_indexed = 0, first = c.n;
    for (size_t i = 0; i < c.n; i++)
        if (v[i] == ILM__DEDUP_UNIQUE_NOT_INDEXED) {
            not_indexed++;
            if (first == c.n) first = i;
        }
    ck_assert_uint_gt(not_indexed, 0);
    ck_assert_uint_le(ilm__dedup_memory(d), 200000);
    cJSON *rep = cJSON_CreateObject();
    ck_assert_int_eq(ilm__dedup_report(d, rep), ILM_OK);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(rep, "full")));
    ck_assert_double_eq(cJSON_GetObjectItem(rep, "not_indexed")->valuedouble, (double)not_indexed);
    printf("dedup memory cap 200000: %zu of %zu documents not indexed, first at %zu, %zu bytes used\n",
           not_indexed, c.n, first, ilm__dedup_memory(d));
    /* Documents indexed before the cap are still caught afterwards. */
    int w;
    ck_assert_int_eq(ilm__dedup_check(d, c.d[0].text, c.d[0].len, &w), ILM_OK);
    ck_assert_int_eq(w, ILM__DEDUP_EXACT);
    cJSON_Delete(rep);
    ilm__dedup_free(d);
    free(v);
    corpus_free(&c);
}
END_TEST

static void bad(const char *json, const char *key)
{
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    ck_assert_int_eq(ilm__dedup_opts_parse(j, "dedup", &o), ILM_ERR_CONFIG);
    ck_assert_msg(strstr(ilm_last_error(), key), "'%s' not in: %s", key, ilm_last_error());
    cJSON_Delete(j);
}

START_TEST(bad_options)
{
    bad("{\"num_perm\": 0}", "dedup.num_perm");
    bad("{\"num_perm\": 100000}", "dedup.num_perm");
    bad("{\"bands\": 10}", "dedup.bands");
    bad("{\"num_perm\": 64}", "dedup.num_perm");
    bad("{\"threshold\": 1.5}", "dedup.threshold");
    bad("{\"ngram\": 0}", "dedup.ngram");
    bad("{\"char_ngram\": 99}", "dedup.char_ngram");
    bad("{\"seed\": -1}", "dedup.seed");
    bad("{\"max_memory\": \"1G\"}", "dedup.max_memory");
    bad("{\"exact\": 1}", "dedup.exact");
    bad("{\"shingle\": 5}", "dedup.shingle");
    cJSON *j = cJSON_Parse("{\"num_perm\": 64, \"bands\": 16, \"rows\": 4, \"seed\": 3,"
                           " \"near\": false, \"max_memory\": 0}");
    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    ck_assert_int_eq(ilm__dedup_opts_parse(j, "dedup", &o), ILM_OK);
    ck_assert_int_eq(o.num_perm, 64);
    ck_assert_int_eq(o.rows, 4);
    ck_assert(!o.near && o.exact);
    cJSON_Delete(j);
    ilm__dedup *d = NULL;
    o.bands = 3;
    ck_assert_int_eq(ilm__dedup_create(&o, &d), ILM_ERR_CONFIG);
    ck_assert_ptr_null(d);
}
END_TEST

Suite *suite_dedup(void)
{
    Suite *s = suite_create("dedup");
    TCase *tc = tcase_create("dedup");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, english_recall_precision);
    tcase_add_test(tc, chinese_characters);
    tcase_add_test(tc, deterministic_for_a_seed);
    tcase_add_test(tc, simd_equals_scalar);
    tcase_add_test(tc, exact_normalization);
    tcase_add_test(tc, memory_cap);
    tcase_add_test(tc, bad_options);
    suite_add_tcase(s, tc);
    return s;
}
