/* The evaluator's dataset tables and prompt templates (src/eval/data.c,
 * template.c): hand-written CSV and JSONL files with every quoting and
 * line-end case, each kind of bad input, gzip (good, truncated, a bomb
 * under a bound), the real evaluation sets of the shared data folder
 * against what Python's csv and json modules read from them
 * (tools/reference/eval_data_fixtures.py), and the template syntax. */
#include "tests.h"
#include "eval/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FIX "tests/fixtures/eval/data/"

/* ---- helpers ------------------------------------------------------------- */

static void read_ok(const char *path, const ilm__table_opts *o, ilm__table *t)
{
    ck_assert_msg(ilm__table_read(path, o, t) == ILM_OK, "%s: %s", path, ilm_last_error());
}

static void assert_row(const ilm__table *t, size_t row, const char *const *want)
{
    for (size_t c = 0; c < t->n_cols; c++)
        ck_assert_str_eq(ilm__table_cell(t, row, (long)c), want[c]);
}

static void assert_cols(const ilm__table *t, const char *const *want, size_t n)
{
    ck_assert_uint_eq(t->n_cols, n);
    for (size_t c = 0; c < n; c++) ck_assert_str_eq(t->cols[c], want[c]);
}

/* ---- good files ------------------------------------------------------------ */

START_TEST(data_csv_header)
{
    /* BOM, CRLF, an empty column name (CMMLU's header), a quoted comma, a
     * quoted CRLF kept as written, a blank line, "" escapes, a quote inside
     * an unquoted field (Python keeps it) and text after a closing quote
     * (Python appends it), CRLF and LF mixed. */
    ilm__table t;
    read_ok(FIX "quoted.csv", NULL, &t);
    const char *cols[] = { "", "Question", "Answer" };
    assert_cols(&t, cols, 3);
    ck_assert_uint_eq(t.n_rows, 6);
    const char *rows[][3] = {
        { "0", "a, b", "A" },     { "1", "two\r\nlines", "B" },    { "2", "say \"hi\"", "C" },
        { "3", "5\" tall", "D" }, { "4", "", "\xe4\xb8\xad" }, { "5", "xy z", "E" },
    };
    const size_t lines[] = { 2, 3, 6, 7, 8, 9 };
    for (size_t r = 0; r < 6; r++) {
        assert_row(&t, r, rows[r]);
        ck_assert_uint_eq(t.lines[r], lines[r]);
    }
    ck_assert_str_eq(t.path, FIX "quoted.csv");
    ck_assert_int_eq(ilm__table_col(&t, ""), 0);
    ck_assert_int_eq(ilm__table_col(&t, "Answer"), 2);
    ck_assert_int_eq(ilm__table_col(&t, "answer"), -1);
    ck_assert_ptr_null(ilm__table_cell(&t, 6, 0));
    ck_assert_ptr_null(ilm__table_cell(&t, 0, 3));
    ck_assert_ptr_null(ilm__table_cell(&t, 0, -1));
    ilm__table_free(&t);
    ck_assert_ptr_null(t.cells);
    ilm__table_free(&t); /* twice is harmless, and so is NULL */
    ilm__table_free(NULL);

    /* Keeping columns by header name, in the order asked. */
    const char *keep[] = { "Answer", "Question" };
    ilm__table_opts o = { .header = true, .columns = keep, .n_columns = 2 };
    read_ok(FIX "quoted.csv", &o, &t);
    assert_cols(&t, keep, 2);
    ck_assert_uint_eq(t.n_rows, 6);
    ck_assert_str_eq(ilm__table_cell(&t, 1, 0), "B");
    ck_assert_str_eq(ilm__table_cell(&t, 1, 1), "two\r\nlines");
    ilm__table_free(&t);
}
END_TEST

START_TEST(data_csv_no_header)
{
    const char *cols[] = { "question", "A", "B", "C", "D", "answer" };
    ilm__table_opts o = { .columns = cols, .n_columns = 6 };
    ilm__table t;
    read_ok(FIX "noheader.csv", &o, &t);
    assert_cols(&t, cols, 6);
    /* A lone CR ends a line, as in Python, and is kept inside quotes. */
    ck_assert_uint_eq(t.n_rows, 4);
    const char *rows[][6] = {
        { "What is 2+2?", "3", "4", "5", "6", "B" },
        { "Pick one, please", "x", "y", "z", "w\nv", "D" },
        { "r\rs", "1", "2", "3", "4", "C" },
        { "end", "1", "2", "3", "4", "A" },
    };
    const size_t lines[] = { 1, 2, 4, 6 };
    for (size_t r = 0; r < 4; r++) {
        assert_row(&t, r, rows[r]);
        ck_assert_uint_eq(t.lines[r], lines[r]);
    }
    ilm__table_free(&t);
}
END_TEST

