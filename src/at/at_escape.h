/* at_escape.h - the +++ escape rule of data mode (app note 2.2.2), private
 * to the AT engine.
 *
 * An escape is: at least one guard time with no input before the first '+',
 * the three '+' within one guard time with nothing between them, and no
 * input for one guard time after the third. Anything else is data: the
 * candidate bytes are held back until the rule decides, then dropped (an
 * escape) or passed on as data, in order.
 *
 * States (STYLE.md 10): OFF (not in data mode), DATA (nothing held), ONE and
 * TWO (that many '+' held, the window for the rest open), THREE (three held,
 * waiting for the silence after them). Events: a '+' that may be part of an
 * escape, any other byte, the timer, a flush, start and stop.
 */
#ifndef DFOTA_AT_ESCAPE_H
#define DFOTA_AT_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_log.h"
#include "dfota/clock.h"

enum at_escape_state { AT_ESC_OFF, AT_ESC_DATA, AT_ESC_ONE, AT_ESC_TWO, AT_ESC_THREE };

struct at_escape {
    enum at_escape_state state;
    struct dclock *clk;
    const struct at_log *log; /* borrowed; NULL: silent */
    uint64_t guard_us;
    uint64_t last_rx_us; /* time of the last byte received (or data mode entry) */
    uint64_t first_us;   /* time of the first held '+' */
    struct dclock_timer timer;
    /* where decided bytes go */
    void (*data)(void *ud, const uint8_t *buf, size_t len);
    void (*escape)(void *ud);
    size_t (*remaining)(void *ud); /* bytes the sink still expects; SIZE_MAX: open-ended */
    void *ud;
};

/** Starts the rule at data mode entry (entry counts as the last input). */
void at_escape_start(struct at_escape *x, struct dclock *clk, uint64_t guard_ms);
/** Stops its timer; held bytes are dropped. */
void at_escape_stop(struct at_escape *x);
/** Runs bytes through the rule. */
void at_escape_feed(struct at_escape *x, const uint8_t *buf, size_t len);
/** Passes held bytes on as data (e.g. before DTR ends data mode). */
void at_escape_flush(struct at_escape *x);
/** How many '+' are held back now (0..3). */
unsigned at_escape_held(const struct at_escape *x);

#endif
