/* cmd_pdp.c - PDP contexts and PS attach: AT+CGDCONT, AT+QICSGP, AT+QIACT,
 * AT+QIDEACT, AT+CGATT, AT+CGPADDR, backed by the network model
 * (modem_net.c): a context is activated only when modem_net_data_ok()
 * says the network takes a data call on its APN.
 *
 * Evidence for the syntax:
 * - AT+QICSGP, AT+QIACT, AT+QIDEACT: Quectel's BG95&BG77&BG600L Series
 *   TCP/IP Application Note V1.1 (2021-03-29, chapter 2.3: pages corpus,
 *   manualslib 2303532), syntax
 *   AT+QICSGP=<contextID>[,<context_type>,<APN>[,<username>,<password>[,<authentication>]]],
 *   +QICSGP: <context_type>,<APN>,<username>,<password>,<authentication>,
 *   +QIACT: <contextID>,<context_state>,<context_type>[,<IP_address>] per
 *   activated context, and "If there is any error: ERROR" for all three
 *   (the cause is for AT+QIGETERROR, not printed); <contextID> 1-16,
 *   <context_type> 1 IPv4, 2 IPv6, 3 IPv4v6, <authentication> 0 none,
 *   1 PAP, 2 CHAP, 3 PAP or CHAP. A BG95-M3 capture (1NCE's "BG95-M3
 *   Network Registration" guide, code corpus): AT+QICSGP=1,1,"iot.1nce.net",
 *   "","",0 -> OK; AT+QIACT? with none active -> just OK; AT+QIACT=1 -> OK;
 *   AT+QIACT? -> +QIACT: 1,1,1,"10.209.106.8". The query of a context never
 *   set prints +QICSGP: 0,"","","",0 (Quectel captures in the code corpus;
 *   the test form's line is theirs too).
 * - AT+CGDCONT, AT+CGATT, AT+CGPADDR: the BG95&BG77 AT Commands Manual V1.0
 *   (2019-08-31, pages corpus) follows 3GPP TS 27.007 10.1.1, 10.1.9 and
 *   10.1.14; errors are +CME ERROR codes (AT+CMEE). The read form's line
 *   <cid>,<PDP_type>,<APN>,<PDP_addr>,<d_comp>,<h_comp>,<IPv4AddrAlloc>,
 *   <request_type> with "0.0.0.0" for no static address is how Quectel's
 *   Qualcomm-based modules print it (captures in the code corpus); a BG95
 *   out of the box has context 1 defined as "IP" with an empty APN. The
 *   <cid> range of AT+CGDCONT, 1-15, is the manual's.
 * Not found in the corpus, decided here (say so if a capture disagrees):
 * AT+QIACT on an active context answers ERROR, AT+QIDEACT on an inactive
 * one OK; AT+CGATT=1 without a network answers +CME ERROR: 30; AT+CGPADDR
 * prints "0.0.0.0" (IPv4) for a defined context that is not active.
 *
 * What survives a reboot: the context definitions (AT+CGDCONT, AT+QICSGP)
 * are saved in NV on a real Quectel module (both write the same modem
 * profile, which the modem firmware keeps in its NV items), so they go
 * through the store, and OK comes once they are on the disk. Activation
 * and attach state are not: a power cycle (or AT+CFUN=0/4, AT+CGATT=0)
 * ends every PDN connection, and a module comes up with none active. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))
#define CGDCONT_CID_MAX 15
#define QI_CID_MAX MODEM_PDP_MAX

static const char *unset_addr(enum modem_pdp_type t)
{
    return t == MODEM_PDP_IPV6 || t == MODEM_PDP_IPV4V6 ? "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
                                                        : "0.0.0.0";
}

/* AT+QICSGP <context_type> of @p t (0 for Non-IP, which TCP/IP cannot use). */
static int qi_type(enum modem_pdp_type t)
{
    switch (t) {
#define X(id, name, qi)                                                                            \
    case MODEM_PDP_##id:                                                                           \
        return qi;
        MODEM_PDP_TYPE_MAP(X)
#undef X
    }
    return 0;
}

static int save_pdp(struct modem_chan *c, const void *arg, store_cb cb, void *ud)
{
    return modem_pdp_save(c->m, *(const int *)arg, cb, ud);
}

/* Makes @p next context @p cid's and saves it: the answer comes once it is
 * on the disk; nothing changes when the save cannot start. */
static int define_context(struct modem_chan *c, int cid, const struct modem_pdp *next)
{
    struct modem_pdp *p = &c->m->pdp[cid];
    struct modem_pdp old = *p;
    *p = *next;
    int r = modem_answer_later(c, NULL, save_pdp, &cid);
    if (r != AT_PENDING)
        *p = old;
    return r;
}

/* ---- AT+CGDCONT ------------------------------------------------------- */

