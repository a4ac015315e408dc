/*
 * src/corpus/ingest.c -- reading raw inputs: files and directories of .txt,
 * .jsonl and .jsonl.gz become a stream of text documents and chat records.
 * The rules (walk order, text splitting, JSONL kinds, what is counted as
 * malformed) are documented in src/corpus/internal.h.
 */
#include "corpus/internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* ---- options ------------------------------------------------------------ */

void ilm__ingest_opts_default(ilm__ingest_opts *o)
{
    memset(o, 0, sizeof *o);
    o->split = ILM__SPLIT_PARAGRAPH;
    o->percent_breaks = true;
    o->jsonl = ILM__JSONL_AUTO;
    strcpy(o->text_field, "text");
    o->max_line_bytes = (size_t)1 << 30;
}

ilm_status ilm__ingest_opts_parse(const cJSON *obj, const char *path,
                                  ilm__ingest_opts *o)
{
    ilm__ingest_opts_default(o);
    if (!obj) return ILM_OK;
    const char *split = NULL, *jsonl = NULL, *field = NULL;
    int64_t max_line = (int64_t)o->max_line_bytes;
    const ilm__jfield fields[] = {
        { "split", ILM__J_STRING, &split, false, 0, 0 },
        { "percent_breaks", ILM__J_BOOL, &o->percent_breaks, false, 0, 0 },
        { "jsonl", ILM__J_STRING, &jsonl, false, 0, 0 },
        { "text_field", ILM__J_STRING, &field, false, 0, 0 },
        { "max_line_bytes", ILM__J_INT, &max_line, false, 1, (double)((int64_t)1 << 40) },
    };
    ILM__FORWARD(ilm__json_fields(obj, path, fields, sizeof fields / sizeof fields[0]));
    const char *sep = *path ? "." : "";
    if (split) {
        if (!strcmp(split, "paragraph")) o->split = ILM__SPLIT_PARAGRAPH;
        else if (!strcmp(split, "line")) o->split = ILM__SPLIT_LINE;
        else if (!strcmp(split, "file")) o->split = ILM__SPLIT_FILE;
        else return ilm__error(ILM_ERR_CONFIG, "config: '%s%ssplit' is '%s', not "
                               "\"paragraph\", \"line\" or \"file\"", path, sep, split);
    }
    if (jsonl) {
        if (!strcmp(jsonl, "auto")) o->jsonl = ILM__JSONL_AUTO;
        else if (!strcmp(jsonl, "text")) o->jsonl = ILM__JSONL_TEXT;
        else if (!strcmp(jsonl, "chat")) o->jsonl = ILM__JSONL_CHAT;
        else return ilm__error(ILM_ERR_CONFIG, "config: '%s%sjsonl' is '%s', not "
                               "\"auto\", \"text\" or \"chat\"", path, sep, jsonl);
    }
    if (field) {
        ILM__RETURN_IF(!*field || strlen(field) >= sizeof o->text_field, ILM_ERR_CONFIG,
                       "config: '%s%stext_field' must have 1 to %zu bytes", path, sep,
                       sizeof o->text_field - 1);
        strcpy(o->text_field, field);
    }
    o->max_line_bytes = (size_t)max_line;
    return ILM_OK;
}

/* ---- the file list -------------------------------------------------------- */

typedef enum file_kind { KIND_TEXT, KIND_JSONL, KIND_JSONL_GZ } file_kind;

typedef struct file_ent {
    char     *path;
    file_kind kind;
    uint64_t  size;  /* on disk, for progress */
} file_ent;

/* A line source: a plain file is mmap'd and lines are slices of it; a gzip
 * file is inflated into `gz_buf`, which grows to hold the longest line. */
typedef struct source {
    bool      open;
    ilm__mmap map;
    gzFile    gz;
    ilm__buf  gz_buf;   /* unread inflated bytes are [gz_pos, gz_buf.n) */
    size_t    gz_pos;
    bool      gz_eof;
    size_t    pos;      /* mmap read position */
    uint64_t  line;     /* number of the last line returned */
} source;

