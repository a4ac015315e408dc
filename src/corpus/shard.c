/*
 * src/corpus/ -- the data stage: ingest, clean, filter, dedup, tokenize,
 * pack into token shards, SFT encoding, and the per-rank loader.
 *
 * shard.c -- the token shard file (docs/formats.md, "Token shards"): a
 * 64-byte little-endian header, document offsets, tokens at the narrowest
 * width the vocabulary allows, and an optional loss-mask stream.  Readers
 * mmap the file and check every size against the file's length before
 * touching a section, so a lying or truncated file is ILM_ERR_FORMAT and
 * never an out-of-bounds read.
 */
#include "corpus/internal.h"

#include <string.h>
#include <zlib.h>

/* ---- little-endian helpers ------------------------------------------------ */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t width_for_vocab(int32_t vocab_size)
{
    return vocab_size <= 65536 ? 2u : 4u;
}

/* zlib's crc32 takes uInt lengths: feed it in chunks. */
static uint32_t crc_update(uint32_t crc, const uint8_t *p, uint64_t n)
{
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return crc;
}

/* ---- writer --------------------------------------------------------------- */

struct ilm__shard_writer {
    char     *path;
    int32_t   vocab_size;
    uint32_t  width;
    bool      with_mask;
    ilm__buf  offsets; /* u64 LE [n_docs + 1] */
    ilm__buf  tokens;  /* width-byte LE [n_tokens] */
    ilm__buf  mask;    /* u8 [n_tokens] */
    uint64_t  n_docs, n_tokens;
};

ilm_status ilm__shard_writer_create(const char *path, int32_t vocab_size,
                                    bool with_mask, ilm__shard_writer **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "shard writer: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!path || !*path, ILM_ERR_INVALID_ARG, "shard writer: empty path");
    ILM__RETURN_IF(vocab_size <= 0, ILM_ERR_INVALID_ARG,
                   "shard writer: vocab size %d must be positive", (int)vocab_size);
    ilm__shard_writer *w = ilm__calloc(1, sizeof *w);
    ILM__RETURN_IF(!w, ILM_ERR_NOMEM, "shard writer: out of memory");
    w->path = ilm__strdup(path);
    w->vocab_size = vocab_size;
    w->width = width_for_vocab(vocab_size);
    w->with_mask = with_mask;
    uint8_t zero[8] = {0};
    if (!w->path || ilm__buf_append(&w->offsets, zero, 8) != ILM_OK) {
        ilm__shard_writer_free(w);
        return ilm__error(ILM_ERR_NOMEM, "shard writer: out of memory");
    }
    *out = w;
    return ILM_OK;
}

ilm_status ilm__shard_writer_add(ilm__shard_writer *w, const int32_t *ids,
                                 const uint8_t *mask, size_t n)
{
    ILM__RETURN_IF(!w || (!ids && n), ILM_ERR_INVALID_ARG, "shard writer: bad arguments");
    ILM__RETURN_IF(mask && !w->with_mask, ILM_ERR_INVALID_ARG,
                   "shard writer '%s': a mask given to a shard without a mask stream",
                   w->path);
    /* Validate first so a bad document leaves the shard unchanged. */
    for (size_t i = 0; i < n; i++) {
        ILM__RETURN_IF(ids[i] < 0 || ids[i] >= w->vocab_size, ILM_ERR_RANGE,
                       "shard writer '%s': token %d at %zu is outside the vocabulary "
                       "of %d", w->path, (int)ids[i], i, (int)w->vocab_size);
        ILM__RETURN_IF(mask && mask[i] > 1, ILM_ERR_RANGE,
                       "shard writer '%s': mask byte %u at %zu is not 0 or 1",
                       w->path, (unsigned)mask[i], i);
    }
    uint8_t tmp[256];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; i < n && k + w->width <= sizeof tmp; i++, k += w->width) {
            if (w->width == 2) {
                tmp[k] = (uint8_t)ids[i];
                tmp[k + 1] = (uint8_t)(ids[i] >> 8);
            } else {
                wr32(tmp + k, (uint32_t)ids[i]);
            }
        }
        ILM__FORWARD(ilm__buf_append(&w->tokens, tmp, k));
    }
    if (w->with_mask) {
        if (mask) {
            ILM__FORWARD(ilm__buf_append(&w->mask, mask, n));
        } else {
            memset(tmp, 1, sizeof tmp);
            for (size_t left = n; left > 0;) {
                size_t k = left < sizeof tmp ? left : sizeof tmp;
                ILM__FORWARD(ilm__buf_append(&w->mask, tmp, k));
                left -= k;
            }
        }
    }
    w->n_tokens += n;
    w->n_docs++;
    uint8_t off[8];
    wr64(off, w->n_tokens);
    return ilm__buf_append(&w->offsets, off, 8);
}

