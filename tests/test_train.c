/* The trainer (ilm_trainer_*) and `internlm pretrain` / `internlm sft`:
 * bit-identical resume, a kill -9 during checkpoint writes, SFT on masked
 * shards, the NaN guard and config errors.  Data: the Debian fortunes,
 * tokenized with the 2000-piece tokenizer fixture. */
#include "tests.h"
#include "internlm.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOK "tests/fixtures/tokenizer/train/tokenizer.model"
#define FORTUNES "/usr/share/games/fortunes/"

static const char model_config[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 2000, "
    "\"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-5, "
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\"}";

/* A pretraining corpus from two fortune files in dir/corpus; false (after
 * a skip line) when the fortunes are not installed. */
static bool make_corpus(const char *dir)
{
    if (access(FORTUNES "fortunes", R_OK) || access(FORTUNES "literature", R_OK)) {
        test_skip("the Debian fortunes are not installed");
        return false;
    }
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"" FORTUNES "fortunes\", \"" FORTUNES "literature\"], "
             "\"output\": \"%s/corpus\", \"tokenizer\": \"" TOK "\", \"filter\": false}", dir);
    ck_assert_msg(ilm_corpus_build(cfg, NULL, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
    return true;
}

/* A trainer config over dir/corpus writing into dir/<run>. */
static char *train_config(const char *dir, const char *run, int steps, const char *extra)
{
    char *s = NULL;
    int n = asprintf(&s,
                     "{\"data\": \"%s/corpus\", \"eval_data\": \"%s/corpus\", \"model_config\": %s, "
                     "\"steps\": %d, \"batch\": 2, \"seqlen\": 64, \"grad_accum\": 2, \"seed\": 7, "
                     "\"optimizer\": {\"lr\": 1e-2, \"warmup_steps\": 2, \"min_lr\": 1e-3}, "
                     "\"checkpoint_dir\": \"%s/%s\", \"log\": \"%s/%s/metrics.jsonl\", "
                     "\"eval_interval\": 3, \"eval_batches\": 2%s%s}",
                     dir, dir, model_config, steps, dir, run, dir, run, *extra ? ", " : "", extra);
    ck_assert_int_gt(n, 0);
    return s;
}

/* The metrics log: the JSON of each line, in order. */
static cJSON *read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no log '%s'", path);
    cJSON *arr = cJSON_CreateArray();
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *m = cJSON_Parse(line);
        ck_assert_ptr_nonnull(m);
        cJSON_AddItemToArray(arr, m);
    }
    free(line);
    fclose(f);
    return arr;
}

/* The log entry of step `step` (the last one, as a resumed run repeats the
 * steps after its checkpoint). */
static const cJSON *log_step(const cJSON *log, int step)
{
    const cJSON *m, *found = NULL;
    cJSON_ArrayForEach(m, log) if (cJSON_GetObjectItem(m, "step")->valueint == step) found = m;
    ck_assert_msg(found != NULL, "step %d is not in the log", step);
    return found;
}

/* The log holds steps 1 .. n, each exactly once, in order. */
static void one_line_per_step(const cJSON *log, int n)
{
    ck_assert_msg(cJSON_GetArraySize(log) == n, "the log has %d lines for %d steps", cJSON_GetArraySize(log), n);
    int want = 1;
    const cJSON *m;
    cJSON_ArrayForEach(m, log) {
        ck_assert_int_eq(cJSON_GetObjectItem(m, "step")->valueint, want);
        want++;
    }
}

static void same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    char *x = test_slurp(a, &na), *y = test_slurp(b, &nb);
    ck_assert_msg(na == nb && !memcmp(x, y, na), "'%s' and '%s' differ", a, b);
    free(x);
    free(y);
}

/* ilm_trainer_plan of cfg, without a trainer, agrees with the info of the
 * trainer t made from it. */
