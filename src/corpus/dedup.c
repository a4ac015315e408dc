/*
 * src/corpus/dedup.c -- exact and near-duplicate detection for the corpus
 * pipeline.
 *
 * Exact duplicates: MurmurHash3_x64_128 (Appleby, public domain) of the text
 * after a light normalization -- ASCII letters lowercased, every run of ASCII
 * whitespace made one space, leading and trailing whitespace dropped -- kept
 * in an open-addressing set of 128-bit values.  Documents that differ only in
 * case or spacing are the same document.
 *
 * Near duplicates: MinHash (Broder, "On the resemblance and containment of
 * documents", 1997) with LSH banding (Leskovec, Rajaraman, Ullman, "Mining of
 * Massive Datasets", ch. 3.4).  A document is a set of shingles:
 *   - CJK-dominant text (more than half of its non-whitespace code points are
 *     Han, kana or Hangul) has no spaces between words, so its shingles are
 *     `char_ngram` consecutive non-whitespace code points (default 5);
 *   - other text uses `ngram` consecutive words (default 5), a word being a
 *     maximal run of non-whitespace bytes with ASCII letters lowercased (what
 *     Python's bytes.lower().split() gives).
 * A text with fewer units than n is one shingle made of all of them.  Each
 * shingle is hashed once to 64 bits and reduced to x < p = 2^61 - 1; slot i of
 * the signature is min over shingles of h_i(x) = (a_i x + b_i) mod p, a
 * universal family (Carter and Wegman) whose a_i in [1, p) and b_i in [0, p)
 * come from Philox(seed), so a signature is the same on every platform.
 * The signature is cut into `bands` bands of `rows` slots; documents sharing a
 * band's bucket are candidates (probability 1 - (1 - J^r)^b, threshold about
 * (1/b)^(1/r)), and a candidate is a duplicate only when the fraction of equal
 * slots, an unbiased estimate of the Jaccard similarity, reaches `threshold`.
 * The first document of a group is kept and indexed; later ones are dropped
 * and not indexed.
 */
#include "corpus/internal.h"

#include <stdio.h>
#include <string.h>

#define P61 ((UINT64_C(1) << 61) - 1)

/* ---- options --------------------------------------------------------------- */

void ilm__dedup_opts_default(ilm__dedup_opts *o)
{
    o->exact = true;
    o->near = true;
    o->num_perm = 128;
    o->bands = 16;
    o->rows = 8;
    o->ngram = 5;
    o->char_ngram = 5;
    o->threshold = 0.8;
    o->seed = 1;
    o->max_memory = (int64_t)1 << 30;
}

ilm_status ilm__dedup_opts_parse(const cJSON *obj, const char *path,
                                 ilm__dedup_opts *o)
{
    int64_t num_perm = o->num_perm, bands = o->bands, rows = o->rows;
    int64_t ngram = o->ngram, char_ngram = o->char_ngram, seed = (int64_t)o->seed;
    int64_t max_memory = o->max_memory;
    const ilm__jfield f[] = {
        {"exact", ILM__J_BOOL, &o->exact, false, 0, 0},
        {"near", ILM__J_BOOL, &o->near, false, 0, 0},
        {"num_perm", ILM__J_INT, &num_perm, false, 1, ILM__DEDUP_MAX_PERM},
        {"bands", ILM__J_INT, &bands, false, 1, ILM__DEDUP_MAX_PERM},
        {"rows", ILM__J_INT, &rows, false, 1, ILM__DEDUP_MAX_PERM},
        {"ngram", ILM__J_INT, &ngram, false, 1, ILM__DEDUP_MAX_NGRAM},
        {"char_ngram", ILM__J_INT, &char_ngram, false, 1, ILM__DEDUP_MAX_NGRAM},
        {"threshold", ILM__J_NUMBER, &o->threshold, false, 0, 1},
        {"seed", ILM__J_INT, &seed, false, 0, 9007199254740992.0},
        {"max_memory", ILM__J_INT, &max_memory, false, 0, 9007199254740992.0},
    };
    ILM__FORWARD(ilm__json_fields(obj, path, f, sizeof f / sizeof f[0]));
    o->num_perm = (int)num_perm;
    o->bands = (int)bands;
    o->rows = (int)rows;
    o->ngram = (int)ngram;
    o->char_ngram = (int)char_ngram;
    o->seed = (uint64_t)seed;
    o->max_memory = max_memory;
    ILM__RETURN_IF(bands * rows != num_perm, ILM_ERR_CONFIG,
                   "config: '%s%sbands' x '%s%srows' (%d x %d) must equal "
                   "'%s%snum_perm' (%d)", path, *path ? "." : "", path,
                   *path ? "." : "", o->bands, o->rows, path, *path ? "." : "",
                   o->num_perm);
    return ILM_OK;
}

