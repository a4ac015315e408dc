/* The `internlm` command: dispatch, help, version, exit codes and error
 * messages with the status name. */
#include "tests.h"
#include "internlm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cli(const char *args, char **out)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/internlm %s", test_build_dir(), args);
    return test_run(cmd, out);
}

START_TEST(cli_version)
{
    char *out = NULL;
    ck_assert_int_eq(cli("--version", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, ilm_version_string()));
    ck_assert_ptr_nonnull(strstr(out, "\"blas\":\"openblas\""));
    free(out);
}
END_TEST

START_TEST(cli_help_everywhere)
{
    static const char *helps[] = { "--help", "help", "bench --help", "bench gemm --help",
                                   "bench tokenize --help", "version --help", "info --help",
                                   "tokenize --help", "detokenize --help", "tokenizer --help",
                                   "tokenizer train --help", "generate --help", "chat --help",
                                   "score --help", "perplexity --help",
                                   "bench generate --help", "bench train --help", "merge --help",
                                   "plan --help", "quantize --help" };
    for (size_t i = 0; i < sizeof helps / sizeof *helps; i++) {
        char *out = NULL;
        ck_assert_msg(cli(helps[i], &out) == 0, "'%s' failed: %s", helps[i], out);
        ck_assert_msg(strstr(out, "usage:") != NULL, "'%s' printed: %s", helps[i], out);
        free(out);
    }
}
END_TEST

START_TEST(cli_usage_errors_exit_2)
{
    char *out = NULL;
    ck_assert_int_eq(cli("", &out), 2);
    free(out);
    ck_assert_int_eq(cli("frobnicate", &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "unknown command 'frobnicate'"));
    free(out);
    ck_assert_int_eq(cli("bench gemm --sizes abc", &out), 2);
    ck_assert_ptr_nonnull(strstr(out, "--sizes"));
    free(out);
    ck_assert_int_eq(cli("bench gemm --bogus", &out), 2);
    free(out);
    /* Counts: 0 is not "the default" (once silently replaced by it), and
     * negatives, fractions, huge values and non-numbers are refused too. */
    static const char *const counts[] = {
        "generate --model M --prompt hi --context 0",   "generate --model M --prompt hi --context -4",
        "generate --model M --prompt hi --context abc", "generate --model M --prompt hi --context 1.5",
        "generate --model M --prompt hi --context 1e300", "chat --model M --context 0",
        "perplexity --model M --file F --ctx 0",         "perplexity --model M --file F --chunks -1",
    };
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        ck_assert_msg(cli(counts[i], &out) == 2, "'%s': %s", counts[i], out);
        const char *opt = strstr(counts[i], "--c");
        char name[16];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(opt, " "), opt);
        ck_assert_msg(strstr(out, name) && strstr(out, "wants"), "'%s': %s", counts[i], out);
        free(out);
    }
}
END_TEST

/* `internlm pretrain` with an SFT config and the other way round: a usage
 * error that quotes the config's mode (it once printed freed memory). */
