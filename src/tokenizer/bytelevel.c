/*
 * Byte-level BPE (GPT-2; Hugging Face tokenizers' BPE model with the
 * ByteLevel pre-tokenizer; llama.cpp's "gpt2" vocabularies).
 *
 * Encoding a text runs, in order:
 *   1. invalid UTF-8 is replaced, one U+FFFD per byte that does not start
 *      a valid sequence (llama.cpp's rule; Hugging Face only ever sees
 *      valid strings, so it has none);
 *   2. the normalizers (NFC/NFKC/NFD/NFKD through utf8proc);
 *   3. the pre-tokenizer stages, each splitting every piece of the one
 *      before: Split (a regex, HF's five delimiter behaviours), Digits,
 *      and last ByteLevel (a prefix space, the GPT-2 regex);
 *   4. BPE on each piece: one symbol per byte (the token of the byte's
 *      GPT-2 "printable" character), then repeatedly the lowest-ranked
 *      merge, leftmost first -- Hugging Face's algorithm, with a heap so
 *      that a long piece (a megabyte of spaces) costs n log n, not n^2.
 *
 * Regexes are compiled with PCRE2 (UTF, UCP, JIT when available).  HF uses
 * Oniguruma, whose \s is narrower than PCRE2's: Oniguruma's is
 * [\t\n\v\f\r\x85\p{Z}], PCRE2's adds U+180E.  Every pattern is rewritten
 * to spell \s (and \S outside classes) as Oniguruma means it.
 *
 * Words of up to CACHE_KEY_MAX bytes are cached: a table of shards, each
 * behind its own mutex, so that many threads can encode with one
 * tokenizer; a slot holds one word and is overwritten on collision.
 */
#include "tokenizer/bytelevel.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

const char ilm__gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum stage_kind { STAGE_SPLIT, STAGE_DIGITS, STAGE_BYTELEVEL };

typedef struct stage {
    enum stage_kind     kind;
    pcre2_code         *re;       /* SPLIT; BYTELEVEL with use_regex (else NULL) */
    ilm__split_behavior behavior; /* SPLIT, DIGITS */
    bool                invert;   /* SPLIT */
    bool                prefix;   /* BYTELEVEL: add_prefix_space */
} stage;

#define MAX_STAGES     16
#define MAX_NORMS      8
#define CACHE_SHARDS   64
#define CACHE_SLOTS    512 /* per shard */
#define CACHE_KEY_MAX  64

typedef struct cache_slot {
    uint64_t hash;
    uint32_t klen, nids;
    char    *data; /* klen key bytes, then nids int32 ids; NULL when empty */
} cache_slot;

typedef struct cache_shard {
    pthread_mutex_t mu;
    cache_slot      slot[CACHE_SLOTS];
} cache_shard;

struct ilm__bbpe {
    ilm__norm_form norm[MAX_NORMS];
    size_t         n_norm;
    stage          stages[MAX_STAGES];
    size_t         n_stages;
    bool           ignore_merges, fuse_unk;
    int32_t        unk_id;
    ilm__u64map    ranks;     /* (left id << 32 | right id) -> rank */
    int32_t       *merge_to;  /* [n_merges] id of the merged piece */
    size_t         n_merges, cap_merges;
    int32_t        byte_id[256]; /* token of each byte's character, -1 if none */
    cache_shard   *cache;     /* [CACHE_SHARDS] */
};

/* ---- GPT-2's byte <-> character mapping ------------------------------- */

/* GPT-2 (encoder.py, bytes_to_unicode): the printable bytes '!'..'~',
 * '¡'..'¬', '®'..'ÿ' stand for themselves; the other 68 bytes, in order,
 * become U+0100, U+0101, ... so that every byte is a visible character. */
static uint32_t byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) n++;
    return 0x100 + n;
}

/* The inverse, over the 0x144 code points the mapping uses; -1 elsewhere. */
static int16_t cp_to_byte[0x144];
static pthread_once_t map_once = PTHREAD_ONCE_INIT;

static void init_maps(void)
{
    for (size_t i = 0; i < 0x144; i++) cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) cp_to_byte[byte_to_cp((uint8_t)b)] = (int16_t)b;
}

/* ---- building ----------------------------------------------------------- */

