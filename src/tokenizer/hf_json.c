/*
 * Hugging Face tokenizer.json (the `tokenizers` library's serialization),
 * for byte-level BPE models: GPT-2, LLaMA-3, Qwen2, SmolLM2 and the like.
 *
 * Read: model {type "BPE", vocab, merges ("a b" strings or ["a", "b"]
 * pairs), ignore_merges, unk_token, fuse_unk}; normalizer (null, NFC,
 * NFKC, NFD, NFKD, Sequence); pre_tokenizer (ByteLevel, Split, Digits,
 * Sequence); decoder (ByteLevel); post_processor (TemplateProcessing,
 * RobertaProcessing, BertProcessing: the BOS/EOS they add); added_tokens.
 * Anything that would change the ids and that is not implemented --
 * another model type, a BPE that is not byte-level, an unknown normalizer
 * or pre-tokenizer -- is ILM_ERR_UNSUPPORTED naming it, so nothing is
 * ever encoded differently from the reference without saying so.
 */
#include "tokenizer/bytelevel.h"

#include <string.h>

typedef struct ctx {
    ilm_tokenizer    *t;
    struct ilm__bbpe *b;
    const char       *path;
    size_t            n_pieces; /* vocab entries + added tokens in the file */
    int32_t           id_limit; /* ilm__tok_id_limit(n_pieces) */
} ctx;

/* ---- small typed accessors (strict: a wrong type is ILM_ERR_FORMAT) ---- */

static const cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static ilm_status get_bool(const ctx *c, const cJSON *o, const char *key, const char *where,
                           bool *out)
{
    const cJSON *v = item(o, key);
    if (!v || cJSON_IsNull(v)) return ILM_OK;
    ILM__RETURN_IF(!cJSON_IsBool(v), ILM_ERR_FORMAT, "%s: %s.%s must be true or false",
                   c->path, where, key);
    *out = cJSON_IsTrue(v);
    return ILM_OK;
}

/* A string or null (*out NULL) or absent (*out untouched). */
static ilm_status get_str(const ctx *c, const cJSON *o, const char *key, const char *where,
                          const char **out)
{
    const cJSON *v = item(o, key);
    if (!v) return ILM_OK;
    if (cJSON_IsNull(v)) {
        *out = NULL;
        return ILM_OK;
    }
    ILM__RETURN_IF(!cJSON_IsString(v), ILM_ERR_FORMAT, "%s: %s.%s must be a string", c->path,
                   where, key);
    *out = v->valuestring;
    return ILM_OK;
}

/* An id, bounded by the file's own size before anything is allocated for
 * it: one id of 2^28 in a few bytes of JSON would otherwise size the
 * vocabulary to 2^28 pieces (gigabytes). */
static ilm_status get_id(const ctx *c, const cJSON *v, const char *what, int32_t *out)
{
    ILM__RETURN_IF(!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= INT32_MAX ||
                      v->valuedouble != (double)(int32_t)v->valuedouble,
                   ILM_ERR_FORMAT, "%s: %s must be a token id (a non-negative integer)",
                   c->path, what);
    ILM__RETURN_IF(v->valuedouble >= c->id_limit, ILM_ERR_FORMAT,
                   "%s: %s %.0f is too large: the file defines %zu pieces, so ids must be "
                   "below %d", c->path, what, v->valuedouble, c->n_pieces, c->id_limit);
    *out = (int32_t)v->valuedouble;
    return ILM_OK;
}

/* The "type" of a component object (NULL if the value is null). */
static ilm_status comp_type(const ctx *c, const cJSON *o, const char *where, const char **type)
{
    *type = NULL;
    if (!o || cJSON_IsNull(o)) return ILM_OK;
    ILM__RETURN_IF(!cJSON_IsObject(o), ILM_ERR_FORMAT, "%s: %s must be an object or null",
                   c->path, where);
    const cJSON *ty = item(o, "type");
    ILM__RETURN_IF(!cJSON_IsString(ty), ILM_ERR_FORMAT, "%s: %s has no \"type\" string",
                   c->path, where);
    *type = ty->valuestring;
    return ILM_OK;
}

static ilm_status get_array(const ctx *c, const cJSON *o, const char *key, const char *where,
                            const cJSON **out)
{
    const cJSON *v = item(o, key);
    ILM__RETURN_IF(!cJSON_IsArray(v), ILM_ERR_FORMAT, "%s: %s.%s must be an array", c->path,
                   where, key);
    *out = v;
    return ILM_OK;
}

