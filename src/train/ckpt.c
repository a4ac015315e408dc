/* Training checkpoints: a directory per step, written crash-safely (ckpt.h). */
#include "train/ckpt.h"
#include "formats/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_CAP 4096

/* dir/name into out[PATH_CAP].  The root's length is checked on entry and
 * the names below it are short, so nothing is cut in practice; an over-long
 * path would be cut (and then not found), never overflow. */
static void join(char *out, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a > PATH_CAP - 2) a = PATH_CAP - 2;
    if (b > PATH_CAP - 2 - a) b = PATH_CAP - 2 - a;
    memmove(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b);
    out[a + 1 + b] = '\0';
}

/* ---- directory names ---------------------------------------------------------- */

/* The step of a directory entry named "step-<digits>" (with `tmp` set,
 * "step-<digits>.tmp"), or -1. */
static int64_t step_of(const char *name, bool tmp)
{
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *d = name + 5;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || nd > 18) return -1;
    if (tmp ? strcmp(d + nd, ".tmp") != 0 : d[nd] != '\0') return -1;
    return strtoll(d, NULL, 10);
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool is_complete(const char *dir)
{
    char p[PATH_CAP];
    struct stat sb;
    join(p, dir, "COMPLETE");
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* Deletes a checkpoint directory: COMPLETE first (made durable), so that a
 * crash in the middle leaves an incomplete directory, which is ignored. */
static ilm_status remove_ckpt(const char *root, const char *dir)
{
    char p[PATH_CAP];
    join(p, dir, "COMPLETE");
    if (unlink(p) == 0) ILM__FORWARD(ilm__fsync_dir(dir));
    ILM__RETURN_IF(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT, ILM_ERR_IO,
                   "checkpoint: cannot delete '%s': %s", dir, strerror(errno));
    return ilm__fsync_dir(root);
}

/* The steps of the complete checkpoints under root, and (with `stale`)
 * deletion of every *.tmp and incomplete step directory. */
typedef struct scan {
    int64_t *steps;
    size_t   n, cap;
} scan;

static ilm_status scan_root(const char *root, bool stale, scan *out)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(root);
    if (!d && errno == ENOENT) return ILM_OK;
    ILM__RETURN_IF(!d, ILM_ERR_IO, "checkpoint: cannot read directory '%s': %s", root, strerror(errno));
    ilm_status st = ILM_OK;
    struct dirent *e;
    char p[PATH_CAP];
    while (st == ILM_OK && (e = readdir(d)) != NULL) {
        int64_t s = step_of(e->d_name, false), t = step_of(e->d_name, true);
        if (s < 0 && t < 0) continue;
        join(p, root, e->d_name);
        if (!is_dir(p)) continue;
        if (s >= 0 && is_complete(p)) {
            if (out->n == out->cap) {
                size_t cap = out->cap ? 2 * out->cap : 16;
                int64_t *ns = ilm__realloc(out->steps, cap * sizeof *ns);
                if (!ns) {
                    st = ilm__error(ILM_ERR_NOMEM, "checkpoint: out of memory");
                    break;
                }
                out->steps = ns;
                out->cap = cap;
            }
            out->steps[out->n++] = s;
        } else if (stale) {
            st = remove_ckpt(root, p);
        }
    }
    closedir(d);
    if (st != ILM_OK) ilm__free(out->steps);
    return st;
}

static void ckpt_dir(char *buf, size_t cap, const char *root, int64_t step, const char *suffix)
{
    snprintf(buf, cap, "%s/step-%08lld%s", root, (long long)step, suffix);
}

/* ---- writing ---------------------------------------------------------------- */