ilm_status ilm__bbpe_new(struct ilm__bbpe **out)
{
    pthread_once(&map_once, init_maps);
    struct ilm__bbpe *b = ilm__calloc(1, sizeof *b);
    ILM__RETURN_IF(!b, ILM_ERR_NOMEM, "byte-level BPE: out of memory");
    b->cache = ilm__calloc(CACHE_SHARDS, sizeof *b->cache);
    if (!b->cache) {
        ilm__free(b);
        return ilm__error(ILM_ERR_NOMEM, "byte-level BPE: out of memory");
    }
    for (size_t i = 0; i < CACHE_SHARDS; i++) pthread_mutex_init(&b->cache[i].mu, NULL);
    b->unk_id = -1;
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    *out = b;
    return ILM_OK;
}

void ilm__bbpe_free(struct ilm__bbpe *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n_stages; i++) pcre2_code_free(b->stages[i].re);
    if (b->cache) {
        for (size_t i = 0; i < CACHE_SHARDS; i++) {
            pthread_mutex_destroy(&b->cache[i].mu);
            for (size_t j = 0; j < CACHE_SLOTS; j++) ilm__free(b->cache[i].slot[j].data);
        }
        ilm__free(b->cache);
    }
    ilm__u64map_free(&b->ranks);
    ilm__free(b->merge_to);
    ilm__free(b);
}

ilm_status ilm__bbpe_add_normalizer(struct ilm__bbpe *b, ilm__norm_form form)
{
    ILM__RETURN_IF(b->n_norm == MAX_NORMS, ILM_ERR_UNSUPPORTED,
                   "byte-level BPE: more than %d normalizers", MAX_NORMS);
    b->norm[b->n_norm++] = form;
    return ILM_OK;
}

static ilm_status push_stage(struct ilm__bbpe *b, stage s)
{
    if (b->n_stages == MAX_STAGES || (b->n_stages && b->stages[b->n_stages - 1].kind ==
                                                         STAGE_BYTELEVEL)) {
        pcre2_code_free(s.re);
        return ilm__error(ILM_ERR_UNSUPPORTED,
                          b->n_stages == MAX_STAGES
                              ? "byte-level BPE: more than 16 pre-tokenizers"
                              : "byte-level BPE: a pre-tokenizer after ByteLevel");
    }
    b->stages[b->n_stages++] = s;
    return ILM_OK;
}

/* Rewrites \s and \S to Oniguruma's meaning (see the top of this file). */
static ilm_status onig_spaces(const char *p, size_t n, ilm__buf *out)
{
    static const char ws[] = "\\t\\n\\x0B\\f\\r\\x{85}\\p{Z}";
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[++i];
            if (e == 's') {
                ILM__FORWARD(ilm__buf_printf(out, in_class ? "%s" : "[%s]", ws));
            } else if (e == 'S' && !in_class) {
                ILM__FORWARD(ilm__buf_printf(out, "[^%s]", ws));
            } else if (e == 'Q') { /* quoted to \E: copy as is */
                size_t j = i + 1;
                while (j + 1 < n && !(p[j] == '\\' && p[j + 1] == 'E')) j++;
                j = j + 1 < n ? j + 2 : n;
                ILM__FORWARD(ilm__buf_append(out, p + i - 1, j - (i - 1)));
                i = j - 1;
            } else {
                ILM__FORWARD(ilm__buf_putc(out, '\\'));
                ILM__FORWARD(ilm__buf_putc(out, e));
            }
            continue;
        }
        ILM__FORWARD(ilm__buf_putc(out, c));
        if (!in_class && c == '[') {
            in_class = true;
            /* "[]..." and "[^]..." start with a literal ']' */
            if (i + 1 < n && p[i + 1] == '^') ILM__FORWARD(ilm__buf_putc(out, p[++i]));
            if (i + 1 < n && p[i + 1] == ']') ILM__FORWARD(ilm__buf_putc(out, p[++i]));
        } else if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') {
            size_t j = i + 2; /* a POSIX class [:alpha:] inside a class */
            while (j + 1 < n && !(p[j] == ':' && p[j + 1] == ']')) j++;
            j = j + 1 < n ? j + 2 : n;
            ILM__FORWARD(ilm__buf_append(out, p + i + 1, j - (i + 1)));
            i = j - 1;
        } else if (in_class && c == ']') {
            in_class = false;
        }
    }
    return ILM_OK;
}

/* PCRE2 allocates through our hooks: a general context names them for
 * each compiled pattern and match data (which keep a copy; the context is
 * freed right after).  JIT code lives in PCRE2's own executable mappings,
 * outside the hooks. */
