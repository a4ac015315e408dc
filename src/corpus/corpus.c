/* A corpus directory written by ilm_corpus_build, opened for reading: the
 * manifest (corpus.json), its shards and its tokenizer. */
#include "corpus/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct ilm_corpus {
    char          *dir;
    cJSON         *manifest;
    ilm__shard   **shards;
    size_t         n_shards;
    uint64_t      *first_doc; /* [n_shards + 1]: global index of each shard's first document */
    ilm_tokenizer *tok;       /* NULL when the manifest names none */
};

void ilm_corpus_free(ilm_corpus *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n_shards; i++) ilm__shard_close(c->shards[i]);
    ilm__free(c->shards);
    ilm__free(c->first_doc);
    ilm_tokenizer_free(c->tok);
    cJSON_Delete(c->manifest);
    ilm__free(c->dir);
    ilm__free(c);
}

static ilm_status open_parts(ilm_corpus *c, const char *path)
{
    const cJSON *shards = NULL, *tok = NULL, *fmt = NULL, *ver = NULL;
    shards = cJSON_GetObjectItemCaseSensitive(c->manifest, "shards");
    tok = cJSON_GetObjectItemCaseSensitive(c->manifest, "tokenizer");
    fmt = cJSON_GetObjectItemCaseSensitive(c->manifest, "format");
    ver = cJSON_GetObjectItemCaseSensitive(c->manifest, "version");
    ILM__RETURN_IF(!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "ilm-corpus") || !cJSON_IsNumber(ver) ||
                      !cJSON_IsArray(shards),
                   ILM_ERR_FORMAT, "corpus: '%s' is not a corpus manifest", path);
    ILM__RETURN_IF(ver->valuedouble != 1, ILM_ERR_FORMAT,
                   "corpus: '%s' has version %g; this library reads version 1", path, ver->valuedouble);
    c->n_shards = (size_t)cJSON_GetArraySize(shards);
    c->shards = ilm__calloc(c->n_shards + 1, sizeof *c->shards);
    c->first_doc = ilm__calloc(c->n_shards + 1, sizeof *c->first_doc);
    ILM__RETURN_IF(!c->shards || !c->first_doc, ILM_ERR_NOMEM, "corpus: out of memory");
    size_t i = 0;
    for (const cJSON *e = shards->child; e; e = e->next, i++) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        const cJSON *docs = cJSON_GetObjectItemCaseSensitive(e, "documents");
        ILM__RETURN_IF(!cJSON_IsString(file) || strchr(file->valuestring, '/') || !cJSON_IsNumber(docs),
                       ILM_ERR_FORMAT, "corpus: '%s': shard entry %zu is malformed", path, i);
        /* Range first: a negative or huge double has no uint64_t value. */
        const double d = docs->valuedouble;
        ILM__RETURN_IF(!(d >= 0 && d <= 9007199254740992.0) || d != floor(d), ILM_ERR_FORMAT,
                       "corpus: '%s': 'shards[%zu].documents' is %g; it must be a whole number "
                       "from 0 to 2^53", path, i, d);
        char *p = ilm__asprintf("%s/%s", c->dir, file->valuestring);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "corpus: out of memory");
        ilm_status st = ilm__shard_open(p, false, &c->shards[i]);
        ilm__free(p);
        ILM__FORWARD(st);
        /* Compared as doubles: a count no uint64_t holds (negative, huge,
         * fractional) must not be cast. */
        ILM__RETURN_IF((double)c->shards[i]->n_docs != docs->valuedouble, ILM_ERR_FORMAT,
                       "corpus: '%s' lists %g documents in '%s', which holds %llu", path,
                       docs->valuedouble, file->valuestring, (unsigned long long)c->shards[i]->n_docs);
        c->first_doc[i + 1] = c->first_doc[i] + c->shards[i]->n_docs;
    }
    if (cJSON_IsString(tok) && *tok->valuestring) {
        char *p = tok->valuestring[0] == '/' ? ilm__strdup(tok->valuestring)
                                             : ilm__asprintf("%s/%s", c->dir, tok->valuestring);
        ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "corpus: out of memory");
        ilm_status st = ilm_tokenizer_load(p, &c->tok);
        ilm__free(p);
        ILM__FORWARD(st);
        for (i = 0; i < c->n_shards; i++)
            ILM__RETURN_IF(c->shards[i]->vocab_size != ilm_tokenizer_vocab_size(c->tok), ILM_ERR_FORMAT,
                           "corpus: shard '%s' has vocabulary size %d, the tokenizer %d",
                           c->shards[i]->path, (int)c->shards[i]->vocab_size,
                           (int)ilm_tokenizer_vocab_size(c->tok));
    }
    return ILM_OK;
}

ilm_status ilm_corpus_open(const char *dir, ilm_corpus **out)
{
    ILM__RETURN_IF(!dir || !out, ILM_ERR_INVALID_ARG, "ilm_corpus_open: NULL argument");
    *out = NULL;
    ilm_corpus *c = ilm__calloc(1, sizeof *c);
    ILM__RETURN_IF(!c, ILM_ERR_NOMEM, "corpus: out of memory");
    char *path = ilm__asprintf("%s/corpus.json", dir);
    c->dir = ilm__strdup(dir);
    ilm_status st = !path || !c->dir ? ilm__error(ILM_ERR_NOMEM, "corpus: out of memory")
                                     : ilm__json_read_file(path, &c->manifest);
    if (st == ILM_OK) st = open_parts(c, path);
    ilm__free(path);
    if (st != ILM_OK) {
        ilm_corpus_free(c);
        return st;
    }
    *out = c;
    return ILM_OK;
}

