/* The test runner: every suite, fork mode, Check's summary line last. */
#include "tests.h"
#include "backend/backend.h"
#include "internlm.h"

#include <cjson/cJSON.h>

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

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

#define SKIP_LOG_ENV "ILM_TEST_SKIP_LOG"

void test_skip(const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    for (char *c = reason; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
    printf("skip: %s\n", reason);
    fflush(stdout);
    /* One line per call, appended with O_APPEND (the forked tests may
     * write at once); the runner counts tests by their pid. */
    const char *log = getenv(SKIP_LOG_ENV);
    int fd = log ? open(log, O_WRONLY | O_APPEND) : -1;
    if (fd < 0) return;
    char line[1200];
    int n = snprintf(line, sizeof line, "%ld\t%s\t%s\n", (long)getpid(), tcase_name(), reason);
    if (n > 0 && write(fd, line, (size_t)n) < 0) { /* the skip line above still says it */ }
    close(fd);
}

static const char *existing(const char *dir, const char *rel, const char *hint)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if (access(path, R_OK) == 0) return path;
    test_skip("%s not found (%s)", path, hint);
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

struct ilm_model *test_smollm2(void)
{
    const char *path = test_pydeps_file(TEST_SMOLLM2);
    if (!path) return NULL;
    ilm_model *m = NULL;
    ck_assert_msg(ilm_model_load(path, NULL, &m) == ILM_OK, "%s: %s", path, ilm_last_error());
    return m;
}

void test_write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

void test_write_gz(const char *path, const void *p, size_t n)
{
    gzFile g = gzopen(path, "wb");
    ck_assert_msg(g != NULL, "cannot write %s", path);
    ck_assert_int_eq(gzwrite(g, p, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

char *test_join(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
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

/* Lists the skipped tests from the log and returns how many there were. */
static int report_skips(const char *log)
{
    FILE *f = fopen(log, "r");
    if (!f) return 0;
    char line[1200];
    long last = -1;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char *tc = strchr(line, '\t'), *why = tc ? strchr(tc + 1, '\t') : NULL;
        if (!why) continue;
        const long pid = strtol(line, NULL, 10);
        *why++ = '\0';
        if (pid != last) n++; /* one test, one fork: its lines are together */
        last = pid;
        printf("skipped: [%s] %s", tc + 1, why);
    }
    fclose(f);
    return n;
}

int main(void)
{
    char log[] = "/tmp/ilm-test-skips-XXXXXX";
    int fd = mkstemp(log);
    if (fd >= 0) {
        close(fd);
        setenv(SKIP_LOG_ENV, log, 1);
    }
    SRunner *sr = NULL;
#define TEST_ADD_SUITE(name)                                  \
    if (!sr) sr = srunner_create(suite_##name());             \
    else srunner_add_suite(sr, suite_##name());
    TEST_SUITES(TEST_ADD_SUITE)
#undef TEST_ADD_SUITE
    srunner_run_all(sr, CK_NORMAL);
    const int run = srunner_ntests_run(sr), failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    const int skipped = fd >= 0 ? report_skips(log) : 0;
    if (fd >= 0) unlink(log);
    /* Check counts a skipped test as passed; this line does not. */
    printf("%d checks: %d passed, %d failed, %d skipped\n", run, run - failed - skipped, failed,
           skipped);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
