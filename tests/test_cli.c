/* The `internlm` command: dispatch, help, version, exit codes and error
 * messages with the status name. */
#include "tests.h"
#include "internlm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cli(const char *args, char **out)
{
    char cmd[1024];
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
                                   "tokenizer train --help" };
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

Suite *suite_cli(void)
{
    Suite *s = suite_create("cli");
    TCase *t = tcase_create("cli");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, cli_version);
    tcase_add_test(t, cli_help_everywhere);
    tcase_add_test(t, cli_usage_errors_exit_2);
    tcase_add_test(t, cli_library_errors_name_the_status);
    tcase_add_test(t, cli_bench_gemm_json_and_table);
    tcase_add_test(t, cli_info);
    tcase_add_test(t, cli_tokenize_detokenize_train);
    suite_add_tcase(s, t);
    return s;
}
