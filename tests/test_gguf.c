/* GGUF reader: every value type, tensor infos against the `gguf` package's
 * reading of the same files (fixtures from tools/reference/
 * bytelevel_fixtures.py), and files that lie in every way we could think
 * of, written here byte by byte.  Also the GGUF tokenizer loader's refusals. */
#include "tests.h"
#include "formats/gguf.h"
#include "tokenizer/internal.h"
#include "tensor/tensor.h"
#include "internlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* Compares what we read with what gguf read (kvtypes.json / smollm2). */
static void compare_with_reference(const ilm__gguf *g, const cJSON *ref, bool scalars_exact)
{
    ck_assert_int_eq(g->version, cJSON_GetObjectItem(ref, "version")->valueint);
    ck_assert_uint_eq(g->alignment, (uint64_t)cJSON_GetObjectItem(ref, "alignment")->valuedouble);
    const cJSON *kvs = cJSON_GetObjectItem(ref, "kvs"), *kv;
    ck_assert_uint_eq(g->n_kv, (uint64_t)cJSON_GetArraySize(kvs));
    cJSON_ArrayForEach(kv, kvs) {
        const char *key = cJSON_GetObjectItem(kv, "key")->valuestring;
        const ilm__gguf_kv *k = ilm__gguf_find_kv(g, key);
        ck_assert_msg(k != NULL, "key %s missing", key);
        ck_assert_int_eq(k->type, cJSON_GetObjectItem(kv, "type")->valueint);
        const cJSON *v = cJSON_GetObjectItem(kv, "value");
        if (k->type == ILM__GGUF_STRING) {
            ilm__gguf_str s;
            ck_assert_int_eq(ilm__gguf_get_str(g, key, &s), ILM_OK);
            ck_assert_msg(ilm__gguf_str_eq(s, v->valuestring), "key %s", key);
        } else if (k->type == ILM__GGUF_ARRAY) {
            ck_assert_int_eq(k->elem_type, cJSON_GetObjectItem(kv, "elem")->valueint);
            if (cJSON_IsObject(v)) { /* a long tokenizer array: count only */
                ck_assert_uint_eq(k->count, (uint64_t)cJSON_GetObjectItem(v, "count")->valueint);
                continue;
            }
            if (k->elem_type == ILM__GGUF_ARRAY) continue; /* gguf flattens nesting */
            ck_assert_uint_eq(k->count, (uint64_t)cJSON_GetArraySize(v));
            size_t cur = 0;
            for (uint64_t i = 0; i < k->count; i++) {
                const cJSON *e = cJSON_GetArrayItem(v, (int)i);
                if (k->elem_type == ILM__GGUF_STRING) {
                    ilm__gguf_str s;
                    ilm__gguf_arr_next_str(k, &cur, &s);
                    ck_assert(ilm__gguf_str_eq(s, e->valuestring));
                } else {
                    ck_assert(ilm__gguf_arr_float(k, i) == e->valuedouble);
                }
            }
        } else if (k->type == ILM__GGUF_BOOL) {
            bool b;
            ck_assert_int_eq(ilm__gguf_get_bool(g, key, &b), ILM_OK);
            ck_assert_int_eq(b, cJSON_IsTrue(v));
        } else if (k->type == ILM__GGUF_F32) {
            float f;
            ck_assert_int_eq(ilm__gguf_get_f32(g, key, &f), ILM_OK);
            ck_assert(f == (float)v->valuedouble);
        } else if (k->type == ILM__GGUF_F64) {
            double d;
            memcpy(&d, k->data, 8);
            ck_assert(d == v->valuedouble);
        } else if (k->type == ILM__GGUF_U64) {
            uint64_t u;
            memcpy(&u, k->data, 8);
            ck_assert((double)u == v->valuedouble);
        } else if (scalars_exact) {
            int64_t x = ilm__gguf_arr_int(&(ilm__gguf_kv){ .elem_type = k->type,
                                                            .data = k->data }, 0);
            ck_assert_msg((double)x == v->valuedouble, "key %s: %lld", key, (long long)x);
        }
    }
    const cJSON *ts = cJSON_GetObjectItem(ref, "tensors"), *t;
    ck_assert_uint_eq(g->n_tensors, (uint64_t)cJSON_GetArraySize(ts));
    cJSON_ArrayForEach(t, ts) {
        const char *name = cJSON_GetObjectItem(t, "name")->valuestring;
        const ilm__gguf_tensor *x = ilm__gguf_find_tensor(g, name);
        ck_assert_msg(x != NULL, "tensor %s missing", name);
        ck_assert_int_eq(x->type, cJSON_GetObjectItem(t, "type")->valueint);
        const cJSON *dims = cJSON_GetObjectItem(t, "dims");
        ck_assert_int_eq(x->n_dims, cJSON_GetArraySize(dims));
        for (uint32_t d = 0; d < x->n_dims; d++)
            ck_assert_uint_eq(x->dims[d], (uint64_t)cJSON_GetArrayItem(dims, (int)d)->valuedouble);
        ck_assert_uint_eq((uint64_t)(x->data - g->map.data),
                          (uint64_t)cJSON_GetObjectItem(t, "offset")->valuedouble);
        ck_assert_uint_eq(x->n_bytes, (uint64_t)cJSON_GetObjectItem(t, "n_bytes")->valuedouble);
        const cJSON *hex = cJSON_GetObjectItem(t, "hex");
        if (hex) {
            ck_assert_uint_eq(strlen(hex->valuestring), 2 * x->n_bytes);
            for (uint64_t i = 0; i < x->n_bytes; i++)
                ck_assert_int_eq(x->data[i], hexval(hex->valuestring[2 * i]) * 16 +
                                                 hexval(hex->valuestring[2 * i + 1]));
        }
    }
}

