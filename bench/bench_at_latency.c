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
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 10000 /* any single expected answer */
#define OK_SUFFIX "\r\nOK\r\n"

static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM: give up and clean up */

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* ---- host side (the same code measures both peers) ------------------- */

/* Opens tty @p path as a host opens a serial port: raw, 115200, non-blocking. */
static int host_open(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "bench_at_latency: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct termios tio;
    if (tcgetattr(fd, &tio) == 0) {
        cfmakeraw(&tio);
        cfsetspeed(&tio, B115200);
        if (tcsetattr(fd, TCSANOW, &tio) == 0)
            return fd;
    }
    fprintf(stderr, "bench_at_latency: termios %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
}

/* Writes all of @p buf to non-blocking @p fd; 0 or -1. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR && !g_stop)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            if (poll(&p, 1, DEADLINE_MS) > 0 || (errno == EINTR && !g_stop))
                continue;
        }
        return -1;
    }
    return 0;
}

/* Reads from @p fd into @p buf (NUL-terminated, @p cap > 1) until it holds
 * @p want; returns the bytes read or -1 (deadline, error, signal, full). */
static ssize_t read_until(int fd, char *buf, size_t cap, const char *want, int timeout_ms)
{
    size_t len = 0, wlen = strlen(want);
    uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
    buf[0] = '\0';
    while (!g_stop) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (len >= wlen && memmem(buf, len, want, wlen))
                return (ssize_t)len;
            if (len == cap - 1)
                return -1;
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return -1; /* end of file or a hung-up line */
        uint64_t t = now_ns();
        if (t >= end)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, (int)((end - t) / 1000000u) + 1);
    }
    return -1;
}

/* Sends "AT\r" and reads the answer @p rounds times; stores each round trip
 * (ns) in @p out when it is not NULL. 0 or -1. */
static int rounds_run(int fd, unsigned rounds, uint64_t *out)
{
    char buf[256];
    for (unsigned i = 0; i < rounds; i++) {
        uint64_t t0 = now_ns();
        if (write_all(fd, "AT\r", 3) ||
            read_until(fd, buf, sizeof(buf), OK_SUFFIX, DEADLINE_MS) < 0)
            return -1;
        if (out)
            out[i] = now_ns() - t0;
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

/* ---- children -------------------------------------------------------- */

/* Waits up to @p ms for @p pid to exit, then kills it; reaps it. */
static void child_reap(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* The bare echo peer. Its slave path goes to the parent over @p sock; it
 * answers each '\r' with OK_SUFFIX until the parent closes @p sock. */
static void bare_child(int sock)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    char path[64];
    if (m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, path, sizeof(path)))
        _exit(1);
    int s = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC); /* held, as dfota-sim */
    struct termios tio;
    if (s < 0 || tcgetattr(s, &tio))
        _exit(1);
    cfmakeraw(&tio);
    if (tcsetattr(s, TCSANOW, &tio) || write(sock, path, strlen(path) + 1) < 0)
        _exit(1);
    struct pollfd p[2] = {{.fd = m, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    char buf[4096];
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (p[1].revents)
            _exit(0); /* the parent is done (or gone) */
        if (!(p[0].revents & POLLIN))
            continue;
        ssize_t n = read(m, buf, sizeof(buf));
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\r' && write_all(m, OK_SUFFIX, sizeof(OK_SUFFIX) - 1))
                _exit(1);
    }
}

struct bare {
    pid_t pid;
    int sock;
    char path[64];
};

static int bare_start(struct bare *b)
{
    int sv[2];
    b->pid = -1;
    b->sock = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    b->pid = fork();
    if (b->pid == 0) {
        close(sv[0]);
        bare_child(sv[1]);
    }
    close(sv[1]);
    b->sock = sv[0];
    if (b->pid < 0)
        return -1;
    ssize_t n = read(b->sock, b->path, sizeof(b->path) - 1);
    if (n <= 1)
        return -1;
    b->path[n] = '\0';
    return 0;
}

static void bare_stop(struct bare *b)
{
    if (b->sock >= 0)
        close(b->sock); /* the child exits on this */
    if (b->pid > 0)
        child_reap(b->pid, 2000);
}

struct sim {
    pid_t pid;
    char dir[64];
    char tty[96];
};

/* The dfota-sim executable: $DFOTA_SIM, else the one beside this program. */
static int sim_exe(char *buf, size_t cap)
{
    const char *env = getenv("DFOTA_SIM");
    if (env && *env)
        return snprintf(buf, cap, "%s", env) < (int)cap ? 0 : -1;
    ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash || (size_t)(slash - buf) + sizeof("/dfota-sim") > cap)
        return -1;
    strcpy(slash, "/dfota-sim");
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0;
}

