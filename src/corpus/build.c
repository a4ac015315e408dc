/*
 * The corpus pipeline (ilm_corpus_build) and the corpus directory reader
 * (ilm_corpus_open and friends).
 *
 * Records flow through five stages: ingest -> clean -> filter -> dedup ->
 * tokenize, then into shards.  Every record enters every stage; chat records
 * pass clean and filter untouched (those rules are for prose), so for each
 * stage documents_in = documents_out + the sum of its drops, and each
 * stage's documents_in is the previous stage's documents_out.
 *
 * The work goes in batches of a few MB: ingest (sequential), then clean,
 * filter, exact-dedup hashing and MinHash signing in parallel per document,
 * the dedup index in stream order (sequential), tokenizing in parallel (each
 * thread with its own word cache), and appending to the shard in order.  The output depends on the inputs and the config only,
 * never on the thread count.
 *
 * A corpus directory holds shard-NNNNN.shard files (docs/formats.md), the
 * tokenizer (a copy of the file as tokenizer.model or tokenizer.json, or
 * its absolute path when it is a directory or a GGUF model), report.json, and corpus.json, the manifest,
 * written last: a directory without corpus.json is not a corpus.  A build
 * writes into a work directory and moves its files into the output only
 * when it has succeeded (open_output, commit_output).
 */
#include "corpus/internal.h"
#include "tokenizer/internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST       "corpus.json"
#define BATCH_BYTES    (4u << 20)
#define BATCH_RECORDS  8192u

typedef enum mode { MODE_AUTO, MODE_PRETRAIN, MODE_SFT } mode;

typedef struct build_cfg {
    const cJSON    *inputs;
    const char     *output, *tokenizer;
    mode            mode;
    bool            overwrite, filter_on, dedup_on;
    int64_t         max_length, shard_tokens;
    ilm__ingest_opts ingest;
    ilm__clean_opts  clean;
    ilm__filter_opts filter;
    ilm__dedup_opts  dedup;
} build_cfg;

/* A stage's counters: documents and bytes in and out, drops by reason. */
typedef struct stage {
    const char *name;
    uint64_t    docs_in, docs_out, bytes_in, bytes_out;
    cJSON      *dropped; /* {"reason": count} */
} stage;

enum { ST_CLEAN, ST_FILTER, ST_DEDUP, ST_TOKENIZE, N_STAGES };

/* One record of a batch and what the stages made of it. */
typedef struct item {
    bool        chat;
    size_t      off, len;     /* raw text in the batch arena (text records) */
    cJSON      *rec;          /* chat records: a copy */
    char       *key;          /* chat records: printed JSON, for exact dedup */
    ilm__buf    clean;        /* cleaned text */
    const char *drop;         /* reason, or NULL while alive */
    int         drop_stage;
    size_t      n_shingles;
    uint64_t    exact[2];     /* dedup's exact hash */
    int32_t    *ids;
    uint8_t    *mask;
    size_t      n_ids;
    ilm__sft_stats sft;
    ilm_status  st;           /* a hard error from a parallel stage */
} item;

/* ---- configuration ------------------------------------------------------ */

