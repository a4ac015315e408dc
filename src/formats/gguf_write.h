/*
 * src/formats/gguf_write.h -- writing GGUF v3 files (gguf_write.c): the
 * metadata of a file read by gguf.c and new tensors, produced one at a time.
 */
#ifndef ILM_FORMATS_GGUF_WRITE_H
#define ILM_FORMATS_GGUF_WRITE_H

#include "formats/gguf.h"

/* One tensor to write: dims in ggml order (dims[0] fastest). */
typedef struct ilm__gguf_out {
    const char *name;
    uint32_t    n_dims;
    uint64_t    dims[ILM__GGUF_MAX_DIMS];
    uint32_t    type;    /* ilm__dtype of a ggml type */
    uint64_t    n_bytes;
} ilm__gguf_out;

/* Tensor i's bytes when its turn comes (valid until the next call). */
typedef ilm_status (*ilm__gguf_produce_fn)(void *ctx, size_t i, const void **data);

/* Writes `path` atomically: every KV of `src` as it is encoded there, with
 * general.file_type (u32) set to `file_type` (added when missing), then
 * the tensors, each at a multiple of src's alignment. */
ilm_status ilm__gguf_write(const char *path, const ilm__gguf *src, uint32_t file_type,
                           const ilm__gguf_out *t, size_t n, ilm__gguf_produce_fn produce,
                           void *ctx);

/* src with every matrix whose rows are whole blocks of `type` quantized to
 * it (from its values dequantized to fp32; ilm__quantize), the other
 * tensors as they are, into `path`; file_type is llama.cpp's llama_ftype
 * for the file (MOSTLY_Q8_0 7, MOSTLY_Q4_0 2, MOSTLY_Q4_1 3). */
ilm_status ilm__gguf_requantize(const ilm__gguf *src, const char *path, uint32_t type,
                                uint32_t file_type);

#endif /* ILM_FORMATS_GGUF_WRITE_H */
