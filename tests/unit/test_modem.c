/* Unit tests of the modem: boot sequence and timing, power states, the
 * V.250 settings and their persistence, the network commands, the package
 * upload's data mode with DTR, the NAND slot of each model and URC placement
 * — on a test clock, through an in-memory UART port, with a real store in a
 * temporary state dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* after the headers it needs */
#include <cmocka.h>

#include "dfota/clock.h"
#include "dfota/modem.h"
#include "dfota/port.h"

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct port *p;
    struct modem *m;
    const struct modem_timing *t; /* the "fast" profile */
    char dir[64];
    char got[1 << 16]; /* what the last take() read */
    int ready_calls;
    char ready_model[32], ready_fw[96], ready_path[32];
    int power_downs;
    bool modem_closed, port_closed;
};

static void on_ready(void *ud, const char *model, const char *firmware, const char *path)
{
    struct fx *f = ud;
    f->ready_calls++;
    snprintf(f->ready_model, sizeof(f->ready_model), "%s", model);
    snprintf(f->ready_fw, sizeof(f->ready_fw), "%s", firmware);
    snprintf(f->ready_path, sizeof(f->ready_path), "%s", path);
}

static void on_power_down(void *ud)
{
    ((struct fx *)ud)->power_downs++;
}

static const struct modem_events events = {on_ready, on_power_down};

static void on_modem_closed(void *arg)
{
    ((struct fx *)arg)->modem_closed = true;
}

static void on_port_closed(void *arg)
{
    ((struct fx *)arg)->port_closed = true;
}

/* ---- the fixture ---------------------------------------------------- */

static void port_open(struct fx *f)
{
    assert_int_equal(port_mem_new(f->clk, NULL, NULL, &f->p), 0);
}

/* Starts a modem on the fixture's port and state dir; @p cfg may set the
 * other options (its seams, state dir and profile are overwritten). */
static void modem_start(struct fx *f, const struct modem_cfg *cfg)
{
    struct modem_cfg c = cfg ? *cfg : (struct modem_cfg){0};
    c.clock = f->clk;
    c.uart = f->p;
    c.state_dir = f->dir;
    c.profile = "fast";
    assert_int_equal(modem_new(&f->loop, &c, &events, f, &f->m), 0);
    assert_non_null(f->m);
}

/* Closes the modem, then its port, and runs the loop until both are gone. */
static void modem_stop(struct fx *f)
{
    if (f->m) {
        f->modem_closed = false;
        modem_close(f->m, on_modem_closed, f);
        f->m = NULL;
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->modem_closed);
    }
    if (f->p) {
        f->port_closed = false;
        port_close(f->p, on_port_closed, f);
        f->p = NULL;
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->port_closed);
    }
}

/* A power cut and a new process on the same state dir: a new port, a new
 * modem. */
