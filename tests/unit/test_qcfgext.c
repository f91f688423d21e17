/* Unit tests of AT+QCFGEXT="fota_apn" (app note 2.2.4) on a modem with a
 * test clock, an in-memory UART and a real store in a temporary state dir:
 * the test form, the query before any set, set and query, every bad form
 * (plain ERROR whatever AT+CMEE says, nothing changed), and the setting
 * kept across a restart of the module on the same state dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dfota/modem.h"
#include "dfota/port.h"

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct port *p;
    struct modem *m;
    char dir[64];
    char got[4096];
    bool closed;
};

static void on_closed(void *arg)
{
    ((struct fx *)arg)->closed = true;
}

/* Powers a modem on the state dir and boots it to SMS DONE, echo off. */
static void start(struct fx *f)
{
    struct modem_cfg c = {.clock = f->clk, .uart = f->p, .state_dir = f->dir, .profile = "fast"};
    assert_int_equal(modem_new(&f->loop, &c, NULL, NULL, &f->m), 0);
    dclock_test_advance(f->clk, 1000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    port_mem_take(f->p, f->got, sizeof(f->got));
    assert_non_null(strstr(f->got, "+QIND: SMS DONE"));
    port_mem_feed(f->p, "ATE0\r", 5);
    port_mem_take(f->p, f->got, sizeof(f->got));
    assert_string_equal(f->got, "ATE0\r\r\nOK\r\n");
}

static void stop(struct fx *f)
{
    f->closed = false;
    modem_close(f->m, on_closed, f);
    f->m = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    assert_non_null(f->clk);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_qcfgext.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(port_mem_new(f->clk, NULL, NULL, &f->p), 0);
    start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->m)
        stop(f);
    f->closed = false;
    port_close(f->p, on_closed, f);
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

/* Sends @p line and returns everything the module answered to it (a
 * setting is written off the loop: the answer comes once the store's work
 * on libuv's threadpool has completed). */
static const char *at(struct fx *f, const char *line)
{
    char buf[1200];
    snprintf(buf, sizeof(buf), "%s\r", line);
    port_mem_feed(f->p, buf, strlen(buf));
    while (f->loop.active_reqs.count)
        uv_run(&f->loop, UV_RUN_ONCE);
    port_mem_take(f->p, f->got, sizeof(f->got));
    return f->got;
}

#define QUERY "AT+QCFGEXT=\"fota_apn\""

static void test_test_form_lists_the_line_a_bg95_prints(void **state)
{
    struct fx *f = *state;
    assert_string_equal(at(f, "AT+QCFGEXT=?"),
                        "\r\n+QCFGEXT: \"fota_apn\",<iptype>,<apn>[,<username>,<password>]\r\n"
                        "\r\nOK\r\n");
}

static void test_query_before_any_set_is_ipv4_without_apn(void **state)
{
    struct fx *f = *state;
    assert_string_equal(at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",0,\"\"\r\n\r\nOK\r\n");
}

static void test_set_then_query_gives_the_setting_back(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *set, *shown;
    } cases[] = {
        {",1,\"iot.example\"", "1,\"iot.example\""},
        {",2,\"apn.b\",\"user\",\"secret\"", "2,\"apn.b\",\"user\",\"secret\""},
        {",0,\"\"", "0,\"\""},
        {",0,\"a b,c\",\"\",\"\"", "0,\"a b,c\",\"\",\"\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[256], want[256];
        snprintf(line, sizeof(line), QUERY "%s", cases[i].set);
        assert_string_equal(at(f, line), "\r\nOK\r\n");
        snprintf(want, sizeof(want), "\r\n+QCFGEXT: \"fota_apn\",%s\r\n\r\nOK\r\n", cases[i].shown);
        assert_string_equal(at(f, QUERY), want);
    }
    /* the name matches case-insensitively, as the command name does */
    assert_string_equal(at(f, "at+qcfgext=\"FOTA_APN\",1,\"x\""), "\r\nOK\r\n");
    assert_string_equal(at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",1,\"x\"\r\n\r\nOK\r\n");
}

static void test_longest_strings_are_taken(void **state)
{
    struct fx *f = *state;
    char apn[100], cred[128], line[600], want[600];
    memset(apn, 'a', 99);
    apn[99] = '\0';
    memset(cred, 'u', 127);
    cred[127] = '\0';
    snprintf(line, sizeof(line), QUERY ",0,\"%s\",\"%s\",\"%s\"", apn, cred, cred);
    assert_string_equal(at(f, line), "\r\nOK\r\n");
    snprintf(want, sizeof(want), "\r\n+QCFGEXT: \"fota_apn\",0,\"%s\",\"%s\",\"%s\"\r\n\r\nOK\r\n",
             apn, cred, cred);
    assert_string_equal(at(f, QUERY), want);
}

static void test_every_bad_form_is_error_and_changes_nothing(void **state)
{
    struct fx *f = *state;
    char apn100[101], cred128[129];
    memset(apn100, 'a', 100);
    apn100[100] = '\0';
    memset(cred128, 'u', 128);
    cred128[128] = '\0';
    char long_apn[200], long_user[300], long_pass[300];
    snprintf(long_apn, sizeof(long_apn), QUERY ",0,\"%s\"", apn100);
    snprintf(long_user, sizeof(long_user), QUERY ",0,\"a\",\"%s\",\"p\"", cred128);
    snprintf(long_pass, sizeof(long_pass), QUERY ",0,\"a\",\"u\",\"%s\"", cred128);
    const char *bad[] = {
        "AT+QCFGEXT=\"fota_apm\"",           /* wrong name */
        "AT+QCFGEXT=\"apn\",0,\"a\"",        /* wrong name, right shape */
        "AT+QCFGEXT=\"\"",                   /* empty name */
        QUERY ",3,\"a\"",                    /* iptype out of range */
        QUERY ",-1,\"a\"",                   /* iptype out of range */
        QUERY ",\"0\",\"a\"",                /* iptype quoted */
        QUERY ",x,\"a\"",                    /* iptype not a number */
        QUERY ",0",                          /* no APN */
        QUERY ",0,",                         /* empty APN argument */
        QUERY ",,\"a\"",                     /* no iptype */
        QUERY ",0,\"a\",\"u\"",              /* 4 arguments: user without password */
        QUERY ",0,\"a\",\"u\",",             /* password empty */
        QUERY ",0,\"a\",\"u\",\"p\",\"x\"",  /* 6 arguments */
        "AT+QCFGEXT=fota_apn",               /* name unquoted */
        "AT+QCFGEXT=fota_apn,0,\"a\"",       /* name unquoted */
        QUERY ",0,internet",                 /* APN unquoted */
        QUERY ",0,\"a\",user,\"p\"",         /* user unquoted */
        QUERY ",0,\"a\",\"u\",pass",         /* password unquoted */
        QUERY ",0,\"a",                      /* quote not closed */
        "AT+QCFGEXT=",                       /* nothing */
        long_apn,                            /* APN of 100 characters */
        long_user,                           /* user name of 128 */
        long_pass,                           /* password of 128 */
    };
    assert_string_equal(at(f, QUERY ",1,\"kept\",\"u\",\"p\""), "\r\nOK\r\n");
    static const char *const cmee[] = {"AT+CMEE=0", "AT+CMEE=1", "AT+CMEE=2"};
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(at(f, cmee[k]), "\r\nOK\r\n");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *got = at(f, bad[i]);
            if (strcmp(got, "\r\nERROR\r\n") != 0)
                fail_msg("%s (%s) answered %s", bad[i], cmee[k], got);
        }
    }
    assert_string_equal(at(f, QUERY),
                        "\r\n+QCFGEXT: \"fota_apn\",1,\"kept\",\"u\",\"p\"\r\n\r\nOK\r\n");
}

static void test_setting_is_kept_across_a_restart(void **state)
{
    struct fx *f = *state;
    assert_string_equal(at(f, QUERY ",2,\"fleet.apn\",\"u1\",\"p1\""), "\r\nOK\r\n");
    stop(f);
    start(f);
    assert_string_equal(at(f, QUERY),
                        "\r\n+QCFGEXT: \"fota_apn\",2,\"fleet.apn\",\"u1\",\"p1\"\r\n\r\nOK\r\n");
    /* a shorter setting replaces the whole of the longer one */
    assert_string_equal(at(f, QUERY ",0,\"b\""), "\r\nOK\r\n");
    stop(f);
    start(f);
    assert_string_equal(at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",0,\"b\"\r\n\r\nOK\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_test_form_lists_the_line_a_bg95_prints, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_query_before_any_set_is_ipv4_without_apn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_set_then_query_gives_the_setting_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_longest_strings_are_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_bad_form_is_error_and_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setting_is_kept_across_a_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
