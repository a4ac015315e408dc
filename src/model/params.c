/* The flat parameter layout (params.h). */
#include "model/params.h"
#include "model/internal.h"

#include <stdio.h>
#include <string.h>

static void put(ilm__params *ps, const char *name, int ndim, int64_t rows, int64_t cols, bool decay)
{
    ilm__param *p = &ps->p[ps->n++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->shape[0] = rows;
    p->shape[1] = cols;
    p->numel = (size_t)(rows * cols);
    p->offset = ps->total;
    p->decay = decay;
    ps->total += (p->numel + ILM__PARAM_ALIGN - 1) / ILM__PARAM_ALIGN * ILM__PARAM_ALIGN;
}

ilm_status ilm__params_layout(const ilm__arch *a, ilm__params *out)
{
    ILM__RETURN_IF(!a || !out, ILM_ERR_INVALID_ARG, "params: NULL argument");
    memset(out, 0, sizeof *out);
    const bool i2 = a->kind == ILM__ARCH_INTERNLM2;
    size_t cap = (size_t)a->n_layers * ilm__n_layer_tensors + 3;
    out->p = ilm__calloc(cap, sizeof *out->p);
    ILM__RETURN_IF(!out->p, ILM_ERR_NOMEM, "params: out of memory");
    const int64_t C = a->hidden_size, V = a->vocab_size;
    put(out, i2 ? "model.tok_embeddings.weight" : "model.embed_tokens.weight", 2, V, C, false);
    for (int64_t l = 0; l < a->n_layers; l++)
        for (size_t i = 0; i < ilm__n_layer_tensors; i++) {
            const ilm__layer_tensor *lt = &ilm__layer_tensors[i];
            const char *fmt = ilm__layer_name(a, lt);
            char name[ILM__PARAM_NAME];
            if (!fmt) continue;
            snprintf(name, sizeof name, fmt, (long long)l);
            if (lt->norm) put(out, name, 1, 1, C, false);
            else put(out, name, 2, ilm__layer_size(a, lt->rows), ilm__layer_size(a, lt->cols), true);
        }
    put(out, "model.norm.weight", 1, 1, C, false);
    if (!a->tie_embeddings) put(out, i2 ? "output.weight" : "lm_head.weight", 2, V, C, true);
    return ILM_OK;
}

void ilm__params_free(ilm__params *ps)
{
    if (!ps) return;
    ilm__free(ps->p);
    memset(ps, 0, sizeof *ps);
}

const ilm__param *ilm__params_find(const ilm__params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i].name, name) == 0) return &ps->p[i];
    return NULL;
}
