/* modem_int.h - the modem object, shared by the modem layer's files. */
#ifndef DFOTA_MODEM_INT_H
#define DFOTA_MODEM_INT_H

#include <stdio.h>

#include "dfota/at.h"
#include "dfota/clock.h"
#include "dfota/fota.h"
#include "dfota/modem.h"
#include "dfota/port.h"
#include "dfota/store.h"

/* Power states (STYLE.md 10): one enter function, switches without default. */
enum modem_power {
    PWR_OFF,       /* not powered yet (waiting for the first host open) */
    PWR_BOOTING,   /* power on -> RDY: input gets no answer */
    PWR_APP_BOOT,  /* RDY -> APP RDY: commands get ERROR */
    PWR_NORMAL,    /* answering */
    PWR_RESETTING, /* reset requested, power cycling */
    PWR_STOPPING,  /* AT+QPOWD answered, NORMAL POWER DOWN to come */
    PWR_DFOTA,     /* DFOTA mode: the UART only reports, the USB port is gone */
    PWR_DOWN,      /* AT+QPOWD: off until the process restarts */
};

/* The network as the module sees it: one place, set up from the cfg and
 * the timing profile (modem_net_init()), read by every command that
 * reports on it and by the download door (modem_net_data_ok()). */
struct modem_net {
    int rssi, ber;          /* AT+CSQ */
    int creg, cereg, cgreg; /* <stat> of each registration */
    int cops_mode, cops_format, act;
    char oper[64];
    const char *apns;    /* APNs it accepts, comma-separated (cfg.network_apns); NULL: any */
    uint32_t link_rate;  /* bytes/s of the data link (timing link_rate_bps); 0: unlimited */
    uint32_t latency_ms; /* latency it adds (timing link_latency_ms) */
    bool detached;       /* AT+CGATT=0: PS detached until AT+CGATT=1 or a power cycle */
};

/* Limits of an APN and of its credentials: an APN is at most 100 octets
 * encoded (3GPP TS 23.003 9.1), 99 characters written out; user name and
 * password at most 127 characters (AT+QICSGP's). */
#define MODEM_APN_MAX 99
#define MODEM_APN_CRED_MAX 127

/* AT+QCFGEXT="fota_apn" (app note 2.2.4): the PDN a DFOTA download uses. */
struct modem_fota_apn {
    int iptype; /* 0 IPv4, 1 IPv6, 2 IPv4v6 */
    char apn[MODEM_APN_MAX + 1];
    bool creds; /* <username>,<password> were given (possibly empty) */
    char user[MODEM_APN_CRED_MAX + 1];
    char pass[MODEM_APN_CRED_MAX + 1];
};

/* PDP context types, X(id, AT+CGDCONT <PDP_type>, AT+QICSGP <context_type>;
 * 0: none). */
#define MODEM_PDP_TYPE_MAP(X)                                                                      \
    X(IP, "IP", 1)                                                                                 \
    X(IPV6, "IPV6", 2)                                                                             \
    X(IPV4V6, "IPV4V6", 3)                                                                         \
    X(NONIP, "NONIP", 0)

enum modem_pdp_type {
#define X(id, name, qi) MODEM_PDP_##id,
    MODEM_PDP_TYPE_MAP(X)
#undef X
};

/* One PDP context (AT+CGDCONT and AT+QICSGP write the same one). The
 * definition is saved; the activation is not. */
#define MODEM_PDP_MAX 16
struct modem_pdp {
    bool defined;
    enum modem_pdp_type type;
    char apn[MODEM_APN_MAX + 1];
    char user[MODEM_APN_CRED_MAX + 1];
    char pass[MODEM_APN_CRED_MAX + 1];
    int auth;           /* AT+QICSGP <authentication>: 0 none, 1 PAP, 2 CHAP, 3 PAP or CHAP */
    int d_comp, h_comp; /* AT+CGDCONT <d_comp>, <h_comp> */
    bool active;        /* AT+QIACT: volatile */
};

/* Settings AT&W saves and ATZ restores. */
struct modem_profile {
    bool echo, verbose, quiet;
    int cmee;
    int dtr_mode; /* AT&D */
    uint32_t ipr;
};

struct modem_upload;

