/* modem_dl.c - the download door: AT+QFOTADL=<HTTP(S) URL> (app note
 * 2.2.3.1) as a package source of the DFOTA job.
 *
 * The command answers OK at once; the door then prints HTTPSTART, checks
 * the network (registered, the APN accepted), reads the certificates of
 * note 4 from EFS on a worker, runs the transport (src/net) and feeds the
 * job's source with what arrives, printing DOWNLOADING as it goes. The job
 * stores and checks the package; its answer is HTTPEND's code, after which
 * the job's trigger starts the update. While this runs the module is in
 * normal mode: both AT ports answer, the DFOTA family gets 591 (the job is
 * busy from the command on).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dfota/net.h"
#include "modem_int.h"

/* Certificates of note 4 (2.2.3.1), uploaded by the host with AT+QFUPL. */
#define CA_FILE "/datatx/fota_cacert.pem"
#define CERT_FILE "/datatx/fota_client_cert.pem"
#define KEY_FILE "/datatx/fota_client_key.pem"

/* The door's states (STYLE.md 10). */
enum dl_state {
    DL_STARTING, /* OK answered, HTTPSTART and the network check next */
    DL_CERTS,    /* reading the certificates on a worker */
    DL_LOADING,  /* the transport runs; bytes go to the job */
    DL_STORING,  /* the transport is over; the job stores and checks */
    DL_DONE,     /* HTTPEND printed (or the download cut): the door closes */
};

/* Certificates read on a worker; the loop takes them once it completes. */
struct dl_certs {
    struct store *store;
    uint8_t *pem[3]; /* CA, client certificate, client key: NUL-terminated, or NULL */
    size_t len[3];   /* with the NUL, as mbedTLS wants */
    struct modem_dl *dl; /* NULL once the door no longer waits for them */
};

struct modem_dl {
    struct modem *m;
    enum dl_state state;
    char text[NET_URL_MAX + 1]; /* the URL as given, for the log */
    struct net_url url;
    int url_err;           /* net_url_parse() failed: 705 after HTTPSTART */
    struct fota_src *src;  /* the job's source, until it is ended */
    struct net_http *http; /* until closed */
    struct dl_certs *certs; /* being read */
    struct dclock_timer timer;
    int err;               /* the transport's code, when it failed */
    uint64_t size;         /* Content-Length, 0 unknown */
    struct fota_pct_gate pct; /* DOWNLOADING printed */
    struct dclock_timer stall; /* a fault's silence before it ends the download */
    int stall_err;
    void (*closed_cb)(void *arg); /* modem_dl_abort()'s */
    void *closed_arg;
};

static const char *dl_state_name(enum dl_state s)
{
    switch (s) {
    case DL_STARTING:
        return "starting";
    case DL_CERTS:
        return "certificates";
    case DL_LOADING:
        return "loading";
    case DL_STORING:
        return "storing";
    case DL_DONE:
        return "done";
    }
    return "?";
}

static void dl_enter(struct modem_dl *d, enum dl_state s, const char *event)
{
    modem_log(d->m, 2, "download: %s -> %s (%s)", dl_state_name(d->state), dl_state_name(s), event);
    d->state = s;
}

static void stage_urc(struct modem *m, enum fota_stage stage, int value)
{
    char text[64];
    modem_urc(m, "%s", fota_urc(text, sizeof(text), stage, value, !m->cfg.no_percent_sign));
}

/* ---- the end ----------------------------------------------------------- */

static void certs_free(struct dl_certs *c)
{
    for (int i = 0; i < 3; i++)
        free(c->pem[i]);
    free(c);
}

static void dl_free(void *arg)
{
    struct modem_dl *d = arg;
    void (*cb)(void *) = d->closed_cb;
    void *cb_arg = d->closed_arg;
    free(d); /* the modem may be gone: dl_close() let go of it */
    if (cb)
        cb(cb_arg);
}

