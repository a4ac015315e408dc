/* The BPE merge loop of the SentencePiece-BPE trainer.
 *
 * Follows sentencepiece's BPE trainer (bpe_model_trainer.cc) in what it
 * learns: start from the required characters, repeatedly merge the most
 * frequent adjacent pair of symbols inside a word, and only form pieces
 * that sentencepiece would consider valid (IsValidSentencePiece: at most 16
 * characters, "▁" only at the start, one Unicode script per piece with kana
 * counted as Han, digits alone when split_digits is set).  It differs in how
 * it gets there, for speed and determinism:
 *
 *  - every distinct word is stored once with its count;
 *  - each pair keeps its total count and the list of words that contain it,
 *    so a merge touches only those words and updates the counts of the
 *    neighbouring pairs incrementally (+/- the word's count);
 *  - the best pair comes from a binary max-heap with lazy invalidation:
 *    an entry whose count is stale is dropped or re-pushed when it reaches
 *    the top; ties go to the pair of smaller symbol ids, so the result does
 *    not depend on memory addresses;
 *  - a pair whose concatenation is already a piece ("aa"+"a" = "a"+"aa") is
 *    merged into that piece without adding a new one, which is what the
 *    encoder will do with such text anyway.
 */
#include "tokenizer/train.h"

#include <stdlib.h>
#include <string.h>

/* ---- Unicode scripts --------------------------------------------------- */

/* A coarse Unicode script table: enough to keep letters of different
 * scripts, punctuation and symbols (script Common) apart as sentencepiece
 * does with its full table.  Letters of scripts not listed get a script per
 * 128-code-point block, which keeps unrelated alphabets apart too. */
enum {
    SCRIPT_ANY = -1, /* whitespace-only pieces: joins anything */
    SCRIPT_COMMON = 0, SCRIPT_INHERITED, SCRIPT_LATIN, SCRIPT_GREEK, SCRIPT_CYRILLIC,
    SCRIPT_ARMENIAN, SCRIPT_HEBREW, SCRIPT_ARABIC, SCRIPT_DEVANAGARI, SCRIPT_THAI,
    SCRIPT_GEORGIAN, SCRIPT_HANGUL, SCRIPT_HAN, SCRIPT_BOPOMOFO,
    SCRIPT_BLOCK_BASE = 100
};