static void modem_restart(struct fx *f, const struct modem_cfg *cfg)
{
    modem_stop(f);
    port_open(f);
    modem_start(f, cfg);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    assert_non_null(f->clk);
    f->t = modem_timing_find("fast");
    assert_non_null(f->t);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_modem.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    port_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    modem_stop(f);
    dclock_close(f->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* ---- the host's side ------------------------------------------------- */

static void adv(struct fx *f, uint64_t ms)
{
    dclock_test_advance(f->clk, ms);
}

static void host_send(struct fx *f, const char *s)
{
    port_mem_feed(f->p, s, strlen(s));
}

/* Lets the store's work on libuv's threadpool complete: answers that wait
 * for a write come once it has (the loop blocks only while work runs). */
static void settle(struct fx *f)
{
    while (f->loop.active_reqs.count)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* What the module sent since the last take(). */
static const char *take(struct fx *f)
{
    settle(f);
    port_mem_take(f->p, f->got, sizeof(f->got));
    return f->got;
}

static void expect(struct fx *f, const char *want)
{
    assert_string_equal(take(f), want);
}

static void expect_nothing(struct fx *f)
{
    assert_string_equal(take(f), "");
}

/* Sends @p line with S3 while echo is on; checks the echo and returns the
 * answer after it. */
static const char *at(struct fx *f, const char *line)
{
    char buf[1200];
    snprintf(buf, sizeof(buf), "%s\r", line);
    host_send(f, buf);
    take(f);
    size_t n = strlen(buf);
    assert_true(strlen(f->got) >= n);
    assert_memory_equal(f->got, buf, n);
    return f->got + n;
}

/* Runs the clock through the whole boot (APP RDY and the URCs after it)
 * and checks that it ends with the last boot URC. */
static void boot(struct fx *f)
{
    adv(f, f->t->boot_rdy + f->t->boot_app_rdy + 4 * f->t->boot_urc_gap);
    const char *out = take(f);
    const char *tail = "\r\n+QIND: SMS DONE\r\n";
    size_t n = strlen(out), k = strlen(tail);
    assert_true(n >= k);
    assert_string_equal(out + n - k, tail);
}

/* Leaves data mode with +++ between two guard times (the default 1 s). */
static void plus_escape(struct fx *f)
{
    adv(f, 1000);
    host_send(f, "+++");
    adv(f, 1000);
}

/* ---- boot ------------------------------------------------------------ */

static void test_boot_urcs_come_in_order_with_their_gaps(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    const struct modem_timing *t = f->t;
    assert_int_equal(f->ready_calls, 1);
    assert_string_equal(f->ready_model, "BG95-M3");
    assert_string_equal(f->ready_fw, "BG95M3LAR02A03_01.012.01.012");
    assert_string_equal(f->ready_path, "mem");

    /* power on -> RDY: nothing, and input gets no answer (not even echo) */
    expect_nothing(f);
    adv(f, t->boot_rdy - 1);
    host_send(f, "AT\r");
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\nRDY\r\n");

    /* RDY -> APP RDY: commands get ERROR */
    assert_string_equal(at(f, "AT"), "\r\nERROR\r\n");
    assert_string_equal(at(f, "AT+CSQ"), "\r\nERROR\r\n");
    adv(f, t->boot_app_rdy - 1);
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\nAPP RDY\r\n");

    static const char *const urcs[] = {"\r\n+CFUN: 1\r\n", "\r\n+CPIN: READY\r\n",
                                       "\r\n+QUSIM: 1\r\n", "\r\n+QIND: SMS DONE\r\n"};
    for (size_t i = 0; i < sizeof(urcs) / sizeof(urcs[0]); i++) {
        adv(f, t->boot_urc_gap - 1);
        expect_nothing(f);
        adv(f, 1);
        expect(f, urcs[i]);
    }
    adv(f, 1000);
    expect_nothing(f);
    assert_string_equal(at(f, "AT"), "\r\nOK\r\n");
}

static void test_wait_open_holds_power_on_until_the_host_opens(void **state)
{
    struct fx *f = *state;
    port_mem_set_host(f->p, false);
    modem_start(f, &(struct modem_cfg){.wait_open = true});
    adv(f, 5000);
    port_mem_set_host(f->p, true);
    /* had it booted at start, it would answer now */
    host_send(f, "AT\r");
    expect_nothing(f);
    adv(f, f->t->boot_rdy - 1);
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\nRDY\r\n");
    boot(f);
    assert_string_equal(at(f, "AT"), "\r\nOK\r\n");
    /* a later close and reopen is no new power-on */
    port_mem_set_host(f->p, false);
    port_mem_set_host(f->p, true);
    adv(f, 1000);
    expect_nothing(f);
    assert_string_equal(at(f, "AT"), "\r\nOK\r\n");
}

static void test_without_wait_open_it_boots_at_once_and_drops_output_while_closed(void **state)
{
    struct fx *f = *state;
    port_mem_set_host(f->p, false);
    modem_start(f, NULL);
    adv(f, 5000);
    port_mem_set_host(f->p, true);
    expect_nothing(f); /* the boot URCs went nowhere, as on a real UART */
    assert_string_equal(at(f, "AT"), "\r\nOK\r\n");
}

/* ---- V.250 settings -------------------------------------------------- */

static void test_echo_verbose_and_cmee_shape_every_answer(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    host_send(f, "AT\r");
    expect(f, "AT\r\r\nOK\r\n");
    assert_string_equal(at(f, "ATE0"), "\r\nOK\r\n");
    host_send(f, "AT\r");
    expect(f, "\r\nOK\r\n");

    /* ATV0: numeric codes, information text without the leading CR LF */
    host_send(f, "ATV0\r");
    expect(f, "0\r");
    host_send(f, "AT+NOPE\r");
    expect(f, "4\r");
    host_send(f, "AT+CSQ\r");
    expect(f, "+CSQ: 26,99\r\n0\r");
    host_send(f, "AT+IPR=1\r");
    expect(f, "+CME ERROR: 50\r\n");
    host_send(f, "ATV1\r");
    expect(f, "\r\nOK\r\n");

    /* AT+CMEE: 0 plain ERROR, 1 numeric (the default), 2 text */
    host_send(f, "AT+CMEE?\r");
    expect(f, "\r\n+CMEE: 1\r\n\r\nOK\r\n");
    host_send(f, "AT+CMEE=0\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+IPR=1\r");
    expect(f, "\r\nERROR\r\n");
    host_send(f, "AT+CMEE=2\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+IPR=1\r");
    expect(f, "\r\n+CME ERROR: incorrect parameters\r\n");
    host_send(f, "AT+QFOTADL=2\r"); /* the module's own codes stay numbers */
    expect(f, "\r\n+CME ERROR: 590\r\n");
    host_send(f, "AT+CMEE=3\r");
    expect(f, "\r\n+CME ERROR: incorrect parameters\r\n");
    host_send(f, "ATE1\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT\r");
    expect(f, "AT\r\r\nOK\r\n");
}

static void test_app_note_2_3_network_query_byte_for_byte(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    host_send(f, "AT+CSQ;+CEREG?;+CGREG?;+COPS?\r");
    expect(f, "AT+CSQ;+CEREG?;+CGREG?;+COPS?\r"
              "\r\n+CSQ: 26,99\r\n"
              "\r\n+CEREG: 0,1\r\n"
              "\r\n+CGREG: 0,4\r\n"
              "\r\n+COPS: 0,0,\"Telstra Mobile Telstra\",8\r\n"
              "\r\nOK\r\n");
}

static void test_cfun_1_1_answers_ok_then_reboots_with_volatile_settings_reset(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    assert_string_equal(at(f, "ATE0"), "\r\nOK\r\n"); /* not saved */
    host_send(f, "AT+CEREG=2\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+CFUN=1,1\r");
    expect(f, "\r\nOK\r\n");
    adv(f, 0);
    host_send(f, "AT\r"); /* resetting: no answer */
    const struct modem_timing *t = f->t;
    adv(f, t->reset + t->boot_rdy - 1);
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\nRDY\r\n");
    boot(f);
    /* echo is back on (ATE0 was not saved), +CEREG <n> back to 0 */
    host_send(f, "AT+CEREG?\r");
    expect(f, "AT+CEREG?\r\r\n+CEREG: 0,1\r\n\r\nOK\r\n");
}

static void test_cfun_0_loses_signal_and_sim_and_cfun_1_brings_them_back(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+CFUN=0\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+CFUN?\r");
    expect(f, "\r\n+CFUN: 0\r\n\r\nOK\r\n");
    host_send(f, "AT+CSQ\r");
    expect(f, "\r\n+CSQ: 99,99\r\n\r\nOK\r\n");
    host_send(f, "AT+CPIN?\r");
    expect(f, "\r\n+CME ERROR: 13\r\n");
    host_send(f, "AT+CEREG?\r");
    expect(f, "\r\n+CEREG: 0,0\r\n\r\nOK\r\n");
    host_send(f, "AT+CFUN=1\r");
    expect(f, "\r\nOK\r\n");
    adv(f, f->t->urc_gap);
    expect(f, "\r\n+CPIN: READY\r\n");
    host_send(f, "AT+CSQ\r");
    expect(f, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
    host_send(f, "AT+CPIN?\r");
    expect(f, "\r\n+CPIN: READY\r\n\r\nOK\r\n");
}

static void test_at_w_settings_survive_a_new_modem_on_the_same_state_dir(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    assert_string_equal(at(f, "AT+IPR=921600"), "\r\nOK\r\n");
    assert_string_equal(at(f, "ATE0"), "\r\nOK\r\n");
    host_send(f, "AT&W\r");
    expect(f, "\r\nOK\r\n");
    /* changed after AT&W: not kept */
    host_send(f, "AT+CMEE=2\r");
    expect(f, "\r\nOK\r\n");

    modem_restart(f, NULL);
    boot(f);
    host_send(f, "AT+IPR?\r"); /* no echo: ATE0 was saved */
    expect(f, "\r\n+IPR: 921600\r\n\r\nOK\r\n");
    host_send(f, "AT+CMEE?\r");
    expect(f, "\r\n+CMEE: 1\r\n\r\nOK\r\n");

    /* AT&F is factory settings but leaves the rate; ATZ goes back to AT&W's */
    host_send(f, "AT&F\r"); /* echoed only once it is on */
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+IPR?\r");
    expect(f, "AT+IPR?\r\r\n+IPR: 921600\r\n\r\nOK\r\n");
    host_send(f, "ATZ\r");
    expect(f, "ATZ\r\r\nOK\r\n");
    host_send(f, "AT\r");
    expect(f, "\r\nOK\r\n");
}

static void test_ipr_rejects_rates_it_does_not_have_with_cme_50(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    static const char *const bad[] = {"AT+IPR=12345",      "AT+IPR=0",        "AT+IPR=-9600",
                                      "AT+IPR=fast",       "AT+IPR=\"9600\"", "AT+IPR=9600,1",
                                      "AT+IPR=99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s\r", bad[i]);
        host_send(f, line);
        expect(f, "\r\n+CME ERROR: 50\r\n");
    }
    host_send(f, "AT+IPR?\r");
    expect(f, "\r\n+IPR: 115200\r\n\r\nOK\r\n");
    host_send(f, "AT+IPR=9600\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+IPR?\r");
    expect(f, "\r\n+IPR: 9600\r\n\r\nOK\r\n");
}

static void test_qpowd_answers_ok_then_powers_down_for_good(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    host_send(f, "AT+QPOWD\r");
    expect(f, "AT+QPOWD\r\r\nOK\r\n");
    adv(f, 0);
    host_send(f, "AT\r"); /* stopping: no answer */
    adv(f, f->t->power_down - 1);
    expect_nothing(f);
    assert_int_equal(f->power_downs, 0);
    adv(f, 1);
    expect(f, "\r\nNORMAL POWER DOWN\r\n");
    assert_int_equal(f->power_downs, 1);
    host_send(f, "AT\r");
    port_inject_dtr(f->p, false);
    port_inject_dtr(f->p, true);
    adv(f, 60000);
    host_send(f, "AT+CFUN=1,1\r");
    adv(f, 60000);
    expect_nothing(f);
    assert_int_equal(f->power_downs, 1);
}

/* ---- the package upload and its data mode ---------------------------- */

/* NAND space for a package, as app note 2.2.3.3 note 1 lists it: written
 * here too, as a cross-check of MODEM_MODEL_MAP. */
static uint32_t note_slot_kb(const char *model)
{
    if (strcmp(model, "BG95-M1") == 0)
        return 7040;
    if (strcmp(model, "BG95-M3") == 0 || strcmp(model, "BG600L-M3") == 0)
        return 7296;
    return 7168; /* BG77, BG95-M2, BG95-M4, BG95-M6, BG95-N1 */
}

/* The slot of every model the note names (2.2.3.3 note 1): a package of
 * exactly the slot's size is taken, one byte more is refused with 590. */
static void test_com_upload_takes_exactly_each_models_slot(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *name;
        uint32_t kb;
    } map[] = {
#define X(id, name, fw, kb) {name, kb},
        MODEM_MODEL_MAP(X)
#undef X
    };
    assert_int_equal(sizeof(map) / sizeof(map[0]), 8);
    unsigned i = 0;
    for (; modem_model_at(i); i++) {
        const struct modem_model *mm = modem_model_at(i);
        assert_string_equal(mm->name, map[i].name);
        assert_int_equal(mm->slot_kb, map[i].kb);
        assert_int_equal(mm->slot_kb, note_slot_kb(mm->name));
        uint64_t cap = (uint64_t)mm->slot_kb * 1024;

        if (f->m)
            modem_restart(f, &(struct modem_cfg){.model = mm->name});
        else
            modem_start(f, &(struct modem_cfg){.model = mm->name});
        boot(f);
        at(f, "ATE0");
        host_send(f, "AT+CGMM\r");
        char line[128];
        snprintf(line, sizeof(line), "\r\n%s\r\n\r\nOK\r\n", mm->name);
        expect(f, line);

        snprintf(line, sizeof(line), "AT+QFOTADL=\"COM:\",%llu\r", (unsigned long long)cap + 1);
        host_send(f, line);
        expect(f, "\r\n+CME ERROR: 590\r\n");
        snprintf(line, sizeof(line), "AT+QFOTADL=\"COM:\",%llu\r", (unsigned long long)cap);
        host_send(f, line);
        expect(f, "\r\nCONNECT\r\n");
        host_send(f, "\x12\x34");
        plus_escape(f);
        expect(f, "\r\n+QFOTADL: 2,1234\r\n\r\nOK\r\n");
        host_send(f, "AT+QFOTADL=4\r");
        expect(f, "\r\n+QFOTADL: 4,2\r\n\r\nOK\r\n");
    }
    assert_int_equal(i, 8);
}

/* A package as large as the slot goes in to its last byte, the XOR-16
 * checksum over all of it. */
static void test_com_upload_fills_the_smallest_slot_to_the_last_byte(void **state)
{
    struct fx *f = *state;
    const struct modem_model *mm = modem_model_find("BG95-M1");
    assert_non_null(mm);
    uint64_t cap = (uint64_t)mm->slot_kb * 1024;
    modem_start(f, &(struct modem_cfg){.model = mm->name});
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=3,0\r"); /* no update of these bytes */
    expect(f, "\r\nOK\r\n");
    char line[64];
    snprintf(line, sizeof(line), "AT+QFOTADL=\"COM:\",%llu\r", (unsigned long long)cap);
    host_send(f, line);
    expect(f, "\r\nCONNECT\r\n");
    static uint8_t chunk[65536];
    uint16_t sum = 0;
    for (uint64_t off = 0; off < cap; off += sizeof(chunk)) {
        size_t n = cap - off < sizeof(chunk) ? (size_t)(cap - off) : sizeof(chunk);
        for (size_t k = 0; k < n; k++) {
            uint64_t pos = off + k;
            chunk[k] = (uint8_t)(pos * 7 + pos / 251);
            sum ^= (uint16_t)(pos % 2 == 0 ? chunk[k] << 8 : chunk[k]);
        }
        port_mem_feed(f->p, chunk, n);
        if (off + n < cap)
            expect_nothing(f);
    }
    char want[96];
    snprintf(want, sizeof(want), "\r\n+QFOTADL: %llu,%x\r\n\r\nOK\r\n", (unsigned long long)cap,
             sum);
    expect(f, want);
    host_send(f, "AT+QFOTADL=4\r");
    snprintf(want, sizeof(want), "\r\n+QFOTADL: 4,%llu\r\n\r\nOK\r\n", (unsigned long long)cap);
    expect(f, want);
}

/* <timeout> seconds without a byte end data mode with what arrived; each
 * byte restarts the wait. */
static void test_com_upload_ends_after_timeout_seconds_of_silence(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=\"COM:\",100,2\r");
    expect(f, "\r\nCONNECT\r\n");
    adv(f, 1500);
    host_send(f, "A");
    adv(f, 1999);
    expect_nothing(f);
    host_send(f, "B");
    adv(f, 1999);
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\n+QFOTADL: 2,4142\r\n\r\nOK\r\n");
    host_send(f, "AT+QFOTADL=4\r");
    expect(f, "\r\n+QFOTADL: 4,2\r\n\r\nOK\r\n");
}

static void test_com_upload_refuses_bad_sizes_and_timeouts(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    static const char *const bad[] = {
        "AT+QFOTADL=\"COM:\",0",     "AT+QFOTADL=\"COM:\",-1",     "AT+QFOTADL=\"COM:\"",
        "AT+QFOTADL=\"COM:\",\"5\"", "AT+QFOTADL=\"COM:\",10,0",   "AT+QFOTADL=\"COM:\",10,3601",
        "AT+QFOTADL=\"COM:\",10,x",  "AT+QFOTADL=\"COM:\",10,1,1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char line[64];
        snprintf(line, sizeof(line), "%s\r", bad[i]);
        host_send(f, line);
        expect(f, "\r\n+CME ERROR: 590\r\n");
    }
}

/* A power cut (here: the modem closed) in the middle of an upload keeps
 * what arrived, as the note's 2.2.3.3 note 2 keeps it on +++; the close
 * waits for the package's flush, which runs on a worker. */
static void test_com_upload_cut_by_power_loss_keeps_what_arrived(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=\"COM:\",1000000\r");
    expect(f, "\r\nCONNECT\r\n");
    static uint8_t part[300 * 1024]; /* more than the slot writer gathers */
    memset(part, 0x5a, sizeof(part));
    port_mem_feed(f->p, part, sizeof(part));
    expect_nothing(f);
    modem_restart(f, NULL);
    boot(f);
    at(f, "ATE0");
    char want[64];
    snprintf(want, sizeof(want), "\r\n+QFOTADL: 4,%zu\r\n\r\nOK\r\n", sizeof(part));
    host_send(f, "AT+QFOTADL=4\r");
    expect(f, want);
}

