/*
 * src/eval/evaluator.c -- the ilm_evaluator handle: runs task configs over
 * one session (docs/eval.md).
 *
 * Every mode reduces to one primitive, ilm_session_score(context,
 * continuation), whose cached-prefix reuse makes the candidates of a
 * question cost only their own tokens and lets questions that share their
 * in-context examples share those too.  Samples are kept as JSON (the
 * predictions file), and every metric is computed from that array, so a
 * resumed dataset and a fresh one aggregate the same way.
 */
#include "eval/run.h"
#include "tokenizer/internal.h"

#include <errno.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------- */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = ilm__malloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

/* Creates dir and its parents (like mkdir -p). */
static ilm_status mkdirs(const char *dir)
{
    char *p = ilm__strdup(dir);
    ILM__RETURN_IF(!p, ILM_ERR_NOMEM, "eval: out of memory");
    ilm_status st = ILM_OK;
    for (char *q = p + 1; st == ILM_OK; q++) {
        if (*q != '/' && *q) continue;
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            st = ilm__error(ILM_ERR_IO, "eval: cannot create '%s': %s", p, strerror(errno));
        *q = c;
        if (!c) break;
    }
    ilm__free(p);
    return st;
}

static ilm_status write_json(const char *path, const cJSON *j)
{
    char *text = NULL;
    ILM__FORWARD(ilm__json_print(j, &text));
    ilm_status st = ilm__atomic_write_buf(path, text, strlen(text));
    ilm__free(text);
    return st;
}

/* Reads a JSON object from a file; ILM_ERR_NOT_FOUND when it does not
 * exist (a task name that names no file, a result not written yet). */
static ilm_status read_json(const char *path, cJSON **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return ilm__error(ILM_ERR_NOT_FOUND, "eval: no file '%s'", path);
    return ilm__json_read_file(path, out);
}

/* UTF-8 code points (Python's len of the decoded text; a byte that is not
 * valid UTF-8 counts as one). */
/* ---- create / free ----------------------------------------------------------- */

