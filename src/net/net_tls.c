/* net_tls.c - a TLS 1.2 client on mbedTLS 2.28 driven through its BIO
 * callbacks over two memory buffers (see net_int.h): the caller moves the
 * ciphertext between them and its libuv stream, so nothing here blocks or
 * touches a socket. Session state (RNG, configuration, certificates) is
 * per session: one download, one session. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "net_int.h"

struct buf {
    uint8_t *p;
    size_t len, cap, off; /* unread bytes: p[off..len) */
};

struct net_tls {
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca, own;
    mbedtls_pk_context key;
    bool verify;
    uint8_t ip[16]; /* the host is an IP literal: checked against the SAN's iPAddress */
    size_t ip_len;
    struct buf in, out;
};

static int buf_put(struct buf *b, const void *data, size_t len)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        if (b->off) { /* room at the front first */
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + len)
            cap *= 2;
        if (cap != b->cap) {
            uint8_t *p = realloc(b->p, cap);
            if (!p)
                return -ENOMEM;
            b->p = p;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}

static int bio_send(void *ctx, const unsigned char *data, size_t len)
{
    struct net_tls *t = ctx;
    return buf_put(&t->out, data, len) ? MBEDTLS_ERR_SSL_ALLOC_FAILED : (int)len;
}

static int bio_recv(void *ctx, unsigned char *data, size_t len)
{
    struct net_tls *t = ctx;
    size_t have = t->in.len - t->in.off;
    if (!have)
        return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = have < len ? have : len;
    memcpy(data, t->in.p + t->in.off, n);
    t->in.off += n;
    return (int)n;
}

static void say(char *err, size_t cap, const char *what, int rc)
{
    if (!err || !cap)
        return;
    char why[128];
    mbedtls_strerror(rc, why, sizeof(why));
    snprintf(err, cap, "%s: %s", what, why);
}

int net_tls_new(const struct net_tls_cfg *cfg, struct net_tls **out)
{
    struct net_tls *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->own);
    mbedtls_pk_init(&t->key);
    static const unsigned char pers[] = "dfota-sim download";
    int rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, pers,
                                   sizeof(pers) - 1);
    if (rc) {
        say(cfg->err, cfg->err_cap, "random generator", rc);
        goto fail;
    }
    rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc) {
        say(cfg->err, cfg->err_cap, "configuration", rc);
        goto fail;
    }
    /* TLS 1.2, what the BG95's SSL stack speaks (mbedTLS 2.28 has no 1.3 client) */
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    if (cfg->ca_pem) {
        rc = mbedtls_x509_crt_parse(&t->ca, cfg->ca_pem, cfg->ca_len);
        if (rc) {
            say(cfg->err, cfg->err_cap, "the CA certificate", rc);
            goto fail;
        }
        mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
        t->verify = true;
    } else {
        mbedtls_ssl_conf_authmode(&t->conf, MBEDTLS_SSL_VERIFY_NONE);
    }
    if (cfg->cert_pem && cfg->key_pem) {
        rc = mbedtls_x509_crt_parse(&t->own, cfg->cert_pem, cfg->cert_len);
        if (rc) {
            say(cfg->err, cfg->err_cap, "the client certificate", rc);
            goto fail;
        }
        rc = mbedtls_pk_parse_key(&t->key, cfg->key_pem, cfg->key_len, NULL, 0);
        if (!rc)
            rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->own, &t->key);
        if (rc) {
            say(cfg->err, cfg->err_cap, "the client key", rc);
            goto fail;
        }
    }
    rc = mbedtls_ssl_setup(&t->ssl, &t->conf);
    /* A name: SNI, and the name the certificate must show. An IP literal:
     * no SNI (RFC 6066 3), and since mbedTLS 2.28 matches names only, the
     * address is checked against the certificate's iPAddress entries after
     * the handshake (ip_matches()). */
    if (inet_pton(AF_INET, cfg->host, t->ip) == 1)
        t->ip_len = 4;
    else if (inet_pton(AF_INET6, cfg->host, t->ip) == 1)
        t->ip_len = 16;
    if (!rc && !t->ip_len)
        rc = mbedtls_ssl_set_hostname(&t->ssl, cfg->host);
    if (rc) {
        say(cfg->err, cfg->err_cap, "session", rc);
        goto fail;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    *out = t;
    return 0;
fail:
    net_tls_free(t);
    return rc == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EINVAL;
}

void net_tls_free(struct net_tls *t)
{
    if (!t)
        return;
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_free(&t->own);
    mbedtls_pk_free(&t->key);
    free(t->in.p);
    free(t->out.p);
    free(t);
}

int net_tls_input(struct net_tls *t, const void *buf, size_t len)
{
    return buf_put(&t->in, buf, len);
}

/* Whether the verified peer certificate names the IP literal the URL has
 * (SAN iPAddress, GeneralName tag [7]). */
static bool ip_matches(const struct net_tls *t)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(&t->ssl);
    if (!crt)
        return false;
    for (const mbedtls_x509_sequence *san = &crt->subject_alt_names; san; san = san->next)
        if (san->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && san->buf.len == t->ip_len &&
            memcmp(san->buf.p, t->ip, t->ip_len) == 0)
            return true;
    return false;
}

int net_tls_handshake(struct net_tls *t, char *err, size_t cap)
{
    int rc = mbedtls_ssl_handshake(&t->ssl);
    if (rc == 0 && t->verify && t->ip_len && !ip_matches(t)) {
        snprintf(err, cap, "the server's certificate does not name that address");
        return -EPROTO;
    }
    if (rc == 0)
        return 0;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 1;
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char why[256];
        mbedtls_x509_crt_verify_info(why, sizeof(why), "", mbedtls_ssl_get_verify_result(&t->ssl));
        why[strcspn(why, "\n")] = '\0';
        snprintf(err, cap, "the server's certificate: %s", why);
    } else {
        say(err, cap, "handshake", rc);
    }
    return -EPROTO;
}

bool net_tls_verified(const struct net_tls *t)
{
    return t->verify;
}

int net_tls_write(struct net_tls *t, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        int rc = mbedtls_ssl_write(&t->ssl, p, len); /* the BIO takes all: no WANT_WRITE */
        if (rc <= 0)
            return -EPROTO;
        p += rc;
        len -= (size_t)rc;
    }
    return 0;
}

ssize_t net_tls_read(struct net_tls *t, void *buf, size_t cap)
{
    int rc = mbedtls_ssl_read(&t->ssl, buf, cap);
    if (rc > 0)
        return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
        return -EPIPE;
    return -EPROTO;
}

size_t net_tls_output(struct net_tls *t, const uint8_t **p)
{
    *p = t->out.p + t->out.off;
    return t->out.len - t->out.off;
}

void net_tls_sent(struct net_tls *t, size_t n)
{
    t->out.off += n;
}
