/* Weights read as fp32 rows whatever their stored type, and a model's
 * linears quantized to bitsandbytes' NF4 / FP4 in place (QLoRA's frozen
 * base). */
#include "model/internal.h"
#include "quant/nf4.h"
#include "tensor/tensor.h"

#include <stddef.h>
#include <stdio.h>

bool ilm__weight_is_q4(const ilm__weight *w)
{
    return w->type == ILM__DTYPE_NF4 || w->type == ILM__DTYPE_FP4;
}

ilm_status ilm__weight_rows(const ilm__weight *w, int64_t r0, int64_t n, float *out, int threads)
{
    ILM__RETURN_IF(r0 < 0 || n < 0 || r0 + n > w->rows, ILM_ERR_INTERNAL,
                   "weight: rows [%lld, %lld) of %lld", (long long)r0, (long long)(r0 + n),
                   (long long)w->rows);
    const int64_t cols = w->cols;
    const bool q4 = ilm__weight_is_q4(w);
    uint32_t block = 1, bytes = 4;
    ILM__RETURN_IF(!q4 && !ilm__dtype_info(w->type, &block, &bytes), ILM_ERR_UNSUPPORTED,
                   "weight: type %u", w->type);
    const size_t row_bytes = (size_t)(cols / block) * bytes;
    if (threads <= 0) threads = ilm__num_threads();
    const uint8_t *base = (const uint8_t *)w->data + (size_t)r0 * row_bytes;
    int failed = 0;
#pragma omp parallel for num_threads(threads) if (n * cols > 65536) reduction(| : failed)
    for (int64_t r = 0; r < n; r++) {
        ilm_status s = q4 ? ilm__q4_dequantize(w->data, (r0 + r) * cols, cols, out + r * cols)
                          : ilm__dequantize(w->type, base + (size_t)r * row_bytes, out + r * cols, cols);
        failed |= s != ILM_OK;
    }
    /* Every range was checked above: a failure is a broken tensor. */
    return failed ? ilm__error(ILM_ERR_INTERNAL, "weight: cannot dequantize a %s weight",
                               ilm__dtype_name(w->type))
                  : ILM_OK;
}

uint64_t ilm__weight_bytes(const ilm__weight *w)
{
    if (ilm__weight_is_q4(w)) return ilm__q4_size(w->data);
    uint32_t block = 1, bytes = 4;
    (void)ilm__dtype_info(w->type, &block, &bytes);
    return (uint64_t)w->rows * (uint64_t)(w->cols / block) * bytes;
}

/* Forgets w's storage: a buffer the model owns is freed, a mapped one no
 * longer counts. */
static void release(ilm_model *m, const ilm__weight *w)
{
    const uint64_t bytes = ilm__weight_bytes(w);
    for (size_t i = 0; i < m->n_owned; i++)
        if (m->owned[i] == w->data) {
            ilm__free(m->owned[i]);
            m->owned[i] = NULL;
            m->owned_bytes -= bytes;
            return;
        }
    m->mapped_bytes -= bytes < m->mapped_bytes ? bytes : m->mapped_bytes;
}

ilm_status ilm__weight_quantize_q4(ilm_model *m, ilm__weight *w, const float *values,
                                   const ilm__q4_opts *o)
{
    ilm__q4 **list = ilm__realloc(m->q4, (m->n_q4 + 1) * sizeof *list);
    ILM__RETURN_IF(!list, ILM_ERR_NOMEM, "model: out of memory");
    m->q4 = list;
    ilm__q4 *q = ilm__calloc(1, sizeof *q);
    ILM__RETURN_IF(!q, ILM_ERR_NOMEM, "model: out of memory");
    ilm__q4_opts qo = *o;
    if (w->type == ILM__DTYPE_F16 || w->type == ILM__DTYPE_BF16) qo.dtype = w->type;
    const int64_t shape[2] = { w->rows, w->cols };
    ilm_status st = ilm__q4_quantize(values, 2, shape, &qo, q);
    if (st != ILM_OK) {
        ilm__free(q);
        return st;
    }
    m->q4[m->n_q4++] = q;
    if (w->data) release(m, w);
    *w = (ilm__weight){ .type = q->kind == ILM__Q4_FP4 ? ILM__DTYPE_FP4 : ILM__DTYPE_NF4,
                        .rows = w->rows, .cols = w->cols, .data = q };
    m->owned_bytes += ilm__weight_bytes(w);
    return ILM_OK;
}

ilm_status ilm__model_quantize_q4(ilm_model *m, const ilm__q4_opts *o)
{
    const ilm__arch *a = &m->arch;
    ILM__RETURN_IF(m->adapter, ILM_ERR_UNSUPPORTED,
                   "model: quantizing a model with the adapter '%s' applied", m->adapter);
    float *tmp = NULL;
    size_t cap = 0;
    ilm_status st = ILM_OK;
    for (int64_t l = 0; l < a->n_layers && st == ILM_OK; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors && st == ILM_OK; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            if (lt->norm || !ilm__layer_name(a, lt)) continue;
            ilm__weight *w = (ilm__weight *)((uint8_t *)&m->layers[l] + lt->field);
            if (ilm__weight_is_q4(w)) continue;
            const size_t n = (size_t)(w->rows * w->cols);
            if (n > cap) {
                ilm__free(tmp);
                cap = n;
                if (!(tmp = ilm__malloc(n * sizeof *tmp))) {
                    st = ilm__error(ILM_ERR_NOMEM, "model: out of memory quantizing layer %lld",
                                    (long long)l);
                    break;
                }
            }
            st = ilm__weight_rows(w, 0, w->rows, tmp, m->threads);
            /* GGUF's q/k rows go back to Hugging Face's order before they
             * are cut into blocks, so the 4-bit model is the one
             * bitsandbytes would make from the Hugging Face weights. */
            const bool qk = lt->field == offsetof(ilm__layer, wq) || lt->field == offsetof(ilm__layer, wk);
            if (st == ILM_OK && qk && a->rope_interleaved)
                st = ilm__rope_permute_rows(a->head_dim, w->rows, w->cols, tmp, true);
            if (st == ILM_OK) st = ilm__weight_quantize_q4(m, w, tmp, o);
        }
    ilm__free(tmp);
    if (st == ILM_OK) m->arch.rope_interleaved = false; /* every q and k row is in HF order now */
    return st;
}
