/* NF4 / FP4 (src/quant/): quantization and dequantization bit for bit
 * against bitsandbytes 0.50 on the CPU, the safetensors keys that
 * bitsandbytes' Linear4bit and transformers' save_pretrained write (files
 * they wrote: tests/fixtures/nf4, from tools/reference/nf4_fixtures.py),
 * our writer's round trip, and bad files. */
#include "tests.h"
#include "quant/nf4.h"
#include "tensor/tensor.h"
#include "model/internal.h"
#include "internlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/nf4/"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

/* The bytes of a hex string, malloc'd (*n of them). */
static uint8_t *unhex(const char *s, size_t *n)
{
    size_t len = strlen(s) / 2;
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    *n = len;
    return b;
}

static float bits_f32(const char *hex)
{
    uint32_t u = (uint32_t)strtoul(hex, NULL, 16);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t jint(const cJSON *o, const char *k)
{
    return (int64_t)cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}

static uint64_t jhash(const cJSON *o, const char *k)
{
    return strtoull(jstr(o, k), NULL, 16);
}

static cJSON *fixture(void)
{
    return test_read_json(FIX "nf4.json");
}

/* The script's gen(): splitmix64 of (seed << 32) + i, two 24-bit uniforms,
 * x = (u1 - 0.5) * (1 + 15 * (u2^2)^2) * 2^(row % 5 - 2) * scale, float32
 * at every step (see tools/reference/nf4_fixtures.py). */
static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void gen(uint64_t seed, int64_t n, int64_t cols, float scale, float *x)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t h = splitmix64((seed << 32) + (uint64_t)i);
        float u1 = (float)(h >> 40) * 0x1p-24f;
        float u2 = (float)((h >> 16) & 0xFFFFFF) * 0x1p-24f;
        float t = u2 * u2;
        t = t * t;
        float s = 1.0f + 15.0f * t;
        float p2 = ldexpf(1.0f, (int)((i / cols) % 5) - 2);
        float v = (u1 - 0.5f) * s;
        v = v * p2;
        x[i] = v * scale;
    }
}

/* The script's patch(). */
static void patch(const char *how, float *x, int64_t n, int64_t bs)
{
    if (!how) return;
    if (strcmp(how, "zero_blocks") == 0) {
        for (int64_t i = 0; i < bs; i++) x[i] = 0;
        int64_t tail = n % bs ? n % bs : bs;
        for (int64_t i = n - tail; i < n; i++) x[i] = 0;
    } else if (strcmp(how, "constant") == 0) {
        for (int64_t i = 0; i < n; i++) x[i] = 0.75f;
    } else if (strcmp(how, "specials") == 0) {
        x[3] = NAN;
        x[bs + 1] = INFINITY;
        x[2 * bs + 2] = -INFINITY;
        x[3 * bs + 5] = 1e-40f;
        for (int64_t i = 3 * bs; i < 3 * bs + 5; i++) x[i] = 0;
        for (int64_t i = 3 * bs + 6; i < 4 * bs; i++) x[i] = 0;
    } else if (strcmp(how, "ties") == 0) {
        float code[16], mids[15];
        ilm__q4_code(ILM__Q4_NF4, code);
        for (int i = 0; i < 15; i++) mids[i] = (code[i] + code[i + 1]) / 2.0f;
        for (int64_t k = 0; k < n; k++)
            x[k] = k % bs == 0 ? 1.0f : k % 3 ? mids[k % 15] : -mids[k % 15];
    } else {
        ck_abort_msg("unknown patch %s", how);
    }
}

/* A case's input as the quantizer sees it (rounded through its dtype). */
static float *case_input(const cJSON *c, int64_t *n_out, int32_t *nd, int64_t shape[8])
{
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(c, "shape");
    *nd = cJSON_GetArraySize(sh);
    int64_t n = 1;
    for (int d = 0; d < *nd; d++) n *= (shape[d] = (int64_t)cJSON_GetArrayItem(sh, d)->valuedouble);
    float *x = malloc((size_t)n * sizeof(float));
    gen((uint64_t)jint(c, "seed"), n, shape[*nd - 1], bits_f32(jstr(c, "scale")), x);
    patch(jstr(c, "patch"), x, n, jint(c, "blocksize"));
    const char *dt = jstr(c, "dtype");
    for (int64_t i = 0; i < n; i++) {
        if (strcmp(dt, "bfloat16") == 0) x[i] = ilm__bf16_to_f32(ilm__f32_to_bf16(x[i]));
        else if (strcmp(dt, "float16") == 0) x[i] = ilm__f16_to_f32(ilm__f32_to_f16(x[i]));
    }
    *n_out = n;
    return x;
}

static uint32_t dtype_of(const char *s)
{
    return strcmp(s, "bfloat16") == 0 ? ILM__DTYPE_BF16
           : strcmp(s, "float16") == 0 ? ILM__DTYPE_F16
                                       : ILM__DTYPE_F32;
}

/* Fails with the first differing byte when a and b differ. */
static void bytes_equal(const char *what, const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(x[i] == y[i], "%s: byte %zu is %02x, bitsandbytes %02x", what, i, x[i], y[i]);
}

/* ---- tables and the pieces ----------------------------------------------------- */

