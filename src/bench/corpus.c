/* `internlm bench corpus`: MB/s of the corpus pipeline's stages, measured
 * inside full ilm_corpus_build runs into a temporary directory.  The dedup
 * peer (datasketch's MinHash with the same parameters on the same text)
 * runs from tools/bench_dedup.py. */
#include "bench/internal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static double stage_num(const cJSON *rep, const char *stage, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "stages"), stage);
    return cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, key));
}

/* Removes the temporary directory and the corpus directory in it (files
 * only: a corpus has no subdirectories). */
static void remove_tmp(const char *dir)
{
    char *sub = ilm__asprintf("%s/corpus", dir);
    DIR *d = sub ? opendir(sub) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = ilm__asprintf("%s/%s", sub, e->d_name);
        if (p) unlink(p);
        ilm__free(p);
    }
    if (d) closedir(d);
    if (sub) rmdir(sub);
    ilm__free(sub);
    rmdir(dir);
}

ilm_status ilm_bench_corpus(const char *config, ilm_progress_fn progress, void *user, char **result)
{
    ILM__RETURN_IF(!result, ILM_ERR_INVALID_ARG, "ilm_bench_corpus: result is NULL");
    *result = NULL;
    cJSON *cfg = NULL;
    ILM__FORWARD(ilm__json_parse(config, "config", &cfg));
    const cJSON *inputs = NULL, *filter = NULL, *dedup = NULL;
    const char *tok = NULL;
    int64_t threads = ilm_get_num_threads(), reps = 3;
    const ilm__jfield f[] = {
        { "inputs", ILM__J_ARRAY, &inputs, true, 0, 0 },
        { "tokenizer", ILM__J_STRING, &tok, true, 0, 0 },
        { "threads", ILM__J_INT, &threads, false, 1, 1024 },
        { "reps", ILM__J_INT, &reps, false, 1, 100 },
        { "filter", ILM__J_SECTION, &filter, false, 0, 0 },
        { "dedup", ILM__J_SECTION, &dedup, false, 0, 0 },
    };
    ilm_status st = ilm__json_fields(cfg, "", f, sizeof f / sizeof *f);
    char tmpl[] = "/tmp/ilm-bench-corpus-XXXXXX", *dir = NULL;
    if (st == ILM_OK && !(dir = mkdtemp(tmpl)))
        st = ilm__error(ILM_ERR_IO, "bench corpus: cannot create a temporary directory");
    /* The build config: this one's inputs, tokenizer and stage settings. */
    cJSON *b = st == ILM_OK ? cJSON_CreateObject() : NULL;
    if (st == ILM_OK) {
        cJSON_AddItemToObject(b, "inputs", cJSON_Duplicate(inputs, true));
        cJSON_AddStringToObject(b, "tokenizer", tok);
        char *out = ilm__asprintf("%s/corpus", dir);
        cJSON_AddStringToObject(b, "output", out ? out : "");
        ilm__free(out);
        cJSON_AddBoolToObject(b, "overwrite", true);
        if (filter) cJSON_AddItemToObject(b, "filter", cJSON_Duplicate(filter, true));
        if (dedup) cJSON_AddItemToObject(b, "dedup", cJSON_Duplicate(dedup, true));
    }
    char *btext = b ? cJSON_PrintUnformatted(b) : NULL;
    if (st == ILM_OK && !btext) st = ilm__error(ILM_ERR_NOMEM, "bench corpus: out of memory");
    int saved = ilm_get_num_threads();
    ilm_set_num_threads((int)threads);
    /* Best of `reps` runs, per figure. */
    double best[4] = { 0 }, best_total = 1e300;
    cJSON *rep = NULL;
    for (int64_t r = 0; st == ILM_OK && r < reps; r++) {
        char *text = NULL;
        st = ilm_corpus_build(btext, NULL, NULL, &text);
        if (st != ILM_OK) break;
        cJSON_Delete(rep);
        rep = cJSON_Parse(text);
        ilm__free(text);
        if (!rep) {
            st = ilm__error(ILM_ERR_NOMEM, "bench corpus: out of memory");
            break;
        }
        static const char *const stg[4][2] = {
            { "filter", "clean" }, { "dedup", "dedup" }, { "tokenize", "tokenize" }, { "ingest", "ingest" } };
        for (int i = 0; i < 4; i++) {
            double bytes = stage_num(rep, stg[i][1], i == 3 ? "bytes" : "bytes_in");
            double secs = stage_num(rep, stg[i][0], "seconds");
            double mbs = secs > 0 ? bytes / secs / 1e6 : 0;
            if (mbs > best[i]) best[i] = mbs;
        }
        double total = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rep, "seconds"));
        if (total < best_total) best_total = total;
        if (progress && progress(user, "corpus", (uint64_t)r + 1, (uint64_t)reps)) {
            st = ilm__error(ILM_ERR_CANCELLED, "bench corpus: cancelled");
            break;
        }
    }
    ilm_set_num_threads(saved);
    if (dir) remove_tmp(dir);
    cJSON *o = st == ILM_OK ? cJSON_CreateObject() : NULL;
    if (o) {
        double in_bytes = stage_num(rep, "ingest", "bytes");
        cJSON_AddNumberToObject(o, "threads", (double)threads);
        cJSON_AddNumberToObject(o, "reps", (double)reps);
        cJSON_AddNumberToObject(o, "input_bytes", in_bytes);
        cJSON_AddNumberToObject(o, "documents_in", stage_num(rep, "clean", "documents_in"));
        cJSON_AddNumberToObject(o, "documents_out", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rep, "documents")));
        cJSON_AddNumberToObject(o, "tokens", cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(rep, "tokens")));
        cJSON_AddNumberToObject(o, "clean_filter_mb_s", best[0]);
        cJSON_AddNumberToObject(o, "dedup_mb_s", best[1]);
        cJSON_AddNumberToObject(o, "tokenize_pack_mb_s", best[2]);
        cJSON_AddNumberToObject(o, "pipeline_mb_s", best_total > 0 ? in_bytes / best_total / 1e6 : 0);
        cJSON_AddNumberToObject(o, "pipeline_seconds", best_total);
        st = ilm__json_print(o, result);
    } else if (st == ILM_OK) {
        st = ilm__error(ILM_ERR_NOMEM, "bench corpus: out of memory");
    }
    cJSON_Delete(o);
    cJSON_Delete(rep);
    cJSON_free(btext);
    cJSON_Delete(b);
    cJSON_Delete(cfg);
    return st;
}
