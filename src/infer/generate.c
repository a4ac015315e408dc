/* Generation: prompt -> tokens -> sampling loop, stopping at end-of-turn
 * ids, at stop strings (which may span several tokens) or at max_tokens,
 * streaming complete UTF-8 text through a callback as it goes. */
#include "infer/internal.h"
#include "tokenizer/internal.h"

#include <string.h>

typedef struct gen_opts {
    ilm__sampling sp;
    int64_t       max_tokens;
    bool          special, add_bos, add_bos_set;
    const cJSON  *stop;
} gen_opts;

static ilm_status parse_opts(const char *config, cJSON **root, gen_opts *o)
{
    ilm__sampling_defaults(&o->sp);
    o->max_tokens = 256;
    int64_t top_k = o->sp.top_k, last_n = o->sp.repeat_last_n, seed = 0;
    ILM__FORWARD(ilm__json_parse(config, "generate config", root));
    const ilm__jfield f[] = {
        { "max_tokens", ILM__J_INT, &o->max_tokens, false, 0, 1 << 24 },
        { "temperature", ILM__J_NUMBER, &o->sp.temperature, false, 0, 100 },
        { "top_k", ILM__J_INT, &top_k, false, 0, 1 << 30 },
        { "top_p", ILM__J_NUMBER, &o->sp.top_p, false, 0, 1 },
        { "min_p", ILM__J_NUMBER, &o->sp.min_p, false, 0, 1 },
        { "repetition_penalty", ILM__J_NUMBER, &o->sp.repetition_penalty, false, 0.01, 100 },
        { "repeat_last_n", ILM__J_INT, &last_n, false, 0, 1 << 24 },
        { "seed", ILM__J_INT, &seed, false, 0, 9007199254740991.0 },
        { "stop", ILM__J_ARRAY, &o->stop, false, 0, 0 },
        { "special", ILM__J_BOOL, &o->special, false, 0, 0 },
        { "add_bos", ILM__J_BOOL, &o->add_bos, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(*root, "", f, sizeof f / sizeof *f));
    o->add_bos_set = cJSON_GetObjectItemCaseSensitive(*root, "add_bos") != NULL;
    o->sp.top_k = top_k;
    o->sp.repeat_last_n = last_n;
    o->sp.seed = (uint64_t)seed;
    const cJSON *e;
    cJSON_ArrayForEach(e, o->stop)
        ILM__RETURN_IF(!cJSON_IsString(e) || !*e->valuestring, ILM_ERR_CONFIG,
                       "config: 'stop' must hold non-empty strings");
    return ILM_OK;
}

/* Length of the longest suffix of text[0..n) that begins some stop string
 * (that text may not be emitted yet); *hit gets the offset of a complete
 * stop string, or -1. */
static size_t stop_hold(const char *text, size_t n, size_t from, const cJSON *stop, ptrdiff_t *hit)
{
    size_t hold = 0;
    *hit = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, stop) {
        const char *s = e->valuestring;
        size_t sl = strlen(s);
        size_t start = from > sl ? from - sl : 0;
        for (size_t i = start; i + sl <= n; i++)
            if (memcmp(text + i, s, sl) == 0 && (*hit < 0 || (ptrdiff_t)i < *hit)) *hit = (ptrdiff_t)i;
        for (size_t k = sl - 1; k > hold; k--) /* a proper prefix at the end */
            if (k <= n && memcmp(text + n - k, s, k) == 0) {
                hold = k;
                break;
            }
    }
    return hold;
}

static bool is_end(const int32_t *ends, int n_ends, int32_t id)
{
    for (int i = 0; i < n_ends; i++)
        if (ends[i] >= 0 && ends[i] == id) return true;
    return false;
}