static void header_of(const ilm__shard_writer *w, uint8_t h[ILM__SHARD_HEADER_SIZE])
{
    memset(h, 0, ILM__SHARD_HEADER_SIZE);
    memcpy(h, ILM__SHARD_MAGIC, 8);
    wr32(h + 8, ILM__SHARD_VERSION);
    wr32(h + 12, w->with_mask ? ILM__SHARD_HAS_MASK : 0);
    wr32(h + 16, (uint32_t)w->vocab_size);
    wr32(h + 20, w->width);
    wr64(h + 24, w->n_tokens);
    wr64(h + 32, w->n_docs);
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    crc = crc_update(crc, (const uint8_t *)w->offsets.p, w->offsets.n);
    crc = crc_update(crc, (const uint8_t *)w->tokens.p, w->tokens.n);
    if (w->with_mask) crc = crc_update(crc, (const uint8_t *)w->mask.p, w->mask.n);
    wr32(h + 40, crc);
    wr64(h + 48, ILM__SHARD_HEADER_SIZE + w->offsets.n + w->tokens.n + w->mask.n);
}

static ilm_status write_shard(int fd, void *ctx)
{
    const ilm__shard_writer *w = ctx;
    uint8_t h[ILM__SHARD_HEADER_SIZE];
    header_of(w, h);
    ILM__FORWARD(ilm__write_all(fd, h, sizeof h));
    ILM__FORWARD(ilm__write_all(fd, w->offsets.p, w->offsets.n));
    if (w->tokens.n) ILM__FORWARD(ilm__write_all(fd, w->tokens.p, w->tokens.n));
    if (w->mask.n) ILM__FORWARD(ilm__write_all(fd, w->mask.p, w->mask.n));
    return ILM_OK;
}

ilm_status ilm__shard_writer_close(ilm__shard_writer *w)
{
    ILM__RETURN_IF(!w, ILM_ERR_INVALID_ARG, "shard writer: NULL");
    ilm_status st = ilm__atomic_write(w->path, write_shard, w);
    ilm__shard_writer_free(w);
    return st;
}

void ilm__shard_writer_free(ilm__shard_writer *w)
{
    if (!w) return;
    ilm__free(w->path);
    ilm__buf_free(&w->offsets);
    ilm__buf_free(&w->tokens);
    ilm__buf_free(&w->mask);
    ilm__free(w);
}

/* ---- reader --------------------------------------------------------------- */

#define BAD(...) ILM__RETURN_IF(1, ILM_ERR_FORMAT, __VA_ARGS__)

/* Header and section checks.  Each size is compared with what is left of
 * the file before it is multiplied, so no product can overflow. */
static ilm_status parse(ilm__shard *s)
{
    const uint8_t *p = s->map.data;
    const char *path = s->path;
    uint64_t size = s->map.size;
    if (size < ILM__SHARD_HEADER_SIZE)
        BAD("shard '%s': %llu bytes, shorter than the %u-byte header", path,
            (unsigned long long)size, ILM__SHARD_HEADER_SIZE);
    if (memcmp(p, ILM__SHARD_MAGIC, 8) != 0)
        BAD("shard '%s': bad magic (not a libinternlm token shard)", path);
    uint32_t version = rd32(p + 8), flags = rd32(p + 12);
    uint32_t vocab = rd32(p + 16), width = rd32(p + 20);
    uint64_t n_tokens = rd64(p + 24), n_docs = rd64(p + 32);
    uint64_t file_size = rd64(p + 48);
    if (version != ILM__SHARD_VERSION)
        BAD("shard '%s': version %u, this library reads version %u", path, version,
            ILM__SHARD_VERSION);
    if (flags & ~ILM__SHARD_HAS_MASK)
        BAD("shard '%s': unknown flags 0x%x", path, flags);
    if (rd32(p + 44) != 0 || rd64(p + 56) != 0)
        BAD("shard '%s': reserved header fields are not zero", path);
    if (vocab == 0 || vocab > (uint32_t)INT32_MAX)
        BAD("shard '%s': vocab size %u out of range", path, vocab);
    if (width != width_for_vocab((int32_t)vocab))
        BAD("shard '%s': token width %u bytes does not match vocab size %u "
            "(expected %u)", path, width, vocab, width_for_vocab((int32_t)vocab));
    if (file_size != size)
        BAD("shard '%s': header says %llu bytes but the file has %llu", path,
            (unsigned long long)file_size, (unsigned long long)size);

    uint64_t left = size - ILM__SHARD_HEADER_SIZE;
    if (n_docs >= left / 8)
        BAD("shard '%s': %llu documents need %llu offset bytes but %llu are left",
            path, (unsigned long long)n_docs, (unsigned long long)(n_docs + 1) * 8,
            (unsigned long long)left);
    left -= (n_docs + 1) * 8;
    uint64_t per_token = width + ((flags & ILM__SHARD_HAS_MASK) ? 1u : 0u);
    if (n_tokens > left / per_token || n_tokens * per_token != left)
        BAD("shard '%s': %llu tokens of %llu bytes each do not fill the %llu bytes "
            "after the offsets", path, (unsigned long long)n_tokens,
            (unsigned long long)per_token, (unsigned long long)left);

    s->offsets = p + ILM__SHARD_HEADER_SIZE;
    s->tokens = s->offsets + (n_docs + 1) * 8;
    s->mask = (flags & ILM__SHARD_HAS_MASK) ? s->tokens + n_tokens * width : NULL;
    s->width = width;
    s->vocab_size = (int32_t)vocab;
    s->has_mask = (flags & ILM__SHARD_HAS_MASK) != 0;
    s->n_tokens = n_tokens;
    s->n_docs = n_docs;

    if (rd64(s->offsets) != 0)
        BAD("shard '%s': the first document offset is not 0", path);
    uint64_t prev = 0;
    for (uint64_t i = 1; i <= n_docs; i++) {
        uint64_t o = rd64(s->offsets + 8 * i);
        if (o < prev || o > n_tokens)
            BAD("shard '%s': document %llu offset %llu is out of order or past the "
                "%llu tokens", path, (unsigned long long)(i - 1),
                (unsigned long long)o, (unsigned long long)n_tokens);
        prev = o;
    }
    if (prev != n_tokens)
        BAD("shard '%s': documents end at token %llu but the shard has %llu", path,
            (unsigned long long)prev, (unsigned long long)n_tokens);
    return ILM_OK;
}

