/*
 * tests/fuzz/ -- libFuzzer harnesses over the public API (include/internlm.h),
 * one per loader or parser; docs/reliability.md lists them and how to run
 * them (`make fuzz`, `make fuzz-regress`).
 *
 * fuzz.h -- what the harnesses share: a private temporary directory per
 * process, writing the input there as one file or as several ("packed"
 * inputs, below), a memory cap through the library's allocator hook, small
 * assets made with the public API, and a seed mode.
 *
 * Packed inputs hold several files, like `head` prints them:
 *
 *     ==> config.json\n<bytes>\n==> model.safetensors\n<bytes>
 *
 * A file's bytes run up to the next "\n==> ".  Names are [A-Za-z0-9._-]
 * with at most one '/' (one directory level, for checkpoints); a bad name
 * skips its file.  An input that does not start with "==> " is one file
 * with the harness's default name.
 */
#ifndef ILM_FUZZ_H
#define ILM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "internlm.h"

#define FUZZ_PATH_MAX 4096

/* The process's private directory (mkdtemp under $TMPDIR or /tmp,
 * "ilm-fuzz-<pid>-XXXXXX"), made on the first call and removed at exit or,
 * when the process did not exit normally, by the next harness to start. */
const char *fuzz_dir(void);

/* out = a "/" b (both under FUZZ_PATH_MAX together). */
void fuzz_join(char *out, const char *a, const char *b);

/* Writes n bytes to path (replacing it); 0 on success. */
int fuzz_write(const char *path, const void *p, size_t n);

/* Makes dir (if missing) and empties it. */
void fuzz_reset_dir(const char *dir);

/* Writes a packed input into dir (emptied first); @return the number of
 * files written. */
int fuzz_unpack(const char *dir, const uint8_t *data, size_t size, const char *default_name);

/* The same without emptying dir first: the input's files replace or join
 * those already there. */
int fuzz_unpack_over(const char *dir, const uint8_t *data, size_t size, const char *default_name);

/* Packs the regular files of dir and of its subdirectories (one level) into
 * the file out, the format fuzz_unpack reads; 0 on success. */
int fuzz_pack_dir(const char *dir, const char *out);

/* The file's bytes (malloc; NULL when unreadable), with its size. */
uint8_t *fuzz_slurp(const char *path, size_t *size);

/* Installs an allocator hook that refuses a single allocation over 256 MiB
 * and more than 1 GiB live in all: an input that asks the library for a huge
 * buffer then meets ILM_ERR_NOMEM, which must be handled cleanly, instead of
 * the fuzzer's out-of-memory stop. */
void fuzz_limit_memory(void);

/* A progress callback that cancels at its first call: a valid config then
 * costs one step of work, not a whole run. */
int fuzz_cancel(void *user, const char *stage, uint64_t done, uint64_t total);

/* Writes a tiny LLaMA model directory (ilm_model_create + ilm_model_save:
 * hidden 8, one layer, two heads, tied embeddings), or InternLM2's with
 * `internlm2`, with `vocab` ids; 0 on success. */
int fuzz_tiny_model(const char *dir, int internlm2, int vocab);

/* A tokenizer.model to use: $ILM_SHARED_DATA/tokenizers/internlm2.model
 * when `real` and present, else the 2000-piece fixture of the tokenizer
 * trainer (tests/fixtures/tokenizer/train/tokenizer.model). */
const char *fuzz_spm_path(int real);

/* $ILM_FUZZ_SEEDS: when set, LLVMFuzzerInitialize writes seed inputs made
 * with the library into that directory and exits (make fuzz-seeds). */
const char *fuzz_seed_dir(void);

/* Writes a seed file `name` into the seed directory; 0 on success. */
int fuzz_seed(const char *name, const void *p, size_t n);

/* Uses a tokenizer that loaded: encodes a fixed text with every flag,
 * decodes the ids back, streams them through a detokenizer, reads info. */
void fuzz_use_tokenizer(const ilm_tokenizer *t);

/* Uses a model that loaded: info, its tokenizer, and a session that
 * evaluates two ids (so every mapped tensor is read). */
void fuzz_use_model(const ilm_model *m);

/* Fails the run (abort) with a message: a broken invariant of the API. */
void fuzz_fail(const char *what, const char *detail);

#endif /* ILM_FUZZ_H */
