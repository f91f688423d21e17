/* ctl_int.h - private to src/ctl: the JSON-lines protocol (ctl_proto.c)
 * and the fault table (ctl_fault.c), both pure and on the loop thread, so
 * that the unit tests and the fuzz target drive them without a socket. */
#ifndef DFOTA_CTL_INT_H
#define DFOTA_CTL_INT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfota/modem.h"

/* ---- lines (ctl_proto.c) ---------------------------------------------- */

/** The longest request line taken, without its '\n'. */
#define CTL_LINE_MAX (64u * 1024u)

/** A line assembler: bytes in, whole lines out; bounded (CTL_LINE_MAX). */
struct ctl_lines {
    char *buf;
    size_t len, cap;
    bool skipping; /* the line is over CTL_LINE_MAX: dropped up to its '\n' */
};

/** What a line assembler hands out: @p text of @p len bytes (no '\n', a
 *  trailing '\r' taken off, NUL-terminated), or @p too_long for a line over
 *  CTL_LINE_MAX (once, @p text NULL). */
typedef void (*ctl_line_cb)(void *ud, const char *text, size_t len, bool too_long);

/** Feeds @p len bytes of @p buf: @p cb runs for each line they complete.
 *  -ENOMEM (the bytes after the failure are lost), else 0. */
int ctl_lines_feed(struct ctl_lines *l, const char *buf, size_t len, ctl_line_cb cb, void *ud);
/** Frees what @p l holds (it may be fed again afterwards). */
void ctl_lines_free(struct ctl_lines *l);

/* ---- requests ------------------------------------------------------------ */

/** A request taken apart: {"id": <number|string>, "cmd": "<name>", ...}. */
struct ctl_req {
    cJSON *root;
    const cJSON *id; /**< the "id" member (echoed in the answer); NULL if absent */
    const char *cmd;
};

/** Parses one request line @p text of @p len bytes into @p out. 0, or
 *  -EINVAL with *@p err set to why (not JSON, not an object, no "id", no
 *  "cmd"); on -EINVAL out->id may still be set (a request with an id but
 *  no cmd gets its id back). Free with ctl_req_free() either way. */
int ctl_req_parse(const char *text, size_t len, struct ctl_req *out, const char **err);
void ctl_req_free(struct ctl_req *r);

/** Typed getters (STYLE.md 7): 0, -ENOENT when absent, -EINVAL when of
 *  another type. Strings are borrowed from the request. */
int ctl_req_str(const struct ctl_req *r, const char *name, const char **out);
int ctl_req_bool(const struct ctl_req *r, const char *name, bool *out);
int ctl_req_num(const struct ctl_req *r, const char *name, double *out);

/** An answer {"id": <id>, "ok": <ok>} to add fields to; NULL without memory. */
cJSON *ctl_answer_new(const cJSON *id, bool ok);
/** One JSON line ending in '\n' of @p obj (freed) into *@p out (malloc'd,
 *  *@p len bytes). 0 or -ENOMEM. */
int ctl_json_line(cJSON *obj, char **out, size_t *len);
/** The error answer line for @p id (may be NULL) with @p msg. */
int ctl_error_line(const cJSON *id, const char *msg, char **out, size_t *len);

/* ---- faults (ctl_fault.c) ---------------------------------------------- */

/** What a fault's value is. */
enum ctl_fault_arg {
    CTL_ARG_NONE,  /**< no value: "dns.fail" */
    CTL_ARG_CODE,  /**< an HTTP status 100..599 */
    CTL_ARG_PCT,   /**< a percent 0..100 */
    CTL_ARG_MS,    /**< milliseconds 1..600000 */
    CTL_ARG_RATIO, /**< a share 0..1 */
};

/* X(id, name, value, what it does): every fault the control socket arms,
 * at the seam it fires at (modem.h struct modem_fault_ops). */