/* AT&D0 ignores DTR; AT&D1 and AT&D2 leave data mode on a DTR drop keeping
 * what arrived, with the upload's result and OK. */
static void dtr_drop_in_upload(struct fx *f, int dtr_mode)
{
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=3,0\r"); /* a whole package must not start an update here */
    expect(f, "\r\nOK\r\n");
    char line[32];
    snprintf(line, sizeof(line), "AT&D%d\r", dtr_mode);
    host_send(f, line);
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+QFOTADL=\"COM:\",100\r");
    expect(f, "\r\nCONNECT\r\n");
    host_send(f, "ABCDE");
    port_inject_dtr(f->p, false);
    if (dtr_mode == 0) {
        expect_nothing(f);
        host_send(f, "FG"); /* still data */
        expect_nothing(f);
        plus_escape(f);
        /* XOR of the big-endian words 4142 4344 4546 4700 */
        expect(f, "\r\n+QFOTADL: 7,40\r\n\r\nOK\r\n");
        host_send(f, "AT+QFOTADL=4\r");
        expect(f, "\r\n+QFOTADL: 4,7\r\n\r\nOK\r\n");
    } else {
        /* 4142 ^ 4344 ^ 4500 */
        expect(f, "\r\n+QFOTADL: 5,4706\r\n\r\nOK\r\n");
        host_send(f, "AT+QFOTADL=4\r");
        expect(f, "\r\n+QFOTADL: 4,5\r\n\r\nOK\r\n");
    }
    port_inject_dtr(f->p, true);
    /* command mode again, and a DTR drop there changes nothing */
    port_inject_dtr(f->p, false);
    host_send(f, "AT+CSQ\r");
    expect(f, "\r\n+CSQ: 26,99\r\n\r\nOK\r\n");
}