static ilm_status write_optim(const char *path, const ilm__params *ps, size_t begin, size_t end,
                              const float *m, const float *v)
{
    ilm__st_out *t = ilm__calloc(2 * ps->n + 1, sizeof *t);
    char *names = ilm__calloc(2 * ps->n + 1, ILM__PARAM_NAME + 16);
    int64_t *shapes = ilm__calloc(2 * (2 * ps->n + 1), sizeof *shapes); /* 2 a tensor */
    ilm_status st = !t || !names || !shapes ? ilm__error(ILM_ERR_NOMEM, "checkpoint: out of memory")
                                            : ILM_OK;
    size_t n = 0;
    for (int which = 0; st == ILM_OK && which < 2; which++)
        for (size_t i = 0; st == ILM_OK && i < ps->n; i++) {
            const ilm__param *p = &ps->p[i];
            if (p->offset + p->numel <= begin || p->offset >= end) continue;
            if (p->offset < begin || p->offset + p->numel > end) {
                st = ilm__error(ILM_ERR_UNSUPPORTED,
                                "checkpoint: range [%zu, %zu) cuts tensor '%s' [%zu, %zu); "
                                "optimizer shards of part of a tensor are not supported yet",
                                begin, end, p->name, p->offset, p->offset + p->numel);
                break;
            }
            char *nm = names + n * (ILM__PARAM_NAME + 16);
            snprintf(nm, ILM__PARAM_NAME + 16, "%s.%s", p->name, which ? "exp_avg_sq" : "exp_avg");
            if (p->ndim == 2) shapes[n * 2] = p->shape[0];
            shapes[n * 2 + (p->ndim == 2)] = p->shape[1];
            t[n] = (ilm__st_out){ nm, ILM__DTYPE_F32, p->ndim, shapes + n * 2,
                                  (which ? v : m) + (p->offset - begin) };
            n++;
        }
    char b[32], e[32], tot[32];
    snprintf(b, sizeof b, "%zu", begin);
    snprintf(e, sizeof e, "%zu", end);
    snprintf(tot, sizeof tot, "%zu", ps->total);
    const char *const meta[] = { "format", "ilm-adamw", "slab_begin", b, "slab_end", e,
                                 "slab_total", tot, NULL };
    if (st == ILM_OK) st = ilm__st_write(path, t, n, meta);
    ilm__free(t);
    ilm__free(names);
    ilm__free(shapes);
    return st;
}

static int cmp_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Deletes complete checkpoints beyond the `keep` newest, sparing `just`. */
static ilm_status prune(const char *root, int keep, int64_t just)
{
    scan sc;
    ILM__FORWARD(scan_root(root, false, &sc));
    qsort(sc.steps, sc.n, sizeof *sc.steps, cmp_desc);
    ilm_status st = ILM_OK;
    char p[PATH_CAP];
    for (size_t i = (size_t)keep; st == ILM_OK && i < sc.n; i++) {
        if (sc.steps[i] == just) continue;
        ckpt_dir(p, sizeof p, root, sc.steps[i], "");
        st = remove_ckpt(root, p);
    }
    ilm__free(sc.steps);
    return st;
}

/* Copies the file `src` into directory `dir` under its own base name. */
static ilm_status copy_in(const char *dir, const char *src)
{
    ilm__mmap mm;
    ILM__FORWARD(ilm__mmap_open(src, &mm));
    const char *base = strrchr(src, '/') ? strrchr(src, '/') + 1 : src;
    char p[PATH_CAP];
    join(p, dir, base);
    ilm_status st = ilm__atomic_write_buf(p, mm.data, mm.size);
    ilm__mmap_close(&mm);
    return st;
}

ilm_status ilm__ckpt_save_model(const char *dir, const void *model)
{
    return ilm_model_save((const ilm_model *)model, dir);
}

static ilm_status write_into(const char *tmp, ilm__ckpt_save_fn save, const void *ctx,
                             const ilm__params *ps,
                             size_t begin, size_t end, const float *m, const float *v,
                             const char *state, const char *const *files)
{
    char p[PATH_CAP];
    ILM__RETURN_IF(mkdir(tmp, 0777) != 0, ILM_ERR_IO, "checkpoint: cannot create '%s': %s", tmp,
                   strerror(errno));
    ILM__FORWARD(save(tmp, ctx));
    join(p, tmp, "optimizer.safetensors");
    ILM__FORWARD(write_optim(p, ps, begin, end, m, v));
    join(p, tmp, "trainer_state.json");
    ILM__FORWARD(ilm__atomic_write_buf(p, state, strlen(state)));
    for (size_t i = 0; files && files[i]; i++) ILM__FORWARD(copy_in(tmp, files[i]));
    return ilm__fsync_dir(tmp);
}

