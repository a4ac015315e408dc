/*
 * loader.c -- deterministic batches of B x T tokens for rank r of N ranks.
 *
 * Order: epoch e visits all D documents (of all shards, numbered in shard
 * order) in a Fisher-Yates permutation drawn from the Philox RNG with key
 * `seed` and stream `e`, so the order depends on (seed, e) alone and is the
 * same on every machine.  Rank r takes positions r, r + N, r + 2N, ... of
 * that order: ranks never share a document and together cover the epoch.
 *
 * Packing: rows are filled greedily, without padding.  A document that does
 * not fit in what is left of a row is cut at the row's end and goes on at
 * the start of the next row (of this batch or the next) as a new sequence,
 * positions restarting at 0: attention never crosses a row, so the tail
 * cannot see its head either way.  Labels are the next token, or -100 where
 * the next token is not a target (mask 0), at the last token of each
 * sequence (a document boundary or a cut) and so at each row's end.
 *
 * Position: (epoch, doc, offset): the rank's next document of the epoch and
 * how many of its tokens are already used.  That triple is the whole state,
 * so a checkpoint saves a few numbers and restoring them resumes exactly.
 */
#include "corpus/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ilm__loader {
    ilm__loader_config cfg;
    ilm__shard       **shards;  /* borrowed [n_shards] */
    size_t             n_shards;
    uint64_t          *first;   /* [n_shards + 1] first global doc of each shard */
    uint32_t           n_docs;  /* D */
    uint64_t           n_local; /* documents of this rank per epoch */
    uint32_t          *perm;    /* [D] order of perm_epoch */
    uint64_t           perm_epoch;
    bool               perm_valid;
    uint64_t           epoch, doc, offset;
    ilm__batch         batch;
};

void ilm__loader_free(ilm__loader *l)
{
    if (!l) return;
    ilm__free(l->shards);
    ilm__free(l->first);
    ilm__free(l->perm);
    ilm__free(l->batch.tokens);
    ilm__free(l->batch.labels);
    ilm__free(l->batch.positions);
    ilm__free(l->batch.cu_seqlens);
    ilm__free(l->batch.n_seqs);
    ilm__free(l);
}

ilm_status ilm__loader_create(ilm__shard *const *shards, size_t n_shards,
                              const ilm__loader_config *cfg, ilm__loader **out)
{
    ILM__RETURN_IF(!out || !cfg || (!shards && n_shards), ILM_ERR_INVALID_ARG,
                   "loader: NULL argument");
    *out = NULL;
    ILM__RETURN_IF(cfg->batch < 1 || cfg->seqlen < 2, ILM_ERR_CONFIG,
                   "loader: batch %d and seqlen %d must be >= 1 and >= 2", cfg->batch,
                   cfg->seqlen);
    ILM__RETURN_IF((int64_t)cfg->batch * (cfg->seqlen + 1) > INT32_MAX, ILM_ERR_CONFIG,
                   "loader: batch x seqlen %d x %d is too large", cfg->batch,
                   cfg->seqlen);
    ILM__RETURN_IF(cfg->world < 1 || cfg->rank < 0 || cfg->rank >= cfg->world,
                   ILM_ERR_CONFIG, "loader: rank %d is not in [0, world %d)", cfg->rank,
                  cfg->world);
    uint64_t docs = 0, tokens = 0;
    for (size_t i = 0; i < n_shards; i++) {
        ILM__RETURN_IF(!shards[i], ILM_ERR_INVALID_ARG, "loader: shard %zu is NULL", i);
        docs += shards[i]->n_docs;
        tokens += shards[i]->n_tokens;
    }
    ILM__RETURN_IF(docs == 0 || tokens == 0, ILM_ERR_RANGE,
                   "loader: the shards hold no tokens");
    ILM__RETURN_IF(docs > UINT32_MAX, ILM_ERR_RANGE,
                   "loader: %" PRIu64 " documents, at most 2^32 - 1 are supported", docs);
    ILM__RETURN_IF(docs <= (uint64_t)cfg->rank, ILM_ERR_RANGE,
                   "loader: %" PRIu64 " documents leave rank %d with none", docs,
                   cfg->rank);

    ilm__loader *l = ilm__calloc(1, sizeof *l);
    ILM__RETURN_IF(!l, ILM_ERR_NOMEM, "loader: out of memory");
    l->cfg = *cfg;
    l->n_shards = n_shards;
    l->n_docs = (uint32_t)docs;
    l->n_local = (docs - (uint64_t)cfg->rank + (uint64_t)cfg->world - 1) /
                 (uint64_t)cfg->world;
    size_t bt = (size_t)cfg->batch * (size_t)cfg->seqlen;
    l->shards = ilm__calloc(n_shards, sizeof *l->shards);
    l->first = ilm__calloc(n_shards + 1, sizeof *l->first);
    l->perm = ilm__calloc(docs, sizeof *l->perm);
    l->batch.tokens = ilm__calloc(bt, sizeof(int32_t));
    l->batch.labels = ilm__calloc(bt, sizeof(int32_t));
    l->batch.positions = ilm__calloc(bt, sizeof(int32_t));
    l->batch.cu_seqlens = ilm__calloc((size_t)cfg->batch * (size_t)(cfg->seqlen + 1),
                                      sizeof(int32_t));
    l->batch.n_seqs = ilm__calloc((size_t)cfg->batch, sizeof(int32_t));
    if (!l->shards || !l->first || !l->perm || !l->batch.tokens || !l->batch.labels ||
        !l->batch.positions || !l->batch.cu_seqlens || !l->batch.n_seqs) {
        ilm__loader_free(l);
        return ilm__error(ILM_ERR_NOMEM, "loader: out of memory for %" PRIu64
                                         " documents and a %d x %d batch",
                          docs, cfg->batch, cfg->seqlen);
    }
    for (size_t i = 0; i < n_shards; i++) {
        l->shards[i] = shards[i];
        l->first[i + 1] = l->first[i] + shards[i]->n_docs;
    }
    *out = l;
    return ILM_OK;
}

