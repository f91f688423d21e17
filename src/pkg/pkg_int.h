/* pkg_int.h - private to src/pkg: the on-disk layout of a package, the
 * little-endian byte helpers every field goes through, and the helpers the
 * package modules share. Unit tests include it to forge corrupt packages.
 *
 * Layout of format 2 (all integers little-endian, offsets in bytes):
 *
 *   fixed header (PKG_FIXED_SIZE = PKG_FIXED_HEADER_SIZE bytes)
 *     0   8  magic "DFOTAPKG"
 *     8   2  format version (2)
 *    10   2  flags (0)
 *    12   4  header size: fixed header + block table + checksum
 *    16   4  block size
 *    20   4  block count
 *    24   8  source image size
 *    32   8  target image size
 *    40   8  payload size (bytes of frames after the header)
 *    48  32  SHA-256 of the source image
 *    80  32  SHA-256 of the target image
 *   112  64  source version, NUL-padded (at most PKG_VERSION_MAX chars)
 *   176  64  target version, NUL-padded
 *   240  32  SHA-256 of the payload (every byte after the header)
 *   block table, block count entries of PKG_ENTRY_SIZE bytes
 *     0   8  frame offset, from the start of the payload
 *     8   4  frame length
 *    12   4  prefix length (bytes of the source image the frame refers to)
 *    16   8  prefix offset into the source image
 *    24   8  XXH64 of the decoded block
 *   checksum: SHA-256 of every header byte before it (PKG_CHECKSUM_SIZE)
 *   payload: the frames, one zstd frame per block, back to back in order
 *
 * The package's digest of its own bytes is the pair (header checksum,
 * payload SHA-256): the checksum covers every header byte before it, the
 * payload digest among them, and the payload digest covers every byte
 * after the header. With the payload size (covered too) fixing the file's
 * length, a package is intact when its length is header size + payload
 * size, its checksum matches and its payload hashes to the digest: any
 * flipped, missing or extra byte breaks one of the three. The checksum
 * alone needs only the header; the payload digest can be computed frame by
 * frame while reading (pkg_check_fd()).
 *
 * Format 1 (no payload digest, fixed header of 240 bytes) is refused with
 * -EPROTONOSUPPORT: no reader for it is kept.
 */
#ifndef DFOTA_PKG_INT_H
#define DFOTA_PKG_INT_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "dfota/pkg.h"

#define PKG_STR_(x) #x
#define PKG_STR(x) PKG_STR_(x)

#define PKG_MAGIC "DFOTAPKG"
#define PKG_MAGIC_LEN 8
#define PKG_FORMAT_VERSION 2

#define PKG_OFF_MAGIC 0
#define PKG_OFF_FORMAT 8
#define PKG_OFF_FLAGS 10
#define PKG_OFF_HEADER_SIZE 12
#define PKG_OFF_BLOCK_SIZE 16
#define PKG_OFF_BLOCK_COUNT 20
#define PKG_OFF_SRC_SIZE 24
#define PKG_OFF_DST_SIZE 32
#define PKG_OFF_PAYLOAD_SIZE 40
#define PKG_OFF_SRC_SHA 48
#define PKG_OFF_DST_SHA 80
#define PKG_OFF_SRC_VERSION 112
#define PKG_OFF_DST_VERSION 176
#define PKG_VERSION_FIELD (PKG_VERSION_MAX + 1)
#define PKG_OFF_PAYLOAD_SHA 240
#define PKG_FIXED_SIZE PKG_FIXED_HEADER_SIZE
_Static_assert(PKG_FIXED_SIZE == PKG_OFF_PAYLOAD_SHA + 32, "fixed header layout");

#define PKG_ENTRY_SIZE 32
#define PKG_ENT_FRAME_OFF 0
#define PKG_ENT_FRAME_LEN 8
#define PKG_ENT_PREFIX_LEN 12
#define PKG_ENT_PREFIX_OFF 16
#define PKG_ENT_DIGEST 24

#define PKG_CHECKSUM_SIZE 32