static void plan_matches_info(const char *cfg, const ilm_trainer *t)
{
    char *plan = NULL, *info = NULL;
    ck_assert_msg(ilm_trainer_plan(cfg, &plan) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(ilm_trainer_info(t, &info), ILM_OK);
    cJSON *p = cJSON_Parse(plan), *i = cJSON_Parse(info);
    ck_assert_str_eq(cJSON_GetObjectItem(p, "method")->valuestring,
                     cJSON_GetObjectItem(i, "method")->valuestring);
    ck_assert_double_eq(cJSON_GetObjectItem(p, "trainable_parameters")->valuedouble,
                        cJSON_GetObjectItem(i, "parameters")->valuedouble);
    const cJSON *pm = cJSON_GetObjectItem(p, "memory"), *im = cJSON_GetObjectItem(i, "memory");
    static const char *const keys[] = { "parameters", "gradients", "optimizer", "activations",
                                        "batches" };
    for (size_t k = 0; k < 5; k++)
        ck_assert_msg(cJSON_GetObjectItem(pm, keys[k])->valuedouble ==
                          cJSON_GetObjectItem(im, keys[k])->valuedouble,
                      "%s: plan %s, trainer %s", keys[k], plan, info);
    const cJSON *base = cJSON_GetObjectItem(im, "base");
    ck_assert_double_eq(cJSON_GetObjectItem(pm, "base")->valuedouble, base ? base->valuedouble : 0);
    cJSON_Delete(p);
    cJSON_Delete(i);
    ilm_free(plan);
    ilm_free(info);
}

/* Losses, norms and weights of runs that stop and resume are those of the
 * run that did not stop, bit for bit. */
START_TEST(train_resume_is_bit_identical)
{
    char *dir = test_tmpdir(), path[4096], p2[4096];
    if (!make_corpus(dir)) goto out;
    /* A: 6 steps in one go. */
    char *cfg = train_config(dir, "a", 6, "\"checkpoint_interval\": 3");
    ilm_trainer *t;
    ck_assert_msg(ilm_trainer_create(cfg, &t) == ILM_OK, "%s", ilm_last_error());
    plan_matches_info(cfg, t);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ck_assert_int_eq(ilm_trainer_steps_done(t), 6);
    ilm_trainer_free(t);
    free(cfg);
    /* B: 3 steps, a new process-like start, 3 more. */
    cfg = train_config(dir, "b", 6, "\"checkpoint_interval\": 3");
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(ilm_trainer_step(t, NULL), ILM_OK);
    ilm_trainer_free(t);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_steps_done(t), 3);
    char *info;
    ck_assert_int_eq(ilm_trainer_info(t, &info), ILM_OK);
    ck_assert_ptr_nonnull(strstr(info, "\"resumed_from\":3"));
    ilm_free(info);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    free(cfg);

    snprintf(path, sizeof path, "%s/a/metrics.jsonl", dir);
    cJSON *la = read_log(path);
    snprintf(path, sizeof path, "%s/b/metrics.jsonl", dir);
    cJSON *lb = read_log(path);
    ck_assert_int_eq(cJSON_GetArraySize(la), 6);
    for (int s = 1; s <= 6; s++) {
        static const char *const keys[] = { "loss", "grad_norm", "lr" };
        for (int k = 0; k < 3; k++)
            ck_assert_msg(cJSON_GetObjectItem(log_step(la, s), keys[k])->valuedouble ==
                              cJSON_GetObjectItem(log_step(lb, s), keys[k])->valuedouble,
                          "step %d: %s differs", s, keys[k]);
    }
    ck_assert_double_eq(cJSON_GetObjectItem(log_step(la, 6), "eval_loss")->valuedouble,
                        cJSON_GetObjectItem(log_step(lb, 6), "eval_loss")->valuedouble);
    /* The loss went down on this tiny model, and the eval loss exists. */
    ck_assert_double_lt(cJSON_GetObjectItem(log_step(la, 6), "loss")->valuedouble,
                        cJSON_GetObjectItem(log_step(la, 1), "loss")->valuedouble);
    snprintf(path, sizeof path, "%s/a/step-00000006/model.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b/step-00000006/model.safetensors", dir);
    same_bytes(path, p2);
    snprintf(path, sizeof path, "%s/a/step-00000006/optimizer.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/b/step-00000006/optimizer.safetensors", dir);
    same_bytes(path, p2);
    /* A checkpoint is a model directory with its tokenizer: generation runs. */
    snprintf(path, sizeof path, "%s/a/step-00000006", dir);
    ilm_model *m;
    ck_assert_msg(ilm_model_load(path, NULL, &m) == ILM_OK, "%s", ilm_last_error());
    ck_assert_ptr_nonnull(ilm_model_tokenizer(m));
    ilm_model_free(m);
    cJSON_Delete(la);
    cJSON_Delete(lb);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST


/* LoRA continued pretraining on a saved base: the loss falls, checkpoints
 * hold only the adapter (PEFT's files) and its AdamW state, the base is
 * untouched, dropout included a resumed run is bit-identical, and a config
 * whose adapter differs from the checkpoint's is refused. */
START_TEST(train_lora_resume_is_bit_identical)
{
    char *dir = test_tmpdir(), path[4200], p2[4200], base[2048], extra[2600];
    if (!make_corpus(dir)) goto out;
    snprintf(base, sizeof base, "%s/base", dir);
    ilm_model *m;
    ck_assert_int_eq(ilm_model_create(model_config, 3, &m), ILM_OK);
    ck_assert_int_eq(ilm_model_save(m, base), ILM_OK);
    ilm_model_free(m);
    snprintf(path, sizeof path, "%s/model.safetensors", base);
    size_t base_n;
    char *base_bytes = test_slurp(path, &base_n);
    /* train_config's model_config is replaced by the base model. */
    /* _i 1: QLoRA, the base quantized to NF4 (double quantization) at load. */
    snprintf(extra, sizeof extra,
             "\"checkpoint_interval\": 3, \"model\": \"%s\", "
             "\"%s\": {\"r\": 4, \"alpha\": 8, \"dropout\": 0.1%s}", base,
             _i ? "qlora" : "lora", _i ? ", \"quant_type\": \"nf4\", \"blocksize\": 64" : "");
    char *cfg = train_config(dir, "a", 6, extra);
    char *mc = strstr(cfg, "\"model_config\": {");
    char *end = strstr(mc, "}, ") + 3;
    memmove(mc, end, strlen(end) + 1);
    ilm_trainer *t;
    ck_assert_msg(ilm_trainer_create(cfg, &t) == ILM_OK, "%s", ilm_last_error());
    char *info;
    ck_assert_int_eq(ilm_trainer_info(t, &info), ILM_OK);
    /* per layer r (in + out) over q 32x32, k and v 16x32, o 32x32, gate, up 64x32, down 32x64 */
    ck_assert_msg(strstr(info, "\"parameters\":4096,"), "%s", info);
    ck_assert_msg(strstr(info, _i ? "\"base_type\":\"nf4\"" : "\"base_type\":\"f32\""), "%s", info);
    ilm_free(info);
    plan_matches_info(cfg, t);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    char *cfg_b = strdup(cfg);
    char *run = strstr(cfg_b, "/a\"");
    run[1] = 'b';
    run = strstr(cfg_b, "/a/metrics");
    run[1] = 'b';
    ck_assert_int_eq(ilm_trainer_create(cfg_b, &t), ILM_OK);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(ilm_trainer_step(t, NULL), ILM_OK);
    ilm_trainer_free(t);
    ck_assert_msg(ilm_trainer_create(cfg_b, &t) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(ilm_trainer_steps_done(t), 3);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);

    snprintf(path, sizeof path, "%s/a/metrics.jsonl", dir);
    cJSON *la = read_log(path);
    snprintf(path, sizeof path, "%s/b/metrics.jsonl", dir);
    cJSON *lb = read_log(path);
    one_line_per_step(lb, 6);
    for (int s = 1; s <= 6; s++)
        ck_assert_msg(cJSON_GetObjectItem(log_step(la, s), "loss")->valuedouble ==
                          cJSON_GetObjectItem(log_step(lb, s), "loss")->valuedouble,
                      "step %d: the loss differs after resume", s);
    ck_assert_double_lt(cJSON_GetObjectItem(log_step(la, 6), "loss")->valuedouble,
                        cJSON_GetObjectItem(log_step(la, 1), "loss")->valuedouble);
    static const char *const files[] = { "adapter_model.safetensors", "optimizer.safetensors" };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/a/step-00000006/%s", dir, files[i]);
        snprintf(p2, sizeof p2, "%s/b/step-00000006/%s", dir, files[i]);
        same_bytes(path, p2);
    }
    snprintf(path, sizeof path, "%s/a/step-00000006/model.safetensors", dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/a/step-00000006/adapter_config.json", dir);
    cJSON *ac = test_read_json(path);
    ck_assert_str_eq(cJSON_GetObjectItem(ac, "peft_type")->valuestring, "LORA");
    ck_assert_str_eq(cJSON_GetObjectItem(ac, "base_model_name_or_path")->valuestring, base);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(ac, "target_modules")), 7);
    cJSON_Delete(ac);
    snprintf(path, sizeof path, "%s/model.safetensors", base);
    size_t n2;
    char *after = test_slurp(path, &n2);
    ck_assert_msg(n2 == base_n && !memcmp(after, base_bytes, n2), "the base model changed");
    free(after);
    /* Resuming run a with another rank is refused. */
    char *bad = strdup(cfg);
    char *r = strstr(bad, "\"r\": 4");
    r[5] = '8';
    char *steps = strstr(bad, "\"steps\": 6");
    steps[9] = '9';
    ck_assert_int_eq(ilm_trainer_create(bad, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "r 4"));
    free(bad);
    /* LoRA needs a base model. */
    char *nob = train_config(dir, "c", 2, "\"lora\": {\"r\": 4}");
    ck_assert_int_eq(ilm_trainer_create(nob, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "'lora' needs 'model'"));
    free(nob);
    cJSON_Delete(la);
    cJSON_Delete(lb);
    free(base_bytes);
    free(cfg_b);
    free(cfg);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* Steps of the killed runs: enough that the third kill (110 ms after the
 * log reaches step 6) still lands before the end when a step of this tiny
 * model takes a few milliseconds. */