#define CTL_FAULT_MAP(X)                                                                           \
    X(DNS_FAIL, "dns.fail", NONE, "the download's DNS lookup fails: HTTPEND 702")                  \
    X(TCP_REFUSE, "tcp.refuse", NONE, "the server refuses the TCP connection: HTTPEND 702")        \
    X(TLS_HANDSHAKE, "tls.handshake", NONE,                                                        \
      "an https download's TLS handshake fails: HTTPEND 702")                                      \
    X(HTTP_STATUS, "http.status", CODE,                                                            \
      "the server answers with this status: 404/410 HTTPEND 706, another 703")                     \
    X(NET_START, "net.start_fail", NONE, "the transport cannot start (no socket): HTTPEND 701")    \
    X(DL_STALL_AT, "download.stall_at", PCT,                                                       \
      "the server stops sending at this percent: HTTPEND 704 after the stall timeout")             \
    X(DL_DROP_AT, "download.drop_at", PCT, "the connection is reset at this percent: HTTPEND 704") \
    X(SLOT_WRITE_FAIL, "slot.write_fail", NONE,                                                    \
      "the next write to the package slot fails: HTTPEND 707 (COM: ERROR)")                        \
    X(SLOT_FULL, "slot.full", NONE,                                                                \
      "the NAND has no room for the next package: HTTPEND 708, COM: +CME ERROR: 590")              \
    X(PACKAGE_CORRUPT, "package.corrupt", NONE,                                                    \
      "a byte of the next package is flipped in flash: HTTPEND 710, COM: END 506")                 \
    X(UPDATE_FAIL_AT, "update.fail_at", PCT,                                                       \
      "writing the firmware fails at this percent: END 504")                                       \
    X(UPDATE_POWER_CUT_AT, "update.power_cut_at", PCT,                                             \
      "power is cut at this percent of UPDATING (power on resumes it)")                            \
    X(UPDATE_UNKNOWN, "update.unknown", NONE,                                                      \
      "the running image cannot be read at START: END 512")                                        \
    X(URC_DELAY, "urc.delay", MS, "the next URC leaves this many ms late (later ones wait)")       \
    X(UART_DROP, "uart.drop", RATIO, "this share of the bytes of the next UART write is lost")

enum ctl_fault_id {
#define X(id, name, arg, help) CTL_FAULT_##id,
    CTL_FAULT_MAP(X)
#undef X
        CTL_FAULT_COUNT
};

struct ctl_fault {
    bool armed, sticky;
    double value;
    unsigned fired; /* times it fired since it was armed */
};

/** What the fault table asks of its owner (the control server). */
struct ctl_fault_actions {
    /** @p id fired with @p value (for watch). Optional. */
    void (*fired)(void *ud, enum ctl_fault_id id, double value);
    /** Cut the power (update.power_cut_at), on a later turn of the loop:
     *  the seam that asks runs inside the job. */
    void (*power_cut)(void *ud);
};

/** The faults armed on one modem. */
struct ctl_faults {
    struct ctl_fault f[CTL_FAULT_COUNT];
    uint64_t rng;      /* xorshift state of uart.drop: deterministic */
    uint32_t stall_ms; /* how long a stall lasts before 704: the profile's stall timeout */
    const struct ctl_fault_actions *act;
    void *ud;
};

/** Sets up @p t with nothing armed. */
void ctl_faults_init(struct ctl_faults *t, const struct ctl_fault_actions *act, void *ud,
                     uint32_t stall_ms);

/** The name, value kind and help of @p id. */
const char *ctl_fault_name(enum ctl_fault_id id);
enum ctl_fault_arg ctl_fault_arg(enum ctl_fault_id id);
const char *ctl_fault_help(enum ctl_fault_id id);

/** The fault called @p spec's name (the part before any '='), -1 if none. */
int ctl_fault_find(const char *spec);

/** Parses "name" or "name=value" into @p id and @p value. 0, or -EINVAL
 *  with *@p err why (unknown name, a value missing, out of range or given
 *  to a fault that takes none). */
int ctl_fault_parse(const char *spec, enum ctl_fault_id *id, double *value, const char **err);

/** Arms @p id with @p value: it fires once, or every time when @p sticky. */
void ctl_faults_arm(struct ctl_faults *t, enum ctl_fault_id id, double value, bool sticky);
/** Disarms @p id. */
void ctl_faults_clear(struct ctl_faults *t, enum ctl_fault_id id);
/** Disarms every fault. */
void ctl_faults_clear_all(struct ctl_faults *t);

/** Trigger logic. take: @p id fires when armed (a fault not sticky is then
 *  disarmed) and stores its value in *@p value (may be NULL). take_at: it
 *  fires when armed and @p pct has reached its value. */
bool ctl_faults_take(struct ctl_faults *t, enum ctl_fault_id id, double *value);
bool ctl_faults_take_at(struct ctl_faults *t, enum ctl_fault_id id, double pct);

/** The fault seams of modem.h for a table: ud is the struct ctl_faults. */
extern const struct modem_fault_ops ctl_fault_ops;

#endif
