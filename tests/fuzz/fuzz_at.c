/* fuzz_at.c - libFuzzer target of the AT engine (STYLE.md 14): arbitrary
 * host bytes into an engine with command tables of every shape (basic and
 * extended, typed arguments, a CME error, a handler that finishes later, a
 * data-mode upload, one that posts URCs), on a test clock, output checked
 * for shape and discarded.
 *
 * The input is what the host sends, fed as it is, except three control bytes
 * that are never fed:
 *   0x7f  the host pauses: the clock advances past the +++ guard time
 *   0x7e  the host drops DTR
 *   0x7d  the module resets: input off (a pending command or upload is cut)
 *         and back on
 * Between runs of bytes the clock advances 1 ms, so pending handlers, the
 * URC gap and the escape timers fire along the way.
 *
 *   CC=clang cmake -S . -B build-fuzz -DDFOTA_FUZZ=ON && cmake --build build-fuzz
 *   mkdir -p /tmp/fuzz_at && build-fuzz/fuzz_at -max_total_time=60 \
 *       -artifact_prefix=/tmp/fuzz_at/ /tmp/fuzz_at tests/fuzz/corpus/fuzz_at
 * (new inputs go to the first dir, crash files to the prefix: not the tree)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dfota/at.h"
#include "dfota/clock.h"

#define CTL_PAUSE 0x7f
#define CTL_DTR 0x7e
#define CTL_RESET 0x7d
#define GUARD_MS 50
#define UPLOAD_MAX 256

struct fx {
    struct dclock *clk;
    struct at_engine *e;
    struct dclock_timer later; /* finishes +TLATER */
    size_t data_want, data_got;
    bool data_on;
    bool err_mode; /* +TERR ran: back to normal input at the next pause */
};

/* Every write is one non-empty response group or URC. */
static void out(void *ud, const char *buf, size_t len)
{
    (void)ud;
    if (!buf || !len)
        abort();
    volatile char sink = buf[len - 1]; /* the whole buffer is readable */
    (void)sink;
}

static int h_flag(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    int64_t v = 0;
    if (form == AT_FORM_SET && at_args_int(a, 0, &v))
        return AT_ERROR;
    if (v != 0 && v != 1)
        return AT_ERROR;
    at_engine_settings(e)->echo = v == 1;
    return AT_OK;
}

static int h_verbose(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    int64_t v = 0;
    if (form == AT_FORM_SET && at_args_int(a, 0, &v))
        return AT_ERROR;
    at_engine_settings(e)->verbose = v == 1;
    return AT_OK;
}

static int h_quiet(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    int64_t v = 0;
    if (form == AT_FORM_SET && at_args_int(a, 0, &v))
        return AT_ERROR;
    at_engine_settings(e)->quiet = v == 1;
    return AT_OK;
}

/* ATS3/S4/S5 as the modem has them: 0..127 */
static int h_sreg(struct at_engine *e, enum at_form form, const struct at_args *a, int *reg)
{
    int64_t v;
    if (form == AT_FORM_READ) {
        at_engine_reply(e, "%03d", *reg);
        return AT_OK;
    }
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (at_args_int(a, 0, &v) || v < 0 || v > 127)
        return AT_ERROR;
    *reg = (int)v;
    return AT_OK;
}

static int h_s3(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return h_sreg(e, form, a, &at_engine_settings(e)->s3);
}

static int h_s4(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return h_sreg(e, form, a, &at_engine_settings(e)->s4);
}

static int h_s5(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return h_sreg(e, form, a, &at_engine_settings(e)->s5);
}

static int h_csq(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    (void)ud;
    if (form == AT_FORM_TEST)
        at_engine_reply(e, "+CSQ: (0-31,99),(0-7,99)");
    else
        at_engine_reply(e, "+CSQ: 26,99");
    return AT_OK;
}

static int h_cmee(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    int64_t v;
    if (form == AT_FORM_READ) {
        at_engine_reply(e, "+CMEE: %d", at_engine_settings(e)->cmee);
        return AT_OK;
    }
    if (at_args_int(a, 0, &v) || v < 0 || v > 2)
        return AT_CME_INCORRECT_PARAMS;
    at_engine_settings(e)->cmee = (int)v;
    return AT_OK;
}

