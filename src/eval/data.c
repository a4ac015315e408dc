/* Dataset files as tables of string cells: JSONL (one JSON object a line)
 * and CSV (RFC 4180, read as Python's csv.reader reads it with the default
 * dialect, since the public sets were written by that module), either one
 * optionally gzip-compressed.  The whole file is read at once: evaluation
 * sets are small, and a bound (max_bytes) keeps a hostile file, a gzip bomb
 * included, from taking more memory than the caller allows. */
#include "eval/eval.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define DEFAULT_MAX_BYTES ((size_t)1 << 30)

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* ---- the file's bytes ---------------------------------------------------- */

/* A plain file is mmap'd; a gzip file is inflated into `gz`. */
typedef struct input {
    ilm__mmap   map;
    ilm__buf    gz;
    const char *p;     /* the text, after any BOM */
    size_t      n;
    size_t      skip;  /* bytes of BOM before p */
} input;

static void input_close(input *in)
{
    ilm__mmap_close(&in->map);
    ilm__buf_free(&in->gz);
}

/* Inflates `path` a chunk at a time, stopping as soon as the text passes
 * `max`: memory stays within max plus one chunk whatever the ratio.  A file
 * that is not gzip at all is read through as it is (zlib's transparent
 * mode), as corpus ingest reads one. */
static ilm_status inflate_file(const char *path, size_t max, input *in)
{
    enum { CHUNK = 1 << 16 };
    errno = 0;
    gzFile g = gzopen(path, "rb");
    ILM__RETURN_IF(!g, errno == ENOMEM ? ILM_ERR_NOMEM : ILM_ERR_IO, "dataset: cannot open '%s': %s",
                   path, errno ? strerror(errno) : "gzip: out of memory");
    ilm_status st = ILM_OK;
    for (;;) {
        st = ilm__buf_reserve(&in->gz, CHUNK);
        if (st != ILM_OK) break;
        int got = gzread(g, in->gz.p + in->gz.n, CHUNK);
        int err = Z_OK;
        const char *msg = gzerror(g, &err);
        if (got < 0 || (err != Z_OK && err != Z_STREAM_END)) {
            /* zlib reports a truncated stream as Z_BUF_ERROR at the end */
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s': gzip: %s", path,
                            msg && *msg ? msg : "read error");
            break;
        }
        if (got == 0) break;
        in->gz.n += (size_t)got;
        in->gz.p[in->gz.n] = '\0';
        if (in->gz.n > max) {
            st = ilm__error(ILM_ERR_RANGE, "dataset: '%s' inflates to more than max_bytes (%zu)",
                            path, max);
            break;
        }
    }
    gzclose(g);
    in->p = in->gz.p;
    return st;
}

static ilm_status input_open(const char *path, bool gz, size_t max, input *in)
{
    memset(in, 0, sizeof *in);
    if (gz) {
        ILM__FORWARD(inflate_file(path, max, in));
        in->n = in->gz.n;
    } else {
        ILM__FORWARD(ilm__mmap_open(path, &in->map));
        ILM__RETURN_IF(in->map.size > max, ILM_ERR_RANGE,
                       "dataset: '%s' is %zu bytes, more than max_bytes (%zu)", path,
                       in->map.size, max);
        in->p = (const char *)in->map.data;
        in->n = in->map.size;
    }
    if (in->n >= 3 && memcmp(in->p, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
        in->p += 3;
        in->n -= 3;
        in->skip = 3;
    }
    return ILM_OK;
}

/* Line ends are "\n", "\r\n" and a lone "\r", as Python's newline=""
 * reading splits them; the length of the one at p[i], or 0. */
static size_t eol_len(const char *p, size_t n, size_t i)
{
    if (p[i] == '\n') return 1;
    if (p[i] == '\r') return i + 1 < n && p[i + 1] == '\n' ? 2 : 1;
    return 0;
}

/* The 1-based line of byte `off` (JSONL lines end at "\n" only). */
static size_t line_of(const char *p, size_t off, bool csv)
{
    size_t line = 1;
    for (size_t i = 0; i < off; i++) {
        size_t e = csv ? eol_len(p, off, i) : p[i] == '\n';
        if (e) {
            line++;
            i += e - 1;
        }
    }
    return line;
}

/* Cells are UTF-8 text: a byte sequence that is not valid UTF-8 (which
 * Python's decoding refuses too), or a NUL (which a NUL-terminated cell
 * could not hold), is an error naming its line and file offset.  An ASCII
 * fast path keeps this a small cost beside the parse. */
static ilm_status check_text(const char *path, const input *in, bool csv)
{
    const char *p = in->p;
    size_t n = in->n;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t len = c ? ilm__utf8_decode(p + i, n - i, &cp) : 0;
        ILM__RETURN_IF(len == 0, ILM_ERR_FORMAT, "dataset: '%s' line %zu: %s at byte %zu", path,
                       line_of(p, i, csv), c ? "invalid UTF-8" : "a NUL byte", i + in->skip);
        i += len;
    }
    return ILM_OK;
}