static ilm_status parse_config(const cJSON *root, build_cfg *c)
{
    memset(c, 0, sizeof *c);
    const char *mode_s = NULL;
    const cJSON *ingest = NULL, *clean = NULL, *filter = NULL, *dedup = NULL;
    c->shard_tokens = (int64_t)1 << 26;
    const ilm__jfield f[] = {
        { "inputs", ILM__J_ARRAY, &c->inputs, true, 0, 0 },
        { "output", ILM__J_STRING, &c->output, true, 0, 0 },
        { "tokenizer", ILM__J_STRING, &c->tokenizer, true, 0, 0 },
        { "mode", ILM__J_STRING, &mode_s, false, 0, 0 },
        { "overwrite", ILM__J_BOOL, &c->overwrite, false, 0, 0 },
        { "max_length", ILM__J_INT, &c->max_length, false, 0, 1e9 },
        { "shard_tokens", ILM__J_INT, &c->shard_tokens, false, 1, 1e12 },
        { "ingest", ILM__J_OBJECT, &ingest, false, 0, 0 },
        { "clean", ILM__J_OBJECT, &clean, false, 0, 0 },
        { "filter", ILM__J_SECTION, &filter, false, 0, 0 },
        { "dedup", ILM__J_SECTION, &dedup, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(root, "", f, sizeof f / sizeof *f));
    c->filter_on = !cJSON_IsFalse(filter);
    c->dedup_on = !cJSON_IsFalse(dedup);
    ILM__RETURN_IF(cJSON_GetArraySize(c->inputs) == 0, ILM_ERR_CONFIG, "config: 'inputs' is empty");
    for (const cJSON *e = c->inputs->child; e; e = e->next)
        ILM__RETURN_IF(!cJSON_IsString(e), ILM_ERR_CONFIG, "config: 'inputs' must hold strings");
    ILM__RETURN_IF(!*c->output, ILM_ERR_CONFIG, "config: 'output' is empty");
    if (!mode_s || !strcmp(mode_s, "auto")) c->mode = MODE_AUTO;
    else if (!strcmp(mode_s, "pretrain")) c->mode = MODE_PRETRAIN;
    else if (!strcmp(mode_s, "sft")) c->mode = MODE_SFT;
    else return ilm__error(ILM_ERR_CONFIG, "config: 'mode' is '%s', not \"auto\", \"pretrain\" or \"sft\"", mode_s);
    ILM__FORWARD(ilm__ingest_opts_parse(ingest, "ingest", &c->ingest));
    ILM__FORWARD(ilm__clean_opts_parse(clean, "clean", &c->clean));
    ilm__filter_opts_default(&c->filter);
    ilm__dedup_opts_default(&c->dedup);
    if (cJSON_IsObject(filter)) ILM__FORWARD(ilm__filter_opts_parse(filter, "filter", &c->filter));
    if (cJSON_IsObject(dedup)) ILM__FORWARD(ilm__dedup_opts_parse(dedup, "dedup", &c->dedup));
    return ILM_OK;
}

/* ---- the output directory ----------------------------------------------- */

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* dir/name into buf [n]; false when it does not fit. */
static bool join(char *buf, size_t n, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b >= n) return false;
    memcpy(buf, dir, a);
    buf[a] = '/';
    memcpy(buf + a + 1, name, b + 1);
    return true;
}

/* What a build writes into a corpus directory: shards, the report, the
 * tokenizer copy and the manifest.  Overwriting replaces these and leaves
 * every other file alone. */
static bool is_ours(const char *name)
{
    return (!strncmp(name, "shard-", 6) && ends_with(name, ".shard")) || !strcmp(name, "report.json") ||
           !strcmp(name, "tokenizer.model") || !strcmp(name, "tokenizer.json") || !strcmp(name, MANIFEST);
}

/* Where a build writes.  Nothing is written into the output directory until
 * the build has succeeded: the files go to a hidden work directory on the
 * same filesystem, so that moving them in is a rename, and a build that
 * fails (bad data, a tokenizer without the chat tokens, a full disk, a
 * cancel) leaves an existing corpus exactly as it was.  For an output that
 * does not exist yet the work directory sits beside it and is renamed to
 * it at the end; for an existing one (empty, or a corpus to overwrite) it
 * sits inside it, and its files replace the old corpus's at the end. */
typedef struct outdir {
    char final[PATH_MAX]; /* the output directory, trailing slashes cut */
    char work[PATH_MAX];
    bool existed;
} outdir;

/* Removes the work directory and what is in it (files only). */
static void remove_work(const outdir *o)
{
    DIR *d = opendir(o->work);
    if (d) {
        char p[PATH_MAX];
        for (struct dirent *e; (e = readdir(d));) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            if (join(p, sizeof p, o->work, e->d_name)) unlink(p);
        }
        closedir(d);
    }
    rmdir(o->work);
}

/* Checks the output directory (missing; empty; or, with overwrite, any)
 * and makes the work directory. */