/* +TARGS=<int>,<string>[,<any>]: reads every argument back */
static int h_targs(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)ud;
    int64_t i;
    const char *s;
    if (at_args_int(a, 0, &i) || at_args_str(a, 1, &s))
        return 590;
    if (at_args_present(a, 2) && at_args_is_str(a, 2) && at_args_str(a, 2, &s))
        abort(); /* a quoted argument reads as a string */
    at_engine_reply(e, "+TARGS: %lld,\"%s\",%u", (long long)i, s, at_args_count(a));
    return AT_OK;
}

static int h_fail(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    (void)form;
    (void)a;
    (void)ud;
    return 591;
}

static void later_done(struct dclock_timer *t)
{
    struct fx *f = t->data;
    at_engine_reply(f->e, "+TLATER: done");
    at_engine_finish(f->e, AT_OK);
}

/* +TLATER[=<ms>]: finishes later through at_engine_finish() */
static int h_later(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    struct fx *f = ud;
    int64_t ms = 3;
    if (form == AT_FORM_SET && (at_args_int(a, 0, &ms) || ms < 0 || ms > 2000))
        return AT_ERROR;
    dclock_timer_start(&f->later, (uint64_t)ms);
    return AT_PENDING;
}

/* +TURC=<n>: posts n URCs while the command runs, then one more from the
 * clock after the final result */
static int h_urc(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)ud;
    int64_t n;
    if (at_args_int(a, 0, &n) || n < 0 || n > 100)
        return AT_ERROR;
    for (int64_t i = 0; i < n; i++)
        at_engine_urc(e, "+TURC: %lld", (long long)i);
    at_engine_urc_now(e, "+TNOW");
    return AT_OK;
}

static void sink_data(void *ud, const uint8_t *buf, size_t len)
{
    struct fx *f = ud;
    if (!f->data_on || !len || !buf)
        abort(); /* bytes only in data mode */
    f->data_got += len;
    if (f->data_got > f->data_want)
        abort(); /* never more than remaining() said */
    if (f->data_got == f->data_want) {
        f->data_on = false;
        at_engine_leave_data(f->e);
        at_engine_reply(f->e, "+TUP: %zu", f->data_got);
        at_engine_finish(f->e, AT_OK);
    }
}

static size_t sink_remaining(void *ud)
{
    struct fx *f = ud;
    return f->data_want - f->data_got;
}

static void sink_escape(void *ud)
{
    struct fx *f = ud;
    if (!f->data_on)
        abort();
    f->data_on = false;
    at_engine_reply(f->e, "+TUP: %zu", f->data_got);
    at_engine_finish(f->e, AT_OK);
}

static const struct at_data_ops sink_ops = {sink_data, sink_remaining, sink_escape};

/* +TUP=<n>: data mode until n bytes, +++ or DTR */
static int h_upload(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    struct fx *f = ud;
    int64_t n;
    if (at_args_int(a, 0, &n) || n <= 0 || n > UPLOAD_MAX)
        return 590;
    f->data_want = (size_t)n;
    f->data_got = 0;
    f->data_on = true;
    at_engine_enter_data(e, &sink_ops, f);
    return AT_CONNECT;
}

/* +TERR: the interpreter between RDY and APP RDY; +TNORM back */
static int h_err(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)a;
    ((struct fx *)ud)->err_mode = true;
    at_engine_set_input(e, AT_INPUT_ERROR);
    return AT_NONE;
}

#define BASIC (AT_FORM_EXEC | AT_FORM_SET)
#define SREG (AT_FORM_READ | AT_FORM_SET | AT_FORM_TEST)

static const struct at_cmd basic_cmds[] = {
    {"E", BASIC, 1, 1, "i", h_flag, 0, 0, 0},  {"V", BASIC, 1, 1, "i", h_verbose, 0, 0, 0},
    {"Q", BASIC, 1, 1, "i", h_quiet, 0, 0, 0}, {"S3", SREG, 1, 1, "i", h_s3, 0, 0, 0},
    {"S4", SREG, 1, 1, "i", h_s4, 0, 0, 0},    {"S5", SREG, 1, 1, "i", h_s5, 0, 0, 0},
    {"&D", BASIC, 1, 1, "i", h_flag, 0, 0, 0},
};

