/*
 * nf4_hf.c -- a 4-bit weight as bitsandbytes' Linear4bit state_dict holds
 * it, and so as transformers' save_pretrained writes it into safetensors
 * (bitsandbytes QuantState.as_dict(packed=True)):
 *
 *   W                                  U8  [(n + 1) / 2, 1]  the codes
 *   W.absmax                           U8  [n_blocks]  nested, else F32
 *   W.quant_map                        F32 [16]
 *   W.nested_absmax                    F32 [ceil(n_blocks / 256)]  nested only
 *   W.nested_quant_map                 F32 [256]                   nested only
 *   W.quant_state.bitsandbytes__nf4    U8  [len]  (or __fp4) the UTF-8 bytes of
 *       json.dumps({"quant_type", "blocksize", "dtype", "shape",
 *                   "nested_blocksize", "nested_dtype", "nested_offset"})
 *
 * The reader checks all of it against the JSON before anything is used:
 * a file is input, and its shapes may lie.
 */
#include "quant/nf4.h"

#include "tensor/dtype.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The JSON text bitsandbytes accepts at most (a real one is ~170 bytes). */
#define QS_MAX_BYTES 65536

static const char *kind_name(uint32_t kind)
{
    return kind == ILM__Q4_FP4 ? "fp4" : "nf4";
}

/* torch dtype names as bitsandbytes writes them (str(dtype) less "torch."). */
static const char *torch_dtype_name(uint32_t dtype)
{
    switch (dtype) {
    case ILM__DTYPE_F32: return "float32";
    case ILM__DTYPE_F16: return "float16";
    case ILM__DTYPE_BF16: return "bfloat16";
    default: return NULL;
    }
}

/* ---- Python's repr of a float ------------------------------------------------ */

/* repr(float(v)) as CPython writes it (float_repr_style "short"): the
 * shortest digits that read back as v, in positional notation when the
 * decimal exponent is in [-4, 16), else as d.ddde-XX; "1.0", not "1". */