/* The permutation of `epoch`, always drawn from the identity so that it
 * depends on (seed, epoch) and not on which epochs came before. */
static void ensure_perm(ilm__loader *l)
{
    if (l->perm_valid && l->perm_epoch == l->epoch) return;
    for (uint32_t i = 0; i < l->n_docs; i++) l->perm[i] = i;
    ilm__rng rng;
    ilm__rng_init(&rng, l->cfg.seed, l->epoch);
    for (uint32_t i = l->n_docs - 1; i > 0; i--) {
        uint32_t j = ilm__rng_below(&rng, i + 1);
        uint32_t t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
    l->perm_epoch = l->epoch;
    l->perm_valid = true;
}

/* The shard and token range of the rank's local document `doc`. */
static ilm__shard *locate(ilm__loader *l, uint64_t doc, uint64_t *start, uint64_t *len)
{
    ensure_perm(l);
    uint64_t g = l->perm[(uint64_t)l->cfg.rank + doc * (uint64_t)l->cfg.world];
    size_t lo = 0, hi = l->n_shards; /* first[lo] <= g < first[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->first[mid] <= g) lo = mid;
        else hi = mid;
    }
    /* Empty shards share a first index: step past them. */
    while (l->first[lo + 1] <= g) lo++;
    ilm__shard_doc(l->shards[lo], g - l->first[lo], start, len);
    return l->shards[lo];
}

ilm_status ilm__loader_next(ilm__loader *l, const ilm__batch **out)
{
    ILM__RETURN_IF(!l || !out, ILM_ERR_INVALID_ARG, "loader: NULL argument");
    const int B = l->cfg.batch, T = l->cfg.seqlen;
    ilm__batch *bt = &l->batch;
    for (int b = 0; b < B; b++) {
        int32_t *tok = bt->tokens + (size_t)b * T, *lab = bt->labels + (size_t)b * T;
        int32_t *pos = bt->positions + (size_t)b * T;
        int32_t *cu = bt->cu_seqlens + (size_t)b * (T + 1);
        int t = 0, nseq = 0;
        uint64_t empty_run = 0;
        cu[0] = 0;
        while (t < T) {
            uint64_t start, len;
            ilm__shard *s = locate(l, l->doc, &start, &len);
            if (l->offset >= len) {
                /* Next document.  Two epochs' worth of empty documents in
                 * a row would loop forever: an error instead. */
                ILM__RETURN_IF(++empty_run > 2 * l->n_local + 1, ILM_ERR_RANGE,
                               "loader: rank %d found no tokens in two epochs of its "
                               "documents (up to epoch %" PRIu64 ")", l->cfg.rank,
                               l->epoch);
                l->offset = 0;
                if (++l->doc == l->n_local) {
                    l->doc = 0;
                    l->epoch++;
                }
                continue;
            }
            empty_run = 0;
            /* Tokens go into the model's embedding lookup: the shard's ids
             * and mask are checked before its first document is used. */
            ILM__FORWARD(ilm__shard_verify(s));
            uint64_t take = len - l->offset;
            if (take > (uint64_t)(T - t)) take = (uint64_t)(T - t);
            uint64_t p0 = start + l->offset;
            for (uint64_t k = 0; k < take; k++) {
                tok[t + k] = ilm__shard_token(s, p0 + k);
                pos[t + k] = (int32_t)k;
                lab[t + k] = k + 1 < take && ilm__shard_mask(s, p0 + k + 1)
                                 ? ilm__shard_token(s, p0 + k + 1)
                                 : ILM__IGNORE;
            }
            l->offset += take;
            t += (int)take;
            cu[++nseq] = t;
        }
        bt->n_seqs[b] = nseq;
    }
    *out = bt;
    return ILM_OK;
}

uint64_t ilm__loader_epoch(const ilm__loader *l)
{
    return l ? l->epoch : 0;
}

ilm_status ilm__loader_state(const ilm__loader *l, char **json)
{
    ILM__RETURN_IF(!l || !json, ILM_ERR_INVALID_ARG, "loader: NULL argument");
    /* The seed is a 64-bit value, beyond a JSON number's exact range, so it
     * travels as a decimal string. */
    *json = ilm__asprintf("{\"version\": 1, \"seed\": \"%" PRIu64 "\", \"rank\": %d, "
                          "\"world\": %d, \"n_docs\": %" PRIu32 ", \"epoch\": %" PRIu64
                          ", \"doc\": %" PRIu64 ", \"offset\": %" PRIu64 "}",
                          l->cfg.seed, l->cfg.rank, l->cfg.world, l->n_docs, l->epoch,
                          l->doc, l->offset);
    ILM__RETURN_IF(!*json, ILM_ERR_NOMEM, "loader: out of memory");
    return ILM_OK;
}

static ilm_status restore(ilm__loader *l, const cJSON *root)
{
    int64_t version = 0, rank = -1, world = 0, n_docs = 0, epoch = 0, doc = 0, offset = 0;
    const char *seed = NULL;
    const double big = 9007199254740992.0; /* 2^53 */
    const ilm__jfield f[] = {
        {"version", ILM__J_INT, &version, true, 1, 1},
        {"seed", ILM__J_STRING, &seed, true, 0, 0},
        {"rank", ILM__J_INT, &rank, true, 0, INT32_MAX},
        {"world", ILM__J_INT, &world, true, 1, INT32_MAX},
        {"n_docs", ILM__J_INT, &n_docs, true, 1, UINT32_MAX},
        {"epoch", ILM__J_INT, &epoch, true, 0, big},
        {"doc", ILM__J_INT, &doc, true, 0, big},
        {"offset", ILM__J_INT, &offset, true, 0, big},
    };
    ILM__FORWARD(ilm__json_fields(root, "loader state", f, sizeof f / sizeof *f));
    char want[32];
    snprintf(want, sizeof want, "%" PRIu64, l->cfg.seed);
    ILM__RETURN_IF(strcmp(seed, want) != 0 || rank != l->cfg.rank ||
                      world != l->cfg.world || n_docs != l->n_docs,
                   ILM_ERR_CONFIG,
                   "loader state: saved for seed %s, rank %d of %d, %d documents; this "
                   "loader has seed %s, rank %d of %d, %u documents",
                   seed, (int)rank, (int)world, (int)n_docs, want, l->cfg.rank,
                   l->cfg.world, (unsigned)l->n_docs);
    ILM__RETURN_IF((uint64_t)doc >= l->n_local, ILM_ERR_CONFIG,
                   "loader state: doc %d is past the rank's %" PRIu64 " documents",
                   (int)doc, l->n_local);
    uint64_t save_epoch = l->epoch, start, len;
    l->epoch = (uint64_t)epoch;
    locate(l, (uint64_t)doc, &start, &len);
    if ((uint64_t)offset > len) {
        l->epoch = save_epoch;
        return ilm__error(ILM_ERR_CONFIG, "loader state: offset %" PRId64
                          " is past the document's %" PRIu64 " tokens", offset, len);
    }
    l->doc = (uint64_t)doc;
    l->offset = (uint64_t)offset;
    return ILM_OK;
}

ilm_status ilm__loader_restore(ilm__loader *l, const char *json)
{
    ILM__RETURN_IF(!l || !json, ILM_ERR_INVALID_ARG, "loader: NULL argument");
    cJSON *root = NULL;
    ilm_status st = ilm__json_parse(json, "loader state", &root);
    if (st == ILM_OK) st = restore(l, root);
    cJSON_Delete(root);
    return st;
}
