/*
 * src/quant/nf4.h -- bitsandbytes' 4-bit blockwise quantization (NF4, the
 * QLoRA data type, and FP4) with its double quantization, bit for bit as
 * bitsandbytes computes it on the CPU, and the safetensors keys that
 * bitsandbytes and transformers write for a 4-bit weight.
 *
 * Internal: nothing here is part of the ABI.  Tensors are flattened in
 * row-major order (PyTorch's), cut into blocks of `blocksize` elements (the
 * last block may be short), and each block is scaled by its absolute
 * maximum.  Two codes share a byte; element 2i is the high nibble of byte i
 * and an odd element count leaves the last low nibble holding code 7 (NF4's
 * 0.0; FP4's slot 7 is 0.25: bitsandbytes pads the scaled values with 0.0
 * before it looks codes up, so the pad is whatever 0.0 maps to).
 *
 * Double quantization ("nested", QLoRA's DQ) stores the per-block absmax as
 * 8-bit codes of bitsandbytes' signed dynamic map in blocks of 256 after
 * subtracting their mean, plus one float32 absmax per 256 blocks.
 */
#ifndef ILM_QUANT_NF4_H
#define ILM_QUANT_NF4_H

#include "core/internal.h"
#include "formats/safetensors.h"

typedef enum ilm__q4_kind { ILM__Q4_NF4 = 0, ILM__Q4_FP4 = 1 } ilm__q4_kind;

#define ILM__Q4_MAX_DIMS ILM__ST_MAX_DIMS
/* The nested blocksize bitsandbytes uses for the absmax (quantize_4bit). */
#define ILM__Q4_NESTED_BLOCKSIZE 256

/* A 4-bit tensor.  The arrays are either views (ilm__q4_hf_read: into the
 * safetensors mapping, which must stay open) or owned by `own` (one
 * allocation, freed by ilm__q4_free).  Immutable once made: any number of
 * threads may dequantize from it at once. */
typedef struct ilm__q4 {
    uint32_t kind;   /* ilm__q4_kind */
    uint32_t dtype;  /* the original tensor's type: ILM__DTYPE_F32, F16 or BF16 */
    int32_t  n_dims; /* 0 .. ILM__Q4_MAX_DIMS */
    int64_t  shape[ILM__Q4_MAX_DIMS]; /* PyTorch order; [n_dims-1] fastest */
    int64_t  n;                       /* elements: the product of shape */
    int64_t  blocksize;               /* 32, 64, ..., 4096 */
    int64_t  n_blocks;                /* ceil(n / blocksize) */
    const uint8_t *packed;            /* [(n + 1) / 2] */
    float          map[16];           /* the code values, by nibble */
    /* Not nested: the float32 absmax of each block. */
    const float *absmax; /* [n_blocks], NULL when nested */
    /* Nested: absmax[b] = nested_map[qabsmax[b]] * nested_absmax[b / nbs] + offset. */
    bool           nested;
    const uint8_t *qabsmax;          /* [n_blocks] */
    int64_t        nested_blocksize; /* nbs */
    int64_t        n_nested;         /* ceil(n_blocks / nbs) */
    const float   *nested_absmax;    /* [n_nested] */
    float          nested_map[256];
    float          offset;
    void          *own;
} ilm__q4;

/* How to quantize.  Zero-initialised options give bitsandbytes' QLoRA
 * default except nesting: NF4, blocksize 64, float32 original. */
typedef struct ilm__q4_opts {
    uint32_t kind;      /* ilm__q4_kind */
    int64_t  blocksize; /* 0 = 64 */
    bool     nested;    /* double quantization (compress_statistics) */
    uint32_t dtype;     /* recorded as the original type (0 = ILM__DTYPE_F32) */
    /* The offset is torch's float32 mean of the absmax, whose order of
     * additions depends on torch's thread count once there are 32768 blocks
     * or more (2M weights at blocksize 64): the count to repeat (0 = 1). */
    int torch_threads;
} ilm__q4_opts;

/* Options from a JSON object {"quant_type": "nf4" | "fp4", "blocksize":
 * 64, "double_quant": true} (bitsandbytes' QLoRA settings by default);
 * `where` names it in messages.  ILM_ERR_CONFIG for anything else. */
struct cJSON;
ilm_status ilm__q4_opts_parse(const struct cJSON *section, const char *where, ilm__q4_opts *o);

/* bitsandbytes' blocksizes: 32, 64, 128, ..., 4096. */
bool ilm__q4_blocksize_ok(int64_t blocksize);

/* Quantizes x (n = product of shape elements, row-major float32; a bf16 or
 * f16 original is passed widened, exactly) into *out (ilm__q4_free).  The
 * same bits as bitsandbytes 0.50's quantize_4bit(A, blocksize,
 * compress_statistics, quant_type) on the CPU.  NaN and infinities follow
 * bitsandbytes too (a block with a NaN gets code 15 throughout).
 * @return ILM_OK, ILM_ERR_INVALID_ARG (bad kind, blocksize, dtype or shape),
 *         ILM_ERR_NOMEM. */
ilm_status ilm__q4_quantize(const float *x, int32_t n_dims, const int64_t *shape,
                            const ilm__q4_opts *opts, ilm__q4 *out);
void       ilm__q4_free(ilm__q4 *q);