START_TEST(data_jsonl)
{
    /* Numbers as their shortest round-trip text, integers without ".0";
     * true/false/null as words; nested values as compact JSON; blank and
     * whitespace-only lines skipped; CRLF; of duplicate keys the last. */
    ilm__table t;
    read_ok(FIX "rows.jsonl", NULL, &t);
    const char *cols[] = { "q", "n", "x", "t", "z", "o" };
    assert_cols(&t, cols, 6);
    ck_assert_uint_eq(t.n_rows, 3);
    const char *rows[][6] = {
        { "caf\xc3\xa9 \xe2\x9c\x93", "4", "0.25", "true", "null", "{\"a\":[1,2.5]}" },
        { "second", "-1.5e-07", "1e+20", "false", "[]", "s" },
        { "last", "1e-300", "-0", "123456789012", "0.1", "3" },
    };
    const size_t lines[] = { 1, 4, 5 };
    for (size_t r = 0; r < 3; r++) {
        assert_row(&t, r, rows[r]);
        ck_assert_uint_eq(t.lines[r], lines[r]);
    }
    ilm__table_free(&t);

    /* The keys asked for, in that order; the same file gzip'd reads the
     * same, with the format given for a name that does not tell it. */
    char *dir = test_tmpdir(), *g = test_join(dir, "rows.data");
    size_t n;
    char *text = test_slurp(FIX "rows.jsonl", &n);
    test_write_gz(g, text, n);
    const char *keep[] = { "o", "q" };
    ilm__table_opts o = { .format = "jsonl", .columns = keep, .n_columns = 2 };
    ck_assert_int_eq(ilm__table_read(g, NULL, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "cannot tell the format"));
    free(g);
    g = test_join(dir, "rows.jsonl.gz");
    test_write_gz(g, text, n);
    read_ok(g, &o, &t);
    assert_cols(&t, keep, 2);
    ck_assert_uint_eq(t.n_rows, 3);
    ck_assert_str_eq(ilm__table_cell(&t, 2, 0), "3");
    ck_assert_str_eq(ilm__table_cell(&t, 2, 1), "last");
    ck_assert_uint_eq(t.lines[2], 5);
    ilm__table_free(&t);
    free(text);
    free(g);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Text split into documents where a line matches document_start: the
 * lines before the first match are a document too, a whitespace-only one
 * is dropped, the line end before the next start belongs to neither, and
 * CRLF line ends are matched without their CR. */
START_TEST(data_text_documents)
{
    char *dir = test_tmpdir(), *p = test_join(dir, "wiki.txt");
    const char *text = " \n"
                       " = Alpha = \n"
                       " Alpha is a letter .\n"
                       " = = History = = \n"
                       " Old .\n"
                       " = Beta = \r\n"
                       " Beta follows .\r\n"
                       "\n"
                       " = Gamma = \n"
                       " \n"
                       " = Delta = "; /* no final line end */
    test_write_bytes(p, text, strlen(text));
    ilm__table_opts o = { .format = "text", .document_start = "^ = [^=].* = $" };
    ilm__table t;
    read_ok(p, &o, &t);
    static const char *const cols[] = { "text" };
    assert_cols(&t, cols, 1);
    static const char *const want[] = {
        " = Alpha = \n Alpha is a letter .\n = = History = = \n Old .",
        " = Beta = \r\n Beta follows .\r\n",
        " = Gamma = \n ",
        " = Delta = ",
    };
    static const size_t lines[] = { 2, 6, 9, 11 };
    ck_assert_uint_eq(t.n_rows, 4); /* the blank first line is no document */
    for (size_t r = 0; r < 4; r++) {
        ck_assert_str_eq(ilm__table_cell(&t, r, 0), want[r]);
        ck_assert_uint_eq(t.lines[r], lines[r]);
    }
    ilm__table_free(&t);
    /* Text before the first match is a document; without a match, the
     * whole text is one, less its final line end. */
    test_write_bytes(p, "intro\n = A = \nx\n", 16);
    read_ok(p, &o, &t);
    ck_assert_uint_eq(t.n_rows, 2);
    ck_assert_str_eq(ilm__table_cell(&t, 0, 0), "intro");
    ck_assert_str_eq(ilm__table_cell(&t, 1, 0), " = A = \nx");
    ilm__table_free(&t);
    o.document_start = "^#";
    read_ok(p, &o, &t);
    ck_assert_uint_eq(t.n_rows, 1);
    ck_assert_str_eq(ilm__table_cell(&t, 0, 0), "intro\n = A = \nx");
    ilm__table_free(&t);
    /* Unicode classes as Python's re: \s takes U+3000. */
    test_write_bytes(p, "\xe3\x80\x80# a\nb\n# c\n", 13);
    o.document_start = "^\\s*#";
    read_ok(p, &o, &t);
    ck_assert_uint_eq(t.n_rows, 2);
    ck_assert_str_eq(ilm__table_cell(&t, 0, 0), "\xe3\x80\x80# a\nb");
    ilm__table_free(&t);
    /* Whitespace only: no rows.  A bad expression, or one for CSV: config. */
    test_write_bytes(p, " \n\t\n", 4);
    ck_assert_int_eq(ilm__table_read(p, &o, &t), ILM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "has no rows"));
    o.document_start = "^ = (";
    ck_assert_int_eq(ilm__table_read(p, &o, &t), ILM_ERR_CONFIG);
    ck_assert_msg(strstr(ilm_last_error(), "not a regular expression") &&
                      strstr(ilm_last_error(), "wiki.txt"),
                  "%s", ilm_last_error());
    o.format = "csv";
    o.document_start = "^x";
    ck_assert_int_eq(ilm__table_read(p, &o, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "text files only"));
    free(p);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- bad files --------------------------------------------------------------- */

typedef struct bad_case {
    const char *name;     /* the file's name in a fresh directory */
    const char *data;
    size_t      len;      /* 0: strlen(data) */
    const char *columns;  /* comma-separated, or NULL */
    bool        header;
    size_t      max_bytes;
    ilm_status  want;
    const char *msg;      /* a part of the message */
} bad_case;

static const bad_case bad_cases[] = {
    { "empty.jsonl", "", 0, NULL, false, 0, ILM_ERR_FORMAT, "has no rows" },
    { "empty.csv", "", 0, NULL, false, 0, ILM_ERR_FORMAT, "has no rows" },
    { "blank.jsonl", "\n  \r\n\t\n", 0, NULL, false, 0, ILM_ERR_FORMAT, "has no rows" },
    { "bom.csv", "\xEF\xBB\xBF", 0, NULL, false, 0, ILM_ERR_FORMAT, "has no rows" },
    { "header_only.csv", "a,b\r\n", 0, NULL, false, 0, ILM_ERR_FORMAT, "has no rows" },
    { "bad.jsonl", "{\"a\": 1}\n{\"a\": \n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 2: invalid JSON" },
    { "tail.jsonl", "{\"a\": 1} x\n", 0, NULL, false, 0, ILM_ERR_FORMAT, "line 1: invalid JSON" },
    { "two.jsonl", "{\"a\": 1}{\"a\": 2}\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 1: invalid JSON" },
    { "surrogate.jsonl", "{\"a\": \"\\ud800\"}\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 1: invalid JSON" },
    { "missing.jsonl", "{\"a\": 1, \"b\": 2}\n\n{\"a\": 3}\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 3: no key 'b'" },
    { "asked.jsonl", "{\"a\": 1, \"b\": 2}\n", 0, "a,c", false, 0, ILM_ERR_FORMAT,
      "line 1: no key 'c'" },
    { "array.jsonl", "{\"a\": 1}\n[1, 2]\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 2: a row must be a JSON object, not an array" },
    { "string.jsonl", "\"a\"\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 1: a row must be a JSON object, not a string" },
    { "nokeys.jsonl", "{}\n", 0, NULL, false, 0, ILM_ERR_FORMAT, "line 1: the first row has no keys" },
    { "fields.csv", "a,b\n1,2\n3\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 3: 1 fields, expected 2" },
    { "fields2.csv", "a,b\n\"x\ny\",2\n1,2,3\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 4: 3 fields, expected 2" },
    { "named.csv", "1,2\n", 0, "a,b,c", false, 0, ILM_ERR_FORMAT, "line 1: 2 fields, expected 3" },
    { "select.csv", "a,b\n1,2\n", 0, "a,x", true, 0, ILM_ERR_FORMAT,
      "line 1: no column 'x' in the header" },
    { "open.csv", "a,b\n1,\"open\n2,3\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 2: a quoted field is not closed" },
    { "utf8.csv", "a,b\n1,\xff\n", 0, NULL, false, 0, ILM_ERR_FORMAT, "line 2: invalid UTF-8" },
    { "overlong.csv", "a,b\n\"x\ny\",\xc0\xaf\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 3: invalid UTF-8" },
    { "utf8.jsonl", "\n{\"a\": \"\xc3\x28\"}\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 2: invalid UTF-8" },
    { "cut.jsonl", "{\"a\": \"\xe4\xb8\"}\n", 0, NULL, false, 0, ILM_ERR_FORMAT,
      "line 1: invalid UTF-8" },
    { "nul.csv", "a,b\n1,x\0y\n", 10, NULL, false, 0, ILM_ERR_FORMAT, "line 2: a NUL byte" },
    { "big.jsonl", "{\"a\": \"0123456789\"}\n", 0, NULL, false, 10, ILM_ERR_RANGE,
      "is 20 bytes, more than max_bytes (10)" },
    { "data.txt", "a,b\n", 0, NULL, false, 0, ILM_ERR_CONFIG, "cannot tell the format" },
};

static void split_columns(const char *spec, char *buf, size_t size, const char **cols, size_t *n)
{
    *n = 0;
    snprintf(buf, size, "%s", spec);
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) cols[(*n)++] = s;
}

