/*
 * src/corpus/filter.c -- document quality filters: the Gopher heuristics
 * (Rae et al. 2021, appendix A.1.1, table A1) with their thresholds, a
 * character length bound and a CJK/Latin script share.  The word rule for
 * text without spaces and every default are documented in
 * src/corpus/internal.h.
 */
#include "corpus/internal.h"

#include <string.h>
#include <utf8proc.h>

const char *const ilm__filter_names[ILM__FILTER_COUNT] = {
    "min_chars", "max_chars", "min_words", "max_words", "mean_word_length",
    "symbol_ratio", "bullet_lines", "ellipsis_lines", "alpha_words",
    "dup_lines", "dup_line_chars", "dup_paragraphs", "dup_paragraph_chars",
    "top_2gram", "top_3gram", "top_4gram",
    "dup_5gram", "dup_6gram", "dup_7gram", "dup_8gram", "dup_9gram", "dup_10gram",
    "script",
};

void ilm__filter_opts_default(ilm__filter_opts *o)
{
    static const double top[3] = { 0.20, 0.18, 0.16 };
    static const double dup[6] = { 0.15, 0.14, 0.13, 0.12, 0.11, 0.10 };
    memset(o, 0, sizeof *o);
    o->min_words = 50;
    o->max_words = 100000;
    o->min_mean_word = 3;
    o->max_mean_word = 10;
    o->max_symbol_ratio = 0.1;
    o->max_bullet_lines = 0.9;
    o->max_ellipsis_lines = 0.3;
    o->min_alpha_words = 0.8;
    o->max_dup_lines = 0.30;
    o->max_dup_line_chars = 0.20;
    o->max_dup_paragraphs = 0.30;
    o->max_dup_paragraph_chars = 0.20;
    memcpy(o->max_top_ngram, top, sizeof top);
    memcpy(o->max_dup_ngram, dup, sizeof dup);
    o->min_cjk = 0;
    o->max_cjk = 1;
}

/* Reads a JSON array of exactly n numbers in [0, 1]. */
static ilm_status fractions(const cJSON *arr, const char *path, const char *key,
                            double *out, size_t n)
{
    const char *sep = *path ? "." : "";
    ILM__RETURN_IF((size_t)cJSON_GetArraySize(arr) != n, ILM_ERR_CONFIG,
                   "config: '%s%s%s' needs %zu numbers", path, sep, key, n);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++)
        ILM__RETURN_IF(!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 1,
                       ILM_ERR_CONFIG, "config: '%s%s%s[%zu]' is not a number in [0, 1]",
                       path, sep, key, i);
    i = 0;
    for (const cJSON *e = arr->child; e; e = e->next) out[i++] = e->valuedouble;
    return ILM_OK;
}

ilm_status ilm__filter_opts_parse(const cJSON *obj, const char *path, ilm__filter_opts *o)
{
    ilm__filter_opts_default(o);
    if (!obj) return ILM_OK;
    const cJSON *mwl = NULL, *top = NULL, *dup = NULL, *cjk = NULL;
    const ilm__jfield fields[] = {
        { "min_words", ILM__J_NUMBER, &o->min_words, false, 0, 1e12 },
        { "max_words", ILM__J_NUMBER, &o->max_words, false, 0, 1e12 },
        { "min_chars", ILM__J_NUMBER, &o->min_chars, false, 0, 1e15 },
        { "max_chars", ILM__J_NUMBER, &o->max_chars, false, 0, 1e15 },
        { "mean_word_length", ILM__J_ARRAY, &mwl, false, 0, 0 },
        { "max_symbol_ratio", ILM__J_NUMBER, &o->max_symbol_ratio, false, 0, 1e6 },
        { "max_bullet_lines", ILM__J_NUMBER, &o->max_bullet_lines, false, 0, 1 },
        { "max_ellipsis_lines", ILM__J_NUMBER, &o->max_ellipsis_lines, false, 0, 1 },
        { "min_alpha_words", ILM__J_NUMBER, &o->min_alpha_words, false, 0, 1 },
        { "max_dup_lines", ILM__J_NUMBER, &o->max_dup_lines, false, 0, 1 },
        { "max_dup_line_chars", ILM__J_NUMBER, &o->max_dup_line_chars, false, 0, 1 },
        { "max_dup_paragraphs", ILM__J_NUMBER, &o->max_dup_paragraphs, false, 0, 1 },
        { "max_dup_paragraph_chars", ILM__J_NUMBER, &o->max_dup_paragraph_chars, false, 0, 1 },
        { "max_top_ngram", ILM__J_ARRAY, &top, false, 0, 0 },
        { "max_dup_ngram", ILM__J_ARRAY, &dup, false, 0, 0 },
        { "cjk_share", ILM__J_ARRAY, &cjk, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(obj, path, fields, sizeof fields / sizeof fields[0]));
    const char *sep = *path ? "." : "";
    if (mwl) {
        ILM__RETURN_IF(cJSON_GetArraySize(mwl) != 2 || !cJSON_IsNumber(mwl->child) ||
                       !cJSON_IsNumber(mwl->child->next) ||
                       mwl->child->valuedouble < 0 ||
                       mwl->child->valuedouble > mwl->child->next->valuedouble,
                       ILM_ERR_CONFIG, "config: '%s%smean_word_length' must be [min, max] "
                       "with 0 <= min <= max", path, sep);
        o->min_mean_word = mwl->child->valuedouble;
        o->max_mean_word = mwl->child->next->valuedouble;
    }
    if (top) ILM__FORWARD(fractions(top, path, "max_top_ngram", o->max_top_ngram, 3));
    if (dup) ILM__FORWARD(fractions(dup, path, "max_dup_ngram", o->max_dup_ngram, 6));
    if (cjk) {
        double b[2];
        ILM__FORWARD(fractions(cjk, path, "cjk_share", b, 2));
        ILM__RETURN_IF(b[0] > b[1], ILM_ERR_CONFIG, "config: '%s%scjk_share' has min > max",
                       path, sep);
        o->min_cjk = b[0];
        o->max_cjk = b[1];
    }
    ILM__RETURN_IF(o->min_words > o->max_words, ILM_ERR_CONFIG,
                   "config: '%s%smin_words' is above max_words", path, sep);
    ILM__RETURN_IF(o->max_chars > 0 && o->min_chars > o->max_chars, ILM_ERR_CONFIG,
                   "config: '%s%smin_chars' is above max_chars", path, sep);
    return ILM_OK;
}

/* ---- text analysis ------------------------------------------------------- */

static bool is_cjk(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2FA1F) || (c >= 0xF900 && c <= 0xFAFF) ||
           (c >= 0x3040 && c <= 0x30FF) || (c >= 0xAC00 && c <= 0xD7AF) ||
           (c >= 0x1100 && c <= 0x11FF);
}