START_TEST(cli_train_mode_mismatch)
{
    char *dir = test_tmpdir(), path[2048], args[4096], *out = NULL;
    static const struct {
        const char *cmd, *mode, *says;
    } cases[] = {
        { "pretrain", "\"sft\"", "\"mode\": \"sft\"; use `internlm sft`" },
        { "sft", "\"pretrain\"", "\"mode\": \"pretrain\"; use `internlm pretrain`" },
        { "pretrain", "\"bogus\"", "\"mode\" must be \"pretrain\" for `internlm pretrain`" },
        { "sft", "7", "\"mode\" must be \"sft\" for `internlm sft`" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(path, sizeof path, "%s/run.json", dir);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f, "{\"mode\": %s, \"data\": \"%s/none\", \"steps\": 1}", cases[i].mode, dir);
        fclose(f);
        snprintf(args, sizeof args, "%s --config %s", cases[i].cmd, path);
        ck_assert_msg(cli(args, &out) == 2, "%s: %s", args, out);
        ck_assert_msg(strstr(out, cases[i].says) && strstr(out, "run.json"), "%s: %s", args, out);
        free(out);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_library_errors_name_the_status)
{
    char *out = NULL;
    ck_assert_int_eq(cli("bench gemm --sizes 0", &out), 1);
    ck_assert_msg(strstr(out, "internlm: ILM_ERR_CONFIG: config: 'sizes[0]'") != NULL, "%s", out);
    free(out);
}
END_TEST

START_TEST(cli_bench_gemm_json_and_table)
{
    char *out = NULL;
    ck_assert_int_eq(cli("bench gemm --sizes 64 --min-time 0 --min-reps 2 --threads 1 --json",
                         &out), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert(cJSON_GetObjectItem(j, "peak_gflops")->valuedouble > 0);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")), 1);
    cJSON_Delete(j);
    free(out);
    ck_assert_int_eq(cli("bench gemm --sizes 64 --min-time 0 --threads 1", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "% of peak"));
    ck_assert_ptr_nonnull(strstr(out, "measured peak"));
    free(out);
}
END_TEST

/* bench train on a tiny model: the JSON has every op, and the table. */
START_TEST(cli_bench_train_json_and_table)
{
    char *dir = test_tmpdir(), path[1024], *out = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
          "\"vocab_size\": 300, \"hidden_size\": 32, \"intermediate_size\": 64, "
          "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "
          "\"rms_norm_eps\": 1e-5, \"tie_word_embeddings\": true}", f);
    fclose(f);
    char args[4200];
    snprintf(args, sizeof args, "bench train --model-config %s --batch 2 --seqlen 16 --steps 2 "
             "--warmup 1 --docs-per-row 3 --threads 2 --json", path);
    ck_assert_msg(cli(args, &out) == 0, "%s", out);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    ck_assert(cJSON_GetObjectItem(j, "tokens_per_s")->valuedouble > 0);
    ck_assert_int_eq(cJSON_GetObjectItem(j, "docs_per_row")->valueint, 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "op_seconds_per_step")), 12);
    ck_assert(cJSON_GetObjectItem(j, "last_loss")->valuedouble < 6.0);
    cJSON_Delete(j);
    free(out);
    snprintf(args, sizeof args, "bench train --model-config %s --batch 2 --seqlen 16 --steps 1 "
             "--warmup 0 --recompute 1", path);
    ck_assert_int_eq(cli(args, &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "tokens/s"));
    ck_assert_ptr_nonnull(strstr(out, "attention"));
    free(out);
    ck_assert_int_eq(cli("bench train --recompute 2", &out), 2);
    free(out);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_info)
{
    char *out = NULL;
    ck_assert_int_eq(cli("info", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "threads:"));
    ck_assert_ptr_nonnull(strstr(out, "cuda"));
    free(out);
}
END_TEST

