/* fuzz_pkg.c - libFuzzer target of the package reader (STYLE.md 14):
 * pkg_open() and pkg_verify() on arbitrary bytes, the same bytes read the
 * piecewise way (pkg_header_size(), pkg_open_header(), pkg_block_get(),
 * pkg_decode_block()) and checked from a file (pkg_check_fd() on a memfd),
 * and applying what opens against the generated source image it names.
 *
 * Most mutations of a header break its checksum, and pkg_open() checks the
 * checksum before the fields it vouches for; most mutations of a frame
 * break the payload digest. So an input whose checksum or payload digest
 * is what fails is taken a second time with both recomputed (payload
 * SHA-256 written, header sealed with pkg_header_seal()): about half of
 * the mutated headers get past the checksum to the field, table and frame
 * checks, and mutated frames reach the decoder through pkg_check_fd()'s
 * success path too.
 *
 * A package that opens is applied when its source is small enough to
 * generate (pkg_image_generate() of its source version and size: a package
 * built with dfota-pack from generated images, like the seeds, names its
 * own source), so mutated frames and table entries reach the decoder with
 * the real prefix.
 *
 * Beyond not crashing, the target checks the contract of pkg.h: only the
 * documented error codes, an opened package spans exactly the input, the
 * file check and the piecewise reader agree with the in-memory reader,
 * every decoded block has its size and is the same both ways, an applied
 * target matches its digest.
 *
 *   CC=clang cmake -S . -B build-fuzz -DDFOTA_FUZZ=ON && cmake --build build-fuzz
 *   mkdir -p /tmp/fuzz_pkg && build-fuzz/fuzz_pkg -max_total_time=60 \
 *       -artifact_prefix=/tmp/fuzz_pkg/ /tmp/fuzz_pkg tests/fuzz/corpus/fuzz_pkg
 * (new inputs go to the first dir, crash files to the prefix: not the tree)
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dfota/pkg.h"
#include "pkg/pkg_int.h"

/* Work bounds, so that one input stays fast (the reader's own limits are
 * far larger): sources generated for applying, targets decoded. */
#define SRC_MAX (256u * 1024u)
#define DST_MAX (16u << 20)

/* The last generated source image, reused while inputs name the same. */
static struct {
    char version[PKG_VERSION_MAX + 1];
    size_t size;
    uint8_t *img;
} src_cache;

static const uint8_t *source_for(const struct pkg_info *in)
{
    if (in->src_size < PKG_IMAGE_MIN_SIZE || in->src_size > SRC_MAX)
        return NULL;
    if (src_cache.img && src_cache.size == in->src_size &&
        strcmp(src_cache.version, in->src_version) == 0)
        return src_cache.img;
    free(src_cache.img);
    src_cache.img = NULL;
    uint8_t *img;
    size_t len;
    if (pkg_image_generate(in->src_version, (size_t)in->src_size, &img, &len))
        return NULL;
    if (len != in->src_size)
        abort();
    src_cache.img = img;
    src_cache.size = len;
    memcpy(src_cache.version, in->src_version, sizeof(src_cache.version));
    return img;
}

static bool open_error_documented(int rc)
{
    switch (rc) {
    case -ENODATA:
    case -EBADMSG:
    case -EPROTONOSUPPORT:
    case -EILSEQ:
    case -ENAMETOOLONG:
    case -ERANGE:
    case -EMSGSIZE:
    case -ENOMEM:
        return true;
    }
    return false;
}

