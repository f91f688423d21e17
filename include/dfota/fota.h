/* fota.h - the DFOTA job: the package slot's trigger mode, the reset-and-
 * update cycle of app note 2.2.3.1 notes 1-3 with its error codes, and the
 * journal that lets an update cut by power loss resume.
 *
 * The job reports upward through hooks: the modem prints its URCs and
 * switches its power state (DFOTA mode, reboot) when told.
 */
#ifndef DFOTA_FOTA_H
#define DFOTA_FOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "dfota/clock.h"
#include "dfota/store.h"

/* <update_err> codes, app note table 4: X(code, name, meaning) */
#define FOTA_UPDATE_ERR_MAP(X)                                                                     \
    X(0, OK, "Updated successfully")                                                               \
    X(504, UPDATE_FAILED, "Firmware update failed")                                                \
    X(505, NO_PACKAGE, "Update package not exist")                                                 \
    X(506, PACKAGE_CHECK, "Update package check failed")                                           \
    X(511, MISMATCH, "Package is mismatched with the current firmware")                            \
    X(512, UNKNOWN, "DFOTA unknown error")

/* <HTTP_err>/<CoAP_err> codes, app note table 3 (0: download successful) */
#define FOTA_DL_ERR_MAP(X)                                                                         \
    X(701, DL_UNKNOWN, "Unknown error")                                                            \
    X(702, DL_CONNECT, "Server connection failed")                                                 \
    X(703, DL_REQUEST, "Request failed")                                                           \
    X(704, DL_TIMEOUT, "Download timeout")                                                         \
    X(705, DL_URL, "URL error")                                                                    \
    X(706, DL_NOT_FOUND, "File not exist")                                                         \
    X(707, DL_WRITE, "Write data to file failed")                                                  \
    X(708, DL_TOO_LARGE, "Downloaded file is too large")                                           \
    X(710, DL_CHECK, "Downloaded package check failed")

/* <err> codes of +CME ERROR, app note table 5 */
#define FOTA_CME_MAP(X)                                                                            \
    X(590, CME_PARAM, "Input parameter invalid")                                                   \
    X(591, CME_BUSY, "DFOTA is ongoing")

enum fota_err {
#define X(code, name, text) FOTA_##name = code,
    FOTA_UPDATE_ERR_MAP(X) FOTA_DL_ERR_MAP(X) FOTA_CME_MAP(X)
#undef X
};

/* The +QIND: "FOTA" stages, spelled as the real module prints them. The app
 * note's 2.2.3.1 table writes "HTTPPEND": a typo for "HTTPEND", which is what
 * the module prints (and what the note's own 2.3 example shows). */
#define FOTA_STAGE_MAP(X)                                                                          \
    X(HTTPSTART, "HTTPSTART")                                                                      \
    X(HTTPEND, "HTTPEND")                                                                          \
    X(COAPSTART, "COAPSTART")                                                                      \
    X(COAPEND, "COAPEND")                                                                          \
    X(DOWNLOADING, "DOWNLOADING")                                                                  \
    X(RESETTING, "RESETTING")                                                                      \
    X(START, "START")                                                                              \
    X(UPDATING, "UPDATING")                                                                        \
    X(END, "END")

enum fota_stage {
#define X(name, text) FOTA_STAGE_##name,
    FOTA_STAGE_MAP(X)
#undef X
};

/** The meaning of an error code of the tables above, NULL if not one. */
const char *fota_err_text(int code);

/** Formats a +QIND: "FOTA" URC into @p buf: the stage, then @p value when
 *  it is >= 0 (a percent gets '%' when @p pct_sign). Returns @p buf. */
const char *fota_urc(char *buf, size_t cap, enum fota_stage stage, int value, bool pct_sign);

/** DOWNLOADING's rule (2.2.3.1): a rising percentage, each value at most
 *  once, no more often than once per a profile's interval, 100 % kept for
 *  the end (when the whole package has arrived: the door prints it). */
struct fota_pct_gate {
    int last;    /**< the last percentage let through, -1 none */
    uint64_t at; /**< module time it was */
};

#define FOTA_PCT_GATE_INIT {.last = -1, .at = 0}

/** The percentage to print now for @p done of @p total bytes at module time
 *  @p now (ms), at most one per @p min_ms after the first; -1 for none (no
 *  new value, too soon, 100 % or more, or @p total 0: a length not known). */
int fota_pct_gate(struct fota_pct_gate *g, uint64_t done, uint64_t total, uint64_t now,
                  uint32_t min_ms);

struct fota;