static void py_float_repr(double v, char *out, size_t cap)
{
    if (v == 0) {
        snprintf(out, cap, "%s", signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char e[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = [-]d[.ddd]e[+-]XX: take the digits and the exponent apart. */
    const char *s = e;
    bool neg = *s == '-';
    if (neg) s++;
    char digits[24];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.') digits[nd++] = *s;
    digits[nd] = '\0';
    int exp10 = atoi(s + 1);
    int decpt = exp10 + 1; /* v = 0.digits * 10^decpt */
    size_t o = 0;
#define PUT(...) o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, __VA_ARGS__)
    if (neg) PUT("-");
    if (decpt <= -4 || decpt > 16) {
        PUT("%c", digits[0]);
        if (nd > 1) PUT(".%s", digits + 1);
        PUT("e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (decpt <= 0) {
        PUT("0.");
        for (int i = 0; i < -decpt; i++) PUT("0");
        PUT("%s", digits);
    } else if ((size_t)decpt >= nd) {
        PUT("%s", digits);
        for (size_t i = nd; i < (size_t)decpt; i++) PUT("0");
        PUT(".0");
    } else {
        PUT("%.*s.%s", decpt, digits, digits + decpt);
    }
#undef PUT
}

ilm_status ilm__q4_state_json(const ilm__q4 *q, char **out)
{
    ILM__RETURN_IF(!q || !out, ILM_ERR_INVALID_ARG, "nf4: NULL argument");
    *out = NULL;
    const char *dt = torch_dtype_name(q->dtype);
    ILM__RETURN_IF(!dt, ILM_ERR_INVALID_ARG, "nf4: original type %s has no torch name",
                   ilm__dtype_name(q->dtype));
    ILM__RETURN_IF(q->nested && !isfinite(q->offset), ILM_ERR_INVALID_ARG,
                   "nf4: the nested offset is not finite (the tensor holds NaN or infinity)");
    ilm__buf b = { 0 };
    ilm_status s = ilm__buf_printf(&b, "{\"quant_type\": \"%s\", \"blocksize\": %lld, "
                                   "\"dtype\": \"%s\", \"shape\": [", kind_name(q->kind),
                                   (long long)q->blocksize, dt);
    for (int d = 0; d < q->n_dims && s == ILM_OK; d++)
        s = ilm__buf_printf(&b, "%s%lld", d ? ", " : "", (long long)q->shape[d]);
    if (s == ILM_OK) s = ilm__buf_append(&b, "]", 1);
    if (s == ILM_OK && q->nested) {
        char r[40];
        py_float_repr((double)q->offset, r, sizeof r);
        s = ilm__buf_printf(&b, ", \"nested_blocksize\": %lld, \"nested_dtype\": \"float32\", "
                            "\"nested_offset\": %s", (long long)q->nested_blocksize, r);
    }
    if (s == ILM_OK) s = ilm__buf_append(&b, "}", 1);
    if (s != ILM_OK) {
        ilm__buf_free(&b);
        return ilm__error(ILM_ERR_NOMEM, "nf4: out of memory for the quant_state");
    }
    *out = b.p;
    return ILM_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

void ilm__q4_hf_free(ilm__q4_hf *h)
{
    if (!h) return;
    for (size_t i = 0; i < 6; i++) ilm__free(h->names[i]);
    ilm__free(h->json);
    memset(h, 0, sizeof *h);
}

static ilm_status hf_add(ilm__q4_hf *h, const char *name, const char *suffix, uint32_t type,
                         int32_t n_dims, int64_t d0, int64_t d1, const void *data)
{
    size_t i = h->n;
    h->names[i] = ilm__asprintf("%s%s", name, suffix);
    ILM__RETURN_IF(!h->names[i], ILM_ERR_NOMEM, "nf4: out of memory");
    h->shapes[i][0] = d0;
    h->shapes[i][1] = d1;
    h->t[i] = (ilm__st_out){ h->names[i], type, n_dims, h->shapes[i], data };
    h->n++;
    return ILM_OK;
}

ilm_status ilm__q4_hf_tensors(const ilm__q4 *q, const char *name, ilm__q4_hf *out)
{
    ILM__RETURN_IF(!q || !name || !*name || !out || !q->packed, ILM_ERR_INVALID_ARG,
                   "nf4: NULL argument");
    memset(out, 0, sizeof *out);
    char qs[32];
    snprintf(qs, sizeof qs, ".quant_state.bitsandbytes__%s", kind_name(q->kind));
    ilm_status s = ilm__q4_state_json(q, &out->json);
    /* Float tensors first, so each starts aligned to its element size. */
    if (s == ILM_OK && !q->nested)
        s = hf_add(out, name, ".absmax", ILM__DTYPE_F32, 1, q->n_blocks, 0, q->absmax);
    if (s == ILM_OK) s = hf_add(out, name, ".quant_map", ILM__DTYPE_F32, 1, 16, 0, q->map);
    if (s == ILM_OK && q->nested)
        s = hf_add(out, name, ".nested_absmax", ILM__DTYPE_F32, 1, q->n_nested, 0,
                   q->nested_absmax);
    if (s == ILM_OK && q->nested)
        s = hf_add(out, name, ".nested_quant_map", ILM__DTYPE_F32, 1, 256, 0, q->nested_map);
    if (s == ILM_OK) s = hf_add(out, name, "", ILM__DTYPE_U8, 2, (q->n + 1) / 2, 1, q->packed);
    if (s == ILM_OK && q->nested)
        s = hf_add(out, name, ".absmax", ILM__DTYPE_U8, 1, q->n_blocks, 0, q->qabsmax);
    if (s == ILM_OK)
        s = hf_add(out, name, qs, ILM__DTYPE_U8, 1, (int64_t)strlen(out->json), 0, out->json);
    if (s != ILM_OK) ilm__q4_hf_free(out);
    return s;
}

/* ---- reading ------------------------------------------------------------------------ */

bool ilm__q4_hf_present(const ilm__safetensors *st, const char *name)
{
    char key[1024];
    for (int k = 0; k < 2; k++) {
        snprintf(key, sizeof key, "%s.quant_state.bitsandbytes__%s", name, k ? "fp4" : "nf4");
        if (ilm__st_find(st, key)) return true;
    }
    return false;
}

static int64_t numel(const ilm__st_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) n *= t->shape[d]; /* bounded by the file size */
    return n;
}

/* The tensor `name``suffix`: present, of safetensors dtype `dtype`, with
 * `want` elements. */
static ilm_status find_tensor(const ilm__safetensors *st, const char *name, const char *suffix,
                              const char *dtype, int64_t want, const ilm__st_tensor **out)
{
    char key[1024];
    snprintf(key, sizeof key, "%s%s", name, suffix);
    const ilm__st_tensor *t = ilm__st_find(st, key);
    ILM__RETURN_IF(!t, ILM_ERR_FORMAT, "nf4: tensor '%s' is missing", key);
    ILM__RETURN_IF(strcmp(t->dtype, dtype) != 0, ILM_ERR_FORMAT,
                   "nf4: tensor '%s' has dtype %s, expected %s%s", key, t->dtype, dtype,
                   *suffix ? "" : " (only quant_storage uint8 is supported)");
    ILM__RETURN_IF(numel(t) != want, ILM_ERR_FORMAT,
                   "nf4: tensor '%s' has %lld elements, the quant_state needs %lld", key,
                   (long long)numel(t), (long long)want);
    *out = t;
    return ILM_OK;
}

/* A float32 array of the file (unaligned, little-endian) copied into dst. */
static void copy_f32(float *dst, const ilm__st_tensor *t, int64_t n)
{
    memcpy(dst, t->data, (size_t)n * sizeof(float));
}

typedef struct qs_fields {
    const char *quant_type, *dtype, *nested_dtype;
    int64_t     blocksize, nested_blocksize;
    double      nested_offset;
    const cJSON *shape;
    bool        has_nbs, has_ndt, has_noff;
} qs_fields;

/* Parses and checks the quant_state JSON of tensor `key` (bytes t). */
static ilm_status parse_state(const char *key, const ilm__st_tensor *t, cJSON **root,
                              qs_fields *f)
{
    ILM__RETURN_IF(strcmp(t->dtype, "U8") != 0 || t->n_dims != 1, ILM_ERR_FORMAT,
                   "nf4: tensor '%s' must be a 1-D U8 tensor of JSON, got %s with %d dims", key,
                   t->dtype, (int)t->n_dims);
    ILM__RETURN_IF(t->n_bytes == 0 || t->n_bytes > QS_MAX_BYTES, ILM_ERR_FORMAT,
                   "nf4: tensor '%s' holds %llu bytes of JSON (1 .. %d allowed)", key,
                   (unsigned long long)t->n_bytes, QS_MAX_BYTES);
    ILM__RETURN_IF(memchr(t->data, 0, (size_t)t->n_bytes), ILM_ERR_FORMAT,
                   "nf4: tensor '%s' has a NUL byte in its JSON", key);
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts((const char *)t->data, (size_t)t->n_bytes, &end, false);
    ILM__RETURN_IF(!*root, ILM_ERR_FORMAT, "nf4: tensor '%s' is not valid JSON", key);
    for (; end && end < (const char *)t->data + t->n_bytes; end++)
        ILM__RETURN_IF(*end != ' ' && *end != '\n' && *end != '\t' && *end != '\r',
                       ILM_ERR_FORMAT, "nf4: tensor '%s' has bytes after its JSON", key);
    memset(f, 0, sizeof *f);
    /* bitsandbytes' QuantState.from_dict accepts exactly these keys. */
    const ilm__jfield fields[] = {
        { "quant_type", ILM__J_STRING, &f->quant_type, true, 0, 0 },
        { "blocksize", ILM__J_INT, &f->blocksize, true, 0, 0 },
        { "dtype", ILM__J_STRING, &f->dtype, true, 0, 0 },
        { "shape", ILM__J_ARRAY, &f->shape, true, 0, 0 },
        { "nested_blocksize", ILM__J_INT, &f->nested_blocksize, false, 0, 0 },
        { "nested_dtype", ILM__J_STRING, &f->nested_dtype, false, 0, 0 },
        { "nested_offset", ILM__J_NUMBER, &f->nested_offset, false, 0, 0 },
    };
    f->nested_blocksize = -1;
    f->nested_offset = NAN;
    if (ilm__json_fields(*root, "", fields, sizeof fields / sizeof fields[0]) != ILM_OK) {
        const char *m = ilm_last_error();
        if (strncmp(m, "config: ", 8) == 0) m += 8;
        return ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': %s", key, m);
    }
    f->has_nbs = cJSON_GetObjectItemCaseSensitive(*root, "nested_blocksize") != NULL;
    f->has_ndt = f->nested_dtype != NULL;
    f->has_noff = cJSON_GetObjectItemCaseSensitive(*root, "nested_offset") != NULL;
    return ILM_OK;
}

ilm_status ilm__q4_hf_read(const ilm__safetensors *st, const char *name, ilm__q4 *out)
{
    ILM__RETURN_IF(!st || !name || !out, ILM_ERR_INVALID_ARG, "nf4: NULL argument");
    memset(out, 0, sizeof *out);
    char key[1024];
    const ilm__st_tensor *tq = NULL;
    uint32_t kind = ILM__Q4_NF4;
    for (uint32_t k = 0; k < 2; k++) {
        char kk[1024];
        snprintf(kk, sizeof kk, "%s.quant_state.bitsandbytes__%s", name, kind_name(k));
        const ilm__st_tensor *t = ilm__st_find(st, kk);
        if (!t) continue;
        ILM__RETURN_IF(tq, ILM_ERR_FORMAT, "nf4: '%s' has both an nf4 and an fp4 quant_state",
                       name);
        tq = t;
        kind = k;
        snprintf(key, sizeof key, "%s", kk);
    }
    ILM__RETURN_IF(!tq, ILM_ERR_NOT_FOUND, "nf4: no tensor '%s.quant_state.bitsandbytes__nf4' "
                   "(or __fp4)", name);

    cJSON *root = NULL;
    qs_fields f = { 0 }; /* read below even when parse_state fails early */
    ilm_status s = parse_state(key, tq, &root, &f);
    const cJSON *shape = f.shape;
    int64_t n = 1, dims[ILM__Q4_MAX_DIMS];
    int n_dims = 0;
    uint32_t dtype = 0;
    if (s == ILM_OK && strcmp(f.quant_type, kind_name(kind)) != 0)
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s' says quant_type '%s'", key,
                       f.quant_type);
    if (s == ILM_OK && !ilm__q4_blocksize_ok(f.blocksize))
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': blocksize %lld is not one of "
                       "bitsandbytes' 32, 64, ..., 4096", key, (long long)f.blocksize);
    if (s == ILM_OK) {
        if (strcmp(f.dtype, "float32") == 0) dtype = ILM__DTYPE_F32;
        else if (strcmp(f.dtype, "float16") == 0) dtype = ILM__DTYPE_F16;
        else if (strcmp(f.dtype, "bfloat16") == 0) dtype = ILM__DTYPE_BF16;
        else s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': dtype '%s' is not float32, "
                            "float16 or bfloat16", key, f.dtype);
    }
    if (s == ILM_OK && cJSON_GetArraySize(shape) > ILM__Q4_MAX_DIMS)
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': shape has %d dims (at most %d)", key,
                       cJSON_GetArraySize(shape), ILM__Q4_MAX_DIMS);
    for (const cJSON *d = shape ? shape->child : NULL; d && s == ILM_OK; d = d->next) {
        double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
        if (v < 0 || v != floor(v) || v > 1e15 || __builtin_mul_overflow(n, (int64_t)v, &n) ||
            n > ((int64_t)1 << 48))
            s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': shape[%d] is not a size", key,
                           n_dims);
        else dims[n_dims++] = (int64_t)v;
    }
    const bool nested = f.has_nbs || f.has_ndt || f.has_noff;
    if (s == ILM_OK && nested && !(f.has_nbs && f.has_ndt && f.has_noff))
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s' has only some of nested_blocksize, "
                       "nested_dtype and nested_offset", key);
    if (s == ILM_OK && nested && (f.nested_blocksize < 1 || f.nested_blocksize > (1 << 20)))
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': nested_blocksize %lld is out of "
                       "range", key, (long long)f.nested_blocksize);
    if (s == ILM_OK && nested && strcmp(f.nested_dtype, "float32") != 0)
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': nested_dtype '%s' is not float32",
                       key, f.nested_dtype);
    if (s == ILM_OK && nested && !(fabs(f.nested_offset) <= 3.4028234663852886e38))
        s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s': nested_offset is not a float32",
                       key);
    if (s != ILM_OK) {
        cJSON_Delete(root);
        return s;
    }

    out->kind = kind;
    out->dtype = dtype;
    out->n_dims = n_dims;
    for (int d = 0; d < ILM__Q4_MAX_DIMS; d++) out->shape[d] = d < n_dims ? dims[d] : 1;
    out->n = n;
    out->blocksize = f.blocksize;
    out->n_blocks = (n + f.blocksize - 1) / f.blocksize;
    out->nested = nested;
    if (nested) {
        out->nested_blocksize = f.nested_blocksize;
        out->n_nested = (out->n_blocks + f.nested_blocksize - 1) / f.nested_blocksize;
        out->offset = (float)f.nested_offset;
    }
    cJSON_Delete(root);

    const ilm__st_tensor *tw = NULL, *ta = NULL, *tm = NULL, *tna = NULL, *tnm = NULL;
    s = find_tensor(st, name, "", "U8", (n + 1) / 2, &tw);
    if (s == ILM_OK)
        s = find_tensor(st, name, ".absmax", nested ? "U8" : "F32", out->n_blocks, &ta);
    if (s == ILM_OK) s = find_tensor(st, name, ".quant_map", "F32", 16, &tm);
    if (s == ILM_OK && nested)
        s = find_tensor(st, name, ".nested_absmax", "F32", out->n_nested, &tna);
    if (s == ILM_OK && nested) s = find_tensor(st, name, ".nested_quant_map", "F32", 256, &tnm);
    if (s == ILM_OK && !nested) {
        snprintf(key, sizeof key, "%s.nested_absmax", name);
        if (ilm__st_find(st, key))
            s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s' is there but the quant_state has "
                           "no nested_* keys", key);
    }
    if (s == ILM_OK) {
        float want[16], got[16];
        ilm__q4_code(kind, want);
        copy_f32(got, tm, 16);
        if (memcmp(want, got, sizeof want) != 0)
            s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s.quant_map' is not bitsandbytes' "
                           "%s table", name, kind_name(kind));
    }
    if (s == ILM_OK && nested) {
        copy_f32(out->nested_map, tnm, 256);
        for (int i = 0; i < 256 && s == ILM_OK; i++)
            if (!isfinite(out->nested_map[i]))
                s = ilm__error(ILM_ERR_FORMAT, "nf4: tensor '%s.nested_quant_map' holds a "
                               "non-finite value", name);
    }
    if (s != ILM_OK) {
        memset(out, 0, sizeof *out);
        return s;
    }
    ilm__q4_code(kind, out->map);
    /* The float arrays are copied (the file promises no alignment); the
     * byte arrays stay views into the mapping. */
    size_t nf = nested ? (size_t)out->n_nested : (size_t)out->n_blocks;
    float *own = ilm__malloc((nf ? nf : 1) * sizeof(float));
    if (!own) {
        memset(out, 0, sizeof *out);
        return ilm__error(ILM_ERR_NOMEM, "nf4: out of memory reading '%s'", name);
    }
    out->own = own;
    out->packed = tw->data;
    if (nested) {
        copy_f32(own, tna, out->n_nested);
        out->nested_absmax = own;
        out->qabsmax = ta->data;
    } else {
        copy_f32(own, ta, out->n_blocks);
        out->absmax = own;
    }
    return ILM_OK;
}
