/*
 * src/formats/safetensors.h -- Hugging Face safetensors: reading (one file,
 * a directory, or a sharded checkpoint with model.safetensors.index.json)
 * and writing.
 *
 * Layout (huggingface/safetensors, docs/format): an 8-byte little-endian
 * header length N, N bytes of UTF-8 JSON
 *     {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *      "__metadata__": {str: str}}
 * then the data section; offsets are relative to its start (byte 8 + N).
 *
 * ilm__st_open maps every file and validates all of its header against the
 * file before anything is handed out: a tensor returned by the getters
 * points at exactly n_bytes readable bytes.  Nothing is copied; names,
 * dtypes and data live until ilm__st_close.  A handle is immutable after
 * opening; any number of threads may read it at once.
 */
#ifndef ILM_FORMATS_SAFETENSORS_H
#define ILM_FORMATS_SAFETENSORS_H

#include "core/internal.h"
#include "formats/gguf.h" /* ILM__DTYPE_F32 / F16 / BF16 */

#define ILM__ST_MAX_DIMS 8
/* Headers larger than this are refused before they are parsed: the
 * reference reader's own limit is 100 MB, and a real checkpoint's header is
 * a few hundred KB. */
#define ILM__ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct ilm__st_tensor {
    const char    *name;
    /* ILM__DTYPE_F32, ILM__DTYPE_F16 or ILM__DTYPE_BF16; UINT32_MAX for the
     * other valid dtypes (I64, I32, U8, BOOL, F64, F8_*, ...): see dtype. */
    uint32_t       type;
    const char    *dtype;   /* "F32", "BF16", ... as written in the file */
    int32_t        n_dims;  /* 0 (a scalar) .. ILM__ST_MAX_DIMS */
    int64_t        shape[ILM__ST_MAX_DIMS]; /* PyTorch order: shape[n_dims-1]
                                               varies fastest; unused = 1 */
    /* Inside the mapping.  The format promises no alignment: the reference
     * writer orders tensors so that each starts at a multiple of its element
     * size after an 8-aligned header, but other writers need not. */
    const uint8_t *data;
    uint64_t       n_bytes;
} ilm__st_tensor;

typedef struct ilm__safetensors ilm__safetensors;

/* Opens `path`: a .safetensors file; a directory holding model.safetensors;
 * a directory holding model.safetensors.index.json (or that .json file
 * itself), whose "weight_map" maps each tensor name to a shard file in the
 * same directory.  model.safetensors wins when a directory has both, as in
 * transformers.  Every shard is opened once, every tensor the index lists
 * must be in the shard it names and every tensor of a shard must be listed
 * for that shard.
 * @return ILM_OK (*out freed with ilm__st_close), ILM_ERR_IO for a file that
 *         cannot be read, ILM_ERR_FORMAT (the message names the file and the
 *         tensor) for anything inconsistent, ILM_ERR_UNSUPPORTED for more
 *         than ILM__ST_MAX_DIMS dimensions, ILM_ERR_NOMEM. */
ilm_status ilm__st_open(const char *path, ilm__safetensors **out);
void       ilm__st_close(ilm__safetensors *st);

/* Tensors in file order (by data offset), shard by shard in the order of
 * the shard file names. */
size_t                ilm__st_count(const ilm__safetensors *st);
const ilm__st_tensor *ilm__st_get(const ilm__safetensors *st, size_t i);
/* The tensor named `name`, or NULL. */
const ilm__st_tensor *ilm__st_find(const ilm__safetensors *st, const char *name);
/* A "__metadata__" value (the first shard that has the key wins), or NULL. */
const char           *ilm__st_metadata(const ilm__safetensors *st, const char *key);

/* One tensor to write.  `data` holds the product of shape elements of
 * `type` (ILM__DTYPE_F32, F16, BF16, or U8 for raw bytes), row-major,
 * little-endian. */
typedef struct ilm__st_out {
    const char    *name;
    uint32_t       type;
    int32_t        n_dims;  /* 0 .. ILM__ST_MAX_DIMS */
    const int64_t *shape;
    const void    *data;
} ilm__st_out;

/* Writes `n` tensors, in the order given and without gaps, to `path`
 * atomically (readers see the old file or the whole new one).  The header
 * is padded with spaces so the data section starts at a multiple of 8, as
 * the reference writer does; list wider dtypes first to keep every tensor
 * aligned to its element size.  `meta_kv` is NULL or a NULL-terminated
 * list key, value, key, value, ... for "__metadata__".  Nothing is
 * retained.
 * @return ILM_OK, ILM_ERR_INVALID_ARG (a NULL or duplicate name, an unknown
 *         type, a bad shape, invalid UTF-8), ILM_ERR_IO, ILM_ERR_NOMEM. */
ilm_status ilm__st_write(const char *path, const ilm__st_out *tensors, size_t n,
                         const char *const *meta_kv);

/* Computes tensor i's bytes when its turn to be written comes: *data must
 * then point at them, valid until the next call. */
typedef ilm_status (*ilm__st_produce_fn)(void *ctx, size_t i, const void **data);

/* ilm__st_write, streaming: a tensor whose data is NULL is produced by
 * `produce` as the file is written, so a writer that computes tensors one
 * at a time never holds them all. */
ilm_status ilm__st_write_stream(const char *path, const ilm__st_out *tensors, size_t n,
                                const char *const *meta_kv, ilm__st_produce_fn produce,
                                void *ctx);

#endif /* ILM_FORMATS_SAFETENSORS_H */
