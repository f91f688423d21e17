/* at_log.h - logging of the AT engine's parts, private to src/at: every
 * line names the engine instance, and the state machines (line assembly,
 * the +++ rule) log their transitions through one function (STYLE.md 10). */
#ifndef DFOTA_AT_LOG_H
#define DFOTA_AT_LOG_H

#include "dfota/at.h"

/** Where the engine's parts log; owned by the engine, borrowed by its parts. */
struct at_log {
    at_log_fn fn; /* NULL: silent */
    void *ud;
    int level;        /* messages above it are not made */
    const char *name; /* the instance, e.g. "UART" */
};

/** Whether a message at @p level would be logged. */
bool at_log_on(const struct at_log *l, int level);

/** Logs "<name>: <message>" at @p level. */
void at_logf(const struct at_log *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Logs a transition of state machine @p machine at debug level:
 *  "<name>: <machine>: <from> -> <to> (<event>)". */
void at_log_state(const struct at_log *l, const char *machine, const char *from, const char *to,
                  const char *event);

#endif