static const struct { uint32_t lo, hi; int8_t script; } script_ranges[] = {
    { 0x0000, 0x0040, SCRIPT_COMMON },    { 0x0041, 0x005A, SCRIPT_LATIN },
    { 0x005B, 0x0060, SCRIPT_COMMON },    { 0x0061, 0x007A, SCRIPT_LATIN },
    { 0x007B, 0x00A9, SCRIPT_COMMON },    { 0x00AA, 0x00AA, SCRIPT_LATIN },
    { 0x00AB, 0x00B9, SCRIPT_COMMON },    { 0x00BA, 0x00BA, SCRIPT_LATIN },
    { 0x00BB, 0x00BF, SCRIPT_COMMON },    { 0x00C0, 0x00D6, SCRIPT_LATIN },
    { 0x00D7, 0x00D7, SCRIPT_COMMON },    { 0x00D8, 0x00F6, SCRIPT_LATIN },
    { 0x00F7, 0x00F7, SCRIPT_COMMON },    { 0x00F8, 0x02B8, SCRIPT_LATIN },
    { 0x02B9, 0x02FF, SCRIPT_COMMON },    { 0x0300, 0x036F, SCRIPT_INHERITED },
    { 0x0370, 0x03FF, SCRIPT_GREEK },     { 0x0400, 0x052F, SCRIPT_CYRILLIC },
    { 0x0530, 0x058F, SCRIPT_ARMENIAN },  { 0x0590, 0x05FF, SCRIPT_HEBREW },
    { 0x0600, 0x06FF, SCRIPT_ARABIC },    { 0x0750, 0x077F, SCRIPT_ARABIC },
    { 0x0900, 0x097F, SCRIPT_DEVANAGARI },{ 0x0E00, 0x0E7F, SCRIPT_THAI },
    { 0x10A0, 0x10FF, SCRIPT_GEORGIAN },  { 0x1100, 0x11FF, SCRIPT_HANGUL },
    { 0x1AB0, 0x1AFF, SCRIPT_INHERITED }, { 0x1D00, 0x1D7F, SCRIPT_LATIN },
    { 0x1DC0, 0x1DFF, SCRIPT_INHERITED }, { 0x1E00, 0x1EFF, SCRIPT_LATIN },
    { 0x1F00, 0x1FFF, SCRIPT_GREEK },     { 0x2000, 0x200B, SCRIPT_COMMON },
    { 0x200C, 0x200D, SCRIPT_INHERITED }, { 0x200E, 0x2070, SCRIPT_COMMON },
    { 0x2071, 0x2071, SCRIPT_LATIN },     { 0x2072, 0x20CF, SCRIPT_COMMON },
    { 0x20D0, 0x20FF, SCRIPT_INHERITED }, { 0x2100, 0x2BFF, SCRIPT_COMMON },
    { 0x2C60, 0x2C7F, SCRIPT_LATIN },     { 0x2DE0, 0x2DFF, SCRIPT_CYRILLIC },
    { 0x2E00, 0x2E7F, SCRIPT_COMMON },    { 0x2E80, 0x2FDF, SCRIPT_HAN },
    { 0x2FF0, 0x3004, SCRIPT_COMMON },    { 0x3005, 0x3005, SCRIPT_HAN },
    { 0x3006, 0x3006, SCRIPT_COMMON },    { 0x3007, 0x3007, SCRIPT_HAN },
    { 0x3008, 0x3020, SCRIPT_COMMON },    { 0x3021, 0x3029, SCRIPT_HAN },
    { 0x302A, 0x302D, SCRIPT_INHERITED }, { 0x302E, 0x303F, SCRIPT_COMMON },
    /* Hiragana and Katakana count as Han, as in sentencepiece. */
    { 0x3040, 0x30FF, SCRIPT_HAN },       { 0x3100, 0x312F, SCRIPT_BOPOMOFO },
    { 0x3130, 0x318F, SCRIPT_HANGUL },    { 0x3190, 0x319F, SCRIPT_COMMON },
    { 0x31A0, 0x31BF, SCRIPT_BOPOMOFO },  { 0x31C0, 0x31EF, SCRIPT_COMMON },
    { 0x31F0, 0x31FF, SCRIPT_HAN },       { 0x3200, 0x33FF, SCRIPT_COMMON },
    { 0x3400, 0x4DBF, SCRIPT_HAN },       { 0x4DC0, 0x4DFF, SCRIPT_COMMON },
    { 0x4E00, 0x9FFF, SCRIPT_HAN },       { 0xA640, 0xA69F, SCRIPT_CYRILLIC },
    { 0xA720, 0xA7FF, SCRIPT_LATIN },     { 0xAC00, 0xD7FF, SCRIPT_HANGUL },
    { 0xF900, 0xFAFF, SCRIPT_HAN },       { 0xFB00, 0xFB06, SCRIPT_LATIN },
    { 0xFB1D, 0xFB4F, SCRIPT_HEBREW },    { 0xFB50, 0xFDFF, SCRIPT_ARABIC },
    { 0xFE00, 0xFE0F, SCRIPT_INHERITED }, { 0xFE10, 0xFE1F, SCRIPT_COMMON },
    { 0xFE20, 0xFE2F, SCRIPT_INHERITED }, { 0xFE30, 0xFE6F, SCRIPT_COMMON },
    { 0xFE70, 0xFEFE, SCRIPT_ARABIC },    { 0xFEFF, 0xFF20, SCRIPT_COMMON },
    { 0xFF21, 0xFF3A, SCRIPT_LATIN },     { 0xFF3B, 0xFF40, SCRIPT_COMMON },
    { 0xFF41, 0xFF5A, SCRIPT_LATIN },     { 0xFF5B, 0xFF65, SCRIPT_COMMON },
    { 0xFF66, 0xFF9F, SCRIPT_HAN },       { 0xFFA0, 0xFFDC, SCRIPT_HANGUL },
    { 0xFFE0, 0xFFFF, SCRIPT_COMMON },    { 0x1F000, 0x1FAFF, SCRIPT_COMMON },
    { 0x20000, 0x3FFFF, SCRIPT_HAN },     { 0xE0100, 0xE01EF, SCRIPT_INHERITED },
};

