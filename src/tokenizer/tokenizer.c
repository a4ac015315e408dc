/*
 * src/tokenizer/ -- text <-> token ids, identical to the reference
 * libraries (see internal.h for the files of this folder).
 *
 * This file is the ilm_tokenizer handle: building the vocabulary, loading
 * by file kind, added / special tokens (recognised in text before the
 * kind's encoder runs), decoding with UTF-8 repair, and the streaming
 * decoder.  The encoders themselves live in spm_bpe.c and bytelevel.c.
 */
#include "tokenizer/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- string storage ---------------------------------------------------- */

/* Pieces are copied into large blocks that never move, so the hash maps
 * can borrow pointers into them. */
typedef struct ilm__arena {
    struct ilm__arena *next;
    size_t used, cap;
    char   data[];
} ilm__arena;

static char *arena_copy(ilm_tokenizer *t, const char *s, size_t n)
{
    ilm__arena *a = t->arena;
    if (!a || a->cap - a->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        ilm__arena *b = ilm__malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = a;
        b->used = 0;
        b->cap = cap;
        t->arena = a = b;
    }
    char *d = a->data + a->used;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    a->used += n + 1;
    return d;
}

/* ---- building ---------------------------------------------------------- */

ilm_status ilm__tok_new(ilm__tok_kind kind, ilm_tokenizer **out)
{
    ilm_tokenizer *t = ilm__calloc(1, sizeof *t);
    ILM__RETURN_IF(!t, ILM_ERR_NOMEM, "tokenizer: out of memory");
    t->kind = kind;
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    *out = t;
    return ILM_OK;
}

ilm_status ilm__tok_vocab_resize(ilm_tokenizer *t, int32_t n)
{
    ILM__RETURN_IF(n < 0 || n > (1 << 28), ILM_ERR_FORMAT, "tokenizer: vocabulary of %d pieces", n);
    if (n <= t->n_vocab) return ILM_OK;
    char **piece = ilm__realloc(t->piece, (size_t)n * sizeof *piece);
    if (piece) t->piece = piece;
    uint32_t *len = ilm__realloc(t->piece_len, (size_t)n * sizeof *len);
    if (len) t->piece_len = len;
    float *score = ilm__realloc(t->score, (size_t)n * sizeof *score);
    if (score) t->score = score;
    uint8_t *type = ilm__realloc(t->type, (size_t)n);
    if (type) t->type = type;
    ILM__RETURN_IF(!piece || !len || !score || !type, ILM_ERR_NOMEM,
                   "tokenizer: out of memory for %d pieces", n);
    for (int32_t i = t->n_vocab; i < n; i++) {
        t->piece[i] = (char *)"";
        t->piece_len[i] = 0;
        t->score[i] = 0.0f;
        t->type[i] = ILM__PIECE_UNUSED;
    }
    t->n_vocab = n;
    return ILM_OK;
}

int32_t ilm__tok_id_limit(size_t n_pieces)
{
    return n_pieces >= (1u << 27) ? 1 << 28 : (int32_t)(2 * n_pieces);
}

ilm_status ilm__tok_set_piece(ilm_tokenizer *t, int32_t id, const char *piece, size_t len,
                              float score, uint8_t type, const char *what)
{
    ILM__RETURN_IF(id < 0 || id >= t->n_vocab, ILM_ERR_FORMAT, "%s: piece id %d out of range", what, id);
    ILM__RETURN_IF(t->piece_len[id] != 0, ILM_ERR_FORMAT, "%s: id %d is defined twice", what, id);
    ILM__RETURN_IF(len == 0, ILM_ERR_FORMAT, "%s: piece %d is empty", what, id);
    ILM__RETURN_IF(len > 65535, ILM_ERR_FORMAT, "%s: piece %d is %zu bytes long", what, id, len);
    int32_t other = ilm__strmap_get(&t->piece_ids, piece, len);
    ILM__RETURN_IF(other >= 0, ILM_ERR_FORMAT, "%s: piece '%.*s' appears twice (ids %d and %d)",
                   what, (int)(len > 64 ? 64 : len), piece, other, id);
    char *copy = arena_copy(t, piece, len);
    ILM__RETURN_IF(!copy, ILM_ERR_NOMEM, "%s: out of memory", what);
    t->piece[id] = copy;
    t->piece_len[id] = (uint32_t)len;
    t->score[id] = score;
    t->type[id] = type;
    return ilm__strmap_put(&t->piece_ids, copy, len, id);
}

