/*
 * SentencePiece model files: a serialized ModelProto (sentencepiece_model.
 * proto), read with a small protobuf wire-format reader.  Only the fields
 * that change encoding or decoding are kept; every other field is skipped
 * by its wire type, so files from newer sentencepiece versions still load.
 *
 * ModelProto:      1 pieces (repeated SentencePiece), 2 trainer_spec,
 *                  3 normalizer_spec, 5 denormalizer_spec
 * SentencePiece:   1 piece (string), 2 score (float), 3 type (enum, NORMAL)
 * TrainerSpec:     3 model_type (UNIGRAM=1 default, BPE=2), 24
 *                  treat_whitespace_as_suffix, 25 split_digits, 35
 *                  byte_fallback, 44 unk_surface, 46/47/48 bos/eos/pad piece
 * NormalizerSpec:  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix (true),
 *                  4 remove_extra_whitespaces (true), 5 escape_whitespaces (true)
 */
#include "tokenizer/internal.h"

#include <string.h>

/* A cursor over protobuf bytes.  `what` names the file for messages. */
typedef struct pb {
    const uint8_t *p, *end;
    const char    *what;
} pb;

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static ilm_status pb_varint(pb *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        ILM__RETURN_IF(r->p >= r->end, ILM_ERR_FORMAT, "%s: truncated varint", r->what);
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return ILM_OK;
        }
    }
    return ilm__error(ILM_ERR_FORMAT, "%s: varint longer than 10 bytes", r->what);
}

/* Reads a field key; *field 0 means the end of the message. */
static ilm_status pb_key(pb *r, uint32_t *field, uint32_t *wire)
{
    if (r->p == r->end) {
        *field = 0;
        return ILM_OK;
    }
    uint64_t k;
    ILM__FORWARD(pb_varint(r, &k));
    *field = (uint32_t)(k >> 3);
    *wire = (uint32_t)(k & 7);
    ILM__RETURN_IF(*field == 0 || k >> 32, ILM_ERR_FORMAT, "%s: invalid field number", r->what);
    return ILM_OK;
}

/* A length-delimited payload as a sub-cursor. */
static ilm_status pb_len(pb *r, pb *sub)
{
    uint64_t n;
    ILM__FORWARD(pb_varint(r, &n));
    ILM__RETURN_IF(n > (uint64_t)(r->end - r->p), ILM_ERR_FORMAT,
                   "%s: a field claims %llu bytes but %zu remain", r->what,
                   (unsigned long long)n, (size_t)(r->end - r->p));
    *sub = (pb){ r->p, r->p + n, r->what };
    r->p += n;
    return ILM_OK;
}

static ilm_status pb_skip(pb *r, uint32_t wire)
{
    uint64_t v;
    pb sub = { 0 };
    size_t n = wire == WIRE_I64 ? 8 : 4;
    switch (wire) {
    case WIRE_VARINT: return pb_varint(r, &v);
    case WIRE_LEN: return pb_len(r, &sub);
    case WIRE_I64:
    case WIRE_I32:
        ILM__RETURN_IF((size_t)(r->end - r->p) < n, ILM_ERR_FORMAT, "%s: truncated field", r->what);
        r->p += n;
        return ILM_OK;
    default:
        return ilm__error(ILM_ERR_FORMAT, "%s: unsupported wire type %u", r->what, wire);
    }
}

static ilm_status expect_wire(const pb *r, const char *field, uint32_t wire, uint32_t want)
{
    ILM__RETURN_IF(wire != want, ILM_ERR_FORMAT, "%s: field '%s' has wire type %u, expected %u",
                   r->what, field, wire, want);
    return ILM_OK;
}

static ilm_status pb_bool(pb *r, const char *field, uint32_t wire, bool *out)
{
    uint64_t v;
    ILM__FORWARD(expect_wire(r, field, wire, WIRE_VARINT));
    ILM__FORWARD(pb_varint(r, &v));
    *out = v != 0;
    return ILM_OK;
}