static int32_t script_of(uint32_t cp)
{
    size_t lo = 0, hi = sizeof script_ranges / sizeof script_ranges[0];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < script_ranges[mid].lo) hi = mid;
        else if (cp > script_ranges[mid].hi) lo = mid + 1;
        else return script_ranges[mid].script;
    }
    return SCRIPT_BLOCK_BASE + (int32_t)(cp >> 7);
}

/* sentencepiece's is_unicode_decimal_number: ASCII and fullwidth digits. */
static bool is_digit_cp(uint32_t cp)
{
    return (cp >= 0x30 && cp <= 0x39) || (cp >= 0xFF10 && cp <= 0xFF19);
}

/* ---- the engine's state ------------------------------------------------ */

typedef struct sym {
    char    *s;        /* owned, NUL-terminated */
    uint32_t len;      /* bytes */
    uint32_t n_chars;
    int32_t  script;   /* SCRIPT_ANY when it has no letter/symbol of its own */
    bool     has_ws;   /* contains "▁" (only ever at the start) */
    bool     digit;    /* a single decimal digit */
} sym;

typedef struct pair {
    int32_t  a, b;
    int64_t  count;
    int32_t *words;    /* words that contained the pair when it grew (may repeat or be stale) */
    uint32_t n_words, cap_words;
    bool     dirty;    /* grew during the current merge: push a fresh heap entry */
    bool     banned;   /* its concatenation is a reserved piece */
} pair;

typedef struct heap_ent {
    int64_t count;
    int32_t pair;
} heap_ent;

typedef struct engine {
    bool split_digits;
    sym *syms;
    int32_t n_syms, cap_syms;
    ilm__strmap sym_ids; /* piece text -> symbol id; reserved pieces -> RESERVED */

    int32_t  *wsym;      /* symbols of all words, word by word */
    size_t    n_wsym, cap_wsym;
    size_t   *wstart;
    uint32_t *wlen;
    int64_t  *wfreq;
    int32_t  *wstamp;    /* last merge that processed the word */
    int32_t   n_words, cap_words;

    pair    *pairs;
    int32_t  n_pairs, cap_pairs;
    ilm__u64map pair_ids;

    heap_ent *heap;
    size_t    n_heap, cap_heap;
    int32_t  *dirty;
    size_t    n_dirty, cap_dirty;
} engine;

#define RESERVED 0x7fffffff

/* Grows *p (elements of `elem` bytes, capacity *cap) to hold `need`. */
static ilm_status grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    void **p = pp;
    if (need <= *cap) return ILM_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    ILM__RETURN_IF(c > SIZE_MAX / elem, ILM_ERR_NOMEM, "tokenizer train: size overflow");
    void *np = ilm__realloc(*p, c * elem);
    ILM__RETURN_IF(!np, ILM_ERR_NOMEM, "tokenizer train: out of memory (%zu bytes)", c * elem);
    *p = np;
    *cap = c;
    return ILM_OK;
}

/* The same for int32_t capacities. */
static ilm_status grow32(void *pp, int32_t *cap, size_t need, size_t elem)
{
    ILM__RETURN_IF(need > INT32_MAX, ILM_ERR_RANGE, "tokenizer train: more than 2^31 entries");
    size_t c = (size_t)*cap;
    ILM__FORWARD(grow(pp, &c, need, elem));
    *cap = c > INT32_MAX ? INT32_MAX : (int32_t)c;
    return ILM_OK;
}