ilm_status ilm_evaluator_create(const ilm_model *m, const char *config, ilm_evaluator **out)
{
    ILM__RETURN_IF(!out, ILM_ERR_INVALID_ARG, "ilm_evaluator_create: NULL out");
    *out = NULL;
    ILM__RETURN_IF(!m, ILM_ERR_INVALID_ARG, "ilm_evaluator_create: NULL model");
    const ilm_tokenizer *tok = ilm_model_tokenizer(m);
    ILM__RETURN_IF(!tok, ILM_ERR_STATE, "evaluator: the model has no tokenizer");
    cJSON *root = NULL;
    ILM__FORWARD(ilm__json_parse(config, "evaluator config", &root));
    const char *config_dir = "configs/eval", *data_root = ".", *outdir = NULL,
               *model_name = "model";
    int64_t limit = 0, shots = -1, context = 0, threads = 0;
    bool add_bos = tok->add_bos, resume = true, execute = false;
    const ilm__jfield f[] = {
        { "config_dir", ILM__J_STRING, &config_dir, false, 0, 0 },
        { "data_root", ILM__J_STRING, &data_root, false, 0, 0 },
        { "out", ILM__J_STRING, &outdir, false, 0, 0 },
        { "model_name", ILM__J_STRING, &model_name, false, 0, 0 },
        { "limit", ILM__J_INT, &limit, false, 0, 1e15 },
        { "shots", ILM__J_INT, &shots, false, -1, 1000 },
        { "context", ILM__J_INT, &context, false, 0, 1 << 20 },
        { "threads", ILM__J_INT, &threads, false, 0, ILM__MAX_THREADS },
        { "add_bos", ILM__J_BOOL, &add_bos, false, 0, 0 },
        { "resume", ILM__J_BOOL, &resume, false, 0, 0 },
        { "execute", ILM__J_BOOL, &execute, false, 0, 0 },
    };
    ilm_status st = ilm__json_fields(root, "", f, sizeof f / sizeof f[0]);
    if (st == ILM_OK && (!*model_name || strpbrk(model_name, "/\\") || model_name[0] == '.'))
        st = ilm__error(ILM_ERR_CONFIG, "config: 'model_name' '%s' cannot name a directory",
                        model_name);
    ilm_evaluator *e = st == ILM_OK ? ilm__calloc(1, sizeof *e) : NULL;
    if (st == ILM_OK && !e) st = ilm__error(ILM_ERR_NOMEM, "evaluator: out of memory");
    if (st == ILM_OK) {
        e->m = m;
        e->tok = tok;
        e->limit = limit;
        e->shots = shots;
        e->add_bos = add_bos;
        e->resume = resume;
        e->execute = execute;
        e->prefix_id = tok->bos_id >= 0 ? tok->bos_id : tok->eos_id;
        e->config_dir = ilm__strdup(config_dir);
        e->data_root = ilm__strdup(data_root);
        e->out = outdir ? ilm__strdup(outdir) : NULL;
        e->model_name = ilm__strdup(model_name);
        if (!e->config_dir || !e->data_root || (outdir && !e->out) || !e->model_name)
            st = ilm__error(ILM_ERR_NOMEM, "evaluator: out of memory");
    }
    if (st == ILM_OK) {
        char cfg[96];
        if (context > 0)
            snprintf(cfg, sizeof cfg, "{\"context\": %lld, \"threads\": %lld}", (long long)context,
                     (long long)threads);
        else
            snprintf(cfg, sizeof cfg, "{\"threads\": %lld}", (long long)threads);
        st = ilm_session_create(m, cfg, &e->s);
    }
    if (st == ILM_OK && e->prefix_id < 0)
        st = ilm__error(ILM_ERR_STATE, "evaluator: the tokenizer has neither BOS nor EOS");
    cJSON_Delete(root);
    if (st != ILM_OK) {
        ilm_evaluator_free(e);
        return st;
    }
    e->context = (int64_t)ilm_session_context(e->s);
    *out = e;
    return ILM_OK;
}

void ilm_evaluator_free(ilm_evaluator *e)
{
    if (!e) return;
    ilm_session_free(e->s);
    ilm__free(e->config_dir);
    ilm__free(e->data_root);
    ilm__free(e->out);
    ilm__free(e->model_name);
    ilm__free(e);
}

/* ---- one dataset ------------------------------------------------------------- */

static char *subst_subset(const char *path, const char *subset)
{
    const char *at = strstr(path, "{subset}");
    if (!at) return ilm__strdup(path);
    size_t n = strlen(path) - 8 + (subset ? strlen(subset) : 0) + 1;
    char *p = ilm__malloc(n);
    if (p) snprintf(p, n, "%.*s%s%s", (int)(at - path), path, subset ? subset : "", at + 8);
    return p;
}

static ilm_status read_table(const ilm_evaluator *e, const ilm__task *t, const char *pattern,
                             const char *subset, ilm__table *out)
{
    char *rel = subst_subset(pattern, subset);
    char *path = rel ? (rel[0] == '/' ? ilm__strdup(rel) : join3(e->data_root, "/", rel)) : NULL;
    ilm__free(rel);
    ILM__RETURN_IF(!path, ILM_ERR_NOMEM, "eval: out of memory");
    ilm__table_opts o = { 0 };
    o.format = t->format;
    o.document_start = t->document_start;
    o.header = t->header_set ? t->header : !t->columns;
    o.columns = (const char *const *)t->columns;
    o.n_columns = t->n_columns;
    ilm_status st = ilm__table_read(path, &o, out);
    ilm__free(path);
    return st;
}

static void dataset_free(ilm__dataset *d)
{
    ilm__free(d->name);
    ilm__free(d->subset_text);
    ilm__table_free(&d->test);
    if (d->has_shots_table) ilm__table_free(&d->shots_table);
    ilm__free(d->ice);
    ilm__free(d->rows);
}