static ilm_status open_output(const char *dir, bool overwrite, outdir *o)
{
    static unsigned counter;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    ILM__RETURN_IF(n + 64 >= sizeof o->final, ILM_ERR_CONFIG, "config: 'output' is too long");
    snprintf(o->final, sizeof o->final, "%.*s", (int)n, dir);
    struct stat sb;
    o->existed = stat(o->final, &sb) == 0;
    ILM__RETURN_IF(!o->existed && errno != ENOENT, ILM_ERR_IO, "corpus: cannot use the output directory '%s': %s",
                   o->final, strerror(errno));
    ILM__RETURN_IF(o->existed && !S_ISDIR(sb.st_mode), ILM_ERR_IO,
                   "corpus: the output '%s' exists and is not a directory", o->final);
    const unsigned k = counter++;
    if (o->existed) {
        DIR *d = opendir(o->final);
        ILM__RETURN_IF(!d, ILM_ERR_IO, "corpus: cannot read '%s': %s", o->final, strerror(errno));
        bool empty = true;
        for (struct dirent *e; (e = readdir(d));)
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = false;
        closedir(d);
        ILM__RETURN_IF(!empty && !overwrite, ILM_ERR_IO,
                       "corpus: the output directory '%s' is not empty (set \"overwrite\": true "
                       "to replace the corpus in it)", o->final);
        char name[64];
        snprintf(name, sizeof name, ".build-%ld-%u", (long)getpid(), k);
        join(o->work, sizeof o->work, o->final, name); /* fits: final is 64 short of PATH_MAX */
    } else {
        const char *slash = strrchr(o->final, '/');
        const char *base = slash ? slash + 1 : o->final;
        char parent[PATH_MAX], name[NAME_MAX + 64];
        snprintf(parent, sizeof parent, "%.*s", slash ? (int)(slash - o->final) : 1, slash ? o->final : ".");
        if (slash == o->final) snprintf(parent, sizeof parent, "/");
        snprintf(name, sizeof name, ".%.*s.build-%ld-%u", NAME_MAX, base, (long)getpid(), k);
        ILM__RETURN_IF(!join(o->work, sizeof o->work, parent, name), ILM_ERR_CONFIG, "config: 'output' is too long");
    }
    ILM__RETURN_IF(mkdir(o->work, 0777) != 0, ILM_ERR_IO,
                   "corpus: cannot create '%s' to build the output directory '%s' in: %s", o->work, o->final,
                   strerror(errno));
    return ILM_OK;
}

/* Moves the finished build into place.  New output: one rename.  Existing
 * output: the old manifest goes first (a crash from here on leaves a
 * directory that does not open as a corpus, never a mix of two), then the
 * old corpus's other files, then the new files by rename within the
 * directory, the manifest last. */
static ilm_status commit_output(const outdir *o)
{
    if (!o->existed) {
        ILM__RETURN_IF(rename(o->work, o->final) != 0, ILM_ERR_IO, "corpus: cannot rename '%s' to '%s': %s",
                       o->work, o->final, strerror(errno));
        const char *slash = strrchr(o->final, '/');
        char parent[PATH_MAX];
        if (!slash) snprintf(parent, sizeof parent, ".");
        else snprintf(parent, sizeof parent, "%.*s", slash == o->final ? 1 : (int)(slash - o->final), o->final);
        return ilm__fsync_dir(parent);
    }
    char from[PATH_MAX], to[PATH_MAX];
    join(to, sizeof to, o->final, MANIFEST); /* fits, as the work directory's name */
    ILM__RETURN_IF(unlink(to) != 0 && errno != ENOENT, ILM_ERR_IO, "corpus: cannot remove '%s': %s", to,
                   strerror(errno));
    ILM__FORWARD(ilm__fsync_dir(o->final));
    DIR *d = opendir(o->final);
    ILM__RETURN_IF(!d, ILM_ERR_IO, "corpus: cannot read '%s': %s", o->final, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        if (is_ours(e->d_name) && join(to, sizeof to, o->final, e->d_name)) unlink(to);
    }
    closedir(d);
    d = opendir(o->work);
    ILM__RETURN_IF(!d, ILM_ERR_IO, "corpus: cannot read '%s': %s", o->work, strerror(errno));
    ilm_status st = ILM_OK;
    for (struct dirent *e; st == ILM_OK && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, MANIFEST)) continue;
        if (!join(from, sizeof from, o->work, e->d_name) || !join(to, sizeof to, o->final, e->d_name) ||
            rename(from, to) != 0)
            st = ilm__error(ILM_ERR_IO, "corpus: cannot rename '%s' to '%s': %s", from, to, strerror(errno));
    }
    closedir(d);
    ILM__FORWARD(st);
    ILM__FORWARD(ilm__fsync_dir(o->final));
    join(from, sizeof from, o->work, MANIFEST);
    join(to, sizeof to, o->final, MANIFEST);
    ILM__RETURN_IF(rename(from, to) != 0, ILM_ERR_IO, "corpus: cannot rename '%s' to '%s': %s", from, to,
                   strerror(errno));
    rmdir(o->work);
    return ilm__fsync_dir(o->final);
}

/* Copies a tokenizer file into the corpus; *name is the manifest's
 * "tokenizer" entry (a file name in the directory, or an absolute path for
 * a tokenizer that is a directory or a GGUF model). */
