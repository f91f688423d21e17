/* port_pty.c - the pty port: a pseudo-terminal whose slave a host opens as
 * it would open the real module's serial port (see include/dfota/port.h and
 * DESIGN.md "Notes on ptys").
 *
 * - The master is opened O_NONBLOCK and driven with a uv_poll_t (a uv_tty_t
 *   would fall back to blocking writes).
 * - One slave fd stays open in the process for the port's life: a host that
 *   closes the port then causes no EIO/hang-up on the master (no POLLHUP
 *   spin), a host that reopens it just works, and tcgetattr()-like reads on
 *   it tell the speed the host set.
 * - An inotify watch (IN_OPEN | IN_CLOSE) on the slave counts the host's
 *   opens and closes; our own open comes before the watch, so it is not
 *   counted. While no host has it open, output is dropped and what the host
 *   left unread is flushed from the slave's input queue.
 */
#include "port_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#define PTY_READ_CHUNK 4096u
/* Then the loop serves the others: 16 KiB a turn keeps a bulk upload on one
 * port from holding another modem's AT answer back by more than a fraction
 * of a millisecond (bench_loop: B's p99 AT round trip while A uploads went
 * from 16-30x idle at 16 reads to ~5x at 4, COM upload throughput within
 * the benchmark's noise). */
#define PTY_READS_PER_EVENT 4

struct port_pty {
    struct port base;
    uv_poll_t data_poll;  /* the master */
    uv_poll_t watch_poll; /* the inotify fd */
    int master, slave, inotify;
    bool watching;         /* watch_poll is set up: host opens are counted */
    bool reading, writing; /* what data_poll waits for */
    unsigned host_opens;   /* the host's opens minus its closes */
    unsigned handles;      /* handles still to close */
    char slave_path[64];
    char *link_path; /* NULL: no symlink */
    bool linked;     /* link_path is ours */
};

static const struct port_ops pty_ops;

static struct port_pty *pty_of(const struct port *p)
{
    return (struct port_pty *)p;
}

/* ---- data --------------------------------------------------------------- */

static void on_data_poll(uv_poll_t *h, int status, int events);

static void pty_update_poll(struct port_pty *t)
{
    if (t->base.closing)
        return;
    int events = (t->reading ? UV_READABLE : 0) | (t->writing ? UV_WRITABLE : 0);
    int rc =
        events ? uv_poll_start(&t->data_poll, events, on_data_poll) : uv_poll_stop(&t->data_poll);
    if (rc < 0)
        port_int_log(&t->base, 0, "poll: %s", uv_strerror(rc));
}

static void pty_read(struct port_pty *t)
{
    struct port *p = &t->base;
    uint8_t buf[PTY_READ_CHUNK];
    for (int i = 0; i < PTY_READS_PER_EVENT; i++) {
        size_t budget = port_int_rx_budget(p);
        if (!budget)
            return;
        ssize_t n = read(t->master, buf, budget < sizeof(buf) ? budget : sizeof(buf));
        if (n > 0) {
            port_int_rx(p, buf, (size_t)n);
            if (p->closing)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            port_int_rx_idle(p);
            return;
        }
        /* Cannot happen while we hold the slave open; stop rather than spin. */
        port_int_log(p, 0, "read: %s; input stopped", n < 0 ? strerror(errno) : "end of file");
        t->reading = false;
        pty_update_poll(t);
        return;
    }
}

static void on_data_poll(uv_poll_t *h, int status, int events)
{
    struct port_pty *t = h->data;
    struct port *p = &t->base;
    p->stats.io_events++;
    if (status < 0) {
        port_int_log(p, 0, "poll: %s; I/O stopped", uv_strerror(status));
        uv_poll_stop(h);
        return;
    }
    if (events & UV_WRITABLE)
        port_int_writable(p);
    if ((events & UV_READABLE) && t->reading && !p->closing)
        pty_read(t);
}