ilm_status ilm__ckpt_write(const char *root, int64_t step, int keep, ilm__ckpt_save_fn save,
                           const void *ctx,
                           const ilm__params *ps, size_t begin, size_t end, const float *m,
                           const float *v, const char *trainer_state_json,
                           const char *const *files)
{
    ILM__RETURN_IF(!root || !save || !ps || !trainer_state_json || (begin < end && (!m || !v)),
                   ILM_ERR_INVALID_ARG, "checkpoint: NULL argument");
    ILM__RETURN_IF(step < 0 || keep < 1, ILM_ERR_INVALID_ARG,
                   "checkpoint: step %lld, keep %d (need step >= 0, keep >= 1)", (long long)step, keep);
    ILM__RETURN_IF(begin > end || end > ps->total, ILM_ERR_INVALID_ARG,
                   "checkpoint: range [%zu, %zu) is not inside the slab of %zu elements", begin, end,
                  ps->total);
    ILM__RETURN_IF(strlen(root) > PATH_CAP - 64, ILM_ERR_INVALID_ARG, "checkpoint: root path too long");
    cJSON *j = NULL;
    ilm_status st = ilm__json_parse(trainer_state_json, "trainer_state", &j);
    cJSON_Delete(j);
    ILM__RETURN_IF(st != ILM_OK || !*trainer_state_json, ILM_ERR_INVALID_ARG,
                   "checkpoint: the trainer state is not JSON");
    ILM__RETURN_IF(mkdir(root, 0777) != 0 && errno != EEXIST, ILM_ERR_IO,
                   "checkpoint: cannot create '%s': %s", root, strerror(errno));

    scan sc;
    ILM__FORWARD(scan_root(root, true, &sc)); /* removes what a crash left */
    ilm__free(sc.steps);
    char tmp[PATH_CAP], fin[PATH_CAP], p[PATH_CAP];
    ckpt_dir(tmp, sizeof tmp, root, step, ".tmp");
    ckpt_dir(fin, sizeof fin, root, step, "");
    st = write_into(tmp, save, ctx, ps, begin, end, m, v, trainer_state_json, files);
    if (st == ILM_OK && is_dir(fin)) st = remove_ckpt(root, fin);
    if (st == ILM_OK && rename(tmp, fin) != 0)
        st = ilm__error(ILM_ERR_IO, "checkpoint: cannot rename '%s' to '%s': %s", tmp, fin,
                        strerror(errno));
    if (st != ILM_OK) {
        ilm_status keep_st = st;
        char *msg = ilm__strdup(ilm_last_error());
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS); /* best effort */
        if (msg) ilm__error(keep_st, "%s", msg);
        ilm__free(msg);
        return keep_st;
    }
    ILM__FORWARD(ilm__fsync_dir(root));
    /* The marker last: until it is durable, the directory is not a
     * checkpoint (ilm__atomic_write fsyncs the file and the directory). */
    char marker[64];
    int len = snprintf(marker, sizeof marker, "{\"step\": %lld}\n", (long long)step);
    join(p, fin, "COMPLETE");
    ILM__FORWARD(ilm__atomic_write_buf(p, marker, (size_t)len));
    return prune(root, keep, step);
}

/* ---- reading ---------------------------------------------------------------- */

ilm_status ilm__ckpt_latest(const char *root, char **path, int64_t *step)
{
    ILM__RETURN_IF(!root || !path || !step, ILM_ERR_INVALID_ARG, "checkpoint: NULL argument");
    *path = NULL;
    *step = -1;
    scan sc;
    ILM__FORWARD(scan_root(root, false, &sc));
    int64_t best = -1;
    for (size_t i = 0; i < sc.n; i++)
        if (sc.steps[i] > best) best = sc.steps[i];
    ilm__free(sc.steps);
    if (best < 0) return ILM_OK;
    char p[PATH_CAP];
    ckpt_dir(p, sizeof p, root, best, "");
    *path = ilm__strdup(p);
    ILM__RETURN_IF(!*path, ILM_ERR_NOMEM, "checkpoint: out of memory");
    *step = best;
    return ILM_OK;
}