static ilm_status keep_tokenizer(const char *src, const char *dir, char **name)
{
    *name = NULL;
    if (is_dir(src) || ends_with(src, ".gguf")) {
        char abs[PATH_MAX];
        ILM__RETURN_IF(!realpath(src, abs), ILM_ERR_IO, "corpus: '%s': %s", src, strerror(errno));
        *name = ilm__strdup(abs);
        ILM__RETURN_IF(!*name, ILM_ERR_NOMEM, "corpus: out of memory");
        return ILM_OK;
    }
    ilm__mmap m;
    ILM__FORWARD(ilm__mmap_open(src, &m));
    /* The canonical name, so that the corpus directory (and a checkpoint
     * that copies it) loads as a tokenizer directory. */
    const char *base = ends_with(src, ".json") ? "tokenizer.json" : "tokenizer.model";
    char *dst = ilm__asprintf("%s/%s", dir, base);
    ilm_status st = dst ? ilm__atomic_write_buf(dst, m.data, m.size)
                        : ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    ilm__free(dst);
    ilm__mmap_close(&m);
    if (st == ILM_OK && !(*name = ilm__strdup(base))) st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    return st;
}

/* ---- the run ------------------------------------------------------------ */

typedef struct run {
    build_cfg            c;
    const char          *dir;  /* where the files go: the work directory */
    const ilm_tokenizer *tok;
    ilm__ingest         *in;
    ilm__dedup          *dd;
    mode                 mode;
    bool                 add_bos;
    stage                st[N_STAGES];
    ilm__sft_stats       sft;
    /* the batch */
    ilm__buf             arena;
    item                *items;
    size_t               n_items, cap_items;
    uint64_t            *sigs;
    /* shards */
    ilm__shard_writer   *w;
    cJSON               *shards; /* manifest entries */
    uint64_t             shard_docs, shard_tokens, docs, tokens;
    double               seconds[4]; /* ingest, clean+filter, dedup, tokenize+pack */
    ilm__tok_cache     **caches;     /* one per tokenizing thread */
    int                  n_threads;
    unsigned             n_shards;
} run;

static void drop(item *it, int stage_i, const char *why)
{
    it->drop = why;
    it->drop_stage = stage_i;
}

static ilm_status count_drop(stage *s, const char *why)
{
    cJSON *n = cJSON_GetObjectItemCaseSensitive(s->dropped, why);
    if (n) {
        cJSON_SetNumberValue(n, n->valuedouble + 1);
        return ILM_OK;
    }
    ILM__RETURN_IF(!cJSON_AddNumberToObject(s->dropped, why, 1), ILM_ERR_NOMEM, "corpus: out of memory");
    return ILM_OK;
}

static void item_reset(item *it)
{
    cJSON_Delete(it->rec);
    ilm__free(it->key);
    ilm__buf_free(&it->clean);
    ilm__free(it->ids);
    ilm__free(it->mask);
    memset(it, 0, sizeof *it);
}

/* Reads up to BATCH_BYTES / BATCH_RECORDS records into the batch. */
static ilm_status read_batch(run *r, bool *eof)
{
    for (size_t i = 0; i < r->n_items; i++) item_reset(&r->items[i]);
    r->n_items = 0;
    r->arena.n = 0;
    while (r->arena.n < BATCH_BYTES && r->n_items < BATCH_RECORDS) {
        ilm__record rec;
        bool done;
        ILM__FORWARD(ilm__ingest_next(r->in, &rec, &done));
        if (done) {
            *eof = true;
            break;
        }
        if (r->n_items == r->cap_items) {
            size_t cap = r->cap_items ? 2 * r->cap_items : 256;
            item *p = ilm__realloc(r->items, cap * sizeof *p);
            ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "corpus: out of memory");
            memset(p + r->cap_items, 0, (cap - r->cap_items) * sizeof *p);
            r->items = p;
            r->cap_items = cap;
        }
        item *it = &r->items[r->n_items++];
        if (rec.kind == ILM__RECORD_CHAT) {
            it->chat = true;
            it->rec = cJSON_Duplicate(rec.chat, true);
            ILM__RETURN_IF(!it->rec, ILM_ERR_NOMEM, "corpus: out of memory");
            ILM__FORWARD(ilm__json_print(it->rec, &it->key));
            it->len = strlen(it->key);
        } else {
            it->off = r->arena.n;
            it->len = rec.len;
            ILM__FORWARD(ilm__buf_append(&r->arena, rec.text, rec.len));
        }
        if (r->mode == MODE_AUTO) r->mode = it->chat ? MODE_SFT : MODE_PRETRAIN;
    }
    return ILM_OK;
}

