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

/* The network as the module sees it: one place, scriptable later. */
struct modem_net {
    int rssi, ber;       /* AT+CSQ */
    int creg, cereg, cgreg; /* <stat> of each registration */
    int cops_mode, cops_format, act;
    char oper[64];
};

/* Settings AT&W saves and ATZ restores. */
struct modem_profile {
    bool echo, verbose, quiet;
    int cmee;
    int dtr_mode; /* AT&D */
    uint32_t ipr;
};

/* A package upload over an AT port (AT+QFOTADL="COM:"). */
struct modem_upload {
    struct modem_chan *chan;
    struct store_slot_writer *slot;
    uint64_t want, got;
    uint16_t sum;
    uint32_t timeout_ms;
    bool active;
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
};

#define MODEM_CHAN_MAX 2

struct modem {
    uv_loop_t *loop;
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
    unsigned boot_step;
    bool ready_told;

    char firmware[96];  /* AT+QGMR form */
    char imei[16], imsi[16];
    int cfun;
    int reg_urc[3];     /* <n> of AT+CREG, +CEREG, +CGREG */
    struct modem_net net;
    int dtr_mode;       /* AT&D */
    uint32_t ipr_before_dfota;

    void (*close_cb)(void *arg);
    void *close_arg;
    unsigned closing;
};

/* logging */
void modem_log(const struct modem *m, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Posts a URC on every AT port. */
void modem_urc(struct modem *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Power */
void modem_reset(struct modem *m);
void modem_power_down(struct modem *m);

/* Profile (AT&W / ATZ / AT&F) */
void modem_profile_apply(struct modem *m, const struct modem_profile *p);
void modem_profile_capture(struct modem *m, struct modem_profile *p);
int modem_profile_save(struct modem *m, const struct modem_profile *p);
void modem_profile_factory(struct modem_profile *p);
/* What AT&W saved, or the factory settings. */
void modem_profile_load(struct modem *m, struct modem_profile *p);
/* AT+IPR: the UART's rate, at once. */
void modem_set_ipr(struct modem *m, uint32_t rate);

/* Network defaults */
void modem_net_default(struct modem_net *n);

/* Command tables of each feature, registered on every AT port. */
extern const struct at_cmd modem_cmds_basic[];
extern const size_t modem_cmds_basic_n;
extern const struct at_cmd modem_cmds_network[];
extern const size_t modem_cmds_network_n;
extern const struct at_cmd modem_cmds_fota[];
extern const size_t modem_cmds_fota_n;

/* <check_sum> of AT+QFOTADL="COM:" and AT+QFUPL: XOR of big-endian 16-bit
 * words; @p offset is where @p buf starts in the file. */
uint16_t modem_xor16(uint16_t acc, uint64_t offset, const uint8_t *buf, size_t len);
/* Ends an upload cut by a reset or power-down; what arrived stays. */
void modem_upload_abort(struct modem_chan *c);

/* The rates AT+IPR takes; whether a rate also carries DFOTA-mode URCs. */
bool modem_ipr_valid(uint32_t rate);
bool modem_ipr_urc_rate(uint32_t rate);
/* "4800,9600,..." for AT+IPR=? */
const char *modem_ipr_list(void);

#endif