static ilm_status add_sym(engine *e, char *s, uint32_t len, uint32_t n_chars, int32_t script,
                          bool has_ws, bool digit, int32_t *id)
{
    ilm_status st = grow32(&e->syms, &e->cap_syms, (size_t)e->n_syms + 1, sizeof *e->syms);
    if (st == ILM_OK) st = ilm__strmap_put(&e->sym_ids, s, len, e->n_syms);
    if (st != ILM_OK) {
        ilm__free(s);
        return st;
    }
    e->syms[e->n_syms] = (sym){ s, len, n_chars, script, has_ws, digit };
    *id = e->n_syms++;
    return ILM_OK;
}

/* Whether a+b is a piece sentencepiece's trainer could produce. */
static bool valid_pair(const engine *e, int32_t a, int32_t b)
{
    const sym *x = &e->syms[a], *y = &e->syms[b];
    if (y->has_ws) return false; /* "▁" only as a prefix */
    if (x->n_chars + y->n_chars > ILM__BPE_MAX_PIECE_CHARS) return false;
    if (e->split_digits && (x->digit || y->digit)) return false;
    return x->script == SCRIPT_ANY || y->script == SCRIPT_ANY || x->script == y->script;
}

/* ---- the heap ---------------------------------------------------------- */

static bool heap_better(const engine *e, heap_ent x, heap_ent y)
{
    if (x.count != y.count) return x.count > y.count;
    const pair *p = &e->pairs[x.pair], *q = &e->pairs[y.pair];
    if (p->a != q->a) return p->a < q->a;
    return p->b < q->b;
}

static ilm_status heap_push(engine *e, int32_t pair_id)
{
    ILM__FORWARD(grow(&e->heap, &e->cap_heap, e->n_heap + 1, sizeof *e->heap));
    heap_ent x = { e->pairs[pair_id].count, pair_id };
    size_t i = e->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_better(e, x, e->heap[parent])) break;
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = x;
    return ILM_OK;
}

static void heap_pop(engine *e)
{
    heap_ent x = e->heap[--e->n_heap];
    size_t n = e->n_heap, i = 0;
    if (n == 0) return;
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        heap_ent cur = x;
        if (l < n && heap_better(e, e->heap[l], cur)) { best = l; cur = e->heap[l]; }
        if (l + 1 < n && heap_better(e, e->heap[l + 1], cur)) best = l + 1;
        if (best == i) break;
        e->heap[i] = e->heap[best];
        i = best;
    }
    e->heap[i] = x;
}

/* ---- pair counts ------------------------------------------------------- */

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* Adds delta occurrences of (a, b), which word w contains (delta > 0) or
 * lost (delta < 0).  Invalid pairs are never tracked. */
static ilm_status pair_change(engine *e, int32_t a, int32_t b, int64_t delta, int32_t w)
{
    int32_t id = ilm__u64map_get(&e->pair_ids, pair_key(a, b));
    if (id < 0) {
        if (delta <= 0 || !valid_pair(e, a, b)) return ILM_OK;
        ILM__FORWARD(grow32(&e->pairs, &e->cap_pairs, (size_t)e->n_pairs + 1, sizeof *e->pairs));
        id = e->n_pairs;
        ILM__FORWARD(ilm__u64map_put(&e->pair_ids, pair_key(a, b), id));
        e->pairs[id] = (pair){ .a = a, .b = b };
        e->n_pairs++;
    }
    pair *p = &e->pairs[id];
    if (p->banned) return ILM_OK;
    p->count += delta;
    if (delta <= 0) return ILM_OK;
    if (!p->n_words || p->words[p->n_words - 1] != w) {
        if (p->n_words == p->cap_words) {
            uint32_t c = p->cap_words ? p->cap_words * 2 : 2;
            ILM__RETURN_IF(c < p->cap_words, ILM_ERR_RANGE, "tokenizer train: pair list overflow");
            int32_t *nw = ilm__realloc(p->words, (size_t)c * sizeof *nw);
            ILM__RETURN_IF(!nw, ILM_ERR_NOMEM, "tokenizer train: out of memory");
            p->words = nw;
            p->cap_words = c;
        }
        p->words[p->n_words++] = w;
    }
    if (!p->dirty) {
        ILM__FORWARD(grow(&e->dirty, &e->cap_dirty, e->n_dirty + 1, sizeof *e->dirty));
        e->dirty[e->n_dirty++] = id;
        p->dirty = true;
    }
    return ILM_OK;
}

