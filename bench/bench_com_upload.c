/* bench_com_upload.c - package upload over the UART with
 * AT+QFOTADL="COM:",<size>: dfota-sim beside a bare pty copy of the same
 * bytes, measured in the same run by the same host code; then, when
 * dfota-sim has --pace-uart, the effective bit rate of a paced upload at
 * 115200 and 921600 bps against the line rate.
 *
 *   bench_com_upload [RUNS [PACED_SECONDS]]     (default 3 runs, 2 s)
 *
 * - Unpaced: 7 MiB (7 * 1024 * 1024 bytes; the BG95-M3 slot holds 7296 KB)
 *   of pseudo-random data, the slot checks no content until an update. The
 *   host writes 4 KiB chunks to its non-blocking port (partial writes and
 *   EAGAIN handled) and the clock runs from the first byte written to the
 *   final OK. dfota-sim's answer "+QFOTADL: <size>,<xor16>" is checked
 *   against the bytes sent. The bare peer is a child holding a pty master
 *   that reads (64 KiB reads, poll() loop) and counts the bytes until it has
 *   them all, then writes one "\r\nOK\r\n". The runs alternate between the
 *   two; best of RUNS, in MB/s (10^6 bytes).
 * - Paced (dfota-sim --pace-uart): AT+IPR=<rate> and the host's termios at
 *   the same speed, then an upload of PACED_SECONDS worth of bytes at that
 *   rate; effective rate = bytes * 10 bits / seconds. The seconds include
 *   dfota-sim's answer (and its fsync of the slot), a few ms.
 *
 * dfota-sim is the executable beside this one (or $DFOTA_SIM), started with
 * --profile fast --wait-open in a mkdtemp directory, trigger mode off
 * (AT+QFOTADL=3,0) so no update starts. Numbers only, no pass/fail.
 * Children are stopped and the temporary directories removed at the end
 * (also after SIGINT/SIGTERM); every wait has a deadline.
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

#define UPLOAD_BYTES (7u * 1024u * 1024u)
#define CHUNK 4096u              /* the host's write size */
#define BARE_READ (64u * 1024u)  /* the bare peer's read size */
#define DEADLINE_MS 10000        /* any single expected answer */
#define UPLOAD_DEADLINE_MS 30000 /* a whole upload */
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

/* The termios speed of @p bps (only the rates this benchmark uses). */
static speed_t speed_of(uint32_t bps)
{
    return bps == 921600 ? B921600 : B115200;
}

/* Sets @p fd raw at @p bps; 0 or -1. */
static int host_speed(int fd, uint32_t bps)
{
    struct termios tio;
    if (tcgetattr(fd, &tio))
        return -1;
    cfmakeraw(&tio);
    cfsetspeed(&tio, speed_of(bps));
    return tcsetattr(fd, TCSADRAIN, &tio) ? -1 : 0;
}

/* Opens tty @p path as a host opens a serial port: raw, 115200, non-blocking. */
static int host_open(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "bench_com_upload: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (host_speed(fd, 115200) == 0)
        return fd;
    fprintf(stderr, "bench_com_upload: termios %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
}

/* Writes all of @p len bytes of @p buf to non-blocking @p fd in chunks of at
 * most CHUNK, waiting for room on EAGAIN until @p end (ns); 0 or -1. */
static int write_all(int fd, const void *buf, size_t len, uint64_t end)
{
    const uint8_t *p = buf;
    while (len && !g_stop) {
        ssize_t n = write(fd, p, len < CHUNK ? len : CHUNK);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        uint64_t t = now_ns();
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || t >= end)
            return -1;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, (int)((end - t) / 1000000u) + 1);
    }
    return len ? -1 : 0;
}

static int send_cmd(int fd, const char *cmd)
{
    return write_all(fd, cmd, strlen(cmd), now_ns() + (uint64_t)DEADLINE_MS * 1000000u);
}

/* Reads from @p fd into @p buf (NUL-terminated, @p cap > 1) until it holds
 * @p want or an ERROR; returns the bytes read (check for @p want) or -1
 * (deadline, hang-up, signal, full). */
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
            if (memmem(buf, len, want, wlen) || memmem(buf, len, "ERROR\r\n", 7))
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

