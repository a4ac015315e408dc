/*
 * src/formats/ -- the file formats weights and tokenizers arrive in.
 *
 * gguf.c reads GGUF (see gguf.h for the layout).  Every length, count and
 * offset in the file is checked against the bytes that remain before it is
 * used, in the order the file is read, so a file that lies about a count
 * is rejected before anything is allocated for it.
 */
#include "formats/gguf.h"

#include <string.h>

/* ---- bounds-checked reading ---------------------------------------------- */

/* A cursor over the mapping.  Every read checks the remaining bytes first;
 * the file is little-endian, as is every host this library builds for. */
typedef struct reader {
    const uint8_t *p;
    size_t         size, pos;
    const char    *path;
} reader;

static size_t left(const reader *r) { return r->size - r->pos; }

static ilm_status need(reader *r, uint64_t n, const char *what)
{
    ILM__RETURN_IF(n > left(r), ILM_ERR_FORMAT,
                   "gguf: '%s': %s needs %llu bytes at offset %zu but the file has %zu",
                   r->path, what, (unsigned long long)n, r->pos, r->size);
    return ILM_OK;
}

static ilm_status rd_u32(reader *r, uint32_t *v, const char *what)
{
    ILM__FORWARD(need(r, 4, what));
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return ILM_OK;
}

static ilm_status rd_u64(reader *r, uint64_t *v, const char *what)
{
    ILM__FORWARD(need(r, 8, what));
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return ILM_OK;
}

static ilm_status rd_str(reader *r, ilm__gguf_str *s, const char *what)
{
    uint64_t n;
    ILM__FORWARD(rd_u64(r, &n, what));
    ILM__FORWARD(need(r, n, what));
    s->p = (const char *)r->p + r->pos;
    s->n = (size_t)n;
    r->pos += (size_t)n;
    return ILM_OK;
}

/* Size of one element of a fixed-size value type, 0 for string/array,
 * -1 for an unknown type. */
static int scalar_size(uint32_t type)
{
    switch (type) {
    case ILM__GGUF_U8: case ILM__GGUF_I8: case ILM__GGUF_BOOL: return 1;
    case ILM__GGUF_U16: case ILM__GGUF_I16: return 2;
    case ILM__GGUF_U32: case ILM__GGUF_I32: case ILM__GGUF_F32: return 4;
    case ILM__GGUF_U64: case ILM__GGUF_I64: case ILM__GGUF_F64: return 8;
    case ILM__GGUF_STRING: case ILM__GGUF_ARRAY: return 0;
    default: return -1;
    }
}

/* Nesting deeper than this is no real file's and would only let a crafted
 * one recurse without bound. */
#define MAX_ARRAY_DEPTH 8

/* Skips over (validates) one value of `type`; `key` names it in messages. */
static ilm_status skip_value(reader *r, uint32_t type, const char *key, int depth)
{
    int sz = scalar_size(type);
    ILM__RETURN_IF(sz < 0, ILM_ERR_FORMAT, "gguf: '%s': key '%s' has unknown value type %u",
                   r->path, key, type);
    if (sz > 0) {
        ILM__FORWARD(need(r, (uint64_t)sz, key));
        r->pos += (size_t)sz;
        return ILM_OK;
    }
    if (type == ILM__GGUF_STRING) {
        ilm__gguf_str s;
        return rd_str(r, &s, key);
    }
    ILM__RETURN_IF(depth >= MAX_ARRAY_DEPTH, ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' nests arrays deeper than %d", r->path, key,
                   MAX_ARRAY_DEPTH);
    uint32_t et;
    uint64_t n;
    ILM__FORWARD(rd_u32(r, &et, key));
    ILM__FORWARD(rd_u64(r, &n, key));
    int esz = scalar_size(et);
    ILM__RETURN_IF(esz < 0, ILM_ERR_FORMAT,
                   "gguf: '%s': array '%s' has unknown element type %u", r->path, key, et);
    /* The smallest encoding of an element bounds the count before any
     * loop runs: 8 bytes for a string, 12 for a nested array. */
    uint64_t min = esz > 0 ? (uint64_t)esz : et == ILM__GGUF_STRING ? 8 : 12;
    ILM__RETURN_IF(n > left(r) / min, ILM_ERR_FORMAT,
                   "gguf: '%s': array '%s' claims %llu elements but only %zu bytes remain",
                   r->path, key, (unsigned long long)n, left(r));
    if (esz > 0) {
        r->pos += (size_t)(n * (uint64_t)esz);
        return ILM_OK;
    }
    for (uint64_t i = 0; i < n; i++) ILM__FORWARD(skip_value(r, et, key, depth + 1));
    return ILM_OK;
}

