/* at_line.h - V.250 command line framing, private to the AT engine (oFono's
 * gatsyntax): fed bytes, it says how many it took and whether they ended a
 * command line ("AT...<S3>") or asked to repeat the last one ("A/"). It
 * knows nothing of dispatch, echo or URCs.
 *
 * States (STYLE.md 10): IDLE hunts the 'A' of the prefix, A waits for the
 * 'T' (or '/'), BODY collects the line up to S3 (S5 edits it, S4 and NUL are
 * left out), CR follows a line's S3 and takes an S4 right after it as part
 * of the line's end: the LF of a CR LF ending is neither echoed nor taken
 * as the start of the next line.
 */
#ifndef DFOTA_AT_LINE_H
#define DFOTA_AT_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_log.h"
#include "dfota/at.h"

enum at_line_state { AT_LINE_IDLE, AT_LINE_A, AT_LINE_BODY, AT_LINE_CR };

/** What a feed ended on. */
enum at_line_event {
    AT_LINE_NONE,   /**< all bytes taken, no line yet */
    AT_LINE_DONE,   /**< a command line ended (at_line_text()) */
    AT_LINE_REPEAT, /**< "A/": run the last line again */
};

struct at_line {
    enum at_line_state state;
    char *buf; /* max + 1 */
    size_t len, max;
    bool overflow;
    const struct at_settings *set; /* S3, S4, S5 */
    const struct at_log *log;
};

/** Sets up @p l for lines of at most @p max bytes after "AT"; @p set and
 *  @p log are borrowed and must outlive it. 0 or -ENOMEM. */
int at_line_init(struct at_line *l, size_t max, const struct at_settings *set,
                 const struct at_log *log);

/** Frees the buffer of @p l. */
void at_line_fini(struct at_line *l);

/** Drops a half-typed line (input state change); @p why names the event. */
void at_line_reset(struct at_line *l, const char *why);

/** Takes bytes of @p buf, at most *@p len, stopping right after one that
 *  ends a line or an "A/". On return *@p len is how many it took and
 *  *@p quiet how many of the first of them are no echo (the LF that follows
 *  a line's CR). */
enum at_line_event at_line_feed(struct at_line *l, const uint8_t *buf, size_t *len, size_t *quiet);

/** The line AT_LINE_DONE announced: its text after "AT", NUL-terminated,
 *  valid until the next feed; *@p overflow tells it was cut at max. */
const char *at_line_text(struct at_line *l, bool *overflow);

#endif
