/* at.h - the AT engine: V.250 line assembly, parsing, dispatch through
 * declarative command tables, result formatting and the URC queue.
 *
 * The engine is fed the bytes the host sent (at_engine_feed) and writes what
 * the module answers through the output callback of its config, one call per
 * response group so that a group never reaches the host split by a pause.
 * It knows nothing of ports, models or DFOTA: feature modules register
 * command tables (at_engine_add_table) and post URCs (at_engine_urc).
 */
#ifndef DFOTA_AT_H
#define DFOTA_AT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dfota/clock.h"

struct at_engine;
struct at_args;

/** Command forms (bit flags in struct at_cmd.forms). */
enum at_form {
    AT_FORM_EXEC = 1 << 0, /**< AT+X, ATI, ATE (basic without number) */
    AT_FORM_TEST = 1 << 1, /**< AT+X=? */
    AT_FORM_READ = 1 << 2, /**< AT+X? , ATS3? */
    AT_FORM_SET = 1 << 3,  /**< AT+X=<args>, ATE1, ATS3=13 */
};

/** Below every negative errno (-4095 .. -1): the engine's own results
 *  live under it, so that a handler's result never reads as an errno nor
 *  an errno as a result. */
#define AT_RESULT_BASE (-0x10000)

/** Handler results. A value above 0 is a +CME ERROR code; 0 and the values
 *  below AT_RESULT_BASE are the engine's. A negative errno is no result:
 *  turn it into one with at_result_errno(). */
enum {
    AT_OK = 0,                       /**< final result OK */
    AT_ERROR = AT_RESULT_BASE - 1,   /**< final result ERROR */
    AT_PENDING = AT_RESULT_BASE - 2, /**< finishes later through at_engine_finish() */
    AT_CONNECT = AT_RESULT_BASE - 3, /**< CONNECT: the handler has put the engine in data mode */
    AT_NONE = AT_RESULT_BASE - 4,    /**< no final result (the handler wrote its own, e.g. a
                                          power-down) */
};

/** The one mapping from an error inside the code to what the module
 *  answers (STYLE.md 4): @p err 0 is AT_OK; a negative errno is the CME
 *  code @p cme when it is above 0, else AT_ERROR. A handler that holds a
 *  negative errno returns this; the engine maps a stray errno a handler
 *  returned the same way (as ERROR). */
int at_result_errno(int err, int cme);

/** Flags of a command, checked by the engine before the handler runs
 *  (redis style). */
enum at_cmd_flag {
    AT_F_NONE = 0,
    AT_F_LAST = 1 << 0, /**< nothing may follow it on the line (e.g. a reset) */
    AT_F_JOB = 1 << 1,  /**< its SET form is refused with the row's @c busy result while the
                             owner runs a DFOTA job (struct at_engine_cfg.job_running) */
};

/** A handler: @p args holds the parsed arguments of a SET form (empty for
 *  the others), already checked against the table's arity and types. It
 *  adds information lines with at_engine_reply() and returns a result. */
typedef int (*at_handler)(struct at_engine *e, enum at_form form, const struct at_args *args,
                          void *ud);

/** One row of a command table (STYLE.md 8). */
struct at_cmd {
    const char *name; /**< "+QFOTADL", "E", "&D", "S3": matched case-insensitively */
    unsigned forms;   /**< enum at_form bits the command accepts */
    uint8_t min_args; /**< SET form arity */
    uint8_t max_args;
    const char *types; /**< per argument: 'i' integer, 's' quoted string, '*' either; an
                            omitted (empty) argument passes any type check */
    at_handler handler;
    unsigned flags; /**< enum at_cmd_flag */
    int bad_args;   /**< result when arity or types are wrong: a CME code, or 0 for ERROR */
    int busy;       /**< result of a SET refused by AT_F_JOB: a CME code, or 0 for ERROR */
};