START_TEST(every_value_type_matches_gguf_py)
{
    ilm__gguf *g;
    ck_assert_msg(ilm__gguf_open("tests/fixtures/gguf/kvtypes.gguf", &g) == ILM_OK, "%s",
                  ilm_last_error());
    cJSON *ref = test_read_json("tests/fixtures/gguf/kvtypes.json");
    compare_with_reference(g, ref, true);
    cJSON_Delete(ref);

    uint32_t u;
    int32_t i;
    ck_assert_int_eq(ilm__gguf_get_u32(g, "t.u32", &u), ILM_OK);
    ck_assert_uint_eq(u, 4000000000u);
    ck_assert_int_eq(ilm__gguf_get_i32(g, "t.i32", &i), ILM_OK);
    ck_assert_int_eq(i, -2000000000);
    ck_assert_int_eq(ilm__gguf_get_i32(g, "t.u32", &i), ILM_ERR_FORMAT); /* out of range */
    ck_assert_int_eq(ilm__gguf_get_u32(g, "t.i8", &u), ILM_ERR_FORMAT);  /* negative */
    ck_assert_int_eq(ilm__gguf_get_u32(g, "t.u8", &u), ILM_OK);
    ck_assert_uint_eq(u, 200);
    ck_assert_int_eq(ilm__gguf_get_u32(g, "t.str", &u), ILM_ERR_FORMAT);
    ck_assert_int_eq(ilm__gguf_get_u32(g, "absent", &u), ILM_ERR_NOT_FOUND);
    const ilm__gguf_kv *arr;
    ck_assert_int_eq(ilm__gguf_get_arr(g, "t.arr_i32", ILM__GGUF_STRING, &arr), ILM_ERR_FORMAT);
    ck_assert_int_eq(ilm__gguf_get_arr(g, "t.nested", ILM__GGUF_ARRAY, &arr), ILM_OK);
    ck_assert_uint_eq(arr->count, 2);
    ck_assert_ptr_null(ilm__gguf_find_tensor(g, "nope"));
    ilm__gguf_close(g);
}
END_TEST