/* ---- hashing ----------------------------------------------------------------- */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* MurmurHash3's 64-bit finalizer: every input bit affects every output bit. */
static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

/* MurmurHash3_x64_128 over a byte stream fed one byte at a time, so the
 * normalized text never needs a buffer of its own. */
typedef struct mm3 {
    uint64_t h1, h2;
    uint8_t  block[16];
    size_t   fill, total;
} mm3;

static const uint64_t MM3_C1 = UINT64_C(0x87c37b91114253d5);
static const uint64_t MM3_C2 = UINT64_C(0x4cf5ad432745937f);

static void mm3_block(mm3 *m)
{
    uint64_t k1 = 0, k2 = 0;
    for (int i = 7; i >= 0; i--) k1 = (k1 << 8) | m->block[i];
    for (int i = 15; i >= 8; i--) k2 = (k2 << 8) | m->block[i];
    k1 *= MM3_C1; k1 = rotl64(k1, 31); k1 *= MM3_C2; m->h1 ^= k1;
    m->h1 = rotl64(m->h1, 27); m->h1 += m->h2; m->h1 = m->h1 * 5 + 0x52dce729;
    k2 *= MM3_C2; k2 = rotl64(k2, 33); k2 *= MM3_C1; m->h2 ^= k2;
    m->h2 = rotl64(m->h2, 31); m->h2 += m->h1; m->h2 = m->h2 * 5 + 0x38495ab5;
    m->fill = 0;
}

static inline void mm3_byte(mm3 *m, uint8_t c)
{
    m->block[m->fill++] = c;
    m->total++;
    if (m->fill == 16) mm3_block(m);
}

static void mm3_final(mm3 *m, uint64_t out[2])
{
    uint64_t k1 = 0, k2 = 0;
    size_t n = m->fill;
    for (size_t i = n; i > 8; i--) k2 = (k2 << 8) | m->block[i - 1];
    for (size_t i = n < 8 ? n : 8; i > 0; i--) k1 = (k1 << 8) | m->block[i - 1];
    if (n > 8) { k2 *= MM3_C2; k2 = rotl64(k2, 33); k2 *= MM3_C1; m->h2 ^= k2; }
    if (n > 0) { k1 *= MM3_C1; k1 = rotl64(k1, 31); k1 *= MM3_C2; m->h1 ^= k1; }
    m->h1 ^= m->total; m->h2 ^= m->total;
    m->h1 += m->h2; m->h2 += m->h1;
    m->h1 = fmix64(m->h1); m->h2 = fmix64(m->h2);
    m->h1 += m->h2; m->h2 += m->h1;
    out[0] = m->h1;
    out[1] = m->h2;
}

static inline bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static inline uint8_t lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

void ilm__dedup_exact_hash(const char *text, size_t len, uint64_t out[2])
{
    mm3 m = {.h1 = 0x494c4d, .h2 = 0x494c4d}; /* "ILM" as the seed */
    bool pending_space = false;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        if (is_space(c)) {
            pending_space = m.total > 0;
            continue;
        }
        if (pending_space) mm3_byte(&m, ' ');
        pending_space = false;
        mm3_byte(&m, lower(c));
    }
    mm3_final(&m, out);
}

/* ---- shingles and signatures ----------------------------------------------- */

static inline bool is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0xAC00 && cp <= 0xD7AF);
}

