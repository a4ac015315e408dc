/*
 * internlm.h -- the public interface of libinternlm.
 *
 * libinternlm is an embeddable C11 library for the whole life of a large
 * language model in the InternLM ecosystem: data (clean, dedup, tokenize,
 * pack), pretraining, fine-tuning (SFT, LoRA, QLoRA), evaluation, deployment
 * (KV-cache inference, batching, a server) and agents.  This header is the
 * only public header and is meant to be read top to bottom: the conventions
 * first, then the core utilities, then one section per handle in pipeline
 * order (corpus, tokenizer, model, session, trainer, evaluator, agent, bench).
 *
 * Conventions that hold for every function below:
 *
 *  - Names are ilm_<object>_<verb>.  Every handle is opaque.
 *  - Functions that can fail return an ilm_status; ILM_OK (0) is success and
 *    every error is negative.  After a failure, ilm_last_error() returns a
 *    message for the calling thread that says what failed and on what.
 *  - Constructors hand the new object back through an out parameter and
 *    leave it NULL on failure.  Destructors return void and accept NULL.
 *  - Strings and buffers that the library allocates for the caller are freed
 *    with ilm_free().  Each function says who owns what.
 *  - Configuration is JSON text, validated strictly: an unknown key or a value
 *    of the wrong type is ILM_ERR_CONFIG with a message naming the key path.
 *  - The library never calls exit() or abort() and never prints, unless a log
 *    callback (ilm_set_log_callback) asks for its messages.
 *  - Threads: every function in the core sections (version to devices) may
 *    be called from any thread unless its comment says otherwise.  Each
 *    handle section opens with its rule: tokenizers, corpora and models are
 *    immutable after loading and may be shared by any number of threads;
 *    each detokenizer, session, trainer, evaluator and agent is used by one
 *    thread at a time (different ones may run in different threads at once).
 *  - Ownership: a pointer returned as const (a piece, a tokenizer of a model,
 *    logits) belongs to the object it came from and stays valid as long as
 *    that object, or until the call the comment names.
 *
 * ABI policy (docs/ABI.md): within one major version the ABI only grows.
 * Status values are pinned forever; new behaviour gets new symbols.  The
 * last section (experimental) is outside this promise until it moves up.
 */
