/* cmd_fota.c - the AT+QFOTADL family (app note 2.2.3) and
 * AT+QCFGEXT="fota_apn" (2.2.4). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))
#define URL_MAX 700 /* <HTTP_URL>/<CoAP_URL>: "The maximum length is 700 bytes" */
#define COM_TIMEOUT_DEFAULT_S 5

/* ---- AT+QFOTADL="COM:",<file_size>[,<timeout>] (2.2.3.3) -------------- */

static int com_write(struct modem_upload *u, const uint8_t *buf, size_t len)
{
    int r = store_slot_write(u->w.slot, buf, len);
    if (r)
        modem_log(u->chan->m, 0, "package upload: slot write failed: %s", strerror(-r));
    return r;
}

/* What arrived stays in the slot however the upload ended (2.2.3.3 note
 * 2); a slot that could not take it answers ERROR. The final result waits
 * for the package to be written, not for its fsync, which would hold the
 * loop and the host for a 7 MB file: a kill -9 after the OK keeps it all the
 * same (the page cache has it), and the fsync follows on a worker. */
static int com_end(struct modem_upload *u, enum modem_upload_end how, int err)
{
    (void)err; /* logged by com_write */
    int fd;
    int r = store_slot_finish_unsynced(u->w.slot, &fd);
    u->w.slot = NULL;
    if (r) {
        modem_log(u->chan->m, 0, "package upload: cannot keep the slot: %s", strerror(-r));
        return AT_ERROR;
    }
    modem_sync_later(u->chan->m, fd, "package upload");
    return how == UPLOAD_FAILED ? AT_ERROR : AT_OK;
}

/* only a whole package starts the update; a cut one waits in the slot */
static void com_after(struct modem_upload *u, enum modem_upload_end how)
{
    if (how == UPLOAD_FULL)
        fota_package_ready(u->chan->m->fota);
}

static const struct modem_upload_sink com_sink = {"+QFOTADL", com_write, com_end, com_after};

static int com_upload(struct modem_chan *c, const struct at_args *a)
{
    struct modem *m = c->m;
    int64_t size, timeout = COM_TIMEOUT_DEFAULT_S;
    uint64_t cap = (uint64_t)m->model->slot_kb * 1024;
    if (at_args_int(a, 1, &size) != 0 || size <= 0 || (uint64_t)size > cap)
        return FOTA_CME_PARAM;
    if (at_args_present(a, 2) &&
        (at_args_int(a, 2, &timeout) != 0 || timeout <= 0 || timeout > 3600))
        return FOTA_CME_PARAM;
    int r = store_slot_begin(m->store, cap, &c->upload.w.slot);
    if (r) {
        modem_log(m, 0, "package upload: cannot open the slot: %s", strerror(-r));
        return r == -EBUSY ? FOTA_CME_BUSY : AT_ERROR;
    }
    return modem_upload_start(c, &com_sink, (uint64_t)size, (uint32_t)timeout * 1000, false);
}

/* ---- AT+QFOTADL ---------------------------------------------------- */

/* A package upload on any AT port is a DFOTA job as much as an update is. */
static bool job_running(const struct modem *m)
{
    if (fota_busy(m->fota))
        return true;
    for (unsigned i = 0; i < m->nchan; i++)
        if (m->chan[i].upload.sink == &com_sink)
            return true;
    return false;
}

static bool url_scheme_ok(const char *url)
{
    static const char *const schemes[] = {"http://", "https://", "coap://", "coaps://"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncasecmp(url, schemes[i], strlen(schemes[i])) == 0)
            return url[strlen(schemes[i])] != '\0';
    return false;
}

static int h_qfotadl(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem_chan *c = CHAN(ud);
    struct modem *m = c->m;
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (job_running(m))
        return FOTA_CME_BUSY;
    const char *url;
    if (at_args_str(a, 0, &url) == 0) {
        if (strcasecmp(url, "COM:") == 0)
            return com_upload(c, a);
        if (at_args_count(a) != 1 || strlen(url) > URL_MAX || !url_scheme_ok(url))
            return FOTA_CME_PARAM;
        /* HTTP(S) and CoAP(S) downloads come with the transport layer */
        modem_log(m, 0, "AT+QFOTADL=<URL>: downloads are not built yet");
        return AT_CME_NOT_SUPPORTED;
    }
    int64_t op, arg = 0;
    int r;
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
        at_engine_reply(e, "+QFOTADL: 4,%llu", (unsigned long long)store_slot_size(m->store));
        return AT_OK;
    case 5: /* delete it */
        if (has_arg)
            return FOTA_CME_PARAM;
        r = store_slot_delete(m->store);
        return r == 0 || r == -ENOENT ? AT_OK : AT_ERROR; /* an empty slot is deleted already */
    default: /* 2 is reserved */
        return FOTA_CME_PARAM;
    }
}

/* ---- AT+QCFGEXT="fota_apn"[,<iptype>,<apn>[,<username>,<password>]] ---- */

static int h_qcfgext(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem *m = CHAN(ud)->m;
    const char *name;
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+QCFGEXT: \"fota_apn\",(0-2),<apn>,<username>,<password>");
        return AT_OK;
    }
    if (at_args_str(a, 0, &name) != 0 || strcasecmp(name, "fota_apn") != 0)
        return AT_ERROR;
    unsigned n = at_args_count(a);
    if (n == 1) {
        char v[STORE_VAL_MAX + 1];
        if (store_get(m->store, "fota_apn", v, sizeof(v)) != 0)
            snprintf(v, sizeof(v), "0,\"\"");
        at_engine_reply(e, "+QCFGEXT: \"fota_apn\",%s", v);
        return AT_OK;
    }
    int64_t iptype;
    const char *apn, *user = NULL, *pass = NULL;
    if (n != 3 && n != 5)
        return AT_ERROR;
    if (at_args_int(a, 1, &iptype) != 0 || iptype < 0 || iptype > 2)
        return AT_ERROR;
    if (at_args_str(a, 2, &apn) != 0 || strlen(apn) > 99)
        return AT_ERROR;
    if (n == 5 && (at_args_str(a, 3, &user) != 0 || at_args_str(a, 4, &pass) != 0 ||
                   strlen(user) > 127 || strlen(pass) > 127))
        return AT_ERROR;
    char v[512];
    if (user)
        snprintf(v, sizeof(v), "%d,\"%s\",\"%s\",\"%s\"", (int)iptype, apn, user, pass);
    else
        snprintf(v, sizeof(v), "%d,\"%s\"", (int)iptype, apn);
    return store_set(m->store, "fota_apn", v) == 0 ? AT_OK : AT_ERROR; /* saved at once */
}

const struct at_cmd modem_cmds_fota[] = {
    {"+QFOTADL", AT_FORM_TEST | AT_FORM_SET, 1, 3, "**i", h_qfotadl, AT_F_JOB, FOTA_CME_PARAM,
     FOTA_CME_BUSY},
    {"+QCFGEXT", AT_FORM_TEST | AT_FORM_SET, 1, 5, "sisss", h_qcfgext, 0, 0, 0},
};
const size_t modem_cmds_fota_n = sizeof(modem_cmds_fota) / sizeof(modem_cmds_fota[0]);
