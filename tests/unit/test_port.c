/* test_port.c - the port layer: the in-memory port, the pty port as a host
 * program sees it, pacing on a test clock, the host's speed and garbling. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "dfota/clock.h"
#include "dfota/port.h"

#define DEADLINE_MS 5000

/* ---- fixture ------------------------------------------------------------ */

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct port *p;
    bool closed;
    /* what the port raised */
    uint8_t rx[64 * 1024];
    size_t rx_len;
    unsigned rx_calls;
    bool refuse;          /* on_data takes nothing */
    size_t take_max;      /* on_data takes at most this a call (0: all) */
    size_t echo_per_byte; /* on_data writes this many bytes per byte taken */
    uint8_t echo_chunk[4096];
    bool host_ev[16];
    unsigned n_host;
    bool dtr_ev[16];
    unsigned n_dtr;
    /* the host side of a pty */
    char dir[64];
    char link[128];
    int host;
};

/* Takes at most f->take_max bytes a call when set (0: all), none while
 * f->refuse is set. */
static size_t on_data(void *ud, const uint8_t *buf, size_t len)
{
    struct fx *f = ud;
    f->rx_calls++;
    if (f->refuse)
        return 0;
    if (f->take_max && len > f->take_max)
        len = f->take_max;
    size_t room = sizeof(f->rx) - f->rx_len;
    memcpy(f->rx + f->rx_len, buf, len < room ? len : room);
    f->rx_len += len < room ? len : room;
    if (f->echo_per_byte) /* a module answering every byte it takes */
        for (size_t i = 0; i < len; i++)
            assert_int_equal(port_write(f->p, f->echo_chunk, f->echo_per_byte), 0);
    return len;
}

static void on_host(void *ud, bool open)
{
    struct fx *f = ud;
    if (f->n_host < 16)
        f->host_ev[f->n_host] = open;
    f->n_host++;
}

static void on_dtr(void *ud, bool asserted)
{
    struct fx *f = ud;
    if (f->n_dtr < 16)
        f->dtr_ev[f->n_dtr] = asserted;
    f->n_dtr++;
}

static const struct port_events events = {on_data, on_host, on_dtr};

static struct fx *fx_new(void)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    assert_non_null(f->clk);
    f->host = -1;
    return f;
}

static struct fx *fx_mem(void)
{
    struct fx *f = fx_new();
    assert_int_equal(port_mem_new(f->clk, &events, f, &f->p), 0);
    return f;
}