/* ---- normalizer ---------------------------------------------------------- */

static ilm_status normalizer(ctx *c, const cJSON *o, const char *where)
{
    const char *type;
    ILM__FORWARD(comp_type(c, o, where, &type));
    if (!type) return ILM_OK;
    static const struct { const char *name; ilm__norm_form form; } forms[] = {
        { "NFC", ILM__NORM_NFC }, { "NFKC", ILM__NORM_NFKC },
        { "NFD", ILM__NORM_NFD }, { "NFKD", ILM__NORM_NFKD },
    };
    for (size_t i = 0; i < 4; i++)
        if (strcmp(type, forms[i].name) == 0) return ilm__bbpe_add_normalizer(c->b, forms[i].form);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list, *e;
        ILM__FORWARD(get_array(c, o, "normalizers", where, &list));
        cJSON_ArrayForEach(e, list) ILM__FORWARD(normalizer(c, e, "normalizer.normalizers[]"));
        return ILM_OK;
    }
    return ilm__error(ILM_ERR_UNSUPPORTED,
                      "%s: normalizer '%s' is not supported (NFC, NFKC, NFD, NFKD, Sequence)",
                      c->path, type);
}

/* ---- pre-tokenizer -------------------------------------------------------- */

static ilm_status split(ctx *c, const cJSON *o)
{
    const cJSON *pat = item(o, "pattern");
    ILM__RETURN_IF(!cJSON_IsObject(pat), ILM_ERR_FORMAT,
                   "%s: Split pre-tokenizer needs a pattern {\"Regex\"|\"String\": ...}", c->path);
    const cJSON *re = item(pat, "Regex"), *str = item(pat, "String");
    const cJSON *p = re ? re : str;
    ILM__RETURN_IF(!cJSON_IsString(p), ILM_ERR_FORMAT,
                   "%s: Split pattern must be {\"Regex\": string} or {\"String\": string}",
                   c->path);
    const char *beh = "Isolated";
    ILM__FORWARD(get_str(c, o, "behavior", "Split", &beh));
    static const struct { const char *name; ilm__split_behavior b; } behs[] = {
        { "Removed", ILM__SPLIT_REMOVED }, { "Isolated", ILM__SPLIT_ISOLATED },
        { "MergedWithPrevious", ILM__SPLIT_MERGED_WITH_PREVIOUS },
        { "MergedWithNext", ILM__SPLIT_MERGED_WITH_NEXT },
        { "Contiguous", ILM__SPLIT_CONTIGUOUS },
    };
    size_t k = 0;
    while (k < 5 && (!beh || strcmp(beh, behs[k].name) != 0)) k++;
    ILM__RETURN_IF(k == 5, ILM_ERR_FORMAT, "%s: Split behavior '%s' is unknown", c->path,
                   beh ? beh : "null");
    bool invert = false;
    ILM__FORWARD(get_bool(c, o, "invert", "Split", &invert));
    return ilm__bbpe_add_split(c->b, p->valuestring, strlen(p->valuestring), p == str,
                               behs[k].b, invert, c->path);
}

static ilm_status pre_tokenizer(ctx *c, const cJSON *o, const char *where, bool *bytelevel)
{
    const char *type;
    ILM__FORWARD(comp_type(c, o, where, &type));
    if (!type) return ILM_OK;
    if (strcmp(type, "ByteLevel") == 0) {
        bool prefix = true, use_regex = true; /* HF's defaults */
        ILM__FORWARD(get_bool(c, o, "add_prefix_space", "ByteLevel", &prefix));
        ILM__FORWARD(get_bool(c, o, "use_regex", "ByteLevel", &use_regex));
        *bytelevel = true;
        return ilm__bbpe_add_bytelevel(c->b, prefix, use_regex, c->path);
    }
    ILM__RETURN_IF(*bytelevel, ILM_ERR_UNSUPPORTED,
                   "%s: pre-tokenizer '%s' after ByteLevel is not supported", c->path, type);
    if (strcmp(type, "Split") == 0) return split(c, o);
    if (strcmp(type, "Digits") == 0) {
        bool individual = false;
        ILM__FORWARD(get_bool(c, o, "individual_digits", "Digits", &individual));
        return ilm__bbpe_add_digits(c->b, individual);
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list, *e;
        ILM__FORWARD(get_array(c, o, "pretokenizers", where, &list));
        cJSON_ArrayForEach(e, list)
            ILM__FORWARD(pre_tokenizer(c, e, "pre_tokenizer.pretokenizers[]", bytelevel));
        return ILM_OK;
    }
    return ilm__error(ILM_ERR_UNSUPPORTED,
                      "%s: pre-tokenizer '%s' is not supported (ByteLevel, Split, Digits, "
                      "Sequence)", c->path, type);
}

