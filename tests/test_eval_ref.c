/* The library's evaluation primitives against lm-eval 0.4.13 itself
 * (tests/fixtures/eval/lmeval.json from tools/reference/eval_fixtures.py):
 * the token ids lm-eval used (tokenizer with and without BOS, the
 * context / continuation split), ilm_session_score's log-likelihood and
 * is_greedy per multiple-choice candidate, acc / acc_norm by lm-eval's rule,
 * the rolling-window log-likelihood, and greedy generation with stop strings.
 * The primitives first, then the evaluator itself (ilm_evaluator_run on
 * task configs that ask for lm-eval's requests): its per-candidate
 * log-likelihoods, acc / acc_norm, rolling perplexities and generations
 * equal lm-eval's. */
#include "tests.h"
#include "internlm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_DIR "tests/fixtures/eval/"
#define MODEL_DIR EVAL_DIR "model"
#define LP_TOL 1e-4

static cJSON *fixture(void) { return test_read_json(EVAL_DIR "lmeval.json"); }

static const cJSON *get(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(v != NULL, "lmeval.json: no '%s'", k);
    return v;
}

static int32_t *json_ids(const cJSON *arr, size_t *n)
{
    *n = (size_t)cJSON_GetArraySize(arr);
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    for (size_t i = 0; i < *n; i++) ids[i] = cJSON_GetArrayItem(arr, (int)i)->valueint;
    return ids;
}

static bool ids_equal(const int32_t *a, size_t na, const cJSON *want)
{
    if ((size_t)cJSON_GetArraySize(want) != na) return false;
    for (size_t i = 0; i < na; i++)
        if (cJSON_GetArrayItem(want, (int)i)->valueint != a[i]) return false;
    return true;
}

static char *concat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/* Code points of UTF-8 text: Python's len(str), which acc_norm divides by. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void load(ilm_model **m, ilm_session **s)
{
    ck_assert_msg(ilm_model_load(MODEL_DIR, NULL, m) == ILM_OK, "%s: %s", MODEL_DIR, ilm_last_error());
    ck_assert_msg(ilm_session_create(*m, "{\"context\": 2048}", s) == ILM_OK, "%s", ilm_last_error());
}

/* The tokenizer's own BOS setting (tokenizer_config.json's add_bos_token)
 * is what lm-eval's HFLM uses by default (add_bos_token=None). */
START_TEST(tokenizer_adds_bos_as_lm_eval)
{
    ilm_model *m;
    ilm_session *s;
    load(&m, &s);
    char *info = NULL;
    ck_assert_int_eq(ilm_tokenizer_info(ilm_model_tokenizer(m), &info), ILM_OK);
    cJSON *j = cJSON_Parse(info), *fx = fixture();
    const cJSON *tk = get(fx, "tokenizer");
    ck_assert_msg(cJSON_IsTrue(get(j, "add_bos")) == cJSON_IsTrue(get(tk, "add_bos_token")),
                  "add_bos: ours %s", info);
    ck_assert_int_eq(ilm_tokenizer_bos(ilm_model_tokenizer(m)), get(tk, "bos_id")->valueint);
    ck_assert_int_eq(ilm_tokenizer_eos(ilm_model_tokenizer(m)), get(tk, "eos_id")->valueint);
    ilm_free(info);
    cJSON_Delete(j);
    cJSON_Delete(fx);
    ilm_session_free(s);
    ilm_model_free(m);
}
END_TEST

/* Every MMLU candidate (with BOS: "mmlu"; HFLM(add_bos_token=False):
 * "mmlu_no_bos"): our ids for the context and the whole string, the
 * continuation as whole[len(context):], log-likelihood within 1e-4,
 * is_greedy equal, and acc / acc_norm by lm-eval's rule from our numbers. */