/* Sends @p cmd and waits for @p want ("\r\nOK\r\n", "CONNECT\r\n"); 0 or -1. */
static int chat(int fd, const char *cmd, const char *want, char *buf, size_t cap)
{
    if (send_cmd(fd, cmd) || read_until(fd, buf, cap, want, DEADLINE_MS) < 0 ||
        !strstr(buf, want)) {
        const char *w = want + strspn(want, "\r\n");
        fprintf(stderr, "bench_com_upload: %.*s: no %.*s\n", (int)strcspn(cmd, "\r"), cmd,
                (int)strcspn(w, "\r"), w);
        return -1;
    }
    return 0;
}

/* Sends @p len bytes of @p data and reads the answer up to the final OK into
 * @p resp; returns the seconds from the first byte to the OK, or -1. */
static double timed_send(int fd, const uint8_t *data, size_t len, char *resp, size_t cap)
{
    uint64_t t0 = now_ns();
    if (write_all(fd, data, len, t0 + (uint64_t)UPLOAD_DEADLINE_MS * 1000000u) ||
        read_until(fd, resp, cap, OK_SUFFIX, UPLOAD_DEADLINE_MS) < 0 || !strstr(resp, OK_SUFFIX))
        return -1;
    return (double)(now_ns() - t0) / 1e9;
}

/* One COM upload of @p data to dfota-sim on @p fd, its answer checked
 * against the bytes; returns the seconds (first byte to OK) or -1. */