/* Reads the tables, checks every template against their columns, renders
 * the in-context examples and chooses the test rows. */
static ilm_status dataset_open(ilm__dataset *d)
{
    const ilm__task *t = d->t;
    ilm_evaluator *e = d->e;
    ILM__FORWARD(read_table(e, t, t->path, d->subset, &d->test));
    const ilm__table *shots = &d->test;
    if (t->shots > 0 && t->fewshot_path) {
        ILM__FORWARD(read_table(e, t, t->fewshot_path, d->subset, &d->shots_table));
        d->has_shots_table = true;
        shots = &d->shots_table;
    }
    ILM__FORWARD(ilm__dataset_check(d, t->preamble, "header", &d->test));
    ILM__FORWARD(ilm__dataset_check(d, t->prompt, "prompt", &d->test));
    ILM__FORWARD(ilm__dataset_check(d, t->gold, t->mode == ILM__MODE_PPL ? "ppl.gold" : "gen.gold",
                                    &d->test));
    ILM__FORWARD(ilm__dataset_check(d, t->text, "rolling.text", &d->test));
    ILM__RETURN_IF(t->program && !e->execute, ILM_ERR_CONFIG,
                   "%s: the task runs the generated programs: it needs \"execute\": true in the "
                   "evaluator config (internlm eval --execute)", t->source);
    ILM__FORWARD(ilm__dataset_check(d, t->program, "gen.program", &d->test));
    for (size_t i = 0; i < t->n_choices; i++)
        ILM__FORWARD(ilm__dataset_check(d, t->choices[i], "ppl.choices", &d->test));
    if (t->shots > 0)
        ILM__FORWARD(ilm__dataset_check(d, t->shot_template, "fewshot.template", shots));
    /* The in-context examples: fixed rows, or the first k. */
    ilm__buf ice = { 0 };
    ilm_status st = ilm__buf_append(&ice, "", 0);
    size_t n_shots = (size_t)t->shots;
    for (size_t i = 0; st == ILM_OK && i < n_shots; i++) {
        size_t r = t->shot_ids ? (size_t)t->shot_ids[i] : i;
        if (r >= shots->n_rows) {
            st = ilm__error(ILM_ERR_CONFIG, "%s: few-shot example %zu is past the %zu rows of '%s'",
                            t->source, r, shots->n_rows, shots->path);
            break;
        }
        if (i) st = ilm__buf_append(&ice, t->shot_separator, strlen(t->shot_separator));
        if (st == ILM_OK)
            st = ilm__dataset_render(d, t->shot_template, "fewshot.template", shots, r, &ice);
    }
    if (st != ILM_OK) {
        ilm__buf_free(&ice);
        return st;
    }
    d->ice = ice.p;
    /* Test rows: the range, less the examples when they come from the same
     * table, up to the limit. */
    size_t end = t->range_end < 0 || (size_t)t->range_end > d->test.n_rows ? d->test.n_rows
                                                                           : (size_t)t->range_end;
    size_t begin = (size_t)t->range_begin < end ? (size_t)t->range_begin : end;
    d->rows = ilm__malloc((end - begin + 1) * sizeof *d->rows);
    ILM__RETURN_IF(!d->rows, ILM_ERR_NOMEM, "eval: out of memory");
    for (size_t r = begin; r < end && (!e->limit || d->n_rows < (size_t)e->limit); r++) {
        bool is_shot = false;
        for (size_t i = 0; shots == &d->test && i < n_shots && !is_shot; i++)
            is_shot = (t->shot_ids ? (size_t)t->shot_ids[i] : i) == r;
        if (!is_shot) d->rows[d->n_rows++] = r;
    }
    ILM__RETURN_IF(d->n_rows == 0, ILM_ERR_FORMAT, "eval: '%s' leaves no rows to evaluate",
                   d->test.path);
    return ILM_OK;
}