/* ---- opening --------------------------------------------------------------- */

/* A key as a NUL-terminated string for messages (truncated). */
static const char *key_c(ilm__gguf_str s, char *buf, size_t cap)
{
    size_t n = s.n < cap - 1 ? s.n : cap - 1;
    memcpy(buf, s.p, n);
    buf[n] = '\0';
    return buf;
}

static ilm_status read_kvs(ilm__gguf *g, reader *r, ilm__strmap *keys)
{
    char kb[128];
    for (uint64_t i = 0; i < g->n_kv; i++) {
        ilm__gguf_kv *kv = &g->kv[i];
        ILM__FORWARD(rd_str(r, &kv->key, "KV key"));
        const char *k = key_c(kv->key, kb, sizeof kb);
        ILM__RETURN_IF(ilm__strmap_get(keys, kv->key.p, kv->key.n) >= 0, ILM_ERR_FORMAT,
                       "gguf: '%s': duplicate key '%s'", g->path, k);
        ILM__FORWARD(ilm__strmap_put(keys, kv->key.p, kv->key.n, (int32_t)i));
        ILM__FORWARD(rd_u32(r, &kv->type, k));
        size_t start = r->pos;
        kv->data = r->p + start;
        if (kv->type == ILM__GGUF_ARRAY) {
            ILM__FORWARD(need(r, 12, k));
            memcpy(&kv->elem_type, r->p + start, 4);
            memcpy(&kv->count, r->p + start + 4, 8);
            kv->data = r->p + start + 12;
        }
        ILM__FORWARD(skip_value(r, kv->type, k, 0));
        kv->size = r->pos - start;
    }
    return ILM_OK;
}

static ilm_status read_tensors(ilm__gguf *g, reader *r, ilm__strmap *names)
{
    char nb[128];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ilm__gguf_tensor *t = &g->tensors[i];
        ILM__FORWARD(rd_str(r, &t->name, "tensor name"));
        const char *nm = key_c(t->name, nb, sizeof nb);
        ILM__RETURN_IF(ilm__strmap_get(names, t->name.p, t->name.n) >= 0, ILM_ERR_FORMAT,
                       "gguf: '%s': duplicate tensor '%s'", g->path, nm);
        ILM__FORWARD(ilm__strmap_put(names, t->name.p, t->name.n, (int32_t)i));
        ILM__FORWARD(rd_u32(r, &t->n_dims, nm));
        ILM__RETURN_IF(t->n_dims > ILM__GGUF_MAX_DIMS, ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' has %u dimensions (at most %d)", g->path, nm,
                       t->n_dims, ILM__GGUF_MAX_DIMS);
        /* ggml counts elements in int64_t: a product past INT64_MAX is a
         * lie, whatever the file size. */
        uint64_t n = 1;
        for (uint32_t d = 0; d < ILM__GGUF_MAX_DIMS; d++) {
            t->dims[d] = 1;
            if (d >= t->n_dims) continue;
            ILM__FORWARD(rd_u64(r, &t->dims[d], nm));
            ILM__RETURN_IF(t->dims[d] > (uint64_t)INT64_MAX ||
                              (t->dims[d] && n > (uint64_t)INT64_MAX / t->dims[d]),
                           ILM_ERR_FORMAT, "gguf: '%s': tensor '%s' has absurd dimensions",
                           g->path, nm);
            n *= t->dims[d];
        }
        t->n_elems = n;
        uint32_t ggml_id, block, bytes;
        ILM__FORWARD(rd_u32(r, &ggml_id, nm));
        ILM__RETURN_IF(!ilm__dtype_from_ggml(ggml_id, &t->type), ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' has unknown ggml type %u", g->path, nm, ggml_id);
        ilm__dtype_info(t->type, &block, &bytes);
        ILM__RETURN_IF(t->dims[0] % block != 0, ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' has %llu columns, not a multiple of the "
                       "%s block of %u", g->path, nm, (unsigned long long)t->dims[0],
                       ilm__dtype_name(t->type), block);
        t->n_bytes = n / block * bytes; /* n / block <= INT64_MAX / 32: no overflow */
        ILM__RETURN_IF(n / block > UINT64_MAX / bytes, ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' has absurd dimensions", g->path, nm);
        ILM__FORWARD(rd_u64(r, &t->offset, nm));
    }
    return ILM_OK;
}

/* Checks alignment and extent of every tensor now that the data section's
 * start is known. */
static ilm_status place_tensors(ilm__gguf *g)
{
    char nb[128];
    uint64_t avail = g->map.size >= g->data_start ? g->map.size - g->data_start : 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        ilm__gguf_tensor *t = &g->tensors[i];
        const char *nm = key_c(t->name, nb, sizeof nb);
        ILM__RETURN_IF(t->offset % g->alignment != 0, ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' at offset %llu is not aligned to %llu", g->path,
                       nm, (unsigned long long)t->offset, (unsigned long long)g->alignment);
        ILM__RETURN_IF(t->offset > avail || t->n_bytes > avail - t->offset, ILM_ERR_FORMAT,
                       "gguf: '%s': tensor '%s' (%llu bytes at data offset %llu) ends past "
                       "the end of the file (%llu data bytes)", g->path, nm,
                       (unsigned long long)t->n_bytes, (unsigned long long)t->offset,
                       (unsigned long long)avail);
        t->data = g->map.data + g->data_start + t->offset;
    }
    return ILM_OK;
}

