/* port.c - the common part of every port (see include/dfota/port.h and
 * port_int.h): the output queue, pacing at the line rate, flow control,
 * strict-rate garbling, host tracking, events and the close sequence. The
 * kinds (port_pty.c, port_mem.c) only move bytes. */
#include "port_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BITS_PER_BYTE 10u /* 8N1: start, 8 data, stop */
#define US_PER_S 1000000u
#define BUF_KEEP (16u * 1024u) /* an emptied buffer keeps at most this much memory */

/* ---- pacing ------------------------------------------------------------- */

static uint64_t div_ceil(unsigned __int128 a, uint64_t b)
{
    return (uint64_t)((a + b - 1) / b);
}

/* Starts a new burst: the line is idle now. */
static void pace_restart(struct port_pace *pc, uint64_t now_us)
{
    pc->start_us = now_us;
    pc->bytes = 0;
}

/* Bytes of the burst whose last bit has passed by @p now_us but that have
 * not been counted yet. */
static uint64_t pace_budget(const struct port_pace *pc, uint32_t bps, uint64_t now_us)
{
    if (now_us <= pc->start_us)
        return 0;
    unsigned __int128 bits = (unsigned __int128)(now_us - pc->start_us) * bps;
    uint64_t done = (uint64_t)(bits / ((uint64_t)US_PER_S * BITS_PER_BYTE));
    return done > pc->bytes ? done - pc->bytes : 0;
}

/* Milliseconds of module time until the next byte of the burst is through. */
static uint64_t pace_wait_ms(const struct port_pace *pc, uint32_t bps, uint64_t now_us)
{
    unsigned __int128 bits_us = (unsigned __int128)(pc->bytes + 1) * BITS_PER_BYTE * US_PER_S;
    uint64_t due = pc->start_us + div_ceil(bits_us, bps);
    return due > now_us ? div_ceil(due - now_us, 1000) : 0;
}

static bool paced_out(const struct port *p)
{
    return p->pace_out && p->rate;
}

static bool paced_in(const struct port *p)
{
    return p->pace_in && p->rate;
}

/* ---- common part -------------------------------------------------------- */

static void on_tx_timer(struct dclock_timer *t);
static void on_rx_timer(struct dclock_timer *t);
static void on_hold_timer(struct dclock_timer *t);

int port_int_init(struct port *p, const struct port_ops *ops, struct dclock *clk,
                  const struct port_events *ev, void *ud, const char *name, int verbose)
{
    p->name = strdup(name);
    if (!p->name)
        return -ENOMEM;
    p->ops = ops;
    p->clk = clk;
    if (ev)
        p->ev = *ev;
    p->ud = ud;
    p->verbose = verbose;
    p->rx_idle = true;
    p->rx_on = true; /* a kind starts reading */
    dclock_timer_init(clk, &p->tx_timer, on_tx_timer, p);
    dclock_timer_init(clk, &p->rx_timer, on_rx_timer, p);
    dclock_timer_init(clk, &p->hold_timer, on_hold_timer, p);
    return 0;
}

void port_int_fini(struct port *p)
{
    port_buf_free(&p->out);
    port_buf_free(&p->hold);
    free(p->name);
    p->name = NULL;
}

void port_int_log(const struct port *p, int level, const char *fmt, ...)
{
    if (level > p->verbose)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "dfota-sim port %s: %s%s\n", p->name, level == 0 ? "warning: " : "", msg);
}

/* ---- output ------------------------------------------------------------- */

int port_buf_append(struct port_buf *b, const void *src, size_t n, size_t max)
{
    if (n > max || b->len > max - n)
        return -ENOBUFS;
    if (!n)
        return 0;
    if (b->head + b->len + n > b->cap && b->head) {
        memmove(b->data, b->data + b->head, b->len);
        b->head = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->head + b->len, src, n);
    b->len += n;
    return 0;
}

void port_buf_consume(struct port_buf *b, size_t n)
{
    b->head += n;
    b->len -= n;
    if (b->len)
        return;
    b->head = 0;
    if (b->cap > BUF_KEEP)
        port_buf_free(b);
}

