/* net_http.c - an HTTP/1.1 GET download on the libuv loop (see
 * include/dfota/net.h): uv_getaddrinfo, a non-blocking uv_tcp_t, llhttp
 * for the response, dclock timers for every timeout, redirects, pacing at
 * the network model's rate and back-pressure from the door.
 *
 * One connection at a time; a redirect closes it and opens the next. The
 * object lives until net_http_close() and the close callbacks of every
 * handle it started (a getaddrinfo being cancelled counts as one).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "dfota/fota.h"
#include "dfota/net.h"
#include "net_int.h"

#define DEFAULT_UA "QUECTEL_MODULE"
#define DEFAULT_CONNECT_MS 20000
#define DEFAULT_STALL_MS 30000
#define DEFAULT_REDIRECTS 5
#define READ_BUF 65536
#define REQ_MAX (NET_URL_MAX + NET_HOST_MAX + 256)

/* The download's states (STYLE.md 10). */
enum http_state {
    H_WAIT,     /* the link's latency before the first packet */
    H_RESOLVE,  /* getaddrinfo */
    H_CONNECT,  /* TCP connect */
    H_RESPONSE, /* request sent, waiting for the status and headers */
    H_BODY,     /* the final response's body */
    H_DONE,     /* on_end told */
};

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct net_http *h;  /* NULL once the download let go of it */
    struct net_tls *tls; /* https: this connection's session */
    bool secure;         /* its handshake is done */
    char buf[READ_BUF];
    char plain[READ_BUF]; /* https: decrypted bytes */
};

/* One write on its way: the bytes live with the request. */
struct wreq {
    uv_write_t req;
    struct conn *c;
    uint8_t data[];
};

struct net_http {
    struct net_http_cfg cfg;
    struct net_dl_ops ops;
    void *ud;
    struct net_url url;
    enum http_state state;
    unsigned redirects;

    uv_getaddrinfo_t gai;
    bool gai_busy;
    struct addrinfo *ai, *ai_next; /* addresses left to try */
    struct conn *conn;
    unsigned handles; /* getaddrinfo and connections still to close */

    llhttp_t parser;
    llhttp_settings_t settings;
    int status;
    bool in_location;
    bool complete;
    char location[NET_URL_MAX + 1];
    size_t location_len;
    int err; /* set by a callback that stops the parser */

    /* https: the PEMs of the configuration, kept for each connection's
     * session (a redirect opens a new one) */
    uint8_t *pem[3];
    size_t pem_len[3];
    bool tls_bad; /* they do not parse: 702 once started */

