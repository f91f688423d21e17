/* modem_net.c - the network model: registration, signal and operator (the
 * application note's 2.3 network), the APNs the network accepts
 * (--network-apns), the data link of the timing profile, PS attach, and the
 * module's saved data settings that use it: AT+QCFGEXT="fota_apn" and the
 * PDP contexts of AT+CGDCONT / AT+QICSGP (modem_int.h).
 *
 * Saved settings, one store key each, written whole:
 *   "fota_apn"  <iptype>,"<apn>"[,"<username>","<password>"]: the very text
 *               AT+QCFGEXT="fota_apn" prints after its name, so the query
 *               prints what it always printed;
 *   "pdp<cid>"  <type>,<auth>,<d_comp>,<h_comp>,"<apn>","<username>","<password>"
 *               (<type> the AT+CGDCONT name), or "-" for a context the host
 *               undefined (AT+CGDCONT=<cid>). No key: the factory default,
 *               context 1 "IP" with the network's default APN "", the rest
 *               undefined.
 * A quoted AT string cannot hold a '"' (at_engine.c), so the quotes delimit
 * the strings whatever they hold. A value that does not parse (an older
 * encoding, a hand edit) falls back to the default, logged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "modem_int.h"

#define FOTA_APN_KEY "fota_apn"
#define PDP_UNDEFINED "-"

static const struct {
    const char *name;
    int qi;
} pdp_types[] = {
#define X(id, name, qi) {name, qi},
    MODEM_PDP_TYPE_MAP(X)
#undef X
};

const char *modem_pdp_type_name(enum modem_pdp_type t)
{
    return pdp_types[t].name;
}

int modem_pdp_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof(pdp_types) / sizeof(pdp_types[0]); i++)
        if (strcasecmp(name, pdp_types[i].name) == 0)
            return (int)i;
    if (strcasecmp(name, "Non-IP") == 0) /* 3GPP TS 27.007's spelling */
        return MODEM_PDP_NONIP;
    return -1;
}

bool modem_arg_str(const struct at_args *a, unsigned i, char *out, size_t max)
{
    const char *s;
    if (!at_args_is_str(a, i) || at_args_str(a, i, &s) != 0 || strlen(s) > max)
        return false;
    memcpy(out, s, strlen(s) + 1);
    return true;
}

/* ---- the network ------------------------------------------------------ */

void modem_net_init(struct modem *m)
{
    /* the network of the application note's 2.3 example */
    m->net = (struct modem_net){
        .rssi = 26,
        .ber = 99,
        .creg = 1,
        .cereg = 1,
        .cgreg = 4,
        .cops_mode = 0,
        .cops_format = 0,
        .act = 8,
        .apns = m->cfg.network_apns,
        .link_rate = m->timing->link_rate_bps,
        .latency_ms = m->timing->link_latency_ms,
    };
    snprintf(m->net.oper, sizeof(m->net.oper), "%s", "Telstra Mobile Telstra");
}

static bool stat_registered(int stat)
{
    return stat == 1 || stat == 5; /* home, roaming */
}

bool modem_net_attached(const struct modem *m)
{
    return m->cfun == 1 && !m->net.detached &&
           (stat_registered(m->net.cereg) || stat_registered(m->net.cgreg));
}

/* Whether @p apn is one of the comma-separated @p list. */
static bool apn_listed(const char *list, const char *apn)
{
    size_t n = strlen(apn);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncasecmp(p, apn, n) == 0)
            return true;
        p += len + (end ? 1 : 0);
    }
    return false;
}

int modem_net_data_ok(const struct modem *m, const char *apn)
{
    if (!modem_net_attached(m))
        return -ENETUNREACH;
    if (apn[0] && m->net.apns && !apn_listed(m->net.apns, apn))
        return -EACCES;
    return 0;
}

const char *modem_download_apn(const struct modem *m, char *buf, size_t cap)
{
    const char *apn = m->fota_apn.apn;
    if (!apn[0])
        apn = m->pdp[1].defined ? m->pdp[1].apn : "";
    snprintf(buf, cap, "%s", apn);
    return buf;
}

void modem_net_radio_off(struct modem *m)
{
    for (int cid = 1; cid <= MODEM_PDP_MAX; cid++)
        m->pdp[cid].active = false;
    modem_dl_net_lost(m);
}

/* ---- encodings ---------------------------------------------------------- */

/* Reads a decimal integer at *p, then @p sep unless it is '\0'. */
static bool take_int(const char **p, int *v, char sep)
{
    char *end;
    long x = strtol(*p, &end, 10);
    if (end == *p || x < -1000 || x > 1000)
        return false;
    if (sep && *end++ != sep)
        return false;
    *p = end;
    *v = (int)x;
    return true;
}

/* Reads "<text>" at *p into @p out (at most @p max characters), then @p sep
 * unless it is '\0'. */
static bool take_str(const char **p, char *out, size_t max, char sep)
{
    const char *s = *p;
    if (*s++ != '"')
        return false;
    const char *close = strchr(s, '"');
    if (!close || (size_t)(close - s) > max)
        return false;
    memcpy(out, s, (size_t)(close - s));
    out[close - s] = '\0';
    s = close + 1;
    if (sep && *s++ != sep)
        return false;
    *p = s;
    return true;
}

const char *modem_fota_apn_format(const struct modem_fota_apn *f, char *buf, size_t cap)
{
    if (f->creds)
        snprintf(buf, cap, "%d,\"%s\",\"%s\",\"%s\"", f->iptype, f->apn, f->user, f->pass);
    else
        snprintf(buf, cap, "%d,\"%s\"", f->iptype, f->apn);
    return buf;
}

