/*
 * src/model/internal.h -- the ilm_model object: an architecture (formats/
 * arch.h) and its weights, plus what inference needs to run it.
 *
 *   model.c    loading (HF directory with safetensors + config.json, or a
 *              GGUF file), the weight table, memory report, info
 *   rope.c     RoPE frequencies (theta, linear / dynamic-NTK / LLaMA-3)
 *   forward.c  the forward pass over a KV cache
 *   create.c   random models (ilm_model_create) and ilm_model_save
 *   params.c   the flat parameter layout training shares (params.h)
 *   weight.c   weights as fp32 rows; NF4 / FP4 quantization of the linears
 *   lora.c     LoRA adapters: options, layout, PEFT files, applying one
 *              at load (lora.h)
 *
 * Weights stay where the file put them (mmap'd) in their own type; only
 * small tensors the forward pass reads as fp32 (norm weights) and weights
 * that must be rearranged are copied into buffers the model owns.  A model
 * is immutable after loading and may be shared by any number of threads.
 */
#ifndef ILM_MODEL_INTERNAL_H
#define ILM_MODEL_INTERNAL_H

#include "backend/backend.h"
#include "formats/arch.h"

struct ilm__safetensors;
struct ilm__gguf;

/* A weight matrix W[rows, cols] in ggml type `type`, rows contiguous; for
 * ILM__DTYPE_NF4 / FP4, `data` is a const ilm__q4 * (quant/nf4.h: the codes
 * and their block scales).
 * With a LoRA adapter applied at load (lora_r > 0) the linear computes
 * y = x W^T + (x A^T) B'^T, A [lora_r, cols], B' = s B [rows, lora_r]. */
typedef struct ilm__weight {
    uint32_t     type;
    int64_t      rows, cols;
    const void  *data;
    int64_t      lora_r;
    const float *lora_a, *lora_b;
} ilm__weight;

typedef struct ilm__layer {
    const float *attn_norm; /* [C] */
    const float *ffn_norm;  /* [C] */
    /* LLaMA: wq [H*D, C], wk / wv [KV*D, C].  InternLM2: wqkv [(H+2KV)*D, C]
     * grouped per KV head ([q x H/KV, k, v] per group); wq etc. unused. */
    ilm__weight wq, wk, wv, wqkv;
    ilm__weight wo;         /* [C, H*D] */
    ilm__weight w_gate;     /* [F, C] */
    ilm__weight w_up;       /* [F, C] */
    ilm__weight w_down;     /* [C, F] */
} ilm__layer;

struct ilm_model {
    ilm__arch           arch;
    int                 threads;  /* the load config's "threads"; 0: the default */
    ilm__weight         tok_embd; /* [V, C] */
    const float        *out_norm; /* [C] */
    ilm__weight         output;   /* [V, C]; = tok_embd when tied */
    ilm__layer         *layers;   /* [L] */
    float              *inv_freq; /* [D/2], scaling already applied */
    float               rope_attn_factor; /* LLaMA-3 style cos/sin scale (1) */
    /* Storage: the files, and copies the model owns. */
    struct ilm__safetensors *st;
    struct ilm__gguf        *gguf;
    void                   **owned; /* buffers to free (ilm__model_own) */
    size_t                   n_owned;
    uint64_t                 mapped_bytes, owned_bytes;
    ilm_tokenizer           *tok;      /* NULL when the files have none */
    /* The LoRA adapter applied at load (the load config's "adapter"):
     * its A and scaled B values, and its directory; NULL when none. */
    float                   *lora_slab;
    char                    *adapter;
    int64_t                  lora_r;
    char                    *chat_template; /* "internlm2", "chatml", "llama2", "llama3" */
    /* 4-bit linears made by ilm__model_quantize_q4 (their ilm__q4s). */
    struct ilm__q4         **q4;
    size_t                   n_q4;
};

/* The per-layer tensors and their names in each file layout (model.c).
 * Shapes use the architecture's sizes: C hidden, F intermediate, Q = H*D,
 * K = KV*D, X = (H+2KV)*D (InternLM2's fused wqkv); a norm is a vector of
 * C.  A NULL name: the tensor is not part of that layout. */
typedef struct ilm__layer_tensor {
    size_t      field;   /* offsetof in ilm__layer */
    bool        norm;    /* a const float * [C], else an ilm__weight */
    char        rows, cols;
    const char *llama, *internlm2, *gguf; /* printf formats of the layer index */
} ilm__layer_tensor;