static ilm_status pb_float(pb *r, const char *field, uint32_t wire, float *out)
{
    ILM__FORWARD(expect_wire(r, field, wire, WIRE_I32));
    ILM__RETURN_IF(r->end - r->p < 4, ILM_ERR_FORMAT, "%s: truncated float", r->what);
    uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    memcpy(out, &u, 4);
    r->p += 4;
    return ILM_OK;
}

/* ---- the pieces -------------------------------------------------------- */

typedef struct raw_piece {
    const uint8_t *text;
    size_t         len;
    float          score;
    uint32_t       type;
} raw_piece;

static ilm_status parse_piece(pb *r, raw_piece *out)
{
    *out = (raw_piece){ NULL, 0, 0.0f, ILM__PIECE_NORMAL };
    bool have_text = false;
    for (;;) {
        uint32_t f, w;
        ILM__FORWARD(pb_key(r, &f, &w));
        if (f == 0) break;
        if (f == 1) {
            pb s = { 0 };
            ILM__FORWARD(expect_wire(r, "piece", w, WIRE_LEN));
            ILM__FORWARD(pb_len(r, &s));
            out->text = s.p;
            out->len = (size_t)(s.end - s.p);
            have_text = true;
        } else if (f == 2) {
            ILM__FORWARD(pb_float(r, "score", w, &out->score));
        } else if (f == 3) {
            uint64_t v;
            ILM__FORWARD(expect_wire(r, "type", w, WIRE_VARINT));
            ILM__FORWARD(pb_varint(r, &v));
            out->type = v > 255 ? 0 : (uint32_t)v;
        } else {
            ILM__FORWARD(pb_skip(r, w));
        }
    }
    ILM__RETURN_IF(!have_text, ILM_ERR_FORMAT, "%s: a piece has no text", r->what);
    return ILM_OK;
}

/* ---- the specs --------------------------------------------------------- */

typedef struct specs {
    uint64_t model_type;
    const uint8_t *unk_surface, *bos_piece, *eos_piece, *pad_piece;
    size_t unk_surface_len, bos_len, eos_len, pad_len;
} specs;

static ilm_status parse_string(pb *r, const char *field, uint32_t w, const uint8_t **s, size_t *n)
{
    pb sub = { 0 };
    ILM__FORWARD(expect_wire(r, field, w, WIRE_LEN));
    ILM__FORWARD(pb_len(r, &sub));
    *s = sub.p;
    *n = (size_t)(sub.end - sub.p);
    return ILM_OK;
}

static ilm_status parse_trainer(pb *r, ilm__spm *spm, specs *sp)
{
    for (;;) {
        uint32_t f, w;
        uint64_t v;
        ILM__FORWARD(pb_key(r, &f, &w));
        if (f == 0) return ILM_OK;
        switch (f) {
        case 3:
            ILM__FORWARD(expect_wire(r, "model_type", w, WIRE_VARINT));
            ILM__FORWARD(pb_varint(r, &v));
            sp->model_type = v;
            break;
        case 24: ILM__FORWARD(pb_bool(r, "treat_whitespace_as_suffix", w,
                                     &spm->treat_whitespace_as_suffix)); break;
        case 25: ILM__FORWARD(pb_bool(r, "split_digits", w, &spm->split_digits)); break;
        case 35: ILM__FORWARD(pb_bool(r, "byte_fallback", w, &spm->byte_fallback)); break;
        case 44: ILM__FORWARD(parse_string(r, "unk_surface", w, &sp->unk_surface,
                                          &sp->unk_surface_len)); break;
        case 46: ILM__FORWARD(parse_string(r, "bos_piece", w, &sp->bos_piece, &sp->bos_len)); break;
        case 47: ILM__FORWARD(parse_string(r, "eos_piece", w, &sp->eos_piece, &sp->eos_len)); break;
        case 48: ILM__FORWARD(parse_string(r, "pad_piece", w, &sp->pad_piece, &sp->pad_len)); break;
        default: ILM__FORWARD(pb_skip(r, w));
        }
    }
}

