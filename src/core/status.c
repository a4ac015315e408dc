/*
 * src/core/ -- the library's foundation: status codes and per-thread error
 * messages (this file), the allocator hook (alloc.c), logging (log.c),
 * JSON configuration (json.c), files (file.c), the deterministic RNG
 * (rng.c), threads (threads.c) and the version and build facts (version.c).
 * Every other folder depends on it; it depends on nothing else of ours.
 */
#include "core/internal.h"

#include <stdio.h>
#include <string.h>

/* One message per thread, like libgit2's git_error_last(): a failure on one
 * thread never overwrites the message another thread is about to read. */
static _Thread_local char tls_message[1024];

const char *ilm_status_str(ilm_status s)
{
    switch (s) {
#define ILM__NAME_CASE(name, value, text) case name: return #name;
        ILM_STATUS_MAP(ILM__NAME_CASE)
#undef ILM__NAME_CASE
    }
    return "ILM_ERR_UNKNOWN";
}

const char *ilm_status_desc(ilm_status s)
{
    switch (s) {
#define ILM__DESC_CASE(name, value, text) case name: return text;
        ILM_STATUS_MAP(ILM__DESC_CASE)
#undef ILM__DESC_CASE
    }
    return "unknown status";
}

const char *ilm_last_error(void)
{
    return tls_message;
}

ilm_status ilm__verror(ilm_status s, const char *fmt, va_list ap)
{
    /* Formatted aside first: an argument may be ilm_last_error() itself (a
     * caller re-raising a message under another status or with a prefix),
     * and vsnprintf into the buffer it reads from is undefined (in practice
     * an empty message). */
    char msg[sizeof tls_message];
    vsnprintf(msg, sizeof msg, fmt, ap);
    memcpy(tls_message, msg, sizeof msg);
    ilm__log(ILM_LOG_DEBUG, "%s: %s", ilm_status_str(s), tls_message);
    return s;
}

ilm_status ilm__error(ilm_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ilm__verror(s, fmt, ap);
    va_end(ap);
    return s;
}
