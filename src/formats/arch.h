/*
 * src/formats/arch.h -- the architecture description every model loader
 * produces: from a Hugging Face config.json (hf_config.c) or from a GGUF
 * file's "llama.*" metadata, and back to a config.json that transformers
 * loads.  The model code (src/model/) reads only this.
 *
 * Architectures: LLaMA-shaped (LlamaForCausalLM: SmolLM2, LLaMA-2/3,
 * Mistral, InternLM3) and InternLM2 (InternLM2ForCausalLM: fused wqkv).
 */
#ifndef ILM_FORMATS_ARCH_H
#define ILM_FORMATS_ARCH_H

#include "core/internal.h"

typedef enum ilm__arch_kind {
    ILM__ARCH_LLAMA     = 1,
    ILM__ARCH_INTERNLM2 = 2
} ilm__arch_kind;

/* RoPE frequency scaling (HF rope_scaling). */
typedef enum ilm__rope_scaling {
    ILM__ROPE_SCALING_NONE    = 0,
    ILM__ROPE_SCALING_LINEAR  = 1, /* positions divided by factor */
    ILM__ROPE_SCALING_DYNAMIC = 2, /* NTK: base grows past max_position */
    ILM__ROPE_SCALING_LLAMA3  = 3  /* per-band inv_freq (LLaMA-3.1) */
} ilm__rope_scaling;

typedef struct ilm__arch {
    ilm__arch_kind kind;
    int32_t vocab_size;         /* V */
    int32_t hidden_size;        /* C */
    int32_t intermediate_size;  /* F */
    int32_t n_layers;           /* L */
    int32_t n_heads;            /* H */
    int32_t n_kv_heads;         /* KV, divides H */
    int32_t head_dim;           /* D (hidden_size / n_heads unless set) */
    int32_t max_position;       /* max_position_embeddings */
    float   rms_eps;
    float   rope_theta;
    ilm__rope_scaling rope_scaling;
    float   rope_factor;                /* linear / dynamic / llama3 */
    float   rope_low_freq_factor;       /* llama3 */
    float   rope_high_freq_factor;      /* llama3 */
    int32_t rope_original_max_position; /* llama3 */
    /* RoPE pairs: false = HF "rotate_half" (dims i and i + D/2), true =
     * adjacent pairs (2i, 2i+1), which GGUF LLaMA files need because the
     * converter permuted the Q/K rows. */
    bool    rope_interleaved;
    bool    tie_embeddings;
    int32_t bos_id, eos_id, pad_id; /* -1 when the config has none */
} ilm__arch;

/* Parses config.json text (len bytes, no NUL needed).  Unknown architectures, hidden_act other than
 * "silu", attention/MLP biases, and contradictions (H not divisible by KV,
 * hidden_size not H*D without an explicit head_dim, non-positive sizes)
 * are ILM_ERR_UNSUPPORTED or ILM_ERR_FORMAT naming `path` and the key.
 * Keys this library has no use for are ignored (config.json is HF's). */
ilm_status ilm__arch_from_hf_config(const char *json, size_t len, const char *path,
                                    ilm__arch *out);

/* Writes a config.json (allocated, ilm__free) that transformers loads as
 * LlamaForCausalLM or InternLM2ForCausalLM with this architecture. */
ilm_status ilm__arch_to_hf_config(const ilm__arch *a, char **json);

/* Reads the architecture of a GGUF file from its "llama.*" metadata
 * (general.architecture "llama"; others are ILM_ERR_UNSUPPORTED) and checks
 * every tensor the model needs against it: a missing tensor or a shape that
 * contradicts the metadata is ILM_ERR_FORMAT naming the tensor; a tensor
 * the LLaMA graph has no place for (biases, rope_freqs, experts) is
 * ILM_ERR_UNSUPPORTED.  rope_interleaved is true (llama.cpp's converter
 * permuted the Q/K rows), tie_embeddings is true when output.weight is
 * absent.  Nothing is retained. */
struct ilm__gguf;
ilm_status ilm__arch_from_gguf(const struct ilm__gguf *g, ilm__arch *out);

#endif /* ILM_FORMATS_ARCH_H */
