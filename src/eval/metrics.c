/*
 * src/eval/metrics.c -- per-sample scores of generated text and their
 * aggregation: exact match, SQuAD F1 (evaluate-v1.1.py), ROUGE-L as
 * rouge-score computes it, corpus BLEU as sacrebleu computes it, the
 * unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language
 * Models Trained on Code") and lm-eval's mean and standard error.
 *
 * Every score is computed with the same floating-point operations, in the
 * same order, as its Python reference, so the fixtures from
 * tools/reference/eval_text_fixtures.py agree to the last bit or nearly.
 */
#include "eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A token: a slice of some buffer. */
typedef struct span {
    const char *p;
    size_t      n;
} span;

typedef struct spans {
    span  *v;
    size_t n, cap;
} spans;

static ilm_status spans_push(spans *a, const char *p, size_t n)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        ILM__RETURN_IF(cap > SIZE_MAX / sizeof *a->v, ILM_ERR_NOMEM, "metrics: too many tokens");
        span *v = ilm__realloc(a->v, cap * sizeof *v);
        ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "metrics: no memory for %zu tokens", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = (span){ p, n };
    return ILM_OK;
}

/* str.split(): the runs of non-whitespace of s[0, n). */
static ilm_status split_ws(const char *s, size_t n, spans *out)
{
    size_t i = 0, start = 0;
    bool in = false;
    while (i < n) {
        size_t at = i;
        bool space = ilm__py_isspace(ilm__utf8_next(s, n, &i));
        if (space && in) ILM__FORWARD(spans_push(out, s + start, at - start));
        if (!space && !in) start = at;
        in = !space;
    }
    if (in) ILM__FORWARD(spans_push(out, s + start, n - start));
    return ILM_OK;
}

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* Gives each distinct token of a and b one id (its index in first-seen
 * order), so that comparing tokens is comparing integers. */
static ilm_status intern(const spans *a, const spans *b, int32_t *ia, int32_t *ib)
{
    ilm__strmap m = { 0 };
    ilm_status s = ILM_OK;
    int32_t next = 0;
    for (int side = 0; side < 2 && s == ILM_OK; side++) {
        const spans *t = side ? b : a;
        int32_t *ids = side ? ib : ia;
        for (size_t i = 0; i < t->n && s == ILM_OK; i++) {
            int32_t id = ilm__strmap_get(&m, t->v[i].p, t->v[i].n);
            if (id < 0) {
                id = next++;
                s = ilm__strmap_put(&m, t->v[i].p, t->v[i].n, id);
            }
            ids[i] = id;
        }
    }
    ilm__strmap_free(&m);
    /* A token too long for the map (ILM_ERR_RANGE) is a text too large to
     * hold: for the caller it is out of memory like any other. */
    if (s != ILM_OK && s != ILM_ERR_NOMEM)
        s = ilm__error(ILM_ERR_NOMEM, "metrics: a token too long to index");
    return s;
}

/* ---- exact match and SQuAD F1 ------------------------------------------- */

double ilm__metric_exact(const char *pred, const char *ref)
{
    return strcmp(pred ? pred : "", ref ? ref : "") == 0 ? 1.0 : 0.0;
}

/* evaluate-v1.1.py's f1_score: common = Counter(pred) & Counter(ref). */
double ilm__metric_f1(const char *pred, const char *ref)
{
    const char *txt[2] = { pred ? pred : "", ref ? ref : "" };
    ilm__buf norm[2] = { { 0 }, { 0 } };
    spans tok[2] = { { 0 }, { 0 } };
    ilm_status s = ILM_OK;
    for (int k = 0; k < 2 && s == ILM_OK; k++) {
        s = ilm__postproc_apply(ILM__PP_EM_NORMALIZE, txt[k], strlen(txt[k]), NULL, &norm[k]);
        if (s == ILM_OK) s = split_ws(norm[k].p, norm[k].n, &tok[k]);
        if (s == ILM_OK && tok[k].n > 1) qsort(tok[k].v, tok[k].n, sizeof(span), span_cmp);
    }
    size_t same = 0;
    for (size_t i = 0, j = 0; s == ILM_OK && i < tok[0].n && j < tok[1].n;) {
        int c = span_cmp(&tok[0].v[i], &tok[1].v[j]);
        if (c == 0) same++;
        i += c <= 0;
        j += c >= 0;
    }
    double f1 = 0.0;
    if (s == ILM_OK && same > 0) {
        double precision = 1.0 * (double)same / (double)tok[0].n;
        double recall = 1.0 * (double)same / (double)tok[1].n;
        f1 = (2 * precision * recall) / (precision + recall);
    }
    for (int k = 0; k < 2; k++) {
        ilm__buf_free(&norm[k]);
        ilm__free(tok[k].v);
    }
    return f1;
}