    uint64_t received, body_t0;
    struct dclock_timer connect_timer, stall_timer, total_timer, resume_timer, wait_timer;
    bool paused; /* the door's back-pressure (net_http_pause) */
    bool held;   /* reading waits for resume_timer: the link's pace, or a resume */

    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void hlog(const struct net_http *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hlog(const struct net_http *h, int level, const char *fmt, ...)
{
    if (!h->cfg.log)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    h->cfg.log(h->ud, level, msg);
}

static const char *state_name(enum http_state s)
{
    switch (s) {
    case H_WAIT:
        return "wait";
    case H_RESOLVE:
        return "resolve";
    case H_CONNECT:
        return "connect";
    case H_RESPONSE:
        return "response";
    case H_BODY:
        return "body";
    case H_DONE:
        return "done";
    }
    return "?";
}

static void enter(struct net_http *h, enum http_state s, const char *event)
{
    hlog(h, 2, "http: %s -> %s (%s)", state_name(h->state), state_name(s), event);
    h->state = s;
}

/* ---- teardown -------------------------------------------------------- */

static void maybe_free(struct net_http *h)
{
    if (!h->closing || h->handles)
        return;
    void (*cb)(void *) = h->close_cb;
    void *arg = h->close_arg;
    if (h->ai)
        uv_freeaddrinfo(h->ai);
    for (int i = 0; i < 3; i++)
        free(h->pem[i]);
    free(h);
    if (cb)
        cb(arg);
}

static void conn_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    struct net_http *h = c->h;
    net_tls_free(c->tls);
    free(c);
    if (h) {
        h->handles--;
        maybe_free(h);
    }
}

static void conn_drop(struct net_http *h)
{
    struct conn *c = h->conn;
    h->conn = NULL;
    if (c)
        uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void timers_stop(struct net_http *h)
{
    dclock_timer_stop(&h->connect_timer);
    dclock_timer_stop(&h->stall_timer);
    dclock_timer_stop(&h->total_timer);
    dclock_timer_stop(&h->resume_timer);
    dclock_timer_stop(&h->wait_timer);
}

/* The download is over: the door hears it once. */
static void finish(struct net_http *h, int err)
{
    if (h->state == H_DONE || h->closing)
        return;
    timers_stop(h);
    if (h->conn)
        uv_read_stop((uv_stream_t *)&h->conn->tcp);
    enter(h, H_DONE, err ? "failed" : "complete");
    if (err)
        hlog(h, 1, "http: %s:%u%s ends with %d", h->url.host, h->url.port, h->url.path, err);
    h->ops.on_end(h->ud, err);
}

/* ---- timers ----------------------------------------------------------- */

static void on_connect_timeout(struct dclock_timer *t)
{
    struct net_http *h = t->data;
    hlog(h, 0, "http: no response from %s within %u ms", h->url.host,
         (unsigned)h->cfg.connect_timeout_ms);
    finish(h, FOTA_DL_CONNECT);
}

static void on_stall(struct dclock_timer *t)
{
    struct net_http *h = t->data;
    hlog(h, 0, "http: no byte for %u ms", (unsigned)h->cfg.stall_timeout_ms);
    finish(h, FOTA_DL_TIMEOUT);
}

static void on_total(struct dclock_timer *t)
{
    struct net_http *h = t->data;
    hlog(h, 0, "http: the transfer took longer than %u ms", (unsigned)h->cfg.total_timeout_ms);
    finish(h, FOTA_DL_TIMEOUT);
}

static void stall_arm(struct net_http *h)
{
    if (!h->paused && !h->held && h->state >= H_RESPONSE && h->state < H_DONE)
        dclock_timer_start(&h->stall_timer, h->cfg.stall_timeout_ms);
}

/* ---- the response ----------------------------------------------------- */

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct net_http *h = p->data;
    h->in_location = len == 8 && strncasecmp(at, "Location", 8) == 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct net_http *h = p->data;
    if (!h->in_location)
        return 0;
    if (len > sizeof(h->location) - 1 - h->location_len) {
        h->err = FOTA_DL_REQUEST; /* no URL the module could follow */
        return -1;
    }
    memcpy(h->location + h->location_len, at, len);
    h->location_len += len;
    h->location[h->location_len] = '\0';
    return 0;
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static int on_headers_complete(llhttp_t *p)
{
    struct net_http *h = p->data;
    h->status = llhttp_get_status_code(p);
    if (h->status >= 100 && h->status < 200) {
        h->location_len = 0;
        return 0; /* an interim response: the real one follows */
    }
    dclock_timer_stop(&h->connect_timer);
    if (is_redirect(h->status) && h->location_len)
        return HPE_PAUSED; /* read_data() follows it */
    if (h->status == 404 || h->status == 410) {
        h->err = FOTA_DL_NOT_FOUND;
        return -1;
    }
    if (h->status < 200 || h->status > 299) {
        hlog(h, 0, "http: status %d", h->status);
        h->err = FOTA_DL_REQUEST;
        return -1;
    }
    enter(h, H_BODY, "headers");
    h->body_t0 = dclock_now(h->cfg.clock);
    uint64_t size =
        (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED) ? p->content_length : 0;
    int r = h->ops.on_size(h->ud, size);
    if (r || h->closing) {
        h->err = r ? r : FOTA_DL_UNKNOWN;
        return -1;
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct net_http *h = p->data;
    h->received += len;
    int r = h->ops.on_data(h->ud, (const uint8_t *)at, len);
    if (r || h->closing) {
        h->err = r ? r : FOTA_DL_UNKNOWN;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct net_http *h = p->data;
    if (h->state == H_BODY)
        h->complete = true;
    return HPE_PAUSED; /* nothing after the message is read */
}

static void connect_next(struct net_http *h);
static void resolve(struct net_http *h);

/* A 3xx with Location: the next hop, on a new connection. */
static void follow(struct net_http *h)
{
    struct net_url next;
    if (++h->redirects > h->cfg.max_redirects) {
        hlog(h, 0, "http: more than %u redirects", h->cfg.max_redirects);
        finish(h, FOTA_DL_REQUEST);
        return;
    }
    if (net_url_resolve(&h->url, h->location, &next) != 0) {
        hlog(h, 0, "http: cannot follow Location \"%s\"", h->location);
        finish(h, FOTA_DL_REQUEST);
        return;
    }
    if (next.scheme != h->url.scheme) { /* coap://, or http <-> https */
        hlog(h, 0, "http: a redirect to another scheme is not followed");
        finish(h, FOTA_DL_REQUEST);
        return;
    }
    hlog(h, 1, "http: %d -> %s", h->status, h->location);
    h->url = next;
    dclock_timer_start(&h->connect_timer, h->cfg.connect_timeout_ms); /* each hop its own */
    conn_drop(h);
    if (h->ai) {
        uv_freeaddrinfo(h->ai);
        h->ai = h->ai_next = NULL;
    }
    resolve(h);
}

static void on_resume(struct dclock_timer *t);

/* Pacing: once the body is ahead of the link's rate, reading waits. */
static void pace(struct net_http *h)
{
    if (!h->cfg.rate_bps || h->state != H_BODY)
        return;
    uint64_t now = dclock_now(h->cfg.clock);
    uint64_t due_ms = h->received * 1000 / h->cfg.rate_bps; /* when the link would be there */
    uint64_t at = h->body_t0 + due_ms;
    if (at <= now)
        return;
    h->held = true;
    dclock_timer_stop(&h->stall_timer);
    uv_read_stop((uv_stream_t *)&h->conn->tcp);
    dclock_timer_start(&h->resume_timer, at - now);
}

static void read_start(struct net_http *h);
static void tls_input(struct net_http *h, struct conn *c, const char *buf, size_t len);
static void tls_records(struct net_http *h, struct conn *c);

static void on_resume(struct dclock_timer *t)
{
    struct net_http *h = t->data;
    h->held = false;
    if (!h->paused)
        read_start(h);
}

static void parse(struct net_http *h, const char *buf, size_t len)
{
    llhttp_errno_t e = llhttp_execute(&h->parser, buf, len);
    if (h->closing)
        return;
    if (e == HPE_OK) {
        pace(h);
        return;
    }
    if (e == HPE_PAUSED && h->complete) {
        finish(h, 0);
        return;
    }
    if (e == HPE_PAUSED && is_redirect(h->status)) {
        follow(h);
        return;
    }
    if (h->err) {
        finish(h, h->err);
        return;
    }
    hlog(h, 0, "http: malformed response (%s)", llhttp_errno_name(e));
    finish(h, FOTA_DL_REQUEST);
}

/* How much is taken from the socket (and from TLS) at once: all there is
 * when not paced; paced, about 50 ms of the link's rate, so the bytes reach
 * the door at that rate and not a 64 KiB read early (DOWNLOADING would jump,
 * and a 370 KB package at 37.5 kB/s came in 14 % fast). */
static size_t read_quantum(const struct net_http *h)
{
    size_t q = h->cfg.rate_bps / 20;
    if (!h->cfg.rate_bps || q > READ_BUF)
        return READ_BUF;
    return q < 1024 ? 1024 : q;
}

static void on_alloc(uv_handle_t *handle, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    struct conn *c = handle->data;
    *buf = uv_buf_init(c->buf, c->h ? (unsigned)read_quantum(c->h) : sizeof(c->buf));
}

/* The server closed (or reset) the connection. */
static void on_eof(struct net_http *h, ssize_t nread)
{
    if (h->state == H_BODY) {
        if (nread == UV_EOF && llhttp_finish(&h->parser) == HPE_OK && h->complete) {
            finish(h, 0); /* a body read to the close */
            return;
        }
        if (h->complete) { /* llhttp_finish() answers HPE_PAUSED once on_message_complete
                              has paused it (a body read to the close) */
            finish(h, 0);
            return;
        }
        hlog(h, 0, "http: the connection ended after %llu bytes of the body (%s)",
             (unsigned long long)h->received, uv_strerror((int)nread));
        finish(h, FOTA_DL_TIMEOUT); /* a short body: see net.h on_end */
        return;
    }
    hlog(h, 0, "http: the connection ended before a response (%s)", uv_strerror((int)nread));
    finish(h, nread == UV_EOF ? FOTA_DL_REQUEST : FOTA_DL_CONNECT);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    struct net_http *h = c->h;
    if (!h || h->state == H_DONE || h->closing)
        return;
    if (nread < 0) {
        on_eof(h, nread);
        return;
    }
    if (nread == 0)
        return;
    stall_arm(h);
    if (!c->tls) {
        parse(h, buf->base, (size_t)nread);
        return;
    }
    tls_input(h, c, buf->base, (size_t)nread);
}

static void read_start(struct net_http *h)
{
    if (!h->conn || h->state < H_RESPONSE || h->state == H_DONE)
        return;
    uv_read_stop((uv_stream_t *)&h->conn->tcp); /* reading already: no error */
    struct conn *c = h->conn;
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r) {
        hlog(h, 0, "http: cannot read: %s", uv_strerror(r));
        finish(h, FOTA_DL_UNKNOWN);
        return;
    }
    stall_arm(h);
    if (c->tls && c->secure)
        tls_records(h, c); /* what a pause left decrypted or buffered: the
                              server may have sent all it will */
}

/* ---- the request ------------------------------------------------------ */

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    struct net_http *h = w->c->h;
    free(w);
    if (!h || h->closing || h->state == H_DONE || status == 0)
        return;
    hlog(h, 0, "http: cannot send: %s", uv_strerror(status));
    finish(h, h->state == H_BODY ? FOTA_DL_TIMEOUT : FOTA_DL_CONNECT);
}

/* Hands @p len bytes to the connection's stream (copied). */
static int stream_write(struct conn *c, const void *data, size_t len)
{
    struct wreq *w = malloc(sizeof(*w) + len);
    if (!w)
        return UV_ENOMEM;
    w->c = c;
    memcpy(w->data, data, len);
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (r)
        free(w);
    return r;
}

/* The session's ciphertext to the stream. */
static int tls_flush(struct conn *c)
{
    const uint8_t *p;
    size_t n = net_tls_output(c->tls, &p);
    if (!n)
        return 0;
    int r = stream_write(c, p, n);
    if (!r)
        net_tls_sent(c->tls, n);
    return r;
}

/* Sends @p len bytes of the request, through the session on https. */
static int conn_send(struct conn *c, const void *data, size_t len)
{
    if (!c->tls)
        return stream_write(c, data, len);
    if (net_tls_write(c->tls, data, len) != 0)
        return UV_EPROTO;
    return tls_flush(c);
}

static void send_request(struct net_http *h)
{
    struct conn *c = h->conn;
    const struct net_url *u = &h->url;
    bool default_port =
        (u->scheme == NET_HTTP && u->port == 80) || (u->scheme == NET_HTTPS && u->port == 443);
    char host[NET_HOST_MAX + 16];
    int hl =
        snprintf(host, sizeof(host), "%s%s%s", u->ipv6 ? "[" : "", u->host, u->ipv6 ? "]" : "");
    if (!default_port) /* Host names the port unless it is the scheme's */
        snprintf(host + hl, sizeof(host) - (size_t)hl, ":%u", (unsigned)u->port);
    char req[REQ_MAX];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     u->path, host, h->cfg.user_agent ? h->cfg.user_agent : DEFAULT_UA);
    llhttp_init(&h->parser, HTTP_RESPONSE, &h->settings);
    h->parser.data = h;
    h->status = 0;
    h->location_len = 0;
    h->complete = false;
    if (h->state != H_RESPONSE)
        enter(h, H_RESPONSE, "connected");
    int r = conn_send(c, req, (size_t)n);
    if (r) {
        hlog(h, 0, "http: cannot send the request: %s", uv_strerror(r));
        finish(h, FOTA_DL_CONNECT);
        return;
    }
    read_start(h);
}

/* ---- connecting ------------------------------------------------------- */

/* ---- TLS ------------------------------------------------------------- */

static void tls_fail(struct net_http *h, const char *why)
{
    hlog(h, 0, "https: %s: %s", h->url.host, why);
    finish(h, h->state == H_BODY ? FOTA_DL_TIMEOUT : FOTA_DL_CONNECT);
}

/* A TLS session for the URL's host with the download's certificates; on
 * failure why is in @p err. */
static int tls_new(const struct net_http *h, struct net_tls **out, char *err, size_t cap)
{
    struct net_tls_cfg tc = {
        .host = h->url.host,
        .ca_pem = h->pem[0],
        .ca_len = h->pem_len[0],
        .cert_pem = h->pem[1],
        .cert_len = h->pem_len[1],
        .key_pem = h->pem[2],
        .key_len = h->pem_len[2],
        .err = err,
        .err_cap = cap,
    };
    return net_tls_new(&tc, out);
}

static void tls_start(struct net_http *h, struct conn *c)
{
    char err[160] = "";
    if (tls_new(h, &c->tls, err, sizeof(err)) != 0) {
        tls_fail(h, err);
        return;
    }
    enter(h, H_RESPONSE, "tls");
    char why[160] = "";
    if (net_tls_handshake(c->tls, why, sizeof(why)) < 0 || tls_flush(c) != 0) {
        tls_fail(h, why[0] ? why : "cannot send");
        return;
    }
    read_start(h);
}

/* Ciphertext from the server: the handshake, then the response. */
static void tls_input(struct net_http *h, struct conn *c, const char *buf, size_t len)
{
    if (net_tls_input(c->tls, buf, len) != 0) {
        finish(h, FOTA_DL_UNKNOWN);
        return;
    }
    if (!c->secure) {
        char why[160] = "";
        int r = net_tls_handshake(c->tls, why, sizeof(why));
        if (r < 0) {
            tls_fail(h, why);
            return;
        }
        if (tls_flush(c) != 0) {
            tls_fail(h, "cannot send");
            return;
        }
        if (r > 0)
            return;
        c->secure = true;
        if (!net_tls_verified(c->tls))
            hlog(h, 0, "https: %s: the server was not verified (no /datatx/fota_cacert.pem)",
                 h->url.host);
        send_request(h);
        if (h->state == H_DONE || h->closing)
            return;
    }
    tls_records(h, c);
}

/* The response's bytes out of the records TLS holds, until they run out or
 * reading has to wait (paced, paused, over). */
static void tls_records(struct net_http *h, struct conn *c)
{
    for (;;) {
        ssize_t n = net_tls_read(c->tls, c->plain, read_quantum(h));
        if (n == 0)
            return;
        if (n == -EPIPE) { /* close_notify: as the end of the stream */
            on_eof(h, UV_EOF);
            return;
        }
        if (n < 0) {
            tls_fail(h, "a record that does not decrypt");
            return;
        }
        parse(h, c->plain, (size_t)n);
        if (h->state == H_DONE || h->closing || c != h->conn || h->held || h->paused)
            return;
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct net_http *h = c->h;
    if (!h || h->closing || h->state != H_CONNECT)
        return;
    if (status == 0 && h->url.scheme == NET_HTTPS) {
        tls_start(h, c);
        return;
    }
    if (status == 0) {
        send_request(h);
        return;
    }
    hlog(h, 1, "http: connect to %s:%u: %s", h->url.host, h->url.port, uv_strerror(status));
    conn_drop(h);
    connect_next(h); /* the next address, if any */
}

static void connect_next(struct net_http *h)
{
    while (h->ai_next) {
        struct addrinfo *ai = h->ai_next;
        h->ai_next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            finish(h, FOTA_DL_UNKNOWN);
            return;
        }
        c->h = h;
        uv_tcp_init(h->cfg.loop, &c->tcp);
        c->tcp.data = c;
        c->connect.data = c;
        h->conn = c;
        h->handles++;
        int r = uv_tcp_connect(&c->connect, &c->tcp, ai->ai_addr, on_connected);
        if (r == 0) {
            enter(h, H_CONNECT, "address");
            return;
        }
        hlog(h, 1, "http: connect to %s: %s", h->url.host, uv_strerror(r));
        conn_drop(h);
    }
    hlog(h, 0, "http: cannot connect to %s:%u", h->url.host, h->url.port);
    finish(h, FOTA_DL_CONNECT);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct net_http *h = req->data;
    h->gai_busy = false;
    h->handles--;
    if (h->closing || h->state == H_DONE) {
        if (res)
            uv_freeaddrinfo(res);
        maybe_free(h);
        return;
    }
    if (status) {
        hlog(h, 0, "http: cannot resolve %s: %s", h->url.host, uv_strerror(status));
        finish(h, FOTA_DL_CONNECT);
        return;
    }
    h->ai = h->ai_next = res;
    connect_next(h);
}

static void resolve(struct net_http *h)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)h->url.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (h->url.ipv6)
        hints.ai_flags = AI_NUMERICHOST; /* a literal: no lookup */
    h->gai.data = h;
    enter(h, H_RESOLVE, h->url.host);
    int r = uv_getaddrinfo(h->cfg.loop, &h->gai, on_resolved, h->url.host, port, &hints);
    if (r) {
        hlog(h, 0, "http: cannot resolve %s: %s", h->url.host, uv_strerror(r));
        finish(h, FOTA_DL_CONNECT);
        return;
    }
    h->gai_busy = true;
    h->handles++;
}

