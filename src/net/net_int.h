/* net_int.h - private to the net layer: TLS over memory buffers, so that
 * the HTTP client (or a unit test) carries its bytes over any stream. */
#ifndef DFOTA_NET_INT_H
#define DFOTA_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct net_tls;

/** What a TLS client session needs; the buffers are parsed by
 *  net_tls_new() and not kept. */
struct net_tls_cfg {
    const char *host;                   /**< SNI and the name the certificate must show */
    const uint8_t *ca_pem;              /**< NUL-terminated PEM; NULL: the peer is not verified */
    size_t ca_len;                      /**< with the NUL */
    const uint8_t *cert_pem, *key_pem;  /**< client certificate and key, or NULL */
    size_t cert_len, key_len;
    char *err;                          /**< why net_tls_new() failed, for the log */
    size_t err_cap;
};

/** A TLS 1.2 client session (mbedTLS). 0, -EINVAL (a PEM that does not
 *  parse, a key that does not go with the certificate: written to
 *  cfg->err) or -ENOMEM. */
int net_tls_new(const struct net_tls_cfg *cfg, struct net_tls **out);
void net_tls_free(struct net_tls *t);

/** Bytes that came from the peer (copied). 0 or -ENOMEM. */
int net_tls_input(struct net_tls *t, const void *buf, size_t len);

/** Advances the handshake: 0 done, 1 more bytes from the peer needed,
 *  -EPROTO a failure (the reason in @p err). */
int net_tls_handshake(struct net_tls *t, char *err, size_t cap);

/** Whether the peer's certificate was verified (a CA was given). */
bool net_tls_verified(const struct net_tls *t);

/** Encrypts @p len bytes for the peer. 0 or -EPROTO. */
int net_tls_write(struct net_tls *t, const void *buf, size_t len);

/** Decrypted bytes into @p buf: their count, 0 when more input is needed,
 *  -EPIPE once the peer closed the session (close_notify), -EPROTO. */
ssize_t net_tls_read(struct net_tls *t, void *buf, size_t cap);

/** Ciphertext waiting for the peer: *@p p and the count; net_tls_sent()
 *  drops what was handed to the stream. */
size_t net_tls_output(struct net_tls *t, const uint8_t **p);
void net_tls_sent(struct net_tls *t, size_t n);

#endif
