/* modem.c - the module object: its AT ports, power states and boot, the
 * wire trace (see include/dfota/modem.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modem_int.h"

#define DEFAULT_MODEL "BG95-M3"
#define DEFAULT_STATE_DIR "./dfota-state"
#define DEFAULT_UART "./dfota-sim.tty"
#define DEFAULT_PROFILE "standard"

/* The URCs a BG95 prints once APP RDY is out, in order. */
static const char *const boot_urcs[] = {
    "+CFUN: 1",
    "+CPIN: READY",
    "+QUSIM: 1",
    "+QIND: SMS DONE",
};

void modem_log(const struct modem *m, int level, const char *fmt, ...)
{
    if (level > m->cfg.verbose)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "dfota-sim[%s]: %s\n", m->name, msg);
}

/* ---- wire trace ------------------------------------------------------ */

static void trace(struct modem *m, const struct modem_chan *c, char dir, const void *buf,
                  size_t len)
{
    if (!m->trace || !len)
        return;
    uint64_t us = dclock_now_us(m->clk) - m->trace_t0;
    fprintf(m->trace, "%6llu.%06llu %s %c ", (unsigned long long)(us / 1000000),
            (unsigned long long)(us % 1000000), c->name, dir);
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = p[i];
        if (b == '\r')
            fputs("\\r", m->trace);
        else if (b == '\n')
            fputs("\\n", m->trace);
        else if (b == '\\')
            fputs("\\\\", m->trace);
        else if (b >= 0x20 && b < 0x7f)
            fputc(b, m->trace);
        else
            fprintf(m->trace, "\\x%02x", b);
    }
    fputc('\n', m->trace);
    fflush(m->trace);
}

/* ---- ports ----------------------------------------------------------- */

void modem_chan_write(struct modem_chan *c, const void *buf, size_t len)
{
    if (!c->port)
        return;
    trace(c->m, c, '>', buf, len);
    const struct modem_fault_ops *f = c->m->faults;
    int r;
    if (f && f->uart_out && c == &c->m->chan[0] && len) {
        /* the wire between the module and the host (uart.drop) */
        uint8_t small[1024];
        uint8_t *out = len <= sizeof(small) ? small : malloc(len);
        if (!out)
            return;
        size_t n = f->uart_out(c->m->faults_ud, buf, len, out);
        r = n ? port_write(c->port, out, n) : 0;
        if (out != small)
            free(out);
    } else {
        r = port_write(c->port, buf, len);
    }
    if (r < 0)
        modem_log(c->m, 0, "%s: output lost (%s)", c->name, strerror(-r));
}

static void chan_output(void *ud, const char *buf, size_t len)
{
    modem_chan_write(ud, buf, len);
}

/* Input of an AT port: the engine takes what it can (one command line at
 * a time, nothing while a command runs); the port keeps the rest and offers
 * it again. The trace shows each byte once, when it first arrives. */
static size_t chan_data(void *ud, const uint8_t *buf, size_t len)
{
    struct modem_chan *c = ud;
    size_t seen = c->traced < len ? c->traced : len;
    trace(c->m, c, '<', buf + seen, len - seen);
    size_t n = at_engine_feed(c->at, buf, len);
    c->traced = len - n; /* the port offers these again first */
    return n;
}

/* The engine can take input again: the port offers what it kept. */
static void chan_input_ready(void *ud)
{
    struct modem_chan *c = ud;
    if (c->port)
        port_input_resume(c->port);
}

/* AT_F_JOB: the DFOTA job runs (a package coming in through any door, on
 * any AT port, or the reset-and-update cycle). */
static bool chan_job_running(void *ud)
{
    const struct modem *m = ((struct modem_chan *)ud)->m;
    return m->fota && fota_busy(m->fota);
}

static void chan_log(void *ud, int level, const char *msg)
{
    struct modem_chan *c = ud;
    modem_log(c->m, level, "%s", msg);
}

static void power_on(struct modem *m);

static void chan_host(void *ud, bool open)
{
    struct modem_chan *c = ud;
    modem_log(c->m, 1, "%s: host %s the port", c->name, open ? "opened" : "closed");
    if (open && c->m->power == PWR_OFF && !c->m->preloading && !c->m->switched_off)
        power_on(c->m);
    /* closing a tty drops DTR (hang-up on close): with AT&D1/2 that ends
     * data mode, so a host that reopens is not talking into an upload */
    if (!open && c->m->dtr_mode != 0)
        at_engine_dtr_drop(c->at);
}

static void chan_dtr(void *ud, bool asserted)
{
    struct modem_chan *c = ud;
    if (!asserted && c->m->dtr_mode != 0)
        at_engine_dtr_drop(c->at);
}

static const struct port_events chan_events = {
    .on_data = chan_data,
    .on_host = chan_host,
    .on_dtr = chan_dtr,
};