static ilm_status parse_normalizer(pb *r, ilm__spm *spm)
{
    for (;;) {
        uint32_t f, w;
        const uint8_t *s;
        size_t n;
        ILM__FORWARD(pb_key(r, &f, &w));
        if (f == 0) return ILM_OK;
        switch (f) {
        case 1:
            ILM__FORWARD(parse_string(r, "name", w, &s, &n));
            ilm__free(spm->normalizer_name);
            spm->normalizer_name = ilm__strndup((const char *)s, n);
            ILM__RETURN_IF(!spm->normalizer_name, ILM_ERR_NOMEM, "%s: out of memory", r->what);
            break;
        case 2:
            ILM__FORWARD(parse_string(r, "precompiled_charsmap", w, &s, &n));
            ilm__free(spm->charsmap);
            spm->charsmap = NULL;
            spm->charsmap_len = 0;
            if (n) {
                spm->charsmap = ilm__malloc(n);
                ILM__RETURN_IF(!spm->charsmap, ILM_ERR_NOMEM, "%s: out of memory", r->what);
                memcpy(spm->charsmap, s, n);
                spm->charsmap_len = n;
            }
            break;
        case 3: ILM__FORWARD(pb_bool(r, "add_dummy_prefix", w, &spm->add_dummy_prefix)); break;
        case 4: ILM__FORWARD(pb_bool(r, "remove_extra_whitespaces", w,
                                    &spm->remove_extra_whitespaces)); break;
        case 5: ILM__FORWARD(pb_bool(r, "escape_whitespaces", w, &spm->escape_whitespaces)); break;
        default: ILM__FORWARD(pb_skip(r, w));
        }
    }
}

/* Reads one SentencePiece message into vocabulary slot `id`, checking what
 * sentencepiece checks: non-empty valid UTF-8, a known type, well-formed
 * byte pieces, a single unknown piece. */
static ilm_status add_piece(ilm_tokenizer *t, pb *msg, int32_t id, const char *path)
{
    raw_piece p;
    ILM__FORWARD(parse_piece(msg, &p));
    ILM__RETURN_IF(p.len == 0, ILM_ERR_FORMAT, "%s: piece %d is empty", path, id);
    for (size_t i = 0; i < p.len;) {
        uint32_t cp;
        size_t l = ilm__utf8_decode((const char *)p.text + i, p.len - i, &cp);
        ILM__RETURN_IF(l == 0, ILM_ERR_FORMAT, "%s: piece %d is not valid UTF-8", path, id);
        i += l;
    }
    ILM__RETURN_IF(p.type < ILM__PIECE_NORMAL || p.type > ILM__PIECE_BYTE, ILM_ERR_FORMAT,
                   "%s: piece %d has unknown type %u", path, id, p.type);
    ILM__RETURN_IF(p.type == ILM__PIECE_BYTE && ilm__spm_byte_piece((const char *)p.text, p.len) < 0,
                   ILM_ERR_FORMAT, "%s: byte piece %d ('%.*s') is not <0xNN>", path, id,
                   (int)p.len, (const char *)p.text);
    /* sentencepiece 0.2 treats a normal "\0" piece as unused when byte
     * fallback is on (the byte <0x00> covers it). */
    if (p.len == 1 && p.text[0] == 0 && p.type == ILM__PIECE_NORMAL && t->spm.byte_fallback)
        p.type = ILM__PIECE_UNUSED;
    ILM__FORWARD(ilm__tok_set_piece(t, id, (const char *)p.text, p.len, p.score, (uint8_t)p.type,
                                   path));
    if (p.type == ILM__PIECE_UNKNOWN) {
        ILM__RETURN_IF(t->unk_id >= 0, ILM_ERR_FORMAT, "%s: two unknown pieces (%d and %d)", path,
                       t->unk_id, id);
        t->unk_id = id;
    }
    return ILM_OK;
}

static int32_t find_piece(const ilm_tokenizer *t, const uint8_t *s, size_t n, const char *dflt)
{
    if (!s) {
        s = (const uint8_t *)dflt;
        n = strlen(dflt);
    }
    return ilm__strmap_get(&t->piece_ids, (const char *)s, n);
}