/* ---- building the table ---------------------------------------------------- */

/* Cells go back to back, each NUL-terminated, into one slab; their offsets
 * become pointers once the slab stops moving. */
typedef struct builder {
    ilm__buf text;
    size_t  *offs;
    size_t   n_cells, cap_cells;
    size_t  *lines;
    size_t   n_rows, cap_rows;
} builder;

static void builder_free(builder *b)
{
    ilm__buf_free(&b->text);
    ilm__free(b->offs);
    ilm__free(b->lines);
}

static ilm_status grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return ILM_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        ILM__RETURN_IF(c > SIZE_MAX / 2 / elem, ILM_ERR_NOMEM, "dataset: too many cells");
        c *= 2;
    }
    void *p = ilm__realloc(*(void **)pp, c * elem);
    ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "dataset: out of memory");
    *(void **)pp = p;
    *cap = c;
    return ILM_OK;
}

static ilm_status add_row(builder *b, size_t line)
{
    ILM__FORWARD(grow(&b->lines, &b->cap_rows, b->n_rows + 1, sizeof *b->lines));
    b->lines[b->n_rows++] = line;
    return ILM_OK;
}

static ilm_status add_cell(builder *b, const char *s, size_t n)
{
    ILM__FORWARD(grow(&b->offs, &b->cap_cells, b->n_cells + 1, sizeof *b->offs));
    b->offs[b->n_cells++] = b->text.n;
    ILM__FORWARD(ilm__buf_append(&b->text, s, n));
    return ilm__buf_putc(&b->text, '\0');
}

static ilm_status set_columns(ilm__table *t, const char *const *names, size_t n)
{
    t->cols = ilm__calloc(n ? n : 1, sizeof *t->cols);
    ILM__RETURN_IF(!t->cols, ILM_ERR_NOMEM, "dataset: out of memory");
    t->n_cols = n;
    for (size_t i = 0; i < n; i++) {
        t->cols[i] = ilm__strdup(names[i]);
        ILM__RETURN_IF(!t->cols[i], ILM_ERR_NOMEM, "dataset: out of memory");
    }
    return ILM_OK;
}

/* Moves the builder's rows into the table (the builder is left empty). */
static ilm_status finish(builder *b, ilm__table *t)
{
    ILM__RETURN_IF(b->n_rows == 0, ILM_ERR_FORMAT, "dataset: '%s' has no rows", t->path);
    t->cells = ilm__malloc(b->n_cells * sizeof *t->cells);
    ILM__RETURN_IF(!t->cells, ILM_ERR_NOMEM, "dataset: out of memory");
    for (size_t i = 0; i < b->n_cells; i++) t->cells[i] = b->text.p + b->offs[i];
    t->text = b->text.p;
    t->lines = b->lines;
    t->n_rows = b->n_rows;
    memset(&b->text, 0, sizeof b->text);
    b->lines = NULL;
    return ILM_OK;
}

/* ---- JSONL ------------------------------------------------------------------ */

/* The shortest "%.{p}g" that reads back to the same double; integral values
 * below 1e17 in plain digits ("4", not "4.0" or "4e+00"). */