static ssize_t pty_write(struct port *p, const uint8_t *buf, size_t len)
{
    for (;;) {
        ssize_t n = write(pty_of(p)->master, buf, len);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

static void pty_want_write(struct port *p, bool on)
{
    pty_of(p)->writing = on;
    pty_update_poll(pty_of(p));
}

static void pty_want_read(struct port *p, bool on)
{
    pty_of(p)->reading = on;
    pty_update_poll(pty_of(p));
}

/* While no host has it open, the line's speed follows the module's rate:
 * a host that opens it and sets no speed reads at the module's rate. */
static void pty_follow_rate(struct port *p, uint32_t bps)
{
    if (!bps || p->host_open)
        return;
    int rc = port_int_tty_set_speed(pty_of(p)->slave, bps);
    if (rc < 0)
        port_int_log(p, 0, "cannot set the line to %u bps: %s", bps, strerror(-rc));
}

/* The host closed: what it did not read would otherwise greet the next
 * host (a real UART's bytes are simply gone), and the speed it set is
 * not the next host's. */
static void pty_discard(struct port *p)
{
    if (tcflush(pty_of(p)->slave, TCIFLUSH) != 0)
        port_int_log(p, 0, "tcflush: %s", strerror(errno));
    pty_follow_rate(p, p->rate);
}

static int pty_set_rate(struct port *p, uint32_t bps)
{
    pty_follow_rate(p, bps);
    return 0;
}

static uint32_t pty_host_rate(const struct port *p)
{
    return port_int_tty_speed(pty_of(p)->slave);
}

static const char *pty_slave_path(const struct port *p)
{
    return pty_of(p)->slave_path;
}

/* ---- host tracking ------------------------------------------------------ */

static void pty_host_event(struct port_pty *t, uint32_t mask)
{
    struct port *p = &t->base;
    if (mask & IN_Q_OVERFLOW)
        port_int_log(p, 0, "inotify queue overflow: host open count may be wrong");
    if (mask & IN_OPEN)
        t->host_opens++;
    if ((mask & IN_CLOSE) && t->host_opens)
        t->host_opens--;
    if (mask & IN_IGNORED) {
        port_int_log(p, 0, "slave watch removed: host counts as always open");
        t->host_opens = 1;
        uv_poll_stop(&t->watch_poll);
    }
}

static void on_watch_poll(uv_poll_t *h, int status, int events)
{
    struct port_pty *t = h->data;
    struct port *p = &t->base;
    (void)events;
    if (status < 0) {
        port_int_log(p, 0, "inotify poll: %s; host counts as always open", uv_strerror(status));
        uv_poll_stop(h);
        t->host_opens = 1;
        port_int_host(p, true);
        return;
    }
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(t->inotify, buf, sizeof(buf));
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break; /* EAGAIN: all read */
        }
        for (char *e = buf; e < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)e;
            pty_host_event(t, ev->mask);
            e += sizeof(*ev) + ev->len;
        }
    }
    /* Only the state after all pending events counts: a host that closed
     * and reopened already may have been answered by now (its input can be
     * read before these events), and that answer is the new host's, not a
     * backlog to flush. */
    port_int_host(p, t->host_opens > 0);
}

/* ---- symlink ------------------------------------------------------------ */

/* The temporary name the symlink is made under before it is renamed into
 * place (unique: the pts number is ours while we hold it). */