static int chan_port_open(struct modem_chan *c)
{
    struct modem *m = c->m;
    struct port_pty_cfg pcfg = {.link_path = c->path, .verbose = m->cfg.verbose};
    int r = port_pty_new(m->clk, &pcfg, &chan_events, c, &c->port);
    if (r) {
        modem_log(m, 0, "cannot open the %s port at %s: %s", c->name, c->path, strerror(-r));
        c->port = NULL;
        return r;
    }
    c->own_port = true;
    port_set_strict_rate(c->port, true);
    return 0;
}

static void chan_port_close(struct modem_chan *c, void (*cb)(void *), void *arg)
{
    struct port *p = c->port;
    c->port = NULL;
    if (p && c->own_port) {
        port_close(p, cb, arg);
        return;
    }
    if (p) /* the caller's port outlives us: it must not call into a freed modem */
        port_set_events(p, NULL, NULL);
    if (cb)
        cb(arg);
}

static int chan_open(struct modem *m, const char *name, struct port *given, const char *path)
{
    struct modem_chan *c = &m->chan[m->nchan];
    *c = (struct modem_chan){.m = m, .name = name, .path = path};
    struct at_engine_cfg acfg = {
        .output = chan_output,
        .output_ud = c,
        .urc_gap_ms = m->timing->urc_gap,
        .ud = c,
        .input_ready = chan_input_ready,
        .job_running = chan_job_running,
        .log = chan_log,
        .log_level = m->cfg.verbose,
        .name = name,
    };
    c->at = at_engine_new(m->clk, &acfg);
    if (!c->at)
        return -ENOMEM;
    int r = at_engine_add_table(c->at, modem_cmds_basic, modem_cmds_basic_n, c);
    if (!r)
        r = at_engine_add_table(c->at, modem_cmds_network, modem_cmds_network_n, c);
    if (!r)
        r = at_engine_add_table(c->at, modem_cmds_fota, modem_cmds_fota_n, c);
    if (!r)
        r = at_engine_add_table(c->at, modem_cmds_file, modem_cmds_file_n, c);
    if (!r)
        r = at_engine_add_table(c->at, modem_cmds_pdp, modem_cmds_pdp_n, c);
    if (!r && given) {
        c->port = given;
        port_set_events(given, &chan_events, c);
        port_set_strict_rate(given, true);
    } else if (!r) {
        r = chan_port_open(c);
    }
    if (r) {
        at_engine_free(c->at);
        return r;
    }
    m->nchan++;
    return 0;
}

/* A URC held back by a fault (urc.delay), in order. */
struct modem_urc_held {
    struct modem_urc_held *next;
    uint64_t due; /* module time it leaves */
    char text[];
};

/* Remembers the stage of a +QIND: "FOTA" URC for status. */
static void note_stage(struct modem *m, const char *text)
{
    static const char prefix[] = "+QIND: \"FOTA\",\"";
    if (strncmp(text, prefix, sizeof(prefix) - 1) != 0)
        return;
    const char *p = text + sizeof(prefix) - 1;
    size_t n = strcspn(p, "\"");
    if (n >= sizeof(m->stage))
        return;
    memcpy(m->stage, p, n);
    m->stage[n] = '\0';
    m->stage_pct = -1;
    if (p[n] == '"' && p[n + 1] == ',' && (strcmp(m->stage, "UPDATING") == 0 ||
                                           strcmp(m->stage, "DOWNLOADING") == 0))
        m->stage_pct = atoi(p + n + 2);
}

/* Hands a URC to the AT ports: in DFOTA mode the UART alone is there and
 * reports at once; otherwise each port's queue holds it behind a reply. */
static void post_urc(struct modem *m, const char *text)
{
    note_stage(m, text);
    if (m->power == PWR_DFOTA)
        at_engine_urc_now(m->chan[0].at, "%s", text);
    else
        for (unsigned i = 0; i < m->nchan; i++)
            at_engine_urc(m->chan[i].at, "%s", text);
    modem_notify(m, &(struct modem_event){.kind = MODEM_EV_URC, .text = text});
}

static void held_drop(struct modem *m)
{
    dclock_timer_stop(&m->urc_timer);
    while (m->held) {
        struct modem_urc_held *h = m->held;
        m->held = h->next;
        free(h);
    }
    m->held_tail = NULL;
}

static void on_urc_timer(struct dclock_timer *t)
{
    struct modem *m = t->data;
    uint64_t now = dclock_now(m->clk);
    while (m->held && m->held->due <= now) {
        struct modem_urc_held *h = m->held;
        if (!(m->held = h->next))
            m->held_tail = NULL;
        post_urc(m, h->text);
        free(h);
    }
    if (m->held)
        dclock_timer_start(&m->urc_timer, m->held->due - now);
}

/* A URC leaves now, or later when a fault delays it or one before it is
 * still held (URCs keep their order). */
