/*
 * src/corpus/internal.h -- the data stage's internal pieces: the token shard
 * format (shard.c), SFT chat encoding with loss masks (sft.c) and the
 * deterministic per-rank batch loader (loader.c).  The public ilm_corpus API
 * and the CLI are built on these.  docs/formats.md specifies the shard file.
 *
 * Internal: nothing here is part of the ABI.
 */
#ifndef ILM_CORPUS_INTERNAL_H
#define ILM_CORPUS_INTERNAL_H

#include "core/internal.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- token shards (shard.c) -------------------------------------------- */

#define ILM__SHARD_MAGIC       "ILMSHARD"  /* 8 bytes, no NUL */
#define ILM__SHARD_VERSION     1u
#define ILM__SHARD_HEADER_SIZE 64u
#define ILM__SHARD_HAS_MASK    0x1u        /* header flags bit 0 */

/* A shard being written.  Documents are buffered in memory and the file is
 * written atomically (temp file, fsync, rename) by ilm__shard_writer_close,
 * so a reader never sees a partial shard: callers bound a shard's size by
 * starting a new one every few hundred MB. */
typedef struct ilm__shard_writer ilm__shard_writer;

/* Starts a shard for token ids in [0, vocab_size); with_mask adds the loss
 * mask stream (then every document needs a mask).  The token width follows
 * from vocab_size: u16 when it is at most 65536, else u32. */
ilm_status ilm__shard_writer_create(const char *path, int32_t vocab_size,
                                    bool with_mask, ilm__shard_writer **out);
/* Appends one document: ids [n] and, for a shard with a mask stream, mask
 * [n] (1 = the token is a training target, 0 = ignored; NULL = all ones);
 * without a mask stream `mask` must be NULL.  An id outside the vocabulary
 * or a mask byte other than 0/1 is ILM_ERR_RANGE and nothing is appended. */
ilm_status ilm__shard_writer_add(ilm__shard_writer *w, const int32_t *ids,
                                 const uint8_t *mask, size_t n);
/* Writes the file and frees the writer (also on failure). */
ilm_status ilm__shard_writer_close(ilm__shard_writer *w);
/* Frees the writer without writing anything; NULL is accepted. */
void ilm__shard_writer_free(ilm__shard_writer *w);

/* An open, validated shard: a read-only mmap of the file. */
typedef struct ilm__shard {
    ilm__mmap      map;
    char          *path;
    uint32_t       width;      /* bytes per token: 2 or 4 */
    int32_t        vocab_size;
    bool           has_mask;
    uint64_t       n_tokens;
    uint64_t       n_docs;
    const uint8_t *offsets;    /* u64 LE [n_docs + 1] */
    const uint8_t *tokens;     /* u16 or u32 LE [n_tokens] */
    const uint8_t *mask;       /* u8 [n_tokens] or NULL */
    atomic_bool    verified;   /* the payload passed ilm__shard_verify (threads may race
                                  to verify: both read only and agree) */
} ilm__shard;

/* Opens and validates a shard: magic, version, width against vocab size,
 * section sizes against the file size, offsets starting at 0, never
 * decreasing and ending at the token count.  With `verify` it also checks
 * the CRC-32 of the payload, that every id is inside the vocabulary and that
 * mask bytes are 0 or 1 (one pass over the file).  Anything wrong is
 * ILM_ERR_FORMAT naming the file; free with ilm__shard_close. */
ilm_status ilm__shard_open(const char *path, bool verify, ilm__shard **out);
void       ilm__shard_close(ilm__shard *s);
/* The `verify` pass of ilm__shard_open, for a shard opened without it: run
 * once (a success is remembered, so later calls cost nothing), before the
 * first token or mask byte is handed out.  A corpus opens its shards
 * without it, so opening a big corpus stays cheap, and every reader of
 * tokens (ilm_corpus_document, ilm_corpus_info, the loader) calls this on
 * the shard first.  ILM_ERR_FORMAT naming the file and the first bad
 * token, mask byte or the checksum. */
ilm_status ilm__shard_verify(ilm__shard *s);

/* Document i's first token index and length (i < n_docs). */
void    ilm__shard_doc(const ilm__shard *s, uint64_t i, uint64_t *start,
                       uint64_t *len);
/* Token at index pos (< n_tokens). */
int32_t ilm__shard_token(const ilm__shard *s, uint64_t pos);
/* Mask at index pos: 1 (target) when the shard has no mask stream. */
uint8_t ilm__shard_mask(const ilm__shard *s, uint64_t pos);

