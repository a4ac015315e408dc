/*
 * src/quant/ -- the 4-bit formats of fine-tuning and inference: NF4 and FP4
 * as bitsandbytes stores them (QLoRA's frozen base), and later the 4-bit
 * inference paths.
 *
 * nf4.c: quantization and dequantization, bit-exact with bitsandbytes 0.50
 * on the CPU (tests/fixtures/nf4, tools/reference/nf4_fixtures.py).  What
 * bitsandbytes does there, read from its code and confirmed on its outputs:
 *
 *  - 4-bit step (its torch-native quantize_4bit): per block absmax =
 *    max |x| in float32 (a NaN wins); full blocks are scaled by
 *    x * (1 / max(absmax, 1e-38)), the short last block by x / max(absmax,
 *    1e-38) and stores that clamped absmax; the code is torch.bucketize
 *    against the 15 float32 midpoints of the sorted table, so a value on a
 *    midpoint takes the lower code and a NaN takes the highest.
 *  - offset (double quantization): torch's float32 mean of the absmax, an
 *    8-lane cascade sum whose order is repeated here (torch_sum below).
 *  - 8-bit step (its C++ quantize_blockwise for float32, blocks of 256):
 *    absmax = max |a| ignoring NaN; v = a / absmax; v selects one of 65536
 *    cells over [-1, 1] by (uint)(((v + 1) * 0.5) * 65535 + 0.5) in float32
 *    and each cell holds the code nearest its centre, so the code is not
 *    always the nearest to v (up to half a cell away).  NaN (0 / 0 for a
 *    block of zeros) gives code 0.
 *  - dequantization: map[code] * absmax in float32; nested absmax = (dynamic
 *    code * nested absmax) + offset, two float32 roundings.
 */
#include "quant/nf4.h"

#include "tensor/dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tables ---------------------------------------------------------------- */

/* The NF4 values of QLoRA (Dettmers et al. 2023, appendix E), as the double
 * literals bitsandbytes lists; torch rounds them to float32. */
static const double nf4_values[16] = {
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
};

/* FP4 (1 sign, 2 exponent, 1 mantissa bit, bias 2) in bit-pattern order,
 * divided by its largest magnitude.  Slot 8 is +0: bitsandbytes writes the
 * Python int -0 there. */
static const float fp4_values[16] = {
    0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f,
    0.0f, -0.0625f, -8.0f, -12.0f, -4.0f, -6.0f, -2.0f, -3.0f,
};

void ilm__q4_code(uint32_t kind, float map[16])
{
    for (int i = 0; i < 16; i++)
        map[i] = kind == ILM__Q4_FP4 ? fp4_values[i] / 12.0f : (float)nf4_values[i];
}

/* torch.linspace(start, end, steps) in float32 on the CPU: the first half
 * counts up from start, the second down from end, each value one fused
 * multiply-add (what torch's compiled kernel computes). */
static void linspace_f32(float start, float end, int steps, float *out)
{
    float step = (end - start) / (float)(steps - 1);
    int half = steps / 2;
    for (int i = 0; i < steps; i++)
        out[i] = i < half ? fmaf(step, (float)i, start) : fmaf(-step, (float)(steps - 1 - i), end);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8): for
 * exponent i = 0..6, 2^i midpoints of linspace(0.1, 1, 2^i + 1) times
 * 10^(i-6), both signs; then 0 and 1; sorted. */
void ilm__q4_dynamic_map(float map[256])
{
    static const double pow10[7] = { 1e-06, 1e-05, 0.0001, 0.001, 0.01, 0.1, 1.0 };
    float b[65];
    int k = 0;
    for (int i = 0; i < 7; i++) {
        int items = (1 << i) + 1;
        linspace_f32((float)0.1, 1.0f, items, b);
        float s = (float)pow10[i];
        for (int j = 0; j + 1 < items; j++) {
            float mean = (b[j] + b[j + 1]) / 2.0f;
            map[k++] = s * mean;
            map[k++] = -s * mean;
        }
    }
    map[k++] = 0.0f;
    map[k++] = 1.0f;
    qsort(map, 256, sizeof(float), cmp_float);
}

/* ---- torch's float32 sum ------------------------------------------------------ */

/* torch's CeilLog2 (ATen/native/cpu/utils.h): 1 for x <= 2. */
static int ceil_log2(int64_t x)
{
    if (x <= 2) return 1;
    return 64 - __builtin_clzll((unsigned long long)(x - 1));
}