static void format_number(double v, char out[40])
{
    if (v == floor(v) && fabs(v) < 1e17) {
        snprintf(out, 40, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, 40, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* The last member named `key`, as Python's json keeps the last of
 * duplicate keys. */
static const cJSON *member(const cJSON *obj, const char *key)
{
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) found = c;
    return found;
}

static ilm_status add_value(builder *b, const cJSON *v)
{
    char num[40];
    if (cJSON_IsString(v)) return add_cell(b, v->valuestring, strlen(v->valuestring));
    if (cJSON_IsNumber(v)) {
        format_number(v->valuedouble, num);
        return add_cell(b, num, strlen(num));
    }
    if (cJSON_IsTrue(v)) return add_cell(b, "true", 4);
    if (cJSON_IsFalse(v)) return add_cell(b, "false", 5);
    if (cJSON_IsNull(v)) return add_cell(b, "null", 4);
    char *s = NULL;
    ILM__FORWARD(ilm__json_print(v, &s));
    ilm_status st = add_cell(b, s, strlen(s));
    ilm__free(s);
    return st;
}

static const char *json_kind(const cJSON *v)
{
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    return "null";
}

/* The keys of the first row, each once, as the columns. */
static ilm_status first_row_columns(ilm__table *t, const cJSON *obj, size_t line)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next) n++;
    ILM__RETURN_IF(n == 0, ILM_ERR_FORMAT, "dataset: '%s' line %zu: the first row has no keys",
                   t->path, line);
    const char **names = ilm__malloc(n * sizeof *names);
    ILM__RETURN_IF(!names, ILM_ERR_NOMEM, "dataset: out of memory");
    size_t k = 0;
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool seen = false;
        for (size_t i = 0; i < k && !seen; i++) seen = strcmp(names[i], c->string) == 0;
        if (!seen) names[k++] = c->string;
    }
    ilm_status st = set_columns(t, names, k);
    ilm__free(names);
    return st;
}

/* One JSON object a line; blank lines (only spaces, tabs, "\r") are
 * skipped.  Each line is copied out to be NUL-terminated for cJSON. */
static ilm_status read_jsonl(const input *in, const ilm__table_opts *o, ilm__table *t,
                             builder *b)
{
    ilm__buf line = { 0 };
    ilm_status st = ILM_OK;
    if (o->columns) st = set_columns(t, o->columns, o->n_columns);
    size_t no = 0;
    for (size_t pos = 0; st == ILM_OK && pos < in->n;) {
        const char *p = in->p + pos;
        const char *nl = memchr(p, '\n', in->n - pos);
        size_t len = nl ? (size_t)(nl - p) : in->n - pos;
        pos += len + (nl != NULL);
        no++;
        size_t k = 0;
        while (k < len && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
        if (k == len) continue;
        line.n = 0;
        if ((st = ilm__buf_append(&line, p, len)) != ILM_OK) break;
        const char *end = NULL;
        cJSON *row = cJSON_ParseWithOpts(line.p, &end, 1);
        if (!row) {
            size_t at = end && end >= line.p ? (size_t)(end - line.p) : 0;
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' line %zu: invalid JSON near byte %zu of the line",
                            t->path, no, at);
            break;
        }
        if (!cJSON_IsObject(row)) {
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' line %zu: a row must be a JSON object, "
                            "not %s", t->path, no, json_kind(row));
        } else if (!t->cols) {
            st = first_row_columns(t, row, no);
        }
        if (st == ILM_OK) st = add_row(b, no);
        for (size_t c = 0; st == ILM_OK && c < t->n_cols; c++) {
            const cJSON *v = member(row, t->cols[c]);
            if (!v)
                st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' line %zu: no key '%s'", t->path,
                                no, t->cols[c]);
            else
                st = add_value(b, v);
        }
        cJSON_Delete(row);
    }
    ilm__buf_free(&line);
    return st;
}

/* ---- CSV ------------------------------------------------------------------ */

/* One record's fields, back to back and NUL-terminated, before they are
 * checked and copied into the table. */
typedef struct record {
    ilm__buf text;
    size_t  *offs;     /* [n + 1]: field i is text[offs[i], offs[i + 1] - 1) */
    size_t   n, cap;
    size_t   line;     /* where it starts */
} record;

static ilm_status end_field(record *r)
{
    ILM__FORWARD(ilm__buf_putc(&r->text, '\0'));
    ILM__FORWARD(grow(&r->offs, &r->cap, r->n + 2, sizeof *r->offs));
    r->offs[++r->n] = r->text.n;
    return ILM_OK;
}

/* The CSV reader of Python's _csv module with the default dialect
 * (delimiter ',', quotechar '"', doublequote, strict off), over bytes: every
 * special character is ASCII, so UTF-8 text passes through whole.  As in
 * Python, a quote inside an unquoted field is an ordinary character
 * (a"b -> a"b) and so is any character after a closing quote ("a"b -> ab).
 * A line end outside quotes ends the record and a blank line is no record
 * (csv.DictReader skips those, and so does every reader of these sets);
 * inside quotes a line end is part of the field, as written.  Unlike
 * Python, a file that ends inside a quoted field is an error, not a last
 * field: it is nearly always a truncated file.  *pos advances past the
 * record; *line counts lines.  false in *got at the end of the text. */
