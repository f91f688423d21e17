/* Two modems on one loop, as a fleet will run them: while modem A takes a
 * "COM:" upload and updates from it, modem B answers every AT at once, and
 * neither sees the other's state. In-memory ports, one test clock, a real
 * store each, their file work on libuv's threadpool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dfota/clock.h"
#include "dfota/modem.h"
#include "dfota/pkg.h"
#include "dfota/port.h"

#define OLD "BG95M3LAR02A03_01.012.01.012"
#define NEW "BG95M3LAR02A04_01.200.01.200"

struct unit {
    struct port *p;
    struct modem *m;
    char dir[80];
    char got[1 << 16]; /* everything it sent, appended */
    size_t len;
    bool closed;
};

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    char top[64];
    struct unit a, b;
};

static void take(struct unit *u)
{
    u->len += port_mem_take(u->p, u->got + u->len, sizeof(u->got) - u->len);
}

/* Turns the loop and the clock (1 ms a turn) until @p want has arrived on
 * @p u; a wall-clock deadline only bounds a hang. Returns the turns. */
static unsigned pump_until(struct fx *x, struct unit *u, const char *want)
{
    time_t end = time(NULL) + 30;
    unsigned turns = 0;
    for (;;) {
        uv_run(&x->loop, UV_RUN_NOWAIT); /* completions of the modems' disk work */
        take(&x->a);
        take(&x->b);
        if (strstr(u->got, want))
            return turns;
        assert_true(time(NULL) < end);
        dclock_test_advance(x->clk, 1);
        turns++;
    }
}

static void clear(struct unit *u)
{
    u->len = 0;
    u->got[0] = '\0';
}

static void host_send(struct unit *u, const void *buf, size_t len)
{
    port_mem_feed(u->p, buf, len);
}

static void start(struct fx *x, struct unit *u, const char *name)
{
    snprintf(u->dir, sizeof(u->dir), "%s/%s", x->top, name);
    assert_int_equal(port_mem_new(x->clk, NULL, NULL, &u->p), 0);
    struct modem_cfg c = {.clock = x->clk, .uart = u->p, .state_dir = u->dir, .profile = "fast",
                          .name = name};
    assert_int_equal(modem_new(&x->loop, &c, NULL, NULL, &u->m), 0);
}

static void on_closed(void *arg)
{
    ((struct unit *)arg)->closed = true;
}

static void stop(struct fx *x, struct unit *u)
{
    modem_close(u->m, on_closed, u);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_true(u->closed);
    u->closed = false;
    port_close(u->p, on_closed, u);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    assert_true(u->closed);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->clk = dclock_new_test(&x->loop);
    snprintf(x->top, sizeof(x->top), "/tmp/test_fleet.XXXXXX");
    assert_non_null(mkdtemp(x->top));
    start(x, &x->a, "A");
    start(x, &x->b, "B");
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    stop(x, &x->a);
    stop(x, &x->b);
    dclock_close(x->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->top);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

/* B's round trip: "AT" answered within a few turns of the loop. */
static unsigned b_at(struct fx *x)
{
    clear(&x->b);
    host_send(&x->b, "AT\r", 3);
    return pump_until(x, &x->b, "\r\nOK\r\n");
}

static void test_one_modem_updates_while_the_other_answers_at_once(void **state)
{
    struct fx *x = *state;
    pump_until(x, &x->a, "+QIND: SMS DONE\r\n");
    pump_until(x, &x->b, "+QIND: SMS DONE\r\n");
    host_send(&x->a, "ATE0\r", 5);
    host_send(&x->b, "ATE0\r", 5);
    pump_until(x, &x->b, "OK\r\n");

    uint8_t *src, *dst, *pkg;
    size_t sl, dl, pl;
    assert_int_equal(pkg_image_generate(OLD, 0, &src, &sl), 0);
    assert_int_equal(pkg_image_generate(NEW, 0, &dst, &dl), 0);
    assert_int_equal(pkg_build(src, sl, OLD, dst, dl, NEW, &pkg, &pl), 0);
    free(src);
    free(dst);

    clear(&x->a);
    char cmd[64];
    int n = snprintf(cmd, sizeof(cmd), "AT+QFOTADL=\"COM:\",%zu\r", pl);
    host_send(&x->a, cmd, (size_t)n);
    pump_until(x, &x->a, "CONNECT\r\n");
    unsigned worst = 0, rounds = 0;
    for (size_t off = 0; off < pl; off += 4096) {
        host_send(&x->a, pkg + off, pl - off < 4096 ? pl - off : 4096);
        unsigned t = b_at(x); /* A takes the chunk on the same loop turn */
        worst = t > worst ? t : worst;
        rounds++;
    }
    free(pkg);
    /* A answers, resets into DFOTA mode and updates; B keeps answering */
    while (!strstr(x->a.got, "\"END\",")) {
        dclock_test_advance(x->clk, 1); /* A's stages run on the clock */
        unsigned t = b_at(x);
        worst = t > worst ? t : worst;
        rounds++;
    }
    assert_non_null(strstr(x->a.got, "+QFOTADL: "));
    assert_non_null(strstr(x->a.got, "\"END\",0"));
    pump_until(x, &x->a, "+QIND: SMS DONE\r\n");
    /* an AT costs B the loop turns its own work takes, never A's */
    assert_true(rounds > 10);
    assert_true(worst <= 3);

    clear(&x->a);
    host_send(&x->a, "AT+QGMR\r", 8);
    pump_until(x, &x->a, "OK\r\n");
    assert_non_null(strstr(x->a.got, NEW));
    clear(&x->b);
    host_send(&x->b, "AT+QGMR\r", 8);
    pump_until(x, &x->b, "OK\r\n");
    assert_non_null(strstr(x->b.got, OLD)); /* B's state is its own */
    clear(&x->b);
    host_send(&x->b, "AT+QFOTADL=4\r", 13);
    pump_until(x, &x->b, "OK\r\n");
    assert_string_equal(x->b.got, "\r\n+QFOTADL: 4,0\r\n\r\nOK\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_modem_updates_while_the_other_answers_at_once,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
