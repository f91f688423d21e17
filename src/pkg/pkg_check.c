/* pkg_check.c - checks a whole package with no source image: in memory
 * (pkg_verify) or read from a file a frame at a time (pkg_check_fd).
 *
 * Both go through one checker: every frame decoded against a zeroed
 * prefix (its structure and size: the block digest needs the real
 * source), and, for a whole package, every frame fed to the payload
 * SHA-256 that the header names. The frames tile the payload (pkg_open
 * checked it), so hashing them in order hashes the payload. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkg_int.h"

struct checker {
    ZSTD_DCtx *dc;
    uint8_t *zeros;          /* max_prefix zero bytes */
    uint8_t *blk;            /* one decoded block */
    struct pkg_sha256 *sha;  /* NULL: frames only */
};

static void checker_free(struct checker *c)
{
    ZSTD_freeDCtx(c->dc);
    free(c->zeros);
    free(c->blk);
    pkg_sha256_free(c->sha);
}

static int checker_init(struct checker *c, const struct pkg *p, bool digest)
{
    *c = (struct checker){0};
    c->dc = ZSTD_createDCtx();
    c->zeros = calloc(1, p->max_prefix ? p->max_prefix : 1);
    c->blk = malloc(p->info.block_size);
    int rc = c->dc && c->zeros && c->blk ? 0 : -ENOMEM;
    if (!rc && digest)
        rc = pkg_sha256_new(&c->sha);
    if (rc)
        checker_free(c);
    return rc;
}

/* Frame @p i of @p p, its bytes at @p frame. */
static int checker_frame(struct checker *c, const struct pkg *p, uint32_t i, const uint8_t *frame)
{
    int rc = pkg_frame_decode(c->dc, p, i, frame, c->zeros, c->blk);
    if (!rc && c->sha)
        rc = pkg_sha256_update(c->sha, frame, p->ent[i].frame_len);
    return rc;
}

/* After every frame: the payload digest. */
static int checker_end(struct checker *c, const struct pkg *p)
{
    uint8_t sha[32];
    int rc = pkg_sha256_final(c->sha, sha);
    if (!rc && memcmp(sha, p->info.payload_sha256, 32))
        rc = -EBADMSG;
    return rc;
}

/* Checks blocks [first, end) of @p p in memory, and the payload digest
 * when they are all of them. */
static int verify_blocks(const struct pkg *p, uint32_t first, uint32_t end)
{
    struct checker c;
    bool whole = first == 0 && end == p->info.block_count;
    int rc = checker_init(&c, p, whole);
    if (rc)
        return rc;
    for (uint32_t i = first; !rc && i < end; i++)
        rc = checker_frame(&c, p, i, p->payload + p->ent[i].frame_off);
    if (!rc && whole)
        rc = checker_end(&c, p);
    checker_free(&c);
    return rc;
}

int pkg_verify_block(const struct pkg *p, uint32_t index)
{
    if (!p || !p->payload || index >= p->info.block_count)
        return -EINVAL;
    return verify_blocks(p, index, index + 1);
}

int pkg_verify(const struct pkg *p)
{
    if (!p || !p->payload)
        return -EINVAL;
    return verify_blocks(p, 0, p->info.block_count);
}

int pkg_open_fd(int fd, uint64_t file_len, struct pkg **out)
{
    if (fd < 0 || !out)
        return -EINVAL;
    *out = NULL;
    uint8_t fixed[PKG_FIXED_SIZE];
    size_t n = file_len < sizeof(fixed) ? (size_t)file_len : sizeof(fixed);
    size_t need;
    int rc = pkg_pread_full(fd, fixed, n, 0);
    if (!rc)
        rc = pkg_header_size(fixed, n, &need);
    if (rc)
        return rc;
    if (need > file_len)
        return -ENODATA;
    uint8_t *hdr = malloc(need);
    if (!hdr)
        return -ENOMEM;
    rc = pkg_pread_full(fd, hdr, need, 0);
    if (!rc)
        rc = pkg_open_header(hdr, need, file_len, out);
    free(hdr);
    return rc;
}

int pkg_check_fd_where(int fd, uint64_t file_len, struct pkg_info *info, uint32_t *bad)
{
    if (info)
        memset(info, 0, sizeof(*info));
    if (bad)
        *bad = UINT32_MAX;
    struct pkg *p;
    int rc = pkg_open_fd(fd, file_len, &p);
    if (rc)
        return rc;
    if (info)
        *info = p->info;
    uint32_t max_frame = 0;
    for (uint32_t i = 0; i < p->info.block_count; i++)
        if (p->ent[i].frame_len > max_frame)
            max_frame = p->ent[i].frame_len;
    struct checker c;
    uint8_t *frame = malloc(max_frame);
    rc = frame ? checker_init(&c, p, true) : -ENOMEM;
    if (rc) {
        free(frame);
        pkg_free(p);
        return rc;
    }
    for (uint32_t i = 0; !rc && i < p->info.block_count; i++) {
        const struct pkg_entry *e = &p->ent[i];
        rc = pkg_pread_full(fd, frame, e->frame_len, p->info.header_size + e->frame_off);
        if (!rc && (rc = checker_frame(&c, p, i, frame)) == -EBADMSG && bad)
            *bad = i;
    }
    if (!rc)
        rc = checker_end(&c, p);
    checker_free(&c);
    free(frame);
    pkg_free(p);
    return rc;
}

int pkg_check_fd(int fd, uint64_t file_len, struct pkg_info *info)
{
    return pkg_check_fd_where(fd, file_len, info, NULL);
}
