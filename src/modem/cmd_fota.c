/* cmd_fota.c - the AT+QFOTADL family (app note 2.2.3) and
 * AT+QCFGEXT="fota_apn" (2.2.4). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dfota/net.h"
#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))
#define COM_TIMEOUT_DEFAULT_S 5

/* ---- AT+QFOTADL="COM:",<file_size>[,<timeout>] (2.2.3.3) -------------- */

/* The upload is a package source of the DFOTA job: the job owns the slot,
 * its capacity (590), busy (591) and the trigger. */

static int com_write(struct modem_upload *u, const uint8_t *buf, size_t len)
{
    int r = fota_src_write(u->w.src, buf, len);
    if (r)
        modem_log(u->chan->m, 0, "package upload: %s", fota_err_text(r));
    return r ? -EIO : 0;
}

/* The job has stored what arrived: the answer goes out now, the update (in
 * trigger mode 1, for a whole package) right after it. */
static void com_stored(void *ud, int result, uint64_t size)
{
    struct modem_upload *u = ud;
    if (result)
        modem_log(u->chan->m, 0, "package upload: %llu bytes kept: %s", (unsigned long long)size,
                  fota_err_text(result));
    modem_upload_done(u, result || u->how == UPLOAD_FAILED ? AT_ERROR : AT_OK);
}

/* What arrived stays in the slot however the upload ended (2.2.3.3 note
 * 2), and the answer waits until the job has it stored: a kill -9 after
 * "+QFOTADL: <size>,<sum>" keeps it. An upload that received nothing
 * reports "+QFOTADL: 0,0" (<upload_size> is what was uploaded) and leaves
 * the package already in the slot as it was: nothing was overwritten. */
static int com_end(struct modem_upload *u, enum modem_upload_end how, int err)
{
    (void)err; /* logged by com_write */
    struct fota_src *src = u->w.src;
    u->w.src = NULL;
    switch (how) {
    case UPLOAD_CUT:
        fota_src_end(src, FOTA_SRC_CUT, NULL, NULL);
        return AT_NONE;
    case UPLOAD_FULL:
        fota_src_end(src, FOTA_SRC_COMPLETE, com_stored, u);
        return AT_PENDING;
    case UPLOAD_ESCAPED:
    case UPLOAD_IDLE:
    case UPLOAD_FAILED:
        fota_src_end(src, FOTA_SRC_STOPPED, com_stored, u);
        return AT_PENDING;
    }
    return AT_ERROR;
}

static const struct modem_upload_sink com_sink = {"+QFOTADL", com_write, com_end};

static int com_upload(struct modem_chan *c, const struct at_args *a)
{
    struct modem *m = c->m;
    int64_t size, timeout = COM_TIMEOUT_DEFAULT_S;
    if (at_args_int(a, 1, &size) != 0 || size <= 0)
        return FOTA_CME_PARAM;
    if (at_args_present(a, 2) &&
        (at_args_int(a, 2, &timeout) != 0 || timeout <= 0 || timeout > 3600))
        return FOTA_CME_PARAM;
    int r = fota_src_begin(m->fota, FOTA_SRC_COM, (uint64_t)size, &c->upload.w.src);
    if (r == FOTA_CME_PARAM || r == FOTA_CME_BUSY)
        return r;
    if (r)
        return AT_ERROR;
    return modem_upload_start(c, &com_sink, (uint64_t)size, (uint32_t)timeout * 1000, false);
}

/* ---- AT+QFOTADL ---------------------------------------------------- */

static int delete_package(struct modem_chan *c, const void *arg, store_cb cb, void *ud)
{
    (void)arg;
    int r = fota_slot_delete(c->m->fota, cb, ud);
    return r ? -EBUSY : 0;
}

