/* cmd_file.c - Quectel's FILE AT commands for the EFS (AT+QFUPL, AT+QFLST,
 * AT+QFDEL, AT+QFLDS), through which a host puts the certificates of the
 * app note's 2.2.3.1 note 4 and 2.2.3.2 into /datatx; and the data-mode
 * upload that AT+QFUPL shares with AT+QFOTADL="COM:" (2.2.2, 2.2.3.3). */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "file_codes.h"
#include "modem_int.h"

#define CHAN(ud) ((struct modem_chan *)(ud))

uint16_t modem_xor16(uint16_t acc, uint64_t offset, const uint8_t *buf, size_t len)
{
    /* big-endian 16-bit words; a byte at an even offset is a high byte, so
     * an odd last byte counts as the high byte with a zero low byte */
    size_t i = 0;
    if (len && offset % 2) {
        acc ^= buf[0];
        i = 1;
    }
    /* bulk: XOR 8 bytes at a time, then fold even (high) and odd (low)
     * positions; i is at an even file offset here */
    uint64_t wide = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        wide ^= w;
    }
    uint8_t b[8];
    memcpy(b, &wide, 8);
    acc ^= (uint16_t)((b[0] ^ b[2] ^ b[4] ^ b[6]) << 8 | (b[1] ^ b[3] ^ b[5] ^ b[7]));
    for (; i < len; i++)
        acc ^= (uint16_t)((offset + i) % 2 == 0 ? buf[i] << 8 : buf[i]);
    return acc;
}

/* ---- store errors -> FILE codes ---------------------------------------- */

/* X(errno, FILE code name); an errno not listed takes the caller's fallback
 * (fail to open, write, list, delete: what was being done). A folder, or a
 * symlink, where the host names a file is such a failure too. */
#define MODEM_FILE_ERRNO_MAP(X)                                                                    \
    X(EINVAL, BAD_NAME)                                                                            \
    X(ENAMETOOLONG, BAD_NAME)                                                                      \
    X(EEXIST, EXISTS)                                                                              \
    X(ENOENT, NOT_FOUND)                                                                           \
    X(ENOSPC, NO_SPACE)                                                                            \
    X(EDQUOT, DRIVE_FULL)                                                                          \
    X(EFBIG, TOO_LARGE)                                                                            \
    X(EMFILE, TOO_MANY_OPEN)                                                                       \
    X(ENFILE, TOO_MANY_OPEN)                                                                       \
    X(EROFS, READ_ONLY)                                                                            \
    X(EACCES, READ_ONLY)                                                                           \
    X(EPERM, READ_ONLY)                                                                            \
    X(EBUSY, ALREADY_OPEN)                                                                         \
    X(EBADF, BAD_FD)                                                                               \
    X(ETIMEDOUT, TIMEOUT)

int modem_file_err(int err, int fallback)
{
    switch (-err) {
#define X(no, name)                                                                                \
    case no:                                                                                       \
        return FILE_ERR_##name;
        MODEM_FILE_ERRNO_MAP(X)
#undef X
    default:
        return fallback;
    }
}

/* ---- data-mode uploads (AT+QFUPL, AT+QFOTADL="COM:") ------------------- */

void modem_upload_done(struct modem_upload *u, int result)
{
    struct modem_chan *c = u->chan;
    const struct modem_upload_sink *sink = u->ended;
    if (!modem_answer_valid(c->m, u->epoch))
        return; /* reset or closed since: nobody waits for the answer */
    if (result == AT_OK)
        at_engine_reply(c->at, MODEM_UPLOAD_REPORT_FMT, sink->report, (unsigned long long)u->got,
                        u->sum);
    at_engine_finish(c->at, result);
}

static void upload_end(struct modem_upload *u, enum modem_upload_end how, int err)
{
    static const char *const why[] = {
        [UPLOAD_FULL] = "complete", [UPLOAD_ESCAPED] = "escaped", [UPLOAD_IDLE] = "timeout",
        [UPLOAD_FAILED] = "failed", [UPLOAD_CUT] = "cut"};
    modem_notify(u->chan->m, &(struct modem_event){.kind = MODEM_EV_DATA, .on = false,
                                                   .port = u->chan->name, .text = why[how]});
    dclock_timer_stop(&u->idle);
    u->ended = u->sink;
    u->sink = NULL;
    u->how = how;
    int result = u->ended->end(u, how, err);
    if (how == UPLOAD_CUT || result == AT_PENDING)
        return; /* the module is going down: no answer; or the sink answers later */
    modem_upload_done(u, result);
}

/* <ackmode> 1: an 'A' for each whole block of FILE_UPL_ACK_BLOCK bytes,
 * the last one included when the file ends on a block boundary. */
static void upload_ack(struct modem_upload *u, uint64_t before)
{
    struct modem_chan *c = u->chan;
    uint64_t n = u->got / FILE_UPL_ACK_BLOCK - before / FILE_UPL_ACK_BLOCK;
    static const char ack = FILE_UPL_ACK_CHAR;
    for (; n; n--)
        modem_chan_write(c, &ack, 1);
}