struct ilm__ingest {
    ilm__ingest_opts opts;
    file_ent *files;
    size_t    n_files, cap_files, cur;
    source    src;
    ilm__buf  doc;      /* paragraph being assembled */
    cJSON    *json;     /* the current JSONL record */
    uint64_t  skipped_files, bad_files, records, text_records, chat_records;
    uint64_t  bytes, malformed;
    uint64_t  total_size, done_size; /* file bytes on disk: all, finished files */
    char     *examples[ILM__INGEST_EXAMPLES];
    size_t    n_examples;
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static ilm_status add_file(ilm__ingest *in, const char *path, file_kind kind)
{
    if (in->n_files == in->cap_files) {
        size_t cap = in->cap_files ? 2 * in->cap_files : 16;
        file_ent *f = ilm__realloc(in->files, cap * sizeof *f);
        ILM__RETURN_IF(!f, ILM_ERR_NOMEM, "ingest: out of memory for the file list");
        in->files = f;
        in->cap_files = cap;
    }
    char *p = ilm__strdup(path);
    ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "ingest: out of memory for the file list");
    struct stat sb;
    in->files[in->n_files++] = (file_ent){ p, kind, stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0 };
    in->total_size += in->files[in->n_files - 1].size;
    return ILM_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keeps `why` as one of the first examples; counting is the caller's. */
static void note(ilm__ingest *in, const char *file, uint64_t line, const char *why)
{
    if (in->n_examples >= ILM__INGEST_EXAMPLES) return;
    char *e = line ? ilm__asprintf("%s:%llu: %s", file, (unsigned long long)line, why)
                   : ilm__asprintf("%s: %s", file, why);
    if (e) in->examples[in->n_examples++] = e;
}

static ilm_status walk(ilm__ingest *in, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        /* An unreadable folder inside a walk costs its files, not the run. */
        in->bad_files++;
        note(in, dir, 0, strerror(errno));
        return ILM_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    ilm_status st = ILM_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 32;
            char **nn = ilm__realloc(names, nc * sizeof *nn);
            if (!nn) { st = ILM_ERR_NOMEM; break; }
            names = nn;
            cap = nc;
        }
        if (!(names[n] = ilm__strdup(e->d_name))) { st = ILM_ERR_NOMEM; break; }
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && st == ILM_OK; i++) {
        char *p = ilm__asprintf("%s/%s", dir, names[i]);
        if (!p) { st = ILM_ERR_NOMEM; break; }
        struct stat sb;
        if (lstat(p, &sb) != 0) {
            in->bad_files++;
            note(in, p, 0, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(in, p);
        } else {
            bool link = S_ISLNK(sb.st_mode);
            if (link && (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode))) {
                in->skipped_files++; /* dangling, or a link to a folder */
            } else if (ends_with(p, ".jsonl.gz")) {
                st = add_file(in, p, KIND_JSONL_GZ);
            } else if (ends_with(p, ".jsonl")) {
                st = add_file(in, p, KIND_JSONL);
            } else if (ends_with(p, ".txt")) {
                st = add_file(in, p, KIND_TEXT);
            } else {
                in->skipped_files++;
            }
        }
        ilm__free(p);
    }
    if (st == ILM_ERR_NOMEM) ilm__error(st, "ingest: out of memory walking '%s'", dir);
    for (size_t i = 0; i < n; i++) ilm__free(names[i]);
    ilm__free(names);
    return st;
}

ilm_status ilm__ingest_open(const char *const *paths, size_t n,
                            const ilm__ingest_opts *opts, ilm__ingest **out)
{
    *out = NULL;
    ILM__RETURN_IF(n && !paths, ILM_ERR_INVALID_ARG, "ingest: no paths");
    ilm__ingest *in = ilm__calloc(1, sizeof *in);
    ILM__RETURN_IF(!in, ILM_ERR_NOMEM, "ingest: out of memory");
    if (opts) in->opts = *opts;
    else ilm__ingest_opts_default(&in->opts);
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        ilm_status st = ILM_OK;
        if (!paths[i] || stat(paths[i], &sb) != 0) {
            st = ilm__error(ILM_ERR_IO, "ingest: cannot read '%s': %s",
                            paths[i] ? paths[i] : "(null)", strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(in, paths[i]);
        } else {
            file_kind k = ends_with(paths[i], ".jsonl.gz") ? KIND_JSONL_GZ
                        : ends_with(paths[i], ".jsonl")    ? KIND_JSONL
                                                           : KIND_TEXT;
            st = add_file(in, paths[i], k);
        }
        if (st != ILM_OK) {
            ilm__ingest_free(in);
            return st;
        }
    }
    *out = in;
    return ILM_OK;
}

/* ---- line reading ------------------------------------------------------- */

static void source_close(source *s)
{
    if (s->open) {
        ilm__mmap_close(&s->map);
        if (s->gz) gzclose(s->gz);
    }
    ilm__buf_free(&s->gz_buf);
    memset(s, 0, sizeof *s);
}

