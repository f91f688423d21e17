/* modem.h - one emulated module: power states, its AT ports, the command
 * handlers grouped by feature, the network state, persistent settings.
 *
 * Many modems may live in one process on one loop: all state hangs off the
 * struct modem, nothing is global.
 */
#ifndef DFOTA_MODEM_H
#define DFOTA_MODEM_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dfota/clock.h"
#include "dfota/port.h"

struct modem;

/* ---- models (app note 1.1 and 2.2.3.3 note 1) -------------------------- */

/* X(id, name, firmware, slot_kb): the models the note covers, each with the
 * firmware it reports by default and the NAND space for a delta package. */
#define MODEM_MODEL_MAP(X)                                                                         \
    X(BG95_M1, "BG95-M1", "BG95M1LAR02A03_01.012.01.012", 7040)                                    \
    X(BG95_M2, "BG95-M2", "BG95M2LAR02A03_01.012.01.012", 7168)                                    \
    X(BG95_M3, "BG95-M3", "BG95M3LAR02A03_01.012.01.012", 7296)                                    \
    X(BG95_M4, "BG95-M4", "BG95M4LAR02A03_01.012.01.012", 7168)                                    \
    X(BG95_M6, "BG95-M6", "BG95M6LAR02A03_01.012.01.012", 7168)                                    \
    X(BG95_N1, "BG95-N1", "BG95N1LAR02A03_01.012.01.012", 7168)                                    \
    X(BG77, "BG77", "BG77LAR02A04_01.012.01.012", 7168)                                            \
    X(BG600L_M3, "BG600L-M3", "BG600LM3LAR02A01_01.012.01.012", 7296)

struct modem_model {
    const char *name;     /**< as AT+CGMM prints it */
    const char *firmware; /**< default firmware (AT+QGMR form) */
    uint32_t slot_kb;     /**< NAND space for a delta package, KB (1024 bytes) */
};

/** The model called @p name (case-insensitive), NULL if unknown. */
const struct modem_model *modem_model_find(const char *name);
/** The @p i-th model, NULL past the end (for --help and tests). */
const struct modem_model *modem_model_at(unsigned i);

/* ---- timing profiles --------------------------------------------------- */

/** Delays of one timing profile, in module milliseconds. */
struct modem_timing {
    const char *name;
    uint32_t boot_rdy;      /**< power on -> RDY */
    uint32_t boot_app_rdy;  /**< RDY -> APP RDY */
    uint32_t boot_urc_gap;  /**< between the boot URCs after APP RDY */
    uint32_t urc_gap;       /**< final result -> URCs held behind it */
    uint32_t reset;         /**< reset request -> power back on */
    uint32_t power_down;    /**< AT+QPOWD OK -> NORMAL POWER DOWN */
    uint32_t fota_stage;    /**< between DFOTA stages (RESETTING, START, END) */
    uint32_t update_ms_per_mb; /**< applying a delta: module time per MB of image (0: as fast as it runs) */
    bool pace_uart;         /**< the UART carries bytes no faster than the AT+IPR rate, both ways */
    /* The data link of the network model (modem_int.h struct modem_net)
     * and the timers of a DFOTA download (AT+QFOTADL=<HTTP(S) URL>): */
    uint32_t link_rate_bps;      /**< link bandwidth in BYTES per second (0: unlimited) */
    uint32_t link_latency_ms;    /**< one-way latency the link adds (0: none) */
    uint32_t dl_connect_timeout; /**< a download's connect (DNS, TCP, TLS) gives up after, ms */
    uint32_t dl_stall_timeout;   /**< no byte for this long: the download failed (704), ms */
    uint32_t dl_progress_ms;     /**< least gap between two DOWNLOADING URCs, ms (0: every step) */
};

/** The profile called @p name (fast, standard, realistic), NULL if unknown. */
const struct modem_timing *modem_timing_find(const char *name);

/* ---- the modem --------------------------------------------------------- */

struct modem_events {
    /** The UART port is ready at @p path (the symlink); called once, with
     *  the model and the firmware it runs. */
    void (*on_ready)(void *ud, const char *model, const char *firmware, const char *path);
    /** The module has powered down for good (AT+QPOWD). */
    void (*on_power_down)(void *ud);
};

/** Start options; a zeroed struct selects the defaults. The struct is
 *  copied, but the strings it points to are borrowed: they must live as long
 *  as the modem (the USB port is reopened from usb_path after an update). */
struct modem_cfg {
    const char *model;      /**< default BG95-M3 */
    const char *firmware;   /**< used when the state dir has none stored yet */
    const char *state_dir;  /**< default ./dfota-state */
    const char *uart_path;  /**< default ./dfota-sim.tty */
    const char *profile;    /**< fast, standard (default), realistic */
    double time_scale;      /**< module time runs this much slower than wall time; 0: 1 */
    const char *trace_path; /**< wire trace, NULL for none */
    const char *usb_path;   /**< second AT port (the USB AT port), NULL for none */
    bool wait_open;         /**< hold power-on until a host first opens the UART */
    const char *opaque_target; /**< accept packages without our magic, updating to this version */
    const char *preload_package; /**< a file put into the package slot at start (tests) */
    bool no_percent_sign;   /**< UPDATING 5 instead of the note's transcript's 5% */
    bool pace_uart;         /**< UART at the AT+IPR rate both ways, as a real one (the
                                 realistic profile always is); off: as fast as the pty */
    int verbose;            /**< log level on stderr: 0 warnings, 1 info, 2 debug */
    const char *name;       /**< the instance's name in log lines; default the UART path */
    /** APNs the network accepts a data call on: a comma-separated list,
     *  matched case-insensitively ("internet,iot.example"); NULL: any APN.
     *  An empty APN (the network's default) is always accepted. Borrowed. */
    const char *network_apns;
    /* Seams (STYLE.md 11), NULL for the real thing: */
    struct dclock *clock;   /**< borrowed; NULL: a real clock at time_scale */
    struct port *uart;      /**< borrowed; NULL: a pty at uart_path. The modem sets its events. */
};

/** Makes a modem on @p loop and starts it (ports opened, power-on armed).
 *  @p ev and @p ud are borrowed for the modem's life. Returns 0 or a negative
 *  errno (with a message logged) and sets *out. */
int modem_new(uv_loop_t *loop, const struct modem_cfg *cfg, const struct modem_events *ev,
              void *ud, struct modem **out);

/** Closes the ports and frees the modem; @p cb runs when every handle is
 *  closed. */
void modem_close(struct modem *m, void (*cb)(void *arg), void *arg);

#endif