/* ---- SFT chat encoding (sft.c) ------------------------------------------ */

/* Counters a caller adds up over a data set. */
typedef struct ilm__sft_stats {
    uint64_t samples;          /* encoded and kept */
    uint64_t truncated;        /* kept, but trailing messages were dropped */
    uint64_t dropped_messages; /* messages removed by truncation */
    uint64_t dropped_samples;  /* nothing trainable left: not emitted */
} ilm__sft_stats;

/* Encodes one chat record (OpenAI {"messages"}, XTuner {"conversation"} or
 * Alpaca {"instruction","input","output"}) with the InternLM2 template:
 * BOS, then per message "<|im_start|>{role}\n{content}<|im_end|>\n".
 * Markers are tokenized with ILM_TOKENIZE_SPECIAL, contents without it.
 * mask[i] = 1 marks token i as a training target: the content and the
 * closing <|im_end|> of assistant messages (or of any message whose "loss"
 * is true); the "\n" after <|im_end|> and all else are 0, as XTuner does.
 * max_length > 0 truncates by whole trailing messages (see docs/formats.md).
 * On ILM_OK with *kept true, *ids / *mask (ilm__free both) hold *n tokens;
 * with *kept false the sample was dropped and counted in stats.  A record
 * of no known shape, or a message missing its fields, is ILM_ERR_FORMAT. */
ilm_status ilm__sft_encode(const ilm_tokenizer *tok, const cJSON *record,
                           size_t max_length, int32_t **ids, uint8_t **mask,
                           size_t *n, bool *kept, ilm__sft_stats *stats);

/* ---- per-rank loader (loader.c) ----------------------------------------- */

typedef struct ilm__loader_config {
    int      batch;  /* B rows */
    int      seqlen; /* T tokens per row */
    uint64_t seed;
    int      rank;   /* r in [0, world) */
    int      world;  /* N ranks */
} ilm__loader_config;

/* One batch; all arrays are owned by the loader and overwritten by the next
 * call.  Row b holds n_seqs[b] sequences; sequence j of row b spans
 * [cu_seqlens[b*(T+1)+j], cu_seqlens[b*(T+1)+j+1]) with positions counting
 * from 0 inside it; the row is always full (no padding). */
typedef struct ilm__batch {
    int32_t *tokens;     /* [B, T] */
    int32_t *labels;     /* [B, T] next token, or -100 (ILM__IGNORE) */
    int32_t *positions;  /* [B, T] */
    int32_t *cu_seqlens; /* [B, T+1], n_seqs[b] + 1 entries used per row */
    int32_t *n_seqs;     /* [B] */
} ilm__batch;

#define ILM__IGNORE (-100)

typedef struct ilm__loader ilm__loader;

/* A loader over `shards` (borrowed: they must outlive it) in the order
 * given.  ILM_ERR_CONFIG for a bad B, T, rank or world; ILM_ERR_RANGE when
 * there are no documents or no tokens, or 2^32 or more documents. */
ilm_status ilm__loader_create(ilm__shard *const *shards, size_t n_shards,
                              const ilm__loader_config *cfg, ilm__loader **out);
void       ilm__loader_free(ilm__loader *l);
/* Fills the next batch (*out points into the loader).  The stream never
 * ends: after the rank's last document of epoch e it goes on with epoch
 * e + 1 in that epoch's order. */
ilm_status ilm__loader_next(ilm__loader *l, const ilm__batch **out);
/* The position as JSON text (ilm_free): {"version", "epoch", "doc",
 * "offset", and the seed, rank, world and document count it belongs to}. */
ilm_status ilm__loader_state(const ilm__loader *l, char **json);
/* Restores a position saved by ilm__loader_state; the next batches are the
 * ones that followed when it was saved.  ILM_ERR_CONFIG when the JSON is
 * malformed or was saved by a loader over other data, seed or ranks. */
ilm_status ilm__loader_restore(ilm__loader *l, const char *json);
/* The current epoch (for logs and tests). */
uint64_t   ilm__loader_epoch(const ilm__loader *l);

/* ==== ingest, clean, quality filters (ingest.c, clean.c, filter.c) ======= */

