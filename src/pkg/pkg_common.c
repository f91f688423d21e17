/* pkg_common.c - helpers every package module shares: error messages,
 * version strings, block table entries, the header checksum. */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "pkg_int.h"

const char *pkg_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case -ENODATA:
        return "truncated package";
    case -EBADMSG:
        return "not a dfota-sim package or corrupt block data";
    case -EPROTONOSUPPORT:
        return "unsupported package format version";
    case -EILSEQ:
        return "package header checksum mismatch";
    case -ENAMETOOLONG:
        return "version string too long (max " PKG_STR(PKG_VERSION_MAX) " characters)";
    case -ERANGE:
        return "package field or block table entry out of range";
    case -EMSGSIZE:
        return "trailing data after the end of the package";
    case -EXDEV:
        return "source image does not match the package";
    case -EFBIG:
        return "image or file too large";
    default: {
        const char *s = err < 0 ? strerrordesc_np(-err) : NULL;
        return s ? s : "unknown error";
    }
    }
}

/* XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0), the same hash a
 * zstd frame checksum truncates. */
#define XXH_P1 11400714785074694791ULL
#define XXH_P2 14029467366897019727ULL
#define XXH_P3 1609587929392839161ULL
#define XXH_P4 9650029242287828579ULL
#define XXH_P5 2870177450012600261ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
    return x << r | x >> (64 - r);
}

static inline uint64_t read64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

static inline uint32_t read32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline uint64_t xxh_round(uint64_t acc, uint64_t input)
{
    acc += input * XXH_P2;
    return rotl64(acc, 31) * XXH_P1;
}

static inline uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * XXH_P1 + XXH_P4;
}

uint64_t pkg_xxh64(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    const uint8_t *end = p + len;
    uint64_t h;

    if (len >= 32) {
        uint64_t v1 = XXH_P1 + XXH_P2, v2 = XXH_P2, v3 = 0, v4 = -XXH_P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = xxh_round(v1, read64(p));
            v2 = xxh_round(v2, read64(p + 8));
            v3 = xxh_round(v3, read64(p + 16));
            v4 = xxh_round(v4, read64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = xxh_merge(h, v1);
        h = xxh_merge(h, v2);
        h = xxh_merge(h, v3);
        h = xxh_merge(h, v4);
    } else {
        h = XXH_P5;
    }
    h += len;
    for (; end - p >= 8; p += 8) {
        h ^= xxh_round(0, read64(p));
        h = rotl64(h, 27) * XXH_P1 + XXH_P4;
    }
    if (end - p >= 4) {
        h ^= (uint64_t)read32(p) * XXH_P1;
        h = rotl64(h, 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    for (; p < end; p++) {
        h ^= *p * XXH_P5;
        h = rotl64(h, 11) * XXH_P1;
    }
    h ^= h >> 33;
    h *= XXH_P2;
    h ^= h >> 29;
    h *= XXH_P3;
    h ^= h >> 32;
    return h;
}

static bool printable(unsigned char c)
{
    return c >= 0x20 && c < 0x7f;
}

int pkg_version_check(const char *v)
{
    if (!v || !*v)
        return -EINVAL;
    size_t n = strnlen(v, PKG_VERSION_MAX + 1);
    if (n > PKG_VERSION_MAX)
        return -ENAMETOOLONG;
    for (size_t i = 0; i < n; i++)
        if (!printable((unsigned char)v[i]))
            return -EINVAL;
    return 0;
}

int pkg_version_field_get(const uint8_t *field, char out[PKG_VERSION_FIELD])
{
    const uint8_t *nul = memchr(field, 0, PKG_VERSION_FIELD);
    if (!nul)
        return -ENAMETOOLONG;
    size_t n = (size_t)(nul - field);
    if (n == 0)
        return -ERANGE;
    for (size_t i = 0; i < n; i++)
        if (!printable(field[i]))
            return -ERANGE;
    for (size_t i = n; i < PKG_VERSION_FIELD; i++)
        if (field[i])
            return -ERANGE;
    memcpy(out, field, n + 1);
    return 0;
}

unsigned pkg_log2_ceil(uint64_t n)
{
    unsigned l = 0;
    while (l < 64 && (UINT64_C(1) << l) < n)
        l++;
    return l;
}

void pkg_entry_put(uint8_t *p, const struct pkg_entry *e)
{
    pkg_put_le64(p + PKG_ENT_FRAME_OFF, e->frame_off);
    pkg_put_le32(p + PKG_ENT_FRAME_LEN, e->frame_len);
    pkg_put_le32(p + PKG_ENT_PREFIX_LEN, e->prefix_len);
    pkg_put_le64(p + PKG_ENT_PREFIX_OFF, e->prefix_off);
    pkg_put_le64(p + PKG_ENT_DIGEST, e->digest);
}

void pkg_entry_get(const uint8_t *p, struct pkg_entry *e)
{
    e->frame_off = pkg_get_le64(p + PKG_ENT_FRAME_OFF);
    e->frame_len = pkg_get_le32(p + PKG_ENT_FRAME_LEN);
    e->prefix_len = pkg_get_le32(p + PKG_ENT_PREFIX_LEN);
    e->prefix_off = pkg_get_le64(p + PKG_ENT_PREFIX_OFF);
    e->digest = pkg_get_le64(p + PKG_ENT_DIGEST);
}

int pkg_header_seal(uint8_t *hdr, size_t header_size)
{
    if (header_size < PKG_FIXED_SIZE + PKG_CHECKSUM_SIZE)
        return -EINVAL;
    size_t body = header_size - PKG_CHECKSUM_SIZE;
    return pkg_sha256(hdr, body, hdr + body);
}