#ifndef INTERNLM_H
#define INTERNLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ILM_API marks a symbol exported from the shared library.  The library is
 * built with -fvisibility=hidden, so only what carries ILM_API (and matches
 * the linker version script's ilm_* pattern) is visible to users. */
#if defined(_WIN32)
#  if defined(ILM_BUILDING_LIBRARY)
#    define ILM_API __declspec(dllexport)
#  else
#    define ILM_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define ILM_API __attribute__((visibility("default")))
#else
#  define ILM_API
#endif

/* ===================================================================== */
/*  Version                                                              */
/* ===================================================================== */

#define ILM_VERSION_MAJOR 0
#define ILM_VERSION_MINOR 1
#define ILM_VERSION_PATCH 0
#define ILM_VERSION_NUMBER \
    (ILM_VERSION_MAJOR * 10000 + ILM_VERSION_MINOR * 100 + ILM_VERSION_PATCH)

/*! ilm_version() : any thread.
 *  @return the version of the library actually linked, as
 *          MAJOR*10000 + MINOR*100 + PATCH.  Compare it with
 *          ILM_VERSION_NUMBER to detect a header/library mismatch. */
ILM_API unsigned ilm_version(void);

/*! ilm_version_string() :
 *  @return the version as "MAJOR.MINOR.PATCH"; a static string, never freed. */
ILM_API const char *ilm_version_string(void);

/*! ilm_build_info() :
 *  @return a static JSON object describing how the library was built:
 *          {"version", "compiler", "openmp", "blas", "cuda"}.
 *          Never freed.  Handy for bug reports and `internlm --version`. */
ILM_API const char *ilm_build_info(void);

/* ===================================================================== */
/*  Status codes                                                         */
/* ===================================================================== */

/* The table below is the single definition of every status: its name, its
 * value and its one-line meaning.  Values are pinned: they are never
 * renumbered or reused, new codes are added at the end. */
#define ILM_STATUS_MAP(X)                                                     \
    X(ILM_OK,               0,  "success")                                    \
    X(ILM_ERR_INVALID_ARG, -1,  "invalid argument")                           \
    X(ILM_ERR_NOMEM,       -2,  "out of memory")                              \
    X(ILM_ERR_IO,          -3,  "input/output error")                         \
    X(ILM_ERR_FORMAT,      -4,  "malformed or unsupported file contents")     \
    X(ILM_ERR_CONFIG,      -5,  "invalid configuration")                      \
    X(ILM_ERR_UNSUPPORTED, -6,  "not supported by this build or library")     \
    X(ILM_ERR_BACKEND,     -7,  "compute backend failure")                    \
    X(ILM_ERR_COMM,        -8,  "communication failure")                      \
    X(ILM_ERR_CANCELLED,   -9,  "cancelled by the caller")                    \
    X(ILM_ERR_NO_DEVICE,   -10, "no usable device")                           \
    X(ILM_ERR_STATE,       -11, "call not valid in the object's state")       \
    X(ILM_ERR_RANGE,       -12, "value or size out of range")                 \
    X(ILM_ERR_NOT_FOUND,   -13, "not found")                                  \
    X(ILM_ERR_INTERNAL,    -14, "internal error (a bug in libinternlm)")

typedef enum ilm_status {
#define ILM_STATUS_ENUM_(name, value, text) name = value,
    ILM_STATUS_MAP(ILM_STATUS_ENUM_)
#undef ILM_STATUS_ENUM_
} ilm_status;

/*! ilm_status_str() :
 *  @return the name of a status ("ILM_ERR_CONFIG"), or "ILM_ERR_UNKNOWN" for a
 *          value this version does not know.  Static string, never freed. */
ILM_API const char *ilm_status_str(ilm_status s);

/*! ilm_status_desc() :
 *  @return the one-line meaning of a status ("invalid configuration"), or
 *          "unknown status"; static string, never freed. */
ILM_API const char *ilm_status_desc(ilm_status s);

/*! ilm_last_error() :
 *  @return the detailed message of the calling thread's last failure, e.g.
 *          "config: unknown key 'bench.sizez'".  The string belongs to the
 *          thread and stays valid until that thread's next failing call.
 *          Returns "" when the thread has not failed yet.  A successful
 *          call does not clear it: read it only right after a failure. */
ILM_API const char *ilm_last_error(void);

/* ===================================================================== */
/*  Memory                                                               */
/* ===================================================================== */

/*! ilm_allocator :
 *  Hooks through which the library allocates all host memory it owns,
 *  including what its dependencies allocate for it: cJSON (through
 *  cJSON_InitHooks, which is process-wide: a program that uses libcjson
 *  itself gets its allocations through the hooks too), PCRE2 (a general
 *  context) and utf8proc (normalized text lands in the library's buffers).
 *  Not covered: OpenBLAS's and OpenMP's internal buffers, PCRE2's JIT code
 *  (its own executable mappings), CUDA device memory, and memory-mapped
 *  model files.  `user` is passed back to each hook.  Sizes are in bytes. */
typedef struct ilm_allocator {
    void *(*malloc_fn)(void *user, size_t size);
    void *(*realloc_fn)(void *user, void *ptr, size_t size);
    void  (*free_fn)(void *user, void *ptr);
    void  *user;
} ilm_allocator;

/*! ilm_set_allocator() :
 *  Installs allocator hooks (all three functions must be set), or restores
 *  the C library's malloc/realloc/free when `a` is NULL.  The struct is
 *  copied.  Call it before creating any object, and do not change it while
 *  objects or library-allocated buffers exist: memory is released through
 *  the hooks installed at the time of release.  Not thread-safe with other
 *  library calls.
 *  @return ILM_OK, or ILM_ERR_INVALID_ARG if a hook is missing. */
ILM_API ilm_status ilm_set_allocator(const ilm_allocator *a);

/*! ilm_free() :
 *  Frees a string or buffer that the library allocated for the caller
 *  (each function says when), through the allocator hooks.  NULL is
 *  accepted.  Any thread, not necessarily the one that got the buffer.
 *  @return nothing. */
ILM_API void ilm_free(void *ptr);

/* ===================================================================== */
/*  Logging, progress and threads                                        */
/* ===================================================================== */

typedef enum ilm_log_level {
    ILM_LOG_ERROR = 0,
    ILM_LOG_WARN  = 1,
    ILM_LOG_INFO  = 2,
    ILM_LOG_DEBUG = 3
} ilm_log_level;

/*! ilm_log_fn :
 *  Receives one complete message (no trailing newline) at a level.  May be
 *  called from any thread the library runs work on, so it must be
 *  thread-safe.  `msg` is valid only during the call. */
typedef void (*ilm_log_fn)(void *user, ilm_log_level level, const char *msg);

/*! ilm_set_log_callback() :
 *  Routes library messages at `max_level` or more severe to `fn`.  With fn
 *  NULL (the default) the library is silent.  Not thread-safe with other
 *  library calls: set it once at start-up.
 *  @return nothing. */
ILM_API void ilm_set_log_callback(ilm_log_fn fn, void *user,
                                  ilm_log_level max_level);

/*! ilm_progress_fn :
 *  Called by long-running functions to report progress: `stage` names the
 *  current phase ("gemm 1024", "tokenize"), `done` of `total` units are
 *  finished (total 0 when unknown).  Return 0 to continue; any non-zero
 *  value cancels the work, which then returns ILM_ERR_CANCELLED.  Called on
 *  the thread that called the long-running function. */
typedef int (*ilm_progress_fn)(void *user, const char *stage,
                               uint64_t done, uint64_t total);

/*! ilm_set_num_threads() :
 *  Sets the default number of CPU threads for the library's parallel work:
 *  what a model, session or trainer uses when its config has no "threads"
 *  (a handle's own "threads" is never affected by this call).  n <= 0
 *  restores the default: the number of available cores.  Affects work
 *  started afterwards, from any thread; results never depend on it (every
 *  reduction has a fixed order).  The library runs the BLAS on one thread
 *  inside its own thread team (openblas_set_num_threads(1) on first use),
 *  so OpenBLAS's own pool never competes for the cores.
 *
 *  The environment variable ILM_CPU=generic|avx2|avx512 limits the CPU
 *  kernels to that instruction-set level (default: the machine's best; a
 *  level the CPU lacks falls back to its best with a log line), so that
 *  every kernel path can be tested on any machine.
 *  @return nothing. */
ILM_API void ilm_set_num_threads(int n);

/*! ilm_get_num_threads() :
 *  @return the number of CPU threads parallel work will use. */
ILM_API int ilm_get_num_threads(void);

/* ===================================================================== */
/*  Devices                                                              */
/* ===================================================================== */

/*! ilm_cuda_device_count() :
 *  Counts the CUDA GPUs this process can use.
 *  @return ILM_OK with *count >= 1;
 *          ILM_ERR_NO_DEVICE (and *count = 0) when CUDA is built in but no
 *          GPU or driver is usable, with the CUDA runtime's reason in
 *          ilm_last_error();
 *          ILM_ERR_UNSUPPORTED (and *count = 0) when the library was built
 *          without CUDA. */
ILM_API ilm_status ilm_cuda_device_count(int *count);

/*! ilm_cuda_device_info() :
 *  Describes GPU `index` as a JSON object {"index", "name",
 *  "compute_capability", "total_memory", "multiprocessors", "cuda_runtime",
 *  "cublas", "cublaslt", "nccl", "probe_kernel"}, after launching a small
 *  kernel on it and checking its output ("probe_kernel": "ok").  *json is
 *  allocated by the library: ilm_free() it.
 *  @return ILM_OK, ILM_ERR_RANGE for a bad index, or the statuses of
 *          ilm_cuda_device_count(). */
ILM_API ilm_status ilm_cuda_device_info(int index, char **json);

/* ===================================================================== */
/*  Handles                                                              */
/* ===================================================================== */

/* Every object the library hands out is one of these opaque handles.  Their
 * functions are declared in the sections below as they are implemented. */
typedef struct ilm_corpus    ilm_corpus;    /* a corpus: ingest to shards    */
typedef struct ilm_tokenizer ilm_tokenizer; /* text <-> token ids            */
typedef struct ilm_model     ilm_model;     /* weights + architecture        */
typedef struct ilm_session   ilm_session;   /* inference context + KV cache  */
typedef struct ilm_trainer   ilm_trainer;   /* optimizer, schedule, data     */
typedef struct ilm_evaluator ilm_evaluator; /* benchmarks and metrics        */
typedef struct ilm_agent     ilm_agent;     /* tool-calling loop             */
typedef struct ilm_comm      ilm_comm;      /* communicator for collectives  */

/* ===================================================================== */
/*  Tokenizer                                                            */
/* ===================================================================== */

/* An ilm_tokenizer turns text into token ids and back exactly as the
 * reference libraries do for the files real models ship: SentencePiece BPE
 * (sentencepiece) and byte-level BPE (Hugging Face tokenizers).  It is
 * immutable after loading: any number of threads may encode and decode with
 * one tokenizer at the same time. */

/* Flags for ilm_tokenizer_encode(). */
#define ILM_TOKENIZE_SPECIAL 0x1u /* recognise special / added tokens such as
                                     "<|im_start|>" written in the text; without
                                     it such text is encoded as plain text, so
                                     user input cannot inject control tokens */
#define ILM_TOKENIZE_BOS     0x2u /* prepend the BOS token (if the vocabulary
                                     has one) */