/* Clean and filter, per document in parallel. */
static void clean_filter(run *r)
{
    const long n = (long)r->n_items;
#pragma omp parallel for schedule(dynamic, 8) num_threads(ilm__num_threads())
    for (long i = 0; i < n; i++) {
        item *it = &r->items[i];
        if (it->chat) continue;
        const char *why = NULL;
        it->st = ilm__clean(&r->c.clean, r->arena.p + it->off, it->len, &it->clean, &why);
        if (it->st == ILM_ERR_RANGE) { /* too large for utf8proc: counted */
            it->st = ILM_OK;
            why = "too_large";
        }
        if (it->st != ILM_OK) continue;
        if (why) {
            drop(it, ST_CLEAN, why);
            continue;
        }
        if (!r->c.filter_on) continue;
        why = ilm__filter_check(&r->c.filter, it->clean.p, it->clean.n);
        if (why && !strcmp(why, "nomem")) it->st = ILM_ERR_NOMEM;
        else if (why) drop(it, ST_FILTER, why);
    }
}

/* The text dedup looks at: the cleaned text, or a chat record's JSON. */
static const char *dedup_text(const item *it, size_t *len)
{
    *len = it->chat ? it->len : it->clean.n;
    return it->chat ? it->key : it->clean.p;
}

/* Exact hashes and MinHash signatures, per document in parallel. */
static void sign(run *r)
{
    if (!r->c.dedup_on) return;
    const bool exact = r->c.dedup.exact, near = r->c.dedup.near;
    const int np = r->c.dedup.num_perm;
    const long n = (long)r->n_items;
#pragma omp parallel for schedule(dynamic, 8) num_threads(ilm__num_threads())
    for (long i = 0; i < n; i++) {
        item *it = &r->items[i];
        if (it->drop) continue;
        size_t len;
        const char *text = dedup_text(it, &len);
        if (exact) ilm__dedup_exact_hash(text, len, it->exact);
        if (near) it->n_shingles = ilm__dedup_signature(r->dd, text, len, r->sigs + (size_t)i * np);
    }
}

static ilm_status dedup_batch(run *r)
{
    if (!r->c.dedup_on) return ILM_OK;
    const int np = r->c.dedup.num_perm;
    const bool near = r->c.dedup.near;
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        if (it->drop) continue;
        int v;
        ILM__FORWARD(ilm__dedup_check_hashed(r->dd, it->exact, near ? r->sigs + i * (size_t)np : NULL,
                                            it->n_shingles, &v));
        if (v == ILM__DEDUP_EXACT) drop(it, ST_DEDUP, "exact");
        else if (v == ILM__DEDUP_NEAR) drop(it, ST_DEDUP, "near");
    }
    return ILM_OK;
}

static ilm_status tokenize_batch(run *r)
{
    if (r->mode == MODE_SFT)
        ILM__RETURN_IF(ilm_tokenizer_piece_id(r->tok, "<|im_start|>") < 0 ||
                          ilm_tokenizer_piece_id(r->tok, "<|im_end|>") < 0,
                       ILM_ERR_UNSUPPORTED,
                       "corpus: chat data needs a tokenizer with <|im_start|> and <|im_end|> "
                       "(give the model directory, whose tokenizer_config.json adds them)");
    const long n = (long)r->n_items;
    const unsigned flags = ILM_TOKENIZE_EOS | (r->add_bos ? ILM_TOKENIZE_BOS : 0);
#pragma omp parallel for schedule(dynamic, 4) num_threads(r->n_threads)
    for (long i = 0; i < n; i++) {
        item *it = &r->items[i];
        if (it->drop || it->st != ILM_OK) continue;
        if (it->chat != (r->mode == MODE_SFT)) {
            drop(it, ST_TOKENIZE, it->chat ? "chat_in_pretrain" : "text_in_sft");
            continue;
        }
        if (!it->chat) {
            it->st = ilm__tokenizer_encode_cached(r->tok, it->clean.p, it->clean.n, flags,
                                                  r->caches[omp_get_thread_num()], &it->ids, &it->n_ids);
            continue;
        }
        bool kept;
        it->st = ilm__sft_encode(r->tok, it->rec, (size_t)r->c.max_length, &it->ids, &it->mask,
                                 &it->n_ids, &kept, &it->sft);
        if (it->st == ILM_ERR_FORMAT) { /* a record sft cannot use: counted, not fatal */
            it->st = ILM_OK;
            drop(it, ST_TOKENIZE, "bad_chat_record");
        } else if (it->st == ILM_OK && !kept) {
            drop(it, ST_TOKENIZE, "no_target_tokens");
        }
    }
    return ILM_OK;
}