void port_buf_free(struct port_buf *b)
{
    free(b->data);
    *b = (struct port_buf){0};
}

/* ---- flow control -------------------------------------------------------- */

/* Tells the kind whether to read: not while pacing waits, while input the
 * owner has not taken is kept, or while the output queue is over the mark. */
static void rx_update(struct port *p)
{
    if (p->closing)
        return; /* the kind's I/O is stopped for good */
    bool on = !p->rx_stopped && !p->hold.len && !p->rx_full;
    if (on == p->rx_on)
        return;
    p->rx_on = on;
    p->ops->want_read(p, on);
}

/* The output queue grew: over the high-water mark input stops. */
static void out_grew(struct port *p)
{
    if (p->out.len > p->stats.out_peak)
        p->stats.out_peak = p->out.len;
    if (p->out.len > PORT_OUT_HIGH && !p->rx_full) {
        p->rx_full = true;
        port_int_log(p, 1, "host is not reading: %zu bytes queued, input stopped", p->out.len);
        rx_update(p);
    }
}

/* The output queue shrank: down at the low-water mark input goes on, what
 * was kept first (on the next turn: this may run inside on_data). */
static void out_drained(struct port *p)
{
    if (!p->rx_full || p->out.len > PORT_OUT_LOW)
        return;
    p->rx_full = false;
    port_int_log(p, 1, "host reads again: input resumed");
    if (p->hold.len)
        dclock_timer_start(&p->hold_timer, 0);
    rx_update(p);
}

/* Offers @p len bytes to the owner until it takes all, takes none, or the
 * output queue goes over the mark; returns how many it took. */
static size_t rx_offer(struct port *p, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (used < len && !p->closing && !p->rx_full) {
        if (!p->ev.on_data)
            return len; /* nobody takes input: it is gone */
        size_t n = p->ev.on_data(p->ud, buf + used, len - used);
        if (!n)
            break;
        used += n < len - used ? n : len - used;
    }
    return used;
}

/* Offers the kept input again. */
static void on_hold_timer(struct dclock_timer *t)
{
    struct port *p = t->data;
    if (p->closing || !p->hold.len)
        return;
    /* nothing is added to hold meanwhile: reading is stopped while it holds */
    size_t n = rx_offer(p, p->hold.data + p->hold.head, p->hold.len);
    if (p->closing)
        return;
    port_buf_consume(&p->hold, n);
    rx_update(p);
}

void port_input_resume(struct port *p)
{
    if (!p->closing && p->hold.len && !p->rx_full)
        dclock_timer_start(&p->hold_timer, 0);
}

/* Drops all queued output (the host will never read it). */
static void queue_drop(struct port *p)
{
    p->stats.dropped += p->out.len;
    port_buf_consume(&p->out, p->out.len);
    dclock_timer_stop(&p->tx_timer);
    if (p->tx_blocked) {
        p->tx_blocked = false;
        p->ops->want_write(p, false);
    }
    out_drained(p);
}

/* Hands the host side what may leave now: all of the queue in one write
 * when unpaced, what the line rate allows so far when paced. */
static void tx_pump(struct port *p)
{
    while (p->out.len && !p->tx_blocked && !p->tx_held && !p->closing) {
        size_t n = p->out.len;
        if (paced_out(p)) {
            uint64_t now = dclock_now_us(p->clk);
            uint64_t budget = pace_budget(&p->tx_pace, p->rate, now);
            if (!budget) {
                dclock_timer_start(&p->tx_timer, pace_wait_ms(&p->tx_pace, p->rate, now));
                return;
            }
            if (budget < n)
                n = (size_t)budget;
        }
        ssize_t w = p->ops->write(p, p->out.data + p->out.head, n);
        if (w < 0) {
            port_int_log(p, 0, "output failed (%s), %zu bytes dropped", strerror((int)-w),
                         p->out.len);
            queue_drop(p);
            return;
        }
        port_buf_consume(&p->out, (size_t)w);
        p->tx_pace.bytes += (uint64_t)w;
        p->stats.tx_bytes += (uint64_t)w;
        out_drained(p);
        if ((size_t)w < n) {
            p->tx_blocked = true;
            p->ops->want_write(p, true);
            return;
        }
    }
}

