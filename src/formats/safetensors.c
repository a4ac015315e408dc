/*
 * safetensors.c -- Hugging Face safetensors (see safetensors.h for the
 * layout).  A header is checked completely (size, UTF-8, JSON, every entry's
 * dtype, shape, byte count and offsets, no overlap) before any tensor is
 * exposed; the reference reader (huggingface/safetensors) is the model for
 * what is valid, with two deliberate differences: a duplicate tensor name
 * is an error here (the reference silently keeps the last), and gaps or
 * trailing bytes in the data section are tolerated (the reference refuses
 * them; they cannot make a tensor read out of bounds).
 */
#include "formats/safetensors.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- dtypes ----------------------------------------------------------------- */

typedef struct st_dtype {
    const char *name;
    uint32_t    bits;  /* per element; F4 and F6 pack below a byte */
    uint32_t    type;  /* ggml id, or UINT32_MAX */
} st_dtype;

/* Every dtype the reference reader (safetensors 0.8) accepts. */
static const st_dtype st_dtypes[] = {
    { "F32", 32, ILM__DTYPE_F32 },      { "F16", 16, ILM__DTYPE_F16 },
    { "BF16", 16, ILM__DTYPE_BF16 },    { "F64", 64, UINT32_MAX },
    { "I64", 64, UINT32_MAX },         { "U64", 64, UINT32_MAX },
    { "I32", 32, UINT32_MAX },         { "U32", 32, UINT32_MAX },
    { "I16", 16, UINT32_MAX },         { "U16", 16, UINT32_MAX },
    { "I8", 8, UINT32_MAX },           { "U8", 8, UINT32_MAX },
    { "BOOL", 8, UINT32_MAX },         { "C64", 64, UINT32_MAX },
    { "F8_E5M2", 8, UINT32_MAX },      { "F8_E4M3", 8, UINT32_MAX },
    { "F8_E8M0", 8, UINT32_MAX },      { "F8_E4M3FNUZ", 8, UINT32_MAX },
    { "F8_E5M2FNUZ", 8, UINT32_MAX },  { "F6_E2M3", 6, UINT32_MAX },
    { "F6_E3M2", 6, UINT32_MAX },      { "F4", 4, UINT32_MAX },
};

static const st_dtype *dtype_by_name(const char *s)
{
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return &st_dtypes[i];
    return NULL;
}

/* The writer's dtypes: the float types, and raw bytes (bitsandbytes' packed
 * 4-bit codes and its JSON quant_state are U8 tensors).  A U8 tensor read
 * back is still type UINT32_MAX (see safetensors.h). */
static const st_dtype st_u8_out = { "U8", 8, ILM__DTYPE_U8 };

static const st_dtype *dtype_by_type(uint32_t type)
{
    if (type == UINT32_MAX) return NULL;
    if (type == ILM__DTYPE_U8) return &st_u8_out;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].type == type) return &st_dtypes[i];
    return NULL;
}

/* ---- the handle ------------------------------------------------------------- */

typedef struct st_file {
    char         *path;   /* for messages */
    ilm__mmap     map;
    cJSON        *header;
    const cJSON  *meta;   /* "__metadata__" inside header, or NULL */
} st_file;

struct ilm__safetensors {
    st_file        *files;
    size_t          n_files;
    ilm__st_tensor *tensors;
    size_t          n_tensors, cap_tensors;
    uint32_t       *file_of;   /* per tensor: index into files */
    ilm__strmap     by_name;   /* name -> tensor index; keys in the headers */
};

void ilm__st_close(ilm__safetensors *st)
{
    if (!st) return;
    for (size_t i = 0; i < st->n_files; i++) {
        ilm__free(st->files[i].path);
        ilm__mmap_close(&st->files[i].map);
        cJSON_Delete(st->files[i].header);
    }
    ilm__free(st->files);
    ilm__free(st->tensors);
    ilm__free(st->file_of);
    ilm__strmap_free(&st->by_name);
    ilm__free(st);
}