static bool source_open(ilm__ingest *in, const file_ent *f)
{
    source *s = &in->src;
    memset(s, 0, sizeof *s);
    if (f->kind == KIND_JSONL_GZ) {
        s->gz = gzopen(f->path, "rb");
        if (!s->gz) {
            in->bad_files++;
            note(in, f->path, 0, errno ? strerror(errno) : "gzip: cannot open");
            return false;
        }
        gzbuffer(s->gz, 1 << 17);
    } else if (ilm__mmap_open(f->path, &s->map) != ILM_OK) {
        in->bad_files++;
        note(in, f->path, 0, ilm_last_error());
        return false;
    }
    s->open = true;
    return true;
}

/* Inflates more of a gzip file onto the buffer's end.  A corrupt or
 * truncated stream ends the file here and is counted once. */
static ilm_status gz_fill(ilm__ingest *in, const file_ent *f)
{
    source *s = &in->src;
    if (s->gz_pos > 0) { /* keep only the unread bytes */
        memmove(s->gz_buf.p, s->gz_buf.p + s->gz_pos, s->gz_buf.n - s->gz_pos);
        s->gz_buf.n -= s->gz_pos;
        s->gz_pos = 0;
    }
    enum { CHUNK = 1 << 20 };
    if (s->gz_buf.cap < s->gz_buf.n + CHUNK + 1) {
        size_t cap = s->gz_buf.cap ? s->gz_buf.cap : CHUNK + 1;
        while (cap < s->gz_buf.n + CHUNK + 1) cap *= 2;
        char *p = ilm__realloc(s->gz_buf.p, cap);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "ingest: out of memory reading '%s'", f->path);
        s->gz_buf.p = p;
        s->gz_buf.cap = cap;
    }
    int got = gzread(s->gz, s->gz_buf.p + s->gz_buf.n, CHUNK);
    int err = Z_OK;
    const char *msg = got < 0 ? gzerror(s->gz, &err) : NULL;
    if (got > 0) {
        s->gz_buf.n += (size_t)got;
        s->gz_buf.p[s->gz_buf.n] = '\0';
        return ILM_OK;
    }
    s->gz_eof = true;
    if (got == 0) msg = gzerror(s->gz, &err); /* zlib reports truncation here */
    if (err != Z_OK && err != Z_STREAM_END) {
        in->bad_files++;
        char *why = ilm__asprintf("gzip: %s", msg ? msg : "read error");
        note(in, f->path, 0, why ? why : "gzip: read error");
        ilm__free(why);
    }
    return ILM_OK;
}

/* The next line into (*p, *n) without its "\n" or "\r\n"; *eof at the end
 * of the file.  Lines longer than max_line_bytes are counted and skipped. */
static ilm_status next_line(ilm__ingest *in, const file_ent *f, const char **p,
                            size_t *n, bool *eof)
{
    source *s = &in->src;
    size_t max = in->opts.max_line_bytes;
    for (;;) {
        const char *line = NULL;
        size_t len = 0;
        bool had_nl = false;
        if (!s->gz) {
            if (s->pos >= s->map.size) { *eof = true; return ILM_OK; }
            const char *base = (const char *)s->map.data + s->pos;
            size_t left = s->map.size - s->pos;
            const char *nl = memchr(base, '\n', left);
            len = nl ? (size_t)(nl - base) : left;
            had_nl = nl != NULL;
            line = base;
            s->pos += len + had_nl;
        } else {
            bool skipping = false;
            size_t skipped = 0;
            for (;;) {
                char *base = s->gz_buf.p ? s->gz_buf.p + s->gz_pos : NULL;
                size_t left = s->gz_buf.n - s->gz_pos;
                char *nl = left ? memchr(base, '\n', left) : NULL;
                if (nl || (s->gz_eof && left)) {
                    len = nl ? (size_t)(nl - base) : left;
                    had_nl = nl != NULL;
                    line = base;
                    s->gz_pos += len + had_nl;
                    break;
                }
                if (s->gz_eof) {
                    if (!skipping) { *eof = true; return ILM_OK; }
                    break;
                }
                if (left > max) {
                    /* Drop what we hold of an over-long line and keep
                     * reading to its end: memory stays bounded by max. */
                    skipping = true;
                    skipped += left;
                    s->gz_pos = s->gz_buf.n;
                }
                ILM__FORWARD(gz_fill(in, f));
            }
            if (skipping) len += skipped;
        }
        s->line++;
        in->bytes += len + had_nl;
        if (len > max) {
            in->malformed++;
            char why[96];
            snprintf(why, sizeof why, "line of %zu bytes is longer than max_line_bytes %zu",
                     len, max);
            note(in, f->path, s->line, why);
            continue;
        }
        if (len && line[len - 1] == '\r') len--;
        *p = line;
        *n = len;
        *eof = false;
        return ILM_OK;
    }
}