extern const ilm__layer_tensor ilm__layer_tensors[];
extern const size_t            ilm__n_layer_tensors;
int64_t ilm__layer_size(const ilm__arch *a, char which);
/* The Hugging Face name format of a tensor for this architecture. */
static inline const char *ilm__layer_name(const ilm__arch *a, const ilm__layer_tensor *lt)
{
    return a->kind == ILM__ARCH_INTERNLM2 ? lt->internlm2 : lt->llama;
}

/* RoPE: fills cos/sin [T, D/2] for positions pos[0..T).  `n_ctx` is the
 * sequence length the caller will have after this step (dynamic NTK grows
 * the base past max_position). */
void ilm__rope_tables(const ilm_model *m, const int32_t *pos, int64_t T, int64_t n_ctx,
                      float *cos, float *sin);
/* Computes inv_freq from the architecture (at load). */
ilm_status ilm__rope_init(ilm_model *m);
/* The base dynamic NTK uses for a sequence of n_ctx tokens. */
double ilm__rope_dynamic_base(const ilm__arch *a, int64_t n_ctx);

/* A buffer of `bytes` the model owns and frees (counted in owned_bytes);
 * NULL when out of memory. */
void *ilm__model_own(ilm_model *m, size_t bytes);

/* Whether w is a bitsandbytes 4-bit weight (its data an ilm__q4). */
bool ilm__weight_is_q4(const ilm__weight *w);
/* The bytes w's storage takes (a 4-bit weight: its codes and scales). */
uint64_t ilm__weight_bytes(const ilm__weight *w);
/* Rows [r0, r0 + n) of w as fp32 into out[n * cols], for any stored type;
 * `threads` <= 0: the process default. */
ilm_status ilm__weight_rows(const ilm__weight *w, int64_t r0, int64_t n, float *out, int threads);
/* Quantizes every linear of the layers (not the embedding or the output
 * head, as bitsandbytes' QLoRA leaves them) to 4 bits with `o`
 * (quant/nf4.h), in place: the model owns the result, and an fp32 weight it
 * owned is freed as soon as it is quantized.  A model from GGUF gets its
 * q/k rows in Hugging Face order (and rotate-half RoPE), as bitsandbytes
 * would quantize the Hugging Face weights.  A model with an adapter
 * applied is refused; after another failure the model is unusable. */
struct ilm__q4_opts;
ilm_status ilm__model_quantize_q4(ilm_model *m, const struct ilm__q4_opts *o);
/* Makes *w a 4-bit weight of m holding `values` [w->rows, w->cols]
 * quantized with `o`, and releases what w held. */
ilm_status ilm__weight_quantize_q4(ilm_model *m, ilm__weight *w, const float *values,
                                   const struct ilm__q4_opts *o);
/* ilm_model_create, and with q4 set the linears made directly in 4 bits
 * (each generated in fp32 alone, quantized, dropped) and the embedding and
 * head in bf16, as a QLoRA base holds them: a 7B model never exists in
 * fp32. */
ilm_status ilm__model_create(const char *config, uint64_t seed, const struct ilm__q4_opts *q4,
                             ilm_model **out);

/* GGUF stores LLaMA's q and k rows permuted for adjacent-pair RoPE: within
 * each head of D rows, Hugging Face row half * D/2 + i is GGUF row
 * 2 i + half.  Reorders the rows [rows, width] of x in place, to the
 * Hugging Face order (to_hf) or to GGUF's. */
ilm_status ilm__rope_permute_rows(int64_t D, int64_t rows, int64_t width, float *x, bool to_hf);

/* The KV cache of one session: for each layer, keys and values at every
 * position, [S, KV*D] each, fp32.  Keys are stored rotated. */
typedef struct ilm__kv {
    int64_t capacity; /* S */
    int64_t n;        /* positions filled */
    float  *k, *v;    /* [L, S, KV*D] */
    /* Dynamic NTK: the base the stored keys were rotated with, and the keys
     * before rotation (NULL for other models). */
    double  rope_base;
    float  *k_raw;
    /* Activations, grown as needed and reused from call to call. */
    float  *scratch;
    size_t  scratch_cap;
} ilm__kv;

ilm_status ilm__kv_init(const ilm_model *m, int64_t capacity, ilm__kv *kv);
void       ilm__kv_free(ilm__kv *kv);

/* Runs T tokens at positions kv->n .. kv->n+T-1 through the model on the
 * caller's backend instance (a session's own), appends their keys/values,
 * and writes logits: all T rows ([T, V]) when all_logits, else the last row
 * only ([V]).  Reads the model only, so many sessions may run it at once. */
ilm_status ilm__forward(const ilm__backend *be, const ilm_model *m, ilm__kv *kv,
                        const int32_t *ids, int64_t T, bool all_logits, float *logits);

#endif /* ILM_MODEL_INTERNAL_H */