static void on_wait(struct dclock_timer *t)
{
    struct net_http *h = t->data;
    if (h->tls_bad) {
        finish(h, FOTA_DL_CONNECT);
        return;
    }
    resolve(h);
}

/* ---- the interface ---------------------------------------------------- */

int net_http_start(const struct net_http_cfg *cfg, const struct net_dl_ops *ops, void *ud,
                   const struct net_url *url, struct net_http **out)
{
    if (!cfg || !ops || !url || !out || (url->scheme != NET_HTTP && url->scheme != NET_HTTPS))
        return -EINVAL;
    struct net_http *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->cfg = *cfg;
    h->cfg.ca_pem = h->cfg.cert_pem = h->cfg.key_pem = NULL; /* borrowed for the call only */
    if (!h->cfg.connect_timeout_ms)
        h->cfg.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!h->cfg.stall_timeout_ms)
        h->cfg.stall_timeout_ms = DEFAULT_STALL_MS;
    if (!h->cfg.max_redirects)
        h->cfg.max_redirects = DEFAULT_REDIRECTS;
    h->ops = *ops;
    h->ud = ud;
    h->url = *url;
    const uint8_t *pem[3] = {cfg->ca_pem, cfg->cert_pem, cfg->key_pem};
    const size_t pem_len[3] = {cfg->ca_len, cfg->cert_len, cfg->key_len};
    for (int i = 0; i < 3; i++) {
        if (!pem[i] || (i > 0 && (!cfg->cert_pem || !cfg->key_pem)))
            continue; /* a client certificate goes with its key */
        h->pem[i] = malloc(pem_len[i]);
        if (!h->pem[i]) {
            h->closing = true;
            maybe_free(h);
            return -ENOMEM;
        }
        memcpy(h->pem[i], pem[i], pem_len[i]);
        h->pem_len[i] = pem_len[i];
    }
    if (url->scheme == NET_HTTPS) { /* a configuration that cannot work fails once started */
        char err[160] = "";
        struct net_tls *probe;
        if (tls_new(h, &probe, err, sizeof(err)) == 0)
            net_tls_free(probe);
        else
            h->tls_bad = true, hlog(h, 0, "https: %s", err);
    }
    llhttp_settings_init(&h->settings);
    h->settings.on_header_field = on_header_field;
    h->settings.on_header_value = on_header_value;
    h->settings.on_headers_complete = on_headers_complete;
    h->settings.on_body = on_body;
    h->settings.on_message_complete = on_message_complete;
    struct dclock *clk = cfg->clock;
    dclock_timer_init(clk, &h->connect_timer, on_connect_timeout, h);
    dclock_timer_init(clk, &h->stall_timer, on_stall, h);
    dclock_timer_init(clk, &h->total_timer, on_total, h);
    dclock_timer_init(clk, &h->resume_timer, on_resume, h);
    dclock_timer_init(clk, &h->wait_timer, on_wait, h);
    dclock_timer_start(&h->connect_timer, h->cfg.connect_timeout_ms + h->cfg.latency_ms);
    if (h->cfg.total_timeout_ms)
        dclock_timer_start(&h->total_timer, h->cfg.total_timeout_ms);
    h->state = H_WAIT;
    /* the link's latency before the first packet; 0 resolves on the next
     * turn, so that no callback runs from inside this call */
    dclock_timer_start(&h->wait_timer, h->cfg.latency_ms);
    *out = h;
    return 0;
}

