/* clock.c - real, scaled and test clocks (see include/dfota/clock.h). */
#include "dfota/clock.h"

#include <math.h>
#include <stdlib.h>

struct dclock {
    uv_loop_t *loop;
    bool test;
    double scale;       /* real = module * scale */
    uint64_t start_ns;  /* uv_hrtime() at creation (real clock) */
    uint64_t test_us;   /* module time of a test clock */
    uint64_t seq;       /* keeps equal due times in start order */
    struct dclock_timer *head; /* pending timers, by (due, seq) */
    uv_timer_t *uv;     /* real clock: drives the earliest timer */
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void rearm(struct dclock *c);

static struct dclock *clock_alloc(uv_loop_t *loop, bool test, double scale)
{
    struct dclock *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->loop = loop;
    c->test = test;
    c->scale = scale;
    c->start_ns = uv_hrtime();
    return c;
}

static void on_uv_timer(uv_timer_t *h);

struct dclock *dclock_new_real(uv_loop_t *loop, double scale)
{
    if (!(scale > 0.0) || !isfinite(scale))
        return NULL;
    struct dclock *c = clock_alloc(loop, false, scale);
    if (!c)
        return NULL;
    c->uv = malloc(sizeof(*c->uv));
    if (!c->uv || uv_timer_init(loop, c->uv) != 0) {
        free(c->uv);
        free(c);
        return NULL;
    }
    c->uv->data = c;
    return c;
}

struct dclock *dclock_new_test(uv_loop_t *loop)
{
    return clock_alloc(loop, true, 1.0);
}

static void on_uv_closed(uv_handle_t *h)
{
    struct dclock *c = h->data;
    free(h);
    if (c->close_cb)
        c->close_cb(c->close_arg);
    free(c);
}

void dclock_close(struct dclock *c, void (*cb)(void *arg), void *arg)
{
    if (!c)
        return;
    c->close_cb = cb;
    c->close_arg = arg;
    if (c->uv) {
        uv_timer_stop(c->uv);
        uv_close((uv_handle_t *)c->uv, on_uv_closed);
        return;
    }
    if (cb)
        cb(arg);
    free(c);
}

uv_loop_t *dclock_loop(const struct dclock *c)
{
    return c->loop;
}

uint64_t dclock_now_us(const struct dclock *c)
{
    if (c->test)
        return c->test_us;
    double real_us = (double)(uv_hrtime() - c->start_ns) / 1e3;
    return (uint64_t)(real_us / c->scale);
}

uint64_t dclock_now(const struct dclock *c)
{
    return dclock_now_us(c) / 1000;
}

double dclock_scale(const struct dclock *c)
{
    return c->scale;
}

void dclock_timer_init(struct dclock *c, struct dclock_timer *t, dclock_cb cb, void *data)
{
    t->clock = c;
    t->cb = cb;
    t->data = data;
    t->due = 0;
    t->seq = 0;
    t->next = NULL;
    t->active = false;
}

static void unlink_timer(struct dclock_timer *t)
{
    struct dclock_timer **pp = &t->clock->head;
    while (*pp && *pp != t)
        pp = &(*pp)->next;
    if (*pp)
        *pp = t->next;
    t->next = NULL;
    t->active = false;
}

void dclock_timer_stop(struct dclock_timer *t)
{
    if (!t->active)
        return;
    unlink_timer(t);
    rearm(t->clock);
}

void dclock_timer_start(struct dclock_timer *t, uint64_t ms)
{
    struct dclock *c = t->clock;
    if (t->active)
        unlink_timer(t);
    t->due = dclock_now_us(c) + ms * 1000;
    t->seq = ++c->seq;
    t->active = true;
    struct dclock_timer **pp = &c->head;
    while (*pp && ((*pp)->due < t->due || ((*pp)->due == t->due && (*pp)->seq < t->seq)))
        pp = &(*pp)->next;
    t->next = *pp;
    *pp = t;
    rearm(c);
}

bool dclock_timer_active(const struct dclock_timer *t)
{
    return t->active;
}

/* Fires the earliest timer if it is due at @p now_us; returns whether it did. */
static bool fire_one(struct dclock *c, uint64_t now_us)
{
    struct dclock_timer *t = c->head;
    if (!t || t->due > now_us)
        return false;
    c->head = t->next;
    t->next = NULL;
    t->active = false;
    t->cb(t);
    return true;
}

static void rearm(struct dclock *c)
{
    if (c->test || !c->uv)
        return;
    if (!c->head) {
        uv_timer_stop(c->uv);
        return;
    }
    uint64_t now = dclock_now_us(c);
    uint64_t wait_us = c->head->due > now ? c->head->due - now : 0;
    double real_ms = ceil((double)wait_us * c->scale / 1000.0);
    uv_timer_start(c->uv, on_uv_timer, (uint64_t)real_ms, 0);
}

static void on_uv_timer(uv_timer_t *h)
{
    struct dclock *c = h->data;
    uint64_t now = dclock_now_us(c);
    /* Fire what is due now; timers a callback starts for "0 ms" wait for
     * the next turn of the loop so that input and output get their turn. */
    unsigned budget = 64;
    while (budget-- && c->head && c->head->due <= now)
        fire_one(c, now);
    rearm(c);
}

unsigned dclock_test_advance(struct dclock *c, uint64_t ms)
{
    unsigned fired = 0;
    uint64_t end = c->test_us + ms * 1000;
    for (;;) {
        struct dclock_timer *t = c->head;
        if (!t || t->due > end)
            break;
        if (t->due > c->test_us)
            c->test_us = t->due;
        fire_one(c, c->test_us);
        fired++;
    }
    c->test_us = end;
    return fired;
}
