/* net.h - the transports a package is downloaded over: the URL form the
 * application note gives (2.2.3.1, 2.2.3.2), and an HTTP(S) client on the
 * libuv loop (llhttp for the responses, mbedTLS 2.28 for TLS).
 *
 * A download reports to its door (the modem's, which feeds the DFOTA job's
 * package source) through callbacks, all on the loop thread. Nothing here
 * blocks: DNS through uv_getaddrinfo, sockets non-blocking, TLS driven
 * through its BIO callbacks over memory buffers, every timeout a dclock
 * timer (so the profile's scale applies and unit tests use the test
 * clock). A download knows nothing of the slot, the job or the modem.
 */
#ifndef DFOTA_NET_H
#define DFOTA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "dfota/clock.h"

/* ---- URLs ---------------------------------------------------------------- */

/* X(id, prefix, default port): the schemes AT+QFOTADL takes, in any case.
 * The note gives 80 as the default port of all four; that is HTTP's. The
 * real world's defaults are used for the others (443 for https, RFC 7252's
 * 5683 / 5684 for coap / coaps); see README. */
#define NET_SCHEME_MAP(X)                                                                          \
    X(HTTP, "http://", 80)                                                                         \
    X(HTTPS, "https://", 443)                                                                      \
    X(COAP, "coap://", 5683)                                                                       \
    X(COAPS, "coaps://", 5684)

enum net_scheme {
#define X(id, prefix, port) NET_##id,
    NET_SCHEME_MAP(X)
#undef X
};

#define NET_URL_MAX 700  /* <HTTP_URL>/<CoAP_URL>: "The maximum length is 700 bytes" */
#define NET_HOST_MAX 255 /* a DNS name (RFC 1035), or an IP literal */

/** A URL taken apart. */
struct net_url {
    enum net_scheme scheme;
    char host[NET_HOST_MAX + 1]; /**< name or IP literal, IPv6 without its brackets */
    bool ipv6;                   /**< host was a [IPv6] literal */
    uint16_t port;               /**< given, or the scheme's default */
    char path[NET_URL_MAX + 1];  /**< path and query as given, "/" when empty; no fragment */
};

/** The scheme @p url starts with (case-insensitive) into *@p out: 0, or
 *  -EINVAL when it starts with none of NET_SCHEME_MAP. Only the prefix is
 *  looked at: what AT+QFOTADL checks at command time (590). */
int net_url_scheme(const char *url, enum net_scheme *out);

/** Parses @p url (at most NET_URL_MAX bytes) into *@p out. 0, or -EINVAL:
 *  no known scheme, an empty or over-long host, a bad IPv6 literal, a port
 *  that is not 1..65535 digits, a space or control character anywhere
 *  (the download then ends with 705, URL error). */
int net_url_parse(const char *url, struct net_url *out);

/** Resolves @p ref (a Location header: absolute URL, "//host/path",
 *  "/path" or a relative path) against @p base into *@p out. 0 or -EINVAL
 *  (then a redirect ends with 703). */
int net_url_resolve(const struct net_url *base, const char *ref, struct net_url *out);

/* ---- what a download tells its door (HTTP and CoAP alike) ---------- */

/** What a download tells its door, on the loop thread. A non-zero return
 *  of on_size / on_data is a table-3 code that ends the download: on_end
 *  follows with that code. */
struct net_dl_ops {
    /** The body begins: @p size its length when the server declares it
     *  (HTTP Content-Length, CoAP Size2), 0 when not known (chunked, read
     *  to close). Once per download, after any redirects; before the first
     *  on_data. */
    int (*on_size)(void *ud, uint64_t size);
    /** The next @p len bytes of the body (valid during the call only). */
    int (*on_data)(void *ud, const uint8_t *buf, size_t len);
    /** The download is over: 0 when the whole body arrived, else the code
     *  (fota.h FOTA_DL_ERR_MAP): 702 DNS / connect / TLS / timeout before
     *  the response, 703 a status other than 2xx/404/410 (CoAP: a 4.xx or
     *  5.xx other than 4.04), a malformed response, too many redirects,
     *  704 stall or total timeout or a body cut short (fewer bytes than
     *  Content-Length, or mid-chunk), 705 a URL that does not parse,
     *  706 404 / 410 (CoAP 4.04), 701 anything else. Called once;
     *  the download may be closed from inside it. */
    void (*on_end)(void *ud, int err);
};

/* ---- HTTP(S) downloads ------------------------------------------------- */

struct net_http;

/** What a download needs to know; copied by net_http_start(), except the
 *  buffers, which are borrowed until it returns (TLS parses them then). */
struct net_http_cfg {
    uv_loop_t *loop;
    struct dclock *clock;         /**< every timeout below is module time on it */
    const char *user_agent;       /**< NULL: "QUECTEL_MODULE" */
    uint32_t connect_timeout_ms;  /**< DNS + TCP + TLS handshake (702 past it); 0: 20000 */
    uint32_t stall_timeout_ms;    /**< no byte from the server this long (704); 0: 30000 */
    uint32_t total_timeout_ms;    /**< the whole transfer (704); 0: none */
    uint32_t rate_bps;            /**< pace the body at this many bytes/s (network model); 0: not paced */
    uint32_t latency_ms;          /**< one-way link latency added before the request (network model) */
    unsigned max_redirects;       /**< 301/302/303/307/308 followed; more is 703. 0: 5 */
    /* TLS (https only). A CA given: the server must verify against it and
     * match the URL's host (else 702). None: not verified (what the real
     * module does without fota_cacert.pem), logged. */
    const uint8_t *ca_pem;        /**< NUL-terminated PEM, or NULL */
    size_t ca_len;                /**< including the NUL, as mbedtls_x509_crt_parse() wants */
    const uint8_t *cert_pem, *key_pem; /**< client certificate and key (mutual TLS), or NULL */
    size_t cert_len, key_len;
    /** A log line (level 0 warning, 1 info, 2 debug); optional. */
    void (*log)(void *ud, int level, const char *msg);
};

/** Starts downloading @p url (copied). On 0 *@p out is the download, which
 *  the caller closes with net_http_close() (after on_end, or to cut it).
 *  Errors: -EINVAL (not http/https), -ENOMEM; a bad TLS configuration
 *  (unparsable CA, certificate or key) is not an error here: the download
 *  ends with 702 through on_end, never from inside this call. */
int net_http_start(const struct net_http_cfg *cfg, const struct net_dl_ops *ops, void *ud,
                   const struct net_url *url, struct net_http **out);

/** Stops (@p paused true) or resumes reading the body: back-pressure when
 *  the door's sink is full. The stall timer does not run while paused. */
void net_http_pause(struct net_http *h, bool paused);

/** Body bytes received so far (of the final response). */
uint64_t net_http_received(const struct net_http *h);

/** Cuts the download (no more callbacks, on_end included) and frees it
 *  once its handles are closed; @p cb (may be NULL) then runs with @p arg. */
void net_http_close(struct net_http *h, void (*cb)(void *arg), void *arg);

#endif