size_t ilm__st_count(const ilm__safetensors *st) { return st ? st->n_tensors : 0; }

const ilm__st_tensor *ilm__st_get(const ilm__safetensors *st, size_t i)
{
    return st && i < st->n_tensors ? &st->tensors[i] : NULL;
}

const ilm__st_tensor *ilm__st_find(const ilm__safetensors *st, const char *name)
{
    if (!st || !name) return NULL;
    int32_t i = ilm__strmap_get(&st->by_name, name, strlen(name));
    return i < 0 ? NULL : &st->tensors[i];
}

const char *ilm__st_metadata(const ilm__safetensors *st, const char *key)
{
    if (!st || !key) return NULL;
    for (size_t i = 0; i < st->n_files; i++) {
        const cJSON *v = st->files[i].meta
                             ? cJSON_GetObjectItemCaseSensitive(st->files[i].meta, key)
                             : NULL;
        if (cJSON_IsString(v)) return v->valuestring;
    }
    return NULL;
}

/* ---- reading one file ------------------------------------------------------- */

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON number that is an exact non-negative integer.  cJSON keeps numbers
 * as doubles, which are exact up to 2^53: far beyond any file offset. */
static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

/* Entry `e` (named `name`) of file `f` into *t; `data_size` is the size of
 * the data section, `data` its start. */
