/* SentencePiece ModelProto writer: the inverse of spm_model.c.
 *
 * The file is protobuf wire format (proto2, sentencepiece_model.proto),
 * written by hand: varints (wire type 0), little-endian fixed32 floats
 * (wire type 5) and length-delimited strings and sub-messages (wire type 2).
 * Only the fields that change how sentencepiece encodes are written, with
 * proto2 defaults written explicitly where ours differ (add_dummy_prefix and
 * remove_extra_whitespaces default to true there), so that sentencepiece
 * loads the file with exactly the options this tokenizer holds.
 *
 *   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                   3 normalizer_spec
 *   SentencePiece   1 piece (string), 2 score (float), 3 type (enum,
 *                   default NORMAL = 1)
 *   TrainerSpec     3 model_type (BPE = 2), 4 vocab_size,
 *                   24 treat_whitespace_as_suffix, 25 split_digits,
 *                   35 byte_fallback, 40..43 unk/bos/eos/pad id,
 *                   44 unk_surface, 45..48 unk/bos/eos/pad piece
 *   NormalizerSpec  1 name, 2 precompiled_charsmap (bytes),
 *                   3 add_dummy_prefix, 4 remove_extra_whitespaces,
 *                   5 escape_whitespaces
 */
#include "tokenizer/internal.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

static ilm_status put_varint(ilm__buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        tmp[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
    } while (v);
    return ilm__buf_append(b, tmp, n);
}

static ilm_status put_tag(ilm__buf *b, uint32_t field, uint32_t wire)
{
    return put_varint(b, ((uint64_t)field << 3) | wire);
}

/* int32 fields: negative values are sign-extended to 64 bits, as protobuf
 * does (pad_id = -1 takes ten bytes). */
static ilm_status put_int32(ilm__buf *b, uint32_t field, int32_t v)
{
    ILM__FORWARD(put_tag(b, field, WIRE_VARINT));
    return put_varint(b, (uint64_t)(int64_t)v);
}

static ilm_status put_bool(ilm__buf *b, uint32_t field, bool v)
{
    ILM__FORWARD(put_tag(b, field, WIRE_VARINT));
    return put_varint(b, v ? 1 : 0);
}

static ilm_status put_bytes(ilm__buf *b, uint32_t field, const void *data, size_t n)
{
    ILM__FORWARD(put_tag(b, field, WIRE_LEN));
    ILM__FORWARD(put_varint(b, n));
    return ilm__buf_append(b, data, n);
}

static ilm_status put_float(ilm__buf *b, uint32_t field, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint8_t le[4] = { (uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24) };
    ILM__FORWARD(put_tag(b, field, WIRE_FIXED32));
    return ilm__buf_append(b, le, sizeof le);
}

/* The piece of a special id, or NULL when the id is absent. */
static const char *special_piece(const ilm_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab ? t->piece[id] : NULL;
}

static ilm_status put_trainer_spec(ilm__buf *b, const ilm_tokenizer *t)
{
    ILM__FORWARD(put_int32(b, 3, 2)); /* model_type = BPE */
    ILM__FORWARD(put_int32(b, 4, t->n_vocab));
    ILM__FORWARD(put_bool(b, 24, t->spm.treat_whitespace_as_suffix));
    ILM__FORWARD(put_bool(b, 25, t->spm.split_digits));
    ILM__FORWARD(put_bool(b, 35, t->spm.byte_fallback));
    const int32_t ids[4] = { t->unk_id, t->bos_id, t->eos_id, t->pad_id };
    for (uint32_t i = 0; i < 4; i++) ILM__FORWARD(put_int32(b, 40 + i, ids[i]));
    if (t->spm.unk_surface)
        ILM__FORWARD(put_bytes(b, 44, t->spm.unk_surface, strlen(t->spm.unk_surface)));
    /* The pieces fields are informational for sentencepiece (it finds the
     * special ids by type), but its trainer writes them and tools read them. */
    for (uint32_t i = 0; i < 4; i++) {
        const char *p = special_piece(t, ids[i]);
        if (p) ILM__FORWARD(put_bytes(b, 45 + i, p, strlen(p)));
    }
    return ILM_OK;
}

static ilm_status put_normalizer_spec(ilm__buf *b, const ilm_tokenizer *t)
{
    const ilm__spm *s = &t->spm;
    const char *name = s->normalizer_name ? s->normalizer_name : "identity";
    ILM__FORWARD(put_bytes(b, 1, name, strlen(name)));
    if (s->charsmap_len) ILM__FORWARD(put_bytes(b, 2, s->charsmap, s->charsmap_len));
    ILM__FORWARD(put_bool(b, 3, s->add_dummy_prefix));
    ILM__FORWARD(put_bool(b, 4, s->remove_extra_whitespaces));
    return put_bool(b, 5, s->escape_whitespaces);
}

static ilm_status put_piece(ilm__buf *b, ilm__buf *tmp, const ilm_tokenizer *t, int32_t id)
{
    tmp->n = 0;
    ILM__FORWARD(put_bytes(tmp, 1, t->piece[id], t->piece_len[id]));
    ILM__FORWARD(put_float(tmp, 2, t->score[id]));
    if (t->type[id] != ILM__PIECE_NORMAL) ILM__FORWARD(put_int32(tmp, 3, t->type[id]));
    return put_bytes(b, 1, tmp->p, tmp->n);
}

/* Serializes the whole ModelProto into out. */
static ilm_status serialize(const ilm_tokenizer *t, ilm__buf *out, ilm__buf *tmp)
{
    for (int32_t id = 0; id < t->n_vocab; id++) {
        /* sentencepiece rejects empty pieces, so a vocabulary with gaps
         * (possible in GGUF or tokenizer.json vocabularies) cannot be
         * represented faithfully. */
        ILM__RETURN_IF(t->piece_len[id] == 0, ILM_ERR_INVALID_ARG,
                       "sentencepiece writer: piece %d is empty", (int)id);
        ILM__FORWARD(put_piece(out, tmp, t, id));
    }
    tmp->n = 0;
    ILM__FORWARD(put_trainer_spec(tmp, t));
    ILM__FORWARD(put_bytes(out, 2, tmp->p, tmp->n));
    tmp->n = 0;
    ILM__FORWARD(put_normalizer_spec(tmp, t));
    return put_bytes(out, 3, tmp->p, tmp->n);
}

ilm_status ilm__spm_write_model(const ilm_tokenizer *t, const char *path)
{
    ILM__RETURN_IF(!t || !path, ILM_ERR_INVALID_ARG, "sentencepiece writer: NULL argument");
    ILM__RETURN_IF(t->kind != ILM__TOK_SPM_BPE, ILM_ERR_UNSUPPORTED,
                   "sentencepiece writer: '%s': only SentencePiece BPE tokenizers can be "
                   "written as tokenizer.model", path);
    ilm__buf out = { 0 }, tmp = { 0 };
    ilm_status st = serialize(t, &out, &tmp);
    if (st == ILM_OK) st = ilm__atomic_write_buf(path, out.p, out.n);
    ilm__buf_free(&out);
    ilm__buf_free(&tmp);
    return st;
}