/* -- ingest (ingest.c) --
 *
 * Inputs are files and directories.  A directory is walked recursively in
 * byte-wise sorted name order (strcmp), so a run is deterministic; inside a
 * walk only *.txt, *.jsonl and *.jsonl.gz are read (others are counted as
 * skipped), hidden entries (".name") are ignored and symbolic links to
 * directories are not followed (no cycles).  A file named explicitly is read
 * whatever its name: *.jsonl / *.jsonl.gz as JSONL, anything else as text
 * (fortune files have no extension).  Lines end at "\n"; a "\r" before it
 * is removed.  No line buffer has a fixed size: plain files are mmap'd and
 * gzip files are read into a buffer that grows to the longest line, up to
 * max_line_bytes; a longer line is skipped and counted as malformed.
 *
 * Text files become documents by `split`:
 *   "paragraph" (default): runs of non-blank lines; a blank or
 *       whitespace-only line ends a document, and so does a line that is
 *       exactly "%" when percent_breaks is set (default), because the
 *       fortune(6) format -- our real test data -- separates entries so;
 *   "line": every non-blank line is a document;
 *   "file": the whole file is one document (an empty file gives none).
 * A document's lines are joined with "\n", without a final newline.
 *
 * A JSONL line (blank lines are ignored) must be one JSON object.  With
 * jsonl "auto" (default) an object with "messages" (OpenAI),
 * "conversation" (XTuner) or "instruction" (Alpaca) is a chat record and
 * any other object a text record whose text is the string field
 * `text_field` (default "text"); "text" and "chat" force one kind.  Chat
 * records are checked for their shape (arrays of objects with string
 * fields, as ilm__sft_encode needs them) and passed on as cJSON.  Bad JSON,
 * trailing bytes, a missing field or a field of the wrong type skip the
 * line and count it, with "file:line: reason" kept for the first
 * ILM__INGEST_EXAMPLES of them.  A file that cannot be read, or a gzip
 * file that ends early or is corrupt, is counted in bad_files (with an
 * example); the records read before the damage are kept. */

#define ILM__INGEST_EXAMPLES 20

typedef enum ilm__split {
    ILM__SPLIT_PARAGRAPH = 0,
    ILM__SPLIT_LINE,
    ILM__SPLIT_FILE
} ilm__split;

typedef enum ilm__jsonl_kind {
    ILM__JSONL_AUTO = 0,
    ILM__JSONL_TEXT,
    ILM__JSONL_CHAT
} ilm__jsonl_kind;

typedef struct ilm__ingest_opts {
    ilm__split      split;          /* "split": "paragraph" | "line" | "file" */
    bool            percent_breaks; /* "percent_breaks": true */
    ilm__jsonl_kind jsonl;          /* "jsonl": "auto" | "text" | "chat" */
    char            text_field[64]; /* "text_field": "text" */
    size_t          max_line_bytes; /* "max_line_bytes": 1 GiB */
} ilm__ingest_opts;

/* The defaults above. */
void ilm__ingest_opts_default(ilm__ingest_opts *o);
/* Fills *o from the defaults and the JSON object `obj` (NULL = defaults),
 * strictly: an unknown key or a bad value is ILM_ERR_CONFIG naming the key
 * path (`path` is obj's own path, e.g. "ingest"). */
ilm_status ilm__ingest_opts_parse(const cJSON *obj, const char *path,
                                  ilm__ingest_opts *o);

typedef enum ilm__record_kind {
    ILM__RECORD_TEXT = 0,
    ILM__RECORD_CHAT
} ilm__record_kind;

/* One record; everything it points to is owned by the ingest handle and
 * valid until the next ilm__ingest_next or ilm__ingest_free. */
typedef struct ilm__record {
    ilm__record_kind kind;
    const char      *text;  /* TEXT: the document, not NUL-terminated ... */
    size_t           len;   /* ... of len bytes (may hold any bytes) */
    const cJSON     *chat;  /* CHAT: the record object */
    const char      *file;  /* the file it came from */
    uint64_t         line;  /* its first line, from 1 */
} ilm__record;

typedef struct ilm__ingest ilm__ingest;

/* Collects the files under `paths` [n] (walking directories now, so the
 * order is fixed before reading starts).  A path that does not exist is
 * ILM_ERR_IO; `opts` NULL means the defaults.  Free with ilm__ingest_free. */
ilm_status ilm__ingest_open(const char *const *paths, size_t n,
                            const ilm__ingest_opts *opts, ilm__ingest **out);
/* The next record into *rec, or *done = true at the end.  Malformed input
 * never fails the call (it is counted); only ILM_ERR_NOMEM does. */