static ilm_status decoder(ctx *c, const cJSON *o, const char *where)
{
    const char *type;
    ILM__FORWARD(comp_type(c, o, where, &type));
    if (!type || strcmp(type, "ByteLevel") == 0) return ILM_OK;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list, *e;
        ILM__FORWARD(get_array(c, o, "decoders", where, &list));
        cJSON_ArrayForEach(e, list) ILM__FORWARD(decoder(c, e, "decoder.decoders[]"));
        return ILM_OK;
    }
    return ilm__error(ILM_ERR_UNSUPPORTED,
                      "%s: decoder '%s' is not supported (byte-level BPE uses ByteLevel)",
                      c->path, type);
}

/* ---- post-processor: which BOS / EOS the file adds ------------------------- */

/* The id of a special token named in a TemplateProcessing item. */
static ilm_status template_id(ctx *c, const cJSON *specials, const char *name, int32_t *out)
{
    const cJSON *sp = item(specials, name), *ids = sp ? item(sp, "ids") : NULL;
    const cJSON *first = cJSON_IsArray(ids) ? cJSON_GetArrayItem(ids, 0) : NULL;
    ILM__RETURN_IF(!first, ILM_ERR_FORMAT,
                   "%s: post_processor names special token '%s' without its ids", c->path, name);
    return get_id(c, first, "post_processor.special_tokens[].ids[0]", out);
}

static ilm_status post_processor(ctx *c, const cJSON *o, const char *where)
{
    const char *type;
    ILM__FORWARD(comp_type(c, o, where, &type));
    if (!type) return ILM_OK;
    ilm_tokenizer *t = c->t;
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *single, *e, *specials = item(o, "special_tokens");
        ILM__FORWARD(get_array(c, o, "single", where, &single));
        bool seen_seq = false;
        cJSON_ArrayForEach(e, single) {
            const cJSON *sp = item(e, "SpecialToken");
            if (item(e, "Sequence")) {
                seen_seq = true;
                continue;
            }
            const cJSON *name = sp ? item(sp, "id") : NULL;
            ILM__RETURN_IF(!cJSON_IsString(name), ILM_ERR_FORMAT,
                           "%s: post_processor.single has an item that is neither a "
                           "Sequence nor a SpecialToken", c->path);
            int32_t id;
            ILM__FORWARD(template_id(c, specials, name->valuestring, &id));
            if (!seen_seq) t->bos_id = id, t->add_bos = true;
            else t->eos_id = id, t->add_eos = true;
        }
        return ILM_OK;
    }
    if (strcmp(type, "RobertaProcessing") == 0 || strcmp(type, "BertProcessing") == 0) {
        const cJSON *cls = item(o, "cls"), *sep = item(o, "sep");
        ILM__RETURN_IF(cJSON_GetArraySize(cls) != 2 || cJSON_GetArraySize(sep) != 2,
                       ILM_ERR_FORMAT, "%s: %s needs cls and sep [token, id] pairs", c->path,
                       type);
        ILM__FORWARD(get_id(c, cJSON_GetArrayItem(cls, 1), "post_processor.cls[1]", &t->bos_id));
        ILM__FORWARD(get_id(c, cJSON_GetArrayItem(sep, 1), "post_processor.sep[1]", &t->eos_id));
        t->add_bos = t->add_eos = true;
        return ILM_OK;
    }
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list, *e;
        ILM__FORWARD(get_array(c, o, "processors", where, &list));
        cJSON_ArrayForEach(e, list) ILM__FORWARD(post_processor(c, e, "post_processor.processors[]"));
        return ILM_OK;
    }
    /* ByteLevel (offsets only) and anything else add no tokens we track:
     * the post-processor only matters for the add_bos/add_eos defaults. */
    return ILM_OK;
}

/* ---- the model ------------------------------------------------------------ */