START_TEST(mmlu_candidates_equal_lm_eval)
{
    const bool bos = _i == 0;
    ilm_model *m;
    ilm_session *s;
    load(&m, &s);
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    cJSON *fx = fixture();
    const cJSON *ref = get(get(fx, "mmlu"), "subjects");
    const cJSON *subjects = bos ? ref : get(get(fx, "mmlu_no_bos"), "subjects");
    int n_cand = 0, id_bad = 0, lp_bad = 0, greedy_bad = 0, acc_bad = 0;
    double worst = 0;
    for (int si = 0; si < cJSON_GetArraySize(subjects); si++) {
        const cJSON *qs = get(cJSON_GetArrayItem(subjects, si), "questions");
        const cJSON *rqs = get(cJSON_GetArrayItem(ref, si), "questions");
        for (int qi = 0; qi < cJSON_GetArraySize(qs); qi++) {
            const cJSON *q = cJSON_GetArrayItem(qs, qi), *rq = cJSON_GetArrayItem(rqs, qi);
            const cJSON *cands = get(q, "candidates"), *rcands = get(rq, "candidates");
            const cJSON *choices = get(rq, "choices");
            int nc = cJSON_GetArraySize(cands), pred = 0, pred_norm = 0;
            double best = -INFINITY, best_norm = -INFINITY;
            for (int ci = 0; ci < nc; ci++) {
                const cJSON *c = cJSON_GetArrayItem(cands, ci), *rc = cJSON_GetArrayItem(rcands, ci);
                const char *ctx = get(rc, "context")->valuestring;
                const char *cont = get(rc, "continuation")->valuestring;
                /* lm-eval's _encode_pair: the context has no trailing space here */
                ck_assert(strlen(ctx) && ctx[strlen(ctx) - 1] != ' ');
                int32_t *ci_ids = NULL, *wi_ids = NULL;
                size_t nci, nwi;
                char *whole = concat(ctx, cont);
                unsigned fl = bos ? ILM_TOKENIZE_BOS : 0;
                ck_assert_int_eq(ilm_tokenizer_encode(tok, ctx, strlen(ctx), fl, &ci_ids, &nci), ILM_OK);
                ck_assert_int_eq(ilm_tokenizer_encode(tok, whole, strlen(whole), fl, &wi_ids, &nwi), ILM_OK);
                const cJSON *want_ctx = get(c, "context_ids"), *want_cont = get(c, "continuation_ids");
                bool ok = ids_equal(ci_ids, nci, want_ctx) && nwi > nci &&
                          ids_equal(wi_ids + nci, nwi - nci, want_cont);
                if (!ok && id_bad++ < 5)
                    fprintf(stderr, "eval_ref: %s q%d c%d: our ids differ from lm-eval's\n",
                            bos ? "bos" : "no-bos", qi, ci);
                /* score with lm-eval's ids, so a tokenizer difference does
                 * not hide a scoring one */
                size_t n_ctx, n_cont;
                int32_t *x = json_ids(want_ctx, &n_ctx), *y = json_ids(want_cont, &n_cont);
                double lp;
                int greedy;
                ck_assert_msg(ilm_session_score(s, x, n_ctx, y, n_cont, &lp, &greedy) == ILM_OK, "%s",
                              ilm_last_error());
                double want = get(c, "logprob")->valuedouble, d = fabs(lp - want);
                worst = fmax(worst, d);
                if (d > LP_TOL && lp_bad++ < 5)
                    fprintf(stderr, "eval_ref: q%d c%d: logprob %.6f, lm-eval %.6f\n", qi, ci, lp, want);
                if ((greedy != 0) != cJSON_IsTrue(get(c, "is_greedy"))) greedy_bad++;
                double norm = lp / (double)utf8_chars(cJSON_GetArrayItem(choices, ci)->valuestring);
                if (lp > best) best = lp, pred = ci;            /* np.argmax: first on ties */
                if (norm > best_norm) best_norm = norm, pred_norm = ci;
                n_cand++;
                free(x);
                free(y);
                free(whole);
                ilm_free(ci_ids);
                ilm_free(wi_ids);
            }
            int gold = get(rq, "gold")->valueint;
            if ((pred == gold) != (get(q, "acc")->valuedouble == 1.0) ||
                (pred_norm == gold) != (get(q, "acc_norm")->valuedouble == 1.0))
                acc_bad++;
        }
    }
    cJSON_Delete(fx);
    ilm_session_free(s);
    ilm_model_free(m);
    ck_assert_msg(n_cand == 96, "%d candidates", n_cand);
    ck_assert_msg(!id_bad, "%d of %d candidates: ids differ from lm-eval's", id_bad, n_cand);
    ck_assert_msg(!lp_bad, "%d of %d logprobs off by more than %g (worst %g)", lp_bad, n_cand, LP_TOL,
                  worst);
    ck_assert_msg(!greedy_bad, "%d of %d is_greedy differ", greedy_bad, n_cand);
    ck_assert_msg(!acc_bad, "%d questions: acc / acc_norm differ", acc_bad);
}
END_TEST