static int h_cgdcont(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem_chan *c = CHAN(ud);
    struct modem *m = c->m;
    switch (form) {
    case AT_FORM_TEST:
        for (size_t t = 0; t <= MODEM_PDP_NONIP; t++)
            at_engine_reply(e, "+CGDCONT: (1-%d),\"%s\",,,(0-2),(0-4),(0),(0)", CGDCONT_CID_MAX,
                            modem_pdp_type_name((enum modem_pdp_type)t));
        return AT_OK;
    case AT_FORM_READ:
        for (int cid = 1; cid <= MODEM_PDP_MAX; cid++) {
            const struct modem_pdp *p = &m->pdp[cid];
            if (p->defined)
                at_engine_reply(e, "+CGDCONT: %d,\"%s\",\"%s\",\"%s\",%d,%d,0,0", cid,
                                modem_pdp_type_name(p->type), p->apn, unset_addr(p->type),
                                p->d_comp, p->h_comp);
        }
        return AT_OK;
    case AT_FORM_SET:
        break;
    case AT_FORM_EXEC:
        return AT_ERROR;
    }
    int64_t cid, d_comp = 0, h_comp = 0;
    const char *type, *apn = "";
    if (at_args_int(a, 0, &cid) != 0 || cid < 1 || cid > CGDCONT_CID_MAX)
        return AT_CME_INCORRECT_PARAMS;
    struct modem_pdp next = m->pdp[cid];
    if (next.active)
        return AT_CME_NOT_ALLOWED; /* a context in use is not redefined under it */
    if (at_args_count(a) == 1) {   /* AT+CGDCONT=<cid>: the context becomes undefined */
        next = (struct modem_pdp){0};
        return define_context(c, (int)cid, &next);
    }
    if (at_args_str(a, 1, &type) != 0 || modem_pdp_type_find(type) < 0)
        return AT_CME_INCORRECT_PARAMS;
    if (at_args_present(a, 2) && (at_args_str(a, 2, &apn) != 0 || strlen(apn) > MODEM_APN_MAX))
        return AT_CME_INCORRECT_PARAMS;
    /* <PDP_addr> (argument 3): a static address request, taken and not kept */
    if ((at_args_present(a, 4) && (at_args_int(a, 4, &d_comp) != 0 || d_comp < 0 || d_comp > 2)) ||
        (at_args_present(a, 5) && (at_args_int(a, 5, &h_comp) != 0 || h_comp < 0 || h_comp > 4)))
        return AT_CME_INCORRECT_PARAMS;
    if (!next.defined) /* credentials (AT+QICSGP) stay with a context redefined */
        next = (struct modem_pdp){0};
    next.defined = true;
    next.type = (enum modem_pdp_type)modem_pdp_type_find(type);
    memcpy(next.apn, apn, strlen(apn) + 1);
    next.d_comp = (int)d_comp;
    next.h_comp = (int)h_comp;
    return define_context(c, (int)cid, &next);
}

/* ---- AT+QICSGP ---------------------------------------------------------- */

static int h_qicsgp(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem_chan *c = CHAN(ud);
    struct modem *m = c->m;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+QICSGP: (1-%d),(1-3),<APN>,<username>,<password>,(0-3)", QI_CID_MAX);
        return AT_OK;
    }
    int64_t cid, type, auth = 0;
    unsigned n = at_args_count(a);
    if (at_args_int(a, 0, &cid) != 0 || cid < 1 || cid > QI_CID_MAX)
        return AT_ERROR;
    const struct modem_pdp *p = &m->pdp[cid];
    if (n == 1) {
        if (p->defined)
            at_engine_reply(e, "+QICSGP: %d,\"%s\",\"%s\",\"%s\",%d", qi_type(p->type), p->apn,
                            p->user, p->pass, p->auth);
        else
            at_engine_reply(e, "+QICSGP: 0,\"\",\"\",\"\",0");
        return AT_OK;
    }
    if (n != 3 && n != 5 && n != 6)
        return AT_ERROR;
    struct modem_pdp next = *p;
    if (at_args_int(a, 1, &type) != 0 || type < 1 || type > 3 ||
        !modem_arg_str(a, 2, next.apn, MODEM_APN_MAX))
        return AT_ERROR;
    next.user[0] = next.pass[0] = '\0';
    if (n >= 5 && (!modem_arg_str(a, 3, next.user, MODEM_APN_CRED_MAX) ||
                   !modem_arg_str(a, 4, next.pass, MODEM_APN_CRED_MAX)))
        return AT_ERROR;
    if (n == 6 && (at_args_int(a, 5, &auth) != 0 || auth < 0 || auth > 3))
        return AT_ERROR;
    if (p->active)
        return AT_ERROR;
    if (!p->defined)
        next.d_comp = next.h_comp = 0;
    next.defined = true;
    next.type = type == 1 ? MODEM_PDP_IP : type == 2 ? MODEM_PDP_IPV6 : MODEM_PDP_IPV4V6;
    next.auth = (int)auth;
    return define_context(c, (int)cid, &next);
}

/* ---- AT+QIACT, AT+QIDEACT ------------------------------------------------ */

