/* Unit tests of the clock layer: test clock ordering and advancing, timer
 * restart/stop, and the real clock's scaling on a real loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "dfota/clock.h"

struct rec {
    int order[16];
    int n;
};

struct tagged {
    struct dclock_timer t;
    struct rec *rec;
    int tag;
    uint64_t fired_at;
    struct dclock_timer *restart; /* a timer this one starts when it fires */
    uint64_t restart_ms;
};

static void on_fire(struct dclock_timer *t)
{
    struct tagged *x = t->data;
    x->rec->order[x->rec->n++] = x->tag;
    x->fired_at = dclock_now(t->clock);
    if (x->restart)
        dclock_timer_start(x->restart, x->restart_ms);
}

static void tag_init(struct dclock *c, struct tagged *x, struct rec *r, int tag)
{
    *x = (struct tagged){.rec = r, .tag = tag};
    dclock_timer_init(c, &x->t, on_fire, x);
}

static void test_test_clock_fires_in_due_order_and_only_when_advanced(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct dclock *c = dclock_new_test(&loop);
    struct rec r = {0};
    struct tagged a, b, d;
    tag_init(c, &a, &r, 1);
    tag_init(c, &b, &r, 2);
    tag_init(c, &d, &r, 3);
    dclock_timer_start(&a.t, 30);
    dclock_timer_start(&b.t, 10);
    dclock_timer_start(&d.t, 10); /* same due time: start order */
    assert_int_equal(dclock_test_advance(c, 9), 0);
    assert_int_equal(dclock_now(c), 9);
    assert_int_equal(dclock_test_advance(c, 1), 2);
    assert_int_equal(dclock_test_advance(c, 100), 1);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.order[0], 2);
    assert_int_equal(r.order[1], 3);
    assert_int_equal(r.order[2], 1);
    assert_int_equal(b.fired_at, 10);
    assert_int_equal(a.fired_at, 30);
    assert_int_equal(dclock_now(c), 110);
    dclock_close(c, NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_timers_started_by_callbacks_fire_within_the_same_advance(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct dclock *c = dclock_new_test(&loop);
    struct rec r = {0};
    struct tagged a, b;
    tag_init(c, &a, &r, 1);
    tag_init(c, &b, &r, 2);
    a.restart = &b.t;
    a.restart_ms = 5;
    dclock_timer_start(&a.t, 10);
    assert_int_equal(dclock_test_advance(c, 20), 2);
    assert_int_equal(b.fired_at, 15);
    dclock_close(c, NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_restart_moves_and_stop_cancels(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct dclock *c = dclock_new_test(&loop);
    struct rec r = {0};
    struct tagged a, b;
    tag_init(c, &a, &r, 1);
    tag_init(c, &b, &r, 2);
    dclock_timer_start(&a.t, 10);
    dclock_timer_start(&a.t, 50); /* restart: once, later */
    dclock_timer_start(&b.t, 20);
    assert_true(dclock_timer_active(&b.t));
    dclock_timer_stop(&b.t);
    dclock_timer_stop(&b.t); /* twice is fine */
    assert_false(dclock_timer_active(&b.t));
    assert_int_equal(dclock_test_advance(c, 49), 0);
    assert_int_equal(dclock_test_advance(c, 1), 1);
    assert_int_equal(r.n, 1);
    dclock_close(c, NULL, NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void test_real_clock_scales_module_time(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_null(dclock_new_real(&loop, 0));
    assert_null(dclock_new_real(&loop, -1));
    /* 200 ms of module time at scale 0.1 is 20 ms of wall time: bounded
     * both ways with room for a loaded machine, and far from the 200 ms a
     * clock ignoring its scale would take (or ~2 ms at scale 0.01) */
    struct dclock *c = dclock_new_real(&loop, 0.1);
    assert_non_null(c);
    assert_true(dclock_scale(c) == 0.1);
    struct rec r = {0};
    struct tagged a;
    tag_init(c, &a, &r, 1);
    uint64_t m0 = dclock_now_us(c);
    uint64_t t0 = uv_hrtime();
    dclock_timer_start(&a.t, 200);
    while (r.n == 0)
        uv_run(&loop, UV_RUN_ONCE);
    uint64_t t1 = uv_hrtime();
    uint64_t m1 = dclock_now_us(c);
    double wall_ms = (double)(t1 - t0) / 1e6;
    assert_true(a.fired_at >= m0 / 1000 + 200); /* never early in module time */
    assert_true(wall_ms >= 15.0);                  /* it took the scaled wall time */
    assert_true(wall_ms < 120.0);                  /* and not the unscaled one */
    /* module time read off the clock runs at 1/scale of the wall time */
    double module_ms = (double)(m1 - m0) / 1e3;
    assert_true(module_ms > wall_ms / 0.1 * 0.9 - 1.0);
    assert_true(module_ms < wall_ms / 0.1 * 1.1 + 1.0);
    int closed = 0;
    dclock_close(c, on_closed, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_test_clock_fires_in_due_order_and_only_when_advanced),
        cmocka_unit_test(test_timers_started_by_callbacks_fire_within_the_same_advance),
        cmocka_unit_test(test_restart_moves_and_stop_cancels),
        cmocka_unit_test(test_real_clock_scales_module_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
