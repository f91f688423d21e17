/* Unit tests of the network model (modem_net.c) and the PDP context
 * commands (cmd_pdp.c) on a modem with a test clock, an in-memory UART and
 * a real store in a temporary state dir: modem_net_data_ok(),
 * modem_download_apn(), --network-apns, the timing profiles' link and
 * download fields, AT+CGDCONT, AT+QICSGP, AT+QIACT, AT+QIDEACT, AT+CGATT,
 * AT+CGPADDR, and what a restart keeps (definitions) and drops
 * (activation, detach). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h> /* after the headers it needs */

#include "dfota/modem.h"
#include "dfota/port.h"
#include "modem_fx.h"
#include "modem/modem_int.h"

static int setup(void **state)
{
    mfx_setup(state, "test_pdp");
    struct mfx *f = *state;
    mfx_start(f);
    return 0;
}

static int teardown(void **state)
{
    return mfx_teardown(state);
}

#define OK "\r\nOK\r\n"
#define ERR "\r\nERROR\r\n"
#define CME50 "\r\n+CME ERROR: 50\r\n"

/* The answer @p line gets must be @p want (a lines block, then OK). */
static void expect(struct mfx *f, const char *line, const char *want)
{
    const char *got = mfx_at(f, line);
    if (strcmp(got, want) != 0)
        fail_msg("%s answered \"%s\", not \"%s\"", line, got, want);
}

/* AT+CFUN=1 after 0: OK, then the +CPIN: READY URC after the URC gap. */
static void radio_on(struct mfx *f)
{
    expect(f, "AT+CFUN=1", OK);
    dclock_test_advance(f->clk, 100);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    port_mem_take(f->p, f->got, sizeof(f->got));
    assert_string_equal(f->got, "\r\n+CPIN: READY\r\n");
}

static const char *addr(struct mfx *f, int cid)
{
    static char buf[64];
    return modem_pdp_addr(f->m, cid, MODEM_PDP_IP, buf, sizeof(buf));
}

/* ---- the model ---------------------------------------------------------- */

static void test_timing_profiles_carry_the_link_and_the_download_timers(void **state)
{
    (void)state;
    const struct modem_timing *fast = modem_timing_find("fast");
    const struct modem_timing *std = modem_timing_find("standard");
    const struct modem_timing *real = modem_timing_find("realistic");
    assert_int_equal(fast->link_rate_bps, 0);
    assert_int_equal(fast->dl_connect_timeout, 2000);
    assert_int_equal(fast->dl_stall_timeout, 1000);
    assert_int_equal(fast->dl_progress_ms, 0);
    assert_int_equal(std->link_rate_bps, 0);
    assert_int_equal(std->dl_connect_timeout, 20000);
    assert_int_equal(std->dl_stall_timeout, 30000);
    assert_int_equal(std->dl_progress_ms, 200);
    assert_int_equal(real->link_rate_bps, 37500); /* 300 kbit/s */
    assert_int_equal(real->link_latency_ms, 100);
    assert_int_equal(real->dl_connect_timeout, 60000);
    assert_int_equal(real->dl_stall_timeout, 60000);
    assert_int_equal(real->dl_progress_ms, 1000);
}

