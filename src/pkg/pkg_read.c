/* pkg_read.c - parses and checks a package's header and block table, and
 * decodes its frames.
 *
 * One parser serves both ways of reading: pkg_open() (the whole package
 * in memory) is pkg_open_header() of its buffer plus a pointer to the
 * frames. It reads only the bytes it is given, every offset checked before
 * use; the order of the checks decides which error a damaged file gets
 * (see pkg.h): magic, format version, header length, checksum, then the
 * fields the checksum vouches for, then the file length, then every table
 * entry.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkg_int.h"

/* Most blocks a package may have: the largest image in the smallest
 * blocks. */
#define MAX_BLOCKS (PKG_IMAGE_MAX_SIZE / PKG_BLOCK_SIZE_MIN)

bool pkg_is_ours(const uint8_t *buf, size_t len)
{
    return buf && len >= PKG_MAGIC_LEN && !memcmp(buf, PKG_MAGIC, PKG_MAGIC_LEN);
}

static int check_sizes(const struct pkg_info *in)
{
    if (in->src_size == 0 || in->src_size > PKG_IMAGE_MAX_SIZE || in->dst_size == 0 ||
        in->dst_size > PKG_IMAGE_MAX_SIZE)
        return -ERANGE;
    if (in->block_size < PKG_BLOCK_SIZE_MIN || in->block_size > PKG_BLOCK_SIZE_MAX)
        return -ERANGE;
    if (in->block_count != (in->dst_size + in->block_size - 1) / in->block_size)
        return -ERANGE;
    if (in->header_size != pkg_header_size_for(in->block_count))
        return -ERANGE;
    return 0;
}

static int check_entry(const struct pkg *p, uint32_t i, uint64_t expect_off)
{
    const struct pkg_entry *e = &p->ent[i];
    uint64_t payload = p->info.total_size - p->info.header_size;
    size_t blen = pkg_block_len(p, i);
    if (e->frame_off != expect_off || e->frame_len == 0 ||
        e->frame_len > ZSTD_compressBound(blen) || e->frame_len > payload - e->frame_off)
        return -ERANGE;
    if (e->prefix_off > p->info.src_size || e->prefix_len > p->info.src_size - e->prefix_off)
        return -ERANGE;
    if (pkg_window_log(e->prefix_len, blen) > PKG_WINDOW_LOG_MAX)
        return -ERANGE;
    return 0;
}

int pkg_header_size(const uint8_t *buf, size_t len, size_t *need)
{
    if ((!buf && len) || !need)
        return -EINVAL;
    size_t n = len < PKG_MAGIC_LEN ? len : PKG_MAGIC_LEN;
    if (n && memcmp(buf, PKG_MAGIC, n))
        return -EBADMSG;
    if (len < PKG_OFF_FORMAT + 2)
        return -ENODATA;
    if (pkg_get_le16(buf + PKG_OFF_FORMAT) != PKG_FORMAT_VERSION)
        return -EPROTONOSUPPORT;
    if (len < PKG_FIXED_SIZE)
        return -ENODATA;
    uint32_t hsize = pkg_get_le32(buf + PKG_OFF_HEADER_SIZE);
    if (hsize < pkg_header_size_for(0) || hsize > pkg_header_size_for(MAX_BLOCKS))
        return -ERANGE;
    *need = hsize;
    return 0;
}