void port_hold_output(struct port *p, bool hold)
{
    if (p->closing || p->tx_held == hold)
        return;
    p->tx_held = hold;
    if (hold)
        return;
    pace_restart(&p->tx_pace, dclock_now_us(p->clk)); /* no burst for the time it held */
    tx_pump(p);
}

void port_drop_output(struct port *p)
{
    if (!p->closing)
        queue_drop(p);
}

static void on_tx_timer(struct dclock_timer *t)
{
    tx_pump(t->data);
}

void port_int_writable(struct port *p)
{
    if (!p->tx_blocked || p->closing)
        return;
    p->tx_blocked = false;
    p->ops->want_write(p, false);
    /* The host stalled the line; pacing resumes from now instead of
     * bursting the time it stalled. */
    pace_restart(&p->tx_pace, dclock_now_us(p->clk));
    tx_pump(p);
}

/* Whether strict mode garbles output now; stores the host's rate. Warns
 * once per mismatch. */
static bool rate_mismatch(struct port *p, uint32_t *host_bps)
{
    if (!p->strict || !p->rate)
        return false;
    uint32_t host = port_host_rate(p);
    if (!host || host == p->rate) {
        p->warned_host_rate = 0;
        p->warned_rate = 0;
        return false;
    }
    if (host != p->warned_host_rate || p->rate != p->warned_rate) {
        port_int_log(p, 0, "host reads at %u bps, module sends at %u bps: output is garbled", host,
                     p->rate);
        p->warned_host_rate = host;
        p->warned_rate = p->rate;
    }
    *host_bps = host;
    return true;
}

int port_write(struct port *p, const void *buf, size_t len)
{
    if (p->closing)
        return -EPIPE;
    if (!len)
        return 0;
    if (!p->host_open) {
        p->stats.dropped += len;
        return 0;
    }
    const uint8_t *src = buf;
    uint8_t *garbled = NULL;
    uint32_t host_bps;
    if (rate_mismatch(p, &host_bps)) {
        size_t cap = 5 * len; /* port_garble()'s bound */
        garbled = malloc(cap);
        if (!garbled)
            return -ENOMEM;
        len = port_garble(p->rate, host_bps, buf, len, garbled, cap);
        src = garbled;
    }
    bool was_idle = p->out.len == 0;
    int rc = port_buf_append(&p->out, src, len, SIZE_MAX);
    free(garbled);
    if (rc < 0)
        return rc;
    if (was_idle && !p->tx_blocked)
        pace_restart(&p->tx_pace, dclock_now_us(p->clk));
    tx_pump(p);
    out_grew(p);
    return 0;
}

bool port_output_idle(const struct port *p)
{
    return p->out.len == 0;
}

/* ---- input -------------------------------------------------------------- */

size_t port_int_rx_budget(struct port *p)
{
    if (p->closing || p->rx_stopped || p->hold.len || p->rx_full)
        return 0;
    if (!paced_in(p))
        return SIZE_MAX;
    uint64_t now = dclock_now_us(p->clk);
    if (p->rx_idle) {
        p->rx_idle = false;
        pace_restart(&p->rx_pace, now);
    }
    uint64_t budget = pace_budget(&p->rx_pace, p->rate, now);
    if (budget)
        return budget > SIZE_MAX ? SIZE_MAX : (size_t)budget;
    p->rx_stopped = true;
    rx_update(p);
    dclock_timer_start(&p->rx_timer, pace_wait_ms(&p->rx_pace, p->rate, now));
    return 0;
}

static void rx_resume(struct port *p)
{
    dclock_timer_stop(&p->rx_timer);
    if (!p->rx_stopped)
        return;
    p->rx_stopped = false;
    rx_update(p);
}