/* How a data-mode upload ended. */
enum modem_upload_end {
    UPLOAD_FULL,    /* <file_size> bytes arrived */
    UPLOAD_ESCAPED, /* +++ or DTR */
    UPLOAD_IDLE,    /* <timeout> passed with no byte */
    UPLOAD_FAILED,  /* the sink refused a chunk */
    UPLOAD_CUT,     /* a reset or power-down: no final result */
};

/* Where an upload's bytes go and how it reports: AT+QFOTADL="COM:" into
 * the NAND slot, AT+QFUPL into an EFS file. */
struct modem_upload_sink {
    const char *report; /* "+QFOTADL", "+QFUPL": prefix of "<upload_size>,<checksum>" */
    int (*write)(struct modem_upload *u, const uint8_t *buf, size_t len);
    /* Keeps or drops what arrived (@p err: the failed write's); returns the
     * final result, AT_OK printing the report, or AT_PENDING and calls
     * modem_upload_done() later. */
    int (*end)(struct modem_upload *u, enum modem_upload_end how, int err);
};

/* A data-mode upload over an AT port. */
struct modem_upload {
    const struct modem_upload_sink *sink; /* NULL: none running */
    struct modem_chan *chan;
    union {
        struct fota_src *src; /* AT+QFOTADL="COM:": a package source of the job */
        struct store_efs_writer *efs;
    } w;
    const struct modem_upload_sink *ended; /* the sink of the upload that ended last */
    enum modem_upload_end how; /* how it ended, for a sink that answers later */
    uint64_t want, got;
    uint16_t sum;
    uint32_t timeout_ms;
    bool ack; /* AT+QFUPL <ackmode> 1 */
    unsigned epoch; /* the power-up it runs in */
    struct dclock_timer idle;
};

/* One AT port (UART, USB): a port and its own interpreter. */
struct modem_chan {
    struct modem *m;
    const char *name;
    const char *path;   /* symlink (pty ports) */
    struct port *port;  /* NULL while the port is gone (USB in DFOTA mode) */
    bool own_port;
    struct at_engine *at;
    struct modem_upload upload;
    size_t traced; /* input bytes at the head of the port's next offer already traced */
};

#define MODEM_CHAN_MAX 2

struct modem {
    uv_loop_t *loop;
    const char *name; /* in log lines: cfg.name, else the UART path */
    struct dclock *clk;
    bool own_clock;
    const struct modem_model *model;
    const struct modem_timing *timing;
    struct modem_cfg cfg;
    struct modem_events ev;
    void *ud;
    struct store *store;
    struct fota *fota;
    FILE *trace;
    uint64_t trace_t0;

    struct modem_chan chan[MODEM_CHAN_MAX];
    unsigned nchan;

    enum modem_power power;
    struct dclock_timer power_timer;
    struct dclock_timer action_timer; /* a reset/power-down asked for by a handler */
    enum modem_power pending_power;
    struct dclock_timer drain_timer;  /* reboot after END once the UART is idle */
    uint32_t ipr;                     /* AT+IPR: the UART's rate */
    unsigned boot_step;

    char firmware[96];  /* AT+QGMR form */
    char imei[16], imsi[16];
    int cfun;
    int reg_urc[3];     /* <n> of AT+CREG, +CEREG, +CGREG */
    struct modem_net net;
    struct modem_dl *dl; /* AT+QFOTADL=<URL> running (modem_dl.c) */
    struct modem_fota_apn fota_apn;          /* loaded at power-on (modem_net_power_on()) */
    struct modem_pdp pdp[MODEM_PDP_MAX + 1]; /* [1..MODEM_PDP_MAX], [0] unused */
    int dtr_mode;       /* AT&D */

    unsigned power_epoch; /* power-ups so far: an answer from an older one is not given */
    /* the control socket's (modem_ctl.c): observer, fault seams, lines */
    const struct modem_observer *obs;
    void *obs_ud;
    const struct modem_fault_ops *faults;
    void *faults_ud;
    bool dtr_off, rts_off;
    struct modem_urc_held *held, *held_tail; /* URCs a fault holds back, oldest first */
    struct dclock_timer urc_timer;
    char stage[16]; /* the last +QIND: "FOTA" stage posted, "" none (for status) */
    int stage_pct;  /* its percent, -1 none */
    bool cutting;      /* a power cut waits for the job to stop */
    bool power_wanted; /* power on once the cut is done */
    bool switched_off; /* the control socket cut the power: it alone powers on */
    bool preloading; /* --preload-package still being stored: power-on waits */