static double sim_upload(int fd, const uint8_t *data, size_t len)
{
    char cmd[64], resp[256];
    snprintf(cmd, sizeof(cmd), "AT+QFOTADL=\"COM:\",%zu,10\r", len);
    if (chat(fd, cmd, "CONNECT\r\n", resp, sizeof(resp)))
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

/* The bare copy peer. Its slave path goes to the parent over @p sock; it
 * counts what it reads on the master and writes OK_SUFFIX after each
 * @p size bytes, until the parent closes @p sock. */
static void bare_child(int sock, size_t size)
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
    static uint8_t buf[BARE_READ];
    if (tcsetattr(s, TCSANOW, &tio) || write(sock, path, strlen(path) + 1) < 0)
        _exit(1);
    struct pollfd p[2] = {{.fd = m, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    size_t got = 0;
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
        for (ssize_t n; (n = read(m, buf, sizeof(buf))) > 0;) {
            got += (size_t)n;
            if (got >= size) {
                got -= size;
                if (write_all(m, OK_SUFFIX, sizeof(OK_SUFFIX) - 1,
                              now_ns() + (uint64_t)DEADLINE_MS * 1000000u))
                    _exit(1);
            }
        }
    }
}

struct bare {
    pid_t pid;
    int sock;
    char path[64];
};

static int bare_start(struct bare *b, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    b->pid = fork();
    if (b->pid == 0) {
        close(sv[0]);
        bare_child(sv[1], size);
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
    b->sock = -1;
    if (b->pid > 0)
        child_reap(b->pid, 2000);
    b->pid = -1;
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

/* Whether `dfota-sim --help` lists --pace-uart. */
static bool sim_has_pacing(void)
{
    char exe[PATH_MAX], help[8192];
    int out[2];
    if (sim_exe(exe, sizeof(exe)) || pipe2(out, O_CLOEXEC))
        return false;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        execl(exe, exe, "--help", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    ssize_t n = pid < 0 ? -1 : read_until(out[0], help, sizeof(help), "--pace-uart", DEADLINE_MS);
    close(out[0]);
    if (pid > 0)
        child_reap(pid, DEADLINE_MS);
    return n > 0 && strstr(help, "--pace-uart");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0;
}

/* Starts dfota-sim (with --pace-uart when @p paced) in a fresh temporary
 * directory and waits for its ready line. */
static int sim_start(struct sim *s, bool paced)
{
    char exe[PATH_MAX], state[96], line[256];
    int out[2];
    snprintf(s->dir, sizeof(s->dir), "/tmp/bench_com_upload.XXXXXX");
    if (sim_exe(exe, sizeof(exe)) || !mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        fprintf(stderr, "bench_com_upload: no dfota-sim or temporary directory\n");
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
              paced ? "--pace-uart" : (char *)NULL, (char *)NULL);
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
        fprintf(stderr, "bench_com_upload: %s gave no ready line\n", exe);
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
    s->pid = -1;
    if (s->dir[0])
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}

/* Opens the module's port (powering it on), waits for the last boot URC,
 * turns echo off and the update trigger off (the slot is only written). */
static int sim_open(const struct sim *s)
{
    char buf[1024];
    int fd = host_open(s->tty);
    if (fd < 0)
        return -1;
    if (read_until(fd, buf, sizeof(buf), "+QIND: SMS DONE\r\n", DEADLINE_MS) < 0 ||
        chat(fd, "ATE0\r", OK_SUFFIX, buf, sizeof(buf)) ||
        chat(fd, "AT+QFOTADL=3,0\r", OK_SUFFIX, buf, sizeof(buf))) {
        fprintf(stderr, "bench_com_upload: dfota-sim did not boot or take its setup\n");
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- the two parts ---------------------------------------------------- */

static double mbps(size_t bytes, double secs)
{
    return (double)bytes / 1e6 / secs;
}

/* Unpaced: @p runs uploads of @p data to each peer, alternating. 0 or -1. */
static int bench_unpaced(const uint8_t *data, size_t len, int runs)
{
    struct bare bare = {.pid = -1, .sock = -1};
    struct sim sim = {.pid = -1};
    int bare_fd = -1, sim_fd = -1, rc = -1;
    double best_bare = 1e9, best_sim = 1e9;
    char resp[64];
    if (bare_start(&bare, len) || (bare_fd = host_open(bare.path)) < 0) {
        fprintf(stderr, "bench_com_upload: bare pty peer failed\n");
        goto out;
    }
    if (sim_start(&sim, false) || (sim_fd = sim_open(&sim)) < 0)
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
        best_bare = b < best_bare ? b : best_bare;
        best_sim = d < best_sim ? d : best_sim;
    }
    printf("unpaced upload of %zu bytes in %u-byte writes, best of %d (first byte to OK)\n", len,
           CHUNK, runs);
    printf("  bare pty copy  %8.1f MB/s  %8.1f ms\n", mbps(len, best_bare), best_bare * 1e3);
    printf("  dfota-sim      %8.1f MB/s  %8.1f ms  (+QFOTADL size and xor16 match)\n",
           mbps(len, best_sim), best_sim * 1e3);
    printf("  ratio dfota-sim/bare: %.2f (target >= 0.9; dfota-sim answers after its fsync of "
           "the slot)\n",
           best_bare / best_sim);
    rc = 0;
out:
    if (sim_fd >= 0)
        close(sim_fd);
    if (bare_fd >= 0)
        close(bare_fd);
    sim_stop(&sim);
    bare_stop(&bare);
    return rc;
}

/* Paced: at each rate, AT+IPR and an upload of @p seconds worth. 0 or -1. */
static int bench_paced(const uint8_t *data, size_t cap, double seconds)
{
    static const uint32_t rates[] = {115200, 921600};
    if (!sim_has_pacing()) {
        printf("paced: skipped (no --pace-uart)\n");
        return 0;
    }
    struct sim sim = {.pid = -1};
    int fd = -1, rc = -1;
    if (sim_start(&sim, true) || (fd = sim_open(&sim)) < 0)
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
        if (chat(fd, cmd, OK_SUFFIX, buf, sizeof(buf)) || host_speed(fd, rates[i]))
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
    sim_stop(&sim);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    double paced_s = argc > 2 ? strtod(argv[2], NULL) : 2.0;
    if (runs < 1 || runs > 100 || !(paced_s > 0) || paced_s > 20) {
        fprintf(stderr, "usage: bench_com_upload [RUNS [PACED_SECONDS]]\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: waits wake up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint8_t *data = malloc(UPLOAD_BYTES);
    if (!data)
        return 1;
    fill_random(data, UPLOAD_BYTES);
    int rc = bench_unpaced(data, UPLOAD_BYTES, runs) || bench_paced(data, UPLOAD_BYTES, paced_s);
    if (g_stop)
        fprintf(stderr, "bench_com_upload: interrupted\n");
    free(data);
    return rc ? 1 : 0;
}
