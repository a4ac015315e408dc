/*
 * Tokenizers stored in GGUF files (tokenizer.ggml.* keys, as llama.cpp's
 * convert_hf_to_gguf.py writes them and llama-vocab.cpp reads them):
 *
 *   tokenizer.ggml.model       "gpt2" (byte-level BPE) or "llama"
 *                              (SentencePiece BPE); others unsupported
 *   tokenizer.ggml.tokens      [string] pieces by id
 *   tokenizer.ggml.token_type  [i32] 1 normal, 2 unknown, 3 control,
 *                              4 user defined, 5 unused, 6 byte
 *   tokenizer.ggml.scores      [f32] (SentencePiece)
 *   tokenizer.ggml.merges      [string] "left right" by rank (gpt2)
 *   tokenizer.ggml.pre         pre-tokenizer name (gpt2)
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id, add_bos_token,
 *   add_eos_token, add_space_prefix
 */
#include "formats/gguf.h"
#include "tokenizer/bytelevel.h"

#include <string.h>

/* ---- pre-tokenizer names ---------------------------------------------- */

/* The regexes llama.cpp (llama-vocab.cpp) applies for each
 * tokenizer.ggml.pre name, in order, each splitting the pieces of the one
 * before and keeping what it does not match (HF's Isolated).  Where
 * llama.cpp spells a regex by hand for its own engine, the original from
 * the model's tokenizer.json is used, which PCRE2 runs as it is. */
#define GPT2_RE  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define LLAMA3_RE                                                                       \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define QWEN2_RE                                                                        \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "               \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

typedef struct pre_row {
    const char *names; /* space-separated */
    bool        ignore_merges;
    const char *re[4];
} pre_row;

static const pre_row pre_rows[] = {
    /* llama.cpp's LLAMA_VOCAB_PRE_TYPE_DEFAULT (also an absent key). */
    { "default", false,
      { "[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+", "[0-9][0-9][0-9]" } },
    { "gpt-2 gpt2 mpt olmo jais", false, { GPT2_RE } },
    { "smollm starcoder refact command-r codeshell exaone minerva", false,
      { "\\p{N}", GPT2_RE } },
    { "llama3 llama-v3 llama-bpe dbrx smaug-bpe", true, { LLAMA3_RE } },
    { "qwen2 stablelm2", false, { QWEN2_RE } },
};

static bool name_in(const char *names, ilm__gguf_str s)
{
    for (const char *p = names; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == s.n && memcmp(p, s.p, n) == 0) return true;
        p += n + (e != NULL);
    }
    return false;
}

static ilm_status gpt2_pre(const ilm__gguf *g, struct ilm__bbpe *b)
{
    ilm__gguf_str pre = { "default", 7 };
    ilm_status s = ilm__gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    if (s != ILM_OK && s != ILM_ERR_NOT_FOUND) return s;
    for (size_t i = 0; i < sizeof pre_rows / sizeof pre_rows[0]; i++) {
        const pre_row *r = &pre_rows[i];
        if (!name_in(r->names, pre)) continue;
        for (size_t k = 0; k < 4 && r->re[k]; k++)
            ILM__FORWARD(ilm__bbpe_add_split(b, r->re[k], strlen(r->re[k]), false,
                                            ILM__SPLIT_ISOLATED, false, g->path));
        ILM__FORWARD(ilm__bbpe_add_bytelevel(b, false, false, g->path));
        ilm__bbpe_set_options(b, r->ignore_merges, -1, false);
        return ILM_OK;
    }
    return ilm__error(ILM_ERR_UNSUPPORTED,
                      "gguf: '%s': pre-tokenizer '%.*s' is not supported (known: smollm, "
                      "gpt2, llama3, qwen2, default and their aliases)",
                      g->path, (int)(pre.n > 64 ? 64 : pre.n), pre.p);
}

/* ---- common parts -------------------------------------------------------- */