static bool is_latin(uint32_t c)
{
    return (c < 0x80 && ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) ||
           (c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7);
}

static bool is_letter(uint32_t c)
{
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

static bool is_space(uint32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x3000 || c == 0xA0;
}

/* One word: its bytes and its length in characters. */
typedef struct word {
    uint32_t start, end;  /* byte range */
    uint32_t chars;
    bool     cjk;
    bool     alpha;
} word;

typedef struct analysis {
    word  *w;
    size_t n, cap;
    size_t chars, cjk, latin, symbols;
} analysis;

static bool push_word(analysis *a, uint32_t start)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 256;
        word *w = ilm__realloc(a->w, cap * sizeof *w);
        if (!w) return false;
        a->w = w;
        a->cap = cap;
    }
    a->w[a->n++] = (word){ start, start, 0, false, false };
    return true;
}

/* Splits text into words by the rule in internal.h and counts scripts. */
static bool analyse(const char *s, size_t n, analysis *a)
{
    bool open = false;
    for (size_t i = 0; i < n;) {
        uint32_t c = (unsigned char)s[i];
        size_t k = 1;
        if (c >= 0x80 && !(k = ilm__utf8_decode(s + i, n - i, &c))) { c = 0xFFFD; k = 1; }
        a->chars++;
        if (c == '#') a->symbols++;
        else if (c == 0x2026) a->symbols++;
        else if (c == '.' && i + 2 < n && s[i + 1] == '.' && s[i + 2] == '.') {
            a->symbols++;
            a->chars += 2;
            k = 3; /* "..." counts once */
        }
        bool cjk = is_cjk(c);
        a->cjk += cjk;
        a->latin += is_latin(c);
        if (is_space(c)) {
            open = false;
        } else {
            word *cur = open ? &a->w[a->n - 1] : NULL;
            if (!cur || cjk || (cur->cjk && is_letter(c))) {
                if (!push_word(a, (uint32_t)i)) return false;
                cur = &a->w[a->n - 1];
                cur->cjk = cjk;
                open = true;
            }
            cur->end = (uint32_t)(i + k);
            cur->chars += k == 3 && c == '.' ? 3 : 1;
            cur->alpha |= is_letter(c);
        }
        i += k;
    }
    return true;
}

static bool starts_with_bullet(const char *p, size_t n)
{
    static const char *const bullets[] = { "\xE2\x80\xA2", "\xE2\x97\x8F", "\xE2\x97\xA6",
                                           "\xE2\x96\xAA", "\xE2\x80\xA3", "-", "*" };
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    for (size_t i = 0; i < sizeof bullets / sizeof bullets[0]; i++) {
        size_t m = strlen(bullets[i]);
        if (n >= m && !memcmp(p, bullets[i], m)) return true;
    }
    return false;
}