ilm_status ilm__tok_add_token(ilm_tokenizer *t, const char *text, size_t len, int32_t id,
                              bool special, bool lstrip, bool rstrip)
{
    ILM__RETURN_IF(id < 0, ILM_ERR_FORMAT, "tokenizer: added token with id %d", id);
    ILM__RETURN_IF(len == 0, ILM_ERR_FORMAT, "tokenizer: added token %d is empty", id);
    if (id >= t->n_vocab) ILM__FORWARD(ilm__tok_vocab_resize(t, id + 1));
    if (t->piece_len[id] == 0 && ilm__strmap_get(&t->piece_ids, text, len) < 0)
        ILM__FORWARD(ilm__tok_set_piece(t, id, text, len, 0.0f,
                                       special ? ILM__PIECE_CONTROL : ILM__PIECE_USER_DEFINED,
                                       "tokenizer"));
    char *copy = arena_copy(t, text, len);
    ILM__RETURN_IF(!copy, ILM_ERR_NOMEM, "tokenizer: out of memory");
    ilm__added_token a = { copy, len, id, special, lstrip, rstrip, false };
    /* A control piece whose text is unchanged keeps its vocabulary decoding
     * (SentencePiece renders control pieces as nothing). */
    a.from_vocab = t->kind == ILM__TOK_SPM_BPE && t->type[id] == ILM__PIECE_CONTROL &&
                   t->piece_len[id] == len && memcmp(t->piece[id], text, len) == 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) { /* a later definition (a config) wins */
            t->added[i] = a;
            return ILM_OK;
        }
    ilm__added_token *v = ilm__realloc(t->added, (t->n_added + 1) * sizeof *v);
    ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "tokenizer: out of memory");
    t->added = v;
    t->added[t->n_added++] = a;
    return ILM_OK;
}

static int longer_first(const void *a, const void *b)
{
    const ilm__added_token *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->id - y->id;
}

/* Once loaded: index the added tokens for matching and decoding. */
static ilm_status finalize(ilm_tokenizer *t)
{
    if (t->n_added) qsort(t->added, t->n_added, sizeof *t->added, longer_first);
    memset(t->added_first, 0, sizeof t->added_first);
    ilm__u64map_free(&t->added_of_id);
    for (size_t i = 0; i < t->n_added; i++) {
        uint8_t c = (uint8_t)t->added[i].text[0];
        t->added_first[c >> 3] |= (uint8_t)(1u << (c & 7));
        ILM__FORWARD(ilm__u64map_put(&t->added_of_id, (uint64_t)t->added[i].id, (int32_t)i));
    }
    return ILM_OK;
}

void ilm_tokenizer_free(ilm_tokenizer *t)
{
    if (!t) return;
    ilm__spm_free(&t->spm);
    if (t->bbpe) ilm__bbpe_free(t->bbpe);
    ilm__strmap_free(&t->piece_ids);
    ilm__u64map_free(&t->added_of_id);
    ilm__free(t->piece);
    ilm__free(t->piece_len);
    ilm__free(t->score);
    ilm__free(t->type);
    ilm__free(t->added);
    for (ilm__arena *a = t->arena, *next; a; a = next) {
        next = a->next;
        ilm__free(a);
    }
    ilm__free(t);
}

/* ---- loading ----------------------------------------------------------- */

static ilm_status load_spm_file(const char *path, ilm_tokenizer **out)
{
    ilm__mmap m;
    ILM__FORWARD(ilm__mmap_open(path, &m));
    ilm_status st = ilm__tok_new(ILM__TOK_SPM_BPE, out);
    if (st == ILM_OK) st = ilm__spm_load_model(*out, m.data, m.size, path);
    ilm__mmap_close(&m);
    return st;
}

static ilm_status load_json_file(const char *path, ilm_tokenizer **out)
{
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_read_file(path, &root));
    ilm_status st = ilm__tok_new(ILM__TOK_BYTE_BPE, out);
    if (st == ILM_OK) st = ilm__bbpe_load_json(*out, root, path);
    cJSON_Delete(root);
    return st;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Looks at the first bytes: "GGUF", '{' (JSON) or else protobuf. */