static ilm_status push_dirty(engine *e)
{
    for (size_t i = 0; i < e->n_dirty; i++) {
        pair *p = &e->pairs[e->dirty[i]];
        p->dirty = false;
        if (p->count > 0) ILM__FORWARD(heap_push(e, e->dirty[i]));
    }
    e->n_dirty = 0;
    return ILM_OK;
}

/* ---- setting up -------------------------------------------------------- */

static ilm_status add_char_syms(engine *e, const uint32_t *chars, size_t n_chars,
                                ilm__u64map *char_ids)
{
    for (size_t i = 0; i < n_chars; i++) {
        char buf[4];
        size_t n = ilm__utf8_encode(chars[i], buf);
        char *s = ilm__strndup(buf, n);
        ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "tokenizer train: out of memory");
        bool ws = chars[i] == ILM__WS_CP;
        int32_t script = ws ? SCRIPT_ANY : script_of(chars[i]);
        /* A combining mark takes the script of what precedes it, so on its
         * own it joins anything. */
        if (script == SCRIPT_INHERITED) script = SCRIPT_ANY;
        int32_t id;
        ILM__FORWARD(add_sym(e, s, (uint32_t)n, 1, script, ws, is_digit_cp(chars[i]), &id));
        ILM__FORWARD(ilm__u64map_put(char_ids, chars[i], id));
    }
    return ILM_OK;
}

/* Appends the run syms[0..n) as a word when it can hold a pair. */
static ilm_status add_word(engine *e, const int32_t *syms, size_t n, int64_t freq)
{
    if (n < 2) return ILM_OK;
    ILM__RETURN_IF(n > UINT32_MAX, ILM_ERR_RANGE, "tokenizer train: word too long");
    ILM__FORWARD(grow(&e->wsym, &e->cap_wsym, e->n_wsym + n, sizeof *e->wsym));
    size_t need = (size_t)e->n_words + 1;
    int32_t cap = e->cap_words;
    ILM__FORWARD(grow32(&e->wstart, &cap, need, sizeof *e->wstart));
    cap = e->cap_words;
    ILM__FORWARD(grow32(&e->wlen, &cap, need, sizeof *e->wlen));
    cap = e->cap_words;
    ILM__FORWARD(grow32(&e->wfreq, &cap, need, sizeof *e->wfreq));
    cap = e->cap_words;
    ILM__FORWARD(grow32(&e->wstamp, &cap, need, sizeof *e->wstamp));
    e->cap_words = cap;
    int32_t w = e->n_words++;
    memcpy(e->wsym + e->n_wsym, syms, n * sizeof *syms);
    e->wstart[w] = e->n_wsym;
    e->wlen[w] = (uint32_t)n;
    e->wfreq[w] = freq;
    e->wstamp[w] = -1;
    e->n_wsym += n;
    for (size_t i = 0; i + 1 < n; i++) ILM__FORWARD(pair_change(e, syms[i], syms[i + 1], freq, w));
    return ILM_OK;
}

/* Turns every counted word into runs of required-character symbols; other
 * characters cut the word. */
static ilm_status load_words(engine *e, const ilm__train_words *words,
                             const ilm__u64map *char_ids, const ilm__train_progress *prog)
{
    int32_t *run = NULL;
    size_t cap = 0;
    ilm_status st = ILM_OK;
    for (size_t w = 0; w < words->n && st == ILM_OK; w++) {
        const char *s = words->text.p + words->off[w];
        size_t len = words->len[w], n = 0;
        st = grow(&run, &cap, len, sizeof *run);
        for (size_t i = 0; i < len && st == ILM_OK;) {
            uint32_t cp;
            size_t k = ilm__utf8_decode(s + i, len - i, &cp);
            if (k == 0) { k = 1; cp = 0xFFFD; } /* not produced by train.c */
            i += k;
            int32_t id = ilm__u64map_get(char_ids, cp);
            if (id >= 0) {
                run[n++] = id;
            } else {
                st = add_word(e, run, n, words->freq[w]);
                n = 0;
            }
        }
        if (st == ILM_OK) st = add_word(e, run, n, words->freq[w]);
        if (st == ILM_OK && (w & 0xffff) == 0) st = ilm__train_report(prog, "merge", 0, 0);
    }
    ilm__free(run);
    return st;
}