static int h_qiact(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    char addr[64];
    switch (form) {
    case AT_FORM_TEST:
        at_engine_reply(e, "+QIACT: (1-%d)", QI_CID_MAX);
        return AT_OK;
    case AT_FORM_READ:
        for (int cid = 1; cid <= MODEM_PDP_MAX; cid++) {
            const struct modem_pdp *p = &m->pdp[cid];
            if (p->active)
                at_engine_reply(e, "+QIACT: %d,1,%d,\"%s\"", cid, qi_type(p->type),
                                modem_pdp_addr(m, cid, p->type, addr, sizeof(addr)));
        }
        return AT_OK;
    case AT_FORM_SET:
        break;
    case AT_FORM_EXEC:
        return AT_ERROR;
    }
    int64_t cid;
    if (at_args_int(a, 0, &cid) != 0 || cid < 1 || cid > QI_CID_MAX)
        return AT_ERROR;
    struct modem_pdp *p = &m->pdp[cid];
    if (!p->defined || p->active || qi_type(p->type) == 0)
        return AT_ERROR;
    int r = modem_net_data_ok(m, p->apn);
    if (r) {
        modem_log(m, 1, "AT+QIACT=%d: no PDN on APN \"%s\": %s", (int)cid, p->apn,
                  r == -EACCES ? "the network refuses the APN" : "no network");
        return at_result_errno(r, 0);
    }
    p->active = true;
    return AT_OK;
}

static int h_qideact(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+QIDEACT: (1-%d)", QI_CID_MAX);
        return AT_OK;
    }
    int64_t cid;
    if (at_args_int(a, 0, &cid) != 0 || cid < 1 || cid > QI_CID_MAX)
        return AT_ERROR;
    m->pdp[cid].active = false;
    return AT_OK;
}

/* ---- AT+CGATT -------------------------------------------------------------- */

static int h_cgatt(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    int64_t v;
    switch (form) {
    case AT_FORM_TEST:
        at_engine_reply(e, "+CGATT: (0,1)");
        return AT_OK;
    case AT_FORM_READ:
        at_engine_reply(e, "+CGATT: %d", modem_net_attached(m) ? 1 : 0);
        return AT_OK;
    case AT_FORM_SET:
        if (at_args_int(a, 0, &v) != 0 || v < 0 || v > 1)
            return AT_CME_INCORRECT_PARAMS;
        m->net.detached = v == 0;
        if (v == 0) {
            modem_net_radio_off(m); /* a detach ends every PDN connection */
            return AT_OK;
        }
        return modem_net_attached(m) ? AT_OK : AT_CME_NO_NETWORK;
    case AT_FORM_EXEC:
        break;
    }
    return AT_ERROR;
}

/* ---- AT+CGPADDR -------------------------------------------------------------- */

static void cgpaddr_line(struct at_engine *e, const struct modem *m, int cid)
{
    const struct modem_pdp *p = &m->pdp[cid];
    char addr[64];
    if (!p->defined)
        return;
    at_engine_reply(e, "+CGPADDR: %d,\"%s\"", cid,
                    p->active ? modem_pdp_addr(m, cid, p->type, addr, sizeof(addr))
                              : unset_addr(p->type));
}

static int h_cgpaddr(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    switch (form) {
    case AT_FORM_TEST: {
        char list[64] = "";
        size_t len = 0;
        for (int cid = 1; cid <= MODEM_PDP_MAX; cid++)
            if (m->pdp[cid].defined)
                len +=
                    (size_t)snprintf(list + len, sizeof(list) - len, "%s%d", len ? "," : "", cid);
        at_engine_reply(e, "+CGPADDR: (%s)", list);
        return AT_OK;
    }
    case AT_FORM_EXEC:
        for (int cid = 1; cid <= MODEM_PDP_MAX; cid++)
            cgpaddr_line(e, m, cid);
        return AT_OK;
    case AT_FORM_SET:
        break;
    case AT_FORM_READ:
        return AT_ERROR;
    }
    unsigned n = at_args_count(a);
    int64_t cid;
    for (unsigned i = 0; i < n; i++)
        if (at_args_int(a, i, &cid) != 0 || cid < 1 || cid > MODEM_PDP_MAX)
            return AT_CME_INCORRECT_PARAMS;
    for (unsigned i = 0; i < n; i++) {
        at_args_int(a, i, &cid);
        cgpaddr_line(e, m, (int)cid);
    }
    return AT_OK;
}

#define RTS (AT_FORM_READ | AT_FORM_TEST | AT_FORM_SET)
#define TS (AT_FORM_TEST | AT_FORM_SET)

const struct at_cmd modem_cmds_pdp[] = {
    {"+CGDCONT", RTS, 1, 6, "isssii", h_cgdcont, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+QICSGP", TS, 1, 6, "iisssi", h_qicsgp, 0, 0, 0},
    {"+QIACT", RTS, 1, 1, "i", h_qiact, 0, 0, 0},
    {"+QIDEACT", TS, 1, 1, "i", h_qideact, 0, 0, 0},
    {"+CGATT", RTS, 1, 1, "i", h_cgatt, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+CGPADDR", AT_FORM_EXEC | TS, 1, MODEM_PDP_MAX, "iiiiiiiiiiiiiiii", h_cgpaddr, 0,
     AT_CME_INCORRECT_PARAMS, 0},
};
const size_t modem_cmds_pdp_n = sizeof(modem_cmds_pdp) / sizeof(modem_cmds_pdp[0]);