static ilm_status open_checked(ilm__gguf *g, ilm__strmap *keys, ilm__strmap *names)
{
    reader r = { g->map.data, g->map.size, 0, g->path };
    uint32_t magic;
    ILM__RETURN_IF(g->map.size < 4 || memcmp(g->map.data, "GGUF", 4) != 0, ILM_ERR_FORMAT,
                   "gguf: '%s' does not start with the magic \"GGUF\"", g->path);
    ILM__FORWARD(rd_u32(&r, &magic, "magic"));
    ILM__FORWARD(rd_u32(&r, &g->version, "version"));
    /* A big-endian file reads its small version number byte-swapped. */
    ILM__RETURN_IF(g->version >= 0x10000u, ILM_ERR_UNSUPPORTED,
                   "gguf: '%s' is big-endian (version field 0x%08x)", g->path, g->version);
    ILM__RETURN_IF(g->version != 2 && g->version != 3, ILM_ERR_UNSUPPORTED,
                   "gguf: '%s' has version %u (2 and 3 are supported)", g->path, g->version);
    ILM__FORWARD(rd_u64(&r, &g->n_tensors, "tensor count"));
    ILM__FORWARD(rd_u64(&r, &g->n_kv, "KV count"));
    /* Smallest encodings: a KV is 8 (key length) + 4 (type) + 1 bytes, a
     * tensor info 8 + 4 + 4 + 8 bytes, so counts beyond these bounds are
     * lies and allocating for them would only waste memory. */
    ILM__RETURN_IF(g->n_kv > left(&r) / 13, ILM_ERR_FORMAT,
                   "gguf: '%s' claims %llu KVs but has only %zu bytes left", g->path,
                   (unsigned long long)g->n_kv, left(&r));
    ILM__RETURN_IF(g->n_tensors > left(&r) / 24, ILM_ERR_FORMAT,
                   "gguf: '%s' claims %llu tensors but has only %zu bytes left", g->path,
                   (unsigned long long)g->n_tensors, left(&r));
    g->kv = ilm__calloc(g->n_kv ? (size_t)g->n_kv : 1, sizeof *g->kv);
    g->tensors = ilm__calloc(g->n_tensors ? (size_t)g->n_tensors : 1, sizeof *g->tensors);
    ILM__RETURN_IF(!g->kv || !g->tensors, ILM_ERR_NOMEM, "gguf: '%s': out of memory", g->path);
    ILM__FORWARD(read_kvs(g, &r, keys));

    g->alignment = 32;
    const ilm__gguf_kv *al = ilm__gguf_find_kv(g, "general.alignment");
    if (al) {
        ILM__RETURN_IF(al->type != ILM__GGUF_U32, ILM_ERR_FORMAT,
                       "gguf: '%s': key 'general.alignment' must be a u32", g->path);
        uint32_t a;
        memcpy(&a, al->data, 4);
        ILM__RETURN_IF(a == 0 || (a & (a - 1)) != 0, ILM_ERR_FORMAT,
                       "gguf: '%s': key 'general.alignment' is %u, not a power of two",
                       g->path, a);
        g->alignment = a;
    }
    ILM__FORWARD(read_tensors(g, &r, names));
    g->data_start = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
    ILM__RETURN_IF(g->n_tensors && g->data_start > g->map.size, ILM_ERR_FORMAT,
                   "gguf: '%s': the data section would start at %llu, past the end (%zu)",
                   g->path, (unsigned long long)g->data_start, g->map.size);
    return place_tensors(g);
}