/* A fresh temporary directory; f->link is @p name in it. */
static struct fx *fx_dir(const char *name)
{
    struct fx *f = fx_new();
    strcpy(f->dir, "/tmp/test_port.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->link, sizeof(f->link), "%s/%s", f->dir, name);
    return f;
}

/* A pty port with its symlink in a fresh temporary directory. */
static struct fx *fx_pty(void)
{
    struct fx *f = fx_dir("dfota-sim.tty");
    struct port_pty_cfg cfg = {.link_path = f->link};
    assert_int_equal(port_pty_new(f->clk, &cfg, &events, f, &f->p), 0);
    return f;
}

static void on_port_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Closes everything; the loop must then close with no handle left. */
static void fx_finish(struct fx *f)
{
    if (f->host >= 0)
        close(f->host);
    if (f->p) {
        port_close(f->p, on_port_closed, &f->closed);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        assert_true(f->closed);
    }
    dclock_close(f->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    if (f->dir[0])
        assert_int_equal(rmdir(f->dir), 0);
    free(f);
}

/* ---- waiting on the loop, with a deadline -------------------------------- */

static void on_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

/* Runs the loop until @p cond holds or DEADLINE_MS pass; returns @p cond. */
static bool run_until(struct fx *f, bool (*cond)(struct fx *f))
{
    bool expired = false;
    uv_timer_t deadline;
    uv_timer_init(&f->loop, &deadline);
    deadline.data = &expired;
    uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
    while (!cond(f) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f);
}

static bool host_is_open(struct fx *f)
{
    return port_host_open(f->p);
}

static bool host_is_closed(struct fx *f)
{
    return !port_host_open(f->p);
}

static bool polled_once(struct fx *f)
{
    struct port_stats st;
    port_get_stats(f->p, &st);
    return st.io_events > 0;
}

static void host_open(struct fx *f)
{
    f->host = open(f->link, O_RDWR | O_NOCTTY | O_NONBLOCK);
    assert_true(f->host >= 0);
    assert_true(run_until(f, host_is_open));
}

static void host_close(struct fx *f)
{
    close(f->host);
    f->host = -1;
    assert_true(run_until(f, host_is_closed));
}

/* Reads from the host side until @p want bytes came, at most @p chunk a read,
 * running the loop between reads (a slow host). Returns the bytes read. */
static size_t host_read(struct fx *f, uint8_t *buf, size_t want, size_t chunk)
{
    size_t got = 0;
    uint64_t end = uv_hrtime() + (uint64_t)DEADLINE_MS * 1000000u;
    while (got < want && uv_hrtime() < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        size_t n = want - got < chunk ? want - got : chunk;
        ssize_t r = read(f->host, buf + got, n);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        struct pollfd pfd = {.fd = f->host, .events = POLLIN};
        poll(&pfd, 1, 20);
    }
    return got;
}

/* Whether the host has nothing to read right now. */
static bool host_has_nothing(struct fx *f)
{
    uint8_t c;
    return read(f->host, &c, 1) < 0 && errno == EAGAIN;
}

static void fill_pattern(uint8_t *buf, size_t len);

/* ---- in-memory port ------------------------------------------------------ */

static void test_mem_write_reaches_host_at_once(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    char buf[64];
    assert_int_equal(port_write(f->p, "OK\r\n", 4), 0);
    assert_true(port_output_idle(f->p));
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "OK\r\n");
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_string_equal(port_name(f->p), "mem");
    assert_null(port_slave_path(f->p));
    fx_finish(f);
}

static void test_mem_take_is_bounded_and_keeps_the_rest(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    char buf[4];
    port_write(f->p, "ABCDEF", 6);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "ABC");
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "DEF");
    fx_finish(f);
}

static void test_mem_feed_raises_on_data(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    port_mem_feed(f->p, "AT\r", 3);
    assert_int_equal(f->rx_len, 3);
    assert_memory_equal(f->rx, "AT\r", 3);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_int_equal(st.rx_bytes, 3);
    fx_finish(f);
}

static void test_mem_host_close_raises_on_host_and_drops_output(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    char buf[64];
    assert_true(port_host_open(f->p));
    port_write(f->p, "UNREAD", 6);
    port_mem_set_host(f->p, false);
    assert_int_equal(f->n_host, 1);
    assert_false(f->host_ev[0]);
    assert_false(port_host_open(f->p));
    assert_int_equal(port_write(f->p, "STALE", 5), 0);
    port_mem_set_host(f->p, false); /* no change, no event */
    port_mem_set_host(f->p, true);
    assert_int_equal(f->n_host, 2);
    assert_true(f->host_ev[1]);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 0);
    port_write(f->p, "FRESH", 5);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 5);
    assert_string_equal(buf, "FRESH");
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_int_equal(st.dropped, 11);
    fx_finish(f);
}

static void test_mem_inject_dtr_raises_on_dtr(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    port_inject_dtr(f->p, false);
    port_inject_dtr(f->p, true);
    assert_int_equal(f->n_dtr, 2);
    assert_false(f->dtr_ev[0]);
    assert_true(f->dtr_ev[1]);
    fx_finish(f);
}

/* Takes what the host side holds, running the loop and the 0 ms timers
 * in between, until @p want bytes came or nothing moves any more. */
