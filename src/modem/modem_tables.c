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
 * UART paced at the AT+IPR rate. */
static const struct modem_timing timings[] = {
    {"fast", 30, 15, 5, 5, 40, 20, 20, 0, false},
    {"standard", 1500, 500, 100, 20, 1000, 300, 500, 2000, false},
    {"realistic", 4500, 1200, 300, 20, 3000, 1000, 2000, 60000, true},
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

void modem_net_default(struct modem_net *n)
{
    /* the network of the application note's 2.3 example */
    *n = (struct modem_net){
        .rssi = 26, .ber = 99, .creg = 1, .cereg = 1, .cgreg = 4,
        .cops_mode = 0, .cops_format = 0, .act = 8,
    };
    strcpy(n->oper, "Telstra Mobile Telstra");
}
