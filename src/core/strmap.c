/* Hash maps for vocabularies and merge tables: open addressing with linear
 * probing, load factor at most 1/2, keys hashed with 64-bit FNV-1a mixed
 * by a murmur finaliser (fast on the short keys vocabularies have). */
#include "core/internal.h"

#include <string.h>

uint64_t ilm__hash_bytes(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
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

static ilm_status strmap_grow(ilm__strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    ilm__strmap n = { 0 };
    n.keys = ilm__calloc(cap, sizeof *n.keys);
    n.lens = ilm__calloc(cap, sizeof *n.lens);
    n.vals = ilm__calloc(cap, sizeof *n.vals);
    if (!n.keys || !n.lens || !n.vals) {
        ilm__strmap_free(&n);
        return ilm__error(ILM_ERR_NOMEM, "hash map: cannot grow to %zu slots", cap);
    }
    n.cap = cap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = ilm__hash_bytes(m->keys[i], m->lens[i]) & (cap - 1);
            while (n.keys[j]) j = (j + 1) & (cap - 1);
            n.keys[j] = m->keys[i];
            n.lens[j] = m->lens[i];
            n.vals[j] = m->vals[i];
        }
    n.count = m->count;
    ilm__strmap_free(m);
    *m = n;
    return ILM_OK;
}

ilm_status ilm__strmap_put(ilm__strmap *m, const char *key, size_t len, int32_t val)
{
    ILM_RETURN_IF(len > UINT32_MAX, ILM_ERR_RANGE, "hash map: key of %zu bytes", len);
    if (2 * (m->count + 1) > m->cap) ILM_FORWARD(strmap_grow(m));
    size_t j = ilm__hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) {
            m->vals[j] = val;
            return ILM_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key ? key : "";
    m->lens[j] = (uint32_t)len;
    m->vals[j] = val;
    m->count++;
    return ILM_OK;
}

int32_t ilm__strmap_get(const ilm__strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    size_t j = ilm__hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && memcmp(m->keys[j], key, len) == 0) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void ilm__strmap_free(ilm__strmap *m)
{
    ilm__free((void *)m->keys);
    ilm__free(m->lens);
    ilm__free(m->vals);
    *m = (ilm__strmap){ 0 };
}

static ilm_status u64map_grow(ilm__u64map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    ilm__u64map n = { 0 };
    n.keys = ilm__malloc(cap * sizeof *n.keys);
    n.vals = ilm__malloc(cap * sizeof *n.vals);
    if (!n.keys || !n.vals) {
        ilm__u64map_free(&n);
        return ilm__error(ILM_ERR_NOMEM, "hash map: cannot grow to %zu slots", cap);
    }
    memset(n.vals, 0xff, cap * sizeof *n.vals); /* all -1: empty */
    n.cap = cap;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i] >= 0) {
            size_t j = mix64(m->keys[i]) & (cap - 1);
            while (n.vals[j] >= 0) j = (j + 1) & (cap - 1);
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
        }
    n.count = m->count;
    ilm__u64map_free(m);
    *m = n;
    return ILM_OK;
}

ilm_status ilm__u64map_put(ilm__u64map *m, uint64_t key, int32_t val)
{
    ILM_RETURN_IF(val < 0, ILM_ERR_INTERNAL, "hash map: negative value");
    if (2 * (m->count + 1) > m->cap) ILM_FORWARD(u64map_grow(m));
    size_t j = mix64(key) & (m->cap - 1);
    while (m->vals[j] >= 0) {
        if (m->keys[j] == key) {
            m->vals[j] = val;
            return ILM_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->count++;
    return ILM_OK;
}

int32_t ilm__u64map_get(const ilm__u64map *m, uint64_t key)
{
    if (!m->cap) return -1;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->vals[j] >= 0) {
        if (m->keys[j] == key) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void ilm__u64map_free(ilm__u64map *m)
{
    ilm__free(m->keys);
    ilm__free(m->vals);
    *m = (ilm__u64map){ 0 };
}
