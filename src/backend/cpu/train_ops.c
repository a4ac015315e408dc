/* The CPU reference of the training ops (backend.h): the forward ops that
 * save what backward needs, and the backward ops.  fp32 with double where
 * a row is summed; OpenMP over rows, heads or column blocks.  No two
 * threads ever add into the same element and every sum runs in a fixed
 * order, so the bits of every result are independent of the thread count
 * (tests/test_grad.c checks this). */
#include "backend/backend.h"
#include "backend/cpu/cpu.h"
#include "tensor/tensor.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Columns per task where a reduction runs over rows (embedding and
 * RMSNorm weight gradients): each task owns its columns outright. */
#define COL_BLOCK 64

static ilm_status check_ids(const int32_t *ids, int64_t T, int64_t V, const char *op)
{
    for (int64_t t = 0; t < T; t++)
        ILM__RETURN_IF(ids[t] < 0 || ids[t] >= V, ILM_ERR_RANGE,
                       "%s: token id %d at %lld is outside the vocabulary of %lld", op, ids[t],
                       (long long)t, (long long)V);
    return ILM_OK;
}

ilm_status ilm__cpu_embedding(const ilm__backend *be, uint32_t wtype, const void *W, int64_t V,
                              int64_t C, const int32_t *ids, int64_t T, float *y)
{
    uint32_t block, bytes;
    ILM__RETURN_IF(!ilm__dtype_info(wtype, &block, &bytes) || C % block != 0,
                   ILM_ERR_UNSUPPORTED, "embedding: table type %s (%u) with %lld columns",
                   ilm__dtype_name(wtype), wtype, (long long)C);
    ILM__FORWARD(check_ids(ids, T, V, "embedding"));
    const size_t row_bytes = (size_t)(C / block) * bytes;
    int failed = 0;
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T * C > 65536) reduction(+ : failed)
    for (int64_t t = 0; t < T; t++) {
        const uint8_t *row = (const uint8_t *)W + (size_t)ids[t] * row_bytes;
        if (wtype == ILM__DTYPE_F32) memcpy(y + t * C, row, (size_t)C * sizeof *y);
        else failed += ilm__dequantize(wtype, row, y + t * C, C) != ILM_OK;
    }
    ILM__RETURN_IF(failed, ILM_ERR_UNSUPPORTED, "embedding: cannot dequantize %s rows",
                   ilm__dtype_name(wtype));
    return ILM_OK;
}