/* Reads the pieces, types and scores into t. */
static ilm_status read_vocab(const ilm__gguf *g, ilm_tokenizer *t)
{
    const ilm__gguf_kv *toks, *types = NULL, *scores = NULL;
    ilm_status s = ilm__gguf_get_arr(g, "tokenizer.ggml.tokens", ILM__GGUF_STRING, &toks);
    ILM__RETURN_IF(s == ILM_ERR_NOT_FOUND, ILM_ERR_FORMAT,
                   "gguf: '%s' has no tokenizer.ggml.tokens", g->path);
    ILM__FORWARD(s);
    ILM__RETURN_IF(toks->count == 0 || toks->count > INT32_MAX, ILM_ERR_FORMAT,
                   "gguf: '%s': tokenizer.ggml.tokens has %llu pieces", g->path,
                   (unsigned long long)toks->count);
    s = ilm__gguf_get_arr(g, "tokenizer.ggml.token_type", ILM__GGUF_I32, &types);
    if (s != ILM_OK && s != ILM_ERR_NOT_FOUND) return s;
    s = ilm__gguf_get_arr(g, "tokenizer.ggml.scores", ILM__GGUF_F32, &scores);
    if (s != ILM_OK && s != ILM_ERR_NOT_FOUND) return s;
    ILM__RETURN_IF((types && types->count != toks->count) ||
                      (scores && scores->count != toks->count),
                   ILM_ERR_FORMAT,
                   "gguf: '%s': tokenizer.ggml.token_type/scores do not have one entry per "
                   "token (%llu)", g->path, (unsigned long long)toks->count);
    int32_t n = (int32_t)toks->count;
    ILM__FORWARD(ilm__tok_vocab_resize(t, n));
    size_t cur = 0;
    for (int32_t i = 0; i < n; i++) {
        ilm__gguf_str p;
        ilm__gguf_arr_next_str(toks, &cur, &p);
        int64_t ty = types ? ilm__gguf_arr_int(types, (uint64_t)i) : ILM__PIECE_NORMAL;
        /* llama.cpp's LLAMA_TOKEN_TYPE_UNDEFINED (0) reads as normal. */
        if (ty == 0) ty = ILM__PIECE_NORMAL;
        ILM__RETURN_IF(ty < ILM__PIECE_NORMAL || ty > ILM__PIECE_BYTE, ILM_ERR_FORMAT,
                       "gguf: '%s': token %d has type %lld", g->path, i, (long long)ty);
        float sc = scores ? (float)ilm__gguf_arr_float(scores, (uint64_t)i) : 0.0f;
        ILM__FORWARD(ilm__tok_set_piece(t, i, p.p, p.n, sc, (uint8_t)ty, g->path));
    }
    return ILM_OK;
}

/* An optional token id key: absent leaves *out; out of range is an error. */
static ilm_status read_id(const ilm__gguf *g, const char *key, int32_t n_vocab, int32_t *out)
{
    uint32_t v;
    ilm_status s = ilm__gguf_get_u32(g, key, &v);
    if (s == ILM_ERR_NOT_FOUND) return ILM_OK;
    ILM__FORWARD(s);
    ILM__RETURN_IF(v >= (uint32_t)n_vocab, ILM_ERR_FORMAT,
                   "gguf: '%s': %s is %u, outside the vocabulary of %d", g->path, key, v,
                   n_vocab);
    *out = (int32_t)v;
    return ILM_OK;
}

static ilm_status read_bool(const ilm__gguf *g, const char *key, bool *out)
{
    ilm_status s = ilm__gguf_get_bool(g, key, out);
    return s == ILM_ERR_NOT_FOUND ? ILM_OK : s;
}

static ilm_status read_specials(const ilm__gguf *g, ilm_tokenizer *t)
{
    ILM__FORWARD(read_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos_id));
    ILM__FORWARD(read_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos_id));
    ILM__FORWARD(read_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk_id));
    ILM__FORWARD(read_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad_id));
    ILM__FORWARD(read_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos));
    return read_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
}

/* ---- the two kinds ---------------------------------------------------- */

