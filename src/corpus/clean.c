/*
 * src/corpus/clean.c -- cleaning one text document: UTF-8 repair, control
 * characters, Unicode normalization (utf8proc), whitespace and line
 * filters.  The steps and their order are documented in
 * src/corpus/internal.h.
 */
#include "corpus/internal.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

void ilm__clean_opts_default(ilm__clean_opts *o)
{
    memset(o, 0, sizeof *o);
    o->norm = ILM__NORM_NFC;
}

void ilm__clean_opts_free(ilm__clean_opts *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n_drop_substrings; i++) ilm__free(o->drop_substrings[i]);
    ilm__free(o->drop_substrings);
    o->drop_substrings = NULL;
    o->n_drop_substrings = 0;
}

ilm_status ilm__clean_opts_parse(const cJSON *obj, const char *path, ilm__clean_opts *o)
{
    ilm__clean_opts_default(o);
    if (!obj) return ILM_OK;
    const char *invalid = NULL, *norm = NULL;
    int64_t min_line = 0;
    const cJSON *drop = NULL;
    const ilm__jfield fields[] = {
        { "invalid", ILM__J_STRING, &invalid, false, 0, 0 },
        { "normalize", ILM__J_STRING, &norm, false, 0, 0 },
        { "min_line_chars", ILM__J_INT, &min_line, false, 0, 1e9 },
        { "drop_lines_containing", ILM__J_ARRAY, &drop, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(obj, path, fields, sizeof fields / sizeof fields[0]));
    const char *sep = *path ? "." : "";
    if (invalid) {
        if (!strcmp(invalid, "replace")) o->drop_invalid = false;
        else if (!strcmp(invalid, "drop")) o->drop_invalid = true;
        else return ilm__error(ILM_ERR_CONFIG, "config: '%s%sinvalid' is '%s', not "
                               "\"replace\" or \"drop\"", path, sep, invalid);
    }
    if (norm) {
        if (!strcmp(norm, "NFC")) o->norm = ILM__NORM_NFC;
        else if (!strcmp(norm, "NFKC")) o->norm = ILM__NORM_NFKC;
        else if (!strcmp(norm, "none")) o->norm = ILM__NORM_NONE;
        else return ilm__error(ILM_ERR_CONFIG, "config: '%s%snormalize' is '%s', not "
                               "\"NFC\", \"NFKC\" or \"none\"", path, sep, norm);
    }
    o->min_line_chars = (size_t)min_line;
    if (drop) {
        size_t n = (size_t)cJSON_GetArraySize(drop);
        if (n) {
            o->drop_substrings = ilm__calloc(n, sizeof *o->drop_substrings);
            ILM__RETURN_IF(!o->drop_substrings, ILM_ERR_NOMEM, "clean: out of memory");
        }
        size_t i = 0;
        for (const cJSON *e = drop->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e) || !*e->valuestring) {
                ilm__clean_opts_free(o);
                return ilm__error(ILM_ERR_CONFIG, "config: '%s%sdrop_lines_containing[%zu]' "
                                  "is not a non-empty string", path, sep, i);
            }
            if (!(o->drop_substrings[i] = ilm__strdup(e->valuestring))) {
                ilm__clean_opts_free(o);
                return ilm__error(ILM_ERR_NOMEM, "clean: out of memory");
            }
            o->n_drop_substrings = i + 1;
        }
    }
    return ILM_OK;
}

/* Removes the last character of b unless it is a newline (backspace). */
static void erase_last(ilm__buf *b)
{
    if (!b->n || b->p[b->n - 1] == '\n') return;
    size_t i = b->n - 1;
    while (i > 0 && ((unsigned char)b->p[i] & 0xC0) == 0x80) i--;
    b->n = i;
    b->p[i] = '\0';
}

/* Steps 1 and 2: valid UTF-8 without controls into out.  *bad is set when
 * an invalid sequence was seen. */
static ilm_status repair(const char *s, size_t n, ilm__buf *out, bool *bad)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    bool in_bad = false;
    for (size_t i = 0; i < n;) {
        /* Printable ASCII, newlines and tabs go through as they are, a run
         * at a time. */
        size_t j = i;
        while (j < n && (((unsigned char)s[j] >= 0x20 && (unsigned char)s[j] < 0x7F) ||
                         s[j] == '\n' || s[j] == '\t'))
            j++;
        if (j > i) {
            ILM__FORWARD(ilm__buf_append(out, s + i, j - i));
            in_bad = false;
            i = j;
            continue;
        }
        uint32_t cp;
        size_t k = ilm__utf8_decode(s + i, n - i, &cp);
        if (!k) {
            *bad = true;
            if (!in_bad) ILM__FORWARD(ilm__buf_append(out, fffd, 3));
            in_bad = true;
            i++;
            continue;
        }
        in_bad = false;
        if (cp == 0x1B) {
            /* ECMA-48 CSI: ESC '[' parameters 0x30-0x3F, intermediates
             * 0x20-0x2F, one final byte 0x40-0x7E. */
            size_t j = i + 1;
            if (j < n && s[j] == '[') {
                j++;
                while (j < n && (unsigned char)s[j] >= 0x20 && (unsigned char)s[j] <= 0x3F) j++;
                if (j < n && (unsigned char)s[j] >= 0x40 && (unsigned char)s[j] <= 0x7E) j++;
            }
            i = j;
            continue;
        }
        if (cp == 0x08) {
            erase_last(out);
        } else if (cp == '\n' || cp == '\t' ||
                   !(cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))) {
            ILM__FORWARD(ilm__buf_append(out, s + i, k));
        }
        i += k;
    }
    return ILM_OK;
}