ilm_status ilm__cpu_embedding_bwd(const ilm__backend *be, float *dW, int64_t V, int64_t C,
                                  const int32_t *ids, int64_t T, const float *dy)
{
    ILM__FORWARD(check_ids(ids, T, V, "embedding backward"));
    /* Scatter-add by column blocks: a block's task walks the tokens in
     * order, so a row that several tokens share is summed in token order. */
    const int64_t n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (T * C > 65536) schedule(static)
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
    if (T <= 0) return ILM_OK;
    float *r = ilm__malloc((size_t)T * sizeof *r);
    ILM__RETURN_IF(!r, ILM_ERR_NOMEM, "rmsnorm backward: out of memory for %lld rows", (long long)T);
    const int64_t n_blocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel num_threads(ilm__cpu_threads(be)) if (T * C > 16384)
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

/* ---- attention over packed documents ----------------------------------- */

/* The shapes both attention passes need: documents that tile [0, T), and
 * heads that share the kv heads evenly. */
static ilm_status check_shapes(const int32_t *cu, int64_t n_seqs, int64_t T, int64_t H, int64_t KV)
{
    ILM__RETURN_IF(KV <= 0 || H % KV != 0, ILM_ERR_INVALID_ARG,
                   "attention: %lld heads do not share %lld kv heads evenly", (long long)H,
                   (long long)KV);
    ILM__RETURN_IF(n_seqs < 1 || cu[0] != 0 || cu[n_seqs] != T, ILM_ERR_INVALID_ARG,
                   "attention: cu_seqlens must run from 0 to %lld over %lld documents",
                   (long long)T, (long long)n_seqs);
    for (int64_t i = 0; i < n_seqs; i++)
        ILM__RETURN_IF(cu[i + 1] <= cu[i], ILM_ERR_INVALID_ARG,
                       "attention: document %lld of cu_seqlens is empty or reversed (%d, %d)",
                       (long long)i, cu[i], cu[i + 1]);
    return ILM_OK;
}

/* Query rows per block: a block's scores against all the keys it sees
 * ([QB, n] floats for a document of n tokens) are one gemm. */
#define QB 64

static int64_t longest_doc(const int32_t *cu, int64_t n_seqs)
{
    int64_t mx = 0;
    for (int64_t i = 0; i < n_seqs; i++)
        if (cu[i + 1] - cu[i] > mx) mx = cu[i + 1] - cu[i];
    return mx;
}

/* C[m,n] = alpha op(A) op(B) + beta C on the calling thread's BLAS (one
 * thread: the callers run inside our own team). */
static void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Per (document, head): for each block of QB query rows, the scores
 * against the keys up to the block's last row are one gemm, the causal
 * softmax runs over each row (the max, then exp and a double sum), and the
 * output is a second gemm with the probabilities.  One task owns a
 * (document, head) and runs on one thread with the single-threaded BLAS, so
 * the bits do not depend on the thread count. */
ilm_status ilm__cpu_attention_train(const ilm__backend *be, const float *q, const float *k,
                                    const float *v, float *out, float *lse,
                                    const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                    int64_t H, int64_t KV, int64_t D)
{
    ILM__FORWARD(check_shapes(cu_seqlens, n_seqs, T, H, KV));
    const ilm__cpu_vec vo = *ilm__cpu_vec_ops(be);
    const int64_t group = H / KV, HD = H * D, KVD = KV * D, n_max = longest_doc(cu_seqlens, n_seqs);
    const float scale = 1.0f / sqrtf((float)D);
    int failed = 0;
#pragma omp parallel num_threads(ilm__cpu_threads(be)) reduction(+ : failed)
    {
        float *sc = ilm__malloc((size_t)(QB * n_max) * sizeof *sc);
        if (!sc) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t dh = 0; dh < n_seqs * H; dh++) {
            if (!sc) continue;
            const int64_t d = dh / H, h = dh % H, j = h / group, s0 = cu_seqlens[d],
                          n = cu_seqlens[d + 1] - s0;
            const float *kd = k + s0 * KVD + j * D, *vd = v + s0 * KVD + j * D;
            for (int64_t q0 = 0; q0 < n; q0 += QB) {
                const int64_t rows = n - q0 < QB ? n - q0 : QB, keys = q0 + rows;
                const float *qb = q + (s0 + q0) * HD + h * D;
                sgemm(false, true, rows, keys, D, scale, qb, HD, kd, KVD, 0.0f, sc, keys);
                for (int64_t r = 0; r < rows; r++) {
                    float *p = sc + r * keys, mx = -INFINITY;
                    const int64_t seen = q0 + r + 1; /* causal */
                    for (int64_t s = 0; s < seen; s++) mx = fmaxf(mx, p[s]);
                    const double sum = vo.exp_sum(p, p, mx, seen);
                    const float inv = (float)(1.0 / sum);
                    for (int64_t s = 0; s < seen; s++) p[s] *= inv;
                    memset(p + seen, 0, (size_t)(keys - seen) * sizeof *p);
                    lse[(s0 + q0 + r) * H + h] = mx + (float)log(sum);
                }
                sgemm(false, false, rows, D, keys, 1.0f, sc, keys, vd, KVD, 0.0f,
                      out + (s0 + q0) * HD + h * D, HD);
            }
        }
        ilm__free(sc);
    }
    ILM__RETURN_IF(failed, ILM_ERR_NOMEM, "attention: out of memory for %lld scores", (long long)n_max);
    return ILM_OK;
}

/* With P = softmax(S), S = scale q k^T, and delta_i = dout_i . out_i:
 *   dS_is = P_is (dout_i . v_s - delta_i),
 *   dq_i = scale sum_s dS_is k_s,  dk_s = scale sum_i dS_is q_i,
 *   dv_s = sum_i P_is dout_i,
 * where P_is = exp(S_is - lse_i) is recomputed from the saved lse.  One
 * task owns a (document, kv head): it walks the heads of the group and
 * their blocks of QB query rows in order, each step a few gemms (scores,
 * dout v^T, dq, and dk and dv added in with beta = 1), so dk and dv are
 * summed in a fixed order by one thread and nothing is shared. */
