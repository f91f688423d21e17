/* Unit tests of the AT engine: line assembly, parsing, dispatch, result
 * formatting, URC queue, data mode and the +++ guard times — on a test
 * clock, with the output captured. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

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

static void feed(struct fx *f, const char *s)
{
    at_engine_feed(f->e, (const uint8_t *)s, strlen(s));
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

static const struct at_cmd cmds[] = {
    {"E", AT_FORM_EXEC | AT_FORM_SET, 1, 1, "i", h_echo, 0, 0},
    {"V", AT_FORM_EXEC | AT_FORM_SET, 1, 1, "i", h_verbose, 0, 0},
    {"+CSQ", AT_FORM_EXEC, 0, 0, "", h_csq, 0, 0},
    {"+CMEE", AT_FORM_SET, 1, 1, "i", h_cmee, 0, AT_CME_INCORRECT_PARAMS},
    {"+TARGS", AT_FORM_SET, 2, 3, "is*", h_targs, 0, 590},
    {"+TFAIL", AT_FORM_EXEC, 0, 0, "", h_fail, 0, 0},
    {"+TLATER", AT_FORM_EXEC, 0, 0, "", h_later, 0, 0},
    {"+TUP", AT_FORM_SET, 1, 1, "i", h_upload, 0, 0},
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    struct at_engine_cfg cfg = {.output = capture, .output_ud = f, .urc_gap_ms = 10,
                                .line_max = 64, .guard_ms = 1000};
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
    assert_string_equal(f->out, "\r\nERROR\r\n");
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
    at_engine_finish(f->e, AT_OK);
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
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