static void test_dtr_is_ignored_in_data_mode_under_at_d0(void **state)
{
    dtr_drop_in_upload(*state, 0);
}

static void test_dtr_drop_leaves_data_mode_keeping_the_data_under_at_d1(void **state)
{
    dtr_drop_in_upload(*state, 1);
}

static void test_dtr_drop_leaves_data_mode_keeping_the_data_under_at_d2(void **state)
{
    dtr_drop_in_upload(*state, 2);
}

static void test_dtr_drop_keeps_held_plus_signs_as_data(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=\"COM:\",100\r");
    expect(f, "\r\nCONNECT\r\n");
    adv(f, 1000);
    host_send(f, "++"); /* could begin an escape: held back */
    port_inject_dtr(f->p, false);
    expect(f, "\r\n+QFOTADL: 2,2b2b\r\n\r\nOK\r\n");
}

static void test_trigger_mode_3_is_volatile_and_back_to_1_after_cfun_1_1(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+QFOTADL=3\r");
    expect(f, "\r\n+QFOTADL: 3,1\r\n\r\nOK\r\n");
    host_send(f, "AT+QFOTADL=3,0\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+QFOTADL=3\r");
    expect(f, "\r\n+QFOTADL: 3,0\r\n\r\nOK\r\n");
    host_send(f, "AT+QFOTADL=3,2\r");
    expect(f, "\r\n+CME ERROR: 590\r\n");
    host_send(f, "AT&W\r"); /* not a setting AT&W keeps either */
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+CFUN=1,1\r");
    expect(f, "\r\nOK\r\n");
    adv(f, 0);
    adv(f, f->t->reset);
    boot(f);
    host_send(f, "AT+QFOTADL=3\r");
    expect(f, "\r\n+QFOTADL: 3,1\r\n\r\nOK\r\n");
}

