/* The CPU reference of the training ops (backend.h): the forward ops that
 * save what backward needs, and the backward ops.  fp32 with double where
 * a row is summed; OpenMP over rows, heads or column blocks.  No two
 * threads ever add into the same element and every sum runs in a fixed
 * order, so the bits of every result are independent of the thread count
 * (tests/test_grad.c checks this). */
#include "backend/backend.h"
#include "backend/cpu/cpu.h"

#include <math.h>
#include <string.h>

/* Columns per task where a reduction runs over rows (embedding and
 * RMSNorm weight gradients): each task owns its columns outright. */
#define COL_BLOCK 64

static ilm_status check_ids(const int32_t *ids, int64_t T, int64_t V, const char *op)
{
    for (int64_t t = 0; t < T; t++)
        ILM_RETURN_IF(ids[t] < 0 || ids[t] >= V, ILM_ERR_RANGE,
                      "%s: token id %d at %lld is outside the vocabulary of %lld", op, ids[t],
                      (long long)t, (long long)V);
    return ILM_OK;
}

ilm_status ilm__cpu_embedding(const ilm__backend *be, const float *W, int64_t V, int64_t C,
                              const int32_t *ids, int64_t T, float *y)
{
    (void)be;
    ILM_FORWARD(check_ids(ids, T, V, "embedding"));
#pragma omp parallel for num_threads(ilm__num_threads()) if (T * C > 65536)
    for (int64_t t = 0; t < T; t++)
        memcpy(y + t * C, W + (int64_t)ids[t] * C, (size_t)C * sizeof *y);
    return ILM_OK;
}

ilm_status ilm__cpu_embedding_bwd(const ilm__backend *be, float *dW, int64_t V, int64_t C,
                                  const int32_t *ids, int64_t T, const float *dy)
{
    (void)be;
    ILM_FORWARD(check_ids(ids, T, V, "embedding backward"));
    /* Scatter-add by column blocks: a block's task walks the tokens in
     * order, so a row that several tokens share is summed in token order. */
    const int64_t n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(ilm__num_threads()) if (T * C > 65536) schedule(static)
    for (int64_t cb = 0; cb < n_blocks; cb++) {
        const int64_t c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int64_t t = 0; t < T; t++) {
            float *row = dW + (int64_t)ids[t] * C;
            const float *g = dy + t * C;
            for (int64_t c = c0; c < c1; c++) row[c] += g[c];
        }
    }
    return ILM_OK;
}

/* y = x * r * w with r = 1 / sqrt(mean(x^2) + eps), so
 *   dx_c = r w_c dy_c - x_c r^3 / C * sum_k dy_k w_k x_k,
 *   dw_c += sum_t dy_tc x_tc r_t. */
ilm_status ilm__cpu_rmsnorm_bwd(const ilm__backend *be, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, int64_t T, int64_t C,
                                float eps)
{
    (void)be;
    if (T <= 0) return ILM_OK;
    float *r = ilm__malloc((size_t)T * sizeof *r);
    ILM_RETURN_IF(!r, ILM_ERR_NOMEM, "rmsnorm backward: out of memory for %lld rows", (long long)T);
    const int64_t n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel num_threads(ilm__num_threads()) if (T * C > 16384)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            const float *xr = x + t * C;
            double ss = 0;
            for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
            r[t] = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
        }
        /* dw first: dx may overwrite dy afterwards. */
#pragma omp for schedule(static)
        for (int64_t cb = 0; cb < n_blocks; cb++) {
            const int64_t c0 = cb * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
            float acc[COL_BLOCK] = { 0 };
            for (int64_t t = 0; t < T; t++)
                for (int64_t c = c0; c < c1; c++) acc[c - c0] += dy[t * C + c] * x[t * C + c] * r[t];
            for (int64_t c = c0; c < c1; c++) dw[c] += acc[c - c0];
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            const float *xr = x + t * C, *g = dy + t * C;
            float *o = dx + t * C;
            double s = 0;
            for (int64_t c = 0; c < C; c++) s += (double)g[c] * w[c] * xr[c];
            const float rt = r[t], k = (float)(s * (double)rt * rt * rt / (double)C);
            for (int64_t c = 0; c < C; c++) o[c] = rt * w[c] * g[c] - xr[c] * k;
        }
    }
    ilm__free(r);
    return ILM_OK;
}