static void urc_out(struct modem *m, const char *text)
{
    const struct modem_fault_ops *f = m->faults;
    uint32_t delay = f && f->urc_delay ? f->urc_delay(m->faults_ud, text) : 0;
    if (!delay && !m->held) {
        post_urc(m, text);
        return;
    }
    size_t len = strlen(text);
    struct modem_urc_held *h = malloc(sizeof(*h) + len + 1);
    if (!h) {
        post_urc(m, text);
        return;
    }
    memcpy(h->text, text, len + 1);
    h->next = NULL;
    h->due = dclock_now(m->clk) + delay;
    if (m->held_tail) {
        if (h->due < m->held_tail->due)
            h->due = m->held_tail->due;
        m->held_tail->next = h;
    } else {
        m->held = h;
        dclock_timer_start(&m->urc_timer, delay);
    }
    m->held_tail = h;
}

void modem_urc(struct modem *m, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    urc_out(m, text);
}

static void set_input(struct modem *m, enum at_input in)
{
    for (unsigned i = 0; i < m->nchan; i++)
        at_engine_set_input(m->chan[i].at, in);
}

/* ---- settings AT&W keeps --------------------------------------------- */

void modem_profile_factory(struct modem_profile *p)
{
    *p = (struct modem_profile){
        .echo = true, .verbose = true, .quiet = false, .cmee = 1, .dtr_mode = 2, .ipr = 115200};
}

void modem_profile_capture(struct modem_chan *c, struct modem_profile *p)
{
    struct modem *m = c->m;
    const struct at_settings *s = at_engine_settings(c->at); /* the port AT&W came on */
    p->echo = s->echo;
    p->verbose = s->verbose;
    p->quiet = s->quiet;
    p->cmee = s->cmee;
    p->dtr_mode = m->dtr_mode;
    p->ipr = m->ipr;
}

void modem_profile_apply(struct modem *m, const struct modem_profile *p)
{
    for (unsigned i = 0; i < m->nchan; i++) {
        struct at_settings *s = at_engine_settings(m->chan[i].at);
        s->echo = p->echo;
        s->verbose = p->verbose;
        s->quiet = p->quiet;
        s->cmee = p->cmee;
    }
    m->dtr_mode = p->dtr_mode;
    modem_set_ipr(m, p->ipr);
}

/* The UART's line rate is AT+IPR's, in every power state (DFOTA mode sets
 * its own, set_dfota_line()). Its port is strict (chan_open): a host reading
 * at another speed gets what a mismatched UART delivers. */
static void apply_ipr(void *ud)
{
    struct modem *m = ud;
    /* the UART only: the USB port has no line rate; --pace-uart (and the
     * realistic profile) make it a real UART's, bytes no faster either way */
    bool pace = m->cfg.pace_uart || m->timing->pace_uart;
    port_set_rate(m->chan[0].port, m->ipr, pace, pace);
}

void modem_set_ipr(struct modem *m, uint32_t rate)
{
    m->ipr = rate;
    at_engine_after_result(m->chan[0].at, NULL, NULL); /* a switch still owed is moot */
    apply_ipr(m);
}

/* AT+IPR: the UART switches right after the final result of the line that
 * set it, when that line runs on the UART (its OK leaves at the old rate,
 * the next byte at the new one); at once when it came on the USB port. */
void modem_set_ipr_after_reply(struct modem *m, uint32_t rate)
{
    m->ipr = rate;
    at_engine_after_result(m->chan[0].at, apply_ipr, m);
}

/* Stored as one line "E1 V1 Q0 CMEE1 D2 IPR115200". */
int modem_profile_save(struct modem *m, const struct modem_profile *p, store_cb cb, void *ud)
{
    char v[96];
    snprintf(v, sizeof(v), "E%d V%d Q%d CMEE%d D%d IPR%u", p->echo, p->verbose, p->quiet, p->cmee,
             p->dtr_mode, (unsigned)p->ipr);
    return store_set_async(m->store, "at_profile", v, cb, ud);
}

void modem_profile_load(struct modem *m, struct modem_profile *p)
{
    modem_profile_factory(p);
    char v[96];
    if (store_get(m->store, "at_profile", v, sizeof(v)) != 0)
        return;
    int e, vb, q, cmee, d;
    unsigned ipr;
    if (sscanf(v, "E%d V%d Q%d CMEE%d D%d IPR%u", &e, &vb, &q, &cmee, &d, &ipr) == 6 &&
        cmee >= 0 && cmee <= 2 && d >= 0 && d <= 2 && modem_ipr_valid(ipr)) {
        *p = (struct modem_profile){e != 0, vb != 0, q != 0, cmee, d, ipr};
    } else {
        modem_log(m, 0, "stored AT profile \"%s\" is not valid: factory settings", v);
    }
}

/* ---- identity -------------------------------------------------------- */