START_TEST(cli_tokenize_detokenize_train)
{
    const char *model = test_shared_file("tokenizers/internlm2.model");
    char cmd[4096], *out = NULL;
    if (model) {
        snprintf(cmd, sizeof cmd, "printf 'Hello world' | %s/internlm tokenize --tokenizer %s",
                 test_build_dir(), model);
        ck_assert_int_eq(test_run(cmd, &out), 0);
        ck_assert_str_eq(out, "9843 2028\n"); /* sentencepiece's ids */
        free(out);
        snprintf(cmd, sizeof cmd, "echo '1 9843 2028' | %s/internlm detokenize --tokenizer %s",
                 test_build_dir(), model);
        ck_assert_int_eq(test_run(cmd, &out), 0);
        ck_assert_str_eq(out, "Hello world");
        free(out);
        snprintf(cmd, sizeof cmd, "printf 'hi' | %s/internlm tokenize --bos --tokenizer %s",
                 test_build_dir(), model);
        ck_assert_int_eq(test_run(cmd, &out), 0);
        ck_assert_int_eq(strncmp(out, "1 ", 2), 0);
        free(out);
        snprintf(cmd, sizeof cmd, "echo '1 x' | %s/internlm detokenize --tokenizer %s",
                 test_build_dir(), model);
        ck_assert_int_eq(test_run(cmd, &out), 2);
        free(out);
    }
    char *dir = test_tmpdir();
    snprintf(cmd, sizeof cmd,
             "%s/internlm tokenizer train --input tests/fixtures/tokenizer/train/train.txt "
             "--vocab-size 2000 --out %s/t.model --user-defined-symbols '<|im_start|>,<|im_end|>' && "
             "printf 'abc <|im_start|>' | %s/internlm tokenize --tokenizer %s/t.model | "
             "%s/internlm detokenize --tokenizer %s/t.model",
             test_build_dir(), dir, test_build_dir(), dir, test_build_dir(), dir);
    ck_assert_msg(test_run(cmd, &out) == 0, "%s", out);
    ck_assert_str_eq(out, "abc <|im_start|>");
    free(out);
    snprintf(cmd, sizeof cmd, "%s/internlm tokenize --tokenizer %s/missing.model < /dev/null",
             test_build_dir(), dir);
    ck_assert_int_eq(test_run(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "ILM_ERR_IO"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s/internlm tokenizer train --input x", test_build_dir());
    ck_assert_int_eq(test_run(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "ILM_ERR_CONFIG"));
    free(out);
    ck_assert_int_eq(cli("tokenize", &out), 2);
    free(out);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(cli_model_commands)
{
    char cmd[4096], *out = NULL;
    /* score and bench on a tiny transformers model (no tokenizer needed). */
    ck_assert_int_eq(cli("score --model tests/fixtures/model/gqa_tied --ids '1 5 9' --json", &out), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "%s", out);
    const cJSON *toks = cJSON_GetObjectItem(j, "tokens");
    ck_assert_int_eq(cJSON_GetArraySize(toks), 3);
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(toks, 0), "logprob")));
    double sum = cJSON_GetObjectItem(cJSON_GetArrayItem(toks, 1), "logprob")->valuedouble +
                 cJSON_GetObjectItem(cJSON_GetArrayItem(toks, 2), "logprob")->valuedouble;
    ck_assert(fabs(sum - cJSON_GetObjectItem(j, "sum_logprob")->valuedouble) < 1e-9);
    cJSON_Delete(j);
    free(out);
    ck_assert_int_eq(cli("bench generate --model tests/fixtures/model/gqa_tied --prompt-tokens 8 "
                         "--gen-tokens 4 --reps 1 --json", &out), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"decode_tokens_per_s\""));
    free(out);
    ck_assert_int_eq(cli("generate --model tests/fixtures/model/gqa_tied --prompt hi", &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "ILM_ERR_STATE")); /* no tokenizer there */
    free(out);
    ck_assert_int_eq(cli("score --model /nonexistent --ids 1", &out), 1);
    free(out);
    ck_assert_int_eq(cli("generate --prompt hi", &out), 2);
    free(out);

    /* The real model, when installed: generate, chat, perplexity. */
    const char *gguf = test_pydeps_file(TEST_SMOLLM2);
    if (!gguf) return;
    char g[1024];
    snprintf(g, sizeof g, "%s", gguf);
    snprintf(cmd, sizeof cmd, "generate --model %s --prompt 'The capital of France is' "
             "--max-tokens 8 --temperature 0", g);
    ck_assert_int_eq(cli(cmd, &out), 0);
    ck_assert_msg(strstr(out, "Paris") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "printf 'What is the capital of France?\\nAnd of Italy?\\n' | "
             "%s/internlm chat --model %s --temperature 0 --max-tokens 30", test_build_dir(), g);
    ck_assert_int_eq(test_run(cmd, &out), 0);
    ck_assert_msg(strstr(out, "Paris") && strstr(out, "Rome"), "%s", out);
    free(out);
    const char *wiki = test_shared_file("wikitext2/wiki.test.txt");
    if (!wiki) return;
    snprintf(cmd, sizeof cmd, "perplexity --model %s --file %s --ctx 128 --chunks 2 --json", g, wiki);
    ck_assert_int_eq(cli(cmd, &out), 0);
    j = cJSON_Parse(strrchr(out, '{'));
    ck_assert_msg(j != NULL, "%s", out);
    double ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
    ck_assert_msg(ppl > 5 && ppl < 100, "perplexity %g", ppl);
    cJSON_Delete(j);
    free(out);
}
END_TEST

/* --adapter on the model commands, and `internlm merge`: the merged
 * directory scores as the base with the adapter applied does. */
