/* ctl.h - the control socket: what a test rig uses to drive a module from
 * outside (status, power, the host's lines, the network, faults, a stream
 * of events), one JSON object per line each way over a Unix stream socket
 * (README.md "Control socket" is the protocol's reference).
 *
 * A control server is an object on one libuv loop; modems are attached to
 * it by name, and a request addresses one with "modem" (the first one
 * attached when it gives none), so one socket can later drive a fleet.
 * Nothing here is global; nothing blocks the loop.
 */
#ifndef DFOTA_CTL_H
#define DFOTA_CTL_H

#include <uv.h>

#include "dfota/modem.h"

struct ctl;

/** Configuration of ctl_new(); the strings are copied. */
struct ctl_cfg {
    const char *path; /**< the socket's path (required) */
    int verbose;      /**< log level on stderr: 0 warnings, 1 info, 2 debug */
};

/** Opens the control socket at cfg->path (mode 0600) on @p loop and listens.
 *  A path that exists is refused (-EEXIST) unless it is a stale socket
 *  (connecting to it is refused: it is removed and replaced); a socket a
 *  process still listens on gives -EADDRINUSE. On 0 *@p out is the server,
 *  closed with ctl_close(); otherwise a negative errno (logged). */
int ctl_new(uv_loop_t *loop, const struct ctl_cfg *cfg, struct ctl **out);

/** Attaches @p m under @p name (copied; requests name it with "modem"):
 *  the server observes it and answers its fault seams from then on, until
 *  ctl_close(). @p m must outlive the server. 0, -ENOMEM, -EEXIST (the
 *  name is taken). */
int ctl_attach(struct ctl *c, const char *name, struct modem *m);

/** Closes the socket and every client, removes the socket's path, lets go
 *  of the modems (their observers and seams are cleared) and frees @p c
 *  once its handles are closed; then @p cb (may be NULL) runs with @p arg. */
void ctl_close(struct ctl *c, void (*cb)(void *arg), void *arg);

#endif