START_TEST(data_bad_inputs)
{
    const bad_case *c = &bad_cases[_i];
    char *dir = test_tmpdir(), *p = test_join(dir, c->name);
    test_write_bytes(p, c->data, c->len ? c->len : strlen(c->data));
    char buf[64];
    const char *cols[8];
    ilm__table_opts o = { .header = c->header, .max_bytes = c->max_bytes };
    if (c->columns) {
        split_columns(c->columns, buf, sizeof buf, cols, &o.n_columns);
        o.columns = cols;
    }
    ilm__table t;
    ilm_status st = ilm__table_read(p, &o, &t);
    ck_assert_msg(st == c->want, "%s: status %d, want %d (%s)", c->name, st, c->want,
                  ilm_last_error());
    ck_assert_msg(strstr(ilm_last_error(), c->msg) && strstr(ilm_last_error(), c->name),
                  "%s: message '%s' lacks '%s' or the file", c->name, ilm_last_error(), c->msg);
    ck_assert_uint_eq(t.n_rows, 0); /* left empty */
    ck_assert_ptr_null(t.cells);
    ilm__table_free(&t);
    free(p);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(data_bad_calls)
{
    ilm__table t;
    ck_assert_int_eq(ilm__table_read("/nonexistent/dir/x.jsonl", NULL, &t), ILM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "/nonexistent/dir/x.jsonl"));
    ck_assert_int_eq(ilm__table_read("/nonexistent/dir/x.csv.gz", NULL, &t), ILM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "/nonexistent/dir/x.csv.gz"));
    ilm__table_opts o = { .format = "xml" };
    ck_assert_int_eq(ilm__table_read(FIX "rows.jsonl", &o, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "unknown format 'xml'"));
    o = (ilm__table_opts){ .n_columns = 2 };
    ck_assert_int_eq(ilm__table_read(FIX "rows.jsonl", &o, &t), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__table_read(NULL, NULL, &t), ILM_ERR_INVALID_ARG);
    /* A CSV file read as JSONL fails on its first line. */
    o = (ilm__table_opts){ .format = "jsonl" };
    ck_assert_int_eq(ilm__table_read(FIX "noheader.csv", &o, &t), ILM_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "line 1: invalid JSON"));
}
END_TEST