static ilm_status verify(const ilm__shard *s)
{
    const uint8_t *payload = s->offsets;
    uint64_t n = s->map.size - ILM__SHARD_HEADER_SIZE;
    uint32_t crc = crc_update((uint32_t)crc32(0L, Z_NULL, 0), payload, n);
    uint32_t want = rd32(s->map.data + 40);
    if (crc != want)
        BAD("shard '%s': checksum 0x%08x does not match the header's 0x%08x", s->path,
            crc, want);
    for (uint64_t i = 0; i < s->n_tokens; i++) {
        int32_t id = ilm__shard_token(s, i);
        if (id < 0 || id >= s->vocab_size)
            BAD("shard '%s': token %llu is id %d, outside the vocabulary of %d",
                s->path, (unsigned long long)i, (int)id, (int)s->vocab_size);
        if (s->mask && s->mask[i] > 1)
            BAD("shard '%s': mask byte %llu is %u, not 0 or 1", s->path,
                (unsigned long long)i, (unsigned)s->mask[i]);
    }
    return ILM_OK;
}

ilm_status ilm__shard_verify(ilm__shard *s)
{
    ILM__RETURN_IF(!s, ILM_ERR_INVALID_ARG, "shard verify: NULL");
    if (s->verified) return ILM_OK;
    ILM__FORWARD(verify(s));
    s->verified = true;
    return ILM_OK;
}

ilm_status ilm__shard_open(const char *path, bool check, ilm__shard **out)
{
    ILM__RETURN_IF(!out || !path, ILM_ERR_INVALID_ARG, "shard open: NULL argument");
    *out = NULL;
    ilm__shard *s = ilm__calloc(1, sizeof *s);
    ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "shard open: out of memory");
    s->path = ilm__strdup(path);
    if (!s->path) {
        ilm__free(s);
        return ilm__error(ILM_ERR_NOMEM, "shard open: out of memory");
    }
    ilm_status st = ilm__mmap_open(path, &s->map);
    if (st == ILM_OK) {
        st = parse(s);
        if (st == ILM_OK && check) st = ilm__shard_verify(s);
    } else {
        s->map.data = NULL;
    }
    if (st != ILM_OK) {
        ilm__shard_close(s);
        return st;
    }
    *out = s;
    return ILM_OK;
}

void ilm__shard_close(ilm__shard *s)
{
    if (!s) return;
    if (s->map.data) ilm__mmap_close(&s->map);
    ilm__free(s->path);
    ilm__free(s);
}

void ilm__shard_doc(const ilm__shard *s, uint64_t i, uint64_t *start, uint64_t *len)
{
    uint64_t a = rd64(s->offsets + 8 * i), b = rd64(s->offsets + 8 * (i + 1));
    *start = a;
    *len = b - a;
}

int32_t ilm__shard_token(const ilm__shard *s, uint64_t pos)
{
    const uint8_t *p = s->tokens + pos * s->width;
    if (s->width == 2) return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8);
    return (int32_t)rd32(p);
}

uint8_t ilm__shard_mask(const ilm__shard *s, uint64_t pos)
{
    return s->mask ? s->mask[pos] : 1;
}