ilm_status ilm_session_generate(ilm_session *s, const char *prompt, const char *config, ilm_text_fn on_text,
                                void *user, char **text_out)
{
    ILM__RETURN_IF(!s, ILM_ERR_INVALID_ARG, "ilm_session_generate: NULL session");
    if (text_out) *text_out = NULL;
    const ilm_model *m = s->m;
    ILM__RETURN_IF(!m->tok, ILM_ERR_STATE, "generate: the model has no tokenizer");
    cJSON *root = NULL;
    gen_opts o = { 0 };
    ilm_status st = parse_opts(config, &root, &o);
    int32_t *ids = NULL, ends[4];
    size_t n_ids = 0;
    ilm_detokenizer *dt = NULL;
    ilm__buf out = { 0 };
    void *work = NULL;
    if (st == ILM_OK && prompt) { /* NULL: continue from the session's ids */
        bool bos = o.add_bos_set ? o.add_bos : m->tok->add_bos;
        st = ilm_tokenizer_encode(m->tok, prompt, strlen(prompt),
                                  (o.special ? ILM_TOKENIZE_SPECIAL : 0) | (bos ? ILM_TOKENIZE_BOS : 0),
                                  &ids, &n_ids);
    }
    if (st == ILM_OK && prompt) st = ilm_session_eval(s, ids, n_ids, NULL);
    if (st == ILM_OK) st = ilm_detokenizer_create(m->tok, ILM_DECODE_SKIP_SPECIAL, &dt);
    work = ilm__malloc((size_t)m->arch.vocab_size * 12);
    if (st == ILM_OK && !work) st = ilm__error(ILM_ERR_NOMEM, "generate: out of memory");
    ends[0] = m->tok->eos_id;
    ends[1] = m->arch.eos_id;
    ends[2] = ilm_tokenizer_piece_id(m->tok, ilm__chat_end(m->chat_template));
    ends[3] = -1;
    ilm__rng rng;
    ilm__rng_init(&rng, o.sp.seed, 0);
    size_t emitted = 0;
    bool stopped = false, hit_stop = false;
    if (st == ILM_OK && !s->has_logits)
        st = ilm__error(ILM_ERR_STATE, "generate: an empty prompt on an empty session");
    for (int64_t k = 0; st == ILM_OK && k < o.max_tokens && !stopped; k++) {
        int32_t id = ilm__sample(s->logits, m->arch.vocab_size, &o.sp, s->tokens,
                                 (size_t)s->kv.n, &rng, work);
        if (is_end(ends, 4, id)) break;
        const char *piece;
        size_t plen;
        st = ilm_detokenizer_push(dt, id, &piece, &plen);
        if (st == ILM_OK) st = ilm__buf_append(&out, piece, plen);
        ptrdiff_t hit = -1;
        size_t hold = st == ILM_OK && o.stop ? stop_hold(out.p, out.n, emitted, o.stop, &hit) : 0;
        size_t upto = hit >= 0 ? (size_t)hit : out.n - hold;
        if (st == ILM_OK && upto > emitted && on_text && on_text(user, out.p + emitted, upto - emitted))
            stopped = true; /* the caller asked to stop */
        if (upto > emitted) emitted = upto;
        if (hit >= 0) {
            out.n = (size_t)hit;
            hit_stop = true;
            break;
        }
        if (st != ILM_OK || stopped) break;
        /* A full context ends the text like max_tokens; the last id stays out of the session. */
        if (s->kv.n >= s->kv.capacity) break;
        st = ilm_session_eval(s, &id, 1, NULL);
    }
    if (st == ILM_OK && !stopped && !hit_stop) { /* flush what the decoder or stop check held */
        const char *piece;
        size_t plen;
        st = ilm_detokenizer_flush(dt, &piece, &plen);
        if (st == ILM_OK) st = ilm__buf_append(&out, piece, plen);
        if (st == ILM_OK && out.n > emitted && on_text) on_text(user, out.p + emitted, out.n - emitted);
    }
    if (st == ILM_OK && !out.p) st = ilm__buf_append(&out, "", 0);
    if (st == ILM_OK && text_out) {
        out.p[out.n] = '\0';
        *text_out = out.p;
        out.p = NULL;
    }
    ilm__buf_free(&out);
    ilm__free(work);
    ilm__free(ids);
    ilm_detokenizer_free(dt);
    cJSON_Delete(root);
    return st;
}