static ilm_status sniff(const char *path, char *kind)
{
    ilm__mmap m;
    ILM__FORWARD(ilm__mmap_open(path, &m));
    size_t i = 0;
    while (i < m.size && (m.data[i] == ' ' || m.data[i] == '\n' || m.data[i] == '\r' ||
                          m.data[i] == '\t'))
        i++;
    *kind = m.size >= 4 && memcmp(m.data, "GGUF", 4) == 0 ? 'g' : i < m.size && m.data[i] == '{' ? 'j' : 'p';
    ilm__mmap_close(&m);
    return ILM_OK;
}

/* "bos_token": "<s>" or {"content": "<s>", ...} in tokenizer_config.json. */
static const char *token_text(const cJSON *v)
{
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

/* tokenizer_config.json (Hugging Face): added / special tokens and the BOS
 * and EOS choices.  It carries many keys we have no use for; only the
 * ones read here matter, each checked for its type. */
static ilm_status apply_config(ilm_tokenizer *t, const char *path)
{
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_read_file(path, &root));
    ilm_status st = ILM_OK;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder");
    int32_t limit = ilm__tok_id_limit((size_t)t->n_vocab +
                                      (size_t)(cJSON_IsObject(dec) ? cJSON_GetArraySize(dec) : 0));
    for (const cJSON *e = cJSON_IsObject(dec) ? dec->child : NULL; e && st == ILM_OK; e = e->next) {
        char *end;
        long id = strtol(e->string, &end, 10);
        const char *text = token_text(e);
        if (*end || end == e->string || id < 0 || id > INT32_MAX || !text || !*text) {
            st = ilm__error(ILM_ERR_FORMAT, "%s: bad added token '%s'", path, e->string);
            break;
        }
        if (id >= limit) {
            st = ilm__error(ILM_ERR_FORMAT,
                            "%s: added token id %ld is too large for a vocabulary of %d pieces "
                            "(ids must be below %d)", path, id, t->n_vocab, limit);
            break;
        }
        st = ilm__tok_add_token(t, text, strlen(text), (int32_t)id,
                                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")),
                                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "lstrip")),
                                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "rstrip")));
    }
    if (st == ILM_OK) st = finalize(t); /* so ilm_tokenizer_piece_id sees the added tokens */
    const char *names[2] = { "bos_token", "eos_token" };
    int32_t *ids[2] = { &t->bos_id, &t->eos_id };
    for (int i = 0; i < 2 && st == ILM_OK; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, names[i]);
        const char *text = v ? token_text(v) : NULL;
        if (text) {
            int32_t id = ilm_tokenizer_piece_id(t, text);
            if (id < 0) st = ilm__error(ILM_ERR_FORMAT, "%s: %s '%s' is not in the vocabulary",
                                        path, names[i], text);
            else *ids[i] = id;
        }
    }
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(root, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(root, "add_eos_token");
    if (cJSON_IsBool(ab)) t->add_bos = cJSON_IsTrue(ab);
    if (cJSON_IsBool(ae)) t->add_eos = cJSON_IsTrue(ae);
    cJSON_Delete(root);
    return st;
}

static ilm_status load_dir(const char *dir, ilm_tokenizer **out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    if (is_file(path)) {
        ILM__FORWARD(load_spm_file(path, out));
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        ILM__RETURN_IF(!is_file(path), ILM_ERR_NOT_FOUND,
                       "%s: no tokenizer.model or tokenizer.json in the directory", dir);
        ILM__FORWARD(load_json_file(path, out));
    }
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    return is_file(path) ? apply_config(*out, path) : ILM_OK;
}

ilm_status ilm_tokenizer_load(const char *path, ilm_tokenizer **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_tokenizer_load: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "ilm_tokenizer_load: path is NULL");
    ilm_tokenizer *t = NULL;
    ilm_status st;
    if (is_dir(path)) {
        st = load_dir(path, &t);
    } else {
        char kind = 0;
        st = sniff(path, &kind);
        if (st == ILM_OK)
            st = kind == 'g' ? ilm__tok_load_gguf(path, &t)
               : kind == 'j' ? load_json_file(path, &t) : load_spm_file(path, &t);
    }
    if (st == ILM_OK) st = finalize(t);
    if (st != ILM_OK) {
        ilm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return ILM_OK;
}

/* ---- encoding ---------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The longest enabled added token at text[i..n) whose id is not denied,
 * or NULL. */