ilm_status ilm__spm_load_model(ilm_tokenizer *t, const uint8_t *data, size_t size,
                               const char *path)
{
    pb r = { data, data + size, path };
    specs sp = { .model_type = 1 }; /* proto default: UNIGRAM */
    /* sentencepiece's NormalizerSpec defaults, which apply when the fields
     * are absent from the file. */
    t->spm.add_dummy_prefix = true;
    t->spm.remove_extra_whitespaces = true;
    t->spm.escape_whitespaces = true;

    /* First pass: the specs (they decide how pieces are read, and protobuf
     * allows fields in any order) and the piece count, so the vocabulary
     * is sized once. */
    size_t n_pieces = 0;
    bool have_trainer = false;
    for (pb c = r;;) {
        uint32_t f, w;
        pb sub = { 0 };
        ILM__FORWARD(pb_key(&c, &f, &w));
        if (f == 0) break;
        if (f < 1 || f > 3) {
            ILM__FORWARD(pb_skip(&c, w));
            continue;
        }
        ILM__FORWARD(expect_wire(&c, f == 1 ? "pieces" : f == 2 ? "trainer_spec" : "normalizer_spec",
                                w, WIRE_LEN));
        ILM__FORWARD(pb_len(&c, &sub));
        if (f == 1) {
            n_pieces++;
        } else if (f == 2) {
            have_trainer = true;
            ILM__FORWARD(parse_trainer(&sub, &t->spm, &sp));
        } else {
            ILM__FORWARD(parse_normalizer(&sub, &t->spm));
        }
    }
    ILM__RETURN_IF(n_pieces == 0, ILM_ERR_FORMAT, "%s: no pieces (not a SentencePiece model?)", path);
    ILM__RETURN_IF(!have_trainer || sp.model_type != 2, ILM_ERR_UNSUPPORTED,
                   "%s: SentencePiece model type %s is not supported (only BPE)", path,
                   sp.model_type == 1 ? "unigram" : sp.model_type == 3 ? "word"
                                               : sp.model_type == 4 ? "char" : "unknown");
    ILM__RETURN_IF(n_pieces > INT32_MAX / 2, ILM_ERR_FORMAT, "%s: %zu pieces", path, n_pieces);
    ILM__FORWARD(ilm__tok_vocab_resize(t, (int32_t)n_pieces));

    int32_t id = 0;
    for (;;) {
        uint32_t f, w;
        pb sub = { 0 };
        ILM__FORWARD(pb_key(&r, &f, &w));
        if (f == 0) break;
        if (f != 1) {
            ILM__FORWARD(pb_skip(&r, w));
            continue;
        }
        ILM__FORWARD(pb_len(&r, &sub));
        ILM__FORWARD(add_piece(t, &sub, id++, path));
    }
    ILM__RETURN_IF(t->unk_id < 0, ILM_ERR_FORMAT, "%s: no unknown piece", path);
    if (sp.unk_surface) {
        t->spm.unk_surface = ilm__strndup((const char *)sp.unk_surface, sp.unk_surface_len);
        ILM__RETURN_IF(!t->spm.unk_surface, ILM_ERR_NOMEM, "%s: out of memory", path);
    }

    /* Like sentencepiece's bos_id()/eos_id()/pad_id(): the named pieces,
     * when they exist as control (or user-defined) pieces. */
    int32_t ids[3] = { find_piece(t, sp.bos_piece, sp.bos_len, "<s>"),
                       find_piece(t, sp.eos_piece, sp.eos_len, "</s>"),
                       find_piece(t, sp.pad_piece, sp.pad_len, "<pad>") };
    for (int i = 0; i < 3; i++)
        if (ids[i] >= 0 && t->type[ids[i]] != ILM__PIECE_CONTROL &&
            t->type[ids[i]] != ILM__PIECE_USER_DEFINED)
            ids[i] = -1;
    t->bos_id = ids[0];
    t->eos_id = ids[1];
    t->pad_id = ids[2];
    t->add_bos = t->bos_id >= 0; /* what LLaMA-family HF configs do */
    return ilm__spm_finish(t);
}