#define ILM_TOKENIZE_EOS     0x4u /* append the EOS token (if any) */

/* Flags for ilm_tokenizer_decode(). */
#define ILM_DECODE_SKIP_SPECIAL 0x1u /* render control / special tokens as
                                        nothing (SentencePiece always does so
                                        for control pieces) */

/*! ilm_tokenizer_load() :
 *  Loads a tokenizer from `path`, which is one of
 *   - a SentencePiece model file (tokenizer.model: BPE models),
 *   - a Hugging Face tokenizer.json (byte-level BPE),
 *   - a Hugging Face model directory (its tokenizer.model or tokenizer.json,
 *     plus tokenizer_config.json for added and special tokens),
 *   - a GGUF file (its tokenizer.ggml.* vocabulary: "llama" is
 *     SentencePiece BPE, "gpt2" byte-level BPE).
 *  @return ILM_OK; ILM_ERR_IO if the file cannot be read; ILM_ERR_FORMAT if it
 *          is malformed (the message names the file and what is wrong);
 *          ILM_ERR_UNSUPPORTED for a tokenizer kind this library does not
 *          implement (SentencePiece unigram, WordPiece, ...), never a wrong
 *          encoding.  *out is NULL on failure; free with ilm_tokenizer_free. */
ILM_API ilm_status ilm_tokenizer_load(const char *path, ilm_tokenizer **out);

/*! ilm_tokenizer_free() : frees the tokenizer; NULL is accepted.  Not while
 *  another thread uses it, nor before the detokenizers, corpora and models
 *  that use it are freed.  @return nothing. */
ILM_API void ilm_tokenizer_free(ilm_tokenizer *tok);

/*! ilm_tokenizer_encode() :
 *  Encodes `len` bytes of UTF-8 `text` (invalid bytes are handled as the
 *  reference library does) into token ids.  Without flags it matches
 *  sentencepiece's encode(text) and tokenizers' encode(text,
 *  add_special_tokens=False) with special tokens split as text.
 *  @flags : ILM_TOKENIZE_* or 0.
 *  @ids, @n_ids : on ILM_OK, an array of *n_ids ids allocated by the library
 *                 (free with ilm_free; non-NULL even when empty).
 *  @return ILM_OK, ILM_ERR_INVALID_ARG or ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_tokenizer_encode(const ilm_tokenizer *tok, const char *text,
                                        size_t len, unsigned flags,
                                        int32_t **ids, size_t *n_ids);

/*! ilm_tokenizer_decode() :
 *  Turns ids back into text, as the reference decoders do: "▁" becomes a
 *  space, byte-fallback pieces are joined back into UTF-8, the dummy prefix
 *  space is removed, byte-level pieces are mapped back to bytes.  Bytes that
 *  do not form valid UTF-8 are replaced by U+FFFD.
 *  @flags : ILM_DECODE_* or 0.
 *  @text, @len : on ILM_OK, a NUL-terminated string of *len bytes allocated
 *                by the library (ilm_free).
 *  @return ILM_OK, ILM_ERR_RANGE for an id outside the vocabulary,
 *          ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_tokenizer_decode(const ilm_tokenizer *tok, const int32_t *ids,
                                        size_t n_ids, unsigned flags,
                                        char **text, size_t *len);

/*! ilm_tokenizer_vocab_size() : @return the number of ids (max id + 1). */
ILM_API int32_t ilm_tokenizer_vocab_size(const ilm_tokenizer *tok);

/*! ilm_tokenizer_bos() / ilm_tokenizer_eos() :
 *  @return the BOS / EOS id the files name, or -1 if there is none. */
ILM_API int32_t ilm_tokenizer_bos(const ilm_tokenizer *tok);
ILM_API int32_t ilm_tokenizer_eos(const ilm_tokenizer *tok);

/*! ilm_tokenizer_piece() :
 *  @return the piece of `id` as stored in the vocabulary ("▁the",
 *          "<0x0A>", "Ġthe"), or NULL for an id out of range.  The string
 *          belongs to the tokenizer. */
ILM_API const char *ilm_tokenizer_piece(const ilm_tokenizer *tok, int32_t id);

/*! ilm_tokenizer_piece_id() :
 *  @return the id of the piece (or added token) `piece`, or -1. */
ILM_API int32_t ilm_tokenizer_piece_id(const ilm_tokenizer *tok, const char *piece);

/*! ilm_tokenizer_info() :
 *  Describes the tokenizer as JSON: {"kind": "sentencepiece-bpe" |
 *  "byte-level-bpe", "vocab_size", "bos", "eos", "unk", "add_bos",
 *  "add_eos", ...options of the kind}.  *json is allocated (ilm_free).
 *  @return ILM_OK, ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_tokenizer_info(const ilm_tokenizer *tok, char **json);

/* A streaming decoder turns ids into text one at a time, for token-by-token
 * generation: it emits only complete UTF-8 characters, holding back the
 * bytes of a character split across tokens.  The concatenation of
 * everything it emits equals ilm_tokenizer_decode() of all the ids.  Used by
 * one thread at a time; the tokenizer must outlive it. */
typedef struct ilm_detokenizer ilm_detokenizer;

/*! ilm_detokenizer_create() : @flags ILM_DECODE_*; free with
 *  ilm_detokenizer_free.
 *  @return ILM_OK, ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM; *out NULL on
 *          failure. */
ILM_API ilm_status ilm_detokenizer_create(const ilm_tokenizer *tok, unsigned flags,
                                          ilm_detokenizer **out);

/*! ilm_detokenizer_push() :
 *  Adds one id.  *text (not NUL-terminated) and *len receive the text that
 *  became complete, possibly empty; it stays valid until the next call on
 *  this decoder.  @return ILM_OK, ILM_ERR_RANGE for a bad id. */
ILM_API ilm_status ilm_detokenizer_push(ilm_detokenizer *d, int32_t id,
                                        const char **text, size_t *len);

/*! ilm_detokenizer_flush() :
 *  Emits what is held back (an incomplete character becomes U+FFFD) and
 *  resets the decoder for a new sequence.  *text (not NUL-terminated)
 *  stays valid until the next call on this decoder.
 *  @return ILM_OK, ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_detokenizer_flush(ilm_detokenizer *d, const char **text,
                                         size_t *len);

/*! ilm_detokenizer_free() : NULL is accepted.  @return nothing. */
ILM_API void ilm_detokenizer_free(ilm_detokenizer *d);

