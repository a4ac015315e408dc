/* The allocator hook: every byte of host memory the library owns comes from
 * here, so an embedding program can account for it or route it to its own
 * arena (as SQLite's sqlite3_config(SQLITE_CONFIG_MALLOC) allows). */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *std_malloc(void *user, size_t size) { (void)user; return malloc(size); }
static void *std_realloc(void *user, void *p, size_t size) { (void)user; return realloc(p, size); }
static void  std_free(void *user, void *p) { (void)user; free(p); }

static ilm_allocator g_alloc = { std_malloc, std_realloc, std_free, NULL };

/* cJSON's hooks: its allocations go through ours too (PCRE2 gets a general
 * context, tokenizer/bytelevel.c; utf8proc decomposes into our buffers,
 * corpus/clean.c). */
static void *cjson_malloc(size_t n) { return ilm__malloc(n); }
static void  cjson_free(void *p) { ilm__free(p); }

ilm_status ilm_set_allocator(const ilm_allocator *a)
{
    if (!a) {
        g_alloc = (ilm_allocator){ std_malloc, std_realloc, std_free, NULL };
        cJSON_InitHooks(NULL);
        return ILM_OK;
    }
    ILM__RETURN_IF(!a->malloc_fn || !a->realloc_fn || !a->free_fn,
                   ILM_ERR_INVALID_ARG,
                   "ilm_set_allocator: malloc_fn, realloc_fn and free_fn must all be set");
    g_alloc = *a;
    cJSON_InitHooks(&(cJSON_Hooks){ cjson_malloc, cjson_free });
    return ILM_OK;
}

void ilm_free(void *ptr) { ilm__free(ptr); }

void *ilm__malloc(size_t size)
{
    return g_alloc.malloc_fn(g_alloc.user, size ? size : 1);
}

void *ilm__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = ilm__malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *ilm__realloc(void *ptr, size_t size)
{
    return g_alloc.realloc_fn(g_alloc.user, ptr, size ? size : 1);
}

void ilm__free(void *ptr)
{
    if (ptr) g_alloc.free_fn(g_alloc.user, ptr);
}

char *ilm__strndup(const char *s, size_t n)
{
    char *d = ilm__malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *ilm__strdup(const char *s) { return ilm__strndup(s, strlen(s)); }

char *ilm__asprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n < 0 ? NULL : ilm__malloc((size_t)n + 1);
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return s;
}
