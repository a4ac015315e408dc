/*
 * src/eval/task.c -- task configs: strict parsing and the version hash.
 */
#include "eval/task.h"

#include <stdio.h>
#include <string.h>

const char *ilm__task_mode_name(ilm__task_mode m)
{
    return m == ILM__MODE_PPL ? "ppl" : m == ILM__MODE_GEN ? "gen" : "rolling";
}

static const char *const metric_names[] = { "accuracy", "exact_match", "f1",
                                             "bleu",     "rouge_l",     "pass_at_1" };

const char *ilm__metric_name(ilm__metric m)
{
    return metric_names[m];
}

/* Prefixes the thread's last error with the task's source, so a message
 * names the file ("configs/eval/mmlu.json: config: unknown key ..."). */
static ilm_status in_source(ilm_status st, const char *source)
{
    if (st == ILM_OK) return st;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", ilm_last_error());
    return ilm__error(st, "%s: %s", source, msg);
}

/* An array of strings from the config (borrowed), NULL-terminated. */
static ilm_status strings(const cJSON *arr, const char *key, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!arr) return ILM_OK;
    size_t k = (size_t)cJSON_GetArraySize(arr);
    ILM__RETURN_IF(k == 0, ILM_ERR_CONFIG, "config: '%s' is empty", key);
    char **v = ilm__calloc(k + 1, sizeof *v);
    ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "task: out of memory");
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            ilm__free(v);
            return ilm__error(ILM_ERR_CONFIG, "config: '%s[%zu]' must be a string", key, i);
        }
        v[i] = e->valuestring;
    }
    *out = v;
    *n = k;
    return ILM_OK;
}