static ilm_status parse_entry(const st_file *f, const char *name, const cJSON *e,
                              const uint8_t *data, uint64_t data_size,
                              ilm__st_tensor *t, uint64_t *begin)
{
    const char *fp = f->path;
    ILM__RETURN_IF(!cJSON_IsObject(e), ILM_ERR_FORMAT,
                   "%s: tensor '%s': entry is not an object", fp, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    ILM__RETURN_IF(!cJSON_IsString(dt), ILM_ERR_FORMAT,
                   "%s: tensor '%s': \"dtype\" is missing or not a string", fp, name);
    const st_dtype *d = dtype_by_name(dt->valuestring);
    ILM__RETURN_IF(!d, ILM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", fp, name,
                   dt->valuestring);
    ILM__RETURN_IF(!cJSON_IsArray(shape), ILM_ERR_FORMAT,
                   "%s: tensor '%s': \"shape\" is missing or not an array", fp, name);
    int n_dims = cJSON_GetArraySize(shape);
    ILM__RETURN_IF(n_dims > ILM__ST_MAX_DIMS, ILM_ERR_UNSUPPORTED,
                   "%s: tensor '%s' has %d dimensions; at most %d are supported", fp, name,
                   n_dims, ILM__ST_MAX_DIMS);
    *t = (ilm__st_tensor){ .name = name, .type = d->type, .dtype = d->name,
                           .n_dims = n_dims };
    uint64_t n_elems = 1;
    for (int i = 0; i < ILM__ST_MAX_DIMS; i++) t->shape[i] = 1;
    for (int i = 0; i < n_dims; i++) {
        uint64_t dim;
        ILM__RETURN_IF(!json_uint(cJSON_GetArrayItem(shape, i), &dim), ILM_ERR_FORMAT,
                       "%s: tensor '%s': shape[%d] is not a non-negative integer", fp, name, i);
        ILM__RETURN_IF(__builtin_mul_overflow(n_elems, dim, &n_elems), ILM_ERR_FORMAT,
                       "%s: tensor '%s': the shape's element count overflows", fp, name);
        t->shape[i] = (int64_t)dim;
    }
    uint64_t n_bits;
    ILM__RETURN_IF(__builtin_mul_overflow(n_elems, (uint64_t)d->bits, &n_bits), ILM_ERR_FORMAT,
                   "%s: tensor '%s': the shape's byte count overflows", fp, name);
    ILM__RETURN_IF(n_bits % 8 != 0, ILM_ERR_FORMAT,
                   "%s: tensor '%s': %llu elements of %s do not fill whole bytes", fp, name,
                   (unsigned long long)n_elems, d->name);

    uint64_t b, en;
    ILM__RETURN_IF(!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
                      !json_uint(cJSON_GetArrayItem(offs, 0), &b) ||
                      !json_uint(cJSON_GetArrayItem(offs, 1), &en),
                   ILM_ERR_FORMAT,
                   "%s: tensor '%s': \"data_offsets\" is not two non-negative integers", fp,
                   name);
    ILM__RETURN_IF(b > en, ILM_ERR_FORMAT,
                   "%s: tensor '%s' begins at byte %llu, after its end %llu", fp, name,
                   (unsigned long long)b, (unsigned long long)en);
    ILM__RETURN_IF(en > data_size, ILM_ERR_FORMAT,
                   "%s: tensor '%s' ends at byte %llu but the data section has %llu", fp, name,
                   (unsigned long long)en, (unsigned long long)data_size);
    ILM__RETURN_IF(en - b != n_bits / 8, ILM_ERR_FORMAT,
                   "%s: tensor '%s' has %llu bytes but its %s shape needs %llu", fp, name,
                   (unsigned long long)(en - b), d->name, (unsigned long long)(n_bits / 8));
    t->data = data + b;
    t->n_bytes = en - b;
    *begin = b;
    return ILM_OK;
}

typedef struct span {
    uint64_t begin, end;
    size_t   index; /* into the tensors of this file, header order */
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static ilm_status grow_tensors(ilm__safetensors *st, size_t more)
{
    if (st->n_tensors + more <= st->cap_tensors) return ILM_OK;
    size_t cap = st->cap_tensors ? st->cap_tensors : 64;
    while (cap < st->n_tensors + more) cap *= 2;
    ilm__st_tensor *t = ilm__realloc(st->tensors, cap * sizeof *t);
    ILM__RETURN_IF(!t, ILM_ERR_NOMEM, "safetensors: out of memory");
    st->tensors = t;
    uint32_t *fo = ilm__realloc(st->file_of, cap * sizeof *fo);
    ILM__RETURN_IF(!fo, ILM_ERR_NOMEM, "safetensors: out of memory");
    st->file_of = fo;
    st->cap_tensors = cap;
    return ILM_OK;
}

/* Validates the header of files[fi] (already mapped) and appends its
 * tensors, ordered by data offset. */
static ilm_status parse_header(ilm__safetensors *st, size_t fi)
{
    st_file *f = &st->files[fi];
    const char *fp = f->path;
    const uint8_t *p = f->map.data;
    uint64_t size = f->map.size;
    ILM__RETURN_IF(size < 8, ILM_ERR_FORMAT,
                   "%s: %llu bytes is too short for the 8-byte header length", fp,
                   (unsigned long long)size);
    uint64_t n = read_le64(p);
    ILM__RETURN_IF(n > ILM__ST_MAX_HEADER, ILM_ERR_FORMAT,
                   "%s: header length %llu exceeds the %u-byte limit", fp,
                   (unsigned long long)n, ILM__ST_MAX_HEADER);
    ILM__RETURN_IF(n > size - 8, ILM_ERR_FORMAT,
                   "%s: header length %llu but only %llu bytes follow it", fp,
                   (unsigned long long)n, (unsigned long long)(size - 8));
    const char *h = (const char *)p + 8;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = ilm__utf8_decode(h + i, n - i, &cp);
        ILM__RETURN_IF(len == 0, ILM_ERR_FORMAT, "%s: header byte %zu is not valid UTF-8", fp,
                       i);
        /* cJSON would end a string at a raw NUL, silently shortening it. */
        ILM__RETURN_IF(cp == 0, ILM_ERR_FORMAT, "%s: header byte %zu is a NUL", fp, i);
        i += len;
    }
    size_t lead = 0;
    while (lead < n && is_json_space(h[lead])) lead++;
    ILM__RETURN_IF(lead == n || h[lead] != '{', ILM_ERR_FORMAT,
                   "%s: the header is not a JSON object", fp);
    const char *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(h, n, &end, false);
    if (!f->header) {
        /* cJSON reports the failure position through its global error
         * pointer too, but end is enough and thread-safe. */
        size_t at = end && end >= h ? (size_t)(end - h) : 0;
        return ilm__error(ILM_ERR_FORMAT, "%s: the header is not valid JSON (near byte %zu)",
                          fp, at);
    }
    for (size_t i = (size_t)(end - h); i < n; i++)
        ILM__RETURN_IF(!is_json_space(h[i]), ILM_ERR_FORMAT,
                       "%s: unexpected bytes after the header's JSON at byte %zu", fp, i);
    ILM__RETURN_IF(!cJSON_IsObject(f->header), ILM_ERR_FORMAT,
                   "%s: the header is not a JSON object", fp);

    const uint8_t *data = p + 8 + n;
    uint64_t data_size = size - 8 - n;
    size_t count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, f->header) count++;
    ILM__FORWARD(grow_tensors(st, count));
    span *spans = ilm__malloc((count ? count : 1) * sizeof *spans);
    ILM__RETURN_IF(!spans, ILM_ERR_NOMEM, "safetensors: out of memory");

    /* Tensors go to a scratch area past the end first, in header order,
     * then are copied back ordered by offset. */
    ilm__st_tensor *scratch = ilm__malloc((count ? count : 1) * sizeof *scratch);
    if (!scratch) {
        ilm__free(spans);
        return ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
    }
    ilm_status s = ILM_OK;
    size_t nt = 0;
    bool seen_meta = false;
    cJSON_ArrayForEach(e, f->header) {
        const char *name = e->string;
        if (strcmp(name, "__metadata__") == 0) {
            if (seen_meta) {
                s = ilm__error(ILM_ERR_FORMAT, "%s: \"__metadata__\" appears twice", fp);
                break;
            }
            seen_meta = true;
            if (cJSON_IsNull(e)) continue;
            if (!cJSON_IsObject(e)) {
                s = ilm__error(ILM_ERR_FORMAT, "%s: \"__metadata__\" is not an object", fp);
                break;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) if (!cJSON_IsString(m)) {
                s = ilm__error(ILM_ERR_FORMAT,
                               "%s: \"__metadata__\" value '%s' is not a string", fp,
                               m->string);
                break;
            }
            if (s != ILM_OK) break;
            f->meta = e;
            continue;
        }
        uint64_t begin = 0;
        s = parse_entry(f, name, e, data, data_size, &scratch[nt], &begin);
        if (s != ILM_OK) break;
        spans[nt] = (span){ begin, begin + scratch[nt].n_bytes, nt };
        nt++;
    }
    if (s == ILM_OK && nt > 0) {
        qsort(spans, nt, sizeof *spans, span_cmp);
        for (size_t i = 1; i < nt && s == ILM_OK; i++)
            if (spans[i].begin < spans[i - 1].end)
                s = ilm__error(ILM_ERR_FORMAT,
                               "%s: tensor '%s' (bytes %llu..%llu) overlaps tensor '%s' "
                               "(bytes %llu..%llu)",
                               fp, scratch[spans[i].index].name,
                               (unsigned long long)spans[i].begin,
                               (unsigned long long)spans[i].end,
                               scratch[spans[i - 1].index].name,
                               (unsigned long long)spans[i - 1].begin,
                               (unsigned long long)spans[i - 1].end);
    }
    for (size_t i = 0; i < nt && s == ILM_OK; i++) {
        const ilm__st_tensor *t = &scratch[spans[i].index];
        size_t len = strlen(t->name);
        int32_t prev = ilm__strmap_get(&st->by_name, t->name, len);
        if (prev >= 0) {
            s = ilm__error(ILM_ERR_FORMAT, "%s: tensor '%s' appears twice (also in %s)", fp,
                           t->name, st->files[st->file_of[prev]].path);
            break;
        }
        if (st->n_tensors >= INT32_MAX) {
            s = ilm__error(ILM_ERR_FORMAT, "%s: too many tensors", fp);
            break;
        }
        s = ilm__strmap_put(&st->by_name, t->name, len, (int32_t)st->n_tensors);
        if (s != ILM_OK) {
            s = ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
            break;
        }
        st->tensors[st->n_tensors] = *t;
        st->file_of[st->n_tensors] = (uint32_t)fi;
        st->n_tensors++;
    }
    ilm__free(spans);
    ilm__free(scratch);
    return s;
}