/* ---- merging ----------------------------------------------------------- */

/* Replaces every (a, b) in word w by c, left to right, and moves the counts
 * of the neighbouring pairs: x a b y loses (x,a) and (b,y) and gains (x,c)
 * and (c,y).  The word is edited in place, so a neighbour that was itself
 * just merged is already c. */
static ilm_status merge_word(engine *e, int32_t w, int32_t a, int32_t b, int32_t c)
{
    int32_t *s = e->wsym + e->wstart[w];
    uint32_t n = e->wlen[w], j = 0;
    int64_t f = e->wfreq[w];
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (j > 0) {
                ILM__FORWARD(pair_change(e, s[j - 1], a, -f, w));
                ILM__FORWARD(pair_change(e, s[j - 1], c, f, w));
            }
            if (i + 2 < n) {
                ILM__FORWARD(pair_change(e, b, s[i + 2], -f, w));
                ILM__FORWARD(pair_change(e, c, s[i + 2], f, w));
            }
            s[j++] = c;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    e->wlen[w] = j;
    return ILM_OK;
}

/* The symbol for a+b: an existing one with that text, a new one, or
 * RESERVED. */
static ilm_status concat_sym(engine *e, int32_t a, int32_t b, int32_t *c, bool *is_new)
{
    const sym *x = &e->syms[a], *y = &e->syms[b];
    size_t len = (size_t)x->len + y->len;
    char *s = ilm__malloc(len + 1);
    ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    memcpy(s, x->s, x->len);
    memcpy(s + x->len, y->s, y->len);
    s[len] = '\0';
    *is_new = false;
    *c = ilm__strmap_get(&e->sym_ids, s, len);
    if (*c != -1) {
        ilm__free(s);
        return ILM_OK;
    }
    *is_new = true;
    int32_t script = x->script != SCRIPT_ANY ? x->script : y->script;
    return add_sym(e, s, (uint32_t)len, x->n_chars + y->n_chars, script, x->has_ws, false, c);
}

/* Pops the best pair with a current count; -1 when none is left. */
static int32_t pop_best(engine *e, ilm_status *st)
{
    *st = ILM_OK;
    while (e->n_heap > 0) {
        heap_ent top = e->heap[0];
        pair *p = &e->pairs[top.pair];
        heap_pop(e);
        if (p->count == top.count && p->count > 0 && !p->banned) return top.pair;
        /* A count that shrank since the push goes back in at its new value;
         * one that grew already has a fresh entry. */
        if (p->count < top.count && p->count > 0 && !p->banned) {
            *st = heap_push(e, top.pair);
            if (*st != ILM_OK) return -1;
        }
    }
    return -1;
}

static ilm_status run_merges(engine *e, int32_t n_merges, int32_t *order, int32_t *n_order,
                             const ilm__train_progress *prog)
{
    ILM__FORWARD(push_dirty(e));
    int32_t step = 0;
    *n_order = 0;
    while (*n_order < n_merges) {
        ilm_status st;
        int32_t best = pop_best(e, &st);
        ILM__FORWARD(st);
        if (best < 0) break;
        int32_t a = e->pairs[best].a, b = e->pairs[best].b, c;
        bool is_new;
        ILM__FORWARD(concat_sym(e, a, b, &c, &is_new));
        pair *p = &e->pairs[best];
        if (c == RESERVED) {
            p->banned = true;
            p->count = 0;
            continue;
        }
        if (is_new) order[(*n_order)++] = c;
        /* Take the word list out of the pair: merging may grow e->pairs
         * (moving p) and the pair's own count changes are moot, as it ends
         * at zero; banning it meanwhile makes pair_change skip them. */
        int32_t *ws = p->words;
        uint32_t nw = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        p->banned = true;
        ilm_status mst = ILM_OK;
        for (uint32_t i = 0; i < nw && mst == ILM_OK; i++) {
            int32_t w = ws[i];
            if (e->wstamp[w] == step) continue;
            e->wstamp[w] = step;
            mst = merge_word(e, w, a, b, c);
        }
        ilm__free(ws);
        ILM__FORWARD(mst);
        p = &e->pairs[best];
        p->count = 0;
        p->banned = false;
        ILM__FORWARD(push_dirty(e));
        step++;
        if ((*n_order & 63) == 0 && is_new)
            ILM__FORWARD(ilm__train_report(prog, "merge", (uint64_t)*n_order, (uint64_t)n_merges));
    }
    return ILM_OK;
}