START_TEST(tables_match_bitsandbytes)
{
    cJSON *j = fixture();
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tables");
    float nf4[16], fp4[16], dyn[256];
    ilm__q4_code(ILM__Q4_NF4, nf4);
    ilm__q4_code(ILM__Q4_FP4, fp4);
    ilm__q4_dynamic_map(dyn);
    size_t n;
    uint8_t *b = unhex(jstr(t, "nf4"), &n);
    ck_assert_uint_eq(n, sizeof nf4);
    bytes_equal("nf4 table", nf4, b, n);
    free(b);
    b = unhex(jstr(t, "fp4"), &n);
    bytes_equal("fp4 table", fp4, b, n);
    free(b);
    b = unhex(jstr(t, "dynamic"), &n);
    ck_assert_uint_eq(n, sizeof dyn);
    bytes_equal("create_dynamic_map", dyn, b, n);
    free(b);

    /* The 8-bit kernel's decisions at each threshold and just below it. */
    size_t nt, nc, nb;
    float *thr = (float *)unhex(jstr(t, "thresholds"), &nt);
    uint8_t *at = unhex(jstr(t, "threshold_codes"), &nc), *below = unhex(jstr(t, "below_codes"), &nb);
    ck_assert_uint_eq(nt, 255 * 4);
    ck_assert_uint_eq(nc, 255);
    ck_assert_uint_eq(nb, 255);
    for (int i = 0; i < 255; i++) {
        float v = thr[i], w = nextafterf(thr[i], -2.0f);
        ck_assert_msg(ilm__q8_code_of(dyn, v) == at[i], "threshold %d: v %a gives %u, bnb %u", i,
                      v, ilm__q8_code_of(dyn, v), at[i]);
        ck_assert_msg(ilm__q8_code_of(dyn, w) == below[i], "below threshold %d: %a gives %u, "
                      "bnb %u", i, w, ilm__q8_code_of(dyn, w), below[i]);
    }
    /* NaN (0 / 0: a block of equal absmax values) is code 0, as in bnb. */
    ck_assert_uint_eq(ilm__q8_code_of(dyn, NAN), 0);
    free(thr);
    free(at);
    free(below);
    cJSON_Delete(j);
}
END_TEST

START_TEST(torch_sum_order_matches)
{
    cJSON *j = fixture();
    const cJSON *sums = cJSON_GetObjectItemCaseSensitive(j, "sums"), *e;
    ck_assert_int_gt(cJSON_GetArraySize(sums), 40);
    cJSON_ArrayForEach(e, sums)
    {
        int64_t n = jint(e, "n");
        float *x = malloc((size_t)n * sizeof(float));
        gen((uint64_t)jint(e, "seed"), n, n, 1.0f, x);
        for (int64_t i = 0; i < n; i++) x[i] = fabsf(x[i]);
        int th = (int)jint(e, "threads");
        float s = ilm__q4_torch_sum(x, n, th), m = ilm__q4_torch_mean(x, n, th);
        ck_assert_msg(f32_bits(s) == f32_bits(bits_f32(jstr(e, "sum"))),
                      "n %lld threads %d: sum %a, torch %a", (long long)n, th, s,
                      bits_f32(jstr(e, "sum")));
        ck_assert_msg(f32_bits(m) == f32_bits(bits_f32(jstr(e, "mean"))),
                      "n %lld threads %d: mean %a, torch %a", (long long)n, th, m,
                      bits_f32(jstr(e, "mean")));
        free(x);
    }
    cJSON_Delete(j);
}
END_TEST

/* ---- every fixture case -------------------------------------------------------- */

/* The number of cases, read when the suite is built (outside any test, so
 * without Check's asserts: a missing file gives one failing loop pass). */
static int n_cases(void)
{
    FILE *f = fopen(FIX "nf4.json", "rb");
    if (!f) return 1;
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    cJSON *j = cJSON_Parse(buf);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "cases"));
    cJSON_Delete(j);
    return n > 0 ? n : 1;
}