static int h_qfotadl(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem_chan *c = CHAN(ud);
    struct modem *m = c->m;
    if (form == AT_FORM_TEST)
        return AT_OK; /* a SET form while the job runs got 591 from the table's AT_F_JOB */
    const char *url;
    if (at_args_str(a, 0, &url) == 0) {
        if (strcasecmp(url, "COM:") == 0)
            return com_upload(c, a);
        enum net_scheme scheme;
        /* a URL's scheme and length are checked at command time (590);
         * what follows the scheme by the download, which ends with 705
         * when it does not parse ("http://" alone too) */
        if (at_args_count(a) != 1 || strlen(url) > NET_URL_MAX || net_url_scheme(url, &scheme) != 0)
            return FOTA_CME_PARAM;
        if (scheme == NET_COAP || scheme == NET_COAPS) {
            modem_log(m, 0, "AT+QFOTADL=<CoAP_URL>: CoAP(S) downloads are not built yet");
            return AT_CME_NOT_SUPPORTED;
        }
        return modem_dl_start(m, url);
    }
    int64_t op, arg = 0;
    if (at_args_int(a, 0, &op) != 0)
        return FOTA_CME_PARAM;
    bool has_arg = at_args_present(a, 1);
    /* "AT+QFOTADL=4," has an (empty) extra argument: invalid, not absent */
    if (at_args_count(a) > 2 || (at_args_count(a) == 2 && !has_arg) ||
        (has_arg && at_args_int(a, 1, &arg) != 0))
        return FOTA_CME_PARAM;
    switch (op) {
    case 1: /* start the update from the slot */
        if (has_arg)
            return FOTA_CME_PARAM;
        return fota_start_update(m->fota) ? FOTA_CME_BUSY : AT_OK;
    case 3: /* trigger mode */
        if (!has_arg) {
            at_engine_reply(e, "+QFOTADL: 3,%d", fota_trigger_mode(m->fota));
            return AT_OK;
        }
        if (arg != 0 && arg != 1)
            return FOTA_CME_PARAM;
        fota_set_trigger_mode(m->fota, (int)arg);
        return AT_OK;
    case 4: /* size of the package in the slot */
        if (has_arg)
            return FOTA_CME_PARAM;
        at_engine_reply(e, "+QFOTADL: 4,%llu", (unsigned long long)fota_slot_size(m->fota));
        return AT_OK;
    case 5: /* delete it, answered once the flash has it */
        if (has_arg)
            return FOTA_CME_PARAM;
        return modem_answer_later(c, NULL, delete_package, NULL);
    default: /* 2 is reserved */
        return FOTA_CME_PARAM;
    }
}

/* ---- AT+QCFGEXT="fota_apn"[,<iptype>,<apn>[,<username>,<password>]] ---- */

/* The answers, decided as the real module gives them. App note 2.2.4 gives
 * one error answer for the write command: "If there is any error: ERROR",
 * and no +CME code, so every bad form answers plain ERROR whatever AT+CMEE
 * says: a name other than "fota_apn", an <iptype> outside 0..2 or not an
 * integer, no <apn> ("fota_apn",0 / "fota_apn",0,), a <username> without
 * its <password> (4 arguments) or more than 5, a name or string not in
 * quotes, a string over its limit. No capture of those forms on a real
 * BG95 was found (the BG95&BG77 AT Commands Manual V1.0 and BG77xA-GL&
 * BG95xA-GL V1.1 in the pages corpus do not list QCFGEXT "fota_apn"), so
 * the note's response table is the evidence. The test form prints the one
 * line a real BG95 (firmware 01.011) prints for it, syntax and all (issue 9).
 * Limits: MODEM_APN_MAX, MODEM_APN_CRED_MAX (modem_int.h). An empty APN
 * ("") is a valid setting: the network's default APN. The setting is data
 * of the network model (struct modem_fota_apn, modem_net.c, loaded at
 * power-on; a download uses it through modem_download_apn()); it is saved
 * at once ("The configurations are saved automatically"), before OK;
 * before any set the query answers 0,"" (IPv4, no APN). */
#define FOTA_APN_TEST "+QCFGEXT: \"fota_apn\",<iptype>,<apn>[,<username>,<password>]"

static int save_setting(struct modem_chan *c, const void *arg, store_cb cb, void *ud)
{
    return modem_fota_apn_save(c->m, arg, cb, ud);
}

static int h_qcfgext(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    const char *name;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, FOTA_APN_TEST);
        return AT_OK;
    }
    if (at_args_str(a, 0, &name) != 0 || strcasecmp(name, "fota_apn") != 0)
        return AT_ERROR;
    unsigned n = at_args_count(a);
    char v[16 + MODEM_APN_MAX + 2 * MODEM_APN_CRED_MAX];
    if (n == 1) {
        at_engine_reply(e, "+QCFGEXT: \"fota_apn\",%s",
                        modem_fota_apn_format(&m->fota_apn, v, sizeof(v)));
        return AT_OK;
    }
    int64_t iptype;
    struct modem_fota_apn f = {.creds = n == 5};
    if (n != 3 && n != 5)
        return AT_ERROR;
    if (at_args_int(a, 1, &iptype) != 0 || iptype < 0 || iptype > 2)
        return AT_ERROR;
    f.iptype = (int)iptype;
    if (!modem_arg_str(a, 2, f.apn, MODEM_APN_MAX))
        return AT_ERROR;
    if (n == 5 && (!modem_arg_str(a, 3, f.user, MODEM_APN_CRED_MAX) ||
                   !modem_arg_str(a, 4, f.pass, MODEM_APN_CRED_MAX)))
        return AT_ERROR;
    return modem_answer_later(CHAN(ud), NULL, save_setting, &f); /* OK once on the disk */
}

const struct at_cmd modem_cmds_fota[] = {
    {"+QFOTADL", AT_FORM_TEST | AT_FORM_SET, 1, 3, "**i", h_qfotadl, AT_F_JOB, FOTA_CME_PARAM,
     FOTA_CME_BUSY},
    {"+QCFGEXT", AT_FORM_TEST | AT_FORM_SET, 1, 5, "sisss", h_qcfgext, 0, 0, 0},
};
const size_t modem_cmds_fota_n = sizeof(modem_cmds_fota) / sizeof(modem_cmds_fota[0]);
