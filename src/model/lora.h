/*
 * src/model/lora.h -- LoRA adapters (Hu et al. 2021) as PEFT lays them out.
 *
 * A targeted linear y = x W^T of a frozen base gains two trainable
 * matrices, A [r, in] and B [out, r]:
 *     y = x W^T + s (dropout(x) A^T) B^T,   s = alpha / r   (rsLoRA: alpha / sqrt(r)).
 * PEFT's initialisation: A Kaiming-uniform with a = sqrt(5) (uniform in
 * +-1/sqrt(in)), B zero, so training starts from the base model exactly.
 *
 * The adapter parameters form their own flat layout (model/params.h), in layer
 * order and, inside a layer, in ilm__layer_tensors order, A before B.  The
 * names are PEFT's file keys, "base_model.model.<module>.lora_A.weight"
 * (<module> the base tensor's Hugging Face name without ".weight"), so the
 * slab saves as adapter_model.safetensors as it is.
 *
 * Targets are module names as PEFT matches them (a name or a dotted suffix
 * of the module path: "q_proj", "self_attn.q_proj"; InternLM2: "wqkv",
 * "wo", "w1", "w2", "w3") or "all-linear" (every linear of the layers,
 * never the output head).
 */
#ifndef ILM_MODEL_LORA_H
#define ILM_MODEL_LORA_H

#include "model/params.h"

#include <cjson/cJSON.h>

typedef struct ilm__lora_opts {
    int64_t  r;
    double   alpha;
    double   dropout;  /* probability in [0, 1) */
    bool     rslora;
    uint32_t targets;  /* bit i: ilm__layer_tensors[i] is adapted */
    uint64_t seed;     /* A's initialisation and the dropout masks */
} ilm__lora_opts;

/* XTuner's defaults: r 64, alpha 16, dropout 0.1, every linear. */
void ilm__lora_opts_default(ilm__lora_opts *o);

/* Parses a "lora" section ({"r", "alpha", "dropout", "rslora",
 * "target_modules": [names] or "all-linear", "seed"}) over the defaults;
 * `where` names the section in messages.  Target names are checked
 * against arch a: one that matches no linear is ILM_ERR_CONFIG. */
ilm_status ilm__lora_opts_parse(const cJSON *section, const char *where, const ilm__arch *a,
                                ilm__lora_opts *o);

/* The scale s. */
float ilm__lora_scale(const ilm__lora_opts *o);

/* The adapter layout for arch a (names and shapes above; decay on). */
ilm_status ilm__lora_layout(const ilm__arch *a, const ilm__lora_opts *o, ilm__params *out);

/* PEFT's initialisation of a slab in that layout (B zero). */
void ilm__lora_init(const ilm__params *ps, const ilm__lora_opts *o, float *slab);

/* The module path of layer tensor i of layer l ("model.layers.3.self_attn.q_proj")
 * into buf; false when the arch has no such tensor or it is a norm. */
bool ilm__lora_module(const ilm__arch *a, size_t i, int64_t l, char *buf, size_t cap);

/* Reads a PEFT LoRA adapter directory (adapter_config.json +
 * adapter_model.safetensors) for arch a: *o gets r, alpha, dropout, rsLoRA
 * and the targets its tensors name (peft writes the modules it adapted as
 * full paths; the tensors are what counts), *ps the layout and *slab
 * (ilm__free) the values as fp32 in that layout.  Every layer must adapt
 * the same modules.
 * @return ILM_OK; ILM_ERR_IO; ILM_ERR_FORMAT naming the file and the tensor
 *         (a tensor of no linear layer of this model, a wrong shape or
 *         dtype, a missing A or B); ILM_ERR_UNSUPPORTED for a PEFT feature
 *         this library does not implement (DoRA, biases, modules_to_save,
 *         per-layer ranks, some layers only). */
ilm_status ilm__lora_read(const char *dir, const ilm__arch *a, ilm__lora_opts *o,
                          ilm__params *ps, float **slab);

/* Writes an adapter as PEFT does (directory created if missing; each file
 * atomically): adapter_model.safetensors (fp32, the layout's names) and
 * adapter_config.json naming `base_name` as the base model. */
ilm_status ilm__lora_write(const char *dir, const ilm__arch *a, const ilm__lora_opts *o,
                           const ilm__params *ps, const float *slab, const char *base_name);

/* Applies the PEFT adapter in `dir` to model m for inference without
 * merging (the load config's "adapter"): every adapted weight of m gains
 * A and s B (ilm__weight), which m owns from then on.  Errors as
 * ilm__lora_read; m is unchanged on failure. */
ilm_status ilm__lora_attach(ilm_model *m, const char *dir);

#endif /* ILM_MODEL_LORA_H */