/* ---- ROUGE-L --------------------------------------------------------------- */

/* rouge-score's tokenize(text, stemmer=None): text.lower(), then
 * re.sub("[^a-z0-9]+", " ") and the [a-z0-9]+ tokens.  Of the characters
 * outside ASCII only two lower to ASCII letters: U+0130 ("i" + U+0307) and
 * the Kelvin sign U+212A ("k").  Writes the tokens space-separated into
 * `out`. */
static ilm_status rouge_text(const char *t, ilm__buf *out)
{
    ilm__buf fixed = { 0 };
    ilm_status s = ilm__utf8_repair(t, strlen(t), &fixed);
    if (s == ILM_OK) s = ilm__buf_reserve(out, fixed.n);
    for (size_t i = 0; s == ILM_OK && i < fixed.n;) {
        uint32_t c = ilm__utf8_next(fixed.p, fixed.n, &i);
        char ch = ' ';
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) ch = (char)c;
        else if (c >= 'A' && c <= 'Z') ch = (char)(c - 'A' + 'a');
        else if (c == 0x212A) ch = 'k';
        else if (c == 0x130) {
            s = ilm__buf_append(out, "i ", 2);
            continue;
        }
        s = ilm__buf_putc(out, ch);
    }
    ilm__buf_free(&fixed);
    return s;
}

double ilm__metric_rouge_l(const char *pred, const char *ref)
{
    ilm__buf txt[2] = { { 0 }, { 0 } };
    spans tok[2] = { { 0 }, { 0 } };
    int32_t *ids[2] = { NULL, NULL };
    size_t *row = NULL;
    ilm_status s = ILM_OK;
    for (int k = 0; k < 2 && s == ILM_OK; k++) {
        s = rouge_text(k ? (ref ? ref : "") : (pred ? pred : ""), &txt[k]);
        if (s == ILM_OK) s = split_ws(txt[k].p, txt[k].n, &tok[k]);
    }
    double f = 0.0;
    if (s == ILM_OK && tok[0].n > 0 && tok[1].n > 0) {
        size_t np = tok[0].n, nr = tok[1].n;
        ids[0] = ilm__malloc(np * sizeof(int32_t));
        ids[1] = ilm__malloc(nr * sizeof(int32_t));
        row = ilm__calloc(np + 1, sizeof *row);
        s = ids[0] && ids[1] && row ? intern(&tok[0], &tok[1], ids[0], ids[1])
                                    : ilm__error(ILM_ERR_NOMEM, "rouge-l: no memory");
        if (s == ILM_OK) {
            /* The LCS table a row at a time: row[j] is the LCS of the ref's
             * first i tokens and the prediction's first j. */
            for (size_t i = 0; i < nr; i++) {
                size_t diag = 0; /* row[j - 1] of the previous row */
                for (size_t j = 1; j <= np; j++) {
                    size_t up = row[j];
                    if (ids[1][i] == ids[0][j - 1]) row[j] = diag + 1;
                    else if (row[j - 1] > row[j]) row[j] = row[j - 1];
                    diag = up;
                }
            }
            double lcs = (double)row[np];
            double precision = lcs / (double)np, recall = lcs / (double)nr;
            if (precision + recall > 0) f = 2 * precision * recall / (precision + recall);
        }
    }
    for (int k = 0; k < 2; k++) {
        ilm__buf_free(&txt[k]);
        ilm__free(tok[k].v);
        ilm__free(ids[k]);
    }
    ilm__free(row);
    return f;
}

/* ---- BLEU ------------------------------------------------------------------ */