/* ---- gzip ---------------------------------------------------------------------- */

/* A counting allocator: the most live bytes at once, and what is left. */
static size_t live, peak;
static void *hook_malloc(void *u, size_t n)
{
    (void)u;
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    *p = n;
    live += n;
    if (live > peak) peak = live;
    return (char *)p + 16;
}
static void hook_free(void *u, void *q)
{
    (void)u;
    if (!q) return;
    size_t *p = (size_t *)((char *)q - 16);
    live -= *p;
    free(p);
}
static void *hook_realloc(void *u, void *q, size_t n)
{
    void *r = hook_malloc(u, n);
    if (r && q) {
        size_t old = *(size_t *)((char *)q - 16);
        memcpy(r, q, old < n ? old : n);
        hook_free(u, q);
    }
    return r;
}

START_TEST(data_gzip_truncated_and_bomb)
{
    char *dir = test_tmpdir(), *g = test_join(dir, "t.jsonl.gz");
    /* Lines that do not compress to nothing, so half the file is half the
     * stream. */
    size_t cap = 20000, n = 0;
    char *text = malloc(cap);
    for (int i = 0; n + 100 < cap; i++)
        n += (size_t)sprintf(text + n, "{\"q\": \"line %d %u\"}\n", i, (unsigned)(i * 2654435761u));
    test_write_gz(g, text, n);
    ilm__table t;
    read_ok(g, NULL, &t);
    ck_assert_uint_gt(t.n_rows, 100);
    ilm__table_free(&t);
    size_t gsize;
    char *gz = test_slurp(g, &gsize);
    test_write_bytes(g, gz, gsize / 2);
    ck_assert_int_eq(ilm__table_read(g, NULL, &t), ILM_ERR_FORMAT);
    ck_assert_msg(strstr(ilm_last_error(), "t.jsonl.gz': gzip:"), "%s", ilm_last_error());
    test_write_bytes(g, gz, gsize - 4); /* only the length trailer missing */
    ck_assert_int_eq(ilm__table_read(g, NULL, &t), ILM_ERR_FORMAT);

    /* 64 MiB of newlines in about 64 KiB: refused under a 1 MiB bound with
     * no more than the bound and a chunk ever allocated. */
    free(g);
    g = test_join(dir, "bomb.jsonl.gz");
    gzFile f = gzopen(g, "wb9");
    ck_assert_ptr_nonnull(f);
    char *nl = malloc(1 << 20);
    memset(nl, '\n', 1 << 20);
    for (int i = 0; i < 64; i++) ck_assert_int_eq(gzwrite(f, nl, 1 << 20), 1 << 20);
    ck_assert_int_eq(gzclose(f), Z_OK);
    ilm_allocator a = { hook_malloc, hook_realloc, hook_free, NULL };
    ck_assert_int_eq(ilm_set_allocator(&a), ILM_OK);
    ilm__table_opts o = { .max_bytes = 1 << 20 };
    ck_assert_int_eq(ilm__table_read(g, &o, &t), ILM_ERR_RANGE);
    ck_assert_int_eq(ilm_set_allocator(NULL), ILM_OK);
    ck_assert_msg(strstr(ilm_last_error(), "bomb.jsonl.gz' inflates to more than max_bytes"), "%s",
                  ilm_last_error());
    ck_assert_uint_lt(peak, 4u << 20);
    ck_assert_uint_eq(live, 0);
    free(nl);
    free(gz);
    free(text);
    free(g);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the real sets against Python's readers ----------------------------------- */

static uint64_t fnv_cells(const ilm__table *t)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (size_t r = 0; r < t->n_rows; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            for (const unsigned char *s = (const unsigned char *)ilm__table_cell(t, r, (long)c);
                 ; s++) {
                h = (h ^ (*s ? *s : 0x1f)) * 0x100000001B3ull;
                if (!*s) break;
            }
        }
        h = (h ^ 0x1e) * 0x100000001B3ull;
    }
    return h;
}