/* multi_row_sum of SumKernel.cpp with 4 rows of `lanes` floats: `size` rows
 * of 4 * lanes consecutive floats, accumulated in levels of 16 or more so
 * only sums of similar size meet.  out[4][lanes]. */
static void multi_row_sum(const float *x, int64_t size, int lanes, float out[4][8])
{
    int lp = ceil_log2(size) / 4;
    if (lp < 4) lp = 4;
    const int64_t step = (int64_t)1 << lp, mask = step - 1;
    float acc[4][4][8];
    memset(acc, 0, sizeof acc);
    int64_t i = 0;
    while (i + step <= size) {
        for (int64_t j = 0; j < step; j++, i++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++) acc[0][k][l] += x[(i * 4 + k) * lanes + l];
        for (int j = 1; j < 4; j++) {
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++) {
                    acc[j][k][l] += acc[j - 1][k][l];
                    acc[j - 1][k][l] = 0.0f;
                }
            if ((i & (mask << (j * lp))) != 0) break;
        }
    }
    for (; i < size; i++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++) acc[0][k][l] += x[(i * 4 + k) * lanes + l];
    for (int j = 1; j < 4; j++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++) acc[0][k][l] += acc[j][k][l];
    memcpy(out, acc[0], sizeof acc[0]);
}

/* row_sum: `size` items of `lanes` floats as a (-1, 4) array, the rest
 * added to the first partial, then the partials in order.  out[lanes]. */
static void row_sum(const float *x, int64_t size, int lanes, float out[8])
{
    int64_t size_ilp = size / 4;
    float p[4][8];
    multi_row_sum(x, size_ilp, lanes, p);
    for (int64_t i = size_ilp * 4; i < size; i++)
        for (int l = 0; l < lanes; l++) p[0][l] += x[i * lanes + l];
    for (int k = 1; k < 4; k++)
        for (int l = 0; l < lanes; l++) p[0][l] += p[k][l];
    memcpy(out, p[0], (size_t)lanes * sizeof(float));
}

/* One contiguous reduction (cascade_sum's inner loop) added onto 0: eight
 * lanes when there are at least eight values (torch's Vectorized<float> on
 * x86 has 8 lanes in this kernel, AVX2 and AVX-512 builds alike), the tail
 * summed on its own, then the lanes; a scalar row_sum below eight. */
static float torch_sum_serial(const float *x, int64_t n)
{
    float v[8];
    if (n >= 8) {
        int64_t nv = n / 8;
        row_sum(x, nv, 8, v);
        float acc = 0.0f;
        for (int64_t k = nv * 8; k < n; k++) acc += x[k];
        for (int l = 0; l < 8; l++) acc += v[l];
        return 0.0f + acc;
    }
    row_sum(x, n, 1, v);
    return 0.0f + v[0];
}

/* Below torch's GRAIN_SIZE (32768) or on one thread the reduction is one
 * serial pass; above, parallel_reduce's two-pass reduction: at::parallel_for
 * cuts [0, n) into min(threads, ceil(n / 32768)) equal chunks (the last
 * shorter), each summed alone into its thread's slot, then the `threads`
 * slots (unused ones 0) are summed like any other row. */
float ilm__q4_torch_sum(const float *x, int64_t n, int threads)
{
    const int64_t grain = 32768;
    if (threads < 1) threads = 1;
    if (n < grain || threads == 1) return torch_sum_serial(x, n);
    if (threads > ILM__MAX_THREADS) threads = ILM__MAX_THREADS;
    float slot[ILM__MAX_THREADS] = { 0 };
    int64_t nt = (n + grain - 1) / grain;
    if (nt > threads) nt = threads;
    int64_t chunk = (n + nt - 1) / nt;
    for (int64_t t = 0; t < nt && t * chunk < n; t++) {
        int64_t len = n - t * chunk < chunk ? n - t * chunk : chunk;
        slot[t] = 0.0f + torch_sum_serial(x + t * chunk, len);
    }
    return torch_sum_serial(slot, threads);
}

float ilm__q4_torch_mean(const float *x, int64_t n, int threads)
{
    return ilm__q4_torch_sum(x, n, threads) / (float)n;
}

/* ---- the 8-bit step ------------------------------------------------------------ */