static int load_identity(struct modem *m)
{
    int r = store_get(m->store, "firmware", m->firmware, sizeof(m->firmware));
    if (r == -ENOENT) {
        const char *fw = m->cfg.firmware ? m->cfg.firmware : m->model->firmware;
        if (strlen(fw) >= sizeof(m->firmware) || strlen(fw) == 0)
            return -ENAMETOOLONG;
        snprintf(m->firmware, sizeof(m->firmware), "%s", fw);
        r = store_set(m->store, "firmware", m->firmware);
    }
    if (r)
        return r;
    if (m->cfg.firmware && strcmp(m->cfg.firmware, m->firmware) != 0)
        modem_log(m, 1, "the state dir runs %s; --firmware %s applies to a new state dir only",
                  m->firmware, m->cfg.firmware);

    r = store_get(m->store, "imei", m->imei, sizeof(m->imei));
    if (r == -ENOENT) {
        /* a Quectel-looking TAC, a random serial, the Luhn check digit */
        unsigned char rnd[6] = {0};
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd))
                memset(rnd, 7, sizeof(rnd));
            close(fd);
        }
        char d[15];
        memcpy(d, "86695004", 8);
        for (int i = 0; i < 6; i++)
            d[8 + i] = (char)('0' + rnd[i] % 10);
        int sum = 0;
        for (int i = 0; i < 14; i++) {
            int x = d[13 - i] - '0';
            if (i % 2 == 0 && (x *= 2) > 9)
                x -= 9;
            sum += x;
        }
        d[14] = (char)('0' + (10 - sum % 10) % 10);
        memcpy(m->imei, d, 15);
        m->imei[15] = '\0';
        r = store_set(m->store, "imei", m->imei);
    }
    if (r)
        return r;
    /* a Telstra IMSI (MCC 505, MNC 01) to go with the example's network */
    snprintf(m->imsi, sizeof(m->imsi), "50501%.10s", m->imei + 4);
    return 0;
}

/* ---- power states ---------------------------------------------------- */

static const char *power_name(enum modem_power p)
{
    switch (p) {
    case PWR_OFF:
        return "off";
    case PWR_BOOTING:
        return "booting";
    case PWR_APP_BOOT:
        return "app-booting";
    case PWR_NORMAL:
        return "normal";
    case PWR_RESETTING:
        return "resetting";
    case PWR_STOPPING:
        return "stopping";
    case PWR_DOWN:
        return "down";
    case PWR_DFOTA:
        return "dfota";
    }
    return "?";
}

static void set_dfota_line(struct modem *m, bool on);

static void enter_power(struct modem *m, enum modem_power p, const char *event)
{
    modem_log(m, 2, "power: %s -> %s (%s)", power_name(m->power), power_name(p), event);
    if (m->power != p)
        modem_notify(m, &(struct modem_event){.kind = MODEM_EV_POWER, .from = power_name(m->power),
                                              .to = power_name(p), .text = event});
    m->power = p;
    dclock_timer_stop(&m->power_timer);
    if (p != PWR_NORMAL && p != PWR_APP_BOOT) {
        for (unsigned i = 0; i < m->nchan; i++)
            modem_upload_abort(&m->chan[i]);
        modem_dl_abort(m, NULL, NULL);
    }
    switch (p) {
    case PWR_OFF:
    case PWR_DOWN:
        set_input(m, AT_INPUT_OFF);
        break;
    case PWR_BOOTING:
        set_input(m, AT_INPUT_OFF);
        dclock_timer_start(&m->power_timer, m->timing->boot_rdy);
        break;
    case PWR_APP_BOOT:
        set_input(m, AT_INPUT_ERROR);
        modem_urc(m, "RDY");
        dclock_timer_start(&m->power_timer, m->timing->boot_app_rdy);
        break;
    case PWR_NORMAL:
        set_input(m, AT_INPUT_NORMAL);
        modem_urc(m, "APP RDY");
        m->boot_step = 0;
        dclock_timer_start(&m->power_timer, m->timing->boot_urc_gap);
        break;
    case PWR_RESETTING:
        set_input(m, AT_INPUT_OFF);
        dclock_timer_start(&m->power_timer, m->timing->reset);
        break;
    case PWR_STOPPING:
        /* the answer to AT+QPOWD is out; the module stops taking commands */
        set_input(m, AT_INPUT_OFF);
        dclock_timer_start(&m->power_timer, m->timing->power_down);
        break;
    case PWR_DFOTA:
        set_input(m, AT_INPUT_OFF);
        set_dfota_line(m, true);
        break;
    }
}

/* DFOTA mode (app note 2.2.3.1 note 1): the UART reports at the AT+IPR rate
 * when it is one the note lists, else at 115200, and a host listening at
 * another speed gets what a mismatched UART delivers; the USB port is gone
 * until the module reboots. Entering DFOTA mode is a reset, so the rate is
 * the one AT&W saved: an unsaved AT+IPR is lost, as on the real module. */
