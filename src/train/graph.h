/*
 * src/train/graph.h -- the training graph: forward and backward of a
 * LLaMA / InternLM2 model over packed batches, on the backend op table.
 *
 * Storage.  Parameters live in ONE flat fp32 slab laid out by
 * ilm__params_layout (model/params.h), gradients in a second slab of the same
 * layout, so the optimizer, the sharding layer and checkpoints see plain
 * element ranges.  The graph copies (dequantizing) every weight of the
 * model it is created from and does not keep that model.  It also builds,
 * once, an ilm_model VIEW whose weights point into the parameter slab
 * (f32 ilm__weights, norms as const float *): ilm_model_save, sessions and
 * generation run on the current trained weights without a copy.  The view
 * belongs to the graph (never ilm_model_free it) and has no tokenizer.
 *
 * A batch is B rows of T tokens, as the loader (corpus/internal.h,
 * ilm__batch) gives them: tokens, labels (the next token or -100),
 * positions (restarting at 0 in every document) and, per row, cu_seqlens
 * with row stride T + 1 (n_seqs[b] + 1 entries used, from 0 to T).  The
 * B*T tokens are processed as one packed sequence of sum(n_seqs)
 * documents; attention is causal and never crosses a document.
 *
 * The graph, per layer l (x_0 = embedding of the tokens; N = B*T):
 *   h    = rmsnorm(x_l, attn_norm)
 *   q, k, v = h Wq^T, h Wk^T, h Wv^T       (InternLM2: h Wqkv^T, split per
 *                                            KV head into [q x H/KV, k, v])
 *   q, k = rope(q), rope(k)                 (model's inv_freq, pair layout)
 *   att, lse = attention(q, k, v)           (packed documents, GQA)
 *   m    = x_l + att Wo^T
 *   h    = rmsnorm(m, ffn_norm)
 *   x_l+1 = m + (silu(h Wg^T) * h Wu^T) Wd^T
 * then logits = rmsnorm(x_L, out_norm) Wout^T (Wout = the embedding when
 * tied) and the fused softmax cross-entropy on the labels, over row chunks
 * so that the [N, V] logits never exist at once.  The backward runs the
 * same steps in reverse; every weight gradient is a gemm with beta = 1
 * into the gradient slab, so gradients ADD to what is there.  The loss
 * gradient is scaled by grad_scale: with grad_scale = 1 / (total targets
 * of all micro-batches) the slab ends up holding the gradient of the mean
 * loss of the whole step.
 *
 * Saved activations per layer: q, k, v, att [N, H*D or KV*D], lse [N, H],
 * m [N, C], gate and up [N, F]; the layer inputs x_l for all layers.
 * Norm outputs and silu(gate)*up are recomputed in backward (cheap).  With
 * recompute on, only the layer inputs are kept: backward runs each layer's
 * forward again into one shared set of buffers just before its backward
 * (activation memory O(L N C + N (H D + F)) instead of O(L N (C + H D + F))).
 * Scratch is allocated once per (B, T) and reused.
 *
 * Numerics: fp32 throughout, deterministic (same bits for any thread
 * count).  The slabs and the scratch are host memory: the graph runs on
 * its own CPU backend instance (a device backend will need device slabs),
 * so a graph never shares scratch or threads with a session.  Dynamic-NTK RoPE uses the base of the longest document
 * position in the batch (max position + 1).
 */
#ifndef ILM_TRAIN_GRAPH_H
#define ILM_TRAIN_GRAPH_H

#include "model/internal.h"
#include "model/lora.h"
#include "model/params.h"

typedef struct ilm__graph ilm__graph;

typedef struct ilm__graph_opts {
    bool recompute; /* keep only layer inputs; recompute layers in backward */
    int  threads;   /* the graph's backend instance's threads; 0: the default */
    /* LoRA (model/lora.h): only adapters train; NULL: every parameter does. */
    const ilm__lora_opts *lora;
} ilm__graph_opts;

/* A graph over a copy of `m`'s weights (any stored type; dequantized to
 * fp32).  opts may be NULL (no recompute).  The gradient slab starts zero.
 *
 * With opts->lora the graph copies nothing: `m` is the frozen base, read
 * in place in its stored type (fp32, fp16, bf16, NF4 or a GGUF quant), and
 * must outlive the graph.  The slabs hold only the adapters, in
 * ilm__lora_layout order, initialised as PEFT does.  Every adapted linear
 * computes y = x W^T + s (dropout(x) A^T) B^T; a base weight that is not
 * fp32 is dequantized a panel of rows at a time (about 4 MB) for each
 * product, so its fp32 copy never exists whole.  The embedding, the norms
 * and the output head stay frozen, and the model view is `m` itself. */