ilm_status ilm__cpu_attention_train_bwd(const ilm__backend *be, const float *q, const float *k,
                                        const float *v, const float *out, const float *lse,
                                        const float *dout, float *dq, float *dk, float *dv,
                                        const int32_t *cu_seqlens, int64_t n_seqs, int64_t T,
                                        int64_t H, int64_t KV, int64_t D)
{
    ILM__FORWARD(check_shapes(cu_seqlens, n_seqs, T, H, KV));
    const ilm__cpu_vec vo = *ilm__cpu_vec_ops(be);
    const int64_t group = H / KV, HD = H * D, KVD = KV * D, n_max = longest_doc(cu_seqlens, n_seqs);
    const float scale = 1.0f / sqrtf((float)D);
    float *delta = ilm__malloc((size_t)(T * H) * sizeof *delta);
    ILM__RETURN_IF(!delta, ILM_ERR_NOMEM, "attention backward: out of memory for %lld rows",
                   (long long)T);
    int failed = 0;
#pragma omp parallel num_threads(ilm__cpu_threads(be)) reduction(+ : failed)
    {
#pragma omp for schedule(static)
        for (int64_t th = 0; th < T * H; th++) delta[th] = vo.dot(dout + th * D, out + th * D, D);
        float *p = ilm__malloc((size_t)(2 * QB * n_max) * sizeof *p), *dp = p + QB * n_max;
        if (!p) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t dj = 0; dj < n_seqs * KV; dj++) {
            if (!p) continue;
            const int64_t d = dj / KV, j = dj % KV, s0 = cu_seqlens[d], n = cu_seqlens[d + 1] - s0;
            const float *kd = k + s0 * KVD + j * D, *vd = v + s0 * KVD + j * D;
            float *dkd = dk + s0 * KVD + j * D, *dvd = dv + s0 * KVD + j * D;
            for (int64_t s = 0; s < n; s++) {
                memset(dkd + s * KVD, 0, (size_t)D * sizeof *dkd);
                memset(dvd + s * KVD, 0, (size_t)D * sizeof *dvd);
            }
            for (int64_t h = j * group; h < (j + 1) * group; h++)
                for (int64_t q0 = 0; q0 < n; q0 += QB) {
                    const int64_t rows = n - q0 < QB ? n - q0 : QB, keys = q0 + rows;
                    const int64_t row0 = (s0 + q0) * HD + h * D;
                    sgemm(false, true, rows, keys, D, scale, q + row0, HD, kd, KVD, 0.0f, p, keys);
                    sgemm(false, true, rows, keys, D, 1.0f, dout + row0, HD, vd, KVD, 0.0f, dp, keys);
                    for (int64_t r = 0; r < rows; r++) {
                        const int64_t th = (s0 + q0 + r) * H + h, seen = q0 + r + 1;
                        const float l = lse[th], dl = delta[th];
                        float *pr = p + r * keys, *dr = dp + r * keys;
                        vo.exp_sum(pr, pr, l, seen);
                        for (int64_t s = 0; s < seen; s++) dr[s] = pr[s] * (dr[s] - dl);
                        memset(pr + seen, 0, (size_t)(keys - seen) * sizeof *pr);
                        memset(dr + seen, 0, (size_t)(keys - seen) * sizeof *dr);
                    }
                    sgemm(false, false, rows, D, keys, scale, dp, keys, kd, KVD, 0.0f, dq + row0, HD);
                    sgemm(true, false, keys, D, rows, scale, dp, keys, q + row0, HD, 1.0f, dkd, KVD);
                    sgemm(true, false, keys, D, rows, 1.0f, p, keys, dout + row0, HD, 1.0f, dvd, KVD);
                }
        }
        ilm__free(p);
    }
    ilm__free(delta);
    ILM__RETURN_IF(failed, ILM_ERR_NOMEM, "attention backward: out of memory for %lld scores",
                   (long long)n_max);
    return ILM_OK;
}

/* silu(g) = g s with s = sigmoid(g); d silu / dg = s (1 + g (1 - s)). */
ilm_status ilm__cpu_swiglu_bwd(const ilm__backend *be, const float *dout, const float *gate,
                               const float *up, float *dgate, float *dup, int64_t n)
{
    const ilm__cpu_vec *vo = ilm__cpu_vec_ops(be);
    /* Fixed blocks: the vector and tail loops see the same pieces for any
     * thread count. */
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (n > 32768) schedule(static)
    for (int64_t i = 0; i < n; i += 16384)
        vo->swiglu_bwd(dout + i, gate + i, up + i, dgate + i, dup + i, n - i < 16384 ? n - i : 16384);
    return ILM_OK;
}

ilm_status ilm__cpu_cross_entropy(const ilm__backend *be, const float *logits,
                                  const int32_t *labels, int64_t N, int64_t V, float dscale,
                                  float *dlogits, double *loss_sum, int64_t *n_targets)
{
    for (int64_t i = 0; i < N; i++)
        ILM__RETURN_IF(labels[i] != -100 && (labels[i] < 0 || labels[i] >= V), ILM_ERR_RANGE,
                       "cross-entropy: label %d at %lld is outside the vocabulary of %lld",
                       labels[i], (long long)i, (long long)V);
    const ilm__cpu_vec *vo = ilm__cpu_vec_ops(be);
    double *row = ilm__malloc((size_t)(N > 0 ? N : 1) * sizeof *row);
    ILM__RETURN_IF(!row, ILM_ERR_NOMEM, "cross-entropy: out of memory for %lld rows", (long long)N);
#pragma omp parallel for num_threads(ilm__cpu_threads(be)) if (N * V > 65536) schedule(static)
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
        float *d = dlogits ? dlogits + i * V : NULL;
        const double sum = vo->exp_sum(d, l, mx, V);
        if (d) {
            const float k = (float)(dscale / sum);
            for (int64_t c = 0; c < V; c++) d[c] *= k;
            d[y] -= dscale;
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