START_TEST(smollm2_tensor_infos_match_gguf_py)
{
    const char *p = test_pydeps_file(TEST_SMOLLM2);
    if (!p) return;
    ilm__gguf *g;
    ck_assert_msg(ilm__gguf_open(p, &g) == ILM_OK, "%s", ilm_last_error());
    cJSON *ref = test_read_json("tests/fixtures/gguf/smollm2_tensors.json");
    compare_with_reference(g, ref, true);
    cJSON_Delete(ref);
    const ilm__gguf_tensor *t = ilm__gguf_find_tensor(g, "blk.0.attn_q.weight");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(ilm__dtype_name(t->type), "q4_1");
    ck_assert_uint_eq(t->n_elems, 576u * 576u);
    ck_assert_uint_eq(t->n_bytes, 576u * 576u / 32 * 20);
    ck_assert_uint_eq((uintptr_t)(t->data - g->map.data) % g->alignment, 0);
    ilm__gguf_close(g);
}
END_TEST

START_TEST(type_table)
{
    uint32_t block, bytes;
    static const struct { uint32_t id; uint32_t block, bytes; } want[] = {
        { ILM__DTYPE_F32, 1, 4 }, { ILM__DTYPE_F16, 1, 2 }, { ILM__DTYPE_BF16, 1, 2 },
        { ILM__DTYPE_Q4_0, 32, 18 }, { ILM__DTYPE_Q4_1, 32, 20 }, { ILM__DTYPE_Q5_0, 32, 22 },
        { ILM__DTYPE_Q5_1, 32, 24 }, { ILM__DTYPE_Q8_0, 32, 34 }, { ILM__DTYPE_Q2_K, 256, 84 },
        { ILM__DTYPE_Q3_K, 256, 110 }, { ILM__DTYPE_Q4_K, 256, 144 },
        { ILM__DTYPE_Q5_K, 256, 176 }, { ILM__DTYPE_Q6_K, 256, 210 },
        { ILM__DTYPE_Q8_K, 256, 292 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert(ilm__dtype_info(want[i].id, &block, &bytes));
        ck_assert_uint_eq(block, want[i].block);
        ck_assert_uint_eq(bytes, want[i].bytes);
    }
    ck_assert(!ilm__dtype_info(4, &block, &bytes)); /* retired Q4_2 */
    ck_assert(!ilm__dtype_info(1000, &block, &bytes));
}
END_TEST

/* ---- crafted files ------------------------------------------------------ */

/* A tiny GGUF writer for the lies below. */
typedef struct wbuf {
    uint8_t p[8192];
    size_t  n;
} wbuf;

static void put(wbuf *w, const void *d, size_t n)
{
    ck_assert(w->n + n <= sizeof w->p);
    memcpy(w->p + w->n, d, n);
    w->n += n;
}
static void put_u32(wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(wbuf *w, uint64_t v) { put(w, &v, 8); }
static void put_str(wbuf *w, const char *s) { put_u64(w, strlen(s)); put(w, s, strlen(s)); }
static void pad_to(wbuf *w, size_t a) { while (w->n % a) w->p[w->n++] = 0; }

static void header(wbuf *w, uint64_t n_tensors, uint64_t n_kv)
{
    w->n = 0;
    put(w, "GGUF", 4);
    put_u32(w, 3);
    put_u64(w, n_tensors);
    put_u64(w, n_kv);
}

static void kv_str(wbuf *w, const char *k, const char *v)
{
    put_str(w, k);
    put_u32(w, ILM__GGUF_STRING);
    put_str(w, v);
}

/* Offsets of the fields the tests corrupt, in good_file's output. */
typedef struct layout {
    size_t kv_count, str_len, kv_type, arr_count, n_dims, dim0, ttype, toffset;
} layout;

/* Two KVs (a string, an array of u32) and two f32 tensors of 8 and 4
 * elements, 32-aligned. */
static void good_file(wbuf *w, layout *l)
{
    header(w, 2, 2);
    l->kv_count = 16;
    put_str(w, "general.name");
    l->kv_type = w->n;
    put_u32(w, ILM__GGUF_STRING);
    l->str_len = w->n;
    put_str(w, "tiny");
    put_str(w, "x.arr");
    put_u32(w, ILM__GGUF_ARRAY);
    put_u32(w, ILM__GGUF_U32);
    l->arr_count = w->n;
    put_u64(w, 3);
    for (uint32_t i = 0; i < 3; i++) put_u32(w, i);
    put_str(w, "a");
    l->n_dims = w->n;
    put_u32(w, 2);
    l->dim0 = w->n;
    put_u64(w, 4);
    put_u64(w, 2);
    l->ttype = w->n;
    put_u32(w, ILM__DTYPE_F32);
    l->toffset = w->n;
    put_u64(w, 0);
    put_str(w, "b");
    put_u32(w, 1);
    put_u64(w, 4);
    put_u32(w, ILM__DTYPE_F32);
    put_u64(w, 32);
    pad_to(w, 32);
    for (int i = 0; i < 12; i++) {
        float f = (float)i;
        put(w, &f, 4);
    }
    pad_to(w, 32);
}

static char *tmp_path(const char *dir, const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static ilm_status open_bytes(const char *dir, const void *d, size_t n, ilm__gguf **g)
{
    const char *p = tmp_path(dir, "x.gguf");
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    if (n) ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    fclose(f);
    *g = NULL;
    return ilm__gguf_open(p, g);
}

static void expect_format(const char *dir, wbuf *w, const char *needle)
{
    ilm__gguf *g;
    ilm_status s = open_bytes(dir, w->p, w->n, &g);
    ck_assert_msg(s == ILM_ERR_FORMAT, "expected FORMAT for '%s', got %s (%s)", needle,
                  ilm_status_str(s), ilm_last_error());
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(ilm_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  ilm_last_error(), needle);
    ck_assert_msg(strstr(ilm_last_error(), "x.gguf") != NULL, "message names no file");
}

START_TEST(crafted_good_file_reads)
{
    char *dir = test_tmpdir();
    wbuf w;
    layout l;
    good_file(&w, &l);
    ilm__gguf *g;
    ck_assert_msg(open_bytes(dir, w.p, w.n, &g) == ILM_OK, "%s", ilm_last_error());
    ck_assert_uint_eq(g->n_tensors, 2);
    const ilm__gguf_tensor *b = ilm__gguf_find_tensor(g, "b");
    ck_assert_uint_eq(b->n_bytes, 16);
    float f;
    memcpy(&f, b->data, 4);
    ck_assert(f == 8.0f);
    const ilm__gguf_kv *arr;
    ck_assert_int_eq(ilm__gguf_get_arr(g, "x.arr", ILM__GGUF_U32, &arr), ILM_OK);
    ck_assert_int_eq(ilm__gguf_arr_int(arr, 2), 2);
    ilm__gguf_close(g);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(every_truncation_is_format_error)
{
    char *dir = test_tmpdir();
    wbuf w;
    layout l;
    good_file(&w, &l);
    /* Cut off anywhere before the last tensor's data ends: never a crash,
     * always ILM_ERR_FORMAT (the last 16 bytes are padding). */
    for (size_t n = 0; n + 16 < w.n; n++) {
        ilm__gguf *g;
        ilm_status s = open_bytes(dir, w.p, n, &g);
        ck_assert_msg(s == ILM_ERR_FORMAT, "cut at %zu: %s", n, ilm_status_str(s));
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(lies_are_format_errors)
{
    char *dir = test_tmpdir();
    wbuf w;
    layout l;
    uint64_t big = UINT64_MAX / 2;
    uint32_t v;

    good_file(&w, &l);
    memcpy(w.p + l.kv_count, &big, 8);
    expect_format(dir, &w, "KVs");
    good_file(&w, &l);
    memcpy(w.p + 8, &big, 8);
    expect_format(dir, &w, "tensors");
    good_file(&w, &l);
    memcpy(w.p + l.str_len, &big, 8);
    expect_format(dir, &w, "general.name");
    good_file(&w, &l);
    v = 13;
    memcpy(w.p + l.kv_type, &v, 4);
    expect_format(dir, &w, "unknown value type 13");
    good_file(&w, &l);
    memcpy(w.p + l.arr_count, &big, 8);
    expect_format(dir, &w, "x.arr");
    good_file(&w, &l);
    v = 5;
    memcpy(w.p + l.n_dims, &v, 4);
    expect_format(dir, &w, "5 dimensions");
    good_file(&w, &l);
    uint64_t huge = (uint64_t)1 << 62;
    memcpy(w.p + l.dim0, &huge, 8);
    memcpy(w.p + l.dim0 + 8, &huge, 8);
    expect_format(dir, &w, "absurd");
    good_file(&w, &l);
    v = 4; /* retired Q4_2 */
    memcpy(w.p + l.ttype, &v, 4);
    expect_format(dir, &w, "unknown ggml type 4");
    good_file(&w, &l);
    uint64_t off = 8;
    memcpy(w.p + l.toffset, &off, 8);
    expect_format(dir, &w, "not aligned");
    good_file(&w, &l);
    off = 64;
    memcpy(w.p + l.toffset, &off, 8);
    expect_format(dir, &w, "past the end");
    good_file(&w, &l);
    v = 8; /* Q8_0 with 4 columns: not a whole block */
    memcpy(w.p + l.ttype, &v, 4);
    expect_format(dir, &w, "multiple");

    /* duplicate key, bad alignment, nesting without end */
    header(&w, 0, 2);
    kv_str(&w, "k", "1");
    kv_str(&w, "k", "2");
    expect_format(dir, &w, "duplicate key 'k'");
    header(&w, 0, 1);
    put_str(&w, "general.alignment");
    put_u32(&w, ILM__GGUF_U32);
    put_u32(&w, 48);
    expect_format(dir, &w, "power of two");
    header(&w, 0, 1);
    put_str(&w, "deep");
    put_u32(&w, ILM__GGUF_ARRAY);
    for (int i = 0; i < 20; i++) {
        put_u32(&w, ILM__GGUF_ARRAY);
        put_u64(&w, 1);
    }
    put_u32(&w, ILM__GGUF_U8);
    put_u64(&w, 0);
    expect_format(dir, &w, "deeper");

    /* wrong magic; unsupported versions */
    good_file(&w, &l);
    w.p[0] = 'X';
    expect_format(dir, &w, "magic");
    ilm__gguf *g;
    good_file(&w, &l);
    v = 0x03000000; /* big-endian */
    memcpy(w.p + 4, &v, 4);
    ck_assert_int_eq(open_bytes(dir, w.p, w.n, &g), ILM_ERR_UNSUPPORTED);
    v = 1;
    memcpy(w.p + 4, &v, 4);
    ck_assert_int_eq(open_bytes(dir, w.p, w.n, &g), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(ilm__gguf_open(tmp_path(dir, "missing.gguf"), &g), ILM_ERR_IO);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the GGUF tokenizer loader's refusals -------------------------------- */

static void vocab_file(wbuf *w, const char *model, const char *pre, const char *merge)
{
    static const char *toks[] = { "a", "b", "ab", "<|endoftext|>" };
    header(w, 0, 5);
    kv_str(w, "tokenizer.ggml.model", model);
    kv_str(w, "tokenizer.ggml.pre", pre);
    put_str(w, "tokenizer.ggml.tokens");
    put_u32(w, ILM__GGUF_ARRAY);
    put_u32(w, ILM__GGUF_STRING);
    put_u64(w, 4);
    for (int i = 0; i < 4; i++) put_str(w, toks[i]);
    put_str(w, "tokenizer.ggml.token_type");
    put_u32(w, ILM__GGUF_ARRAY);
    put_u32(w, ILM__GGUF_I32);
    put_u64(w, 4);
    for (int i = 0; i < 4; i++) put_u32(w, i < 3 ? ILM__PIECE_NORMAL : ILM__PIECE_CONTROL);
    put_str(w, "tokenizer.ggml.merges");
    put_u32(w, ILM__GGUF_ARRAY);
    put_u32(w, ILM__GGUF_STRING);
    put_u64(w, 1);
    put_str(w, merge);
}

static ilm_status load_vocab(const char *dir, wbuf *w)
{
    ilm__gguf *g;
    ilm_status s = open_bytes(dir, w->p, w->n, &g);
    ck_assert_msg(s == ILM_OK, "%s", ilm_last_error());
    ilm__gguf_close(g);
    ilm_tokenizer *t = NULL;
    s = ilm_tokenizer_load(tmp_path(dir, "x.gguf"), &t);
    ilm_tokenizer_free(t);
    return s;
}

START_TEST(gguf_vocab_refusals)
{
    char *dir = test_tmpdir();
    wbuf w;
    vocab_file(&w, "gpt2", "smollm", "a b");
    ck_assert_msg(load_vocab(dir, &w) == ILM_OK, "%s", ilm_last_error());
    vocab_file(&w, "bert", "smollm", "a b");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "bert"));
    vocab_file(&w, "t5", "smollm", "a b");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_UNSUPPORTED);
    vocab_file(&w, "gpt2", "no-such-pre", "a b");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "no-such-pre"));
    vocab_file(&w, "gpt2", "gpt2", "a c");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_FORMAT);
    vocab_file(&w, "gpt2", "gpt2", "b a"); /* "ba" is not a piece */
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_FORMAT);
    vocab_file(&w, "gpt2", "gpt2", "ab");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_FORMAT);
    header(&w, 0, 1);
    kv_str(&w, "general.name", "no tokenizer");
    ck_assert_int_eq(load_vocab(dir, &w), ILM_ERR_FORMAT);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* SmolLM2's Q4_1 file requantized to Q8_0 (ilm_model_quantize): every KV
 * as the source encodes it but general.file_type (7), every matrix
 * ilm__quantize of its dequantized values (bit-exact with gguf.quants:
 * test_tensor.c), the vectors as they were; it loads and scores as the
 * source does, closely.  Checked once by hand beyond this: gguf-py reads
 * the file and its tensors equal gguf.quants.quantize of the source's,
 * and llama.cpp (llama-cpp-python) runs it (docs/formats.md). */
START_TEST(requantized_gguf_keeps_metadata_and_quantizes_matrices)
{
    const char *path = test_pydeps_file(TEST_SMOLLM2);
    if (!path) return;
    char *dir = test_tmpdir(), *out = test_join(dir, "q8_0.gguf");
    ck_assert_msg(ilm_model_quantize(path, out, "{\"format\": \"q8_0\"}") == ILM_OK, "%s",
                  ilm_last_error());
    ilm__gguf *a = NULL, *b = NULL;
    ck_assert_int_eq(ilm__gguf_open(path, &a), ILM_OK);
    ck_assert_int_eq(ilm__gguf_open(out, &b), ILM_OK);
    ck_assert_uint_eq(a->n_kv, b->n_kv);
    for (uint64_t i = 0; i < a->n_kv; i++) {
        const ilm__gguf_kv *x = &a->kv[i], *y = &b->kv[i];
        ck_assert(x->key.n == y->key.n && !memcmp(x->key.p, y->key.p, x->key.n));
        ck_assert_uint_eq(x->type, y->type);
        if (ilm__gguf_str_eq(x->key, "general.file_type")) continue;
        ck_assert_msg(x->size == y->size && !memcmp(x->data, y->data, x->size - (x->type == ILM__GGUF_ARRAY ? 12 : 0)),
                      "KV %.*s differs", (int)x->key.n, x->key.p);
    }
    uint32_t ft = 0;
    ck_assert_int_eq(ilm__gguf_get_u32(b, "general.file_type", &ft), ILM_OK);
    ck_assert_uint_eq(ft, 7);
    ck_assert_uint_eq(a->n_tensors, b->n_tensors);
    int matrices = 0;
    for (uint64_t i = 0; i < a->n_tensors; i++) {
        const ilm__gguf_tensor *x = &a->tensors[i], *y = &b->tensors[i];
        ck_assert(x->name.n == y->name.n && !memcmp(x->name.p, y->name.p, x->name.n));
        ck_assert(x->n_dims == y->n_dims && !memcmp(x->dims, y->dims, sizeof x->dims));
        if (x->n_dims != 2) {
            ck_assert(y->type == x->type && y->n_bytes == x->n_bytes && !memcmp(x->data, y->data, x->n_bytes));
            continue;
        }
        ck_assert_int_eq(y->type, ILM__DTYPE_Q8_0);
        float *f = malloc(x->n_elems * sizeof *f);
        uint8_t *q = malloc(y->n_bytes);
        ck_assert_int_eq(ilm__dequantize(x->type, x->data, f, (int64_t)x->n_elems), ILM_OK);
        ck_assert_int_eq(ilm__quantize(ILM__DTYPE_Q8_0, f, q, (int64_t)x->n_elems), ILM_OK);
        ck_assert_msg(!memcmp(q, y->data, y->n_bytes), "%.*s", (int)x->name.n, x->name.p);
        free(f);
        free(q);
        matrices++;
    }
    ck_assert_int_eq(matrices, 30 * 7 + 1); /* the layers' linears and the (tied) embedding */
    ilm__gguf_close(a);
    ilm__gguf_close(b);
    /* It runs: the greedy continuation of a prompt agrees with the source's. */
    ilm_model *m = NULL;
    ck_assert_int_eq(ilm_model_load(out, NULL, &m), ILM_OK);
    char *text = NULL;
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, NULL, &s), ILM_OK);
    ck_assert_int_eq(ilm_session_generate(s, "The capital of France is", "{\"max_tokens\": 4, \"temperature\": 0}", NULL, NULL, &text), ILM_OK);
    ck_assert_msg(strstr(text, "Paris"), "%s", text);
    ilm_free(text);
    ilm_session_free(s);
    ilm_model_free(m);
    /* Bad settings are config errors. */
    ck_assert_int_eq(ilm_model_quantize(path, out, "{\"format\": \"q5_k\"}"), ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_model_quantize(path, out, "{\"format\": \"q8_0\", \"blocksize\": 64}"),
                     ILM_ERR_CONFIG);
    ck_assert_int_eq(ilm_model_quantize(path, out, "{}"), ILM_ERR_CONFIG);
    test_rmtree(dir);
    free(out);
    free(dir);
}
END_TEST

Suite *suite_gguf(void)
{
    Suite *s = suite_create("gguf");
    TCase *t = tcase_create("reader");
    tcase_set_timeout(t, 120); /* the requantization of SmolLM2 */
    tcase_add_test(t, every_value_type_matches_gguf_py);
    tcase_add_test(t, smollm2_tensor_infos_match_gguf_py);
    tcase_add_test(t, type_table);
    tcase_add_test(t, crafted_good_file_reads);
    tcase_add_test(t, every_truncation_is_format_error);
    tcase_add_test(t, lies_are_format_errors);
    tcase_add_test(t, gguf_vocab_refusals);
    tcase_add_test(t, requantized_gguf_keeps_metadata_and_quantizes_matrices);
    suite_add_tcase(s, t);
    return s;
}