/* Closes what the door still holds, then frees it. */
static void dl_close(struct modem_dl *d)
{
    dclock_timer_stop(&d->timer);
    dclock_timer_stop(&d->stall);
    if (d->certs) {
        d->certs->dl = NULL; /* the worker's completion frees them */
        d->certs = NULL;
    }
    if (d->m->dl == d)
        d->m->dl = NULL; /* a new download may begin at once */
    struct net_http *h = d->http;
    d->http = NULL;
    if (h)
        net_http_close(h, dl_free, d);
    else
        dl_free(d);
}

/* The job has what arrived: HTTPEND with the first failure's code. */
static void dl_stored(void *ud, int result, uint64_t size)
{
    struct modem_dl *d = ud;
    int err = d->err ? d->err : result;
    modem_log(d->m, err ? 0 : 1, "download of %s: %llu bytes, HTTPEND %d", d->text,
              (unsigned long long)size, err);
    stage_urc(d->m, FOTA_STAGE_HTTPEND, err);
    dl_enter(d, DL_DONE, err ? "failed" : "stored");
    dl_close(d); /* the job's trigger runs once this returns */
}

/* Ends the download with @p err (0: every byte arrived). */
static void dl_finish(struct modem_dl *d, int err)
{
    struct fota_src *src = d->src;
    d->src = NULL;
    d->err = err;
    dl_enter(d, DL_STORING, err ? fota_err_text(err) : "complete");
    if (!err)
        stage_urc(d->m, FOTA_STAGE_DOWNLOADING, 100); /* the last, also with no length */
    fota_src_end(src, err ? FOTA_SRC_STOPPED : FOTA_SRC_COMPLETE, dl_stored, d);
}

/* ---- the transport's callbacks ------------------------------------- */

/* No length (chunked): 100% alone, at the end. */
static void progress(struct modem_dl *d)
{
    int pct = fota_pct_gate(&d->pct, fota_src_taken(d->src), d->size, dclock_now(d->m->clk),
                            d->m->timing->dl_progress_ms);
    if (pct >= 0)
        stage_urc(d->m, FOTA_STAGE_DOWNLOADING, pct);
}

static int on_size(void *ud, uint64_t size)
{
    struct modem_dl *d = ud;
    d->size = size;
    return size ? fota_src_expect(d->src, size) : 0;
}

static void on_room(void *ud)
{
    struct modem_dl *d = ud;
    if (d->http && !d->stall_err)
        net_http_pause(d->http, false);
}

static void on_end(void *ud, int err);

/* A fault's stall is over: the download ends as the stall timer ends it. */
static void on_stall(struct dclock_timer *t)
{
    struct modem_dl *d = t->data;
    struct net_http *h = d->http;
    d->http = NULL;
    net_http_close(h, NULL, NULL); /* no callback of it comes any more */
    on_end(d, d->stall_err);
}

/* The fault seam of the body (download.stall_at, download.drop_at): a code
 * returned ends the download now; a stall stops reading the server. */
static int data_fault(struct modem_dl *d)
{
    const struct modem_fault_ops *f = d->m->faults;
    uint32_t silence = 0;
    int code = f && f->dl_data ? f->dl_data(d->m->faults_ud, fota_src_taken(d->src), d->size,
                                            &silence)
                               : 0;
    if (!code || !silence)
        return code;
    d->stall_err = code;
    net_http_pause(d->http, true);
    dclock_timer_start(&d->stall, silence);
    return 0;
}

static int on_data(void *ud, const uint8_t *buf, size_t len)
{
    struct modem_dl *d = ud;
    if (d->stall_err)
        return 0; /* stalled: nothing more arrives */
    int r = fota_src_write(d->src, buf, len);
    if (r)
        return r;
    progress(d);
    if ((r = data_fault(d)) != 0 || d->stall_err)
        return r;
    if (fota_src_full(d->src))
        net_http_pause(d->http, true); /* the flash is behind: stop reading the server */
    return 0;
}

