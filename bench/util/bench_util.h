/* bench_util.h - what the benchmarks of bench/ share: the stop signals, a
 * monotonic clock, the host side of a serial port (raw open, write with a
 * deadline, read until an answer), a bare pty peer in a child process and
 * dfota-sim itself started in a temporary directory.
 *
 * Errors are -1 (the benchmarks print numbers, not error codes); every wait
 * has a deadline and ends early once a stop signal has arrived.
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_DEADLINE_MS 10000 /* any single expected answer */
#define BENCH_OK "\r\nOK\r\n"   /* the final result code */
#define BENCH_PTY_PATH_MAX 64   /* a pty slave path, NUL included */

/* ---- process ------------------------------------------------------------ */

/**
 * Sets up the benchmark process: @p name prefixes every message the
 * functions below print (and names the temporary directories); SIGINT and
 * SIGTERM set the stop flag without SA_RESTART, so a wait wakes up; SIGPIPE
 * is ignored. @p name must live until the process ends (a string literal).
 */
void bench_init(const char *name);

/** Whether SIGINT or SIGTERM has arrived since bench_init(). */
bool bench_stopped(void);

/** The CLOCK_MONOTONIC time in nanoseconds. */
uint64_t bench_now_ns(void);

/** The bench_now_ns() time @p ms milliseconds from now. */
uint64_t bench_deadline_ns(int ms);

/**
 * Waits up to @p ms for child @p pid to exit, then kills it (SIGKILL); the
 * child is reaped either way. Sends no signal of its own before the wait.
 */
void bench_child_reap(pid_t pid, int ms);

/* ---- host side of a serial port ----------------------------------------- */

/**
 * Opens tty @p path as a host opens a serial port: raw, 115200 bps,
 * non-blocking, close-on-exec. Returns the fd (the caller closes it) or -1
 * after printing why. @p path is only read during the call.
 */
int bench_host_open(const char *path);

/**
 * Sets @p fd raw at @p bps (9600 to 921600; other rates are -1), after what
 * is already written has drained. 0 or -1.
 */
int bench_host_speed(int fd, uint32_t bps);

/**
 * Writes all @p len bytes of @p buf to non-blocking @p fd, at most @p chunk
 * bytes a write() (0: no limit), waiting for room on EAGAIN until @p end_ns
 * (a bench_now_ns() time). 0, or -1 on an error, the deadline or a stop
 * signal. @p buf is only read during the call.
 */
int bench_write_all(int fd, const void *buf, size_t len, size_t chunk, uint64_t end_ns);

/**
 * Reads from @p fd into @p buf (@p cap > 1 bytes, kept NUL-terminated)
 * until it holds @p want. Returns the bytes read, or -1 on the deadline of
 * @p timeout_ms, end of file or a hung-up line, a stop signal, a full
 * @p buf, or an "ERROR\r\n" that came before @p want. @p fd may be
 * blocking only if data is sure to come; it is normally non-blocking.
 */
ssize_t bench_read_until(int fd, char *buf, size_t cap, const char *want, int timeout_ms);

/**
 * Sends AT command @p cmd (with its "\r") on @p fd and reads the answer
 * into @p buf (@p cap bytes) until it holds @p want (BENCH_OK,
 * "CONNECT\r\n"), BENCH_DEADLINE_MS for each. 0, or -1 after printing
 * "<cmd>: no <want>". The strings are only read during the call.
 */
int bench_chat(int fd, const char *cmd, const char *want, char *buf, size_t cap);

/* ---- a bare pty peer ------------------------------------------------------ */

/**
 * Called in the peer child each time its pty master @p master is readable;
 * @p arg is bench_peer_start()'s (the child's copy of the parent's memory).
 * Returns 0 to go on, -1 to end the child with status 1.
 */
typedef int (*bench_peer_read_cb)(int master, void *arg);

/** A child process holding a pty pair; see bench_peer_start(). */
struct bench_peer {
    pid_t pid;                     /* the child, or -1 */
    int sock;                      /* the parent's end of the control socket, or -1 */
    char path[BENCH_PTY_PATH_MAX]; /* the slave path a host opens */
};

/**
 * Forks a child that opens a pty pair (posix_openpt), holds the slave open
 * and raw as dfota-sim does, reports the slave path (into @p p->path) and
 * then calls @p on_read whenever the master is readable, until the parent
 * closes its socket. 0 or -1; call bench_peer_stop() either way. @p p is
 * the caller's, filled here.
 */
int bench_peer_start(struct bench_peer *p, bench_peer_read_cb on_read, void *arg);

/** Ends and reaps the child of bench_peer_start() (2 s, then SIGKILL). */
void bench_peer_stop(struct bench_peer *p);

/* ---- dfota-sim ------------------------------------------------------------ */

/** A dfota-sim child and its temporary directory; see bench_sim_start(). */
struct bench_sim {
    pid_t pid;    /* the child, or -1 */
    char dir[64]; /* the mkdtemp directory, or "" */
    char tty[96]; /* <dir>/modem.tty, its port */
};

/**
 * Writes the path of the dfota-sim executable into @p buf (@p cap bytes):
 * $DFOTA_SIM if set, else "dfota-sim" beside this program. 0 or -1.
 */
int bench_sim_exe(char *buf, size_t cap);

/**
 * Starts dfota-sim --uart <dir>/modem.tty --state-dir <dir>/state --profile
 * fast --wait-open, then the arguments of @p extra (NULL-terminated, at most
 * 8; NULL for none), in a fresh /tmp/<name>.XXXXXX directory, and waits for
 * its ready line. The port is not open yet (opening it powers the module
 * on). The child gets SIGTERM if this process dies. 0 or -1 (printed); call
 * bench_sim_stop() either way. @p s is the caller's, filled here.
 */
int bench_sim_start(struct bench_sim *s, const char *const *extra);

/**
 * Opens the port of @p s as bench_host_open() does (powering the module
 * on), waits for the last boot URC and sends each command of @p setup
 * (NULL-terminated, "\r" included; NULL for none) waiting for its OK.
 * Returns the fd (the caller closes it) or -1 after printing "dfota-sim did
 * not boot or take <what>".
 */
int bench_sim_open(const struct bench_sim *s, const char *const *setup, const char *what);

/**
 * Stops the child of bench_sim_start() (SIGTERM, 5 s, then SIGKILL) and
 * removes its temporary directory; @p s can be started again.
 */
void bench_sim_stop(struct bench_sim *s);

#endif
