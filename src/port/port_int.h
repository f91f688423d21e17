/* port_int.h - private to src/port: the seam between the common part of a
 * port (port.c: output queue, pacing, strict rate, events, close) and a kind
 * of port (port_pty.c, port_mem.c; later TCP and RFC 2217).
 *
 * A kind allocates its own struct with a struct port as its FIRST member,
 * calls port_int_init(), and talks to the common part only through the
 * port_int_* functions below; the common part talks to the kind only
 * through its struct port_ops.
 */
#ifndef DFOTA_PORT_INT_H
#define DFOTA_PORT_INT_H

#include <stdarg.h>
#include <sys/types.h>

#include "dfota/port.h"

/** A byte FIFO: data[head, head + len) is queued. Zeroed is empty. */
struct port_buf {
    uint8_t *data;
    size_t head, len, cap;
};

/** Bytes sent back to back under pacing since a time: the line is busy
 *  until start + bytes byte-times. */
struct port_pace {
    uint64_t start_us;
    uint64_t bytes;
};

struct port_ops {
    const char *kind;
    /** Hands up to @p len bytes to the host side without blocking; returns
     *  how many it took. Taking fewer (0 included) means "full": the common
     *  part then calls want_write(true) and waits for port_int_writable().
     *  A negative errno means the link is broken: the queue is dropped. */
    ssize_t (*write)(struct port *p, const uint8_t *buf, size_t len);
    /** Starts/stops watching for the host side to take more output. */
    void (*want_write)(struct port *p, bool on);
    /** Starts/stops reading input (pacing, flow control and input the
     *  owner has not taken stop it). Called on changes only. */
    void (*want_read)(struct port *p, bool on);
    /** The host went away: drop output it has not read yet. Optional. */
    void (*discard)(struct port *p);
    /** The line rate changed (RFC 2217 tells its client). Optional. */
    int (*set_rate)(struct port *p, uint32_t bps);
    /** The host's speed, 0 unknown. Optional. */
    uint32_t (*host_rate)(const struct port *p);
    /** The slave device, or NULL. Optional. */
    const char *(*slave_path)(const struct port *p);
    /** Stops I/O and closes the kind's handles; once they are all closed
     *  calls port_int_closed(). Never calls it before returning. */
    void (*close)(struct port *p);
    /** Frees the kind's struct (the common part's buffers are gone). */
    void (*destroy)(struct port *p);
};

struct port {
    const struct port_ops *ops;
    struct dclock *clk;
    struct port_events ev;
    void *ud;
    char *name;
    int verbose;
    bool host_open;
    bool closing;
    struct port_buf out; /* output waiting for the host side */
    bool tx_blocked;     /* the kind is full: waiting for port_int_writable() */
    bool tx_held;        /* port_hold_output(): the host's RTS is off */
    /* line rate */
    uint32_t rate;
    bool pace_out, pace_in;
    struct port_pace tx_pace, rx_pace;
    struct dclock_timer tx_timer, rx_timer;
    bool rx_stopped; /* pace_in has stopped reading until rx_timer */
    bool rx_idle;    /* the kind found no input: the next input starts a new burst */
    /* flow control */
    struct port_buf hold;           /* input read, not taken by on_data: offered again */
    struct dclock_timer hold_timer; /* offers it on the next turn */
    bool rx_full;                   /* output above PORT_OUT_HIGH: input stopped */
    bool rx_on;                     /* what want_read() was last told */
    /* strict rate */
    bool strict;
    uint32_t warned_host_rate, warned_rate; /* the mismatch last warned about */
    struct port_stats stats;
    void (*close_cb)(void *arg);
    void *close_arg;
};

/** Appends @p n bytes of @p src to @p b; -ENOBUFS if @p b would then hold
 *  more than @p max bytes (nothing is appended), -ENOMEM. */
int port_buf_append(struct port_buf *b, const void *src, size_t n, size_t max);

/** Removes the first @p n bytes of @p b (n <= b->len); an emptied buffer
 *  gives back its memory when it has grown large. */
void port_buf_consume(struct port_buf *b, size_t n);

/** Frees the memory of @p b and empties it. */
void port_buf_free(struct port_buf *b);

/** Sets up the common part of @p p (zeroed by the caller) and copies
 *  @p name. Returns 0 or -ENOMEM. */
int port_int_init(struct port *p, const struct port_ops *ops, struct dclock *clk,
                  const struct port_events *ev, void *ud, const char *name, int verbose);

/** Frees what port_int_init() allocated (for a kind whose construction
 *  failed after it). */
void port_int_fini(struct port *p);

/** Logs "port <name>: ..." to stderr when @p level <= the port's verbose
 *  (level 0: warnings, always shown). */
void port_int_log(const struct port *p, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** How many input bytes the kind may read and raise now: SIZE_MAX when
 *  unpaced. 0 means wait: reading has been stopped (want_read(false)) and
 *  is resumed (want_read(true)) when pacing, flow control or the owner
 *  allow. */
size_t port_int_rx_budget(struct port *p);

/** The kind read @p len > 0 bytes of input: counts them and raises
 *  on_data; what the owner does not take is kept (copied) and reading
 *  stops until it is. The port may be closing afterwards (check
 *  p->closing). */
void port_int_rx(struct port *p, const uint8_t *buf, size_t len);

/** The kind found no more input for now (the next input after it starts a
 *  new paced burst). */
void port_int_rx_idle(struct port *p);

/** The host side can take output again (after a short write). */
void port_int_writable(struct port *p);

/** The host opened or closed the port: on a change drops what a closed
 *  host would never read and raises on_host. */
void port_int_host(struct port *p, bool open);

/** The kind's handles are all closed: frees the port and calls the close
 *  callback. */
void port_int_closed(struct port *p);

/** Reads the host's speed from the termios of tty @p fd (TCGETS2, so
 *  arbitrary rates read right); 0 when unknown. */
uint32_t port_int_tty_speed(int fd);

/** Sets the speed of tty @p fd to @p bps both ways (TCSETS2, BOTHER for any
 *  rate). 0 or a negative errno. */
int port_int_tty_set_speed(int fd, uint32_t bps);

#endif