static void assert_prefix(const char *path, const char *cell, const char *prefix)
{
    ck_assert_msg(strncmp(cell, prefix, strlen(prefix)) == 0, "%s: '%.80s' does not start '%s'",
                  path, cell, prefix);
}

START_TEST(data_real_sets_match_python)
{
    if (!test_shared_file("gsm8k/test.jsonl")) return;
    cJSON *fix = test_read_json("tests/fixtures/eval/data_real.json");
    const cJSON *files = cJSON_GetObjectItem(fix, "files");
    static const char *mmlu_cols[] = { "question", "A", "B", "C", "D", "answer" };
    size_t n_files = 0, n_rows = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, files) {
        const char *rel = cJSON_GetObjectItem(e, "path")->valuestring;
        const char *found = test_shared_file(rel);
        if (!found) break;
        char *path = strdup(found);
        const cJSON *hdr = cJSON_GetObjectItem(e, "header");
        ilm__table_opts o = { 0 };
        if (cJSON_IsFalse(hdr)) {
            o.columns = mmlu_cols;
            o.n_columns = 6;
        }
        ilm__table t;
        read_ok(path, &o, &t);
        ck_assert_msg(t.n_rows == (size_t)cJSON_GetObjectItem(e, "rows")->valueint, "%s: %zu rows",
                      rel, t.n_rows);
        ck_assert_uint_eq(t.n_cols, (size_t)cJSON_GetObjectItem(e, "cols")->valueint);
        const cJSON *names = cJSON_GetObjectItem(e, "columns");
        for (size_t c = 0; names && c < t.n_cols; c++)
            ck_assert_str_eq(t.cols[c], cJSON_GetArrayItem(names, (int)c)->valuestring);
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv_cells(&t));
        ck_assert_msg(strcmp(hex, cJSON_GetObjectItem(e, "fnv")->valuestring) == 0,
                      "%s: cells differ from Python's", rel);
        assert_prefix(rel, ilm__table_cell(&t, 0, 0), cJSON_GetObjectItem(e, "first")->valuestring);
        assert_prefix(rel, ilm__table_cell(&t, t.n_rows - 1, (long)t.n_cols - 1),
                      cJSON_GetObjectItem(e, "last")->valuestring);
        n_files++;
        n_rows += t.n_rows;
        ilm__table_free(&t);
        free(path);
    }
    cJSON_Delete(fix);
    ck_assert_uint_eq(n_files, 178);
    ck_assert_uint_eq(n_rows, 2363); /* the example counts of shared/data/README.md */
}
END_TEST

