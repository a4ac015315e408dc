/*
 * src/model/params.h -- the flat parameter layout that the training graph,
 * the optimizer and checkpoints share.
 *
 * Parameters, gradients and optimizer moments live in flat fp32 slabs with
 * one layout: tensor i occupies elements [offset, offset + numel) of every
 * slab.  A sharding layer (Hybrid ZeRO, later) owns element ranges of these
 * slabs, so nothing here may assume one process holds a whole slab's state.
 */
#ifndef ILM_MODEL_PARAMS_H
#define ILM_MODEL_PARAMS_H

#include "formats/arch.h"

#define ILM__PARAM_NAME 96
#define ILM__PARAM_ALIGN 16 /* elements: every tensor starts 64-byte aligned */

typedef struct ilm__param {
    char    name[ILM__PARAM_NAME]; /* the Hugging Face tensor name */
    int     ndim;                  /* 1 (norm weights) or 2 */
    int64_t shape[2];              /* [rows, cols]; ndim 1: [1, n] */
    size_t  offset;                /* first element in a slab */
    size_t  numel;
    bool    decay;                 /* AdamW weight decay applies by default */
} ilm__param;

typedef struct ilm__params {
    ilm__param *p;     /* [n], in checkpoint (file) order */
    size_t      n;
    size_t      total; /* slab length in elements (with alignment gaps) */
} ilm__params;

/* The layout of an architecture in its Hugging Face naming: the embedding,
 * the layers' tensors in ilm__layer_tensors order, the final norm and (when
 * not tied) the output matrix.  Decay is on for every matrix except the
 * embedding; norms never decay. */
ilm_status        ilm__params_layout(const ilm__arch *a, ilm__params *out);
void              ilm__params_free(ilm__params *ps);
/* The tensor named `name`, or NULL. */
const ilm__param *ilm__params_find(const ilm__params *ps, const char *name);

#endif /* ILM_MODEL_PARAMS_H */