START_TEST(quantize_matches_bitsandbytes)
{
    cJSON *j = fixture();
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "cases"), _i);
    const char *name = jstr(c, "name");
    int64_t n, shape[8];
    int32_t nd;
    float *x = case_input(c, &n, &nd, shape);
    ck_assert_int_eq(n, jint(c, "n"));
    ck_assert_msg(fnv1a(x, (size_t)n * 4) == jhash(c, "input_fnv"), "%s: input differs", name);

    const bool nested = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "nested"));
    ilm__q4_opts o = { 0 };
    o.kind = strcmp(jstr(c, "quant_type"), "fp4") == 0 ? ILM__Q4_FP4 : ILM__Q4_NF4;
    o.blocksize = jint(c, "blocksize");
    o.dtype = dtype_of(jstr(c, "dtype"));
    o.torch_threads = (int)jint(c, "torch_threads");
    ilm__q4 plain, q;
    ck_assert_int_eq(ilm__q4_quantize(x, nd, shape, &o, &plain), ILM_OK);
    o.nested = nested;
    ck_assert_int_eq(ilm__q4_quantize(x, nd, shape, &o, &q), ILM_OK);
    ck_assert_int_eq(q.n_blocks, jint(c, "n_blocks"));

    const size_t nbytes = (size_t)(n + 1) / 2;
    const char *hex = jstr(c, "packed");
    if (hex) {
        size_t len;
        uint8_t *ref = unhex(hex, &len);
        ck_assert_uint_eq(len, nbytes);
        bytes_equal(name, q.packed, ref, len);
        free(ref);
        ref = unhex(jstr(c, "absmax"), &len);
        ck_assert_uint_eq(len, (size_t)q.n_blocks * 4);
        bytes_equal("absmax", plain.absmax, ref, len);
        free(ref);
    }
    ck_assert_msg(fnv1a(q.packed, nbytes) == jhash(c, "packed_fnv"), "%s: packed codes", name);
    ck_assert_msg(fnv1a(plain.absmax, (size_t)q.n_blocks * 4) == jhash(c, "absmax_fnv"),
                  "%s: absmax", name);
    ck_assert(memcmp(plain.packed, q.packed, nbytes) == 0);
    if (nested) {
        ck_assert_msg(f32_bits(q.offset) == f32_bits(bits_f32(jstr(c, "offset"))),
                      "%s: offset %a, bitsandbytes %a", name, q.offset,
                      bits_f32(jstr(c, "offset")));
        ck_assert_int_eq(q.nested_blocksize, jint(c, "nested_blocksize"));
        if (jstr(c, "qabsmax")) {
            size_t len;
            uint8_t *ref = unhex(jstr(c, "qabsmax"), &len);
            ck_assert_uint_eq(len, (size_t)q.n_blocks);
            bytes_equal("nested codes", q.qabsmax, ref, len);
            free(ref);
            ref = unhex(jstr(c, "nested_absmax"), &len);
            ck_assert_uint_eq(len, (size_t)q.n_nested * 4);
            bytes_equal("nested absmax", q.nested_absmax, ref, len);
            free(ref);
        }
        ck_assert_msg(fnv1a(q.qabsmax, (size_t)q.n_blocks) == jhash(c, "qabsmax_fnv"),
                      "%s: nested codes", name);
        ck_assert_msg(fnv1a(q.nested_absmax, (size_t)q.n_nested * 4) ==
                          jhash(c, "nested_absmax_fnv"),
                      "%s: nested absmax", name);
        float *am = malloc((size_t)q.n_blocks * 4);
        for (int64_t b = 0; b < q.n_blocks; b++) am[b] = ilm__q4_block_scale(&q, b);
        ck_assert_msg(fnv1a(am, (size_t)q.n_blocks * 4) == jhash(c, "absmax_deq_fnv"),
                      "%s: dequantized absmax", name);
        free(am);
    }

    /* Dequantization, whole and by rows. */
    float *y = malloc((size_t)n * 4), *row = malloc((size_t)shape[nd - 1] * 4);
    ck_assert_int_eq(ilm__q4_dequantize(&q, 0, n, y), ILM_OK);
    const cJSON *first = cJSON_GetObjectItemCaseSensitive(c, "dequant_first");
    for (int i = 0; i < cJSON_GetArraySize(first) && i < n; i++)
        ck_assert_msg(f32_bits(y[i]) == f32_bits(bits_f32(cJSON_GetArrayItem(first, i)->valuestring)),
                      "%s: element %d is %a, bitsandbytes %a", name, i, y[i],
                      bits_f32(cJSON_GetArrayItem(first, i)->valuestring));
    ck_assert_msg(fnv1a(y, (size_t)n * 4) == jhash(c, "dequant_fnv"), "%s: dequantized", name);
    if (jstr(c, "dequant_dtype_fnv")) {
        uint16_t *h = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++)
            h[i] = o.dtype == ILM__DTYPE_BF16 ? ilm__f32_to_bf16(y[i]) : ilm__f32_to_f16(y[i]);
        ck_assert_msg(fnv1a(h, (size_t)n * 2) == jhash(c, "dequant_dtype_fnv"),
                      "%s: dequantized to %s", name, jstr(c, "dtype"));
        free(h);
    }
    const int64_t cols = shape[nd - 1], rows = n / cols;
    for (int64_t r = 0; r < rows; r += rows > 40 ? 7 : 1) {
        ck_assert_int_eq(ilm__q4_dequantize_row(&q, r, row), ILM_OK);
        ck_assert(memcmp(row, y + r * cols, (size_t)cols * 4) == 0);
    }
    free(row);
    free(y);
    ilm__q4_free(&q);
    ilm__q4_free(&plain);
    free(x);
    cJSON_Delete(j);
}
END_TEST

START_TEST(dequantize_any_range)
{
    /* Ranges that start on odd elements and cross blocks equal the slice of
     * the whole, for both the plain and the nested absmax. */
    const int64_t shape[2] = { 7, 45 };
    float x[315], all[315], part[315];
    gen(77, 315, 45, 2.0f, x);
    for (int nested = 0; nested < 2; nested++) {
        ilm__q4_opts o = { .blocksize = 32, .nested = nested };
        ilm__q4 q;
        ck_assert_int_eq(ilm__q4_quantize(x, 2, shape, &o, &q), ILM_OK);
        ck_assert_int_eq(ilm__q4_dequantize(&q, 0, 315, all), ILM_OK);
        const int64_t ranges[][2] = { { 0, 0 }, { 1, 1 }, { 31, 2 }, { 33, 100 }, { 300, 15 },
                                      { 314, 1 }, { 0, 315 } };
        for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
            ck_assert_int_eq(ilm__q4_dequantize(&q, ranges[i][0], ranges[i][1], part), ILM_OK);
            ck_assert(memcmp(part, all + ranges[i][0], (size_t)ranges[i][1] * 4) == 0);
        }
        ck_assert_int_eq(ilm__q4_dequantize(&q, 300, 16, part), ILM_ERR_INVALID_ARG);
        ck_assert_int_eq(ilm__q4_dequantize(&q, -1, 2, part), ILM_ERR_INVALID_ARG);
        ck_assert_int_eq(ilm__q4_dequantize_row(&q, 7, part), ILM_ERR_INVALID_ARG);
        ilm__q4_free(&q);
    }
}
END_TEST

START_TEST(quantize_bad_arguments)
{
    float x[64] = { 0 };
    const int64_t s64[] = { 64 }, neg[] = { -1 };
    ilm__q4 q;
    const struct {
        ilm__q4_opts o;
        int32_t nd;
        const int64_t *shape;
        const float *x;
        const char *msg;
    } cases[] = {
        { { .blocksize = 48 }, 1, s64, x, "blocksize 48" },
        { { .blocksize = 8192 }, 1, s64, x, "blocksize 8192" },
        { { .kind = 7 }, 1, s64, x, "kind" },
        { { .dtype = ILM__DTYPE_Q4_0 }, 1, s64, x, "original type" },
        { { 0 }, 1, neg, x, "shape" },
        { { 0 }, 9, s64, x, "n_dims" },
        { { 0 }, 1, s64, NULL, "NULL input" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(ilm__q4_quantize(cases[i].x, cases[i].nd, cases[i].shape, &cases[i].o, &q),
                         ILM_ERR_INVALID_ARG);
        ck_assert_msg(strstr(ilm_last_error(), cases[i].msg), "case %zu: %s", i, ilm_last_error());
        ck_assert_ptr_null(q.own);
    }
    ilm__q4_free(NULL);
}
END_TEST

/* ---- safetensors keys ---------------------------------------------------------- */

START_TEST(python_float_repr)
{
    cJSON *j = fixture();
    const cJSON *e;
    ilm__q4 q;
    const int64_t s64[] = { 64 };
    float x[64] = { 1 };
    ilm__q4_opts o = { .nested = true };
    ck_assert_int_eq(ilm__q4_quantize(x, 1, s64, &o, &q), ILM_OK);
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "repr"))
    {
        q.offset = bits_f32(cJSON_GetArrayItem(e, 0)->valuestring);
        char *js;
        ck_assert_int_eq(ilm__q4_state_json(&q, &js), ILM_OK);
        const char *p = strstr(js, "\"nested_offset\": ");
        ck_assert_ptr_nonnull(p);
        p += strlen("\"nested_offset\": ");
        const char *want = cJSON_GetArrayItem(e, 1)->valuestring;
        ck_assert_msg(strncmp(p, want, strlen(want)) == 0 && p[strlen(want)] == '}',
                      "%a: wrote %s, Python %s", q.offset, p, want);
        ilm__free(js);
    }
    q.offset = NAN;
    char *js = NULL;
    ck_assert_int_eq(ilm__q4_state_json(&q, &js), ILM_ERR_INVALID_ARG);
    ilm__q4_free(&q);
    cJSON_Delete(j);
}
END_TEST

