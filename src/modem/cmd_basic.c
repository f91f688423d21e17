/* cmd_basic.c - V.250 basic commands, identification, AT+IPR, AT+CMEE. */
#include <string.h>

#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))

/* The number of a basic command (ATE1, AT&D2): none means 0 (V.250);
 * false when it is beyond @p max. */
static bool basic_number(enum at_form form, const struct at_args *a, int64_t max, int64_t *v)
{
    *v = 0;
    if (form == AT_FORM_SET && at_args_int(a, 0, v) != 0)
        return false;
    return *v >= 0 && *v <= max;
}

/* ATE, ATV, ATQ: a flag 0/1. */
static int set_flag(enum at_form form, const struct at_args *a, bool *flag)
{
    int64_t v;
    if (!basic_number(form, a, 1, &v))
        return AT_ERROR;
    *flag = v == 1;
    return AT_OK;
}

static int h_echo(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return set_flag(form, a, &at_engine_settings(e)->echo);
}

static int h_verbose(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return set_flag(form, a, &at_engine_settings(e)->verbose);
}

static int h_quiet(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return set_flag(form, a, &at_engine_settings(e)->quiet);
}

/* AT+CGMR and ATI print the firmware up to its '_' (BG95M3LAR02A03 of
 * BG95M3LAR02A03_01.012.01.012); AT+QGMR prints all of it. */
static int revision_len(const char *firmware)
{
    return (int)strcspn(firmware, "_");
}

static int h_info(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    int64_t v;
    if (!basic_number(form, a, 0, &v))
        return AT_ERROR;
    at_engine_reply(e, "Quectel");
    at_engine_reply(e, "%s", m->model->name);
    at_engine_reply(e, "Revision: %.*s", revision_len(m->firmware), m->firmware);
    return AT_OK;
}

static int h_factory(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    int64_t v;
    if (!basic_number(form, a, 0, &v))
        return AT_ERROR;
    struct modem *m = CHAN(ud)->m;
    struct modem_profile p;
    modem_profile_factory(&p);
    p.ipr = m->ipr; /* AT&F leaves the line rate alone */
    modem_profile_apply(m, &p);
    return AT_OK;
}

static int save_profile(struct modem_chan *c, const void *arg, store_cb cb, void *ud)
{
    (void)arg;
    struct modem_profile p;
    modem_profile_capture(c, &p);
    return modem_profile_save(c->m, &p, cb, ud);
}

/* AT&W: OK once the profile is on the disk, written off the loop. */
static int h_save(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    int64_t v;
    if (!basic_number(form, a, 0, &v))
        return AT_ERROR;
    return modem_answer_later(CHAN(ud), NULL, save_profile, NULL);
}

static int h_restore(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    int64_t v;
    if (!basic_number(form, a, 0, &v))
        return AT_ERROR;
    struct modem *m = CHAN(ud)->m;
    struct modem_profile p;
    modem_profile_load(m, &p);
    modem_profile_apply(m, &p);
    return AT_OK;
}

static int h_dtr(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    int64_t v;
    if (!basic_number(form, a, 2, &v))
        return AT_ERROR;
    CHAN(ud)->m->dtr_mode = (int)v;
    return AT_OK;
}

/* ATS3, ATS4, ATS5: read as three digits, set 0..127. */
static int s_reg(struct at_engine *e, enum at_form form, const struct at_args *a, int *reg)
{
    if (form == AT_FORM_READ) {
        at_engine_reply(e, "%03d", *reg);
        return AT_OK;
    }
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "(0-127)");
        return AT_OK;
    }
    int64_t v;
    if (at_args_int(a, 0, &v) != 0 || v < 0 || v > 127)
        return AT_ERROR;
    *reg = (int)v;
    return AT_OK;
}

static int h_s3(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return s_reg(e, form, a, &at_engine_settings(e)->s3);
}

static int h_s4(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return s_reg(e, form, a, &at_engine_settings(e)->s4);
}

static int h_s5(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    return s_reg(e, form, a, &at_engine_settings(e)->s5);
}

static int h_cmee(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)ud;
    struct at_settings *s = at_engine_settings(e);
    int64_t v;
    switch (form) {
    case AT_FORM_READ:
        at_engine_reply(e, "+CMEE: %d", s->cmee);
        return AT_OK;
    case AT_FORM_TEST:
        at_engine_reply(e, "+CMEE: (0-2)");
        return AT_OK;
    case AT_FORM_SET:
        if (at_args_int(a, 0, &v) != 0 || v < 0 || v > 2)
            return AT_CME_INCORRECT_PARAMS;
        s->cmee = (int)v;
        return AT_OK;
    case AT_FORM_EXEC:
        break;
    }
    return AT_ERROR;
}

