/* bench_com_upload.c - package upload over the UART with
 * AT+QFOTADL="COM:",<size>: dfota-sim beside a bare pty copy of the same
 * bytes, measured in the same run by the same host code; then, when
 * dfota-sim has --pace-uart, the effective bit rate of a paced upload at
 * 115200 and 921600 bps against the line rate.
 *
 *   bench_com_upload [RUNS [PACED_SECONDS]]     (default 11 runs, 2 s)
 *
 * - Unpaced: 7 MiB (7 * 1024 * 1024 bytes; the BG95-M3 slot holds 7296 KB)
 *   of pseudo-random data, the slot checks no content until an update. The
 *   host writes 4 KiB chunks to its non-blocking port (partial writes and
 *   EAGAIN handled) and the clock runs from the first byte written to the
 *   final OK. dfota-sim's answer "+QFOTADL: <size>,<xor16>" is checked
 *   against the bytes sent. The bare peer is a child holding a pty master
 *   that reads (64 KiB reads, poll() loop) and counts the bytes until it has
 *   them all, then writes one "\r\nOK\r\n". The runs alternate between the
 *   two, and after each dfota-sim run the host calls sync() so that no
 *   writeback of that upload is left to slow down the next bare run. Printed:
 *   best of RUNS in MB/s (10^6 bytes) for each, and the ratio of the two
 *   bests and the median of the RUNS paired ratios (bare run r against
 *   dfota-sim run r; on a shared machine the median is the steadier one).
 * - Paced (dfota-sim --pace-uart): AT+IPR=<rate> and the host's termios at
 *   the same speed, then an upload of PACED_SECONDS worth of bytes at that
 *   rate; effective rate = bytes * 10 bits / seconds. The seconds include
 *   dfota-sim's answer, a few ms.
 *
 * dfota-sim is the executable beside this one (or $DFOTA_SIM), started with
 * --profile fast --wait-open in a mkdtemp directory, trigger mode off
 * (AT+QFOTADL=3,0) so no update starts. Numbers only, no pass/fail.
 * Children are stopped and the temporary directories removed at the end
 * (also after SIGINT/SIGTERM); every wait has a deadline.
 */
#include "bench_util.h"

#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPLOAD_BYTES (7u * 1024u * 1024u)
#define CHUNK 4096u              /* the host's write size */
#define BARE_READ (64u * 1024u)  /* the bare peer's read size */
#define UPLOAD_DEADLINE_MS 30000 /* a whole upload */

/* ---- data ------------------------------------------------------------- */

/* Fills @p buf with xorshift64* bytes (fixed seed: every run the same). */
static void fill_random(uint8_t *buf, size_t len)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
        }
        buf[i] = (uint8_t)((x * 0x2545f4914f6cdd1du) >> (8 * (i % 8)));
    }
}

/* The module's checksum: XOR of big-endian 16-bit words (an odd last byte
 * is a high byte). */
static uint16_t xor16(const uint8_t *buf, size_t len)
{
    uint16_t acc = 0;
    for (size_t i = 0; i < len; i++)
        acc ^= (uint16_t)(i % 2 == 0 ? buf[i] << 8 : buf[i]);
    return acc;
}

/* ---- host side (the same code measures both peers) ------------------- */

/* Sends @p len bytes of @p data and reads the answer up to the final OK into
 * @p resp; returns the seconds from the first byte to the OK, or -1. */
static double timed_send(int fd, const uint8_t *data, size_t len, char *resp, size_t cap)
{
    uint64_t t0 = bench_now_ns();
    if (bench_write_all(fd, data, len, CHUNK, t0 + (uint64_t)UPLOAD_DEADLINE_MS * 1000000u) ||
        bench_read_until(fd, resp, cap, BENCH_OK, UPLOAD_DEADLINE_MS) < 0)
        return -1;
    return (double)(bench_now_ns() - t0) / 1e9;
}

/* One COM upload of @p data to dfota-sim on @p fd, its answer checked
 * against the bytes; returns the seconds (first byte to OK) or -1. */