ilm_status ilm__ingest_next(ilm__ingest *in, ilm__record *rec, bool *done);
/* Adds the counters to the JSON object `obj`: "files", "bad_files",
 * "skipped_files", "records", "text_records", "chat_records", "bytes"
 * (uncompressed bytes read), "malformed" and "examples" (array of
 * "file:line: reason" strings, bad files included). */
ilm_status ilm__ingest_report(const ilm__ingest *in, cJSON *obj);
/* Progress in bytes of the input files as stored (compressed for gzip). */
void     ilm__ingest_progress(const ilm__ingest *in, uint64_t *done, uint64_t *total);
/* Counters for tests and progress bars. */
uint64_t ilm__ingest_malformed(const ilm__ingest *in);
uint64_t ilm__ingest_bad_files(const ilm__ingest *in);
void     ilm__ingest_free(ilm__ingest *in);

/* -- cleaning (clean.c) --
 *
 * ilm__clean rewrites one text document, in this order:
 *  1. UTF-8: each maximal run of bytes that is not valid UTF-8 becomes one
 *     U+FFFD, or (invalid = "drop") the document is dropped ("invalid_utf8").
 *  2. Control characters: C0 and C1 controls and DEL are removed except
 *     "\n" and "\t"; an ANSI escape sequence (ESC '[' ... final byte) is
 *     removed whole, since fortunes-zh colours its titles with them; a
 *     backspace erases the character before it on the line (the nroff
 *     overstrike "_\bX" of old text files becomes "X").
 *  3. Unicode normalization with utf8proc: "NFC" (default), "NFKC" or
 *     "none".  NFC is the default because NFKC rewrites the full-width
 *     punctuation of Chinese text to ASCII ("，" to ","), which is a choice
 *     for the data owner, not a repair.
 *  4. Lines: runs of two or more spaces/tabs become one space, a single tab
 *     stays; trailing spaces/tabs are cut; lines containing any of
 *     drop_substrings, or non-blank lines shorter than min_line_chars code
 *     points, are removed; blank lines at the start and end are removed and
 *     inner runs of blank lines become one (paragraph breaks survive).
 *  5. Nothing left: dropped ("empty"). */

typedef enum ilm__norm {
    ILM__NORM_NFC = 0,
    ILM__NORM_NFKC,
    ILM__NORM_NONE
} ilm__norm;

typedef struct ilm__clean_opts {
    bool      drop_invalid;      /* "invalid": "replace" (false) | "drop" */
    ilm__norm norm;              /* "normalize": "NFC" | "NFKC" | "none" */
    size_t    min_line_chars;    /* "min_line_chars": 0 */
    char    **drop_substrings;   /* "drop_lines_containing": [] (owned) */
    size_t    n_drop_substrings;
} ilm__clean_opts;

void       ilm__clean_opts_default(ilm__clean_opts *o);
/* Strict, as ilm__ingest_opts_parse; free with ilm__clean_opts_free. */
ilm_status ilm__clean_opts_parse(const cJSON *obj, const char *path,
                                 ilm__clean_opts *o);
void       ilm__clean_opts_free(ilm__clean_opts *o);

/* Cleans text [len] into `out` (reset first; NUL-terminated when kept).
 * *dropped is NULL when the document is kept, else the reason
 * ("invalid_utf8", "empty").  Fails only with ILM_ERR_NOMEM, or
 * ILM_ERR_RANGE for a document too large for utf8proc. */
ilm_status ilm__clean(const ilm__clean_opts *o, const char *text, size_t len,
                      ilm__buf *out, const char **dropped);