/*! ilm_tokenizer_train() :
 *  Learns a SentencePiece-BPE vocabulary from text files and writes a
 *  tokenizer.model that the sentencepiece library loads and that encodes
 *  the same ids there and in this library.
 *  @config : JSON.  "input": [paths] (required), "out": path (required),
 *            "vocab_size": integer (required), "byte_fallback": bool
 *            (default true), "split_digits": bool (default true),
 *            "user_defined_symbols": [strings], "character_coverage":
 *            number in (0, 1] (default 0.9995), "add_dummy_prefix": bool
 *            (default false), "max_sentence_length": bytes (default 4192),
 *            "input_sentence_size": lines to sample, 0 = all (default 0),
 *            "seed": integer.
 *  @progress, @user : optional progress callback, which may cancel.
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_IO, ILM_ERR_CANCELLED. */
ILM_API ilm_status ilm_tokenizer_train(const char *config, ilm_progress_fn progress,
                                       void *user);

/* ===================================================================== */
/*  Corpus                                                               */
/* ===================================================================== */

/* The data stage: raw text and chat records in, token shards out.  A
 * corpus directory holds shard files (docs/formats.md), the tokenizer,
 * report.json and the manifest corpus.json, which is written last.
 * Threads: builds of different corpora may run at once; an open corpus is
 * read-only and may be shared by any number of threads. */

/*! ilm_corpus_build() :
 *  Runs ingest -> clean -> quality filters -> dedup -> tokenize and writes
 *  the shards.  Text documents become BOS (when the tokenizer adds one) +
 *  ids + EOS; chat records are encoded with the InternLM2 template and a
 *  loss mask (docs/formats.md).  Deterministic for a config: the output
 *  does not depend on the thread count.
 *  @config : JSON.  "inputs": [files or directories] (required), "output":
 *            directory (required; created, or empty), "tokenizer": path
 *            (required), "mode": "auto" (default: from the first record) |
 *            "pretrain" | "sft", "overwrite": bool (replace the corpus in a
 *            non-empty output directory; only once the new build has
 *            succeeded: a failed build leaves the old corpus as it was),
 *            "max_length": SFT sample tokens
 *            (0 = no limit), "shard_tokens": tokens per shard (2^26),
 *            "ingest", "clean": objects, "filter", "dedup": objects or
 *            false (off); their keys are listed in docs/corpus.md.
 *  @progress, @user : optional; stage "corpus", done / total = bytes of
 *            the input files read (as stored: compressed for .gz).
 *  @report : optional; on ILM_OK the run's report as JSON (ilm_free), also
 *            written to report.json: per stage "documents_in",
 *            "documents_out", "bytes_in", "bytes_out" and "dropped"
 *            {reason: count}, with in = out + dropped for every stage.
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_IO, ILM_ERR_UNSUPPORTED (chat
 *          data with a tokenizer lacking <|im_start|>), ILM_ERR_CANCELLED,
 *          ILM_ERR_NOMEM.  Malformed input records are counted, not fatal. */
ILM_API ilm_status ilm_corpus_build(const char *config, ilm_progress_fn progress,
                                    void *user, char **report);

/*! ilm_corpus_open() :
 *  Opens a corpus directory: the manifest, every shard (sizes checked
 *  against their headers) and the tokenizer.  A lying or truncated shard
 *  or manifest is ILM_ERR_FORMAT naming the file.  The shards' contents
 *  (CRC-32, ids inside the vocabulary, mask bytes 0 or 1) are verified
 *  once per shard before its first token is read, so ilm_corpus_document,
 *  ilm_corpus_info and training can fail with ILM_ERR_FORMAT naming the
 *  shard.  Free with ilm_corpus_free.
 *  @return ILM_OK, ILM_ERR_IO, ILM_ERR_FORMAT, ILM_ERR_NOMEM, and the
 *          tokenizer loader's errors; *out NULL on failure. */
ILM_API ilm_status ilm_corpus_open(const char *dir, ilm_corpus **out);
/*! ilm_corpus_free() : NULL is accepted.  @return nothing. */
ILM_API void ilm_corpus_free(ilm_corpus *c);

/*! ilm_corpus_info() : the manifest plus "stats" (documents, tokens,
 *  target_tokens, min/max/mean_document_tokens, unigram_entropy: the
 *  entropy in nats of the token frequencies, the loss a model that knows
 *  only those frequencies gets) as JSON (ilm_free).
 *  @return ILM_OK, ILM_ERR_FORMAT (a shard fails verification),
 *          ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_corpus_info(const ilm_corpus *c, char **json);

/*! ilm_corpus_num_documents() :
 *  @return the documents in all shards together (0 for NULL). */
ILM_API uint64_t ilm_corpus_num_documents(const ilm_corpus *c);

/*! ilm_corpus_document() :
 *  Copies document i's ids (and, when mask is not NULL, its loss mask: 1 =
 *  training target; all ones for pretraining data) into arrays allocated
 *  by the library (ilm_free), and their length into *n.
 *  @return ILM_OK, ILM_ERR_RANGE when i is past the end, ILM_ERR_FORMAT
 *          when its shard fails verification (ilm_corpus_open),
 *          ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_corpus_document(const ilm_corpus *c, uint64_t i, int32_t **ids,
                                       uint8_t **mask, size_t *n);

/*! ilm_corpus_tokenizer() :
 *  @return the corpus's tokenizer, owned by it (valid until
 *          ilm_corpus_free). */
ILM_API const ilm_tokenizer *ilm_corpus_tokenizer(const ilm_corpus *c);

/* ===================================================================== */
/*  Model                                                                */
/* ===================================================================== */

/* An ilm_model is an architecture and its weights: LLaMA-shaped models
 * (SmolLM2, LLaMA-2/3, Mistral, InternLM3) and InternLM2.  Weights are
 * memory-mapped from the files, not copied.  A model is immutable after
 * loading: any number of threads may use it (through their own sessions)
 * at once.  Free it after every session created from it. */

/*! ilm_model_load() :
 *  Loads a Hugging Face model directory (config.json + *.safetensors, with
 *  model.safetensors.index.json when sharded; its tokenizer files too) or a
 *  GGUF file.  @config : JSON or NULL: "threads" (the default for sessions
 *  on this model; 0 or absent: ilm_get_num_threads() at each call),
 *  "adapter" (a PEFT LoRA adapter directory, adapter_config.json +
 *  adapter_model.safetensors, applied to every session without merging:
 *  ilm_model_save then writes the merged weights), "quantize"
 *  ({"quant_type": "nf4" | "fp4", "blocksize": 64, "double_quant": true}:
 *  the layers' linears quantized to bitsandbytes' 4-bit format at load,
 *  before the adapter; ilm_model_save then writes bitsandbytes' layout).
 *  A directory saved by transformers + bitsandbytes in 4 bits (its
 *  config.json's quantization_config) loads as it is.
 *  @return ILM_OK; ILM_ERR_IO; ILM_ERR_FORMAT naming the file and tensor
 *          (missing tensor, shape contradicting config.json, bad header,
 *          an adapter tensor that fits no linear layer of the model);
 *          ILM_ERR_CONFIG for a quantization_config this library does
 *          not read (naming the key); ILM_ERR_UNSUPPORTED for an
 *          architecture this library does not run.  Free with
 *          ilm_model_free. */
