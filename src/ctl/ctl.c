/* ctl.c - the control server (include/dfota/ctl.h): a Unix stream socket
 * on the loop (uv_pipe_t), its clients, the command table, the event
 * stream of `watch` and the fault tables of the attached modems. */
#include "dfota/ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_int.h"
#include "dfota/pkg.h"

/* A client that reads this little of what it is sent is cut off rather
 * than let its backlog grow without bound (a stuck `watch`). */
#define CTL_CLIENT_BACKLOG_MAX (8u * 1024u * 1024u)

struct ctl_target {
    struct ctl_target *next;
    struct ctl *c;
    struct modem *m;
    char *name;
    struct ctl_faults faults;
    struct dclock_timer cut_timer; /* update.power_cut_at: the cut, out of the job's call */
    char digest[65];               /* SHA-256 of the image of digest_fw, hex; "" none */
    char digest_fw[96];
    bool hashing;
};

struct ctl_client {
    struct ctl_client *next;
    struct ctl *c;
    uv_pipe_t pipe;
    struct ctl_lines lines;
    char rbuf[4096];
    unsigned serial;
    bool watch, closing;
};

struct ctl {
    uv_loop_t *loop;
    uv_pipe_t server;
    char *path;
    int verbose;
    struct ctl_target *targets;
    struct ctl_client *clients;
    unsigned serial;
    unsigned pending; /* handles and works still to complete */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void ctl_log(const struct ctl *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ctl_log(const struct ctl *c, int level, const char *fmt, ...)
{
    if (level > c->verbose)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "dfota-sim[ctl %s]: %s\n", c->path, msg);
}

static void finish_close(struct ctl *c)
{
    if (!c->closing || c->pending)
        return;
    while (c->targets) {
        struct ctl_target *t = c->targets;
        c->targets = t->next;
        free(t->name);
        free(t);
    }
    void (*cb)(void *) = c->close_cb;
    void *arg = c->close_arg;
    free(c->path);
    free(c);
    if (cb)
        cb(arg);
}

/* ---- writing ------------------------------------------------------------ */

struct ctl_write {
    uv_write_t req;
    char *buf;
};

static void client_close(struct ctl_client *cl);

static void on_written(uv_write_t *req, int status)
{
    struct ctl_write *w = (struct ctl_write *)req;
    struct ctl_client *cl = req->data;
    free(w->buf);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !cl->closing) {
        ctl_log(cl->c, 1, "client %u: %s", cl->serial, uv_strerror(status));
        client_close(cl);
    }
}

/* Sends @p line of @p len bytes (taken: freed here) to @p cl. */
static void client_send(struct ctl_client *cl, char *line, size_t len)
{
    if (cl->closing) {
        free(line);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&cl->pipe) > CTL_CLIENT_BACKLOG_MAX) {
        ctl_log(cl->c, 0, "client %u reads nothing of what it is sent: cut off", cl->serial);
        free(line);
        client_close(cl);
        return;
    }
    struct ctl_write *w = malloc(sizeof(*w));
    if (!w) {
        free(line);
        client_close(cl);
        return;
    }
    w->buf = line;
    w->req.data = cl;
    uv_buf_t b = uv_buf_init(line, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&cl->pipe, &b, 1, on_written);
    if (r) {
        free(line);
        free(w);
        client_close(cl);
    }
}

static void send_json(struct ctl_client *cl, cJSON *obj)
{
    char *line;
    size_t len;
    if (ctl_json_line(obj, &line, &len) == 0)
        client_send(cl, line, len);
}

static void send_error(struct ctl_client *cl, const cJSON *id, const char *msg)
{
    char *line;
    size_t len;
    if (ctl_error_line(id, msg, &line, &len) == 0)
        client_send(cl, line, len);
}

/* An event line to every client that watches: @p ev is freed. */
static void broadcast(struct ctl *c, struct ctl_target *t, cJSON *ev)
{
    if (!ev)
        return;
    cJSON_AddNumberToObject(ev, "t", (double)dclock_now(modem_clock(t->m)));
    if (c->targets && c->targets->next)
        cJSON_AddStringToObject(ev, "modem", t->name);
    char *line;
    size_t len;
    if (ctl_json_line(ev, &line, &len) != 0)
        return;
    for (struct ctl_client *cl = c->clients; cl; cl = cl->next) {
        if (!cl->watch || cl->closing)
            continue;
        char *copy = malloc(len);
        if (!copy)
            continue;
        memcpy(copy, line, len);
        client_send(cl, copy, len);
    }
    free(line);
}

