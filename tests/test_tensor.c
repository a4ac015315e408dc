/* Tensor layer: half conversions against numpy and torch, dequantization of
 * every supported ggml format bit for bit against gguf.quants (fixtures from
 * tools/reference/quant_fixtures.py), every tensor of the real SmolLM2 GGUF,
 * and the linear kernel against a double-precision reference within the
 * error bound its header documents, on every path (scalar, AVX2, BLAS
 * panels) and thread count. */
#include "tests.h"
#include "formats/gguf.h"
#include "tensor/tensor.h"
#include "backend/backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a 64 over bytes, as the fixture script computes it. */
static uint64_t fnv1a(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hex_u64(const char *s) { return strtoull(s, NULL, 16); }

static uint64_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static int hexval(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

static uint8_t *unhex(const char *s, size_t *n)
{
    size_t len = strlen(s) / 2;
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) b[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    *n = len;
    return b;
}

/* ---- conversions --------------------------------------------------------- */

START_TEST(half_conversions_match_numpy_and_torch)
{
    cJSON *ref = test_read_json("tests/fixtures/tensor/convert.json");
    float *all = malloc(65536 * sizeof(float));
    for (uint32_t h = 0; h < 65536; h++) all[h] = ilm__f16_to_f32((uint16_t)h);
    ck_assert_uint_eq(fnv1a(all, 65536 * 4),
                      hex_u64(cJSON_GetObjectItem(ref, "f16_to_f32_all")->valuestring));
    free(all);

    /* The input sequence of quant_fixtures.py's conversion_inputs(). */
    size_t n = (size_t)cJSON_GetObjectItem(ref, "n_inputs")->valuedouble;
    ck_assert_uint_eq(n, 6u << 18);
    uint32_t *u = malloc(n * 4);
    uint16_t *h = malloc(n * 2), *b = malloc(n * 2);
    for (uint64_t i = 0; i < (1u << 18); i++) {
        uint32_t base[2];
        base[0] = (uint32_t)(i * 0x9E3779B1ull);
        base[1] = (base[0] & 0x807fffffu) | (uint32_t)((100 + i % 45) << 23);
        for (int k = 0; k < 2; k++) {
            u[6 * i + k] = base[k];
            u[6 * i + 2 + k] = (base[k] & ~0x1fffu) | 0x1000;
            u[6 * i + 4 + k] = (base[k] & ~0xffffu) | 0x8000;
        }
    }
    ck_assert_uint_eq(fnv1a(u, n * 4), hex_u64(cJSON_GetObjectItem(ref, "inputs_hash")->valuestring));
    for (size_t i = 0; i < n; i++) {
        float f;
        memcpy(&f, &u[i], 4);
        h[i] = ilm__f32_to_f16(f);
        b[i] = ilm__f32_to_bf16(f);
    }
    ck_assert_uint_eq(fnv1a(h, n * 2), hex_u64(cJSON_GetObjectItem(ref, "f32_to_f16")->valuestring));
    ck_assert_uint_eq(fnv1a(b, n * 2), hex_u64(cJSON_GetObjectItem(ref, "f32_to_bf16")->valuestring));
    /* Round trips of every finite half and every bf16. */
    for (uint32_t x = 0; x < 65536; x++) {
        if ((x & 0x7c00) != 0x7c00) ck_assert_uint_eq(ilm__f32_to_f16(ilm__f16_to_f32((uint16_t)x)), x);
        if ((x & 0x7f80) != 0x7f80) ck_assert_uint_eq(ilm__f32_to_bf16(ilm__bf16_to_f32((uint16_t)x)), x);
    }
    free(u);
    free(h);
    free(b);
    cJSON_Delete(ref);
}
END_TEST

/* ---- dequantization ------------------------------------------------------- */

START_TEST(dequantize_matches_gguf_quants)
{
    cJSON *ref = test_read_json("tests/fixtures/tensor/quants.json"), *e;
    int n_types = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(ref, "blocks")) {
        uint32_t type = (uint32_t)cJSON_GetObjectItem(e, "type")->valueint;
        int64_t n = (int64_t)cJSON_GetObjectItem(e, "n")->valuedouble;
        size_t nraw;
        uint8_t *raw = unhex(cJSON_GetObjectItem(e, "hex")->valuestring, &nraw);
        uint32_t block, bytes;
        ck_assert(ilm__dtype_info(type, &block, &bytes));
        ck_assert_uint_eq(nraw, (size_t)n / block * bytes);
        float *y = malloc((size_t)n * sizeof(float));
        ck_assert_int_eq(ilm__dequantize(type, raw, y, n), ILM_OK);
        const cJSON *first = cJSON_GetObjectItem(e, "first");
        for (int i = 0; i < cJSON_GetArraySize(first); i++)
            ck_assert_msg(f32_bits(y[i]) == hex_u64(cJSON_GetArrayItem(first, i)->valuestring),
                          "%s[%d]: %.9g", ilm__dtype_name(type), i, y[i]);
        ck_assert_msg(fnv1a(y, (size_t)n * 4) == hex_u64(cJSON_GetObjectItem(e, "hash")->valuestring),
                      "%s: dequantized values differ from gguf.quants", ilm__dtype_name(type));
        /* A count that is not a whole number of blocks. */
        if (block > 1)
            ck_assert_int_eq(ilm__dequantize(type, raw, y, n - 1), ILM_ERR_INVALID_ARG);
        free(y);
        free(raw);
        n_types++;
    }
    ck_assert_int_eq(n_types, 13);
    cJSON_Delete(ref);
    float y[256];
    uint8_t z[512] = { 0 };
    ck_assert_int_eq(ilm__dequantize(ILM__DTYPE_Q8_K, z, y, 256), ILM_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(ilm_last_error(), "q8_k"));
    ck_assert_int_eq(ilm__dequantize(ILM__DTYPE_IQ4_NL, z, y, 32), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(ilm__dequantize(4, z, y, 32), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(ilm__dequantize(ILM__DTYPE_Q4_0, z, y, -32), ILM_ERR_INVALID_ARG);
}
END_TEST

/* Quantizing to Q8_0, Q4_0 and Q4_1 writes gguf.quants.quantize's bytes
 * (tools/reference/quantize_fixtures.py): zero, constant and tie blocks
 * included; other types are refused. */
START_TEST(quantize_matches_gguf_quants)
{
    cJSON *ref = test_read_json("tests/fixtures/tensor/quantize.json");
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(ref, "cases"))
    {
        const char *name = cJSON_GetObjectItem(e, "type")->valuestring;
        const uint32_t type = !strcmp(name, "q8_0") ? ILM__DTYPE_Q8_0
                              : !strcmp(name, "q4_0") ? ILM__DTYPE_Q4_0 : ILM__DTYPE_Q4_1;
        size_t nin, nq;
        uint8_t *in = unhex(cJSON_GetObjectItem(e, "input")->valuestring, &nin);
        uint8_t *want = unhex(cJSON_GetObjectItem(e, "blocks")->valuestring, &nq);
        const int64_t n = (int64_t)cJSON_GetObjectItem(e, "n")->valuedouble;
        ck_assert_uint_eq(nin, (size_t)n * 4);
        uint8_t *got = malloc(nq);
        ck_assert_int_eq(ilm__quantize(type, (const float *)in, got, n), ILM_OK);
        for (size_t i = 0; i < nq; i++)
            ck_assert_msg(got[i] == want[i], "%s: byte %zu (block %zu) is %02x, gguf's %02x", name, i,
                          i / (nq / (size_t)(n / 32)), got[i], want[i]);
        free(in);
        free(want);
        free(got);
        seen++;
    }
    ck_assert_int_eq(seen, 3);
    float x[32] = { 0 };
    uint8_t out[64];
    ck_assert_int_eq(ilm__quantize(ILM__DTYPE_Q4_K, x, out, 256), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(ilm__quantize(ILM__DTYPE_Q8_0, x, out, 31), ILM_ERR_INVALID_ARG);
    cJSON_Delete(ref);
}
END_TEST

START_TEST(smollm2_every_tensor_dequantizes_like_gguf_py)
{
    const char *path = test_pydeps_file(TEST_SMOLLM2);
    if (!path) return;
    ilm__gguf *g = NULL;
    ck_assert_msg(ilm__gguf_open(path, &g) == ILM_OK, "%s", ilm_last_error());
    cJSON *ref = test_read_json("tests/fixtures/tensor/smollm2_dequant.json"), *e;
    const cJSON *ts = cJSON_GetObjectItem(ref, "tensors");
    ck_assert_uint_eq((uint64_t)cJSON_GetArraySize(ts), g->n_tensors);
    float *y = NULL;
    size_t cap = 0;
    cJSON_ArrayForEach(e, ts) {
        const char *name = cJSON_GetObjectItem(e, "name")->valuestring;
        const ilm__gguf_tensor *t = ilm__gguf_find_tensor(g, name);
        ck_assert_msg(t != NULL, "%s missing", name);
        ck_assert_int_eq(t->type, cJSON_GetObjectItem(e, "type")->valueint);
        ck_assert_uint_eq(t->n_elems, (uint64_t)cJSON_GetObjectItem(e, "n")->valuedouble);
        if (t->n_elems > cap) {
            cap = t->n_elems;
            y = realloc(y, cap * sizeof(float));
        }
        ck_assert_int_eq(ilm__dequantize(t->type, t->data, y, (int64_t)t->n_elems), ILM_OK);
        const cJSON *first = cJSON_GetObjectItem(e, "first");
        for (int i = 0; i < cJSON_GetArraySize(first); i++)
            ck_assert(f32_bits(y[i]) == hex_u64(cJSON_GetArrayItem(first, i)->valuestring));
        ck_assert_msg(fnv1a(y, t->n_elems * 4) == hex_u64(cJSON_GetObjectItem(e, "hash")->valuestring),
                      "%s differs from gguf.quants", name);
    }
    free(y);
    cJSON_Delete(ref);
    ilm__gguf_close(g);
}
END_TEST

/* ---- linear --------------------------------------------------------------- */

static const uint32_t lin_types[] = {
    ILM__DTYPE_F32,  ILM__DTYPE_F16,  ILM__DTYPE_BF16, ILM__DTYPE_Q4_0, ILM__DTYPE_Q4_1,
    ILM__DTYPE_Q5_0, ILM__DTYPE_Q5_1, ILM__DTYPE_Q8_0, ILM__DTYPE_Q2_K, ILM__DTYPE_Q3_K,
    ILM__DTYPE_Q4_K, ILM__DTYPE_Q5_K, ILM__DTYPE_Q6_K,
};

/* Per format: the byte ranges that are scales and mins (everything else is
 * codes) and where its f16 scale fields sit. */
typedef struct fmt_fields {
    uint32_t type;
    int      keep[2][2];
    int      f16[2];
} fmt_fields;

static const fmt_fields fields[] = {
    { ILM__DTYPE_Q4_0, { { 0, 2 }, { 0, 0 } }, { 0, -1 } },
    { ILM__DTYPE_Q4_1, { { 0, 4 }, { 0, 0 } }, { 0, 2 } },
    { ILM__DTYPE_Q5_0, { { 0, 2 }, { 0, 0 } }, { 0, -1 } },
    { ILM__DTYPE_Q5_1, { { 0, 4 }, { 0, 0 } }, { 0, 2 } },
    { ILM__DTYPE_Q8_0, { { 0, 2 }, { 0, 0 } }, { 0, -1 } },
    { ILM__DTYPE_Q2_K, { { 0, 16 }, { 80, 84 } }, { 80, 82 } },
    { ILM__DTYPE_Q3_K, { { 96, 110 }, { 0, 0 } }, { 108, -1 } },
    { ILM__DTYPE_Q4_K, { { 0, 16 }, { 0, 0 } }, { 0, 2 } },
    { ILM__DTYPE_Q5_K, { { 0, 16 }, { 0, 0 } }, { 0, 2 } },
    { ILM__DTYPE_Q6_K, { { 192, 210 }, { 0, 0 } }, { 208, -1 } },
};

static const fmt_fields *fields_of(uint32_t t)
{
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (fields[i].type == t) return &fields[i];
    return NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* Random rows of W: random codes, f16 scales between 2^-10 and 2^-4. */
static uint8_t *random_w(uint32_t type, int64_t N, int64_t K, ilm__rng *r, size_t *row_bytes)
{
    uint32_t block, bytes;
    ck_assert(ilm__dtype_info(type, &block, &bytes));
    *row_bytes = (size_t)(K / block) * bytes;
    size_t total = *row_bytes * (size_t)N;
    uint8_t *w = malloc(total);
    const fmt_fields *f = fields_of(type);
    if (!f) {
        for (size_t i = 0; i < (size_t)(N * K); i++) {
            float v = ilm__rng_normal(r) * 0.1f;
            if (type == ILM__DTYPE_F32) memcpy(w + 4 * i, &v, 4);
            else put16(w + 2 * i, type == ILM__DTYPE_F16 ? ilm__f32_to_f16(v) : ilm__f32_to_bf16(v));
        }
        return w;
    }
    for (size_t i = 0; i < total; i++) w[i] = (uint8_t)ilm__rng_u32(r);
    for (size_t b = 0; b < total / bytes; b++)
        for (int k = 0; k < 2; k++)
            if (f->f16[k] >= 0) {
                float s = exp2f(-10.0f + 6.0f * ilm__rng_uniform(r));
                put16(w + b * bytes + f->f16[k], ilm__f32_to_f16(s));
            }
    return w;
}

/* The same blocks with every code zeroed: dequantized, this gives each
 * element's offset term (a min, or the zero point times the scale), the
 * part of a weight that the kernels add separately from the codes. */
static uint8_t *offsets_only(uint32_t type, const uint8_t *w, size_t total)
{
    uint32_t block, bytes;
    ilm__dtype_info(type, &block, &bytes);
    uint8_t *o = calloc(total, 1);
    const fmt_fields *f = fields_of(type);
    for (size_t b = 0; b < total / bytes; b++)
        for (int k = 0; k < 2; k++)
            memcpy(o + b * bytes + f->keep[k][0], w + b * bytes + f->keep[k][0],
                   (size_t)(f->keep[k][1] - f->keep[k][0]));
    return o;
}

typedef struct lin_case {
    uint32_t type;
    int64_t  N, K, M;
    float   *x, *wf, *of; /* x[M,K], dequantized W[N,K], offsets[N,K] */
    uint8_t *w;
    double  *ref, *bound_q, *bound_f; /* [M,N] */
} lin_case;

/* The exact product in double, and the two error bounds of tensor.h:
 * bound_q for the integer path (half a quantization step of each
 * activation times |w|, plus float32 rounding of the per-block terms,
 * whose magnitudes are bounded by (|w| + |offset|)(|x| + step/2)), and
 * bound_f for fp32 dot products and the BLAS (any summation order:
 * (K + 8) * 2^-24 * sum |w x|). */
static void lin_setup(lin_case *c, uint32_t type, int64_t N, int64_t K, int64_t M, uint64_t seed)
{
    ilm__rng r;
    ilm__rng_init(&r, seed, type);
    memset(c, 0, sizeof *c);
    c->type = type;
    c->N = N;
    c->K = K;
    c->M = M;
    size_t rb;
    c->w = random_w(type, N, K, &r, &rb);
    c->x = malloc((size_t)(M * K) * sizeof(float));
    for (int64_t i = 0; i < M * K; i++) c->x[i] = ilm__rng_normal(&r) * (1.0f + (float)(i % 7));
    c->wf = malloc((size_t)(N * K) * sizeof(float));
    c->of = calloc((size_t)(N * K), sizeof(float));
    ck_assert_int_eq(ilm__dequantize(type, c->w, c->wf, N * K), ILM_OK);
    uint32_t block, bytes;
    ilm__dtype_info(type, &block, &bytes);
    int64_t ablock = block == 256 ? 256 : 32, nb = K / (block > 1 ? block : 1);
    if (fields_of(type)) {
        uint8_t *o = offsets_only(type, c->w, rb * (size_t)N);
        ck_assert_int_eq(ilm__dequantize(type, o, c->of, N * K), ILM_OK);
        free(o);
    }
    c->ref = malloc((size_t)(M * N) * sizeof(double));
    c->bound_q = malloc((size_t)(M * N) * sizeof(double));
    c->bound_f = malloc((size_t)(M * N) * sizeof(double));
    double *step = malloc((size_t)K * sizeof(double));
    for (int64_t m = 0; m < M; m++) {
        const float *xm = c->x + m * K;
        for (int64_t k0 = 0; k0 < K; k0 += ablock) {
            double amax = 0;
            for (int64_t k = k0; k < k0 + ablock; k++) amax = fmax(amax, fabs(xm[k]));
            for (int64_t k = k0; k < k0 + ablock; k++) step[k] = amax / 254.0 * (1 + 0x1p-16);
        }
        for (int64_t n = 0; n < N; n++) {
            const float *wn = c->wf + n * K, *on = c->of + n * K;
            double s = 0, sa = 0, act = 0, terms = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)wn[k] * xm[k];
                sa += fabs((double)wn[k] * xm[k]);
                act += fabs(wn[k]) * step[k];
                terms += (fabs(wn[k]) + fabs(on[k])) * (fabs(xm[k]) + step[k]);
            }
            c->ref[m * N + n] = s;
            c->bound_f[m * N + n] = (double)(K + 8) * 0x1p-24 * sa + 1e-30;
            c->bound_q[m * N + n] = act + (double)(nb + 8) * 0x1p-22 * terms + 1e-30;
        }
    }
    free(step);
}

static void lin_free(lin_case *c)
{
    free(c->x);
    free(c->wf);
    free(c->of);
    free(c->w);
    free(c->ref);
    free(c->bound_q);
    free(c->bound_f);
}

static bool is_float_type(uint32_t t)
{
    return t == ILM__DTYPE_F32 || t == ILM__DTYPE_F16 || t == ILM__DTYPE_BF16;
}

static ilm_status lin(const ilm__backend *be, uint32_t type, const void *w, int64_t N, int64_t K,
                      const float *x, int64_t M, float *y)
{
    return be->iface.linear(be, type, w, N, K, x, M, y);
}

/* Runs the linear op on `be` and checks every output against the bound of
 * the path it took (gemm: the panels, or f32 W with M > 1). */
static void lin_check(const ilm__backend *be, const lin_case *c, float *y, bool gemm,
                      const char *what)
{
    ck_assert_msg(lin(be, c->type, c->w, c->N, c->K, c->x, c->M, y) == ILM_OK, "%s: %s", what,
                  ilm_last_error());
    for (int64_t i = 0; i < c->M * c->N; i++) {
        double b = (gemm || is_float_type(c->type)) ? c->bound_f[i] : c->bound_q[i];
        ck_assert_msg(fabs((double)y[i] - c->ref[i]) <= b,
                      "%s %s M=%lld out %lld: %.9g vs %.9g (bound %.3g)", what,
                      ilm__dtype_name(c->type), (long long)c->M, (long long)i, y[i], c->ref[i], b);
    }
}

START_TEST(linear_within_bound_on_every_path)
{
    static const int64_t Ms[] = { 1, 2, 7, 33 };
    uint32_t type = lin_types[_i];
    /* Every ISA level this CPU (or ILM_CPU) allows: generic is the scalar
     * reference; the best level is what the library runs. */
    ilm__backend *scalar = test_cpu_new(0, ILM__ISA_GENERIC), *simd = test_cpu_new(0, -1);
    for (size_t mi = 0; mi < 4; mi++) {
        lin_case c;
        lin_setup(&c, type, 37, 512, Ms[mi], 7 + mi);
        float *y = malloc((size_t)(c.M * c.N) * sizeof(float));
        float *ys = malloc((size_t)(c.M * c.N) * sizeof(float));
        /* The default: the integer path at every M for quantized W; f16
         * and bf16 switch to panels at M = 8 (within bound_f either way). */
        lin_check(simd, &c, y, false, "auto");
        /* The integer (or fp32 dot) path at every M, scalar and SIMD. */
        ilm__backend_cpu_set_gemm_min_m(scalar, 1 << 30);
        ilm__backend_cpu_set_gemm_min_m(simd, 1 << 30);
        lin_check(scalar, &c, ys, type == ILM__DTYPE_F32 && c.M > 1, "scalar");
        lin_check(simd, &c, y, type == ILM__DTYPE_F32 && c.M > 1, "simd");
        /* Scalar and SIMD see the same quantized activations: they differ
         * only by float rounding, within both bounds together. */
        for (int64_t i = 0; i < c.M * c.N; i++) {
            double b = is_float_type(type) ? 2 * c.bound_f[i] : 2 * c.bound_q[i];
            ck_assert_msg(fabs((double)y[i] - ys[i]) <= b, "%s: scalar %.9g simd %.9g",
                          ilm__dtype_name(type), ys[i], y[i]);
        }
        /* The panel path at every M. */
        ilm__backend_cpu_set_gemm_min_m(simd, 1);
        lin_check(simd, &c, y, true, "panels");
        ilm__backend_cpu_set_gemm_min_m(scalar, 0);
        ilm__backend_cpu_set_gemm_min_m(simd, 0);
        free(y);
        free(ys);
        lin_free(&c);
    }
    ilm__backend_free(scalar);
    ilm__backend_free(simd);
}
END_TEST

START_TEST(linear_same_bits_for_any_thread_count)
{
    /* Every path (dot products, panels, the blocked f32 GEMM: M = 300 x N
     * = 301 x K = 512 is cut into blocks) at every ISA level gives the
     * same bits on 1, 2 and 3 threads: the work is split by a policy that
     * depends on the shape alone, never on the BLAS's own threading. */
    static const int64_t Ms[] = { 1, 3, 33, 300 };
    uint32_t type = lin_types[_i];
    for (int isa = ILM__ISA_GENERIC; isa <= ilm__isa(); isa++)
        for (size_t mi = 0; mi < 4; mi++) {
            lin_case c;
            lin_setup(&c, type, 301, 512, Ms[mi], 99);
            size_t n = (size_t)(c.M * c.N);
            float *y[3];
            for (int t = 0; t < 3; t++) {
                ilm__backend *be = test_cpu_new(t + 1, isa);
                y[t] = malloc(n * sizeof(float));
                ck_assert_int_eq(lin(be, type, c.w, c.N, c.K, c.x, c.M, y[t]), ILM_OK);
                ilm__backend_free(be);
            }
            for (int t = 1; t < 3; t++)
                ck_assert_msg(memcmp(y[0], y[t], n * sizeof(float)) == 0,
                              "%s M=%lld at %s: %d threads change bits", ilm__dtype_name(type),
                              (long long)c.M, ilm__isa_name(isa), t + 1);
            for (int t = 0; t < 3; t++) free(y[t]);
            lin_free(&c);
        }
}
END_TEST

START_TEST(linear_prompt_rows_equal_single_rows)
{
    /* For quantized weights a prompt (M rows at once: the four-row
     * kernels) gives each row the same bits as running that row alone (the
     * decode path).  f32/f16/bf16 prompts go through the BLAS, whose sums
     * are ordered differently. */
    uint32_t type = lin_types[_i];
    if (type == ILM__DTYPE_F32 || type == ILM__DTYPE_F16 || type == ILM__DTYPE_BF16) return;
    const ilm__backend *be = test_cpu();
    lin_case c;
    lin_setup(&c, type, 37, 512, 9, 7);
    size_t n = (size_t)(c.M * c.N);
    float *all = malloc(n * sizeof(float)), *one = malloc((size_t)c.N * sizeof(float));
    ck_assert_int_eq(lin(be, type, c.w, c.N, c.K, c.x, c.M, all), ILM_OK);
    for (int64_t m = 0; m < c.M; m++) {
        ck_assert_int_eq(lin(be, type, c.w, c.N, c.K, c.x + m * c.K, 1, one), ILM_OK);
        ck_assert_msg(memcmp(one, all + m * c.N, (size_t)c.N * sizeof(float)) == 0,
                      "%s: row %lld of a prompt differs from the same row alone",
                      ilm__dtype_name(type), (long long)m);
    }
    free(all);
    free(one);
    lin_free(&c);
}
END_TEST

START_TEST(linear_bad_arguments)
{
    const ilm__backend *be = test_cpu();
    float x[512] = { 0 }, y[64];
    uint8_t w[4096] = { 0 };
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, 2, 48, x, 1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_K, w, 2, 128, x, 1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, -1, 32, x, 1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, 1, 32, x, -1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, NULL, 1, 32, x, 1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, 1, 32, NULL, 1, y), ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q8_K, w, 1, 256, x, 1, y), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(lin(be, ILM__DTYPE_IQ2_XXS, w, 1, 256, x, 1, y), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(lin(be, 1000, w, 1, 256, x, 1, y), ILM_ERR_UNSUPPORTED);
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, 0, 32, x, 1, y), ILM_OK);
    /* K = 0 is an empty sum. */
    y[0] = 1.0f;
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_0, w, 1, 0, x, 1, y), ILM_OK);
    ck_assert(y[0] == 0.0f);
    /* Zero weights and activations give exact zeros on the integer path. */
    ck_assert_int_eq(lin(be, ILM__DTYPE_Q4_1, w, 3, 64, x, 2, y), ILM_OK);
    for (int i = 0; i < 6; i++) ck_assert(y[i] == 0.0f);
}
END_TEST

Suite *suite_tensor(void)
{
    Suite *s = suite_create("tensor");
    TCase *t = tcase_create("dequantize");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, half_conversions_match_numpy_and_torch);
    tcase_add_test(t, dequantize_matches_gguf_quants);
    tcase_add_test(t, quantize_matches_gguf_quants);
    tcase_add_test(t, smollm2_every_tensor_dequantizes_like_gguf_py);
    suite_add_tcase(s, t);
    TCase *l = tcase_create("linear");
    tcase_set_timeout(l, 120);
    int nt = (int)(sizeof lin_types / sizeof lin_types[0]);
    tcase_add_loop_test(l, linear_within_bound_on_every_path, 0, nt);
    tcase_add_loop_test(l, linear_prompt_rows_equal_single_rows, 0, nt);
    tcase_add_loop_test(l, linear_same_bits_for_any_thread_count, 0, nt);
    tcase_add_test(l, linear_bad_arguments);
    suite_add_tcase(s, l);
    return s;
}