static ilm_status load_gpt2(const ilm__gguf *g, ilm_tokenizer *t)
{
    ILM__FORWARD(read_vocab(g, t));
    ILM__FORWARD(ilm__bbpe_new(&t->bbpe));
    ILM__FORWARD(gpt2_pre(g, t->bbpe));
    const ilm__gguf_kv *merges;
    ilm_status s = ilm__gguf_get_arr(g, "tokenizer.ggml.merges", ILM__GGUF_STRING, &merges);
    ILM__RETURN_IF(s == ILM_ERR_NOT_FOUND, ILM_ERR_FORMAT,
                   "gguf: '%s' has no tokenizer.ggml.merges", g->path);
    ILM__FORWARD(s);
    size_t cur = 0;
    for (uint64_t i = 0; i < merges->count; i++) {
        ilm__gguf_str m;
        ilm__gguf_arr_next_str(merges, &cur, &m);
        /* Split at the first space after the first byte, as llama.cpp
         * does: byte-level pieces never contain a plain space. */
        const char *sp = m.n > 1 ? memchr(m.p + 1, ' ', m.n - 1) : NULL;
        ILM__RETURN_IF(!sp, ILM_ERR_FORMAT, "gguf: '%s': merge %llu ('%.*s') is not \"a b\"",
                       g->path, (unsigned long long)i, (int)(m.n > 64 ? 64 : m.n), m.p);
        size_t ln = (size_t)(sp - m.p);
        ILM__FORWARD(ilm__bbpe_add_merge(t, t->bbpe, m.p, ln, sp + 1, m.n - ln - 1, g->path));
    }
    ILM__FORWARD(ilm__bbpe_finish(t, t->bbpe, g->path));
    t->add_bos = false;
    ILM__FORWARD(read_specials(g, t));
    /* Control and user-defined pieces are matched in text before BPE, as
     * llama.cpp and HF's added tokens do; control ones only on request. */
    for (int32_t i = 0; i < t->n_vocab; i++) {
        uint8_t ty = t->type[i];
        if ((ty == ILM__PIECE_CONTROL || ty == ILM__PIECE_USER_DEFINED) && t->piece_len[i])
            ILM__FORWARD(ilm__tok_add_token(t, t->piece[i], t->piece_len[i], i,
                                           ty == ILM__PIECE_CONTROL, false, false));
    }
    return ILM_OK;
}

static ilm_status load_llama(const ilm__gguf *g, ilm_tokenizer *t)
{
    ILM__FORWARD(read_vocab(g, t));
    ilm__spm *sp = &t->spm;
    /* llama.cpp's defaults for SentencePiece vocabularies: a dummy prefix
     * unless add_space_prefix says otherwise, whitespace escaped as "▁",
     * spaces kept as they are, no normalization table. */
    sp->add_dummy_prefix = true;
    ILM__FORWARD(read_bool(g, "tokenizer.ggml.add_space_prefix", &sp->add_dummy_prefix));
    sp->remove_extra_whitespaces = false;
    sp->escape_whitespaces = true;
    sp->treat_whitespace_as_suffix = false;
    sp->byte_fallback = false;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->type[i] == ILM__PIECE_BYTE) sp->byte_fallback = true;
    sp->normalizer_name = ilm__strdup("identity");
    ILM__RETURN_IF(!sp->normalizer_name, ILM_ERR_NOMEM, "gguf: out of memory");
    t->add_bos = true;
    ILM__FORWARD(read_specials(g, t));
    /* A file without unknown_token_id still marks its unknown piece. */
    for (int32_t i = 0; i < t->n_vocab && t->unk_id < 0; i++)
        if (t->type[i] == ILM__PIECE_UNKNOWN) t->unk_id = i;
    /* ilm__spm_finish also makes the control pieces special added tokens. */
    return ilm__spm_finish(t);
}

static ilm_status load(const ilm__gguf *g, ilm_tokenizer **out)
{
    ilm__gguf_str model;
    ilm_status s = ilm__gguf_get_str(g, "tokenizer.ggml.model", &model);
    ILM__RETURN_IF(s == ILM_ERR_NOT_FOUND, ILM_ERR_FORMAT,
                   "gguf: '%s' has no tokenizer (no tokenizer.ggml.model)", g->path);
    ILM__FORWARD(s);
    ilm__tok_kind kind;
    if (ilm__gguf_str_eq(model, "gpt2")) kind = ILM__TOK_BYTE_BPE;
    else if (ilm__gguf_str_eq(model, "llama")) kind = ILM__TOK_SPM_BPE;
    else
        return ilm__error(ILM_ERR_UNSUPPORTED,
                          "gguf: '%s': tokenizer model '%.*s' is not supported (gpt2 and "
                          "llama are)", g->path, (int)(model.n > 64 ? 64 : model.n), model.p);
    ILM__FORWARD(ilm__tok_new(kind, out));
    return kind == ILM__TOK_BYTE_BPE ? load_gpt2(g, *out) : load_llama(g, *out);
}

ilm_status ilm__tok_load_gguf(const char *path, ilm_tokenizer **out)
{
    *out = NULL;
    ilm__gguf *g;
    ILM__FORWARD(ilm__gguf_open(path, &g));
    ilm_tokenizer *t = NULL;
    ilm_status s = load(g, &t);
    ilm__gguf_close(g);
    if (s != ILM_OK) {
        ilm_tokenizer_free(t);
        return s;
    }
    *out = t;
    return ILM_OK;
}