void net_http_pause(struct net_http *h, bool paused)
{
    if (h->paused == paused || h->state == H_DONE)
        return;
    h->paused = paused;
    if (paused) {
        dclock_timer_stop(&h->stall_timer);
        if (h->conn)
            uv_read_stop((uv_stream_t *)&h->conn->tcp);
    } else if (!h->held) {
        /* from the loop, not inside the door's call: reading may end the
         * download at once (what TLS holds), and on_end must not run
         * inside the door's own callback */
        h->held = true;
        dclock_timer_start(&h->resume_timer, 0);
    }
}

uint64_t net_http_received(const struct net_http *h)
{
    return h->received;
}

/* Safe from inside on_end: every path that tells the door returns at once
 * without touching the download again, and the handles' own callbacks
 * (a write or connect cancelled by the close) no longer reach it. */
void net_http_close(struct net_http *h, void (*cb)(void *arg), void *arg)
{
    h->closing = true;
    h->close_cb = cb;
    h->close_arg = arg;
    timers_stop(h);
    if (h->gai_busy)
        uv_cancel((uv_req_t *)&h->gai); /* on_resolved still comes, and frees */
    if (h->conn) {
        h->conn->h = NULL; /* its callbacks no longer reach us */
        h->handles--;
        conn_drop(h);
    }
    maybe_free(h);
}