static bool ends_with_ellipsis(const char *p, size_t n)
{
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    return (n >= 3 && !memcmp(p + n - 3, "...", 3)) ||
           (n >= 3 && !memcmp(p + n - 3, "\xE2\x80\xA6", 3));
}

/* A counting set of 64-bit hashes for one document: open addressing with
 * linear probing, sized once for the document (at most half full), cleared
 * between passes.  One probe sequence per lookup-and-insert, no growth and
 * no allocation per pass; the keys are the same 64-bit hashes as before, so
 * collisions (and verdicts) are the same as with a general map. */
typedef struct hcount {
    uint64_t key;
    uint32_t n; /* 0 = empty */
} hcount;

typedef struct counter {
    hcount *t;
    size_t  mask;
    int     shift;
} counter;

static void counter_clear(counter *c) { memset(c->t, 0, (c->mask + 1) * sizeof *c->t); }

/* Counts one more occurrence of key; returns the count with it. */
static inline uint32_t counter_add(counter *c, uint64_t key)
{
    size_t j = (size_t)((key * 0x9E3779B97F4A7C15ull) >> c->shift);
    for (;; j = (j + 1) & c->mask) {
        hcount *e = &c->t[j];
        if (!e->n) {
            e->key = key;
            return e->n = 1;
        }
        if (e->key == key) return ++e->n;
    }
}

/* Duplicate units (lines, or paragraphs when `para`): fraction of units
 * that repeat an earlier one, and of their characters. */
static void dup_units(const char *s, size_t n, bool para, counter *seen, double *frac, double *cfrac)
{
    counter_clear(seen);
    size_t units = 0, dups = 0, chars = 0, dchars = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        if (para) { /* up to a blank line */
            for (;;) {
                const char *nl = memchr(s + e, '\n', n - e);
                if (!nl) { e = n; break; }
                e = (size_t)(nl - s);
                if (e + 1 < n && s[e + 1] == '\n') break;
                e++;
            }
        } else {
            const char *nl = memchr(s + i, '\n', n - i);
            e = nl ? (size_t)(nl - s) : n;
        }
        size_t b = i, len;
        while (b < e && s[b] == '\n') b++; /* a third newline of a run */
        len = e - b;
        while (len && s[b + len - 1] == '\n') len--;
        if (len) {
            units++;
            chars += len;
            if (counter_add(seen, ilm__hash_bytes(s + b, len)) > 1) {
                dups++;
                dchars += len;
            }
        }
        i = e + (para ? 2 : 1);
    }
    *frac = units ? (double)dups / (double)units : 0;
    *cfrac = chars ? (double)dchars / (double)chars : 0;
}

/* Word n-gram hashes h[i] for the n-gram starting at word i. */
static void ngram_hashes(const analysis *a, const uint64_t *wh, size_t nn,
                         uint64_t *h)
{
    for (size_t i = 0; i + nn <= a->n; i++) {
        uint64_t x = 0x9E3779B97F4A7C15ull * (nn + 1);
        for (size_t j = 0; j < nn; j++) x = (x ^ wh[i + j]) * 0x100000001B3ull + (x >> 29);
        h[i] = x;
    }
}

/* The share of word characters in the most frequent n-gram (counted only
 * when it repeats). */
static double top_ngram(const analysis *a, const uint64_t *h, size_t nn, size_t wchars,
                        counter *m)
{
    if (a->n < nn || !wchars) return 0;
    counter_clear(m);
    uint32_t best = 0;
    size_t best_i = 0;
    for (size_t i = 0; i + nn <= a->n; i++) {
        uint32_t c = counter_add(m, h[i]);
        if (c > best) { best = c; best_i = i; }
    }
    if (best < 2) return 0;
    size_t gc = 0;
    for (size_t j = 0; j < nn; j++) gc += a->w[best_i + j].chars;
    return (double)gc * best / (double)wchars;
}

/* The share of word characters covered by n-grams that occurred earlier.
 * `covered` is the index of the first word not yet counted, so each word's
 * characters are added once as the marked spans (which only move right)
 * extend. */
static double dup_ngram(const analysis *a, const uint64_t *h, size_t nn, size_t wchars,
                        counter *m)
{
    if (a->n < nn || !wchars) return 0;
    counter_clear(m);
    size_t c = 0, covered = 0;
    for (size_t i = 0; i + nn <= a->n; i++) {
        if (counter_add(m, h[i]) < 2) continue;
        for (size_t k = i > covered ? i : covered; k < i + nn; k++) c += a->w[k].chars;
        covered = i + nn;
    }
    return (double)c / (double)wchars;
}

static const char *nomem(void)
{
    ilm__error(ILM_ERR_NOMEM, "filter: out of memory");
    return "nomem";
}