static void set_dfota_line(struct modem *m, bool on)
{
    struct port *uart = m->chan[0].port;
    if (on) {
        struct modem_profile saved;
        modem_profile_load(m, &saved);
        uint32_t rate = modem_ipr_urc_rate(saved.ipr) ? saved.ipr : 115200;
        if (rate != saved.ipr)
            modem_log(m, 0, "AT+IPR=%u is no DFOTA URC rate: reporting at 115200",
                      (unsigned)saved.ipr);
        port_set_rate(uart, rate, true, false);
        for (unsigned i = 1; i < m->nchan; i++)
            chan_port_close(&m->chan[i], NULL, NULL);
        return;
    }
    /* the reboot's cold state sets the rate again */
    for (unsigned i = 1; i < m->nchan; i++)
        if (!m->chan[i].port && !m->closing)
            chan_port_open(&m->chan[i]);
}

static void fota_urc_hook(void *ud, const char *text)
{
    urc_out(ud, text); /* in DFOTA mode the UART alone is there (post_urc()) */
}

static void fota_enter_hook(void *ud)
{
    struct modem *m = ud;
    enter_power(m, PWR_DFOTA, "DFOTA reset");
}

static void power_on(struct modem *m);

/* The reboot after END waits until the paced UART has sent all it holds,
 * as the firmware lets its UART drain before it resets: at a low AT+IPR
 * rate the last URCs would otherwise be lost or sent at the new rate. */
static void on_drain(struct dclock_timer *t)
{
    struct modem *m = t->data;
    if (!port_output_idle(m->chan[0].port)) {
        dclock_timer_start(&m->drain_timer, 5);
        return;
    }
    set_dfota_line(m, false);
    power_on(m);
}

static void fota_reboot_hook(void *ud, const char *firmware)
{
    struct modem *m = ud;
    snprintf(m->firmware, sizeof(m->firmware), "%s", firmware);
    on_drain(&m->drain_timer);
}

static void fota_log_hook(void *ud, int level, const char *msg)
{
    modem_log(ud, level, "%s", msg);
}

static void fota_state_hook(void *ud, const char *from, const char *to, const char *event)
{
    modem_notify(ud, &(struct modem_event){.kind = MODEM_EV_JOB, .from = from, .to = to,
                                           .text = event});
}

static const struct fota_hooks fota_hooks = {
    .urc = fota_urc_hook,
    .enter_dfota = fota_enter_hook,
    .reboot = fota_reboot_hook,
    .log = fota_log_hook,
    .state = fota_state_hook,
};

/* The job's fault seams lead to the control socket's, when it set any. */
static const struct fota_fault_ops *job_faults(void *ud)
{
    const struct modem *m = ud;
    return m->faults ? &m->faults->job : NULL;
}

static uint64_t fault_slot_room(void *ud, uint64_t capacity)
{
    const struct fota_fault_ops *o = job_faults(ud);
    return o && o->slot_room ? o->slot_room(((struct modem *)ud)->faults_ud, capacity) : capacity;
}

static int fault_slot_write(void *ud, uint64_t offset, size_t len, size_t *flip)
{
    const struct fota_fault_ops *o = job_faults(ud);
    return o && o->slot_write ? o->slot_write(((struct modem *)ud)->faults_ud, offset, len, flip)
                              : 0;
}

static int fault_update_start(void *ud)
{
    const struct fota_fault_ops *o = job_faults(ud);
    return o && o->update_start ? o->update_start(((struct modem *)ud)->faults_ud) : 0;
}

static int fault_update_block(void *ud, uint32_t block, uint32_t count)
{
    const struct fota_fault_ops *o = job_faults(ud);
    return o && o->update_block ? o->update_block(((struct modem *)ud)->faults_ud, block, count)
                                : 0;
}

static const struct fota_fault_ops job_fault_seams = {
    fault_slot_room, fault_slot_write, fault_update_start, fault_update_block};

/* The DFOTA job of @p m, running m->firmware. */
static int job_new(struct modem *m)
{
    struct fota_cfg fcfg = {
        .store = m->store,
        .clock = m->clk,
        .slot_capacity = (uint64_t)m->model->slot_kb * 1024,
        .opaque_target = m->cfg.opaque_target,
        .pct_sign = !m->cfg.no_percent_sign,
        .stage_ms = m->timing->fota_stage,
        .reset_ms = m->timing->reset,
        .update_ms_per_mb = m->timing->update_ms_per_mb,
        .faults = &job_fault_seams,
        .faults_ud = m,
    };
    return fota_new(&fcfg, &fota_hooks, m, m->firmware, &m->fota);
}

/* What a power-up or a reset starts from: saved settings, volatile ones at
 * their defaults. */
static void cold_state(struct modem *m)
{
    m->power_epoch++; /* answers still on their way belong to the power-up before */
    struct modem_profile p;
    modem_profile_load(m, &p);
    modem_profile_apply(m, &p);
    m->cfun = 1;
    memset(m->reg_urc, 0, sizeof(m->reg_urc));
    modem_net_power_on(m); /* saved PDP contexts and fota_apn; none active */
    fota_power_cycle(m->fota);
}