static void upload_data(void *ud, const uint8_t *buf, size_t len)
{
    struct modem_upload *u = ud;
    if (!u->sink)
        return;
    int r = u->sink->write(u, buf, len);
    if (r) {
        at_engine_leave_data(u->chan->at);
        upload_end(u, UPLOAD_FAILED, r);
        return;
    }
    uint64_t before = u->got;
    u->sum = modem_xor16(u->sum, u->got, buf, len);
    u->got += len;
    if (u->ack)
        upload_ack(u, before);
    if (u->got >= u->want) {
        at_engine_leave_data(u->chan->at);
        upload_end(u, UPLOAD_FULL, 0);
        return;
    }
    dclock_timer_start(&u->idle, u->timeout_ms);
}

static size_t upload_remaining(void *ud)
{
    struct modem_upload *u = ud;
    return (size_t)(u->want - u->got);
}

static void upload_escape(void *ud)
{
    struct modem_upload *u = ud;
    if (u->sink)
        upload_end(u, UPLOAD_ESCAPED, 0);
}

static void upload_idle(struct dclock_timer *t)
{
    struct modem_upload *u = t->data;
    at_engine_leave_data(u->chan->at);
    upload_end(u, UPLOAD_IDLE, 0);
}

static const struct at_data_ops upload_ops = {upload_data, upload_remaining, upload_escape};

int modem_upload_start(struct modem_chan *c, const struct modem_upload_sink *sink, uint64_t want,
                       uint32_t timeout_ms, bool ack)
{
    struct modem_upload *u = &c->upload;
    u->sink = sink;
    u->chan = c;
    u->want = want;
    u->got = 0;
    u->sum = 0;
    u->timeout_ms = timeout_ms;
    u->ack = ack;
    u->epoch = c->m->power_epoch;
    dclock_timer_init(c->m->clk, &u->idle, upload_idle, u);
    dclock_timer_start(&u->idle, timeout_ms);
    at_engine_enter_data(c->at, &upload_ops, u);
    modem_notify(c->m, &(struct modem_event){.kind = MODEM_EV_DATA, .on = true, .port = c->name,
                                             .text = sink->report});
    return AT_CONNECT;
}

void modem_upload_abort(struct modem_chan *c)
{
    if (c->upload.sink)
        upload_end(&c->upload, UPLOAD_CUT, 0);
}

/* ---- AT+QFUPL="<name>"[,<file_size>[,<timeout>[,<ackmode>]]] ------------ */

static int efs_write(struct modem_upload *u, const uint8_t *buf, size_t len)
{
    return store_efs_write(u->w.efs, buf, len);
}

static void efs_kept(void *ud, int r)
{
    struct modem_upload *u = ud;
    if (r)
        modem_log(u->chan->m, 0, "file upload: cannot keep the file: %s", strerror(-r));
    modem_upload_done(u, r ? modem_file_err(r, FILE_ERR_WRITE) : AT_OK);
}

/* A file appears whole or not at all: what arrived is kept on the host's
 * say-so (all of it, +++ or DTR) or after a pause with some data, as the
 * real module keeps it; a pause before any byte, a write error or a power
 * cut leave no file. */
static int efs_end(struct modem_upload *u, enum modem_upload_end how, int err)
{
    struct store_efs_writer *w = u->w.efs;
    u->w.efs = NULL;
    switch (how) {
    case UPLOAD_FULL:
    case UPLOAD_ESCAPED:
        break;
    case UPLOAD_IDLE:
        if (u->got)
            break;
        store_efs_abort(w);
        return FILE_ERR_TIMEOUT;
    case UPLOAD_FAILED:
        store_efs_abort(w);
        return modem_file_err(err, FILE_ERR_WRITE);
    case UPLOAD_CUT:
        store_efs_abort(w);
        return AT_NONE;
    }
    store_efs_finish(w, efs_kept, u);
    return AT_PENDING; /* answered once the file is in place, off the loop */
}

static const struct modem_upload_sink efs_sink = {"+QFUPL", efs_write, efs_end};

/* Optional integer argument @p i in [@p lo, @p hi], @p *v keeping its
 * default when omitted. */
static bool opt_int(const struct at_args *a, unsigned i, int64_t lo, int64_t hi, int64_t *v)
{
    return !at_args_present(a, i) || (at_args_int(a, i, v) == 0 && *v >= lo && *v <= hi);
}