/* loglikelihood_rolling: the document's ids (BOS included, as lm-eval's
 * tok_encode), every window scored as its (context, continuation) ids, the
 * sum within 1e-4 per scored token. */
START_TEST(rolling_windows_equal_lm_eval)
{
    ilm_model *m;
    ilm_session *s;
    load(&m, &s);
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    cJSON *fx = fixture();
    const cJSON *docs = get(get(fx, "rolling"), "docs"), *d;
    cJSON_ArrayForEach(d, docs) {
        const char *text = get(d, "text")->valuestring;
        int32_t *ids = NULL;
        size_t n;
        ck_assert_int_eq(ilm_tokenizer_encode(tok, text, strlen(text), ILM_TOKENIZE_BOS, &ids, &n), ILM_OK);
        ck_assert_msg(ids_equal(ids, n, get(d, "ids")), "rolling: document ids differ from lm-eval's");
        ilm_free(ids);
        double total = 0;
        size_t scored = 0;
        const cJSON *w;
        cJSON_ArrayForEach(w, get(d, "windows")) {
            size_t nc, nk;
            int32_t *c = json_ids(get(w, "context_ids"), &nc), *k = json_ids(get(w, "continuation_ids"), &nk);
            double lp;
            int g;
            ck_assert_int_eq(ilm_session_truncate(s, 0), ILM_OK);
            ck_assert_int_eq(ilm_session_score(s, c, nc, k, nk, &lp, &g), ILM_OK);
            double want = get(w, "logprob")->valuedouble;
            ck_assert_msg(fabs(lp - want) <= LP_TOL * (double)nk, "window: %.6f vs lm-eval %.6f", lp, want);
            total += lp;
            scored += nk;
            free(c);
            free(k);
        }
        ck_assert_uint_eq(scored, (size_t)get(d, "n_tokens")->valueint);
        double want = get(d, "loglikelihood")->valuedouble;
        ck_assert_msg(fabs(total - want) <= LP_TOL * (double)scored, "document: %.6f vs lm-eval %.6f",
                      total, want);
    }
    cJSON_Delete(fx);
    ilm_session_free(s);
    ilm_model_free(m);
}
END_TEST

/* generate_until: the prompt's ids, greedy argmax steps equal to the ids
 * lm-eval's generate() returned (steps whose top-2 margin is under 1e-3 are
 * reported, not failed), their decoding, and ilm_session_generate (greedy,
 * stop strings) giving lm-eval's string. */
START_TEST(gsm8k_generation_equals_lm_eval)
{
    ilm_model *m;
    ilm_session *s;
    load(&m, &s);
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    int32_t V = ilm_tokenizer_vocab_size(tok);
    cJSON *fx = fixture();
    const cJSON *g = get(fx, "gsm8k");
    const cJSON *lists[2] = { get(g, "items"), get(g, "extra_stop_items") };
    for (int li = 0; li < 2; li++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, lists[li]) {
            const char *ctx = get(it, "context")->valuestring;
            int32_t *ids = NULL;
            size_t n;
            ck_assert_int_eq(ilm_tokenizer_encode(tok, ctx, strlen(ctx), ILM_TOKENIZE_BOS, &ids, &n), ILM_OK);
            ck_assert_msg(ids_equal(ids, n, get(it, "context_ids")), "row %d: prompt ids differ",
                          get(it, "row")->valueint);
            size_t no;
            int32_t *out = json_ids(get(it, "output_ids"), &no);
            const cJSON *margins = get(it, "step_margins");
            const float *logits;
            ck_assert_int_eq(ilm_session_truncate(s, 0), ILM_OK);
            ck_assert_int_eq(ilm_session_eval(s, ids, n, &logits), ILM_OK);
            for (size_t t = 0; t < no; t++) {
                int32_t best = 0;
                for (int32_t v = 1; v < V; v++)
                    if (logits[v] > logits[best]) best = v;
                if (best != out[t]) {
                    double mg = cJSON_GetArrayItem(margins, (int)t)->valuedouble;
                    ck_assert_msg(mg < 1e-3, "row %d step %zu: argmax %d, lm-eval %d (margin %g)",
                                  get(it, "row")->valueint, t, best, out[t], mg);
                    test_skip("row %d step %zu: a near tie (margin %g)", get(it, "row")->valueint, t, mg);
                    break;
                }
                ck_assert_int_eq(ilm_session_eval(s, &out[t], 1, &logits), ILM_OK);
            }
            char *txt = NULL;
            size_t len;
            ck_assert_int_eq(ilm_tokenizer_decode(tok, out, no, ILM_DECODE_SKIP_SPECIAL, &txt, &len), ILM_OK);
            ck_assert_msg(strcmp(txt, get(it, "output_text_raw")->valuestring) == 0,
                          "row %d: decode '%s' vs '%s'", get(it, "row")->valueint, txt,
                          get(it, "output_text_raw")->valuestring);
            ilm_free(txt);
            /* the library's own generation with lm-eval's settings */
            cJSON *cfg = cJSON_CreateObject();
            cJSON_AddNumberToObject(cfg, "temperature", 0);
            cJSON_AddNumberToObject(cfg, "max_tokens", get(get(it, "gen_kwargs"), "max_gen_toks")->valueint);
            cJSON_AddItemToObject(cfg, "stop", cJSON_Duplicate(get(get(it, "gen_kwargs"), "until"), 1));
            char *cs = cJSON_PrintUnformatted(cfg);
            char *gen = NULL;
            ck_assert_int_eq(ilm_session_truncate(s, 0), ILM_OK);
            ck_assert_msg(ilm_session_generate(s, ctx, cs, NULL, NULL, &gen) == ILM_OK, "%s", ilm_last_error());
            ck_assert_msg(strcmp(gen, get(it, "generated")->valuestring) == 0,
                          "row %d: generated '%s', lm-eval '%s'", get(it, "row")->valueint, gen,
                          get(it, "generated")->valuestring);
            ilm_free(gen);
            cJSON_free(cs);
            cJSON_Delete(cfg);
            free(out);
            ilm_free(ids);
        }
    }
    cJSON_Delete(fx);
    ilm_session_free(s);
    ilm_model_free(m);
}
END_TEST