/* Lookup tables by name, kept beside the handle (keys borrow the mapping). */
typedef struct gguf_full {
    ilm__gguf   g;
    ilm__strmap keys, names;
} gguf_full;

ilm_status ilm__gguf_open(const char *path, ilm__gguf **out)
{
    *out = NULL;
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "gguf: path is NULL");
    gguf_full *f = ilm__calloc(1, sizeof *f);
    ILM__RETURN_IF(!f, ILM_ERR_NOMEM, "gguf: out of memory");
    f->g.path = ilm__strdup(path);
    ilm_status s = f->g.path ? ilm__mmap_open(path, &f->g.map)
                             : ilm__error(ILM_ERR_NOMEM, "gguf: out of memory");
    if (s == ILM_OK) s = open_checked(&f->g, &f->keys, &f->names);
    if (s != ILM_OK) {
        ilm__gguf_close(&f->g);
        return s;
    }
    *out = &f->g;
    return ILM_OK;
}

void ilm__gguf_close(ilm__gguf *g)
{
    if (!g) return;
    gguf_full *f = (gguf_full *)g; /* g is the first member */
    ilm__strmap_free(&f->keys);
    ilm__strmap_free(&f->names);
    ilm__mmap_close(&g->map);
    ilm__free(g->kv);
    ilm__free(g->tensors);
    ilm__free(g->path);
    ilm__free(f);
}

/* ---- lookups and getters ------------------------------------------------- */

const ilm__gguf_kv *ilm__gguf_find_kv(const ilm__gguf *g, const char *key)
{
    const gguf_full *f = (const gguf_full *)g;
    int32_t i = ilm__strmap_get(&f->keys, key, strlen(key));
    return i < 0 ? NULL : &g->kv[i];
}

const ilm__gguf_tensor *ilm__gguf_find_tensor(const ilm__gguf *g, const char *name)
{
    const gguf_full *f = (const gguf_full *)g;
    int32_t i = ilm__strmap_get(&f->names, name, strlen(name));
    return i < 0 ? NULL : &g->tensors[i];
}

bool ilm__gguf_str_eq(ilm__gguf_str s, const char *c)
{
    size_t n = strlen(c);
    return s.n == n && memcmp(s.p, c, n) == 0;
}

static bool is_int_type(uint32_t t)
{
    return t <= ILM__GGUF_I32 || t == ILM__GGUF_U64 || t == ILM__GGUF_I64;
}

/* Reads an integer of type t at p; u64 values past INT64_MAX saturate so
 * that range checks reject them. */
static int64_t read_int(uint32_t t, const uint8_t *p)
{
    switch (t) {
    case ILM__GGUF_U8: return p[0];
    case ILM__GGUF_I8: return (int8_t)p[0];
    case ILM__GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case ILM__GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case ILM__GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case ILM__GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case ILM__GGUF_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case ILM__GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    default: return 0;
    }
}

