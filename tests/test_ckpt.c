/* src/train/ckpt.c: checkpoint directories written, found and read back;
 * keep-last-N; what a crash leaves behind is ignored and cleaned; optimizer
 * files that lie are refused; and a writer killed with SIGKILL at random
 * moments never leaves a "latest" checkpoint that does not load. */
#include "tests.h"
#include "formats/safetensors.h"
#include "model/internal.h"
#include "train/ckpt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CONFIG "tests/fixtures/model/gqa_untied_internlm2/config.json"

static void assert_error_mentions(const char *what)
{
    ck_assert_msg(strstr(ilm_last_error(), what) != NULL, "message '%s' does not mention '%s'",
                  ilm_last_error(), what);
}

static bool exists(const char *dir, const char *name)
{
    char p[8192];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* A small model, its layout and moment slabs whose values encode `step`
 * (gaps hold a sentinel the reader must not overwrite). */
typedef struct fixture {
    ilm_model  *model;
    ilm__params ps;
    float      *m, *v;
} fixture;

static void fixture_init(fixture *f)
{
    char *cfg = test_slurp(CONFIG, NULL);
    ck_assert_msg(ilm_model_create(cfg, 7, &f->model) == ILM_OK, "%s", ilm_last_error());
    free(cfg);
    ck_assert_int_eq(ilm__params_layout(&f->model->arch, &f->ps), ILM_OK);
    f->m = malloc(f->ps.total * sizeof(float));
    f->v = malloc(f->ps.total * sizeof(float));
}

static void fixture_fill(fixture *f, int64_t step)
{
    for (size_t i = 0; i < f->ps.total; i++) {
        f->m[i] = (float)step + (float)(i % 1000) * 1e-3f;
        f->v[i] = (float)step * 0.5f + (float)(i % 777);
    }
    /* The weights carry the step too. */
    ((float *)f->model->tok_embd.data)[0] = (float)step;
}

static void fixture_free(fixture *f)
{
    ilm_model_free(f->model);
    ilm__params_free(&f->ps);
    free(f->m);
    free(f->v);
}

static char *state_for(int64_t step)
{
    static char s[128];
    snprintf(s, sizeof s, "{\"step\": %lld, \"rng\": [1, 2], \"data\": {\"shard\": 3}}", (long long)step);
    return s;
}

/* Checks that `dir` holds checkpoint `step` exactly as fixture_fill wrote
 * it: state, every moment of every tensor, and the weights through
 * ilm_model_load. */
static void verify_ckpt(const fixture *f, const char *dir, int64_t step)
{
    char *state = NULL;
    ck_assert_msg(ilm__ckpt_read_state(dir, &state) == ILM_OK, "%s", ilm_last_error());
    ck_assert_str_eq(state, state_for(step));
    ilm_free(state);
    const size_t T = f->ps.total;
    float *m = malloc(T * 4), *v = malloc(T * 4);
    for (size_t i = 0; i < T; i++) m[i] = v[i] = -7.0f;
    ck_assert_msg(ilm__ckpt_read_optim(dir, &f->ps, 0, T, m, v) == ILM_OK, "%s", ilm_last_error());
    for (size_t t = 0; t < f->ps.n; t++) {
        const ilm__param *p = &f->ps.p[t];
        for (size_t i = p->offset; i < p->offset + p->numel; i++) {
            ck_assert_msg(m[i] == (float)step + (float)(i % 1000) * 1e-3f, "%s exp_avg[%zu]", p->name,
                          i - p->offset);
            ck_assert_msg(v[i] == (float)step * 0.5f + (float)(i % 777), "%s exp_avg_sq", p->name);
        }
        for (size_t i = p->offset + p->numel; i < (t + 1 < f->ps.n ? f->ps.p[t + 1].offset : T); i++)
            ck_assert(m[i] == -7.0f && v[i] == -7.0f); /* gaps untouched */
    }
    free(m);
    free(v);
    ilm_model *b = NULL;
    ck_assert_msg(ilm_model_load(dir, NULL, &b) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(b->tok_embd.type, ILM__DTYPE_F32);
    ck_assert(((const float *)b->tok_embd.data)[0] == (float)step);
    ilm_model_free(b);
}

START_TEST(round_trip)
{
    fixture f;
    fixture_init(&f);
    fixture_fill(&f, 123);
    char *root = test_tmpdir(), path[1024];
    snprintf(path, sizeof path, "%s/run", root); /* created by the write */
    char *latest = NULL;
    int64_t step = 0;
    ck_assert_int_eq(ilm__ckpt_latest(path, &latest, &step), ILM_OK); /* nothing yet */
    ck_assert_ptr_null(latest);
    ck_assert_int_eq(step, -1);
    ck_assert_msg(ilm__ckpt_write(path, 123, 3, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                  state_for(123), NULL) == ILM_OK, "%s", ilm_last_error());
    ck_assert_int_eq(ilm__ckpt_latest(path, &latest, &step), ILM_OK);
    ck_assert_int_eq(step, 123);
    char want[8192];
    snprintf(want, sizeof want, "%s/step-00000123", path);
    ck_assert_str_eq(latest, want);
    ck_assert(exists(latest, "COMPLETE") && exists(latest, "config.json") &&
              exists(latest, "model.safetensors") && !exists(path, "step-00000123.tmp"));
    verify_ckpt(&f, latest, 123);

    /* The weights are the very bytes ilm_model_save writes, and a model
     * loaded from the checkpoint saves to them again. */
    char *d2 = test_tmpdir(), *d3 = test_tmpdir(), p1[8192], p2[8192], p3[8192];
    ck_assert_int_eq(ilm_model_save(f.model, d2), ILM_OK);
    ilm_model *b = NULL;
    ck_assert_int_eq(ilm_model_load(latest, NULL, &b), ILM_OK);
    ck_assert_int_eq(ilm_model_save(b, d3), ILM_OK);
    ilm_model_free(b);
    snprintf(p1, sizeof p1, "%s/model.safetensors", latest);
    snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
    snprintf(p3, sizeof p3, "%s/model.safetensors", d3);
    size_t n1, n2, n3;
    char *b1 = test_slurp(p1, &n1), *b2 = test_slurp(p2, &n2), *b3 = test_slurp(p3, &n3);
    ck_assert(n1 == n2 && n1 == n3 && memcmp(b1, b2, n1) == 0 && memcmp(b1, b3, n1) == 0);
    free(b1), free(b2), free(b3);

    /* The optimizer file: F32 tensors in the parameters' shapes, the range
     * in the metadata. */
    ilm__safetensors *st = NULL;
    snprintf(p1, sizeof p1, "%s/optimizer.safetensors", latest);
    ck_assert_int_eq(ilm__st_open(p1, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 2 * f.ps.n);
    const ilm__st_tensor *t = ilm__st_find(st, "model.norm.weight.exp_avg_sq");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->n_dims, 1);
    ck_assert_int_eq(t->shape[0], f.model->arch.hidden_size);
    t = ilm__st_find(st, "output.weight.exp_avg");
    ck_assert(t && t->n_dims == 2 && t->shape[0] == f.model->arch.vocab_size);
    ck_assert_str_eq(ilm__st_metadata(st, "slab_begin"), "0");
    snprintf(p2, sizeof p2, "%zu", f.ps.total);
    ck_assert_str_eq(ilm__st_metadata(st, "slab_end"), p2);
    ilm__st_close(st);

    /* A part of the slab: a range that cuts tensors reads their parts. */
    const size_t a = f.ps.p[1].offset + 5, e = f.ps.p[3].offset + 9;
    float *m = calloc(e - a, 4), *v = calloc(e - a, 4);
    ck_assert_int_eq(ilm__ckpt_read_optim(latest, &f.ps, a, e, m, v), ILM_OK);
    ck_assert(m[0] == f.m[a] && v[e - a - 1] == f.v[e - 1]);
    ck_assert(memcmp(m, f.m + a, (f.ps.p[1].numel - 5) * 4) == 0);
    free(m), free(v);
    /* Writing such a range is refused until sharded files exist. */
    ck_assert_int_eq(ilm__ckpt_write(path, 124, 3, ilm__ckpt_save_model, f.model, &f.ps, a, e, f.m + a, f.v + a, "{}", NULL),
                     ILM_ERR_UNSUPPORTED);
    /* A range of whole tensors is fine and holds just them. */
    const size_t wa = f.ps.p[1].offset, we = f.ps.p[3].offset;
    ck_assert_int_eq(ilm__ckpt_write(path, 125, 3, ilm__ckpt_save_model, f.model, &f.ps, wa, we, f.m + wa, f.v + wa, "{}", NULL),
                     ILM_OK);
    snprintf(p1, sizeof p1, "%s/step-00000125/optimizer.safetensors", path);
    ck_assert_int_eq(ilm__st_open(p1, &st), ILM_OK);
    ck_assert_uint_eq(ilm__st_count(st), 4);
    ilm__st_close(st);
    snprintf(p1, sizeof p1, "%s/step-00000125", path);
    float *full = calloc(f.ps.total, 4), *full2 = calloc(f.ps.total, 4);
    ck_assert_int_eq(ilm__ckpt_read_optim(p1, &f.ps, 0, f.ps.total, full, full2), ILM_ERR_FORMAT);
    assert_error_mentions(f.ps.p[0].name);
    free(full), free(full2);
    ilm_free(latest);
    ck_assert_int_eq(ilm__ckpt_latest(path, &latest, &step), ILM_OK);
    ck_assert_int_eq(step, 125);

    /* Bad arguments. */
    ck_assert_int_eq(ilm__ckpt_write(path, 5, 3, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, "{not json", NULL),
                     ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__ckpt_write(path, 5, 0, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, "{}", NULL),
                     ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__ckpt_write(path, -1, 1, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, "{}", NULL),
                     ILM_ERR_INVALID_ARG);
    ck_assert_int_eq(ilm__ckpt_write(path, 5, 1, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total + 1, f.m, f.v, "{}", NULL),
                     ILM_ERR_INVALID_ARG);
    ck_assert(!exists(path, "step-00000005") && !exists(path, "step-00000005.tmp"));
    ilm_free(latest);
    test_rmtree(root);
    test_rmtree(d2);
    test_rmtree(d3);
    free(root), free(d2), free(d3);
    fixture_free(&f);
}
END_TEST

static int count_step_dirs(const char *root)
{
    char *out = NULL, cmd[512];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '^step-'", root);
    test_run(cmd, &out);
    int n = atoi(out);
    free(out);
    return n;
}

START_TEST(keep_last_n_and_crash_leftovers)
{
    fixture f;
    fixture_init(&f);
    char *root = test_tmpdir(), *latest = NULL;
    int64_t step;
    for (int64_t s = 10; s <= 50; s += 10) {
        fixture_fill(&f, s);
        ck_assert_msg(ilm__ckpt_write(root, s, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                      state_for(s), NULL) == ILM_OK, "%s", ilm_last_error());
    }
    ck_assert_int_eq(count_step_dirs(root), 2);
    ck_assert(exists(root, "step-00000040") && exists(root, "step-00000050"));
    /* An older step written now (a rewind) is kept, beside the two newest. */
    fixture_fill(&f, 20);
    ck_assert_int_eq(ilm__ckpt_write(root, 20, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                     state_for(20), NULL), ILM_OK);
    ck_assert_int_eq(count_step_dirs(root), 3);
    ck_assert(exists(root, "step-00000020/COMPLETE"));
    ck_assert_int_eq(ilm__ckpt_latest(root, &latest, &step), ILM_OK);
    ck_assert_int_eq(step, 50);
    verify_ckpt(&f, latest, 50);
    ilm_free(latest);

    /* What a crash leaves: a renamed directory without its marker, a
     * temporary directory (even one holding a marker), and things that
     * are not checkpoint directories at all. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && cp -r step-00000050 step-00000060 && rm step-00000060/COMPLETE && "
             "cp -r step-00000050 step-00000070.tmp && mkdir step-00000080.tmp && "
             "echo x > step-00000090 && mkdir step-9x step-00000100.old && touch step-9x/COMPLETE "
             "step-00000100.old/COMPLETE",
             root);
    ck_assert_int_eq(test_run(cmd, NULL), 0);
    ck_assert_int_eq(ilm__ckpt_latest(root, &latest, &step), ILM_OK);
    ck_assert_int_eq(step, 50);
    ck_assert(strstr(latest, "step-00000050") != NULL);
    ilm_free(latest);
    /* The next write removes the leftovers it owns and leaves the rest. */
    fixture_fill(&f, 55);
    ck_assert_int_eq(ilm__ckpt_write(root, 55, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                     state_for(55), NULL), ILM_OK);
    ck_assert(!exists(root, "step-00000060") && !exists(root, "step-00000070.tmp") &&
              !exists(root, "step-00000080.tmp"));
    ck_assert(exists(root, "step-00000090") && exists(root, "step-9x") && exists(root, "step-00000100.old"));
    ck_assert(exists(root, "step-00000050") && exists(root, "step-00000055") &&
              !exists(root, "step-00000040") && !exists(root, "step-00000020"));
    ck_assert_int_eq(ilm__ckpt_latest(root, &latest, &step), ILM_OK);
    ck_assert_int_eq(step, 55);
    verify_ckpt(&f, latest, 55);
    /* The same step again replaces it. */
    fixture_fill(&f, 56);
    ck_assert_int_eq(ilm__ckpt_write(root, 55, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                     state_for(56), NULL), ILM_OK);
    verify_ckpt(&f, latest, 56);
    ilm_free(latest);
    test_rmtree(root);
    free(root);
    fixture_free(&f);
}
END_TEST

/* Rewrites dir/optimizer.safetensors with the moments of every tensor
 * except that `victim`'s exp_avg is dropped (mode 0), given another shape
 * (1), or stored as F16 (2). */
static void write_lying_optim(const fixture *f, const char *dir, const char *victim, int mode)
{
    size_t n = 0, cap = 2 * f->ps.n;
    ilm__st_out *t = calloc(cap, sizeof *t);
    char (*names)[128] = calloc(cap, sizeof *names);
    int64_t *shapes = calloc(2 * cap, sizeof *shapes);
    uint16_t *half = calloc(f->ps.total, 2);
    for (int which = 0; which < 2; which++)
        for (size_t i = 0; i < f->ps.n; i++) {
            const ilm__param *p = &f->ps.p[i];
            snprintf(names[n], 128, "%s.%s", p->name, which ? "exp_avg_sq" : "exp_avg");
            bool hit = which == 0 && strcmp(p->name, victim) == 0;
            if (hit && mode == 0) continue;
            int nd = p->ndim;
            if (nd == 2) shapes[2 * n] = p->shape[0], shapes[2 * n + 1] = p->shape[1];
            else shapes[2 * n] = p->shape[1];
            if (hit && mode == 1) { /* [rows, cols] -> [cols, rows], or [C] -> [1, C] */
                if (nd == 2) shapes[2 * n] = p->shape[1], shapes[2 * n + 1] = p->shape[0];
                else nd = 2, shapes[2 * n] = 1, shapes[2 * n + 1] = p->shape[1];
            }
            t[n] = (ilm__st_out){ names[n], hit && mode == 2 ? ILM__DTYPE_F16 : ILM__DTYPE_F32, nd,
                                  shapes + 2 * n,
                                  hit && mode == 2 ? (const void *)half
                                                   : (const void *)((which ? f->v : f->m) + p->offset) };
            n++;
        }
    char path[8192];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    ck_assert_msg(ilm__st_write(path, t, n, NULL) == ILM_OK, "%s", ilm_last_error());
    free(t), free(names), free(shapes), free(half);
}

START_TEST(lying_optimizer_files)
{
    fixture f;
    fixture_init(&f);
    fixture_fill(&f, 3);
    char *root = test_tmpdir(), *dir = NULL, path[8192];
    int64_t step;
    ck_assert_int_eq(ilm__ckpt_write(root, 3, 1, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, state_for(3), NULL),
                     ILM_OK);
    ck_assert_int_eq(ilm__ckpt_latest(root, &dir, &step), ILM_OK);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    size_t n = 0;
    char *orig = test_slurp(path, &n);
    float *m = calloc(f.ps.total, 4), *v = calloc(f.ps.total, 4);
    /* Every kind of truncation: inside the length, the header, the data. */
    const size_t cuts[] = { 0, 5, 8, 100, n / 2, n - 1 };
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *fp = fopen(path, "wb");
        ck_assert(fwrite(orig, 1, cuts[i], fp) == cuts[i]);
        fclose(fp);
        ck_assert_msg(ilm__ckpt_read_optim(dir, &f.ps, 0, f.ps.total, m, v) == ILM_ERR_FORMAT,
                      "truncated to %zu bytes: accepted", cuts[i]);
        assert_error_mentions("optimizer.safetensors");
    }
    const char *victims[] = { "model.layers.1.attention.wqkv.weight", "model.norm.weight" };
    for (int mode = 0; mode < 3; mode++)
        for (int k = 0; k < 2; k++) {
            ck_assert_ptr_nonnull(ilm__params_find(&f.ps, victims[k]));
            write_lying_optim(&f, dir, victims[k], mode);
            ck_assert_msg(ilm__ckpt_read_optim(dir, &f.ps, 0, f.ps.total, m, v) == ILM_ERR_FORMAT,
                          "mode %d %s: accepted", mode, victims[k]);
            assert_error_mentions(victims[k]);
        }
    /* The untouched file reads (the lies above were the only problem). */
    write_lying_optim(&f, dir, "none", 0);
    ck_assert_int_eq(ilm__ckpt_read_optim(dir, &f.ps, 0, f.ps.total, m, v), ILM_OK);
    ck_assert(memcmp(m + f.ps.p[2].offset, f.m + f.ps.p[2].offset, f.ps.p[2].numel * 4) == 0);
    /* A missing file, and a trainer state that is not JSON. */
    unlink(path);
    ck_assert_int_eq(ilm__ckpt_read_optim(dir, &f.ps, 0, f.ps.total, m, v), ILM_ERR_IO);
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    FILE *fp = fopen(path, "wb");
    fputs("{\"step\": 3", fp);
    fclose(fp);
    char *state = NULL;
    ck_assert_int_eq(ilm__ckpt_read_state(dir, &state), ILM_ERR_FORMAT);
    ck_assert_ptr_null(state);
    fp = fopen(path, "wb");
    fclose(fp);
    ck_assert_int_eq(ilm__ckpt_read_state(dir, &state), ILM_ERR_FORMAT);
    free(orig), free(m), free(v);
    ilm_free(dir);
    test_rmtree(root);
    free(root);
    fixture_free(&f);
}
END_TEST

/* A checkpoint whose write fails part way (the file-size limit stands in
 * for a full disk) says which file, and leaves the checkpoints before it as
 * they were.  In a child: the limit stays there. */
START_TEST(write_failure_names_the_file)
{
    fixture f;
    fixture_init(&f);
    char *root = test_tmpdir();
    fixture_fill(&f, 1);
    ck_assert_msg(ilm__ckpt_write(root, 1, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, state_for(1), NULL) ==
                      ILM_OK, "%s", ilm_last_error());
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { 2048, 2048 };
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        fixture_fill(&f, 2);
        ilm_status st = ilm__ckpt_write(root, 2, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v, state_for(2), NULL);
        const char *msg = ilm_last_error();
        if (st != ILM_ERR_IO) _exit(11);
        if (!strstr(msg, "cannot write '") || !strstr(msg, root) || !strstr(msg, "step-00000002") ||
            !strstr(msg, ".safetensors")) {
            fprintf(stderr, "message: %s\n", msg);
            _exit(12);
        }
        _exit(0);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    char *dir = NULL;
    int64_t step = -1;
    ck_assert_int_eq(ilm__ckpt_latest(root, &dir, &step), ILM_OK);
    ck_assert_int_eq(step, 1);
    verify_ckpt(&f, dir, 1);
    ck_assert(!exists(root, "step-00000002") && !exists(root, "step-00000002.tmp"));
    ilm_free(dir);
    test_rmtree(root);
    free(root);
    fixture_free(&f);
}
END_TEST

/* A child process writes checkpoints 1, 2, 3, ... as fast as it can; it is
 * SIGKILLed after a random delay.  Whatever latest then returns must load
 * completely and hold the step it claims, and the next run (a new child
 * resuming after it) must be able to write on. */
START_TEST(survives_sigkill)
{
    fixture f;
    fixture_init(&f);
    char *root = test_tmpdir();
    ilm__rng r;
    ilm__rng_init(&r, 2026, 1);
    int64_t last = 0, found = 0, mid_write = 0;
    const int rounds = test_sanitized() ? 6 : 12;
    for (int round = 0; round < rounds; round++) {
        fflush(NULL);
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0) {
            for (int64_t s = last + 1;; s++) {
                fixture_fill(&f, s);
                if (ilm__ckpt_write(root, s, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                    state_for(s), NULL) != ILM_OK)
                    _exit(3);
            }
        }
        /* Up to 20 ms more each round: the first kills may land before any
         * write ends, on a slow (sanitized) build more of them. */
        usleep(ilm__rng_below(&r, 40000 + 20000 * (uint32_t)round));
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        int status = 0;
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                      "the writer stopped by itself (status %d)", status);
        char cmd[512], *out = NULL;
        snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '^step-.*\\.tmp$'", root);
        test_run(cmd, &out);
        mid_write += atoi(out) > 0; /* the kill landed inside a write */
        free(out);
        char *dir = NULL;
        int64_t step = -1;
        ck_assert_msg(ilm__ckpt_latest(root, &dir, &step) == ILM_OK, "%s", ilm_last_error());
        if (!dir) {
            ck_assert_int_eq(last, 0); /* checkpoints never disappear */
            continue;
        }
        ck_assert_int_ge(step, last);
        verify_ckpt(&f, dir, step);
        ilm_free(dir);
        found++;
        last = step;
    }
    ck_assert_msg(found >= 1, "no round left a checkpoint");
    ck_assert_msg(mid_write >= 1, "no kill landed inside a write");
    /* A write after all that succeeds, cleans up, and becomes the latest. */
    fixture_fill(&f, last + 1);
    ck_assert_msg(ilm__ckpt_write(root, last + 1, 2, ilm__ckpt_save_model, f.model, &f.ps, 0, f.ps.total, f.m, f.v,
                                  state_for(last + 1), NULL) == ILM_OK, "%s", ilm_last_error());
    char *dir = NULL;
    int64_t step;
    ck_assert_int_eq(ilm__ckpt_latest(root, &dir, &step), ILM_OK);
    ck_assert_int_eq(step, last + 1);
    verify_ckpt(&f, dir, step);
    ck_assert_int_le(count_step_dirs(root), 2);
    printf("ckpt kill test: %lld of %d kills left a checkpoint, %lld inside a write, last step %lld\n",
           (long long)found, rounds, (long long)mid_write, (long long)last);
    ilm_free(dir);
    test_rmtree(root);
    free(root);
    fixture_free(&f);
}
END_TEST

Suite *suite_ckpt(void)
{
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("ckpt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, keep_last_n_and_crash_leftovers);
    tcase_add_test(tc, lying_optimizer_files);
    tcase_add_test(tc, write_failure_names_the_file);
    tcase_add_test(tc, survives_sigkill);
    suite_add_tcase(s, tc);
    return s;
}