/* The bytes a tensor of n elements takes quantized with `o`: the packed
 * codes, the absmax (8-bit codes when nested, else fp32) and the nested
 * fp32 absmax (the 16- and 256-entry maps are not counted). */
uint64_t ilm__q4_bytes(int64_t n, const ilm__q4_opts *o);
/* The same for a quantized tensor. */
uint64_t ilm__q4_size(const ilm__q4 *q);

/* The scale of block b (b < n_blocks): its absmax, dequantized when nested
 * exactly as bitsandbytes does (code * nested absmax, then + offset). */
float ilm__q4_block_scale(const ilm__q4 *q, int64_t b);

/* Dequantizes elements [first, first + count) into out[count]: map[code] *
 * block scale in float32, bitsandbytes' dequantize_4bit to float32.  Rows
 * of a weight [out, in] are ranges of `in` elements at multiples of `in`;
 * they need not start on a block or a byte.
 * @return ILM_OK or ILM_ERR_INVALID_ARG (a range outside the tensor). */
ilm_status ilm__q4_dequantize(const ilm__q4 *q, int64_t first, int64_t count, float *out);
/* Row r of the tensor seen as [n / cols, cols] with cols = shape[n_dims-1]
 * (the CPU linear path's unit): out[cols]. */
ilm_status ilm__q4_dequantize_row(const ilm__q4 *q, int64_t r, float *out);

/* ---- the pieces, for tests --------------------------------------------- */

/* The 16 code values of a kind, as bitsandbytes' get_4bit_type builds them. */
void ilm__q4_code(uint32_t kind, float map[16]);
/* bitsandbytes' create_dynamic_map() (signed, 7 exponent bits, 8 bits):
 * 256 ascending values in [-0.99297, 1]. */
void ilm__q4_dynamic_map(float map[256]);
/* torch's float32 sum of x[n] as its CPU kernel (cascade_sum, 8 lanes, on
 * `threads` threads) adds it, and the mean (sum / n). */
float ilm__q4_torch_sum(const float *x, int64_t n, int threads);
float ilm__q4_torch_mean(const float *x, int64_t n, int threads);
/* bitsandbytes' CPU 8-bit blockwise quantization (quantize_blockwise of
 * a float32 tensor): per block absmax = max |a| (NaN ignored), v = a /
 * absmax, code = the nearest entry of `map` to the centre of v's cell in a
 * 65536-cell table over [-1, 1].  q[n], absmax[ceil(n / blocksize)].
 * @return ILM_OK or ILM_ERR_NOMEM. */
ilm_status ilm__q8_quantize(const float *a, int64_t n, const float map[256], int64_t blocksize,
                            uint8_t *q, float *absmax);
/* The code that table, built from `map`, gives the value v (one value at a
 * time: for tests of the decision thresholds). */
uint8_t    ilm__q8_code_of(const float map[256], float v);

/* ---- Hugging Face's bitsandbytes-4bit keys (nf4_hf.c) ---------------------- */

/* The quant_state JSON that bitsandbytes packs into the uint8 tensor
 * "<name>.quant_state.bitsandbytes__<nf4|fp4>": json.dumps of {quant_type,
 * blocksize, dtype, shape[, nested_blocksize, nested_dtype, nested_offset]}
 * with Python's spacing and float repr, so the bytes equal bitsandbytes'.
 * Allocated (ilm__free).  ILM_ERR_INVALID_ARG for a non-finite offset. */
ilm_status ilm__q4_state_json(const ilm__q4 *q, char **out);

/* The tensors bitsandbytes' Linear4bit state_dict (and so transformers'
 * save_pretrained) holds for a weight named `name` ("model.layers.0.
 * mlp.down_proj.weight"): `name` (U8 [(n+1)/2, 1]), name.absmax (U8 when
 * nested, else F32), name.quant_map (F32 [16]), name.nested_absmax and
 * name.nested_quant_map (F32, when nested) and the quant_state U8 tensor.
 * out->t[0 .. out->n) are ready for ilm__st_write (float tensors first);
 * they point into q and into out, which must outlive the write. */
typedef struct ilm__q4_hf {
    ilm__st_out t[6];
    size_t      n;
    char       *names[6];
    char       *json;
    int64_t     shapes[6][2];
} ilm__q4_hf;

ilm_status ilm__q4_hf_tensors(const ilm__q4 *q, const char *name, ilm__q4_hf *out);
void       ilm__q4_hf_free(ilm__q4_hf *h);

/* Whether `st` holds a bitsandbytes 4-bit weight named `name` (its
 * quant_state tensor is there). */
bool ilm__q4_hf_present(const ilm__safetensors *st, const char *name);

/* Reads the 4-bit weight `name` from `st` into *out (ilm__q4_free; the
 * packed codes and nested absmax codes are views into st), validating
 * every tensor against the quant_state JSON: dtypes, element counts,
 * the code table (it must be the kind's own: bitsandbytes ignores the
 * file's), known keys only.
 * @return ILM_OK, ILM_ERR_NOT_FOUND (no quant_state tensor for `name`),
 *         ILM_ERR_FORMAT naming the tensor for anything inconsistent or
 *         unsupported (a blocksize bitsandbytes does not have, another
 *         quant_storage than uint8, a truncated tensor), ILM_ERR_NOMEM. */
ilm_status ilm__q4_hf_read(const ilm__safetensors *st, const char *name, ilm__q4 *out);

#endif /* ILM_QUANT_NF4_H */