/* Output paths under "out": <out>/<kind>/<model>/<prefix><dataset>.json. */
static char *out_path(const ilm_evaluator *e, const char *kind, const char *prefix,
                      const char *name)
{
    size_t n =
        strlen(e->out) + strlen(kind) + strlen(e->model_name) + strlen(prefix) + strlen(name) + 16;
    char *p = ilm__malloc(n);
    if (p) snprintf(p, n, "%s/%s/%s/%s%s.json", e->out, kind, e->model_name, prefix, name);
    return p;
}

static ilm_status save_samples(const char *path, const ilm__dataset *d, const cJSON *samples,
                               int64_t limit)
{
    cJSON *j = cJSON_CreateObject();
    bool ok = j && cJSON_AddStringToObject(j, "dataset", d->name) &&
              cJSON_AddStringToObject(j, "version", d->t->version) &&
              cJSON_AddNumberToObject(j, "limit", (double)limit);
    cJSON *copy = ok ? cJSON_Duplicate(samples, true) : NULL;
    ok = copy && cJSON_AddItemToObject(j, "samples", copy);
    if (!ok && copy && j) cJSON_Delete(copy);
    ilm_status st = ok ? write_json(path, j) : ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    cJSON_Delete(j);
    return st;
}

/* Saved samples of an interrupted run of the same version, or NULL. */
static cJSON *saved_samples(const char *path, const ilm__dataset *d, int64_t limit)
{
    cJSON *j = NULL;
    if (read_json(path, &j) != ILM_OK) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "samples");
    cJSON *out = NULL;
    if (cJSON_IsString(v) && strcmp(v->valuestring, d->t->version) == 0 &&
        ilm__eval_num(j, "limit") == (double)limit && cJSON_IsArray(s) &&
        (size_t)cJSON_GetArraySize(s) <= d->n_rows)
        out = cJSON_DetachItemFromObjectCaseSensitive(j, "samples");
    cJSON_Delete(j);
    return out;
}