/* ---- templates ------------------------------------------------------------------ */

static const char *fields[][2] = {
    { "question", "What?" }, { "A", "x" }, { "a.b", "dot" }, { "x-y_1", "dash" }, { "empty", "" },
    { "brace", "{A}" },
};

static const char *lookup(void *user, const char *name, size_t len)
{
    (void)user;
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
        if (strlen(fields[i][0]) == len && memcmp(fields[i][0], name, len) == 0) return fields[i][1];
    return NULL;
}

typedef struct tmpl_case {
    const char *tmpl;
    const char *want; /* the rendering, or the part of the error message */
    ilm_status  status;
} tmpl_case;

static const tmpl_case tmpl_cases[] = {
    { "Q: {question}\nA: {A}", "Q: What?\nA: x", ILM_OK },
    { "", "", ILM_OK },
    { "no slots at all", "no slots at all", ILM_OK },
    { "{{literal}} {{{A}}}", "{literal} {x}", ILM_OK },
    { "}}{{", "}{", ILM_OK },
    { "{a.b}/{x-y_1}/{empty}.", "dot/dash/.", ILM_OK },
    { "{brace}", "{A}", ILM_OK }, /* values are not templates */
    { "\xe4\xb8\xad{A}\xe6\x96\x87", "\xe4\xb8\xadx\xe6\x96\x87", ILM_OK },
    { "{missing}", "prompt: slot '{missing}' names no field", ILM_ERR_CONFIG },
    { "ok {a.c}", "slot '{a.c}' names no field", ILM_ERR_CONFIG },
    { "{}", "prompt: empty slot '{}' at byte 0", ILM_ERR_CONFIG },
    { "ab}", "unmatched '}' at byte 2", ILM_ERR_CONFIG },
    { "{A}}", "unmatched '}' at byte 3", ILM_ERR_CONFIG },
    { "{{A}", "unmatched '}' at byte 3", ILM_ERR_CONFIG },
    { "{A", "'{' at byte 0 opens no slot", ILM_ERR_CONFIG },
    { "x{a b}", "'{' at byte 1 opens no slot", ILM_ERR_CONFIG },
    { "{ A}", "'{' at byte 0 opens no slot", ILM_ERR_CONFIG },
    { "{{{A}", "{x", ILM_OK },
    { "{A{question}}", "'{' at byte 0 opens no slot", ILM_ERR_CONFIG },
    { "{\xc3\xa9}", "'{' at byte 0 opens no slot", ILM_ERR_CONFIG },
};

