/*
 * src/tokenizer/internal.h -- the ilm_tokenizer object shared by the files
 * of this folder:
 *
 *   tokenizer.c   the handle: loading dispatch (file kinds), added/special
 *                 tokens, encode/decode entry points, streaming decoder
 *   spm_model.c   SentencePiece ModelProto reader (protobuf wire format)
 *   spm_bpe.c     SentencePiece normalizer + BPE encoder, piece decoding
 *   hf_json.c     Hugging Face tokenizer.json (byte-level BPE) loader
 *   bytelevel.c   byte-level BPE encoder (PCRE2 pre-tokenizer, merges)
 *   gguf_vocab.c  tokenizer.ggml.* vocabularies from GGUF files
 *   spm_write.c   SentencePiece ModelProto writer
 *   train.c       the SentencePiece-BPE trainer
 *
 * A tokenizer is immutable once loaded; encoders may keep thread-safe
 * caches but no other mutable state.
 */
#ifndef ILM_TOKENIZER_INTERNAL_H
#define ILM_TOKENIZER_INTERNAL_H

#include "core/internal.h"

/* Piece types, numbered as SentencePiece's ModelProto.SentencePiece.Type. */
enum {
    ILM__PIECE_NORMAL       = 1,
    ILM__PIECE_UNKNOWN      = 2,
    ILM__PIECE_CONTROL      = 3,
    ILM__PIECE_USER_DEFINED = 4,
    ILM__PIECE_UNUSED       = 5,
    ILM__PIECE_BYTE         = 6
};

typedef enum ilm__tok_kind {
    ILM__TOK_SPM_BPE  = 1, /* SentencePiece BPE (LLaMA-2, Mistral, InternLM2) */
    ILM__TOK_BYTE_BPE = 2  /* byte-level BPE (GPT-2, LLaMA-3, SmolLM2)       */
} ilm__tok_kind;

/* A token recognised in text before the encoder runs (HF "added tokens",
 * SentencePiece control pieces).  `special` ones are recognised only with
 * ILM_TOKENIZE_SPECIAL; the others always. */
typedef struct ilm__added_token {
    char   *text;
    size_t  len;
    int32_t id;
    bool    special;
    bool    lstrip, rstrip; /* HF: swallow whitespace on that side */
    bool    from_vocab;     /* a vocabulary piece (SentencePiece control):
                               decoded by the kind's decoder, not as text */
} ilm__added_token;

/* SentencePiece normalizer and encoder options (NormalizerSpec and the parts
 * of TrainerSpec that change encoding).  Filled by the loader, then
 * ilm__spm_finish() builds the derived tables. */
typedef struct ilm__spm {
    bool add_dummy_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
    bool treat_whitespace_as_suffix;
    bool byte_fallback;
    bool split_digits; /* informational: encoding does not consult it */
    char *normalizer_name;
    char *unk_surface; /* how <unk> decodes; NULL means " \u2047 " */
    uint8_t *charsmap; /* precompiled_charsmap (double-array trie + strings) */
    size_t   charsmap_len;
    /* derived by ilm__spm_finish: */
    int32_t  byte_id[256];  /* id of piece <0xNN>, -1 when absent */
    uint64_t user_lens;     /* bit k-1: a user-defined piece of k bytes (k<64) */
    bool     user_long;     /* some user-defined piece is longer than 63 bytes */
    int32_t  max_user_len;  /* longest user-defined piece, 0 when none */
    uint8_t *user_first2;   /* 65536-bit bitmap of the first two bytes of user-
                               defined pieces (one-byte pieces: byte, 0) */
    /* Characters that some mergeable piece has right before / after a
     * "▁" (ASCII bitmaps, plus one flag for all others): BPE is cut into
     * independent segments where no piece can span (see spm_bpe.c). */
    uint8_t  pre_space[16], post_space[16];
    bool     pre_space_other, post_space_other;
    /* BPE on ids: (left id << 32 | right id) -> id of the mergeable piece
     * that is their concatenation, for every split of every such piece;
     * and the id of each single character (ASCII table, then code point). */
    ilm__u64map merge_of;
    int32_t    *bmp_id;  /* id of each Basic Multilingual Plane character, -1 */
    ilm__u64map char_id; /* the others, by code point */
    ilm__strmap user_defined; /* user-defined pieces, matched in text */
    const uint8_t  *trie;   /* the charsmap's double array (LE uint32 units) */
    size_t          trie_units;
    const char     *norm_strings; /* NUL-separated replacements */
    size_t          norm_strings_len;
} ilm__spm;