#define KILL_STEPS 24

/* `internlm pretrain` killed with SIGKILL at moments that fall inside
 * checkpoint writes (one per step): whatever it left, the next run resumes
 * from a complete checkpoint and ends with the uninterrupted run's bytes. */
START_TEST(train_kill_9_then_resume)
{
    char *dir = test_tmpdir(), path[4096], p2[4096];
    if (!make_corpus(dir)) goto out;
    char *ref = train_config(dir, "ref", KILL_STEPS, "\"checkpoint_interval\": 1, \"keep_checkpoints\": 2");
    ilm_trainer *t;
    ck_assert_int_eq(ilm_trainer_create(ref, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    free(ref);
    snprintf(path, sizeof path, "%s/ref/metrics.jsonl", dir);
    cJSON *lref = read_log(path);

    char *cfg = train_config(dir, "run", KILL_STEPS, "\"checkpoint_interval\": 1, \"keep_checkpoints\": 2");
    snprintf(path, sizeof path, "%s/run.json", dir);
    FILE *f = fopen(path, "w");
    fputs(cfg, f);
    fclose(f);
    char cli[4096];
    snprintf(cli, sizeof cli, "%s/internlm", test_build_dir());
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) { /* exec at once: no library state crosses the fork */
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execl(cli, cli, "pretrain", "--config", path, (char *)NULL);
            _exit(127);
        }
        /* Wait for its log to reach step 2, 4, 6 (the line is written
         * just before that step's checkpoint), then kill it a little
         * later: inside that checkpoint's write or in the next step. */
        snprintf(p2, sizeof p2, "%s/run/metrics.jsonl", dir);
        for (int waited = 0; waited < 2000; waited++) {
            char *text = access(p2, R_OK) == 0 ? test_slurp(p2, NULL) : NULL;
            int lines = 0;
            for (const char *c = text; c && *c; c++) lines += *c == '\n';
            free(text);
            if (lines >= 2 + 2 * round) break;
            usleep(10000);
        }
        usleep(30000 + 40000 * (useconds_t)round);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
    }
    ck_assert_msg(ilm_trainer_create(cfg, &t) == ILM_OK, "%s", ilm_last_error());
    int64_t from = ilm_trainer_steps_done(t);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    free(cfg);
    snprintf(p2, sizeof p2, "%s/run/metrics.jsonl", dir);
    cJSON *lrun = read_log(p2);
    ck_assert_int_lt(from, KILL_STEPS); /* something is left to compare */
    one_line_per_step(lrun, KILL_STEPS); /* whatever the kills cut */
    for (int s = (int)from + 1; s <= KILL_STEPS; s++)
        ck_assert_msg(cJSON_GetObjectItem(log_step(lref, s), "loss")->valuedouble ==
                          cJSON_GetObjectItem(log_step(lrun, s), "loss")->valuedouble,
                      "step %d (resumed from %lld): the loss differs", s, (long long)from);
    snprintf(path, sizeof path, "%s/ref/step-%08d/model.safetensors", dir, KILL_STEPS);
    snprintf(p2, sizeof p2, "%s/run/step-%08d/model.safetensors", dir, KILL_STEPS);
    same_bytes(path, p2);
    cJSON_Delete(lref);
    cJSON_Delete(lrun);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_cli_plot_and_nan_guard)
{
    char *dir = test_tmpdir(), path[4096];
    if (!make_corpus(dir)) goto out;
    /* The CLI: progress lines, the memory report, the plot. */
    char *cfg = train_config(dir, "cli", 3, "");
    snprintf(path, sizeof path, "%s/cli.json", dir);
    FILE *f = fopen(path, "w");
    fputs(cfg, f);
    fclose(f);
    free(cfg);
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s/internlm pretrain --config %s --plot %s/loss.svg", test_build_dir(), path,
             dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "memory: parameters") && strstr(out, "step 3/3") && strstr(out, "tok/s") &&
                      strstr(out, "eval loss") && strstr(out, "checkpoint "),
                  "%s", out);
    free(out);
    snprintf(path, sizeof path, "%s/loss.svg", dir);
    char *svg = test_slurp(path, NULL);
    ck_assert_ptr_nonnull(strstr(svg, "<polyline"));
    free(svg);
    snprintf(cmd, sizeof cmd, "%s/internlm sft --config %s/cli.json", test_build_dir(), dir);
    ck_assert_int_eq(test_run(cmd, &out), 1); /* SFT needs "model": a config error */
    ck_assert_ptr_nonnull(strstr(out, "ILM_ERR_CONFIG"));
    free(out);

    /* An absurd learning rate poisons the weights: the guard skips. */
    cfg = train_config(dir, "nan", 4, "\"resume\": false");
    char *p = strstr(cfg, "\"lr\": 1e-2");
    memcpy(p, "\"lr\": 1e+6", 10);
    ilm_trainer *t;
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    int skipped = 0;
    for (int i = 0; i < 4; i++) {
        char *m;
        ck_assert_int_eq(ilm_trainer_step(t, &m), ILM_OK);
        skipped += strstr(m, "\"skipped\":true") != NULL;
        ilm_free(m);
    }
    ck_assert_int_ge(skipped, 1);
    ilm_trainer_free(t);
    free(cfg);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(train_config_errors)
{
    char *dir = test_tmpdir(), cfg[8192];
    if (!make_corpus(dir)) goto out;
    ilm_trainer *t = NULL;
    snprintf(cfg, sizeof cfg, "{\"data\": \"%s/corpus\", \"steps\": 2}", dir);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_CONFIG); /* no model */
    snprintf(cfg, sizeof cfg, "{\"data\": \"%s/corpus\", \"steps\": 2, \"model\": \"x\", \"model_config\": %s}",
             dir, model_config);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_CONFIG);
    snprintf(cfg, sizeof cfg, "{\"data\": \"%s/corpus\", \"steps\": 2, \"model_config\": %s, \"batchh\": 2}",
             dir, model_config);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "batchh"));
    snprintf(cfg, sizeof cfg, "{\"data\": \"%s/nothing\", \"steps\": 2, \"model_config\": %s}", dir, model_config);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_IO);
    /* A vocabulary smaller than the corpus's ids. */
    char small[2048];
    snprintf(small, sizeof small, "%s", model_config);
    memcpy(strstr(small, "2000"), "1000", 4);
    snprintf(cfg, sizeof cfg, "{\"data\": \"%s/corpus\", \"steps\": 2, \"model_config\": %s}", dir, small);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_CONFIG);
    /* SFT on pretraining shards (no masks). */
    ilm_model *m;
    ck_assert_int_eq(ilm_model_create(model_config, 1, &m), ILM_OK);
    char mdir[4096];
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    ck_assert_int_eq(ilm_model_save(m, mdir), ILM_OK);
    ilm_model_free(m);
    snprintf(cfg, sizeof cfg, "{\"mode\": \"sft\", \"data\": \"%s/corpus\", \"steps\": 2, \"model\": \"%s\"}", dir,
             mdir);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "mask"));
    ck_assert_ptr_null(t);
    /* QLoRA settings bitsandbytes does not have; lora and qlora at once. */
    static const char *const bad_q[][2] = {
        { "\"qlora\": {\"quant_type\": \"int4\"}", "quant_type" },
        { "\"qlora\": {\"blocksize\": 100}", "blocksize" },
        { "\"qlora\": {\"double_quant\": 1}", "double_quant" },
        { "\"qlora\": {\"rank\": 4}", "rank" },
        { "\"qlora\": {}, \"lora\": {}", "not both" },
    };
    for (size_t i = 0; i < sizeof bad_q / sizeof *bad_q; i++) {
        snprintf(cfg, sizeof cfg, "{\"data\": \"%s/corpus\", \"steps\": 2, \"model\": \"%s\", %s}",
                 dir, mdir, bad_q[i][0]);
        ck_assert_msg(ilm_trainer_create(cfg, &t) == ILM_ERR_CONFIG, "%s", bad_q[i][0]);
        ck_assert_msg(strstr(ilm_last_error(), bad_q[i][1]), "%s: %s", bad_q[i][0], ilm_last_error());
        ck_assert_ptr_null(t);
    }
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* `internlm pretrain` run again once finished: it says so and changes no
 * file (it once trained "step 4/3", appended to the log and, with
 * keep_checkpoints 1, pruned the real last checkpoint); the library's step
 * is ILM_ERR_RANGE there and run does nothing. */