/* One code point at text[*i]; a byte that does not start valid UTF-8 counts
 * as a unit of its own (0x110000 + byte), so any input has a definite
 * shingle set. */
static inline uint32_t next_cp(const char *text, size_t len, size_t *i)
{
    uint8_t c = (uint8_t)text[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    uint32_t cp;
    size_t n = ilm__utf8_decode(text + *i, len - *i, &cp);
    if (n == 0) {
        (*i)++;
        return 0x110000u + c;
    }
    *i += n;
    return cp;
}

bool ilm__dedup_is_cjk(const char *text, size_t len)
{
    size_t cjk = 0, other = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)text[i];
        if (is_space(c)) {
            i++;
            continue;
        }
        if (is_cjk(next_cp(text, len, &i))) cjk++;
        else other++;
    }
    return cjk > other;
}

/* The permutation parameters: slot i uses perm[i] = a_i, perm[n + i] = b_i. */
static void make_perms(uint64_t seed, int n, uint64_t *perm)
{
    ilm__rng r;
    ilm__rng_init(&r, seed, UINT64_C(0x4d696e48617368)); /* "MinHash" */
    for (int i = 0; i < n; i++) {
        uint64_t a;
        do a = ilm__rng_u64(&r) >> 3; while (a == 0 || a >= P61);
        uint64_t b;
        do b = ilm__rng_u64(&r) >> 3; while (b >= P61);
        perm[i] = a;
        perm[n + i] = b;
    }
}

/* (a x) mod p for a, x < 2^61: the 122-bit product is hi 2^61 + lo, and
 * 2^61 = 1 mod p, so it reduces to lo + hi with one conditional subtraction.
 * One 64 x 64 -> 128-bit multiply is faster here than the four 32-bit
 * products a vectorizable version needs without AVX-512. */
static inline uint64_t mulmod61(uint64_t a, uint64_t x)
{
    __extension__ unsigned __int128 p = (unsigned __int128)a * x;
    uint64_t r = ((uint64_t)p & P61) + (uint64_t)(p >> 61);
    return r >= P61 ? r - P61 : r;
}

/* Shingles are folded in batches so the hash of a shingle and the minima
 * loop do not interleave (that keeps the minima loop free of calls, and
 * lets the vector fold keep the minima in registers over a batch). */
#define SH_BATCH 64

/* Reduces a 64-bit shingle hash to x < p. */
static inline uint64_t reduce61(uint64_t h)
{
    uint64_t x = (h & P61) + (h >> 61);
    return x >= P61 ? x - P61 : x;
}

/* Folds a batch of shingles (reduced hashes x[k] < p) into the running
 * minima: the hot loop. */