/** What the job asks of the module. Every hook runs on the loop thread. */
struct fota_hooks {
    /** Print a URC (text without framing). */
    void (*urc)(void *ud, const char *text);
    /** Reset into DFOTA mode (UART takes no commands, USB gone). */
    void (*enter_dfota)(void *ud);
    /** The job is over: reboot into normal mode running @p firmware. */
    void (*reboot)(void *ud, const char *firmware);
    /** A log line of the job (level 0 warning, 1 info, 2 debug); the module
     *  prefixes it with its instance name. Optional. */
    void (*log)(void *ud, int level, const char *msg);
    /** The job's state changed from @p from to @p to (names as in
     *  fota_status.state) on @p event. Optional. */
    void (*state)(void *ud, const char *from, const char *to, const char *event);
};

/** Seams for fault injection (STYLE.md 11): where the flash and the
 *  update may fail as a real module's do. Every member is optional and runs
 *  on the loop thread; the job never knows who answers. */
struct fota_fault_ops {
    /** A package source begins: the bytes of NAND free for it, at most
     *  @p capacity (a full flash gives 0: 708 for a download, 590 for
     *  "COM:"). */
    uint64_t (*slot_room)(void *ud, uint64_t capacity);
    /** The @p len bytes at @p offset of the package are about to be
     *  written to the slot: a negative errno fails the write (707);
     *  *@p flip set to an index below @p len corrupts that byte in flash
     *  (the package check then fails: 710, or 506 at the update). */
    int (*slot_write)(void *ud, uint64_t offset, size_t len, size_t *flip);
    /** START: non-zero makes the update fail before a block is written
     *  with that <update_err> (e.g. 512). */
    int (*update_start)(void *ud);
    /** Block @p block of @p count is about to be written: a negative errno
     *  fails the write (flash error: END 504). */
    int (*update_block)(void *ud, uint32_t block, uint32_t count);
};

/** Job configuration; pointers are borrowed for the job's life. */
struct fota_cfg {
    struct store *store;          /**< opened with a loop (store_cfg.loop): the job's file
                                       work runs through store_submit() */
    struct dclock *clock;
    uint64_t slot_capacity;       /**< bytes of NAND for a package: the model's limit */
    const char *opaque_target;    /**< accept packages without our magic, updating to this */
    bool pct_sign;                /**< UPDATING 5% (the note's transcript) or 5 */
    uint32_t stage_ms;            /**< pause between stages */
    uint32_t reset_ms;            /**< a reset's duration */
    uint32_t update_ms_per_mb;    /**< applying speed; 0 as fast as the disk allows */
    /** Seams for fault injection (borrowed; NULL: none) and their ud. */
    const struct fota_fault_ops *faults;
    void *faults_ud;
};

/** Makes the job for a module running @p firmware (copied). Returns 0 or
 *  -ENOMEM. */
int fota_new(const struct fota_cfg *cfg, const struct fota_hooks *hooks, void *ud,
             const char *firmware, struct fota **out);

/** Ends the job at once, as a power cut does (no URC, nothing more written
 *  by it; what its worker is doing finishes first), and frees it; @p cb
 *  (may be NULL) runs with @p arg once nothing of the job runs any more,
 *  possibly before this returns. */
void fota_close(struct fota *f, void (*cb)(void *arg), void *arg);

/** At power-on: when the journal holds an interrupted update, the module
 *  boots straight into DFOTA mode and continues it (enter_dfota is called
 *  and true returned). */
bool fota_resume(struct fota *f);

/** AT+QFOTADL=1: starts the cycle from the slot. 0 or FOTA_CME_BUSY. */
int fota_start_update(struct fota *f);

/** Whether a DFOTA job runs: a package coming in through any door, or the
 *  reset-and-update cycle (commands of the family then get 591). */
bool fota_busy(const struct fota *f);

/** AT+QFOTADL=3: the trigger mode (1 automatic after a download, 0 on
 *  AT+QFOTADL=1). Not saved: fota_power_cycle() sets it back to 1. */
int fota_trigger_mode(const struct fota *f);
/** Sets the trigger mode (non-zero means 1) until the next power cycle. */
void fota_set_trigger_mode(struct fota *f, int mode);

/** A reset or power cycle of the module: volatile job settings to defaults;
 *  a package still coming in is cut (see fota_src_end()). */
void fota_power_cycle(struct fota *f);

/** What the job is doing, for the control socket (fota_get_status()). */
struct fota_status {
    const char *state;    /**< "idle", "receiving", "received", "arming", "resetting",
                               "reset", "starting", "updating", "ending", "end" */
    const char *kind;     /**< the source's door ("com", "download") while one is open,
                               "update" during the cycle, NULL when idle */
    int percent;          /**< UPDATING's last percent; -1 when not updating */
    uint64_t bytes;       /**< bytes the open source took so far */
    uint32_t block, count; /**< the update's next block and block count */
};

/** Fills @p out with what the job is doing (the strings are static). */
void fota_get_status(const struct fota *f, struct fota_status *out);

