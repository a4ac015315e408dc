/* Strict JSON configuration over cJSON.  Every config the library accepts is
 * validated field by field: a misspelt key is an error naming its full path,
 * never a silently ignored setting. */
#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

ilm_status ilm__json_parse(const char *text, const char *what, cJSON **out)
{
    *out = NULL;
    const char *p = text ? text : "";
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (*p == '\0') {
        *out = cJSON_CreateObject();
        ILM__RETURN_IF(!*out, ILM_ERR_NOMEM, "%s: out of memory", what);
        return ILM_OK;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        size_t off = end ? (size_t)(end - text) : 0;
        return ilm__error(ILM_ERR_CONFIG, "%s: invalid JSON near byte %zu", what, off);
    }
    *out = j;
    return ILM_OK;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    if (cJSON_IsNull(v)) return "null";
    return "invalid value";
}

static bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

ilm_status ilm__json_parse_object(const char *text, size_t n, const char *what, cJSON **out)
{
    *out = NULL;
    size_t lead = 0;
    while (lead < n && is_json_space(text[lead])) lead++;
    ILM__RETURN_IF(lead == n, ILM_ERR_FORMAT, "%s: invalid JSON: the text is %s", what,
                   n ? "only whitespace" : "empty");
    /* The length-bounded parse never reads past n, so a mapped file needs
     * no NUL-terminated copy; the bytes after the value are checked here
     * because cJSON's own check wants a NUL. */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < at && i < n; i++) line += text[i] == '\n';
        return ilm__error(ILM_ERR_FORMAT, "%s: invalid JSON near byte %zu (line %zu)", what, at,
                          line);
    }
    for (size_t i = (size_t)(end - text); i < n; i++)
        if (!is_json_space(text[i])) {
            cJSON_Delete(j);
            return ilm__error(ILM_ERR_FORMAT,
                              "%s: unexpected bytes after the JSON value at byte %zu", what, i);
        }
    if (!cJSON_IsObject(j)) {
        const char *t = type_name(j);
        cJSON_Delete(j);
        return ilm__error(ILM_ERR_FORMAT, "%s: not a JSON object (the top level is %s %s)", what,
                          t[0] == 'a' || t[0] == 'o' || t[0] == 'i' ? "an" : "a", t);
    }
    *out = j;
    return ILM_OK;
}

ilm_status ilm__json_read_file(const char *path, cJSON **out)
{
    *out = NULL;
    ilm__mmap m;
    ILM__FORWARD(ilm__mmap_open(path, &m));
    ilm_status st = ilm__json_parse_object((const char *)m.data, m.size, path, out);
    ilm__mmap_close(&m);
    return st;
}

static const char *jtype_name(ilm__jtype t)
{
    switch (t) {
    case ILM__J_BOOL: return "a boolean";
    case ILM__J_INT: return "an integer";
    case ILM__J_NUMBER: return "a number";
    case ILM__J_STRING: return "a string";
    case ILM__J_OBJECT: return "an object";
    case ILM__J_ARRAY: return "an array";
    case ILM__J_SECTION: return "an object or false";
    }
    return "?";
}

/* "a.b" from path "a" and key "b"; the root path is "". */
static void join_path(char *buf, size_t n, const char *path, const char *key)
{
    snprintf(buf, n, "%s%s%s", path, *path ? "." : "", key);
}

static ilm_status check_range(const char *kp, double v, const ilm__jfield *f)
{
    ILM__RETURN_IF(f->min < f->max && (v < f->min || v > f->max), ILM_ERR_CONFIG,
                   "config: '%s' is %g, outside [%g, %g]", kp, v, f->min, f->max);
    return ILM_OK;
}