static void fold_scalar(const uint64_t *x, size_t nx, int n, const uint64_t *restrict a,
                        const uint64_t *restrict b, uint64_t *restrict sig)
{
    for (size_t k = 0; k < nx; k++)
        for (int i = 0; i < n; i++) {
            uint64_t v = mulmod61(a[i], x[k]) + b[i];
            v = v >= P61 ? v - P61 : v;
            sig[i] = v < sig[i] ? v : sig[i];
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_FOLD_AVX512 1

/* The same with AVX-512, eight slots at a time, each slot's minimum kept in
 * a register over the whole batch.  (a x) mod p from 32 x 32 -> 64-bit
 * products: with a = ah 2^32 + al and x = xh 2^32 + xl (ah, xh < 2^29),
 *   a x = ah xh 2^64 + (ah xl + al xh) 2^32 + al xl,
 * and mod p, 2^64 = 8, and m 2^32 = (m >> 29) + ((m mod 2^29) << 32), so
 * the sum stays under 2^63 and two folds of the top bits make it canonical:
 * the slots are exactly the scalar ones. */
__attribute__((target("avx512f"))) static void fold_avx512(const uint64_t *x, size_t nx, int n,
                                                          const uint64_t *restrict a,
                                                          const uint64_t *restrict b,
                                                          uint64_t *restrict sig)
{
    const __m512i p = _mm512_set1_epi64((long long)P61), m29 = _mm512_set1_epi64((1LL << 29) - 1);
    for (int i = 0; i < n; i += 8) {
        __mmask8 live = n - i >= 8 ? 0xFF : (__mmask8)((1u << (n - i)) - 1);
        __m512i va = _mm512_maskz_loadu_epi64(live, a + i), vb = _mm512_maskz_loadu_epi64(live, b + i);
        __m512i ah = _mm512_srli_epi64(va, 32);
        __m512i mn = _mm512_maskz_loadu_epi64(live, sig + i);
        for (size_t k = 0; k < nx; k++) {
            __m512i xl = _mm512_set1_epi64((long long)x[k]), xh = _mm512_srli_epi64(xl, 32);
            __m512i hh = _mm512_mul_epu32(ah, xh);
            __m512i mid = _mm512_add_epi64(_mm512_mul_epu32(ah, xl), _mm512_mul_epu32(va, xh));
            __m512i ll = _mm512_mul_epu32(va, xl);
            __m512i s = _mm512_add_epi64(_mm512_slli_epi64(hh, 3), _mm512_srli_epi64(mid, 29));
            s = _mm512_add_epi64(s, _mm512_slli_epi64(_mm512_and_si512(mid, m29), 32));
            s = _mm512_add_epi64(s, _mm512_and_si512(ll, p));
            s = _mm512_add_epi64(s, _mm512_srli_epi64(ll, 61));
            s = _mm512_add_epi64(_mm512_and_si512(s, p), _mm512_srli_epi64(s, 61));
            s = _mm512_mask_sub_epi64(s, _mm512_cmpge_epu64_mask(s, p), s, p);
            s = _mm512_add_epi64(s, vb);
            s = _mm512_mask_sub_epi64(s, _mm512_cmpge_epu64_mask(s, p), s, p);
            mn = _mm512_min_epu64(mn, s);
        }
        _mm512_mask_storeu_epi64(sig + i, live, mn);
    }
}
#endif

/* The permutations and the fold that suits this CPU. */
typedef struct folder {
    const uint64_t *a, *b;
    int             n;
    bool            avx512;
} folder;

static void fold(const folder *f, const uint64_t *h, size_t nh, uint64_t *sig)
{
    uint64_t x[SH_BATCH]; /* nh <= SH_BATCH */
    for (size_t k = 0; k < nh; k++) x[k] = reduce61(h[k]);
#ifdef HAVE_FOLD_AVX512
    if (f->avx512) {
        fold_avx512(x, nh, f->n, f->a, f->b, sig);
        return;
    }
#endif
    fold_scalar(x, nh, f->n, f->a, f->b, sig);
}

static size_t word_shingles(const char *text, size_t len, int n, const folder *f,
                            uint64_t *sig)
{
    uint64_t ring[ILM__DEDUP_MAX_NGRAM], batch[SH_BATCH];
    size_t words = 0, shingles = 0, nb = 0;
    for (size_t i = 0; i < len;) {
        if (is_space((uint8_t)text[i])) {
            i++;
            continue;
        }
        /* FNV-1a over the lowercased word; the shingle mix below spreads it. */
        uint64_t w = UINT64_C(0xcbf29ce484222325);
        while (i < len && !is_space((uint8_t)text[i]))
            w = (w ^ lower((uint8_t)text[i++])) * UINT64_C(0x100000001b3);
        ring[words % (size_t)n] = w;
        words++;
        if (words < (size_t)n) continue;
        uint64_t s = (uint64_t)n;
        for (size_t k = words - (size_t)n; k < words; k++)
            s = (s ^ ring[k % (size_t)n]) * UINT64_C(0x9e3779b97f4a7c15);
        batch[nb++] = fmix64(s);
        shingles++;
        if (nb == SH_BATCH) {
            fold(f, batch, nb, sig);
            nb = 0;
        }
    }
    if (words > 0 && words < (size_t)n) {
        uint64_t s = words;
        for (size_t k = 0; k < words; k++) s = (s ^ ring[k]) * UINT64_C(0x9e3779b97f4a7c15);
        batch[nb++] = fmix64(s);
        shingles++;
    }
    fold(f, batch, nb, sig);
    return shingles;
}

static size_t char_shingles(const char *text, size_t len, int n, const folder *f,
                            uint64_t *sig)
{
    uint64_t ring[ILM__DEDUP_MAX_NGRAM], batch[SH_BATCH];
    size_t units = 0, shingles = 0, nb = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)text[i];
        if (is_space(c)) {
            i++;
            continue;
        }
        uint32_t cp = next_cp(text, len, &i);
        ring[units % (size_t)n] = cp < 0x80 ? lower((uint8_t)cp) : cp;
        units++;
        if (units < (size_t)n) continue;
        uint64_t s = (uint64_t)n | UINT64_C(0x100);
        for (size_t k = units - (size_t)n; k < units; k++)
            s = (s ^ ring[k % (size_t)n]) * UINT64_C(0x9e3779b97f4a7c15);
        batch[nb++] = fmix64(s);
        shingles++;
        if (nb == SH_BATCH) {
            fold(f, batch, nb, sig);
            nb = 0;
        }
    }
    if (units > 0 && units < (size_t)n) {
        uint64_t s = units | UINT64_C(0x100);
        for (size_t k = 0; k < units; k++) s = (s ^ ring[k]) * UINT64_C(0x9e3779b97f4a7c15);
        batch[nb++] = fmix64(s);
        shingles++;
    }
    fold(f, batch, nb, sig);
    return shingles;
}

