/*
 * src/tensor/dtype.h -- the element types tensors are stored in: ggml's
 * type ids (which GGUF files use on disk) and their block geometry.
 *
 * The tensor layer sits below the formats (DESIGN.md section 2), so the
 * type table lives here and the GGUF reader includes it.
 */
#ifndef ILM_TENSOR_DTYPE_H
#define ILM_TENSOR_DTYPE_H

#include <stdbool.h>
#include <stdint.h>

/* ggml tensor types, numbered as in ggml.h (gaps are retired types). */
typedef enum ilm__ggml_type {
    ILM__GGML_F32 = 0, ILM__GGML_F16 = 1, ILM__GGML_Q4_0 = 2, ILM__GGML_Q4_1 = 3,
    ILM__GGML_Q5_0 = 6, ILM__GGML_Q5_1 = 7, ILM__GGML_Q8_0 = 8,
    ILM__GGML_Q2_K = 10, ILM__GGML_Q3_K = 11, ILM__GGML_Q4_K = 12,
    ILM__GGML_Q5_K = 13, ILM__GGML_Q6_K = 14, ILM__GGML_Q8_K = 15,
    ILM__GGML_IQ2_XXS = 16, ILM__GGML_IQ2_XS = 17, ILM__GGML_IQ3_XXS = 18,
    ILM__GGML_IQ1_S = 19, ILM__GGML_IQ4_NL = 20, ILM__GGML_IQ3_S = 21,
    ILM__GGML_IQ2_S = 22, ILM__GGML_IQ4_XS = 23, ILM__GGML_I8 = 24,
    ILM__GGML_I16 = 25, ILM__GGML_I32 = 26, ILM__GGML_I64 = 27, ILM__GGML_F64 = 28,
    ILM__GGML_IQ1_M = 29, ILM__GGML_BF16 = 30, ILM__GGML_TQ1_0 = 34,
    ILM__GGML_TQ2_0 = 35, ILM__GGML_MXFP4 = 39
} ilm__ggml_type;

/* Block geometry of a ggml type: `block` elements take `bytes` bytes.
 * Returns false for an id the library does not know. */
bool        ilm__ggml_type_info(uint32_t type, uint32_t *block, uint32_t *bytes);
/* "q4_1", "f32", ...; "?" for an unknown id. */
const char *ilm__ggml_type_name(uint32_t type);

#endif /* ILM_TENSOR_DTYPE_H */
