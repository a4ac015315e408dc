/* Prompt templates: text with "{name}" slots filled from a dataset row, the
 * syntax of OpenCompass's prompt templates and of Python's str.format
 * without its conversions and format specs: "{{" and "}}" are literal
 * braces, and any other brace is an error rather than text, so that a typo
 * in a template cannot silently reach the model. */
#include "eval/eval.h"

#include <string.h>

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* Walks the template once: literal runs and slot values go to `out`
 * unless it is NULL (a check only). */
static ilm_status walk(const char *tmpl, const char *what, ilm__slot_fn lookup, void *user,
                       ilm__buf *out)
{
    if (!what) what = "template";
    ILM__RETURN_IF(!tmpl, ILM_ERR_INVALID_ARG, "%s: no template", what);
    for (size_t i = 0; tmpl[i];) {
        size_t run = strcspn(tmpl + i, "{}");
        if (run) {
            if (out) ILM__FORWARD(ilm__buf_append(out, tmpl + i, run));
            i += run;
            continue;
        }
        char c = tmpl[i];
        if (tmpl[i + 1] == c) { /* "{{" or "}}" */
            if (out) ILM__FORWARD(ilm__buf_putc(out, c));
            i += 2;
            continue;
        }
        ILM__RETURN_IF(c == '}', ILM_ERR_CONFIG,
                       "%s: unmatched '}' at byte %zu (write '}}' for a literal brace)", what, i);
        size_t j = i + 1;
        while (name_char(tmpl[j])) j++;
        ILM__RETURN_IF(j == i + 1 && tmpl[j] == '}', ILM_ERR_CONFIG,
                       "%s: empty slot '{}' at byte %zu", what, i);
        ILM__RETURN_IF(tmpl[j] != '}', ILM_ERR_CONFIG,
                       "%s: '{' at byte %zu opens no slot (a slot is {name}, the name of "
                       "letters, digits, '_', '-' and '.'; write '{{' for a literal brace)",
                       what, i);
        const char *name = tmpl + i + 1;
        size_t len = j - i - 1;
        const char *v = lookup ? lookup(user, name, len) : NULL;
        ILM__RETURN_IF(!v, ILM_ERR_CONFIG, "%s: slot '{%.*s}' names no field", what, (int)len,
                       name);
        if (out) ILM__FORWARD(ilm__buf_append(out, v, strlen(v)));
        i = j + 1;
    }
    return ILM_OK;
}

ilm_status ilm__template_check(const char *tmpl, const char *what, ilm__slot_fn lookup,
                               void *user)
{
    return walk(tmpl, what, lookup, user, NULL);
}

ilm_status ilm__template_render(const char *tmpl, const char *what, ilm__slot_fn lookup,
                                void *user, ilm__buf *out)
{
    if (!out) return ilm__error(ILM_ERR_INVALID_ARG, "%s: no buffer", what ? what : "template");
    size_t n0 = out->n;
    ilm_status st = walk(tmpl, what, lookup, user, out);
    if (st != ILM_OK && out->p) { /* nothing of a failed render stays */
        out->n = n0;
        out->p[n0] = '\0';
    }
    return st;
}