static size_t host_take_all(struct fx *f, uint8_t *out, size_t want)
{
    static char buf[8192];
    size_t got = 0;
    for (int idle = 0; got < want && idle < 3;) {
        size_t n = port_mem_take(f->p, buf, sizeof(buf));
        if (out && n)
            memcpy(out + got, buf, n);
        got += n;
        dclock_test_advance(f->clk, 0);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        idle = n ? 0 : idle + 1;
    }
    return got;
}

static void test_write_of_any_size_is_queued_whole_for_a_host_that_does_not_read(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    port_mem_set_host_window(f->p, 1000); /* the host's buffer: then it stops reading */
    size_t len = 1024 * 1024;
    uint8_t *big = malloc(len), *got = malloc(len);
    fill_pattern(big, len);
    assert_int_equal(port_write(f->p, big, len), 0);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_int_equal(st.out_queued, len - 1000);
    assert_false(port_output_idle(f->p));
    assert_int_equal(host_take_all(f, got, len), len);
    assert_memory_equal(got, big, len);
    assert_true(port_output_idle(f->p));
    port_get_stats(f->p, &st);
    assert_int_equal(st.dropped, 0);
    free(big);
    free(got);
    fx_finish(f);
}

static void test_input_stops_while_output_is_over_the_high_water_mark(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    port_mem_set_host_window(f->p, 1024);
    f->take_max = 1;        /* the owner takes one byte (one command) a call */
    f->echo_per_byte = 100; /* and answers it with 100 bytes */
    memset(f->echo_chunk, 'r', sizeof(f->echo_chunk));
    static uint8_t in[20000];
    fill_pattern(in, sizeof(in));
    port_mem_feed(f->p, in, sizeof(in));
    uv_run(&f->loop, UV_RUN_NOWAIT);
    struct port_stats st;
    port_get_stats(f->p, &st);
    /* input stopped once the queue passed the mark: one answer beyond it */
    assert_true(st.out_queued > PORT_OUT_HIGH);
    assert_true(st.out_queued <= PORT_OUT_HIGH + 100);
    assert_int_equal(f->rx_len, (1024 + st.out_queued) / 100);
    assert_int_equal(port_mem_unread(f->p), sizeof(in) - f->rx_len);
    /* the host reads: every byte it sent is taken, in order, and every
     * answer reaches it, the queue never much above the mark */
    assert_int_equal(host_take_all(f, NULL, sizeof(in) * 100), sizeof(in) * 100);
    assert_int_equal(f->rx_len, sizeof(in));
    assert_memory_equal(f->rx, in, sizeof(in));
    assert_int_equal(port_mem_unread(f->p), 0);
    port_get_stats(f->p, &st);
    assert_true(st.out_peak <= PORT_OUT_HIGH + 100);
    assert_int_equal(st.dropped, 0);
    fx_finish(f);
}

static void test_input_the_owner_declines_is_kept_and_offered_after_resume(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    f->refuse = true;
    port_mem_feed(f->p, "ABCDEF", 6);
    assert_int_equal(f->rx_calls, 1);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_int_equal(st.in_held, 6);
    port_mem_feed(f->p, "GH", 2); /* nothing new is read meanwhile */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->rx_calls, 1);
    assert_int_equal(port_mem_unread(f->p), 8);
    f->refuse = false;
    port_input_resume(f->p);
    assert_int_equal(f->rx_calls, 1); /* never from inside the call */
    dclock_test_advance(f->clk, 0);
    assert_int_equal(f->rx_len, 6);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* reading goes on */
    assert_int_equal(f->rx_len, 8);
    assert_memory_equal(f->rx, "ABCDEFGH", 8);
    assert_int_equal(port_mem_unread(f->p), 0);
    fx_finish(f);
}

static void test_input_taken_in_part_is_offered_again_at_once(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    f->take_max = 2;
    port_mem_feed(f->p, "ABCDEFG", 7);
    assert_int_equal(f->rx_len, 7);
    assert_int_equal(f->rx_calls, 4);
    assert_memory_equal(f->rx, "ABCDEFG", 7);
    fx_finish(f);
}

