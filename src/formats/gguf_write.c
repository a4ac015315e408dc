/* Writing GGUF v3 (gguf.h has the layout): the metadata of a GGUF file
 * read here, with general.file_type set, and new tensors -- what
 * requantizing a llama.cpp model takes.  Tensors are produced one at a time
 * as the file is written, so a model is never held twice. */
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "tensor/tensor.h"

#include <string.h>

typedef struct gw {
    const ilm__gguf        *src;
    uint32_t                file_type;
    const ilm__gguf_out    *t;
    size_t                  n;
    const uint64_t         *offsets; /* [n], from the data section */
    ilm__gguf_produce_fn    produce;
    void                   *ctx;
} gw;

static ilm_status put(int fd, const void *p, size_t n) { return ilm__write_all(fd, p, n); }

static ilm_status put_u32(int fd, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> 8 * i);
    return put(fd, b, 4);
}

static ilm_status put_u64(int fd, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> 8 * i);
    return put(fd, b, 8);
}

static ilm_status put_str(int fd, const char *p, size_t n)
{
    ILM__FORWARD(put_u64(fd, n));
    return put(fd, p, n);
}

static ilm_status pad(int fd, uint64_t at, uint64_t align)
{
    static const uint8_t zero[64] = { 0 };
    for (uint64_t left = (align - at % align) % align; left > 0;) {
        const size_t k = left < sizeof zero ? (size_t)left : sizeof zero;
        ILM__FORWARD(put(fd, zero, k));
        left -= k;
    }
    return ILM_OK;
}

/* Bytes of the header, the KVs and the tensor infos, as body() writes them. */
static uint64_t meta_bytes(const gw *w, uint64_t *n_kv)
{
    uint64_t b = 4 + 4 + 8 + 8;
    *n_kv = 0;
    bool has_ft = false;
    for (uint64_t i = 0; i < w->src->n_kv; i++) {
        const ilm__gguf_kv *kv = &w->src->kv[i];
        has_ft |= ilm__gguf_str_eq(kv->key, "general.file_type");
        b += 8 + kv->key.n + 4 + kv->size;
        (*n_kv)++;
    }
    if (!has_ft) {
        b += 8 + strlen("general.file_type") + 4 + 4;
        (*n_kv)++;
    }
    for (size_t i = 0; i < w->n; i++) b += 8 + strlen(w->t[i].name) + 4 + 8 * w->t[i].n_dims + 4 + 8;
    return b;
}

static ilm_status body(int fd, void *vctx)
{
    const gw *w = vctx;
    uint64_t n_kv;
    const uint64_t meta = meta_bytes(w, &n_kv);
    ILM__FORWARD(put(fd, "GGUF", 4));
    ILM__FORWARD(put_u32(fd, 3));
    ILM__FORWARD(put_u64(fd, w->n));
    ILM__FORWARD(put_u64(fd, n_kv));
    bool has_ft = false;
    for (uint64_t i = 0; i < w->src->n_kv; i++) {
        const ilm__gguf_kv *kv = &w->src->kv[i];
        ILM__FORWARD(put_str(fd, kv->key.p, kv->key.n));
        ILM__FORWARD(put_u32(fd, kv->type));
        if (ilm__gguf_str_eq(kv->key, "general.file_type") && kv->type == ILM__GGUF_U32) {
            has_ft = true;
            ILM__FORWARD(put_u32(fd, w->file_type));
            continue;
        }
        /* The value as the file encodes it; an array's data starts after
         * its element type and count. */
        const uint8_t *raw = kv->type == ILM__GGUF_ARRAY ? kv->data - 12 : kv->data;
        ILM__FORWARD(put(fd, raw, kv->size));
    }
    if (!has_ft) {
        ILM__FORWARD(put_str(fd, "general.file_type", strlen("general.file_type")));
        ILM__FORWARD(put_u32(fd, ILM__GGUF_U32));
        ILM__FORWARD(put_u32(fd, w->file_type));
    }
    for (size_t i = 0; i < w->n; i++) {
        const ilm__gguf_out *t = &w->t[i];
        ILM__FORWARD(put_str(fd, t->name, strlen(t->name)));
        ILM__FORWARD(put_u32(fd, t->n_dims));
        for (uint32_t d = 0; d < t->n_dims; d++) ILM__FORWARD(put_u64(fd, t->dims[d]));
        ILM__FORWARD(put_u32(fd, t->type));
        ILM__FORWARD(put_u64(fd, w->offsets[i]));
    }
    const uint64_t align = w->src->alignment;
    ILM__FORWARD(pad(fd, meta, align));
    uint64_t at = 0;
    for (size_t i = 0; i < w->n; i++) {
        ILM__FORWARD(pad(fd, at, align));
        at = w->offsets[i];
        const void *data = NULL;
        ILM__FORWARD(w->produce(w->ctx, i, &data));
        ILM__FORWARD(put(fd, data, w->t[i].n_bytes));
        at += w->t[i].n_bytes;
    }
    return ILM_OK;
}