/* -- quality filters (filter.c) --
 *
 * The Gopher rules (Rae et al. 2021, "Scaling Language Models: Methods,
 * Analysis & Insights from Training Gopher", appendix A.1.1 and table A1)
 * with their published thresholds as defaults, plus a character length
 * bound and a CJK/Latin script filter.  Text must be valid UTF-8 (run
 * ilm__clean first).
 *
 * Words: a word is a maximal run of non-whitespace characters, except that
 * every CJK character (Han, kana, Hangul) is a word by itself, because
 * Chinese and Japanese are written without spaces; punctuation that
 * follows a CJK character belongs to its word.  The mean word length is
 * taken over non-CJK words only, and only when they are at least half of
 * the words (one-character CJK words would fail any Latin bound, and the
 * few non-CJK words of Chinese text are stray brackets and numbers).  Lines and
 * paragraphs (split on blank lines) that are blank are not counted.
 *
 * Filters, each named by the counter it increments (defaults, source):
 *   min_chars, max_chars          0, 0 = no bound (code points)
 *   min_words, max_words          50, 100000 words (Gopher)
 *   mean_word_length              in [3, 10] characters (Gopher)
 *   symbol_ratio                  ('#' + "..." + "…") / words > 0.1 (Gopher)
 *   bullet_lines                  > 0.9 of lines start with a bullet (Gopher)
 *   ellipsis_lines                > 0.3 of lines end in "..." or "…" (Gopher)
 *   alpha_words                   < 0.8 of words hold a letter (Gopher's
 *                                 "alphabetic character" rule; Unicode
 *                                 letters, so CJK counts)
 *   dup_lines, dup_line_chars     > 0.30 of lines / > 0.20 of their chars
 *                                 are repeats of an earlier line (Gopher)
 *   dup_paragraphs, dup_paragraph_chars  > 0.30 / > 0.20 (Gopher)
 *   top_2gram, top_3gram, top_4gram      the most frequent word n-gram
 *                                 covers > 0.20 / 0.18 / 0.16 of the word
 *                                 characters (Gopher)
 *   dup_5gram ... dup_10gram      word characters inside repeated n-grams
 *                                 (occurrences after the first) > 0.15,
 *                                 0.14, 0.13, 0.12, 0.11, 0.10 (Gopher)
 *   script                        CJK / (CJK + Latin letters) outside
 *                                 [min_cjk, max_cjk] (0, 1: off)
 * Checked in the order listed; the first that fires names the drop. */

#define ILM__FILTER_COUNT 23

/* The filter names above, in check order, for per-filter counters. */
extern const char *const ilm__filter_names[ILM__FILTER_COUNT];

typedef struct ilm__filter_opts {
    double min_words, max_words;            /* "min_words", "max_words" */
    double min_chars, max_chars;            /* "min_chars", "max_chars" (0: none) */
    double min_mean_word, max_mean_word;    /* "mean_word_length": [3, 10] */
    double max_symbol_ratio;                /* "max_symbol_ratio" */
    double max_bullet_lines;                /* "max_bullet_lines" */
    double max_ellipsis_lines;              /* "max_ellipsis_lines" */
    double min_alpha_words;                 /* "min_alpha_words" */
    double max_dup_lines, max_dup_line_chars;           /* "max_dup_lines", ... */
    double max_dup_paragraphs, max_dup_paragraph_chars;
    double max_top_ngram[3];                /* "max_top_ngram": n = 2, 3, 4 */
    double max_dup_ngram[6];                /* "max_dup_ngram": n = 5 .. 10 */
    double min_cjk, max_cjk;                /* "cjk_share": [min, max] */
} ilm__filter_opts;

void       ilm__filter_opts_default(ilm__filter_opts *o);
/* Strict, as ilm__ingest_opts_parse. */
ilm_status ilm__filter_opts_parse(const cJSON *obj, const char *path,
                                  ilm__filter_opts *o);
/* NULL to keep the text, else the name of the first filter that fires (a
 * string from ilm__filter_names).  Memory for the n-gram tables is
 * allocated per call; if that fails the text is reported as "nomem" and
 * ilm_last_error says why. */
const char *ilm__filter_check(const ilm__filter_opts *o, const char *text,
                              size_t len);

/* ==== deduplication (dedup.c) ============================================== */

/* Exact duplicates by a 128-bit hash of normalized text; near duplicates by
 * MinHash over shingles with LSH banding (Broder 1997; Leskovec et al.,
 * "Mining of Massive Datasets", ch. 3).  dedup.c's header comment states the
 * normalization and shingling rules. */

#define ILM__DEDUP_MAX_PERM  1024
#define ILM__DEDUP_MAX_NGRAM 16

typedef struct ilm__dedup_opts {
    bool     exact;      /* exact duplicates (default true) */
    bool     near;       /* near duplicates (default true) */
    int      num_perm;   /* MinHash slots, = bands x rows (default 128) */
    int      bands;      /* LSH bands (default 16) */
    int      rows;       /* slots per band (default 8) */
    int      ngram;      /* words per shingle, non-CJK text (default 5) */
    int      char_ngram; /* code points per shingle, CJK text (default 5) */
    double   threshold;  /* estimated Jaccard that makes a duplicate (0.8) */
    uint64_t seed;       /* permutation parameters come from Philox(seed) */
    int64_t  max_memory; /* index bytes (0 = no cap; default 1 GiB) */
} ilm__dedup_opts;