/* ---- the modem's events and the faults' actions ------------------------ */

static void hash_start(struct ctl_target *t);

static void on_modem_event(void *ud, const struct modem_event *e)
{
    struct ctl_target *t = ud;
    static const char *const kinds[] = {[MODEM_EV_URC] = "urc",
                                        [MODEM_EV_POWER] = "power",
                                        [MODEM_EV_JOB] = "job",
                                        [MODEM_EV_DATA] = "data"};
    if (e->kind == MODEM_EV_POWER && strcmp(e->to, "normal") == 0)
        hash_start(t); /* an update may have changed the image */
    cJSON *ev = cJSON_CreateObject();
    if (!ev)
        return;
    cJSON_AddStringToObject(ev, "event", kinds[e->kind]);
    if (e->port)
        cJSON_AddStringToObject(ev, "port", e->port);
    if (e->from)
        cJSON_AddStringToObject(ev, "from", e->from);
    if (e->to)
        cJSON_AddStringToObject(ev, "to", e->to);
    if (e->kind == MODEM_EV_DATA)
        cJSON_AddBoolToObject(ev, "on", e->on);
    if (e->text)
        cJSON_AddStringToObject(ev, e->kind == MODEM_EV_URC ? "text" : "why", e->text);
    broadcast(t->c, t, ev);
}

static const struct modem_observer observer = {on_modem_event};

static void on_fault_fired(void *ud, enum ctl_fault_id id, double value)
{
    struct ctl_target *t = ud;
    ctl_log(t->c, 1, "%s: fault %s fired", t->name, ctl_fault_name(id));
    cJSON *ev = cJSON_CreateObject();
    if (!ev)
        return;
    cJSON_AddStringToObject(ev, "event", "fault");
    cJSON_AddStringToObject(ev, "name", ctl_fault_name(id));
    if (ctl_fault_arg(id) != CTL_ARG_NONE)
        cJSON_AddNumberToObject(ev, "value", value);
    broadcast(t->c, t, ev);
}

static void on_cut_timer(struct dclock_timer *tm)
{
    struct ctl_target *t = tm->data;
    modem_power_cut(t->m);
}

static void on_power_cut(void *ud)
{
    struct ctl_target *t = ud;
    dclock_timer_start(&t->cut_timer, 0);
}

static const struct ctl_fault_actions fault_actions = {on_fault_fired, on_power_cut};

/* ---- the image digest, hashed off the loop ------------------------------- */

struct hash_work {
    uv_work_t req;
    struct ctl_target *t;
    int fd;
    uint64_t size;
    uint8_t sha[32];
    int err;
    char fw[96];
};

static void hash_run(uv_work_t *req)
{
    struct hash_work *w = (struct hash_work *)req;
    w->err = pkg_sha256_fd(w->fd, w->size, w->sha);
}

static void hash_done(uv_work_t *req, int status)
{
    struct hash_work *w = (struct hash_work *)req;
    struct ctl_target *t = w->t;
    struct ctl *c = t->c;
    close(w->fd);
    t->hashing = false;
    c->pending--;
    if (!c->closing && status == 0 && w->err == 0) {
        for (int i = 0; i < 32; i++)
            snprintf(t->digest + 2 * i, 3, "%02x", w->sha[i]);
        snprintf(t->digest_fw, sizeof(t->digest_fw), "%s", w->fw);
    }
    free(w);
    finish_close(c);
}

/* Hashes the running image unless its digest is known or being made. */
static void hash_start(struct ctl_target *t)
{
    struct modem_status st;
    modem_get_status(t->m, &st);
    if (t->hashing || (t->digest[0] && strcmp(t->digest_fw, st.firmware) == 0))
        return;
    struct hash_work *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->t = t;
    snprintf(w->fw, sizeof(w->fw), "%s", st.firmware);
    if (modem_image_open(t->m, &w->fd, &w->size) != 0) {
        free(w);
        return;
    }
    if (uv_queue_work(t->c->loop, &w->req, hash_run, hash_done) != 0) {
        close(w->fd);
        free(w);
        return;
    }
    t->hashing = true;
    t->c->pending++;
}

/* ---- commands -------------------------------------------------------------- */

/* A command: fills @p ans (ok) or returns a negative errno with *@p err. */
typedef int (*ctl_cmd_fn)(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                          cJSON *ans, const char **err);