static void test_paced_output_at_9600_releases_960_bytes_per_second(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    static char out[4096], buf[4096];
    memset(out, 'x', 3000);
    assert_int_equal(port_set_rate(f->p, 9600, true, false), 0);
    assert_int_equal(port_rate(f->p), 9600);
    assert_int_equal(port_write(f->p, out, 3000), 0);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 0);
    dclock_test_advance(f->clk, 1000);
    size_t n = port_mem_take(f->p, buf, sizeof(buf));
    assert_in_range(n, 955, 965);
    dclock_test_advance(f->clk, 1000);
    n += port_mem_take(f->p, buf, sizeof(buf));
    assert_in_range(n, 1915, 1925);
    assert_false(port_output_idle(f->p));
    dclock_test_advance(f->clk, 2000);
    n += port_mem_take(f->p, buf, sizeof(buf));
    assert_int_equal(n, 3000);
    assert_true(port_output_idle(f->p));
    fx_finish(f);
}

static void test_unpacing_releases_queued_output_at_once(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    char buf[64];
    port_set_rate(f->p, 9600, true, false);
    port_write(f->p, "HELLO", 5);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 0);
    port_set_rate(f->p, 9600, false, false);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), 5);
    fx_finish(f);
}

static void test_paced_input_is_read_no_faster_than_the_rate(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    static uint8_t in[3000];
    memset(in, 'a', sizeof(in));
    port_set_rate(f->p, 9600, false, true);
    port_mem_feed(f->p, in, sizeof(in));
    assert_int_equal(f->rx_len, 0);
    dclock_test_advance(f->clk, 1000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_in_range(f->rx_len, 955, 965);
    dclock_test_advance(f->clk, 3000);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->rx_len, 3000);
    fx_finish(f);
}

static void test_strict_rate_garbles_output_only_on_mismatch(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    const char *msg = "\r\n+QIND: \"FOTA\",\"START\"\r\n";
    size_t len = strlen(msg);
    char buf[256];
    uint8_t want[256];
    port_set_rate(f->p, 115200, false, false);
    port_mem_set_host_rate(f->p, 9600);
    assert_int_equal(port_host_rate(f->p), 9600);
    /* not strict: a mismatch does not matter */
    port_write(f->p, msg, len);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), len);
    assert_string_equal(buf, msg);
    /* strict: what a 9600 receiver makes of 115200 frames */
    port_set_strict_rate(f->p, true);
    port_write(f->p, msg, len);
    size_t n = port_garble(115200, 9600, (const uint8_t *)msg, len, want, sizeof(want));
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), n);
    assert_memory_equal(buf, want, n);
    /* strict, rates equal: untouched */
    port_mem_set_host_rate(f->p, 115200);
    port_write(f->p, msg, len);
    assert_int_equal(port_mem_take(f->p, buf, sizeof(buf)), len);
    assert_string_equal(buf, msg);
    fx_finish(f);
}