/* ---- the deduplicator ----------------------------------------------------- */

typedef struct bucket {
    uint64_t key;  /* band hash mixed with the band index; 0 = empty */
    uint64_t doc;  /* index into sigs */
} bucket;

struct ilm__dedup {
    ilm__dedup_opts o;
    uint64_t       *perm;        /* a [num_perm], then b [num_perm] */
    uint64_t       *exact;       /* pairs {h0, h1}; {0, 0} = empty */
    size_t          exact_cap, exact_count;
    uint64_t       *sigs;        /* [sig_cap, num_perm] */
    size_t          sig_cap, sig_count;
    bucket         *buckets;     /* multimap, linear probing */
    size_t          bucket_cap, bucket_count;
    bool            full;
    bool            avx512;      /* sign with fold_avx512 */
    uint64_t        docs, unique, exact_dups, near_dups, not_indexed, candidates;
};

static size_t mem_used(const ilm__dedup *d)
{
    return d->exact_cap * 16 + d->sig_cap * (size_t)d->o.num_perm * 8 +
           d->bucket_cap * sizeof(bucket) + (size_t)d->o.num_perm * 16;
}

ilm_status ilm__dedup_create(const ilm__dedup_opts *opts, ilm__dedup **out)
{
    *out = NULL;
    ILM__RETURN_IF(opts->num_perm < 1 || opts->num_perm > ILM__DEDUP_MAX_PERM ||
                   opts->bands < 1 || opts->rows < 1 ||
                   opts->bands * opts->rows != opts->num_perm ||
                   opts->ngram < 1 || opts->ngram > ILM__DEDUP_MAX_NGRAM ||
                   opts->char_ngram < 1 || opts->char_ngram > ILM__DEDUP_MAX_NGRAM ||
                   !(opts->threshold >= 0 && opts->threshold <= 1) || opts->max_memory < 0,
                   ILM_ERR_CONFIG, "dedup: invalid options (num_perm %d, bands %d, "
                   "rows %d, ngram %d, char_ngram %d)", opts->num_perm, opts->bands,
                   opts->rows, opts->ngram, opts->char_ngram);
    ilm__dedup *d = ilm__calloc(1, sizeof *d);
    ILM__RETURN_IF(!d, ILM_ERR_NOMEM, "dedup: out of memory");
    d->o = *opts;
    d->perm = ilm__malloc((size_t)opts->num_perm * 2 * sizeof(uint64_t));
    if (!d->perm) {
        ilm__free(d);
        return ilm__error(ILM_ERR_NOMEM, "dedup: out of memory");
    }
    make_perms(opts->seed, opts->num_perm, d->perm);
#ifdef HAVE_FOLD_AVX512
    d->avx512 = ilm__isa() >= ILM__ISA_AVX512;
#endif
    *out = d;
    return ILM_OK;
}