ILM_API ilm_status ilm_model_load(const char *path, const char *config, ilm_model **out);
/*! ilm_model_free() : NULL is accepted; every session over the model must
 *  be freed first.  @return nothing. */
ILM_API void ilm_model_free(ilm_model *m);

/*! ilm_model_create() :
 *  A new fp32 model from Hugging Face config.json text, with deterministic
 *  random weights: normal(0, 0.02) for matrices (transformers' default
 *  initializer_range), ones for norms; each tensor draws from its own
 *  Philox stream of `seed`, so the weights depend on the seed alone.
 *  For pretraining from scratch.  Free with ilm_model_free.
 *  @return ILM_OK, ILM_ERR_CONFIG (the message names the config key),
 *          ILM_ERR_UNSUPPORTED, ILM_ERR_NOMEM; *out NULL on failure. */
ILM_API ilm_status ilm_model_create(const char *config_json, uint64_t seed, ilm_model **out);

/*! ilm_model_save() :
 *  Writes the model as a Hugging Face directory (created if missing):
 *  config.json and model.safetensors (f32/f16/bf16 weights as stored;
 *  quantized ones dequantized to f32), which transformers loads as
 *  LlamaForCausalLM (or InternLM2ForCausalLM with its remote code) and
 *  ilm_model_load reads back.  Each file is written atomically.
 *  @return ILM_OK, ILM_ERR_IO, ILM_ERR_UNSUPPORTED for GGUF LLaMA models
 *          (their Q/K rows are permuted for adjacent-pair RoPE). */
ILM_API ilm_status ilm_model_save(const ilm_model *m, const char *dir);

/*! ilm_model_quantize() :
 *  Writes the model at `in` (anything ilm_model_load reads) in another
 *  type.  @config : JSON: "format" (required): "nf4" or "fp4" -- every
 *  linear of the layers in bitsandbytes' 4-bit format ("blocksize" 64,
 *  "double_quant" true), `out` a Hugging Face directory with its
 *  quantization_config that transformers + bitsandbytes load; or "q8_0",
 *  "q4_0", "q4_1" -- `in` a GGUF file whose matrices are requantized as
 *  ggml's reference quantizers do (its metadata and tokenizer carried
 *  over), `out` a GGUF file llama.cpp loads.  "threads" as for
 *  ilm_model_load.  Tensors are converted one at a time.
 *  @return ILM_OK; ILM_ERR_CONFIG; ILM_ERR_UNSUPPORTED for GGUF output from
 *          a Hugging Face directory; the loaders' and writers' errors. */
ILM_API ilm_status ilm_model_quantize(const char *in, const char *out, const char *config);

/*! ilm_model_info() : the architecture and memory as JSON (ilm_free).
 *  @return ILM_OK, ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_model_info(const ilm_model *m, char **json);

/*! ilm_model_memory() :
 *  @return the bytes of weights (mapped) and buffers the model owns. */
ILM_API uint64_t ilm_model_memory(const ilm_model *m);

/*! ilm_model_tokenizer() :
 *  @return the tokenizer that came with the model files, owned by the
 *          model (valid until ilm_model_free); NULL when there was none. */
ILM_API const ilm_tokenizer *ilm_model_tokenizer(const ilm_model *m);

/*! ilm_model_chat_template() :
 *  @return the built-in chat template the model uses: "internlm2",
 *          "chatml", "llama2" or "llama3" (static string). */
ILM_API const char *ilm_model_chat_template(const ilm_model *m);

/* ===================================================================== */
/*  Session                                                              */
/* ===================================================================== */

/* An ilm_session is one sequence being evaluated: a KV cache sized by a
 * context length, the ids in it, and the logits after the last one.  Use a
 * session from one thread at a time. */

/*! ilm_session_create() :
 *  @config : JSON or NULL: "context" (positions, default the model's
 *            maximum, at most 2048), "threads" (default: the model's, else
 *            ilm_get_num_threads() at each call).  Each session computes on
 *            its own backend instance (threads and scratch), so sessions on
 *            one shared model may run in different threads at once, and
 *            each result equals the one it gives alone, bit for bit.
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_NOMEM.  Free with
 *          ilm_session_free. */
ILM_API ilm_status ilm_session_create(const ilm_model *m, const char *config,
                                      ilm_session **out);
/*! ilm_session_free() : NULL is accepted.  @return nothing. */
ILM_API void ilm_session_free(ilm_session *s);

/*! ilm_session_eval() :
 *  Appends n ids (a whole prompt in one call, or one generated id) and
 *  runs them; *logits (optional) points at the [vocab] logits after the
 *  last id, owned by the session and valid until its next call.
 *  @return ILM_OK, ILM_ERR_RANGE when the context would overflow or an id
 *          is outside the vocabulary. */
ILM_API ilm_status ilm_session_eval(ilm_session *s, const int32_t *ids, size_t n,
                                    const float **logits);

/*! ilm_session_eval_all() : like ilm_session_eval, writing the logits of
 *  every appended position into logits[n, vocab] (the caller's buffer).
 *  @return as ilm_session_eval. */
ILM_API ilm_status ilm_session_eval_all(ilm_session *s, const int32_t *ids, size_t n,
                                        float *logits);

/*! ilm_session_logits() :
 *  @return the [vocab] logits after the last id (owned by the session,
 *          valid until its next call), or NULL when there are none. */
ILM_API const float *ilm_session_logits(const ilm_session *s);

/*! ilm_session_length() / ilm_session_context() :
 *  @return the ids the session holds / its capacity in positions. */
ILM_API size_t ilm_session_length(const ilm_session *s);
ILM_API size_t ilm_session_context(const ilm_session *s);

/*! ilm_session_tokens() : the ids in the session (*ids owned by it, valid
 *  until its next call).
 *  @return their count. */
ILM_API size_t ilm_session_tokens(const ilm_session *s, const int32_t **ids);

/*! ilm_session_truncate() : keeps the first n ids (to reuse a prefix);
 *  n = 0 resets.  The logits are gone until the next evaluation.
 *  @return ILM_OK, ILM_ERR_RANGE when n exceeds the length. */
