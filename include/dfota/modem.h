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
#include "dfota/fota.h"
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

/* ---- control (src/ctl): what a test rig does to the module ----------- *
 * Everything below runs on the loop thread, from outside the module (the
 * control socket); nothing here is used by the module's own features. */

/** What the module is, does and is set to, for `dfota-simctl status`. The
 *  strings point into the modem or are static: valid until the next turn of
 *  the loop. */
struct modem_status {
    const char *power;    /**< "off", "booting", "app-booting", "normal", "resetting",
                               "stopping", "dfota", "down" */
    const char *model, *firmware;
    const char *job;      /**< the DFOTA job's state ("idle", "receiving", "updating", ...) */
    const char *job_kind; /**< "com", "download", "update"; NULL when idle */
    const char *stage;    /**< the last +QIND: "FOTA" stage printed in this job, NULL none */
    int percent;          /**< the last DOWNLOADING/UPDATING percent of the job, -1 none */
    uint64_t bytes;       /**< bytes of the package taken so far (a source is open) */
    uint64_t total;       /**< the download's declared length, 0 unknown */
    uint64_t slot_size, slot_capacity;
    int trigger_mode;     /**< AT+QFOTADL=3 */
    uint32_t ipr;         /**< AT+IPR */
    int dtr_mode;         /**< AT&D */
    char fota_apn[300];   /**< AT+QCFGEXT="fota_apn" form */
    bool data_mode;       /**< an AT port is in data mode (an upload) */
    bool dtr, rts;        /**< the lines as the control socket set them */
};

/** Fills @p out (see struct modem_status). */
void modem_get_status(struct modem *m, struct modem_status *out);

/** The network as the module sees it (`dfota-simctl network`). */
struct modem_net_status {
    const char *reg;      /**< "registered", "searching", "denied", "roaming", "unknown",
                               "not-registered" (of +CEREG's <stat>) */
    int stat;             /**< that <stat> */
    int rssi, ber;        /**< AT+CSQ */
    char oper[64];        /**< AT+COPS operator */
    int act;              /**< AT+COPS <AcT> */
    const char *apns;     /**< APNs accepted, comma-separated; NULL any */
    uint32_t link_rate;   /**< bytes/s, 0 unlimited */
    uint32_t latency_ms;
    bool attached;        /**< PS attached (radio on, registered, not detached) */
    int cfun;
};

/** Fills @p out with the network state. */
void modem_get_net(struct modem *m, struct modem_net_status *out);

/** What `dfota-simctl network` changes: members at -1 (strings NULL) stay. */
struct modem_net_change {
    int stat;          /**< registration <stat>: 1 registered, 2 searching, 3 denied, 5 roaming */
    int rssi;          /**< AT+CSQ <rssi> 0..31, 99 */
    const char *oper;  /**< operator name (copied) */
    int64_t link_rate; /**< bytes/s, 0 unlimited */
    int64_t latency_ms;
};

/** Changes the network (a registration change prints +CREG/+CEREG/+CGREG
 *  where their URCs are enabled). 0 or -EINVAL for a value out of range. */
int modem_net_change(struct modem *m, const struct modem_net_change *c);

/** The registration <stat> called @p name ("registered", ...), -1 if none. */
int modem_reg_stat(const char *name);

/** Cuts the power, as pulling the supply does: no URC, nothing volatile
 *  kept (the settings AT&W saved, the NAND slot, EFS and an interrupted
 *  update survive, as they do a kill -9); the module stays off until
 *  modem_power_on_now(). -EALREADY when it is off. */
int modem_power_cut(struct modem *m);
/** Powers the module on (from off: boot, or DFOTA mode to resume an
 *  interrupted update). -EALREADY when it is on. */
int modem_power_on_now(struct modem *m);
/** Resets the module (power cycle through its reset time). -EAGAIN while off. */
int modem_reset_now(struct modem *m);

/** The host drives DTR (asserted @p on) or RTS on the UART: DTR as AT&D
 *  says (dropping it ends data mode with AT&D1/2), RTS off holds the
 *  module's output (hardware flow control) until it is on again. */
void modem_set_dtr(struct modem *m, bool on);
void modem_set_rts(struct modem *m, bool on);

/** What the module reports to an observer (`dfota-simctl watch`). */
enum modem_event_kind {
    MODEM_EV_URC,   /**< text: a URC posted on the AT ports */
    MODEM_EV_POWER, /**< from -> to: a power state change */
    MODEM_EV_JOB,   /**< from -> to: the DFOTA job's state change; text its event */
    MODEM_EV_DATA,  /**< on: an AT port (port) entered / left data mode; text why */
};

struct modem_event {
    enum modem_event_kind kind;
    const char *text, *from, *to, *port;
    bool on;
};

/** The observer of a modem: @p on_event runs on the loop for each event;
 *  @p ev is valid during the call only. */
struct modem_observer {
    void (*on_event)(void *ud, const struct modem_event *ev);
};

/** Sets the observer of @p m (@p o borrowed; NULL: none). */
void modem_set_observer(struct modem *m, const struct modem_observer *o, void *ud);

struct net_url;

/** Fault seams of the module (STYLE.md 11): where the world outside may
 *  fail as it does for a real module. Every member is optional and runs on
 *  the loop; a NULL table is the real world. */
struct modem_fault_ops {
    /** A download is about to connect to @p url: a table-3 code ends it
     *  there (702 DNS, TCP, TLS; 703 / 706 an HTTP status; 701), 0 goes on. */
    int (*dl_start)(void *ud, const struct net_url *url);
    /** @p got of @p size (0 unknown) body bytes have arrived: 0 goes on, a
     *  table-3 code ends the download: at once, or after *@p silence_ms
     *  without a byte when it sets that (a stall). */
    int (*dl_data)(void *ud, uint64_t got, uint64_t size, uint32_t *silence_ms);
    /** A URC is posted: how many ms it leaves late (later URCs wait behind it). */
    uint32_t (*urc_delay)(void *ud, const char *text);
    /** The UART writes @p len bytes of @p in: what the wire delivers goes
     *  to @p out (@p len bytes of room); returns how many. */
    size_t (*uart_out)(void *ud, const uint8_t *in, size_t len, uint8_t *out);
    /** The DFOTA job's seams (slot and update), passed on as they are. */
    struct fota_fault_ops job;
};

/** Sets the fault seams of @p m (@p ops borrowed; NULL: none). */
void modem_set_faults(struct modem *m, const struct modem_fault_ops *ops, void *ud);

/** The timing profile @p m runs (its download timers, for a fault's stall). */
const struct modem_timing *modem_timing_of(const struct modem *m);

/** The clock of @p m. */
struct dclock *modem_clock(const struct modem *m);

/** Opens the firmware image the module runs (read-only; the caller closes
 *  *@p fd): 0 or a negative errno. Safe on the loop (an open, no read). */
int modem_image_open(struct modem *m, int *fd, uint64_t *size);

#endif