/* `internlm score --text` tokenizes with the tokenizer's BOS setting, as its
 * help says (this tokenizer's add_bos_token is true). */
START_TEST(cli_score_adds_bos_as_the_tokenizer_says)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/internlm score --model %s --text Hello --json", test_build_dir(),
             MODEL_DIR);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_msg(strncmp(out, "{\"tokens\":[{\"id\":1,\"piece\":\"<s>\"", 32) == 0, "%s", out);
    free(out);
}
END_TEST

/* ---- the evaluator itself ---------------------------------------------- */

/* The shared data folder (the directory above mmlu/), or NULL after a skip. */
static char *data_root(void)
{
    const char *p = test_shared_file("mmlu/test/abstract_algebra_test.csv");
    if (!p) return NULL;
    size_t n = strlen(p) - strlen("/mmlu/test/abstract_algebra_test.csv");
    char *root = malloc(n + 1);
    memcpy(root, p, n);
    root[n] = '\0';
    return root;
}

static ilm_evaluator *evaluator(const ilm_model *m, const char *root, const char *out, bool bos)
{
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"data_root\": \"%s\", \"out\": \"%s\", \"model_name\": \"ref\", \"context\": 2048, "
             "\"add_bos\": %s}", root, out, bos ? "true" : "false");
    ilm_evaluator *e = NULL;
    ck_assert_msg(ilm_evaluator_create(m, cfg, &e) == ILM_OK, "%s", ilm_last_error());
    return e;
}

static cJSON *run_tasks(ilm_evaluator *e, const char *tasks)
{
    char *res = NULL;
    ilm_status st = ilm_evaluator_run(e, tasks, NULL, NULL, &res);
    ck_assert_msg(st == ILM_OK, "%s: %s", ilm_status_str(st), ilm_last_error());
    cJSON *j = cJSON_Parse(res);
    ilm_free(res);
    return j;
}

static cJSON *read_out(const char *out, const char *rel)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out, rel);
    return test_read_json(path);
}

/* The MMLU cloze task as a config, run by the evaluator: every candidate's
 * log-likelihood and is_greedy, and each question's acc and acc_norm, equal
 * lm-eval's (with the tokenizer's BOS, and with add_bos_token=False). */