static const ilm__added_token *match_added(const ilm_tokenizer *t, const char *s, size_t n,
                                           unsigned flags, const ilm__tok_deny *deny)
{
    uint8_t c = (uint8_t)s[0];
    if (!(t->added_first[c >> 3] & (1u << (c & 7)))) return NULL;
    for (size_t k = 0; k < t->n_added; k++) { /* sorted longest first */
        const ilm__added_token *a = &t->added[k];
        if (a->len <= n && (!a->special || (flags & ILM_TOKENIZE_SPECIAL)) &&
            memcmp(s, a->text, a->len) == 0 && !ilm__tok_denied(deny, a->id))
            return a;
    }
    return NULL;
}

static ilm_status encode_part(const ilm_tokenizer *t, const char *s, size_t n, bool at_start,
                              ilm__tok_cache *cache, const ilm__tok_deny *deny, ilm__ids *out)
{
    if (n == 0) return ILM_OK;
    if (t->kind == ILM__TOK_SPM_BPE) return ilm__spm_encode_part(t, s, n, at_start, cache, deny, out);
    size_t first = out->n;
    ILM__FORWARD(ilm__bbpe_encode(t, s, n, out));
    /* Byte-level merges never make an added token in real vocabularies;
     * one that would is refused rather than let user text become it. */
    for (size_t i = first; deny && i < out->n; i++)
        ILM__RETURN_IF(ilm__tok_denied(deny, out->v[i]), ILM_ERR_UNSUPPORTED,
                       "tokenizer: the merges of this vocabulary make the marker '%s' out of "
                       "plain text", t->piece[out->v[i]]);
    return ILM_OK;
}

/* Where a guard's markers are in the vocabulary. */
typedef struct marker_set {
    int32_t     id[8];
    const char *text[8];
    size_t      len[8], n;
} marker_set;

/* The longest marker at s[0..n), or -1 (its length in *len). */
static int match_marker(const marker_set *m, const char *s, size_t n, size_t *len)
{
    int best = -1;
    for (size_t k = 0; k < m->n; k++)
        if (m->len[k] <= n && memcmp(s, m->text[k], m->len[k]) == 0 &&
            (best < 0 || m->len[k] > m->len[best]))
            best = (int)k;
    if (best >= 0) *len = m->len[best];
    return best;
}

/* Splits text at added tokens (and, under a guard, at markers outside the
 * plain ranges) and encodes the parts between, appending to out. */
static ilm_status encode_into(const ilm_tokenizer *t, const char *text, size_t len, unsigned flags,
                              ilm__tok_cache *cache, const ilm__tok_guard *g, ilm__ids *out)
{
    marker_set ms = { .n = 0 };
    for (size_t k = 0; g && k < g->n_markers; k++) {
        int32_t id = ilm_tokenizer_piece_id(t, g->markers[k]);
        if (id < 0) continue;
        ILM__RETURN_IF(ms.n == 8, ILM_ERR_INTERNAL, "tokenizer: more than 8 template markers");
        ms.id[ms.n] = id;
        ms.text[ms.n] = g->markers[k];
        ms.len[ms.n++] = strlen(g->markers[k]);
    }
    const ilm__tok_deny deny = { ms.id, ms.n };
    const ilm__tok_deny *dp = ms.n ? &deny : NULL;
    size_t part = 0, i = 0, r = 0; /* r: the next plain range not wholly before i */
    ilm_status st = ILM_OK;
    while (st == ILM_OK && i < len) {
        while (g && r < g->n_plain && g->plain[2 * r + 1] <= i) r++;
        bool in_plain = g && r < g->n_plain && g->plain[2 * r] <= i;
        /* Outside user text, a token may not reach into the next range. */
        size_t avail = !g ? len - i : in_plain ? len - i
                     : (r < g->n_plain ? g->plain[2 * r] : len) - i;
        int32_t id = -1;
        size_t tl = 0;
        bool lstrip = false, rstrip = false;
        int mk = in_plain || !ms.n ? -1 : match_marker(&ms, text + i, avail, &tl);
        if (mk >= 0) {
            id = ms.id[mk];
        } else if (t->n_added) {
            const ilm__added_token *a =
                match_added(t, text + i, avail, in_plain ? flags & ~ILM_TOKENIZE_SPECIAL : flags,
                            in_plain ? dp : NULL);
            if (a) id = a->id, tl = a->len, lstrip = a->lstrip, rstrip = a->rstrip;
        }
        if (id < 0) {
            i++;
            continue;
        }
        size_t end = i;
        if (lstrip)
            while (end > part && is_space(text[end - 1])) end--;
        st = encode_part(t, text + part, end - part, part == 0, cache, dp, out);
        if (st == ILM_OK) st = ilm__ids_push(out, id);
        i += tl;
        if (rstrip)
            while (i < len && is_space(text[i])) i++;
        part = i;
    }
    if (st == ILM_OK) st = encode_part(t, text + part, len - part, part == 0, cache, dp, out);
    return st;
}