ilm_status ilm__gguf_write(const char *path, const ilm__gguf *src, uint32_t file_type,
                           const ilm__gguf_out *t, size_t n, ilm__gguf_produce_fn produce,
                           void *ctx)
{
    uint64_t *off = ilm__calloc(n ? n : 1, sizeof *off);
    ILM__RETURN_IF(!off, ILM_ERR_NOMEM, "gguf write: out of memory");
    const uint64_t align = src->alignment;
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        at = (at + align - 1) / align * align;
        off[i] = at;
        at += t[i].n_bytes;
    }
    gw w = { src, file_type, t, n, off, produce, ctx };
    ilm_status st = ilm__atomic_write(path, body, &w);
    ilm__free(off);
    return st;
}

/* ---- requantizing ---------------------------------------------------------- */

typedef struct rq {
    const ilm__gguf *src;
    ilm__gguf_out   *t;
    const uint32_t  *from; /* source tensor index of each output tensor */
    float           *f32;
    void            *out;
    size_t           cap;  /* elements f32 holds */
} rq;

static ilm_status rq_produce(void *ctx, size_t i, const void **data)
{
    rq *r = ctx;
    const ilm__gguf_tensor *s = &r->src->tensors[r->from[i]];
    if (r->t[i].type == s->type) { /* kept as it is */
        *data = s->data;
        return ILM_OK;
    }
    if (s->n_elems > r->cap) {
        ilm__free(r->f32);
        ilm__free(r->out);
        r->cap = 0;
        r->f32 = ilm__malloc((size_t)s->n_elems * sizeof *r->f32);
        r->out = ilm__malloc((size_t)s->n_elems * sizeof *r->f32);
        ILM__RETURN_IF(!r->f32 || !r->out, ILM_ERR_NOMEM, "gguf write: out of memory for '%.*s'",
                       (int)s->name.n, s->name.p);
        r->cap = (size_t)s->n_elems;
    }
    ILM__FORWARD(ilm__dequantize(s->type, s->data, r->f32, (int64_t)s->n_elems));
    ILM__FORWARD(ilm__quantize(r->t[i].type, r->f32, r->out, (int64_t)s->n_elems));
    *data = r->out;
    return ILM_OK;
}

ilm_status ilm__gguf_requantize(const ilm__gguf *src, const char *path, uint32_t type,
                                uint32_t file_type)
{
    uint32_t block, bytes;
    ILM__RETURN_IF(!ilm__dtype_info(type, &block, &bytes), ILM_ERR_INVALID_ARG,
                   "gguf write: type %u", type);
    const size_t n = (size_t)src->n_tensors;
    ilm__gguf_out *t = ilm__calloc(n ? n : 1, sizeof *t);
    uint32_t *from = ilm__calloc(n ? n : 1, sizeof *from);
    char *names = ilm__calloc(n ? n : 1, 256);
    ilm_status st = t && from && names ? ILM_OK : ilm__error(ILM_ERR_NOMEM, "gguf write: out of memory");
    for (size_t i = 0; i < n && st == ILM_OK; i++) {
        const ilm__gguf_tensor *s = &src->tensors[i];
        if (s->name.n >= 256) {
            st = ilm__error(ILM_ERR_FORMAT, "gguf write: a tensor name of %zu bytes", s->name.n);
            break;
        }
        memcpy(names + 256 * i, s->name.p, s->name.n);
        /* Matrices whose rows are whole blocks take the new type; vectors
         * (norms) and the rest keep theirs. */
        const bool matrix = s->n_dims == 2 && s->dims[0] % block == 0;
        t[i] = (ilm__gguf_out){ .name = names + 256 * i, .n_dims = s->n_dims,
                                .type = matrix ? type : s->type };
        memcpy(t[i].dims, s->dims, sizeof t[i].dims);
        t[i].n_bytes = matrix ? s->n_elems / block * bytes : s->n_bytes;
        from[i] = (uint32_t)i;
    }
    rq r = { src, t, from, NULL, NULL, 0 };
    if (st == ILM_OK) st = ilm__gguf_write(path, src, file_type, t, n, rq_produce, &r);
    ilm__free(r.f32);
    ilm__free(r.out);
    ilm__free(t);
    ilm__free(from);
    ilm__free(names);
    return st;
}