START_TEST(evaluator_mmlu_equals_lm_eval)
{
    char *root = data_root();
    if (!root) return;
    cJSON *fx = fixture();
    const cJSON *set = get(fx, _i ? "mmlu_no_bos" : "mmlu");
    ilm_model *m = NULL;
    ck_assert_msg(ilm_model_load(MODEL_DIR, NULL, &m) == ILM_OK, "%s", ilm_last_error());
    char *out = test_tmpdir();
    ilm_evaluator *e = evaluator(m, root, out, _i == 0);
    char subsets[512] = "";
    const cJSON *subj;
    cJSON_ArrayForEach(subj, get(set, "subjects")) {
        size_t k = strlen(subsets);
        snprintf(subsets + k, sizeof subsets - k, "%s\"%s\"", k ? ", " : "",
                 get(subj, "subject")->valuestring);
    }
    char task[4096];
    snprintf(task, sizeof task,
             "[{\"name\": \"mmlu_ref\", \"reader\": {\"path\": \"mmlu/test/{subset}_test.csv\","
             " \"header\": false, \"columns\": [\"question\", \"A\", \"B\", \"C\", \"D\", \"answer\"],"
             " \"subsets\": [%s], \"range\": [0, 8]},"
             " \"prompt\": \"Question: {question}\\nAnswer:\", \"mode\": \"ppl\","
             " \"ppl\": {\"choices\": {\"A\": \" {A}\", \"B\": \" {B}\", \"C\": \" {C}\", \"D\": \" {D}\"},"
             " \"gold\": \"{answer}\"}}]", subsets);
    cJSON *r = run_tasks(e, task);
    double worst = 0;
    int d = 0;
    cJSON_ArrayForEach(subj, get(set, "subjects")) {
        char rel[256];
        snprintf(rel, sizeof rel, "predictions/ref/mmlu_ref_%s.json", get(subj, "subject")->valuestring);
        cJSON *pred = read_out(out, rel);
        const cJSON *samples = get(pred, "samples"), *q;
        ck_assert_int_eq(cJSON_GetArraySize(samples), cJSON_GetArraySize(get(subj, "questions")));
        int i = 0;
        cJSON_ArrayForEach(q, get(subj, "questions")) {
            const cJSON *sm = cJSON_GetArrayItem(samples, i++);
            const cJSON *want = get(q, "candidates"), *c;
            int j = 0;
            cJSON_ArrayForEach(c, get(sm, "candidates")) {
                const cJSON *w = cJSON_GetArrayItem(want, j++);
                if (_i == 0) /* the no-BOS set records ids and scores only */
                    ck_assert_str_eq(get(c, "text")->valuestring, get(w, "continuation")->valuestring);
                double diff = fabs(get(c, "logprob")->valuedouble - get(w, "logprob")->valuedouble);
                worst = fmax(worst, diff);
                ck_assert_msg(diff <= LP_TOL, "%s row %d: logprob %.6f, lm-eval %.6f", rel, i,
                              get(c, "logprob")->valuedouble, get(w, "logprob")->valuedouble);
                ck_assert_int_eq(cJSON_IsTrue(get(c, "greedy")), cJSON_IsTrue(get(w, "is_greedy")));
            }
            ck_assert_int_eq(j, 4);
            ck_assert_double_eq(get(sm, "acc")->valuedouble, get(q, "acc")->valuedouble);
            ck_assert_double_eq(get(sm, "acc_norm")->valuedouble, get(q, "acc_norm")->valuedouble);
        }
        const cJSON *res = cJSON_GetArrayItem(get(r, "datasets"), d++);
        ck_assert_double_eq_tol(get(get(res, "metrics"), "acc")->valuedouble,
                                100 * get(subj, "acc")->valuedouble, 1e-9);
        ck_assert_double_eq_tol(get(get(res, "metrics"), "acc_norm")->valuedouble,
                                100 * get(subj, "acc_norm")->valuedouble, 1e-9);
        cJSON_Delete(pred);
    }
    printf("eval_ref: evaluator MMLU%s: log-likelihoods within %.2g of lm-eval's\n",
           _i ? " (no BOS)" : "", worst);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(out);
    free(out);
    ilm_model_free(m);
    cJSON_Delete(fx);
    free(root);
}
END_TEST