static int h_ipr(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    int64_t v;
    switch (form) {
    case AT_FORM_READ:
        at_engine_reply(e, "+IPR: %u", (unsigned)m->ipr);
        return AT_OK;
    case AT_FORM_TEST:
        at_engine_reply(e, "+IPR: (%s)", modem_ipr_list());
        return AT_OK;
    case AT_FORM_SET:
        if (at_args_int(a, 0, &v) != 0 || v <= 0 || v > UINT32_MAX || !modem_ipr_valid((uint32_t)v))
            return AT_CME_INCORRECT_PARAMS;
        /* at once; it survives a reset only once AT&W saved it. The OK goes
         * out at the old rate: the new one applies to what follows. */
        modem_set_ipr_after_reply(m, (uint32_t)v);
        return AT_OK;
    case AT_FORM_EXEC:
        break;
    }
    return AT_ERROR;
}

/* Identification: one line each, test form OK. */
static int ident(struct at_engine *e, enum at_form form, const char *text)
{
    if (form == AT_FORM_EXEC)
        at_engine_reply(e, "%s", text);
    return AT_OK;
}

static int h_cgmi(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    (void)ud;
    return ident(e, form, "Quectel");
}

static int h_cgmm(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    return ident(e, form, CHAN(ud)->m->model->name);
}

static int h_cgmr(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    const char *fw = CHAN(ud)->m->firmware;
    char rev[sizeof(CHAN(ud)->m->firmware)];
    snprintf(rev, sizeof(rev), "%.*s", revision_len(fw), fw);
    return ident(e, form, rev);
}

static int h_qgmr(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    return ident(e, form, CHAN(ud)->m->firmware);
}

static int h_cgsn(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    return ident(e, form, CHAN(ud)->m->imei);
}

static int h_cimi(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)a;
    struct modem *m = CHAN(ud)->m;
    if (form == AT_FORM_EXEC && m->cfun == 0)
        return AT_CME_SIM_FAILURE; /* the SIM is powered off in CFUN=0 */
    return ident(e, form, m->imsi);
}

#define BASIC_FLAG (AT_FORM_EXEC | AT_FORM_SET)
#define EXT_IDENT (AT_FORM_EXEC | AT_FORM_TEST)
#define S_REG (AT_FORM_READ | AT_FORM_SET | AT_FORM_TEST)

const struct at_cmd modem_cmds_basic[] = {
    {"E", BASIC_FLAG, 1, 1, "i", h_echo, 0, 0, 0},
    {"V", BASIC_FLAG, 1, 1, "i", h_verbose, 0, 0, 0},
    {"Q", BASIC_FLAG, 1, 1, "i", h_quiet, 0, 0, 0},
    {"I", BASIC_FLAG, 1, 1, "i", h_info, 0, 0, 0},
    {"Z", BASIC_FLAG, 1, 1, "i", h_restore, 0, 0, 0},
    {"&F", BASIC_FLAG, 1, 1, "i", h_factory, 0, 0, 0},
    {"&W", BASIC_FLAG, 1, 1, "i", h_save, 0, 0, 0},
    {"&D", BASIC_FLAG, 1, 1, "i", h_dtr, 0, 0, 0},
    {"S3", S_REG, 1, 1, "i", h_s3, 0, 0, 0},
    {"S4", S_REG, 1, 1, "i", h_s4, 0, 0, 0},
    {"S5", S_REG, 1, 1, "i", h_s5, 0, 0, 0},
    {"+CMEE", AT_FORM_READ | AT_FORM_TEST | AT_FORM_SET, 1, 1, "i", h_cmee, 0,
     AT_CME_INCORRECT_PARAMS, 0},
    {"+IPR", AT_FORM_READ | AT_FORM_TEST | AT_FORM_SET, 1, 1, "i", h_ipr, 0,
     AT_CME_INCORRECT_PARAMS, 0},
    {"+GMI", EXT_IDENT, 0, 0, "", h_cgmi, 0, 0, 0},
    {"+CGMI", EXT_IDENT, 0, 0, "", h_cgmi, 0, 0, 0},
    {"+GMM", EXT_IDENT, 0, 0, "", h_cgmm, 0, 0, 0},
    {"+CGMM", EXT_IDENT, 0, 0, "", h_cgmm, 0, 0, 0},
    {"+GMR", EXT_IDENT, 0, 0, "", h_cgmr, 0, 0, 0},
    {"+CGMR", EXT_IDENT, 0, 0, "", h_cgmr, 0, 0, 0},
    {"+QGMR", EXT_IDENT, 0, 0, "", h_qgmr, 0, 0, 0},
    {"+GSN", EXT_IDENT, 0, 0, "", h_cgsn, 0, 0, 0},
    {"+CGSN", EXT_IDENT, 0, 0, "", h_cgsn, 0, 0, 0},
    {"+CIMI", EXT_IDENT, 0, 0, "", h_cimi, 0, 0, 0},
};
const size_t modem_cmds_basic_n = sizeof(modem_cmds_basic) / sizeof(modem_cmds_basic[0]);
