/* pkg_apply.c - applies a package to its source image, block by block.
 *
 * Each block is its own zstd frame against a window of the source, so any
 * block decodes without the others: the caller may apply them in any order
 * and repeat one, which is what resuming an interrupted update needs.
 *
 * pkg_decode_block() is the one block decoder: it takes the frame, the
 * prefix and the output as buffers, so the DFOTA job can feed it what it
 * read with pread() on a worker thread. The in-memory applier is that same
 * call with pointers into the package and the source image. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkg_int.h"

struct pkg_decoder {
    ZSTD_DCtx *dc;
};

int pkg_decoder_new(struct pkg_decoder **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct pkg_decoder *d = calloc(1, sizeof(*d));
    if (!d || !(d->dc = ZSTD_createDCtx())) {
        free(d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

void pkg_decoder_free(struct pkg_decoder *d)
{
    if (!d)
        return;
    ZSTD_freeDCtx(d->dc);
    free(d);
}

int pkg_decode_block(struct pkg_decoder *d, const struct pkg *p, uint32_t i,
                     const uint8_t *frame, const uint8_t *prefix, uint8_t *dst, size_t cap,
                     size_t *dst_len)
{
    if (!d || !p || !frame || !dst || !dst_len || i >= p->info.block_count ||
        (!prefix && p->ent[i].prefix_len))
        return -EINVAL;
    size_t blen = pkg_block_len(p, i);
    if (cap < blen)
        return -ENOSPC;
    int rc = pkg_frame_decode(d->dc, p, i, frame, prefix, dst);
    if (rc)
        return rc;
    if (pkg_xxh64(dst, blen) != p->ent[i].digest)
        return -EBADMSG;
    *dst_len = blen;
    return 0;
}

struct pkg_applier {
    const struct pkg *pkg; /* borrowed, opened with pkg_open() */
    const uint8_t *src;    /* borrowed, the package's source image */
    struct pkg_decoder *dec;
};

int pkg_applier_new(const struct pkg *p, const uint8_t *src, size_t src_len,
                    struct pkg_applier **out)
{
    if (!p || !p->payload || !src || !out)
        return -EINVAL;
    *out = NULL;
    if (src_len != p->info.src_size)
        return -EXDEV;
    uint8_t sha[32];
    int rc = pkg_sha256(src, src_len, sha);
    if (rc)
        return rc;
    if (memcmp(sha, p->info.src_sha256, sizeof(sha)))
        return -EXDEV;
    struct pkg_applier *a = calloc(1, sizeof(*a));
    if (!a || pkg_decoder_new(&a->dec)) {
        free(a);
        return -ENOMEM;
    }
    a->pkg = p;
    a->src = src;
    *out = a;
    return 0;
}

int pkg_apply_block(struct pkg_applier *a, uint32_t index, uint8_t *dst, size_t dst_cap,
                    size_t *dst_len)
{
    if (!a || index >= a->pkg->info.block_count)
        return -EINVAL;
    const struct pkg *p = a->pkg;
    const struct pkg_entry *e = &p->ent[index];
    return pkg_decode_block(a->dec, p, index, p->payload + e->frame_off, a->src + e->prefix_off,
                            dst, dst_cap, dst_len);
}

void pkg_applier_free(struct pkg_applier *a)
{
    if (!a)
        return;
    pkg_decoder_free(a->dec);
    free(a);
}

int pkg_apply_all(const struct pkg *p, const uint8_t *src, size_t src_len, uint8_t **out,
                  size_t *out_len)
{
    if (!p || !out || !out_len)
        return -EINVAL;
    struct pkg_applier *a;
    int rc = pkg_applier_new(p, src, src_len, &a);
    if (rc)
        return rc;
    size_t size = (size_t)p->info.dst_size;
    uint8_t *dst = malloc(size);
    if (!dst)
        rc = -ENOMEM;
    size_t off = 0;
    for (uint32_t i = 0; !rc && i < p->info.block_count; i++) {
        size_t n;
        rc = pkg_apply_block(a, i, dst + off, size - off, &n);
        off += rc ? 0 : n;
    }
    pkg_applier_free(a);
    uint8_t sha[32];
    if (!rc && !(rc = pkg_sha256(dst, size, sha)) && memcmp(sha, p->info.dst_sha256, 32))
        rc = -EBADMSG;
    if (rc) {
        free(dst);
        return rc;
    }
    *out = dst;
    *out_len = size;
    return 0;
}
