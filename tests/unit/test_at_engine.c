/* Unit tests of the AT engine: line assembly, parsing, dispatch, result
 * formatting, URC queue, data mode and the +++ guard times — on a test
 * clock, with the output captured. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs */
#include <cmocka.h>

#include "at/at_line.h"
#include "dfota/at.h"

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct at_engine *e;
    char out[65536];
    size_t out_len;
    unsigned writes;
    /* data sink */
    uint8_t data[65536];
    size_t data_len;
    size_t data_want;
    int escapes;
    int pending_calls;
    /* the host's side: what it sent that the engine has not taken */
    uint8_t host[4 * 1024 * 1024];
    size_t host_len;
    unsigned ready_calls; /* cfg.input_ready */
    bool job;             /* cfg.job_running */
    char log[16384];      /* cfg.log */
    size_t log_len;
    size_t after_at; /* out_len when the after-result call ran */
    unsigned after_calls;
};

static void capture(void *ud, const char *buf, size_t len)
{
    struct fx *f = ud;
    assert_true(f->out_len + len < sizeof(f->out));
    memcpy(f->out + f->out_len, buf, len);
    f->out_len += len;
    f->out[f->out_len] = '\0';
    f->writes++;
}

static void clear(struct fx *f)
{
    f->out_len = 0;
    f->out[0] = '\0';
    f->writes = 0;
}

/* Offers what the host sent until the engine takes no more (a command
 * runs) or all of it is taken, as a port does. */
static void pump(struct fx *f)
{
    size_t used = 0;
    while (used < f->host_len) {
        size_t n = at_engine_feed(f->e, f->host + used, f->host_len - used);
        assert_true(n <= f->host_len - used);
        if (!n)
            break;
        used += n;
    }
    memmove(f->host, f->host + used, f->host_len - used);
    f->host_len -= used;
}

static void feed_bytes(struct fx *f, const void *buf, size_t len)
{
    assert_true(f->host_len + len <= sizeof(f->host));
    memcpy(f->host + f->host_len, buf, len);
    f->host_len += len;
    pump(f);
}

static void feed(struct fx *f, const char *s)
{
    feed_bytes(f, s, strlen(s));
}

static void on_input_ready(void *ud)
{
    struct fx *f = ud;
    f->ready_calls++; /* never offers input from inside: the test pumps */
}

static bool on_job_running(void *ud)
{
    return ((struct fx *)ud)->job;
}

static void on_log(void *ud, int level, const char *msg)
{
    struct fx *f = ud;
    (void)level;
    int n = snprintf(f->log + f->log_len, sizeof(f->log) - f->log_len, "%s\n", msg);
    if (n > 0 && f->log_len + (size_t)n < sizeof(f->log))
        f->log_len += (size_t)n;
}

static int h_csq(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)a;
    (void)ud;
    at_engine_reply(e, "+CSQ: 26,99");
    return AT_OK;
}

static int h_echo(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    int64_t v = 0;
    if (form == AT_FORM_SET && at_args_int(a, 0, &v))
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

static int h_cmee(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)ud;
    int64_t v;
    if (at_args_int(a, 0, &v) || v < 0 || v > 2)
        return AT_CME_INCORRECT_PARAMS;
    at_engine_settings(e)->cmee = (int)v;
    return AT_OK;
}

/* +TARGS=<int>,<string>[,<any>]: echoes what it was given */
static int h_targs(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)ud;
    int64_t i;
    const char *s;
    assert_int_equal(at_args_int(a, 0, &i), 0);
    assert_int_equal(at_args_str(a, 1, &s), 0);
    at_engine_reply(e, "+TARGS: %lld,\"%s\",%u,%d", (long long)i, s, at_args_count(a),
                    at_args_present(a, 2));
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

static int h_later(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    (void)form;
    (void)a;
    struct fx *f = ud;
    f->pending_calls++;
    return AT_PENDING;
}

static void sink_data(void *ud, const uint8_t *buf, size_t len)
{
    struct fx *f = ud;
    memcpy(f->data + f->data_len, buf, len);
    f->data_len += len;
    if (f->data_want && f->data_len >= f->data_want)
        at_engine_finish(((struct fx *)ud)->e, AT_OK);
}