/* The header in @p buf (@p len bytes of a file of @p file_len) into @p p. */
static int parse(struct pkg *p, const uint8_t *buf, size_t len, uint64_t file_len)
{
    struct pkg_info *in = &p->info;
    size_t hsize;
    int rc = pkg_header_size(buf, len, &hsize);
    if (rc)
        return rc;
    if (len < hsize)
        return -ENODATA;
    uint8_t sum[PKG_CHECKSUM_SIZE];
    if (pkg_sha256(buf, hsize - PKG_CHECKSUM_SIZE, sum))
        return -EIO;
    if (memcmp(sum, buf + hsize - PKG_CHECKSUM_SIZE, PKG_CHECKSUM_SIZE))
        return -EILSEQ;

    /* from here on the header is what the builder wrote */
    in->format_version = PKG_FORMAT_VERSION;
    rc = pkg_version_field_get(buf + PKG_OFF_SRC_VERSION, in->src_version);
    if (!rc)
        rc = pkg_version_field_get(buf + PKG_OFF_DST_VERSION, in->dst_version);
    if (rc)
        return rc;
    if (pkg_get_le16(buf + PKG_OFF_FLAGS))
        return -ERANGE;
    in->header_size = hsize;
    in->block_size = pkg_get_le32(buf + PKG_OFF_BLOCK_SIZE);
    in->block_count = pkg_get_le32(buf + PKG_OFF_BLOCK_COUNT);
    in->src_size = pkg_get_le64(buf + PKG_OFF_SRC_SIZE);
    in->dst_size = pkg_get_le64(buf + PKG_OFF_DST_SIZE);
    memcpy(in->src_sha256, buf + PKG_OFF_SRC_SHA, 32);
    memcpy(in->dst_sha256, buf + PKG_OFF_DST_SHA, 32);
    memcpy(in->payload_sha256, buf + PKG_OFF_PAYLOAD_SHA, 32);
    if ((rc = check_sizes(in)))
        return rc;
    uint64_t payload = pkg_get_le64(buf + PKG_OFF_PAYLOAD_SIZE);
    if (payload > PKG_FILE_MAX)
        return -ERANGE;
    in->total_size = hsize + payload;
    if (file_len < in->total_size)
        return -ENODATA;
    if (file_len > in->total_size)
        return -EMSGSIZE;

    p->ent = calloc(in->block_count, sizeof(*p->ent));
    if (!p->ent)
        return -ENOMEM;
    uint64_t off = 0;
    for (uint32_t i = 0; i < in->block_count; i++) {
        pkg_entry_get(buf + PKG_FIXED_SIZE + (size_t)i * PKG_ENTRY_SIZE, &p->ent[i]);
        if ((rc = check_entry(p, i, off)))
            return rc;
        off += p->ent[i].frame_len;
        if (p->ent[i].prefix_len > p->max_prefix)
            p->max_prefix = p->ent[i].prefix_len;
    }
    /* the frames tile the payload: no gap, nothing after the last */
    return off == payload ? 0 : -ERANGE;
}

int pkg_open_header(const uint8_t *hdr, size_t hdr_len, uint64_t file_len, struct pkg **out)
{
    if (!out || (!hdr && hdr_len))
        return -EINVAL;
    *out = NULL;
    struct pkg *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    int rc = parse(p, hdr, hdr_len, file_len);
    if (rc) {
        pkg_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int pkg_open(const uint8_t *buf, size_t len, struct pkg **out)
{
    int rc = pkg_open_header(buf, len, len, out);
    if (!rc)
        (*out)->payload = buf + (*out)->info.header_size;
    return rc;
}

const struct pkg_info *pkg_get_info(const struct pkg *p)
{
    return &p->info;
}

void pkg_free(struct pkg *p)
{
    if (!p)
        return;
    free(p->ent);
    free(p);
}

int pkg_block_get(const struct pkg *p, uint32_t i, struct pkg_block *b)
{
    if (!p || !b || i >= p->info.block_count)
        return -EINVAL;
    const struct pkg_entry *e = &p->ent[i];
    *b = (struct pkg_block){
        .frame_off = p->info.header_size + e->frame_off,
        .frame_len = e->frame_len,
        .prefix_off = e->prefix_off,
        .prefix_len = e->prefix_len,
        .dst_off = (uint64_t)i * p->info.block_size,
        .dst_len = (uint32_t)pkg_block_len(p, i),
    };
    return 0;
}

int pkg_frame_decode(ZSTD_DCtx *dc, const struct pkg *p, uint32_t i, const uint8_t *frame,
                     const uint8_t *prefix, uint8_t *dst)
{
    const struct pkg_entry *e = &p->ent[i];
    size_t blen = pkg_block_len(p, i);
    if (e->frame_len < 4 || pkg_get_le32(frame) != ZSTD_MAGICNUMBER ||
        ZSTD_findFrameCompressedSize(frame, e->frame_len) != e->frame_len ||
        ZSTD_getFrameContentSize(frame, e->frame_len) != blen)
        return -EBADMSG;
    unsigned wlog = pkg_window_log(e->prefix_len, blen);
    if (ZSTD_isError(ZSTD_DCtx_reset(dc, ZSTD_reset_session_only)) ||
        ZSTD_isError(ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, (int)wlog)) ||
        ZSTD_isError(ZSTD_DCtx_refPrefix(dc, e->prefix_len ? prefix : NULL, e->prefix_len)))
        return -EIO;
    size_t r = ZSTD_decompressDCtx(dc, dst, blen, frame, e->frame_len);
    return !ZSTD_isError(r) && r == blen ? 0 : -EBADMSG;
}
