/* pkg_sha.c - SHA-256 through OpenSSL libcrypto's EVP interface, which uses
 * the CPU's SHA extensions (about ten times mbedTLS 2.28's C code here):
 * one-shot, streaming, and of a file read with pread().
 *
 * No state outside the objects: EVP_sha256() is a constant, and each
 * digest has its own EVP_MD_CTX, so any thread may hash at any time. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pkg_int.h"

/* What pkg_sha256_fd() reads at a time. */
#define FD_CHUNK (1u << 20)

struct pkg_sha256 {
    EVP_MD_CTX *ctx;
};

int pkg_sha256_new(struct pkg_sha256 **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct pkg_sha256 *h = calloc(1, sizeof(*h));
    if (!h || !(h->ctx = EVP_MD_CTX_new())) {
        free(h);
        return -ENOMEM;
    }
    if (EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        pkg_sha256_free(h);
        return -EIO;
    }
    *out = h;
    return 0;
}

int pkg_sha256_update(struct pkg_sha256 *h, const void *buf, size_t len)
{
    if (!h || (!buf && len))
        return -EINVAL;
    return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -EIO;
}

int pkg_sha256_final(struct pkg_sha256 *h, uint8_t out[32])
{
    if (!h || !out)
        return -EINVAL;
    unsigned n = 0;
    return EVP_DigestFinal_ex(h->ctx, out, &n) == 1 && n == 32 ? 0 : -EIO;
}

void pkg_sha256_free(struct pkg_sha256 *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

int pkg_sha256(const void *buf, size_t len, uint8_t out[32])
{
    if ((!buf && len) || !out)
        return -EINVAL;
    unsigned n = 0;
    /* EVP_Digest() wants a pointer even for no bytes */
    static const uint8_t none[1];
    return EVP_Digest(len ? buf : none, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0
                                                                                        : -EIO;
}

int pkg_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ENODATA;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

int pkg_sha256_fd(int fd, uint64_t len, uint8_t out[32])
{
    if (fd < 0 || !out)
        return -EINVAL;
    struct pkg_sha256 *h;
    int rc = pkg_sha256_new(&h);
    if (rc)
        return rc;
    uint8_t *buf = malloc(len < FD_CHUNK ? (len ? (size_t)len : 1) : FD_CHUNK);
    if (!buf)
        rc = -ENOMEM;
    for (uint64_t off = 0; !rc && off < len; off += FD_CHUNK) {
        size_t n = len - off < FD_CHUNK ? (size_t)(len - off) : FD_CHUNK;
        rc = pkg_pread_full(fd, buf, n, off);
        if (rc == -ENODATA)
            rc = -EIO; /* shorter than the caller said */
        if (!rc)
            rc = pkg_sha256_update(h, buf, n);
    }
    if (!rc)
        rc = pkg_sha256_final(h, out);
    free(buf);
    pkg_sha256_free(h);
    return rc;
}