START_TEST(train_finished_run_does_nothing)
{
    char *dir = test_tmpdir(), path[4096], cmd[8192], *out = NULL, *before = NULL, *after = NULL;
    if (!make_corpus(dir)) goto out;
    char *cfg = train_config(dir, "fin", 3, "\"checkpoint_interval\": 1, \"keep_checkpoints\": 1");
    snprintf(path, sizeof path, "%s/fin.json", dir);
    FILE *f = fopen(path, "w");
    fputs(cfg, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/internlm pretrain --config %s --plot %s/fin/loss.svg", test_build_dir(), path,
             dir);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    free(out);
    char ls[8192];
    snprintf(ls, sizeof ls, "cd %s/fin && ls -lR --time-style=full-iso . && md5sum metrics.jsonl loss.svg", dir);
    ck_assert_int_eq(test_run(ls, &before), 0);
    ck_assert_ptr_nonnull(strstr(before, "step-00000003"));
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "already finished") && strstr(out, "3 of 3") && !strstr(out, "step 4"), "%s", out);
    free(out);
    ck_assert_int_eq(test_run(ls, &after), 0);
    ck_assert_str_eq(after, before);
    ilm_trainer *t;
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_steps_done(t), 3);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    char *m = (char *)1;
    ck_assert_int_eq(ilm_trainer_step(t, &m), ILM_ERR_RANGE);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "finished"));
    ilm_trainer_free(t);
    free(after);
    ck_assert_int_eq(test_run(ls, &after), 0);
    ck_assert_str_eq(after, before);
    free(after);
    free(before);
    free(cfg);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* trainer_state.json values out of range: ILM_ERR_FORMAT naming the file
 * and the key (a step of 1e300 was an undefined cast, -7 was accepted and
 * then blamed on the optimizer). */