static ilm_status run_dataset(ilm__dataset *d, ilm_progress_fn progress, void *user, cJSON **result)
{
    ilm_evaluator *e = d->e;
    const ilm__task *t = d->t;
    *result = NULL;
    d->name = d->subset ? join3(t->name, "_", d->subset) : ilm__strdup(t->name);
    d->subset_text = d->subset ? ilm__strdup(d->subset) : NULL;
    ILM__RETURN_IF(!d->name || (d->subset && !d->subset_text), ILM_ERR_NOMEM,
                   "eval: out of memory");
    for (char *p = d->subset_text; p && *p; p++)
        if (*p == '_') *p = ' ';
    char *res_path = NULL, *pred_path = NULL, *tmp_path = NULL;
    if (e->out) {
        res_path = out_path(e, "results", "", d->name);
        pred_path = out_path(e, "predictions", "", d->name);
        tmp_path = out_path(e, "predictions", "tmp_", d->name);
        ILM__RETURN_IF(!res_path || !pred_path || !tmp_path, ILM_ERR_NOMEM, "eval: out of memory");
    }
    ilm_status st = ILM_OK;
    /* A finished dataset of the same version and limit is read back. */
    if (e->out && e->resume) {
        cJSON *old = NULL;
        if (read_json(res_path, &old) == ILM_OK) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(old, "version");
            if (cJSON_IsString(v) && strcmp(v->valuestring, t->version) == 0 &&
                ilm__eval_num(old, "limit") == (double)e->limit) {
                *result = old;
                old = NULL;
            }
            cJSON_Delete(old);
        }
    }
    if (!*result) st = dataset_open(d);
    cJSON *samples = NULL;
    if (st == ILM_OK && !*result) {
        if (e->out) {
            char *dir = join3(e->out, "/predictions/", e->model_name);
            char *dir2 = join3(e->out, "/results/", e->model_name);
            st = dir && dir2 ? mkdirs(dir) : ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
            if (st == ILM_OK) st = mkdirs(dir2);
            ilm__free(dir);
            ilm__free(dir2);
        }
        if (st == ILM_OK && e->out && e->resume) samples = saved_samples(tmp_path, d, e->limit);
        if (!samples) samples = cJSON_CreateArray();
        if (st == ILM_OK && !samples) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    }
    double t0 = ilm__now(), last_save = t0;
    size_t done = samples ? (size_t)cJSON_GetArraySize(samples) : 0, fresh = 0;
    while (st == ILM_OK && !*result && done < d->n_rows) {
        if (progress && progress(user, d->name, done, d->n_rows)) {
            st = ilm__error(ILM_ERR_CANCELLED, "eval: cancelled in '%s' after %zu samples", d->name,
                            done);
            break;
        }
        size_t row = d->rows[done];
        cJSON *sample = cJSON_CreateObject();
        if (!sample || !cJSON_AddNumberToObject(sample, "index", (double)row)) {
            cJSON_Delete(sample);
            st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
            break;
        }
        st = ilm__eval_sample(d, row, sample);
        if (st != ILM_OK) {
            cJSON_Delete(sample);
            break;
        }
        cJSON_AddItemToArray(samples, sample);
        done++, fresh++;
        if (e->out && ilm__now() - last_save > 10 && done < d->n_rows) {
            st = save_samples(tmp_path, d, samples, e->limit);
            last_save = ilm__now();
        }
    }
    double seconds = ilm__now() - t0;
    /* Interrupted: keep what was done for the next run. */
    if (st != ILM_OK && samples && fresh && e->out) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", ilm_last_error());
        if (save_samples(tmp_path, d, samples, e->limit) == ILM_OK) ilm__error(st, "%s", msg);
    }
    if (st == ILM_OK && !*result) {
        if (progress) progress(user, d->name, done, d->n_rows);
        cJSON *r = cJSON_CreateObject(), *metrics = NULL;
        bool ok =
            r && cJSON_AddStringToObject(r, "dataset", d->name) &&
            cJSON_AddStringToObject(r, "task", t->name) &&
            cJSON_AddStringToObject(r, "version", t->version) &&
            cJSON_AddStringToObject(r, "mode", ilm__task_mode_name(t->mode)) &&
            cJSON_AddNumberToObject(r, "samples", (double)done) &&
            cJSON_AddNumberToObject(r, "limit", (double)e->limit) &&
            (metrics = cJSON_AddObjectToObject(r, "metrics")) != NULL &&
            cJSON_AddNumberToObject(r, "seconds", seconds) &&
            cJSON_AddNumberToObject(r, "samples_per_s", fresh && seconds > 0 ? fresh / seconds : 0);
        st = ok ? ilm__eval_aggregate(t, samples, metrics)
                : ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
        if (st == ILM_OK && e->out) st = save_samples(pred_path, d, samples, e->limit);
        if (st == ILM_OK && e->out) st = write_json(res_path, r);
        if (st == ILM_OK && e->out) unlink(tmp_path);
        if (st == ILM_OK)
            *result = r;
        else
            cJSON_Delete(r);
    }
    cJSON_Delete(samples);
    ilm__free(res_path);
    ilm__free(pred_path);
    ilm__free(tmp_path);
    return st;
}