/* Starts dfota-sim in a fresh temporary directory and waits for its ready
 * line. The port is not open yet (--wait-open: opening it powers on). */
static int sim_start(struct sim *s)
{
    char exe[PATH_MAX], state[96], line[256];
    int out[2];
    s->pid = -1;
    snprintf(s->dir, sizeof(s->dir), "/tmp/bench_at_latency.XXXXXX");
    if (sim_exe(exe, sizeof(exe)) || !mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        fprintf(stderr, "bench_at_latency: no dfota-sim or temporary directory\n");
        return -1;
    }
    snprintf(s->tty, sizeof(s->tty), "%s/modem.tty", s->dir);
    snprintf(state, sizeof(state), "%s/state", s->dir);
    if (pipe2(out, O_CLOEXEC))
        return -1;
    pid_t parent = getpid();
    s->pid = fork();
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphan if the benchmark dies */
        if (getppid() != parent)
            _exit(1);
        dup2(out[1], STDOUT_FILENO);
        execl(exe, exe, "--uart", s->tty, "--state-dir", state, "--profile", "fast", "--wait-open",
              (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    if (s->pid < 0) {
        close(out[0]);
        return -1;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    ssize_t n = read_until(out[0], line, sizeof(line), "\n", DEADLINE_MS);
    close(out[0]);
    if (n < 0 || strncmp(line, "dfota-sim: ", 11) != 0) {
        fprintf(stderr, "bench_at_latency: %s gave no ready line\n", exe);
        return -1;
    }
    return 0;
}

static void sim_stop(struct sim *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        child_reap(s->pid, 5000);
    }
    if (s->dir[0])
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Opens the module's port (powering it on), waits for the last boot URC
 * and turns echo off. */
static int sim_open(const struct sim *s)
{
    char buf[1024];
    int fd = host_open(s->tty);
    if (fd < 0)
        return -1;
    if (read_until(fd, buf, sizeof(buf), "+QIND: SMS DONE\r\n", DEADLINE_MS) < 0 ||
        write_all(fd, "ATE0\r", 5) ||
        read_until(fd, buf, sizeof(buf), OK_SUFFIX, DEADLINE_MS) < 0) {
        fprintf(stderr, "bench_at_latency: dfota-sim did not boot or take ATE0\n");
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    unsigned rounds = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 0) : 2000;
    unsigned warmup = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 200;
    if (rounds < 1 || rounds > 10000000) {
        fprintf(stderr, "usage: bench_at_latency [ROUNDS [WARMUP]]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: waits wake up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint64_t *samples[2] = {calloc(rounds, sizeof(uint64_t)), calloc(rounds, sizeof(uint64_t))};
    struct bare bare = {.pid = -1, .sock = -1};
    struct sim sim = {.pid = -1};
    int fd[2] = {-1, -1}, rc = 1; /* the bare peer's, dfota-sim's */
    struct stats st[2];
    const char *who;
    if (!samples[0] || !samples[1])
        goto out;
    if (bare_start(&bare) || (fd[0] = host_open(bare.path)) < 0) {
        fprintf(stderr, "bench_at_latency: bare pty peer failed\n");
        goto out;
    }
    if (sim_start(&sim) || (fd[1] = sim_open(&sim)) < 0)
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
    if (g_stop)
        fprintf(stderr, "bench_at_latency: interrupted\n");
    for (int k = 0; k < 2; k++) {
        if (fd[k] >= 0)
            close(fd[k]);
        free(samples[k]);
    }
    sim_stop(&sim);
    bare_stop(&bare);
    return rc;
}
