/* src/formats/ beyond the GGUF reader: safetensors (against files the
 * `safetensors` package wrote, fixtures from tools/reference/
 * formats_fixtures.py, and files that lie, written here byte by byte),
 * config.json (hand-copied published configs, and each broken on purpose)
 * and the GGUF LLaMA architecture (the real SmolLM2 file and crafted ones). */
#include "tests.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FIX "tests/fixtures/formats/"

/* ---- helpers ----------------------------------------------------------------- */

static void spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static cJSON *read_json(const char *path)
{
    char *t = test_slurp(path, NULL);
    cJSON *j = cJSON_Parse(t);
    free(t);
    ck_assert_msg(j != NULL, "%s is not JSON", path);
    return j;
}

static char *hex(const uint8_t *p, uint64_t n)
{
    char *s = malloc(2 * n + 1);
    for (uint64_t i = 0; i < n; i++) sprintf(s + 2 * i, "%02x", p[i]);
    s[2 * n] = '\0';
    return s;
}

static void assert_error_mentions(const char *what)
{
    ck_assert_msg(strstr(ilm_last_error(), what) != NULL, "message '%s' does not mention '%s'",
                  ilm_last_error(), what);
}

/* Checks every tensor of `st` against a describe() object from the fixture
 * script: dtype, shape and every byte. */
static void compare_tensors(const ilm__safetensors *st, const cJSON *tensors)
{
    ck_assert_uint_eq(ilm__st_count(st), (size_t)cJSON_GetArraySize(tensors));
    const cJSON *e;
    cJSON_ArrayForEach(e, tensors) {
        const ilm__st_tensor *t = ilm__st_find(st, e->string);
        ck_assert_msg(t != NULL, "tensor %s missing", e->string);
        ck_assert_str_eq(t->name, e->string);
        const char *dt = cJSON_GetObjectItem(e, "dtype")->valuestring;
        ck_assert_str_eq(t->dtype, dt);
        uint32_t want = strcmp(dt, "F32") == 0    ? ILM__DTYPE_F32
                        : strcmp(dt, "F16") == 0  ? ILM__DTYPE_F16
                        : strcmp(dt, "BF16") == 0 ? ILM__DTYPE_BF16
                                                  : UINT32_MAX;
        ck_assert_uint_eq(t->type, want);
        const cJSON *shape = cJSON_GetObjectItem(e, "shape");
        ck_assert_int_eq(t->n_dims, cJSON_GetArraySize(shape));
        for (int i = 0; i < t->n_dims; i++)
            ck_assert_int_eq(t->shape[i], cJSON_GetArrayItem(shape, i)->valueint);
        for (int i = t->n_dims; i < ILM__ST_MAX_DIMS; i++) ck_assert_int_eq(t->shape[i], 1);
        char *h = hex(t->data, t->n_bytes);
        ck_assert_str_eq(h, cJSON_GetObjectItem(e, "hex")->valuestring);
        free(h);
    }
}

/* ---- safetensors: reading what the reference wrote ---------------------------- */

