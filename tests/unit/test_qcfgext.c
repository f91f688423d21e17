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
#include "modem_fx.h"

static int setup(void **state)
{
    mfx_setup(state, "test_qcfgext");
    struct mfx *f = *state;
    mfx_start(f);
    return 0;
}

static int teardown(void **state)
{
    return mfx_teardown(state);
}

#define QUERY "AT+QCFGEXT=\"fota_apn\""

static void test_test_form_lists_the_line_a_bg95_prints(void **state)
{
    struct mfx *f = *state;
    assert_string_equal(mfx_at(f, "AT+QCFGEXT=?"),
                        "\r\n+QCFGEXT: \"fota_apn\",<iptype>,<apn>[,<username>,<password>]\r\n"
                        "\r\nOK\r\n");
}

static void test_query_before_any_set_is_ipv4_without_apn(void **state)
{
    struct mfx *f = *state;
    assert_string_equal(mfx_at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",0,\"\"\r\n\r\nOK\r\n");
}

static void test_set_then_query_gives_the_setting_back(void **state)
{
    struct mfx *f = *state;
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
        assert_string_equal(mfx_at(f, line), "\r\nOK\r\n");
        snprintf(want, sizeof(want), "\r\n+QCFGEXT: \"fota_apn\",%s\r\n\r\nOK\r\n", cases[i].shown);
        assert_string_equal(mfx_at(f, QUERY), want);
    }
    /* the name matches case-insensitively, as the command name does */
    assert_string_equal(mfx_at(f, "at+qcfgext=\"FOTA_APN\",1,\"x\""), "\r\nOK\r\n");
    assert_string_equal(mfx_at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",1,\"x\"\r\n\r\nOK\r\n");
}

static void test_longest_strings_are_taken(void **state)
{
    struct mfx *f = *state;
    char apn[100], cred[128], line[600], want[600];
    memset(apn, 'a', 99);
    apn[99] = '\0';
    memset(cred, 'u', 127);
    cred[127] = '\0';
    snprintf(line, sizeof(line), QUERY ",0,\"%s\",\"%s\",\"%s\"", apn, cred, cred);
    assert_string_equal(mfx_at(f, line), "\r\nOK\r\n");
    snprintf(want, sizeof(want), "\r\n+QCFGEXT: \"fota_apn\",0,\"%s\",\"%s\",\"%s\"\r\n\r\nOK\r\n",
             apn, cred, cred);
    assert_string_equal(mfx_at(f, QUERY), want);
}

static void test_every_bad_form_is_error_and_changes_nothing(void **state)
{
    struct mfx *f = *state;
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
    assert_string_equal(mfx_at(f, QUERY ",1,\"kept\",\"u\",\"p\""), "\r\nOK\r\n");
    static const char *const cmee[] = {"AT+CMEE=0", "AT+CMEE=1", "AT+CMEE=2"};
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(mfx_at(f, cmee[k]), "\r\nOK\r\n");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            const char *got = mfx_at(f, bad[i]);
            if (strcmp(got, "\r\nERROR\r\n") != 0)
                fail_msg("%s (%s) answered %s", bad[i], cmee[k], got);
        }
    }
    assert_string_equal(mfx_at(f, QUERY),
                        "\r\n+QCFGEXT: \"fota_apn\",1,\"kept\",\"u\",\"p\"\r\n\r\nOK\r\n");
}

static void test_setting_is_kept_across_a_restart(void **state)
{
    struct mfx *f = *state;
    assert_string_equal(mfx_at(f, QUERY ",2,\"fleet.apn\",\"u1\",\"p1\""), "\r\nOK\r\n");
    mfx_stop(f);
    mfx_start(f);
    assert_string_equal(mfx_at(f, QUERY),
                        "\r\n+QCFGEXT: \"fota_apn\",2,\"fleet.apn\",\"u1\",\"p1\"\r\n\r\nOK\r\n");
    /* a shorter setting replaces the whole of the longer one */
    assert_string_equal(mfx_at(f, QUERY ",0,\"b\""), "\r\nOK\r\n");
    mfx_stop(f);
    mfx_start(f);
    assert_string_equal(mfx_at(f, QUERY), "\r\n+QCFGEXT: \"fota_apn\",0,\"b\"\r\n\r\nOK\r\n");
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