static size_t count_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* memmem without relying on a GNU extension's availability. */
static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m > n) return false;
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, m)) return true;
    return false;
}

/* Step 4 on one line [p, n) (no newline): appends the kept line to out,
 * preceded by a newline (or a blank line when pending_blank). */
static ilm_status put_line(const ilm__clean_opts *o, const char *p, size_t n,
                           ilm__buf *out, ilm__buf *line, bool *pending_blank)
{
    line->n = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        if (p[i] == ' ' || p[i] == '\t') {
            while (j < n && (p[j] == ' ' || p[j] == '\t')) j++;
            if (j == n) break; /* trailing whitespace */
            ILM__FORWARD(ilm__buf_putc(line, j - i == 1 ? p[i] : ' '));
        } else {
            while (j < n && p[j] != ' ' && p[j] != '\t') j++;
            ILM__FORWARD(ilm__buf_append(line, p + i, j - i));
        }
        i = j;
    }
    if (!line->n) {
        if (out->n) *pending_blank = true;
        return ILM_OK;
    }
    for (size_t k = 0; k < o->n_drop_substrings; k++)
        if (contains(line->p, line->n, o->drop_substrings[k])) return ILM_OK;
    if (o->min_line_chars && count_chars(line->p, line->n) < o->min_line_chars) return ILM_OK;
    if (out->n) ILM__FORWARD(ilm__buf_append(out, *pending_blank ? "\n\n" : "\n",
                                            *pending_blank ? 2 : 1));
    *pending_blank = false;
    return ilm__buf_append(out, line->p, line->n);
}

/* Whether normalizing cannot change the text, so utf8proc can be skipped:
 * ASCII is its own NFC and NFKC, and so is any text of code points below
 * U+0300 for NFC -- none of them has a canonical decomposition or a nonzero
 * combining class, and none composes with a preceding character (Unicode's
 * NFC_Quick_Check is Yes for all of them), while the first combining marks
 * start at U+0300.  In UTF-8 those are the bytes below 0xCC (0xCC 0x80 is
 * U+0300).  tests/test_corpus.c checks every pair of such code points
 * against utf8proc. */
static bool normal_already(ilm__norm norm, const char *s, size_t n)
{
    const unsigned char limit = norm == ILM__NORM_NFC ? 0xCC : 0x80;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= limit) return false;
    return true;
}

ilm_status ilm__clean(const ilm__clean_opts *o, const char *text, size_t len,
                      ilm__buf *out, const char **dropped)
{
    *dropped = NULL;
    out->n = 0;
    if (out->p) out->p[0] = '\0';
    ilm__buf tmp = { 0 }, line = { 0 };
    bool bad = false;
    /* The output is about as long as the input: one allocation each. */
    ilm_status st = ilm__buf_reserve(&tmp, len);
    if (st == ILM_OK) st = ilm__buf_reserve(out, len);
    if (st == ILM_OK) st = repair(text, len, &tmp, &bad);
    if (st != ILM_OK) goto done;
    if (bad && o->drop_invalid) {
        *dropped = "invalid_utf8";
        goto done;
    }
    const char *s = tmp.p ? tmp.p : "";
    size_t n = tmp.n;
    char *norm = NULL;
    if (o->norm != ILM__NORM_NONE && n && !normal_already(o->norm, s, n)) {
        int flags = UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                    (o->norm == ILM__NORM_NFKC ? UTF8PROC_COMPAT : 0);
        size_t m;
        st = ilm__utf8proc_map(s, n, flags, &norm, &m);
        if (st != ILM_OK) goto done; /* valid UTF-8 by now: only memory or size fail */
        s = norm;
        n = m;
    }
    bool pending_blank = false;
    for (size_t i = 0; i <= n && st == ILM_OK;) {
        const char *nl = i < n ? memchr(s + i, '\n', n - i) : NULL;
        size_t e = nl ? (size_t)(nl - s) : n;
        st = put_line(o, s + i, e - i, out, &line, &pending_blank);
        i = e + 1;
    }
    ilm__free(norm);
    if (st == ILM_OK && !out->n) *dropped = "empty";
done:
    ilm__buf_free(&tmp);
    ilm__buf_free(&line);
    return st;
}