/* The cell index of v: float32 arithmetic, truncated; NaN selects cell 0. */
static uint32_t q8_cell(float v)
{
    if (v != v) return 0;
    if (v < -1.0f) v = -1.0f;
    if (v > 1.0f) v = 1.0f;
    float r = ((v + 1.0f) * 0.5f) * 65535.0f + 0.5f;
    uint32_t k = (uint32_t)r;
    return k > 65535 ? 65535 : k;
}

/* Cell k's code: the entry of the ascending map nearest the cell's centre
 * k / 65535 * 2 - 1, the lower one on a tie. */
static uint8_t q8_cell_code(const float map[256], uint32_t k)
{
    double c = (double)k / 65535.0 * 2.0 - 1.0;
    int lo = 0, hi = 256; /* the first j with map[j] >= c */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if ((double)map[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    int j = lo < 1 ? 1 : lo > 255 ? 255 : lo;
    double dl = c - (double)map[j - 1], dr = (double)map[j] - c;
    return (uint8_t)(dr < dl ? j : j - 1);
}

uint8_t ilm__q8_code_of(const float map[256], float v)
{
    return q8_cell_code(map, q8_cell(v));
}

ilm_status ilm__q8_quantize(const float *a, int64_t n, const float map[256], int64_t blocksize,
                            uint8_t *q, float *absmax)
{
    uint8_t *lut = ilm__malloc(65536);
    ILM__RETURN_IF(!lut, ILM_ERR_NOMEM, "nf4: out of memory for the 8-bit table");
    for (uint32_t k = 0; k < 65536; k++) lut[k] = q8_cell_code(map, k);
    for (int64_t b = 0; b * blocksize < n; b++) {
        const int64_t s = b * blocksize, e = n - s < blocksize ? n : s + blocksize;
        float am = 0.0f;
        for (int64_t i = s; i < e; i++) {
            float v = fabsf(a[i]);
            if (v > am) am = v;
        }
        absmax[b] = am;
        for (int64_t i = s; i < e; i++) q[i] = lut[q8_cell(a[i] / am)];
    }
    ilm__free(lut);
    return ILM_OK;
}

/* ---- the 4-bit step ------------------------------------------------------------- */

bool ilm__q4_blocksize_ok(int64_t bs)
{
    return bs >= 32 && bs <= 4096 && (bs & (bs - 1)) == 0;
}

/* torch.clamp(a, min=1e-38): NaN stays NaN. */
static float clamp_tiny(float a)
{
    return a < 1e-38f ? 1e-38f : a;
}

/* torch.abs(block).max(): a NaN anywhere is the result. */
static float block_absmax(const float *x, int64_t len)
{
    float am = 0.0f;
    for (int64_t i = 0; i < len; i++) {
        float v = fabsf(x[i]);
        if (v != v) return v;
        if (v > am) am = v;
    }
    return am;
}

/* The lookup of the torch-native kernel: bucketize(s, midpoints) counts the
 * midpoints m with !(m >= s), 15 for a NaN; FP4's table is unsorted, so the
 * count indexes its stable ascending order. */
typedef struct q4_lookup {
    float   mid[15];
    uint8_t order[16];
} q4_lookup;

static void q4_lookup_init(const float map[16], q4_lookup *lk)
{
    for (int i = 0; i < 16; i++) lk->order[i] = (uint8_t)i;
    for (int i = 1; i < 16; i++) /* insertion sort: stable, as torch's argsort is here */
        for (int j = i; j > 0 && map[lk->order[j - 1]] > map[lk->order[j]]; j--) {
            uint8_t t = lk->order[j];
            lk->order[j] = lk->order[j - 1];
            lk->order[j - 1] = t;
        }
    for (int i = 0; i < 15; i++) lk->mid[i] = (map[lk->order[i]] + map[lk->order[i + 1]]) / 2.0f;
}

static uint8_t q4_code(const q4_lookup *lk, float s)
{
    int q = 0;
    for (int i = 0; i < 15; i++) q += !(lk->mid[i] >= s);
    return lk->order[q];
}

void ilm__q4_free(ilm__q4 *q)
{
    if (!q) return;
    ilm__free(q->own);
    memset(q, 0, sizeof *q);
}

ilm_status ilm__q4_quantize(const float *x, int32_t n_dims, const int64_t *shape,
                            const ilm__q4_opts *opts, ilm__q4 *out)
{
    static const ilm__q4_opts defaults = { 0 };
    const ilm__q4_opts *o = opts ? opts : &defaults;
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "nf4 quantize: NULL output");
    memset(out, 0, sizeof *out);
    const int64_t bs = o->blocksize ? o->blocksize : 64;
    const uint32_t dtype = o->dtype;
    ILM__RETURN_IF(o->kind != ILM__Q4_NF4 && o->kind != ILM__Q4_FP4, ILM_ERR_INVALID_ARG,
                   "nf4 quantize: unknown kind %u", (unsigned)o->kind);
    ILM__RETURN_IF(!ilm__q4_blocksize_ok(bs), ILM_ERR_INVALID_ARG,
                   "nf4 quantize: blocksize %lld is not one of bitsandbytes' 32, 64, ..., 4096",
                   (long long)bs);
    ILM__RETURN_IF(dtype != ILM__DTYPE_F32 && dtype != ILM__DTYPE_F16 && dtype != ILM__DTYPE_BF16,
                   ILM_ERR_INVALID_ARG, "nf4 quantize: original type %s is not f32, f16 or bf16",
                   ilm__dtype_name(dtype));
    ILM__RETURN_IF(n_dims < 0 || n_dims > ILM__Q4_MAX_DIMS || (n_dims && !shape),
                   ILM_ERR_INVALID_ARG, "nf4 quantize: bad n_dims %d", (int)n_dims);
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++)
        ILM__RETURN_IF(shape[d] < 0 || __builtin_mul_overflow(n, shape[d], &n) ||
                           n > ((int64_t)1 << 48),
                       ILM_ERR_INVALID_ARG, "nf4 quantize: bad shape[%d] %lld", d,
                       (long long)shape[d]);
    ILM__RETURN_IF(n > 0 && !x, ILM_ERR_INVALID_ARG, "nf4 quantize: NULL input");

    out->kind = o->kind;
    out->dtype = dtype;
    out->n_dims = n_dims;
    for (int d = 0; d < ILM__Q4_MAX_DIMS; d++) out->shape[d] = d < n_dims ? shape[d] : 1;
    out->n = n;
    out->blocksize = bs;
    out->n_blocks = (n + bs - 1) / bs;
    out->nested = o->nested;
    out->nested_blocksize = o->nested ? ILM__Q4_NESTED_BLOCKSIZE : 0;
    out->n_nested = o->nested ? (out->n_blocks + 255) / 256 : 0;
    ilm__q4_code(o->kind, out->map);

    /* One allocation: float arrays first, then the bytes. */
    const size_t nb = (size_t)out->n_blocks, nn = (size_t)out->n_nested;
    const size_t nfloat = nb + nn, nbytes = (size_t)(n + 1) / 2 + (o->nested ? nb : 0);
    uint8_t *mem = ilm__malloc(nfloat * sizeof(float) + nbytes + 1);
    if (!mem) {
        memset(out, 0, sizeof *out);
        return ilm__error(ILM_ERR_NOMEM, "nf4 quantize: out of memory for %lld elements",
                          (long long)n);
    }
    out->own = mem;
    float *absmax = (float *)mem, *nested_absmax = absmax + nb;
    uint8_t *packed = mem + nfloat * sizeof(float), *qabsmax = packed + (n + 1) / 2;

    q4_lookup lk;
    q4_lookup_init(out->map, &lk);
    const uint8_t pad = q4_code(&lk, 0.0f);
    const int64_t full = n / bs;
    for (int64_t b = 0; b < out->n_blocks; b++) {
        const float *xb = x + b * bs;
        const int64_t len = b < full ? bs : n - b * bs;
        float am = block_absmax(xb, len);
        float r = 0.0f;
        if (b < full) {
            absmax[b] = am;
            r = 1.0f / clamp_tiny(am);
        } else {
            am = clamp_tiny(am);
            absmax[b] = am;
        }
        for (int64_t i = 0; i < len; i++) {
            const int64_t e = b * bs + i;
            uint8_t c = q4_code(&lk, b < full ? xb[i] * r : xb[i] / am);
            if ((e & 1) == 0) packed[e >> 1] = (uint8_t)(c << 4);
            else packed[e >> 1] |= c;
        }
    }
    if (n & 1) packed[n >> 1] |= pad;
    out->packed = packed;

    if (!o->nested) {
        out->absmax = absmax;
        return ILM_OK;
    }
    /* Double quantization: absmax - mean, in place, then the 8-bit step. */
    out->offset = ilm__q4_torch_mean(absmax, (int64_t)nb, o->torch_threads);
    for (size_t b = 0; b < nb; b++) absmax[b] = absmax[b] - out->offset;
    ilm__q4_dynamic_map(out->nested_map);
    ilm_status s = ilm__q8_quantize(absmax, (int64_t)nb, out->nested_map, 256, qabsmax,
                                    nested_absmax);
    if (s != ILM_OK) {
        ilm__q4_free(out);
        return s;
    }
    out->qabsmax = qabsmax;
    out->nested_absmax = nested_absmax;
    return ILM_OK;
}