/* Power-up: an update cut by power loss goes on in DFOTA mode (note 3). */
static void power_on(struct modem *m)
{
    cold_state(m);
    if (!fota_resume(m->fota))
        enter_power(m, PWR_BOOTING, "power on");
}

static void on_power_timer(struct dclock_timer *t)
{
    struct modem *m = t->data;
    switch (m->power) {
    case PWR_BOOTING:
        enter_power(m, PWR_APP_BOOT, "RDY time");
        break;
    case PWR_APP_BOOT:
        enter_power(m, PWR_NORMAL, "APP RDY time");
        break;
    case PWR_NORMAL:
        if (m->boot_step < sizeof(boot_urcs) / sizeof(boot_urcs[0])) {
            modem_urc(m, "%s", boot_urcs[m->boot_step++]);
            if (m->boot_step < sizeof(boot_urcs) / sizeof(boot_urcs[0]))
                dclock_timer_start(&m->power_timer, m->timing->boot_urc_gap);
        }
        break;
    case PWR_RESETTING:
        power_on(m);
        break;
    case PWR_STOPPING:
        for (unsigned i = 0; i < m->nchan; i++)
            at_engine_urc_now(m->chan[i].at, "NORMAL POWER DOWN");
        enter_power(m, PWR_DOWN, "powered down");
        if (m->ev.on_power_down)
            m->ev.on_power_down(m->ud);
        break;
    case PWR_OFF:
    case PWR_DOWN:
    case PWR_DFOTA:
        break;
    }
}

/* A reset or power-down is asked for from a handler whose final result has
 * not been written yet: act on the next turn of the loop. */
static void on_action(struct dclock_timer *t)
{
    struct modem *m = t->data;
    enter_power(m, m->pending_power, "command");
}

void modem_reset(struct modem *m)
{
    m->pending_power = PWR_RESETTING;
    dclock_timer_start(&m->action_timer, 0);
}

void modem_power_down(struct modem *m)
{
    m->pending_power = PWR_STOPPING;
    dclock_timer_start(&m->action_timer, 0);
}

/* ---- the control socket's power switch ------------------------------ */

static void close_step(void *arg);

/* The cut job is gone and the store has done what it was given: a new job
 * starts from what the flash holds (the firmware, the journal). */
static void cut_flushed(void *arg)
{
    struct modem *m = arg;
    char fw[sizeof(m->firmware)];
    if (store_get(m->store, "firmware", fw, sizeof(fw)) == 0)
        snprintf(m->firmware, sizeof(m->firmware), "%s", fw);
    int r = job_new(m);
    m->cutting = false;
    if (r) {
        modem_log(m, 0, "cannot make the DFOTA job again: %s", strerror(-r));
        return;
    }
    if (m->power_wanted) {
        m->power_wanted = false;
        set_dfota_line(m, false);
        power_on(m);
    }
}

static void cut_job_closed(void *arg)
{
    struct modem *m = arg;
    if (m->closing) { /* modem_close() came meanwhile */
        m->cutting = false;
        close_step(m);
        return;
    }
    if (store_flush(m->store, cut_flushed, m) != 0)
        cut_flushed(m);
}

int modem_power_cut(struct modem *m)
{
    if (m->closing)
        return -ESHUTDOWN;
    if (m->cutting || m->power == PWR_OFF || m->power == PWR_DOWN) {
        m->power_wanted = false;
        return -EALREADY;
    }
    dclock_timer_stop(&m->action_timer);
    dclock_timer_stop(&m->drain_timer);
    held_drop(m);
    enter_power(m, PWR_OFF, "power cut"); /* uploads and the download cut, input off */
    m->power_epoch++;                      /* no answer on its way is given */
    for (unsigned i = 0; i < m->nchan; i++)
        if (m->chan[i].port)
            port_drop_output(m->chan[i].port); /* the UART's FIFO is RAM too */
    /* the job stops where it is: what its worker writes finishes, as the
     * flash finishes a page; the journal says where it was */
    struct fota *f = m->fota;
    m->fota = NULL;
    m->cutting = true;
    m->switched_off = true; /* a host opening the port does not power it on */
    fota_close(f, cut_job_closed, m);
    return 0;
}

int modem_power_on_now(struct modem *m)
{
    if (m->closing)
        return -ESHUTDOWN;
    if (m->cutting) {
        m->switched_off = false;
        m->power_wanted = true; /* once the job is down */
        return 0;
    }
    if (m->power != PWR_OFF && m->power != PWR_DOWN)
        return -EALREADY;
    m->switched_off = false;
    set_dfota_line(m, false); /* the USB port of a module cut in DFOTA mode */
    power_on(m);
    return 0;
}

int modem_reset_now(struct modem *m)
{
    if (m->closing)
        return -ESHUTDOWN;
    if (m->cutting || m->power == PWR_OFF || m->power == PWR_DOWN)
        return -EAGAIN;
    if (m->power == PWR_DFOTA) {
        /* the reset pin in DFOTA mode: RAM is gone, the journal resumes */
        modem_power_cut(m);
        return modem_power_on_now(m);
    }
    modem_reset(m);
    return 0;
}