ilm_status ilm__cpu_rope_bwd(const ilm__backend *be, float *dx, int64_t T, int64_t NH, int64_t D,
                             const float *cos, const float *sin, bool interleaved)
{
    (void)be;
    const int64_t half = D / 2;
#pragma omp parallel for num_threads(ilm__num_threads()) if (T * NH > 64)
    for (int64_t th = 0; th < T * NH; th++) {
        int64_t t = th / NH;
        float *v = dx + th * D;
        const float *c = cos + t * half, *s = sin + t * half;
        for (int64_t i = 0; i < half; i++) {
            int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + half;
            float va = v[a], vb = v[b];
            v[a] = va * c[i] + vb * s[i];
            v[b] = vb * c[i] - va * s[i];
        }
    }
    return ILM_OK;
}

/* ---- attention over packed documents ----------------------------------- */

static ilm_status check_cu(const int32_t *cu, int64_t n_seqs, int64_t T)
{
    ILM_RETURN_IF(n_seqs < 1 || cu[0] != 0 || cu[n_seqs] != T, ILM_ERR_INVALID_ARG,
                  "attention: cu_seqlens must run from 0 to %lld over %lld documents",
                  (long long)T, (long long)n_seqs);
    for (int64_t i = 0; i < n_seqs; i++)
        ILM_RETURN_IF(cu[i + 1] <= cu[i], ILM_ERR_INVALID_ARG,
                      "attention: document %lld of cu_seqlens is empty or reversed (%d, %d)",
                      (long long)i, cu[i], cu[i + 1]);
    return ILM_OK;
}

/* The document of token t: the i with cu[i] <= t < cu[i + 1]. */
static int64_t find_doc(const int32_t *cu, int64_t n_seqs, int64_t t)
{
    int64_t lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (cu[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* out[i] = dot(x, rows + i * stride) over D floats for i < n <= 4.  Four
 * rows at a time share the loads of x and one horizontal reduction: the
 * scores of attention are dot products of one head dimension (64 or 128),
 * where a reduction per product costs as much as the products. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static void dot4_avx2(const float *x, const float *rows,
                                                          int64_t stride, int64_t D, float *out)
{
    const float *r0 = rows, *r1 = rows + stride, *r2 = rows + 2 * stride, *r3 = rows + 3 * stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
           a3 = _mm256_setzero_ps();
    for (int64_t d = 0; d < D; d += 8) {
        __m256 xv = _mm256_loadu_ps(x + d);
        a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r0 + d), a0);
        a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r1 + d), a1);
        a2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r2 + d), a2);
        a3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r3 + d), a3);
    }
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}