START_TEST(train_bad_trainer_state)
{
    static const struct {
        const char *from, *to, *says;
    } cases[] = {
        { "\"step\":3", "\"step\":1e300", "'step' is 1e+300" },
        { "\"step\":3", "\"step\":-7", "'step' is -7" },
        { "\"step\":3", "\"step\":2.5", "'step' is 2.5" },
        { "\"step\":3", "\"step\":2", "'step' is 2 but the checkpoint is of step 3" },
        { "\"step\":3", "\"stepp\":3", "no number 'step'" },
        { "\"tokens_seen\":", "\"tokens_seen\":-1,\"x\":", "'tokens_seen' is -1" },
    };
    char *dir = test_tmpdir(), path[4096];
    if (!make_corpus(dir)) goto out;
    char *cfg = train_config(dir, "st", 3, "");
    ilm_trainer *t;
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    snprintf(path, sizeof path, "%s/st/step-00000003/trainer_state.json", dir);
    char *good = test_slurp(path, NULL);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *at = strstr(good, cases[i].from);
        ck_assert_msg(at != NULL, "no '%s' in %s", cases[i].from, good);
        FILE *f = fopen(path, "w");
        fprintf(f, "%.*s%s%s", (int)(at - good), good, cases[i].to, at + strlen(cases[i].from));
        fclose(f);
        t = (ilm_trainer *)1;
        ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_ERR_FORMAT);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(ilm_last_error(), "step-00000003/trainer_state.json") &&
                          strstr(ilm_last_error(), cases[i].says),
                      "case %zu: %s", i, ilm_last_error());
    }
    free(good);
    free(cfg);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* The metrics log on resume: a step's line is written before its
 * checkpoint (a log that cannot take the line leaves no checkpoint of the
 * step), and a resumed run drops the lines after its checkpoint, so the
 * log ends with each step exactly once (it once lost the line of a step
 * killed after its checkpoint, and repeated the steps after it). */
