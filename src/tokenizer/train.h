/*
 * src/tokenizer/train.h -- what the two halves of the SentencePiece-BPE
 * trainer share:
 *
 *   train.c      configuration, reading and normalizing the corpus, word
 *                counting, character coverage, the output tokenizer
 *   train_bpe.c  the merge loop over the counted words
 */
#ifndef ILM_TOKENIZER_TRAIN_H
#define ILM_TOKENIZER_TRAIN_H

#include "tokenizer/internal.h"

/* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's escaped space. */
#define ILM__WS_CP  0x2581u
#define ILM__WS_STR "\xe2\x96\x81"

/* sentencepiece's max_sentencepiece_length default: no learned piece is
 * longer than this many characters. */
#define ILM__BPE_MAX_PIECE_CHARS 16

/* The distinct words of the corpus after normalization: word i is
 * len[i] bytes of valid UTF-8 at text.p + off[i], seen freq[i] times.  A
 * word starts with "▁" unless it starts a sentence (or follows a cut:
 * characters that never join a piece). */
typedef struct ilm__train_words {
    ilm__buf  text;
    size_t   *off;
    uint32_t *len;
    int64_t  *freq;
    size_t    n, cap;
} ilm__train_words;

/* Progress reporting with cancellation (ilm_progress_fn may be NULL). */
typedef struct ilm__train_progress {
    ilm_progress_fn fn;
    void           *user;
} ilm__train_progress;

/* ILM_ERR_CANCELLED (with a message) when the callback asks to stop. */
ilm_status ilm__train_report(const ilm__train_progress *p, const char *stage,
                             uint64_t done, uint64_t total);

/* What the merge loop learns: the pieces in vocabulary order (merged
 * pieces by merge order, then the required characters), each an owned
 * NUL-terminated string. */
typedef struct ilm__bpe_result {
    char   **piece;
    uint32_t *len;
    int32_t   n;
    int32_t   n_merged; /* the first n_merged pieces came from merges */
} ilm__bpe_result;

/* Learns up to `n_merges` merged pieces from `words`.  `chars` are the
 * required characters (code points) in order of decreasing frequency; any
 * other character is a cut that never joins a piece.  `reserved` strings
 * (meta pieces, n_reserved of them) are never produced by a merge.  On
 * ILM_OK *out holds the pieces (free with ilm__bpe_result_free); fewer than
 * n_merges merged pieces means the corpus had no more valid pairs. */
ilm_status ilm__bpe_learn(const ilm__train_words *words, const uint32_t *chars,
                          size_t n_chars, int32_t n_merges, bool split_digits,
                          const char *const *reserved, size_t n_reserved,
                          const ilm__train_progress *progress, ilm__bpe_result *out);
void ilm__bpe_result_free(ilm__bpe_result *r);

#endif /* ILM_TOKENIZER_TRAIN_H */