static double sim_upload(int fd, const uint8_t *data, size_t len)
{
    char cmd[64], resp[256];
    snprintf(cmd, sizeof(cmd), "AT+QFOTADL=\"COM:\",%zu,10\r", len);
    if (bench_chat(fd, cmd, "CONNECT\r\n", resp, sizeof(resp)))
        return -1;
    double secs = timed_send(fd, data, len, resp, sizeof(resp));
    const char *a = secs < 0 ? NULL : strstr(resp, "+QFOTADL: ");
    char *end = NULL;
    unsigned long long size = a ? strtoull(a + 10, &end, 10) : 0;
    unsigned long sum = end && *end == ',' ? strtoul(end + 1, &end, 16) : 0x10000;
    if (!a || size != len || sum != xor16(data, len) || strncmp(end, "\r\n", 2) != 0) {
        fprintf(stderr, "bench_com_upload: dfota-sim answered \"%s\" to %zu bytes (xor16 %x)\n",
                secs < 0 ? "(nothing)" : resp, len, xor16(data, len));
        return -1;
    }
    return secs;
}

/* ---- the bare peer ---------------------------------------------------- */

/* The bare copy peer's count: what it has read towards the next @p size. */
struct bare_count {
    size_t size, got;
};

/* The bare copy peer's reaction to its master @p m being readable: reads
 * all there is, counting, and writes BENCH_OK after each @p arg->size
 * bytes (@p arg: its struct bare_count). */
static int bare_on_read(int m, void *arg)
{
    static uint8_t buf[BARE_READ];
    struct bare_count *c = arg;
    for (ssize_t n; (n = read(m, buf, sizeof(buf))) > 0;) {
        c->got += (size_t)n;
        if (c->got >= c->size) {
            c->got -= c->size;
            if (bench_write_all(m, BENCH_OK, sizeof(BENCH_OK) - 1, 0,
                                bench_deadline_ns(BENCH_DEADLINE_MS)))
                return -1;
        }
    }
    return 0;
}

/* ---- dfota-sim -------------------------------------------------------- */