static ilm_status take_field(const cJSON *v, const char *kp, const ilm__jfield *f)
{
    bool ok;
    switch (f->type) {
    case ILM__J_BOOL: ok = cJSON_IsBool(v); break;
    case ILM__J_INT:
        ok = cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
             v->valuedouble == floor(v->valuedouble) &&
             fabs(v->valuedouble) <= 9007199254740992.0; /* 2^53: exact */
        break;
    case ILM__J_NUMBER: ok = cJSON_IsNumber(v) && isfinite(v->valuedouble); break;
    case ILM__J_STRING: ok = cJSON_IsString(v); break;
    case ILM__J_OBJECT: ok = cJSON_IsObject(v); break;
    case ILM__J_ARRAY: ok = cJSON_IsArray(v); break;
    case ILM__J_SECTION: ok = cJSON_IsObject(v) || cJSON_IsFalse(v); break;
    default: ok = false;
    }
    ILM__RETURN_IF(!ok, ILM_ERR_CONFIG, "config: '%s' must be %s, got %s",
                   kp, jtype_name(f->type),
                   f->type == ILM__J_INT && cJSON_IsNumber(v) ? "a non-integral or huge number"
                                                             : type_name(v));
    if (!f->out) return ILM_OK;
    switch (f->type) {
    case ILM__J_BOOL: *(bool *)f->out = cJSON_IsTrue(v); break;
    case ILM__J_INT:
        ILM__FORWARD(check_range(kp, v->valuedouble, f));
        *(int64_t *)f->out = (int64_t)v->valuedouble;
        break;
    case ILM__J_NUMBER:
        ILM__FORWARD(check_range(kp, v->valuedouble, f));
        *(double *)f->out = v->valuedouble;
        break;
    case ILM__J_STRING: *(const char **)f->out = v->valuestring; break;
    case ILM__J_OBJECT:
    case ILM__J_SECTION:
    case ILM__J_ARRAY: *(const cJSON **)f->out = v; break;
    }
    return ILM_OK;
}

ilm_status ilm__json_fields(const cJSON *obj, const char *path,
                            const ilm__jfield *fields, size_t n_fields)
{
    char kp[512];
    ILM__RETURN_IF(!cJSON_IsObject(obj), ILM_ERR_CONFIG,
                   "config: '%s' must be an object, got %s",
                   *path ? path : "(root)", type_name(obj));
    /* Every key present must be known, and known exactly once. */
    for (const cJSON *v = obj->child; v; v = v->next) {
        join_path(kp, sizeof kp, path, v->string ? v->string : "");
        const ilm__jfield *f = NULL;
        for (size_t i = 0; i < n_fields && !f; i++)
            if (strcmp(fields[i].key, v->string) == 0) f = &fields[i];
        ILM__RETURN_IF(!f, ILM_ERR_CONFIG, "config: unknown key '%s'", kp);
        for (const cJSON *w = v->next; w; w = w->next)
            ILM__RETURN_IF(strcmp(w->string, v->string) == 0, ILM_ERR_CONFIG,
                           "config: key '%s' appears twice", kp);
        ILM__FORWARD(take_field(v, kp, f));
    }
    for (size_t i = 0; i < n_fields; i++) {
        join_path(kp, sizeof kp, path, fields[i].key);
        ILM__RETURN_IF(fields[i].required &&
                       !cJSON_GetObjectItemCaseSensitive(obj, fields[i].key),
                       ILM_ERR_CONFIG, "config: missing required key '%s'", kp);
    }
    return ILM_OK;
}

ilm_status ilm__json_int_array(const cJSON *arr, const char *path,
                               int64_t min, int64_t max,
                               int64_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    ILM__RETURN_IF(!cJSON_IsArray(arr), ILM_ERR_CONFIG,
                   "config: '%s' must be an array, got %s", path, type_name(arr));
    size_t count = (size_t)cJSON_GetArraySize(arr);
    int64_t *v = ilm__calloc(count ? count : 1, sizeof *v);
    ILM__RETURN_IF(!v, ILM_ERR_NOMEM, "config: out of memory reading '%s'", path);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        if (!(d == floor(d) && d >= (double)min && d <= (double)max)) {
            ilm__free(v);
            return ilm__error(ILM_ERR_CONFIG,
                              "config: '%s[%zu]' must be an integer in [%lld, %lld]",
                              path, i, (long long)min, (long long)max);
        }
        v[i] = (int64_t)d;
    }
    *out = v;
    *n = count;
    return ILM_OK;
}

ilm_status ilm__json_print(const cJSON *json, char **out)
{
    *out = NULL;
    char *s = cJSON_PrintUnformatted(json);
    ILM__RETURN_IF(!s, ILM_ERR_NOMEM, "json: out of memory printing");
    *out = ilm__strdup(s);
    cJSON_free(s);
    ILM__RETURN_IF(!*out, ILM_ERR_NOMEM, "json: out of memory printing");
    return ILM_OK;
}