/* Maps `path` as files[n_files] and reads its header. */
static ilm_status add_file(ilm__safetensors *st, const char *path)
{
    st_file *f = &st->files[st->n_files];
    *f = (st_file){ 0 };
    f->path = ilm__strdup(path);
    ILM__RETURN_IF(!f->path, ILM_ERR_NOMEM, "safetensors: out of memory");
    st->n_files++;
    ILM__FORWARD(ilm__mmap_open(path, &f->map));
    return parse_header(st, st->n_files - 1);
}

/* ---- sharded checkpoints ---------------------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    return ilm__asprintf("%.*s/%s", (int)n, dir, name);
}

/* The first tensor the weight map assigns to `shard`. */
static const char *first_tensor_in(const cJSON *wm, const char *shard)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) if (strcmp(e->valuestring, shard) == 0) return e->string;
    return "?";
}

static bool is_file(const char *path);

/* Opens every shard the index names (each once, in name order) and checks
 * that the index and the shards agree tensor by tensor. */
static ilm_status open_index(ilm__safetensors *st, const char *index_path, const cJSON *idx)
{
    const char *ip = index_path;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map");
    ILM__RETURN_IF(!cJSON_IsObject(wm), ILM_ERR_FORMAT,
                   "%s: \"weight_map\" is missing or not an object", ip);
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        ILM__RETURN_IF(!cJSON_IsString(e), ILM_ERR_FORMAT,
                       "%s: weight_map: tensor '%s' maps to a non-string", ip, e->string);
        const char *s = e->valuestring;
        /* Shards live beside the index: a name that leaves the directory
         * is refused rather than followed. */
        ILM__RETURN_IF(!*s || strchr(s, '/') || strcmp(s, ".") == 0 || strcmp(s, "..") == 0,
                       ILM_ERR_FORMAT, "%s: weight_map: tensor '%s' names shard '%s', not a "
                       "file name in this directory", ip, e->string, s);
        n++;
    }
    ILM__RETURN_IF(n == 0, ILM_ERR_FORMAT, "%s: \"weight_map\" is empty", ip);

    /* The distinct shard names, sorted. */
    const char **names = ilm__malloc(n * sizeof *names);
    ILM__RETURN_IF(!names, ILM_ERR_NOMEM, "safetensors: out of memory");
    size_t k = 0;
    cJSON_ArrayForEach(e, wm) names[k++] = e->valuestring;
    qsort(names, n, sizeof *names, str_cmp);
    size_t n_shards = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[n_shards - 1]) != 0) names[n_shards++] = names[i];

    ilm_status s = ILM_OK;
    st->files = ilm__calloc(n_shards, sizeof *st->files);
    if (!st->files) s = ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
    const char *slash = strrchr(ip, '/');
    char *dir = slash ? ilm__strndup(ip, (size_t)(slash - ip) + (slash == ip)) : ilm__strdup(".");
    if (s == ILM_OK && !dir) s = ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
    for (size_t i = 0; i < n_shards && s == ILM_OK; i++) {
        char *path = join(dir, names[i]);
        if (!path) {
            s = ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
            break;
        }
        /* A shard that is not there is a broken checkpoint, not an I/O
         * accident: say which tensor wanted it. */
        if (!is_file(path))
            s = ilm__error(ILM_ERR_FORMAT, "%s: shard '%s' (of tensor '%s') does not exist",
                           ip, names[i], first_tensor_in(wm, names[i]));
        else
            s = add_file(st, path);
        ilm__free(path);
    }
    ilm__free(dir);

    /* Each listed tensor must be in the shard the index names; the counts
     * then match only if no shard holds a tensor the index does not list. */
    size_t listed = 0;
    cJSON_ArrayForEach(e, wm) {
        if (s != ILM_OK) break;
        const ilm__st_tensor *t = ilm__st_find(st, e->string);
        if (!t) {
            s = ilm__error(ILM_ERR_FORMAT, "%s: tensor '%s' is listed in shard %s but missing "
                           "there", ip, e->string, e->valuestring);
            break;
        }
        const char *in = st->files[st->file_of[t - st->tensors]].path;
        const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
        if (strcmp(base, e->valuestring) != 0) {
            s = ilm__error(ILM_ERR_FORMAT, "%s: tensor '%s' is listed in shard %s but found "
                           "in %s", ip, e->string, e->valuestring, in);
            break;
        }
        listed++;
    }
    if (s == ILM_OK && listed != st->n_tensors) {
        /* Fewer listed names than tensors: find one the index lacks (a name
         * listed twice is caught here too, as a count mismatch). */
        for (size_t i = 0; i < st->n_tensors && s == ILM_OK; i++)
            if (!cJSON_GetObjectItemCaseSensitive(wm, st->tensors[i].name))
                s = ilm__error(ILM_ERR_FORMAT, "%s: tensor '%s' in %s is not in the index's "
                               "weight_map", ip, st->tensors[i].name,
                               st->files[st->file_of[i]].path);
        if (s == ILM_OK)
            s = ilm__error(ILM_ERR_FORMAT, "%s: weight_map lists a tensor more than once", ip);
    }
    ilm__free(names);
    return s;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static ilm_status open_index_file(ilm__safetensors *st, const char *path)
{
    cJSON *idx = NULL;
    ILM__FORWARD(ilm__json_read_file(path, &idx));
    ilm_status s = open_index(st, path, idx);
    cJSON_Delete(idx);
    return s;
}

