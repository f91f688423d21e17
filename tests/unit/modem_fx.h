/* modem_fx.h - the fixture of the unit tests that drive a whole modem: a
 * libuv loop, a test clock, an in-memory UART port and a real store in a
 * temporary state dir. A test file includes it after <cmocka.h> and uses
 * struct mfx as its fixture (the functions are static inline: a file uses
 * what it needs).
 *
 *   static int setup(void **state) { return mfx_setup(state, "test_x"); }
 *   static int teardown(void **state) { return mfx_teardown(state); }
 *   ... struct mfx *f = *state; mfx_start(f); mfx_at(f, "AT") ...
 */
#ifndef DFOTA_TEST_MODEM_FX_H
#define DFOTA_TEST_MODEM_FX_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dfota/clock.h"
#include "dfota/modem.h"
#include "dfota/port.h"

struct mfx {
    uv_loop_t loop;
    struct dclock *clk;
    struct port *p;
    struct modem *m;
    struct modem_cfg cfg; /* options of the next mfx_start() (its seams,
                             state dir and profile "fast" are filled in) */
    char dir[64];
    char got[1 << 16]; /* what the last take read */
    bool closed;
};

static inline void mfx_on_closed(void *arg)
{
    ((struct mfx *)arg)->closed = true;
}

/* A loop, a test clock, a state dir /tmp/<name>.XXXXXX, a UART port; no
 * modem yet. */
static inline int mfx_setup(void **state, const char *name)
{
    struct mfx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    assert_non_null(f->clk);
    snprintf(f->dir, sizeof(f->dir), "/tmp/%s.XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(port_mem_new(f->clk, NULL, NULL, &f->p), 0);
    *state = f;
    return 0;
}

/* Lets the store's work on libuv's threadpool complete: answers that wait
 * for a write come once it has (the loop blocks only while work runs). */
static inline void mfx_settle(struct mfx *f)
{
    while (f->loop.active_reqs.count)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* What the module sent since the last take. */
static inline const char *mfx_take(struct mfx *f)
{
    mfx_settle(f);
    port_mem_take(f->p, f->got, sizeof(f->got));
    return f->got;
}

/* Powers a modem on the state dir with f->cfg and runs the clock through
 * its whole boot (to SMS DONE). */
static inline void mfx_power_on(struct mfx *f)
{
    struct modem_cfg c = f->cfg;
    c.clock = f->clk;
    c.uart = f->p;
    c.state_dir = f->dir;
    if (!c.profile)
        c.profile = "fast";
    assert_int_equal(modem_new(&f->loop, &c, NULL, NULL, &f->m), 0);
    dclock_test_advance(f->clk, 1000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_non_null(strstr(mfx_take(f), "+QIND: SMS DONE"));
}

/* mfx_power_on(), then ATE0: answers come without their echo. */
static inline void mfx_start(struct mfx *f)
{
    mfx_power_on(f);
    port_mem_feed(f->p, "ATE0\r", 5);
    assert_string_equal(mfx_take(f), "ATE0\r\r\nOK\r\n");
}

/* Closes the modem (if any) and runs the loop until it is gone. */
static inline void mfx_stop(struct mfx *f)
{
    if (!f->m)
        return;
    f->closed = false;
    modem_close(f->m, mfx_on_closed, f);
    f->m = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
}

static inline int mfx_teardown(void **state)
{
    struct mfx *f = *state;
    mfx_stop(f);
    f->closed = false;
    port_close(f->p, mfx_on_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    dclock_close(f->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Sends @p line (echo off) and returns everything the module answered to
 * it (a setting is written off the loop: the answer comes once the store's
 * work has completed). */
static inline const char *mfx_at(struct mfx *f, const char *line)
{
    char buf[1200];
    snprintf(buf, sizeof(buf), "%s\r", line);
    port_mem_feed(f->p, buf, strlen(buf));
    return mfx_take(f);
}

#endif