static ilm_status open_shard(run *r)
{
    char *path = ilm__asprintf("%s/shard-%05u.shard", r->dir, r->n_shards);
    ILM__RETURN_IF(!path, ILM_ERR_NOMEM, "corpus: out of memory");
    ilm_status st = ilm__shard_writer_create(path, ilm_tokenizer_vocab_size(r->tok), r->mode == MODE_SFT, &r->w);
    ilm__free(path);
    r->shard_docs = r->shard_tokens = 0;
    return st;
}

static ilm_status close_shard(run *r)
{
    if (!r->w) return ILM_OK;
    ilm__shard_writer *w = r->w;
    r->w = NULL;
    if (r->shard_docs == 0) {
        ilm__shard_writer_free(w);
        return ILM_OK;
    }
    ILM__FORWARD(ilm__shard_writer_close(w));
    char name[32];
    snprintf(name, sizeof name, "shard-%05u.shard", r->n_shards++);
    cJSON *e = cJSON_CreateObject();
    ILM__RETURN_IF(!e || !cJSON_AddItemToArray(r->shards, e), (cJSON_Delete(e), ILM_ERR_NOMEM),
                   "corpus: out of memory");
    ILM__RETURN_IF(!cJSON_AddStringToObject(e, "file", name) ||
                      !cJSON_AddNumberToObject(e, "documents", (double)r->shard_docs) ||
                      !cJSON_AddNumberToObject(e, "tokens", (double)r->shard_tokens),
                   ILM_ERR_NOMEM, "corpus: out of memory");
    return ILM_OK;
}

/* Counts the batch into the stages and writes the survivors. */
static ilm_status finish_batch(run *r)
{
    for (size_t i = 0; i < r->n_items; i++) {
        item *it = &r->items[i];
        ILM__FORWARD(it->st);
        size_t raw = it->len, cleaned = it->chat ? it->len : it->clean.n;
        int last = it->drop ? it->drop_stage : N_STAGES; /* stages it left */
        for (int s = 0; s < N_STAGES && s <= last; s++) {
            stage *g = &r->st[s];
            g->docs_in++;
            g->bytes_in += s == ST_CLEAN ? raw : cleaned;
            if (s == last) ILM__FORWARD(count_drop(g, it->drop));
            else g->docs_out++, g->bytes_out += cleaned;
        }
        r->sft.truncated += it->sft.truncated;
        r->sft.dropped_messages += it->sft.dropped_messages;
        if (it->drop) continue;
        r->sft.samples += it->sft.samples;
        if (!r->w) ILM__FORWARD(open_shard(r));
        ILM__FORWARD(ilm__shard_writer_add(r->w, it->ids, it->mask, it->n_ids));
        r->shard_docs++;
        r->shard_tokens += it->n_ids;
        r->docs++;
        r->tokens += it->n_ids;
        if (r->shard_tokens >= (uint64_t)r->c.shard_tokens) ILM__FORWARD(close_shard(r));
    }
    return ILM_OK;
}

static ilm_status stage_json(const stage *s, cJSON *obj)
{
    cJSON *o = cJSON_AddObjectToObject(obj, s->name);
    ILM__RETURN_IF(!o || !cJSON_AddNumberToObject(o, "documents_in", (double)s->docs_in) ||
                      !cJSON_AddNumberToObject(o, "documents_out", (double)s->docs_out) ||
                      !cJSON_AddNumberToObject(o, "bytes_in", (double)s->bytes_in) ||
                      !cJSON_AddNumberToObject(o, "bytes_out", (double)s->bytes_out),
                   ILM_ERR_NOMEM, "corpus: out of memory");
    cJSON *d = cJSON_Duplicate(s->dropped, true);
    ILM__RETURN_IF(!d || !cJSON_AddItemToObject(o, "dropped", d), (cJSON_Delete(d), ILM_ERR_NOMEM),
                   "corpus: out of memory");
    return ILM_OK;
}