/* ---- records ------------------------------------------------------------ */

static bool blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\f' && p[i] != '\v')
            return false;
    return true;
}

/* Checks that arr is an array of objects whose `keys` are strings (the
 * `optional` ones may be absent); NULL when it is, else why not. */
static const char *check_turns(const cJSON *arr, const char *const *keys, size_t n_keys,
                               const char *const *optional, size_t n_opt)
{
    if (!cJSON_IsArray(arr)) return "not an array";
    if (!arr->child) return "empty array";
    for (const cJSON *m = arr->child; m; m = m->next) {
        if (!cJSON_IsObject(m)) return "an element is not an object";
        for (size_t k = 0; k < n_keys; k++)
            if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, keys[k])))
                return "an element lacks a string field";
        for (size_t k = 0; k < n_opt; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, optional[k]);
            if (v && !cJSON_IsString(v) && !cJSON_IsBool(v))
                return "an element has a field of the wrong type";
        }
    }
    return NULL;
}

/* NULL when `obj` is a chat record of a known shape, else why not. */
static const char *check_chat(const cJSON *obj, bool *is_chat)
{
    static const char *const openai[] = { "role", "content" };
    static const char *const openai_opt[] = { "loss" };
    static const char *const xtuner[] = { "input", "output" };
    static const char *const xtuner_opt[] = { "system" };
    const cJSON *v;
    *is_chat = true;
    if ((v = cJSON_GetObjectItemCaseSensitive(obj, "messages"))) {
        const char *why = check_turns(v, openai, 2, openai_opt, 1);
        return why ? "'messages' is malformed" : NULL;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(obj, "conversation"))) {
        const char *why = check_turns(v, xtuner, 2, xtuner_opt, 1);
        return why ? "'conversation' is malformed" : NULL;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(obj, "instruction"))) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, "output");
        const cJSON *i = cJSON_GetObjectItemCaseSensitive(obj, "input");
        if (!cJSON_IsString(v)) return "'instruction' is not a string";
        if (!cJSON_IsString(o)) return "Alpaca record without a string 'output'";
        if (i && !cJSON_IsString(i)) return "'input' is not a string";
        return NULL;
    }
    *is_chat = false;
    return "no 'messages', 'conversation' or 'instruction'";
}

/* Turns one JSONL line into a record; false (counted) when malformed. */
static bool jsonl_record(ilm__ingest *in, const file_ent *f, const char *p, size_t n,
                         ilm__record *rec)
{
    const char *why = NULL;
    char buf[128];
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, n, &end, false);
    if (!j) {
        why = "invalid JSON";
    } else {
        size_t off = (size_t)(end - p);
        while (off < n && (p[off] == ' ' || p[off] == '\t')) off++;
        if (off < n) why = "bytes after the JSON value";
        else if (!cJSON_IsObject(j)) why = "not a JSON object";
    }
    if (!why) {
        bool is_chat = false;
        const char *chat_why = check_chat(j, &is_chat);
        if (in->opts.jsonl == ILM__JSONL_CHAT || (in->opts.jsonl == ILM__JSONL_AUTO && is_chat)) {
            why = chat_why;
            if (!why) {
                rec->kind = ILM__RECORD_CHAT;
                rec->chat = j;
            }
        } else {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, in->opts.text_field);
            if (!t || !cJSON_IsString(t)) {
                snprintf(buf, sizeof buf, t ? "field '%s' is not a string" : "no field '%s'",
                         in->opts.text_field);
                why = buf;
            } else {
                rec->kind = ILM__RECORD_TEXT;
                rec->text = t->valuestring;
                rec->len = strlen(t->valuestring);
            }
        }
    }
    if (why) {
        cJSON_Delete(j);
        in->malformed++;
        note(in, f->path, in->src.line, why);
        return false;
    }
    in->json = j;
    return true;
}