static void *pcre_alloc(PCRE2_SIZE n, void *user) { (void)user; return ilm__malloc(n); }
static void  pcre_release(void *p, void *user) { (void)user; ilm__free(p); }

static pcre2_general_context *pcre_memory(void)
{
    return pcre2_general_context_create(pcre_alloc, pcre_release, NULL);
}

static ilm_status compile(const char *pattern, size_t len, bool literal, const char *what,
                          pcre2_code **out)
{
    ilm__buf pat = { 0 };
    ilm_status s = literal ? ilm__buf_append(&pat, pattern, len)
                           : onig_spaces(pattern, len, &pat);
    if (s != ILM_OK) {
        ilm__buf_free(&pat);
        return s;
    }
    int err;
    PCRE2_SIZE at;
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    pcre2_general_context *gc = pcre_memory();
    pcre2_compile_context *cc = gc ? pcre2_compile_context_create(gc) : NULL;
    pcre2_code *re = cc ? pcre2_compile((PCRE2_SPTR)(pat.p ? pat.p : ""), pat.n, opt, &err, &at,
                                        cc)
                        : NULL;
    pcre2_compile_context_free(cc);
    pcre2_general_context_free(gc);
    if (!cc) err = PCRE2_ERROR_NOMEMORY;
    ilm__buf_free(&pat);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return ilm__error(ILM_ERR_FORMAT, "%s: pre-tokenizer regex '%.*s': %s at offset %zu",
                          what, (int)(len > 200 ? 200 : len), pattern, (const char *)msg,
                          (size_t)at);
    }
    /* JIT is an optimisation: where the platform lacks it the interpreter
     * gives the same matches. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    *out = re;
    return ILM_OK;
}

ilm_status ilm__bbpe_add_split(struct ilm__bbpe *b, const char *pattern, size_t len,
                               bool literal, ilm__split_behavior behavior, bool invert,
                               const char *what)
{
    stage s = { STAGE_SPLIT, NULL, behavior, invert, false };
    ILM__FORWARD(compile(pattern, len, literal, what, &s.re));
    return push_stage(b, s);
}

ilm_status ilm__bbpe_add_digits(struct ilm__bbpe *b, bool individual)
{
    stage s = { STAGE_DIGITS, NULL,
                individual ? ILM__SPLIT_ISOLATED : ILM__SPLIT_CONTIGUOUS, false, false };
    return push_stage(b, s);
}

ilm_status ilm__bbpe_add_bytelevel(struct ilm__bbpe *b, bool add_prefix_space, bool use_regex,
                                   const char *what)
{
    stage s = { STAGE_BYTELEVEL, NULL, ILM__SPLIT_ISOLATED, false, add_prefix_space };
    if (use_regex)
        ILM__FORWARD(compile(ilm__gpt2_regex, sizeof ilm__gpt2_regex - 1, false, what, &s.re));
    return push_stage(b, s);
}

void ilm__bbpe_set_options(struct ilm__bbpe *b, bool ignore_merges, int32_t unk_id,
                           bool fuse_unk)
{
    b->ignore_merges = ignore_merges;
    b->unk_id = unk_id;
    b->fuse_unk = fuse_unk;
}

ilm_status ilm__bbpe_add_merge(const ilm_tokenizer *t, struct ilm__bbpe *b, const char *left,
                               size_t left_len, const char *right, size_t right_len,
                               const char *what)
{
    int32_t l = ilm__strmap_get(&t->piece_ids, left, left_len);
    int32_t r = ilm__strmap_get(&t->piece_ids, right, right_len);
    ILM__RETURN_IF(l < 0 || r < 0, ILM_ERR_FORMAT,
                   "%s: merge %zu names '%.*s', which is not in the vocabulary", what,
                   b->n_merges, (int)(l < 0 ? left_len : right_len), l < 0 ? left : right);
    char stackbuf[256];
    char *both = left_len + right_len <= sizeof stackbuf ? stackbuf
                                                         : ilm__malloc(left_len + right_len);
    ILM__RETURN_IF(!both, ILM_ERR_NOMEM, "%s: out of memory", what);
    memcpy(both, left, left_len);
    memcpy(both + left_len, right, right_len);
    int32_t m = ilm__strmap_get(&t->piece_ids, both, left_len + right_len);
    if (both != stackbuf) ilm__free(both);
    ILM__RETURN_IF(m < 0, ILM_ERR_FORMAT,
                   "%s: merge %zu ('%.*s' '%.*s') makes a piece that is not in the vocabulary",
                   what, b->n_merges, (int)left_len, left, (int)right_len, right);
    ILM__RETURN_IF(b->n_merges >= INT32_MAX, ILM_ERR_FORMAT, "%s: too many merges", what);
    if (b->n_merges == b->cap_merges) {
        size_t cap = b->cap_merges ? 2 * b->cap_merges : 1024;
        int32_t *p = ilm__realloc(b->merge_to, cap * sizeof *p);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "%s: out of memory", what);
        b->merge_to = p;
        b->cap_merges = cap;
    }
    /* A pair listed twice keeps its last rank, as HF's merge map does. */
    b->merge_to[b->n_merges] = m;
    ILM__FORWARD(ilm__u64map_put(&b->ranks, (uint64_t)(uint32_t)l << 32 | (uint32_t)r,
                                (int32_t)b->n_merges));
    b->n_merges++;
    return ILM_OK;
}