static void test_data_ok_needs_the_radio_and_ps_registration(void **state)
{
    struct mfx *f = *state;
    struct modem *m = f->m;
    assert_int_equal(modem_net_data_ok(m, "internet"), 0); /* any APN by default */
    assert_int_equal(modem_net_data_ok(m, ""), 0);
    expect(f, "AT+CFUN=4", OK);
    assert_int_equal(modem_net_data_ok(m, "internet"), -ENETUNREACH);
    expect(f, "AT+CFUN=0", OK);
    assert_int_equal(modem_net_data_ok(m, ""), -ENETUNREACH);
    radio_on(f);
    assert_int_equal(modem_net_data_ok(m, "internet"), 0);
    /* PS registration: +CEREG or +CGREG <stat> 1 (home) or 5 (roaming) */
    m->net.cereg = 0;
    m->net.cgreg = 4;
    assert_int_equal(modem_net_data_ok(m, "internet"), -ENETUNREACH);
    m->net.cgreg = 5;
    assert_int_equal(modem_net_data_ok(m, "internet"), 0);
    m->net.cgreg = 2; /* searching */
    m->net.cereg = 5;
    assert_int_equal(modem_net_data_ok(m, "internet"), 0);
    m->net.creg = 0; /* CS registration is not what a data call needs */
    assert_int_equal(modem_net_data_ok(m, "internet"), 0);
    expect(f, "AT+CGATT=0", OK);
    assert_int_equal(modem_net_data_ok(m, "internet"), -ENETUNREACH);
}

static void test_network_apns_refuses_other_apns_case_insensitively(void **state)
{
    struct mfx *f = *state;
    mfx_stop(f);
    f->cfg.network_apns = "internet,iot.example";
    mfx_start(f);
    struct modem *m = f->m;
    assert_int_equal(modem_net_data_ok(m, "internet"), 0);
    assert_int_equal(modem_net_data_ok(m, "IOT.Example"), 0);
    assert_int_equal(modem_net_data_ok(m, ""), 0); /* the network's default */
    assert_int_equal(modem_net_data_ok(m, "other"), -EACCES);
    assert_int_equal(modem_net_data_ok(m, "inter"), -EACCES);     /* no prefix match */
    assert_int_equal(modem_net_data_ok(m, "internet,"), -EACCES); /* nor across items */
    assert_int_equal(modem_net_data_ok(m, "iot.example2"), -EACCES);
    /* no radio says so before the APN does */
    expect(f, "AT+CFUN=4", OK);
    assert_int_equal(modem_net_data_ok(m, "other"), -ENETUNREACH);
}

static void test_download_apn_is_fota_apns_else_context_1s(void **state)
{
    struct mfx *f = *state;
    char buf[128];
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "");
    expect(f, "AT+CGDCONT=1,\"IP\",\"ctx1.apn\"", OK);
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "ctx1.apn");
    expect(f, "AT+QCFGEXT=\"fota_apn\",0,\"fota.apn\"", OK);
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "fota.apn");
    expect(f, "AT+QCFGEXT=\"fota_apn\",1,\"\",\"u\",\"p\"", OK); /* empty: context 1's */
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "ctx1.apn");
    expect(f, "AT+QICSGP=1,1,\"qi.apn\",\"\",\"\",0", OK); /* the same context */
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "qi.apn");
    expect(f, "AT+CGDCONT=1", OK); /* undefined */
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "");
    /* and after a restart, from the store */
    expect(f, "AT+CGDCONT=1,\"IP\",\"kept.apn\"", OK);
    mfx_stop(f);
    mfx_start(f);
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "kept.apn");
    expect(f, "AT+QCFGEXT=\"fota_apn\",0,\"f2\",\"u\",\"p\"", OK);
    mfx_stop(f);
    mfx_start(f);
    assert_string_equal(modem_download_apn(f->m, buf, sizeof(buf)), "f2");
    assert_string_equal(modem_download_apn(f->m, buf, 3), "f2");
    assert_string_equal(modem_download_apn(f->m, buf, 2), "f"); /* cut to fit */
}

/* ---- AT+CGDCONT ----------------------------------------------------------- */

static void test_cgdcont_context_1_comes_defined_ip_without_apn(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CGDCONT?", "\r\n+CGDCONT: 1,\"IP\",\"\",\"0.0.0.0\",0,0,0,0\r\n" OK);
}