/* ---- answers that wait for the store ------------------------------- */

/* A final result that comes once the store has done its work: the port it
 * goes to, the power-up it was asked in and how an errno maps to it. */
struct modem_pending {
    struct modem_chan *c;
    unsigned epoch;
    int (*map)(int err);
};

/* The final result of a store operation that ended with @p err. */
static int pending_result(int (*map)(int err), int err)
{
    return err == 0 ? AT_OK : map ? map(err) : AT_ERROR;
}

bool modem_answer_valid(const struct modem *m, unsigned epoch)
{
    return !m->closing && epoch == m->power_epoch;
}

static void pending_done(void *ud, int result)
{
    struct modem_pending *p = ud;
    struct modem *m = p->c->m;
    if (result)
        modem_log(m, 0, "%s: a write to the state dir failed: %s", p->c->name, strerror(-result));
    /* a reset or a close since: nobody waits for this answer any more */
    if (modem_answer_valid(m, p->epoch))
        at_engine_finish(p->c->at, pending_result(p->map, result));
    free(p);
}

int modem_answer_later(struct modem_chan *c, int (*map)(int err),
                       int (*start)(struct modem_chan *c, const void *arg, store_cb cb, void *ud),
                       const void *arg)
{
    struct modem_pending *p = malloc(sizeof(*p));
    if (!p)
        return AT_ERROR;
    *p = (struct modem_pending){c, c->m->power_epoch, map};
    int r = start(c, arg, pending_done, p);
    if (r == 0)
        return AT_PENDING;
    free(p);
    return pending_result(map, r);
}

/* ---- lifecycle ------------------------------------------------------- */

/* Powers on now unless the module waits for a host to open the port. */
static void power_on_when_wanted(struct modem *m)
{
    if (!m->cfg.wait_open || port_host_open(m->chan[0].port))
        power_on(m);
}

static void preloaded(void *ud, int result, uint64_t size)
{
    struct modem *m = ud;
    if (result)
        modem_log(m, 0, "cannot preload %s: %s", m->cfg.preload_package,
                  fota_err_text(result) ? fota_err_text(result) : "error");
    else
        modem_log(m, 1, "preloaded %llu bytes into the package slot", (unsigned long long)size);
    m->preloading = false;
    if (m->power == PWR_OFF)
        power_on_when_wanted(m);
}

/* --preload-package: the file goes into the slot through the DFOTA job, as
 * a package that arrives but triggers nothing; the module powers on once it
 * is stored. */
static int preload(struct modem *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    int r = store_read_all(path, &buf, &len);
    if (r)
        return r;
    struct fota_src *src;
    r = fota_src_begin(m->fota, FOTA_SRC_COM, len, &src); /* checks the size first */
    if (r) {
        free(buf);
        return r == FOTA_CME_PARAM ? -EFBIG : -EIO;
    }
    r = fota_src_write(src, buf, len); /* only copies: cannot fail but for memory */
    free(buf);
    if (r) {
        fota_src_end(src, FOTA_SRC_CUT, NULL, NULL);
        return -ENOMEM;
    }
    m->preloading = true;
    fota_src_end(src, FOTA_SRC_STOPPED, preloaded, m); /* never a trigger */
    return 0;
}

static void modem_free(struct modem *m)
{
    for (unsigned i = 0; i < m->nchan; i++)
        at_engine_free(m->chan[i].at);
    if (m->store)
        store_close(m->store);
    if (m->trace)
        fclose(m->trace);
    free(m);
}

