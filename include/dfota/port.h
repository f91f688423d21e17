/* port.h - the module's serial line as the host sees it.
 *
 * A port carries bytes between the emulated module and the host program:
 * a pseudo-terminal with a stable symlink (what a host opens as it would
 * open the real module's /dev/ttyUSBx), an in-memory port for the unit
 * tests of the layers above, and later TCP and RFC 2217. Every kind plugs
 * in through one ops table (struct port_ops, private to src/port in
 * port_int.h); the functions below work the same on all of them.
 *
 * Data flows down through port_write(); what the host does flows up through
 * struct port_events. The port owns the line's timing: output can be paced
 * at the AT+IPR rate (10 bits a byte, 8N1) and input read no faster than
 * it, every delay going through the module clock (dclock). A port is
 * single-threaded: use it only from its clock's loop.
 *
 * While no host has the port open, output is dropped, as a real UART's bytes
 * are simply gone: a host that opens the port late never reads a stale
 * backlog.
 *
 * Flow control works as RTS/CTS would hold a real UART, both ways, and
 * drops nothing: output the host does not read waits in the port's queue;
 * while that queue is above PORT_OUT_HIGH the port stops reading input
 * (the host's writes then wait in its own buffers) until it drains to
 * PORT_OUT_LOW. The owner may take less input than it is offered (on_data
 * returns how many bytes it took): the port keeps the rest, reads nothing
 * new meanwhile, and offers it again right away when the owner took some,
 * or after port_input_resume() when it took none.
 */
#ifndef DFOTA_PORT_H
#define DFOTA_PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfota/clock.h"

struct port;
struct port_ops; /* the seam between the common part and a kind (port_int.h) */

/** Output queued for the host (written, not yet taken) above which the
 *  port stops reading input; it reads again once the queue is down to
 *  PORT_OUT_LOW. What is queued beyond it is at most what the owner writes
 *  for the input it already took (one command's reply). */
#define PORT_OUT_HIGH (64u * 1024u)
#define PORT_OUT_LOW (16u * 1024u)

/** Events a port raises to its owner; every member is optional. @c ud is
 *  the pointer given to the constructor. A callback may call any port_*
 *  function on the port, port_close() included. */
struct port_events {
    /** Bytes the host sent; @p buf is valid only during the call. Returns
     *  how many the owner took, oldest first. The port keeps the rest and
     *  reads nothing new until it is taken: it offers it again at once
     *  when some was taken (after checking its output queue), else once
     *  the owner calls port_input_resume(). NULL events take everything. */
    size_t (*on_data)(void *ud, const uint8_t *buf, size_t len);
    /** A host opened the port (first open: @p open true) or closed it (last
     *  close: false). Raised on changes only. */
    void (*on_host)(void *ud, bool open);
    /** The DTR line changed. A pty has no DTR: port_inject_dtr() raises it. */
    void (*on_dtr)(void *ud, bool asserted);
};

/** Configuration of a pty port; a zeroed struct selects the defaults. */
struct port_pty_cfg {
    /** Path of a symlink to the slave (e.g. "./dfota-sim.tty") that hosts
     *  open; NULL: none (hosts open port_slave_path()). A stale symlink
     *  there is replaced; any other file there is an error (-EEXIST). The
     *  string is copied. */
    const char *link_path;
    /** 0: warnings only; 1: also host opens/closes and rate changes. */
    int verbose;
};

/** Counters of a port, for the control socket and for tests. */
struct port_stats {
    uint64_t rx_bytes;   /**< bytes the host sent that were raised as on_data */
    uint64_t tx_bytes;   /**< bytes handed to the host side */
    uint64_t dropped;    /**< output bytes dropped: no host, or host closed before reading */
    uint64_t io_events;  /**< readiness callbacks of the data fd (a pty spinning shows here) */
    uint64_t out_queued; /**< output bytes queued now, not yet taken by the host side */
    uint64_t out_peak;   /**< the most output ever queued at once */
    uint64_t in_held;    /**< input bytes read but not yet taken by on_data */
};

