/*
 * src/tensor/ -- tensors' element types, half-precision conversions and the
 * reference (de)quantization of ggml's block formats, plus the fast
 * quantized matrix-vector kernels the CPU backend's linear op runs.
 *
 * dtype.c holds the type table: block geometry per type id.
 */
#include "tensor/dtype.h"

#include <stddef.h>

typedef struct dtype_row {
    uint32_t    id;
    const char *name;
    uint32_t    block, bytes;
} dtype_row;

/* Block geometry as ggml's type traits define it (ggml-common.h) and the
 * gguf Python package's GGML_QUANT_SIZES lists it.  Q8_1 is left out on
 * purpose: the two disagree on its size and no model file stores it. */
static const dtype_row dtypes[] = {
    { ILM__DTYPE_F32, "f32", 1, 4 },        { ILM__DTYPE_F16, "f16", 1, 2 },
    { ILM__DTYPE_Q4_0, "q4_0", 32, 18 },    { ILM__DTYPE_Q4_1, "q4_1", 32, 20 },
    { ILM__DTYPE_Q5_0, "q5_0", 32, 22 },    { ILM__DTYPE_Q5_1, "q5_1", 32, 24 },
    { ILM__DTYPE_Q8_0, "q8_0", 32, 34 },    { ILM__DTYPE_Q2_K, "q2_k", 256, 84 },
    { ILM__DTYPE_Q3_K, "q3_k", 256, 110 },  { ILM__DTYPE_Q4_K, "q4_k", 256, 144 },
    { ILM__DTYPE_Q5_K, "q5_k", 256, 176 },  { ILM__DTYPE_Q6_K, "q6_k", 256, 210 },
    { ILM__DTYPE_Q8_K, "q8_k", 256, 292 },  { ILM__DTYPE_IQ2_XXS, "iq2_xxs", 256, 66 },
    { ILM__DTYPE_IQ2_XS, "iq2_xs", 256, 74 }, { ILM__DTYPE_IQ3_XXS, "iq3_xxs", 256, 98 },
    { ILM__DTYPE_IQ1_S, "iq1_s", 256, 50 }, { ILM__DTYPE_IQ4_NL, "iq4_nl", 32, 18 },
    { ILM__DTYPE_IQ3_S, "iq3_s", 256, 110 }, { ILM__DTYPE_IQ2_S, "iq2_s", 256, 82 },
    { ILM__DTYPE_IQ4_XS, "iq4_xs", 256, 136 }, { ILM__DTYPE_I8, "i8", 1, 1 },
    { ILM__DTYPE_I16, "i16", 1, 2 },        { ILM__DTYPE_I32, "i32", 1, 4 },
    { ILM__DTYPE_I64, "i64", 1, 8 },        { ILM__DTYPE_F64, "f64", 1, 8 },
    { ILM__DTYPE_IQ1_M, "iq1_m", 256, 56 }, { ILM__DTYPE_BF16, "bf16", 1, 2 },
    { ILM__DTYPE_TQ1_0, "tq1_0", 256, 54 }, { ILM__DTYPE_TQ2_0, "tq2_0", 256, 66 },
    { ILM__DTYPE_MXFP4, "mxfp4", 32, 17 },
    { ILM__DTYPE_NF4, "nf4", 2, 1 },        { ILM__DTYPE_FP4, "fp4", 2, 1 },
    { ILM__DTYPE_U8, "u8", 1, 1 },
};

static const dtype_row *dtype_row_of(uint32_t type)
{
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (dtypes[i].id == type) return &dtypes[i];
    return NULL;
}

bool ilm__dtype_info(uint32_t type, uint32_t *block, uint32_t *bytes)
{
    const dtype_row *r = dtype_row_of(type);
    if (!r) return false;
    if (block) *block = r->block;
    if (bytes) *bytes = r->bytes;
    return true;
}

const char *ilm__dtype_name(uint32_t type)
{
    const dtype_row *r = dtype_row_of(type);
    return r ? r->name : "?";
}

bool ilm__dtype_from_ggml(uint32_t ggml_id, uint32_t *type)
{
    if (ggml_id >= ILM__DTYPE_OWN || !dtype_row_of(ggml_id)) return false;
    *type = ggml_id;
    return true;
}