static ilm_status vocab(ctx *c, const cJSON *model)
{
    const cJSON *v = item(model, "vocab"), *e;
    ILM__RETURN_IF(!cJSON_IsObject(v), ILM_ERR_FORMAT, "%s: model.vocab must be an object",
                   c->path);
    int32_t max = -1;
    cJSON_ArrayForEach(e, v) {
        int32_t id;
        ILM__FORWARD(get_id(c, e, "every model.vocab value", &id));
        if (id > max) max = id;
    }
    ILM__RETURN_IF(max < 0, ILM_ERR_FORMAT, "%s: model.vocab is empty", c->path);
    ILM__FORWARD(ilm__tok_vocab_resize(c->t, max + 1));
    cJSON_ArrayForEach(e, v)
        ILM__FORWARD(ilm__tok_set_piece(c->t, (int32_t)e->valuedouble, e->string,
                                       strlen(e->string), 0.0f, ILM__PIECE_NORMAL, c->path));
    return ILM_OK;
}

static ilm_status merges(ctx *c, const cJSON *model)
{
    const cJSON *list, *e;
    ILM__FORWARD(get_array(c, model, "merges", "model", &list));
    size_t i = 0;
    cJSON_ArrayForEach(e, list) {
        const char *l, *r;
        size_t ln, rn;
        if (cJSON_IsString(e)) {
            /* "a b": split at the first space after the first character,
             * since byte-level pieces never hold a plain space. */
            const char *s = e->valuestring, *sp = s[0] ? strchr(s + 1, ' ') : NULL;
            ILM__RETURN_IF(!sp, ILM_ERR_FORMAT, "%s: model.merges[%zu] ('%s') is not \"a b\"",
                           c->path, i, s);
            l = s;
            ln = (size_t)(sp - s);
            r = sp + 1;
            rn = strlen(r);
        } else {
            const cJSON *a = cJSON_GetArrayItem(e, 0), *b = cJSON_GetArrayItem(e, 1);
            ILM__RETURN_IF(!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 ||
                              !cJSON_IsString(a) || !cJSON_IsString(b),
                           ILM_ERR_FORMAT,
                           "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", c->path, i);
            l = a->valuestring;
            ln = strlen(l);
            r = b->valuestring;
            rn = strlen(r);
        }
        ILM__FORWARD(ilm__bbpe_add_merge(c->t, c->b, l, ln, r, rn, c->path));
        i++;
    }
    return ILM_OK;
}

static ilm_status model(ctx *c, const cJSON *m)
{
    ILM__RETURN_IF(!cJSON_IsObject(m), ILM_ERR_FORMAT, "%s: \"model\" must be an object",
                   c->path);
    const char *type = NULL;
    ILM__FORWARD(get_str(c, m, "type", "model", &type));
    /* Old files leave the type out; HF then recognises BPE by its merges. */
    if (!type && item(m, "merges")) type = "BPE";
    ILM__RETURN_IF(!type || strcmp(type, "BPE") != 0, ILM_ERR_UNSUPPORTED,
                   "%s: model type '%s' is not supported (only byte-level BPE is)", c->path,
                   type ? type : "?");
    const char *prefix = NULL, *suffix = NULL;
    ILM__FORWARD(get_str(c, m, "continuing_subword_prefix", "model", &prefix));
    ILM__FORWARD(get_str(c, m, "end_of_word_suffix", "model", &suffix));
    ILM__RETURN_IF((prefix && *prefix) || (suffix && *suffix), ILM_ERR_UNSUPPORTED,
                   "%s: BPE with continuing_subword_prefix / end_of_word_suffix is not "
                   "supported", c->path);
    const cJSON *drop = item(m, "dropout");
    ILM__RETURN_IF(cJSON_IsNumber(drop) && drop->valuedouble > 0, ILM_ERR_UNSUPPORTED,
                   "%s: BPE dropout is not supported (encoding would be random)", c->path);
    bool ignore = false, fuse = false, byte_fallback = false;
    ILM__FORWARD(get_bool(c, m, "ignore_merges", "model", &ignore));
    ILM__FORWARD(get_bool(c, m, "fuse_unk", "model", &fuse));
    ILM__FORWARD(get_bool(c, m, "byte_fallback", "model", &byte_fallback));
    (void)byte_fallback; /* every byte has a token in a byte-level vocabulary */
    ILM__FORWARD(vocab(c, m));
    const char *unk = NULL;
    ILM__FORWARD(get_str(c, m, "unk_token", "model", &unk));
    int32_t unk_id = unk ? ilm__strmap_get(&c->t->piece_ids, unk, strlen(unk)) : -1;
    if (unk_id >= 0) c->t->unk_id = unk_id;
    ilm__bbpe_set_options(c->b, ignore, unk_id, fuse);
    return merges(c, m);
}