ilm_status ilm__tok_encode_guarded(const ilm_tokenizer *t, const char *text, size_t len,
                                   unsigned flags, const ilm__tok_guard *g, ilm__ids *out)
{
    ILM__RETURN_IF(!t || (!text && len) || !g || !out, ILM_ERR_INVALID_ARG,
                   "tokenizer: NULL argument");
    return encode_into(t, text, len, flags & ILM_TOKENIZE_SPECIAL, NULL, g, out);
}

ilm_status ilm_tokenizer_encode(const ilm_tokenizer *t, const char *text, size_t len,
                                unsigned flags, int32_t **ids, size_t *n_ids)
{
    return ilm__tokenizer_encode_cached(t, text, len, flags, NULL, ids, n_ids);
}

ilm_status ilm__tokenizer_encode_cached(const ilm_tokenizer *t, const char *text, size_t len,
                                        unsigned flags, ilm__tok_cache *cache, int32_t **ids,
                                        size_t *n_ids)
{
    ILM__RETURN_IF(!ids || !n_ids, ILM_ERR_INVALID_ARG, "ilm_tokenizer_encode: NULL output");
    *ids = NULL;
    *n_ids = 0;
    ILM__RETURN_IF(!t || (!text && len), ILM_ERR_INVALID_ARG, "ilm_tokenizer_encode: NULL input");
    ilm__ids out = { 0 };
    ilm_status st = ILM_OK;
    if ((flags & ILM_TOKENIZE_BOS) && t->bos_id >= 0) st = ilm__ids_push(&out, t->bos_id);
    if (st == ILM_OK) st = encode_into(t, text, len, flags, cache, NULL, &out);
    if (st == ILM_OK && (flags & ILM_TOKENIZE_EOS) && t->eos_id >= 0) st = ilm__ids_push(&out, t->eos_id);
    if (st == ILM_OK && !out.v) { /* hand back a non-NULL array even when empty */
        st = ilm__ids_push(&out, 0);
        out.n = 0;
    }
    if (st != ILM_OK) {
        ilm__free(out.v);
        return st;
    }
    *ids = out.v;
    *n_ids = out.n;
    return ILM_OK;
}

/* ---- decoding ---------------------------------------------------------- */

/* How many bytes at s form a prefix of a well-formed UTF-8 sequence (the
 * second-byte ranges of Unicode's table 3-7), and the full length the lead
 * byte calls for (*need, 0 for a byte that cannot start one). */
static size_t utf8_prefix(const uint8_t *s, size_t n, size_t *need)
{
    uint8_t c = s[0];
    uint8_t lo = 0x80, hi = 0xBF;
    if (c < 0x80) { *need = 1; return 1; }
    if (c >= 0xC2 && c <= 0xDF) *need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        *need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        *need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *need = 0;
        return 0;
    }
    size_t m = 1;
    for (; m < *need && m < n; m++) {
        uint8_t b = s[m];
        if (b < (m == 1 ? lo : 0x80) || b > (m == 1 ? hi : 0xBF)) break;
    }
    return m;
}

/* Appends bytes[0..n) to out as valid UTF-8: each ill-formed part becomes
 * U+FFFD, one per byte (sentencepiece) or one per maximal ill-formed
 * subpart (Rust's from_utf8_lossy, which tokenizers uses).  Unless `final`,
 * a trailing incomplete character is left: returns the bytes consumed. */
static size_t utf8_repair(const char *bytes, size_t n, bool per_byte, bool final, ilm__buf *out,
                          ilm_status *st)
{
    const uint8_t *s = (const uint8_t *)bytes;
    size_t i = 0;
    while (i < n && *st == ILM_OK) {
        size_t need, m = utf8_prefix(s + i, n - i, &need);
        if (need && m == need) {
            *st = ilm__buf_append(out, bytes + i, m);
            i += m;
        } else if (need && m == n - i && !final) {
            break; /* might still complete */
        } else {
            *st = ilm__buf_append(out, "\xEF\xBF\xBD", 3);
            i += per_byte || m == 0 ? 1 : m;
        }
    }
    return i;
}