/* ---- tasks, subsets, groups and the summary ---------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "subsets": ["*"]: every file the path pattern matches, by name. */
static ilm_status glob_subsets(const ilm_evaluator *e, ilm__task *t)
{
    const char *at = strstr(t->path, "{subset}");
    char *rel = ilm__malloc(strlen(t->path) + 1);
    ILM__RETURN_IF(!rel, ILM_ERR_NOMEM, "eval: out of memory");
    snprintf(rel, strlen(t->path) + 1, "%.*s*%s", (int)(at - t->path), t->path, at + 8);
    char *pattern = rel[0] == '/' ? ilm__strdup(rel) : join3(e->data_root, "/", rel);
    ilm__free(rel);
    ILM__RETURN_IF(!pattern, ILM_ERR_NOMEM, "eval: out of memory");
    size_t head = strlen(pattern) - strlen(at + 8) - 1; /* bytes before the '*' */
    size_t tail = strlen(at + 8);
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    ilm_status st = ILM_OK;
    if (rc != 0 || g.gl_pathc == 0)
        st = ilm__error(ILM_ERR_CONFIG, "%s: no file matches '%s'", t->source, pattern);
    if (st == ILM_OK) {
        t->subsets = ilm__calloc(g.gl_pathc, sizeof *t->subsets);
        if (!t->subsets) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    }
    for (size_t i = 0; st == ILM_OK && i < g.gl_pathc; i++) {
        const char *p = g.gl_pathv[i];
        size_t n = strlen(p) - head - tail;
        char *s = ilm__malloc(n + 1);
        if (!s) {
            st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
            break;
        }
        memcpy(s, p + head, n);
        s[n] = '\0';
        t->subsets[t->n_subsets++] = s;
    }
    if (rc == 0) globfree(&g);
    ilm__free(pattern);
    if (st == ILM_OK) qsort(t->subsets, t->n_subsets, sizeof *t->subsets, cmp_str);
    return st;
}

static ilm_status load_task(const ilm_evaluator *e, const cJSON *item, size_t i, ilm__task *t)
{
    char source[64];
    if (cJSON_IsObject(item)) {
        /* An inline task without a "name" is called task<i>. */
        char name[32];
        snprintf(source, sizeof source, "tasks[%zu]", i);
        snprintf(name, sizeof name, "task%zu", i);
        cJSON *copy = cJSON_Duplicate(item, true);
        ILM__RETURN_IF(!copy, ILM_ERR_NOMEM, "eval: out of memory");
        return ilm__task_parse(copy, name, source, e->shots, t);
    }
    ILM__RETURN_IF(!cJSON_IsString(item) || !*item->valuestring, ILM_ERR_CONFIG,
                   "eval: tasks[%zu] must be a task name, a task file or a task object", i);
    /* A name is looked up in config_dir; a path to a .json file is read as it is. */
    const char *v = item->valuestring, *slash = strrchr(v, '/');
    size_t len = strlen(v);
    bool is_file = slash || (len > 5 && strcmp(v + len - 5, ".json") == 0);
    char *path = is_file ? ilm__strdup(v) : ilm__malloc(strlen(e->config_dir) + len + 8);
    ILM__RETURN_IF(!path, ILM_ERR_NOMEM, "eval: out of memory");
    if (!is_file) sprintf(path, "%s/%s.json", e->config_dir, v);
    const char *base = slash ? slash + 1 : v;
    size_t n = strlen(base);
    if (n > 5 && strcmp(base + n - 5, ".json") == 0) n -= 5;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)n, base);
    cJSON *j = NULL;
    ilm_status st = read_json(path, &j);
    if (st == ILM_ERR_NOT_FOUND)
        st = ilm__error(ILM_ERR_CONFIG, "eval: no task '%s' (no file '%s')", v, path);
    /* A task file is configuration: one that does not parse keeps the
     * parser's message (it names the file and the byte) but is a config
     * error, like every other config the library reads. */
    if (st == ILM_ERR_FORMAT) st = ILM_ERR_CONFIG;
    if (st == ILM_OK) st = ilm__task_parse(j, name, path, e->shots, t);
    ilm__free(path);
    return st;
}

/* Groups: a task with subsets gets one row per metric with the naive and
 * the sample-weighted average over its datasets. */