/** The firmware the module runs now. */
const char *fota_firmware(const struct fota *f);

/** The model's NAND space for a package, in bytes. */
uint64_t fota_slot_capacity(const struct fota *f);

/** AT+QFOTADL=4: the size of the package in the slot (0: none). */
uint64_t fota_slot_size(const struct fota *f);

/** AT+QFOTADL=5: empties the slot on a worker, then @p cb(@p ud, 0 or a
 *  negative errno) on the loop (an empty slot is 0); @p cb runs even when
 *  the job is closed meanwhile, so that it can free @p ud. FOTA_CME_BUSY
 *  while a job runs (then @p cb is not called). */
int fota_slot_delete(struct fota *f, void (*cb)(void *ud, int result), void *ud);

/** Makes sure the running firmware has an image in the store (a new state
 *  dir gets the generated image of its version). At start-up, before the
 *  loop runs. 0 or a negative errno. */
int fota_ensure_image(struct fota *f);

/* ---- package sources ---------------------------------------------------
 *
 * Every door a package comes through is a source of the job: the "COM:"
 * upload, HTTP(S) and CoAP(S) downloads, a LwM2M push. The job alone owns
 * the NAND slot: it decides capacity, busy, the package check and the
 * trigger. A door begins a source with the size it was told, writes the
 * bytes as they come and ends it; the package in the slot is replaced only
 * once the first byte of the new one arrives.
 */

/** The door a package comes through. */
enum fota_src_kind {
    FOTA_SRC_COM,      /**< AT+QFOTADL="COM:": kept as it arrived, checked at the update */
    FOTA_SRC_DOWNLOAD, /**< HTTP(S), CoAP(S), LwM2M: checked when complete (710) */
};

/** How a door ends its source. */
enum fota_src_end {
    FOTA_SRC_COMPLETE, /**< every byte arrived */
    FOTA_SRC_STOPPED,  /**< the host or the transport stopped it early: what
                            arrived stays in the slot, nothing is triggered */
    FOTA_SRC_CUT,      /**< a reset or power-down: what arrived stays, no answer */
};

struct fota_src;

/** What a door hears when its source is over (on the loop): @p result 0 when
 *  the bytes are stored (a kill -9 can no longer lose them) and, for a
 *  complete download, passed the package check; otherwise a <HTTP_err>
 *  code of table 3 (707 slot write failed, 708 too large, 710 check
 *  failed). @p size is the bytes the slot took. The update, when the
 *  trigger mode starts one, follows right after this call. */
typedef void (*fota_src_done)(void *ud, int result, uint64_t size);

/** Begins a package of @p size bytes (0: not known yet) through door
 *  @p kind. On 0 *@p out is the source, which the door ends with
 *  fota_src_end(). Otherwise a code and no source: FOTA_CME_BUSY (a job
 *  runs), and for a @p size beyond the slot FOTA_CME_PARAM (COM, refused
 *  at command time) or FOTA_DL_TOO_LARGE (a download), FOTA_DL_UNKNOWN
 *  without memory. */
int fota_src_begin(struct fota *f, enum fota_src_kind kind, uint64_t size, struct fota_src **out);

/** Takes the next @p len bytes (copied; never waits on the disk). 0, or a
 *  code that ends the download: FOTA_DL_TOO_LARGE (past the slot: nothing
 *  of this chunk taken), FOTA_DL_WRITE (an earlier write to flash failed).
 *  The source stays open until fota_src_end(). */
int fota_src_write(struct fota_src *s, const void *buf, size_t len);

/** Bytes taken so far. */
uint64_t fota_src_taken(const struct fota_src *s);

/** The door has learnt the package's size (a download's Content-Length):
 *  FOTA_DL_TOO_LARGE when it cannot fit the slot (nothing written yet), else
 *  0. */
int fota_src_expect(struct fota_src *s, uint64_t size);

/** Back-pressure: whether @p s holds so much not yet on the flash that the
 *  door should stop reading its peer (fota_src_write() never waits). */
bool fota_src_full(const struct fota_src *s);

/** @p cb(@p ud) runs on the loop once a full source has room again
 *  (fota_src_full() false); NULL stops it. Never after fota_src_end(). */
void fota_src_on_room(struct fota_src *s, void (*cb)(void *ud), void *ud);

/** Ends @p s (which is freed): @p done(@p ud, ...) follows on the loop once
 *  the slot holds what arrived, except for FOTA_SRC_CUT, which calls
 *  nothing. */
void fota_src_end(struct fota_src *s, enum fota_src_end how, fota_src_done done, void *ud);

/** The door of the source that was ended last is going away (a reset, a
 *  close) while the job still stores what it took: its done callback is
 *  not called and nothing is triggered. Nothing when no source is being
 *  stored. */
void fota_src_forget(struct fota *f);

#endif