    void (*close_cb)(void *arg);
    void *close_arg;
    unsigned closing;
};

/* logging */
void modem_log(const struct modem *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes module output to one AT port (traced); dropped while it is gone. */
void modem_chan_write(struct modem_chan *c, const void *buf, size_t len);

/* Posts a URC on every AT port (on the UART alone in DFOTA mode). */
void modem_urc(struct modem *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Tells the observer (modem_set_observer()), if any, of @p ev. */
void modem_notify(struct modem *m, const struct modem_event *ev);

/* The download's size and bytes so far, for status (modem_dl.c); false
 * when none runs. */
bool modem_dl_progress(const struct modem *m, uint64_t *got, uint64_t *size);

/* Answers that wait for the store's work queue: start(c, arg, cb, ud)
 * begins the work (e.g. store_set_async) and returns 0 or a negative errno; the
 * command then answers once cb runs: OK on 0, else map(errno) (NULL: ERROR),
 * unless the module has reset or closed since. Returns what the handler
 * returns (AT_PENDING, or the mapped error when start failed). */
int modem_answer_later(struct modem_chan *c, int (*map)(int err),
                       int (*start)(struct modem_chan *c, const void *arg, store_cb cb, void *ud),
                       const void *arg);
/* Whether an answer asked for at power-up @p epoch may still be given. */
bool modem_answer_valid(const struct modem *m, unsigned epoch);

/* Power */
void modem_reset(struct modem *m);
void modem_power_down(struct modem *m);

/* AT+QFOTADL=<HTTP(S) URL> (modem_dl.c): starts the download door for
 * @p url (its scheme checked by the caller) and returns the command's
 * result: AT_OK (HTTPSTART and the rest follow as URCs), FOTA_CME_BUSY,
 * AT_ERROR. */
int modem_dl_start(struct modem *m, const char *url);
/* Cuts a running download (a reset, power-down, the close): no URC; @p cb
 * (may be NULL) runs with @p arg once nothing of it runs any more. */
void modem_dl_abort(struct modem *m, void (*cb)(void *arg), void *arg);
/* The data connection went away (AT+CFUN=0/4, AT+CGATT=0): a running
 * download ends with HTTPEND,702; one that has every byte is unaffected. */
void modem_dl_net_lost(struct modem *m);

/* Profile (AT&W / ATZ / AT&F) */
void modem_profile_apply(struct modem *m, const struct modem_profile *p);
/* The settings of the AT port @p c (the one AT&W came on); the line rate is the UART's. */
void modem_profile_capture(struct modem_chan *c, struct modem_profile *p);
/* Saves @p p (AT&W) off the loop; @p cb as for store_set_async(). */
int modem_profile_save(struct modem *m, const struct modem_profile *p, store_cb cb, void *ud);
void modem_profile_factory(struct modem_profile *p);
/* What AT&W saved, or the factory settings. */
void modem_profile_load(struct modem *m, struct modem_profile *p);
/* AT+IPR: the UART's rate, at once, or (from the command) once the final
 * result of the UART's running line is written at the old rate. */
void modem_set_ipr(struct modem *m, uint32_t rate);
void modem_set_ipr_after_reply(struct modem *m, uint32_t rate);

/* ---- the network model (modem_net.c) ---- */

/* Sets up the network of @p m from its cfg and timing profile. */
void modem_net_init(struct modem *m);
/* What a power-up or reset starts from: the saved settings (fota_apn, the
 * PDP contexts) loaded from the store, every context deactivated, attached. */
void modem_net_power_on(struct modem *m);
/* The radio went off (AT+CFUN=0/4): every context is deactivated. */
void modem_net_radio_off(struct modem *m);
/* Whether the module is PS attached: radio on, PS registered (+CEREG or
 * +CGREG <stat> 1 or 5) and not detached by AT+CGATT=0. */
bool modem_net_attached(const struct modem *m);
/* Whether the network accepts a data call on @p apn (NUL-terminated,
 * borrowed): 0 when a data call can go now; -ENETUNREACH when the radio is
 * off (AT+CFUN=0/4) or the module is not PS registered/attached; -EACCES
 * when the network refuses the APN (not in --network-apns; "" is the
 * network's default APN and always accepted). */
int modem_net_data_ok(const struct modem *m, const char *apn);
/* The APN a DFOTA download uses, copied into @p buf of @p cap bytes
 * (truncated to fit) and returned: fota_apn's when set and non-empty, else
 * PDP context 1's (AT+CGDCONT cid 1; "" when it is not defined). */
const char *modem_download_apn(const struct modem *m, char *buf, size_t cap);

/* Copies quoted string argument @p i of at most @p max characters into
 * @p out (max + 1 bytes); false when it is absent, unquoted or longer. */
bool modem_arg_str(const struct at_args *a, unsigned i, char *out, size_t max);

/* fota_apn in the form AT+QCFGEXT="fota_apn" prints (and the store keeps):
 * <iptype>,"<apn>"[,"<username>","<password>"]. Returns @p buf. */
const char *modem_fota_apn_format(const struct modem_fota_apn *f, char *buf, size_t cap);
/* Saves @p f under "fota_apn" off the loop and makes it the module's;
 * @p cb as for store_set_async(). Returns 0 or a negative errno. */
int modem_fota_apn_save(struct modem *m, const struct modem_fota_apn *f, store_cb cb, void *ud);
/* Saves PDP context @p cid as it is in m->pdp (definition only); @p cb as
 * for store_set_async(). */
int modem_pdp_save(struct modem *m, int cid, store_cb cb, void *ud);
/* The address an active context @p cid of type @p t has, deterministic
 * (from the IMSI and the cid): "10.a.b.c", an IPv6 address for "IPV6". */
const char *modem_pdp_addr(const struct modem *m, int cid, enum modem_pdp_type t, char *buf,
                           size_t cap);
/* The AT+CGDCONT name of @p t; the type called @p name (case-insensitive),
 * -1 if none. */
const char *modem_pdp_type_name(enum modem_pdp_type t);
int modem_pdp_type_find(const char *name);

/* Command tables of each feature, registered on every AT port. */
extern const struct at_cmd modem_cmds_basic[];
extern const size_t modem_cmds_basic_n;
extern const struct at_cmd modem_cmds_network[];
extern const size_t modem_cmds_network_n;
extern const struct at_cmd modem_cmds_fota[];
extern const size_t modem_cmds_fota_n;
extern const struct at_cmd modem_cmds_file[];
extern const size_t modem_cmds_file_n;
extern const struct at_cmd modem_cmds_pdp[];
extern const size_t modem_cmds_pdp_n;

/* <check_sum> of AT+QFOTADL="COM:" and AT+QFUPL: XOR of big-endian 16-bit
 * words; @p offset is where @p buf starts in the file. */
uint16_t modem_xor16(uint16_t acc, uint64_t offset, const uint8_t *buf, size_t len);
/* Starts the upload of @p want bytes on @p c into @p sink, whose writer
 * the caller has put in c->upload.w; enters data mode. Returns AT_CONNECT. */
int modem_upload_start(struct modem_chan *c, const struct modem_upload_sink *sink, uint64_t want,
                       uint32_t timeout_ms, bool ack);
/* The final result of an upload whose sink's end() returned AT_PENDING:
 * prints the report on AT_OK and finishes the command. */
void modem_upload_done(struct modem_upload *u, int result);
/* Ends an upload cut by a reset or power-down (its sink decides what stays). */
void modem_upload_abort(struct modem_chan *c);
/* The FILE error code (file_codes.h) of store error @p err (a negative
 * errno); @p fallback for an errno that names no cause of its own. */
int modem_file_err(int err, int fallback);

/* The rates AT+IPR takes; whether a rate also carries DFOTA-mode URCs. */
bool modem_ipr_valid(uint32_t rate);
bool modem_ipr_urc_rate(uint32_t rate);
/* "4800,9600,..." for AT+IPR=? */
const char *modem_ipr_list(void);

#endif