static size_t sink_remaining(void *ud)
{
    struct fx *f = ud;
    return f->data_want ? f->data_want - f->data_len : SIZE_MAX;
}

static void sink_escape(void *ud)
{
    struct fx *f = ud;
    f->escapes++;
    at_engine_reply(f->e, "+UP: %zu", f->data_len);
    at_engine_finish(f->e, AT_OK);
}

static const struct at_data_ops sink_ops = {sink_data, sink_remaining, sink_escape};

static int h_upload(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    struct fx *f = ud;
    int64_t n;
    assert_int_equal(at_args_int(a, 0, &n), 0);
    f->data_want = (size_t)n;
    f->data_len = 0;
    at_engine_enter_data(e, &sink_ops, f);
    return AT_CONNECT;
}

static int h_multi(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)a;
    (void)ud;
    at_engine_reply(e, "Quectel");
    at_engine_reply(e, "BG95-M3");
    at_engine_reply(e, "Revision: BG95M3LAR02A03");
    return AT_OK;
}

static int h_stray_errno(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    (void)form;
    (void)a;
    (void)ud;
    return -ENOENT; /* a handler that forgot to map its errno */
}

static int h_job(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)a;
    (void)ud;
    at_engine_reply(e, "+TJOB: ran");
    return AT_OK;
}

static void after_result(void *ud)
{
    struct fx *f = ud;
    f->after_at = f->out_len;
    f->after_calls++;
}

static int h_after(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)form;
    (void)a;
    at_engine_after_result(e, after_result, ud);
    return AT_OK;
}