void ilm__dedup_free(ilm__dedup *d)
{
    if (!d) return;
    ilm__free(d->perm);
    ilm__free(d->exact);
    ilm__free(d->sigs);
    ilm__free(d->buckets);
    ilm__free(d);
}

bool ilm__dedup_use_simd(ilm__dedup *d, bool on)
{
    bool was = d->avx512;
#ifdef HAVE_FOLD_AVX512
    d->avx512 = on && ilm__isa() >= ILM__ISA_AVX512;
#else
    (void)on;
#endif
    return was;
}

size_t ilm__dedup_signature(const ilm__dedup *d, const char *text, size_t len,
                            uint64_t *sig)
{
    int np = d->o.num_perm;
    for (int i = 0; i < np; i++) sig[i] = UINT64_MAX;
    const folder f = { d->perm, d->perm + np, np, d->avx512 };
    if (ilm__dedup_is_cjk(text, len)) return char_shingles(text, len, d->o.char_ngram, &f, sig);
    return word_shingles(text, len, d->o.ngram, &f, sig);
}

ilm_status ilm__dedup_sign_batch(const ilm__dedup *d, const char *const *texts,
                                 const size_t *lens, size_t n, uint64_t *sigs,
                                 size_t *n_shingles)
{
    size_t np = (size_t)d->o.num_perm;
    long long nn = (long long)n;
#pragma omp parallel for schedule(dynamic, 16) num_threads(ilm__num_threads())
    for (long long i = 0; i < nn; i++) {
        size_t s = ilm__dedup_signature(d, texts[i], lens[i], sigs + (size_t)i * np);
        if (n_shingles) n_shingles[i] = s;
    }
    return ILM_OK;
}

/* The bucket key of band `band` of a signature: never 0 (the empty mark). */
static uint64_t band_key(const uint64_t *sig, int band, int rows)
{
    uint64_t h = fmix64((uint64_t)band + 1);
    for (int r = 0; r < rows; r++)
        h = fmix64(h ^ sig[band * rows + r]);
    return h ? h : 1;
}

/* Whether the 128-bit value is in the exact set; *slot gets where it is or
 * where it would go. */
static bool exact_find(const ilm__dedup *d, const uint64_t h[2], size_t *slot)
{
    size_t mask = d->exact_cap - 1;
    for (size_t i = h[0] & mask;; i = (i + 1) & mask) {
        const uint64_t *e = d->exact + 2 * i;
        if (e[0] == 0 && e[1] == 0) {
            *slot = i;
            return false;
        }
        if (e[0] == h[0] && e[1] == h[1]) {
            *slot = i;
            return true;
        }
    }
}

static bool fits(const ilm__dedup *d, size_t extra)
{
    return d->o.max_memory == 0 || mem_used(d) + extra <= (size_t)d->o.max_memory;
}

/* Makes room for one more exact value; false when the cap forbids it. */
static ilm_status exact_reserve(ilm__dedup *d, bool *ok)
{
    *ok = true;
    if ((d->exact_count + 1) * 2 <= d->exact_cap) return ILM_OK;
    size_t cap = d->exact_cap ? d->exact_cap * 2 : 1024;
    if (!fits(d, (cap - d->exact_cap) * 16)) {
        *ok = false;
        return ILM_OK;
    }
    uint64_t *old = d->exact;
    size_t old_cap = d->exact_cap;
    d->exact = ilm__calloc(cap, 16);
    if (!d->exact) {
        d->exact = old;
        return ilm__error(ILM_ERR_NOMEM, "dedup: out of memory (exact set of %zu)", cap);
    }
    d->exact_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[2 * i] == 0 && old[2 * i + 1] == 0) continue;
        size_t slot;
        exact_find(d, old + 2 * i, &slot);
        d->exact[2 * slot] = old[2 * i];
        d->exact[2 * slot + 1] = old[2 * i + 1];
    }
    ilm__free(old);
    return ILM_OK;
}