static ilm_status get_int(const ilm__gguf *g, const char *key, int64_t min, int64_t max,
                          int64_t *out)
{
    const ilm__gguf_kv *kv = ilm__gguf_find_kv(g, key);
    if (!kv) return ILM_ERR_NOT_FOUND;
    ILM__RETURN_IF(!is_int_type(kv->type), ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' has value type %u, not an integer", g->path, key,
                   kv->type);
    int64_t v = read_int(kv->type, kv->data);
    ILM__RETURN_IF(v < min || v > max, ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' is %lld, out of range", g->path, key, (long long)v);
    *out = v;
    return ILM_OK;
}

ilm_status ilm__gguf_get_u32(const ilm__gguf *g, const char *key, uint32_t *out)
{
    int64_t v;
    ilm_status s = get_int(g, key, 0, UINT32_MAX, &v);
    if (s == ILM_OK) *out = (uint32_t)v;
    return s;
}

ilm_status ilm__gguf_get_i32(const ilm__gguf *g, const char *key, int32_t *out)
{
    int64_t v;
    ilm_status s = get_int(g, key, INT32_MIN, INT32_MAX, &v);
    if (s == ILM_OK) *out = (int32_t)v;
    return s;
}

ilm_status ilm__gguf_get_f32(const ilm__gguf *g, const char *key, float *out)
{
    const ilm__gguf_kv *kv = ilm__gguf_find_kv(g, key);
    if (!kv) return ILM_ERR_NOT_FOUND;
    if (kv->type == ILM__GGUF_F32) {
        memcpy(out, kv->data, 4);
    } else if (kv->type == ILM__GGUF_F64) {
        double d;
        memcpy(&d, kv->data, 8);
        *out = (float)d;
    } else {
        return ilm__error(ILM_ERR_FORMAT, "gguf: '%s': key '%s' has value type %u, not a float",
                          g->path, key, kv->type);
    }
    return ILM_OK;
}

ilm_status ilm__gguf_get_bool(const ilm__gguf *g, const char *key, bool *out)
{
    const ilm__gguf_kv *kv = ilm__gguf_find_kv(g, key);
    if (!kv) return ILM_ERR_NOT_FOUND;
    ILM__RETURN_IF(kv->type != ILM__GGUF_BOOL, ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' has value type %u, not a bool", g->path, key, kv->type);
    ILM__RETURN_IF(kv->data[0] > 1, ILM_ERR_FORMAT, "gguf: '%s': key '%s' is bool %u",
                   g->path, key, kv->data[0]);
    *out = kv->data[0] != 0;
    return ILM_OK;
}

ilm_status ilm__gguf_get_str(const ilm__gguf *g, const char *key, ilm__gguf_str *out)
{
    const ilm__gguf_kv *kv = ilm__gguf_find_kv(g, key);
    if (!kv) return ILM_ERR_NOT_FOUND;
    ILM__RETURN_IF(kv->type != ILM__GGUF_STRING, ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' has value type %u, not a string", g->path, key,
                   kv->type);
    out->p = (const char *)kv->data + 8;
    out->n = kv->size - 8;
    return ILM_OK;
}

ilm_status ilm__gguf_get_arr(const ilm__gguf *g, const char *key, uint32_t elem_type,
                             const ilm__gguf_kv **out)
{
    const ilm__gguf_kv *kv = ilm__gguf_find_kv(g, key);
    if (!kv) return ILM_ERR_NOT_FOUND;
    ILM__RETURN_IF(kv->type != ILM__GGUF_ARRAY || kv->elem_type != elem_type, ILM_ERR_FORMAT,
                   "gguf: '%s': key '%s' is not an array of value type %u", g->path, key,
                   elem_type);
    *out = kv;
    return ILM_OK;
}

int64_t ilm__gguf_arr_int(const ilm__gguf_kv *kv, uint64_t i)
{
    int sz = scalar_size(kv->elem_type);
    if (!is_int_type(kv->elem_type) && kv->elem_type != ILM__GGUF_BOOL) return 0;
    if (kv->elem_type == ILM__GGUF_BOOL) return kv->data[i];
    return read_int(kv->elem_type, kv->data + i * (uint64_t)sz);
}

double ilm__gguf_arr_float(const ilm__gguf_kv *kv, uint64_t i)
{
    if (kv->elem_type == ILM__GGUF_F32) {
        float f;
        memcpy(&f, kv->data + i * 4, 4);
        return f;
    }
    if (kv->elem_type == ILM__GGUF_F64) {
        double d;
        memcpy(&d, kv->data + i * 8, 8);
        return d;
    }
    return (double)ilm__gguf_arr_int(kv, i);
}

void ilm__gguf_arr_next_str(const ilm__gguf_kv *kv, size_t *cursor, ilm__gguf_str *out)
{
    uint64_t n;
    memcpy(&n, kv->data + *cursor, 8);
    out->p = (const char *)kv->data + *cursor + 8;
    out->n = (size_t)n;
    *cursor += 8 + (size_t)n;
}