ilm_status ilm__ingest_next(ilm__ingest *in, ilm__record *rec, bool *done)
{
    *done = false;
    memset(rec, 0, sizeof *rec);
    cJSON_Delete(in->json);
    in->json = NULL;
    while (in->cur < in->n_files) {
        const file_ent *f = &in->files[in->cur];
        if (!in->src.open && !source_open(in, f)) {
            in->done_size += f->size;
            in->cur++;
            continue;
        }
        const char *p;
        size_t n;
        bool eof = false, got = false;
        in->doc.n = 0;
        uint64_t first = 0;
        if (f->kind == KIND_TEXT && in->opts.split == ILM__SPLIT_FILE) {
            source *s = &in->src;
            if (s->pos < s->map.size) {
                ILM__FORWARD(ilm__buf_append(&in->doc, s->map.data, s->map.size));
                in->bytes += s->map.size;
                s->pos = s->map.size;
                first = 1;
                got = true;
            }
        } else {
            for (;;) {
                ILM__FORWARD(next_line(in, f, &p, &n, &eof));
                if (eof) break;
                if (f->kind != KIND_TEXT) {
                    if (blank(p, n)) continue;
                    if (jsonl_record(in, f, p, n, rec)) {
                        got = true;
                        first = in->src.line;
                        break;
                    }
                    continue;
                }
                bool brk = blank(p, n) ||
                           (in->opts.percent_breaks && n == 1 && p[0] == '%');
                if (in->opts.split == ILM__SPLIT_LINE) {
                    if (brk) continue;
                    ILM__FORWARD(ilm__buf_append(&in->doc, p, n));
                    first = in->src.line;
                    got = true;
                    break;
                }
                if (brk) {
                    if (got) break;
                    continue;
                }
                if (got) ILM__FORWARD(ilm__buf_putc(&in->doc, '\n'));
                else first = in->src.line;
                ILM__FORWARD(ilm__buf_append(&in->doc, p, n));
                got = true;
            }
        }
        if (got) {
            if (!in->json) {
                rec->kind = ILM__RECORD_TEXT;
                rec->text = in->doc.p ? in->doc.p : "";
                rec->len = in->doc.n;
            }
            if (rec->kind == ILM__RECORD_CHAT) in->chat_records++;
            else in->text_records++;
            rec->file = f->path;
            rec->line = first;
            in->records++;
            return ILM_OK;
        }
        source_close(&in->src);
        in->done_size += f->size;
        in->cur++;
    }
    *done = true;
    return ILM_OK;
}

/* ---- report and teardown ----------------------------------------------- */

void ilm__ingest_progress(const ilm__ingest *in, uint64_t *done, uint64_t *total)
{
    uint64_t d = in->done_size;
    if (in->src.open) d += in->src.gz ? (uint64_t)gzoffset(in->src.gz) : in->src.pos;
    *done = d < in->total_size ? d : in->total_size;
    *total = in->total_size;
}

uint64_t ilm__ingest_malformed(const ilm__ingest *in) { return in->malformed; }
uint64_t ilm__ingest_bad_files(const ilm__ingest *in) { return in->bad_files; }

ilm_status ilm__ingest_report(const ilm__ingest *in, cJSON *obj)
{
    ILM__RETURN_IF(!cJSON_IsObject(obj), ILM_ERR_INVALID_ARG, "ingest: report needs an object");
    const struct { const char *k; uint64_t v; } nums[] = {
        { "files", in->n_files }, { "bad_files", in->bad_files },
        { "skipped_files", in->skipped_files }, { "records", in->records },
        { "text_records", in->text_records }, { "chat_records", in->chat_records },
        { "bytes", in->bytes }, { "malformed", in->malformed },
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        ILM__RETURN_IF(!cJSON_AddNumberToObject(obj, nums[i].k, (double)nums[i].v),
                       ILM_ERR_NOMEM, "ingest: out of memory for the report");
    cJSON *ex = cJSON_AddArrayToObject(obj, "examples");
    ILM__RETURN_IF(!ex, ILM_ERR_NOMEM, "ingest: out of memory for the report");
    for (size_t i = 0; i < in->n_examples; i++) {
        cJSON *s = cJSON_CreateString(in->examples[i]);
        ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "ingest: out of memory for the report");
        cJSON_AddItemToArray(ex, s);
    }
    return ILM_OK;
}

void ilm__ingest_free(ilm__ingest *in)
{
    if (!in) return;
    source_close(&in->src);
    cJSON_Delete(in->json);
    ilm__buf_free(&in->doc);
    for (size_t i = 0; i < in->n_files; i++) ilm__free(in->files[i].path);
    ilm__free(in->files);
    for (size_t i = 0; i < in->n_examples; i++) ilm__free(in->examples[i]);
    ilm__free(in);
}
