/* src/infer/internal.h -- sessions, sampling, generation, chat templates
 * (see session.c for what the folder owns). */
#ifndef ILM_INFER_INTERNAL_H
#define ILM_INFER_INTERNAL_H

#include "model/internal.h"

struct ilm_session {
    const ilm_model *m;
    ilm__backend    *be;         /* the session's own instance */
    ilm__kv          kv;
    int32_t         *tokens;     /* [context]: the ids in the cache */
    float           *logits;     /* [V]: after the last evaluated token */
    bool             has_logits;
};

/* Sampling settings (llama.cpp's defaults unless set). */
typedef struct ilm__sampling {
    double   temperature;        /* <= 0: greedy */
    int64_t  top_k;              /* <= 0: off */
    double   top_p;              /* >= 1: off */
    double   min_p;              /* <= 0: off */
    double   repetition_penalty; /* 1: off; divides positive logits, multiplies negative */
    int64_t  repeat_last_n;      /* how far back the penalty looks */
    uint64_t seed;
} ilm__sampling;

void ilm__sampling_defaults(ilm__sampling *p);

/* Picks the next id from logits[V] (not modified).  `history` holds the
 * ids so far (for the repetition penalty); `work` has room for 3*V 32-bit
 * values.  The same rng state and inputs give the same id. */
int32_t ilm__sample(const float *logits, int64_t V, const ilm__sampling *p,
                    const int32_t *history, size_t n_history, ilm__rng *rng, void *work);

/* A rendered conversation: the prompt text and, in plain (2 * n_plain
 * offsets, sorted), the [start, end) byte ranges that came from the
 * messages (roles and contents) rather than from the template. */
typedef struct ilm__chat_text {
    ilm__buf text;
    size_t  *plain;
    size_t   n_plain, cap;
} ilm__chat_text;
void ilm__chat_text_free(ilm__chat_text *r);

/* Renders messages (JSON array of {"role", "content", "name"?}) with the
 * model's template into a prompt ending with the assistant's opening,
 * appending to r. */
ilm_status ilm__chat_render(const char *tmpl, const cJSON *messages, ilm__chat_text *r);
/* The text that ends an assistant turn in this template ("<|im_end|>"). */
const char *ilm__chat_end(const char *tmpl);

#endif