/* Writes q's HF tensors for `name` (plus nothing else) to path. */
static void write_hf(const char *path, const ilm__q4 *q, const char *name)
{
    ilm__q4_hf h;
    ck_assert_int_eq(ilm__q4_hf_tensors(q, name, &h), ILM_OK);
    ck_assert_int_eq(ilm__st_write(path, h.t, h.n, NULL), ILM_OK);
    ilm__q4_hf_free(&h);
}

static uint64_t dequant_fnv(const ilm__q4 *q)
{
    float *y = malloc((size_t)q->n * 4 + 4);
    ck_assert_int_eq(ilm__q4_dequantize(q, 0, q->n, y), ILM_OK);
    uint64_t h = fnv1a(y, (size_t)q->n * 4);
    free(y);
    return h;
}

START_TEST(linear4bit_files_load_and_match_ours)
{
    static const char *names[] = { "linear_nf4", "linear_fp4_plain", "linear_nf4_bf16" };
    cJSON *j = fixture();
    char *dir = test_tmpdir();
    for (size_t k = 0; k < 3; k++) {
        const cJSON *lin =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "linear"), names[k]);
        char path[512];
        snprintf(path, sizeof path, FIX "%s.safetensors", names[k]);
        ilm__safetensors *st;
        ck_assert_int_eq(ilm__st_open(path, &st), ILM_OK);
        ck_assert(ilm__q4_hf_present(st, "weight"));
        ck_assert(!ilm__q4_hf_present(st, "bias"));
        ilm__q4 q;
        ck_assert_msg(ilm__q4_hf_read(st, "weight", &q) == ILM_OK, "%s", ilm_last_error());
        ck_assert_int_eq(q.n_dims, 2);
        ck_assert_int_eq(q.shape[0], 40);
        ck_assert_int_eq(q.shape[1], 72);
        ck_assert_msg(dequant_fnv(&q) == jhash(lin, "dequant_fnv"), "%s: dequantized", names[k]);

        /* Our quantization of the same weights, written as HF keys: every
         * tensor equals the file's, the quant_state JSON byte for byte. */
        float x[40 * 72];
        gen((uint64_t)jint(lin, "seed"), 40 * 72, 72, 0.1f, x);
        ilm__q4_opts o = { 0 };
        o.kind = strcmp(jstr(lin, "quant_type"), "fp4") == 0 ? ILM__Q4_FP4 : ILM__Q4_NF4;
        o.nested = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(lin, "nested"));
        o.dtype = dtype_of(jstr(lin, "dtype"));
        if (o.dtype == ILM__DTYPE_BF16)
            for (int i = 0; i < 40 * 72; i++) x[i] = ilm__bf16_to_f32(ilm__f32_to_bf16(x[i]));
        ilm__q4 mine;
        const int64_t shape[2] = { 40, 72 };
        ck_assert_int_eq(ilm__q4_quantize(x, 2, shape, &o, &mine), ILM_OK);
        char *js;
        ck_assert_int_eq(ilm__q4_state_json(&mine, &js), ILM_OK);
        ck_assert_str_eq(js, jstr(lin, "quant_state"));
        ilm__free(js);
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[k]);
        write_hf(path, &mine, "weight");
        ilm__safetensors *ours;
        ck_assert_int_eq(ilm__st_open(path, &ours), ILM_OK);
        size_t n_theirs = 0;
        for (size_t i = 0; i < ilm__st_count(st); i++) {
            const ilm__st_tensor *t = ilm__st_get(st, i);
            if (strcmp(t->name, "bias") == 0) continue;
            n_theirs++;
            const ilm__st_tensor *u = ilm__st_find(ours, t->name);
            ck_assert_msg(u != NULL, "%s: we do not write '%s'", names[k], t->name);
            ck_assert_str_eq(u->dtype, t->dtype);
            ck_assert_int_eq(u->n_dims, t->n_dims);
            for (int d = 0; d < t->n_dims; d++) ck_assert_int_eq(u->shape[d], t->shape[d]);
            ck_assert_uint_eq(u->n_bytes, t->n_bytes);
            bytes_equal(t->name, u->data, t->data, (size_t)t->n_bytes);
        }
        ck_assert_uint_eq(ilm__st_count(ours), n_theirs);
        ilm__q4 back;
        ck_assert_int_eq(ilm__q4_hf_read(ours, "weight", &back), ILM_OK);
        ck_assert_uint_eq(dequant_fnv(&back), jhash(lin, "dequant_fnv"));
        ilm__q4_free(&back);
        ilm__st_close(ours);
        ilm__q4_free(&mine);
        ilm__q4_free(&q);
        ilm__st_close(st);
    }
    test_rmtree(dir);
    free(dir);
    cJSON_Delete(j);
}
END_TEST