START_TEST(st_reads_reference_file)
{
    cJSON *ref = read_json(FIX "st_mixed.json");
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(FIX "st_mixed.safetensors", &st), ILM_OK);
    compare_tensors(st, cJSON_GetObjectItem(ref, "tensors"));
    ck_assert_str_eq(ilm__st_metadata(st, "format"), "pt");
    ck_assert_str_eq(ilm__st_metadata(st, "note"), "quote \" and\nnewline");
    ck_assert_ptr_null(ilm__st_metadata(st, "absent"));
    ck_assert_ptr_null(ilm__st_find(st, "absent"));
    ck_assert_ptr_null(ilm__st_get(st, ilm__st_count(st)));
    /* File order: data offsets never decrease. */
    for (size_t i = 1; i < ilm__st_count(st); i++)
        ck_assert(ilm__st_get(st, i)->data >= ilm__st_get(st, i - 1)->data);
    const ilm__st_tensor *s = ilm__st_find(st, "scalar");
    ck_assert_int_eq(s->n_dims, 0);
    double v;
    memcpy(&v, s->data, 8);
    ck_assert(v == 2.5);
    ck_assert_uint_eq(ilm__st_find(st, "empty")->n_bytes, 0);
    ilm__st_close(st);
    ilm__st_close(NULL);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(st_opens_directory)
{
    char *dir = test_tmpdir();
    char path[512];
    size_t n;
    char *bytes = test_slurp(FIX "st_float.safetensors", &n);
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(dir, &st), ILM_ERR_IO);
    assert_error_mentions(dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    spit(path, bytes, n);
    ck_assert_int_eq(ilm__st_open(dir, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 5);
    ck_assert_ptr_nonnull(ilm__st_find(st, "c.weight"));
    ilm__st_close(st);
    free(bytes);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(st_reads_sharded)
{
    cJSON *ref = read_json(FIX "st_sharded.json");
    const cJSON *tensors = cJSON_GetObjectItem(ref, "tensors");
    const char *paths[] = { FIX "st_sharded", FIX "st_sharded/",
                            FIX "st_sharded/model.safetensors.index.json" };
    for (size_t k = 0; k < 3; k++) {
        ilm__safetensors *st;
        ck_assert_msg(ilm__st_open(paths[k], &st) == ILM_OK, "%s: %s", paths[k],
                      ilm_last_error());
        compare_tensors(st, tensors);
        ck_assert_str_eq(ilm__st_metadata(st, "format"), "pt");
        /* Shard by shard: the first two tensors come from shard 1. */
        const cJSON *e;
        cJSON_ArrayForEach(e, tensors) {
            bool first = strcmp(cJSON_GetObjectItem(e, "shard")->valuestring,
                                "model-00001-of-00002.safetensors") == 0;
            const ilm__st_tensor *t = ilm__st_find(st, e->string);
            size_t idx = (size_t)(t - ilm__st_get(st, 0));
            ck_assert_msg(first == (idx < 2), "%s at %zu", e->string, idx);
        }
        ilm__st_close(st);
    }
    cJSON_Delete(ref);
}
END_TEST

/* A copy of the 2-shard checkpoint whose index is `index` (NULL: none). */
static char *shard_copy(const char *index)
{
    char *dir = test_tmpdir();
    const char *names[] = { "model-00001-of-00002.safetensors",
                            "model-00002-of-00002.safetensors" };
    char src[512], dst[512];
    for (int i = 0; i < 2; i++) {
        size_t n;
        snprintf(src, sizeof src, FIX "st_sharded/%s", names[i]);
        char *b = test_slurp(src, &n);
        snprintf(dst, sizeof dst, "%s/%s", dir, names[i]);
        spit(dst, b, n);
        free(b);
    }
    snprintf(dst, sizeof dst, "%s/model.safetensors.index.json", dir);
    if (index) spit(dst, index, strlen(index));
    return dir;
}

#define S1 "\"model-00001-of-00002.safetensors\""
#define S2 "\"model-00002-of-00002.safetensors\""
#define GOOD_MAP                                                                             \
    "\"model.embed_tokens.weight\": " S2 ", \"model.layers.0.mlp.up_proj.weight\": " S1      \
    ", \"model.layers.0.self_attn.q_proj.weight\": " S1                                      \
    ", \"model.layers.1.self_attn.q_proj.weight\": " S2

START_TEST(st_sharded_bad_index)
{
    static const struct {
        const char *index, *mentions;
    } cases[] = {
        /* model.norm.weight sits in shard 2 but the index lacks it. */
        { "{\"weight_map\": {" GOOD_MAP "}}", "model.norm.weight" },
        /* A listed tensor that no shard has. */
        { "{\"weight_map\": {" GOOD_MAP ", \"model.norm.weight\": " S2
          ", \"lm_head.weight\": " S2 "}}", "lm_head.weight" },
        /* A tensor mapped to the wrong shard. */
        { "{\"weight_map\": {" GOOD_MAP ", \"model.norm.weight\": " S1 "}}",
          "model.norm.weight" },
        /* A shard that does not exist. */
        { "{\"weight_map\": {" GOOD_MAP ", \"model.norm.weight\": "
          "\"model-00003-of-00003.safetensors\"}}", "model-00003-of-00003.safetensors" },
        /* A shard outside the directory. */
        { "{\"weight_map\": {\"x\": \"../x.safetensors\"}}", "../x.safetensors" },
        { "{\"weight_map\": {\"x\": 3}}", "'x'" },
        { "{\"weight_map\": []}", "weight_map" },
        { "{\"weight_map\": {}}", "empty" },
        { "{\"metadata\": {}}", "weight_map" },
        { "[1, 2]", "index.json" },
        { "{\"weight_map\": {", "index.json" },
        /* A name listed twice. */
        { "{\"weight_map\": {" GOOD_MAP ", \"model.norm.weight\": " S2
          ", \"model.norm.weight\": " S2 "}}", "more than once" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = shard_copy(cases[i].index);
        ilm__safetensors *st = (ilm__safetensors *)1;
        ck_assert_msg(ilm__st_open(dir, &st) == ILM_ERR_FORMAT, "case %zu: %s", i,
                      ilm_last_error());
        ck_assert_ptr_null(st);
        assert_error_mentions(cases[i].mentions);
        test_rmtree(dir);
        free(dir);
    }
    /* And the good index opens. */
    char *dir = shard_copy("{\"weight_map\": {" GOOD_MAP ", \"model.norm.weight\": " S2 "}}");
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(dir, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 5);
    ilm__st_close(st);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- safetensors: writing ---------------------------------------------------- */

/* Our writer, given the tensors and metadata of the file the reference
 * wrote (in that file's order), must produce the same bytes: same header
 * text, same padding, same data.  So Python's safetensors loads ours. */
START_TEST(st_write_matches_reference_bytes)
{
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(FIX "st_float.safetensors", &st), ILM_OK);
    size_t n = ilm__st_count(st);
    ilm__st_out *out = calloc(n, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const ilm__st_tensor *t = ilm__st_get(st, i);
        out[i] = (ilm__st_out){ t->name, t->type, t->n_dims, t->shape, t->data };
    }
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    const char *meta[] = { "format", "pt", NULL };
    ck_assert_int_eq(ilm__st_write(path, out, n, meta), ILM_OK);
    size_t na, nb;
    char *a = test_slurp(FIX "st_float.safetensors", &na);
    char *b = test_slurp(path, &nb);
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na) == 0, "our file differs from the reference's");
    free(a);
    free(b);
    free(out);
    ilm__st_close(st);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(st_write_round_trip)
{
    float f32[6] = { 1, -2, 3.5f, 0, 1e-30f, -7 };
    uint16_t f16[3] = { 0x3c00, 0xc000, 0x7bff }, bf16[2] = { 0x3f80, 0xbf80 };
    float one = 42;
    int64_t s23[] = { 2, 3 }, s3[] = { 3 }, s2[] = { 1, 2 }, s0x4[] = { 0, 4 };
    const ilm__st_out t[] = {
        { "weird \"name\"\n\t\x01 \xc3\xa9", ILM__DTYPE_F32, 2, s23, f32 },
        { "half", ILM__DTYPE_F16, 1, s3, f16 },
        { "bf", ILM__DTYPE_BF16, 2, s2, bf16 },
        { "scalar", ILM__DTYPE_F32, 0, NULL, &one },
        { "empty", ILM__DTYPE_F32, 2, s0x4, NULL },
    };
    const char *meta[] = { "k\\ey", "v\"al\x7f", "second", "", NULL };
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    ck_assert_int_eq(ilm__st_write(path, t, 5, meta), ILM_OK);

    size_t n;
    char *raw = test_slurp(path, &n);
    uint64_t hl = 0;
    memcpy(&hl, raw, 8);
    ck_assert_uint_eq(hl % 8, 0); /* data section 8-aligned */
    ck_assert_uint_eq(n, 8 + hl + sizeof f32 + sizeof f16 + sizeof bf16 + 4);
    free(raw);

    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(path, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 5);
    for (size_t i = 0; i < 5; i++) {
        const ilm__st_tensor *r = ilm__st_get(st, i); /* written order = file order */
        ck_assert_str_eq(r->name, t[i].name);
        ck_assert_uint_eq(r->type, t[i].type);
        ck_assert_int_eq(r->n_dims, t[i].n_dims);
        uint64_t elems = 1;
        for (int k = 0; k < t[i].n_dims; k++) {
            ck_assert_int_eq(r->shape[k], t[i].shape[k]);
            elems *= (uint64_t)t[i].shape[k];
        }
        uint64_t bytes = elems * (t[i].type == ILM__DTYPE_F32 ? 4 : 2);
        ck_assert_uint_eq(r->n_bytes, bytes);
        if (bytes) ck_assert(memcmp(r->data, t[i].data, bytes) == 0);
    }
    ck_assert_str_eq(ilm__st_metadata(st, "k\\ey"), "v\"al\x7f");
    ck_assert_str_eq(ilm__st_metadata(st, "second"), "");
    ilm__st_close(st);

    /* No metadata, no tensors: still a valid file. */
    ck_assert_int_eq(ilm__st_write(path, NULL, 0, NULL), ILM_OK);
    ck_assert_int_eq(ilm__st_open(path, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 0);
    ilm__st_close(st);
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(st_write_refuses_bad_arguments)
{
    float x[4] = { 0 };
    int64_t s2[] = { 2 }, neg[] = { -1 };
    const struct {
        ilm__st_out t[2];
        size_t n;
        const char *const *meta;
    } cases[] = {
        { { { "a", ILM__DTYPE_F32, 1, s2, x }, { "a", ILM__DTYPE_F32, 1, s2, x } }, 2, NULL },
        { { { "a", ILM__DTYPE_Q4_1, 1, s2, x } }, 1, NULL },
        { { { "a", ILM__DTYPE_F32, 1, neg, x } }, 1, NULL },
        { { { "a", ILM__DTYPE_F32, 1, s2, NULL } }, 1, NULL },
        { { { "a", ILM__DTYPE_F32, 9, s2, x } }, 1, NULL },
        { { { "__metadata__", ILM__DTYPE_F32, 1, s2, x } }, 1, NULL },
        { { { "\xff", ILM__DTYPE_F32, 1, s2, x } }, 1, NULL },
        { { { NULL, ILM__DTYPE_F32, 1, s2, x } }, 1, NULL },
        { { { "a", ILM__DTYPE_F32, 1, s2, x } }, 1, (const char *const[]){ "k", NULL } },
        { { { "a", ILM__DTYPE_F32, 1, s2, x } }, 1,
          (const char *const[]){ "k", "1", "k", "2", NULL } },
    };
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(ilm__st_write(path, cases[i].t, cases[i].n, cases[i].meta) ==
                          ILM_ERR_INVALID_ARG, "case %zu", i);
        struct stat sb;
        ck_assert_msg(stat(path, &sb) != 0, "case %zu left a file", i);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- safetensors: lying files ---------------------------------------------------- */

/* Writes 8-byte length + header + `data_len` bytes to dir/bad.safetensors
 * and opens it. */
static ilm_status open_crafted(const char *dir, uint64_t hlen, const char *header,
                               size_t data_len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    size_t hn = strlen(header);
    size_t n = 8 + hn + data_len;
    uint8_t *b = calloc(1, n);
    memcpy(b, &hlen, 8);
    memcpy(b + 8, header, hn);
    spit(path, b, n);
    free(b);
    ilm__safetensors *st = NULL;
    ilm_status s = ilm__st_open(path, &st);
    if (s == ILM_OK) ilm__st_close(st);
    else ck_assert_ptr_null(st);
    return s;
}

#define T(name, dt, shape, b, e)                                                             \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

START_TEST(st_refuses_lying_headers)
{
    static const struct {
        const char *header;
        size_t      data;
        ilm_status  want;
        const char *mentions;
    } cases[] = {
        { "[]", 0, ILM_ERR_FORMAT, "not a JSON object" },
        { "{\"a\":", 0, ILM_ERR_FORMAT, "not valid JSON" },
        { "not json", 0, ILM_ERR_FORMAT, "not a JSON object" },
        { "{} x", 0, ILM_ERR_FORMAT, "unexpected bytes" },
        { "{\"\xff\":1}", 0, ILM_ERR_FORMAT, "UTF-8" },
        { "{" T("w", "Q4_0", "[2]", 0, 2) "}", 2, ILM_ERR_FORMAT, "'w': unknown dtype 'Q4_0'" },
        { "{" T("w", "F32", "[-2]", 0, 8) "}", 8, ILM_ERR_FORMAT, "'w': shape[0]" },
        { "{" T("w", "F32", "[2.5]", 0, 8) "}", 8, ILM_ERR_FORMAT, "'w': shape[0]" },
        { "{" T("w", "U8", "[4294967296,4294967296,4294967296]", 0, 8) "}", 8, ILM_ERR_FORMAT,
          "'w': the shape's element count overflows" },
        { "{" T("w", "F64", "[4294967296,1073741824]", 0, 8) "}", 8, ILM_ERR_FORMAT,
          "'w': the shape's byte count overflows" },
        { "{" T("w", "F32", "[2]", 0, 8) "}", 4, ILM_ERR_FORMAT,
          "'w' ends at byte 8 but the data section has 4" },
        { "{" T("w", "F32", "[2]", 8, 0) "}", 8, ILM_ERR_FORMAT, "'w' begins at byte 8" },
        { "{" T("w", "F32", "[3]", 0, 8) "}", 12, ILM_ERR_FORMAT,
          "'w' has 8 bytes but its F32 shape needs 12" },
        { "{" T("a", "F32", "[2]", 0, 8) "," T("b", "F32", "[2]", 4, 12) "}", 12, ILM_ERR_FORMAT,
          "'b' (bytes 4..12) overlaps tensor 'a'" },
        { "{" T("a", "F32", "[2]", 4, 12) "," T("b", "F32", "[2]", 0, 8) "}", 12, ILM_ERR_FORMAT,
          "overlaps" },
        { "{" T("a", "F32", "[2]", 0, 8) "," T("a", "F32", "[2]", 8, 16) "}", 16,
          ILM_ERR_FORMAT, "'a' appears twice" },
        { "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, ILM_ERR_FORMAT,
          "'w': \"data_offsets\"" },
        { "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ILM_ERR_FORMAT, "'w': \"dtype\"" },
        { "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, ILM_ERR_FORMAT, "'w': \"shape\"" },
        { "{\"w\":[]}", 0, ILM_ERR_FORMAT, "'w': entry is not an object" },
        { "{\"__metadata__\":{\"k\":1}}", 0, ILM_ERR_FORMAT, "'k' is not a string" },
        { "{\"__metadata__\":[]}", 0, ILM_ERR_FORMAT, "__metadata__" },
        { "{" T("w", "F4", "[3]", 0, 2) "}", 2, ILM_ERR_FORMAT, "whole bytes" },
        { "{" T("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, ILM_ERR_UNSUPPORTED,
          "'w' has 9 dimensions" },
    };
    char *dir = test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ilm_status s = open_crafted(dir, strlen(cases[i].header), cases[i].header,
                                    cases[i].data);
        ck_assert_msg(s == cases[i].want, "case %zu: %s (%s)", i, ilm_status_str(s),
                      ilm_last_error());
        assert_error_mentions(cases[i].mentions);
        assert_error_mentions("bad.safetensors");
    }
    /* The header length itself. */
    ck_assert_int_eq(open_crafted(dir, 100, "{}", 0), ILM_ERR_FORMAT);
    assert_error_mentions("header length 100 but only 2 bytes follow");
    ck_assert_int_eq(open_crafted(dir, (uint64_t)1 << 62, "{}", 0), ILM_ERR_FORMAT);
    assert_error_mentions("exceeds");
    ck_assert_int_eq(open_crafted(dir, 0, "", 0), ILM_ERR_FORMAT);

    /* What is valid: a gap and trailing bytes (the reference refuses both;
     * see safetensors.c), zero-sized tensors sharing an offset, trailing
     * spaces, a null __metadata__, unknown keys in an entry, sub-byte
     * dtypes that fill whole bytes. */
    const char *gap = "{" T("a", "U8", "[2]", 0, 2) "," T("b", "U8", "[2]", 4, 6) "}";
    ck_assert_int_eq(open_crafted(dir, strlen(gap), gap, 8), ILM_OK);
    const char *ok[] = {
        "{" T("a", "U8", "[0]", 0, 0) "," T("b", "F32", "[0,5]", 0, 0) "}   ",
        "{\"__metadata__\":null}",
        "{\"w\":{\"dtype\":\"BOOL\",\"shape\":[],\"data_offsets\":[0,1],\"extra\":7}}",
        "{" T("w", "F4", "[4]", 0, 2) "," T("v", "F6_E2M3", "[4]", 2, 5) "}",
        "  {}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(open_crafted(dir, strlen(ok[i]), ok[i], 8) == ILM_OK, "ok %zu: %s", i,
                      ilm_last_error());
    test_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(st_refuses_every_truncation)
{
    size_t n;
    char *b = test_slurp(FIX "st_mixed.safetensors", &n);
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/cut.safetensors", dir);
    for (size_t cut = 0; cut < n; cut++) {
        spit(path, b, cut);
        ilm__safetensors *st = NULL;
        ilm_status s = ilm__st_open(path, &st);
        ck_assert_msg(s == ILM_ERR_FORMAT, "cut at %zu: %s", cut, ilm_status_str(s));
        ck_assert_ptr_null(st);
        assert_error_mentions("cut.safetensors");
    }
    free(b);
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- config.json ------------------------------------------------------------------ */

static ilm_status arch_from_file(const char *name, ilm__arch *a)
{
    char path[256];
    snprintf(path, sizeof path, FIX "%s", name);
    size_t n;
    char *t = test_slurp(path, &n);
    ilm_status s = ilm__arch_from_hf_config(t, n, name, a);
    free(t);
    return s;
}

static void assert_same_arch(const ilm__arch *a, const ilm__arch *b)
{
    ck_assert_int_eq(a->kind, b->kind);
    ck_assert_int_eq(a->vocab_size, b->vocab_size);
    ck_assert_int_eq(a->hidden_size, b->hidden_size);
    ck_assert_int_eq(a->intermediate_size, b->intermediate_size);
    ck_assert_int_eq(a->n_layers, b->n_layers);
    ck_assert_int_eq(a->n_heads, b->n_heads);
    ck_assert_int_eq(a->n_kv_heads, b->n_kv_heads);
    ck_assert_int_eq(a->head_dim, b->head_dim);
    ck_assert_int_eq(a->max_position, b->max_position);
    ck_assert(a->rms_eps == b->rms_eps);
    ck_assert(a->rope_theta == b->rope_theta);
    ck_assert_int_eq(a->rope_scaling, b->rope_scaling);
    ck_assert(a->rope_factor == b->rope_factor);
    ck_assert(a->rope_low_freq_factor == b->rope_low_freq_factor);
    ck_assert(a->rope_high_freq_factor == b->rope_high_freq_factor);
    ck_assert_int_eq(a->rope_original_max_position, b->rope_original_max_position);
    ck_assert_int_eq(a->rope_interleaved, b->rope_interleaved);
    ck_assert_int_eq(a->tie_embeddings, b->tie_embeddings);
    ck_assert_int_eq(a->bos_id, b->bos_id);
    ck_assert_int_eq(a->eos_id, b->eos_id);
    ck_assert_int_eq(a->pad_id, b->pad_id);
}

/* to_hf_config and back gives the same architecture. */
static void assert_round_trip(const ilm__arch *a)
{
    char *json = NULL;
    ck_assert_msg(ilm__arch_to_hf_config(a, &json) == ILM_OK, "%s", ilm_last_error());
    ilm__arch b;
    ck_assert_msg(ilm__arch_from_hf_config(json, strlen(json), "written", &b) == ILM_OK,
                  "%s\n%s", ilm_last_error(), json);
    assert_same_arch(a, &b);
    cJSON *j = cJSON_Parse(json);
    ck_assert_ptr_nonnull(j);
    cJSON_Delete(j);
    ilm__free(json);
}

START_TEST(config_published)
{
    ilm__arch a;
    ck_assert_int_eq(arch_from_file("config_smollm2_135m_instruct.json", &a), ILM_OK);
    ilm__arch smol = { .kind = ILM__ARCH_LLAMA, .vocab_size = 49152, .hidden_size = 576,
                       .intermediate_size = 1536, .n_layers = 30, .n_heads = 9,
                       .n_kv_heads = 3, .head_dim = 64, .max_position = 8192,
                       .rms_eps = 1e-5f, .rope_theta = 100000.0f, .rope_factor = 1.0f,
                       .tie_embeddings = true, .bos_id = 1, .eos_id = 2, .pad_id = 2 };
    assert_same_arch(&a, &smol);
    assert_round_trip(&a);

    ck_assert_int_eq(arch_from_file("config_internlm2_chat_7b.json", &a), ILM_OK);
    ilm__arch il2 = { .kind = ILM__ARCH_INTERNLM2, .vocab_size = 92544, .hidden_size = 4096,
                      .intermediate_size = 14336, .n_layers = 32, .n_heads = 32,
                      .n_kv_heads = 8, .head_dim = 128, .max_position = 32768,
                      .rms_eps = 1e-5f, .rope_theta = 1e6f,
                      .rope_scaling = ILM__ROPE_SCALING_DYNAMIC, .rope_factor = 2.0f,
                      .rope_original_max_position = 32768, .bos_id = 1, .eos_id = 2,
                      .pad_id = 2 };
    assert_same_arch(&a, &il2);
    assert_round_trip(&a);

    ck_assert_int_eq(arch_from_file("config_llama31_8b_instruct.json", &a), ILM_OK);
    ilm__arch l31 = { .kind = ILM__ARCH_LLAMA, .vocab_size = 128256, .hidden_size = 4096,
                      .intermediate_size = 14336, .n_layers = 32, .n_heads = 32,
                      .n_kv_heads = 8, .head_dim = 128, .max_position = 131072,
                      .rms_eps = 1e-5f, .rope_theta = 500000.0f,
                      .rope_scaling = ILM__ROPE_SCALING_LLAMA3, .rope_factor = 8.0f,
                      .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f,
                      .rope_original_max_position = 8192, .bos_id = 128000,
                      .eos_id = 128001, .pad_id = -1 };
    assert_same_arch(&a, &l31);
    assert_round_trip(&a);

    ck_assert_int_eq(arch_from_file("config_mistral_7b_v03.json", &a), ILM_OK);
    ilm__arch m3 = { .kind = ILM__ARCH_LLAMA, .vocab_size = 32768, .hidden_size = 4096,
                     .intermediate_size = 14336, .n_layers = 32, .n_heads = 32,
                     .n_kv_heads = 8, .head_dim = 128, .max_position = 32768,
                     .rms_eps = 1e-5f, .rope_theta = 1e6f, .rope_factor = 1.0f,
                     .bos_id = 1, .eos_id = 2, .pad_id = -1 };
    assert_same_arch(&a, &m3);
    assert_round_trip(&a);

    /* Mistral-7B-v0.1 attends through a 4096-token window. */
    ck_assert_int_eq(arch_from_file("config_mistral_7b_v01.json", &a), ILM_ERR_UNSUPPORTED);
    assert_error_mentions("sliding_window 4096");

    ck_assert_int_eq(arch_from_file("config_internlm3_8b_instruct.json", &a), ILM_OK);
    ilm__arch il3 = { .kind = ILM__ARCH_LLAMA, .vocab_size = 128512, .hidden_size = 4096,
                      .intermediate_size = 10240, .n_layers = 48, .n_heads = 32,
                      .n_kv_heads = 2, .head_dim = 128, .max_position = 32768,
                      .rms_eps = 1e-5f, .rope_theta = 5e7f,
                      .rope_scaling = ILM__ROPE_SCALING_DYNAMIC, .rope_factor = 6.0f,
                      .rope_original_max_position = 32768, .bos_id = 1, .eos_id = 2,
                      .pad_id = 2 };
    assert_same_arch(&a, &il3);
    assert_round_trip(&a);
}
END_TEST

/* The model fixtures (tools/reference/model_fixtures.py) were saved by
 * transformers 5, which writes "rope_parameters"; config_v4.json holds the
 * same model in the hub's older key style.  Both must give one
 * architecture, and the weights transformers saved must fit it. */
START_TEST(config_transformers_saved)
{
    static const char *const dirs[] = { "dynamic_ntk", "gqa_tied", "gqa_untied",
                                        "gqa_untied_internlm2", "llama3_rope", "mha_untied",
                                        "odd_linear" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "tests/fixtures/model/%s/config.json", dirs[i]);
        size_t n;
        char *t = test_slurp(path, &n);
        ilm__arch a, b;
        ck_assert_msg(ilm__arch_from_hf_config(t, n, path, &a) == ILM_OK, "%s", ilm_last_error());
        free(t);
        snprintf(path, sizeof path, "tests/fixtures/model/%s/config_v4.json", dirs[i]);
        struct stat sb;
        if (stat(path, &sb) == 0) {
            t = test_slurp(path, &n);
            ck_assert_msg(ilm__arch_from_hf_config(t, n, path, &b) == ILM_OK, "%s",
                          ilm_last_error());
            free(t);
            assert_same_arch(&a, &b);
        }
        assert_round_trip(&a);

        snprintf(path, sizeof path, "tests/fixtures/model/%s", dirs[i]);
        ilm__safetensors *st;
        ck_assert_msg(ilm__st_open(path, &st) == ILM_OK, "%s", ilm_last_error());
        bool il2 = a.kind == ILM__ARCH_INTERNLM2;
        const ilm__st_tensor *e =
            ilm__st_find(st, il2 ? "model.tok_embeddings.weight" : "model.embed_tokens.weight");
        ck_assert_msg(e != NULL, "%s: no embedding", dirs[i]);
        ck_assert_int_eq(e->n_dims, 2);
        ck_assert_int_eq(e->shape[0], a.vocab_size);
        ck_assert_int_eq(e->shape[1], a.hidden_size);
        ck_assert_uint_eq(e->type, ILM__DTYPE_F32);
        ck_assert_int_eq(ilm__st_find(st, il2 ? "output.weight" : "lm_head.weight") == NULL,
                         a.tie_embeddings);
        ilm__st_close(st);
    }
    ilm__arch a;
    size_t n;
    char *t = test_slurp("tests/fixtures/model/dynamic_ntk/config.json", &n);
    ck_assert_int_eq(ilm__arch_from_hf_config(t, n, "c", &a), ILM_OK);
    free(t);
    ck_assert_int_eq(a.rope_scaling, ILM__ROPE_SCALING_DYNAMIC);
    ck_assert(a.rope_factor == 2.0f);
    t = test_slurp("tests/fixtures/model/llama3_rope/config.json", &n);
    ck_assert_int_eq(ilm__arch_from_hf_config(t, n, "c", &a), ILM_OK);
    free(t);
    ck_assert_int_eq(a.rope_scaling, ILM__ROPE_SCALING_LLAMA3);
    ck_assert(a.rope_theta == 500000.0f);
    ck_assert_int_eq(a.rope_original_max_position, 64);
}
END_TEST

/* The SmolLM2 config with `key` set to the JSON `value` (NULL: removed). */
static ilm_status smol_with(const char *key, const char *value)
{
    cJSON *j = read_json(FIX "config_smollm2_135m_instruct.json");
    cJSON_DeleteItemFromObjectCaseSensitive(j, key);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        ck_assert_msg(v != NULL, "bad test value %s", value);
        cJSON_AddItemToObject(j, key, v);
    }
    char *t = cJSON_PrintUnformatted(j);
    ilm__arch a;
    memset(&a, 0x5a, sizeof a);
    ilm__arch before = a;
    ilm_status s = ilm__arch_from_hf_config(t, strlen(t), "smol/config.json", &a);
    if (s != ILM_OK) ck_assert(memcmp(&a, &before, sizeof a) == 0); /* untouched */
    free(t);
    cJSON_Delete(j);
    return s;
}

START_TEST(config_refusals)
{
    static const struct {
        const char *key, *value;
        ilm_status  want;
        const char *mentions;
    } cases[] = {
        { "architectures", "[\"BertModel\"]", ILM_ERR_UNSUPPORTED, "BertModel" },
        { "architectures", "[\"InternLMForCausalLM\"]", ILM_ERR_UNSUPPORTED, "InternLMFor" },
        { "architectures", "\"LlamaForCausalLM\"", ILM_ERR_FORMAT, "architectures" },
        { "model_type", "\"mistral\"", ILM_ERR_FORMAT, "model_type 'mistral'" },
        { "hidden_act", "\"gelu\"", ILM_ERR_UNSUPPORTED, "hidden_act 'gelu'" },
        { "hidden_act", "7", ILM_ERR_FORMAT, "'hidden_act' must be a string" },
        { "attention_bias", "true", ILM_ERR_UNSUPPORTED, "attention_bias" },
        { "mlp_bias", "true", ILM_ERR_UNSUPPORTED, "mlp_bias" },
        { "attention_bias", "1", ILM_ERR_FORMAT, "attention_bias" },
        { "num_key_value_heads", "2", ILM_ERR_FORMAT, "not a multiple of num_key_value_heads" },
        { "num_attention_heads", "15", ILM_ERR_FORMAT, "hidden_size 576" },
        { "hidden_size", "-576", ILM_ERR_FORMAT, "'hidden_size' is -576" },
        { "hidden_size", "\"576\"", ILM_ERR_FORMAT, "'hidden_size' must be an integer" },
        { "hidden_size", "576.5", ILM_ERR_FORMAT, "'hidden_size' must be an integer" },
        { "vocab_size", NULL, ILM_ERR_FORMAT, "'vocab_size' is missing" },
        { "num_hidden_layers", "0", ILM_ERR_FORMAT, "num_hidden_layers" },
        { "intermediate_size", "1e12", ILM_ERR_FORMAT, "intermediate_size" },
        { "rms_norm_eps", "0", ILM_ERR_FORMAT, "rms_norm_eps" },
        { "rope_theta", "\"1e4\"", ILM_ERR_FORMAT, "rope_theta" },
        { "tie_word_embeddings", "\"yes\"", ILM_ERR_FORMAT, "tie_word_embeddings" },
        { "head_dim", "63", ILM_ERR_FORMAT, "odd" },
        { "eos_token_id", "49152", ILM_ERR_FORMAT, "vocab_size" },
        { "bos_token_id", "[1]", ILM_ERR_FORMAT, "bos_token_id" },
        { "eos_token_id", "[]", ILM_ERR_FORMAT, "eos_token_id" },
        { "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", ILM_ERR_UNSUPPORTED,
          "'yarn'" },
        { "rope_scaling", "{\"type\": \"linear\"}", ILM_ERR_FORMAT, "'factor' is missing" },
        { "rope_scaling", "{\"type\": \"linear\", \"factor\": 0.5}", ILM_ERR_FORMAT, "below 1" },
        { "rope_scaling", "{\"type\": \"linear\", \"rope_type\": \"dynamic\", \"factor\": 2}",
          ILM_ERR_FORMAT, "disagree" },
        { "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0,"
          " \"original_max_position_embeddings\": 8192}", ILM_ERR_FORMAT, "low_freq_factor" },
        { "rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 4.0,"
          " \"high_freq_factor\": 1.0, \"original_max_position_embeddings\": 8192}",
          ILM_ERR_FORMAT, "not above" },
        { "rope_scaling", "[]", ILM_ERR_FORMAT, "rope_scaling" },
        { "partial_rotary_factor", "0.5", ILM_ERR_UNSUPPORTED, "partial_rotary_factor" },
        { "rope_parameters", "{\"rope_type\": \"default\", \"rope_theta\": 5.0}",
          ILM_ERR_FORMAT, "disagree" },
        { "rope_parameters", "{\"rope_type\": \"yarn\", \"factor\": 2.0}", ILM_ERR_UNSUPPORTED,
          "'yarn'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ilm_status s = smol_with(cases[i].key, cases[i].value);
        ck_assert_msg(s == cases[i].want, "case %zu (%s): %s %s", i, cases[i].key,
                      ilm_status_str(s), ilm_last_error());
        assert_error_mentions(cases[i].mentions);
        assert_error_mentions("smol/config.json");
    }
    /* Accepted variations: nulls read as absent, a default rope_type. */
    ck_assert_int_eq(smol_with("num_key_value_heads", "null"), ILM_OK);
    ck_assert_int_eq(smol_with("rope_scaling", "{\"rope_type\": \"default\"}"), ILM_OK);
    ck_assert_int_eq(smol_with("pad_token_id", "null"), ILM_OK);
    ck_assert_int_eq(smol_with("architectures", NULL), ILM_OK); /* model_type decides */

    ilm__arch a;
    const char *bad[] = { "", "[1]", "{\"model_type\": \"llama\"", "{}" };
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(ilm__arch_from_hf_config(bad[i], strlen(bad[i]), "c", &a),
                         ILM_ERR_FORMAT);

    /* InternLM2 specifics: bias defaults to true; rope_scaling is exactly
     * {type, factor} of linear or dynamic. */
    const char *il2 = "{\"architectures\": [\"InternLM2ForCausalLM\"], \"vocab_size\": 100,"
                      " \"hidden_size\": 64, \"intermediate_size\": 128,"
                      " \"num_hidden_layers\": 2, \"num_attention_heads\": 4%s}";
    const struct {
        const char *extra;
        ilm_status  want;
    } il2_cases[] = {
        { "", ILM_ERR_UNSUPPORTED },
        { ", \"bias\": false", ILM_OK },
        { ", \"bias\": false, \"rope_scaling\": {\"type\": \"llama3\", \"factor\": 2}",
          ILM_ERR_UNSUPPORTED },
        { ", \"bias\": false, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2, \"x\": 1}",
          ILM_ERR_FORMAT },
        { ", \"bias\": false, \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 2}",
          ILM_ERR_FORMAT },
        { ", \"bias\": false, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}", ILM_OK },
    };
    for (size_t i = 0; i < sizeof il2_cases / sizeof il2_cases[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, il2, il2_cases[i].extra);
        ck_assert_msg(ilm__arch_from_hf_config(text, strlen(text), "c", &a) == il2_cases[i].want,
                      "internlm2 case %zu: %s", i, ilm_last_error());
        if (il2_cases[i].want == ILM_OK) {
            ck_assert_int_eq(a.pad_id, 0); /* InternLM2Config's default */
            ck_assert(a.rms_eps == 1e-6f);
            ck_assert_int_eq(a.max_position, 2048);
            ck_assert(a.rope_theta == 10000.0f);
            ck_assert_int_eq(a.n_kv_heads, 4);
            assert_round_trip(&a);
        }
    }
}
END_TEST

START_TEST(config_written)
{
    ilm__arch a;
    ck_assert_int_eq(arch_from_file("config_internlm2_chat_7b.json", &a), ILM_OK);
    char *json;
    ck_assert_int_eq(ilm__arch_to_hf_config(&a, &json), ILM_OK);
    cJSON *j = cJSON_Parse(json);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "architectures"), 0)->valuestring,
                     "InternLM2ForCausalLM");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "model_type")->valuestring, "internlm2");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "auto_map"),
                                         "AutoModelForCausalLM")->valuestring,
                     "modeling_internlm2.InternLM2ForCausalLM");
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(j, "bias")));
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "head_dim"));
    const cJSON *rs = cJSON_GetObjectItem(j, "rope_scaling");
    ck_assert_int_eq(cJSON_GetArraySize(rs), 2);
    ck_assert_str_eq(cJSON_GetObjectItem(rs, "type")->valuestring, "dynamic");
    ck_assert(strstr(json, "\"rms_norm_eps\": 1e-05,") != NULL);
    ck_assert(strstr(json, "\"rope_theta\": 1000000.0,") != NULL);
    cJSON_Delete(j);
    ilm__free(json);

    ck_assert_int_eq(arch_from_file("config_smollm2_135m_instruct.json", &a), ILM_OK);
    ck_assert_int_eq(ilm__arch_to_hf_config(&a, &json), ILM_OK);
    j = cJSON_Parse(json);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "model_type")->valuestring, "llama");
    ck_assert(cJSON_IsNull(cJSON_GetObjectItem(j, "rope_scaling")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "head_dim")->valueint, 64);
    /* Keys sorted, as transformers writes them. */
    const cJSON *prev = NULL, *e;
    cJSON_ArrayForEach(e, j) {
        if (prev) ck_assert_msg(strcmp(prev->string, e->string) < 0, "%s", e->string);
        prev = e;
    }
    cJSON_Delete(j);
    ilm__free(json);

    /* What an HF config cannot say. */
    ilm__arch g = a;
    g.rope_interleaved = true;
    ck_assert_int_eq(ilm__arch_to_hf_config(&g, &json), ILM_ERR_UNSUPPORTED);
    ck_assert_ptr_null(json);
    g = a;
    g.kind = ILM__ARCH_INTERNLM2;
    g.rope_scaling = ILM__ROPE_SCALING_LLAMA3;
    ck_assert_int_eq(ilm__arch_to_hf_config(&g, &json), ILM_ERR_UNSUPPORTED);
    g = a;
    g.n_kv_heads = 4;
    ck_assert_int_eq(ilm__arch_to_hf_config(&g, &json), ILM_ERR_INVALID_ARG);
}
END_TEST

