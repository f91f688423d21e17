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

struct fota;

/** What the job asks of the module. */
struct fota_hooks {
    /** Print a URC (text without framing). */
    void (*urc)(void *ud, const char *text);
    /** Reset into DFOTA mode (UART takes no commands, USB gone). */
    void (*enter_dfota)(void *ud);
    /** The job is over: reboot into normal mode running @p firmware. */
    void (*reboot)(void *ud, const char *firmware);
};

/** Job configuration; pointers are borrowed for the job's life. */
struct fota_cfg {
    struct store *store;
    struct dclock *clock;
    uint64_t slot_capacity;       /**< bytes */
    const char *opaque_target;    /**< accept packages without our magic, updating to this */
    bool pct_sign;                /**< UPDATING 5% (the note's transcript) or 5 */
    uint32_t stage_ms;            /**< pause between stages */
    uint32_t reset_ms;            /**< a reset's duration */
    uint32_t update_ms_per_mb;    /**< applying speed; 0 as fast as the loop allows */
    /** Seam for fault injection: called before each block is written; a
     *  negative errno fails the write (flash error -> END,504). */
    int (*flash_fault)(void *ud, uint32_t block);
    void *flash_fault_ud;
};

/** Makes the job for a module running @p firmware (copied). Returns 0 or
 *  -ENOMEM. */
int fota_new(const struct fota_cfg *cfg, const struct fota_hooks *hooks, void *ud,
             const char *firmware, struct fota **out);

/** Frees the job and stops its timers. */
void fota_free(struct fota *f);

/** At power-on: when the journal holds an interrupted update, the module
 *  boots straight into DFOTA mode and continues it (enter_dfota is called
 *  and true returned). */
bool fota_resume(struct fota *f);

/** AT+QFOTADL=1: starts the cycle from the slot. 0 or FOTA_CME_BUSY. */
int fota_start_update(struct fota *f);

/** Whether a DFOTA job runs (commands of the family then get 591). */
bool fota_busy(const struct fota *f);

/** AT+QFOTADL=3: the trigger mode (1 automatic after a download, 0 on
 *  AT+QFOTADL=1). Not saved: fota_power_cycle() sets it back to 1. */
int fota_trigger_mode(const struct fota *f);
/** Sets the trigger mode (non-zero means 1) until the next power cycle. */
void fota_set_trigger_mode(struct fota *f, int mode);

/** A reset or power cycle of the module: volatile job settings to defaults. */
void fota_power_cycle(struct fota *f);

/** The firmware the module runs now. */
const char *fota_firmware(const struct fota *f);

/** A package arrived in the slot (download or upload finished): starts the
 *  update when the trigger mode is 1. */
void fota_package_ready(struct fota *f);

/** Makes sure the running firmware has an image in the store (a new state
 *  dir gets the generated image of its version). 0 or a negative errno. */
int fota_ensure_image(struct fota *f);

#endif