static ilm_status added_tokens(ctx *c, const cJSON *root)
{
    const cJSON *list = item(root, "added_tokens"), *e;
    if (!list || cJSON_IsNull(list)) return ILM_OK;
    ILM__RETURN_IF(!cJSON_IsArray(list), ILM_ERR_FORMAT, "%s: added_tokens must be an array",
                   c->path);
    cJSON_ArrayForEach(e, list) {
        ILM__RETURN_IF(!cJSON_IsObject(e), ILM_ERR_FORMAT,
                       "%s: added_tokens[] must be objects", c->path);
        int32_t id;
        ILM__FORWARD(get_id(c, item(e, "id"), "added_tokens[].id", &id));
        const char *content = NULL;
        ILM__FORWARD(get_str(c, e, "content", "added_tokens[]", &content));
        ILM__RETURN_IF(!content || !*content, ILM_ERR_FORMAT,
                       "%s: added token %d has no content", c->path, id);
        bool special = false, lstrip = false, rstrip = false, single = false, norm = false;
        ILM__FORWARD(get_bool(c, e, "special", "added_tokens[]", &special));
        ILM__FORWARD(get_bool(c, e, "lstrip", "added_tokens[]", &lstrip));
        ILM__FORWARD(get_bool(c, e, "rstrip", "added_tokens[]", &rstrip));
        ILM__FORWARD(get_bool(c, e, "single_word", "added_tokens[]", &single));
        ILM__FORWARD(get_bool(c, e, "normalized", "added_tokens[]", &norm));
        ILM__RETURN_IF(single, ILM_ERR_UNSUPPORTED,
                       "%s: added token '%s' is single_word, which is not supported", c->path,
                       content);
        /* `normalized` asks HF to match the token in normalized text; the
         * normalizers read here leave such tokens (ASCII markup) alone. */
        ILM__FORWARD(ilm__tok_add_token(c->t, content, strlen(content), id, special, lstrip,
                                       rstrip));
    }
    return ILM_OK;
}

ilm_status ilm__bbpe_load_json(ilm_tokenizer *t, const cJSON *root, const char *path)
{
    ctx c = { t, NULL, path ? path : "tokenizer.json", 0, 0 };
    ILM__RETURN_IF(!cJSON_IsObject(root), ILM_ERR_FORMAT, "%s: not a JSON object", c.path);
    ILM__FORWARD(ilm__bbpe_new(&t->bbpe));
    c.b = t->bbpe;
    const cJSON *m = item(root, "model");
    ILM__RETURN_IF(!m, ILM_ERR_FORMAT, "%s: no \"model\"", c.path);
    const cJSON *v = cJSON_IsObject(m) ? item(m, "vocab") : NULL, *a = item(root, "added_tokens");
    c.n_pieces = (size_t)(cJSON_IsObject(v) ? cJSON_GetArraySize(v) : 0) +
                 (size_t)(cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0);
    c.id_limit = ilm__tok_id_limit(c.n_pieces);
    /* The model type first, so a WordPiece or Unigram file is reported as
     * such rather than by whichever of its parts we happen to read first. */
    const char *mtype = NULL;
    if (cJSON_IsObject(m)) ILM__FORWARD(get_str(&c, m, "type", "model", &mtype));
    ILM__RETURN_IF(mtype && strcmp(mtype, "BPE") != 0, ILM_ERR_UNSUPPORTED,
                   "%s: model type '%s' is not supported (only byte-level BPE is)", c.path,
                   mtype);
    ILM__FORWARD(normalizer(&c, item(root, "normalizer"), "normalizer"));
    bool bytelevel = false;
    ILM__FORWARD(pre_tokenizer(&c, item(root, "pre_tokenizer"), "pre_tokenizer", &bytelevel));
    ILM__RETURN_IF(!bytelevel, ILM_ERR_UNSUPPORTED,
                   "%s: a BPE model without a ByteLevel pre-tokenizer (SentencePiece-style "
                   "BPE with Metaspace/byte_fallback) is not supported; load the model's "
                   "tokenizer.model instead", c.path);
    ILM__FORWARD(decoder(&c, item(root, "decoder"), "decoder"));
    ILM__FORWARD(model(&c, m));
    ILM__FORWARD(ilm__bbpe_finish(t, t->bbpe, c.path));
    ILM__FORWARD(added_tokens(&c, root));
    return post_processor(&c, item(root, "post_processor"), "post_processor");
}