/* Where decoding stands: sentencepiece drops the normalizer's leading
 * space while nothing has been decoded yet (see ilm__spm_piece_bytes). */
typedef struct dec_state {
    bool bos_ws, bos_ws_seen, any;
} dec_state;

static const dec_state dec_start = { true, false, false };

/* Appends the bytes of one id. */
static ilm_status piece_bytes(const ilm_tokenizer *t, int32_t id, unsigned flags, dec_state *ds,
                              ilm__buf *out)
{
    ILM__RETURN_IF(id < 0 || id >= t->n_vocab, ILM_ERR_RANGE,
                   "tokenizer: id %d is outside the vocabulary of %d", id, t->n_vocab);
    size_t before = out->n;
    int32_t k = t->n_added ? ilm__u64map_get(&t->added_of_id, (uint64_t)id) : -1;
    bool byte = t->kind == ILM__TOK_SPM_BPE && t->type[id] == ILM__PIECE_BYTE;
    if (!byte && (ds->bos_ws_seen || ds->any)) ds->bos_ws = false;
    bool consumed = false;
    ilm_status st = ILM_OK;
    if (k >= 0 && !t->added[k].from_vocab) {
        const ilm__added_token *a = &t->added[k];
        if (!(a->special && (flags & ILM_DECODE_SKIP_SPECIAL))) st = ilm__buf_append(out, a->text, a->len);
    } else if (t->kind == ILM__TOK_BYTE_BPE) {
        st = ilm__bbpe_piece_bytes(t, id, out);
    } else {
        st = ilm__spm_piece_bytes(t, id, ds->bos_ws, &consumed, out);
    }
    if (!byte) ds->bos_ws_seen = consumed;
    ds->any |= out->n > before;
    return st;
}

ilm_status ilm_tokenizer_decode(const ilm_tokenizer *t, const int32_t *ids, size_t n_ids,
                                unsigned flags, char **text, size_t *len)
{
    ILM__RETURN_IF(!text, ILM_ERR_INVALID_ARG, "ilm_tokenizer_decode: text is NULL");
    *text = NULL;
    if (len) *len = 0;
    ILM__RETURN_IF(!t || (!ids && n_ids), ILM_ERR_INVALID_ARG, "ilm_tokenizer_decode: NULL input");
    ilm__buf raw = { 0 }, out = { 0 };
    dec_state ds = dec_start;
    ilm_status st = ILM_OK;
    for (size_t i = 0; i < n_ids && st == ILM_OK; i++) st = piece_bytes(t, ids[i], flags, &ds, &raw);
    if (st == ILM_OK) utf8_repair(raw.p, raw.n, t->kind == ILM__TOK_SPM_BPE, true, &out, &st);
    if (st == ILM_OK && !out.p) st = ilm__buf_append(&out, "", 0);
    ilm__buf_free(&raw);
    if (st != ILM_OK) {
        ilm__buf_free(&out);
        return st;
    }
    *text = out.p;
    if (len) *len = out.n;
    return ILM_OK;
}

/* ---- the streaming decoder -------------------------------------------- */

struct ilm_detokenizer {
    const ilm_tokenizer *t;
    unsigned  flags;
    dec_state state;
    ilm__buf  pending; /* bytes not yet emitted (an incomplete character) */
    ilm__buf out;     /* what the last call returned */
};

ilm_status ilm_detokenizer_create(const ilm_tokenizer *t, unsigned flags, ilm_detokenizer **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_detokenizer_create: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!t, ILM_ERR_INVALID_ARG, "ilm_detokenizer_create: tokenizer is NULL");
    ilm_detokenizer *d = ilm__calloc(1, sizeof *d);
    ILM__RETURN_IF(!d, ILM_ERR_NOMEM, "detokenizer: out of memory");
    d->t = t;
    d->flags = flags;
    d->state = dec_start;
    *out = d;
    return ILM_OK;
}