START_TEST(template_cases)
{
    const tmpl_case *c = &tmpl_cases[_i];
    ilm_status st = ilm__template_check(c->tmpl, "prompt", lookup, NULL);
    ck_assert_msg(st == c->status, "'%s': check gave %d (%s)", c->tmpl, st, ilm_last_error());
    ilm__buf out = { 0 };
    ck_assert_int_eq(ilm__buf_append(&out, "keep:", 5), ILM_OK);
    st = ilm__template_render(c->tmpl, "prompt", lookup, NULL, &out);
    ck_assert_int_eq(st, c->status);
    if (st == ILM_OK) {
        ck_assert_str_eq(out.p + 5, c->want);
    } else {
        ck_assert_msg(strstr(ilm_last_error(), c->want), "'%s': message '%s' lacks '%s'", c->tmpl,
                      ilm_last_error(), c->want);
        ck_assert_str_eq(out.p, "keep:"); /* a failed render leaves nothing */
    }
    ilm__buf_free(&out);
}
END_TEST

/* A template over a table row, as the evaluator uses one. */
typedef struct row_ctx {
    const ilm__table *t;
    size_t            row;
} row_ctx;

static const char *row_lookup(void *user, const char *name, size_t len)
{
    const row_ctx *r = user;
    char key[64];
    if (len >= sizeof key) return NULL;
    memcpy(key, name, len);
    key[len] = '\0';
    return ilm__table_cell(r->t, r->row, ilm__table_col(r->t, key));
}

START_TEST(template_over_table_rows)
{
    ilm__table t;
    read_ok(FIX "quoted.csv", NULL, &t);
    row_ctx r = { &t, 0 };
    const char *tmpl = "{Question} -> {Answer}|";
    ck_assert_int_eq(ilm__template_check(tmpl, "task", row_lookup, &r), ILM_OK);
    ck_assert_int_eq(ilm__template_check("{question}", "task", row_lookup, &r), ILM_ERR_CONFIG);
    ck_assert_str_eq(ilm_last_error(), "task: slot '{question}' names no field");
    ilm__buf out = { 0 };
    for (r.row = 0; r.row < t.n_rows; r.row++)
        ck_assert_int_eq(ilm__template_render(tmpl, "task", row_lookup, &r, &out), ILM_OK);
    ck_assert_str_eq(out.p, "a, b -> A|two\r\nlines -> B|say \"hi\" -> C|5\" tall -> D| -> \xe4\xb8\xad|xy z -> E|");
    ilm__buf_free(&out);
    ilm__table_free(&t);

    /* No lookup knows no names; NULL `what` reads "template". */
    ck_assert_int_eq(ilm__template_check("plain {{x}}", NULL, NULL, NULL), ILM_OK);
    ck_assert_int_eq(ilm__template_check("{x}", NULL, NULL, NULL), ILM_ERR_CONFIG);
    ck_assert_str_eq(ilm_last_error(), "template: slot '{x}' names no field");
    ck_assert_int_eq(ilm__template_check(NULL, "p", NULL, NULL), ILM_ERR_INVALID_ARG);
}
END_TEST

Suite *suite_eval_data(void)
{
    Suite *s = suite_create("eval_data");
    TCase *t = tcase_create("table");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, data_csv_header);
    tcase_add_test(t, data_csv_no_header);
    tcase_add_test(t, data_jsonl);
    tcase_add_test(t, data_text_documents);
    tcase_add_loop_test(t, data_bad_inputs, 0, (int)(sizeof bad_cases / sizeof *bad_cases));
    tcase_add_test(t, data_bad_calls);
    tcase_add_test(t, data_gzip_truncated_and_bomb);
    tcase_add_test(t, data_real_sets_match_python);
    suite_add_tcase(s, t);
    t = tcase_create("template");
    tcase_add_loop_test(t, template_cases, 0, (int)(sizeof tmpl_cases / sizeof *tmpl_cases));
    tcase_add_test(t, template_over_table_rows);
    suite_add_tcase(s, t);
    return s;
}