/* ---- GGUF architecture -------------------------------------------------------------- */

START_TEST(gguf_arch_smollm2)
{
    const char *p = test_pydeps_file(TEST_SMOLLM2);
    if (!p) return;
    ilm__gguf *g;
    ck_assert_int_eq(ilm__gguf_open(p, &g), ILM_OK);
    ilm__arch a;
    ck_assert_msg(ilm__arch_from_gguf(g, &a) == ILM_OK, "%s", ilm_last_error());
    ilm__arch want = { .kind = ILM__ARCH_LLAMA, .vocab_size = 49152, .hidden_size = 576,
                       .intermediate_size = 1536, .n_layers = 30, .n_heads = 9,
                       .n_kv_heads = 3, .head_dim = 64, .max_position = 8192,
                       .rms_eps = 1e-5f, .rope_theta = 100000.0f, .rope_factor = 1.0f,
                       .rope_interleaved = true, .tie_embeddings = true, .bos_id = 1,
                       .eos_id = 2, .pad_id = 2 };
    assert_same_arch(&a, &want);
    ilm__gguf_close(g);
}
END_TEST

static ilm_status gguf_arch_of(const char *name, ilm__arch *a)
{
    char path[256];
    snprintf(path, sizeof path, FIX "gguf_%s.gguf", name);
    ilm__gguf *g;
    ck_assert_msg(ilm__gguf_open(path, &g) == ILM_OK, "%s: %s", path, ilm_last_error());
    ilm_status s = ilm__arch_from_gguf(g, a);
    ilm__gguf_close(g);
    return s;
}