/** Argument count of a SET form. */
unsigned at_args_count(const struct at_args *a);
/** Whether argument @p i was given (not beyond the count and not empty). */
bool at_args_present(const struct at_args *a, unsigned i);
/** Reads integer argument @p i. Returns 0, -ENOENT if omitted, -EINVAL if not an integer. */
int at_args_int(const struct at_args *a, unsigned i, int64_t *v);
/** Reads string argument @p i (quoted on the line; quotes removed). The
 *  string is owned by the engine and lives until the handler returns.
 *  Returns 0, -ENOENT if omitted, -EINVAL if not a string. */
int at_args_str(const struct at_args *a, unsigned i, const char **s);
/** Whether argument @p i was written as a quoted string. */
bool at_args_is_str(const struct at_args *a, unsigned i);

/** Output sink: @p buf holds one whole response group or URC. */
typedef void (*at_output_fn)(void *ud, const char *buf, size_t len);

/** Sink for data mode: bytes the host sent, after the +++ rule let them through. */
struct at_data_ops {
    void (*on_data)(void *ud, const uint8_t *buf, size_t len);
    /** Bytes the sink still expects (NULL: open-ended). Lets the engine hand
     *  a complete file over even when its last bytes look like +++, and keep
     *  what follows the file for command mode. */
    size_t (*remaining)(void *ud);
    /** Data mode ended by the host (+++ escape or DTR); the sink finishes
     *  its command with at_engine_finish(). */
    void (*on_escape)(void *ud);
};

/** Log levels of struct at_engine_cfg.log. */
enum at_log_level {
    AT_LOG_WARN = 0,
    AT_LOG_INFO = 1,
    AT_LOG_DEBUG = 2, /**< state machine transitions */
};

/** Log sink: @p msg is one line without newline, already naming the
 *  engine (its cfg.name) and valid only during the call. */
typedef void (*at_log_fn)(void *ud, int level, const char *msg);

/** Engine configuration; a zeroed struct selects the defaults. */
struct at_engine_cfg {
    at_output_fn output;
    void *output_ud;
    unsigned line_max;   /**< bytes of a command line after "AT"; 0: AT_LINE_MAX_DEFAULT */
    uint64_t urc_gap_ms; /**< pause between a final result and the URCs queued behind it */
    uint64_t guard_ms;   /**< +++ guard time (S12-like); 0: 1000 */
    /** Passed to the callbacks below. */
    void *ud;
    /** The engine declined input (at_engine_feed() took less than it was
     *  given because a command runs) and can take more now. Called once per
     *  such stall, from wherever the command ended (at_engine_finish(), a
     *  power state change): the owner offers the rest later, never from
     *  inside this call. NULL: the owner polls. */
    void (*input_ready)(void *ud);
    /** Whether the owner runs a DFOTA job now (AT_F_JOB rows). NULL: never. */
    bool (*job_running)(void *ud);
    /** Log sink; NULL: silent. Messages above @c log_level are not made. */
    at_log_fn log;
    int log_level;
    /** Names the engine in its log lines ("UART"); NULL: "at". Borrowed:
     *  must outlive the engine. */
    const char *name;
};

#define AT_LINE_MAX_DEFAULT 1024
#define AT_DATA_ESCAPE_CHAR '+'

/** Makes an engine on clock @p clk (borrowed; must outlive the engine).
 *  Returns NULL without memory. Free with at_engine_free(). */
struct at_engine *at_engine_new(struct dclock *clk, const struct at_engine_cfg *cfg);

/** Frees the engine; stops its timers. */
void at_engine_free(struct at_engine *e);

/** Registers a command table. @p cmds (and its strings) must outlive the
 *  engine; @p ud is passed to its handlers. Returns 0 or -ENOMEM. */
int at_engine_add_table(struct at_engine *e, const struct at_cmd *cmds, size_t n, void *ud);

/** Feeds bytes the host sent; returns how many it took, oldest first. It
 *  stops after each command line it ran (the owner offers the rest again,
 *  checking in between whether its output has room), and takes nothing
 *  while a command runs: the owner keeps what was not taken and offers it
 *  again once cfg.input_ready is called. Data mode takes all it is given
 *  (up to the end of the upload), input off takes and drops everything. */
size_t at_engine_feed(struct at_engine *e, const uint8_t *buf, size_t len);