ilm_status ilm__bbpe_finish(const ilm_tokenizer *t, struct ilm__bbpe *b, const char *what)
{
    (void)what;
    for (int i = 0; i < 256; i++) {
        char u[4];
        size_t n = ilm__utf8_encode(byte_to_cp((uint8_t)i), u);
        b->byte_id[i] = ilm__strmap_get(&t->piece_ids, u, n);
    }
    return ILM_OK;
}

size_t ilm__bbpe_n_merges(const struct ilm__bbpe *b) { return b->n_merges; }

/* ---- BPE on one piece ---------------------------------------------------- */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    bool    dead;
} sym;

typedef struct heap_item {
    int32_t rank, pos;
} heap_item;

/* Per-call scratch, so that nothing shared is written while encoding. */
typedef struct enc {
    const ilm_tokenizer    *t;
    const struct ilm__bbpe *b;
    ilm__ids               *out;
    pcre2_match_data       *md;
    sym                    *syms;
    heap_item              *heap;
    size_t                  cap;  /* of syms (heap: 3 * cap) */
    ilm__buf                tmp;
} enc;

static bool heap_less(heap_item a, heap_item b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(heap_item *h, size_t *n, heap_item x)
{
    size_t i = (*n)++;
    while (i > 0 && heap_less(x, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static heap_item heap_pop(heap_item *h, size_t *n)
{
    heap_item top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(h[c + 1], h[c])) c++;
        if (!heap_less(h[c], x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

static int32_t rank_of(const struct ilm__bbpe *b, int32_t l, int32_t r)
{
    return ilm__u64map_get(&b->ranks, (uint64_t)(uint32_t)l << 32 | (uint32_t)r);
}

static cache_shard *shard_of(const struct ilm__bbpe *b, uint64_t h)
{
    return &b->cache[(h >> 58) % CACHE_SHARDS];
}

static bool cache_get(enc *e, const char *p, size_t n, uint64_t h)
{
    cache_shard *sh = shard_of(e->b, h);
    bool hit = false;
    pthread_mutex_lock(&sh->mu);
    cache_slot *s = &sh->slot[h % CACHE_SLOTS];
    if (s->data && s->hash == h && s->klen == n && memcmp(s->data, p, n) == 0) {
        hit = true;
        for (uint32_t i = 0; i < s->nids && hit; i++) {
            int32_t id;
            memcpy(&id, s->data + n + 4 * i, 4);
            hit = ilm__ids_push(e->out, id) == ILM_OK;
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return hit;
}

/* Caching is best effort: a failed allocation just leaves the slot. */
static void cache_put(enc *e, const char *p, size_t n, uint64_t h, const int32_t *ids,
                      size_t nids)
{
    char *d = ilm__malloc(n + 4 * nids);
    if (!d) return;
    memcpy(d, p, n);
    if (nids) memcpy(d + n, ids, 4 * nids);
    cache_shard *sh = shard_of(e->b, h);
    pthread_mutex_lock(&sh->mu);
    cache_slot *s = &sh->slot[h % CACHE_SLOTS];
    char *old = s->data;
    *s = (cache_slot){ h, (uint32_t)n, (uint32_t)nids, d };
    pthread_mutex_unlock(&sh->mu);
    ilm__free(old);
}

/* Appends the BPE tokens of one piece. */
static ilm_status bpe_merge(enc *e, const char *p, size_t n)
{
    const struct ilm__bbpe *b = e->b;
    if (b->ignore_merges) {
        e->tmp.n = 0;
        for (size_t i = 0; i < n; i++) {
            char u[4];
            size_t ul = ilm__utf8_encode(byte_to_cp((uint8_t)p[i]), u);
            ILM__FORWARD(ilm__buf_append(&e->tmp, u, ul));
        }
        int32_t id = ilm__strmap_get(&e->t->piece_ids, e->tmp.p, e->tmp.n);
        if (id >= 0) return ilm__ids_push(e->out, id);
    }
    if (n > e->cap) {
        size_t cap = n > 2 * e->cap ? n : 2 * e->cap;
        sym *s = ilm__realloc(e->syms, cap * sizeof *s);
        if (s) e->syms = s;
        /* Stale entries stay in the heap: n - 1 initial pairs plus at most
         * two per merge bound it by 3n. */
        heap_item *hp = ilm__realloc(e->heap, 3 * cap * sizeof *hp);
        if (hp) e->heap = hp;
        ILM__RETURN_IF(!s || !hp, ILM_ERR_NOMEM, "byte-level BPE: out of memory");
        e->cap = cap;
    }
    sym *s = e->syms;
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = b->byte_id[(uint8_t)p[i]];
        if (id < 0) {
            /* HF's BPE: a character missing from the vocabulary is the
             * unknown token (consecutive ones fused if asked), or dropped
             * when the model has none. */
            if (b->unk_id < 0) continue;
            if (b->fuse_unk && m > 0 && s[m - 1].id == b->unk_id) continue;
            id = b->unk_id;
        }
        s[m] = (sym){ id, m - 1, m + 1, false };
        m++;
    }
    if (m == 0) return ILM_OK;
    s[m - 1].next = -1;
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < m; i++) {
        int32_t r = rank_of(b, s[i].id, s[i + 1].id);
        if (r >= 0) heap_push(e->heap, &hn, (heap_item){ r, i });
    }
    while (hn > 0) {
        heap_item it = heap_pop(e->heap, &hn);
        sym *l = &s[it.pos];
        /* Entries whose pair has changed since they were pushed are stale:
         * ranks are unique, so the pair still has its rank iff it is the
         * same pair. */
        if (l->dead || l->next < 0 || rank_of(b, l->id, s[l->next].id) != it.rank) continue;
        sym *r = &s[l->next];
        l->id = b->merge_to[it.rank];
        r->dead = true;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = it.pos;
        if (l->prev >= 0) {
            int32_t rk = rank_of(b, s[l->prev].id, l->id);
            if (rk >= 0) heap_push(e->heap, &hn, (heap_item){ rk, l->prev });
        }
        if (l->next >= 0) {
            int32_t rk = rank_of(b, l->id, s[l->next].id);
            if (rk >= 0) heap_push(e->heap, &hn, (heap_item){ rk, it.pos });
        }
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) ILM__FORWARD(ilm__ids_push(e->out, s[i].id));
    return ILM_OK;
}

static ilm_status bpe_word(enc *e, const char *p, size_t n)
{
    if (n > CACHE_KEY_MAX) return bpe_merge(e, p, n);
    uint64_t h = ilm__hash_bytes(p, n);
    if (cache_get(e, p, n, h)) return ILM_OK;
    size_t first = e->out->n;
    ILM__FORWARD(bpe_merge(e, p, n));
    /* A piece of bytes the vocabulary lacks (and no unknown token) gives
     * no ids: out->v may still be NULL then. */
    size_t added = e->out->n - first;
    cache_put(e, p, n, h, added ? e->out->v + first : NULL, added);
    return ILM_OK;
}

/* ---- pre-tokenizer stages -------------------------------------------- */

static ilm_status run_stage(enc *e, size_t k, const char *p, size_t n);

/* Folds the stream of (segment, is_match) pairs a splitter produces into
 * pieces, as HF's NormalizedString::split does for each behaviour, and
 * runs the next stage on each piece.  One pending piece is enough
 * look-behind for every behaviour. */
typedef struct folder {
    enc                *e;
    size_t              next_stage;
    const char         *p;
    ilm__split_behavior beh;
    bool                invert;
    bool                have, pend_match, prev_match;
    size_t              ps, pe;
} folder;

static ilm_status emit(folder *f, size_t s, size_t end)
{
    return end > s ? run_stage(f->e, f->next_stage, f->p + s, end - s) : ILM_OK;
}

static ilm_status flush(folder *f)
{
    if (!f->have) return ILM_OK;
    f->have = false;
    return emit(f, f->ps, f->pe);
}

static ilm_status segment(folder *f, size_t s, size_t end, bool match)
{
    if (end <= s) return ILM_OK;
    match ^= f->invert;
    bool prev = f->prev_match;
    f->prev_match = match;
    switch (f->beh) {
    case ILM__SPLIT_ISOLATED: return emit(f, s, end);
    case ILM__SPLIT_REMOVED: return match ? ILM_OK : emit(f, s, end);
    case ILM__SPLIT_MERGED_WITH_PREVIOUS:
        if (match && !prev && f->have) {
            f->pe = end;
            return ILM_OK;
        }
        break;
    case ILM__SPLIT_CONTIGUOUS:
        if (match == prev && f->have) {
            f->pe = end;
            return ILM_OK;
        }
        break;
    case ILM__SPLIT_MERGED_WITH_NEXT:
        if (f->have && f->pend_match && !match) {
            f->have = false;
            return emit(f, f->ps, end);
        }
        break;
    }
    ILM__FORWARD(flush(f));
    f->have = true;
    f->pend_match = match;
    f->ps = s;
    f->pe = end;
    return ILM_OK;
}

static ilm_status split_regex(enc *e, const pcre2_code *re, folder *f, const char *p, size_t n)
{
    size_t off = 0, prev = 0;
    while (off <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK, e->md, NULL);
        /* A subject too deep for the JIT's stack is matched again by the
         * interpreter, which uses the heap. */
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
            rc = pcre2_match(re, (PCRE2_SPTR)p, n, off, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                             e->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return ilm__error(ILM_ERR_INTERNAL, "byte-level BPE: regex match failed: %s",
                              (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t ms = ov[0], me = ov[1];
        if (me > ms) {
            ILM__FORWARD(segment(f, prev, ms, false));
            ILM__FORWARD(segment(f, ms, me, true));
            prev = me;
            off = me;
        } else {
            /* Oniguruma's find_iter steps one character past an empty
             * match. */
            if (ms >= n) break;
            uint32_t cp;
            size_t cl = ilm__utf8_decode(p + ms, n - ms, &cp);
            off = ms + (cl ? cl : 1);
        }
    }
    ILM__FORWARD(segment(f, prev, n, false));
    return flush(f);
}

/* HF's Digits: each numeric character (Unicode N*, Rust's is_numeric) is a
 * match of its own. */
static ilm_status split_digits(folder *f, const char *p, size_t n)
{
    size_t prev = 0, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t cl = ilm__utf8_decode(p + i, n - i, &cp);
        if (!cl) cl = 1, cp = 0xFFFD;
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL ||
            c == UTF8PROC_CATEGORY_NO) {
            ILM__FORWARD(segment(f, prev, i, false));
            ILM__FORWARD(segment(f, i, i + cl, true));
            prev = i + cl;
        }
        i += cl;
    }
    ILM__FORWARD(segment(f, prev, n, false));
    return flush(f);
}

static ilm_status run_stage(enc *e, size_t k, const char *p, size_t n)
{
    if (n == 0) return ILM_OK;
    if (k == e->b->n_stages) return bpe_word(e, p, n);
    const stage *st = &e->b->stages[k];
    folder f = { e, k + 1, p, st->behavior, st->invert, false, false, false, 0, 0 };
    switch (st->kind) {
    case STAGE_SPLIT: return split_regex(e, st->re, &f, p, n);
    case STAGE_DIGITS: return split_digits(&f, p, n);
    case STAGE_BYTELEVEL: break;
    }
    char *own = NULL;
    if (st->prefix && p[0] != ' ') {
        own = ilm__malloc(n + 1);
        ILM__RETURN_IF(!own, ILM_ERR_NOMEM, "byte-level BPE: out of memory");
        own[0] = ' ';
        memcpy(own + 1, p, n);
        p = own;
        n++;
        f.p = p;
    }
    ilm_status s = st->re ? split_regex(e, st->re, &f, p, n) : run_stage(e, k + 1, p, n);
    ilm__free(own);
    return s;
}

/* ---- entry points ------------------------------------------------------- */

/* Copies text with each byte that does not start a valid UTF-8 sequence
 * replaced by U+FFFD; *out stays NULL when the text is valid. */
static ilm_status sanitize(const char *text, size_t len, ilm__buf *out, bool *changed)
{
    *changed = false;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t cl = ilm__utf8_decode(text + i, len - i, &cp);
        if (!cl) break;
        i += cl;
    }
    if (i == len) return ILM_OK;
    *changed = true;
    ILM__FORWARD(ilm__buf_append(out, text, i));
    while (i < len) {
        uint32_t cp;
        size_t cl = ilm__utf8_decode(text + i, len - i, &cp);
        if (cl) {
            ILM__FORWARD(ilm__buf_append(out, text + i, cl));
            i += cl;
        } else {
            ILM__FORWARD(ilm__buf_append(out, "\xEF\xBF\xBD", 3));
            i++;
        }
    }
    return ILM_OK;
}

static ilm_status normalize(const struct ilm__bbpe *b, const char *text, size_t len,
                            char **out, size_t *out_len)
{
    char *cur = NULL;
    const char *src = text;
    size_t n = len;
    for (size_t i = 0; i < b->n_norm; i++) {
        int opt = UTF8PROC_STABLE;
        switch (b->norm[i]) {
        case ILM__NORM_NFC: opt |= UTF8PROC_COMPOSE; break;
        case ILM__NORM_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
        case ILM__NORM_NFD: opt |= UTF8PROC_DECOMPOSE; break;
        case ILM__NORM_NFKD: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
        }
        char *dst = NULL;
        size_t m = 0;
        const ilm_status st = ilm__utf8proc_map(src, n, opt, &dst, &m);
        ilm__free(cur);
        if (st != ILM_OK) return ilm__error(st, "byte-level BPE: %s", ilm_last_error());
        cur = dst;
        src = dst;
        n = m;
    }
    *out = cur;
    *out_len = n;
    return ILM_OK;
}

ilm_status ilm__bbpe_encode(const ilm_tokenizer *t, const char *text, size_t len,
                            ilm__ids *out)
{
    const struct ilm__bbpe *b = t->bbpe;
    ILM__RETURN_IF(!b, ILM_ERR_STATE, "byte-level BPE: tokenizer has no byte-level state");
    if (len == 0) return ILM_OK;
    ilm__buf clean = { 0 };
    bool changed;
    ilm_status s = sanitize(text, len, &clean, &changed);
    if (changed && s == ILM_OK) {
        text = clean.p;
        len = clean.n;
    }
    char *normed = NULL;
    size_t nlen = 0;
    if (s == ILM_OK && b->n_norm) {
        s = normalize(b, text, len, &normed, &nlen);
        if (s == ILM_OK) {
            text = normed;
            len = nlen;
        }
    }
    enc e = { t, b, out, NULL, NULL, NULL, 0, { 0 } };
    if (s == ILM_OK) {
        pcre2_general_context *gc = pcre_memory();
        e.md = gc ? pcre2_match_data_create(16, gc) : NULL;
        pcre2_general_context_free(gc);
        if (!e.md) s = ilm__error(ILM_ERR_NOMEM, "byte-level BPE: out of memory");
    }
    if (s == ILM_OK) s = run_stage(&e, 0, text, len);
    pcre2_match_data_free(e.md);
    ilm__free(e.syms);
    ilm__free(e.heap);
    ilm__buf_free(&e.tmp);
    ilm__free(normed);
    ilm__buf_free(&clean);
    return s;
}

ilm_status ilm__bbpe_piece_bytes(const ilm_tokenizer *t, int32_t id, ilm__buf *out)
{
    ILM__RETURN_IF(id < 0 || id >= t->n_vocab, ILM_ERR_RANGE,
                   "byte-level BPE: id %d outside the vocabulary of %d", id, t->n_vocab);
    pthread_once(&map_once, init_maps);
    const char *p = t->piece[id];
    size_t n = t->piece_len[id];
    /* HF's ByteLevel decoder: a token whose characters all come from the
     * byte mapping becomes those bytes; any other token (an added token
     * such as "<|im_start|>" written with a plain space, say) is its
     * own UTF-8 text. */
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t cl = ilm__utf8_decode(p + i, n - i, &cp);
        if (!cl || cp >= 0x144 || cp_to_byte[cp] < 0) {
            out->n = start;
            if (out->p) out->p[start] = '\0';
            return ilm__buf_append(out, p, n);
        }
        ILM__FORWARD(ilm__buf_putc(out, (char)cp_to_byte[cp]));
        i += cl;
    }
    return ILM_OK;
}