/* Appends s[0, n) to out with every `from` replaced by `to` (str.replace). */
static ilm_status replace_all(const char *s, size_t n, const char *from, const char *to,
                              ilm__buf *out)
{
    size_t fl = strlen(from), tl = strlen(to), i = 0;
    ILM__FORWARD(ilm__buf_reserve(out, n));
    while (i < n) {
        const char *hit = memmem(s + i, n - i, from, fl);
        size_t end = hit ? (size_t)(hit - s) : n;
        ILM__FORWARD(ilm__buf_append(out, s + i, end - i));
        if (!hit) break;
        ILM__FORWARD(ilm__buf_append(out, to, tl));
        i = end + fl;
    }
    return ILM_OK;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The four substitutions of sacrebleu's TokenizerRegexp, each one pass of
 * re.sub over the whole line.  They work on bytes: a multi-byte character
 * never matches [\.,] or [0-9], and splitting one from its neighbour gives
 * the same bytes as splitting the code point would. */
static ilm_status regexp_pass(int pass, const char *s, size_t n, ilm__buf *out)
{
    ILM__FORWARD(ilm__buf_reserve(out, n + n / 2));
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char d = i + 1 < n ? s[i + 1] : '\0';
        bool two = i + 1 < n;
        char rep[4];
        size_t rl = 0;
        if (pass == 0) {
            /* ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 " */
            if ((c >= 0x7B && c <= 0x7E) || (c >= 0x5B && c <= 0x60) ||
                (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2B) ||
                (c >= 0x3A && c <= 0x40) || c == 0x2F) {
                rep[0] = ' ', rep[1] = (char)c, rep[2] = ' ', rl = 3;
            }
        } else if (pass == 1) {
            /* ([^0-9])([\.,]) -> "\1 \2 " */
            if (two && !is_digit((char)c) && (d == '.' || d == ','))
                rep[0] = (char)c, rep[1] = ' ', rep[2] = d, rep[3] = ' ', rl = 4;
        } else if (pass == 2) {
            /* ([\.,])([^0-9]) -> " \1 \2" */
            if (two && (c == '.' || c == ',') && !is_digit(d))
                rep[0] = ' ', rep[1] = (char)c, rep[2] = ' ', rep[3] = d, rl = 4;
        } else {
            /* ([0-9])(-) -> "\1 \2 " */
            if (two && is_digit((char)c) && d == '-')
                rep[0] = (char)c, rep[1] = ' ', rep[2] = '-', rep[3] = ' ', rl = 4;
        }
        if (rl) {
            ILM__FORWARD(ilm__buf_append(out, rep, rl));
            i += pass == 0 ? 1 : 2;
        } else {
            ILM__FORWARD(ilm__buf_putc(out, (char)c));
            i++;
        }
    }
    return ILM_OK;
}

/* sacrebleu's Tokenizer13a on a segment, after BLEU's sent.rstrip(): the
 * tokens, as slices of *work (which the caller frees). */