START_TEST(train_log_one_line_per_step)
{
    char *dir = test_tmpdir(), path[4096], ck[4096];
    if (!make_corpus(dir)) goto out;
    /* Stopped at step 3, with a checkpoint at 2: resuming drops line 3. */
    char *cfg = train_config(dir, "lg", 6, "\"checkpoint_interval\": 2");
    ilm_trainer *t;
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(ilm_trainer_step(t, NULL), ILM_OK);
    ilm_trainer_free(t);
    snprintf(path, sizeof path, "%s/lg/metrics.jsonl", dir);
    FILE *f = fopen(path, "a");
    fputs("{\"step\": 4, \"loss\"", f); /* a line cut by a kill */
    fclose(f);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_steps_done(t), 2);
    cJSON *log = read_log(path);
    one_line_per_step(log, 2);
    cJSON_Delete(log);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    log = read_log(path);
    one_line_per_step(log, 6);
    ck_assert_str_eq(cJSON_GetObjectItem(log_step(log, 6), "checkpoint")->valuestring + strlen(dir),
                     "/lg/step-00000006");
    cJSON_Delete(log);
    free(cfg);

    /* The log refuses step 3's line: no checkpoint of step 3 appears. */
    cfg = train_config(dir, "lf", 4, "\"checkpoint_interval\": 1");
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(ilm_trainer_step(t, NULL), ILM_OK);
    snprintf(path, sizeof path, "%s/lf/metrics.jsonl", dir);
    char *two = test_slurp(path, NULL);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(mkdir(path, 0777), 0);
    ck_assert_int_eq(ilm_trainer_step(t, NULL), ILM_ERR_IO);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "metrics.jsonl"));
    ilm_trainer_free(t);
    snprintf(ck, sizeof ck, "%s/lf/step-00000003", dir);
    ck_assert_int_ne(access(ck, F_OK), 0);
    ck_assert_int_eq(rmdir(path), 0);
    f = fopen(path, "w");
    fputs(two, f);
    fclose(f);
    free(two);
    ck_assert_int_eq(ilm_trainer_create(cfg, &t), ILM_OK);
    ck_assert_int_eq(ilm_trainer_steps_done(t), 2);
    ck_assert_int_eq(ilm_trainer_run(t, NULL, NULL), ILM_OK);
    ilm_trainer_free(t);
    log = read_log(path);
    one_line_per_step(log, 4);
    cJSON_Delete(log);
    free(cfg);
out:
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* SFT: a chat corpus (loss masks), a model directory, the loss falls on
 * the assistant tokens. */