static ilm_status open_any(ilm__safetensors *st, const char *path)
{
    struct stat sb;
    ILM__RETURN_IF(stat(path, &sb) != 0, ILM_ERR_IO, "cannot open '%s': %s", path,
                   strerror(errno));
    if (!S_ISDIR(sb.st_mode)) {
        if (ends_with(path, ".json")) return open_index_file(st, path);
        st->files = ilm__calloc(1, sizeof *st->files);
        ILM__RETURN_IF(!st->files, ILM_ERR_NOMEM, "safetensors: out of memory");
        return add_file(st, path);
    }
    char *single = join(path, "model.safetensors");
    char *index = join(path, "model.safetensors.index.json");
    ilm_status s = ILM_OK;
    if (!single || !index) {
        s = ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
    } else if (is_file(single)) {
        st->files = ilm__calloc(1, sizeof *st->files);
        s = st->files ? add_file(st, single)
                      : ilm__error(ILM_ERR_NOMEM, "safetensors: out of memory");
    } else if (is_file(index)) {
        s = open_index_file(st, index);
    } else {
        s = ilm__error(ILM_ERR_IO, "%s: no model.safetensors or "
                       "model.safetensors.index.json in this directory", path);
    }
    ilm__free(single);
    ilm__free(index);
    return s;
}