static void on_end(void *ud, int err)
{
    struct modem_dl *d = ud;
    fota_src_on_room(d->src, NULL, NULL);
    dl_finish(d, err);
}

static void net_log(void *ud, int level, const char *msg)
{
    struct modem_dl *d = ud;
    modem_log(d->m, level, "download: %s", msg);
}

static const struct net_dl_ops http_ops = {on_size, on_data, on_end};

/* ---- the start ----------------------------------------------------- */

static void transport_start(struct modem_dl *d, struct dl_certs *c)
{
    struct modem *m = d->m;
    const struct modem_timing *t = m->timing;
    struct net_http_cfg cfg = {
        .loop = m->loop,
        .clock = m->clk,
        .connect_timeout_ms = t->dl_connect_timeout,
        .stall_timeout_ms = t->dl_stall_timeout,
        .rate_bps = m->net.link_rate,
        .latency_ms = m->net.latency_ms,
        .log = net_log,
    };
    if (c) {
        cfg.ca_pem = c->pem[0], cfg.ca_len = c->len[0];
        cfg.cert_pem = c->pem[1], cfg.cert_len = c->len[1];
        cfg.key_pem = c->pem[2], cfg.key_len = c->len[2];
    }
    dl_enter(d, DL_LOADING, "connecting");
    /* the fault seam of the connection (dns.fail, tcp.refuse, ...) */
    const struct modem_fault_ops *f = m->faults;
    int code = f && f->dl_start ? f->dl_start(m->faults_ud, &d->url) : 0;
    if (code) {
        dl_finish(d, code);
        return;
    }
    fota_src_on_room(d->src, on_room, d);
    int r = net_http_start(&cfg, &http_ops, d, &d->url, &d->http);
    if (r) {
        modem_log(m, 0, "download: cannot start: %s", strerror(-r));
        d->http = NULL;
        dl_finish(d, FOTA_DL_UNKNOWN);
    }
}

/* Worker: each certificate file that exists, NUL-terminated. A file that
 * cannot be read is left out (and logged on the loop). */
static int certs_run(void *ud)
{
    static const char *const names[] = {CA_FILE, CERT_FILE, KEY_FILE};
    struct dl_certs *c = ud;
    for (int i = 0; i < 3; i++) {
        uint8_t *buf;
        size_t len;
        if (store_efs_read(c->store, names[i], &buf, &len) != 0)
            continue;
        uint8_t *z = realloc(buf, len + 1);
        if (!z) {
            free(buf);
            return -ENOMEM;
        }
        z[len] = '\0';
        c->pem[i] = z;
        c->len[i] = len + 1;
    }
    return 0;
}

static void certs_done(void *ud, int result)
{
    struct dl_certs *c = ud;
    struct modem_dl *d = c->dl;
    if (!d) { /* the download was cut meanwhile */
        certs_free(c);
        return;
    }
    d->certs = NULL;
    if (result) {
        modem_log(d->m, 0, "download: cannot read the certificates: %s", strerror(-result));
        dl_finish(d, FOTA_DL_UNKNOWN);
    } else {
        if (c->pem[1] && !c->pem[2])
            modem_log(d->m, 0, "download: %s without %s: no client certificate", CERT_FILE,
                      KEY_FILE);
        transport_start(d, c);
    }
    certs_free(c); /* mbedTLS parsed them in net_http_start() */
}