static void test_close_is_async_and_drops_queued_output(void **state)
{
    (void)state;
    struct fx *f = fx_mem();
    port_set_rate(f->p, 9600, true, false);
    port_write(f->p, "PENDING", 7);
    port_close(f->p, on_port_closed, &f->closed);
    assert_false(f->closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    f->p = NULL;
    fx_finish(f);
}

static size_t close_on_data(void *ud, const uint8_t *buf, size_t len)
{
    struct fx *f = ud;
    (void)buf;
    f->rx_len += len;
    port_close(f->p, on_port_closed, &f->closed);
    return len;
}

static void test_port_may_be_closed_from_its_own_event(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    static const struct port_events closing = {.on_data = close_on_data};
    assert_int_equal(port_mem_new(f->clk, &closing, f, &f->p), 0);
    static uint8_t in[3 * 4096];
    port_mem_feed(f->p, in, sizeof(in)); /* raised in pieces: only the first one */
    assert_int_equal(f->rx_len, 4096);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    f->p = NULL;
    fx_finish(f);
}

/* ---- port_garble --------------------------------------------------------- */

static void fill_pattern(uint8_t *buf, size_t len)
{
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

static void test_garble_is_identity_at_equal_rates(void **state)
{
    (void)state;
    static uint8_t in[1000], out[5000];
    fill_pattern(in, sizeof(in));
    static const uint32_t rates[] = {9600, 115200, 921600, 4000000};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        memset(out, 0, sizeof(out));
        assert_int_equal(port_garble(rates[i], rates[i], in, sizeof(in), out, sizeof(out)),
                         sizeof(in));
        assert_memory_equal(out, in, sizeof(in));
    }
}

static void test_garble_at_mismatched_rates_is_deterministic_garbage(void **state)
{
    (void)state;
    const char *msg = "\r\nOK\r\n\r\n+QIND: \"FOTA\",\"HTTPSTART\"\r\n";
    size_t len = strlen(msg);
    uint8_t a[512], b[512];
    /* the module sends at 115200, the host listens at 9600 */
    size_t na = port_garble(115200, 9600, (const uint8_t *)msg, len, a, sizeof(a));
    size_t nb = port_garble(115200, 9600, (const uint8_t *)msg, len, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    assert_true(na != len || memcmp(a, msg, len) != 0);
    assert_true(na < len); /* a slow receiver assembles fewer frames */
    /* the other way round: more frames, never more than 5 per byte */
    na = port_garble(9600, 115200, (const uint8_t *)msg, len, a, sizeof(a));
    assert_true(na != len || memcmp(a, msg, len) != 0);
    assert_true(na <= 5 * len);
    assert_int_equal(port_garble(0, 9600, (const uint8_t *)msg, len, a, sizeof(a)), 0);
}

static void test_garble_samples_data_bits_lsb_first_at_mid_bit(void **state)
{
    (void)state;
    uint8_t out[16];
    /* Receiver half as fast: its bit spans two sent bits, sampled at the
     * middle of every other sent bit: 0x00 0x00 reads as bit 3 set (it falls
     * on the first stop bit). */
    static const uint8_t zeros[2] = {0, 0};
    assert_int_equal(port_garble(19200, 9600, zeros, 2, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0x08);
    /* Receiver twice as fast: 0xFF reads its first data bit from the start
     * bit's second half. */
    static const uint8_t ones[1] = {0xFF};
    assert_int_equal(port_garble(9600, 19200, ones, 1, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0xFE);
    /* A whole frame low is a break: one 0x00, then the receiver waits for
     * the line to go high instead of reading the low line again. */
    assert_int_equal(port_garble(9600, 19200, zeros, 1, out, sizeof(out)), 1);
    assert_int_equal(out[0], 0x00);
    /* The output stops at cap. */
    assert_int_equal(port_garble(9600, 9600, zeros, 2, out, 1), 1);
}

/* ---- pty port ------------------------------------------------------------ */

static void test_pty_symlink_points_at_slave_and_goes_on_close(void **state)
{
    (void)state;
    struct fx *f = fx_dir("dfota-sim.tty");
    assert_int_equal(symlink("/dev/pts/stale-from-a-crash", f->link), 0);
    struct port_pty_cfg cfg = {.link_path = f->link};
    assert_int_equal(port_pty_new(f->clk, &cfg, &events, f, &f->p), 0);
    struct stat st;
    assert_int_equal(lstat(f->link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    char target[128] = {0};
    assert_true(readlink(f->link, target, sizeof(target) - 1) > 0);
    assert_string_equal(target, port_slave_path(f->p));
    assert_string_equal(port_name(f->p), f->link);
    assert_false(port_host_open(f->p));
    port_close(f->p, on_port_closed, &f->closed);
    f->p = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->closed);
    assert_int_equal(lstat(f->link, &st), -1);
    assert_int_equal(errno, ENOENT);
    fx_finish(f);
}

static void test_pty_refuses_to_replace_a_file_that_is_not_a_symlink(void **state)
{
    (void)state;
    struct fx *f = fx_dir("precious");
    int fd = open(f->link, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    struct port_pty_cfg cfg = {.link_path = f->link};
    assert_int_equal(port_pty_new(f->clk, &cfg, &events, f, &f->p), -EEXIST);
    f->p = NULL;
    unlink(f->link);
    fx_finish(f);
}

static void test_pty_without_symlink_is_named_by_its_slave(void **state)
{
    (void)state;
    struct fx *f = fx_new();
    assert_int_equal(port_pty_new(f->clk, NULL, NULL, NULL, &f->p), 0);
    assert_string_equal(port_name(f->p), port_slave_path(f->p));
    assert_memory_equal(port_name(f->p), "/dev/pts/", 9);
    fx_finish(f);
}

static void test_pty_host_open_and_close_raise_on_host(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    host_close(f);
    assert_int_equal(f->n_host, 2);
    assert_true(f->host_ev[0]);
    assert_false(f->host_ev[1]);
    fx_finish(f);
}

static void test_pty_module_output_reaches_the_host(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    uint8_t buf[16];
    assert_int_equal(port_write(f->p, "\r\nRDY\r\n", 7), 0);
    assert_int_equal(host_read(f, buf, 7, sizeof(buf)), 7);
    assert_memory_equal(buf, "\r\nRDY\r\n", 7);
    assert_true(port_output_idle(f->p));
    fx_finish(f);
}

static bool got_at(struct fx *f)
{
    return f->rx_len >= 4;
}

static void test_pty_host_input_raises_on_data(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    assert_int_equal(write(f->host, "ATE0", 4), 4);
    assert_true(run_until(f, got_at));
    assert_memory_equal(f->rx, "ATE0", 4);
    fx_finish(f);
}

static void test_pty_host_reopen_works_and_does_not_spin(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    host_close(f);
    struct port_stats before, after;
    port_get_stats(f->p, &before);
    for (int i = 0; i < 200; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    port_get_stats(f->p, &after);
    assert_true(after.io_events - before.io_events <= 1);
    assert_int_equal(f->rx_calls, 0);
    host_open(f);
    assert_int_equal(write(f->host, "ATE0", 4), 4);
    assert_true(run_until(f, got_at));
    uint8_t buf[8];
    port_write(f->p, "OK\r\n", 4);
    assert_int_equal(host_read(f, buf, 4, sizeof(buf)), 4);
    assert_memory_equal(buf, "OK\r\n", 4);
    fx_finish(f);
}

static void test_pty_output_while_host_closed_is_not_read_by_a_later_host(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    /* more than the pty holds: part in the pty, the rest queued, unread */
    static uint8_t big[100 * 1024];
    memset(big, 'S', sizeof(big));
    assert_int_equal(port_write(f->p, big, sizeof(big)), 0);
    assert_false(port_output_idle(f->p));
    host_close(f);
    assert_true(port_output_idle(f->p));
    assert_int_equal(port_write(f->p, "STALE", 5), 0);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_true(st.dropped > 5);
    host_open(f);
    assert_true(host_has_nothing(f));
    uint8_t buf[8];
    port_write(f->p, "FRESH", 5);
    assert_int_equal(host_read(f, buf, 5, sizeof(buf)), 5);
    assert_memory_equal(buf, "FRESH", 5);
    assert_true(host_has_nothing(f));
    fx_finish(f);
}

static void test_pty_large_write_reaches_a_slow_host_complete_and_in_order(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    enum { SIZE = 200 * 1024 };
    uint8_t *out = malloc(SIZE), *in = malloc(SIZE);
    fill_pattern(out, SIZE);
    assert_int_equal(port_write(f->p, out, SIZE), 0);
    assert_int_equal(host_read(f, in, SIZE, 1000), SIZE);
    assert_memory_equal(in, out, SIZE);
    assert_true(port_output_idle(f->p));
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_int_equal(st.tx_bytes, SIZE);
    free(out);
    free(in);
    fx_finish(f);
}

static void test_pty_paced_output_at_9600_releases_960_bytes_per_second(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    static uint8_t out[3000], in[3000];
    memset(out, 'p', sizeof(out));
    port_set_rate(f->p, 9600, true, false);
    port_write(f->p, out, sizeof(out));
    assert_true(host_has_nothing(f));
    dclock_test_advance(f->clk, 1000);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_in_range(st.tx_bytes, 955, 965);
    assert_int_equal(host_read(f, in, st.tx_bytes, sizeof(in)), st.tx_bytes);
    assert_true(host_has_nothing(f));
    fx_finish(f);
}

static bool got_960(struct fx *f)
{
    return f->rx_len >= 955;
}

static void test_pty_paced_input_is_read_no_faster_than_the_rate(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    static uint8_t out[3000];
    memset(out, 'i', sizeof(out));
    port_set_rate(f->p, 9600, false, true);
    assert_int_equal(write(f->host, out, sizeof(out)), sizeof(out));
    assert_true(run_until(f, polled_once));
    assert_int_equal(f->rx_len, 0);
    dclock_test_advance(f->clk, 1000);
    assert_true(run_until(f, got_960));
    for (int i = 0; i < 50; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_in_range(f->rx_len, 955, 965);
    fx_finish(f);
}

static void test_pty_host_rate_is_what_the_host_set(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    assert_int_equal(port_host_rate(f->p), 115200);
    host_open(f);
    struct termios tio;
    assert_int_equal(tcgetattr(f->host, &tio), 0);
    cfsetspeed(&tio, B921600);
    assert_int_equal(tcsetattr(f->host, TCSANOW, &tio), 0);
    assert_int_equal(port_host_rate(f->p), 921600);
    fx_finish(f);
}

static bool got_xyz(struct fx *f)
{
    return f->rx_len >= 3;
}

static void test_pty_input_waits_while_the_host_does_not_read_its_output(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    size_t len = 256 * 1024;
    uint8_t *big = malloc(len), *got = malloc(len);
    fill_pattern(big, len);
    assert_int_equal(port_write(f->p, big, len), 0);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    struct port_stats st;
    port_get_stats(f->p, &st);
    assert_true(st.out_queued > PORT_OUT_HIGH); /* the pty's own buffer is full */
    assert_int_equal(write(f->host, "xyz", 3), 3);
    for (int i = 0; i < 50; i++) {
        struct pollfd pfd = {.fd = f->host, .events = POLLIN};
        poll(&pfd, 1, 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(f->rx_len, 0); /* not read while the output waits */
    assert_int_equal(host_read(f, got, len, 4096), len);
    assert_memory_equal(got, big, len);
    assert_true(run_until(f, got_xyz));
    assert_memory_equal(f->rx, "xyz", 3);
    free(big);
    free(got);
    fx_finish(f);
}

static void test_pty_line_follows_the_rate_while_no_host_has_it_open(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    assert_int_equal(port_set_rate(f->p, 921600, false, false), 0);
    assert_int_equal(port_host_rate(f->p), 921600);
    host_open(f); /* a host that sets no speed reads at the module's rate */
    struct termios tio;
    assert_int_equal(tcgetattr(f->host, &tio), 0);
    assert_int_equal(cfgetospeed(&tio), B921600);
    /* the host's line is the host's: a new rate does not change it */
    assert_int_equal(port_set_rate(f->p, 9600, false, false), 0);
    assert_int_equal(port_host_rate(f->p), 921600);
    host_close(f); /* until it goes */
    assert_int_equal(port_host_rate(f->p), 9600);
    fx_finish(f);
}

static void test_pty_strict_rate_garbles_output_for_a_host_at_another_speed(void **state)
{
    (void)state;
    struct fx *f = fx_pty();
    host_open(f);
    struct termios tio;
    assert_int_equal(tcgetattr(f->host, &tio), 0);
    cfsetspeed(&tio, B9600);
    assert_int_equal(tcsetattr(f->host, TCSANOW, &tio), 0);
    port_set_rate(f->p, 115200, false, false);
    port_set_strict_rate(f->p, true);
    static const char msg[] = "\r\n+QIND: \"FOTA\",\"END\",0\r\n";
    uint8_t want[256], got[256];
    size_t n = port_garble(115200, 9600, (const uint8_t *)msg, sizeof(msg) - 1, want, sizeof(want));
    assert_true(n > 0);
    port_write(f->p, msg, sizeof(msg) - 1);
    assert_int_equal(host_read(f, got, n, sizeof(got)), n);
    assert_memory_equal(got, want, n);
    assert_true(host_has_nothing(f));
    fx_finish(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mem_write_reaches_host_at_once),
        cmocka_unit_test(test_mem_take_is_bounded_and_keeps_the_rest),
        cmocka_unit_test(test_mem_feed_raises_on_data),
        cmocka_unit_test(test_mem_host_close_raises_on_host_and_drops_output),
        cmocka_unit_test(test_mem_inject_dtr_raises_on_dtr),
        cmocka_unit_test(test_write_of_any_size_is_queued_whole_for_a_host_that_does_not_read),
        cmocka_unit_test(test_input_stops_while_output_is_over_the_high_water_mark),
        cmocka_unit_test(test_input_the_owner_declines_is_kept_and_offered_after_resume),
        cmocka_unit_test(test_input_taken_in_part_is_offered_again_at_once),
        cmocka_unit_test(test_paced_output_at_9600_releases_960_bytes_per_second),
        cmocka_unit_test(test_unpacing_releases_queued_output_at_once),
        cmocka_unit_test(test_paced_input_is_read_no_faster_than_the_rate),
        cmocka_unit_test(test_strict_rate_garbles_output_only_on_mismatch),
        cmocka_unit_test(test_close_is_async_and_drops_queued_output),
        cmocka_unit_test(test_port_may_be_closed_from_its_own_event),
        cmocka_unit_test(test_garble_is_identity_at_equal_rates),
        cmocka_unit_test(test_garble_at_mismatched_rates_is_deterministic_garbage),
        cmocka_unit_test(test_garble_samples_data_bits_lsb_first_at_mid_bit),
        cmocka_unit_test(test_pty_symlink_points_at_slave_and_goes_on_close),
        cmocka_unit_test(test_pty_refuses_to_replace_a_file_that_is_not_a_symlink),
        cmocka_unit_test(test_pty_without_symlink_is_named_by_its_slave),
        cmocka_unit_test(test_pty_host_open_and_close_raise_on_host),
        cmocka_unit_test(test_pty_module_output_reaches_the_host),
        cmocka_unit_test(test_pty_host_input_raises_on_data),
        cmocka_unit_test(test_pty_host_reopen_works_and_does_not_spin),
        cmocka_unit_test(test_pty_output_while_host_closed_is_not_read_by_a_later_host),
        cmocka_unit_test(test_pty_large_write_reaches_a_slow_host_complete_and_in_order),
        cmocka_unit_test(test_pty_paced_output_at_9600_releases_960_bytes_per_second),
        cmocka_unit_test(test_pty_paced_input_is_read_no_faster_than_the_rate),
        cmocka_unit_test(test_pty_host_rate_is_what_the_host_set),
        cmocka_unit_test(test_pty_strict_rate_garbles_output_for_a_host_at_another_speed),
        cmocka_unit_test(test_pty_input_waits_while_the_host_does_not_read_its_output),
        cmocka_unit_test(test_pty_line_follows_the_rate_while_no_host_has_it_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
