/* Growable byte buffers and id arrays. */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

static ilm_status reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return ILM_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        ILM__RETURN_IF(c > SIZE_MAX / 2 / elem, ILM_ERR_NOMEM, "buffer: size overflow");
        c *= 2;
    }
    void *np = ilm__realloc(*p, c * elem);
    ILM__RETURN_IF(!np, ILM_ERR_NOMEM, "buffer: cannot grow to %zu bytes", c * elem);
    *p = np;
    *cap = c;
    return ILM_OK;
}

ilm_status ilm__buf_append(ilm__buf *b, const void *data, size_t n)
{
    ILM__RETURN_IF(n > SIZE_MAX - b->n - 1, ILM_ERR_NOMEM, "buffer: size overflow");
    ILM__FORWARD(reserve((void **)&b->p, &b->cap, b->n + n + 1, 1));
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
    return ILM_OK;
}

ilm_status ilm__buf_reserve(ilm__buf *b, size_t n)
{
    ILM__RETURN_IF(n > SIZE_MAX - b->n - 1, ILM_ERR_NOMEM, "buffer: size overflow");
    ILM__FORWARD(reserve((void **)&b->p, &b->cap, b->n + n + 1, 1));
    b->p[b->n] = '\0'; /* a new buffer is an empty string too */
    return ILM_OK;
}

ilm_status ilm__buf_putc(ilm__buf *b, char c) { return ilm__buf_append(b, &c, 1); }

ilm_status ilm__buf_printf(ilm__buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    ilm_status st = n < 0 ? ilm__error(ILM_ERR_INTERNAL, "buffer: bad format") : ILM_OK;
    if (st == ILM_OK) st = reserve((void **)&b->p, &b->cap, b->n + (size_t)n + 1, 1);
    if (st == ILM_OK) {
        vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap2);
        b->n += (size_t)n;
    }
    va_end(ap2);
    return st;
}

void ilm__buf_free(ilm__buf *b)
{
    ilm__free(b->p);
    *b = (ilm__buf){ 0 };
}

ilm_status ilm__ids_push(ilm__ids *a, int32_t id)
{
    if (a->n == a->cap) ILM__FORWARD(reserve((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v));
    a->v[a->n++] = id;
    return ILM_OK;
}