/* After OK: HTTPSTART, then what can end the download before a byte. */
static void on_start(struct dclock_timer *t)
{
    struct modem_dl *d = t->data;
    struct modem *m = d->m;
    stage_urc(m, FOTA_STAGE_HTTPSTART, -1);
    if (d->url_err) {
        modem_log(m, 0, "download: the URL does not parse");
        dl_finish(d, FOTA_DL_URL);
        return;
    }
    char apn[MODEM_APN_MAX + 1];
    int r = modem_net_data_ok(m, modem_download_apn(m, apn, sizeof(apn)));
    if (r) {
        modem_log(m, 0, "download: no data connection on APN \"%s\": %s", apn,
                  r == -EACCES ? "the network refuses the APN" : "not registered");
        dl_finish(d, FOTA_DL_CONNECT);
        return;
    }
    if (d->url.scheme != NET_HTTPS) {
        transport_start(d, NULL);
        return;
    }
    struct dl_certs *c = calloc(1, sizeof(*c));
    if (c) { /* the worker may run before store_submit() returns */
        c->store = m->store;
        c->dl = d;
    }
    if (!c || store_submit(m->store, certs_run, certs_done, c) != 0) {
        free(c);
        dl_finish(d, FOTA_DL_UNKNOWN);
        return;
    }
    d->certs = c;
    dl_enter(d, DL_CERTS, "https");
}

int modem_dl_start(struct modem *m, const char *url)
{
    if (m->dl)
        return FOTA_CME_BUSY;
    struct modem_dl *d = calloc(1, sizeof(*d));
    if (!d)
        return AT_ERROR;
    *d = (struct modem_dl){.m = m, .state = DL_STARTING, .pct = FOTA_PCT_GATE_INIT};
    /* a URL with a known scheme that does not parse is taken, and fails
     * as the real module's does: HTTPEND,705 (the note's "URL error") */
    d->url_err = net_url_parse(url, &d->url);
    snprintf(d->text, sizeof(d->text), "%s", url);
    int r = fota_src_begin(m->fota, FOTA_SRC_DOWNLOAD, 0, &d->src);
    if (r) {
        free(d);
        return r == FOTA_CME_BUSY ? FOTA_CME_BUSY : AT_ERROR;
    }
    dclock_timer_init(m->clk, &d->timer, on_start, d);
    dclock_timer_init(m->clk, &d->stall, on_stall, d);
    dclock_timer_start(&d->timer, 0); /* after the OK */
    m->dl = d;
    modem_log(m, 1, "download: %s", url);
    return AT_OK;
}

bool modem_dl_progress(const struct modem *m, uint64_t *got, uint64_t *size)
{
    const struct modem_dl *d = m->dl;
    if (!d || !d->src)
        return false;
    *got = fota_src_taken(d->src);
    *size = d->size;
    return true;
}

void modem_dl_abort(struct modem *m, void (*cb)(void *arg), void *arg)
{
    struct modem_dl *d = m->dl;
    if (!d) {
        if (cb)
            cb(arg);
        return;
    }
    /* a reset, a power cut or the close: no URC; what arrived stays in the
     * slot (not a whole package: it never passes the check) */
    if (d->src) {
        fota_src_on_room(d->src, NULL, NULL);
        fota_src_end(d->src, FOTA_SRC_CUT, NULL, NULL);
        d->src = NULL;
    }
    else if (d->state == DL_STORING)
        fota_src_forget(m->fota); /* its dl_stored() must not come */
    dl_enter(d, DL_DONE, "cut");
    d->closed_cb = cb;
    d->closed_arg = arg;
    dl_close(d);
}

void modem_dl_net_lost(struct modem *m)
{
    struct modem_dl *d = m->dl;
    if (!d || (d->state != DL_CERTS && d->state != DL_LOADING))
        return; /* not begun (its check comes), or every byte is in */
    /* the PDN connection is gone under the transfer: the module's IP stack
     * drops its sockets, which the HTTP client sees as the server
     * connection failing (table 3: 702) */
    modem_log(m, 0, "download: the data connection is gone");
    if (d->certs) {
        d->certs->dl = NULL;
        d->certs = NULL;
    }
    if (d->http) {
        net_http_close(d->http, NULL, NULL);
        d->http = NULL;
    }
    fota_src_on_room(d->src, NULL, NULL);
    dl_finish(d, FOTA_DL_CONNECT);
}