static ilm_status tokenize_13a(const char *text, ilm__buf *work, spans *tok)
{
    static const char *const subst[][2] = {
        { "<skipped>", "" }, { "-\n", "" }, { "\n", " " },
        /* 13a unescapes these only when the line has '&'; without one,
         * replacing them changes nothing. */
        { "&quot;", "\"" }, { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" },
    };
    ilm__buf a = { 0 }, b = { 0 };
    ilm_status s = ilm__utf8_repair(text, strlen(text), &a);
    if (s == ILM_OK) { /* rstrip() */
        size_t i = 0, end = 0;
        while (i < a.n)
            if (!ilm__py_isspace(ilm__utf8_next(a.p, a.n, &i))) end = i;
        a.n = end;
    }
    for (size_t k = 0; s == ILM_OK && k < sizeof subst / sizeof *subst; k++) {
        b.n = 0;
        s = replace_all(a.p, a.n, subst[k][0], subst[k][1], &b);
        ilm__buf t = a;
        a = b;
        b = t;
    }
    /* f" {line} " */
    if (s == ILM_OK) {
        b.n = 0;
        s = ilm__buf_putc(&b, ' ');
        if (s == ILM_OK) s = ilm__buf_append(&b, a.p, a.n);
        if (s == ILM_OK) s = ilm__buf_putc(&b, ' ');
        ilm__buf t = a;
        a = b;
        b = t;
    }
    for (int pass = 0; s == ILM_OK && pass < 4; pass++) {
        b.n = 0;
        s = regexp_pass(pass, a.p, a.n, &b);
        ilm__buf t = a;
        a = b;
        b = t;
    }
    ilm__buf_free(&b);
    *work = a;
    return s == ILM_OK ? split_ws(a.p, a.n, tok) : s;
}

/* An n-gram of token ids, unused places -1. */
typedef struct gram {
    int32_t id[4];
} gram;

static int gram_cmp(const void *a, const void *b)
{
    const gram *x = a, *y = b;
    for (int k = 0; k < 4; k++)
        if (x->id[k] != y->id[k]) return (x->id[k] > y->id[k]) - (x->id[k] < y->id[k]);
    return 0;
}

/* The sorted n-grams of ids[0, len). */
static void grams_of(const int32_t *ids, size_t len, int n, gram *out, size_t *count)
{
    size_t c = len >= (size_t)n ? len - (size_t)n + 1 : 0;
    for (size_t i = 0; i < c; i++) {
        for (int k = 0; k < 4; k++) out[i].id[k] = k < n ? ids[i + (size_t)k] : -1;
    }
    if (c > 1) qsort(out, c, sizeof *out, gram_cmp);
    *count = c;
}

ilm_status ilm__bleu_add(ilm__bleu *b, const char *pred, const char *ref)
{
    ilm__buf work[2] = { { 0 }, { 0 } };
    spans tok[2] = { { 0 }, { 0 } };
    int32_t *ids[2] = { NULL, NULL };
    gram *g[2] = { NULL, NULL };
    ilm_status s = ILM_OK;
    for (int k = 0; k < 2 && s == ILM_OK; k++)
        s = tokenize_13a(k ? (ref ? ref : "") : (pred ? pred : ""), &work[k], &tok[k]);
    for (int k = 0; k < 2 && s == ILM_OK; k++) {
        size_t n = tok[k].n ? tok[k].n : 1;
        ids[k] = ilm__malloc(n * sizeof(int32_t));
        g[k] = ilm__malloc(n * sizeof(gram));
        if (!ids[k] || !g[k]) s = ilm__error(ILM_ERR_NOMEM, "bleu: no memory for %zu tokens", n);
    }
    if (s == ILM_OK) s = intern(&tok[0], &tok[1], ids[0], ids[1]);
    if (s == ILM_OK) {
        /* Clipped counts: each distinct prediction n-gram matches at most
         * as often as the reference has it. */
        for (int n = 1; n <= 4; n++) {
            size_t cp, cr, match = 0;
            grams_of(ids[0], tok[0].n, n, g[0], &cp);
            grams_of(ids[1], tok[1].n, n, g[1], &cr);
            for (size_t i = 0, j = 0; i < cp && j < cr;) {
                int c = gram_cmp(&g[0][i], &g[1][j]);
                if (c == 0) match++;
                i += c <= 0;
                j += c >= 0;
            }
            b->match[n - 1] += (double)match;
            b->total[n - 1] += (double)cp;
        }
        b->pred_len += (double)tok[0].n;
        b->ref_len += (double)tok[1].n;
    }
    for (int k = 0; k < 2; k++) {
        ilm__buf_free(&work[k]);
        ilm__free(tok[k].v);
        ilm__free(ids[k]);
        ilm__free(g[k]);
    }
    return s;
}

/* sacrebleu's BLEU.compute_bleu with smooth_method "exp" and
 * effective_order off. */
double ilm__bleu_score(const ilm__bleu *b)
{
    double bp = 1.0;
    if (b->pred_len < b->ref_len) bp = b->pred_len > 0 ? exp(1 - b->ref_len / b->pred_len) : 0.0;
    if (b->match[0] == 0 && b->match[1] == 0 && b->match[2] == 0 && b->match[3] == 0) return 0.0;
    double prec[4] = { 0, 0, 0, 0 }, smooth = 1.0;
    for (int n = 0; n < 4; n++) {
        if (b->total[n] == 0) break;
        if (b->match[n] == 0) {
            smooth *= 2;
            prec[n] = 100. / (smooth * b->total[n]);
        } else {
            prec[n] = 100. * b->match[n] / b->total[n];
        }
    }
    /* sacrebleu's my_log floors log(0) at -9999999999. */
    double sum = 0.0;
    for (int n = 0; n < 4; n++) sum += prec[n] == 0.0 ? -9999999999.0 : log(prec[n]);
    return bp * exp(sum / 4);
}

/* ---- pass@k and aggregation ---------------------------------------------- */

double ilm__metric_pass_at_k(int n, int c, int k)
{
    if (c > n) c = n;
    if (c <= 0 || k <= 0) return 0.0;
    if (n - c < k) return 1.0;
    /* 1 - prod_{i = n-c+1}^{n} (1 - k / i), the paper's stable form. */
    double prod = 1.0;
    for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}

void ilm__mean_stderr(const double *x, size_t n, double *mean, double *stderr_)
{
    double m = 0.0, se = 0.0;
    for (size_t i = 0; i < n; i++) m += x[i];
    if (n > 0) m /= (double)n;
    if (n >= 2) {
        double ss = 0.0;
        for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
        se = sqrt(ss / (double)(n - 1)) / sqrt((double)n);
    }
    if (mean) *mean = m;
    if (stderr_) *stderr_ = se;
}
