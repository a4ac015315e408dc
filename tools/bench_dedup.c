/*
 * tools/bench_dedup.c -- a development benchmark of MinHash dedup (internal
 * API, static link), driven by tools/bench_dedup.py.
 *
 *   build/bench_dedup FILE [num_perm] [threads] [reps]
 *
 * FILE holds documents separated by lines that are exactly "%" (the fortune
 * format).  It times signing every document (ilm__dedup_sign_batch, the
 * work datasketch does) and the whole stream check (signatures plus exact
 * hash, LSH index and candidate checks, in order), best of `reps`, and prints
 * one JSON object.
 */
#include "corpus/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p) p[n] = 0;
    *len = (size_t)n;
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE [num_perm] [threads] [reps]\n", argv[0]);
        return 2;
    }
    size_t len = 0;
    char *data = slurp(argv[1], &len);
    if (!data) {
        fprintf(stderr, "bench_dedup: cannot read %s\n", argv[1]);
        return 1;
    }
    int num_perm = argc > 2 ? atoi(argv[2]) : 128;
    int threads = argc > 3 ? atoi(argv[3]) : 1;
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    ilm_set_num_threads(threads);

    /* Split on "\n%\n" into documents (pointers into data). */
    size_t cap = 1024, n = 0;
    const char **texts = malloc(cap * sizeof *texts);
    size_t *lens = malloc(cap * sizeof *lens);
    for (size_t s = 0, i = 0; i <= len; i++) {
        bool end = i == len || (data[i] == '\n' && i + 2 < len + 1 && data[i + 1] == '%' &&
                                (i + 2 == len || data[i + 2] == '\n'));
        if (!end) continue;
        if (n == cap) {
            cap *= 2;
            texts = realloc(texts, cap * sizeof *texts);
            lens = realloc(lens, cap * sizeof *lens);
        }
        texts[n] = data + s;
        lens[n++] = i - s;
        s = i + 3;
        i += 2;
    }

    ilm__dedup_opts o;
    ilm__dedup_opts_default(&o);
    o.num_perm = num_perm;
    o.rows = num_perm % 8 == 0 ? 8 : 1;
    o.bands = num_perm / o.rows;
    o.max_memory = 0;
    ilm__dedup *d = NULL;
    if (ilm__dedup_create(&o, &d) != ILM_OK) {
        fprintf(stderr, "bench_dedup: %s\n", ilm_last_error());
        return 1;
    }
    uint64_t *sigs = malloc(n * (size_t)num_perm * sizeof *sigs);
    size_t *nsh = malloc(n * sizeof *nsh);
    double best_sign = 1e30, best_check = 1e30;
    uint64_t shingles = 0, dups = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = ilm__now();
        ilm__dedup_sign_batch(d, texts, lens, n, sigs, nsh);
        double t1 = ilm__now();
        if (t1 - t0 < best_sign) best_sign = t1 - t0;

        ilm__dedup *e = NULL;
        ilm__dedup_create(&o, &e);
        t0 = ilm__now();
        ilm__dedup_sign_batch(e, texts, lens, n, sigs, nsh);
        dups = 0;
        for (size_t i = 0; i < n; i++) {
            int v;
            ilm__dedup_check_signed(e, texts[i], lens[i], sigs + i * (size_t)num_perm,
                                    nsh[i], &v);
            dups += v == ILM__DEDUP_EXACT || v == ILM__DEDUP_NEAR;
        }
        t1 = ilm__now();
        if (t1 - t0 < best_check) best_check = t1 - t0;
        ilm__dedup_free(e);
    }
    for (size_t i = 0; i < n; i++) shingles += nsh[i];
    double mb = (double)len / 1e6;
    printf("{\"bytes\": %zu, \"documents\": %zu, \"shingles\": %llu, \"num_perm\": %d, "
           "\"threads\": %d, \"sign_s\": %.6f, \"sign_mb_s\": %.3f, \"dedup_s\": %.6f, "
           "\"dedup_mb_s\": %.3f, \"duplicates\": %llu}\n",
           len, n, (unsigned long long)shingles, num_perm, threads, best_sign,
           mb / best_sign, best_check, mb / best_check, (unsigned long long)dups);
    ilm__dedup_free(d);
    free(sigs);
    free(nsh);
    free(texts);
    free(lens);
    free(data);
    return 0;
}