static void engine_free(engine *e)
{
    for (int32_t i = 0; i < e->n_syms; i++) ilm__free(e->syms[i].s);
    ilm__free(e->syms);
    ilm__strmap_free(&e->sym_ids);
    ilm__free(e->wsym);
    ilm__free(e->wstart);
    ilm__free(e->wlen);
    ilm__free(e->wfreq);
    ilm__free(e->wstamp);
    for (int32_t i = 0; i < e->n_pairs; i++) ilm__free(e->pairs[i].words);
    ilm__free(e->pairs);
    ilm__u64map_free(&e->pair_ids);
    ilm__free(e->heap);
    ilm__free(e->dirty);
}

void ilm__bpe_result_free(ilm__bpe_result *r)
{
    if (!r) return;
    for (int32_t i = 0; i < r->n; i++) ilm__free(r->piece[i]);
    ilm__free(r->piece);
    ilm__free(r->len);
    *r = (ilm__bpe_result){ 0 };
}

/* Moves the learned pieces (merge order, then the characters) out of e. */
static ilm_status take_result(engine *e, const int32_t *order, int32_t n_order,
                              int32_t n_chars, ilm__bpe_result *out)
{
    size_t n = (size_t)n_order + (size_t)n_chars;
    out->piece = ilm__calloc(n ? n : 1, sizeof *out->piece);
    out->len = ilm__calloc(n ? n : 1, sizeof *out->len);
    ILM__RETURN_IF(!out->piece || !out->len, ILM_ERR_NOMEM, "tokenizer train: out of memory");
    for (size_t i = 0; i < n; i++) {
        int32_t id = i < (size_t)n_order ? order[i] : (int32_t)(i - (size_t)n_order);
        out->piece[i] = e->syms[id].s;
        out->len[i] = e->syms[id].len;
        e->syms[id].s = NULL; /* now owned by out */
        out->n++;
    }
    out->n_merged = n_order;
    return ILM_OK;
}

ilm_status ilm__bpe_learn(const ilm__train_words *words, const uint32_t *chars,
                          size_t n_chars, int32_t n_merges, bool split_digits,
                          const char *const *reserved, size_t n_reserved,
                          const ilm__train_progress *progress, ilm__bpe_result *out)
{
    *out = (ilm__bpe_result){ 0 };
    ILM__RETURN_IF(n_chars > INT32_MAX / 2 || n_merges < 0, ILM_ERR_RANGE,
                   "tokenizer train: too many characters");
    engine e = { .split_digits = split_digits };
    ilm__u64map char_ids = { 0 };
    int32_t *order = ilm__malloc(((size_t)n_merges + 1) * sizeof *order);
    int32_t n_order = 0;
    ilm_status st = order ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "tokenizer train: out of memory");
    for (size_t i = 0; i < n_reserved && st == ILM_OK; i++)
        st = ilm__strmap_put(&e.sym_ids, reserved[i], strlen(reserved[i]), RESERVED);
    if (st == ILM_OK) st = add_char_syms(&e, chars, n_chars, &char_ids);
    if (st == ILM_OK) st = load_words(&e, words, &char_ids, progress);
    if (st == ILM_OK) st = run_merges(&e, n_merges, order, &n_order, progress);
    if (st == ILM_OK) st = take_result(&e, order, n_order, (int32_t)n_chars, out);
    if (st != ILM_OK) ilm__bpe_result_free(out);
    ilm__free(order);
    ilm__u64map_free(&char_ids);
    engine_free(&e);
    return st;
}