static const struct at_cmd cmds[] = {
    {"E", AT_FORM_EXEC | AT_FORM_SET, 1, 1, "i", h_echo, 0, 0, 0},
    {"V", AT_FORM_EXEC | AT_FORM_SET, 1, 1, "i", h_verbose, 0, 0, 0},
    {"+CSQ", AT_FORM_EXEC, 0, 0, "", h_csq, 0, 0, 0},
    {"+CMEE", AT_FORM_SET, 1, 1, "i", h_cmee, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+TARGS", AT_FORM_SET, 2, 3, "is*", h_targs, 0, 590, 0},
    {"+TFAIL", AT_FORM_EXEC, 0, 0, "", h_fail, 0, 0, 0},
    {"+TLATER", AT_FORM_EXEC, 0, 0, "", h_later, 0, 0, 0},
    {"+TUP", AT_FORM_SET, 1, 1, "i", h_upload, 0, 0, 0},
    {"+TMULTI", AT_FORM_EXEC, 0, 0, "", h_multi, 0, 0, 0},
    {"+TERRNO", AT_FORM_EXEC, 0, 0, "", h_stray_errno, 0, 0, 0},
    {"+TJOB", AT_FORM_SET | AT_FORM_TEST, 1, 1, "i", h_job, AT_F_JOB, 590, 591},
    {"+TAFTER", AT_FORM_EXEC, 0, 0, "", h_after, 0, 0, 0},
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    struct at_engine_cfg cfg = {.output = capture,
                                .output_ud = f,
                                .urc_gap_ms = 10,
                                .line_max = 64,
                                .guard_ms = 1000,
                                .ud = f,
                                .input_ready = on_input_ready,
                                .job_running = on_job_running,
                                .log = on_log,
                                .log_level = AT_LOG_DEBUG,
                                .name = "UART"};
    f->e = at_engine_new(f->clk, &cfg);
    assert_non_null(f->e);
    assert_int_equal(at_engine_add_table(f->e, cmds, sizeof(cmds) / sizeof(cmds[0]), f), 0);
    at_engine_set_input(f->e, AT_INPUT_NORMAL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    at_engine_free(f->e);
    dclock_close(f->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void test_at_echoes_and_answers_ok_byte_for_byte(void **state)
{
    struct fx *f = *state;
    feed(f, "AT\r");
    assert_string_equal(f->out, "AT\r\r\nOK\r\n");
}

static void test_lower_case_prefix_and_command_names_work(void **state)
{
    struct fx *f = *state;
    feed(f, "at+csq\r");
    assert_string_equal(f->out, "at+csq\r\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
}

static void test_echo_off_sends_only_the_response_in_one_write(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CSQ\r");
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
    assert_int_equal(f->writes, 1);
}

static void test_v0_gives_numeric_result_codes(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "ATV0\r");
    assert_string_equal(f->out, "0\r");
    clear(f);
    feed(f, "AT+CSQ\r");
    assert_string_equal(f->out, "+CSQ: 26,99\r\n0\r");
    clear(f);
    feed(f, "AT+NOPE\r");
    assert_string_equal(f->out, "4\r");
}

static void test_cmee_modes_format_errors(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CMEE=7\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: 50\r\n");
    clear(f);
    feed(f, "AT+CMEE=2\r");
    clear(f);
    feed(f, "AT+CMEE=7\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: incorrect parameters\r\n");
    clear(f);
    feed(f, "AT+TFAIL\r"); /* Quectel's own codes stay numeric in mode 2 */
    assert_string_equal(f->out, "\r\n+CME ERROR: 591\r\n");
    clear(f);
    feed(f, "AT+CMEE=0\r");
    clear(f);
    feed(f, "AT+TFAIL\r");
    assert_string_equal(f->out, "\r\nERROR\r\n");
}

static void test_concatenated_commands_give_one_final_result(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CSQ;+CSQ\r");
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
    assert_int_equal(f->writes, 1);
}

static void test_error_in_the_middle_stops_the_line(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CSQ;+BOGUS;+CSQ\r");
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\nERROR\r\n");
}

static void test_arguments_are_typed_and_checked_centrally(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TARGS=42,\"a;b,c\"\r");
    assert_string_equal(f->out, "\r\n+TARGS: 42,\"a;b,c\",2,0\r\n\r\nOK\r\n");
    clear(f);
    feed(f, "AT+TARGS=\"x\",\"y\"\r"); /* wrong type: the table's code */
    assert_string_equal(f->out, "\r\n+CME ERROR: 590\r\n");
    clear(f);
    feed(f, "AT+TARGS=1,\"y\",3,4\r"); /* too many */
    assert_string_equal(f->out, "\r\n+CME ERROR: 590\r\n");
    clear(f);
    feed(f, "AT+TARGS=1,\"unterminated\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: 590\r\n");
    clear(f);
    feed(f, "AT+TARGS=99999999999999999999999,\"y\"\r"); /* not an int64: a bare word */
    assert_string_equal(f->out, "\r\n+CME ERROR: 590\r\n");
    clear(f);
    feed(f, "AT+CSQ=?\r"); /* a form the table does not allow */
    assert_string_equal(f->out, "\r\n+CME ERROR: 3\r\n");
}

static void test_backspace_edits_the_line(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CSX\bQ\r");
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
}

static void test_a_slash_repeats_the_last_line(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    feed(f, "AT+CSQ\r");
    clear(f);
    feed(f, "A/");
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
}

static void test_overlong_line_gets_error_and_engine_recovers(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    char big[10240];
    memset(big, 'x', sizeof(big));
    memcpy(big, "AT", 2);
    big[sizeof(big) - 1] = '\0';
    feed(f, big);
    feed(f, "\r");
    assert_string_equal(f->out, "\r\nERROR\r\n");
    clear(f);
    feed(f, "AT\r");
    assert_string_equal(f->out, "\r\nOK\r\n");
}

static void test_garbage_before_the_prefix_is_ignored(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "\x01zz\n\rxxAT\r");
    assert_string_equal(f->out, "\r\nOK\r\n");
}

static void test_input_error_state_answers_error(void **state)
{
    struct fx *f = *state;
    at_engine_set_input(f->e, AT_INPUT_ERROR);
    feed(f, "AT+CSQ\r");
    assert_string_equal(f->out, "AT+CSQ\r\r\nERROR\r\n");
    clear(f);
    at_engine_set_input(f->e, AT_INPUT_OFF);
    feed(f, "AT\r");
    assert_int_equal(f->out_len, 0);
}

static void test_urcs_wait_for_the_final_result_and_the_gap(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TLATER\r");
    at_engine_urc(f->e, "+QIND: \"FOTA\",\"START\"");
    assert_int_equal(f->out_len, 0);
    at_engine_reply(f->e, "+TLATER: 1");
    at_engine_finish(f->e, AT_OK);
    assert_string_equal(f->out, "\r\n+TLATER: 1\r\n\r\nOK\r\n");
    dclock_test_advance(f->clk, 9);
    assert_string_equal(f->out, "\r\n+TLATER: 1\r\n\r\nOK\r\n");
    dclock_test_advance(f->clk, 1);
    assert_string_equal(f->out, "\r\n+TLATER: 1\r\n\r\nOK\r\n\r\n+QIND: \"FOTA\",\"START\"\r\n");
}

static void test_input_during_a_pending_command_runs_after_it(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TLATER\rAT+CSQ\r");
    assert_int_equal(f->out_len, 0);
    assert_int_equal(f->host_len, 7); /* not taken: it waits with the host's side */
    at_engine_finish(f->e, AT_OK);
    assert_string_equal(f->out, "\r\nOK\r\n");
    assert_int_equal(f->ready_calls, 1);
    pump(f);
    assert_string_equal(f->out, "\r\nOK\r\n\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
}

/* ---- data mode and the +++ rule (app note 2.2.2) ---- */

static void start_upload(struct fx *f, size_t n)
{
    char cmd[32];
    feed(f, "ATE0\r");
    snprintf(cmd, sizeof(cmd), "AT+TUP=%zu\r", n);
    clear(f);
    feed(f, cmd);
    assert_string_equal(f->out, "\r\nCONNECT\r\n");
    assert_true(at_engine_in_data(f->e));
    clear(f);
}

static void test_upload_completes_at_file_size_and_the_rest_is_a_command(void **state)
{
    struct fx *f = *state;
    start_upload(f, 5);
    feed(f, "ab+cdAT\r");
    assert_int_equal(f->data_len, 5);
    assert_memory_equal(f->data, "ab+cd", 5);
    assert_false(at_engine_in_data(f->e));
    assert_string_equal(f->out, "\r\nOK\r\n\r\nOK\r\n");
}

static void test_plus_escape_with_guard_times_leaves_data_mode(void **state)
{
    struct fx *f = *state;
    start_upload(f, 100);
    feed(f, "abc");
    dclock_test_advance(f->clk, 1010);
    feed(f, "+++");
    dclock_test_advance(f->clk, 990);
    assert_true(at_engine_in_data(f->e));
    dclock_test_advance(f->clk, 20);
    assert_false(at_engine_in_data(f->e));
    assert_int_equal(f->escapes, 1);
    assert_int_equal(f->data_len, 3);
    assert_string_equal(f->out, "\r\n+UP: 3\r\n\r\nOK\r\n");
}

static void test_plus_escape_needs_guard_time_before(void **state)
{
    struct fx *f = *state;
    start_upload(f, 100);
    feed(f, "abc");
    dclock_test_advance(f->clk, 990);
    feed(f, "+++");
    dclock_test_advance(f->clk, 5000);
    assert_true(at_engine_in_data(f->e));
    assert_int_equal(f->data_len, 6);
    assert_memory_equal(f->data, "abc+++", 6);
}

static void test_plus_escape_needs_silence_after(void **state)
{
    struct fx *f = *state;
    start_upload(f, 100);
    dclock_test_advance(f->clk, 1010);
    feed(f, "+++");
    dclock_test_advance(f->clk, 990);
    feed(f, "x");
    dclock_test_advance(f->clk, 5000);
    assert_true(at_engine_in_data(f->e));
    assert_int_equal(f->data_len, 4);
    assert_memory_equal(f->data, "+++x", 4);
}

static void test_plus_escape_needs_three_within_guard(void **state)
{
    struct fx *f = *state;
    start_upload(f, 100);
    dclock_test_advance(f->clk, 1010);
    feed(f, "++");
    dclock_test_advance(f->clk, 1010);
    assert_int_equal(f->data_len, 2); /* the window closed: they were data */
    feed(f, "+");
    dclock_test_advance(f->clk, 5000);
    assert_true(at_engine_in_data(f->e));
    assert_memory_equal(f->data, "+++", 3);
}

static void test_plus_escape_as_last_bytes_of_exact_file_is_data(void **state)
{
    struct fx *f = *state;
    start_upload(f, 5);
    feed(f, "ab");
    dclock_test_advance(f->clk, 1500);
    feed(f, "+++");
    assert_false(at_engine_in_data(f->e));
    assert_int_equal(f->escapes, 0);
    assert_memory_equal(f->data, "ab+++", 5);
}

static void test_dtr_drop_leaves_data_mode_keeping_data(void **state)
{
    struct fx *f = *state;
    start_upload(f, 100);
    feed(f, "abc");
    dclock_test_advance(f->clk, 1500);
    feed(f, "++");
    at_engine_dtr_drop(f->e);
    assert_false(at_engine_in_data(f->e));
    assert_int_equal(f->escapes, 1);
    assert_memory_equal(f->data, "abc++", 5);
}

/* ---- issue 9: framing, results, flags, input, state machines ---- */

static void test_lines_of_one_command_are_one_block(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TMULTI\r"); /* ATI as a BG95 frames it */
    assert_string_equal(f->out, "\r\nQuectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n\r\nOK\r\n");
    clear(f);
    /* chained commands keep each one's own framing */
    feed(f, "AT+TMULTI;+CSQ;+TMULTI\r");
    assert_string_equal(f->out, "\r\nQuectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n"
                                "\r\n+CSQ: 26,99\r\n"
                                "\r\nQuectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n"
                                "\r\nOK\r\n");
    clear(f);
    feed(f, "ATV0\r");
    clear(f);
    feed(f, "AT+TMULTI;+CSQ\r"); /* V.250 V0: text<CR><LF> each, no header */
    assert_string_equal(f->out, "Quectel\r\nBG95-M3\r\nRevision: BG95M3LAR02A03\r\n"
                                "+CSQ: 26,99\r\n0\r");
}

static void test_cr_lf_ending_echoes_the_command_and_its_cr_only(void **state)
{
    struct fx *f = *state;
    feed(f, "AT\r\n");
    assert_string_equal(f->out, "AT\r\r\nOK\r\n");
    clear(f);
    feed(f, "AT+CSQ\r\nAT\r\n");
    assert_string_equal(f->out, "AT+CSQ\r\r\n+CSQ: 26,99\r\n\r\nOK\r\nAT\r\r\nOK\r\n");
    clear(f);
    feed(f, "AT\r"); /* the LF in a later write still belongs to that line */
    feed(f, "\n");
    assert_string_equal(f->out, "AT\r\r\nOK\r\n");
    assert_int_equal(f->host_len, 0);
    clear(f);
    feed(f, "\n"); /* a lone LF later is input like any other: echoed */
    assert_string_equal(f->out, "\n");
}

static void test_known_command_in_a_form_it_lacks_is_cme_3(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+CSQ?\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: 3\r\n");
    clear(f);
    feed(f, "AT+NOSUCH?\r"); /* unknown commands stay ERROR */
    assert_string_equal(f->out, "\r\nERROR\r\n");
    clear(f);
    feed(f, "AT+CMEE=2\r");
    clear(f);
    feed(f, "AT+CSQ?\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: operation not allowed\r\n");
    clear(f);
    feed(f, "AT+NOSUCH\r");
    assert_string_equal(f->out, "\r\nERROR\r\n");
    clear(f);
    feed(f, "AT+CMEE=0\r");
    clear(f);
    feed(f, "AT+CSQ?\r");
    assert_string_equal(f->out, "\r\nERROR\r\n");
}

static void test_results_never_collide_with_errno_values(void **state)
{
    struct fx *f = *state;
    static const int results[] = {AT_ERROR, AT_PENDING, AT_CONNECT, AT_NONE};
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        assert_true(results[i] < -4095);
    assert_int_equal(at_result_errno(0, 591), AT_OK);
    assert_int_equal(at_result_errno(-EIO, 0), AT_ERROR);
    assert_int_equal(at_result_errno(-EBUSY, 591), 591);
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TERRNO;+CSQ\r"); /* -ENOENT is not "pending": ERROR, line over */
    assert_string_equal(f->out, "\r\nERROR\r\n");
    assert_false(at_engine_busy(f->e));
    assert_non_null(strstr(f->log, "UART: +TERRNO returned errno 2"));
    clear(f);
    feed(f, "AT+TLATER\r");
    at_engine_finish(f->e, -EPERM); /* nor is -EPERM anything but ERROR */
    assert_string_equal(f->out, "\r\nERROR\r\n");
}

static void test_job_flag_refuses_the_set_form_while_a_job_runs(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    f->job = true;
    feed(f, "AT+TJOB=1\r");
    assert_string_equal(f->out, "\r\n+CME ERROR: 591\r\n");
    clear(f);
    feed(f, "AT+TJOB=?\r"); /* other forms are not the job's */
    assert_string_equal(f->out, "\r\n+TJOB: ran\r\n\r\nOK\r\n");
    clear(f);
    feed(f, "AT+TJOB=\"x\"\r"); /* the arguments are checked first */
    assert_string_equal(f->out, "\r\n+CME ERROR: 590\r\n");
    clear(f);
    f->job = false;
    feed(f, "AT+TJOB=1\r");
    assert_string_equal(f->out, "\r\n+TJOB: ran\r\n\r\nOK\r\n");
}

static void test_line_framing_returns_how_many_bytes_it_took(void **state)
{
    (void)state;
    struct at_settings set = {.s3 = '\r', .s4 = '\n', .s5 = '\b'};
    struct at_log log = {0};
    struct at_line l;
    assert_int_equal(at_line_init(&l, 16, &set, &log), 0);
    const char *in = "xxAT+X\r\nA/AT+Y";
    size_t len = strlen(in), quiet;
    bool overflow;
    size_t n = len;
    assert_int_equal(at_line_feed(&l, (const uint8_t *)in, &n, &quiet), AT_LINE_DONE);
    assert_int_equal(n, 7);
    assert_int_equal(quiet, 0);
    assert_string_equal(at_line_text(&l, &overflow), "+X");
    assert_false(overflow);
    in += n;
    len -= n;
    n = len;
    assert_int_equal(at_line_feed(&l, (const uint8_t *)in, &n, &quiet), AT_LINE_REPEAT);
    assert_int_equal(n, 3); /* the LF (no echo), then "A/" */
    assert_int_equal(quiet, 1);
    in += n;
    len -= n;
    n = len;
    assert_int_equal(at_line_feed(&l, (const uint8_t *)in, &n, &quiet), AT_LINE_NONE);
    assert_int_equal(n, len);
    assert_int_equal(l.state, AT_LINE_BODY);
    at_line_fini(&l);
}

static void test_feed_takes_one_line_a_call_and_nothing_while_a_command_runs(void **state)
{
    struct fx *f = *state;
    const uint8_t two[] = "AT\rAT\r";
    assert_int_equal(at_engine_feed(f->e, two, 6), 3);
    const uint8_t later[] = "AT+TLATER\rAT\r";
    assert_int_equal(at_engine_feed(f->e, later, 13), 10);
    assert_int_equal(at_engine_feed(f->e, later + 10, 3), 0);
    assert_int_equal(f->ready_calls, 0);
    at_engine_finish(f->e, AT_OK);
    assert_int_equal(f->ready_calls, 1); /* said once, the input not taken from inside */
    assert_int_equal(at_engine_feed(f->e, later + 10, 3), 3);
}

static void test_a_host_flooding_a_busy_module_loses_nothing(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    feed(f, "AT+TLATER\r");
    clear(f);
    size_t n = 300000; /* 900 kB of "AT\r" while the command runs */
    for (size_t i = 0; i < n; i++)
        memcpy(f->host + f->host_len + 3 * i, "AT\r", 3);
    f->host_len += 3 * n;
    pump(f);
    assert_int_equal(f->host_len, 3 * n);
    at_engine_finish(f->e, AT_OK);
    size_t oks = 1, used = 0;
    f->out_len = 0;
    while (used < f->host_len) { /* as the port offers it: one line a call */
        size_t k = at_engine_feed(f->e, f->host + used, f->host_len - used);
        assert_int_equal(k, 3);
        used += k;
        assert_string_equal(f->out, "\r\nOK\r\n");
        oks++;
        f->out_len = 0;
        f->out[0] = '\0';
    }
    assert_int_equal(oks, n + 1);
    f->host_len = 0;
}

static void test_after_result_runs_between_the_ok_and_the_next_line(void **state)
{
    struct fx *f = *state;
    feed(f, "ATE0\r");
    clear(f);
    feed(f, "AT+TAFTER;+CSQ\rAT\r");
    assert_int_equal(f->after_calls, 1);
    assert_int_equal(f->after_at, strlen("\r\n+CSQ: 26,99\r\n\r\nOK\r\n"));
    assert_string_equal(f->out, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n\r\nOK\r\n");
}

static void test_state_machines_log_their_transitions_naming_the_engine(void **state)
{
    struct fx *f = *state;
    feed(f, "AT\r\n");
    assert_non_null(strstr(f->log, "UART: line: idle -> a ('A')\n"
                                   "UART: line: a -> body ('T')\n"
                                   "UART: line: body -> cr (S3)\n"
                                   "UART: line: cr -> idle (S4)\n"));
    start_upload(f, 100);
    f->log_len = 0;
    dclock_test_advance(f->clk, 1010);
    feed(f, "+++");
    dclock_test_advance(f->clk, 1010);
    assert_false(at_engine_in_data(f->e));
    f->log[f->log_len] = '\0';
    assert_non_null(strstr(f->log, "UART: escape: data -> one ('+')\n"
                                   "UART: escape: one -> two ('+')\n"
                                   "UART: escape: two -> three ('+')\n"
                                   "UART: escape: three -> data (silence)\n"
                                   "UART: escape: data -> off (stop)\n"));
}

static void test_debug_logs_are_not_made_above_the_level(void **state)
{
    struct fx *f = *state;
    at_engine_free(f->e);
    struct at_engine_cfg cfg = {
        .output = capture, .output_ud = f, .ud = f, .log = on_log, .log_level = AT_LOG_INFO};
    f->e = at_engine_new(f->clk, &cfg);
    assert_non_null(f->e);
    at_engine_set_input(f->e, AT_INPUT_NORMAL);
    feed(f, "AT\r");
    assert_string_equal(f->out, "AT\r\r\nOK\r\n");
    assert_int_equal(f->log_len, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_at_echoes_and_answers_ok_byte_for_byte),
        T(test_lower_case_prefix_and_command_names_work),
        T(test_echo_off_sends_only_the_response_in_one_write),
        T(test_v0_gives_numeric_result_codes),
        T(test_cmee_modes_format_errors),
        T(test_concatenated_commands_give_one_final_result),
        T(test_error_in_the_middle_stops_the_line),
        T(test_arguments_are_typed_and_checked_centrally),
        T(test_backspace_edits_the_line),
        T(test_a_slash_repeats_the_last_line),
        T(test_overlong_line_gets_error_and_engine_recovers),
        T(test_garbage_before_the_prefix_is_ignored),
        T(test_input_error_state_answers_error),
        T(test_urcs_wait_for_the_final_result_and_the_gap),
        T(test_input_during_a_pending_command_runs_after_it),
        T(test_upload_completes_at_file_size_and_the_rest_is_a_command),
        T(test_plus_escape_with_guard_times_leaves_data_mode),
        T(test_plus_escape_needs_guard_time_before),
        T(test_plus_escape_needs_silence_after),
        T(test_plus_escape_needs_three_within_guard),
        T(test_plus_escape_as_last_bytes_of_exact_file_is_data),
        T(test_dtr_drop_leaves_data_mode_keeping_data),
        T(test_lines_of_one_command_are_one_block),
        T(test_cr_lf_ending_echoes_the_command_and_its_cr_only),
        T(test_known_command_in_a_form_it_lacks_is_cme_3),
        T(test_results_never_collide_with_errno_values),
        T(test_job_flag_refuses_the_set_form_while_a_job_runs),
        T(test_line_framing_returns_how_many_bytes_it_took),
        T(test_feed_takes_one_line_a_call_and_nothing_while_a_command_runs),
        T(test_a_host_flooding_a_busy_module_loses_nothing),
        T(test_after_result_runs_between_the_ok_and_the_next_line),
        T(test_state_machines_log_their_transitions_naming_the_engine),
        T(test_debug_logs_are_not_made_above_the_level),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
