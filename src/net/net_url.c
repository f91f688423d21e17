/* net_url.c - the URLs AT+QFOTADL takes (see include/dfota/net.h).
 *
 * The form is "<scheme>://<host>[:<port>][<path>[?<query>]][#<fragment>]",
 * with a host name, an IPv4 address or a [IPv6] literal. The path and query
 * are kept byte for byte (no percent decoding: the server gets what the host
 * sent), the fragment is dropped (it never goes on the wire).
 *
 * Userinfo ("user:pass@host") is refused: the BG95 takes no credentials in
 * the URL (the application note gives none, and it authenticates HTTPS
 * through the certificate files in EFS), and an '@' in the authority is
 * more likely a typo or a spoof ("http://good.example@evil.example/") than
 * something to honour.
 */
#include "dfota/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *prefix;
    size_t len;
    uint16_t port;
} schemes[] = {
#define X(id, prefix, port) [NET_##id] = {prefix, sizeof(prefix) - 1, port},
    NET_SCHEME_MAP(X)
#undef X
};

#define N_SCHEMES (sizeof(schemes) / sizeof(schemes[0]))

int net_url_scheme(const char *url, enum net_scheme *out)
{
    if (!url)
        return -EINVAL;
    for (size_t i = 0; i < N_SCHEMES; i++) {
        if (strncasecmp(url, schemes[i].prefix, schemes[i].len) == 0) {
            *out = (enum net_scheme)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* Whether @p c may appear in a URL at all: no space, no control character. */
static bool url_char_ok(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

static bool host_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

/* A host name or IPv4 address of @p len bytes: DNS characters, no empty
 * label; all digits and dots must be a valid dotted quad. */
static int check_host_name(const char *h, size_t len)
{
    if (len == 0 || len > NET_HOST_MAX || h[0] == '.')
        return -EINVAL;
    bool numeric = true;
    for (size_t i = 0; i < len; i++) {
        if (!host_char_ok((unsigned char)h[i]))
            return -EINVAL;
        if (h[i] == '.' && i + 1 < len && h[i + 1] == '.')
            return -EINVAL;
        if (h[i] != '.' && (h[i] < '0' || h[i] > '9'))
            numeric = false;
    }
    if (numeric) {
        char tmp[NET_HOST_MAX + 1];
        struct in_addr a;
        memcpy(tmp, h, len);
        tmp[len] = '\0';
        if (inet_pton(AF_INET, tmp, &a) != 1)
            return -EINVAL;
    }
    return 0;
}

/* Copies path and query @p p (@p len bytes, may start with '?' or be empty)
 * into @p out, dropping a fragment and putting a '/' in front when none. */
static int copy_path(char out[NET_URL_MAX + 1], const char *p, size_t len)
{
    const char *hash = memchr(p, '#', len);
    if (hash)
        len = (size_t)(hash - p);
    size_t o = 0;
    if (len == 0 || p[0] != '/')
        out[o++] = '/';
    if (o + len > NET_URL_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!url_char_ok((unsigned char)p[i]))
            return -EINVAL;
    }
    memcpy(out + o, p, len);
    out[o + len] = '\0';
    return 0;
}

/* Parses "host[:port]" of @p len bytes at @p a into @p out (whose scheme is
 * set, for the default port). */
static int parse_authority(const char *a, size_t len, struct net_url *out)
{
    const char *end = a + len;
    const char *host = a, *host_end, *port = NULL;
    if (memchr(a, '@', len))
        return -EINVAL; /* userinfo: see the top of this file */
    out->ipv6 = false;
    if (len > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', len);
        if (!rb)
            return -EINVAL;
        host = a + 1;
        host_end = rb;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return -EINVAL;
            port = rb + 2;
        }
        size_t hl = (size_t)(host_end - host);
        struct in6_addr a6;
        if (hl == 0 || hl >= INET6_ADDRSTRLEN)
            return -EINVAL;
        memcpy(out->host, host, hl);
        out->host[hl] = '\0';
        if (inet_pton(AF_INET6, out->host, &a6) != 1)
            return -EINVAL;
        out->ipv6 = true;
    } else {
        const char *colon = memchr(a, ':', len);
        host_end = colon ? colon : end;
        if (colon)
            port = colon + 1;
        size_t hl = (size_t)(host_end - host);
        if (check_host_name(host, hl) != 0)
            return -EINVAL;
        memcpy(out->host, host, hl);
        out->host[hl] = '\0';
    }
    out->port = schemes[out->scheme].port;
    if (port) {
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl > 5)
            return -EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < pl; i++) {
            if (port[i] < '0' || port[i] > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v == 0 || v > 65535)
            return -EINVAL;
        out->port = (uint16_t)v;
    }
    return 0;
}

int net_url_parse(const char *url, struct net_url *out)
{
    if (!url || !out)
        return -EINVAL;
    size_t len = strnlen(url, NET_URL_MAX + 1);
    if (len > NET_URL_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!url_char_ok((unsigned char)url[i]))
            return -EINVAL;
    }
    struct net_url u;
    memset(&u, 0, sizeof(u));
    if (net_url_scheme(url, &u.scheme) != 0)
        return -EINVAL;
    const char *a = url + schemes[u.scheme].len;
    size_t alen = strcspn(a, "/?#");
    if (parse_authority(a, alen, &u) != 0)
        return -EINVAL;
    if (copy_path(u.path, a + alen, strlen(a + alen)) != 0)
        return -EINVAL;
    *out = u;
    return 0;
}