/* Rolling log-likelihood and GSM8K generation through task configs. */
START_TEST(evaluator_rolling_and_gen_equal_lm_eval)
{
    char *root = data_root();
    if (!root) return;
    cJSON *fx = fixture();
    ilm_model *m = NULL;
    ck_assert_msg(ilm_model_load(MODEL_DIR, NULL, &m) == ILM_OK, "%s", ilm_last_error());
    char *out = test_tmpdir();
    /* The fixture's documents as a JSONL file of our own. */
    char docs[4096];
    snprintf(docs, sizeof docs, "%s/docs.jsonl", out);
    FILE *f = fopen(docs, "wb");
    const cJSON *rolling = get(fx, "rolling"), *doc;
    cJSON_ArrayForEach(doc, get(rolling, "docs")) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "text", get(doc, "text")->valuestring);
        char *line = cJSON_PrintUnformatted(row);
        fprintf(f, "%s\n", line);
        cJSON_free(line);
        cJSON_Delete(row);
    }
    fclose(f);
    ilm_evaluator *e = evaluator(m, root, out, true);
    char task[8192];
    snprintf(task, sizeof task,
             "[{\"name\": \"roll\", \"reader\": {\"path\": \"%s\"}, \"mode\": \"rolling\","
             "  \"rolling\": {\"text\": \"{text}\", \"window\": %d}},"
             " {\"name\": \"gsm\", \"reader\": {\"path\": \"gsm8k/test.jsonl\", \"range\": [0, 8]},"
             "  \"fewshot\": {\"k\": 5, \"template\": \"Question: {question}\\nAnswer: {answer}\\n\\n\"},"
             "  \"prompt\": \"Question: {question}\\nAnswer:\", \"mode\": \"gen\","
             "  \"gen\": {\"max_tokens\": 32, \"stop\": [\"Question:\", \"\\n\\n\"], \"gold\": \"{answer}\"}}]",
             docs, get(rolling, "max_length")->valueint);
    cJSON *r = run_tasks(e, task);
    cJSON *pred = read_out(out, "predictions/ref/roll.json");
    int i = 0;
    cJSON_ArrayForEach(doc, get(rolling, "docs")) {
        const cJSON *sm = cJSON_GetArrayItem(get(pred, "samples"), i++);
        ck_assert_double_eq_tol(get(sm, "logprob")->valuedouble, get(doc, "loglikelihood")->valuedouble,
                                1e-3);
        ck_assert_double_eq(get(sm, "tokens")->valuedouble, get(doc, "n_tokens")->valuedouble);
        ck_assert_double_eq(get(sm, "words")->valuedouble, get(doc, "words")->valuedouble);
        ck_assert_double_eq(get(sm, "bytes")->valuedouble, get(doc, "bytes")->valuedouble);
    }
    const cJSON *agg = get(rolling, "aggregate");
    const cJSON *ms = get(cJSON_GetArrayItem(get(r, "datasets"), 0), "metrics");
    const char *keys[] = { "word_perplexity", "byte_perplexity", "bits_per_byte" };
    for (int k = 0; k < 3; k++) {
        double want = get(agg, keys[k])->valuedouble, got = get(ms, keys[k])->valuedouble;
        ck_assert_msg(fabs(got - want) <= 1e-6 * fabs(want), "%s: %.10g, lm-eval %.10g", keys[k], got,
                      want);
    }
    cJSON_Delete(pred);
    /* GSM8K: the same prompt and the same greedy text. */
    pred = read_out(out, "predictions/ref/gsm.json");
    const cJSON *items = get(get(fx, "gsm8k"), "items"), *it;
    i = 0;
    cJSON_ArrayForEach(it, items) {
        const cJSON *sm = cJSON_GetArrayItem(get(pred, "samples"), i++);
        ck_assert_str_eq(get(sm, "prompt")->valuestring, get(it, "context")->valuestring);
        ck_assert_str_eq(get(sm, "output")->valuestring, get(it, "generated")->valuestring);
    }
    ck_assert_int_eq(i, 3);
    cJSON_Delete(pred);
    cJSON_Delete(r);
    ilm_evaluator_free(e);
    test_rmtree(out);
    free(out);
    ilm_model_free(m);
    cJSON_Delete(fx);
    free(root);
}
END_TEST

Suite *suite_eval_ref(void)
{
    Suite *s = suite_create("eval_ref");
    TCase *t = tcase_create("lm_eval");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, tokenizer_adds_bos_as_lm_eval);
    tcase_add_loop_test(t, mmlu_candidates_equal_lm_eval, 0, 2);
    tcase_add_test(t, rolling_windows_equal_lm_eval);
    tcase_add_test(t, gsm8k_generation_equals_lm_eval);
    tcase_add_test(t, cli_score_adds_bos_as_the_tokenizer_says);
    tcase_add_loop_test(t, evaluator_mmlu_equals_lm_eval, 0, 2);
    tcase_add_test(t, evaluator_rolling_and_gen_equal_lm_eval);
    suite_add_tcase(s, t);
    return s;
}
