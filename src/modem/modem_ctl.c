/* modem_ctl.c - what the control socket (src/ctl) reads and does to one
 * module: status, the network model's knobs, the host's DTR and RTS lines,
 * the observer of its events and its fault seams (include/dfota/modem.h,
 * "control"). Nothing of the module's own features calls these. */
#include <errno.h>
#include <string.h>

#include "modem_int.h"

/* Registration <stat> names (3GPP TS 27.007 +CEREG), X(stat, name). */
#define MODEM_REG_MAP(X)                                                                           \
    X(0, "not-registered")                                                                         \
    X(1, "registered")                                                                             \
    X(2, "searching")                                                                              \
    X(3, "denied")                                                                                 \
    X(4, "unknown")                                                                                \
    X(5, "roaming")

static const char *reg_name(int stat)
{
    switch (stat) {
#define X(n, name)                                                                                 \
    case n:                                                                                        \
        return name;
        MODEM_REG_MAP(X)
#undef X
    }
    return "unknown";
}

int modem_reg_stat(const char *name)
{
#define X(n, nm)                                                                                   \
    if (strcmp(name, nm) == 0)                                                                     \
        return n;
    MODEM_REG_MAP(X)
#undef X
    return -1;
}

void modem_notify(struct modem *m, const struct modem_event *ev)
{
    if (m->obs && m->obs->on_event)
        m->obs->on_event(m->obs_ud, ev);
}

void modem_set_observer(struct modem *m, const struct modem_observer *o, void *ud)
{
    m->obs = o;
    m->obs_ud = ud;
}

void modem_set_faults(struct modem *m, const struct modem_fault_ops *ops, void *ud)
{
    m->faults = ops;
    m->faults_ud = ud;
}

const struct modem_timing *modem_timing_of(const struct modem *m)
{
    return m->timing;
}

struct dclock *modem_clock(const struct modem *m)
{
    return m->clk;
}

int modem_image_open(struct modem *m, int *fd, uint64_t *size)
{
    return store_fw_open(m->store, fd, size);
}

void modem_get_status(struct modem *m, struct modem_status *out)
{
    static const char *const power[] = {
        [PWR_OFF] = "off",       [PWR_BOOTING] = "booting",     [PWR_APP_BOOT] = "app-booting",
        [PWR_NORMAL] = "normal", [PWR_RESETTING] = "resetting", [PWR_STOPPING] = "stopping",
        [PWR_DFOTA] = "dfota",   [PWR_DOWN] = "down",
    };
    *out = (struct modem_status){
        .power = power[m->power],
        .model = m->model->name,
        .firmware = m->firmware,
        .job = "idle",
        .percent = -1,
        .slot_capacity = (uint64_t)m->model->slot_kb * 1024,
        .ipr = m->ipr,
        .dtr_mode = m->dtr_mode,
        .dtr = !m->dtr_off,
        .rts = !m->rts_off,
        .trigger_mode = 1,
    };
    if (m->fota) {
        struct fota_status fs;
        fota_get_status(m->fota, &fs);
        out->job = fs.state;
        out->job_kind = fs.kind;
        out->bytes = fs.bytes;
        out->firmware = fota_firmware(m->fota);
        out->slot_size = fota_slot_size(m->fota);
        out->trigger_mode = fota_trigger_mode(m->fota);
        if (fs.kind) {
            out->stage = m->stage[0] ? m->stage : NULL;
            out->percent = m->stage_pct;
        }
    } else {
        out->job = "off";
    }
    uint64_t got, size;
    if (modem_dl_progress(m, &got, &size)) {
        out->bytes = got;
        out->total = size;
    }
    modem_fota_apn_format(&m->fota_apn, out->fota_apn, sizeof(out->fota_apn));
    for (unsigned i = 0; i < m->nchan; i++)
        if (at_engine_in_data(m->chan[i].at))
            out->data_mode = true;
}

void modem_get_net(struct modem *m, struct modem_net_status *out)
{
    *out = (struct modem_net_status){
        .stat = m->net.cereg,
        .reg = reg_name(m->net.cereg),
        .rssi = m->net.rssi,
        .ber = m->net.ber,
        .act = m->net.act,
        .apns = m->net.apns,
        .link_rate = m->net.link_rate,
        .latency_ms = m->net.latency_ms,
        .attached = modem_net_attached(m),
        .cfun = m->cfun,
    };
    snprintf(out->oper, sizeof(out->oper), "%s", m->net.oper);
}

int modem_net_change(struct modem *m, const struct modem_net_change *c)
{
    if (c->stat != -1 && (c->stat < 0 || c->stat > 5))
        return -EINVAL;
    if (c->rssi != -1 && (c->rssi < 0 || (c->rssi > 31 && c->rssi != 99)))
        return -EINVAL;
    if (c->oper && strlen(c->oper) >= sizeof(m->net.oper))
        return -EINVAL;
    if (c->link_rate < -1 || c->link_rate > UINT32_MAX || c->latency_ms < -1 ||
        c->latency_ms > 600000)
        return -EINVAL;
    if (c->rssi != -1)
        m->net.rssi = c->rssi;
    if (c->oper)
        snprintf(m->net.oper, sizeof(m->net.oper), "%s", c->oper);
    if (c->link_rate != -1)
        m->net.link_rate = (uint32_t)c->link_rate;
    if (c->latency_ms != -1)
        m->net.latency_ms = (uint32_t)c->latency_ms;
    if (c->stat != -1) {
        /* one network: CS, EPS and GPRS registration change together; the
         * module tells a host that asked with AT+CREG=1 / +CEREG=1 /
         * +CGREG=1 (the <stat> form) */
        static const char *const names[] = {"+CREG", "+CEREG", "+CGREG"};
        int *stat[] = {&m->net.creg, &m->net.cereg, &m->net.cgreg};
        bool on = m->cfun == 1 && (m->power == PWR_NORMAL);
        for (int k = 0; k < 3; k++) {
            bool changed = *stat[k] != c->stat;
            *stat[k] = c->stat;
            if (changed && on && m->reg_urc[k] >= 1)
                modem_urc(m, "%s: %d", names[k], c->stat);
        }
    }
    return 0;
}

void modem_set_dtr(struct modem *m, bool on)
{
    m->dtr_off = !on;
    if (m->chan[0].port)
        port_inject_dtr(m->chan[0].port, on); /* the port's DTR event: AT&D's rules */
}

void modem_set_rts(struct modem *m, bool on)
{
    m->rts_off = !on;
    if (m->chan[0].port)
        port_hold_output(m->chan[0].port, !on);
}