uint64_t ilm_corpus_num_documents(const ilm_corpus *c)
{
    return c ? c->first_doc[c->n_shards] : 0;
}

const ilm_tokenizer *ilm_corpus_tokenizer(const ilm_corpus *c) { return c ? c->tok : NULL; }

ilm_status ilm_corpus_document(const ilm_corpus *c, uint64_t i, int32_t **ids, uint8_t **mask,
                               size_t *n)
{
    ILM__RETURN_IF(!c || !ids || !n, ILM_ERR_INVALID_ARG, "ilm_corpus_document: NULL argument");
    *ids = NULL;
    if (mask) *mask = NULL;
    *n = 0;
    ILM__RETURN_IF(i >= ilm_corpus_num_documents(c), ILM_ERR_RANGE,
                   "corpus: document %llu of %llu", (unsigned long long)i,
                   (unsigned long long)ilm_corpus_num_documents(c));
    size_t s = 0;
    while (i >= c->first_doc[s + 1]) s++;
    ilm__shard *sh = c->shards[s];
    ILM__FORWARD(ilm__shard_verify(sh));
    uint64_t start, len;
    ilm__shard_doc(sh, i - c->first_doc[s], &start, &len);
    int32_t *v = ilm__malloc((len ? len : 1) * sizeof *v);
    uint8_t *mk = mask ? ilm__malloc(len ? len : 1) : NULL;
    if (!v || (mask && !mk)) {
        ilm__free(v);
        ilm__free(mk);
        return ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    for (uint64_t t = 0; t < len; t++) {
        v[t] = ilm__shard_token(sh, start + t);
        if (mk) mk[t] = ilm__shard_mask(sh, start + t);
    }
    *ids = v;
    if (mask) *mask = mk;
    *n = (size_t)len;
    return ILM_OK;
}

ilm_status ilm_corpus_info(const ilm_corpus *c, char **json)
{
    ILM__RETURN_IF(!c || !json, ILM_ERR_INVALID_ARG, "ilm_corpus_info: NULL argument");
    *json = NULL;
    /* Every id below is a frequency index: the shards are verified first. */
    for (size_t s = 0; s < c->n_shards; s++) ILM__FORWARD(ilm__shard_verify(c->shards[s]));
    cJSON *o = cJSON_Duplicate(c->manifest, true);
    ILM__RETURN_IF(!o, ILM_ERR_NOMEM, "corpus: out of memory");
    /* Length statistics from the shards themselves. */
    uint64_t docs = 0, tokens = 0, targets = 0, min_len = UINT64_MAX, max_len = 0;
    /* Token frequencies, for the unigram entropy: the loss of a model that
     * knows only how often each token occurs (a trained model must beat it). */
    int32_t V = c->n_shards ? c->shards[0]->vocab_size : 0;
    for (size_t s = 1; s < c->n_shards; s++)
        if (c->shards[s]->vocab_size > V) V = c->shards[s]->vocab_size;
    uint64_t *freq = ilm__calloc((size_t)V + 1, sizeof *freq);
    if (!freq) {
        cJSON_Delete(o);
        return ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    for (size_t s = 0; s < c->n_shards; s++) {
        const ilm__shard *sh = c->shards[s];
        for (uint64_t t = 0; t < sh->n_tokens; t++) freq[ilm__shard_token(sh, t)]++;
        for (uint64_t d = 0; d < sh->n_docs; d++) {
            uint64_t start, len;
            ilm__shard_doc(sh, d, &start, &len);
            if (len < min_len) min_len = len;
            if (len > max_len) max_len = len;
        }
        docs += sh->n_docs;
        tokens += sh->n_tokens;
        if (!sh->has_mask) targets += sh->n_tokens;
        else
            for (uint64_t t = 0; t < sh->n_tokens; t++) targets += sh->mask[t];
    }
    double entropy = 0;
    for (int32_t i = 0; i < V; i++)
        if (freq[i]) entropy -= (double)freq[i] / (double)tokens * log((double)freq[i] / (double)tokens);
    ilm__free(freq);
    cJSON *st = cJSON_AddObjectToObject(o, "stats");
    if (!st || !cJSON_AddNumberToObject(st, "documents", (double)docs) ||
        !cJSON_AddNumberToObject(st, "tokens", (double)tokens) ||
        !cJSON_AddNumberToObject(st, "target_tokens", (double)targets) ||
        !cJSON_AddNumberToObject(st, "min_document_tokens", docs ? (double)min_len : 0) ||
        !cJSON_AddNumberToObject(st, "max_document_tokens", (double)max_len) ||
        !cJSON_AddNumberToObject(st, "mean_document_tokens", docs ? (double)tokens / (double)docs : 0) ||
        !cJSON_AddNumberToObject(st, "unigram_entropy", entropy)) {
        cJSON_Delete(o);
        return ilm__error(ILM_ERR_NOMEM, "corpus: out of memory");
    }
    ilm_status r = ilm__json_print(o, json);
    cJSON_Delete(o);
    return r;
}

ilm_status ilm__corpus_shards(const ilm_corpus *c, ilm__shard *const **shards, size_t *n)
{
    ILM__RETURN_IF(!c, ILM_ERR_INVALID_ARG, "corpus: NULL");
    *shards = c->shards;
    *n = c->n_shards;
    return ILM_OK;
}

const char *ilm__corpus_tokenizer_name(const ilm_corpus *c)
{
    const cJSON *t = c ? cJSON_GetObjectItemCaseSensitive(c->manifest, "tokenizer") : NULL;
    return cJSON_IsString(t) ? t->valuestring : NULL;
}