static int link_tmp_name(const struct port_pty *t, char *buf, size_t cap)
{
    const char *num = strrchr(t->slave_path, '/');
    int n = snprintf(buf, cap, "%s.tmp-%s", t->link_path, num ? num + 1 : "x");
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Makes the symlink under its temporary name; the stale name it will
 * replace must be a symlink (or absent). */
static int link_prepare(struct port_pty *t, char *tmp, size_t cap)
{
    struct stat st;
    if (lstat(t->link_path, &st) == 0 && !S_ISLNK(st.st_mode))
        return -EEXIST;
    int rc = link_tmp_name(t, tmp, cap);
    if (rc < 0)
        return rc;
    unlink(tmp);
    return symlink(t->slave_path, tmp) == 0 ? 0 : -errno;
}

/* Removes the symlink if it still points at our slave (another process
 * may have taken the name since). */
static void link_remove(struct port_pty *t)
{
    if (!t->linked)
        return;
    t->linked = false;
    char target[sizeof(t->slave_path)];
    ssize_t n = readlink(t->link_path, target, sizeof(target) - 1);
    if (n < 0)
        return;
    target[n] = '\0';
    if (strcmp(target, t->slave_path) == 0 && unlink(t->link_path) != 0)
        port_int_log(&t->base, 0, "unlink: %s", strerror(errno));
}

/* ---- life --------------------------------------------------------------- */

static void on_pty_handle_closed(uv_handle_t *h)
{
    struct port_pty *t = h->data;
    if (--t->handles)
        return;
    port_int_closed(&t->base);
}

static void pty_close(struct port *p)
{
    struct port_pty *t = pty_of(p);
    link_remove(t);
    t->handles = 1;
    uv_close((uv_handle_t *)&t->data_poll, on_pty_handle_closed);
    if (t->watching) {
        t->handles++;
        uv_close((uv_handle_t *)&t->watch_poll, on_pty_handle_closed);
    }
}

static void pty_free(struct port_pty *t)
{
    if (t->inotify >= 0)
        close(t->inotify);
    if (t->slave >= 0)
        close(t->slave);
    if (t->master >= 0)
        close(t->master);
    free(t->link_path);
    free(t);
}

static void pty_destroy(struct port *p)
{
    pty_free(pty_of(p));
}

static const struct port_ops pty_ops = {
    .kind = "pty",
    .write = pty_write,
    .want_write = pty_want_write,
    .want_read = pty_want_read,
    .discard = pty_discard,
    .set_rate = pty_set_rate,
    .host_rate = pty_host_rate,
    .slave_path = pty_slave_path,
    .close = pty_close,
    .destroy = pty_destroy,
};

/* Opens the master and the held slave, and puts the line in raw mode at
 * B115200. */
static int pty_open(struct port_pty *t)
{
    t->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (t->master < 0)
        return -errno;
    if (grantpt(t->master) != 0 || unlockpt(t->master) != 0)
        return -errno;
    int rc = ptsname_r(t->master, t->slave_path, sizeof(t->slave_path));
    if (rc != 0)
        return -rc;
    t->slave = open(t->slave_path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (t->slave < 0)
        return -errno;
    struct termios tio;
    if (tcgetattr(t->slave, &tio) != 0)
        return -errno;
    cfmakeraw(&tio);
    cfsetspeed(&tio, B115200);
    return tcsetattr(t->slave, TCSANOW, &tio) == 0 ? 0 : -errno;
}

/* Starts counting host opens: returns whether it could. */
static bool pty_watch(struct port_pty *t, uv_loop_t *loop)
{
    const char *why = NULL;
    t->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (t->inotify < 0)
        why = "inotify_init1";
    else if (inotify_add_watch(t->inotify, t->slave_path, IN_OPEN | IN_CLOSE) < 0)
        why = "inotify_add_watch";
    if (why) {
        port_int_log(&t->base, 0, "%s: %s; host counts as always open", why, strerror(errno));
        return false;
    }
    int rc = uv_poll_init(loop, &t->watch_poll, t->inotify);
    if (rc == 0) {
        t->watching = true; /* the handle exists: it is closed with the port */
        rc = uv_poll_start(&t->watch_poll, UV_READABLE, on_watch_poll);
    }
    if (rc < 0) {
        port_int_log(&t->base, 0, "inotify poll: %s; host counts as always open", uv_strerror(rc));
        return false;
    }
    return true;
}

int port_pty_new(struct dclock *clk, const struct port_pty_cfg *cfg, const struct port_events *ev,
                 void *ud, struct port **out)
{
    static const struct port_pty_cfg defaults;
    if (!cfg)
        cfg = &defaults;
    struct port_pty *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    t->master = t->slave = t->inotify = -1;
    if (cfg->link_path && !(t->link_path = strdup(cfg->link_path))) {
        pty_free(t);
        return -ENOMEM;
    }
    char tmp[PATH_MAX];
    bool tmp_made = false;
    int rc = pty_open(t);
    if (rc == 0 && t->link_path) {
        rc = link_prepare(t, tmp, sizeof(tmp));
        tmp_made = rc == 0;
    }
    if (rc == 0) {
        rc = port_int_init(&t->base, &pty_ops, clk, ev, ud,
                           t->link_path ? t->link_path : t->slave_path, cfg->verbose);
    }
    uv_loop_t *loop = dclock_loop(clk);
    if (rc == 0) {
        rc = uv_poll_init(loop, &t->data_poll, t->master);
        if (rc < 0)
            port_int_fini(&t->base);
    }
    if (rc < 0) {
        if (tmp_made)
            unlink(tmp);
        pty_free(t);
        return rc;
    }
    /* From here on the loop holds a handle: failures close asynchronously. */
    t->data_poll.data = t;
    t->watch_poll.data = t;
    t->reading = true;
    pty_update_poll(t);
    t->base.host_open = !pty_watch(t, loop);
    if (t->link_path) {
        if (rename(tmp, t->link_path) != 0) {
            rc = -errno;
            unlink(tmp);
            port_close(&t->base, NULL, NULL);
            return rc;
        }
        t->linked = true;
    }
    port_int_log(&t->base, 1, "ready on %s", t->slave_path);
    *out = &t->base;
    return 0;
}