START_TEST(train_sft)
{
    char *dir = test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/tok", dir);
    if (!test_chat_tokenizer_dir(path)) {
        test_rmtree(dir);
        free(dir);
        return;
    }
    snprintf(path, sizeof path, "%s/chat.jsonl", dir);
    FILE *f = fopen(path, "w");
    static const char *const qa[][2] = { { "What is 2+2?", "4" }, { "Capital of France?", "Paris" },
                                         { "Say hi.", "Hi!" }, { "Colour of the sky?", "Blue." } };
    for (int i = 0; i < 4; i++)
        fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}, {\"role\": \"assistant\", "
                   "\"content\": \"%s\"}]}\n", qa[i][0], qa[i][1]);
    fclose(f);
    char cfg[8192];
    snprintf(cfg, sizeof cfg, "{\"inputs\": [\"%s\"], \"output\": \"%s/chat\", \"tokenizer\": \"%s/tok\"}", path,
             dir, dir);
    ck_assert_msg(ilm_corpus_build(cfg, NULL, NULL, NULL) == ILM_OK, "%s", ilm_last_error());
    char big[2048];
    const char *v = strstr(model_config, "2000");
    snprintf(big, sizeof big, "%.*s92544%s", (int)(v - model_config), model_config, v + 4);
    ilm_model *m;
    ck_assert_msg(ilm_model_create(big, 3, &m) == ILM_OK, "%s", ilm_last_error());
    snprintf(path, sizeof path, "%s/model", dir);
    ck_assert_int_eq(ilm_model_save(m, path), ILM_OK);
    ilm_model_free(m);
    snprintf(cfg, sizeof cfg, "{\"mode\": \"sft\", \"model\": \"%s\", \"data\": \"%s/chat\", \"steps\": 8, "
             "\"batch\": 1, \"seqlen\": 48, \"optimizer\": {\"lr\": 1e-2, \"warmup_steps\": 1}}", path, dir);
    ilm_trainer *t;
    ck_assert_msg(ilm_trainer_create(cfg, &t) == ILM_OK, "%s", ilm_last_error());
    double first = 0, last = 0;
    for (int i = 0; i < 8; i++) {
        char *mj;
        ck_assert_int_eq(ilm_trainer_step(t, &mj), ILM_OK);
        cJSON *j = cJSON_Parse(mj);
        double targets = cJSON_GetObjectItem(j, "targets")->valuedouble;
        /* Only answers and their <|im_end|> are targets: a handful of the 48. */
        ck_assert_double_gt(targets, 0);
        ck_assert_double_lt(targets, 24);
        if (i == 0) first = cJSON_GetObjectItem(j, "loss")->valuedouble;
        last = cJSON_GetObjectItem(j, "loss")->valuedouble;
        cJSON_Delete(j);
        ilm_free(mj);
    }
    ck_assert_msg(last < first - 1, "SFT loss %g -> %g", first, last);
    ilm_trainer_free(t);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- many users in one process ------------------------------------------ */

/* A model big enough that its prompt matmuls are cut into GEMM blocks
 * (lm head: 48 x 2000 x 256 multiply-adds). */
static const char conc_model[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 2000, "
    "\"hidden_size\": 256, \"intermediate_size\": 512, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-5, "
    "\"rope_theta\": 10000.0, \"tie_word_embeddings\": true, \"hidden_act\": \"silu\"}";

enum { CONC_PROMPT = 48, CONC_GEN = 6 };

typedef struct conc_job {
    /* in */
    const ilm_model *m;
    int              V, threads, seed;
    const char      *dir, *run; /* trainer jobs: dir/<run> */
    /* out: the logits after the prompt and after each greedy step */
    float           *logits;
    ilm_status       st;
    char             err[256];
} conc_job;

static void conc_fail(conc_job *j, ilm_status st)
{
    j->st = st;
    snprintf(j->err, sizeof j->err, "%s", ilm_last_error());
}

static void *conc_session(void *arg)
{
    conc_job *j = arg;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "{\"context\": 64, \"threads\": %d}", j->threads);
    ilm_session *s = NULL;
    ilm_status st = ilm_session_create(j->m, cfg, &s);
    const int V = j->V;
    int32_t ids[CONC_PROMPT];
    for (int i = 0; i < CONC_PROMPT; i++) ids[i] = (int32_t)((i * 7919 + j->seed * 104729) % 2000);
    const float *l = NULL;
    if (st == ILM_OK) st = ilm_session_eval(s, ids, CONC_PROMPT, &l);
    for (int k = 0; st == ILM_OK && k <= CONC_GEN; k++) {
        memcpy(j->logits + (size_t)k * V, l, (size_t)V * sizeof *l);
        if (k == CONC_GEN) break;
        int32_t next = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[next]) next = v;
        st = ilm_session_eval(s, &next, 1, &l);
    }
    if (st != ILM_OK) conc_fail(j, st);
    ilm_session_free(s);
    return NULL;
}