/** Creates a pty port on @p clk's loop: a raw-mode pseudo-terminal at
 *  B115200 with one slave fd held open, and the symlink of @p cfg made once
 *  the port is ready. @p cfg may be NULL (defaults) and is not kept; @p ev
 *  is copied and may be NULL; @p ud is passed to the events. @p clk must
 *  outlive the port. On success stores the port in @p out (close it with
 *  port_close()) and returns 0; on failure returns a negative errno (from
 *  posix_openpt(), open(), symlink(), rename(), libuv, -ENOMEM, -EEXIST)
 *  and leaves @p out untouched; after a late failure (rename()) the port's
 *  handles are released as the loop runs, so run it before closing the
 *  loop. A host is counted as open from an inotify watch on the slave;
 *  where that watch cannot be made the host counts as always open
 *  (logged). */
int port_pty_new(struct dclock *clk, const struct port_pty_cfg *cfg, const struct port_events *ev,
                 void *ud, struct port **out);

/** Creates an in-memory port for unit tests: the test plays the host with
 *  port_mem_feed(), port_mem_take(), port_mem_set_host() and
 *  port_mem_set_host_rate(). The host starts open (no event is raised for
 *  that) at an unknown rate (0). Ownership and errors as port_pty_new()
 *  (-ENOMEM, or a libuv error). */
int port_mem_new(struct dclock *clk, const struct port_events *ev, void *ud, struct port **out);

/** In-memory port: the host sends @p len bytes of @p buf (copied). Unpaced
 *  input is raised as on_data before this returns; paced input follows on
 *  the clock. */
void port_mem_feed(struct port *p, const void *buf, size_t len);

/** In-memory port: takes up to @p cap - 1 bytes of what the module's output
 *  delivered to the host, oldest first, into @p buf and NUL-terminates it
 *  (when @p cap > 0). Returns the number of bytes taken; they are gone from
 *  the port. */
size_t port_mem_take(struct port *p, char *buf, size_t cap);

/** In-memory port: the host opens (@p open true) or closes the port;
 *  on_host is raised on a change. Closing drops output not yet taken. */
void port_mem_set_host(struct port *p, bool open);

/** In-memory port: the speed the host set on its side (what
 *  port_host_rate() reports); 0: unknown. */
void port_mem_set_host_rate(struct port *p, uint32_t bps);

/** In-memory port: the most output the host side holds untaken (its
 *  receive buffer); beyond it the module's writes wait in the port's queue,
 *  as with a host that does not read. 0: the default (4 MiB). */
void port_mem_set_host_window(struct port *p, size_t bytes);

/** In-memory port: bytes the host sent that the module has not taken yet
 *  (fed but not read, or read and held back). */
size_t port_mem_unread(const struct port *p);

/** Replaces the events of @p p and their @p ud (e.g. a modem taking over a
 *  port made by its creator); @p ev is copied, NULL clears them. */
void port_set_events(struct port *p, const struct port_events *ev, void *ud);

/** Queues @p len bytes of @p buf (copied) for the host and sends what may
 *  leave now. The bytes of one call go out contiguously (in one write() to
 *  a pty when it takes them all), so a host reading in chunks never sees
 *  them split by a pause; paced output leaves at the line rate. However
 *  much is queued, the bytes are taken (a queue above PORT_OUT_HIGH stops
 *  input instead). While no host has the port open the bytes are dropped
 *  (counted in port_stats.dropped) and 0 is returned. In strict-rate mode
 *  a rate mismatch garbles them (port_set_strict_rate()). Returns 0,
 *  -ENOMEM, or -EPIPE after port_close(). */
int port_write(struct port *p, const void *buf, size_t len);

/** The owner can take input again after on_data took none of what it was
 *  offered: the port offers what it kept on the next turn of the loop
 *  (a 0 ms clock timer; never from inside this call). */
void port_input_resume(struct port *p);

