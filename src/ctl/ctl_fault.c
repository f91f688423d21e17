/* ctl_fault.c - the fault table of one modem (ctl_int.h): arm, list,
 * clear, the trigger logic, and the module's fault seams (modem.h struct
 * modem_fault_ops) answered from it. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"
#include "dfota/fota.h"
#include "dfota/net.h"

static const struct {
    const char *name;
    enum ctl_fault_arg arg;
    const char *help;
} faults[] = {
#define X(id, name, arg, help) {name, CTL_ARG_##arg, help},
    CTL_FAULT_MAP(X)
#undef X
};

const char *ctl_fault_name(enum ctl_fault_id id)
{
    return faults[id].name;
}

enum ctl_fault_arg ctl_fault_arg(enum ctl_fault_id id)
{
    return faults[id].arg;
}

const char *ctl_fault_help(enum ctl_fault_id id)
{
    return faults[id].help;
}

void ctl_faults_init(struct ctl_faults *t, const struct ctl_fault_actions *act, void *ud,
                     uint32_t stall_ms)
{
    *t = (struct ctl_faults){
        .rng = 0x9e3779b97f4a7c15ull, .stall_ms = stall_ms, .act = act, .ud = ud};
}

int ctl_fault_find(const char *spec)
{
    size_t n = strcspn(spec, "=");
    for (int i = 0; i < CTL_FAULT_COUNT; i++)
        if (strlen(faults[i].name) == n && strncmp(faults[i].name, spec, n) == 0)
            return i;
    return -1;
}

int ctl_fault_parse(const char *spec, enum ctl_fault_id *id, double *value, const char **err)
{
    const char *eq = strchr(spec, '=');
    int found = ctl_fault_find(spec);
    if (found < 0) {
        *err = "no such fault (fault list names them)";
        return -EINVAL;
    }
    enum ctl_fault_arg arg = faults[found].arg;
    *value = 0;
    if (arg == CTL_ARG_NONE) {
        if (eq) {
            *err = "this fault takes no value";
            return -EINVAL;
        }
        *id = (enum ctl_fault_id)found;
        return 0;
    }
    if (!eq || !eq[1]) {
        *err = "this fault wants a value: name=value";
        return -EINVAL;
    }
    char *end;
    double v = strtod(eq + 1, &end);
    if (arg == CTL_ARG_PCT && *end == '%')
        end++;
    static const double lo[] = {0, 100, 0, 1, 0}, hi[] = {0, 599, 100, 600000, 1};
    if (*end || !isfinite(v) || v < lo[arg] || v > hi[arg] ||
        (arg != CTL_ARG_RATIO && v != floor(v))) {
        static const char *const why[] = {
            "", "the value is an HTTP status, 100 to 599", "the value is a percent, 0 to 100",
            "the value is milliseconds, 1 to 600000", "the value is a share, 0 to 1"};
        *err = why[arg];
        return -EINVAL;
    }
    *id = (enum ctl_fault_id)found;
    *value = v;
    return 0;
}

void ctl_faults_arm(struct ctl_faults *t, enum ctl_fault_id id, double value, bool sticky)
{
    t->f[id] = (struct ctl_fault){.armed = true, .sticky = sticky, .value = value};
}

void ctl_faults_clear(struct ctl_faults *t, enum ctl_fault_id id)
{
    t->f[id].armed = false;
}

void ctl_faults_clear_all(struct ctl_faults *t)
{
    for (int i = 0; i < CTL_FAULT_COUNT; i++)
        t->f[i].armed = false;
}

static void fire(struct ctl_faults *t, enum ctl_fault_id id)
{
    struct ctl_fault *f = &t->f[id];
    f->fired++;
    if (!f->sticky)
        f->armed = false;
    if (t->act && t->act->fired)
        t->act->fired(t->ud, id, f->value);
}

bool ctl_faults_take(struct ctl_faults *t, enum ctl_fault_id id, double *value)
{
    if (!t->f[id].armed)
        return false;
    if (value)
        *value = t->f[id].value;
    fire(t, id);
    return true;
}

bool ctl_faults_take_at(struct ctl_faults *t, enum ctl_fault_id id, double pct)
{
    if (!t->f[id].armed || pct < t->f[id].value)
        return false;
    fire(t, id);
    return true;
}

/* ---- the seams ----------------------------------------------------------- */

/* The table-3 code of an HTTP status the server answers (as net.h's
 * on_end documents): 2xx is no fault, 404/410 706, the rest 703. */
