/* The forward pass of LLaMA-shaped models (and InternLM2, whose fused wqkv
 * is split after the matmul) over a session's KV cache, on the backend op
 * table.  Activations are fp32; weights stay in their stored type. */
#include "model/internal.h"
#include "tensor/dtype.h"

#include <string.h>

ilm_status ilm__kv_init(const ilm_model *m, int64_t capacity, ilm__kv *kv)
{
    const ilm__arch *a = &m->arch;
    *kv = (ilm__kv){ .capacity = capacity, .rope_base = a->rope_theta };
    size_t per = (size_t)a->n_layers * (size_t)capacity * (size_t)a->n_kv_heads * (size_t)a->head_dim;
    ILM__RETURN_IF(capacity <= 0 || per / (size_t)capacity > SIZE_MAX / 16, ILM_ERR_RANGE,
                   "session: context of %lld tokens is too large", (long long)capacity);
    kv->k = ilm__malloc(per * sizeof *kv->k);
    kv->v = ilm__malloc(per * sizeof *kv->v);
    /* Dynamic NTK changes the base as the sequence grows: keep the keys
     * unrotated too, so they can be rotated again with the new base. */
    if (a->rope_scaling == ILM__ROPE_SCALING_DYNAMIC) kv->k_raw = ilm__malloc(per * sizeof *kv->k);
    if (!kv->k || !kv->v || (a->rope_scaling == ILM__ROPE_SCALING_DYNAMIC && !kv->k_raw)) {
        ilm__kv_free(kv);
        return ilm__error(ILM_ERR_NOMEM, "session: cannot allocate a KV cache of %zu MB",
                          2 * per * sizeof(float) >> 20);
    }
    return ILM_OK;
}

void ilm__kv_free(ilm__kv *kv)
{
    ilm__free(kv->k);
    ilm__free(kv->v);
    ilm__free(kv->k_raw);
    ilm__free(kv->scratch);
    *kv = (ilm__kv){ 0 };
}

/* Grows the session's scratch to n floats. */
static float *scratch(ilm__kv *kv, size_t n)
{
    if (n > kv->scratch_cap) {
        float *p = ilm__realloc(kv->scratch, n * sizeof *p);
        if (!p) return NULL;
        kv->scratch = p;
        kv->scratch_cap = n;
    }
    return kv->scratch;
}

/* Floats of the panel a 4-bit weight is dequantized into, some rows at a
 * time (4 MB). */
#define PANEL_FLOATS ((int64_t)1 << 20)

/* y = x W^T, plus (x A^T) (s B)^T when an adapter is applied; `tmp` holds
 * a panel (a model with 4-bit weights), then T * (lora_r + rows) floats. */
static ilm_status linear(const ilm__backend *be, const ilm_model *m, const ilm__weight *w,
                         const float *x, int64_t T, float *y, float *tmp)
{
    if (ilm__weight_is_q4(w)) {
        /* Rows of W as fp32, a panel at a time, into their columns of y. */
        float *panel = tmp;
        const int64_t P = PANEL_FLOATS / w->cols;
        for (int64_t n0 = 0; n0 < w->rows; n0 += P) {
            const int64_t rows = w->rows - n0 < P ? w->rows - n0 : P;
            ILM__FORWARD(ilm__weight_rows(w, n0, rows, panel, m->threads));
            ILM__FORWARD(be->iface.gemm_f32(be, false, true, (int)T, (int)rows, (int)w->cols, 1.0f,
                                            x, (int)w->cols, panel, (int)w->cols, 0.0f, y + n0,
                                            (int)w->rows));
        }
    } else {
        ILM__FORWARD(be->iface.linear(be, w->type, w->data, w->rows, w->cols, x, T, y));
    }
    if (!w->lora_r) return ILM_OK;
    float *xa = tmp + (m->n_q4 ? PANEL_FLOATS : 0), *d = xa + T * w->lora_r;
    ILM__FORWARD(be->iface.linear(be, ILM__DTYPE_F32, w->lora_a, w->lora_r, w->cols, x, T, xa));
    ILM__FORWARD(be->iface.linear(be, ILM__DTYPE_F32, w->lora_b, w->rows, w->lora_r, xa, T, d));
    return be->iface.add(be, y, d, T * w->rows);
}