START_TEST(transformers_model_loads_and_dequantizes)
{
    cJSON *j = fixture();
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(FIX "hf_llama", &st), ILM_OK);
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "hf_llama"))
    {
        ilm__q4 q;
        ck_assert_msg(ilm__q4_hf_read(st, e->string, &q) == ILM_OK, "%s", ilm_last_error());
        ck_assert(q.nested && q.kind == ILM__Q4_NF4 && q.blocksize == 64);
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        ck_assert_int_eq(q.n_dims, 2);
        ck_assert_int_eq(q.shape[0], (int64_t)cJSON_GetArrayItem(sh, 0)->valuedouble);
        ck_assert_int_eq(q.shape[1], (int64_t)cJSON_GetArrayItem(sh, 1)->valuedouble);
        ck_assert_msg(dequant_fnv(&q) == jhash(e, "dequant_fnv"), "%s: dequantized", e->string);
        ilm__q4_free(&q);
        seen++;
    }
    ck_assert_int_eq(seen, 7);
    /* The norms and embeddings are plain tensors. */
    ck_assert(!ilm__q4_hf_present(st, "model.norm.weight"));
    ilm__q4 q;
    ck_assert_int_eq(ilm__q4_hf_read(st, "model.norm.weight", &q), ILM_ERR_NOT_FOUND);
    ilm__st_close(st);
    cJSON_Delete(j);
}
END_TEST

/* The bitsandbytes-4bit directory transformers saved loads as a model:
 * its logits are transformers + bitsandbytes' on the CPU.  Quantizing the
 * fp32 model it was made from and saving it writes the same tensors, byte
 * for byte, and a quantization_config (what `internlm quantize --format
 * nf4` does); that directory loads again. */
START_TEST(bnb_model_directories_load_and_are_written_as_bitsandbytes_writes_them)
{
    cJSON *j = fixture();
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(j, "hf_llama64_logits");
    const cJSON *jids = cJSON_GetObjectItemCaseSensitive(ref, "ids"),
                *jl = cJSON_GetObjectItemCaseSensitive(ref, "logits");
    ilm_model *m = NULL;
    ck_assert_msg(ilm_model_load(FIX "hf_llama64", NULL, &m) == ILM_OK, "%s", ilm_last_error());
    char *info = NULL;
    ck_assert_int_eq(ilm_model_info(m, &info), ILM_OK);
    ck_assert_msg(strstr(info, "\"weight_type\":\"nf4\""), "%s", info);
    ilm_free(info);
    const int n = cJSON_GetArraySize(jids), V = cJSON_GetArraySize(jl) / n;
    int32_t ids[16];
    for (int i = 0; i < n; i++) ids[i] = cJSON_GetArrayItem(jids, i)->valueint;
    ilm_session *s = NULL;
    ck_assert_int_eq(ilm_session_create(m, NULL, &s), ILM_OK);
    float *got = malloc((size_t)(n * V) * sizeof *got);
    ck_assert_int_eq(ilm_session_eval_all(s, ids, (size_t)n, got), ILM_OK);
    double worst = 0, peak = 0;
    for (int i = 0; i < n * V; i++) {
        double want = cJSON_GetArrayItem(jl, i)->valuedouble;
        worst = fmax(worst, fabs(got[i] - want));
        peak = fmax(peak, fabs(want));
    }
    ck_assert_msg(worst <= 1e-5 * fmax(peak, 1), "logits differ from bitsandbytes' by %g", worst);
    printf("bnb-4bit llama: logits equal transformers + bitsandbytes' within %.1e (peak %.3f)\n",
           worst, peak);
    ilm_session_free(s);
    free(got);
    ilm_model_free(m);

    /* Quantized here from the fp32 model, saved: bitsandbytes' bytes. */
    ck_assert_int_eq(ilm_model_load(FIX "hf_llama64_fp32", NULL, &m), ILM_OK);
    const ilm__q4_opts qo = { .kind = ILM__Q4_NF4, .blocksize = 64, .nested = true };
    ck_assert_int_eq(ilm__model_quantize_q4(m, &qo), ILM_OK);
    char *dir = test_tmpdir();
    ck_assert_msg(ilm_model_save(m, dir) == ILM_OK, "%s", ilm_last_error());
    ilm_model_free(m);
    ilm__safetensors *a = NULL, *b = NULL;
    ck_assert_int_eq(ilm__st_open(FIX "hf_llama64", &a), ILM_OK);
    ck_assert_int_eq(ilm__st_open(dir, &b), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(a), ilm__st_count(b));
    for (size_t i = 0; i < ilm__st_count(a); i++) {
        const ilm__st_tensor *x = ilm__st_get(a, i), *y = ilm__st_find(b, x->name);
        ck_assert_msg(y != NULL, "'%s' is not written", x->name);
        ck_assert_msg(!strcmp(x->dtype, y->dtype) && x->n_dims == y->n_dims && x->n_bytes == y->n_bytes &&
                          !memcmp(x->shape, y->shape, (size_t)x->n_dims * sizeof *x->shape),
                      "'%s': %s %d dims %llu bytes vs %s %d dims %llu bytes", x->name, x->dtype,
                      x->n_dims, (unsigned long long)x->n_bytes, y->dtype, y->n_dims,
                      (unsigned long long)y->n_bytes);
        ck_assert_msg(!memcmp(x->data, y->data, x->n_bytes), "'%s': other bytes", x->name);
    }
    ilm__st_close(a);
    ilm__st_close(b);
    char *cfg = test_join(dir, "config.json");
    cJSON *c = test_read_json(cfg);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    ck_assert_str_eq(cJSON_GetObjectItem(qc, "quant_method")->valuestring, "bitsandbytes");
    ck_assert_str_eq(cJSON_GetObjectItem(qc, "bnb_4bit_quant_type")->valuestring, "nf4");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(qc, "bnb_4bit_use_double_quant")));
    ck_assert_int_eq(ilm_model_load(dir, NULL, &m), ILM_OK);
    ilm_model_free(m);
    /* quantization_configs this library does not read, named. */
    static const char *const bad[][2] = {
        { "{\"quant_method\": \"gptq\", \"bits\": 4}", "gptq" },
        { "{\"quant_method\": \"bitsandbytes\", \"load_in_8bit\": true}", "8-bit" },
        { "{\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, \"bnb_4bit_quant_storage\": "
          "\"bfloat16\"}", "quant_storage" },
        { "{\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, \"bnb_4bit_quant_type\": "
          "\"int4\"}", "quant_type" },
        { "[1]", "quant_method" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cJSON_ReplaceItemInObject(c, "quantization_config", cJSON_Parse(bad[i][0]));
        char *text = cJSON_Print(c);
        test_write_bytes(cfg, text, strlen(text));
        free(text);
        ck_assert_int_eq(ilm_model_load(dir, NULL, &m), ILM_ERR_CONFIG);
        ck_assert_msg(strstr(ilm_last_error(), bad[i][1]), "%s: %s", bad[i][0], ilm_last_error());
        ck_assert_ptr_null(m);
    }
    /* A config whose shapes the 4-bit tensors contradict. */
    cJSON_ReplaceItemInObject(c, "quantization_config", cJSON_Parse("null"));
    cJSON_ReplaceItemInObject(c, "intermediate_size", cJSON_CreateNumber(96));
    char *text = cJSON_Print(c);
    test_write_bytes(cfg, text, strlen(text));
    free(text);
    ck_assert_int_eq(ilm_model_load(dir, NULL, &m), ILM_ERR_FORMAT);
    ck_assert_msg(strstr(ilm_last_error(), "4-bit tensor 'model.layers.0.mlp.gate_proj.weight'"), "%s",
                  ilm_last_error());
    /* A 4-bit embedding (bitsandbytes never makes one) is refused by name. */
    ck_assert_int_eq(ilm_model_load(FIX "hf_llama64_fp32", "{\"quantize\": {}}", &m), ILM_OK);
    {
        const int64_t ne = m->tok_embd.rows * m->tok_embd.cols;
        float *e = malloc((size_t)ne * sizeof *e);
        memcpy(e, m->tok_embd.data, (size_t)ne * sizeof *e);
        ck_assert_int_eq(ilm__weight_quantize_q4(m, &m->tok_embd, e, &qo), ILM_OK);
        m->output = m->tok_embd; /* tied */
        free(e);
    }
    char *dir2 = test_tmpdir();
    ck_assert_int_eq(ilm_model_save(m, dir2), ILM_OK);
    ilm_model_free(m);
    m = NULL;
    ck_assert_int_eq(ilm_model_load(dir2, NULL, &m), ILM_ERR_FORMAT);
    ck_assert_msg(strstr(ilm_last_error(), "'model.embed_tokens.weight' is 4-bit"), "%s", ilm_last_error());
    ck_assert_ptr_null(m);
    test_rmtree(dir2);
    free(dir2);
    /* Load options bitsandbytes does not have. */
    ck_assert_int_eq(ilm_model_load(FIX "hf_llama64_fp32", "{\"quantize\": {\"blocksize\": 100}}", &m),
                     ILM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "quantize.blocksize"));
    ck_assert_int_eq(ilm_model_load(FIX "hf_llama64_fp32", "{\"quantize\": {\"quant_type\": \"q4\"}}", &m),
                     ILM_ERR_CONFIG);
    ck_assert_ptr_null(m);
    cJSON_Delete(c);
    free(cfg);
    test_rmtree(dir);
    free(dir);
    cJSON_Delete(j);
}
END_TEST

