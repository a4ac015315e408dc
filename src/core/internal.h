/*
 * src/core/internal.h -- what every other folder of the library uses: error
 * reporting, the allocator, logging, JSON config helpers, file I/O (mmap
 * views, atomic writes), the deterministic RNG and thread control.
 *
 * Internal: nothing here is part of the ABI.  Non-static symbols are named
 * ilm__*, which the linker version script keeps out of the export table.
 */
#ifndef ILM_CORE_INTERNAL_H
#define ILM_CORE_INTERNAL_H

#include "internlm.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" { /* the CUDA backend (.cu, compiled as C++) uses this header */
#endif

#if defined(__GNUC__)
#  define ILM__PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define ILM__PRINTF(fmt, args)
#endif

/* ---- errors (status.c) ------------------------------------------------ */

/* Records `fmt` as the calling thread's last error message and returns `s`,
 * so that error paths read `return ilm__error(ILM_ERR_IO, "...", ...);`. */
ilm_status ilm__error(ilm_status s, const char *fmt, ...) ILM__PRINTF(2, 3);
ilm_status ilm__verror(ilm_status s, const char *fmt, va_list ap);

/* Early-return helpers in the manner of zstd's RETURN_ERROR_IF and
 * FORWARD_IF_ERROR: they keep error paths to one line each. */
#define ILM__RETURN_IF(cond, status, ...)                                      \
    do {                                                                      \
        if (cond) return ilm__error((status), __VA_ARGS__);                   \
    } while (0)

#define ILM__FORWARD(expr)                                                     \
    do {                                                                      \
        ilm_status ilm__fwd_ = (expr);                                        \
        if (ilm__fwd_ != ILM_OK) return ilm__fwd_;                            \
    } while (0)

/* ---- memory (alloc.c) ------------------------------------------------- */

/* All host memory the library owns goes through the allocator hook.  Sizes
 * that overflow, like calloc's, are reported as ILM_ERR_NOMEM by callers. */
void *ilm__malloc(size_t size);
void *ilm__calloc(size_t n, size_t size);
void *ilm__realloc(void *ptr, size_t size);
void  ilm__free(void *ptr);
char *ilm__strdup(const char *s);
char *ilm__strndup(const char *s, size_t n);
/* printf into a freshly allocated string; NULL on allocation failure. */
char *ilm__asprintf(const char *fmt, ...) ILM__PRINTF(1, 2);

/* ---- logging (log.c) -------------------------------------------------- */

void ilm__log(ilm_log_level level, const char *fmt, ...) ILM__PRINTF(2, 3);

/* ---- threads (threads.c) ---------------------------------------------- */

/* The default thread count for parallel work (ilm_set_num_threads): what
 * a backend, session or trainer without its own "threads" uses. */
int ilm__num_threads(void);
/* The largest "threads" a config may ask for. */
#define ILM__MAX_THREADS 1024
/* Puts the BLAS on one thread, once per process: every matmul is cut into
 * fixed blocks by our own OpenMP team (backend/cpu/), so OpenBLAS's own
 * pool never runs and never competes for the cores. */
void ilm__blas_single_thread(void);

/* ---- the CPU's instruction-set level (cpu.c) ----------------------------- */

/* Levels, in order: a kernel for level L runs when ilm__isa() >= L. */
enum { ILM__ISA_GENERIC = 0, ILM__ISA_AVX2 = 1, ILM__ISA_AVX512 = 2 };
/* The level the kernels may use: the CPU's best (AVX2 = AVX2 + FMA + F16C,
 * AVX512 = AVX-512 F + VL), or a lower one forced by ILM_CPU=generic|avx2|
 * avx512 (read once; a level the CPU lacks falls back with a log line). */
int ilm__isa(void);
/* "generic", "avx2", "avx512". */
const char *ilm__isa_name(int isa);
/* Whether the CPU has AVX512-VNNI (used only at level ILM__ISA_AVX512). */
bool ilm__isa_vnni(void);

/* Monotonic wall clock in seconds. */
double ilm__now(void);

/* ---- JSON configuration (json.c) -------------------------------------- */

/* Parses JSON text into *out (free with cJSON_Delete).  `what` names the
 * text in error messages ("config", "tokenizer.json").  NULL or empty text
 * gives an empty object, so every config argument may be NULL. */
ilm_status ilm__json_parse(const char *text, const char *what, cJSON **out);

typedef enum ilm__jtype {
    ILM__J_BOOL,      /* out: bool *                                         */
    ILM__J_INT,       /* out: int64_t *; integral, within [min, max]          */
    ILM__J_NUMBER,    /* out: double *; within [min, max]                     */
    ILM__J_STRING,    /* out: const char ** (points into the cJSON tree)      */
    ILM__J_OBJECT,    /* out: const cJSON ** (validate it with another call) */
    ILM__J_ARRAY,     /* out: const cJSON ** (elements checked by the caller)*/
    ILM__J_SECTION    /* out: const cJSON **: an object of settings, or false
                         to turn the section off (the caller tests IsFalse)  */
} ilm__jtype;