ILM_API ilm_status ilm_session_truncate(ilm_session *s, size_t n);

/*! ilm_session_logprobs() :
 *  Appends ids and writes out[i] = log p(ids[i] | everything before); for
 *  i = 0 that needs ids already in the session (else out[0] is NaN).
 *  `out` is the caller's buffer of n doubles.
 *  @return as ilm_session_eval. */
ILM_API ilm_status ilm_session_logprobs(ilm_session *s, const int32_t *ids, size_t n,
                                        double *out);

/*! ilm_session_score() :
 *  The evaluator's primitive: the sum of log p(cont | ctx) over the
 *  continuation's ids and whether greedy decoding would have produced it.
 *  The session's cached prefix shared with ctx is reused; afterwards the
 *  session holds ctx + cont.
 *  @return ILM_OK, ILM_ERR_INVALID_ARG (no continuation), ILM_ERR_RANGE
 *          (past the context, or an id outside the vocabulary). */
ILM_API ilm_status ilm_session_score(ilm_session *s, const int32_t *ctx, size_t n_ctx,
                                     const int32_t *cont, size_t n_cont,
                                     double *sum_logprob, int *is_greedy);

/* ===================================================================== */
/*  Generation and chat                                                  */
/* ===================================================================== */

/*! ilm_text_fn :
 *  Receives generated text as it becomes final (complete UTF-8, never a
 *  part of a stop string).  Return non-zero to stop generating. */
typedef int (*ilm_text_fn)(void *user, const char *text, size_t len);

/*! ilm_session_generate() :
 *  Tokenizes `prompt`, appends it to the session and samples until an
 *  end-of-turn id, a stop string or max_tokens.  With `prompt` NULL nothing
 *  is appended: generation continues from the ids the session holds (a
 *  chat prompt from ilm_chat_encode() appended with ilm_session_eval()).
 *  @config : JSON or NULL: "max_tokens" (256), "temperature" (0.8; 0 is
 *            greedy), "top_k" (40), "top_p" (0.95), "min_p" (0.05),
 *            "repetition_penalty" (1.0), "repeat_last_n" (64), "seed" (0),
 *            "stop" ([strings]), "special" (false: recognise special
 *            tokens such as "<|im_start|>" written in the prompt; only
 *            for text the caller trusts whole, never for text that holds
 *            user input -- use ilm_chat_encode() for conversations),
 *            "add_bos" (the tokenizer's default).
 *  @on_text, @user : optional streaming callback.
 *  @text : optional; the whole generated text (ilm_free), without the stop
 *          string.
 *  A context that fills up ends the text as max_tokens does (the last id
 *  is then not appended).  The same seed, prompt and session state give
 *  the same text.
 *  @return ILM_OK (also when on_text stopped it), ILM_ERR_CONFIG,
 *          ILM_ERR_STATE (no tokenizer, or no prompt on an empty session),
 *          ILM_ERR_RANGE (the prompt does not fit the context),
 *          ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_session_generate(ilm_session *s, const char *prompt, const char *config,
                                        ilm_text_fn on_text, void *user, char **text);

/*! ilm_chat_encode() :
 *  The token ids of a conversation in the model's chat template, ending
 *  with the assistant's opening, ready for ilm_session_eval() and then
 *  ilm_session_generate(session, NULL, ...).  The template's markers ("<s>",
 *  "<|im_start|>", ...) are their control ids; the messages' roles and
 *  contents are plain text, so a message that contains "<|im_start|>" or
 *  "<|im_end|>" gets those characters, never the control ids (InternLM2's
 *  "name" attribute is read with special tokens, as its tool protocol
 *  writes name=<|plugin|>).  No BOS is added beyond what the template
 *  writes.
 *  @messages_json : JSON array of {"role", "content", "name"?}; roles
 *                   system, user, assistant, and environment for InternLM2.
 *  @ids, @n_ids : on ILM_OK, *n_ids ids allocated by the library (ilm_free;
 *                 non-NULL even when empty).
 *  @return ILM_OK, ILM_ERR_CONFIG (bad messages), ILM_ERR_STATE (no
 *          tokenizer), ILM_ERR_NOMEM.  Any thread; the model is not
 *          changed. */
ILM_API ilm_status ilm_chat_encode(const ilm_model *m, const char *messages_json,
                                   int32_t **ids, size_t *n_ids);

/*! ilm_chat_apply() :
 *  The same conversation as text (for display and logs), with the same
 *  rendering as ilm_chat_encode().  *prompt is allocated (ilm_free).  Text
 *  loses where the messages were: do not generate from it with "special":
 *  true, which would read a "<|im_start|>" inside a message as the
 *  control token; generate from ilm_chat_encode()'s ids instead.
 *  @return as ilm_chat_encode().  Any thread. */
ILM_API ilm_status ilm_chat_apply(const ilm_model *m, const char *messages_json,
                                  char **prompt);

/* ===================================================================== */
/*  Training                                                             */
/* ===================================================================== */

/* An ilm_trainer owns a model's fp32 training copy, AdamW state, the data
 * loader over a corpus directory (ilm_corpus_build) and the checkpoints.
 * One process, CPU; one thread uses a trainer at a time.  Config keys are
 * listed in docs/training.md. */

/*! ilm_trainer_create() :
 *  @config : JSON.  "data" (corpus directory, required), "steps"
 *            (required), exactly one of "model" (a model directory to
 *            continue from) and "model_config" (a config.json object: a new
 *            model initialised from "seed"), "mode" ("pretrain" | "sft":
 *            SFT needs "model" and masked chat shards), "batch" (8),
 *            "seqlen" (256), "grad_accum" (1), "optimizer" {"lr", "min_lr",
 *            "warmup_steps", "schedule", "total_steps" (= steps), "beta1",
 *            "beta2", "eps", "weight_decay", "clip_norm"}, "eval_data",
 *            "eval_interval", "eval_batches" (4), "checkpoint_dir",
 *            "checkpoint_interval" (0: only at the end), "keep_checkpoints"
 *            (3), "resume" (true: continue from the newest complete
 *            checkpoint), "recompute" (false), "log" (metrics JSONL,
 *            appended), "seed", "threads" (the trainer's own thread count;
 *            default ilm_get_num_threads() at each step; the trainer never
 *            changes the process's default).
 *  @return ILM_OK, ILM_ERR_CONFIG, the loaders' errors. */
ILM_API ilm_status ilm_trainer_create(const char *config, ilm_trainer **out);
/*! ilm_trainer_free() : NULL is accepted; sessions over
 *  ilm_trainer_model() must be freed first.  @return nothing. */
ILM_API void ilm_trainer_free(ilm_trainer *t);