struct ilm__bbpe; /* byte-level BPE state, private to bytelevel.c */

struct ilm_tokenizer {
    ilm__tok_kind kind;
    /* Vocabulary: n_vocab pieces, indexed by id.  piece[i] is NUL-terminated
     * (piece_len excludes the NUL); a gap in a file's ids is an empty
     * UNUSED piece. */
    int32_t   n_vocab;
    char    **piece;
    uint32_t *piece_len;
    float    *score;
    uint8_t  *type;
    ilm__strmap piece_ids; /* piece text -> id; keys borrow piece[] */
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when absent */
    bool    add_bos, add_eos;               /* the files' defaults (info only) */
    ilm__added_token *added;
    size_t            n_added;
    ilm__spm          spm;  /* kind == ILM__TOK_SPM_BPE */
    struct ilm__bbpe *bbpe; /* kind == ILM__TOK_BYTE_BPE */
    /* Private to tokenizer.c: string storage and the added-token index. */
    struct ilm__arena *arena;
    ilm__u64map        added_of_id;   /* id -> index in added[] */
    uint8_t            added_first[32]; /* bitmap of first bytes */
};

/* ---- vocabulary building (tokenizer.c) --------------------------------- */

/* A zeroed tokenizer of `kind` with ids -1; *out is freed with
 * ilm_tokenizer_free on any later failure. */
ilm_status ilm__tok_new(ilm__tok_kind kind, ilm_tokenizer **out);
/* Sizes the vocabulary to n pieces (all empty UNUSED until set). */
ilm_status ilm__tok_vocab_resize(ilm_tokenizer *t, int32_t n);
/* Sets piece `id` (copied).  `what` names the file for messages.  A piece
 * that already exists under another id is ILM_ERR_FORMAT. */
ilm_status ilm__tok_set_piece(ilm_tokenizer *t, int32_t id, const char *piece, size_t len,
                              float score, uint8_t type, const char *what);
/* The vocabulary size a file that defines n_pieces pieces may ask for (ids
 * below it): ids may leave holes, but no more holes than pieces, so memory
 * stays proportional to the file and a few bytes cannot ask for gigabytes;
 * at most ilm__tok_vocab_resize's 2^28. */
int32_t ilm__tok_id_limit(size_t n_pieces);
/* Adds a token recognised in text (copied).  An id beyond the vocabulary
 * grows it; the piece of that id becomes `text`. */
ilm_status ilm__tok_add_token(ilm_tokenizer *t, const char *text, size_t len, int32_t id,
                              bool special, bool lstrip, bool rstrip);

/* ---- SentencePiece (spm_model.c, spm_bpe.c) ---------------------------- */

/* Parses a serialized ModelProto into t (a fresh ILM__TOK_SPM_BPE
 * tokenizer).  Non-BPE model types are ILM_ERR_UNSUPPORTED. */
ilm_status ilm__spm_load_model(ilm_tokenizer *t, const uint8_t *data, size_t size,
                               const char *path);
/* Builds the derived tables once the vocabulary and options are set. */
ilm_status ilm__spm_finish(ilm_tokenizer *t);
/* Pieces of words already merged, kept across the texts of one thread (it
 * is not thread-safe: one per thread).  It only saves work: the ids are the
 * same with or without it.  Bounded (64K words); it empties itself when
 * full or when used with another tokenizer. */
typedef struct ilm__tok_cache ilm__tok_cache;
ilm__tok_cache *ilm__tok_cache_create(void);
void            ilm__tok_cache_free(ilm__tok_cache *k);
/* ilm_tokenizer_encode with a cache (NULL: none); SentencePiece BPE uses
 * it, the other encoders ignore it. */
ilm_status ilm__tokenizer_encode_cached(const ilm_tokenizer *t, const char *text, size_t len,
                                        unsigned flags, ilm__tok_cache *cache, int32_t **ids,
                                        size_t *n_ids);
/* Ids that must not come out of some text (a chat template's markers, for
 * message content); n == 0 or a NULL pointer: none. */
typedef struct ilm__tok_deny {
    const int32_t *id;
    size_t         n;
} ilm__tok_deny;
static inline bool ilm__tok_denied(const ilm__tok_deny *d, int32_t id)
{
    for (size_t i = 0; d && i < d->n; i++)
        if (d->id[i] == id) return true;
    return false;
}
/* A prompt that a template built around text from users (message content):
 * `plain` holds n_plain sorted, disjoint [start, end) byte ranges of the
 * users' text (2 * n_plain offsets); `markers` are the template's own
 * token strings ("<|im_start|>", ...), those the vocabulary has. */
