/* bench_at_latency.c - AT round-trip latency over the pty: dfota-sim beside
 * a bare pty echo peer measured in the same run by the same host code.
 *
 *   bench_at_latency [ROUNDS [WARMUP]]     (default 2000 rounds, 200 warm-up)
 *
 * The host opens the port raw (cfmakeraw), sends "AT\r" and reads until
 * "\r\nOK\r\n", ROUNDS times after WARMUP untimed rounds, and reports the
 * median, p99 and mean round trip in microseconds.
 *
 * - dfota-sim: the executable beside this one (or $DFOTA_SIM), started with
 *   --profile fast --wait-open in a mkdtemp directory; the host waits for
 *   the boot URCs and turns echo off (ATE0) before timing.
 * - bare: a child process that opens a pty pair itself (posix_openpt), holds
 *   the slave open as dfota-sim does, and answers each '\r' it reads on the
 *   master with "\r\nOK\r\n" from a poll() loop: the floor a pty sets.
 *
 * Numbers only, no pass/fail. Children are stopped and the temporary
 * directory is removed at the end (also after SIGINT/SIGTERM); every wait
 * has a deadline.
 */

#include "bench_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- host side (the same code measures both peers) ------------------- */

/* Sends "AT\r" and reads the answer @p rounds times; stores each round trip
 * (ns) in @p out when it is not NULL. 0 or -1. */
static int rounds_run(int fd, unsigned rounds, uint64_t *out)
{
    char buf[256];
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t t0 = bench_now_ns();
        if (bench_write_all(fd, "AT\r", 3, 0, t0 + (uint64_t)BENCH_DEADLINE_MS * 1000000u) ||
            bench_read_until(fd, buf, sizeof(buf), BENCH_OK, BENCH_DEADLINE_MS) < 0)
            return -1;
        if (out)
            out[i] = bench_now_ns() - t0;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct stats {
    double median, p99, mean; /* microseconds */
};

static struct stats stats_of(uint64_t *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    double sum = 0;
    for (unsigned i = 0; i < n; i++)
        sum += (double)v[i];
    unsigned p99 = (unsigned)((99ull * n + 99) / 100) - 1; /* nearest rank */
    double med = n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2;
    return (struct stats){med / 1e3, (double)v[p99] / 1e3, sum / n / 1e3};
}

/* Warms both peers up, then measures them in alternating blocks of
 * BLOCK rounds (so a drift of the machine's speed hits both alike) and
 * summarizes each. 0 or -1 (@p who names the peer that failed). */
#define BLOCK 100u
static int measure(const int fd[2], unsigned rounds, unsigned warmup, uint64_t *samples[2],
                   struct stats st[2], const char **who)
{
    static const char *const names[2] = {"bare pty peer", "dfota-sim"};
    for (int k = 0; k < 2; k++) {
        *who = names[k];
        if (rounds_run(fd[k], warmup, NULL))
            return -1;
    }
    for (unsigned done = 0; done < rounds; done += BLOCK) {
        unsigned n = rounds - done < BLOCK ? rounds - done : BLOCK;
        for (int k = 0; k < 2; k++) {
            *who = names[k];
            if (rounds_run(fd[k], n, samples[k] + done))
                return -1;
        }
    }
    for (int k = 0; k < 2; k++)
        st[k] = stats_of(samples[k], rounds);
    return 0;
}

/* ---- the bare peer ---------------------------------------------------- */

/* The bare echo peer's reaction to its master @p m being readable: answers
 * each '\r' with BENCH_OK. */
static int bare_on_read(int m, void *arg)
{
    (void)arg;
    char buf[4096];
    ssize_t n = read(m, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\r' && bench_write_all(m, BENCH_OK, sizeof(BENCH_OK) - 1, 0,
                                              bench_deadline_ns(BENCH_DEADLINE_MS)))
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2000;
    unsigned warmup = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 200;
    if (rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "usage: bench_at_latency [ROUNDS [WARMUP]]\n");
        return 2;
    }
    bench_init("bench_at_latency");

    static const char *const setup[] = {"ATE0\r", NULL};
    uint64_t *samples[2] = {calloc(rounds, sizeof(uint64_t)), calloc(rounds, sizeof(uint64_t))};
    struct bench_peer bare = {.pid = -1, .sock = -1};
    struct bench_sim sim = {.pid = -1};
    int fd[2] = {-1, -1}, rc = 1; /* the bare peer's, dfota-sim's */
    struct stats st[2];
    const char *who;
    if (!samples[0] || !samples[1])
        goto out;
    if (bench_peer_start(&bare, bare_on_read, NULL) || (fd[0] = bench_host_open(bare.path)) < 0) {
        fprintf(stderr, "bench_at_latency: bare pty peer failed\n");
        goto out;
    }
    if (bench_sim_start(&sim, NULL) || (fd[1] = bench_sim_open(&sim, setup, "ATE0")) < 0)
        goto out;
    if (measure(fd, rounds, warmup, samples, st, &who)) {
        fprintf(stderr, "bench_at_latency: %s stopped answering\n", who);
        goto out;
    }
    const struct stats *b = &st[0], *d = &st[1];
    printf("AT round trip over a pty, %u rounds after %u warm-up, in alternating blocks of %u "
           "(us)\n",
           rounds, warmup, BLOCK);
    printf("%-16s %9s %9s %9s\n", "", "median", "p99", "mean");
    printf("%-16s %9.1f %9.1f %9.1f\n", "bare pty echo", b->median, b->p99, b->mean);
    printf("%-16s %9.1f %9.1f %9.1f\n", "dfota-sim", d->median, d->p99, d->mean);
    printf("ratio dfota-sim/bare: %.2f (median), %.2f (p99), %.2f (mean)\n", d->median / b->median,
           d->p99 / b->p99, d->mean / b->mean);
    rc = 0;
out:
    if (bench_stopped())
        fprintf(stderr, "bench_at_latency: interrupted\n");
    for (int k = 0; k < 2; k++) {
        if (fd[k] >= 0)
            close(fd[k]);
        free(samples[k]);
    }
    bench_sim_stop(&sim);
    bench_peer_stop(&bare);
    return rc;
}