static void bucket_put(bucket *t, size_t cap, uint64_t key, uint64_t doc)
{
    size_t mask = cap - 1;
    size_t i = fmix64(key) & mask;
    while (t[i].key) i = (i + 1) & mask;
    t[i].key = key;
    t[i].doc = doc;
}

/* Makes room for one more signature and its bands.  The bucket table only
 * doubles (it is a power of two); the signature array grows by up to double,
 * or by what still fits under the cap. */
static ilm_status near_reserve(ilm__dedup *d, bool *ok)
{
    size_t np = (size_t)d->o.num_perm, nb = (size_t)d->o.bands;
    size_t sig_cap = d->sig_cap, bucket_cap = d->bucket_cap;
    while ((d->bucket_count + nb) * 2 > bucket_cap) bucket_cap = bucket_cap ? bucket_cap * 2 : 4096;
    size_t used = mem_used(d), room = SIZE_MAX;
    if (d->o.max_memory > 0)
        room = used < (size_t)d->o.max_memory ? (size_t)d->o.max_memory - used : 0;
    size_t bextra = (bucket_cap - d->bucket_cap) * sizeof(bucket);
    *ok = bextra <= room;
    if (!*ok) return ILM_OK;
    room -= bextra;
    if (d->sig_count + 1 > sig_cap) {
        size_t want = sig_cap ? sig_cap : 256, afford = room / (np * 8);
        *ok = afford > 0;
        if (!*ok) return ILM_OK;
        sig_cap += want < afford ? want : afford;
    }
    if (sig_cap != d->sig_cap) {
        uint64_t *s = ilm__realloc(d->sigs, sig_cap * np * 8);
        ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "dedup: out of memory (%zu signatures)", sig_cap);
        d->sigs = s;
        d->sig_cap = sig_cap;
    }
    if (bucket_cap != d->bucket_cap) {
        bucket *t = ilm__calloc(bucket_cap, sizeof(bucket));
        ILM__RETURN_IF(!t, ILM_ERR_NOMEM, "dedup: out of memory (%zu buckets)", bucket_cap);
        for (size_t i = 0; i < d->bucket_cap; i++)
            if (d->buckets[i].key) bucket_put(t, bucket_cap, d->buckets[i].key, d->buckets[i].doc);
        ilm__free(d->buckets);
        d->buckets = t;
        d->bucket_cap = bucket_cap;
    }
    return ILM_OK;
}

/* Whether an indexed document shares a bucket with `sig` and agrees with it
 * on at least `threshold` of the slots. */
static bool near_find(ilm__dedup *d, const uint64_t *sig)
{
    if (!d->bucket_cap) return false;
    int np = d->o.num_perm, rows = d->o.rows;
    size_t need = (size_t)(d->o.threshold * np);
    if ((double)need < d->o.threshold * np) need++; /* ceil without libm */
    size_t mask = d->bucket_cap - 1;
    for (int band = 0; band < d->o.bands; band++) {
        uint64_t key = band_key(sig, band, rows);
        for (size_t i = fmix64(key) & mask; d->buckets[i].key; i = (i + 1) & mask) {
            if (d->buckets[i].key != key) continue;
            const uint64_t *o = d->sigs + d->buckets[i].doc * (size_t)np;
            size_t eq = 0;
            for (int k = 0; k < np; k++) eq += o[k] == sig[k];
            d->candidates++;
            if (eq >= need) return true;
        }
    }
    return false;
}

static void say_full(ilm__dedup *d)
{
    if (d->full) return;
    d->full = true;
    ilm__log(ILM_LOG_WARN, "dedup: memory cap of %lld bytes reached after %llu "
             "documents; later unique documents are kept but no longer indexed, "
             "so their duplicates will not be found",
             (long long)d->o.max_memory, (unsigned long long)d->unique);
}