static int status_code(int status)
{
    if (status >= 200 && status < 300)
        return 0;
    return status == 404 || status == 410 ? FOTA_DL_NOT_FOUND : FOTA_DL_REQUEST;
}

static int seam_dl_start(void *ud, const struct net_url *url)
{
    struct ctl_faults *t = ud;
    double v;
    if (ctl_faults_take(t, CTL_FAULT_NET_START, NULL))
        return FOTA_DL_UNKNOWN;
    if (ctl_faults_take(t, CTL_FAULT_DNS_FAIL, NULL) ||
        ctl_faults_take(t, CTL_FAULT_TCP_REFUSE, NULL))
        return FOTA_DL_CONNECT;
    if (url->scheme == NET_HTTPS && ctl_faults_take(t, CTL_FAULT_TLS_HANDSHAKE, NULL))
        return FOTA_DL_CONNECT;
    if (ctl_faults_take(t, CTL_FAULT_HTTP_STATUS, &v))
        return status_code((int)v);
    return 0;
}

static int seam_dl_data(void *ud, uint64_t got, uint64_t size, uint32_t *silence_ms)
{
    struct ctl_faults *t = ud;
    if (!size)
        return 0; /* no length, no percent */
    double pct = (double)got * 100.0 / (double)size;
    if (ctl_faults_take_at(t, CTL_FAULT_DL_DROP_AT, pct))
        return FOTA_DL_TIMEOUT; /* a body cut short */
    if (ctl_faults_take_at(t, CTL_FAULT_DL_STALL_AT, pct)) {
        *silence_ms = t->stall_ms ? t->stall_ms : 1;
        return FOTA_DL_TIMEOUT;
    }
    return 0;
}

static uint32_t seam_urc_delay(void *ud, const char *text)
{
    (void)text;
    double v;
    return ctl_faults_take(ud, CTL_FAULT_URC_DELAY, &v) ? (uint32_t)v : 0;
}

/* xorshift64: the same losses for the same writes, run after run. */
static double rnd(struct ctl_faults *t)
{
    uint64_t x = t->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t->rng = x;
    return (double)(x >> 11) / (double)(1ull << 53);
}

static size_t seam_uart_out(void *ud, const uint8_t *in, size_t len, uint8_t *out)
{
    struct ctl_faults *t = ud;
    double ratio;
    if (!ctl_faults_take(t, CTL_FAULT_UART_DROP, &ratio)) {
        memcpy(out, in, len);
        return len;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!(rnd(t) < ratio))
            out[n++] = in[i];
    return n;
}

static uint64_t seam_slot_room(void *ud, uint64_t capacity)
{
    return ctl_faults_take(ud, CTL_FAULT_SLOT_FULL, NULL) ? 0 : capacity;
}

/* package.corrupt flips the byte at this offset (past the package's magic,
 * so that it is still taken as one of ours and fails its own check). */
#define CORRUPT_AT 64

static int seam_slot_write(void *ud, uint64_t offset, size_t len, size_t *flip)
{
    struct ctl_faults *t = ud;
    if (ctl_faults_take(t, CTL_FAULT_SLOT_WRITE_FAIL, NULL))
        return -EIO;
    if (offset + len > CORRUPT_AT && t->f[CTL_FAULT_PACKAGE_CORRUPT].armed) {
        ctl_faults_take(t, CTL_FAULT_PACKAGE_CORRUPT, NULL);
        *flip = offset >= CORRUPT_AT ? 0 : (size_t)(CORRUPT_AT - offset);
    }
    return 0;
}

static int seam_update_start(void *ud)
{
    return ctl_faults_take(ud, CTL_FAULT_UPDATE_UNKNOWN, NULL) ? FOTA_UNKNOWN : 0;
}

static int seam_update_block(void *ud, uint32_t block, uint32_t count)
{
    struct ctl_faults *t = ud;
    double pct = count ? (double)block * 100.0 / (double)count : 0;
    if (ctl_faults_take_at(t, CTL_FAULT_UPDATE_FAIL_AT, pct))
        return -EIO;
    if (ctl_faults_take_at(t, CTL_FAULT_UPDATE_POWER_CUT_AT, pct) && t->act && t->act->power_cut)
        t->act->power_cut(t->ud);
    return 0;
}

const struct modem_fault_ops ctl_fault_ops = {
    .dl_start = seam_dl_start,
    .dl_data = seam_dl_data,
    .urc_delay = seam_urc_delay,
    .uart_out = seam_uart_out,
    .job = {seam_slot_room, seam_slot_write, seam_update_start, seam_update_block},
};