/** Closes @p p: stops its I/O and timers, drops queued output, raises no
 *  more events, removes its symlink (if it still points at this port's
 *  slave), closes its libuv handles and then frees it and calls @p cb
 *  (may be NULL) with @p arg from the loop. @p p must not be used after
 *  this call; the loop must run for the close to finish. A second call is
 *  ignored. */
void port_close(struct port *p, void (*cb)(void *arg), void *arg);

/** The name hosts know the port by: the symlink path, else the slave path
 *  ("mem" for an in-memory port). Owned by the port. */
const char *port_name(const struct port *p);

/** The slave device of a pty (e.g. "/dev/pts/5"); NULL for other kinds.
 *  Owned by the port. */
const char *port_slave_path(const struct port *p);

/** Whether a host has the port open. */
bool port_host_open(const struct port *p);

/** Raises on_dtr(@p asserted) (for the control socket and tests; every call
 *  raises it, the receiver decides what a change is). */
void port_inject_dtr(struct port *p, bool asserted);

/** Sets the line rate (the AT+IPR rate) to @p bps, 0 for none. With
 *  @p pace_out, output leaves no faster than @p bps at 10 bits a byte;
 *  with @p pace_in, input is read no faster (a pty stops polling its fd and
 *  resumes on a clock timer). A zero rate paces nothing. Returns 0, -EPIPE
 *  after port_close(), or the kind's own error (e.g. from RFC 2217; the
 *  rate is then unchanged). */
int port_set_rate(struct port *p, uint32_t bps, bool pace_out, bool pace_in);

/** The line rate set by port_set_rate() (0: none). */
uint32_t port_rate(const struct port *p);

/** The speed the host set on its side: for a pty, read from the termios of
 *  the slave fd the port holds (pyserial's baudrate = 921600 reads 921600);
 *  0 when unknown. */
uint32_t port_host_rate(const struct port *p);

/** Strict rate mode: while on, output written while the host's speed
 *  (port_host_rate(), when known) differs from the line rate (when set) is
 *  delivered as a mismatched UART would deliver it (port_garble()), and a
 *  warning is logged once per mismatch. The modem keeps its UART strict.
 *  Input is not garbled. A pty whose host has not opened it follows the
 *  line rate (its termios speed is set to it, and set back to it when the
 *  last host closes), so a host that never sets a speed reads at the
 *  rate the module runs at when it opens the port. */
void port_set_strict_rate(struct port *p, bool strict);

/** Simulates a receiver at @p rx_bps sampling 8N1 frames sent back to back
 *  at @p tx_bps: the @p len bytes of @p in are serialized to a bit stream
 *  (idle high, start bit low, data LSB first, stop bit high); the receiver
 *  hunts a start bit (a falling edge), checks it is still low at mid-bit
 *  (else it was a glitch), samples the eight data bits and the stop bit at
 *  their middles and writes the byte to @p out, framing error or not. After
 *  a stop bit sampled low the low line is taken as the next start bit
 *  (16550 resynchronisation), unless the whole frame was low: that is a
 *  break, which gives one 0x00 and makes the receiver wait for the line to
 *  go high. Pure and deterministic; equal rates give back @p in; at most
 *  5 * @p len bytes come out (one per falling edge). Writes at most @p cap
 *  bytes and returns how many; 0 if a rate is 0. */
size_t port_garble(uint32_t tx_bps, uint32_t rx_bps, const uint8_t *in, size_t len, uint8_t *out,
                   size_t cap);

/** Holds the output in the queue (@p hold: the host's RTS is off, as
 *  hardware flow control holds a UART) or lets it go again; input goes on
 *  (the queue's PORT_OUT_HIGH still stops it). */
void port_hold_output(struct port *p, bool hold);

/** Drops the output queued and not yet taken by the host side (counted in
 *  port_stats.dropped): what a power cut does to a UART's FIFO. */
void port_drop_output(struct port *p);

/** Whether no output is queued (all of it has been handed to the host side;
 *  used to wait for output to drain before a reset). */
bool port_output_idle(const struct port *p);

/** Copies the counters of @p p into @p out. */
void port_get_stats(const struct port *p, struct port_stats *out);

#endif