const char *ilm__filter_check(const ilm__filter_opts *o, const char *text, size_t len)
{
    const char *const *N = ilm__filter_names;
    if (len >= UINT32_MAX) return N[1]; /* word offsets are 32-bit */
    analysis a = { 0 };
    if (!analyse(text, len, &a)) { ilm__free(a.w); return nomem(); }
    const char *why = NULL;
    void *scratch = NULL;
    double nw = (double)a.n;
    size_t lat_words = 0, lat_chars = 0, alpha = 0, wchars = 0;
    for (size_t i = 0; i < a.n; i++) {
        wchars += a.w[i].chars;
        alpha += a.w[i].alpha;
        if (!a.w[i].cjk) { lat_words++; lat_chars += a.w[i].chars; }
    }
    double mean = lat_words ? (double)lat_chars / (double)lat_words : 0;
    size_t lines = 0, bullets = 0, ellipses = 0, newlines = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - text) : len;
        newlines += nl != NULL;
        size_t k = i;
        while (k < e && (text[k] == ' ' || text[k] == '\t')) k++;
        if (k < e) {
            lines++;
            bullets += starts_with_bullet(text + i, e - i);
            ellipses += ends_with_ellipsis(text + i, e - i);
        }
        i = e + 1;
    }
    double f, cf;
    if ((double)a.chars < o->min_chars) why = N[0];
    else if (o->max_chars > 0 && (double)a.chars > o->max_chars) why = N[1];
    else if (nw < o->min_words) why = N[2];
    else if (nw > o->max_words) why = N[3];
    else if (2 * lat_words >= a.n && lat_words &&
             (mean < o->min_mean_word || mean > o->max_mean_word)) why = N[4];
    else if (nw > 0 && (double)a.symbols / nw > o->max_symbol_ratio) why = N[5];
    else if (lines && (double)bullets / (double)lines > o->max_bullet_lines) why = N[6];
    else if (lines && (double)ellipses / (double)lines > o->max_ellipsis_lines) why = N[7];
    else if (nw > 0 && (double)alpha / nw < o->min_alpha_words) why = N[8];
    if (why) goto done;
    /* One allocation for the rest: word hashes, n-gram hashes and a counting
     * table for at least twice as many keys as there are words or units. */
    size_t units = a.n > newlines + 1 ? a.n : newlines + 1, cap = 16;
    int shift = 60;
    while (cap < 2 * units) cap *= 2, shift--;
    scratch = ilm__malloc(2 * a.n * sizeof(uint64_t) + cap * sizeof(hcount));
    if (!scratch) { why = nomem(); goto done; }
    uint64_t *wh = scratch, *h = wh + a.n;
    counter cnt = { (hcount *)(h + a.n), cap - 1, shift };
    dup_units(text, len, false, &cnt, &f, &cf);
    if (f > o->max_dup_lines) { why = N[9]; goto done; }
    if (cf > o->max_dup_line_chars) { why = N[10]; goto done; }
    dup_units(text, len, true, &cnt, &f, &cf);
    if (f > o->max_dup_paragraphs) { why = N[11]; goto done; }
    if (cf > o->max_dup_paragraph_chars) { why = N[12]; goto done; }
    if (a.n) {
        for (size_t i = 0; i < a.n; i++)
            wh[i] = ilm__hash_bytes(text + a.w[i].start, a.w[i].end - a.w[i].start);
        for (size_t nn = 2; nn <= 4 && !why; nn++) {
            ngram_hashes(&a, wh, nn, h);
            if (top_ngram(&a, h, nn, wchars, &cnt) > o->max_top_ngram[nn - 2]) why = N[13 + nn - 2];
        }
        /* Words covered by repeated n-grams are a subset of those covered by
         * repeated (n-1)-grams (an n-gram at i seen at j < i means the
         * (n-1)-grams at i and i + 1 were seen at j and j + 1), so each
         * share bounds the later ones: an n whose threshold is at or above
         * the last share computed cannot fire and is skipped.  (With
         * n-grams compared by 64-bit hash this holds unless two different
         * n-grams of one document collide, about 2^-64 per pair.) */
        double bound = 1;
        for (size_t nn = 5; nn <= 10 && !why; nn++) {
            if (bound <= o->max_dup_ngram[nn - 5]) continue;
            ngram_hashes(&a, wh, nn, h);
            bound = dup_ngram(&a, h, nn, wchars, &cnt);
            if (bound > o->max_dup_ngram[nn - 5]) why = N[16 + nn - 5];
        }
        if (why) goto done;
    }
    if (a.cjk + a.latin) {
        double share = (double)a.cjk / (double)(a.cjk + a.latin);
        if (share < o->min_cjk || share > o->max_cjk) why = N[22];
    }
done:
    ilm__free(a.w);
    ilm__free(scratch);
    return why;
}