static void add_net(cJSON *o, struct modem *m)
{
    struct modem_net_status n;
    modem_get_net(m, &n);
    cJSON_AddStringToObject(o, "registration", n.reg);
    cJSON_AddNumberToObject(o, "stat", n.stat);
    cJSON_AddNumberToObject(o, "csq", n.rssi);
    cJSON_AddNumberToObject(o, "ber", n.ber);
    cJSON_AddStringToObject(o, "operator", n.oper);
    cJSON_AddNumberToObject(o, "act", n.act);
    if (n.apns)
        cJSON_AddStringToObject(o, "apns", n.apns);
    else
        cJSON_AddStringToObject(o, "apns", "*");
    cJSON_AddNumberToObject(o, "link_rate", n.link_rate);
    cJSON_AddNumberToObject(o, "latency_ms", n.latency_ms);
    cJSON_AddBoolToObject(o, "attached", n.attached);
    cJSON_AddNumberToObject(o, "cfun", n.cfun);
}

static int cmd_status(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                      cJSON *ans, const char **err)
{
    (void)cl, (void)r, (void)err;
    struct modem_status s;
    modem_get_status(t->m, &s);
    hash_start(t);
    cJSON_AddStringToObject(ans, "modem", t->name);
    cJSON_AddStringToObject(ans, "power", s.power);
    cJSON_AddStringToObject(ans, "model", s.model);
    cJSON_AddStringToObject(ans, "firmware", s.firmware);
    if (t->digest[0] && strcmp(t->digest_fw, s.firmware) == 0)
        cJSON_AddStringToObject(ans, "image_sha256", t->digest);
    else
        cJSON_AddNullToObject(ans, "image_sha256");
    cJSON *job = cJSON_AddObjectToObject(ans, "job");
    if (job) {
        cJSON_AddStringToObject(job, "state", s.job);
        if (s.job_kind)
            cJSON_AddStringToObject(job, "kind", s.job_kind);
        else
            cJSON_AddNullToObject(job, "kind");
        if (s.stage)
            cJSON_AddStringToObject(job, "stage", s.stage);
        else
            cJSON_AddNullToObject(job, "stage");
        cJSON_AddNumberToObject(job, "percent", s.percent);
        cJSON_AddNumberToObject(job, "bytes", (double)s.bytes);
        cJSON_AddNumberToObject(job, "total", (double)s.total);
    }
    cJSON *slot = cJSON_AddObjectToObject(ans, "slot");
    if (slot) {
        cJSON_AddNumberToObject(slot, "size", (double)s.slot_size);
        cJSON_AddNumberToObject(slot, "capacity", (double)s.slot_capacity);
    }
    cJSON_AddNumberToObject(ans, "trigger_mode", s.trigger_mode);
    cJSON *set = cJSON_AddObjectToObject(ans, "settings");
    if (set) {
        cJSON_AddNumberToObject(set, "ipr", s.ipr);
        cJSON_AddNumberToObject(set, "dtr_mode", s.dtr_mode);
        cJSON_AddStringToObject(set, "fota_apn", s.fota_apn);
    }
    cJSON *lines = cJSON_AddObjectToObject(ans, "lines");
    if (lines) {
        cJSON_AddBoolToObject(lines, "dtr", s.dtr);
        cJSON_AddBoolToObject(lines, "rts", s.rts);
    }
    cJSON_AddBoolToObject(ans, "data_mode", s.data_mode);
    cJSON *net = cJSON_AddObjectToObject(ans, "network");
    if (net)
        add_net(net, t->m);
    return 0;
}

static int errno_answer(int r, const char **err)
{
    switch (r) {
    case 0:
        return 0;
    case -EALREADY:
        *err = "the module is so already";
        break;
    case -EAGAIN:
        *err = "the module is off";
        break;
    case -ESHUTDOWN:
        *err = "the module is closing";
        break;
    default:
        *err = "failed";
        break;
    }
    return r;
}

static int cmd_power(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                     cJSON *ans, const char **err)
{
    (void)cl, (void)ans;
    const char *state;
    if (ctl_req_str(r, "state", &state) != 0 ||
        (strcmp(state, "off") != 0 && strcmp(state, "on") != 0)) {
        *err = "\"state\" is \"off\" or \"on\"";
        return -EINVAL;
    }
    int rc = strcmp(state, "off") == 0 ? modem_power_cut(t->m) : modem_power_on_now(t->m);
    if (rc == -EALREADY)
        *err = strcmp(state, "off") == 0 ? "the module is off already" : "the module is on already";
    return rc == -EALREADY ? rc : errno_answer(rc, err);
}

