/*
 * src/tensor/ -- tensors' element types, half-precision conversions and the
 * reference (de)quantization of ggml's block formats, plus the fast
 * quantized matrix-vector kernels the CPU backend's linear op runs.
 *
 * dtype.c holds the ggml type table: block geometry per type id.
 */
#include "tensor/dtype.h"

#include <stddef.h>

typedef struct ggml_type_row {
    uint32_t    id;
    const char *name;
    uint32_t    block, bytes;
} ggml_type_row;

/* Block geometry as ggml's type traits define it (ggml-common.h) and the
 * gguf Python package's GGML_QUANT_SIZES lists it.  Q8_1 is left out on
 * purpose: the two disagree on its size and no model file stores it. */
static const ggml_type_row ggml_types[] = {
    { ILM__GGML_F32, "f32", 1, 4 },        { ILM__GGML_F16, "f16", 1, 2 },
    { ILM__GGML_Q4_0, "q4_0", 32, 18 },    { ILM__GGML_Q4_1, "q4_1", 32, 20 },
    { ILM__GGML_Q5_0, "q5_0", 32, 22 },    { ILM__GGML_Q5_1, "q5_1", 32, 24 },
    { ILM__GGML_Q8_0, "q8_0", 32, 34 },    { ILM__GGML_Q2_K, "q2_k", 256, 84 },
    { ILM__GGML_Q3_K, "q3_k", 256, 110 },  { ILM__GGML_Q4_K, "q4_k", 256, 144 },
    { ILM__GGML_Q5_K, "q5_k", 256, 176 },  { ILM__GGML_Q6_K, "q6_k", 256, 210 },
    { ILM__GGML_Q8_K, "q8_k", 256, 292 },  { ILM__GGML_IQ2_XXS, "iq2_xxs", 256, 66 },
    { ILM__GGML_IQ2_XS, "iq2_xs", 256, 74 }, { ILM__GGML_IQ3_XXS, "iq3_xxs", 256, 98 },
    { ILM__GGML_IQ1_S, "iq1_s", 256, 50 }, { ILM__GGML_IQ4_NL, "iq4_nl", 32, 18 },
    { ILM__GGML_IQ3_S, "iq3_s", 256, 110 }, { ILM__GGML_IQ2_S, "iq2_s", 256, 82 },
    { ILM__GGML_IQ4_XS, "iq4_xs", 256, 136 }, { ILM__GGML_I8, "i8", 1, 1 },
    { ILM__GGML_I16, "i16", 1, 2 },        { ILM__GGML_I32, "i32", 1, 4 },
    { ILM__GGML_I64, "i64", 1, 8 },        { ILM__GGML_F64, "f64", 1, 8 },
    { ILM__GGML_IQ1_M, "iq1_m", 256, 56 }, { ILM__GGML_BF16, "bf16", 1, 2 },
    { ILM__GGML_TQ1_0, "tq1_0", 256, 54 }, { ILM__GGML_TQ2_0, "tq2_0", 256, 66 },
    { ILM__GGML_MXFP4, "mxfp4", 32, 17 },
};

static const ggml_type_row *ggml_row(uint32_t type)
{
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == type) return &ggml_types[i];
    return NULL;
}

bool ilm__ggml_type_info(uint32_t type, uint32_t *block, uint32_t *bytes)
{
    const ggml_type_row *r = ggml_row(type);
    if (!r) return false;
    if (block) *block = r->block;
    if (bytes) *bytes = r->bytes;
    return true;
}

const char *ilm__ggml_type_name(uint32_t type)
{
    const ggml_type_row *r = ggml_row(type);
    return r ? r->name : "?";
}