static ilm_status report_json(run *r, double seconds, const char *tok_name, cJSON **out)
{
    cJSON *root = cJSON_CreateObject(), *stages = root ? cJSON_AddObjectToObject(root, "stages") : NULL;
    cJSON *ing = stages ? cJSON_AddObjectToObject(stages, "ingest") : NULL;
    ilm_status st = ing ? ilm__ingest_report(r->in, ing) : ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    for (int s = 0; s < N_STAGES && st == ILM_OK; s++) st = stage_json(&r->st[s], stages);
    /* Wall time per stage: ingest is reading; tokenize includes the shard
     * writes; dedup includes MinHash signing. */
    static const char *const timed[4] = { "ingest", "clean", "dedup", "tokenize" };
    for (int s = 0; s < 4 && st == ILM_OK; s++) {
        cJSON *o = cJSON_GetObjectItemCaseSensitive(stages, timed[s]);
        if (s == 1) o = cJSON_GetObjectItemCaseSensitive(stages, "filter"); /* clean + filter */
        if (!cJSON_AddNumberToObject(o, "seconds", r->seconds[s]))
            st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    if (st == ILM_OK && r->dd) {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(stages, "dedup");
        st = ilm__dedup_report(r->dd, d);
    }
    if (st == ILM_OK && r->mode == MODE_SFT) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(stages, "tokenize");
        if (!cJSON_AddNumberToObject(t, "truncated", (double)r->sft.truncated) ||
            !cJSON_AddNumberToObject(t, "dropped_messages", (double)r->sft.dropped_messages))
            st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    const char *mode_s = r->mode == MODE_SFT ? "sft" : "pretrain";
    if (st == ILM_OK &&
        (!cJSON_AddStringToObject(root, "format", "ilm-corpus") ||
         !cJSON_AddNumberToObject(root, "version", 1) ||
         !cJSON_AddStringToObject(root, "mode", mode_s) ||
         !cJSON_AddStringToObject(root, "tokenizer", tok_name ? tok_name : "") ||
         !cJSON_AddNumberToObject(root, "vocab_size", ilm_tokenizer_vocab_size(r->tok)) ||
         !cJSON_AddNumberToObject(root, "bos_id", r->add_bos ? ilm_tokenizer_bos(r->tok) : -1) ||
         !cJSON_AddNumberToObject(root, "eos_id", ilm_tokenizer_eos(r->tok)) ||
         !cJSON_AddBoolToObject(root, "mask", r->mode == MODE_SFT) ||
         !cJSON_AddNumberToObject(root, "documents", (double)r->docs) ||
         !cJSON_AddNumberToObject(root, "tokens", (double)r->tokens) ||
         !cJSON_AddNumberToObject(root, "seconds", seconds)))
        st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    cJSON *sh = st == ILM_OK ? cJSON_Duplicate(r->shards, true) : NULL;
    if (st == ILM_OK && (!sh || !cJSON_AddItemToObject(root, "shards", sh))) {
        cJSON_Delete(sh);
        st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    if (st != ILM_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return ILM_OK;
}

static ilm_status write_json(const char *dir, const char *name, const cJSON *obj)
{
    char *text = cJSON_Print(obj), *path = ilm__asprintf("%s/%s", dir, name);
    ilm_status st = text && path ? ilm__atomic_write_buf(path, text, strlen(text))
                                 : ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    cJSON_free(text);
    ilm__free(path);
    return st;
}

static ilm_status run_pipeline(run *r, ilm_progress_fn progress, void *user)
{
    static const char *const names[N_STAGES] = { "clean", "filter", "dedup", "tokenize" };
    for (int s = 0; s < N_STAGES; s++) {
        r->st[s].name = names[s];
        ILM__RETURN_IF(!(r->st[s].dropped = cJSON_CreateObject()), ILM_ERR_NOMEM, "corpus: out of memory");
    }
    ILM__RETURN_IF(!(r->shards = cJSON_CreateArray()), ILM_ERR_NOMEM, "corpus: out of memory");
    /* Each tokenizing thread keeps the words it has merged (the ids do not
     * depend on which thread saw a word first). */
    r->n_threads = ilm__num_threads();
    r->caches = ilm__calloc((size_t)r->n_threads, sizeof *r->caches);
    ILM__RETURN_IF(!r->caches, ILM_ERR_NOMEM, "corpus: out of memory");
    for (int i = 0; i < r->n_threads; i++)
        ILM__RETURN_IF(!(r->caches[i] = ilm__tok_cache_create()), ILM_ERR_NOMEM, "corpus: out of memory");
    if (r->c.dedup_on) {
        ILM__FORWARD(ilm__dedup_create(&r->c.dedup, &r->dd));
        if (r->c.dedup.near) {
            r->sigs = ilm__malloc((size_t)BATCH_RECORDS * (size_t)r->c.dedup.num_perm * sizeof *r->sigs);
            ILM__RETURN_IF(!r->sigs, ILM_ERR_NOMEM, "corpus: out of memory");
        }
    }
    for (bool eof = false; !eof;) {
        double t = ilm__now();
        ILM__FORWARD(read_batch(r, &eof));
        r->seconds[0] += ilm__now() - t;
        t = ilm__now();
        clean_filter(r);
        for (size_t i = 0; i < r->n_items; i++)
            ILM__RETURN_IF(r->items[i].st != ILM_OK, r->items[i].st, "corpus: out of memory cleaning");
        r->seconds[1] += ilm__now() - t;
        t = ilm__now();
        sign(r);
        ILM__FORWARD(dedup_batch(r));
        r->seconds[2] += ilm__now() - t;
        t = ilm__now();
        ILM__FORWARD(tokenize_batch(r));
        ILM__FORWARD(finish_batch(r));
        r->seconds[3] += ilm__now() - t;
        uint64_t done, total;
        ilm__ingest_progress(r->in, &done, &total);
        if (progress && progress(user, "corpus", done, total))
            return ilm__error(ILM_ERR_CANCELLED, "corpus: cancelled");
    }
    return close_shard(r);
}

ilm_status ilm_corpus_build(const char *config, ilm_progress_fn progress, void *user, char **report)
{
    if (report) *report = NULL;
    cJSON *root = NULL, *rep = NULL;
    ILM__FORWARD(ilm__json_parse(config, "config", &root));
    run r;
    memset(&r, 0, sizeof r);
    ilm_tokenizer *tok = NULL;
    char *tok_name = NULL;
    const char **paths = NULL;
    double t0 = ilm__now();
    ilm_status st = parse_config(root, &r.c);
    if (st == ILM_OK) st = ilm_tokenizer_load(r.c.tokenizer, &tok);
    if (st == ILM_OK) {
        r.tok = tok;
        r.add_bos = tok->add_bos && ilm_tokenizer_bos(tok) >= 0;
        r.mode = r.c.mode;
        size_t n = (size_t)cJSON_GetArraySize(r.c.inputs), i = 0;
        paths = ilm__calloc(n, sizeof *paths);
        if (!paths) st = ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
        for (const cJSON *e = r.c.inputs->child; st == ILM_OK && e; e = e->next) paths[i++] = e->valuestring;
        if (st == ILM_OK) st = ilm__ingest_open(paths, n, &r.c.ingest, &r.in);
    }
    outdir out;
    bool have_work = false;
    if (st == ILM_OK) st = open_output(r.c.output, r.c.overwrite, &out);
    have_work = st == ILM_OK;
    r.dir = out.work;
    if (st == ILM_OK) st = keep_tokenizer(r.c.tokenizer, r.dir, &tok_name);
    if (st == ILM_OK) st = run_pipeline(&r, progress, user);
    if (st == ILM_OK && r.mode == MODE_AUTO) r.mode = MODE_PRETRAIN; /* no records at all */
    if (st == ILM_OK) st = report_json(&r, ilm__now() - t0, tok_name, &rep);
    if (st == ILM_OK) st = write_json(r.dir, "report.json", rep);
    if (st == ILM_OK) { /* the manifest: the report without the stage details, last */
        cJSON *man = cJSON_Duplicate(rep, true);
        cJSON_DeleteItemFromObjectCaseSensitive(man, "stages");
        st = man ? write_json(r.dir, MANIFEST, man) : ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
        cJSON_Delete(man);
    }
    if (st == ILM_OK) st = ilm__fsync_dir(r.dir);
    if (st == ILM_OK) {
        st = commit_output(&out);
        /* Moved into place; or, when a rename failed, the new files may be
         * all there is of a corpus: kept either way. */
        have_work = false;
        if (st != ILM_OK) st = ilm__error(st, "%s (the new corpus's files are in '%s')", ilm_last_error(), out.work);
    }
    if (st == ILM_OK && report) st = ilm__json_print(rep, report);
    if (st != ILM_OK && have_work) {
        ilm__shard_writer_free(r.w); /* before its directory goes */
        r.w = NULL;
        remove_work(&out);
    }

    ilm__shard_writer_free(r.w);
    for (size_t i = 0; i < r.cap_items; i++) item_reset(&r.items[i]);
    ilm__free(r.items);
    ilm__free(r.sigs);
    for (int i = 0; r.caches && i < r.n_threads; i++) ilm__tok_cache_free(r.caches[i]);
    ilm__free(r.caches);
    ilm__buf_free(&r.arena);
    for (int s = 0; s < N_STAGES; s++) cJSON_Delete(r.st[s].dropped);
    cJSON_Delete(r.shards);
    cJSON_Delete(rep);
    ilm__dedup_free(r.dd);
    ilm__ingest_free(r.in);
    ilm__clean_opts_free(&r.c.clean);
    ilm__free(paths);
    ilm__free(tok_name);
    ilm_tokenizer_free(tok);
    cJSON_Delete(root);
    return st;
}