static void test_cgdcont_test_form_lists_each_pdp_type(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CGDCONT=?",
           "\r\n+CGDCONT: (1-15),\"IP\",,,(0-2),(0-4),(0),(0)\r\n"
           "+CGDCONT: (1-15),\"IPV6\",,,(0-2),(0-4),(0),(0)\r\n"
           "+CGDCONT: (1-15),\"IPV4V6\",,,(0-2),(0-4),(0),(0)\r\n"
           "+CGDCONT: (1-15),\"NONIP\",,,(0-2),(0-4),(0),(0)\r\n" OK);
}

static void test_cgdcont_set_read_and_undefine(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CGDCONT=1,\"IP\",\"internet\"", OK);
    expect(f, "AT+CGDCONT=3,\"ipv4v6\",\"iot.example\",\"\",1,2", OK);
    expect(f, "AT+CGDCONT=15,\"IPV6\"", OK);
    expect(f, "AT+CGDCONT=2,\"Non-IP\",\"nidd\"", OK);
    expect(f, "AT+CGDCONT?",
           "\r\n+CGDCONT: 1,\"IP\",\"internet\",\"0.0.0.0\",0,0,0,0\r\n"
           "+CGDCONT: 2,\"NONIP\",\"nidd\",\"0.0.0.0\",0,0,0,0\r\n"
           "+CGDCONT: 3,\"IPV4V6\",\"iot.example\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",1,2,0,0\r\n"
           "+CGDCONT: 15,\"IPV6\",\"\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",0,0,0,0\r\n" OK);
    expect(f, "AT+CGDCONT=1", OK);
    expect(f, "AT+CGDCONT=2", OK);
    expect(f, "AT+CGDCONT=15", OK);
    expect(f, "AT+CGDCONT?",
           "\r\n+CGDCONT: 3,\"IPV4V6\",\"iot.example\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",1,2,0,0"
           "\r\n" OK);
    expect(f, "AT+CGDCONT=3", OK);
    expect(f, "AT+CGDCONT?", OK);
}