/** Runs @p fn(@p ud) once the running line's final result has been handed
 *  to the output (e.g. AT+IPR switching the line rate after its OK), or
 *  when the line is cut by input going off; at once when no line runs. One
 *  such call is held at a time: a second replaces the first. */
void at_engine_after_result(struct at_engine *e, void (*fn)(void *ud), void *ud);

/** Adds an information line to the response of the running command. The
 *  lines of one command are framed as one block (V1: CR LF before the
 *  first line, CR LF after each), as the module frames them. */
void at_engine_reply(struct at_engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Finishes the pending command with @p result (AT_OK, AT_ERROR, a CME
 *  code); the rest of its command line then runs. */
void at_engine_finish(struct at_engine *e, int result);

/** Posts a URC (text without framing). Held back while a command runs, in
 *  data mode, or within the gap after a final result; then sent in order,
 *  each in one write. Dropped while input is off (power off). */
void at_engine_urc(struct at_engine *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Writes text framed as a URC at once, bypassing the queue (DFOTA mode). */
void at_engine_urc_now(struct at_engine *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** Power state of the command interpreter. */
enum at_input {
    AT_INPUT_OFF,    /**< input ignored, no echo, URCs dropped (off / booting / DFOTA mode) */
    AT_INPUT_ERROR,  /**< lines answered ERROR (between RDY and APP RDY) */
    AT_INPUT_NORMAL, /**< commands run */
};

/** Sets the input state; a change drops a half-typed line and any queued URCs
 *  when turned off. */
void at_engine_set_input(struct at_engine *e, enum at_input in);

/** Enters data mode: bytes go to @p ops after the +++ rule. Call from a
 *  handler that then returns AT_CONNECT. @p ops and @p ud are borrowed until
 *  data mode ends (at_engine_leave_data(), at_engine_finish(), an escape, or
 *  input turned off). A sink that finishes later must cancel its own
 *  completion when input goes off: at_engine_finish() ends whatever command
 *  runs. */
void at_engine_enter_data(struct at_engine *e, const struct at_data_ops *ops, void *ud);

/** Leaves data mode (the sink's own decision, e.g. all bytes arrived). */
void at_engine_leave_data(struct at_engine *e);

/** DTR de-asserted by the host while AT&D is 1 or 2: leaves data mode as +++. */
void at_engine_dtr_drop(struct at_engine *e);

/** Whether the engine is in data mode. */
bool at_engine_in_data(const struct at_engine *e);

/** Whether a command is executing (between its line and its final result). */
bool at_engine_busy(const struct at_engine *e);

/** V.250 settings the basic commands read and change. */
struct at_settings {
    bool echo;      /**< ATE */
    bool verbose;   /**< ATV: text result codes */
    bool quiet;     /**< ATQ: no result codes */
    int cmee;       /**< AT+CMEE: 0 ERROR, 1 numeric, 2 text */
    int s3, s4, s5; /**< line termination, response formatting, backspace characters */
};

/** The engine's settings, changed by the command handlers. */
struct at_settings *at_engine_settings(struct at_engine *e);

/* 3GPP TS 27.007 9.2 codes the module uses, X(number, name, text). Module
 * specific codes (Quectel's file and DFOTA codes) have no text: AT+CMEE=2
 * prints them as numbers, as the real module does. */
#define AT_CME_MAP(X)                                                                              \
    X(0, PHONE_FAILURE, "phone failure")                                                           \
    X(3, NOT_ALLOWED, "operation not allowed")                                                     \
    X(4, NOT_SUPPORTED, "operation not supported")                                                 \
    X(10, SIM_NOT_INSERTED, "SIM not inserted")                                                    \
    X(13, SIM_FAILURE, "SIM failure")                                                              \
    X(30, NO_NETWORK, "no network service")                                                        \
    X(50, INCORRECT_PARAMS, "incorrect parameters")                                                \
    X(100, UNKNOWN, "unknown")

enum at_cme {
#define X(num, name, text) AT_CME_##name = num,
    AT_CME_MAP(X)
#undef X
};

/** The text of a +CME ERROR code for AT+CMEE=2, NULL for a numeric-only code. */
const char *at_cme_text(int code);

#endif