ilm_status ilm__st_open(const char *path, ilm__safetensors **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "safetensors: out is NULL");
    *out = NULL;
    ILM__RETURN_IF(!path, ILM_ERR_INVALID_ARG, "safetensors: path is NULL");
    ilm__safetensors *st = ilm__calloc(1, sizeof *st);
    ILM__RETURN_IF(!st, ILM_ERR_NOMEM, "safetensors: out of memory");
    ilm_status s = open_any(st, path);
    if (s != ILM_OK) {
        ilm__st_close(st);
        return s;
    }
    *out = st;
    return ILM_OK;
}

/* ---- writing ---------------------------------------------------------------- */

static bool valid_utf8(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = ilm__utf8_decode(s + i, n - i, &cp);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

/* A JSON string escaped the way serde_json (the reference writer) escapes:
 * quote, backslash and control characters; everything else raw UTF-8. */
static ilm_status put_json_str(ilm__buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ILM__FORWARD(ilm__buf_putc(b, '"'));
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (c) {
        case '"': ILM__FORWARD(ilm__buf_append(b, "\\\"", 2)); break;
        case '\\': ILM__FORWARD(ilm__buf_append(b, "\\\\", 2)); break;
        case '\b': ILM__FORWARD(ilm__buf_append(b, "\\b", 2)); break;
        case '\f': ILM__FORWARD(ilm__buf_append(b, "\\f", 2)); break;
        case '\n': ILM__FORWARD(ilm__buf_append(b, "\\n", 2)); break;
        case '\r': ILM__FORWARD(ilm__buf_append(b, "\\r", 2)); break;
        case '\t': ILM__FORWARD(ilm__buf_append(b, "\\t", 2)); break;
        default:
            if (c < 0x20) {
                char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
                ILM__FORWARD(ilm__buf_append(b, esc, 6));
            } else {
                ILM__FORWARD(ilm__buf_putc(b, (char)c));
            }
        }
    }
    return ilm__buf_putc(b, '"');
}