static void test_cgdcont_bad_forms_are_cme_50_and_change_nothing(void **state)
{
    struct mfx *f = *state;
    char long_apn[200];
    snprintf(long_apn, sizeof(long_apn), "AT+CGDCONT=1,\"IP\",\"%0100d\"", 0);
    const char *bad[] = {
        "AT+CGDCONT=0,\"IP\",\"a\"",
        "AT+CGDCONT=16,\"IP\",\"a\"",
        "AT+CGDCONT=1,\"X25\",\"a\"",
        "AT+CGDCONT=1,IP,\"a\"",
        "AT+CGDCONT=1,\"IP\",a",
        "AT+CGDCONT=\"1\",\"IP\"",
        "AT+CGDCONT=1,\"IP\",\"a\",\"\",3",
        "AT+CGDCONT=1,\"IP\",\"a\",\"\",0,5",
        "AT+CGDCONT=1,\"IP\",\"a\",\"\",0,0,0",
        "AT+CGDCONT=",
        long_apn,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(f, bad[i], CME50);
    expect(f, "AT+CMEE=0", OK);
    expect(f, bad[0], ERR);
    expect(f, "AT+CGDCONT?", "\r\n+CGDCONT: 1,\"IP\",\"\",\"0.0.0.0\",0,0,0,0\r\n" OK);
}

/* ---- AT+QICSGP ------------------------------------------------------------ */

static void test_qicsgp_test_form_and_query_of_a_context_never_set(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+QICSGP=?", "\r\n+QICSGP: (1-16),(1-3),<APN>,<username>,<password>,(0-3)\r\n" OK);
    expect(f, "AT+QICSGP=1", "\r\n+QICSGP: 1,\"\",\"\",\"\",0\r\n" OK);
    expect(f, "AT+QICSGP=2", "\r\n+QICSGP: 0,\"\",\"\",\"\",0\r\n" OK);
    expect(f, "AT+QICSGP=16", "\r\n+QICSGP: 0,\"\",\"\",\"\",0\r\n" OK);
}

static void test_qicsgp_writes_the_context_cgdcont_shows(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+QICSGP=1,1,\"iot.1nce.net\",\"\",\"\",0", OK);
    expect(f, "AT+QICSGP=1", "\r\n+QICSGP: 1,\"iot.1nce.net\",\"\",\"\",0\r\n" OK);
    expect(f, "AT+QICSGP=2,3,\"b.apn\",\"user\",\"pw\",2", OK);
    expect(f, "AT+QICSGP=2", "\r\n+QICSGP: 3,\"b.apn\",\"user\",\"pw\",2\r\n" OK);
    expect(f, "AT+QICSGP=16,2,\"six\"", OK);
    expect(f, "AT+QICSGP=16", "\r\n+QICSGP: 2,\"six\",\"\",\"\",0\r\n" OK);
    expect(f, "AT+CGDCONT?",
           "\r\n+CGDCONT: 1,\"IP\",\"iot.1nce.net\",\"0.0.0.0\",0,0,0,0\r\n"
           "+CGDCONT: 2,\"IPV4V6\",\"b.apn\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",0,0,0,0\r\n"
           "+CGDCONT: 16,\"IPV6\",\"six\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",0,0,0,0\r\n" OK);
    /* AT+CGDCONT changes the APN; the credentials stay with the context */
    expect(f, "AT+CGDCONT=2,\"IP\",\"c.apn\"", OK);
    expect(f, "AT+QICSGP=2", "\r\n+QICSGP: 1,\"c.apn\",\"user\",\"pw\",2\r\n" OK);
}

static void test_qicsgp_bad_forms_are_error_and_change_nothing(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+QICSGP=1,1,\"kept\",\"u\",\"p\",1", OK);
    const char *bad[] = {
        "AT+QICSGP=0",
        "AT+QICSGP=17",
        "AT+QICSGP=1,0,\"a\"",
        "AT+QICSGP=1,4,\"a\"",
        "AT+QICSGP=1,1",
        "AT+QICSGP=1,1,a",
        "AT+QICSGP=1,1,\"a\",\"u\"",
        "AT+QICSGP=1,1,\"a\",\"u\",\"p\",4",
        "AT+QICSGP=1,1,\"a\",u,\"p\"",
        "AT+QICSGP=1,1,\"a\",\"u\",\"p\",0,1",
        "AT+QICSGP=\"1\"",
        "AT+QICSGP=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect(f, bad[i], ERR);
    expect(f, "AT+QICSGP=1", "\r\n+QICSGP: 1,\"kept\",\"u\",\"p\",1\r\n" OK);
}

/* ---- AT+QIACT, AT+QIDEACT ------------------------------------------------- */

static void test_qiact_activates_and_reads_back_with_its_address(void **state)
{
    struct mfx *f = *state;
    char want[256];
    expect(f, "AT+QIACT=?", "\r\n+QIACT: (1-16)\r\n" OK);
    expect(f, "AT+QIACT?", OK);
    expect(f, "AT+QICSGP=1,1,\"iot.1nce.net\",\"\",\"\",0", OK);
    expect(f, "AT+QIACT=1", OK);
    snprintf(want, sizeof(want), "\r\n+QIACT: 1,1,1,\"%s\"\r\n" OK, addr(f, 1));
    expect(f, "AT+QIACT?", want);
    assert_int_equal(strncmp(addr(f, 1), "10.", 3), 0);
    expect(f, "AT+QICSGP=3,3,\"v4v6\"", OK);
    expect(f, "AT+QIACT=3", OK);
    snprintf(want, sizeof(want), "\r\n+QIACT: 1,1,1,\"%s\"\r\n", addr(f, 1));
    snprintf(want + strlen(want), sizeof(want) - strlen(want), "+QIACT: 3,1,3,\"%s\"\r\n" OK,
             addr(f, 3));
    expect(f, "AT+QIACT?", want);
    /* an active context is not redefined, nor activated twice */
    expect(f, "AT+QIACT=1", ERR);
    expect(f, "AT+QICSGP=1,1,\"other\"", ERR);
    expect(f, "AT+CGDCONT=1,\"IP\",\"other\"", "\r\n+CME ERROR: 3\r\n");
    expect(f, "AT+QIDEACT=?", "\r\n+QIDEACT: (1-16)\r\n" OK);
    expect(f, "AT+QIDEACT=1", OK);
    expect(f, "AT+QIDEACT=1", OK); /* already inactive */
    snprintf(want, sizeof(want), "\r\n+QIACT: 3,1,3,\"%s\"\r\n" OK, addr(f, 3));
    expect(f, "AT+QIACT?", want);
    expect(f, "AT+QIDEACT=3", OK);
    expect(f, "AT+QIACT?", OK);
}

static void test_qiact_addresses_are_deterministic_and_per_context(void **state)
{
    struct mfx *f = *state;
    char a1[64], a2[64], a1b[64];
    snprintf(a1, sizeof(a1), "%s", addr(f, 1));
    snprintf(a2, sizeof(a2), "%s", addr(f, 2));
    assert_string_not_equal(a1, a2);
    mfx_stop(f);
    mfx_start(f);
    snprintf(a1b, sizeof(a1b), "%s", addr(f, 1));
    assert_string_equal(a1, a1b); /* the same SIM (state dir): the same address */
}

static void test_qiact_refuses_undefined_nonip_and_bad_contexts(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+QIACT=2", ERR); /* not defined */
    expect(f, "AT+CGDCONT=2,\"NONIP\",\"nidd\"", OK);
    expect(f, "AT+QIACT=2", ERR); /* no IP over a Non-IP context */
    expect(f, "AT+QIACT=0", ERR);
    expect(f, "AT+QIACT=17", ERR);
    expect(f, "AT+QIACT=\"1\"", ERR);
    expect(f, "AT+QIDEACT=0", ERR);
    expect(f, "AT+QIACT?", OK);
}

static void test_qiact_fails_without_radio_or_registration(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CFUN=4", OK);
    expect(f, "AT+QIACT=1", ERR);
    expect(f, "AT+CMEE=2", OK);
    expect(f, "AT+QIACT=1", ERR); /* plain ERROR whatever AT+CMEE says */
    expect(f, "AT+CFUN=0", OK);
    expect(f, "AT+QIACT=1", ERR);
    radio_on(f);
    f->m->net.cereg = 2; /* searching */
    expect(f, "AT+QIACT=1", ERR);
    f->m->net.cereg = 1;
    expect(f, "AT+QIACT=1", OK);
}

static void test_qiact_refuses_an_apn_the_network_does_not_take(void **state)
{
    struct mfx *f = *state;
    mfx_stop(f);
    f->cfg.network_apns = "internet";
    mfx_start(f);
    expect(f, "AT+QICSGP=1,1,\"other.apn\"", OK);
    expect(f, "AT+QIACT=1", ERR);
    expect(f, "AT+QIACT?", OK);
    expect(f, "AT+QICSGP=1,1,\"INTERNET\"", OK);
    expect(f, "AT+QIACT=1", OK);
    expect(f, "AT+QIDEACT=1", OK);
    expect(f, "AT+QICSGP=1,1,\"\"", OK); /* the network's default APN */
    expect(f, "AT+QIACT=1", OK);
}

static void test_radio_off_detach_and_restart_deactivate(void **state)
{
    struct mfx *f = *state;
    char want[128];
    snprintf(want, sizeof(want), "\r\n+QIACT: 1,1,1,\"%s\"\r\n" OK, addr(f, 1));
    expect(f, "AT+QIACT=1", OK);
    expect(f, "AT+CFUN=4", OK);
    expect(f, "AT+QIACT?", OK);
    expect(f, "AT+CFUN=1", OK);
    expect(f, "AT+QIACT?", OK); /* the radio back does not bring the PDN back */
    expect(f, "AT+QIACT=1", OK);
    expect(f, "AT+QIACT?", want);
    expect(f, "AT+CGATT=0", OK);
    expect(f, "AT+QIACT?", OK);
    expect(f, "AT+CGATT=1", OK);
    expect(f, "AT+QIACT=1", OK);
    mfx_stop(f);
    mfx_start(f);
    expect(f, "AT+QIACT?", OK);
    expect(f, "AT+QIACT=1", OK);
    expect(f, "AT+CFUN=1,1", OK); /* the module's own reset */
    dclock_test_advance(f->clk, 1000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    port_mem_take(f->p, f->got, sizeof(f->got));
    assert_non_null(strstr(f->got, "+QIND: SMS DONE"));
    expect(f, "ATE0", "ATE0\r\r\nOK\r\n");
    expect(f, "AT+QIACT?", OK);
}

/* ---- AT+CGATT, AT+CGPADDR ------------------------------------------------- */

static void test_cgatt_follows_the_model(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CGATT=?", "\r\n+CGATT: (0,1)\r\n" OK);
    expect(f, "AT+CGATT?", "\r\n+CGATT: 1\r\n" OK);
    expect(f, "AT+CGATT=0", OK);
    expect(f, "AT+CGATT?", "\r\n+CGATT: 0\r\n" OK);
    expect(f, "AT+CEREG?", "\r\n+CEREG: 0,0\r\n" OK); /* detached: not registered for PS */
    expect(f, "AT+CREG?", "\r\n+CREG: 0,1\r\n" OK);
    expect(f, "AT+QIACT=1", ERR);
    expect(f, "AT+CGATT=1", OK);
    expect(f, "AT+CGATT?", "\r\n+CGATT: 1\r\n" OK);
    expect(f, "AT+CEREG?", "\r\n+CEREG: 0,1\r\n" OK);
    expect(f, "AT+CFUN=4", OK);
    expect(f, "AT+CGATT?", "\r\n+CGATT: 0\r\n" OK);
    expect(f, "AT+CGATT=1", "\r\n+CME ERROR: 30\r\n"); /* no radio: no network */
    expect(f, "AT+CGATT=2", CME50);
    expect(f, "AT+CGATT=\"1\"", CME50);
    expect(f, "AT+CFUN=1", OK); /* from 4: the SIM never went */
    expect(f, "AT+CGATT?", "\r\n+CGATT: 1\r\n" OK);
    /* a detach lasts until a power cycle */
    expect(f, "AT+CGATT=0", OK);
    mfx_stop(f);
    mfx_start(f);
    expect(f, "AT+CGATT?", "\r\n+CGATT: 1\r\n" OK);
}

static void test_cgpaddr_lists_defined_contexts_with_their_address(void **state)
{
    struct mfx *f = *state;
    char want[256];
    expect(f, "AT+CGPADDR=?", "\r\n+CGPADDR: (1)\r\n" OK);
    expect(f, "AT+CGPADDR", "\r\n+CGPADDR: 1,\"0.0.0.0\"\r\n" OK);
    expect(f, "AT+CGDCONT=4,\"IP\",\"b\"", OK);
    expect(f, "AT+QIACT=1", OK);
    expect(f, "AT+CGPADDR=?", "\r\n+CGPADDR: (1,4)\r\n" OK);
    snprintf(want, sizeof(want), "\r\n+CGPADDR: 1,\"%s\"\r\n+CGPADDR: 4,\"0.0.0.0\"\r\n" OK,
             addr(f, 1));
    expect(f, "AT+CGPADDR", want);
    snprintf(want, sizeof(want), "\r\n+CGPADDR: 1,\"%s\"\r\n" OK, addr(f, 1));
    expect(f, "AT+CGPADDR=1", want);
    expect(f, "AT+CGPADDR=4,2", "\r\n+CGPADDR: 4,\"0.0.0.0\"\r\n" OK); /* 2: not defined */
    expect(f, "AT+CGPADDR=17", CME50);
    expect(f, "AT+CGPADDR=\"1\"", CME50);
}

/* ---- what a restart keeps --------------------------------------------------- */

static void test_definitions_are_kept_across_a_restart(void **state)
{
    struct mfx *f = *state;
    expect(f, "AT+CGDCONT=1", OK); /* undefining is kept too */
    expect(f, "AT+CGDCONT=5,\"IPV4V6\",\"five\",\"\",2,4", OK);
    expect(f, "AT+QICSGP=7,1,\"seven\",\"u7\",\"p7\",3", OK);
    mfx_stop(f);
    mfx_start(f);
    expect(f, "AT+CGDCONT?",
           "\r\n+CGDCONT: 5,\"IPV4V6\",\"five\",\"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\",2,4,0,0\r\n"
           "+CGDCONT: 7,\"IP\",\"seven\",\"0.0.0.0\",0,0,0,0\r\n" OK);
    expect(f, "AT+QICSGP=7", "\r\n+QICSGP: 1,\"seven\",\"u7\",\"p7\",3\r\n" OK);
    expect(f, "AT+QICSGP=1", "\r\n+QICSGP: 0,\"\",\"\",\"\",0\r\n" OK);
}

static void test_a_stored_value_that_does_not_parse_is_the_default(void **state)
{
    struct mfx *f = *state;
    mfx_stop(f);
    /* a state dir written by hand (or an older build) */
    {
        uv_loop_t l;
        assert_int_equal(uv_loop_init(&l), 0);
        struct store *s;
        assert_int_equal(store_open_cfg(f->dir, &(struct store_cfg){.loop = &l}, &s), 0);
        assert_int_equal(store_set(s, "pdp1", "IP,9,0,0,\"x\",\"\",\"\""), 0);
        assert_int_equal(store_set(s, "pdp2", "FOO,0,0,0,\"x\",\"\",\"\""), 0);
        assert_int_equal(store_set(s, "pdp3", "IP,0,0,0,\"x\",\"\""), 0);
        assert_int_equal(store_set(s, "fota_apn", "7,\"x\""), 0);
        store_close(s);
        uv_run(&l, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&l), 0);
    }
    mfx_start(f);
    expect(f, "AT+CGDCONT?", "\r\n+CGDCONT: 1,\"IP\",\"\",\"0.0.0.0\",0,0,0,0\r\n" OK);
    expect(f, "AT+QCFGEXT=\"fota_apn\"", "\r\n+QCFGEXT: \"fota_apn\",0,\"\"\r\n" OK);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_timing_profiles_carry_the_link_and_the_download_timers),
        T(test_data_ok_needs_the_radio_and_ps_registration),
        T(test_network_apns_refuses_other_apns_case_insensitively),
        T(test_download_apn_is_fota_apns_else_context_1s),
        T(test_cgdcont_context_1_comes_defined_ip_without_apn),
        T(test_cgdcont_test_form_lists_each_pdp_type),
        T(test_cgdcont_set_read_and_undefine),
        T(test_cgdcont_bad_forms_are_cme_50_and_change_nothing),
        T(test_qicsgp_test_form_and_query_of_a_context_never_set),
        T(test_qicsgp_writes_the_context_cgdcont_shows),
        T(test_qicsgp_bad_forms_are_error_and_change_nothing),
        T(test_qiact_activates_and_reads_back_with_its_address),
        T(test_qiact_addresses_are_deterministic_and_per_context),
        T(test_qiact_refuses_undefined_nonip_and_bad_contexts),
        T(test_qiact_fails_without_radio_or_registration),
        T(test_qiact_refuses_an_apn_the_network_does_not_take),
        T(test_radio_off_detach_and_restart_deactivate),
        T(test_cgatt_follows_the_model),
        T(test_cgpaddr_lists_defined_contexts_with_their_address),
        T(test_definitions_are_kept_across_a_restart),
        T(test_a_stored_value_that_does_not_parse_is_the_default),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