ilm_status ilm__forward(const ilm__backend *be, const ilm_model *m, ilm__kv *kv,
                        const int32_t *ids, int64_t T, bool all_logits, float *logits)
{
    const ilm__arch *a = &m->arch;
    const int64_t C = a->hidden_size, F = a->intermediate_size, H = a->n_heads, KV = a->n_kv_heads,
                  D = a->head_dim, L = a->n_layers, p0 = kv->n, S = p0 + T, KVD = KV * D;
    ILM__RETURN_IF(T <= 0, ILM_ERR_INVALID_ARG, "model: no tokens to run");
    ILM__RETURN_IF(S > kv->capacity, ILM_ERR_RANGE,
                   "session: %lld tokens do not fit the context of %lld (%lld used)",
                   (long long)T, (long long)kv->capacity, (long long)p0);

    /* Scratch: x, h [T,C]; q, att [T,H*D]; k, v [T,KVD]; g, u [T,F] (the
     * fused qkv of InternLM2 borrows g+u); cos, sin [S, D/2]; rotated keys
     * for dynamic NTK [S, KVD]; an adapter's x A^T and its product [T, r +
     * widest output]. */
    const bool dynamic = kv->k_raw != NULL;
    const int64_t fused = a->kind == ILM__ARCH_INTERNLM2 ? T * (H + 2 * KV) * D : 0;
    const int64_t gu = 2 * T * F > fused ? 2 * T * F : fused;
    int64_t widest = (H + 2 * KV) * D > F ? (H + 2 * KV) * D : F;
    if (C > widest) widest = C;
    const int64_t lora = (m->lora_r ? T * (m->lora_r + widest) : 0) + (m->n_q4 ? PANEL_FLOATS : 0);
    size_t need = (size_t)(2 * T * C + 2 * T * H * D + 2 * T * KVD + gu + S * D +
                           (dynamic ? S * KVD : 0) + lora);
    float *buf = scratch(kv, need);
    ILM__RETURN_IF(!buf, ILM_ERR_NOMEM, "model: out of memory for activations of %lld tokens",
                   (long long)T);
    float *x = buf, *h = x + T * C, *q = h + T * C, *att = q + T * H * D, *k = att + T * H * D,
          *v = k + T * KVD, *g = v + T * KVD, *u = g + T * F, *cos_t = g + gu,
          *sin_t = cos_t + S * D / 2, *k_rot = sin_t + S * D / 2,
          *tmp = k_rot + (dynamic ? S * KVD : 0);

    const ilm__weight *e = &m->tok_embd;
    ILM__FORWARD(be->iface.embedding(be, e->type, e->data, e->rows, e->cols, ids, T, x));
    /* Rotation tables: for the new positions, or, when dynamic NTK has
     * changed the base, for every position (the cached keys turn again). */
    double base = ilm__rope_dynamic_base(a, S);
    bool rerotate = dynamic && base != kv->rope_base && p0 > 0;
    int64_t from = rerotate ? 0 : p0;
    int32_t posbuf[256];
    for (int64_t t0 = from; t0 < S; t0 += 256) {
        int64_t n = S - t0 < 256 ? S - t0 : 256;
        for (int64_t i = 0; i < n; i++) posbuf[i] = (int32_t)(t0 + i);
        ilm__rope_tables(m, posbuf, n, S, cos_t + (t0 - from) * D / 2, sin_t + (t0 - from) * D / 2);
    }
    const float *cos_new = cos_t + (p0 - from) * D / 2, *sin_new = sin_t + (p0 - from) * D / 2;

    for (int64_t l = 0; l < L; l++) {
        const ilm__layer *ly = &m->layers[l];
        float *kc = kv->k + l * kv->capacity * KVD, *vc = kv->v + l * kv->capacity * KVD;
        ILM__FORWARD(be->iface.rmsnorm(be, x, ly->attn_norm, h, T, C, a->rms_eps));
        if (a->kind == ILM__ARCH_INTERNLM2) {
            ILM__FORWARD(linear(be, m, &ly->wqkv, h, T, g, tmp));
            ILM__FORWARD(be->iface.qkv_split(be, g, T, H, KV, D, q, k, v));
        } else {
            ILM__FORWARD(linear(be, m, &ly->wq, h, T, q, tmp));
            ILM__FORWARD(linear(be, m, &ly->wk, h, T, k, tmp));
            ILM__FORWARD(linear(be, m, &ly->wv, h, T, v, tmp));
        }
        if (dynamic) ILM__FORWARD(be->iface.kv_append(be, kv->k_raw + l * kv->capacity * KVD, p0, k, T, KVD));
        ILM__FORWARD(be->iface.rope(be, q, T, H, D, cos_new, sin_new, a->rope_interleaved));
        ILM__FORWARD(be->iface.rope(be, k, T, KV, D, cos_new, sin_new, a->rope_interleaved));
        ILM__FORWARD(be->iface.kv_append(be, kc, p0, k, T, KVD));
        ILM__FORWARD(be->iface.kv_append(be, vc, p0, v, T, KVD));
        if (rerotate) { /* every cached key again, from its unrotated copy */
            ILM__FORWARD(be->iface.kv_append(be, k_rot, 0, kv->k_raw + l * kv->capacity * KVD, S, KVD));
            ILM__FORWARD(be->iface.rope(be, k_rot, S, KV, D, cos_t, sin_t, a->rope_interleaved));
            ILM__FORWARD(be->iface.kv_append(be, kc, 0, k_rot, S, KVD));
        }
        ILM__FORWARD(be->iface.attention(be, q, kc, vc, att, T, p0, H, KV, D, KVD));
        ILM__FORWARD(linear(be, m, &ly->wo, att, T, h, tmp));
        ILM__FORWARD(be->iface.add(be, x, h, T * C));
        ILM__FORWARD(be->iface.rmsnorm(be, x, ly->ffn_norm, h, T, C, a->rms_eps));
        ILM__FORWARD(linear(be, m, &ly->w_gate, h, T, g, tmp));
        ILM__FORWARD(linear(be, m, &ly->w_up, h, T, u, tmp));
        ILM__FORWARD(be->iface.swiglu(be, g, u, g, T * F));
        ILM__FORWARD(linear(be, m, &ly->w_down, g, T, h, tmp));
        ILM__FORWARD(be->iface.add(be, x, h, T * C));
    }
    kv->n = S;
    kv->rope_base = base;
    const float *last = all_logits ? x : x + (T - 1) * C;
    int64_t rows = all_logits ? T : 1;
    ILM__FORWARD(be->iface.rmsnorm(be, last, m->out_norm, h, rows, C, a->rms_eps));
    return linear(be, m, &m->output, h, rows, logits, tmp);
}