static int h_qfupl(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct modem_chan *c = CHAN(ud);
    struct store *s = c->m->store;
    uint64_t space = store_efs_free(s);
    if (form == AT_FORM_TEST) {
        at_engine_reply(e, "+QFUPL: <filename>,(1-%llu),(1-%d),(0,1)", (unsigned long long)space,
                        FILE_UPL_TIMEOUT_MAX);
        return AT_OK;
    }
    const char *name;
    int64_t size = FILE_UPL_SIZE_DEFAULT, timeout = FILE_UPL_TIMEOUT_DEFAULT, ack = 0;
    if (at_args_str(a, 0, &name) != 0)
        return FILE_ERR_BAD_PARAM;
    if (!opt_int(a, 1, 1, INT64_MAX, &size) || !opt_int(a, 2, 1, FILE_UPL_TIMEOUT_MAX, &timeout) ||
        !opt_int(a, 3, 0, 1, &ack))
        return FILE_ERR_INVALID_INPUT;
    /* the name first, without side effects; then the space; then whether
     * the name is taken (store_efs_begin also makes the folders) */
    char path[PATH_MAX];
    int r = store_efs_resolve(s, name, path, sizeof(path));
    if (r)
        return modem_file_err(r, FILE_ERR_BAD_NAME);
    if ((uint64_t)size > space)
        return space ? FILE_ERR_NO_SPACE : FILE_ERR_DRIVE_FULL;
    r = store_efs_begin(s, name, false, &c->upload.w.efs);
    if (r)
        return modem_file_err(r, FILE_ERR_OPEN);
    return modem_upload_start(c, &efs_sink, (uint64_t)size, (uint32_t)timeout * 1000, ack == 1);
}

/* ---- AT+QFLST[="<pattern>"], AT+QFDEL="<name>", AT+QFLDS[="UFS"] -------- */

/* The pattern of an execution form ("*": every UFS file) or of a SET. */
static int pattern_arg(enum at_form form, const struct at_args *a, const char **p)
{
    *p = "*";
    return form == AT_FORM_SET ? at_args_str(a, 0, p) : 0;
}

static int list_line(void *ud, const char *name, uint64_t size)
{
    at_engine_reply(ud, "+QFLST: \"%s\",%llu", name, (unsigned long long)size);
    return 0;
}

static int h_qflst(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    const char *pattern;
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (pattern_arg(form, a, &pattern) != 0)
        return FILE_ERR_BAD_PARAM;
    int r = store_efs_list(CHAN(ud)->m->store, pattern, list_line, e);
    return r ? modem_file_err(r, FILE_ERR_LIST) : AT_OK;
}

static int delete_file(struct modem_chan *c, const void *name, store_cb cb, void *ud)
{
    return store_efs_delete_async(c->m->store, name, cb, ud); /* "*": every UFS file */
}

static int delete_err(int err)
{
    return modem_file_err(err, FILE_ERR_DELETE);
}

static int h_qfdel(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    (void)e;
    const char *name;
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (at_args_str(a, 0, &name) != 0)
        return FILE_ERR_BAD_PARAM;
    return modem_answer_later(CHAN(ud), delete_err, delete_file, name);
}

struct ufs_usage {
    uint64_t bytes, files;
};

static int usage_add(void *ud, const char *name, uint64_t size)
{
    (void)name;
    struct ufs_usage *u = ud;
    u->bytes += size;
    u->files++;
    return 0;
}

/* AT+QFLDS: "+QFLDS: <UFS_file_size>,<UFS_file_number>";
 * AT+QFLDS="UFS": "+QFLDS: <freesize>,<totalsize>". The total is the EFS
 * space of the store, which the modem opens with the default budget. */
static int h_qflds(struct at_engine *e, enum at_form form, const struct at_args *a, void *ud)
{
    struct store *s = CHAN(ud)->m->store;
    const char *type;
    if (form == AT_FORM_TEST)
        return AT_OK;
    if (form == AT_FORM_SET) {
        if (at_args_str(a, 0, &type) != 0 || strcmp(type, "UFS") != 0)
            return FILE_ERR_INVALID_INPUT;
        at_engine_reply(e, "+QFLDS: %llu,%llu", (unsigned long long)store_efs_free(s),
                        (unsigned long long)STORE_EFS_DEFAULT_BUDGET);
        return AT_OK;
    }
    struct ufs_usage u = {0};
    int r = store_efs_list(s, "*", usage_add, &u);
    if (r)
        return modem_file_err(r, FILE_ERR_DISK_INFO);
    at_engine_reply(e, "+QFLDS: %llu,%llu", (unsigned long long)u.bytes,
                    (unsigned long long)u.files);
    return AT_OK;
}

#define FILE_FORMS (AT_FORM_TEST | AT_FORM_SET)

const struct at_cmd modem_cmds_file[] = {
    {"+QFUPL", FILE_FORMS, 1, 4, "siii", h_qfupl, 0, FILE_ERR_BAD_PARAM, 0},
    {"+QFLST", FILE_FORMS | AT_FORM_EXEC, 1, 1, "s", h_qflst, 0, FILE_ERR_BAD_PARAM, 0},
    {"+QFDEL", FILE_FORMS, 1, 1, "s", h_qfdel, 0, FILE_ERR_BAD_PARAM, 0},
    {"+QFLDS", FILE_FORMS | AT_FORM_EXEC, 1, 1, "s", h_qflds, 0, FILE_ERR_BAD_PARAM, 0},
};
const size_t modem_cmds_file_n = sizeof(modem_cmds_file) / sizeof(modem_cmds_file[0]);