static const struct at_cmd ext_cmds[] = {
    {"+CSQ", AT_FORM_EXEC | AT_FORM_TEST, 0, 0, "", h_csq, 0, 0, 0},
    {"+CMEE", AT_FORM_READ | AT_FORM_SET, 1, 1, "i", h_cmee, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+TARGS", AT_FORM_SET, 2, 16, "is*", h_targs, 0, 590, 0},
    {"+TFAIL", AT_FORM_EXEC, 0, 0, "", h_fail, 0, 0, 0},
    {"+TLATER", AT_FORM_EXEC | AT_FORM_SET, 1, 1, "i", h_later, 0, 0, 0},
    {"+TURC", AT_FORM_SET, 1, 1, "i", h_urc, 0, 0, 0},
    {"+TUP", AT_FORM_SET, 1, 1, "i", h_upload, 0, 590, 0},
    {"+TERR", AT_FORM_EXEC, 0, 0, "", h_err, AT_F_LAST, 0, 0},
    {"+TLAST", AT_FORM_EXEC, 0, 0, "", h_fail, AT_F_LAST, 0, 0},
};

/* Lets @p ms of module time pass: timers fire in order. */
static void settle(struct fx *f, uint64_t ms)
{
    dclock_test_advance(f->clk, ms);
}

/* Offers the bytes as a port does: again after each line the engine took,
 * and, while a command runs, again as the clock moves on (a command that
 * never finishes keeps the rest: the host's bytes wait, as on a UART). */
static void feed_all(struct fx *f, const uint8_t *p, size_t len)
{
    for (unsigned waits = 0; len && waits < 100;) {
        size_t n = at_engine_feed(f->e, p, len);
        if (n > len)
            abort();
        p += n;
        len -= n;
        if (!n) {
            settle(f, 1);
            waits++;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop))
        abort();
    struct fx f = {0};
    f.clk = dclock_new_test(&loop);
    if (!f.clk)
        abort();
    dclock_timer_init(f.clk, &f.later, later_done, &f);
    struct at_engine_cfg cfg = {
        .output = out, .output_ud = &f, .line_max = 128, .urc_gap_ms = 2, .guard_ms = GUARD_MS};
    f.e = at_engine_new(f.clk, &cfg);
    if (!f.e)
        abort();
    if (at_engine_add_table(f.e, basic_cmds, sizeof(basic_cmds) / sizeof(basic_cmds[0]), &f) ||
        at_engine_add_table(f.e, ext_cmds, sizeof(ext_cmds) / sizeof(ext_cmds[0]), &f))
        abort();
    at_engine_set_input(f.e, AT_INPUT_NORMAL);

    size_t run = 0;
    for (size_t i = 0; i <= size; i++) {
        bool ctl = i < size && (data[i] == CTL_PAUSE || data[i] == CTL_DTR || data[i] == CTL_RESET);
        if (i < size && !ctl)
            continue;
        if (i > run) {
            feed_all(&f, data + run, i - run);
            settle(&f, 1);
        }
        run = i + 1;
        if (i == size)
            break;
        if (data[i] == CTL_PAUSE) {
            settle(&f, GUARD_MS + 10);
            if (f.err_mode) {
                f.err_mode = false;
                at_engine_set_input(f.e, AT_INPUT_NORMAL);
            }
        } else if (data[i] == CTL_DTR) {
            at_engine_dtr_drop(f.e);
        } else {
            /* as the modem does on a reset: what a pending command waited
             * for is cancelled, the upload cut, its sink told */
            at_engine_set_input(f.e, AT_INPUT_OFF);
            dclock_timer_stop(&f.later);
            f.data_on = false;
            f.err_mode = false;
            at_engine_finish(f.e, AT_OK); /* a stale completion: no command runs */
            settle(&f, 1);
            at_engine_set_input(f.e, AT_INPUT_NORMAL);
        }
        if (f.data_on != at_engine_in_data(f.e))
            abort(); /* the sink and the engine agree on data mode */
    }
    settle(&f, 10000);
    at_engine_set_input(f.e, AT_INPUT_NORMAL);
    at_engine_urc(f.e, "+TEND");

    dclock_timer_stop(&f.later);
    at_engine_free(f.e);
    dclock_close(f.clk, NULL, NULL);
    if (uv_loop_close(&loop))
        abort();
    return 0;
}