START_TEST(round_trip_through_hf_keys)
{
    char *dir = test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    const int64_t shapes[][3] = { { 3, 5, 7 }, { 1, 1, 1 }, { 2, 33, 65 }, { 1, 1, 9000 } };
    for (int k = 0; k < 4 * 4; k++) {
        const int64_t *sh = shapes[k / 4];
        const int64_t n = sh[0] * sh[1] * sh[2];
        float *x = malloc((size_t)n * 4);
        gen(500 + (uint64_t)k, n, sh[2], 0.3f, x);
        ilm__q4_opts o = { .kind = k & 1, .nested = (k & 2) != 0, .blocksize = 32 << (k % 3) };
        ilm__q4 q, r;
        ck_assert_int_eq(ilm__q4_quantize(x, 3, sh, &o, &q), ILM_OK);
        write_hf(path, &q, "model.layers.0.w.weight");
        ilm__safetensors *st;
        ck_assert_int_eq(ilm__st_open(path, &st), ILM_OK);
        ck_assert_msg(ilm__q4_hf_read(st, "model.layers.0.w.weight", &r) == ILM_OK, "%s",
                      ilm_last_error());
        ck_assert(r.kind == q.kind && r.nested == q.nested && r.n == q.n && r.n_dims == 3 &&
                  r.blocksize == q.blocksize && r.dtype == q.dtype);
        for (int d = 0; d < 3; d++) ck_assert_int_eq(r.shape[d], sh[d]);
        ck_assert(memcmp(r.packed, q.packed, (size_t)(n + 1) / 2) == 0);
        if (q.nested) ck_assert_uint_eq(f32_bits(r.offset), f32_bits(q.offset));
        ck_assert_uint_eq(dequant_fnv(&r), dequant_fnv(&q));
        ilm__q4_free(&r);
        ilm__st_close(st);
        ilm__q4_free(&q);
        free(x);
    }
    test_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- bad files ----------------------------------------------------------------- */

/* One way to spoil a valid file: the tensor whose name ends in `suffix`
 * ("" = the codes) gets other bytes, dtype or element count, or is left
 * out; `json` replaces the quant_state text. */
typedef struct spoil {
    const char *what, *suffix;
    int         drop;        /* leave the tensor out */
    int64_t     count_delta; /* elements added (negative: removed) */
    int         to_f32;      /* rewrite the tensor as F32 */
    const char *json;        /* replaces the quant_state text */
    size_t      json_len;    /* 0: strlen(json) */
    int         poison;      /* write a NaN into the tensor's first float */
    ilm_status  want;
    const char *msg;         /* in the message */
} spoil;

#define QS "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"float32\", \"shape\": [10, 30]"
#define NESTED ", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 0.5"

static const spoil spoils[] = {
    { "truncated codes", "", 0, -1, 0, NULL, 0, 0, ILM_ERR_FORMAT, "'w.weight' has 149 elements" },
    { "one code byte too many", "", 0, 1, 0, NULL, 0, 0, ILM_ERR_FORMAT, "'w.weight' has 151" },
    { "codes as F32", "", 0, 0, 1, NULL, 0, 0, ILM_ERR_FORMAT, "quant_storage" },
    { "codes missing", "", 1, 0, 0, NULL, 0, 0, ILM_ERR_FORMAT, "'w.weight' is missing" },
    { "absmax short", ".absmax", 0, -1, 0, NULL, 0, 0, ILM_ERR_FORMAT,
      "'w.weight.absmax' has 4 elements, the quant_state needs 5" },
    { "absmax long", ".absmax", 0, 3, 0, NULL, 0, 0, ILM_ERR_FORMAT, "'w.weight.absmax' has 8" },
    { "absmax as F32", ".absmax", 0, 0, 1, NULL, 0, 0, ILM_ERR_FORMAT,
      "'w.weight.absmax' has dtype F32, expected U8" },
    { "nested absmax missing", ".nested_absmax", 1, 0, 0, NULL, 0, 0, ILM_ERR_FORMAT,
      "'w.weight.nested_absmax' is missing" },
    { "nested map short", ".nested_quant_map", 0, -1, 0, NULL, 0, 0, ILM_ERR_FORMAT,
      "nested_quant_map' has 255" },
    { "nested map NaN", ".nested_quant_map", 0, 0, 0, NULL, 0, 1, ILM_ERR_FORMAT, "non-finite" },
    { "quant map altered", ".quant_map", 0, 0, 0, NULL, 0, 1, ILM_ERR_FORMAT,
      "not bitsandbytes' nf4 table" },
    { "quant map missing", ".quant_map", 1, 0, 0, NULL, 0, 0, ILM_ERR_FORMAT, "quant_map' is missing" },
    { "no quant_state", ".quant_state.bitsandbytes__nf4", 1, 0, 0, NULL, 0, 0, ILM_ERR_NOT_FOUND,
      "no tensor 'w.weight.quant_state" },
    { "quant_state as F32", ".quant_state.bitsandbytes__nf4", 0, 0, 1, NULL, 0, 0,
      ILM_ERR_FORMAT, "1-D U8 tensor of JSON" },
    { "blocksize 48", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 48, \"dtype\": "
      "\"float32\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT, "blocksize 48" },
    { "blocksize 8192", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 8192, \"dtype\": "
      "\"float32\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT, "blocksize 8192" },
    { "not JSON", NULL, 0, 0, 0, "{\"quant_type\": nf4}", 0, 0, ILM_ERR_FORMAT, "not valid JSON" },
    { "empty JSON", NULL, 0, 0, 0, "", 0, 0, ILM_ERR_FORMAT, "holds 0 bytes" },
    { "trailing bytes", NULL, 0, 0, 0, QS NESTED "}x", 0, 0, ILM_ERR_FORMAT, "bytes after" },
    { "a NUL inside", NULL, 0, 0, 0, QS NESTED "}\0 ", sizeof(QS NESTED "}\0 ") - 1, 0,
      ILM_ERR_FORMAT, "NUL byte" },
    { "an array", NULL, 0, 0, 0, "[1, 2]", 0, 0, ILM_ERR_FORMAT, "must be an object" },
    { "unknown key", NULL, 0, 0, 0, QS NESTED ", \"evil\": 1}", 0, 0, ILM_ERR_FORMAT,
      "unknown key 'evil'" },
    { "a key twice", NULL, 0, 0, 0, QS NESTED ", \"blocksize\": 64}", 0, 0, ILM_ERR_FORMAT,
      "appears twice" },
    { "blocksize a string", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": \"64\", "
      "\"dtype\": \"float32\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT,
      "'blocksize' must be" },
    { "blocksize 64.5", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64.5, "
      "\"dtype\": \"float32\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT,
      "'blocksize' must be" },
    { "no shape", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"float32\"" NESTED "}", 0, 0, ILM_ERR_FORMAT, "missing required key 'shape'" },
    { "shape lies (bigger)", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, "
      "\"dtype\": \"float32\", \"shape\": [10, 31]" NESTED "}", 0, 0, ILM_ERR_FORMAT,
      "'w.weight' has 150 elements, the quant_state needs 155" },
    { "shape negative", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"float32\", \"shape\": [-10, -30]" NESTED "}", 0, 0, ILM_ERR_FORMAT, "shape[0] is not" },
    { "shape overflows", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"float32\", \"shape\": [4294967296, 4294967296, 4294967296]" NESTED "}", 0, 0,
      ILM_ERR_FORMAT, "is not a size" },
    { "shape of strings", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"float32\", \"shape\": [\"10\", 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT, "shape[0]" },
    { "shape of 9 dims", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"float32\", \"shape\": [1, 1, 1, 1, 1, 1, 1, 10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT,
      "9 dims" },
    { "quant_type fp4 under __nf4", NULL, 0, 0, 0, "{\"quant_type\": \"fp4\", \"blocksize\": 64, "
      "\"dtype\": \"float32\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT,
      "says quant_type 'fp4'" },
    { "dtype int8", NULL, 0, 0, 0, "{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": "
      "\"int8\", \"shape\": [10, 30]" NESTED "}", 0, 0, ILM_ERR_FORMAT, "dtype 'int8'" },
    { "half the nested keys", NULL, 0, 0, 0, QS ", \"nested_blocksize\": 256}", 0, 0,
      ILM_ERR_FORMAT, "only some of" },
    { "nested offset a string", NULL, 0, 0, 0, QS ", \"nested_blocksize\": 256, \"nested_dtype\": "
      "\"float32\", \"nested_offset\": \"0.5\"}", 0, 0, ILM_ERR_FORMAT, "'nested_offset' must" },
    { "nested offset huge", NULL, 0, 0, 0, QS ", \"nested_blocksize\": 256, \"nested_dtype\": "
      "\"float32\", \"nested_offset\": 1e300}", 0, 0, ILM_ERR_FORMAT, "not a float32" },
    { "nested blocksize 0", NULL, 0, 0, 0, QS ", \"nested_blocksize\": 0, \"nested_dtype\": "
      "\"float32\", \"nested_offset\": 0.5}", 0, 0, ILM_ERR_FORMAT, "nested_blocksize 0" },
    { "nested dtype float16", NULL, 0, 0, 0, QS ", \"nested_blocksize\": 256, \"nested_dtype\": "
      "\"float16\", \"nested_offset\": 0.5}", 0, 0, ILM_ERR_FORMAT, "nested_dtype 'float16'" },
    { "not nested but nested tensors", NULL, 0, 0, 0, QS "}", 0, 0, ILM_ERR_FORMAT,
      "'w.weight.absmax' has dtype U8, expected F32" },
    { "deep nesting", NULL, 0, 0, 0, NULL, 0, 0, ILM_ERR_FORMAT, "not valid JSON" }, /* below */
};

START_TEST(bad_files_are_format_errors)
{
    const spoil *sp = &spoils[_i];
    const int64_t shape[2] = { 10, 30 };
    float x[300];
    gen(900, 300, 30, 1.0f, x);
    ilm__q4_opts o = { .nested = true };
    ilm__q4 q;
    ck_assert_int_eq(ilm__q4_quantize(x, 2, shape, &o, &q), ILM_OK);
    ilm__q4_hf h;
    ck_assert_int_eq(ilm__q4_hf_tensors(&q, "w.weight", &h), ILM_OK);

    char deep[4200];
    const char *json = sp->json;
    size_t json_len = sp->json_len;
    if (strcmp(sp->what, "deep nesting") == 0) { /* cJSON's nesting limit, not a crash */
        memset(deep, '[', 2100);
        memset(deep + 2100, ']', 2100);
        deep[4199] = '\0';
        json = deep;
        json_len = 4199;
    }
    ilm__st_out t[6];
    size_t n = 0;
    uint8_t *buf = NULL;
    for (size_t i = 0; i < h.n; i++) {
        ilm__st_out u = h.t[i];
        const size_t len = strlen("w.weight");
        const bool hit = sp->suffix && strcmp(u.name + len, sp->suffix) == 0;
        const bool is_qs = strstr(u.name, ".quant_state.") != NULL;
        if (hit && sp->drop) continue;
        if (json && is_qs) {
            u.data = json;
            h.shapes[i][0] = (int64_t)(json_len ? json_len : strlen(json));
        }
        if (hit && (sp->count_delta || sp->to_f32 || sp->poison)) {
            const size_t osz = u.type == ILM__DTYPE_F32 ? 4 : 1;
            const int64_t cnt0 = h.shapes[i][0] * (u.n_dims == 2 ? h.shapes[i][1] : 1);
            const int64_t cnt = cnt0 + sp->count_delta;
            u.type = sp->to_f32 ? ILM__DTYPE_F32 : u.type;
            const size_t nsz = u.type == ILM__DTYPE_F32 ? 4 : 1;
            const size_t ob = (size_t)cnt0 * osz, nb = (size_t)cnt * nsz;
            buf = calloc(nb + 8, 1);
            memcpy(buf, u.data, ob < nb ? ob : nb);
            if (sp->poison) {
                const float nan = NAN;
                memcpy(buf, &nan, 4);
            }
            u.data = buf;
            h.shapes[i][0] = cnt;
            if (u.n_dims == 2) h.shapes[i][1] = 1;
        }
        t[n++] = u;
    }
    char *dir = test_tmpdir(), path[512];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    ck_assert_int_eq(ilm__st_write(path, t, n, NULL), ILM_OK);
    ilm__safetensors *st;
    ck_assert_int_eq(ilm__st_open(path, &st), ILM_OK);
    ilm__q4 r;
    ilm_status s = ilm__q4_hf_read(st, "w.weight", &r);
    ck_assert_msg(s == sp->want, "%s: status %s (%s)", sp->what, ilm_status_str(s), ilm_last_error());
    ck_assert_msg(strstr(ilm_last_error(), sp->msg), "%s: message '%s'", sp->what, ilm_last_error());
    ck_assert_ptr_null(r.own);
    ck_assert_ptr_null(r.packed);
    ilm__st_close(st);
    test_rmtree(dir);
    free(dir);
    free(buf);
    ilm__q4_hf_free(&h);
    ilm__q4_free(&q);
}
END_TEST

Suite *suite_nf4(void)
{
    Suite *s = suite_create("nf4");
    TCase *t = tcase_create("bitsandbytes");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, tables_match_bitsandbytes);
    tcase_add_test(t, torch_sum_order_matches);
    tcase_add_loop_test(t, quantize_matches_bitsandbytes, 0, n_cases());
    tcase_add_test(t, dequantize_any_range);
    tcase_add_test(t, quantize_bad_arguments);
    suite_add_tcase(s, t);
    TCase *h = tcase_create("hf_keys");
    tcase_set_timeout(h, 60);
    tcase_add_test(h, python_float_repr);
    tcase_add_test(h, linear4bit_files_load_and_match_ours);
    tcase_add_test(h, transformers_model_loads_and_dequantizes);
    tcase_add_test(h, round_trip_through_hf_keys);
    tcase_add_test(h, bnb_model_directories_load_and_are_written_as_bitsandbytes_writes_them);
    tcase_add_loop_test(h, bad_files_are_format_errors, 0,
                        (int)(sizeof spoils / sizeof spoils[0]));
    suite_add_tcase(s, h);
    return s;
}
