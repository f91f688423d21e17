/* at_escape.c - the +++ escape rule (see at_escape.h). */
#include "at_escape.h"

static const uint8_t plus3[3] = {'+', '+', '+'};

static void on_timer(struct dclock_timer *t);

void at_escape_start(struct at_escape *x, struct dclock *clk, uint64_t guard_ms)
{
    x->clk = clk;
    x->guard_us = (guard_ms ? guard_ms : 1000) * 1000;
    x->last_rx_us = dclock_now_us(clk);
    x->held = 0;
    dclock_timer_init(clk, &x->timer, on_timer, x);
}

void at_escape_stop(struct at_escape *x)
{
    if (x->clk)
        dclock_timer_stop(&x->timer);
    x->held = 0;
}

void at_escape_flush(struct at_escape *x)
{
    unsigned n = x->held;
    x->held = 0;
    dclock_timer_stop(&x->timer);
    if (n)
        x->data(x->ud, plus3, n);
}

/* Fires either when the window for the three '+' closed with fewer (they
 * are data) or when the silence after the third one has lasted (escape). */
static void on_timer(struct dclock_timer *t)
{
    struct at_escape *x = t->data;
    if (x->held < 3) {
        at_escape_flush(x);
        return;
    }
    x->held = 0;
    x->escape(x->ud);
}

void at_escape_feed(struct at_escape *x, const uint8_t *buf, size_t len)
{
    uint64_t now = dclock_now_us(x->clk);
    if (!len)
        return;
    /* Fast path for bulk data: with nothing held, a chunk whose first byte
     * cannot start an escape is all data, since every later byte of it
     * follows another one at the same instant. */
    if (x->held == 0 && (buf[0] != '+' || now - x->last_rx_us < x->guard_us)) {
        x->last_rx_us = now;
        x->data(x->ud, buf, len);
        return;
    }
    size_t run = 0; /* start of the bytes known to be data, not yet passed on */
    for (size_t i = 0; i < len; i++) {
        uint8_t b = buf[i];
        bool candidate = false;
        if (b == '+') {
            if (x->held == 0)
                candidate = now - x->last_rx_us >= x->guard_us;
            else if (x->held < 3)
                candidate = now - x->first_us <= x->guard_us;
        }
        if (!candidate && x->held) {
            /* the rule is broken: what was held is data, before this byte */
            if (i > run)
                x->data(x->ud, buf + run, i - run);
            run = i;
            at_escape_flush(x);
        }
        if (candidate) {
            if (i > run)
                x->data(x->ud, buf + run, i - run);
            if (x->held++ == 0)
                x->first_us = now;
            run = i + 1;
            /* a sink that expects no more than what is held takes it as
             * its last bytes: the upload is complete, not escaped */
            size_t want = x->remaining ? x->remaining(x->ud) : SIZE_MAX;
            if (want <= x->held) {
                at_escape_flush(x);
            } else if (x->held == 3) {
                dclock_timer_start(&x->timer, x->guard_us / 1000);
            } else if (x->held == 1) {
                dclock_timer_start(&x->timer, x->guard_us / 1000);
            }
        }
        x->last_rx_us = now;
    }
    if (len > run)
        x->data(x->ud, buf + run, len - run);
}
