/*
 * src/formats/gguf.h -- a reader for GGUF files (the ggml project's
 * container for llama.cpp models), versions 2 and 3, little-endian.
 *
 * Layout (ggml/docs/gguf.md): magic "GGUF", version u32, tensor count u64,
 * KV count u64; then the KVs (key string, value type u32, value); then the
 * tensor infos (name string, n_dims u32, n_dims dims u64, ggml type u32,
 * offset u64 relative to the data section); then padding up to
 * `general.alignment` (default 32) and the data section.  A string is a
 * u64 length and that many bytes (no NUL).  An array value is an element
 * type u32, a count u64 and the elements; arrays may nest.
 *
 * ilm__gguf_open maps the file and validates all of it against the file
 * size before anything is handed out, so the getters below never read out
 * of bounds and need no further checks.  Nothing is copied: strings and
 * tensor data point into the mapping and live until ilm__gguf_close.
 * A gguf handle is immutable after opening; any number of threads may read
 * it at once.
 */
#ifndef ILM_FORMATS_GGUF_H
#define ILM_FORMATS_GGUF_H

#include "core/internal.h"
#include "tensor/dtype.h"

/* Value types, numbered as in the GGUF specification. */
typedef enum ilm__gguf_type {
    ILM__GGUF_U8 = 0, ILM__GGUF_I8 = 1, ILM__GGUF_U16 = 2, ILM__GGUF_I16 = 3,
    ILM__GGUF_U32 = 4, ILM__GGUF_I32 = 5, ILM__GGUF_F32 = 6, ILM__GGUF_BOOL = 7,
    ILM__GGUF_STRING = 8, ILM__GGUF_ARRAY = 9, ILM__GGUF_U64 = 10,
    ILM__GGUF_I64 = 11, ILM__GGUF_F64 = 12
} ilm__gguf_type;

/* A string inside the file: not NUL-terminated. */
typedef struct ilm__gguf_str {
    const char *p;
    size_t      n;
} ilm__gguf_str;

typedef struct ilm__gguf_kv {
    ilm__gguf_str key;
    uint32_t      type;     /* ilm__gguf_type */
    /* Scalars: `data` points at the value's bytes.  Strings: at the u64
     * length.  Arrays: at the first element, with elem_type and count. */
    const uint8_t *data;
    uint32_t       elem_type;
    uint64_t       count;
    size_t         size;    /* bytes of the value as encoded (after the type) */
} ilm__gguf_kv;

#define ILM__GGUF_MAX_DIMS 4

typedef struct ilm__gguf_tensor {
    ilm__gguf_str  name;
    uint32_t       n_dims;
    uint64_t       dims[ILM__GGUF_MAX_DIMS]; /* ggml order: dims[0] is the
                                                 fastest-varying; unused = 1 */
    uint32_t       type;      /* ilm__dtype, known */
    uint64_t       offset;    /* from the data section start */
    uint64_t       n_elems;
    uint64_t       n_bytes;
    const uint8_t *data;      /* inside the mapping, aligned as the file says */
} ilm__gguf_tensor;

typedef struct ilm__gguf {
    char             *path;   /* for messages */
    ilm__mmap         map;
    uint32_t          version;
    uint64_t          n_kv;
    ilm__gguf_kv     *kv;
    uint64_t          n_tensors;
    ilm__gguf_tensor *tensors;
    uint64_t          alignment;
    uint64_t          data_start; /* file offset of the data section */
} ilm__gguf;

/* Maps and validates the file at `path`; *out is freed with
 * ilm__gguf_close.  ILM_ERR_IO if it cannot be read, ILM_ERR_FORMAT (the
 * message names the file and the key or tensor) if anything in it is
 * inconsistent, ILM_ERR_UNSUPPORTED for a version other than 2 or 3 or a
 * big-endian file. */
ilm_status ilm__gguf_open(const char *path, ilm__gguf **out);
void       ilm__gguf_close(ilm__gguf *g);

/* The KV named `key` (NUL-terminated), or NULL. */
const ilm__gguf_kv *ilm__gguf_find_kv(const ilm__gguf *g, const char *key);

/* Typed getters.  Each returns ILM_ERR_NOT_FOUND (no message set) when the
 * key is absent, so optional keys read as
 *     s = ilm__gguf_get_u32(g, "k", &v); if (s != ILM_OK && s != ILM_ERR_NOT_FOUND) ...
 * and ILM_ERR_FORMAT naming the key when its type does not fit.  The
 * integer getters accept any integer type whose value fits. */
ilm_status ilm__gguf_get_u32(const ilm__gguf *g, const char *key, uint32_t *out);
ilm_status ilm__gguf_get_i32(const ilm__gguf *g, const char *key, int32_t *out);
ilm_status ilm__gguf_get_f32(const ilm__gguf *g, const char *key, float *out);
ilm_status ilm__gguf_get_bool(const ilm__gguf *g, const char *key, bool *out);
ilm_status ilm__gguf_get_str(const ilm__gguf *g, const char *key, ilm__gguf_str *out);
/* An array of element type `elem_type` (ILM_ERR_FORMAT otherwise). */
ilm_status ilm__gguf_get_arr(const ilm__gguf *g, const char *key, uint32_t elem_type,
                             const ilm__gguf_kv **out);

/* Element i of a numeric array, converted.  The caller checks i < count. */
int64_t ilm__gguf_arr_int(const ilm__gguf_kv *kv, uint64_t i);
double  ilm__gguf_arr_float(const ilm__gguf_kv *kv, uint64_t i);
/* Walks a string array: *cursor starts at 0 and is advanced past the
 * string returned in *out.  At most `count` calls. */
void    ilm__gguf_arr_next_str(const ilm__gguf_kv *kv, size_t *cursor, ilm__gguf_str *out);

/* The tensor named `name`, or NULL. */
const ilm__gguf_tensor *ilm__gguf_find_tensor(const ilm__gguf *g, const char *name);

/* Whether a GGUF string equals a C string. */
bool ilm__gguf_str_eq(ilm__gguf_str s, const char *c);

#endif /* ILM_FORMATS_GGUF_H */