/* ---- URCs and responses ---------------------------------------------- */

static void test_urcs_posted_in_data_mode_come_after_the_final_result(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    const struct modem_timing *t = f->t;
    adv(f, t->boot_rdy + t->boot_app_rdy);
    expect(f, "\r\nRDY\r\n\r\nAPP RDY\r\n");
    /* the boot URCs are still to come when the upload starts */
    host_send(f, "AT+QFOTADL=\"COM:\",100\r");
    expect(f, "AT+QFOTADL=\"COM:\",100\r\r\nCONNECT\r\n");
    host_send(f, "AB");
    adv(f, 10 * t->boot_urc_gap);
    expect_nothing(f); /* nothing is mixed into data mode */
    port_inject_dtr(f->p, false);
    expect(f, "\r\n+QFOTADL: 2,4142\r\n\r\nOK\r\n");
    adv(f, t->urc_gap - 1);
    expect_nothing(f);
    adv(f, 1);
    expect(f, "\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\n+QUSIM: 1\r\n\r\n+QIND: SMS DONE\r\n");
}

static void test_urc_posted_by_a_command_follows_the_whole_line(void **state)
{
    struct fx *f = *state;
    modem_start(f, NULL);
    boot(f);
    at(f, "ATE0");
    host_send(f, "AT+CFUN=0\r");
    expect(f, "\r\nOK\r\n");
    host_send(f, "AT+CFUN=1;+CSQ;+CPIN?\r");
    expect(f, "\r\n+CSQ: 26,99\r\n\r\n+CPIN: READY\r\n\r\nOK\r\n");
    adv(f, f->t->urc_gap);
    expect(f, "\r\n+CPIN: READY\r\n");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_boot_urcs_come_in_order_with_their_gaps),
        T(test_wait_open_holds_power_on_until_the_host_opens),
        T(test_without_wait_open_it_boots_at_once_and_drops_output_while_closed),
        T(test_echo_verbose_and_cmee_shape_every_answer),
        T(test_app_note_2_3_network_query_byte_for_byte),
        T(test_cfun_1_1_answers_ok_then_reboots_with_volatile_settings_reset),
        T(test_cfun_0_loses_signal_and_sim_and_cfun_1_brings_them_back),
        T(test_at_w_settings_survive_a_new_modem_on_the_same_state_dir),
        T(test_ipr_rejects_rates_it_does_not_have_with_cme_50),
        T(test_qpowd_answers_ok_then_powers_down_for_good),
        T(test_com_upload_takes_exactly_each_models_slot),
        T(test_com_upload_fills_the_smallest_slot_to_the_last_byte),
        T(test_com_upload_ends_after_timeout_seconds_of_silence),
        T(test_com_upload_cut_by_power_loss_keeps_what_arrived),
        T(test_com_upload_refuses_bad_sizes_and_timeouts),
        T(test_dtr_is_ignored_in_data_mode_under_at_d0),
        T(test_dtr_drop_leaves_data_mode_keeping_the_data_under_at_d1),
        T(test_dtr_drop_leaves_data_mode_keeping_the_data_under_at_d2),
        T(test_dtr_drop_keeps_held_plus_signs_as_data),
        T(test_trigger_mode_3_is_volatile_and_back_to_1_after_cfun_1_1),
        T(test_urcs_posted_in_data_mode_come_after_the_final_result),
        T(test_urc_posted_by_a_command_follows_the_whole_line),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