static ilm_status csv_record(const char *path, const char *p, size_t n, size_t *pos,
                             size_t *line, record *r, bool *got)
{
    enum { START_FIELD, IN_FIELD, IN_QUOTED, QUOTE_IN_QUOTED } state = START_FIELD;
    size_t i = *pos;
    /* blank lines before the record */
    for (size_t e; i < n && (e = eol_len(p, n, i)) != 0; i += e) (*line)++;
    *got = i < n;
    if (!*got) {
        *pos = i;
        return ILM_OK;
    }
    r->text.n = 0;
    r->n = 0;
    r->line = *line;
    ILM__FORWARD(grow(&r->offs, &r->cap, 1, sizeof *r->offs));
    r->offs[0] = 0;
    for (; i < n; i++) {
        char c = p[i];
        size_t e = eol_len(p, n, i);
        switch (state) {
        case START_FIELD:
        case IN_FIELD:
            if (e) {
                *line += 1;
                *pos = i + e;
                return end_field(r);
            }
            if (c == ',') {
                ILM__FORWARD(end_field(r));
                state = START_FIELD;
            } else if (c == '"' && state == START_FIELD) {
                state = IN_QUOTED;
            } else {
                ILM__FORWARD(ilm__buf_putc(&r->text, c));
                state = IN_FIELD;
            }
            break;
        case IN_QUOTED:
            if (c == '"') {
                state = QUOTE_IN_QUOTED;
            } else {
                if (e) { /* kept as written, "\r\n" whole */
                    *line += 1;
                    ILM__FORWARD(ilm__buf_append(&r->text, p + i, e));
                    i += e - 1;
                } else {
                    ILM__FORWARD(ilm__buf_putc(&r->text, c));
                }
            }
            break;
        case QUOTE_IN_QUOTED:
            if (c == '"') {
                ILM__FORWARD(ilm__buf_putc(&r->text, '"'));
                state = IN_QUOTED;
            } else if (c == ',') {
                ILM__FORWARD(end_field(r));
                state = START_FIELD;
            } else if (e) {
                *line += 1;
                *pos = i + e;
                return end_field(r);
            } else {
                ILM__FORWARD(ilm__buf_putc(&r->text, c));
                state = IN_FIELD;
            }
            break;
        }
    }
    ILM__RETURN_IF(state == IN_QUOTED, ILM_ERR_FORMAT,
                   "dataset: '%s' line %zu: a quoted field is not closed before the end of the file",
                   path, r->line);
    *pos = n;
    return end_field(r);
}

static ilm_status read_csv(const input *in, const ilm__table_opts *o, ilm__table *t, builder *b)
{
    /* With no column names given, the first row must name them. */
    bool header = o->header || !o->columns;
    record r = { 0 };
    size_t *map = NULL; /* [n_cols]: the record field of each column */
    size_t width = 0;   /* the fields every row must have */
    size_t pos = 0, line = 1;
    bool got = true;
    ilm_status st = ILM_OK;

    if (header) {
        st = csv_record(t->path, in->p, in->n, &pos, &line, &r, &got);
        if (st == ILM_OK && !got)
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' has no rows", t->path);
        width = r.n;
    } else {
        width = o->n_columns;
    }
    if (st == ILM_OK && header && !o->columns) {
        const char **names = ilm__malloc(r.n * sizeof *names);
        if (!names) st = ilm__error(ILM_ERR_NOMEM, "dataset: out of memory");
        for (size_t i = 0; st == ILM_OK && i < r.n; i++) names[i] = r.text.p + r.offs[i];
        if (st == ILM_OK) st = set_columns(t, names, r.n);
        ilm__free(names);
    } else if (st == ILM_OK) {
        st = set_columns(t, o->columns, o->n_columns);
    }
    if (st == ILM_OK) {
        map = ilm__malloc((t->n_cols ? t->n_cols : 1) * sizeof *map);
        if (!map) st = ilm__error(ILM_ERR_NOMEM, "dataset: out of memory");
    }
    for (size_t c = 0; st == ILM_OK && c < t->n_cols; c++) {
        map[c] = c;
        if (!header || !o->columns) continue;
        size_t f = 0;
        while (f < r.n && strcmp(r.text.p + r.offs[f], t->cols[c]) != 0) f++;
        if (f == r.n)
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' line %zu: no column '%s' in the header",
                            t->path, r.line, t->cols[c]);
        map[c] = f;
    }
    while (st == ILM_OK) {
        st = csv_record(t->path, in->p, in->n, &pos, &line, &r, &got);
        if (st != ILM_OK || !got) break;
        if (r.n != width) {
            st = ilm__error(ILM_ERR_FORMAT, "dataset: '%s' line %zu: %zu fields, expected %zu",
                            t->path, r.line, r.n, width);
            break;
        }
        st = add_row(b, r.line);
        for (size_t c = 0; st == ILM_OK && c < t->n_cols; c++) {
            size_t f = map[c];
            st = add_cell(b, r.text.p + r.offs[f], r.offs[f + 1] - r.offs[f] - 1);
        }
    }
    ilm__free(map);
    ilm__buf_free(&r.text);
    ilm__free(r.offs);
    return st;
}

