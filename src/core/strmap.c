/* Hash maps for vocabularies and merge tables: open addressing with linear
 * probing, load factor at most 1/2.  Keys are hashed 8 bytes at a time with
 * multiply-xorshift mixing (fast on the short keys vocabularies have). */
#include "core/internal.h"

#include <string.h>

uint64_t ilm__hash_bytes(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)n * 0xff51afd7ed558ccdull);
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    h = (h ^ v) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The slot of `key` (its own, or the empty one where it would go). */
static size_t strmap_find(const ilm__strmap *m, const char *key, size_t len, uint64_t h)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t j = h & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        uint64_t s = m->slots[j];
        if (s == 0) return j;
        if ((uint32_t)(s >> 32) != tag) continue;
        size_t e = (uint32_t)s - 1;
        if (m->lens[e] == len && memcmp(m->keys[e], key, len) == 0) return j;
    }
}

static ilm_status strmap_grow(ilm__strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *slots = ilm__calloc(cap, sizeof *slots);
    ILM__RETURN_IF(!slots, ILM_ERR_NOMEM, "hash map: cannot grow to %zu slots", cap);
    ilm__free(m->slots);
    m->slots = slots;
    m->cap = cap;
    for (size_t e = 0; e < m->count; e++) {
        uint64_t h = ilm__hash_bytes(m->keys[e], m->lens[e]);
        size_t j = h & (cap - 1);
        while (m->slots[j]) j = (j + 1) & (cap - 1);
        m->slots[j] = (h >> 32) << 32 | (uint64_t)(e + 1);
    }
    return ILM_OK;
}

ilm_status ilm__strmap_put(ilm__strmap *m, const char *key, size_t len, int32_t val)
{
    ILM__RETURN_IF(len > UINT32_MAX, ILM_ERR_RANGE, "hash map: key of %zu bytes", len);
    if (2 * (m->count + 1) > m->cap) ILM__FORWARD(strmap_grow(m));
    if (!key) key = "";
    uint64_t h = ilm__hash_bytes(key, len);
    size_t j = strmap_find(m, key, len, h);
    if (m->slots[j]) {
        m->vals[(uint32_t)m->slots[j] - 1] = val;
        return ILM_OK;
    }
    if (m->count == m->entries_cap) {
        size_t c = m->entries_cap ? 2 * m->entries_cap : 32;
        const char **k = ilm__realloc((void *)m->keys, c * sizeof *k);
        if (k) m->keys = k;
        uint32_t *l = k ? ilm__realloc(m->lens, c * sizeof *l) : NULL;
        if (l) m->lens = l;
        int32_t *v = l ? ilm__realloc(m->vals, c * sizeof *v) : NULL;
        if (v) m->vals = v;
        ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "hash map: cannot grow to %zu entries", c);
        m->entries_cap = c;
    }
    m->keys[m->count] = key;
    m->lens[m->count] = (uint32_t)len;
    m->vals[m->count] = val;
    m->slots[j] = (h >> 32) << 32 | (uint64_t)(++m->count);
    return ILM_OK;
}

int32_t ilm__strmap_get(const ilm__strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    size_t j = strmap_find(m, key, len, ilm__hash_bytes(key, len));
    return m->slots[j] ? m->vals[(uint32_t)m->slots[j] - 1] : -1;
}

void ilm__strmap_free(ilm__strmap *m)
{
    ilm__free(m->slots);
    ilm__free((void *)m->keys);
    ilm__free(m->lens);
    ilm__free(m->vals);
    *m = (ilm__strmap){ 0 };
}

static ilm_status u64map_grow_to(ilm__u64map *m, size_t cap)
{
    ilm__u64slot *slots = ilm__malloc(cap * sizeof *slots);
    ILM__RETURN_IF(!slots, ILM_ERR_NOMEM, "hash map: cannot grow to %zu slots", cap);
    for (size_t i = 0; i < cap; i++) slots[i].val = -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].val >= 0) {
            size_t j = mix64(m->slots[i].key) & (cap - 1);
            while (slots[j].val >= 0) j = (j + 1) & (cap - 1);
            slots[j] = m->slots[i];
        }
    ilm__free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return ILM_OK;
}

static ilm_status u64map_grow(ilm__u64map *m) { return u64map_grow_to(m, m->cap ? m->cap * 2 : 64); }

ilm_status ilm__u64map_reserve(ilm__u64map *m, size_t n)
{
    size_t cap = m->cap ? m->cap : 64;
    while (2 * n > cap) cap *= 2;
    return cap == m->cap ? ILM_OK : u64map_grow_to(m, cap);
}

ilm_status ilm__u64map_put(ilm__u64map *m, uint64_t key, int32_t val)
{
    ILM__RETURN_IF(val < 0, ILM_ERR_INTERNAL, "hash map: negative value");
    if (2 * (m->count + 1) > m->cap) ILM__FORWARD(u64map_grow(m));
    size_t j = mix64(key) & (m->cap - 1);
    while (m->slots[j].val >= 0) {
        if (m->slots[j].key == key) {
            m->slots[j].val = val;
            return ILM_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (ilm__u64slot){ key, val };
    m->count++;
    return ILM_OK;
}

int32_t ilm__u64map_get(const ilm__u64map *m, uint64_t key)
{
    if (!m->cap) return -1;
    size_t j = mix64(key) & (m->cap - 1);
    for (;; j = (j + 1) & (m->cap - 1)) {
        const ilm__u64slot *s = &m->slots[j];
        if (s->val < 0 || s->key == key) return s->val;
    }
}

void ilm__u64map_free(ilm__u64map *m)
{
    ilm__free(m->slots);
    *m = (ilm__u64map){ 0 };
}