static bool have_dot4(int64_t D)
{
    __builtin_cpu_init();
    return D % 8 == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
static void dot4_avx2(const float *x, const float *rows, int64_t stride, int64_t D, float *out)
{
    (void)x; (void)rows; (void)stride; (void)D; (void)out;
}
static bool have_dot4(int64_t D) { (void)D; return false; }
#endif

static inline void dots(const ilm__cpu_vec *vo, bool fast, const float *x, const float *rows,
                        int64_t stride, int64_t n, int64_t D, float *out)
{
    if (fast && n == 4) {
        dot4_avx2(x, rows, stride, D, out);
        return;
    }
    for (int64_t i = 0; i < n; i++) out[i] = vo->dot(x, rows + i * stride, D);
}

ilm_status ilm__cpu_attention_train(const ilm__backend *be, const float *q, const float *k,
                                    const float *v, float *out, float *lse,
                                    const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                    int64_t H, int64_t KV, int64_t D)
{
    (void)be;
    ILM_FORWARD(check_cu(cu_seqlens, n_seqs, T));
    ILM_RETURN_IF(KV <= 0 || H % KV != 0, ILM_ERR_INVALID_ARG,
                  "attention: %lld heads do not share %lld kv heads evenly", (long long)H,
                  (long long)KV);
    const ilm__cpu_vec vo = *ilm__cpu_vec_ops();
    const bool fast = have_dot4(D);
    const int64_t group = H / KV, KVD = KV * D;
    const float scale = 1.0f / sqrtf((float)D);
    int failed = 0;
    /* One task per (query, kv head): the kv head's keys are read once for
     * the whole group of query heads that share them. */
#pragma omp parallel num_threads(ilm__num_threads()) reduction(+ : failed)
    {
        float *sc = ilm__malloc((size_t)(group * T) * sizeof *sc);
        if (!sc) failed = 1;
#pragma omp for schedule(dynamic, 4)
        for (int64_t tj = 0; tj < T * KV; tj++) {
            if (!sc) continue;
            const int64_t t = tj / KV, j = tj % KV, s0 = cu_seqlens[find_doc(cu_seqlens, n_seqs, t)];
            const int64_t n = t - s0 + 1;
            for (int64_t g = 0; g < group; g++) {
                const int64_t h = j * group + g;
                const float *qh = q + (t * H + h) * D;
                float *p = sc + g * T, mx = -INFINITY;
                for (int64_t s = 0; s < n; s += 4)
                    dots(&vo, fast, qh, k + (s0 + s) * KVD + j * D, KVD, n - s < 4 ? n - s : 4, D, p + s);
                for (int64_t s = 0; s < n; s++) {
                    p[s] *= scale;
                    mx = fmaxf(mx, p[s]);
                }
                double sum = 0;
                for (int64_t s = 0; s < n; s++) {
                    p[s] = expf(p[s] - mx);
                    sum += p[s];
                }
                const float inv = (float)(1.0 / sum);
                float *o = out + (t * H + h) * D;
                memset(o, 0, (size_t)D * sizeof *o);
                for (int64_t s = 0; s < n; s++) vo.axpy(o, p[s] * inv, v + (s0 + s) * KVD + j * D, D);
                lse[t * H + h] = mx + (float)log(sum);
            }
        }
        ilm__free(sc);
    }
    ILM_RETURN_IF(failed, ILM_ERR_NOMEM, "attention: out of memory for %lld scores", (long long)T);
    return ILM_OK;
}

/* With P = softmax(S), S = scale q k^T, and delta_i = dout_i . out_i:
 *   dS_is = P_is (dout_i . v_s - delta_i),
 *   dq_i = scale sum_s dS_is k_s,  dk_s = scale sum_i dS_is q_i,
 *   dv_s = sum_i P_is dout_i,
 * where P_is = exp(S_is - lse_i) is recomputed from the saved lse.  The
 * first pass owns query rows (dq), the second key rows (dk, dv): each
 * recomputes the scores it needs (FlashAttention-2's split), and neither
 * writes where another task writes. */
ilm_status ilm__cpu_attention_train_bwd(const ilm__backend *be, const float *q, const float *k,
                                        const float *v, const float *out, const float *lse,
                                        const float *dout, float *dq, float *dk, float *dv,
                                        const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                        int64_t H, int64_t KV, int64_t D)
{
    (void)be;
    ILM_FORWARD(check_cu(cu_seqlens, n_seqs, T));
    ILM_RETURN_IF(KV <= 0 || H % KV != 0, ILM_ERR_INVALID_ARG,
                  "attention: %lld heads do not share %lld kv heads evenly", (long long)H,
                  (long long)KV);
    const ilm__cpu_vec vo = *ilm__cpu_vec_ops();
    const bool fast = have_dot4(D);
    const int64_t group = H / KV, KVD = KV * D;
    const float scale = 1.0f / sqrtf((float)D);
    float *delta = ilm__malloc((size_t)(T * H) * sizeof *delta);
    ILM_RETURN_IF(!delta, ILM_ERR_NOMEM, "attention backward: out of memory for %lld rows",
                  (long long)T);
#pragma omp parallel num_threads(ilm__num_threads())
    {
#pragma omp for schedule(static)
        for (int64_t th = 0; th < T * H; th++) delta[th] = vo.dot(dout + th * D, out + th * D, D);
#pragma omp for schedule(dynamic, 4)
        for (int64_t tj = 0; tj < T * KV; tj++) {
            const int64_t t = tj / KV, j = tj % KV, s0 = cu_seqlens[find_doc(cu_seqlens, n_seqs, t)];
            for (int64_t g = 0; g < group; g++) {
                const int64_t h = j * group + g;
                const float *qh = q + (t * H + h) * D, *gh = dout + (t * H + h) * D;
                const float l = lse[t * H + h], dl = delta[t * H + h];
                float *o = dq + (t * H + h) * D;
                memset(o, 0, (size_t)D * sizeof *o);
                for (int64_t s = s0; s <= t; s += 4) {
                    const int64_t m = t + 1 - s < 4 ? t + 1 - s : 4;
                    float sc[4], dp[4];
                    dots(&vo, fast, qh, k + s * KVD + j * D, KVD, m, D, sc);
                    dots(&vo, fast, gh, v + s * KVD + j * D, KVD, m, D, dp);
                    for (int64_t i = 0; i < m; i++) {
                        float p = expf(sc[i] * scale - l), ds = p * (dp[i] - dl);
                        vo.axpy(o, ds * scale, k + (s + i) * KVD + j * D, D);
                    }
                }
            }
        }
#pragma omp for schedule(dynamic, 4)
        for (int64_t sj = 0; sj < T * KV; sj++) {
            const int64_t s = sj / KV, j = sj % KV;
            const int64_t e = cu_seqlens[find_doc(cu_seqlens, n_seqs, s) + 1];
            const float *ks = k + s * KVD + j * D, *vs = v + s * KVD + j * D;
            float *ok = dk + s * KVD + j * D, *ov = dv + s * KVD + j * D;
            memset(ok, 0, (size_t)D * sizeof *ok);
            memset(ov, 0, (size_t)D * sizeof *ov);
            for (int64_t g = 0; g < group; g++) {
                const int64_t h = j * group + g;
                for (int64_t t = s; t < e; t += 4) {
                    const int64_t m = e - t < 4 ? e - t : 4;
                    const float *qh = q + (t * H + h) * D, *gh = dout + (t * H + h) * D;
                    float sc[4], dp[4];
                    dots(&vo, fast, ks, qh, H * D, m, D, sc);
                    dots(&vo, fast, vs, gh, H * D, m, D, dp);
                    for (int64_t i = 0; i < m; i++) {
                        const int64_t th = (t + i) * H + h;
                        float p = expf(sc[i] * scale - lse[th]), ds = p * (dp[i] - delta[th]);
                        vo.axpy(ok, ds * scale, qh + i * H * D, D);
                        vo.axpy(ov, p, gh + i * H * D, D);
                    }
                }
            }
        }
    }
    ilm__free(delta);
    return ILM_OK;
}

/* silu(g) = g s with s = sigmoid(g); d silu / dg = s (1 + g (1 - s)). */
ilm_status ilm__cpu_swiglu_bwd(const ilm__backend *be, const float *dout, const float *gate,
                               const float *up, float *dgate, float *dup, int64_t n)
{
    (void)be;
#pragma omp parallel for num_threads(ilm__num_threads()) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i], u = up[i], d = dout[i];
        const float s = 1.0f / (1.0f + expf(-g));
        dup[i] = d * g * s;
        dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
    }
    return ILM_OK;
}