static int cmd_reset(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                     cJSON *ans, const char **err)
{
    (void)cl, (void)r, (void)ans;
    return errno_answer(modem_reset_now(t->m), err);
}

static int line_cmd(const struct ctl_req *r, const char **err, bool *on)
{
    if (ctl_req_bool(r, "on", on) != 0) {
        *err = "\"on\" is true or false";
        return -EINVAL;
    }
    return 0;
}

static int cmd_dtr(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r, cJSON *ans,
                   const char **err)
{
    (void)cl, (void)ans;
    bool on;
    int rc = line_cmd(r, err, &on);
    if (!rc)
        modem_set_dtr(t->m, on);
    return rc;
}

static int cmd_rts(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r, cJSON *ans,
                   const char **err)
{
    (void)cl, (void)ans;
    bool on;
    int rc = line_cmd(r, err, &on);
    if (!rc)
        modem_set_rts(t->m, on);
    return rc;
}

/* A number member @p name into *@p out (-1 absent): 0 or -EINVAL. */
static int opt_int(const struct ctl_req *r, const char *name, int64_t *out)
{
    double v;
    int rc = ctl_req_num(r, name, &v);
    *out = -1;
    if (rc == -ENOENT)
        return 0;
    if (rc || v < 0 || v > 4294967295.0 || v != (double)(int64_t)v)
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

static int cmd_network(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                       cJSON *ans, const char **err)
{
    (void)cl;
    struct modem_net_change ch = {.stat = -1, .rssi = -1, .link_rate = -1, .latency_ms = -1};
    const char *reg = NULL;
    int rc = ctl_req_str(r, "registration", &reg);
    if (rc == 0) {
        ch.stat = modem_reg_stat(reg);
        if (ch.stat < 0) {
            *err = "\"registration\" is registered, searching, denied, roaming, not-registered "
                   "or unknown";
            return -EINVAL;
        }
    } else if (rc == -EINVAL) {
        *err = "\"registration\" is a string";
        return rc;
    }
    int64_t csq;
    if (opt_int(r, "csq", &csq) || opt_int(r, "link_rate", &ch.link_rate) ||
        opt_int(r, "latency_ms", &ch.latency_ms)) {
        *err = "\"csq\", \"link_rate\" and \"latency_ms\" are whole numbers";
        return -EINVAL;
    }
    ch.rssi = (int)csq;
    if (ctl_req_str(r, "operator", &ch.oper) == -EINVAL) {
        *err = "\"operator\" is a string";
        return -EINVAL;
    }
    if (modem_net_change(t->m, &ch) != 0) {
        *err = "a value is out of range (csq 0-31 or 99, operator up to 63 characters)";
        return -EINVAL;
    }
    add_net(ans, t->m);
    return 0;
}

static int cmd_watch(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                     cJSON *ans, const char **err)
{
    (void)t, (void)ans, (void)err;
    bool on = true;
    if (ctl_req_bool(r, "on", &on) == -EINVAL) {
        *err = "\"on\" is true or false";
        return -EINVAL;
    }
    cl->watch = on;
    return 0;
}

static void add_fault(cJSON *list, const struct ctl_faults *fs, enum ctl_fault_id id)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        return;
    }
    const struct ctl_fault *f = &fs->f[id];
    cJSON_AddStringToObject(o, "name", ctl_fault_name(id));
    cJSON_AddBoolToObject(o, "armed", f->armed);
    if (ctl_fault_arg(id) != CTL_ARG_NONE && f->armed)
        cJSON_AddNumberToObject(o, "value", f->value);
    cJSON_AddBoolToObject(o, "sticky", f->armed && f->sticky);
    cJSON_AddNumberToObject(o, "fired", f->fired);
    cJSON_AddBoolToObject(o, "takes_value", ctl_fault_arg(id) != CTL_ARG_NONE);
    cJSON_AddStringToObject(o, "help", ctl_fault_help(id));
}