/* One permitted key of a JSON object.  A key absent from the object leaves
 * *out untouched (so callers preset defaults) unless `required` is set.
 * For numbers, min < max enables the range check. */
typedef struct ilm__jfield {
    const char *key;
    ilm__jtype  type;
    void       *out;
    bool        required;
    double      min, max;
} ilm__jfield;

/* Validates `obj` strictly against `fields`: it must be an object, every key
 * must be listed, every value of the listed type and range.  `path` is the
 * object's key path for messages ("" for the root, "train.optimizer").  On
 * failure returns ILM_ERR_CONFIG with a message naming the full key path,
 * e.g. "config: unknown key 'bench.sizez'". */
ilm_status ilm__json_fields(const cJSON *obj, const char *path,
                            const ilm__jfield *fields, size_t n_fields);

/* Reads an array of integers in [min, max] (key path for messages) into a
 * freshly allocated array (*out, ilm__free) of *n elements. */
ilm_status ilm__json_int_array(const cJSON *arr, const char *path,
                               int64_t min, int64_t max,
                               int64_t **out, size_t *n);

/* JSON data (a file format, not a config): n bytes of text, not necessarily
 * NUL-terminated, that must hold exactly one JSON object and nothing but
 * whitespace around it.  `what` names the text in messages (usually a path).
 * ILM_ERR_FORMAT "<what>: invalid JSON near byte B (line L)", "<what>:
 * unexpected bytes after the JSON value at byte B", "<what>: not a JSON
 * object (the top level is an array)"; an empty text is invalid JSON.
 * *out is NULL on failure, else the caller's (cJSON_Delete). */
ilm_status ilm__json_parse_object(const char *text, size_t n, const char *what, cJSON **out);

/* Reads the file at `path` as one JSON object (ilm__json_parse_object with
 * the path as `what`): ILM_ERR_IO with the path and the system's reason when
 * it cannot be read, ILM_ERR_FORMAT when it is not one JSON object. */
ilm_status ilm__json_read_file(const char *path, cJSON **out);

/* Prints `json` without formatting into a string allocated through the
 * library allocator (so the caller may ilm_free it). */
ilm_status ilm__json_print(const cJSON *json, char **out);

/* ---- growable buffers and a string-keyed hash map (buf.c, strmap.c) -- */

/* A growable byte buffer.  Zero-initialise; free with ilm__buf_free.  The
 * contents are kept NUL-terminated (the NUL is not counted in n). */
typedef struct ilm__buf {
    char  *p;
    size_t n, cap;
} ilm__buf;

ilm_status ilm__buf_append(ilm__buf *b, const void *data, size_t n);
ilm_status ilm__buf_putc(ilm__buf *b, char c);
/* Makes room for n more bytes (and the NUL) without changing the contents. */
ilm_status ilm__buf_reserve(ilm__buf *b, size_t n);
ilm_status ilm__buf_printf(ilm__buf *b, const char *fmt, ...) ILM__PRINTF(2, 3);
void       ilm__buf_free(ilm__buf *b);

/* A growable array of token ids.  Zero-initialise; free with ilm__free(v). */
typedef struct ilm__ids {
    int32_t *v;
    size_t   n, cap;
} ilm__ids;

ilm_status ilm__ids_push(ilm__ids *a, int32_t id);

/* Open-addressing hash map from byte strings to int32 values.  Keys are
 * borrowed, not copied: they must outlive the map.  Zero-initialise.  The
 * slot table holds only a hash tag and an entry index (8 bytes a slot), so
 * a failed lookup, the common case in BPE, touches one cache line. */
typedef struct ilm__strmap {
    uint64_t    *slots; /* tag << 32 | (entry + 1); 0 = empty */
    const char **keys;  /* entries, in insertion order */
    uint32_t    *lens;
    int32_t     *vals;
    size_t       cap, count, entries_cap; /* cap is 0 or a power of two */
} ilm__strmap;

uint64_t   ilm__hash_bytes(const void *data, size_t n);
/* Inserts or replaces; ILM_ERR_NOMEM on failure. */
ilm_status ilm__strmap_put(ilm__strmap *m, const char *key, size_t len, int32_t val);
/* The value of `key`, or -1 when absent. */
int32_t    ilm__strmap_get(const ilm__strmap *m, const char *key, size_t len);
void       ilm__strmap_free(ilm__strmap *m);

/* Open-addressing hash map from uint64 keys to int32 values (e.g. a pair of
 * token ids to a merge rank).  Key and value share a slot, so a lookup
 * touches one cache line.  Zero-initialise. */
typedef struct ilm__u64slot {
    uint64_t key;
    int32_t  val; /* -1 marks an empty slot: values must be >= 0 */
} ilm__u64slot;

typedef struct ilm__u64map {
    ilm__u64slot *slots;
    size_t        cap, count;
} ilm__u64map;