START_TEST(cli_adapter_and_merge)
{
    char cmd[4096], *out = NULL, *tmp = test_tmpdir(), *dir = test_join(tmp, "merged");
    const char *base = "tests/fixtures/train/grad_gqa_untied", *ad = "tests/fixtures/train/lora_all";
    double sums[3];
    for (int k = 0; k < 3; k++) {
        if (k == 1) {
            snprintf(cmd, sizeof cmd, "merge --model %s --adapter %s --out %s", base, ad, dir);
            ck_assert_msg(cli(cmd, &out) == 0, "%s", out);
            free(out);
        }
        snprintf(cmd, sizeof cmd, "score --model %s%s%s --ids '56 51 3 4 70' --json",
                 k == 1 ? dir : base, k == 0 ? " --adapter " : "", k == 0 ? ad : "");
        ck_assert_msg(cli(cmd, &out) == 0, "%s: %s", cmd, out);
        cJSON *j = cJSON_Parse(out);
        ck_assert_msg(j != NULL, "%s", out);
        sums[k] = cJSON_GetObjectItem(j, "sum_logprob")->valuedouble;
        cJSON_Delete(j);
        free(out);
    }
    ck_assert_msg(fabs(sums[0] - sums[1]) < 1e-5 * fabs(sums[0]), "adapted %.9g, merged %.9g",
                  sums[0], sums[1]);
    ck_assert_msg(fabs(sums[0] - sums[2]) > 1e-3, "the adapter changes nothing");
    /* A missing adapter is a library error; a missing option a usage one. */
    snprintf(cmd, sizeof cmd, "score --model %s --adapter %s/none --ids '1 2'", base, tmp);
    ck_assert_int_eq(cli(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "adapter_config.json"));
    free(out);
    snprintf(cmd, sizeof cmd, "merge --model %s --out %s", base, dir);
    ck_assert_int_eq(cli(cmd, &out), 2);
    free(out);
    /* The memory plan of a QLoRA config over that base, as a table. */
    char *cfg = test_join(tmp, "qlora.json");
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"%s\", \"data\": \"unused\", \"steps\": 1, \"batch\": 2, "
               "\"seqlen\": 16, \"qlora\": {\"r\": 4}}", base);
    fclose(f);
    snprintf(cmd, sizeof cmd, "plan --config %s", cfg);
    ck_assert_msg(cli(cmd, &out) == 0, "%s", out);
    ck_assert_msg(strstr(out, "qlora: ") && strstr(out, "nf4") && strstr(out, "without recompute"),
                  "%s", out);
    free(out);
    free(cfg);
    /* quantize writes a 4-bit directory that scores as --quantize does at
     * load; formats it does not write are usage errors. */
    const char *fp32 = "tests/fixtures/nf4/hf_llama64_fp32";
    char *q4 = test_join(tmp, "nf4");
    double q[2];
    for (int k = 0; k < 2; k++) {
        if (k == 0) {
            snprintf(cmd, sizeof cmd, "quantize --model %s --format nf4 --out %s", fp32, q4);
            ck_assert_msg(cli(cmd, &out) == 0, "%s", out);
            free(out);
            snprintf(cmd, sizeof cmd, "score --model %s --ids '1 5 9 13' --json", q4);
        } else {
            snprintf(cmd, sizeof cmd, "score --model %s --quantize nf4 --ids '1 5 9 13' --json", fp32);
        }
        ck_assert_msg(cli(cmd, &out) == 0, "%s", out);
        cJSON *j = cJSON_Parse(out);
        ck_assert_msg(j != NULL, "%s", out);
        q[k] = cJSON_GetObjectItem(j, "sum_logprob")->valuedouble;
        cJSON_Delete(j);
        free(out);
    }
    ck_assert_msg(q[0] == q[1], "saved %.17g, quantized at load %.17g", q[0], q[1]);
    snprintf(cmd, sizeof cmd, "quantize --model %s --format q5_k --out %s", fp32, q4);
    ck_assert_int_eq(cli(cmd, &out), 2);
    free(out);
    /* GGUF output needs a GGUF input (its tokenizer in GGUF's form). */
    snprintf(cmd, sizeof cmd, "quantize --model %s --format q4_0 --out %s/x.gguf", fp32, tmp);
    ck_assert_int_eq(cli(cmd, &out), 1);
    ck_assert_ptr_nonnull(strstr(out, "ILM_ERR_UNSUPPORTED"));
    free(out);
    free(q4);
    test_rmtree(tmp);
    free(dir);
    free(tmp);
}
END_TEST

Suite *suite_cli(void)
{
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("cli");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, cli_version);
    tcase_add_test(t, cli_help_everywhere);
    tcase_add_test(t, cli_usage_errors_exit_2);
    tcase_add_test(t, cli_train_mode_mismatch);
    tcase_add_test(t, cli_library_errors_name_the_status);
    tcase_add_test(t, cli_bench_gemm_json_and_table);
    tcase_add_test(t, cli_bench_train_json_and_table);
    tcase_add_test(t, cli_info);
    tcase_add_test(t, cli_tokenize_detokenize_train);
    tcase_add_test(t, cli_model_commands);
    tcase_add_test(t, cli_adapter_and_merge);
    suite_add_tcase(s, t);
    return s;
}