static int cmd_fault(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                     cJSON *ans, const char **err)
{
    (void)cl;
    const char *op = "list", *spec = NULL;
    if (ctl_req_str(r, "op", &op) == -EINVAL) {
        *err = "\"op\" is arm, list or clear";
        return -EINVAL;
    }
    int rs = ctl_req_str(r, "spec", &spec);
    if (rs == -EINVAL) {
        *err = "\"spec\" is a string: name or name=value";
        return -EINVAL;
    }
    enum ctl_fault_id id;
    double value;
    if (strcmp(op, "arm") == 0) {
        bool sticky = false;
        if (ctl_req_bool(r, "sticky", &sticky) == -EINVAL) {
            *err = "\"sticky\" is true or false";
            return -EINVAL;
        }
        if (rs) {
            *err = "arm wants \"spec\": name or name=value";
            return -EINVAL;
        }
        if (ctl_fault_parse(spec, &id, &value, err) != 0)
            return -EINVAL;
        ctl_faults_arm(&t->faults, id, value, sticky);
        ctl_log(t->c, 1, "%s: fault %s armed%s", t->name, spec, sticky ? " (sticky)" : "");
    } else if (strcmp(op, "clear") == 0) {
        if (rs == 0 && strcmp(spec, "all") != 0) {
            int found = ctl_fault_find(spec);
            if (found < 0) {
                *err = "no such fault (fault list names them)";
                return -EINVAL;
            }
            ctl_faults_clear(&t->faults, (enum ctl_fault_id)found);
        } else {
            ctl_faults_clear_all(&t->faults);
        }
    } else if (strcmp(op, "list") != 0) {
        *err = "\"op\" is arm, list or clear";
        return -EINVAL;
    }
    cJSON *list = cJSON_AddArrayToObject(ans, "faults");
    for (int i = 0; list && i < CTL_FAULT_COUNT; i++)
        add_fault(list, &t->faults, (enum ctl_fault_id)i);
    return 0;
}

static int cmd_modems(struct ctl_client *cl, struct ctl_target *t, const struct ctl_req *r,
                      cJSON *ans, const char **err)
{
    (void)t, (void)r, (void)err;
    cJSON *list = cJSON_AddArrayToObject(ans, "modems");
    for (struct ctl_target *x = cl->c->targets; list && x; x = x->next)
        cJSON_AddItemToArray(list, cJSON_CreateString(x->name));
    return 0;
}

/* The commands (STYLE.md 8): name and handler. */
static const struct {
    const char *name;
    ctl_cmd_fn fn;
} cmds[] = {
    {"status", cmd_status}, {"power", cmd_power}, {"reset", cmd_reset},
    {"dtr", cmd_dtr},       {"rts", cmd_rts},     {"network", cmd_network},
    {"watch", cmd_watch},   {"fault", cmd_fault}, {"modems", cmd_modems},
};

static void dispatch(struct ctl_client *cl, const struct ctl_req *r)
{
    ctl_cmd_fn fn = NULL;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (strcmp(cmds[i].name, r->cmd) == 0)
            fn = cmds[i].fn;
    if (!fn) {
        send_error(cl, r->id, "unknown command");
        return;
    }
    struct ctl_target *t = cl->c->targets;
    const char *name;
    int rn = ctl_req_str(r, "modem", &name);
    if (rn == 0)
        for (t = cl->c->targets; t && strcmp(t->name, name) != 0;)
            t = t->next;
    if (rn == -EINVAL || !t) {
        send_error(cl, r->id, rn == -EINVAL ? "\"modem\" is a string" : "no such modem");
        return;
    }
    cJSON *ans = ctl_answer_new(r->id, true);
    if (!ans) {
        send_error(cl, r->id, "out of memory");
        return;
    }
    const char *err = "failed";
    if (fn(cl, t, r, ans, &err) != 0) {
        cJSON_Delete(ans);
        send_error(cl, r->id, err);
        return;
    }
    send_json(cl, ans);
}

/* ---- clients --------------------------------------------------------------- */

static void on_line(void *ud, const char *text, size_t len, bool too_long)
{
    struct ctl_client *cl = ud;
    if (cl->closing)
        return;
    if (too_long) {
        char msg[64];
        snprintf(msg, sizeof(msg), "line too long (at most %u bytes)", CTL_LINE_MAX);
        send_error(cl, NULL, msg);
        return;
    }
    if (strspn(text, " \t\r") == len)
        return; /* a blank line asks nothing */
    struct ctl_req r;
    const char *err;
    if (ctl_req_parse(text, len, &r, &err) != 0)
        send_error(cl, r.id, err);
    else
        dispatch(cl, &r);
    ctl_req_free(&r);
}

static void on_client_closed(uv_handle_t *h)
{
    struct ctl_client *cl = h->data;
    struct ctl *c = cl->c;
    for (struct ctl_client **p = &c->clients; *p; p = &(*p)->next)
        if (*p == cl) {
            *p = cl->next;
            break;
        }
    ctl_lines_free(&cl->lines);
    free(cl);
    c->pending--;
    finish_close(c);
}