/*! ilm_trainer_info() : JSON (ilm_free): "parameters", "step", "steps",
 *  "resumed_from" (-1 for a fresh start), "batch", "seqlen", "grad_accum",
 *  "tokens_per_step", "threads", "method" ("full", "lora", "qlora"),
 *  "base_type" (LoRA: the base's stored type) and "memory" {"base" (LoRA),
 *  "parameters", "gradients", "optimizer", "activations", "batches"} in
 *  bytes.
 *  @return ILM_OK, ILM_ERR_INVALID_ARG, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_trainer_info(const ilm_trainer *t, char **json);

/*! ilm_trainer_plan() :
 *  The memory a run of `config` (ilm_trainer_create's) will take, without
 *  making it: a model named is only mapped, a model_config only parsed.
 *  JSON (ilm_free): "method" ("full", "lora", "qlora"),
 *  "trainable_parameters", and "memory" in bytes: "base" (the frozen base
 *  of a LoRA / QLoRA run, 0 for full training) with "base_by_type",
 *  "parameters", "gradients", "optimizer", "activations" (as configured),
 *  "activations_recompute", "activations_no_recompute", "batches",
 *  "total", and "kv_cache_per_token" (a session over the model).
 *  @return ILM_OK, ILM_ERR_CONFIG, the loaders' errors. */
ILM_API ilm_status ilm_trainer_plan(const char *config, char **json);

/*! ilm_trainer_step() :
 *  One optimizer step over grad_accum micro-batches, then the evaluation
 *  and the checkpoint when their interval (or the last step) says so.  A
 *  non-finite loss or gradient norm skips the update (and is reported).
 *  @metrics : optional; JSON (ilm_free): "step", "steps", "loss", "lr",
 *             "grad_norm", "skipped", "targets", "tokens_seen", "seconds",
 *             "tokens_per_s", and "eval_loss" / "checkpoint" when done.
 *             The same line is appended to the "log" file, before the
 *             step's checkpoint is written; a resumed trainer first drops
 *             the log's lines after its checkpoint's step.
 *  @return ILM_OK; ILM_ERR_RANGE when "steps" steps are done already (a
 *          finished run does nothing); the loader's, graph's and
 *          checkpoint's errors. */
ILM_API ilm_status ilm_trainer_step(ilm_trainer *t, char **metrics);

/*! ilm_trainer_run() : steps until "steps" are done; progress stage
 *  "train", done / total = steps.
 *  @return ILM_OK (also when nothing was left to do), ILM_ERR_CANCELLED,
 *          the errors of ilm_trainer_step. */
ILM_API ilm_status ilm_trainer_run(ilm_trainer *t, ilm_progress_fn progress, void *user);

/*! ilm_trainer_evaluate() : the mean token loss on the same eval_batches
 *  held-out batches each time, into *loss.
 *  @return ILM_OK, ILM_ERR_CONFIG without "eval_data", the loader's and
 *          graph's errors. */
ILM_API ilm_status ilm_trainer_evaluate(ilm_trainer *t, double *loss);

/*! ilm_trainer_checkpoint() : writes a checkpoint of the current step now
 *  (its directory in *path when not NULL, ilm_free).
 *  @return ILM_OK, ILM_ERR_CONFIG without "checkpoint_dir", ILM_ERR_IO
 *          naming the file, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_trainer_checkpoint(ilm_trainer *t, char **path);

/*! ilm_trainer_steps_done() :
 *  @return the optimizer steps done (restored on resume). */
ILM_API int64_t ilm_trainer_steps_done(const ilm_trainer *t);

/*! ilm_trainer_model() : the model being trained (its current weights,
 *  owned by the trainer): sessions and ilm_model_save work on it.  It has
 *  no tokenizer; a checkpoint directory has one.  Its weights change with
 *  every ilm_trainer_step: a session over it must not evaluate while a step
 *  runs (the caller orders the two), and its KV cache holds keys of the old
 *  weights after a step (truncate it to 0 to start over).  Valid until
 *  ilm_trainer_free.
 *  @return the model, owned by the trainer. */
ILM_API const ilm_model *ilm_trainer_model(const ilm_trainer *t);

/* ===================================================================== */
/*  Evaluation                                                           */
/* ===================================================================== */

/* An ilm_evaluator scores a model on benchmarks the way OpenCompass and
 * lm-eval do: each task is a JSON config (docs/eval.md) naming a dataset
 * file, prompt templates and a mode -- "ppl" (choose the candidate with the
 * best score), "gen" (greedy generation, a post-processor, a metric) or
 * "rolling" (log-likelihood of whole documents: perplexities, bits per
 * byte).  Results are JSON, and with "out" set, files in OpenCompass's
 * layout (predictions/, results/, summary/).  Threads: one thread uses an
 * evaluator at a time; the model may be shared with other threads. */

/*! ilm_evaluator_create() :
 *  @m : the model, which must outlive the evaluator and have a tokenizer.
 *  @config : JSON or NULL: "config_dir" (where task names are looked up as
 *            <name>.json; default "configs/eval"), "data_root" (dataset
 *            paths are relative to it; default "."), "out" (output
 *            directory; absent: nothing is written), "model_name" (its
 *            name in output paths and the summary; default "model"),
 *            "limit" (at most this many samples per dataset; 0 = all),
 *            "shots" (replace every task's few-shot count; -1 = as the task
 *            says), "context" (the session's positions; default the
 *            model's, at most 2048), "threads", "add_bos" (the tokenizer's
 *            default), "resume" (true: finished datasets are read back,
 *            interrupted ones continue from their saved samples),
 *            "execute" (false: a task that runs the generated programs,
 *            HumanEval's, is ILM_ERR_CONFIG unless this is true; they run
 *            in a sandbox: docs/eval.md).
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_STATE (no tokenizer),
 *          ILM_ERR_NOMEM; *out NULL on failure. */
ILM_API ilm_status ilm_evaluator_create(const ilm_model *m, const char *config,
                                        ilm_evaluator **out);

/*! ilm_evaluator_run() :
 *  Runs tasks: `tasks` is a JSON array whose elements are task names
 *  (<config_dir>/<name>.json) or task config objects.  A task with
 *  "subsets" runs one dataset per subset and adds their average.
 *  @progress, @user : optional; stage = the dataset's name, done / total =
 *            its samples; a non-zero return cancels (saved samples stay).
 *  @results : optional; on ILM_OK, JSON (ilm_free): {"model", "datasets":
 *            [{"dataset", "task", "version", "mode", "samples", "metrics"
 *            {name: value, name_stderr: value}, "seconds"}], "groups":
 *            [{"group", "metric", "naive_average", "weighted_average",
 *            "datasets"}]}.
 *  @return ILM_OK, ILM_ERR_CONFIG naming the task file and key,
 *          ILM_ERR_FORMAT naming the data file and row, ILM_ERR_IO,
 *          ILM_ERR_CANCELLED, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_evaluator_run(ilm_evaluator *e, const char *tasks,
                                     ilm_progress_fn progress, void *user, char **results);

/*! ilm_evaluator_free() : NULL is accepted.  @return nothing. */
ILM_API void ilm_evaluator_free(ilm_evaluator *e);