ilm_status ilm__cpu_cross_entropy(const ilm__backend *be, const float *logits,
                                  const int32_t *labels, int64_t N, int64_t V, float dscale,
                                  float *dlogits, double *loss_sum, int64_t *n_targets)
{
    (void)be;
    for (int64_t i = 0; i < N; i++)
        ILM_RETURN_IF(labels[i] != -100 && (labels[i] < 0 || labels[i] >= V), ILM_ERR_RANGE,
                      "cross-entropy: label %d at %lld is outside the vocabulary of %lld",
                      labels[i], (long long)i, (long long)V);
    double *row = ilm__malloc((size_t)(N > 0 ? N : 1) * sizeof *row);
    ILM_RETURN_IF(!row, ILM_ERR_NOMEM, "cross-entropy: out of memory for %lld rows", (long long)N);
#pragma omp parallel for num_threads(ilm__num_threads()) if (N * V > 65536) schedule(static)
    for (int64_t i = 0; i < N; i++) {
        const float *l = logits + i * V;
        const int32_t y = labels[i];
        row[i] = 0;
        if (y == -100) {
            if (dlogits) memset(dlogits + i * V, 0, (size_t)V * sizeof *dlogits);
            continue;
        }
        float mx = -INFINITY;
        for (int64_t c = 0; c < V; c++) mx = fmaxf(mx, l[c]);
        /* Terms in fp32 (each exact to 1e-7 relative), their sum and the
         * log in double; with a gradient the terms are kept in dlogits
         * (which may be the logits: only l[y] and mx are read again). */
        const float ly = l[y];
        double sum = 0;
        if (dlogits) {
            float *d = dlogits + i * V;
            for (int64_t c = 0; c < V; c++) {
                float e = expf(l[c] - mx);
                d[c] = e;
                sum += e;
            }
            const float k = (float)(dscale / sum);
            for (int64_t c = 0; c < V; c++) d[c] *= k;
            d[y] -= dscale;
        } else {
            for (int64_t c = 0; c < V; c++) sum += expf(l[c] - mx);
        }
        row[i] = mx + log(sum) - ly;
    }
    double total = 0;
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++)
        if (labels[i] != -100) {
            total += row[i];
            count++;
        }
    ilm__free(row);
    *loss_sum = total;
    *n_targets = count;
    return ILM_OK;
}
