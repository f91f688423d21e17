/* cmd_network.c - SIM, signal, registration, operator, functionality and
 * power commands. What they report comes from struct modem_net, the one
 * place the network state lives. */
#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))

/* With the radio off (CFUN 0 or 4) the module sees no network. */
static bool radio_on(const struct modem *m)
{
    return m->cfun == 1;
}

static int h_cpin(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    struct modem *m = CHAN(ud)->m;
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (m->cfun == 0)
        return AT_CME_SIM_FAILURE;
    at_engine_reply(e, "+CPIN: READY");
    return AT_OK;
}

static int h_csq(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    struct modem *m = CHAN(ud)->m;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+CSQ: (0-31,99),(0-7,99)");
        return AT_OK;
    }
    if (radio_on(m))
        at_engine_reply(e, "+CSQ: %d,%d", m->net.rssi, m->net.ber);
    else
        at_engine_reply(e, "+CSQ: 99,99");
    return AT_OK;
}

/* AT+CREG, AT+CEREG, AT+CGREG share one shape: <n> set and read back,
 * <stat> from the network state. */
enum reg_kind { REG_CREG, REG_CEREG, REG_CGREG };

static int reg_cmd(struct at_engine *e, enum at_form form, const struct at_args *a,
                   struct modem *m, enum reg_kind k)
{
    static const char *const names[] = {"+CREG", "+CEREG", "+CGREG"};
    static const int n_max[] = {2, 5, 2};
    int stat = k == REG_CREG ? m->net.creg : k == REG_CEREG ? m->net.cereg : m->net.cgreg;
    if (k != REG_CREG && m->net.detached)
        stat = 0; /* AT+CGATT=0: not registered for packet service, not searching */
    int64_t v;
    switch (form) {
    case AT_FORM_READ:
        at_engine_reply(e, "%s: %d,%d", names[k], m->reg_urc[k], radio_on(m) ? stat : 0);
        return AT_OK;
    case AT_FORM_TEST:
        at_engine_reply(e, "%s: (0-%d)", names[k], n_max[k]);
        return AT_OK;
    case AT_FORM_SET:
        if (at_args_int(a, 0, &v) != 0 || v < 0 || v > n_max[k])
            return AT_CME_INCORRECT_PARAMS;
        m->reg_urc[k] = (int)v;
        return AT_OK;
    case AT_FORM_EXEC:
        break;
    }
    return AT_ERROR;
}

static int h_creg(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    return reg_cmd(e, form, a, CHAN(ud)->m, REG_CREG);
}

static int h_cereg(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    return reg_cmd(e, form, a, CHAN(ud)->m, REG_CEREG);
}

static int h_cgreg(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    return reg_cmd(e, form, a, CHAN(ud)->m, REG_CGREG);
}

static int h_cops(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    struct modem *m = CHAN(ud)->m;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+COPS: (2,\"%s\",\"\",\"\",%d),,(0-4),(0-2)", m->net.oper, m->net.act);
        return AT_OK;
    }
    if (radio_on(m) && (m->net.creg == 1 || m->net.creg == 5))
        at_engine_reply(e, "+COPS: %d,%d,\"%s\",%d", m->net.cops_mode, m->net.cops_format,
                        m->net.oper, m->net.act);
    else
        at_engine_reply(e, "+COPS: %d", m->net.cops_mode);
    return AT_OK;
}

static int h_cfun(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    int64_t fun, rst = 0;
    switch (form) {
    case AT_FORM_READ:
        at_engine_reply(e, "+CFUN: %d", m->cfun);
        return AT_OK;
    case AT_FORM_TEST:
        at_engine_reply(e, "+CFUN: (0,1,4),(0,1)");
        return AT_OK;
    case AT_FORM_SET:
        if (at_args_int(a, 0, &fun) != 0 || (fun != 0 && fun != 1 && fun != 4))
            return AT_CME_INCORRECT_PARAMS;
        if (at_args_present(a, 1) && (at_args_int(a, 1, &rst) != 0 || rst < 0 || rst > 1))
            return AT_CME_INCORRECT_PARAMS;
        if (rst == 1) {
            /* reset: OK first, then the module reboots with its boot URCs */
            modem_reset(m);
            return AT_OK;
        }
        if (m->cfun == 0 && fun != 0)
            modem_urc(m, "+CPIN: READY"); /* the SIM comes back */
        m->cfun = (int)fun;
        if (fun != 1)
            modem_net_radio_off(m); /* no radio, no PDN connection */
        return AT_OK;
    case AT_FORM_EXEC:
        break;
    }
    return AT_ERROR;
}

static int h_qpowd(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    int64_t n = 1;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+QPOWD: (0,1)");
        return AT_OK;
    }
    if (form == AT_FORM_SET && (at_args_int(a, 0, &n) != 0 || n < 0 || n > 1))
        return AT_CME_INCORRECT_PARAMS;
    modem_power_down(m);
    return AT_OK;
}

#define READ_TEST (AT_FORM_READ | AT_FORM_TEST)
#define REG_FORMS (AT_FORM_READ | AT_FORM_TEST | AT_FORM_SET)

const struct at_cmd modem_cmds_network[] = {
    {"+CPIN", READ_TEST, 0, 0, "", h_cpin, 0, 0, 0},
    {"+CSQ", AT_FORM_EXEC | AT_FORM_TEST, 0, 0, "", h_csq, 0, 0, 0},
    {"+CREG", REG_FORMS, 1, 1, "i", h_creg, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+CEREG", REG_FORMS, 1, 1, "i", h_cereg, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+CGREG", REG_FORMS, 1, 1, "i", h_cgreg, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+COPS", READ_TEST, 0, 0, "", h_cops, 0, 0, 0},
    {"+CFUN", REG_FORMS, 1, 2, "ii", h_cfun, 0, AT_CME_INCORRECT_PARAMS, 0},
    {"+QPOWD", AT_FORM_EXEC | AT_FORM_TEST | AT_FORM_SET, 1, 1, "i", h_qpowd, AT_F_LAST,
     AT_CME_INCORRECT_PARAMS, 0},
};
const size_t modem_cmds_network_n = sizeof(modem_cmds_network) / sizeof(modem_cmds_network[0]);
