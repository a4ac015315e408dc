/* SentencePiece-BPE tokenizers against sentencepiece itself (fixtures from
 * tools/reference/spm_fixtures.py), the handle's API, special tokens, the
 * streaming decoder, and bad model files. */
#include "tests.h"
#include "tokenizer/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define FIX "tests/fixtures/tokenizer/"

/* ---- fixtures ---------------------------------------------------------- */

/* The whole of a gzip (or plain) file, malloc'd. */
static unsigned char *read_gz(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 1 << 20, n = 0;
    unsigned char *buf = malloc(cap);
    int got;
    while ((got = gzread(f, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    ck_assert_int_ge(got, 0);
    gzclose(f);
    *len = n;
    return buf;
}

typedef struct corpus {
    unsigned char *data;
    size_t n;
    const unsigned char **text;
    size_t *len;
} corpus;

static corpus load_corpus(void)
{
    corpus c = { 0 };
    size_t size;
    c.data = read_gz(FIX "spm_corpus.bin.gz", &size);
    c.text = malloc(4096 * sizeof *c.text);
    c.len = malloc(4096 * sizeof *c.len);
    for (size_t off = 0; off + 4 <= size && c.n < 4096;) {
        uint32_t l = (uint32_t)c.data[off] | (uint32_t)c.data[off + 1] << 8 |
                     (uint32_t)c.data[off + 2] << 16 | (uint32_t)c.data[off + 3] << 24;
        ck_assert_uint_le(off + 4 + l, size);
        c.text[c.n] = c.data + off + 4;
        c.len[c.n++] = l;
        off += 4 + l;
    }
    ck_assert_uint_gt(c.n, 500);
    return c;
}

static void free_corpus(corpus *c)
{
    free(c->data);
    free(c->text);
    free(c->len);
}

static char *read_text(const char *path)
{
    size_t n;
    unsigned char *b = read_gz(path, &n);
    b = realloc(b, n + 1);
    b[n] = '\0';
    return (char *)b;
}

static uint64_t fnv64(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_ids(const int32_t *ids, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

/* Resolves a fixture's model source: "shared:", "pydeps:" or "fixture:"
 * (gzip, unpacked into tmp).  NULL when a real model is not installed. */
static const char *model_path(const char *source, const char *tmp)
{
    static char path[4096];
    if (strncmp(source, "shared:", 7) == 0) return test_shared_file(source + 7);
    if (strncmp(source, "pydeps:", 7) == 0) return test_pydeps_file(source + 7);
    ck_assert(strncmp(source, "fixture:", 8) == 0);
    char src[4096];
    snprintf(src, sizeof src, FIX "%s", source + 8);
    size_t n;
    unsigned char *data = read_gz(src, &n);
    snprintf(path, sizeof path, "%s/tokenizer.model", tmp);
    FILE *f = fopen(path, "wb");
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    free(data);
    return path;
}

/* ---- against sentencepiece --------------------------------------------- */

static const char *spm_fixtures[] = { "internlm2", "internlm", "mistral_v1", "nfkc_unk",
                                      "identity_bytes", "suffix_bytes", "no_ws_split" };

START_TEST(spm_ids_equal_sentencepiece)
{
    char fixture[256];
    snprintf(fixture, sizeof fixture, FIX "spm_%s.json", spm_fixtures[_i]);
    char *text = read_text(fixture);
    cJSON *fx = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(fx);
    char *tmp = test_tmpdir();
    const char *path = model_path(cJSON_GetObjectItem(fx, "source")->valuestring, tmp);
    if (!path) {
        cJSON_Delete(fx);
        test_rmtree(tmp);
        free(tmp);
        return; /* the real model is not installed: skipped with a message */
    }
    ilm_tokenizer *tok = NULL;
    ck_assert_msg(ilm_tokenizer_load(path, &tok) == ILM_OK, "%s: %s", path, ilm_last_error());
    ck_assert_int_eq(ilm_tokenizer_vocab_size(tok), cJSON_GetObjectItem(fx, "vocab_size")->valueint);
    ck_assert_int_eq(ilm_tokenizer_bos(tok), cJSON_GetObjectItem(fx, "bos")->valueint);
    ck_assert_int_eq(ilm_tokenizer_eos(tok), cJSON_GetObjectItem(fx, "eos")->valueint);

    corpus c = load_corpus();
    const cJSON *chunks = cJSON_GetObjectItem(fx, "chunks");
    const cJSON *heads = cJSON_GetObjectItem(fx, "head_ids");
    ck_assert_int_eq(cJSON_GetArraySize(chunks), (int)c.n);
    size_t total_ids = 0, total_bytes = 0;
    ilm_detokenizer *stream = NULL;
    ck_assert_int_eq(ilm_detokenizer_create(tok, 0, &stream), ILM_OK);
    ilm__tok_cache *cache = ilm__tok_cache_create();
    ck_assert_ptr_nonnull(cache);
    for (size_t i = 0; i < c.n; i++) {
        const cJSON *ref = cJSON_GetArrayItem(chunks, (int)i);
        int32_t *ids = NULL;
        size_t n = 0;
        ck_assert_int_eq(ilm_tokenizer_encode(tok, (const char *)c.text[i], c.len[i], 0, &ids, &n),
                         ILM_OK);
        char want[32];
        snprintf(want, sizeof want, "%016llx", (unsigned long long)hash_ids(ids, n));
        if ((int)n != cJSON_GetArrayItem(ref, 0)->valueint ||
            strcmp(want, cJSON_GetArrayItem(ref, 1)->valuestring) != 0) {
            size_t at = 0;
            const cJSON *head = cJSON_GetArrayItem(heads, (int)i);
            while (head && at < n && at < (size_t)cJSON_GetArraySize(head) &&
                   cJSON_GetArrayItem(head, (int)at)->valueint == ids[at])
                at++;
            ck_abort_msg("%s: text %zu ('%.60s'): %zu ids, sentencepiece %d; first difference "
                         "at id %zu (%d vs %d)",
                         spm_fixtures[_i], i, c.text[i], n, cJSON_GetArrayItem(ref, 0)->valueint,
                         at, at < n ? ids[at] : -1,
                         head && at < (size_t)cJSON_GetArraySize(head)
                             ? cJSON_GetArrayItem(head, (int)at)->valueint : -1);
        }
        /* A word cache shared by the texts (as the corpus pipeline keeps
         * one per thread) changes nothing, on a first sight of a word or a
         * later one. */
        for (int pass = 0; pass < 2; pass++) {
            int32_t *cids = NULL;
            size_t cn = 0;
            ck_assert_int_eq(ilm__tokenizer_encode_cached(tok, (const char *)c.text[i], c.len[i], 0,
                                                          cache, &cids, &cn), ILM_OK);
            ck_assert_msg(cn == n && !memcmp(cids, ids, n * sizeof *ids),
                          "%s: text %zu: the word cache changes the ids", spm_fixtures[_i], i);
            ilm_free(cids);
        }
        /* decode(encode(x)) equals sentencepiece's, and so does streaming. */
        char *dec = NULL;
        size_t dlen = 0;
        ck_assert_int_eq(ilm_tokenizer_decode(tok, ids, n, 0, &dec, &dlen), ILM_OK);
        snprintf(want, sizeof want, "%016llx", (unsigned long long)fnv64(dec, dlen));
        ck_assert_msg(strcmp(want, cJSON_GetArrayItem(ref, 2)->valuestring) == 0 &&
                          (int)dlen == cJSON_GetArrayItem(ref, 3)->valueint,
                      "%s: decode of text %zu ('%.60s') differs: '%.80s'", spm_fixtures[_i], i,
                      c.text[i], dec);
        char *streamed = malloc(dlen + 64);
        size_t slen = 0;
        for (size_t k = 0; k <= n; k++) {
            const char *piece;
            size_t plen;
            ck_assert_int_eq(k < n ? ilm_detokenizer_push(stream, ids[k], &piece, &plen)
                                   : ilm_detokenizer_flush(stream, &piece, &plen),
                             ILM_OK);
            ck_assert_uint_le(slen + plen, dlen);
            memcpy(streamed + slen, piece, plen);
            slen += plen;
        }
        ck_assert_msg(slen == dlen && memcmp(streamed, dec, dlen) == 0,
                      "%s: streamed decode of text %zu differs", spm_fixtures[_i], i);
        free(streamed);
        ilm_free(dec);
        ilm_free(ids);
        total_ids += n;
        total_bytes += c.len[i];
    }
    ilm__tok_cache_free(cache);
    printf("tokenizer %s: %zu texts, %zu bytes, %zu ids equal sentencepiece\n", spm_fixtures[_i],
           c.n, total_bytes, total_ids);

    /* Decoding arbitrary id sequences (byte runs, control and unknown ids). */
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(fx, "decodes")) {
        const cJSON *seq = cJSON_GetArrayItem(d, 0);
        int32_t ids[64];
        int n = cJSON_GetArraySize(seq);
        for (int k = 0; k < n; k++) ids[k] = cJSON_GetArrayItem(seq, k)->valueint;
        char *dec = NULL;
        size_t dlen = 0;
        ck_assert_int_eq(ilm_tokenizer_decode(tok, ids, (size_t)n, 0, &dec, &dlen), ILM_OK);
        char want[32];
        snprintf(want, sizeof want, "%016llx", (unsigned long long)fnv64(dec, dlen));
        ck_assert_msg(strcmp(want, cJSON_GetArrayItem(d, 1)->valuestring) == 0,
                      "%s: decode of a %d-id sequence differs: '%s'", spm_fixtures[_i], n, dec);
        ilm_free(dec);
    }
    ilm_detokenizer_free(stream);
    free_corpus(&c);
    ilm_tokenizer_free(tok);
    cJSON_Delete(fx);
    test_rmtree(tmp);
    free(tmp);
}
END_TEST

/* ---- the API ----------------------------------------------------------- */

static ilm_tokenizer *internlm2(void)
{
    const char *path = test_shared_file("tokenizers/internlm2.model");
    if (!path) return NULL;
    ilm_tokenizer *tok = NULL;
    ck_assert_int_eq(ilm_tokenizer_load(path, &tok), ILM_OK);
    return tok;
}

static size_t encode(const ilm_tokenizer *tok, const char *text, unsigned flags, int32_t *out)
{
    int32_t *ids = NULL;
    size_t n = 0;
    ck_assert_int_eq(ilm_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n), ILM_OK);
    memcpy(out, ids, n * sizeof *ids);
    ilm_free(ids);
    return n;
}

START_TEST(special_tokens_only_when_asked)
{
    ilm_tokenizer *tok = internlm2();
    if (!tok) return;
    int32_t ids[64];
    size_t n = encode(tok, "<s>hi</s>", ILM_TOKENIZE_SPECIAL, ids);
    ck_assert_uint_ge(n, 3);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[n - 1], 2);
    n = encode(tok, "<s>hi</s>", 0, ids); /* plain text: no control ids */
    for (size_t i = 0; i < n; i++) ck_assert(ids[i] != 1 && ids[i] != 2);
    n = encode(tok, "hi", ILM_TOKENIZE_BOS | ILM_TOKENIZE_EOS, ids);
    ck_assert_int_eq(ids[0], 1);
    ck_assert_int_eq(ids[n - 1], 2);
    /* Empty text: an empty, non-NULL array. */
    int32_t *none = NULL;
    size_t zero = 7;
    ck_assert_int_eq(ilm_tokenizer_encode(tok, "", 0, 0, &none, &zero), ILM_OK);
    ck_assert_ptr_nonnull(none);
    ck_assert_uint_eq(zero, 0);
    ilm_free(none);
    ilm_tokenizer_free(tok);
}
END_TEST

START_TEST(model_dir_with_chat_tokens)
{
    /* A model directory as InternLM2-chat ships it: tokenizer.model plus a
     * tokenizer_config.json that names the chat tokens. */
    const char *src = test_shared_file("tokenizers/internlm2.model");
    if (!src) return;
    char *dir = test_tmpdir(), cmd[4096];
    snprintf(cmd, sizeof cmd, "cp '%s' %s/tokenizer.model", src, dir);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(cmd, "w");
    fputs("{\"add_bos_token\": true, \"add_eos_token\": false, \"bos_token\": \"<s>\","
          " \"eos_token\": \"</s>\", \"added_tokens_decoder\": {"
          "\"92542\": {\"content\": \"<|im_end|>\", \"special\": true},"
          "\"92543\": {\"content\": \"<|im_start|>\", \"special\": true}},"
          " \"chat_template\": \"ignored\"}", f);
    fclose(f);
    ilm_tokenizer *tok = NULL;
    ck_assert_msg(ilm_tokenizer_load(dir, &tok) == ILM_OK, "%s", ilm_last_error());
    int32_t ids[64];
    const char *chat = "<|im_start|>user\nHello<|im_end|>\n";
    size_t n = encode(tok, chat, ILM_TOKENIZE_SPECIAL, ids);
    ck_assert_int_eq(ids[0], 92543);
    int found_end = 0;
    for (size_t i = 0; i < n; i++) found_end += ids[i] == 92542;
    ck_assert_int_eq(found_end, 1);
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(ilm_tokenizer_decode(tok, ids, n, 0, &text, &len), ILM_OK);
    ck_assert_str_eq(text, chat);
    ilm_free(text);
    ck_assert_int_eq(ilm_tokenizer_decode(tok, ids, n, ILM_DECODE_SKIP_SPECIAL, &text, &len), ILM_OK);
    ck_assert_str_eq(text, "user\nHello\n");
    ilm_free(text);
    n = encode(tok, chat, 0, ids); /* user text cannot inject the chat tokens */
    for (size_t i = 0; i < n; i++) ck_assert(ids[i] != 92543 && ids[i] != 92542);
    ck_assert_int_eq(ilm_tokenizer_piece_id(tok, "<|im_start|>"), 92543);
    ck_assert_str_eq(ilm_tokenizer_piece(tok, 92543), "[UNUSED_TOKEN_146]");
    ck_assert_ptr_null(ilm_tokenizer_piece(tok, 92544));
    ck_assert_ptr_null(ilm_tokenizer_piece(tok, -1));
    char *info = NULL;
    ck_assert_int_eq(ilm_tokenizer_info(tok, &info), ILM_OK);
    ck_assert_ptr_nonnull(strstr(info, "\"kind\":\"sentencepiece-bpe\""));
    ck_assert_ptr_nonnull(strstr(info, "\"add_bos\":true"));
    ilm_free(info);
    ilm_tokenizer_free(tok);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(streaming_holds_back_split_characters)
{
    ilm_tokenizer *tok = internlm2();
    if (!tok) return;
    /* "😀" has no piece of its own: four byte-fallback ids. */
    int32_t ids[8];
    size_t n = encode(tok, "😀", 0, ids);
    ck_assert_uint_eq(n, 4);
    ilm_detokenizer *d = NULL;
    ck_assert_int_eq(ilm_detokenizer_create(tok, 0, &d), ILM_OK);
    const char *out;
    size_t len;
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(ilm_detokenizer_push(d, ids[i], &out, &len), ILM_OK);
        ck_assert_uint_eq(len, 0); /* nothing until the character is complete */
    }
    ck_assert_int_eq(ilm_detokenizer_push(d, ids[3], &out, &len), ILM_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert_int_eq(memcmp(out, "😀", 4), 0);
    /* An incomplete character at the end becomes U+FFFD per byte on flush. */
    ck_assert_int_eq(ilm_detokenizer_push(d, ids[0], &out, &len), ILM_OK);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(ilm_detokenizer_flush(d, &out, &len), ILM_OK);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(out, "\xEF\xBF\xBD", 3), 0);
    ck_assert_int_eq(ilm_detokenizer_push(d, 92544, &out, &len), ILM_ERR_RANGE);
    ilm_detokenizer_free(d);
    char *text = NULL;
    int32_t bad = -5;
    ck_assert_int_eq(ilm_tokenizer_decode(tok, &bad, 1, 0, &text, NULL), ILM_ERR_RANGE);
    ck_assert_ptr_null(text);
    ilm_tokenizer_free(tok);
}
END_TEST

/* Ids that render as nothing before any text: the decoder has nothing
 * pending yet (this once moved bytes from a NULL buffer, which clang's
 * UBSan reports). */
START_TEST(streaming_starts_with_control_pieces)
{
    ilm_tokenizer *tok = internlm2();
    if (!tok) return;
    ilm_detokenizer *d = NULL;
    const char *out;
    size_t len;
    for (int skip = 0; skip < 2; skip++) {
        ck_assert_int_eq(ilm_detokenizer_create(tok, skip ? ILM_DECODE_SKIP_SPECIAL : 0, &d),
                         ILM_OK);
        ck_assert_int_eq(ilm_detokenizer_push(d, 1, &out, &len), ILM_OK); /* <s> */
        ck_assert_uint_eq(len, 0);
        ck_assert_str_eq(out, "");
        ck_assert_int_eq(ilm_detokenizer_push(d, 2, &out, &len), ILM_OK); /* </s> */
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(ilm_detokenizer_flush(d, &out, &len), ILM_OK);
        ck_assert_uint_eq(len, 0);
        ck_assert_str_eq(out, "");
        ilm_detokenizer_free(d);
    }
    /* A fresh decoder flushed at once. */
    ck_assert_int_eq(ilm_detokenizer_create(tok, 0, &d), ILM_OK);
    ck_assert_int_eq(ilm_detokenizer_flush(d, &out, &len), ILM_OK);
    ck_assert_uint_eq(len, 0);
    ilm_detokenizer_free(d);
    ilm_tokenizer_free(tok);
}
END_TEST

START_TEST(concurrent_encoding_is_safe)
{
    ilm_tokenizer *tok = internlm2();
    if (!tok) return;
    const char *text = "Threads share one immutable tokenizer. 多线程共享一个分词器。";
    int32_t ref[128];
    size_t n = encode(tok, text, 0, ref);
    int mismatches = 0;
#pragma omp parallel for num_threads(4) reduction(+ : mismatches)
    for (int k = 0; k < 200; k++) {
        int32_t *ids = NULL;
        size_t m = 0;
        if (ilm_tokenizer_encode(tok, text, strlen(text), 0, &ids, &m) != ILM_OK || m != n ||
            memcmp(ids, ref, n * sizeof *ids) != 0)
            mismatches++;
        ilm_free(ids);
    }
    ck_assert_int_eq(mismatches, 0);
    ilm_tokenizer_free(tok);
}
END_TEST

/* ---- bad files --------------------------------------------------------- */

/* A tiny protobuf writer for crafting model files. */
typedef struct pbw {
    unsigned char b[4096];
    size_t n;
} pbw;

static void w_varint(pbw *w, uint64_t v)
{
    do {
        w->b[w->n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void w_bytes(pbw *w, unsigned field, const void *p, size_t n)
{
    w_varint(w, field << 3 | 2);
    w_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void w_piece(pbw *w, const char *text, size_t len, float score, int type)
{
    pbw sub = { .n = 0 };
    w_bytes(&sub, 1, text, len);
    w_varint(&sub, 2 << 3 | 5);
    memcpy(sub.b + sub.n, &score, 4);
    sub.n += 4;
    w_varint(&sub, 3 << 3 | 0);
    w_varint(&sub, (uint64_t)type);
    w_bytes(w, 1, sub.b, sub.n);
}

/* A valid small BPE model; `variant` breaks it in one way. */
static pbw craft_model(int variant)
{
    pbw w = { .n = 0 };
    w_piece(&w, "<unk>", 5, 0, variant == 1 ? 2 : 2);
    w_piece(&w, "<s>", 3, 0, 3);
    w_piece(&w, "</s>", 4, 0, 3);
    w_piece(&w, "\xE2\x96\x81" "a", 4, -1, 1);
    w_piece(&w, "a", 1, -2, 1);
    w_piece(&w, "b", 1, -3, 1);
    if (variant == 1) w_piece(&w, "a", 1, -4, 1);             /* duplicate piece */
    if (variant == 2) w_piece(&w, "\xff\xfe", 2, -4, 1);      /* invalid UTF-8 */
    if (variant == 3) w_piece(&w, "c", 1, -4, 9);             /* unknown type */
    if (variant == 4) w_piece(&w, "<0xZZ>", 6, 0, 6);         /* bad byte piece */
    if (variant == 5) w_piece(&w, "", 0, 0, 1);               /* empty piece */
    pbw spec = { .n = 0 };
    w_varint(&spec, 3 << 3 | 0);
    w_varint(&spec, variant == 6 ? 1 : 2); /* 1 = unigram */
    if (variant == 7) {                    /* bool field as a string */
        w_bytes(&spec, 35, "x", 1);
    }
    w_bytes(&w, 2, spec.b, spec.n);
    if (variant == 8) { /* a length that runs past the end */
        w_varint(&w, 1 << 3 | 2);
        w_varint(&w, 1000);
        w.b[w.n++] = 'x';
    }
    if (variant == 9) w_varint(&w, 3 << 3 | 3); /* group wire type */
    return w;
}

static ilm_status load_bytes(const void *data, size_t n, ilm_tokenizer **tok)
{
    char *dir = test_tmpdir(), path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    FILE *f = fopen(path, "wb");
    if (n) ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
    ilm_status st = ilm_tokenizer_load(path, tok);
    test_rmtree(dir);
    free(dir);
    return st;
}

START_TEST(crafted_model_loads_and_encodes)
{
    pbw w = craft_model(0);
    ilm_tokenizer *tok = NULL;
    ck_assert_msg(load_bytes(w.b, w.n, &tok) == ILM_OK, "%s", ilm_last_error());
    int32_t ids[16];
    /* Defaults when the normalizer spec is absent: dummy prefix on. */
    size_t n = encode(tok, "ab", 0, ids);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 3); /* ▁a */
    ck_assert_int_eq(ids[1], 5); /* b */
    n = encode(tok, "z", 0, ids); /* no byte fallback: <unk>, a run merged */
    ck_assert_int_eq(ids[n - 1], 0);
    ilm_tokenizer_free(tok);
}
END_TEST

static const struct { int variant; ilm_status want; const char *msg; } bad_models[] = {
    { 1, ILM_ERR_FORMAT, "appears twice" },
    { 2, ILM_ERR_FORMAT, "not valid UTF-8" },
    { 3, ILM_ERR_FORMAT, "unknown type" },
    { 4, ILM_ERR_FORMAT, "not <0xNN>" },
    { 5, ILM_ERR_FORMAT, "is empty" },
    { 6, ILM_ERR_UNSUPPORTED, "unigram" },
    { 7, ILM_ERR_FORMAT, "wire type" },
    { 8, ILM_ERR_FORMAT, "claims 1000 bytes" },
    { 9, ILM_ERR_FORMAT, "wire type" },
};

START_TEST(bad_models_are_format_errors)
{
    pbw w = craft_model(bad_models[_i].variant);
    ilm_tokenizer *tok = (ilm_tokenizer *)1;
    ilm_status st = load_bytes(w.b, w.n, &tok);
    ck_assert_msg(st == bad_models[_i].want, "variant %d: %s: %s", bad_models[_i].variant,
                  ilm_status_str(st), ilm_last_error());
    ck_assert_msg(strstr(ilm_last_error(), bad_models[_i].msg) != NULL, "variant %d: '%s'",
                  bad_models[_i].variant, ilm_last_error());
    ck_assert_ptr_null(tok);
}
END_TEST

START_TEST(truncated_real_model_never_loads_wrong)
{
    const char *path = test_shared_file("tokenizers/internlm2.model");
    if (!path) return;
    size_t n;
    unsigned char *data = read_gz(path, &n);
    /* Every cut either fails cleanly or (cut inside trailing fields that
     * hold no pieces) loads; never a crash.  Cuts are spread over the file
     * and dense near both ends. */
    for (size_t k = 0; k < 160; k++) {
        size_t cut = k < 40 ? k : k < 120 ? (n / 80) * (k - 40) : n - (160 - k);
        ilm_tokenizer *tok = NULL;
        ilm_status st = load_bytes(data, cut, &tok);
        ck_assert_msg(st == ILM_OK || st == ILM_ERR_FORMAT || st == ILM_ERR_UNSUPPORTED,
                      "cut at %zu: %s", cut, ilm_status_str(st));
        if (st == ILM_OK) ck_assert_int_le(ilm_tokenizer_vocab_size(tok), 92544);
        ilm_tokenizer_free(tok);
    }
    free(data);
}
END_TEST

START_TEST(missing_and_odd_paths)
{
    ilm_tokenizer *tok = NULL;
    ck_assert_int_eq(ilm_tokenizer_load("/nonexistent/tokenizer.model", &tok), ILM_ERR_IO);
    char *dir = test_tmpdir();
    ck_assert_int_eq(ilm_tokenizer_load(dir, &tok), ILM_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "no tokenizer.model or tokenizer.json"));
    test_rmtree(dir);
    free(dir);
    ck_assert_int_eq(load_bytes("", 0, &tok), ILM_ERR_FORMAT);
    ck_assert_int_eq(load_bytes("\x0a\x05hello world garbage", 19, &tok), ILM_ERR_FORMAT);
    ck_assert_int_eq(ilm_tokenizer_load(NULL, &tok), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm_tokenizer_load("x", NULL), ILM_ERR_INVALID_ARG);
    ilm_tokenizer_free(NULL);
    ilm_detokenizer_free(NULL);
}
END_TEST

Suite *suite_tokenizer(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *t = tcase_create("sentencepiece");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, spm_ids_equal_sentencepiece, 0,
                        (int)(sizeof spm_fixtures / sizeof *spm_fixtures));
    suite_add_tcase(s, t);

    t = tcase_create("api");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, special_tokens_only_when_asked);
    tcase_add_test(t, model_dir_with_chat_tokens);
    tcase_add_test(t, streaming_holds_back_split_characters);
    tcase_add_test(t, streaming_starts_with_control_pieces);
    tcase_add_test(t, concurrent_encoding_is_safe);
    suite_add_tcase(s, t);

    t = tcase_create("bad input");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, crafted_model_loads_and_encodes);
    tcase_add_loop_test(t, bad_models_are_format_errors, 0,
                        (int)(sizeof bad_models / sizeof *bad_models));
    tcase_add_test(t, truncated_real_model_never_loads_wrong);
    tcase_add_test(t, missing_and_odd_paths);
    suite_add_tcase(s, t);
    return s;
}