static void on_rx_timer(struct dclock_timer *t)
{
    rx_resume(t->data);
}

void port_int_rx(struct port *p, const uint8_t *buf, size_t len)
{
    if (p->closing || !len)
        return;
    p->rx_pace.bytes += len;
    p->stats.rx_bytes += len;
    size_t used = rx_offer(p, buf, len);
    if (used == len || p->closing)
        return;
    /* kept whole: bounded by one read, since nothing is read while it holds */
    if (port_buf_append(&p->hold, buf + used, len - used, SIZE_MAX) < 0) {
        port_int_log(p, 0, "out of memory: %zu input bytes lost", len - used);
        return;
    }
    rx_update(p);
}

void port_int_rx_idle(struct port *p)
{
    p->rx_idle = true;
}

/* ---- host, line, close -------------------------------------------------- */

void port_int_host(struct port *p, bool open)
{
    if (p->closing || p->host_open == open)
        return;
    p->host_open = open;
    port_int_log(p, 1, "host %s", open ? "opened" : "closed");
    if (!open) {
        if (p->out.len)
            port_int_log(p, 1, "host closed before reading %zu bytes: dropped", p->out.len);
        queue_drop(p);
        if (p->ops->discard)
            p->ops->discard(p);
    }
    if (p->ev.on_host)
        p->ev.on_host(p->ud, open);
}

void port_set_events(struct port *p, const struct port_events *ev, void *ud)
{
    p->ev = ev ? *ev : (struct port_events){0};
    p->ud = ud;
}

void port_inject_dtr(struct port *p, bool asserted)
{
    if (!p->closing && p->ev.on_dtr)
        p->ev.on_dtr(p->ud, asserted);
}

int port_set_rate(struct port *p, uint32_t bps, bool pace_out, bool pace_in)
{
    if (p->closing)
        return -EPIPE;
    int rc = p->ops->set_rate ? p->ops->set_rate(p, bps) : 0;
    if (rc < 0)
        return rc;
    if (bps != p->rate || pace_out != p->pace_out || pace_in != p->pace_in)
        port_int_log(p, 1, "rate %u bps, output %s, input %s", bps, pace_out ? "paced" : "unpaced",
                     pace_in ? "paced" : "unpaced");
    p->rate = bps;
    p->pace_out = pace_out;
    p->pace_in = pace_in;
    pace_restart(&p->tx_pace, dclock_now_us(p->clk));
    p->rx_idle = true;
    dclock_timer_stop(&p->tx_timer);
    rx_resume(p);
    tx_pump(p);
    return 0;
}

uint32_t port_rate(const struct port *p)
{
    return p->rate;
}

uint32_t port_host_rate(const struct port *p)
{
    return p->ops->host_rate ? p->ops->host_rate(p) : 0;
}

void port_set_strict_rate(struct port *p, bool strict)
{
    p->strict = strict;
    p->warned_host_rate = 0;
    p->warned_rate = 0;
}

const char *port_name(const struct port *p)
{
    return p->name;
}

const char *port_slave_path(const struct port *p)
{
    return p->ops->slave_path ? p->ops->slave_path(p) : NULL;
}

bool port_host_open(const struct port *p)
{
    return p->host_open;
}

void port_get_stats(const struct port *p, struct port_stats *out)
{
    *out = p->stats;
    out->out_queued = p->out.len;
    out->in_held = p->hold.len;
}

void port_close(struct port *p, void (*cb)(void *arg), void *arg)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_arg = arg;
    dclock_timer_stop(&p->tx_timer);
    dclock_timer_stop(&p->rx_timer);
    dclock_timer_stop(&p->hold_timer);
    p->stats.dropped += p->out.len;
    port_buf_free(&p->out); /* the input kept stays until the port is freed: on_data may
                               still be reading it */
    p->ops->close(p);
}

void port_int_closed(struct port *p)
{
    void (*cb)(void *arg) = p->close_cb;
    void *arg = p->close_arg;
    port_int_fini(p);
    p->ops->destroy(p);
    if (cb)
        cb(arg);
}