static void client_close(struct ctl_client *cl)
{
    if (cl->closing)
        return;
    cl->closing = true;
    ctl_log(cl->c, 1, "client %u gone", cl->serial);
    uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct ctl_client *cl = h->data;
    *buf = uv_buf_init(cl->rbuf, sizeof(cl->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct ctl_client *cl = s->data;
    if (n < 0) {
        client_close(cl);
        return;
    }
    if (n > 0 && ctl_lines_feed(&cl->lines, buf->base, (size_t)n, on_line, cl) != 0)
        client_close(cl);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct ctl *c = server->data;
    if (status < 0 || c->closing)
        return;
    struct ctl_client *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return;
    cl->c = c;
    cl->serial = ++c->serial;
    if (uv_pipe_init(c->loop, &cl->pipe, 0) != 0) {
        free(cl);
        return;
    }
    cl->pipe.data = cl;
    cl->next = c->clients;
    c->clients = cl;
    c->pending++;
    if (uv_accept(server, (uv_stream_t *)&cl->pipe) != 0 ||
        uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read) != 0) {
        client_close(cl);
        return;
    }
    ctl_log(c, 1, "client %u connected", cl->serial);
}

/* ---- the server ------------------------------------------------------------ */

/* A path that exists: a stale socket (nobody listens: connecting is
 * refused) is removed; anything else stays and is refused. */
static int prepare_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS)
        return -EADDRINUSE; /* somebody listens there */
    if (e != ECONNREFUSED)
        return -e;
    return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
}

static void on_server_closed(uv_handle_t *h)
{
    struct ctl *c = h->data;
    c->pending--;
    finish_close(c);
}

int ctl_new(uv_loop_t *loop, const struct ctl_cfg *cfg, struct ctl **out)
{
    *out = NULL;
    if (!cfg->path || !cfg->path[0])
        return -EINVAL;
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c || !(c->path = strdup(cfg->path))) {
        free(c);
        return -ENOMEM;
    }
    c->loop = loop;
    c->verbose = cfg->verbose;
    int r = prepare_path(c->path);
    if (r) {
        ctl_log(c, 0, "cannot listen: %s",
                r == -EEXIST       ? "the path exists and is not a socket"
                : r == -EADDRINUSE ? "another process listens on it"
                                   : strerror(-r));
        free(c->path);
        free(c);
        return r;
    }
    r = uv_pipe_init(loop, &c->server, 0);
    if (r) {
        free(c->path);
        free(c);
        return r;
    }
    c->server.data = c;
    c->pending = 1;
    r = uv_pipe_bind(&c->server, c->path);
    /* owner only, before anyone can connect (nobody can before listen) */
    if (!r && chmod(c->path, 0600) != 0)
        r = -errno;
    if (!r)
        r = uv_listen((uv_stream_t *)&c->server, 16, on_connection);
    if (r) {
        ctl_log(c, 0, "cannot listen: %s", uv_strerror(r));
        unlink(c->path);
        c->closing = true;
        uv_close((uv_handle_t *)&c->server, on_server_closed); /* frees c */
        return r;
    }
    ctl_log(c, 1, "listening");
    *out = c;
    return 0;
}

int ctl_attach(struct ctl *c, const char *name, struct modem *m)
{
    for (struct ctl_target *t = c->targets; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return -EEXIST;
    struct ctl_target *t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        return -ENOMEM;
    }
    t->c = c;
    t->m = m;
    ctl_faults_init(&t->faults, &fault_actions, t, modem_timing_of(m)->dl_stall_timeout);
    dclock_timer_init(modem_clock(m), &t->cut_timer, on_cut_timer, t);
    /* the first one attached is the default: kept first */
    struct ctl_target **p = &c->targets;
    while (*p)
        p = &(*p)->next;
    *p = t;
    modem_set_observer(m, &observer, t);
    modem_set_faults(m, &ctl_fault_ops, &t->faults);
    hash_start(t);
    return 0;
}

void ctl_close(struct ctl *c, void (*cb)(void *arg), void *arg)
{
    c->closing = true;
    c->close_cb = cb;
    c->close_arg = arg;
    for (struct ctl_target *t = c->targets; t; t = t->next) {
        dclock_timer_stop(&t->cut_timer);
        modem_set_observer(t->m, NULL, NULL);
        modem_set_faults(t->m, NULL, NULL);
    }
    for (struct ctl_client *cl = c->clients; cl; cl = cl->next)
        client_close(cl);
    unlink(c->path);
    uv_close((uv_handle_t *)&c->server, on_server_closed);
}