/* ===================================================================== */
/*  Experimental: benchmarks (not yet stable)                            */
/* ===================================================================== */

/* The functions of this section stay, but their config and result keys may
 * change in any 0.x or 1.x minor version until they move up into a stable
 * section; tools that parse the results should check the keys they read.
 * Each runs on the calling thread with its own objects, so any thread. */

/*! ilm_bench_gemm() :
 *  Measures fp32 GEMM throughput (C = A·B, square n×n, row-major) on the
 *  CPU backend and the machine's fp32 peak, measured with an FMA-throughput
 *  loop on every thread at once.
 *  @config : JSON text or NULL for defaults.  Keys (all optional):
 *            "sizes"     array of n (default [256, 512, 1024, 2048]),
 *            "threads"   integer (default: ilm_get_num_threads()),
 *            "min_time"  seconds spent per size (default 1.0),
 *            "min_reps"  repetitions per size at least (default 3).
 *  @progress, @user : optional progress callback (stage "gemm <n>").
 *  @result : on ILM_OK, a JSON object allocated by the library (ilm_free):
 *            {"threads", "peak_gflops", "peak_isa", "blas", "results":
 *            [{"n", "reps", "best_gflops", "median_gflops",
 *            "fraction_of_peak"}]}.
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_CANCELLED or ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_bench_gemm(const char *config,
                                  ilm_progress_fn progress, void *user,
                                  char **result);

/*! ilm_bench_generate() :
 *  Measures prompt processing and decoding speed of a model: a prompt of
 *  "prompt_tokens" ids (default 512, drawn deterministically from the
 *  vocabulary) in one evaluation, then "gen_tokens" (default 128) greedy
 *  decode steps, each repeated "reps" times (default 3, best kept).
 *  @config : JSON: "model" (path, required), "prompt_tokens", "gen_tokens",
 *            "threads", "reps".
 *  @result : JSON (ilm_free): {"model", "threads", "prompt_tokens",
 *            "gen_tokens", "prompt_tokens_per_s", "decode_tokens_per_s",
 *            "load_seconds", "weight_bytes"}.
 *  @return ILM_OK, ILM_ERR_CONFIG, the model loader's errors,
 *          ILM_ERR_CANCELLED, ILM_ERR_NOMEM. */
ILM_API ilm_status ilm_bench_generate(const char *config,
                                      ilm_progress_fn progress, void *user,
                                      char **result);

/*! ilm_bench_tokenize() :
 *  Measures encoding throughput: the file is split into lines (one
 *  document each) and every line is encoded, first on one thread, then on
 *  `threads` threads at once; the best of repeated passes is reported.
 *  @config : JSON: "tokenizer" (path, required), "file" (path, required),
 *            "threads" (default: ilm_get_num_threads()), "min_time"
 *            (seconds per measurement, default 1.0).
 *  @result : on ILM_OK, JSON allocated by the library (ilm_free):
 *            {"bytes", "documents", "tokens", "threads", "load_seconds",
 *            "single_thread_mb_s", "batch_mb_s", ...}.
 *  @return ILM_OK, ILM_ERR_CONFIG, the loader's errors, ILM_ERR_CANCELLED. */
ILM_API ilm_status ilm_bench_tokenize(const char *config,
                                      ilm_progress_fn progress, void *user,
                                      char **result);

/*! ilm_bench_corpus() :
 *  Runs ilm_corpus_build "reps" times (default 3) into a temporary
 *  directory and reports the best MB/s of each stage on "threads" threads:
 *  clean + quality filters, dedup (MinHash signing + the index), tokenize +
 *  pack (encoding and shard writing), and the whole pipeline (input bytes
 *  over the run's wall time, tokenizer loading included).
 *  @config : JSON: "inputs" (required), "tokenizer" (required), "threads",
 *            "reps", "filter", "dedup" (as in ilm_corpus_build).
 *  @result : JSON (ilm_free): {"threads", "reps", "input_bytes",
 *            "documents_in", "documents_out", "tokens", "clean_filter_mb_s",
 *            "dedup_mb_s", "tokenize_pack_mb_s", "pipeline_mb_s",
 *            "pipeline_seconds"}.
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_IO, the errors of
 *          ilm_corpus_build. */
ILM_API ilm_status ilm_bench_corpus(const char *config, ilm_progress_fn progress,
                                    void *user, char **result);

/*! ilm_bench_train() :
 *  Measures training speed: a new model from "model_config" (deterministic
 *  random weights), a fixed batch of deterministic random tokens, and
 *  "warmup" untimed then "steps" timed optimizer steps, each forward +
 *  backward of the mean token loss, global-norm clipping (1.0) and AdamW
 *  (the trainer's defaults), as ilm_trainer_step takes them without the
 *  data loader.  Timed steps also time every op of the graph.
 *  @config : JSON or NULL.  Keys (all optional): "model_config" (a
 *            config.json object; default a 27.7M-parameter LLaMA: V 8192,
 *            C 512, L 6, H = KV = 8, F 1408, untied), "batch" (8), "seqlen"
 *            (256), "docs_per_row" (1: each row one document; n: n
 *            documents of equal length packed in a row), "steps" (5),
 *            "warmup" (2), "threads" (ilm_get_num_threads()), "recompute"
 *            (false).
 *  @progress, @user : optional progress callback (stages "warmup",
 *            "train"; done / total = steps).
 *  @result : JSON (ilm_free): {"model_config", "parameters", "batch",
 *            "seqlen", "docs_per_row", "steps", "warmup", "threads",
 *            "recompute", "tokens_per_s" (over all timed steps),
 *            "best_tokens_per_s" (the fastest step), "step_seconds",
 *            "first_loss", "last_loss", "op_seconds_per_step" {"embedding",
 *            "rmsnorm", "matmul_qkv", "matmul_o", "matmul_mlp",
 *            "matmul_lm_head", "rope", "attention", "swiglu",
 *            "cross_entropy", "other", "optimizer"}} (forward and backward
 *            together, seconds per step).
 *  @return ILM_OK, ILM_ERR_CONFIG, ILM_ERR_NOMEM, ILM_ERR_CANCELLED. */
ILM_API ilm_status ilm_bench_train(const char *config, ilm_progress_fn progress, void *user,
                                   char **result);

#ifdef __cplusplus
}
#endif

#endif /* INTERNLM_H */
