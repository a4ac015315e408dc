/*
 * src/tensor/dtype.h -- the element types tensors are stored in and their
 * block geometry.
 *
 * The library's own ids.  The types GGUF files can hold keep ggml's numbers
 * (ggml.h; gaps are retired types), so the GGUF reader maps a file's id with
 * ilm__dtype_from_ggml, a range check and a table lookup.  Types ggml does
 * not have (NF4, AWQ, ...) take ids from ILM__DTYPE_OWN up and can never be
 * read from a GGUF file.  The tensor layer sits below the formats (DESIGN.md
 * section 2), so the type table lives here.
 */
#ifndef ILM_TENSOR_DTYPE_H
#define ILM_TENSOR_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum ilm__dtype {
    ILM__DTYPE_F32 = 0, ILM__DTYPE_F16 = 1, ILM__DTYPE_Q4_0 = 2, ILM__DTYPE_Q4_1 = 3,
    ILM__DTYPE_Q5_0 = 6, ILM__DTYPE_Q5_1 = 7, ILM__DTYPE_Q8_0 = 8,
    ILM__DTYPE_Q2_K = 10, ILM__DTYPE_Q3_K = 11, ILM__DTYPE_Q4_K = 12,
    ILM__DTYPE_Q5_K = 13, ILM__DTYPE_Q6_K = 14, ILM__DTYPE_Q8_K = 15,
    ILM__DTYPE_IQ2_XXS = 16, ILM__DTYPE_IQ2_XS = 17, ILM__DTYPE_IQ3_XXS = 18,
    ILM__DTYPE_IQ1_S = 19, ILM__DTYPE_IQ4_NL = 20, ILM__DTYPE_IQ3_S = 21,
    ILM__DTYPE_IQ2_S = 22, ILM__DTYPE_IQ4_XS = 23, ILM__DTYPE_I8 = 24,
    ILM__DTYPE_I16 = 25, ILM__DTYPE_I32 = 26, ILM__DTYPE_I64 = 27, ILM__DTYPE_F64 = 28,
    ILM__DTYPE_IQ1_M = 29, ILM__DTYPE_BF16 = 30, ILM__DTYPE_TQ1_0 = 34,
    ILM__DTYPE_TQ2_0 = 35, ILM__DTYPE_MXFP4 = 39,
    ILM__DTYPE_OWN = 256, /* first id of a type ggml lacks */
    /* bitsandbytes' 4-bit codes (src/quant/nf4.h): two a byte, high nibble
     * first; the per-block absmax lives beside them (ilm__q4), so the
     * geometry here is that of the packed bytes alone. */
    ILM__DTYPE_NF4 = ILM__DTYPE_OWN, ILM__DTYPE_FP4 = ILM__DTYPE_OWN + 1,
    ILM__DTYPE_U8 = ILM__DTYPE_OWN + 2 /* raw bytes (safetensors "U8") */
} ilm__dtype;

/* Block geometry of a type: `block` elements take `bytes` bytes.
 * Returns false for an id the library does not know. */
bool        ilm__dtype_info(uint32_t type, uint32_t *block, uint32_t *bytes);
/* The library type of a GGUF file's ggml type id.  Returns false (and leaves
 * *type alone) for an id that is retired, unknown or not a ggml type. */
bool        ilm__dtype_from_ggml(uint32_t ggml_id, uint32_t *type);
/* "q4_1", "f32", ...; "?" for an unknown id. */
const char *ilm__dtype_name(uint32_t type);

#endif /* ILM_TENSOR_DTYPE_H */