static void *conc_trainer(void *arg)
{
    conc_job *j = arg;
    char extra[64];
    snprintf(extra, sizeof extra, "\"threads\": %d", j->threads);
    char *cfg = train_config(j->dir, j->run, 3, extra);
    ilm_trainer *t = NULL;
    ilm_status st = ilm_trainer_create(cfg, &t);
    if (st == ILM_OK) st = ilm_trainer_run(t, NULL, NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/final", j->dir, j->run);
    if (st == ILM_OK) st = ilm_model_save(ilm_trainer_model(t), path);
    if (st != ILM_OK) conc_fail(j, st);
    ilm_trainer_free(t);
    free(cfg);
    return NULL;
}

/* Two sessions on one shared model in two threads (and two more on the
 * quantized SmolLM2 GGUF when it is there: the integer kernels' scratch)
 * and a trainer in another, while the main thread keeps changing the
 * process's default thread count: every result equals the one each gave
 * alone on one thread, bit for bit (the header's promise that a model may
 * be shared). */
START_TEST(sessions_and_trainer_run_at_once)
{
    char *dir = test_tmpdir();
    const bool have_corpus = make_corpus(dir);
    ilm_model *m = NULL, *q = NULL;
    ck_assert_int_eq(ilm_model_create(conc_model, 11, &m), ILM_OK);
    const char *gguf = test_pydeps_file(TEST_SMOLLM2);
    if (gguf) ck_assert_int_eq(ilm_model_load(gguf, NULL, &q), ILM_OK);
    enum { N = 5 }; /* sessions 0, 1 on m; 2, 3 on q; 4 the trainer */
    const bool run[N] = { true, true, q != NULL, q != NULL, have_corpus };
    conc_job alone[N], together[N];
    for (int i = 0; i < N; i++) {
        const ilm_model *mm = i == 2 || i == 3 ? q : m;
        const int V = i == 2 || i == 3 ? 49152 : 2000;
        alone[i] = (conc_job){ .m = mm, .V = V, .threads = 1, .seed = i, .dir = dir, .run = "alone" };
        together[i] = (conc_job){ .m = mm, .V = V, .threads = 2, .seed = i, .dir = dir, .run = "together" };
        alone[i].logits = calloc((size_t)(CONC_GEN + 1) * V, sizeof(float));
        together[i].logits = calloc((size_t)(CONC_GEN + 1) * V, sizeof(float));
    }
    /* Alone, one after the other, on one thread each. */
    for (int i = 0; i < N; i++)
        if (run[i]) {
            (i == 4 ? conc_trainer : conc_session)(&alone[i]);
            ck_assert_msg(alone[i].st == ILM_OK, "alone %d: %s", i, alone[i].err);
        }
    /* All at once, on two threads each. */
    pthread_t th[N];
    for (int i = 0; i < N; i++)
        if (run[i])
            ck_assert_int_eq(pthread_create(&th[i], NULL, i == 4 ? conc_trainer : conc_session,
                                            &together[i]), 0);
    for (int k = 0; k < 200; k++) {
        ilm_set_num_threads(1 + k % 3);
        usleep(1000);
    }
    ilm_set_num_threads(0);
    for (int i = 0; i < N; i++)
        if (run[i]) {
            ck_assert_int_eq(pthread_join(th[i], NULL), 0);
            ck_assert_msg(together[i].st == ILM_OK, "together %d: %s", i, together[i].err);
        }
    for (int i = 0; i < 4; i++)
        if (run[i])
            ck_assert_msg(memcmp(alone[i].logits, together[i].logits,
                                 (size_t)(CONC_GEN + 1) * alone[i].V * sizeof(float)) == 0,
                          "session %d: logits differ when run beside others", i);
    /* The prompts differ, so equal logits would mean a shared buffer. */
    ck_assert(memcmp(alone[0].logits, alone[1].logits, 2000 * sizeof(float)) != 0);
    if (have_corpus) {
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/alone/final/model.safetensors", dir);
        snprintf(b, sizeof b, "%s/together/final/model.safetensors", dir);
        same_bytes(a, b);
    }
    printf("concurrency: %d sessions (%d prompt + %d decode tokens; %s) and %s at once equal their "
           "single-threaded runs bit for bit\n", q ? 4 : 2, CONC_PROMPT, CONC_GEN,
           q ? "f32 and SmolLM2 Q4_1" : "f32", have_corpus ? "a 3-step trainer" : "no trainer");
    for (int i = 0; i < N; i++) {
        free(alone[i].logits);
        free(together[i].logits);
    }
    ilm_model_free(q);
    ilm_model_free(m);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(threads_config_is_checked)
{
    ilm_model *m = NULL;
    ck_assert_int_eq(ilm_model_create(model_config, 1, &m), ILM_OK);
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, "{\"threads\": -1}", &s), ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "threads"));
    ck_assert_int_eq(ilm_session_create(m, "{\"threads\": 1.5}", &s), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_session_create(m, "{\"threads\": 100000}", &s), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_session_create(m, "{\"threads\": 3}", &s), ILM_OK);
    ilm_session_free(s);
    ilm_model *l = NULL;
    ck_assert_int_eq(ilm_model_load("tests/fixtures/model/gqa_tied", "{\"threads\": \"two\"}", &l),
                     ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_model_load("tests/fixtures/model/gqa_tied", "{\"threads\": 2}", &l), ILM_OK);
    ilm_model_free(l);
    ilm_model_free(m);
}
END_TEST

Suite *suite_train(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, train_resume_is_bit_identical);
    tcase_add_loop_test(tc, train_lora_resume_is_bit_identical, 0, 2);
    tcase_add_test(tc, train_kill_9_then_resume);
    tcase_add_test(tc, train_cli_plot_and_nan_guard);
    tcase_add_test(tc, train_config_errors);
    tcase_add_test(tc, train_finished_run_does_nothing);
    tcase_add_test(tc, train_bad_trainer_state);
    tcase_add_test(tc, train_log_one_line_per_step);
    tcase_add_test(tc, train_sft);
    suite_add_tcase(s, tc);
    tc = tcase_create("concurrency");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, sessions_and_trainer_run_at_once);
    tcase_add_test(tc, threads_config_is_checked);
    suite_add_tcase(s, tc);
    return s;
}