/* @p hp: the same package opened from its header alone; @p buf its bytes. */
static void apply(const struct pkg *p, const struct pkg *hp, const uint8_t *buf,
                  const struct pkg_info *in)
{
    if (in->dst_size > DST_MAX)
        return;
    const uint8_t *src = source_for(in);
    if (!src)
        return;
    struct pkg_applier *a;
    int rc = pkg_applier_new(p, src, (size_t)in->src_size, &a);
    if (rc == -EXDEV)
        return; /* not the generated image of its version: a foreign source */
    if (rc)
        abort();
    struct pkg_decoder *d;
    uint8_t *blk = malloc(in->block_size), *blk2 = malloc(in->block_size);
    if (!blk || !blk2 || pkg_decoder_new(&d))
        abort();
    bool all_ok = true;
    for (uint32_t i = 0; i < in->block_count; i++) {
        size_t n = 0, n2 = 0;
        struct pkg_block b;
        rc = pkg_apply_block(a, i, blk, in->block_size, &n);
        /* the piecewise reader, from where pkg_block_get() says */
        if (pkg_block_get(hp, i, &b) || b.frame_off + b.frame_len > in->total_size ||
            b.prefix_off + b.prefix_len > in->src_size || b.dst_off + b.dst_len > in->dst_size)
            abort();
        int rc2 = pkg_decode_block(d, hp, i, buf + b.frame_off, src + b.prefix_off, blk2,
                                   in->block_size, &n2);
        if (rc2 != rc || (rc == 0 && (n2 != n || memcmp(blk, blk2, n))))
            abort();
        if (rc == 0) {
            if (n != b.dst_len)
                abort();
        } else if (rc != -EBADMSG) {
            abort();
        } else {
            all_ok = false;
        }
    }
    pkg_decoder_free(d);
    free(blk2);
    size_t n;
    if (pkg_apply_block(a, in->block_count, blk, in->block_size, &n) != -EINVAL)
        abort();
    if (in->block_count && pkg_apply_block(a, 0, blk, 0, &n) != -ENOSPC)
        abort();
    free(blk);
    pkg_applier_free(a);

    uint8_t *dst;
    size_t dst_len;
    rc = pkg_apply_all(p, src, (size_t)in->src_size, &dst, &dst_len);
    if (rc == 0) {
        uint8_t sha[32];
        if (!all_ok || dst_len != in->dst_size || pkg_sha256(dst, dst_len, sha) ||
            memcmp(sha, in->dst_sha256, 32))
            abort();
        free(dst);
    } else if (rc != -EBADMSG) {
        abort();
    }
}

/* A memfd holding the input, for pkg_check_fd(). */
static int memfd_of(const uint8_t *buf, size_t len)
{
    static int fd = -1;
    if (fd < 0 && (fd = memfd_create("fuzz_pkg", MFD_CLOEXEC)) < 0)
        abort();
    if (ftruncate(fd, 0) || (len && pwrite(fd, buf, len, 0) != (ssize_t)len))
        abort();
    return fd;
}

/* Opens @p buf and takes what opens as far as it goes; returns the file
 * check's result (pkg_open()'s when the package is too big to decode). */
static int exercise(const uint8_t *buf, size_t len)
{
    struct pkg *p, *hp = NULL;
    int rc = pkg_open(buf, len, &p);

    /* the piecewise reader answers the same from the header alone */
    size_t need;
    int hrc = pkg_header_size(buf, len, &need);
    if (hrc == 0 && need <= len)
        hrc = pkg_open_header(buf, need, len, &hp);
    else if (hrc == 0)
        hrc = -ENODATA;
    if (hrc != rc)
        abort();

    if (rc) {
        if (!open_error_documented(rc) || !pkg_strerror(rc) || p)
            abort();
        if (len >= PKG_MAGIC_LEN && !pkg_is_ours(buf, len) && rc != -EBADMSG)
            abort(); /* an opaque package is told by its magic */
        struct pkg_info info;
        if (pkg_check_fd(memfd_of(buf, len), len, &info) != rc || info.format_version)
            abort();
        return rc;
    }
    const struct pkg_info *in = pkg_get_info(p);
    if (in->total_size != len || in->header_size > len || in->block_count == 0 ||
        in->format_version != PKG_FORMAT_VERSION ||
        memcmp(in, pkg_get_info(hp), sizeof(*in)))
        abort();
    if (in->dst_size <= DST_MAX) {
        rc = pkg_verify(p);
        if (rc && rc != -EBADMSG)
            abort();
        struct pkg_info info;
        if (pkg_check_fd(memfd_of(buf, len), len, &info) != rc ||
            memcmp(&info, in, sizeof(info)))
            abort();
        if (pkg_verify_block(p, in->block_count) != -EINVAL)
            abort();
        if (pkg_verify(hp) != -EINVAL)
            abort();
        apply(p, hp, buf, in); /* a frame that fails against zeros may fail otherwise */
    }
    pkg_free(hp);
    pkg_free(p);
    return rc;
}

/* A copy of @p data with its payload digest recomputed and its header
 * sealed: the same package as far as the fields go, every checksum true. */
static uint8_t *resealed(const uint8_t *data, size_t size)
{
    uint32_t hsize = pkg_get_le32(data + PKG_OFF_HEADER_SIZE);
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    if (pkg_sha256(copy + hsize, size - hsize, copy + PKG_OFF_PAYLOAD_SHA) ||
        pkg_header_seal(copy, hsize))
        abort();
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = exercise(data, size);
    if (rc != -EILSEQ && rc != -EBADMSG)
        return 0;
    size_t need;
    if (pkg_header_size(data, size, &need) || need > size)
        return 0; /* not ours, or the checksum was never reached */
    uint8_t *copy = resealed(data, size);
    if (memcmp(copy, data, size)) {
        rc = exercise(copy, size);
        if (rc == -EILSEQ)
            abort(); /* sealed, the checksum matches */
    }
    free(copy);
    return 0;
}