static ilm_status drain(ilm_detokenizer *d, bool final, const char **text, size_t *len)
{
    ilm_status st = ILM_OK;
    d->out.n = 0;
    size_t used = utf8_repair(d->pending.p, d->pending.n, d->t->kind == ILM__TOK_SPM_BPE, final,
                              &d->out, &st);
    if (st == ILM_OK && !d->out.p) st = ilm__buf_append(&d->out, "", 0);
    ILM__FORWARD(st);
    /* Nothing is pending yet (pending.p NULL) after ids that render as
     * nothing, such as a control piece first. */
    if (used > 0) memmove(d->pending.p, d->pending.p + used, d->pending.n - used);
    d->pending.n -= used;
    *text = d->out.p;
    *len = d->out.n;
    return ILM_OK;
}

ilm_status ilm_detokenizer_push(ilm_detokenizer *d, int32_t id, const char **text, size_t *len)
{
    ILM__RETURN_IF(!d || !text || !len, ILM_ERR_INVALID_ARG, "ilm_detokenizer_push: NULL argument");
    ILM__FORWARD(piece_bytes(d->t, id, d->flags, &d->state, &d->pending));
    return drain(d, false, text, len);
}

ilm_status ilm_detokenizer_flush(ilm_detokenizer *d, const char **text, size_t *len)
{
    ILM__RETURN_IF(!d || !text || !len, ILM_ERR_INVALID_ARG, "ilm_detokenizer_flush: NULL argument");
    ILM__FORWARD(drain(d, true, text, len));
    d->state = dec_start;
    return ILM_OK;
}

void ilm_detokenizer_free(ilm_detokenizer *d)
{
    if (!d) return;
    ilm__buf_free(&d->pending);
    ilm__buf_free(&d->out);
    ilm__free(d);
}

/* ---- queries ----------------------------------------------------------- */

int32_t ilm_tokenizer_vocab_size(const ilm_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t ilm_tokenizer_bos(const ilm_tokenizer *t) { return t ? t->bos_id : -1; }
int32_t ilm_tokenizer_eos(const ilm_tokenizer *t) { return t ? t->eos_id : -1; }

const char *ilm_tokenizer_piece(const ilm_tokenizer *t, int32_t id)
{
    return t && id >= 0 && id < t->n_vocab ? t->piece[id] : NULL;
}

int32_t ilm_tokenizer_piece_id(const ilm_tokenizer *t, const char *piece)
{
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int32_t id = ilm__strmap_get(&t->piece_ids, piece, n);
    for (size_t i = 0; id < 0 && i < t->n_added; i++)
        if (t->added[i].len == n && memcmp(t->added[i].text, piece, n) == 0) id = t->added[i].id;
    return id;
}

ilm_status ilm_tokenizer_info(const ilm_tokenizer *t, char **json)
{
    ILM__RETURN_IF(!t || !json, ILM_ERR_INVALID_ARG, "ilm_tokenizer_info: NULL argument");
    *json = NULL;
    cJSON *j = cJSON_CreateObject();
    ILM__RETURN_IF(!j, ILM_ERR_NOMEM, "tokenizer: out of memory");
    cJSON_AddStringToObject(j, "kind", t->kind == ILM__TOK_SPM_BPE ? "sentencepiece-bpe"
                                                                   : "byte-level-bpe");
    cJSON_AddNumberToObject(j, "vocab_size", t->n_vocab);
    cJSON_AddNumberToObject(j, "bos", t->bos_id);
    cJSON_AddNumberToObject(j, "eos", t->eos_id);
    cJSON_AddNumberToObject(j, "unk", t->unk_id);
    cJSON_AddNumberToObject(j, "pad", t->pad_id);
    cJSON_AddBoolToObject(j, "add_bos", t->add_bos);
    cJSON_AddBoolToObject(j, "add_eos", t->add_eos);
    cJSON_AddNumberToObject(j, "added_tokens", (double)t->n_added);
    if (t->kind == ILM__TOK_SPM_BPE) {
        const ilm__spm *s = &t->spm;
        cJSON_AddStringToObject(j, "normalizer", s->normalizer_name ? s->normalizer_name : "");
        cJSON_AddBoolToObject(j, "add_dummy_prefix", s->add_dummy_prefix);
        cJSON_AddBoolToObject(j, "remove_extra_whitespaces", s->remove_extra_whitespaces);
        cJSON_AddBoolToObject(j, "escape_whitespaces", s->escape_whitespaces);
        cJSON_AddBoolToObject(j, "byte_fallback", s->byte_fallback);
        cJSON_AddBoolToObject(j, "split_digits", s->split_digits);
    }
    ilm_status st = ilm__json_print(j, json);
    cJSON_Delete(j);
    return st;
}