static bool fota_apn_parse(const char *v, struct modem_fota_apn *f)
{
    *f = (struct modem_fota_apn){0};
    if (!take_int(&v, &f->iptype, ',') || f->iptype < 0 || f->iptype > 2)
        return false;
    if (!take_str(&v, f->apn, MODEM_APN_MAX, '\0'))
        return false;
    if (!*v)
        return true;
    f->creds = true;
    return *v++ == ',' && take_str(&v, f->user, MODEM_APN_CRED_MAX, ',') &&
           take_str(&v, f->pass, MODEM_APN_CRED_MAX, '\0') && !*v;
}

int modem_fota_apn_save(struct modem *m, const struct modem_fota_apn *f, store_cb cb, void *ud)
{
    char v[16 + MODEM_APN_MAX + 2 * MODEM_APN_CRED_MAX];
    int r = store_set_async(m->store, FOTA_APN_KEY, modem_fota_apn_format(f, v, sizeof(v)), cb, ud);
    if (r == 0)
        m->fota_apn = *f; /* what the store holds now (a failed write retries with the next) */
    return r;
}

static void pdp_key(int cid, char *key, size_t cap)
{
    snprintf(key, cap, "pdp%d", cid);
}

static void pdp_default(int cid, struct modem_pdp *p)
{
    /* context 1 comes defined, "IP" on the network's default APN, as a
     * BG95 out of the box answers AT+CGDCONT? */
    *p = (struct modem_pdp){.defined = cid == 1, .type = MODEM_PDP_IP};
}

static bool pdp_parse(const char *v, struct modem_pdp *p)
{
    *p = (struct modem_pdp){0};
    if (strcmp(v, PDP_UNDEFINED) == 0)
        return true;
    const char *comma = strchr(v, ',');
    char name[16];
    if (!comma || (size_t)(comma - v) >= sizeof(name))
        return false;
    memcpy(name, v, (size_t)(comma - v));
    name[comma - v] = '\0';
    int t = modem_pdp_type_find(name);
    if (t < 0)
        return false;
    p->type = (enum modem_pdp_type)t;
    v = comma + 1;
    if (!take_int(&v, &p->auth, ',') || !take_int(&v, &p->d_comp, ',') ||
        !take_int(&v, &p->h_comp, ',') || !take_str(&v, p->apn, MODEM_APN_MAX, ',') ||
        !take_str(&v, p->user, MODEM_APN_CRED_MAX, ',') ||
        !take_str(&v, p->pass, MODEM_APN_CRED_MAX, '\0') || *v)
        return false;
    if (p->auth < 0 || p->auth > 3 || p->d_comp < 0 || p->d_comp > 2 || p->h_comp < 0 ||
        p->h_comp > 4)
        return false;
    p->defined = true;
    return true;
}

int modem_pdp_save(struct modem *m, int cid, store_cb cb, void *ud)
{
    const struct modem_pdp *p = &m->pdp[cid];
    char key[16], v[48 + MODEM_APN_MAX + 2 * MODEM_APN_CRED_MAX];
    pdp_key(cid, key, sizeof(key));
    if (p->defined)
        snprintf(v, sizeof(v), "%s,%d,%d,%d,\"%s\",\"%s\",\"%s\"", modem_pdp_type_name(p->type),
                 p->auth, p->d_comp, p->h_comp, p->apn, p->user, p->pass);
    else
        snprintf(v, sizeof(v), "%s", PDP_UNDEFINED);
    return store_set_async(m->store, key, v, cb, ud);
}

void modem_net_power_on(struct modem *m)
{
    char v[STORE_VAL_MAX + 1];
    m->net.detached = false;
    if (store_get(m->store, FOTA_APN_KEY, v, sizeof(v)) != 0 || !fota_apn_parse(v, &m->fota_apn)) {
        if (store_get(m->store, FOTA_APN_KEY, v, sizeof(v)) == 0)
            modem_log(m, 0, "stored fota_apn \"%s\" is not valid: no APN", v);
        m->fota_apn = (struct modem_fota_apn){0}; /* 0,"": IPv4, no APN */
    }
    for (int cid = 1; cid <= MODEM_PDP_MAX; cid++) {
        char key[16];
        pdp_key(cid, key, sizeof(key));
        struct modem_pdp *p = &m->pdp[cid];
        if (store_get(m->store, key, v, sizeof(v)) != 0) {
            pdp_default(cid, p);
        } else if (!pdp_parse(v, p)) {
            modem_log(m, 0, "stored PDP context %d \"%s\" is not valid: the default", cid, v);
            pdp_default(cid, p);
        }
    }
}

const char *modem_pdp_addr(const struct modem *m, int cid, enum modem_pdp_type t, char *buf,
                           size_t cap)
{
    /* FNV-1a of the IMSI: one SIM, the same address every time */
    uint32_t h = 2166136261u;
    for (const char *s = m->imsi; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    unsigned a = (h >> 8) & 0xff, b = h & 0xff;
    switch (t) {
    case MODEM_PDP_IP:
    case MODEM_PDP_IPV4V6: /* <IP_address> is one address: the IPv4 one */
    case MODEM_PDP_NONIP:
        snprintf(buf, cap, "10.%u.%u.%d", a, b, cid + 1);
        return buf;
    case MODEM_PDP_IPV6:
        snprintf(buf, cap, "2001:db8:%x:%x::%x", a, b, cid + 1); /* RFC 3849 prefix */
        return buf;
    }
    return buf;
}