/** Header size of a package with @p count blocks. */
static inline uint64_t pkg_header_size_for(uint64_t count)
{
    return PKG_FIXED_SIZE + count * PKG_ENTRY_SIZE + PKG_CHECKSUM_SIZE;
}

static inline void pkg_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void pkg_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void pkg_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t pkg_get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t pkg_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t pkg_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/** One block table entry, decoded. */
struct pkg_entry {
    uint64_t frame_off; /* from the start of the payload */
    uint32_t frame_len;
    uint32_t prefix_len;
    uint64_t prefix_off;
    uint64_t digest;
};

/** A parsed package (pkg_read.c); pkg_apply.c and pkg_check.c read it
 *  too. */
struct pkg {
    const uint8_t *payload; /* in the borrowed buffer; NULL from pkg_open_header() */
    struct pkg_info info;
    struct pkg_entry *ent; /* block_count entries */
    uint32_t max_prefix;   /* largest prefix_len of any entry */
};

/** Size of block @p i of the target of @p p. */
static inline size_t pkg_block_len(const struct pkg *p, uint32_t i)
{
    uint64_t off = (uint64_t)i * p->info.block_size;
    uint64_t left = p->info.dst_size - off;
    return (size_t)(left < p->info.block_size ? left : p->info.block_size);
}

/** Decodes block @p i of @p p from @p frame (its entry's frame_len bytes)
 *  against @p prefix (its entry's prefix_len bytes) into @p dst (at least
 *  pkg_block_len() bytes): 0, or -EBADMSG when the frame is not exactly
 *  one zstd frame decoding to the block's size. Does not check the
 *  digest. The one frame decoder under every read path. */
int pkg_frame_decode(ZSTD_DCtx *dc, const struct pkg *p, uint32_t i, const uint8_t *frame,
                     const uint8_t *prefix, uint8_t *dst);

/** pkg_check_fd() that also says which block failed: *@p bad is the index
 *  of the block whose frame is corrupt, UINT32_MAX when the failure is not
 *  one frame's (header, payload digest, read error). For dfota-pack. */
int pkg_check_fd_where(int fd, uint64_t file_len, struct pkg_info *info, uint32_t *bad);

/** pread() of exactly @p len bytes at @p off, across short reads and
 *  EINTR: 0, -ENODATA when the file ends first, -errno. */
int pkg_pread_full(int fd, void *buf, size_t len, uint64_t off);

void pkg_entry_put(uint8_t *p, const struct pkg_entry *e);
void pkg_entry_get(const uint8_t *p, struct pkg_entry *e);

/** Writes the checksum of the @p header_size byte header at @p hdr (into
 *  its last PKG_CHECKSUM_SIZE bytes). Returns 0 or a negative errno. */
int pkg_header_seal(uint8_t *hdr, size_t header_size);

/** XXH64 of @p len bytes with seed 0: the per-block digest. */
uint64_t pkg_xxh64(const void *buf, size_t len);

/** 0 when @p v is a usable version string (1..PKG_VERSION_MAX printable
 *  ASCII characters), -ENAMETOOLONG when longer, -EINVAL otherwise. */
int pkg_version_check(const char *v);

/** Reads a NUL-padded version field of PKG_VERSION_FIELD bytes into
 *  @p out: 0, -ENAMETOOLONG when it has no NUL, -ERANGE when a character is
 *  not printable ASCII or the padding is not all zero. */
int pkg_version_field_get(const uint8_t *field, char out[PKG_VERSION_FIELD]);

/** ceil(log2(n)) for n >= 1. */
unsigned pkg_log2_ceil(uint64_t n);

/* Smallest window log zstd takes (ZSTD_WINDOWLOG_MIN, not in its stable
 * API). */
#define PKG_WINDOW_LOG_MIN 10

/** The window log a frame of @p blen bytes against a prefix of
 *  @p prefix_len bytes needs: the builder sets it, the decoder allows it. */
static inline unsigned pkg_window_log(uint64_t prefix_len, uint64_t blen)
{
    unsigned l = pkg_log2_ceil(prefix_len + blen);
    return l < PKG_WINDOW_LOG_MIN ? PKG_WINDOW_LOG_MIN : l;
}

#endif