/* ---- text ------------------------------------------------------------------- */

static void *pcre_alloc(PCRE2_SIZE n, void *user) { (void)user; return ilm__malloc(n); }
static void  pcre_release(void *p, void *user) { (void)user; ilm__free(p); }

/* [b, e) without the line end ("\n" or "\r\n") it may end with. */
static size_t chop_eol(const char *p, size_t b, size_t e)
{
    if (e > b && p[e - 1] == '\n') e--;
    if (e > b && p[e - 1] == '\r') e--;
    return e;
}

/* The document p[from, to) that starts on `line`, unless it is all whitespace. */
static ilm_status add_document(builder *b, const char *p, size_t from, size_t to, size_t line)
{
    if (ilm__py_rstrip_len(p + from, to - from) == 0) return ILM_OK;
    ILM__FORWARD(add_row(b, line));
    return add_cell(b, p + from, to - from);
}

/* The documents of a text file, split where lines match `start`
 * (ilm__table_opts.document_start): EleutherAI's wikitext_document_level
 * makes WikiText's articles so, a line " = Title = " beginning each. */
static ilm_status split_documents(const input *in, const char *path, const char *start,
                                  builder *b)
{
    pcre2_general_context *gc = pcre2_general_context_create(pcre_alloc, pcre_release, NULL);
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    pcre2_code *re = NULL;
    pcre2_match_data *md = NULL;
    ilm_status st = cc ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "dataset: out of memory");
    if (st == ILM_OK) {
        int err;
        PCRE2_SIZE at;
        re = pcre2_compile((PCRE2_SPTR)start, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err,
                           &at, cc);
        if (!re && (err == PCRE2_ERROR_NOMEMORY || err == PCRE2_ERROR_HEAP_FAILED)) {
            st = ilm__error(ILM_ERR_NOMEM, "dataset: out of memory");
        } else if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(err, msg, sizeof msg);
            st = ilm__error(ILM_ERR_CONFIG,
                            "dataset: '%s': document_start '%s' is not a regular expression: %s "
                            "at offset %zu",
                            path, start, (const char *)msg, (size_t)at);
        }
    }
    if (st == ILM_OK) md = pcre2_match_data_create_from_pattern(re, gc);
    if (st == ILM_OK && !md) st = ilm__error(ILM_ERR_NOMEM, "dataset: out of memory");
    const char *p = in->p;
    size_t doc = 0, doc_line = 1, line = 1;
    for (size_t i = 0; st == ILM_OK && i < in->n; line++) {
        const char *nl = memchr(p + i, '\n', in->n - i);
        size_t end = nl ? (size_t)(nl - p) + 1 : in->n;
        /* The text is valid UTF-8 (check_text) and a line ends at a '\n'. */
        int rc = pcre2_match(re, (PCRE2_SPTR)(p + i), chop_eol(p, i, end) - i, 0,
                             PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc >= 0 && i > doc) {
            st = add_document(b, p, doc, chop_eol(p, doc, i), doc_line);
            doc = i;
            doc_line = line;
        } else if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = ilm__error(rc == PCRE2_ERROR_NOMEMORY ? ILM_ERR_NOMEM : ILM_ERR_FORMAT,
                            "dataset: '%s' line %zu: document_start: %s", path, line,
                            (const char *)msg);
        }
        i = end;
    }
    if (st == ILM_OK && in->n > doc) st = add_document(b, p, doc, chop_eol(p, doc, in->n), doc_line);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(gc);
    return st;
}

