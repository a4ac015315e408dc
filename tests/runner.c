/* The test runner: every suite, fork mode, Check's summary line last. */
#include "tests.h"
#include "backend/backend.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const ilm__backend *test_cpu(void)
{
    static ilm__backend *be;
    if (!be) ck_assert_int_eq(ilm__backend_cpu_create(0, -1, &be), ILM_OK);
    return be;
}

ilm__backend *test_cpu_new(int threads, int isa)
{
    ilm__backend *be = NULL;
    ck_assert_int_eq(ilm__backend_cpu_create(threads, isa, &be), ILM_OK);
    return be;
}

const char *test_build_dir(void)
{
    const char *b = getenv("ILM_BUILD");
    return b && *b ? b : "build";
}

const char *test_lib_dir(void)
{
    const char *l = getenv("ILM_LIBDIR");
    return l && *l ? l : "lib";
}

int test_sanitized(void)
{
    const char *s = getenv("ILM_SANITIZE");
    return s && strcmp(s, "1") == 0;
}

static const char *existing(const char *dir, const char *rel, const char *hint)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (access(path, R_OK) == 0) return path;
    printf("skip: %s not found (%s)\n", path, hint);
    return NULL;
}

const char *test_pydeps_file(const char *rel)
{
    return existing(".cache/pydeps", rel, "run tools/fetch_models.sh");
}

const char *test_shared_file(const char *rel)
{
    const char *d = getenv("ILM_SHARED_DATA");
    return existing(d && *d ? d : "../shared/data", rel, "the shared data folder");
}

bool test_chat_tokenizer_dir(const char *dir)
{
    const char *src = test_shared_file("tokenizers/internlm2.model");
    if (!src) return false;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/tokenizer.model'", dir, src, dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(cmd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"add_bos_token\": true, \"add_eos_token\": false, \"added_tokens_decoder\": {"
          "\"92542\": {\"content\": \"<|im_end|>\", \"special\": true},"
          "\"92543\": {\"content\": \"<|im_start|>\", \"special\": true}}}", f);
    ck_assert_int_eq(fclose(f), 0);
    return true;
}

char *test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_msg(buf && fread(buf, 1, (size_t)n, f) == (size_t)n, "cannot read %s", path);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

cJSON *test_read_json(const char *path)
{
    char *text = test_slurp(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    return j;
}

int test_run(const char *cmd, char **out)
{
    char *full = NULL;
    size_t n = strlen(cmd) + 16;
    full = malloc(n);
    snprintf(full, n, "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 1024) buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *test_tmpdir(void)
{
    char tmpl[] = "/tmp/ilm-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

void test_rmtree(const char *dir)
{
    if (!dir || strncmp(dir, "/tmp/ilm-test-", 14) != 0) return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) { /* best effort */ }
}

int main(void)
{
    SRunner *sr = srunner_create(suite_core());
    srunner_add_suite(sr, suite_backend());
    srunner_add_suite(sr, suite_abi());
    srunner_add_suite(sr, suite_cli());
    srunner_add_suite(sr, suite_tokenizer());
    srunner_add_suite(sr, suite_model());
    srunner_add_suite(sr, suite_tok_train());
    srunner_add_suite(sr, suite_gguf());
    srunner_add_suite(sr, suite_bytelevel());
    srunner_add_suite(sr, suite_formats());
    srunner_add_suite(sr, suite_tensor());
    srunner_add_suite(sr, suite_corpus());
    srunner_add_suite(sr, suite_ingest());
    srunner_add_suite(sr, suite_dedup());
    srunner_add_suite(sr, suite_pipeline());
    srunner_add_suite(sr, suite_train());
    srunner_add_suite(sr, suite_optim());
    srunner_add_suite(sr, suite_ckpt());
    srunner_add_suite(sr, suite_grad());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
