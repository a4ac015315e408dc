/* Logging: the library is silent unless the embedding program installs a
 * callback; messages are formatted only when someone listens. */
#include "core/internal.h"

#include <stdio.h>

static ilm_log_fn    g_log_fn;
static void         *g_log_user;
static ilm_log_level g_log_max = ILM_LOG_INFO;

void ilm_set_log_callback(ilm_log_fn fn, void *user, ilm_log_level max_level)
{
    g_log_fn = fn;
    g_log_user = user;
    g_log_max = max_level;
}

void ilm__log(ilm_log_level level, const char *fmt, ...)
{
    ilm_log_fn fn = g_log_fn;
    if (!fn || level > g_log_max) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(g_log_user, level, msg);
}