/* Whether `dfota-sim --help` lists --pace-uart. */
static bool sim_has_pacing(void)
{
    char exe[PATH_MAX], help[8192];
    int out[2];
    if (bench_sim_exe(exe, sizeof(exe)) || pipe2(out, O_CLOEXEC))
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execl(exe, exe, "--help", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    ssize_t n =
        pid < 0 ? -1
                : bench_read_until(out[0], help, sizeof(help), "--pace-uart", BENCH_DEADLINE_MS);
    close(out[0]);
    if (pid > 0)
        bench_child_reap(pid, BENCH_DEADLINE_MS);
    return n > 0 && strstr(help, "--pace-uart");
}

/* Starts dfota-sim (with --pace-uart when @p paced) and opens its port with
 * echo off and the update trigger off (the slot is only written); returns
 * the port's fd or -1. Stop @p sim with bench_sim_stop() either way. */
static int sim_up(struct bench_sim *sim, bool paced)
{
    static const char *const pace[] = {"--pace-uart", NULL};
    static const char *const setup[] = {"ATE0\r", "AT+QFOTADL=3,0\r", NULL};
    if (bench_sim_start(sim, paced ? pace : NULL))
        return -1;
    return bench_sim_open(sim, setup, "its setup");
}

/* ---- the two parts ---------------------------------------------------- */

static double mbps(size_t bytes, double secs)
{
    return (double)bytes / 1e6 / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of the @p n values at @p v (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Unpaced: @p runs uploads of @p data to each peer, alternating. 0 or -1. */
static int run_unpaced(const uint8_t *data, size_t len, int runs)
{
    struct bare_count count = {.size = len};
    struct bench_peer bare = {.pid = -1, .sock = -1};
    struct bench_sim sim = {.pid = -1};
    int bare_fd = -1, sim_fd = -1, rc = -1;
    double best_bare = 1e9, best_sim = 1e9, ratio[100];
    char resp[64];
    if (bench_peer_start(&bare, bare_on_read, &count) ||
        (bare_fd = bench_host_open(bare.path)) < 0) {
        fprintf(stderr, "bench_com_upload: bare pty peer failed\n");
        goto out;
    }
    if ((sim_fd = sim_up(&sim, false)) < 0)
        goto out;
    for (int r = 0; r < runs; r++) {
        double b = timed_send(bare_fd, data, len, resp, sizeof(resp));
        if (b < 0) {
            fprintf(stderr, "bench_com_upload: bare pty peer did not ack\n");
            goto out;
        }
        double d = sim_upload(sim_fd, data, len);
        if (d < 0)
            goto out;
        sync(); /* the next run starts with no writeback pending */
        ratio[r] = b / d;
        best_bare = b < best_bare ? b : best_bare;
        best_sim = d < best_sim ? d : best_sim;
    }
    printf("unpaced upload of %zu bytes in %u-byte writes, best of %d (first byte to OK)\n", len,
           CHUNK, runs);
    printf("  bare pty copy  %8.1f MB/s  %8.1f ms\n", mbps(len, best_bare), best_bare * 1e3);
    printf("  dfota-sim      %8.1f MB/s  %8.1f ms  (+QFOTADL size and xor16 match)\n",
           mbps(len, best_sim), best_sim * 1e3);
    printf("  ratio dfota-sim/bare: best %.2f, median of %d pairs %.2f (target >= 0.9)\n",
           best_bare / best_sim, runs, median(ratio, runs));
    rc = 0;
out:
    if (sim_fd >= 0)
        close(sim_fd);
    if (bare_fd >= 0)
        close(bare_fd);
    bench_sim_stop(&sim);
    bench_peer_stop(&bare);
    return rc;
}

/* Paced: at each rate, AT+IPR and an upload of @p seconds worth. 0 or -1. */
static int run_paced(const uint8_t *data, size_t cap, double seconds)
{
    static const uint32_t rates[] = {115200, 921600};
    if (!sim_has_pacing()) {
        printf("paced: skipped (no --pace-uart)\n");
        return 0;
    }
    struct bench_sim sim = {.pid = -1};
    int fd = -1, rc = -1;
    if ((fd = sim_up(&sim, true)) < 0)
        goto out;
    printf("paced upload (--pace-uart), %.1f s worth at each rate, first byte to OK "
           "(target: within 1 %% of the line rate)\n",
           seconds);
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        char cmd[32], buf[256];
        size_t len = (size_t)((double)rates[i] / 10 * seconds);
        if (len > cap)
            len = cap;
        snprintf(cmd, sizeof(cmd), "AT+IPR=%u\r", (unsigned)rates[i]);
        if (bench_chat(fd, cmd, BENCH_OK, buf, sizeof(buf)) || bench_host_speed(fd, rates[i]))
            goto out;
        double secs = sim_upload(fd, data, len);
        if (secs < 0)
            goto out;
        double bps = (double)len * 10 / secs;
        printf("  %6u bps: %7zu bytes in %6.3f s = %8.0f bps, %6.2f %% of the line rate\n",
               (unsigned)rates[i], len, secs, bps, 100 * bps / rates[i]);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    bench_sim_stop(&sim);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 11;
    double paced_s = argc > 2 ? strtod(argv[2], NULL) : 2.0;
    if (runs < 1 || runs > 100 || !(paced_s > 0) || paced_s > 20) {
        fprintf(stderr, "usage: bench_com_upload [RUNS [PACED_SECONDS]]\n");
        return 2;
    }
    bench_init("bench_com_upload");

    uint8_t *data = malloc(UPLOAD_BYTES);
    if (!data)
        return 1;
    fill_random(data, UPLOAD_BYTES);
    int rc = run_unpaced(data, UPLOAD_BYTES, runs) || run_paced(data, UPLOAD_BYTES, paced_s);
    if (bench_stopped())
        fprintf(stderr, "bench_com_upload: interrupted\n");
    free(data);
    return rc ? 1 : 0;
}