ilm_status ilm__graph_create(const ilm_model *m, const ilm__graph_opts *opts, ilm__graph **out);
void       ilm__graph_free(ilm__graph *g);
/* The graph's own backend instance (the optimizer steps on it too). */
const ilm__backend *ilm__graph_backend(const ilm__graph *g);

/* The layout, the parameter slab and the gradient slab ([total] floats
 * each, owned by the graph). */
const ilm__params *ilm__graph_params(const ilm__graph *g);
float             *ilm__graph_param_slab(ilm__graph *g);
float             *ilm__graph_grad_slab(ilm__graph *g);
void               ilm__graph_zero_grad(ilm__graph *g);

/* The model view over the parameter slab (owned by the graph). */
ilm_model *ilm__graph_model(ilm__graph *g);

void ilm__graph_set_recompute(ilm__graph *g, bool on);
/* The dropout masks of the next forward_backward / forward come from
 * (the LoRA seed, `key`): the trainer passes the micro-batch's index, so a
 * resumed run draws the same masks.  Forward-only runs use no dropout. */
void ilm__graph_set_dropout_key(ilm__graph *g, uint64_t key);
/* Bytes of activation scratch a batch of B x T needs with the current
 * recompute setting (the scratch forward_backward allocates). */
uint64_t ilm__graph_activation_bytes(const ilm__graph *g, int64_t B, int64_t T);
/* The same for a graph not made: arch a, adapters `lora` (NULL: full
 * training), recompute on or off. */
uint64_t ilm__graph_plan_activation_bytes(const ilm__arch *a, const ilm__lora_opts *lora,
                                          bool recompute, int64_t B, int64_t T);

/* Time by op.  With timing on, every op of forward_backward and forward
 * adds its wall time to its row (ops run one after another, each on all
 * threads, so the rows add up to the graph's time); off (the default), the
 * cost is one test per op.  ILM__GOP_OTHER is the residual copies and adds
 * and InternLM2's qkv split. */
typedef enum ilm__graph_op {
    ILM__GOP_EMBEDDING,
    ILM__GOP_RMSNORM,
    ILM__GOP_MM_QKV,
    ILM__GOP_MM_O,
    ILM__GOP_MM_MLP,
    ILM__GOP_MM_LM_HEAD,
    ILM__GOP_ROPE,
    ILM__GOP_ATTENTION,
    ILM__GOP_SWIGLU,
    ILM__GOP_CROSS_ENTROPY,
    ILM__GOP_OTHER,
    ILM__GOP_COUNT
} ilm__graph_op;

/* "embedding", "rmsnorm", "matmul_qkv", ... (the JSON keys of bench train). */
extern const char *const ilm__graph_op_names[ILM__GOP_COUNT];

/* Turns timing on or off and zeroes the times. */
void ilm__graph_set_timing(ilm__graph *g, bool on);
/* Seconds per op since timing was last turned on ([ILM__GOP_COUNT]). */
const double *ilm__graph_op_seconds(const ilm__graph *g);

/* Forward and backward over one batch (shapes above): *loss_sum gets the
 * sum of the token losses (double), *n_targets the number of labels that
 * are not -100; d(grad_scale * loss_sum)/d(parameters) is ADDED to the
 * gradient slab.  ILM_ERR_RANGE for a token or label outside the
 * vocabulary, ILM_ERR_INVALID_ARG for bad shapes or cu_seqlens. */
ilm_status ilm__graph_forward_backward(ilm__graph *g, const int32_t *tokens,
                                       const int32_t *labels, const int32_t *positions,
                                       const int32_t *cu_seqlens, const int32_t *n_seqs,
                                       int64_t B, int64_t T, float grad_scale,
                                       double *loss_sum, int64_t *n_targets);

/* The forward only (evaluation loss): same arguments, gradients untouched. */
ilm_status ilm__graph_forward(ilm__graph *g, const int32_t *tokens, const int32_t *labels,
                              const int32_t *positions, const int32_t *cu_seqlens,
                              const int32_t *n_seqs, int64_t B, int64_t T, double *loss_sum,
                              int64_t *n_targets);

#endif /* ILM_TRAIN_GRAPH_H */