ilm_status ilm__u64map_put(ilm__u64map *m, uint64_t key, int32_t val);
/* Makes room for n entries in all, so that many puts do not rehash. */
ilm_status ilm__u64map_reserve(ilm__u64map *m, size_t n);
int32_t    ilm__u64map_get(const ilm__u64map *m, uint64_t key);
void       ilm__u64map_free(ilm__u64map *m);

/* ---- UTF-8 (utf8.c) ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not valid UTF-8 (overlong, surrogate, > U+10FFFF,
 * truncated).  *cp receives the code point when valid. */
size_t ilm__utf8_decode(const char *s, size_t n, uint32_t *cp);
/* The code point at s[*i] (n bytes in all), advancing *i; a byte that does
 * not start valid UTF-8 reads as U+FFFD and advances one byte (Python's
 * decode with errors="replace" per byte). */
uint32_t ilm__utf8_next(const char *s, size_t n, size_t *i);
/* Writes the UTF-8 of cp into out (4 bytes room); returns its length. */
size_t ilm__utf8_encode(uint32_t cp, char *out);
/* utf8proc_map(s, n, options) into a buffer from the library's allocator
 * (*out, NUL-terminated, ilm__free; *out_n bytes), so utf8proc's results
 * go through the allocator hook too.  ILM_ERR_NOMEM, or ILM_ERR_RANGE for
 * input utf8proc rejects or cannot index. */
ilm_status ilm__utf8proc_map(const char *s, size_t n, int options, char **out, size_t *out_n);

/* ---- files (file.c) --------------------------------------------------- */

/* A read-only view of a whole file.  Regular files are mmap'd; an empty
 * file gives size 0 and a non-NULL data pointer that must not be read. */
typedef struct ilm__mmap {
    const uint8_t *data;
    size_t         size;
    bool           mapped; /* false for the empty-file case */
} ilm__mmap;

/* Opens `path` read-only.  Missing, unreadable or non-regular files are
 * ILM_ERR_IO with the path and the system's reason in the message. */
ilm_status ilm__mmap_open(const char *path, ilm__mmap *out);
void       ilm__mmap_close(ilm__mmap *m);

/* Writes a file atomically: the content goes to a temporary file in the
 * same directory, which is fsynced, renamed over `path`, and the directory
 * fsynced.  Readers see either the old file or the complete new one, even if
 * the process dies at any point.  `write_fn` produces the content by calling
 * ilm__write_all on the descriptor it is given; if it fails, the temporary
 * file is removed, `path` is untouched and its status is returned (an
 * ILM_ERR_IO message prefixed with "cannot write '<path>': "). */
typedef ilm_status (*ilm__write_fn)(int fd, void *ctx);
ilm_status ilm__atomic_write(const char *path, ilm__write_fn write_fn,
                             void *ctx);
/* The common case: the content is one buffer. */
ilm_status ilm__atomic_write_buf(const char *path, const void *data,
                                 size_t size);
/* write(2) until done, retrying on EINTR; ILM_ERR_IO on failure. */
ilm_status ilm__write_all(int fd, const void *data, size_t size);
/* fsync a directory so a rename inside it is durable. */
ilm_status ilm__fsync_dir(const char *dir);

/* ---- deterministic RNG (rng.c) ---------------------------------------- */

/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2,
 * 3", SC 2011), the counter-based generator cuRAND and JAX also use.  Block
 * i of stream s under seed k is philox(counter = {i_lo, i_hi, s_lo, s_hi},
 * key = {k_lo, k_hi}); a block gives four 32-bit words, consumed in order.
 * Only integer arithmetic is involved, so the same (seed, stream) gives the
 * same words on every platform and backend, and a GPU thread can compute
 * element j directly from its counter without any shared state. */
typedef struct ilm__rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t block;   /* index of the next block to generate */
    uint32_t buf[4];
    int      used;    /* words of buf already consumed (4 = empty) */
} ilm__rng;

void     ilm__philox4x32_10(const uint32_t ctr[4], const uint32_t key[2],
                            uint32_t out[4]);
void     ilm__rng_init(ilm__rng *r, uint64_t seed, uint64_t stream);
uint32_t ilm__rng_u32(ilm__rng *r);
uint64_t ilm__rng_u64(ilm__rng *r);
/* Uniform float in [0, 1) with 24 random bits: (u32 >> 8) * 2^-24. */
float    ilm__rng_uniform(ilm__rng *r);
/* Uniform integer in [0, n) without modulo bias (Lemire's method). */
uint32_t ilm__rng_below(ilm__rng *r, uint32_t n);
/* Standard normal by the Marsaglia polar method, computed in double with a
 * logarithm built from basic IEEE operations only (no libm), so the result
 * is bit-identical wherever double arithmetic is IEEE and not contracted. */
float    ilm__rng_normal(ilm__rng *r);

#ifdef __cplusplus
}
#endif

#endif /* ILM_CORE_INTERNAL_H */
