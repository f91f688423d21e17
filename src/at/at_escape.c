/* at_escape.c - the +++ escape rule (see at_escape.h). */
#include "at_escape.h"

static const uint8_t plus3[3] = {'+', '+', '+'};

enum esc_event {
    EV_PLUS,  /* a '+' that may be part of an escape */
    EV_BYTE,  /* any other byte */
    EV_TIMER, /* the window or the silence after the third '+' ended */
    EV_FLUSH, /* held bytes are data (DTR, a sink that wants no more) */
};

static const char *event_name(enum esc_event ev)
{
    switch (ev) {
    case EV_PLUS:
        return "'+'";
    case EV_BYTE:
        return "byte";
    case EV_TIMER:
        return "timer";
    case EV_FLUSH:
        return "flush";
    }
    return "?";
}

static const char *state_name(enum at_escape_state s)
{
    switch (s) {
    case AT_ESC_OFF:
        return "off";
    case AT_ESC_DATA:
        return "data";
    case AT_ESC_ONE:
        return "one";
    case AT_ESC_TWO:
        return "two";
    case AT_ESC_THREE:
        return "three";
    }
    return "?";
}

unsigned at_escape_held(const struct at_escape *x)
{
    switch (x->state) {
    case AT_ESC_OFF:
    case AT_ESC_DATA:
        return 0;
    case AT_ESC_ONE:
        return 1;
    case AT_ESC_TWO:
        return 2;
    case AT_ESC_THREE:
        return 3;
    }
    return 0;
}

/* Logs the transition and arms the timer the new state runs on. */
static void enter_state(struct at_escape *x, enum at_escape_state s, const char *event)
{
    if (at_log_on(x->log, AT_LOG_DEBUG) && s != x->state)
        at_log_state(x->log, "escape", state_name(x->state), state_name(s), event);
    x->state = s;
    switch (s) {
    case AT_ESC_OFF:
    case AT_ESC_DATA:
        if (x->clk)
            dclock_timer_stop(&x->timer);
        break;
    case AT_ESC_ONE:   /* the window for the other two */
    case AT_ESC_THREE: /* the silence after the third */
        dclock_timer_start(&x->timer, x->guard_us / 1000);
        break;
    case AT_ESC_TWO:
        break;
    }
}

/* Held '+' turn out to be data: passed on, back to DATA. */
static void release(struct at_escape *x, const char *event)
{
    unsigned n = at_escape_held(x);
    enter_state(x, AT_ESC_DATA, event);
    if (n)
        x->data(x->ud, plus3, n);
}

/* Holds one more '+', or lets it go as the sink's last bytes: a sink that
 * expects no more than what is held takes it as its end, not an escape. */
static void hold(struct at_escape *x, enum at_escape_state next)
{
    enter_state(x, next, "'+'");
    size_t want = x->remaining ? x->remaining(x->ud) : SIZE_MAX;
    if (want <= at_escape_held(x))
        release(x, "sink full");
}

/* ---- one handler per state ------------------------------------------- */

static void on_off(struct at_escape *x, enum esc_event ev)
{
    (void)x;
    (void)ev; /* not in data mode: nothing to decide */
}

static void on_data(struct at_escape *x, enum esc_event ev, uint64_t now)
{
    switch (ev) {
    case EV_PLUS:
        x->first_us = now;
        hold(x, AT_ESC_ONE);
        break;
    case EV_BYTE:
    case EV_TIMER:
    case EV_FLUSH:
        break;
    }
}

static void on_held(struct at_escape *x, enum esc_event ev, enum at_escape_state next)
{
    switch (ev) {
    case EV_PLUS:
        hold(x, next);
        break;
    case EV_BYTE:
    case EV_TIMER:
    case EV_FLUSH:
        release(x, event_name(ev)); /* the rule is broken or the window closed */
        break;
    }
}

static void on_three(struct at_escape *x, enum esc_event ev)
{
    switch (ev) {
    case EV_TIMER:
        enter_state(x, AT_ESC_DATA, "silence");
        x->escape(x->ud);
        break;
    case EV_PLUS:
    case EV_BYTE:
    case EV_FLUSH:
        release(x, event_name(ev));
        break;
    }
}

static void dispatch(struct at_escape *x, enum esc_event ev, uint64_t now)
{
    switch (x->state) {
    case AT_ESC_OFF:
        on_off(x, ev);
        break;
    case AT_ESC_DATA:
        on_data(x, ev, now);
        break;
    case AT_ESC_ONE:
        on_held(x, ev, AT_ESC_TWO);
        break;
    case AT_ESC_TWO:
        on_held(x, ev, AT_ESC_THREE);
        break;
    case AT_ESC_THREE:
        on_three(x, ev);
        break;
    }
}

/* Whether a '+' received at @p now may be part of an escape in the
 * current state. */
static bool plus_candidate(const struct at_escape *x, uint64_t now)
{
    switch (x->state) {
    case AT_ESC_DATA:
        return now - x->last_rx_us >= x->guard_us;
    case AT_ESC_ONE:
    case AT_ESC_TWO:
        return now - x->first_us <= x->guard_us;
    case AT_ESC_OFF:
    case AT_ESC_THREE:
        return false;
    }
    return false;
}

static void on_timer(struct dclock_timer *t)
{
    struct at_escape *x = t->data;
    dispatch(x, EV_TIMER, dclock_now_us(x->clk));
}

void at_escape_start(struct at_escape *x, struct dclock *clk, uint64_t guard_ms)
{
    x->clk = clk;
    x->guard_us = (guard_ms ? guard_ms : 1000) * 1000;
    x->last_rx_us = dclock_now_us(clk);
    dclock_timer_init(clk, &x->timer, on_timer, x);
    x->state = AT_ESC_OFF;
    enter_state(x, AT_ESC_DATA, "start");
}

void at_escape_stop(struct at_escape *x)
{
    enter_state(x, AT_ESC_OFF, "stop");
}

void at_escape_flush(struct at_escape *x)
{
    dispatch(x, EV_FLUSH, x->clk ? dclock_now_us(x->clk) : 0);
}

void at_escape_feed(struct at_escape *x, const uint8_t *buf, size_t len)
{
    if (!len || x->state == AT_ESC_OFF)
        return;
    uint64_t now = dclock_now_us(x->clk);
    /* Fast path for bulk data: with nothing held, a chunk whose first byte
     * cannot start an escape is all data, since every later byte of it
     * follows another one at the same instant. */
    if (x->state == AT_ESC_DATA && (buf[0] != '+' || !plus_candidate(x, now))) {
        x->last_rx_us = now;
        x->data(x->ud, buf, len);
        return;
    }
    size_t run = 0; /* start of the bytes known to be data, not yet passed on */
    for (size_t i = 0; i < len; i++) {
        bool plus = buf[i] == '+' && plus_candidate(x, now);
        if (plus) {
            if (i > run)
                x->data(x->ud, buf + run, i - run);
            run = i + 1;
        }
        /* held bytes released by a plain byte go out before it: the run
         * (empty while anything is held) starts at it */
        dispatch(x, plus ? EV_PLUS : EV_BYTE, now);
        x->last_rx_us = now;
        if (x->state == AT_ESC_OFF)
            return; /* the sink ended data mode */
    }
    if (len > run)
        x->data(x->ud, buf + run, len - run);
}