/* ---- dequantization ------------------------------------------------------------- */

float ilm__q4_block_scale(const ilm__q4 *q, int64_t b)
{
    if (!q->nested) return q->absmax[b];
    float a = q->nested_map[q->qabsmax[b]] * q->nested_absmax[b / q->nested_blocksize];
    return a + q->offset;
}

ilm_status ilm__q4_dequantize(const ilm__q4 *q, int64_t first, int64_t count, float *out)
{
    ILM__RETURN_IF(!q || first < 0 || count < 0 || first > q->n || count > q->n - first ||
                       (count && !out),
                   ILM_ERR_INVALID_ARG, "nf4 dequantize: range [%lld, +%lld) outside %lld elements",
                   (long long)first, (long long)count, q ? (long long)q->n : 0LL);
    int64_t e = first;
    const int64_t end = first + count;
    while (e < end) {
        const int64_t b = e / q->blocksize;
        const int64_t stop = (b + 1) * q->blocksize < end ? (b + 1) * q->blocksize : end;
        const float scale = ilm__q4_block_scale(q, b);
        for (; e < stop; e++) {
            const uint8_t byte = q->packed[e >> 1];
            out[e - first] = q->map[(e & 1) ? byte & 15 : byte >> 4] * scale;
        }
    }
    return ILM_OK;
}

