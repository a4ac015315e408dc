/* `internlm bench tokenize`: encoding throughput of a tokenizer on a text
 * file, one line per document, on one thread and on all threads.  The peer
 * (sentencepiece, tokenizers) runs on the same file in the same run from
 * tools/bench_tokenize.py. */
#include "bench/internal.h"

#include <string.h>

typedef struct docs {
    const char **text;
    size_t      *len;
    size_t       n, bytes;
} docs;

/* Splits the file into lines (documents), keeping the newline with each
 * line so the bytes encoded add up to the file. */
static ilm_status split_lines(const ilm__mmap *m, docs *d)
{
    size_t cap = 1024;
    d->text = ilm__malloc(cap * sizeof *d->text);
    d->len = ilm__malloc(cap * sizeof *d->len);
    for (size_t i = 0; i < m->size && d->text && d->len;) {
        const char *s = (const char *)m->data + i;
        const char *nl = memchr(s, '\n', m->size - i);
        size_t l = nl ? (size_t)(nl - s) + 1 : m->size - i;
        if (d->n == cap) {
            cap *= 2;
            const char **t = ilm__realloc(d->text, cap * sizeof *t);
            size_t *ln = t ? ilm__realloc(d->len, cap * sizeof *ln) : NULL;
            if (t) d->text = t;
            if (!ln) break;
            d->len = ln;
        }
        d->text[d->n] = s;
        d->len[d->n++] = l;
        d->bytes += l;
        i += l;
    }
    ILM__RETURN_IF(!d->text || !d->len || d->bytes != m->size, ILM_ERR_NOMEM,
                   "bench tokenize: out of memory");
    return ILM_OK;
}

/* Encodes every document once on `threads` threads; returns seconds and
 * the token count. */
static ilm_status encode_all(const ilm_tokenizer *tok, const docs *d, int threads, double *secs,
                             uint64_t *tokens)
{
    uint64_t total = 0;
    int failed = 0;
    double t0 = ilm__now();
#pragma omp parallel for num_threads(threads) schedule(dynamic, 64) reduction(+ : total, failed)
    for (size_t i = 0; i < d->n; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (ilm_tokenizer_encode(tok, d->text[i], d->len[i], 0, &ids, &n) != ILM_OK) failed++;
        total += n;
        ilm_free(ids);
    }
    *secs = ilm__now() - t0;
    *tokens = total;
    ILM__RETURN_IF(failed, ILM_ERR_INTERNAL, "bench tokenize: %d documents failed to encode", failed);
    return ILM_OK;
}

/* Best MB/s over repetitions lasting at least min_time. */
static ilm_status measure(const ilm_tokenizer *tok, const docs *d, int threads, double min_time,
                          ilm_progress_fn progress, void *user, double *mb_s, uint64_t *tokens)
{
    double spent = 0, best = 0;
    int reps = 0;
    while (spent < min_time || reps < 2) {
        if (progress && progress(user, threads == 1 ? "tokenize 1 thread" : "tokenize batch",
                                 (uint64_t)reps, 2))
            return ilm__error(ILM_ERR_CANCELLED, "bench tokenize: cancelled");
        double s;
        ILM__FORWARD(encode_all(tok, d, threads, &s, tokens));
        spent += s;
        reps++;
        if ((double)d->bytes / s * 1e-6 > best) best = (double)d->bytes / s * 1e-6;
    }
    *mb_s = best;
    return ILM_OK;
}

ilm_status ilm_bench_tokenize(const char *config, ilm_progress_fn progress, void *user,
                              char **result)
{
    ILM__RETURN_IF(!result, ILM_ERR_INVALID_ARG, "ilm_bench_tokenize: result is NULL");
    *result = NULL;
    const char *tok_path = NULL, *file = NULL;
    int64_t threads = ilm__num_threads();
    double min_time = 1.0;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "bench tokenize config", &root));
    const ilm__jfield fields[] = {
        { "tokenizer", ILM__J_STRING, &tok_path, true, 0, 0 },
        { "file", ILM__J_STRING, &file, true, 0, 0 },
        { "threads", ILM__J_INT, &threads, false, 1, 4096 },
        { "min_time", ILM__J_NUMBER, &min_time, false, 0, 3600 },
    };
    ilm_status st = ilm__json_fields(root, "", fields, sizeof fields / sizeof *fields);
    ilm_tokenizer *tok = NULL;
    ilm__mmap m = { 0 };
    docs d = { 0 };
    double load_s = ilm__now(), single = 0, batch = 0;
    uint64_t tokens = 0;
    if (st == ILM_OK) st = ilm_tokenizer_load(tok_path, &tok);
    load_s = ilm__now() - load_s;
    if (st == ILM_OK) st = ilm__mmap_open(file, &m);
    if (st == ILM_OK) st = split_lines(&m, &d);
    if (st == ILM_OK) st = measure(tok, &d, 1, min_time, progress, user, &single, &tokens);
    if (st == ILM_OK) st = measure(tok, &d, (int)threads, min_time, progress, user, &batch, &tokens);
    if (st == ILM_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "tokenizer", tok_path);
        cJSON_AddStringToObject(j, "file", file);
        cJSON_AddNumberToObject(j, "bytes", (double)d.bytes);
        cJSON_AddNumberToObject(j, "documents", (double)d.n);
        cJSON_AddNumberToObject(j, "tokens", (double)tokens);
        cJSON_AddNumberToObject(j, "threads", (double)threads);
        cJSON_AddNumberToObject(j, "load_seconds", load_s);
        cJSON_AddNumberToObject(j, "single_thread_mb_s", single);
        cJSON_AddNumberToObject(j, "batch_mb_s", batch);
        st = ilm__json_print(j, result);
        cJSON_Delete(j);
    }
    ilm__free(d.text);
    ilm__free(d.len);
    ilm__mmap_close(&m);
    ilm_tokenizer_free(tok);
    cJSON_Delete(root);
    return st;
}