ilm_status ilm__dedup_check_signed(ilm__dedup *d, const char *text, size_t len,
                                   const uint64_t *sig, size_t n_shingles,
                                   int *verdict)
{
    uint64_t h[2] = { 0, 0 };
    if (d->o.exact) ilm__dedup_exact_hash(text, len, h);
    return ilm__dedup_check_hashed(d, h, sig, n_shingles, verdict);
}

ilm_status ilm__dedup_check_hashed(ilm__dedup *d, const uint64_t exact[2], const uint64_t *sig,
                                   size_t n_shingles, int *verdict)
{
    d->docs++;
    uint64_t h[2] = { exact[0], exact[1] };
    size_t slot = 0;
    bool have_exact = false;
    if (d->o.exact) {
        if (h[0] == 0 && h[1] == 0) h[0] = 1;
        if (d->exact_cap && exact_find(d, h, &slot)) {
            d->exact_dups++;
            *verdict = ILM__DEDUP_EXACT;
            return ILM_OK;
        }
        have_exact = true;
    }
    bool use_near = d->o.near && sig && n_shingles > 0;
    if (use_near && near_find(d, sig)) {
        d->near_dups++;
        *verdict = ILM__DEDUP_NEAR;
        return ILM_OK;
    }
    /* A unique document: index it if the cap allows. */
    bool ok_e = true, ok_n = true;
    if (!d->full && have_exact) ILM__FORWARD(exact_reserve(d, &ok_e));
    if (!d->full && ok_e && use_near) ILM__FORWARD(near_reserve(d, &ok_n));
    if (d->full || !ok_e || !ok_n) {
        say_full(d);
        d->unique++;
        d->not_indexed++;
        *verdict = ILM__DEDUP_UNIQUE_NOT_INDEXED;
        return ILM_OK;
    }
    if (have_exact) {
        exact_find(d, h, &slot);
        d->exact[2 * slot] = h[0];
        d->exact[2 * slot + 1] = h[1];
        d->exact_count++;
    }
    if (use_near) {
        size_t np = (size_t)d->o.num_perm;
        uint64_t doc = d->sig_count++;
        memcpy(d->sigs + doc * np, sig, np * 8);
        for (int band = 0; band < d->o.bands; band++)
            bucket_put(d->buckets, d->bucket_cap, band_key(sig, band, d->o.rows), doc);
        d->bucket_count += (size_t)d->o.bands;
    }
    d->unique++;
    *verdict = ILM__DEDUP_UNIQUE;
    return ILM_OK;
}

ilm_status ilm__dedup_check(ilm__dedup *d, const char *text, size_t len, int *verdict)
{
    uint64_t sig[ILM__DEDUP_MAX_PERM];
    size_t n = 0;
    if (d->o.near) n = ilm__dedup_signature(d, text, len, sig);
    return ilm__dedup_check_signed(d, text, len, d->o.near ? sig : NULL, n, verdict);
}

size_t ilm__dedup_memory(const ilm__dedup *d) { return mem_used(d); }

ilm_status ilm__dedup_report(const ilm__dedup *d, cJSON *obj)
{
    size_t np = (size_t)d->o.num_perm;
    struct { const char *k; double v; } rows[] = {
        {"documents", (double)d->docs},
        {"unique", (double)d->unique},
        {"exact_duplicates", (double)d->exact_dups},
        {"near_duplicates", (double)d->near_dups},
        {"not_indexed", (double)d->not_indexed},
        {"candidates_checked", (double)d->candidates},
        {"memory_exact_bytes", (double)(d->exact_cap * 16)},
        {"memory_signatures_bytes", (double)(d->sig_cap * np * 8)},
        {"memory_buckets_bytes", (double)(d->bucket_cap * sizeof(bucket))},
        {"memory_bytes", (double)mem_used(d)},
        {"max_memory", (double)d->o.max_memory},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ILM__RETURN_IF(!cJSON_AddNumberToObject(obj, rows[i].k, rows[i].v),
                       ILM_ERR_NOMEM, "dedup: out of memory (report)");
    ILM__RETURN_IF(!cJSON_AddBoolToObject(obj, "full", d->full), ILM_ERR_NOMEM,
                   "dedup: out of memory (report)");
    return ILM_OK;
}
