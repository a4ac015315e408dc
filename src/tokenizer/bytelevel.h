/*
 * src/tokenizer/bytelevel.h -- how the byte-level BPE loaders (hf_json.c,
 * gguf_vocab.c) build the state that bytelevel.c encodes with.  The struct
 * itself stays private to bytelevel.c.
 *
 * Order of building: ilm__bbpe_new; the normalizers and pre-tokenizer
 * stages in the order the file lists them (the ByteLevel stage last); the
 * vocabulary goes into the tokenizer (ilm__tok_set_piece); then the merges
 * in rank order; then ilm__bbpe_finish.
 */
#ifndef ILM_TOKENIZER_BYTELEVEL_H
#define ILM_TOKENIZER_BYTELEVEL_H

#include "tokenizer/internal.h"

/* Hugging Face's SplitDelimiterBehavior. */
typedef enum ilm__split_behavior {
    ILM__SPLIT_REMOVED,
    ILM__SPLIT_ISOLATED,
    ILM__SPLIT_MERGED_WITH_PREVIOUS,
    ILM__SPLIT_MERGED_WITH_NEXT,
    ILM__SPLIT_CONTIGUOUS
} ilm__split_behavior;

/* Unicode normalization forms (utf8proc). */
typedef enum ilm__norm_form {
    ILM__NORM_NFC, ILM__NORM_NFKC, ILM__NORM_NFD, ILM__NORM_NFKD
} ilm__norm_form;

/* The GPT-2 pre-tokenizer regex, as Hugging Face's ByteLevel uses it. */
extern const char ilm__gpt2_regex[];

/* A new, empty state; freed with ilm__bbpe_free. */
ilm_status ilm__bbpe_new(struct ilm__bbpe **out);

ilm_status ilm__bbpe_add_normalizer(struct ilm__bbpe *b, ilm__norm_form form);

/* A Split stage.  `literal` takes the pattern as a plain string (HF's
 * {"String": ...}), otherwise it is a regex in Oniguruma/PCRE syntax.
 * `what` names the file for messages; a pattern PCRE2 rejects is
 * ILM_ERR_FORMAT. */
ilm_status ilm__bbpe_add_split(struct ilm__bbpe *b, const char *pattern, size_t len,
                               bool literal, ilm__split_behavior behavior, bool invert,
                               const char *what);
/* HF's Digits: every numeric character alone, or runs of them together. */
ilm_status ilm__bbpe_add_digits(struct ilm__bbpe *b, bool individual);
/* HF's ByteLevel pre-tokenizer: optionally a space before each piece that
 * lacks one, optionally the GPT-2 regex.  It must be the last stage. */
ilm_status ilm__bbpe_add_bytelevel(struct ilm__bbpe *b, bool add_prefix_space, bool use_regex,
                                   const char *what);

/* HF BPE options: ignore_merges (a word found whole in the vocabulary is
 * one token), the unknown token for bytes missing from the vocabulary
 * (-1: such bytes are dropped, as HF does without unk_token), fuse_unk. */
void ilm__bbpe_set_options(struct ilm__bbpe *b, bool ignore_merges, int32_t unk_id,
                           bool fuse_unk);

/* Appends the next-ranked merge "left right" of two vocabulary pieces.
 * Pieces (or their concatenation) missing from t's vocabulary are
 * ILM_ERR_FORMAT naming `what`. */
ilm_status ilm__bbpe_add_merge(const ilm_tokenizer *t, struct ilm__bbpe *b, const char *left,
                               size_t left_len, const char *right, size_t right_len,
                               const char *what);

/* Derives the byte -> initial token table from t's vocabulary. */
ilm_status ilm__bbpe_finish(const ilm_tokenizer *t, struct ilm__bbpe *b, const char *what);

/* Number of merges added (for tests and info). */
size_t ilm__bbpe_n_merges(const struct ilm__bbpe *b);

#endif /* ILM_TOKENIZER_BYTELEVEL_H */
