/* modem_tables.c - the models and timing profiles, each written once. */
#include <string.h>
#include <strings.h>

#include "modem_int.h"

static const struct modem_model models[] = {
#define X(id, name, fw, kb) {name, fw, kb},
    MODEM_MODEL_MAP(X)
#undef X
};

const struct modem_model *modem_model_find(const char *name)
{
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        if (strcasecmp(models[i].name, name) == 0)
            return &models[i];
    return NULL;
}

const struct modem_model *modem_model_at(unsigned i)
{
    return i < sizeof(models) / sizeof(models[0]) ? &models[i] : NULL;
}

/* fast: CI, everything in tens of milliseconds; standard: seconds;
 * realistic: what a BG95 takes (boot ~5 s, a DFOTA update minutes), its
 * UART paced at the AT+IPR rate.
 *
 * The data link: fast and standard put no limit on it (tests and demos want
 * the bytes through). realistic is an LTE-M (Cat-M1) link: the BG95's
 * downlink peak is 588 kbit/s (375 kbit/s in half-duplex FDD), and a
 * device in the field sees less (radio conditions, scheduling, TCP/TLS
 * overhead), so 300000 bit/s = 37500 bytes/s of payload, with 100 ms of
 * latency each way (LTE-M's typical round trip is 100-200 ms plus the
 * server's). The download timers: fast fails quickly so that tests of a
 * dead server end in a second or two; standard and realistic give a slow
 * network the time a real module gives it. */
static const struct modem_timing timings[] = {
    {
        .name = "fast",
        .boot_rdy = 30,
        .boot_app_rdy = 15,
        .boot_urc_gap = 5,
        .urc_gap = 5,
        .reset = 40,
        .power_down = 20,
        .fota_stage = 20,
        .update_ms_per_mb = 0,
        .pace_uart = false,
        .link_rate_bps = 0,
        .link_latency_ms = 0,
        .dl_connect_timeout = 2000,
        .dl_stall_timeout = 1000,
        .dl_progress_ms = 0,
    },
    {
        .name = "standard",
        .boot_rdy = 1500,
        .boot_app_rdy = 500,
        .boot_urc_gap = 100,
        .urc_gap = 20,
        .reset = 1000,
        .power_down = 300,
        .fota_stage = 500,
        .update_ms_per_mb = 2000,
        .pace_uart = false,
        .link_rate_bps = 0,
        .link_latency_ms = 0,
        .dl_connect_timeout = 20000,
        .dl_stall_timeout = 30000,
        .dl_progress_ms = 200,
    },
    {
        .name = "realistic",
        .boot_rdy = 4500,
        .boot_app_rdy = 1200,
        .boot_urc_gap = 300,
        .urc_gap = 20,
        .reset = 3000,
        .power_down = 1000,
        .fota_stage = 2000,
        .update_ms_per_mb = 60000,
        .pace_uart = true,
        .link_rate_bps = 300000 / 8,
        .link_latency_ms = 100,
        .dl_connect_timeout = 60000,
        .dl_stall_timeout = 60000,
        .dl_progress_ms = 1000,
    },
};

const struct modem_timing *modem_timing_find(const char *name)
{
    for (size_t i = 0; i < sizeof(timings) / sizeof(timings[0]); i++)
        if (strcasecmp(timings[i].name, name) == 0)
            return &timings[i];
    return NULL;
}

/* AT+IPR rates of the BG95/BG77/BG600L AT manual; the DFOTA application
 * note (2.2.3.1 note 1) lists the subset that also carries DFOTA URCs. */
#define MODEM_IPR_MAP(X)                                                                           \
    X(4800, 1) X(9600, 1) X(19200, 1) X(38400, 1) X(57600, 0) X(115200, 1) X(230400, 1)            \
    X(460800, 1) X(921600, 1) X(2900000, 0) X(3000000, 0) X(3200000, 0) X(3686400, 0)             \
    X(4000000, 0)

bool modem_ipr_valid(uint32_t rate)
{
#define X(r, urc) if (rate == r) return true;
    MODEM_IPR_MAP(X)
#undef X
    return false;
}

bool modem_ipr_urc_rate(uint32_t rate)
{
#define X(r, urc) if (rate == r) return urc;
    MODEM_IPR_MAP(X)
#undef X
    return false;
}

const char *modem_ipr_list(void)
{
#define X(r, urc) "," #r
    static const char list[] = MODEM_IPR_MAP(X);
#undef X
    return list + 1;
}