static ilm_status parse_reader(const cJSON *r, ilm__task *t)
{
    const cJSON *columns = NULL, *subsets = NULL, *range = NULL;
    const ilm__jfield f[] = {
        { "path", ILM__J_STRING, &t->path, true, 0, 0 },
        { "format", ILM__J_STRING, &t->format, false, 0, 0 },
        { "header", ILM__J_BOOL, &t->header, false, 0, 0 },
        { "columns", ILM__J_ARRAY, &columns, false, 0, 0 },
        { "subsets", ILM__J_ARRAY, &subsets, false, 0, 0 },
        { "fewshot_path", ILM__J_STRING, &t->fewshot_path, false, 0, 0 },
        { "range", ILM__J_ARRAY, &range, false, 0, 0 },
        { "document_start", ILM__J_STRING, &t->document_start, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(r, "reader", f, sizeof f / sizeof f[0]));
    t->header_set = cJSON_GetObjectItemCaseSensitive(r, "header") != NULL;
    ILM__RETURN_IF(t->format && strcmp(t->format, "jsonl") && strcmp(t->format, "csv") &&
                       strcmp(t->format, "text"),
                   ILM_ERR_CONFIG,
                   "config: 'reader.format' must be \"jsonl\", \"csv\" or \"text\"");
    ILM__RETURN_IF(t->document_start && (!t->format || strcmp(t->format, "text")), ILM_ERR_CONFIG,
                   "config: 'reader.document_start' needs \"format\": \"text\"");
    ILM__FORWARD(strings(columns, "reader.columns", &t->columns, &t->n_columns));
    char **subs = NULL;
    size_t n_subs = 0;
    ILM__FORWARD(strings(subsets, "reader.subsets", &subs, &n_subs));
    if (n_subs == 1 && strcmp(subs[0], "*") == 0) {
        t->subsets_all = true;
    } else if (n_subs) {
        t->subsets = ilm__calloc(n_subs, sizeof *t->subsets);
        ILM__RETURN_IF(!t->subsets, ILM_ERR_NOMEM, "task: out of memory");
        for (size_t i = 0; i < n_subs; i++) {
            t->subsets[i] = ilm__strdup(subs[i]);
            ILM__RETURN_IF(!t->subsets[i], ILM_ERR_NOMEM, "task: out of memory");
            t->n_subsets = i + 1;
        }
    }
    ilm__free(subs);
    ILM__RETURN_IF((n_subs != 0) != (strstr(t->path, "{subset}") != NULL), ILM_ERR_CONFIG,
                   "config: 'reader.path' must contain {subset} exactly when 'reader.subsets' is "
                   "given");
    t->range_begin = 0;
    t->range_end = -1;
    if (range) {
        int64_t *v = NULL;
        size_t n = 0;
        ILM__FORWARD(ilm__json_int_array(range, "reader.range", 0, INT64_MAX / 2, &v, &n));
        bool ok = n == 2 && v[0] <= v[1];
        if (ok) {
            t->range_begin = v[0];
            t->range_end = v[1];
        }
        ilm__free(v);
        ILM__RETURN_IF(!ok, ILM_ERR_CONFIG,
                       "config: 'reader.range' must be [begin, end] with "
                       "begin <= end");
    }
    return ILM_OK;
}

static ilm_status parse_fewshot(const cJSON *fs, int64_t shots, ilm__task *t)
{
    const cJSON *ids = NULL;
    t->shot_separator = "";
    const ilm__jfield f[] = {
        { "k", ILM__J_INT, &t->shots, false, 0, 1000 },
        { "ids", ILM__J_ARRAY, &ids, false, 0, 0 },
        { "template", ILM__J_STRING, &t->shot_template, true, 0, 0 },
        { "separator", ILM__J_STRING, &t->shot_separator, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(fs, "fewshot", f, sizeof f / sizeof f[0]));
    if (ids) {
        ILM__FORWARD(ilm__json_int_array(ids, "fewshot.ids", 0, INT64_MAX / 2, &t->shot_ids,
                                         &t->n_shot_ids));
        if (!cJSON_GetObjectItemCaseSensitive(fs, "k")) t->shots = (int64_t)t->n_shot_ids;
    }
    if (shots >= 0) t->shots = shots;
    ILM__RETURN_IF(t->shot_ids && (size_t)t->shots > t->n_shot_ids, ILM_ERR_CONFIG,
                   "config: %lld shots, but 'fewshot.ids' names only %zu examples",
                   (long long)t->shots, t->n_shot_ids);
    return ILM_OK;
}

static ilm_status parse_ppl(const cJSON *p, ilm__task *t)
{
    const cJSON *choices = NULL;
    const char *reduction = "continuation";
    const ilm__jfield f[] = {
        { "choices", ILM__J_OBJECT, &choices, true, 0, 0 },
        { "gold", ILM__J_STRING, &t->gold, true, 0, 0 },
        { "reduction", ILM__J_STRING, &reduction, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(p, "ppl", f, sizeof f / sizeof f[0]));
    if (strcmp(reduction, "continuation") == 0)
        t->reduction = ILM__RED_CONTINUATION;
    else if (strcmp(reduction, "whole") == 0)
        t->reduction = ILM__RED_WHOLE;
    else
        return ilm__error(ILM_ERR_CONFIG,
                          "config: 'ppl.reduction' must be \"continuation\" or \"whole\"");
    size_t n = (size_t)cJSON_GetArraySize(choices);
    ILM__RETURN_IF(n < 2, ILM_ERR_CONFIG, "config: 'ppl.choices' needs at least two candidates");
    t->labels = ilm__calloc(n, sizeof *t->labels);
    t->choices = ilm__calloc(n, sizeof *t->choices);
    ILM__RETURN_IF(!t->labels || !t->choices, ILM_ERR_NOMEM, "task: out of memory");
    size_t i = 0;
    for (const cJSON *c = choices->child; c; c = c->next, i++) {
        ILM__RETURN_IF(!cJSON_IsString(c), ILM_ERR_CONFIG,
                       "config: 'ppl.choices.%s' must be a template string", c->string);
        for (size_t j = 0; j < i; j++)
            ILM__RETURN_IF(strcmp(t->labels[j], c->string) == 0, ILM_ERR_CONFIG,
                           "config: label '%s' appears twice in 'ppl.choices'", c->string);
        t->labels[i] = c->string;
        t->choices[i] = c->valuestring;
    }
    t->n_choices = n;
    return ILM_OK;
}

static ilm_status parse_pp(const char *name, const char *key, ilm__postproc *out)
{
    *out = ILM__PP_NONE;
    if (!name) return ILM_OK;
    ILM__RETURN_IF(!ilm__postproc_parse(name, out), ILM_ERR_CONFIG,
                   "config: '%s' names no post-processor: '%s'", key, name);
    return ILM_OK;
}

static ilm_status parse_gen(const cJSON *g, ilm__task *t)
{
    const char *pp = NULL, *gold_pp = NULL, *metric = "accuracy";
    t->max_tokens = 256;
    t->options = "ABCD";
    t->interpreter = "python3";
    t->timeout = 10;
    const ilm__jfield f[] = {
        { "max_tokens", ILM__J_INT, &t->max_tokens, false, 1, 1 << 20 },
        { "stop", ILM__J_ARRAY, &t->stop, false, 0, 0 },
        { "postprocess", ILM__J_STRING, &pp, false, 0, 0 },
        { "gold", ILM__J_STRING, &t->gold, false, 0, 0 },
        { "gold_postprocess", ILM__J_STRING, &gold_pp, false, 0, 0 },
        { "program", ILM__J_STRING, &t->program, false, 0, 0 },
        { "interpreter", ILM__J_STRING, &t->interpreter, false, 0, 0 },
        { "timeout", ILM__J_NUMBER, &t->timeout, false, 0.1, 3600 },
        { "options", ILM__J_STRING, &t->options, false, 0, 0 },
        { "metric", ILM__J_STRING, &metric, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(g, "gen", f, sizeof f / sizeof f[0]));
    ILM__FORWARD(parse_pp(pp, "gen.postprocess", &t->pp));
    ILM__FORWARD(parse_pp(gold_pp, "gen.gold_postprocess", &t->gold_pp));
    if (t->stop)
        for (const cJSON *e = t->stop->child; e; e = e->next)
            ILM__RETURN_IF(!cJSON_IsString(e) || !*e->valuestring, ILM_ERR_CONFIG,
                           "config: 'gen.stop' must hold non-empty strings");
    size_t m = 0;
    while (m < sizeof metric_names / sizeof metric_names[0] && strcmp(metric_names[m], metric)) m++;
    ILM__RETURN_IF(m == sizeof metric_names / sizeof metric_names[0], ILM_ERR_CONFIG,
                   "config: 'gen.metric' must be accuracy, exact_match, f1, bleu, rouge_l or "
                   "pass_at_1, not '%s'",
                   metric);
    t->metric = (ilm__metric)m;
    ILM__RETURN_IF((t->metric == ILM__METRIC_PASS_AT_1) != (t->program != NULL), ILM_ERR_CONFIG,
                   "config: 'gen.metric' pass_at_1 and 'gen.program' go together");
    ILM__RETURN_IF(!t->gold && !t->program, ILM_ERR_CONFIG,
                   "config: missing required key 'gen.gold'");
    return ILM_OK;
}

static ilm_status parse_rolling(const cJSON *r, ilm__task *t)
{
    const char *pre = NULL;
    const ilm__jfield f[] = {
        { "text", ILM__J_STRING, &t->text, true, 0, 0 },
        { "window", ILM__J_INT, &t->window, false, 1, 1 << 20 },
        { "preprocess", ILM__J_STRING, &pre, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(r, "rolling", f, sizeof f / sizeof f[0]));
    return parse_pp(pre, "rolling.preprocess", &t->preprocess);
}

static ilm_status parse(ilm__task *t, int64_t shots)
{
    const cJSON *reader = NULL, *fewshot = NULL, *ppl = NULL, *gen = NULL, *rolling = NULL;
    const char *mode = NULL, *name = NULL;
    const ilm__jfield f[] = {
        { "name", ILM__J_STRING, &name, false, 0, 0 },
        { "description", ILM__J_STRING, NULL, false, 0, 0 },
        { "reader", ILM__J_OBJECT, &reader, true, 0, 0 },
        { "header", ILM__J_STRING, &t->preamble, false, 0, 0 },
        { "prompt", ILM__J_STRING, &t->prompt, false, 0, 0 },
        { "chat", ILM__J_BOOL, &t->chat, false, 0, 0 },
        { "fewshot", ILM__J_OBJECT, &fewshot, false, 0, 0 },
        { "mode", ILM__J_STRING, &mode, true, 0, 0 },
        { "ppl", ILM__J_OBJECT, &ppl, false, 0, 0 },
        { "gen", ILM__J_OBJECT, &gen, false, 0, 0 },
        { "rolling", ILM__J_OBJECT, &rolling, false, 0, 0 },
    };
    ILM__FORWARD(ilm__json_fields(t->root, "", f, sizeof f / sizeof f[0]));
    if (name) {
        ilm__free(t->name);
        t->name = ilm__strdup(name);
        ILM__RETURN_IF(!t->name, ILM_ERR_NOMEM, "task: out of memory");
    }
    ILM__RETURN_IF(!*t->name || strpbrk(t->name, "/\\") || t->name[0] == '.', ILM_ERR_CONFIG,
                   "config: the task name '%s' cannot name a file", t->name);
    ILM__FORWARD(parse_reader(reader, t));
    if (fewshot) ILM__FORWARD(parse_fewshot(fewshot, shots, t));
    const cJSON *section;
    const char *want;
    if (strcmp(mode, "ppl") == 0) {
        t->mode = ILM__MODE_PPL, section = ppl, want = "ppl";
    } else if (strcmp(mode, "gen") == 0) {
        t->mode = ILM__MODE_GEN, section = gen, want = "gen";
    } else if (strcmp(mode, "rolling") == 0) {
        t->mode = ILM__MODE_ROLLING, section = rolling, want = "rolling";
    } else {
        return ilm__error(ILM_ERR_CONFIG,
                          "config: 'mode' must be \"ppl\", \"gen\" or "
                          "\"rolling\", not '%s'",
                          mode);
    }
    ILM__RETURN_IF(!section, ILM_ERR_CONFIG, "config: mode \"%s\" needs a '%s' object", mode, want);
    ILM__RETURN_IF(
        (ppl && section != ppl) || (gen && section != gen) || (rolling && section != rolling),
        ILM_ERR_CONFIG, "config: mode \"%s\" takes only the '%s' object of the modes", mode, want);
    ILM__RETURN_IF(t->mode != ILM__MODE_ROLLING && !t->prompt, ILM_ERR_CONFIG,
                   "config: missing required key 'prompt'");
    if (t->mode == ILM__MODE_PPL) return parse_ppl(ppl, t);
    if (t->mode == ILM__MODE_GEN) return parse_gen(gen, t);
    return parse_rolling(rolling, t);
}

/* The version: FNV-style hash of the config as run (the few-shot count as
 * overridden), so a changed template, reader or shot count shows. */
static ilm_status version(ilm__task *t)
{
    cJSON *copy = cJSON_Duplicate(t->root, true);
    ILM__RETURN_IF(!copy, ILM_ERR_NOMEM, "task: out of memory");
    cJSON *fs = cJSON_GetObjectItemCaseSensitive(copy, "fewshot");
    if (fs) {
        cJSON_DeleteItemFromObjectCaseSensitive(fs, "k");
        cJSON_AddNumberToObject(fs, "k", (double)t->shots);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(copy, "description");
    char *text = NULL;
    ilm_status st = ilm__json_print(copy, &text);
    cJSON_Delete(copy);
    ILM__FORWARD(st);
    snprintf(t->version, sizeof t->version, "%06llx",
             (unsigned long long)(ilm__hash_bytes(text, strlen(text)) & 0xffffff));
    ilm__free(text);
    return ILM_OK;
}

ilm_status ilm__task_parse(cJSON *json, const char *name, const char *source, int64_t shots,
                           ilm__task *t)
{
    memset(t, 0, sizeof *t);
    t->root = json;
    t->name = ilm__strdup(name);
    t->source = ilm__strdup(source);
    ilm_status st =
        !t->name || !t->source ? ilm__error(ILM_ERR_NOMEM, "task: out of memory") : parse(t, shots);
    if (st == ILM_OK) st = version(t);
    if (st != ILM_OK) {
        st = in_source(st, source);
        ilm__task_free(t);
    }
    return st;
}

void ilm__task_free(ilm__task *t)
{
    if (!t) return;
    cJSON_Delete(t->root);
    ilm__free(t->name);
    ilm__free(t->source);
    ilm__free(t->columns);
    for (size_t i = 0; i < t->n_subsets; i++) ilm__free(t->subsets[i]);
    ilm__free(t->subsets);
    ilm__free(t->shot_ids);
    ilm__free(t->labels);
    ilm__free(t->choices);
    memset(t, 0, sizeof *t);
}
