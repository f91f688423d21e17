/* at_log.c - logging of the AT engine's parts (see at_log.h). */
#include "at_log.h"

#include <stdio.h>

bool at_log_on(const struct at_log *l, int level)
{
    return l && l->fn && level <= l->level;
}

void at_logf(const struct at_log *l, int level, const char *fmt, ...)
{
    if (!at_log_on(l, level))
        return;
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s: ", l->name ? l->name : "at");
    if (n < 0 || (size_t)n >= sizeof(msg))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    l->fn(l->ud, level, msg);
}

void at_log_state(const struct at_log *l, const char *machine, const char *from, const char *to,
                  const char *event)
{
    at_logf(l, AT_LOG_DEBUG, "%s: %s -> %s (%s)", machine, from, to, event);
}