static ilm_status add_group(cJSON *groups, const ilm__task *t, const cJSON *datasets, size_t first)
{
    const cJSON *d0 = cJSON_GetArrayItem(datasets, (int)first);
    const cJSON *m0 = cJSON_GetObjectItemCaseSensitive(d0, "metrics");
    for (const cJSON *m = m0 ? m0->child : NULL; m; m = m->next) {
        size_t len = strlen(m->string);
        if (len > 7 && strcmp(m->string + len - 7, "_stderr") == 0) continue;
        double sum = 0, wsum = 0, w = 0;
        size_t k = 0;
        for (const cJSON *d = cJSON_GetArrayItem(datasets, (int)first); d; d = d->next, k++) {
            double v = ilm__eval_num(cJSON_GetObjectItemCaseSensitive(d, "metrics"), m->string),
                   n = ilm__eval_num(d, "samples");
            sum += v;
            wsum += v * n;
            w += n;
        }
        cJSON *g = cJSON_CreateObject();
        cJSON_AddItemToArray(groups, g);
        ILM__RETURN_IF(!g || !cJSON_AddStringToObject(g, "group", t->name) ||
                           !cJSON_AddStringToObject(g, "version", t->version) ||
                           !cJSON_AddStringToObject(g, "mode", ilm__task_mode_name(t->mode)) ||
                           !cJSON_AddStringToObject(g, "metric", m->string) ||
                           !cJSON_AddNumberToObject(g, "naive_average", k ? sum / (double)k : 0) ||
                           !cJSON_AddNumberToObject(g, "weighted_average", w ? wsum / w : 0) ||
                           !cJSON_AddNumberToObject(g, "datasets", (double)k),
                       ILM_ERR_NOMEM, "eval: out of memory");
    }
    return ILM_OK;
}

/* summary/summary.{csv,md,txt}: dataset | version | metric | mode | model,
 * the datasets first, then each group's two averages. */
typedef struct summary {
    ilm__buf csv, md, txt;
} summary;