typedef struct ilm__tok_guard {
    const size_t      *plain;
    size_t             n_plain;
    const char *const *markers;
    size_t             n_markers;
} ilm__tok_guard;
/* ilm_tokenizer_encode(flags) of such a prompt, appended to out (of the
 * flags only ILM_TOKENIZE_SPECIAL counts: the template writes its own BOS
 * and EOS).  Inside the
 * plain ranges no special token is recognised (as without
 * ILM_TOKENIZE_SPECIAL) and no marker ever comes out: an added token or
 * SentencePiece user-defined piece that is a marker is read there as
 * ordinary characters, and no merge makes one.  Outside them each marker's
 * text is its id, even where the vocabulary has it as a user-defined piece
 * or a non-special added token.  ILM_ERR_UNSUPPORTED if a byte-level
 * vocabulary's merges would make a marker out of user text. */
ilm_status ilm__tok_encode_guarded(const ilm_tokenizer *t, const char *text, size_t len,
                                   unsigned flags, const ilm__tok_guard *g, ilm__ids *out);
/* Encodes plain text (no added-token handling) exactly like
 * sentencepiece's EncodeAsIds, appending to out. */
ilm_status ilm__spm_encode(const ilm_tokenizer *t, const char *text, size_t len,
                           ilm__ids *out);
/* The same for a part of a text split at added tokens: the dummy prefix is
 * added only to the part that starts the text (HF's prepend_scheme
 * "first").  cache (may be NULL) keeps merged words across calls; no id of
 * deny (may be NULL) comes out (user-defined pieces with such ids are read
 * as characters, and no merge makes one). */
ilm_status ilm__spm_encode_part(const ilm_tokenizer *t, const char *text, size_t len,
                                bool at_text_start, ilm__tok_cache *cache,
                                const ilm__tok_deny *deny, ilm__ids *out);
/* Appends the bytes id decodes to: "▁" -> " ", <0xNN> -> byte NN,
 * control pieces -> nothing, unknown -> " ⁇ ".  `bos_ws` says the text
 * so far is empty and a leading "▁" is the normalizer's to drop;
 * *consumed_bos_ws reports a dropped dummy prefix (sentencepiece's
 * is_bos_ws / bos_ws_seen pair, kept by the caller across pieces). */
ilm_status ilm__spm_piece_bytes(const ilm_tokenizer *t, int32_t id, bool bos_ws,
                                bool *consumed_bos_ws, ilm__buf *out);
void ilm__spm_free(ilm__spm *s);
/* "<0x41>" -> 0x41; -1 unless the piece is exactly <0xNN> (upper-case hex,
 * as sentencepiece writes them). */
int ilm__spm_byte_piece(const char *piece, size_t len);

/* ---- byte-level BPE (hf_json.c, bytelevel.c) --------------------------- */

/* Loads a parsed tokenizer.json into t (fresh, ILM__TOK_BYTE_BPE).  Models
 * other than byte-level BPE are ILM_ERR_UNSUPPORTED. */
ilm_status ilm__bbpe_load_json(ilm_tokenizer *t, const cJSON *root, const char *path);
/* Encodes plain text (no added-token handling), appending to out. */
ilm_status ilm__bbpe_encode(const ilm_tokenizer *t, const char *text, size_t len,
                            ilm__ids *out);
/* Appends the bytes id decodes to (byte-to-unicode mapping undone; added
 * tokens decode to their text). */
ilm_status ilm__bbpe_piece_bytes(const ilm_tokenizer *t, int32_t id, ilm__buf *out);
void ilm__bbpe_free(struct ilm__bbpe *b);

/* ---- GGUF vocabularies (gguf_vocab.c) ---------------------------------- */

/* Loads tokenizer.ggml.* from the GGUF file at path into *out. */
ilm_status ilm__tok_load_gguf(const char *path, ilm_tokenizer **out);

/* ---- writing and training (spm_write.c, train.c) ----------------------- */

/* Serializes t (ILM__TOK_SPM_BPE) as a ModelProto, atomically to path. */
ilm_status ilm__spm_write_model(const ilm_tokenizer *t, const char *path);

#endif /* ILM_TOKENIZER_INTERNAL_H */
