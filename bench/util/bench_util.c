/* bench_util.c - what the benchmarks of bench/ share (see bench_util.h). */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define MAX_EXTRA 8 /* bench_sim_start()'s extra arguments */

/* Process-wide by nature: a signal handler can only reach a static, and one
 * benchmark runs per process. */
static volatile sig_atomic_t g_stop; /* SIGINT/SIGTERM: give up and clean up */
static const char *g_name = "bench";

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void bench_init(const char *name)
{
    g_name = name;
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART: waits wake up */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool bench_stopped(void)
{
    return g_stop != 0;
}

uint64_t bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

uint64_t bench_deadline_ns(int ms)
{
    return bench_now_ns() + (uint64_t)ms * 1000000u;
}

void bench_child_reap(pid_t pid, int ms)
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

/* ---- host side of a serial port ----------------------------------------- */

int bench_host_speed(int fd, uint32_t bps)
{
    static const struct {
        uint32_t bps;
        speed_t speed;
    } rates[] = {{9600, B9600},     {19200, B19200},   {38400, B38400},   {57600, B57600},
                 {115200, B115200}, {230400, B230400}, {460800, B460800}, {921600, B921600}};
    struct termios tio;
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        if (rates[i].bps != bps)
            continue;
        if (tcgetattr(fd, &tio))
            return -1;
        cfmakeraw(&tio);
        cfsetspeed(&tio, rates[i].speed);
        return tcsetattr(fd, TCSADRAIN, &tio) ? -1 : 0;
    }
    errno = EINVAL;
    return -1;
}

int bench_host_open(const char *path)
{
    int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "%s: open %s: %s\n", g_name, path, strerror(errno));
        return -1;
    }
    if (bench_host_speed(fd, 115200) == 0)
        return fd;
    fprintf(stderr, "%s: termios %s: %s\n", g_name, path, strerror(errno));
    close(fd);
    return -1;
}

int bench_write_all(int fd, const void *buf, size_t len, size_t chunk, uint64_t end_ns)
{
    const uint8_t *p = buf;
    while (len && !g_stop) {
        ssize_t n = write(fd, p, chunk && len > chunk ? chunk : len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        uint64_t t = bench_now_ns();
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || t >= end_ns)
            return -1;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        poll(&pf, 1, (int)((end_ns - t) / 1000000u) + 1);
    }
    return len ? -1 : 0;
}

ssize_t bench_read_until(int fd, char *buf, size_t cap, const char *want, int timeout_ms)
{
    size_t len = 0, wlen = strlen(want);
    uint64_t end = bench_deadline_ns(timeout_ms);
    buf[0] = '\0';
    while (!g_stop) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
            if (len >= wlen && memmem(buf, len, want, wlen))
                return (ssize_t)len;
            if (memmem(buf, len, "ERROR\r\n", 7) || len == cap - 1)
                return -1;
            continue;
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return -1; /* end of file or a hung-up line */
        uint64_t t = bench_now_ns();
        if (t >= end)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, (int)((end - t) / 1000000u) + 1);
    }
    return -1;
}

int bench_chat(int fd, const char *cmd, const char *want, char *buf, size_t cap)
{
    if (bench_write_all(fd, cmd, strlen(cmd), 0, bench_deadline_ns(BENCH_DEADLINE_MS)) ||
        bench_read_until(fd, buf, cap, want, BENCH_DEADLINE_MS) < 0) {
        const char *w = want + strspn(want, "\r\n");
        fprintf(stderr, "%s: %.*s: no %.*s\n", g_name, (int)strcspn(cmd, "\r"), cmd,
                (int)strcspn(w, "\r"), w);
        return -1;
    }
    return 0;
}

/* ---- a bare pty peer ------------------------------------------------------ */

/* The peer child: opens the pty pair, sends the slave path over @p sock and
 * calls @p on_read while the master is readable, until @p sock closes. */
static void peer_child(int sock, bench_peer_read_cb on_read, void *arg)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    char path[BENCH_PTY_PATH_MAX];
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
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (p[1].revents)
            _exit(0); /* the parent is done (or gone) */
        if ((p[0].revents & POLLIN) && on_read(m, arg))
            _exit(1);
    }
}

int bench_peer_start(struct bench_peer *p, bench_peer_read_cb on_read, void *arg)
{
    int sv[2];
    p->pid = -1;
    p->sock = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    p->pid = fork();
    if (p->pid == 0) {
        close(sv[0]);
        peer_child(sv[1], on_read, arg);
    }
    close(sv[1]);
    p->sock = sv[0];
    if (p->pid < 0)
        return -1;
    ssize_t n = read(p->sock, p->path, sizeof(p->path) - 1);
    if (n <= 1)
        return -1;
    p->path[n] = '\0';
    return 0;
}

void bench_peer_stop(struct bench_peer *p)
{
    if (p->sock >= 0)
        close(p->sock); /* the child exits on this */
    p->sock = -1;
    if (p->pid > 0)
        bench_child_reap(p->pid, 2000);
    p->pid = -1;
}

/* ---- dfota-sim ------------------------------------------------------------ */

int bench_sim_exe(char *buf, size_t cap)
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

int bench_sim_start(struct bench_sim *s, const char *const *extra)
{
    char exe[PATH_MAX], state[96], line[256];
    const char *argv[10 + MAX_EXTRA] = {exe,   "--uart",    s->tty, "--state-dir",
                                        state, "--profile", "fast", "--wait-open"};
    size_t argc = 8;
    int out[2];
    s->pid = -1;
    s->dir[0] = '\0';
    for (; extra && *extra; extra++) {
        if (argc == sizeof(argv) / sizeof(argv[0]) - 1)
            return -1;
        argv[argc++] = *extra;
    }
    snprintf(s->dir, sizeof(s->dir), "/tmp/%s.XXXXXX", g_name);
    if (bench_sim_exe(exe, sizeof(exe)) || !mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        fprintf(stderr, "%s: no dfota-sim or temporary directory\n", g_name);
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
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(out[1]);
    if (s->pid < 0) {
        close(out[0]);
        return -1;
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    ssize_t n = bench_read_until(out[0], line, sizeof(line), "\n", BENCH_DEADLINE_MS);
    close(out[0]);
    if (n < 0 || strncmp(line, "dfota-sim: ", 11) != 0) {
        fprintf(stderr, "%s: %s gave no ready line\n", g_name, exe);
        return -1;
    }
    return 0;
}

int bench_sim_open(const struct bench_sim *s, const char *const *setup, const char *what)
{
    char buf[1024];
    int fd = bench_host_open(s->tty);
    if (fd < 0)
        return -1;
    bool ok = bench_read_until(fd, buf, sizeof(buf), "+QIND: SMS DONE\r\n", BENCH_DEADLINE_MS) >= 0;
    for (; ok && setup && *setup; setup++)
        ok = bench_chat(fd, *setup, BENCH_OK, buf, sizeof(buf)) == 0;
    if (!ok) {
        fprintf(stderr, "%s: dfota-sim did not boot or take %s\n", g_name, what);
        close(fd);
        return -1;
    }
    return fd;
}

/* nftw callback of bench_sim_stop(): removes each entry, deepest first. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    remove(path);
    return 0;
}

void bench_sim_stop(struct bench_sim *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        bench_child_reap(s->pid, 5000);
    }
    s->pid = -1;
    if (s->dir[0])
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}