/* The whole file as one row of one column, "text" (a document to score),
 * or its documents, one a row. */
static ilm_status read_text(const input *in, const ilm__table_opts *o, ilm__table *t, builder *b)
{
    static const char *const text[] = { "text" };
    ILM__FORWARD(set_columns(t, text, 1));
    if (o->document_start) return split_documents(in, t->path, o->document_start, b);
    if (in->n == 0) return ILM_OK; /* no rows: finish() says so */
    ILM__FORWARD(add_row(b, 1));
    return add_cell(b, in->p, in->n);
}

/* ---- the table -------------------------------------------------------------- */

ilm_status ilm__table_read(const char *path, const ilm__table_opts *opts, ilm__table *out)
{
    static const ilm__table_opts defaults = { 0 };
    const ilm__table_opts *o = opts ? opts : &defaults;
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "dataset: no table to read into");
    memset(out, 0, sizeof *out);
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "dataset: no path");
    ILM__RETURN_IF(o->n_columns && !o->columns, ILM_ERR_INVALID_ARG,
                   "dataset: %zu columns but no names", o->n_columns);
    ILM__RETURN_IF(o->columns && !o->n_columns, ILM_ERR_INVALID_ARG,
                   "dataset: an empty list of columns");
    for (size_t i = 0; o->columns && i < o->n_columns; i++)
        ILM__RETURN_IF(!o->columns[i], ILM_ERR_INVALID_ARG, "dataset: column %zu has no name", i);

    bool gz = ends_with(path, ".gz");
    size_t stem = strlen(path) - (gz ? 3 : 0);
    bool jsonl, text = false;
    if (o->format) {
        jsonl = strcmp(o->format, "jsonl") == 0;
        text = strcmp(o->format, "text") == 0;
        ILM__RETURN_IF(!jsonl && !text && strcmp(o->format, "csv") != 0, ILM_ERR_CONFIG,
                       "dataset: unknown format '%s' (jsonl, csv or text)", o->format);
    } else if (stem >= 6 && memcmp(path + stem - 6, ".jsonl", 6) == 0) {
        jsonl = true;
    } else if (stem >= 4 && memcmp(path + stem - 4, ".csv", 4) == 0) {
        jsonl = false;
    } else {
        return ilm__error(ILM_ERR_CONFIG, "dataset: cannot tell the format of '%s' from its name "
                          "(.jsonl or .csv, optionally .gz): give the format", path);
    }
    ILM__RETURN_IF(o->document_start && !text, ILM_ERR_CONFIG,
                   "dataset: document_start splits text files only, not '%s'", path);

    out->path = ilm__strdup(path);
    ILM__RETURN_IF(!out->path, ILM_ERR_NOMEM, "dataset: out of memory");
    input in;
    builder b = { 0 };
    ilm_status st = input_open(path, gz, o->max_bytes ? o->max_bytes : DEFAULT_MAX_BYTES, &in);
    if (st == ILM_OK) st = check_text(path, &in, !jsonl);
    if (st == ILM_OK)
        st = text    ? read_text(&in, o, out, &b)
             : jsonl ? read_jsonl(&in, o, out, &b)
                     : read_csv(&in, o, out, &b);
    if (st == ILM_OK) st = finish(&b, out);
    builder_free(&b);
    input_close(&in);
    if (st != ILM_OK) ilm__table_free(out);
    return st;
}

void ilm__table_free(ilm__table *t)
{
    if (!t) return;
    for (size_t i = 0; t->cols && i < t->n_cols; i++) ilm__free(t->cols[i]);
    ilm__free(t->cols);
    ilm__free(t->cells);
    ilm__free(t->lines);
    ilm__free(t->text);
    ilm__free(t->path);
    memset(t, 0, sizeof *t);
}

long ilm__table_col(const ilm__table *t, const char *name)
{
    for (size_t i = 0; t && name && i < t->n_cols; i++)
        if (strcmp(t->cols[i], name) == 0) return (long)i;
    return -1;
}

const char *ilm__table_cell(const ilm__table *t, size_t row, long col)
{
    if (!t || row >= t->n_rows || col < 0 || (size_t)col >= t->n_cols) return NULL;
    return t->cells[row * t->n_cols + (size_t)col];
}