/* Verdicts of ilm__dedup_check.  UNIQUE_NOT_INDEXED: the document is new and
 * kept, but the memory cap stopped the index from admitting it, so its later
 * copies will not be caught (the report's "full" says this happened). */
enum {
    ILM__DEDUP_UNIQUE = 0,
    ILM__DEDUP_EXACT = 1,
    ILM__DEDUP_NEAR = 2,
    ILM__DEDUP_UNIQUE_NOT_INDEXED = 3
};

typedef struct ilm__dedup ilm__dedup;

void       ilm__dedup_opts_default(ilm__dedup_opts *o);
/* Strictly reads the keys exact, near, num_perm, bands, rows, ngram,
 * char_ngram, threshold, seed, max_memory of `obj` (at key path `path`) over
 * the values already in *o.  Unknown keys, wrong types, out-of-range values
 * and bands x rows != num_perm are ILM_ERR_CONFIG naming the key. */
ilm_status ilm__dedup_opts_parse(const cJSON *obj, const char *path,
                                 ilm__dedup_opts *o);
ilm_status ilm__dedup_create(const ilm__dedup_opts *opts, ilm__dedup **out);
void       ilm__dedup_free(ilm__dedup *d);
/* Checks one document in stream order and indexes it when it is new:
 * *verdict is one of the ILM__DEDUP_* values.  Not thread-safe. */
ilm_status ilm__dedup_check(ilm__dedup *d, const char *text, size_t len,
                            int *verdict);
/* The same with a signature computed beforehand (ilm__dedup_sign_batch) and
 * its shingle count; sig may be NULL when near duplicates are off. */
ilm_status ilm__dedup_check_signed(ilm__dedup *d, const char *text, size_t len,
                                   const uint64_t *sig, size_t n_shingles,
                                   int *verdict);
/* The same with the text's exact hash (ilm__dedup_exact_hash) computed
 * beforehand too, so the caller can do all the hashing in parallel. */
ilm_status ilm__dedup_check_hashed(ilm__dedup *d, const uint64_t exact[2], const uint64_t *sig,
                                   size_t n_shingles, int *verdict);
/* The MinHash signature of a text into sig [num_perm]; returns the number of
 * shingles (0: empty text, every slot UINT64_MAX).  Thread-safe: it only
 * reads d. */
size_t     ilm__dedup_signature(const ilm__dedup *d, const char *text,
                                size_t len, uint64_t *sig);
/* Whether signing uses the AVX-512 fold (chosen at create when the CPU has
 * it); on = false forces the scalar one, for tests.  Returns the previous
 * setting.  Not thread-safe: call it before signing. */
bool       ilm__dedup_use_simd(ilm__dedup *d, bool on);
/* Signs n texts on ilm__num_threads() OpenMP threads: sigs [n, num_perm],
 * n_shingles [n] (may be NULL). */
ilm_status ilm__dedup_sign_batch(const ilm__dedup *d, const char *const *texts,
                                 const size_t *lens, size_t n, uint64_t *sigs,
                                 size_t *n_shingles);
/* Whether the text is CJK-dominant (and so shingled by characters). */
bool       ilm__dedup_is_cjk(const char *text, size_t len);
/* The 128-bit hash of the normalized text used for exact duplicates. */
void       ilm__dedup_exact_hash(const char *text, size_t len, uint64_t out[2]);
/* Bytes held by the index (exact set, signatures, buckets, parameters). */
size_t     ilm__dedup_memory(const ilm__dedup *d);
/* Adds counts (documents, unique, exact_duplicates, near_duplicates,
 * not_indexed, candidates_checked), memory by part and "full" to obj. */
ilm_status ilm__dedup_report(const ilm__dedup *d, cJSON *obj);

/* ==== corpus directories (build.c, corpus.c) ============================ */

/* The open shards of a corpus (owned by it), in manifest order: what the
 * trainer's loader reads. */
ilm_status ilm__corpus_shards(const ilm_corpus *c, ilm__shard *const **shards, size_t *n);
/* The manifest's "tokenizer": a file name inside the corpus directory, an
 * absolute path (a model directory or GGUF file), or NULL. */
const char *ilm__corpus_tokenizer_name(const ilm_corpus *c);

#endif /* ILM_CORPUS_INTERNAL_H */