ilm_status ilm__q4_dequantize_row(const ilm__q4 *q, int64_t r, float *out)
{
    ILM__RETURN_IF(!q, ILM_ERR_INVALID_ARG, "nf4 dequantize: NULL tensor");
    const int64_t cols = q->n_dims ? q->shape[q->n_dims - 1] : 1;
    ILM__RETURN_IF(cols == 0 || r < 0 || r >= q->n / cols, ILM_ERR_INVALID_ARG,
                   "nf4 dequantize: row %lld outside %lld rows", (long long)r,
                   cols ? (long long)(q->n / cols) : 0LL);
    return ilm__q4_dequantize(q, r * cols, cols, out);
}

uint64_t ilm__q4_bytes(int64_t n, const ilm__q4_opts *o)
{
    const int64_t bs = o->blocksize ? o->blocksize : 64, blocks = (n + bs - 1) / bs;
    const int64_t nested = o->nested ? (blocks + ILM__Q4_NESTED_BLOCKSIZE - 1) / ILM__Q4_NESTED_BLOCKSIZE : 0;
    return (uint64_t)(n + 1) / 2 + (uint64_t)blocks * (o->nested ? 1 : 4) + (uint64_t)nested * 4;
}

uint64_t ilm__q4_size(const ilm__q4 *q)
{
    return (uint64_t)(q->n + 1) / 2 + (uint64_t)q->n_blocks * (q->nested ? 1 : 4) +
           (uint64_t)q->n_nested * 4;
}

ilm_status ilm__q4_opts_parse(const cJSON *section, const char *where, ilm__q4_opts *o)
{
    const char *type = "nf4";
    int64_t blocksize = 64;
    bool nested = true;
    const ilm__jfield f[] = {
        { "quant_type", ILM__J_STRING, &type, false, 0, 0 },
        { "blocksize", ILM__J_INT, &blocksize, false, 32, 4096 },
        { "double_quant", ILM__J_BOOL, &nested, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(section, where, f, 3));
    ILM__RETURN_IF(strcmp(type, "nf4") && strcmp(type, "fp4"), ILM_ERR_CONFIG,
                   "config: '%s.quant_type' is '%s', not \"nf4\" or \"fp4\"", where, type);
    ILM__RETURN_IF(!ilm__q4_blocksize_ok(blocksize), ILM_ERR_CONFIG,
                   "config: '%s.blocksize' is %lld, not one of bitsandbytes' 32, 64, ..., 4096",
                   where, (long long)blocksize);
    *o = (ilm__q4_opts){ .kind = strcmp(type, "fp4") ? ILM__Q4_NF4 : ILM__Q4_FP4,
                         .blocksize = blocksize, .nested = nested };
    return ILM_OK;
}