static ilm_status summary_row(summary *s, const char *dataset, const char *version,
                              const char *metric, const char *mode, const char *value)
{
    ILM__FORWARD(
        ilm__buf_printf(&s->csv, "%s,%s,%s,%s,%s\n", dataset, version, metric, mode, value));
    ILM__FORWARD(ilm__buf_printf(&s->md, "| %s | %s | %s | %s | %s |\n", dataset, version, metric,
                                 mode, value));
    return ilm__buf_printf(&s->txt, "%-44s %-8s %-18s %-8s %s\n", dataset, version, metric, mode,
                           value);
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static ilm_status summary_rows(summary *s, const cJSON *datasets, const cJSON *groups)
{
    char value[32], label[256];
    for (const cJSON *d = datasets->child; d; d = d->next) {
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(d, "metrics");
        for (const cJSON *m = ms ? ms->child : NULL; m; m = m->next) {
            size_t len = strlen(m->string);
            if (len > 7 && strcmp(m->string + len - 7, "_stderr") == 0) continue;
            snprintf(value, sizeof value, "%.2f", m->valuedouble);
            ILM__FORWARD(summary_row(s, str(d, "dataset"), str(d, "version"), m->string,
                                     str(d, "mode"), value));
        }
    }
    for (const cJSON *g = groups->child; g; g = g->next)
        for (int w = 0; w < 2; w++) {
            snprintf(label, sizeof label, "%s (%s average)", str(g, "group"),
                     w ? "weighted" : "naive");
            snprintf(value, sizeof value, "%.2f",
                     ilm__eval_num(g, w ? "weighted_average" : "naive_average"));
            ILM__FORWARD(
                summary_row(s, label, str(g, "version"), str(g, "metric"), str(g, "mode"), value));
        }
    return ILM_OK;
}

static ilm_status write_summary(const ilm_evaluator *e, const cJSON *datasets, const cJSON *groups)
{
    char *dir = join3(e->out, "/", "summary");
    ILM__RETURN_IF(!dir, ILM_ERR_NOMEM, "eval: out of memory");
    summary s = { { 0 }, { 0 }, { 0 } };
    ilm_status st = mkdirs(dir);
    if (st == ILM_OK)
        st = ilm__buf_printf(&s.md,
                             "| dataset | version | metric | mode | %s |\n"
                             "|---|---|---|---|---|\n",
                             e->model_name);
    if (st == ILM_OK)
        st = ilm__buf_printf(&s.csv, "dataset,version,metric,mode,%s\n", e->model_name);
    if (st == ILM_OK)
        st = ilm__buf_printf(&s.txt, "%-44s %-8s %-18s %-8s %s\n", "dataset", "version", "metric",
                             "mode", e->model_name);
    if (st == ILM_OK) st = summary_rows(&s, datasets, groups);
    const char *ext[3] = { "csv", "md", "txt" };
    const ilm__buf *bufs[3] = { &s.csv, &s.md, &s.txt };
    for (int i = 0; i < 3 && st == ILM_OK; i++) {
        char *path = ilm__malloc(strlen(dir) + 16);
        if (!path) {
            st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
            break;
        }
        sprintf(path, "%s/summary.%s", dir, ext[i]);
        st = ilm__atomic_write_buf(path, bufs[i]->p, bufs[i]->n);
        ilm__free(path);
    }
    ilm__buf_free(&s.csv);
    ilm__buf_free(&s.md);
    ilm__buf_free(&s.txt);
    ilm__free(dir);
    return st;
}

ilm_status ilm_evaluator_run(ilm_evaluator *e, const char *tasks, ilm_progress_fn progress,
                             void *user, char **results)
{
    if (results) *results = NULL;
    ILM__RETURN_IF(!e || !tasks, ILM_ERR_INVALID_ARG, "ilm_evaluator_run: NULL argument");
    cJSON *list = NULL;
    ILM__FORWARD(ilm__json_parse(tasks, "tasks", &list));
    ilm_status st = cJSON_IsArray(list) && cJSON_GetArraySize(list) > 0
                        ? ILM_OK
                        : ilm__error(ILM_ERR_CONFIG, "eval: tasks must be a non-empty JSON array");
    cJSON *out = cJSON_CreateObject(), *datasets = NULL, *groups = NULL;
    if (st == ILM_OK && (!out || !cJSON_AddStringToObject(out, "model", e->model_name) ||
                         !(datasets = cJSON_AddArrayToObject(out, "datasets")) ||
                         !(groups = cJSON_AddArrayToObject(out, "groups"))))
        st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    /* Every task is parsed before anything runs, so a typo fails at once. */
    size_t n_tasks = st == ILM_OK ? (size_t)cJSON_GetArraySize(list) : 0;
    ilm__task *ts = st == ILM_OK ? ilm__calloc(n_tasks, sizeof *ts) : NULL;
    if (st == ILM_OK && !ts) st = ilm__error(ILM_ERR_NOMEM, "eval: out of memory");
    size_t loaded = 0;
    for (const cJSON *item = st == ILM_OK ? list->child : NULL; item && st == ILM_OK;
         item = item->next) {
        st = load_task(e, item, loaded, &ts[loaded]);
        if (st == ILM_OK) loaded++;
        if (st == ILM_OK && ts[loaded - 1].subsets_all) st = glob_subsets(e, &ts[loaded - 1]);
    }
    for (size_t i = 0; i < loaded && st == ILM_OK; i++) {
        size_t first = (size_t)cJSON_GetArraySize(datasets);
        size_t n = ts[i].n_subsets ? ts[i].n_subsets : 1;
        for (size_t k = 0; k < n && st == ILM_OK; k++) {
            ilm__dataset d = { 0 };
            d.e = e;
            d.t = &ts[i];
            d.subset = ts[i].n_subsets ? ts[i].subsets[k] : NULL;
            cJSON *r = NULL;
            st = run_dataset(&d, progress, user, &r);
            dataset_free(&d);
            if (st == ILM_OK) cJSON_AddItemToArray(datasets, r);
        }
        if (st == ILM_OK && ts[i].n_subsets > 1) st = add_group(groups, &ts[i], datasets, first);
    }
    if (st == ILM_OK && e->out) st = write_summary(e, datasets, groups);
    if (st == ILM_OK && results) st = ilm__json_print(out, results);
    for (size_t i = 0; i < loaded; i++) ilm__task_free(&ts[i]);
    ilm__free(ts);
    cJSON_Delete(out);
    cJSON_Delete(list);
    return st;
}
