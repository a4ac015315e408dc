/* `internlm bench generate`: prompt processing and decode tokens/s of a
 * model on this machine; tools/bench_generate.py runs llama.cpp on the same
 * GGUF with the same prompt length, generation length and threads in the
 * same run. */
#include "bench/internal.h"
#include "model/internal.h"

#include <stdio.h>
#include <string.h>

ilm_status ilm_bench_generate(const char *config, ilm_progress_fn progress, void *user,
                              char **result)
{
    ILM__RETURN_IF(!result, ILM_ERR_INVALID_ARG, "ilm_bench_generate: result is NULL");
    *result = NULL;
    const char *path = NULL;
    int64_t n_prompt = 512, n_gen = 128, threads = ilm__num_threads(), reps = 3;
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "bench generate config", &root));
    const ilm__jfield f[] = {
        { "model", ILM__J_STRING, &path, true, 0, 0 },
        { "prompt_tokens", ILM__J_INT, &n_prompt, false, 1, 1 << 20 },
        { "gen_tokens", ILM__J_INT, &n_gen, false, 0, 1 << 20 },
        { "threads", ILM__J_INT, &threads, false, 1, 4096 },
        { "reps", ILM__J_INT, &reps, false, 1, 1000 },
    };
    ilm_status st = ilm__json_fields(root, "", f, sizeof f / sizeof *f);
    ilm_model *m = NULL;
    ilm_session *s = NULL;
    int32_t *ids = NULL;
    double load = ilm__now(), best_pp = 0, best_tg = 0;
    if (st == ILM_OK) st = ilm_model_load(path, NULL, &m);
    load = ilm__now() - load;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"context\": %lld, \"threads\": %lld}",
             (long long)(n_prompt + n_gen), (long long)threads);
    if (st == ILM_OK) st = ilm_session_create(m, cfg, &s);
    if (st == ILM_OK && !(ids = ilm__malloc((size_t)n_prompt * sizeof *ids)))
        st = ilm__error(ILM_ERR_NOMEM, "bench generate: out of memory");
    if (st == ILM_OK) {
        /* A fixed pseudo-random prompt: the speed does not depend on the text. */
        ilm__rng rng;
        ilm__rng_init(&rng, 42, 0);
        int32_t V = m->arch.vocab_size;
        for (int64_t i = 0; i < n_prompt; i++) ids[i] = (int32_t)ilm__rng_below(&rng, (uint32_t)V);
    }
    for (int64_t r = 0; r < reps && st == ILM_OK; r++) {
        if (progress && progress(user, "generate", (uint64_t)r, (uint64_t)reps)) {
            st = ilm__error(ILM_ERR_CANCELLED, "bench generate: cancelled");
            break;
        }
        const float *logits = NULL;
        st = ilm_session_truncate(s, 0);
        double t0 = ilm__now();
        if (st == ILM_OK) st = ilm_session_eval(s, ids, (size_t)n_prompt, &logits);
        double pp = (double)n_prompt / (ilm__now() - t0);
        if (pp > best_pp) best_pp = pp;
        t0 = ilm__now();
        const int32_t V = (int32_t)m->arch.vocab_size;
        for (int64_t k = 0; k < n_gen && st == ILM_OK; k++) {
            int32_t next = 0; /* greedy */
            for (int32_t i = 1; i < V; i++)
                if (logits[i] > logits[next]) next = i;
            st = ilm_session_eval(s, &next, 1, &logits);
        }
        double tg = n_gen ? (double)n_gen / (ilm__now() - t0) : 0;
        if (tg > best_tg) best_tg = tg;
    }
    if (st == ILM_OK) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", path);
        cJSON_AddNumberToObject(j, "threads", (double)threads);
        cJSON_AddNumberToObject(j, "prompt_tokens", (double)n_prompt);
        cJSON_AddNumberToObject(j, "gen_tokens", (double)n_gen);
        cJSON_AddNumberToObject(j, "prompt_tokens_per_s", best_pp);
        cJSON_AddNumberToObject(j, "decode_tokens_per_s", best_tg);
        cJSON_AddNumberToObject(j, "load_seconds", load);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)ilm_model_memory(m));
        st = ilm__json_print(j, result);
        cJSON_Delete(j);
    }
    ilm__free(ids);
    ilm_session_free(s);
    ilm_model_free(m);
    cJSON_Delete(root);
    return st;
}