/* RFC 3986 5.2.4: removes "." and ".." segments of the path in @p p (up to
 * its query), in place. */
static void remove_dot_segments(char *p)
{
    char *q = strchr(p, '?');
    size_t plen = q ? (size_t)(q - p) : strlen(p);
    char buf[NET_URL_MAX + 1];
    size_t o = 0, i = 0;
    while (i < plen) {
        /* p[i] is '/' here: the path starts with one, segments follow one */
        size_t j = i + 1;
        while (j < plen && p[j] != '/')
            j++;
        size_t sl = j - i - 1;
        const char *seg = p + i + 1;
        bool last = j == plen;
        if (sl == 1 && seg[0] == '.') {
            if (last)
                buf[o++] = '/';
        } else if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
            while (o > 0 && buf[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the '/' before the dropped segment */
            if (last)
                buf[o++] = '/';
        } else {
            memcpy(buf + o, p + i, sl + 1);
            o += sl + 1;
        }
        i = j;
    }
    if (o == 0)
        buf[o++] = '/';
    size_t rest = q ? strlen(q) : 0;
    memcpy(buf + o, q ? q : "", rest);
    buf[o + rest] = '\0';
    memcpy(p, buf, o + rest + 1);
}

/* Whether @p ref starts with some "scheme:" of RFC 3986 3.1. */
static bool has_scheme(const char *ref)
{
    size_t i = 0;
    if (!((ref[0] >= 'a' && ref[0] <= 'z') || (ref[0] >= 'A' && ref[0] <= 'Z')))
        return false;
    while (ref[i] && ref[i] != ':' && ref[i] != '/' && ref[i] != '?' && ref[i] != '#')
        i++;
    return ref[i] == ':';
}

static bool is_http(enum net_scheme s)
{
    return s == NET_HTTP || s == NET_HTTPS;
}

int net_url_resolve(const struct net_url *base, const char *ref, struct net_url *out)
{
    if (!base || !ref || !out)
        return -EINVAL;
    size_t len = strnlen(ref, NET_URL_MAX + 1);
    if (len == 0 || len > NET_URL_MAX)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (!url_char_ok((unsigned char)ref[i]))
            return -EINVAL;
    }
    struct net_url u;
    if (has_scheme(ref)) {
        if (net_url_parse(ref, &u) != 0)
            return -EINVAL;
        /* a redirect stays within its family: http(s) to coap is no redirect */
        if (is_http(base->scheme) != is_http(u.scheme))
            return -EINVAL;
        remove_dot_segments(u.path);
        *out = u;
        return 0;
    }
    if (ref[0] == '/' && ref[1] == '/') {
        char buf[NET_URL_MAX + 16];
        int n = snprintf(buf, sizeof(buf), "%s%s", schemes[base->scheme].prefix, ref + 2);
        if (n < 0 || (size_t)n >= sizeof(buf) || n > NET_URL_MAX)
            return -EINVAL;
        if (net_url_parse(buf, &u) != 0)
            return -EINVAL;
        remove_dot_segments(u.path);
        *out = u;
        return 0;
    }
    u = *base;
    if (ref[0] == '/') {
        if (copy_path(u.path, ref, len) != 0)
            return -EINVAL;
    } else {
        /* the base path's directory (or the whole path, before a query-only
         * reference), then the reference */
        char merged[2 * NET_URL_MAX + 2];
        size_t bl = strcspn(base->path, "?");
        if (ref[0] != '?' && ref[0] != '#') {
            while (bl > 0 && base->path[bl - 1] != '/')
                bl--;
        }
        if (ref[0] == '#')
            bl = strlen(base->path); /* same document, query kept */
        memcpy(merged, base->path, bl);
        memcpy(merged + bl, ref, len);
        merged[bl + len] = '\0';
        if (copy_path(u.path, merged, bl + len) != 0)
            return -EINVAL;
    }
    remove_dot_segments(u.path);
    *out = u;
    return 0;
}