typedef struct write_ctx {
    const ilm__buf    *header;
    const ilm__st_out *tensors;
    const uint64_t    *sizes;
    size_t             n;
    ilm__st_produce_fn produce;
    void              *ctx;
} write_ctx;

static ilm_status write_body(int fd, void *vctx)
{
    const write_ctx *c = vctx;
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)c->header->n >> (8 * i));
    ILM__FORWARD(ilm__write_all(fd, len, 8));
    ILM__FORWARD(ilm__write_all(fd, c->header->p, c->header->n));
    for (size_t i = 0; i < c->n; i++) {
        if (!c->sizes[i]) continue;
        const void *data = c->tensors[i].data;
        if (!data) ILM__FORWARD(c->produce(c->ctx, i, &data));
        ILM__FORWARD(ilm__write_all(fd, data, c->sizes[i]));
    }
    return ILM_OK;
}

/* Checks the arguments and builds the header text (padded) into *h, the
 * byte size of each tensor into sizes. */
static ilm_status build_header(const ilm__st_out *t, size_t n, const char *const *meta,
                               bool produced, uint64_t *sizes, ilm__buf *h)
{
    ilm__strmap seen = { 0 };
    ilm_status s = ILM_OK;
    for (size_t i = 0; i < n && s == ILM_OK; i++) {
        const char *name = t[i].name;
        const st_dtype *d = dtype_by_type(t[i].type);
        if (!name || !*name || strcmp(name, "__metadata__") == 0 || !valid_utf8(name)) {
            s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor %zu: bad name", i);
        } else if (ilm__strmap_get(&seen, name, strlen(name)) >= 0) {
            s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor '%s' given twice",
                           name);
        } else if (!d) {
            s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor '%s': type %u is "
                           "not F32, F16, BF16 or U8", name, (unsigned)t[i].type);
        } else if (t[i].n_dims < 0 || t[i].n_dims > ILM__ST_MAX_DIMS ||
                   (t[i].n_dims > 0 && !t[i].shape)) {
            s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor '%s': bad n_dims %d",
                           name, (int)t[i].n_dims);
        } else {
            s = ilm__strmap_put(&seen, name, strlen(name), 0);
            uint64_t bytes = d->bits / 8;
            for (int k = 0; k < t[i].n_dims && s == ILM_OK; k++)
                if (t[i].shape[k] < 0 ||
                    __builtin_mul_overflow(bytes, (uint64_t)t[i].shape[k], &bytes))
                    s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor '%s': bad "
                                   "shape[%d]", name, k);
            if (s == ILM_OK && bytes && !t[i].data && !produced)
                s = ilm__error(ILM_ERR_INVALID_ARG, "safetensors write: tensor '%s': data is "
                               "NULL", name);
            sizes[i] = bytes;
        }
    }
    ilm__strmap_free(&seen);
    ILM__FORWARD(s);

    /* serde_json's compact form, "__metadata__" first, as the reference
     * writer lays it out. */
    ILM__FORWARD(ilm__buf_putc(h, '{'));
    bool first = true;
    if (meta) {
        ILM__FORWARD(ilm__buf_append(h, "\"__metadata__\":{", 16));
        for (size_t i = 0; meta[i]; i += 2) {
            ILM__RETURN_IF(!meta[i + 1], ILM_ERR_INVALID_ARG,
                           "safetensors write: metadata key '%s' has no value", meta[i]);
            ILM__RETURN_IF(!valid_utf8(meta[i]) || !valid_utf8(meta[i + 1]),
                           ILM_ERR_INVALID_ARG, "safetensors write: metadata is not UTF-8");
            for (size_t j = 0; j < i; j += 2)
                ILM__RETURN_IF(strcmp(meta[j], meta[i]) == 0, ILM_ERR_INVALID_ARG,
                               "safetensors write: metadata key '%s' given twice", meta[i]);
            if (i) ILM__FORWARD(ilm__buf_putc(h, ','));
            ILM__FORWARD(put_json_str(h, meta[i]));
            ILM__FORWARD(ilm__buf_putc(h, ':'));
            ILM__FORWARD(put_json_str(h, meta[i + 1]));
        }
        ILM__FORWARD(ilm__buf_putc(h, '}'));
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (!first) ILM__FORWARD(ilm__buf_putc(h, ','));
        first = false;
        ILM__FORWARD(put_json_str(h, t[i].name));
        ILM__FORWARD(ilm__buf_printf(h, ":{\"dtype\":\"%s\",\"shape\":[",
                                    dtype_by_type(t[i].type)->name));
        for (int k = 0; k < t[i].n_dims; k++)
            ILM__FORWARD(ilm__buf_printf(h, "%s%lld", k ? "," : "", (long long)t[i].shape[k]));
        ILM__FORWARD(ilm__buf_printf(h, "],\"data_offsets\":[%llu,%llu]}",
                                    (unsigned long long)off,
                                    (unsigned long long)(off + sizes[i])));
        off += sizes[i];
    }
    ILM__FORWARD(ilm__buf_putc(h, '}'));
    while (h->n % 8 != 0) ILM__FORWARD(ilm__buf_putc(h, ' '));
    ILM__RETURN_IF(h->n > ILM__ST_MAX_HEADER, ILM_ERR_INVALID_ARG,
                   "safetensors write: the header would exceed %u bytes", ILM__ST_MAX_HEADER);
    return ILM_OK;
}

ilm_status ilm__st_write(const char *path, const ilm__st_out *tensors, size_t n,
                         const char *const *meta_kv)
{
    return ilm__st_write_stream(path, tensors, n, meta_kv, NULL, NULL);
}

ilm_status ilm__st_write_stream(const char *path, const ilm__st_out *tensors, size_t n,
                                const char *const *meta_kv, ilm__st_produce_fn produce,
                                void *ctx)
{
    ILM__RETURN_IF(!path || (n && !tensors), ILM_ERR_INVALID_ARG,
                   "safetensors write: NULL argument");
    uint64_t *sizes = ilm__calloc(n ? n : 1, sizeof *sizes);
    ILM__RETURN_IF(!sizes, ILM_ERR_NOMEM, "safetensors write: out of memory");
    ilm__buf h = { 0 };
    ilm_status s = build_header(tensors, n, meta_kv, produce != NULL, sizes, &h);
    if (s == ILM_OK) {
        write_ctx c = { &h, tensors, sizes, n, produce, ctx };
        s = ilm__atomic_write(path, write_body, &c);
    }
    ilm__buf_free(&h);
    ilm__free(sizes);
    return s;
}