static ilm_status read_moment(const ilm__safetensors *st, const char *file, const ilm__param *p,
                              const char *which, size_t begin, size_t end, float *out)
{
    char name[ILM__PARAM_NAME + 16];
    snprintf(name, sizeof name, "%s.%s", p->name, which);
    const ilm__st_tensor *t = ilm__st_find(st, name);
    ILM__RETURN_IF(!t, ILM_ERR_FORMAT, "checkpoint: '%s' has no tensor '%s'", file, name);
    ILM__RETURN_IF(t->type != ILM__DTYPE_F32, ILM_ERR_FORMAT,
                   "checkpoint: '%s': tensor '%s' is %s, not F32", file, name, t->dtype);
    bool shape_ok = t->n_dims == p->ndim &&
                    (p->ndim == 2 ? t->shape[0] == p->shape[0] && t->shape[1] == p->shape[1]
                                  : t->shape[0] == p->shape[1]);
    ILM__RETURN_IF(!shape_ok, ILM_ERR_FORMAT,
                   "checkpoint: '%s': tensor '%s' has shape [%lld, %lld] (%d dims), the model needs "
                   "[%lld, %lld]", file, name, (long long)t->shape[0], (long long)t->shape[1],
                   (int)t->n_dims, (long long)p->shape[0], (long long)p->shape[1]);
    size_t a = p->offset > begin ? p->offset : begin;
    size_t b = p->offset + p->numel < end ? p->offset + p->numel : end;
    memcpy(out + (a - begin), t->data + (a - p->offset) * sizeof(float), (b - a) * sizeof(float));
    return ILM_OK;
}

ilm_status ilm__ckpt_read_optim(const char *dir, const ilm__params *ps, size_t begin, size_t end,
                                float *m, float *v)
{
    ILM__RETURN_IF(!dir || !ps || (begin < end && (!m || !v)), ILM_ERR_INVALID_ARG,
                   "checkpoint: NULL argument");
    ILM__RETURN_IF(begin > end || end > ps->total, ILM_ERR_INVALID_ARG,
                   "checkpoint: range [%zu, %zu) is not inside the slab of %zu elements", begin, end,
                  ps->total);
    char file[PATH_CAP];
    join(file, dir, "optimizer.safetensors");
    ilm__safetensors *st = NULL;
    ILM__FORWARD(ilm__st_open(file, &st));
    ilm_status s = ILM_OK;
    for (size_t i = 0; s == ILM_OK && i < ps->n; i++) {
        const ilm__param *p = &ps->p[i];
        if (p->offset + p->numel <= begin || p->offset >= end) continue;
        s = read_moment(st, file, p, "exp_avg", begin, end, m);
        if (s == ILM_OK) s = read_moment(st, file, p, "exp_avg_sq", begin, end, v);
    }
    ilm__st_close(st);
    return s;
}

ilm_status ilm__ckpt_read_state(const char *dir, char **json)
{
    ILM__RETURN_IF(!dir || !json, ILM_ERR_INVALID_ARG, "checkpoint: NULL argument");
    *json = NULL;
    char file[PATH_CAP];
    join(file, dir, "trainer_state.json");
    ilm__mmap mm;
    ILM__FORWARD(ilm__mmap_open(file, &mm));
    cJSON *j = NULL;
    ilm_status st = ilm__json_parse_object((const char *)mm.data, mm.size, file, &j);
    cJSON_Delete(j);
    char *text = st == ILM_OK ? ilm__strndup((const char *)mm.data, mm.size) : NULL;
    ilm__mmap_close(&mm);
    ILM__FORWARD(st);
    ILM__RETURN_IF(!text, ILM_ERR_NOMEM, "checkpoint: out of memory");
    *json = text;
    return ILM_OK;
}
