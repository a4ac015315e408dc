/*
 * SentencePiece BPE: the normalizer and the encoder, with exactly
 * sentencepiece's behaviour (normalizer.cc, bpe_model.cc and the byte
 * fallback of sentencepiece_processor.cc, read for their semantics):
 *
 *  1. Normalize: at each position a user-defined piece passes through
 *     untouched; otherwise the longest match in the precompiled charsmap
 *     (a Darts double-array trie) is replaced by its string; otherwise one
 *     UTF-8 character is copied, and a malformed byte becomes U+FFFD.
 *     Whitespace: leading spaces dropped and runs collapsed when
 *     remove_extra_whitespaces, "▁" as a dummy prefix when add_dummy_prefix,
 *     every ' ' escaped to "▁" when escape_whitespaces.
 *  2. Split into symbols: user-defined pieces whole (frozen), else single
 *     characters.
 *  3. Repeatedly merge the adjacent pair whose concatenation is a vocabulary
 *     piece with the highest score (ties: leftmost first).
 *  4. Emit ids; an unknown symbol becomes its UTF-8 bytes as <0xNN> pieces
 *     with byte fallback, else <unk> (a run of unknowns is one <unk>).
 */
#include "tokenizer/internal.h"

#include <string.h>

#define SPACE_SYMBOL "\xE2\x96\x81" /* U+2581, "▁" */
#define SPACE_SYMBOL_LEN 3
#define DEFAULT_UNK_SURFACE " \xE2\x81\x87 " /* " ⁇ " */

/* ---- set-up ------------------------------------------------------------ */