START_TEST(gguf_arch_crafted)
{
    ilm__arch a;
    ck_assert_msg(gguf_arch_of("good", &a) == ILM_OK, "%s", ilm_last_error());
    ilm__arch want = { .kind = ILM__ARCH_LLAMA, .vocab_size = 10, .hidden_size = 8,
                       .intermediate_size = 12, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1,
                       .head_dim = 4, .max_position = 64, .rms_eps = 1e-5f,
                       .rope_theta = 500000.0f, .rope_factor = 1.0f, .rope_interleaved = true,
                       .tie_embeddings = false, .bos_id = 1, .eos_id = 2, .pad_id = -1 };
    assert_same_arch(&a, &want);
    ck_assert_int_eq(gguf_arch_of("tied", &a), ILM_OK);
    ck_assert(a.tie_embeddings);
    ck_assert_int_eq(gguf_arch_of("linear", &a), ILM_OK);
    ck_assert_int_eq(a.rope_scaling, ILM__ROPE_SCALING_LINEAR);
    ck_assert(a.rope_factor == 2.0f);

    static const struct {
        const char *name;
        ilm_status  want;
        const char *mentions;
    } cases[] = {
        { "missing_ffn_up", ILM_ERR_FORMAT, "'blk.1.ffn_up.weight' is missing" },
        { "bad_k_shape", ILM_ERR_FORMAT, "'blk.0.attn_k.weight' has ggml dims [8, 8] but the "
          "metadata implies [8, 4]" },
        { "bad_embd", ILM_ERR_FORMAT, "'token_embd.weight'" },
        /* Without llama.vocab_size the token list (12) sets V. */
        { "vocab_mismatch", ILM_ERR_FORMAT, "'token_embd.weight' has ggml dims [8, 10] but the "
          "metadata implies [8, 12]" },
        { "kv_not_dividing", ILM_ERR_FORMAT, "head_count_kv 3" },
        { "arch_gpt2", ILM_ERR_UNSUPPORTED, "'gpt2'" },
        { "yarn", ILM_ERR_UNSUPPORTED, "'yarn'" },
        { "bias", ILM_ERR_UNSUPPORTED, "'blk.0.attn_q.bias'" },
        { "rope_freqs", ILM_ERR_UNSUPPORTED, "'rope_freqs.weight'" },
        { "extra_layer", ILM_ERR_UNSUPPORTED, "'blk.2.attn_norm.weight'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ilm_status s = gguf_arch_of(cases[i].name, &a);
        ck_assert_msg(s == cases[i].want, "%s: %s (%s)", cases[i].name, ilm_status_str(s),
                      ilm_last_error());
        assert_error_mentions(cases[i].mentions);
        assert_error_mentions(cases[i].name);
    }
}
END_TEST

Suite *suite_formats(void)
{
    Suite *s = suite_create("formats");
    TCase *tc = tcase_create("safetensors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, st_reads_reference_file);
    tcase_add_test(tc, st_opens_directory);
    tcase_add_test(tc, st_reads_sharded);
    tcase_add_test(tc, st_sharded_bad_index);
    tcase_add_test(tc, st_write_matches_reference_bytes);
    tcase_add_test(tc, st_write_round_trip);
    tcase_add_test(tc, st_write_refuses_bad_arguments);
    tcase_add_test(tc, st_refuses_lying_headers);
    tcase_add_test(tc, st_refuses_every_truncation);
    suite_add_tcase(s, tc);
    tc = tcase_create("config");
    tcase_add_test(tc, config_published);
    tcase_add_test(tc, config_refusals);
    tcase_add_test(tc, config_transformers_saved);
    tcase_add_test(tc, config_written);
    suite_add_tcase(s, tc);
    tc = tcase_create("gguf_arch");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, gguf_arch_smollm2);
    tcase_add_test(tc, gguf_arch_crafted);
    suite_add_tcase(s, tc);
    return s;
}