int modem_new(uv_loop_t *loop, const struct modem_cfg *cfg, const struct modem_events *ev,
              void *ud, struct modem **out)
{
    *out = NULL;
    struct modem *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->loop = loop;
    m->cfg = *cfg;
    if (ev)
        m->ev = *ev;
    m->ud = ud;
    m->name = cfg->name ? cfg->name : cfg->uart_path ? cfg->uart_path : DEFAULT_UART;
    const char *model = cfg->model ? cfg->model : DEFAULT_MODEL;
    const char *profile = cfg->profile ? cfg->profile : DEFAULT_PROFILE;
    m->model = modem_model_find(model);
    m->timing = modem_timing_find(profile);
    /* for log lines before the model is known */
    static const struct modem_model unknown = {"?", "", 0};
    if (!m->model) {
        m->model = &unknown;
        modem_log(m, 0, "unknown model \"%s\"", model);
        free(m);
        return -EINVAL;
    }
    if (!m->timing) {
        modem_log(m, 0, "unknown timing profile \"%s\"", profile);
        free(m);
        return -EINVAL;
    }
    int r;
    if (cfg->clock) {
        m->clk = cfg->clock;
    } else {
        m->clk = dclock_new_real(loop, cfg->time_scale > 0 ? cfg->time_scale : 1.0);
        if (!m->clk) {
            free(m);
            return -EINVAL;
        }
        m->own_clock = true;
    }
    dclock_timer_init(m->clk, &m->power_timer, on_power_timer, m);
    dclock_timer_init(m->clk, &m->action_timer, on_action, m);
    dclock_timer_init(m->clk, &m->drain_timer, on_drain, m);
    dclock_timer_init(m->clk, &m->urc_timer, on_urc_timer, m);
    m->stage_pct = -1;

    const char *dir = cfg->state_dir ? cfg->state_dir : DEFAULT_STATE_DIR;
    r = store_open_cfg(dir, &(struct store_cfg){.loop = loop}, &m->store);
    if (r) {
        modem_log(m, 0, "cannot open the state dir %s: %s", dir, strerror(-r));
        goto fail;
    }
    r = load_identity(m);
    if (r) {
        modem_log(m, 0, "cannot keep the identity in %s: %s", dir, strerror(-r));
        goto fail;
    }
    r = job_new(m);
    if (!r)
        r = fota_ensure_image(m->fota);
    if (r) {
        modem_log(m, 0, "cannot make the firmware image of %s: %s", m->firmware, strerror(-r));
        goto fail;
    }
    modem_net_init(m);
    if (cfg->trace_path) {
        m->trace = fopen(cfg->trace_path, "ae");
        if (!m->trace) {
            r = -errno;
            modem_log(m, 0, "cannot open the trace %s: %s", cfg->trace_path, strerror(errno));
            goto fail;
        }
        m->trace_t0 = dclock_now_us(m->clk);
    }
    r = chan_open(m, "UART", cfg->uart, cfg->uart_path ? cfg->uart_path : DEFAULT_UART);
    if (!r && cfg->usb_path)
        r = chan_open(m, "USB", NULL, cfg->usb_path);
    if (r)
        goto fail;
    /* last, so that no failure below leaves its slot writes behind */
    if (cfg->preload_package) {
        r = preload(m, cfg->preload_package);
        if (r) {
            modem_log(m, 0, "cannot preload %s: %s", cfg->preload_package, strerror(-r));
            goto fail;
        }
    }
    m->power = PWR_OFF;
    set_input(m, AT_INPUT_OFF);
    if (m->ev.on_ready)
        m->ev.on_ready(m->ud, m->model->name, m->firmware, port_name(m->chan[0].port));
    if (!m->preloading)
        power_on_when_wanted(m);
    *out = m;
    return 0;

fail:
    dclock_timer_stop(&m->urc_timer);
    dclock_timer_stop(&m->power_timer);
    dclock_timer_stop(&m->action_timer);
    dclock_timer_stop(&m->drain_timer);
    for (unsigned i = 0; i < m->nchan; i++)
        chan_port_close(&m->chan[i], NULL, NULL);
    fota_close(m->fota, NULL, NULL); /* nothing of it runs yet */
    if (m->own_clock)
        dclock_close(m->clk, NULL, NULL);
    modem_free(m);
    return r;
}

static void store_flushed(void *arg)
{
    struct modem *m = arg;
    /* work that completions queued behind the flush (a package's fsync
     * after its last write) is waited for too */
    if (store_busy(m->store) && store_flush(m->store, store_flushed, m) == 0)
        return;
    void (*cb)(void *) = m->close_cb;
    void *cb_arg = m->close_arg;
    modem_free(m);
    if (cb)
        cb(cb_arg);
}

static void close_step(void *arg)
{
    struct modem *m = arg;
    if (--m->closing)
        return;
    /* the store's work queue last: the job's, the answers' and the fsyncs
     * that follow a write are on the disk when the modem says closed */
    m->closing = 1; /* what is still queued must not answer any more */
    if (store_flush(m->store, store_flushed, m) != 0)
        store_flushed(m);
}

void modem_close(struct modem *m, void (*cb)(void *arg), void *arg)
{
    m->close_cb = cb;
    m->close_arg = arg;
    dclock_timer_stop(&m->power_timer);
    dclock_timer_stop(&m->action_timer);
    dclock_timer_stop(&m->drain_timer);
    held_drop(m);
    set_input(m, AT_INPUT_OFF);
    /* held until every close below is started */
    m->closing = 1;
    if (m->cutting)
        m->closing++; /* the cut's job close ends in close_step() */
    for (unsigned i = 0; i < m->nchan; i++) {
        modem_upload_abort(&m->chan[i]);
        m->closing++;
        chan_port_close(&m->chan[i], close_step, m);
    }
    m->closing++;
    modem_dl_abort(m, close_step, m); /* before the job: it ends the job's source */
    struct fota *f = m->fota;
    m->fota = NULL;
    m->closing++;
    fota_close(f, close_step, m); /* its work on the store finishes first */
    if (m->own_clock) {
        m->closing++;
        dclock_close(m->clk, close_step, m);
    }
    close_step(m);
}