static bool is_space_at(const char *text, size_t i, size_t n)
{
    return i <= n && n - i >= SPACE_SYMBOL_LEN && memcmp(text + i, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ilm__spm_byte_piece(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        int c = s[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Records a character next to a "▁" in a piece, by one of its bytes:
 * ASCII in the bitmap, anything else in the catch-all flag. */
static void note_char(uint8_t bitmap[16], bool *other, uint8_t byte)
{
    if (byte < 0x80) bitmap[byte >> 3] |= (uint8_t)(1u << (byte & 7));
    else *other = true;
}

static bool has_char(const uint8_t bitmap[16], bool other, uint8_t byte)
{
    return byte < 0x80 ? (bitmap[byte >> 3] >> (byte & 7)) & 1 : other;
}

/* The id tables BPE runs on (see ilm__spm.merge_of).  A pair is listed for
 * every split of a mergeable piece whose two halves are both pieces, so
 * merging ids finds exactly the merges that looking up the concatenated
 * text would.  The pairs are collected first, one slot per split, so the
 * map is sized once (rehashing it as it grew took a fifth of the load time
 * of a 92K-piece vocabulary); they then go in in id order, as before. */
static ilm_status build_merge_tables(ilm_tokenizer *t)
{
    ilm__spm *s = &t->spm;
    s->bmp_id = ilm__malloc(65536 * sizeof *s->bmp_id);
    ILM__RETURN_IF(!s->bmp_id, ILM_ERR_NOMEM, "tokenizer: out of memory");
    memset(s->bmp_id, 0xff, 65536 * sizeof *s->bmp_id);
    size_t *first = ilm__malloc(((size_t)t->n_vocab + 1) * sizeof *first);
    ILM__RETURN_IF(!first, ILM_ERR_NOMEM, "tokenizer: out of memory");
    first[0] = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->piece[id];
        size_t len = t->piece_len[id];
        uint32_t cp;
        if (len && ilm__utf8_decode(p, len, &cp) == len) { /* a single character */
            if (cp < 65536) s->bmp_id[cp] = id;
            else {
                ilm_status st = ilm__u64map_put(&s->char_id, cp, id);
                if (st != ILM_OK) {
                    ilm__free(first);
                    return st;
                }
            }
        }
        first[id + 1] = first[id] + (len ? len - 1 : 0);
    }
    uint64_t *pairs = ilm__malloc((first[t->n_vocab] + 1) * sizeof *pairs);
    if (!pairs) {
        ilm__free(first);
        return ilm__error(ILM_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->piece[id];
        size_t len = t->piece_len[id];
        uint64_t *out = pairs + first[id];
        uint8_t ty = t->type[id];
        bool mergeable = ty == ILM__PIECE_NORMAL || ty == ILM__PIECE_USER_DEFINED || ty == ILM__PIECE_UNUSED;
        for (size_t k = 1; k < len; k++) {
            out[k - 1] = UINT64_MAX;
            if (!mergeable || ((uint8_t)p[k] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = ilm__strmap_get(&t->piece_ids, p, k);
            int32_t r = l < 0 ? -1 : ilm__strmap_get(&t->piece_ids, p + k, len - k);
            if (r >= 0) out[k - 1] = (uint64_t)l << 32 | (uint32_t)r;
        }
    }
    size_t n_pairs = 0;
    for (size_t i = 0; i < first[t->n_vocab]; i++) n_pairs += pairs[i] != UINT64_MAX;
    ilm_status st = ilm__u64map_reserve(&s->merge_of, n_pairs);
    for (int32_t id = 0; id < t->n_vocab && st == ILM_OK; id++)
        for (size_t i = first[id]; i < first[id + 1] && st == ILM_OK; i++)
            if (pairs[i] != UINT64_MAX) st = ilm__u64map_put(&s->merge_of, pairs[i], id);
    ilm__free(pairs);
    ilm__free(first);
    return st;
}

ilm_status ilm__spm_finish(ilm_tokenizer *t)
{
    ilm__spm *s = &t->spm;
    for (int b = 0; b < 256; b++) s->byte_id[b] = -1;
    int n_bytes = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->piece[id];
        uint32_t len = t->piece_len[id];
        if (t->type[id] == ILM__PIECE_BYTE) {
            int v = ilm__spm_byte_piece(p, len);
            ILM__RETURN_IF(v < 0, ILM_ERR_FORMAT,
                           "tokenizer: byte piece %d ('%s') is not <0xNN>", id, p);
            ILM__RETURN_IF(s->byte_id[v] >= 0, ILM_ERR_FORMAT,
                           "tokenizer: byte piece <0x%02X> appears twice", v);
            s->byte_id[v] = id;
            n_bytes++;
        } else if (t->type[id] == ILM__PIECE_USER_DEFINED && len > 0) {
            ILM__FORWARD(ilm__strmap_put(&s->user_defined, p, len, id));
            if ((int32_t)len > s->max_user_len) s->max_user_len = (int32_t)len;
            if (len < 64) s->user_lens |= 1ull << (len - 1);
            else s->user_long = true;
            if (!s->user_first2) s->user_first2 = ilm__calloc(65536 / 8, 1);
            ILM__RETURN_IF(!s->user_first2, ILM_ERR_NOMEM, "tokenizer: out of memory");
            unsigned key = (uint8_t)p[0] << 8 | (len > 1 ? (uint8_t)p[1] : 0);
            s->user_first2[key >> 3] |= (uint8_t)(1u << (key & 7));
        } else if (t->type[id] == ILM__PIECE_CONTROL) {
            /* Control pieces never come out of text in sentencepiece; they
             * are recognised only when the caller asks for special tokens. */
            ILM__FORWARD(ilm__tok_add_token(t, p, len, id, true, false, false));
            t->added[t->n_added - 1].from_vocab = true;
        }
    }
    /* Where merges can never cross (see bpe()): the characters pieces have
     * next to a "▁". */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint8_t ty = t->type[id];
        if (ty != ILM__PIECE_NORMAL && ty != ILM__PIECE_USER_DEFINED && ty != ILM__PIECE_UNUSED)
            continue;
        const char *p = t->piece[id];
        size_t len = t->piece_len[id];
        for (size_t k = 0; k < len; k++) {
            if (!is_space_at(p, k, len)) continue;
            if (k > 0 && !(k >= SPACE_SYMBOL_LEN && is_space_at(p, k - SPACE_SYMBOL_LEN, len)))
                note_char(s->pre_space, &s->pre_space_other, (uint8_t)p[k - 1]);
            size_t after = k + SPACE_SYMBOL_LEN;
            if (after < len && !is_space_at(p, after, len))
                note_char(s->post_space, &s->post_space_other, (uint8_t)p[after]);
        }
    }
    ILM__FORWARD(build_merge_tables(t));
    /* sentencepiece refuses these models; so do we. */
    ILM__RETURN_IF(s->byte_fallback && n_bytes != 256, ILM_ERR_FORMAT,
                   "tokenizer: byte_fallback is set but there are %d byte pieces, not 256", n_bytes);
    ILM__RETURN_IF(!s->byte_fallback && n_bytes > 0, ILM_ERR_FORMAT,
                   "tokenizer: byte pieces are present although byte_fallback is off");
    ILM__RETURN_IF(t->unk_id < 0, ILM_ERR_FORMAT, "tokenizer: no unknown piece");

    if (s->charsmap_len) {
        ILM__RETURN_IF(s->charsmap_len < 4, ILM_ERR_FORMAT, "tokenizer: charsmap of %zu bytes",
                       s->charsmap_len);
        uint32_t trie_bytes = le32(s->charsmap);
        ILM__RETURN_IF(trie_bytes % 4 != 0 || trie_bytes == 0 ||
                          trie_bytes > s->charsmap_len - 4,
                       ILM_ERR_FORMAT, "tokenizer: charsmap trie of %u bytes in a %zu-byte map",
                       trie_bytes, s->charsmap_len);
        s->trie = s->charsmap + 4;
        s->trie_units = trie_bytes / 4;
        s->norm_strings = (const char *)s->charsmap + 4 + trie_bytes;
        s->norm_strings_len = s->charsmap_len - 4 - trie_bytes;
    }
    return ILM_OK;
}

void ilm__spm_free(ilm__spm *s)
{
    ilm__free(s->normalizer_name);
    ilm__free(s->unk_surface);
    ilm__free(s->charsmap);
    ilm__strmap_free(&s->user_defined);
    ilm__u64map_free(&s->merge_of);
    ilm__u64map_free(&s->char_id);
    ilm__free(s->bmp_id);
    ilm__free(s->user_first2);
    *s = (ilm__spm){ 0 };
}

/* ---- normalizer -------------------------------------------------------- */

/* Longest user-defined piece that prefixes s[0..n), or 0.  The two-byte
 * bitmap and the set of lengths keep the common case (no such piece here)
 * to one bit test. */
static size_t user_prefix(const ilm__spm *s, const char *p, size_t n, const ilm__tok_deny *deny,
                          int32_t *id)
{
    if (!s->max_user_len) return 0;
    unsigned key = (uint8_t)p[0] << 8 | (n > 1 ? (uint8_t)p[1] : 0);
    unsigned one = (uint8_t)p[0] << 8;
    bool two = (s->user_first2[key >> 3] >> (key & 7)) & 1;
    if (!two && !((s->user_first2[one >> 3] >> (one & 7)) & 1)) return 0;
    for (size_t len = n < (size_t)s->max_user_len ? n : (size_t)s->max_user_len; len > 0; len--) {
        if (len < 64 ? !((s->user_lens >> (len - 1)) & 1) : !s->user_long) continue;
        if (len > 1 && !two) continue;
        int32_t v = ilm__strmap_get(&s->user_defined, p, len);
        if (v >= 0 && !ilm__tok_denied(deny, v)) {
            if (id) *id = v;
            return len;
        }
    }
    return 0;
}

/* Darts-clone double-array unit fields. */
static uint32_t unit_at(const ilm__spm *s, size_t i) { return le32(s->trie + 4 * i); }
static bool     unit_has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t unit_value(uint32_t u) { return u & 0x7FFFFFFFu; }
static uint32_t unit_label(uint32_t u) { return u & (0x80000000u | 0xFFu); }
static uint32_t unit_offset(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

/* Longest charsmap rule matching a prefix of p[0..n): its length, with
 * *repl / *repl_len the replacement.  0 when none matches.  Every index is
 * checked, so a corrupt map cannot read out of bounds. */
static size_t charsmap_match(const ilm__spm *s, const char *p, size_t n, const char **repl,
                             size_t *repl_len)
{
    if (!s->trie) return 0;
    size_t best = 0;
    uint32_t best_value = 0;
    size_t pos = 0;
    uint32_t u = unit_at(s, 0);
    pos ^= unit_offset(u);
    for (size_t i = 0; i < n; i++) {
        pos ^= (uint8_t)p[i];
        if (pos >= s->trie_units) break;
        u = unit_at(s, pos);
        if (unit_label(u) != (uint8_t)p[i]) break;
        pos ^= unit_offset(u);
        if (pos >= s->trie_units) break;
        if (unit_has_leaf(u)) {
            best = i + 1;
            best_value = unit_value(unit_at(s, pos));
        }
    }
    if (!best || best_value >= s->norm_strings_len) return 0;
    const char *r = s->norm_strings + best_value;
    const char *nul = memchr(r, '\0', s->norm_strings_len - best_value);
    if (!nul) return 0;
    *repl = r;
    *repl_len = (size_t)(nul - r);
    return best;
}

/* normalizer.cc's NormalizePrefix: what the text at p becomes, and how
 * many input bytes that consumes. */
static size_t normalize_prefix(const ilm__spm *s, const char *p, size_t n,
                               const ilm__tok_deny *deny, const char **out, size_t *out_len)
{
    size_t len = user_prefix(s, p, n, deny, NULL);
    if (len) {
        *out = p;
        *out_len = len;
        return len;
    }
    len = charsmap_match(s, p, n, out, out_len);
    if (len) return len;
    uint32_t cp;
    len = ilm__utf8_decode(p, n, &cp);
    if (len == 0) {
        *out = "\xEF\xBF\xBD"; /* U+FFFD for one malformed byte */
        *out_len = 3;
        return 1;
    }
    *out = p;
    *out_len = len;
    return len;
}

static ilm_status add_space(const ilm__spm *s, ilm__buf *b)
{
    return s->escape_whitespaces ? ilm__buf_append(b, SPACE_SYMBOL, SPACE_SYMBOL_LEN)
                                 : ilm__buf_putc(b, ' ');
}

static bool ends_with(const ilm__buf *b, const char *s, size_t n)
{
    return b->n >= n && memcmp(b->p + b->n - n, s, n) == 0;
}

static ilm_status normalize(const ilm__spm *s, const char *p, size_t n, bool dummy_prefix,
                            const ilm__tok_deny *deny, ilm__buf *out)
{
    const char *sp;
    size_t sp_len, used;
    out->n = 0;
    if (n == 0) return ILM_OK;
    if (s->remove_extra_whitespaces) { /* drop leading whitespace */
        while (n && (used = normalize_prefix(s, p, n, deny, &sp, &sp_len)) &&
               sp_len == 1 && sp[0] == ' ') {
            p += used;
            n -= used;
        }
        if (n == 0) return ILM_OK;
    }
    if (!s->treat_whitespace_as_suffix && dummy_prefix) ILM__FORWARD(add_space(s, out));
    bool prev_space = s->remove_extra_whitespaces;
    while (n) {
        used = normalize_prefix(s, p, n, deny, &sp, &sp_len);
        if (prev_space)
            while (sp_len && sp[0] == ' ') {
                sp++;
                sp_len--;
            }
        if (sp_len) {
            for (size_t i = 0; i < sp_len; i++) {
                if (s->escape_whitespaces && sp[i] == ' ') ILM__FORWARD(add_space(s, out));
                else ILM__FORWARD(ilm__buf_putc(out, sp[i]));
            }
            prev_space = sp[sp_len - 1] == ' ';
        }
        p += used;
        n -= used;
        if (!s->remove_extra_whitespaces) prev_space = false;
    }
    if (s->remove_extra_whitespaces) {
        const char *ws = s->escape_whitespaces ? SPACE_SYMBOL : " ";
        size_t wl = s->escape_whitespaces ? SPACE_SYMBOL_LEN : 1;
        while (ends_with(out, ws, wl)) out->n -= wl;
        if (out->p) out->p[out->n] = '\0';
    }
    if (s->treat_whitespace_as_suffix && dummy_prefix) ILM__FORWARD(add_space(s, out));
    return ILM_OK;
}

/* ---- BPE --------------------------------------------------------------- */

typedef struct symbol {
    int32_t  prev, next;
    uint32_t start, len; /* bytes of the normalized text; len 0 = merged away */
    int32_t  id;         /* the piece it spells, -1 when none (unknown) */
    bool     frozen;     /* a user-defined piece: never merged */
} symbol;

typedef struct pair {
    float    score;
    int32_t  left, right;
    uint32_t len; /* byte length of the merged piece when queued */
    int32_t  id;  /* the merged piece */
} pair;

/* A max-heap on (score, then smaller left). */
typedef struct heap {
    pair  *v;
    size_t n, cap;
} heap;

static bool pair_before(const pair *a, const pair *b)
{
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

static ilm_status heap_push(heap *h, pair x)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 256;
        pair *v = ilm__realloc(h->v, cap * sizeof *v);
        ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "tokenizer: out of memory");
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0 && pair_before(&x, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
    return ILM_OK;
}

static pair heap_pop(heap *h)
{
    pair top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && pair_before(&h->v[c + 1], &h->v[c])) c++;
        if (!pair_before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

/* Pieces BPE may merge into: sentencepiece's pieces_ map holds the NORMAL,
 * USER_DEFINED and UNUSED pieces (control, unknown and byte pieces live
 * elsewhere). */
static int32_t mergeable_id(const ilm_tokenizer *t, const char *p, size_t n)
{
    int32_t id = ilm__strmap_get(&t->piece_ids, p, n);
    if (id < 0) return -1;
    uint8_t ty = t->type[id];
    return ty == ILM__PIECE_NORMAL || ty == ILM__PIECE_USER_DEFINED || ty == ILM__PIECE_UNUSED
               ? id : -1;
}

typedef struct bpe_ctx {
    const ilm_tokenizer *t;
    const char *text; /* the normalized text */
    symbol     *sym;
    heap        agenda;
    ilm__strmap rev_merge; /* merged UNUSED piece -> length of its left part */
    bool        plain;     /* the segment being merged touched no UNUSED piece */
    const ilm__tok_deny *deny; /* ids no merge may make (NULL: none) */
} bpe_ctx;

static ilm_status maybe_add_pair(bpe_ctx *c, int32_t left, int32_t right)
{
    if (left < 0 || right < 0 || c->sym[left].frozen || c->sym[right].frozen) return ILM_OK;
    const symbol *l = &c->sym[left], *r = &c->sym[right];
    const char *p = c->text + l->start;
    uint32_t len = l->len + r->len;
    /* Both sides are pieces (nearly always): one integer lookup.  A side
     * that is not a piece can still be part of one: look the text up. */
    int32_t id = l->id >= 0 && r->id >= 0
                     ? ilm__u64map_get(&c->t->spm.merge_of, (uint64_t)l->id << 32 | (uint32_t)r->id)
                     : mergeable_id(c->t, p, len);
    if (id < 0 || ilm__tok_denied(c->deny, id)) return ILM_OK;
    if (c->t->type[id] == ILM__PIECE_UNUSED) {
        c->plain = false;
        ILM__FORWARD(ilm__strmap_put(&c->rev_merge, p, len, (int32_t)l->len));
    }
    return heap_push(&c->agenda, (pair){ c->t->score[id], left, right, len, id });
}

/* The id of a final symbol, like ModelInterface::PieceToId: any piece of
 * the vocabulary, else <unk>. */
static int32_t piece_to_id(const ilm_tokenizer *t, const char *p, size_t n)
{
    int32_t id = ilm__strmap_get(&t->piece_ids, p, n);
    return id >= 0 ? id : t->unk_id;
}

typedef struct emit_state {
    bool prev_unk;
    bool any_unk; /* an unknown symbol since the caller last cleared it */
} emit_state;

static ilm_status emit(const ilm_tokenizer *t, const char *p, size_t n, int32_t id,
                       emit_state *es, ilm__ids *out)
{
    bool unk = id == t->unk_id;
    if (unk && t->spm.byte_fallback) {
        for (size_t i = 0; i < n; i++) ILM__FORWARD(ilm__ids_push(out, t->spm.byte_id[(uint8_t)p[i]]));
    } else if (!(unk && es->prev_unk)) {
        /* A run of unknown symbols becomes one <unk>, as sentencepiece
         * merges them so the decoder can copy the surface. */
        ILM__FORWARD(ilm__ids_push(out, id));
    }
    es->prev_unk = unk;
    es->any_unk |= unk;
    return ILM_OK;
}

/* Undoes merges into UNUSED pieces, which must not appear in the output
 * (bpe_model.cc's resegment). */
static ilm_status resegment(bpe_ctx *c, const char *p, size_t n, emit_state *es, ilm__ids *out)
{
    int32_t id = piece_to_id(c->t, p, n);
    if (c->t->type[id] != ILM__PIECE_UNUSED) return emit(c->t, p, n, id, es, out);
    /* An unused piece never comes out: split it back into the two pieces
     * it was merged from, or, when it is a single character, treat it as
     * unknown (what sentencepiece 0.2 does). */
    int32_t left = ilm__strmap_get(&c->rev_merge, p, n);
    if (left <= 0 || (size_t)left >= n) return emit(c->t, p, n, c->t->unk_id, es, out);
    ILM__FORWARD(resegment(c, p, (size_t)left, es, out));
    return resegment(c, p + left, n - (size_t)left, es, out);
}

/* One symbol's length at text[i]: a whole user-defined piece (frozen), or
 * one character read off its lead byte like sentencepiece's OneCharLen
 * (the normalized text is valid UTF-8). */
static size_t symbol_len(const ilm_tokenizer *t, const char *text, size_t i, size_t n,
                         const ilm__tok_deny *deny, bool *frozen, int32_t *id)
{
    static const uint8_t len_of_nibble[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    const ilm__spm *s = &t->spm;
    size_t len = user_prefix(s, text + i, n - i, deny, id);
    *frozen = len > 0;
    if (len) return len;
    uint8_t c = (uint8_t)text[i];
    if (c < 0x80) {
        *id = s->bmp_id[c];
        return 1;
    }
    len = len_of_nibble[c >> 4];
    if (len > n - i) len = n - i;
    uint32_t cp;
    if (ilm__utf8_decode(text + i, len, &cp) != len)
        *id = ilm__strmap_get(&t->piece_ids, text + i, len);
    else
        *id = cp < 65536 ? s->bmp_id[cp] : ilm__u64map_get(&s->char_id, cp);
    return len;
}

/* Merges the symbols first..last (a segment no merge can cross) to the
 * end, then emits them. */
static ilm_status merge_segment(bpe_ctx *c, int32_t first, int32_t last, emit_state *es,
                                ilm__ids *out)
{
    c->sym[first].prev = -1;
    c->sym[last].next = -1;
    c->agenda.n = 0;
    ilm_status st = ILM_OK;
    for (int32_t i = first + 1; i <= last && st == ILM_OK; i++) st = maybe_add_pair(c, i - 1, i);
    while (st == ILM_OK && c->agenda.n) {
        pair top = heap_pop(&c->agenda);
        symbol *l = &c->sym[top.left], *r = &c->sym[top.right];
        /* Stale entries: a side was merged away or grew since queued. */
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.len)
            continue;
        l->len += r->len;
        l->id = top.id;
        l->next = r->next;
        if (r->next >= 0) c->sym[r->next].prev = top.left;
        r->len = 0;
        st = maybe_add_pair(c, l->prev, top.left);
        if (st == ILM_OK) st = maybe_add_pair(c, top.left, l->next);
    }
    for (int32_t i = first; i >= 0 && st == ILM_OK; i = c->sym[i].next) {
        const symbol *y = &c->sym[i];
        if (y->id >= 0 && c->t->type[y->id] != ILM__PIECE_UNUSED) {
            st = emit(c->t, c->text + y->start, y->len, y->id, es, out);
        } else {
            c->plain = false;
            st = resegment(c, c->text + y->start, y->len, es, out);
        }
    }
    return st;
}

/* Segments already merged, by their bytes: most words repeat, and a
 * segment's pieces depend on its bytes only when it has no frozen symbol
 * (then every symbol is one character), emits no unknown symbol (a run of
 * those depends on the one before) and touches no UNUSED piece (those go
 * through rev_merge, shared by the whole text).  Only such segments are
 * kept; the output is the same as merging each again.  The keys are copied
 * into blocks that never move (the map points at them), and the whole
 * cache is emptied when it reaches CACHE_ENTRIES. */
#define CACHE_ENTRIES (1u << 16)
#define CACHE_BLOCK   (64u << 10)

struct ilm__tok_cache {
    const ilm_tokenizer *t;     /* the tokenizer the entries are for */
    ilm__strmap          index; /* segment bytes -> entry */
    ilm__ids             ids;   /* the pieces of all entries */
    uint32_t            *off;   /* entry e: pieces ids[off[2e], off[2e+1]) */
    size_t               n, cap;
    char               **blocks; /* key bytes */
    size_t               n_blocks, block_used;
};

static void seg_cache_clear(ilm__tok_cache *k)
{
    ilm__strmap_free(&k->index);
    for (size_t i = 0; i < k->n_blocks; i++) ilm__free(k->blocks[i]);
    ilm__free(k->blocks);
    ilm__free(k->ids.v);
    ilm__free(k->off);
    const ilm_tokenizer *t = k->t;
    memset(k, 0, sizeof *k);
    k->t = t;
}

ilm__tok_cache *ilm__tok_cache_create(void) { return ilm__calloc(1, sizeof(ilm__tok_cache)); }

void ilm__tok_cache_free(ilm__tok_cache *k)
{
    if (!k) return;
    seg_cache_clear(k);
    ilm__free(k);
}

/* A stable copy of a key, or NULL (out of memory). */
static const char *seg_cache_key(ilm__tok_cache *k, const char *p, size_t len)
{
    if (len > CACHE_BLOCK) return NULL;
    if (!k->n_blocks || k->block_used + len > CACHE_BLOCK) {
        char **b = ilm__realloc(k->blocks, (k->n_blocks + 1) * sizeof *b);
        if (!b) return NULL;
        k->blocks = b;
        if (!(b[k->n_blocks] = ilm__malloc(CACHE_BLOCK))) return NULL;
        k->n_blocks++;
        k->block_used = 0;
    }
    char *dst = k->blocks[k->n_blocks - 1] + k->block_used;
    memcpy(dst, p, len);
    k->block_used += len;
    return dst;
}

/* Merges and emits first..last, through the cache. */
static ilm_status merge_cached(bpe_ctx *c, ilm__tok_cache *k, int32_t first, int32_t last,
                               emit_state *es, ilm__ids *out)
{
    const char *p = c->text + c->sym[first].start;
    size_t len = c->sym[last].start + c->sym[last].len - c->sym[first].start;
    bool frozen = first == last && c->sym[first].frozen;
    int32_t e = frozen ? -1 : ilm__strmap_get(&k->index, p, len);
    if (e >= 0) {
        for (uint32_t i = k->off[2 * e]; i < k->off[2 * e + 1]; i++) ILM__FORWARD(ilm__ids_push(out, k->ids.v[i]));
        es->prev_unk = false;
        return ILM_OK;
    }
    size_t at = out->n;
    c->plain = !frozen;
    es->any_unk = false;
    ILM__FORWARD(merge_segment(c, first, last, es, out));
    if (!c->plain || es->any_unk || len > CACHE_BLOCK) return ILM_OK;
    if (k->n == CACHE_ENTRIES || out->n - at > UINT32_MAX - k->ids.n) seg_cache_clear(k);
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 256;
        uint32_t *o = ilm__realloc(k->off, 2 * cap * sizeof *o);
        ILM__RETURN_IF(!o, ILM_ERR_NOMEM, "tokenizer: out of memory");
        k->off = o;
        k->cap = cap;
    }
    k->off[2 * k->n] = (uint32_t)k->ids.n;
    for (size_t i = at; i < out->n; i++) ILM__FORWARD(ilm__ids_push(&k->ids, out->v[i]));
    k->off[2 * k->n + 1] = (uint32_t)k->ids.n;
    const char *key = seg_cache_key(k, p, len);
    ILM__RETURN_IF(!key, ILM_ERR_NOMEM, "tokenizer: out of memory");
    ILM__FORWARD(ilm__strmap_put(&k->index, key, len, (int32_t)k->n));
    k->n++;
    return ILM_OK;
}

/* BPE over the normalized text.  The result equals merging the whole text
 * at once, but the text is cut into segments that no merge can cross, so
 * the agenda stays small: on both sides of a frozen symbol, and between a
 * "▁" and a neighbouring character that no mergeable piece has next to a
 * "▁" on that side (pieces mostly start with "▁", so this cuts at nearly
 * every word). */
static ilm_status bpe(const ilm_tokenizer *t, const char *text, size_t n, ilm__tok_cache *cache,
                      const ilm__tok_deny *deny, ilm__ids *out)
{
    if (n == 0) return ILM_OK;
    ILM__RETURN_IF(n > INT32_MAX, ILM_ERR_RANGE, "tokenizer: text of %zu bytes is too long", n);
    const ilm__spm *s = &t->spm;
    bpe_ctx c = { .t = t, .text = text, .deny = deny };
    c.sym = ilm__malloc(n * sizeof *c.sym);
    ILM__RETURN_IF(!c.sym, ILM_ERR_NOMEM, "tokenizer: out of memory for %zu symbols", n);
    int32_t count = 0;
    for (size_t i = 0; i < n;) {
        bool frozen;
        int32_t id = -1;
        size_t len = symbol_len(t, text, i, n, deny, &frozen, &id);
        c.sym[count] = (symbol){ count - 1, count + 1, (uint32_t)i, (uint32_t)len, id, frozen };
        count++;
        i += len;
    }
    emit_state es = { false, false };
    if (cache && cache->t != t) {
        seg_cache_clear(cache);
        cache->t = t;
    }
    ilm_status st = ILM_OK;
    int32_t first = 0;
    for (int32_t i = 1; i <= count && st == ILM_OK; i++) {
        bool cut = i == count || c.sym[i].frozen || c.sym[i - 1].frozen;
        if (!cut) {
            /* Symbols are single characters here: a cut between a "▁" and
             * another character is safe when no piece holds that pair. */
            uint8_t prev = (uint8_t)text[c.sym[i - 1].start], cur = (uint8_t)text[c.sym[i].start];
            bool here = is_space_at(text, c.sym[i].start, n);
            bool before = is_space_at(text, c.sym[i - 1].start, n);
            cut = (here && !before && !has_char(s->pre_space, s->pre_space_other, prev)) ||
                  (before && !here && !has_char(s->post_space, s->post_space_other, cur));
        }
        if (cut) {
            st = cache ? merge_cached(&c, cache, first, i - 1, &es, out)
                       : merge_segment(&c, first, i - 1, &es, out);
            first = i;
        }
    }
    ilm__free(c.sym);
    ilm__free(c.agenda.v);
    ilm__strmap_free(&c.rev_merge);
    return st;
}

ilm_status ilm__spm_encode_part(const ilm_tokenizer *t, const char *text, size_t len,
                                bool at_text_start, ilm__tok_cache *cache,
                                const ilm__tok_deny *deny, ilm__ids *out)
{
    /* The segment cache is keyed by bytes alone: a guarded text bypasses it. */
    if (deny && deny->n) cache = NULL;
    ilm__buf norm = { 0 };
    /* Room for the text with about one space in six becoming "▁" (three
     * bytes), so prose normalizes without regrowing the buffer. */
    ilm_status st = ilm__buf_reserve(&norm, len + len / 3 + 4);
    if (st == ILM_OK)
        st = normalize(&t->spm, text, len, at_text_start && t->spm.add_dummy_prefix, deny, &norm);
    if (st == ILM_OK) st = bpe(t, norm.p, norm.n, cache, deny, out);
    ilm__buf_free(&norm);
    return st;
}

ilm_status ilm__spm_encode(const ilm_tokenizer *t, const char *text, size_t len, ilm__ids *out)
{
    return ilm__spm_encode_part(t, text, len, true, NULL, NULL, out);
}

/* ---- decoding ---------------------------------------------------------- */

ilm_status ilm__spm_piece_bytes(const ilm_tokenizer *t, int32_t id, bool bos_ws,
                                bool *consumed_bos_ws, ilm__buf *out)
{
    const char *p = t->piece[id];
    size_t n = t->piece_len[id];
    *consumed_bos_ws = false;
    switch (t->type[id]) {
    case ILM__PIECE_CONTROL:
        return ILM_OK; /* invisible */
    case ILM__PIECE_UNKNOWN: {
        const char *u = t->spm.unk_surface ? t->spm.unk_surface : DEFAULT_UNK_SURFACE;
        return ilm__buf_append(out, u, strlen(u));
    }
    case ILM__PIECE_BYTE:
        return ilm__buf_putc(out, (char)ilm__spm_byte_piece(p, n));
    default:
        break;
    }
    /* At the start of the text the space the normalizer added is dropped.
     * With remove_extra_whitespaces every leading one goes (the state stays
     * "at the start"); otherwise only the first (the dummy prefix). */
    if (bos_ws && (t->spm.add_dummy_prefix || t->spm.remove_extra_whitespaces) &&
        n >= SPACE_SYMBOL_LEN && memcmp(p, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
        p += SPACE_SYMBOL_LEN;
        n -= SPACE_SYMBOL_LEN;
        *consumed_bos_ws = !t->spm.remove_extra_whitespaces;
    }
    for (size_t i = 0; i < n;) {
        if (n - i >= SPACE_SYMBOL_LEN && memcmp(p + i, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0) {
            ILM__FORWARD(ilm__buf_putc(out, ' '));
            i += SPACE_SYMBOL_LEN;
        } else {
            size_t j = i + 1;
            while (j < n && !(n - j >= SPACE_SYMBOL_LEN &&
                              memcmp(p + j, SPACE_SYMBOL, SPACE_SYMBOL_LEN) == 0))
                j++;
            ILM__FORWARD(ilm__buf_append(out, p + i, j - i));
            i = j;
        }
    }
    return ILM_OK;
}
