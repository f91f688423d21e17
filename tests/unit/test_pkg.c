/* test_pkg.c - the package layer: header parsing per corruption class,
 * build and apply round trips, resumable block order, SHA-256 (one-shot,
 * streaming, of a file), the whole-package check with no source image,
 * reading piece by piece from files, the generated firmware images, the
 * file helpers and the dfota-pack command line. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "dfota/pkg.h"
#include "pkg/pkg_int.h"

#define V1 "BG95M3LAR02A03_01.200.01.200"
#define V2 "BG95M3LAR02A03_01.201.01.201"
#define IMG_SIZE (512u << 10)

/* Built once for the whole group: two images and the package between. */
struct fixture {
    uint8_t *src, *dst, *pkg;
    size_t src_len, dst_len, pkg_len;
};

static int group_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || pkg_image_generate(V1, IMG_SIZE, &f->src, &f->src_len) ||
        pkg_image_generate(V2, IMG_SIZE, &f->dst, &f->dst_len) ||
        pkg_build(f->src, f->src_len, V1, f->dst, f->dst_len, V2, &f->pkg, &f->pkg_len))
        return -1;
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fixture *f = *state;
    free(f->src);
    free(f->dst);
    free(f->pkg);
    free(f);
    return 0;
}

/* A heap copy of exactly @p len bytes, so that ASan catches a read past
 * the end. */
static uint8_t *copy(const uint8_t *b, size_t len)
{
    uint8_t *c = malloc(len ? len : 1);
    assert_non_null(c);
    memcpy(c, b, len);
    return c;
}

/* pkg_open() of the first @p len bytes of @p b (copied to fit exactly). */
static int open_rc(const uint8_t *b, size_t len)
{
    uint8_t *c = copy(b, len);
    struct pkg *p = NULL;
    int rc = pkg_open(c, len, &p);
    assert_true(rc ? p == NULL : p != NULL);
    pkg_free(p);
    free(c);
    return rc;
}

static size_t header_size(const struct fixture *f)
{
    return pkg_get_le32(f->pkg + PKG_OFF_HEADER_SIZE);
}

static uint8_t *entry(uint8_t *pkg, uint32_t i)
{
    return pkg + PKG_FIXED_SIZE + (size_t)i * PKG_ENTRY_SIZE;
}

/* Frame @p i inside @p c, a copy of the fixture's package. */
static uint8_t *frame_in(const struct fixture *f, uint8_t *c, uint32_t i, size_t *len)
{
    struct pkg_entry e;
    pkg_entry_get(entry(c, i), &e);
    *len = e.frame_len;
    return c + header_size(f) + e.frame_off;
}

/* ---- header parsing ---------------------------------------------------- */

static void test_open_accepts_built_package_and_reports_header(void **state)
{
    struct fixture *f = *state;
    struct pkg *p;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    const struct pkg_info *in = pkg_get_info(p);
    uint8_t sha[32];
    assert_int_equal(in->format_version, 2);
    assert_string_equal(in->src_version, V1);
    assert_string_equal(in->dst_version, V2);
    assert_int_equal(in->src_size, IMG_SIZE);
    assert_int_equal(in->dst_size, IMG_SIZE);
    assert_int_equal(in->block_size, PKG_BLOCK_SIZE);
    assert_int_equal(in->block_count, IMG_SIZE / PKG_BLOCK_SIZE);
    assert_int_equal(in->header_size, pkg_header_size_for(in->block_count));
    assert_int_equal(in->total_size, f->pkg_len);
    pkg_sha256(f->src, f->src_len, sha);
    assert_memory_equal(in->src_sha256, sha, 32);
    pkg_sha256(f->dst, f->dst_len, sha);
    assert_memory_equal(in->dst_sha256, sha, 32);
    assert_true(pkg_is_ours(f->pkg, f->pkg_len));
    assert_int_equal(pkg_verify(p), 0);
    pkg_free(p);
}

static void test_open_truncated_package_is_enodata(void **state)
{
    struct fixture *f = *state;
    size_t h = header_size(f);
    size_t cuts[] = {0,
                     3,
                     8,
                     9,
                     10,
                     100,
                     PKG_FIXED_SIZE - 1,
                     PKG_FIXED_SIZE,
                     h - 1,
                     h,
                     h + 1,
                     f->pkg_len / 2,
                     f->pkg_len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        if (open_rc(f->pkg, cuts[i]) != -ENODATA)
            fail_msg("cut at %zu: %d", cuts[i], open_rc(f->pkg, cuts[i]));
    }
}

static void test_open_wrong_magic_is_ebadmsg(void **state)
{
    struct fixture *f = *state;
    uint8_t *c = copy(f->pkg, f->pkg_len);
    c[3] ^= 0x20;
    assert_int_equal(open_rc(c, f->pkg_len), -EBADMSG);
    assert_false(pkg_is_ours(c, f->pkg_len));
    /* a short file of something else is not ours either, not truncated */
    assert_int_equal(open_rc((const uint8_t *)"PK\3\4", 4), -EBADMSG);
    free(c);
}

static void test_open_unsupported_format_version_is_eprotonosupport(void **state)
{
    struct fixture *f = *state;
    uint8_t *c = copy(f->pkg, f->pkg_len);
    /* format 1 (no payload digest) is refused, as is any later one */
    pkg_put_le16(c + PKG_OFF_FORMAT, 1);
    assert_int_equal(open_rc(c, f->pkg_len), -EPROTONOSUPPORT);
    pkg_put_le16(c + PKG_OFF_FORMAT, 3);
    assert_int_equal(open_rc(c, f->pkg_len), -EPROTONOSUPPORT);
    free(c);
}

static void test_open_flipped_header_bit_fails_checksum(void **state)
{
    struct fixture *f = *state;
    size_t h = header_size(f);
    /* every field the checksum covers, the block table, the checksum */
    size_t at[] = {PKG_OFF_FLAGS,
                   PKG_OFF_BLOCK_SIZE,
                   PKG_OFF_BLOCK_COUNT,
                   PKG_OFF_SRC_SIZE,
                   PKG_OFF_DST_SIZE + 2,
                   PKG_OFF_PAYLOAD_SIZE,
                   PKG_OFF_SRC_SHA + 5,
                   PKG_OFF_DST_SHA,
                   PKG_OFF_SRC_VERSION,
                   PKG_OFF_DST_VERSION + 63,
                   PKG_OFF_PAYLOAD_SHA,
                   PKG_OFF_PAYLOAD_SHA + 31,
                   PKG_FIXED_SIZE + 1,
                   h - 40,
                   h - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        uint8_t *c = copy(f->pkg, f->pkg_len);
        c[at[i]] ^= 0x04;
        int rc = open_rc(c, f->pkg_len);
        if (rc != -EILSEQ)
            fail_msg("bit flipped at %zu: %d", at[i], rc);
        free(c);
    }
}

/* Rewrites a copy's field with @p fn, reseals the checksum, opens it. */
static int open_forged(const struct fixture *f, void (*fn)(uint8_t *c, void *arg), void *arg)
{
    uint8_t *c = copy(f->pkg, f->pkg_len);
    fn(c, arg);
    assert_int_equal(pkg_header_seal(c, pkg_get_le32(c + PKG_OFF_HEADER_SIZE)), 0);
    int rc = open_rc(c, f->pkg_len);
    free(c);
    return rc;
}

struct entry_edit {
    uint32_t index;
    size_t field;
    uint64_t value;
    int width; /* 4 or 8 */
};

static void edit_entry(uint8_t *c, void *arg)
{
    const struct entry_edit *e = arg;
    if (e->width == 4)
        pkg_put_le32(entry(c, e->index) + e->field, (uint32_t)e->value);
    else
        pkg_put_le64(entry(c, e->index) + e->field, e->value);
}

static void test_open_block_table_entry_out_of_bounds_is_erange(void **state)
{
    struct fixture *f = *state;
    struct pkg_entry last;
    uint32_t n = IMG_SIZE / PKG_BLOCK_SIZE;
    pkg_entry_get(entry(f->pkg, n - 1), &last);
    struct entry_edit edits[] = {
        {n - 1, PKG_ENT_FRAME_LEN, last.frame_len + 1, 4}, /* past the file */
        {n - 1, PKG_ENT_FRAME_LEN, UINT32_MAX, 4},         /* huge */
        {n - 1, PKG_ENT_FRAME_LEN, 0, 4},                  /* empty */
        {n - 1, PKG_ENT_FRAME_LEN, last.frame_len - 1, 4}, /* gap at the end */
        {1, PKG_ENT_FRAME_OFF, UINT64_MAX - 3, 8},         /* wraps */
        {0, PKG_ENT_FRAME_OFF, 1, 8},                      /* not contiguous */
        {2, PKG_ENT_PREFIX_OFF, IMG_SIZE, 8},              /* prefix past source */
        {2, PKG_ENT_PREFIX_OFF, UINT64_MAX, 8},            /* wraps */
        {2, PKG_ENT_PREFIX_LEN, IMG_SIZE + 1, 4},          /* longer than source */
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        int rc = open_forged(f, edit_entry, &edits[i]);
        if (rc != -ERANGE)
            fail_msg("edit %zu: %d", i, rc);
    }
}

struct field_edit {
    size_t off;
    uint64_t value;
    int width;
};

static void edit_field(uint8_t *c, void *arg)
{
    const struct field_edit *e = arg;
    if (e->width == 2)
        pkg_put_le16(c + e->off, (uint16_t)e->value);
    else if (e->width == 4)
        pkg_put_le32(c + e->off, (uint32_t)e->value);
    else
        pkg_put_le64(c + e->off, e->value);
}

static void test_open_bad_sizes_are_erange(void **state)
{
    struct fixture *f = *state;
    struct field_edit edits[] = {
        {PKG_OFF_DST_SIZE, 0, 8},
        {PKG_OFF_SRC_SIZE, 0, 8},
        {PKG_OFF_SRC_SIZE, (uint64_t)PKG_IMAGE_MAX_SIZE + 1, 8},
        {PKG_OFF_DST_SIZE, IMG_SIZE + PKG_BLOCK_SIZE, 8}, /* block count does not fit */
        {PKG_OFF_BLOCK_SIZE, 0, 4},
        {PKG_OFF_BLOCK_SIZE, PKG_BLOCK_SIZE * 2, 4},
        {PKG_OFF_BLOCK_COUNT, IMG_SIZE / PKG_BLOCK_SIZE - 1, 4},
        {PKG_OFF_FLAGS, 1, 2},
        {PKG_OFF_PAYLOAD_SIZE, UINT64_MAX, 8},
    };
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        int rc = open_forged(f, edit_field, &edits[i]);
        if (rc != -ERANGE)
            fail_msg("edit %zu: %d", i, rc);
    }
}

static void fill_version(uint8_t *c, void *arg)
{
    memset(c + *(size_t *)arg, 'A', PKG_VERSION_FIELD);
}

static void unprintable_version(uint8_t *c, void *arg)
{
    c[*(size_t *)arg] = 0x07;
}

static void test_open_version_too_long_is_enametoolong(void **state)
{
    struct fixture *f = *state;
    size_t offs[] = {PKG_OFF_SRC_VERSION, PKG_OFF_DST_VERSION};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(open_forged(f, fill_version, &offs[i]), -ENAMETOOLONG);
        assert_int_equal(open_forged(f, unprintable_version, &offs[i]), -ERANGE);
    }
}

static void test_open_trailing_data_is_emsgsize(void **state)
{
    struct fixture *f = *state;
    uint8_t *c = malloc(f->pkg_len + 1);
    memcpy(c, f->pkg, f->pkg_len);
    c[f->pkg_len] = 0;
    assert_int_equal(open_rc(c, f->pkg_len + 1), -EMSGSIZE);
    free(c);
}

/* Random damage anywhere: pkg_open, pkg_verify and applying never crash or
 * read past the buffer (ASan build), and only documented errors come out. */
static void test_damaged_packages_never_crash(void **state)
{
    struct fixture *f = *state;
    uint64_t seed = 0x1234567;
    for (int round = 0; round < 300; round++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t len = f->pkg_len;
        uint8_t *c = copy(f->pkg, len);
        size_t h = header_size(f);
        size_t at = (seed >> 33) % (round % 2 ? len : h);
        c[at] ^= (uint8_t)(1 + (seed >> 20) % 255);
        if (round % 3 == 0) /* and reseal, to get past the checksum */
            pkg_header_seal(c, h);
        struct pkg *p;
        int rc = pkg_open(c, len, &p);
        if (!rc) {
            rc = pkg_verify(p);
            assert_true(rc == 0 || rc == -EBADMSG);
            struct pkg_applier *a;
            if (!pkg_applier_new(p, f->src, f->src_len, &a)) {
                size_t bs = pkg_get_info(p)->block_size;
                uint8_t *blk = malloc(bs);
                for (uint32_t i = 0; i < pkg_get_info(p)->block_count; i++) {
                    size_t n;
                    rc = pkg_apply_block(a, i, blk, bs, &n);
                    assert_true(rc == 0 || rc == -EBADMSG);
                }
                free(blk);
                pkg_applier_free(a);
            }
            pkg_free(p);
        } else {
            assert_true(rc == -ENODATA || rc == -EBADMSG || rc == -EPROTONOSUPPORT ||
                        rc == -EILSEQ || rc == -ERANGE || rc == -ENAMETOOLONG || rc == -EMSGSIZE);
        }
        free(c);
    }
}

/* ---- building and applying --------------------------------------------- */

static void test_build_is_deterministic(void **state)
{
    struct fixture *f = *state;
    uint8_t *again;
    size_t len;
    assert_int_equal(pkg_build(f->src, f->src_len, V1, f->dst, f->dst_len, V2, &again, &len), 0);
    assert_int_equal(len, f->pkg_len);
    assert_memory_equal(again, f->pkg, len);
    free(again);
}

static void test_build_refuses_bad_versions_and_sizes(void **state)
{
    struct fixture *f = *state;
    char long_v[PKG_VERSION_MAX + 2];
    memset(long_v, 'x', sizeof(long_v) - 1);
    long_v[sizeof(long_v) - 1] = 0;
    uint8_t *out;
    size_t len;
    assert_int_equal(pkg_build(f->src, f->src_len, long_v, f->dst, f->dst_len, V2, &out, &len),
                     -ENAMETOOLONG);
    assert_int_equal(pkg_build(f->src, f->src_len, V1, f->dst, f->dst_len, long_v, &out, &len),
                     -ENAMETOOLONG);
    assert_int_equal(pkg_build(f->src, f->src_len, "", f->dst, f->dst_len, V2, &out, &len),
                     -EINVAL);
    assert_int_equal(pkg_build(f->src, f->src_len, "a\nb", f->dst, f->dst_len, V2, &out, &len),
                     -EINVAL);
    assert_int_equal(pkg_build(f->src, 0, V1, f->dst, f->dst_len, V2, &out, &len), -EINVAL);
    assert_int_equal(pkg_build(f->src, f->src_len, V1, f->dst, 0, V2, &out, &len), -EINVAL);
    /* the longest version that fits round-trips */
    long_v[PKG_VERSION_MAX] = 0;
    uint8_t small[5000];
    memcpy(small, f->dst, sizeof(small));
    assert_int_equal(pkg_build(f->src, 100, long_v, small, sizeof(small), V2, &out, &len), 0);
    struct pkg *p;
    assert_int_equal(pkg_open(out, len, &p), 0);
    assert_string_equal(pkg_get_info(p)->src_version, long_v);
    assert_int_equal(pkg_get_info(p)->block_count, 1);
    pkg_free(p);
    free(out);
}

static void test_apply_round_trip_equals_target(void **state)
{
    struct fixture *f = *state;
    struct pkg *p;
    uint8_t *out;
    size_t len;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    assert_int_equal(pkg_apply_all(p, f->src, f->src_len, &out, &len), 0);
    assert_int_equal(len, f->dst_len);
    assert_memory_equal(out, f->dst, len);
    uint8_t sha[32];
    pkg_sha256(out, len, sha);
    assert_memory_equal(sha, pkg_get_info(p)->dst_sha256, 32);
    free(out);
    pkg_free(p);
}

static void test_round_trip_with_short_last_block_and_other_sizes(void **state)
{
    (void)state;
    /* source and target of different sizes, target not a block multiple */
    uint8_t *a, *b, *pkg, *out;
    size_t al, bl, pl, ol;
    assert_int_equal(pkg_image_generate(V1, 300000, &a, &al), 0);
    assert_int_equal(pkg_image_generate(V2, 200000 + 123, &b, &bl), 0);
    assert_int_equal(pkg_build(a, al, V1, b, bl, V2, &pkg, &pl), 0);
    struct pkg *p;
    assert_int_equal(pkg_open(pkg, pl, &p), 0);
    assert_int_equal(pkg_get_info(p)->block_count, (bl + PKG_BLOCK_SIZE - 1) / PKG_BLOCK_SIZE);
    assert_int_equal(pkg_apply_all(p, a, al, &out, &ol), 0);
    assert_int_equal(ol, bl);
    assert_memory_equal(out, b, bl);
    pkg_free(p);
    free(out);
    free(pkg);
    free(a);
    free(b);
}

static void test_apply_with_wrong_source_is_exdev(void **state)
{
    struct fixture *f = *state;
    struct pkg *p;
    struct pkg_applier *a = (void *)1;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    /* the target as source: same size, other digest */
    assert_int_equal(pkg_applier_new(p, f->dst, f->dst_len, &a), -EXDEV);
    assert_null(a);
    /* one byte short */
    assert_int_equal(pkg_applier_new(p, f->src, f->src_len - 1, &a), -EXDEV);
    /* one byte changed */
    uint8_t *c = copy(f->src, f->src_len);
    c[f->src_len / 2] ^= 1;
    assert_int_equal(pkg_applier_new(p, c, f->src_len, &a), -EXDEV);
    uint8_t *out;
    size_t len;
    assert_int_equal(pkg_apply_all(p, c, f->src_len, &out, &len), -EXDEV);
    free(c);
    pkg_free(p);
}

static void test_corrupt_frame_byte_fails_only_that_block(void **state)
{
    struct fixture *f = *state;
    uint32_t bad = 3;
    size_t frame_len;
    uint8_t *c = copy(f->pkg, f->pkg_len);
    /* the middle of the frame: sequences or literals, past the frame header */
    frame_in(f, c, bad, &frame_len)[frame_len / 2] ^= 0x55;

    struct pkg *p;
    struct pkg_applier *a;
    assert_int_equal(pkg_open(c, f->pkg_len, &p), 0); /* the header is intact */
    assert_int_equal(pkg_verify(p), -EBADMSG);        /* the payload is not */
    assert_int_equal(pkg_applier_new(p, f->src, f->src_len, &a), 0);
    uint8_t *blk = malloc(PKG_BLOCK_SIZE);
    for (uint32_t i = 0; i < pkg_get_info(p)->block_count; i++) {
        size_t n;
        int rc = pkg_apply_block(a, i, blk, PKG_BLOCK_SIZE, &n);
        if (i == bad) {
            assert_int_equal(rc, -EBADMSG);
        } else {
            assert_int_equal(rc, 0);
            assert_memory_equal(blk, f->dst + (size_t)i * PKG_BLOCK_SIZE, n);
        }
    }
    uint8_t *out;
    size_t len;
    assert_int_equal(pkg_apply_all(p, f->src, f->src_len, &out, &len), -EBADMSG);
    free(blk);
    pkg_applier_free(a);
    pkg_free(p);
    free(c);
}

static void test_verify_finds_a_broken_frame_without_the_source(void **state)
{
    struct fixture *f = *state;
    uint32_t bad = 5;
    size_t frame_len;
    uint8_t *c = copy(f->pkg, f->pkg_len);
    uint8_t *frame = frame_in(f, c, bad, &frame_len);
    frame[0] ^= 0xff; /* zstd magic */
    struct pkg *p;
    assert_int_equal(pkg_open(c, f->pkg_len, &p), 0);
    assert_int_equal(pkg_verify(p), -EBADMSG);
    assert_int_equal(pkg_verify_block(p, bad), -EBADMSG);
    assert_int_equal(pkg_verify_block(p, bad - 1), 0);
    assert_int_equal(pkg_verify_block(p, 1000), -EINVAL);
    pkg_free(p);

    /* a frame whose last bytes are lost */
    frame[0] ^= 0xff;
    memset(frame + frame_len - 8, 0, 8);
    assert_int_equal(pkg_open(c, f->pkg_len, &p), 0);
    assert_int_equal(pkg_verify_block(p, bad), -EBADMSG);
    pkg_free(p);
    free(c);
}

static void test_apply_in_any_order_and_repeated_resumes(void **state)
{
    struct fixture *f = *state;
    struct pkg *p;
    struct pkg_applier *a;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    assert_int_equal(pkg_applier_new(p, f->src, f->src_len, &a), 0);
    uint32_t n = pkg_get_info(p)->block_count;
    uint8_t *out = calloc(1, f->dst_len);
    /* a resume: blocks 5.. first, then from the start, block 5 again */
    uint32_t order[] = {5, 6, 7, 0, 1, 2, 3, 4, 5, 5, 7, 0};
    assert_int_equal(n, 8);
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
        size_t off = (size_t)order[k] * PKG_BLOCK_SIZE, got;
        assert_int_equal(pkg_apply_block(a, order[k], out + off, f->dst_len - off, &got), 0);
        assert_int_equal(got, PKG_BLOCK_SIZE);
    }
    assert_memory_equal(out, f->dst, f->dst_len);

    size_t got;
    assert_int_equal(pkg_apply_block(a, n, out, f->dst_len, &got), -EINVAL);
    assert_int_equal(pkg_apply_block(a, 0, out, PKG_BLOCK_SIZE - 1, &got), -ENOSPC);
    free(out);
    pkg_applier_free(a);
    pkg_free(p);
}

/* ---- SHA-256 -------------------------------------------------------- */

static void hex_to(uint8_t *out, const char *hex)
{
    for (size_t i = 0; i < 32; i++)
        sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

/* An unlinked temporary file holding @p len bytes of @p buf. */
static int temp_fd(const void *buf, size_t len)
{
    char path[] = "/tmp/test_pkg.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
    return fd;
}

static void test_sha256_streaming_equals_one_shot_and_known_vectors(void **state)
{
    struct fixture *f = *state;
    uint8_t want[32], got[32];
    /* FIPS 180-2 vectors */
    hex_to(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(pkg_sha256("abc", 3, got), 0);
    assert_memory_equal(got, want, 32);
    hex_to(want, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(pkg_sha256(NULL, 0, got), 0);
    assert_memory_equal(got, want, 32);
    struct pkg_sha256 *h;
    assert_int_equal(pkg_sha256_new(&h), 0);
    assert_int_equal(pkg_sha256_update(h, "a", 1), 0);
    assert_int_equal(pkg_sha256_update(h, NULL, 0), 0);
    assert_int_equal(pkg_sha256_update(h, "bc", 2), 0);
    assert_int_equal(pkg_sha256_final(h, got), 0);
    pkg_sha256_free(h);
    hex_to(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_memory_equal(got, want, 32);

    /* the source image in uneven pieces */
    pkg_sha256(f->src, f->src_len, want);
    assert_int_equal(pkg_sha256_new(&h), 0);
    for (size_t off = 0, step = 1; off < f->src_len; off += step, step = step * 3 + 7) {
        size_t n = f->src_len - off < step ? f->src_len - off : step;
        assert_int_equal(pkg_sha256_update(h, f->src + off, n), 0);
    }
    assert_int_equal(pkg_sha256_final(h, got), 0);
    pkg_sha256_free(h);
    assert_memory_equal(got, want, 32);
    pkg_sha256_free(NULL);
    assert_int_equal(pkg_sha256_update(NULL, "a", 1), -EINVAL);
}

static void test_sha256_fd_reads_in_chunks_and_fails_on_a_short_file(void **state)
{
    struct fixture *f = *state;
    /* more than two 1 MiB chunks, not a multiple of one (a constant: gcc
     * -O3 cannot prove a computed one non-zero and fails big[len - 1]) */
    const size_t len = 5 * 1024 * 1024 + 12345;
    uint8_t *big = malloc(len);
    assert_non_null(big);
    assert_true(f->src_len > 0);
    for (size_t off = 0; off < len; off += f->src_len)
        memcpy(big + off, f->src, len - off < f->src_len ? len - off : f->src_len);
    big[len - 1] ^= 0x5a;
    int fd = temp_fd(big, len);
    uint8_t want[32], got[32];
    pkg_sha256(big, len, want);
    assert_int_equal(pkg_sha256_fd(fd, len, got), 0);
    assert_memory_equal(got, want, 32);
    /* a prefix only, and the file offset is not used */
    lseek(fd, 77, SEEK_SET);
    pkg_sha256(big, 1000, want);
    assert_int_equal(pkg_sha256_fd(fd, 1000, got), 0);
    assert_memory_equal(got, want, 32);
    pkg_sha256(NULL, 0, want);
    assert_int_equal(pkg_sha256_fd(fd, 0, got), 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(pkg_sha256_fd(fd, len + 1, got), -EIO);
    close(fd);
    assert_int_equal(pkg_sha256_fd(fd, 10, got), -EBADF);
    free(big);
}

/* ---- the whole-package check with no source image --------------------- */

/* pkg_check_fd() of @p len bytes of @p b in a temporary file, told
 * @p file_len; *@p in filled. */
static int check_rc_len(const uint8_t *b, size_t len, uint64_t file_len, struct pkg_info *in)
{
    int fd = temp_fd(b, len);
    struct pkg_info none;
    int rc = pkg_check_fd(fd, file_len, in ? in : &none);
    close(fd);
    return rc;
}

static int check_rc(const uint8_t *b, size_t len, struct pkg_info *in)
{
    return check_rc_len(b, len, len, in);
}

static void test_check_fd_accepts_an_intact_package_and_fills_info(void **state)
{
    struct fixture *f = *state;
    struct pkg_info in;
    struct pkg *p;
    assert_int_equal(check_rc(f->pkg, f->pkg_len, &in), 0);
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    assert_memory_equal(&in, pkg_get_info(p), sizeof(in));
    uint8_t sha[32];
    pkg_sha256(f->pkg + in.header_size, in.total_size - in.header_size, sha);
    assert_memory_equal(in.payload_sha256, sha, 32);
    assert_int_equal(pkg_verify(p), 0);
    pkg_free(p);
    assert_int_equal(pkg_check_fd(-1, f->pkg_len, NULL), -EINVAL);
}

/* Flips bits of byte @p at: the check fails with @p want (0: any error). */
static void expect_flip_fails(const struct fixture *f, size_t at, uint8_t mask, int want)
{
    uint8_t *c = copy(f->pkg, f->pkg_len);
    c[at] ^= mask;
    struct pkg_info in;
    int rc = check_rc(c, f->pkg_len, &in);
    if (rc == 0 || (want && rc != want))
        fail_msg("byte %zu ^ 0x%02x: %d, want %d", at, mask, rc, want);
    /* the in-memory check agrees where the header opens */
    struct pkg *p;
    if (pkg_open(c, f->pkg_len, &p) == 0) {
        assert_int_equal(pkg_verify(p), rc);
        pkg_free(p);
    }
    free(c);
}

static void test_check_fd_finds_a_flipped_byte_in_every_region(void **state)
{
    struct fixture *f = *state;
    size_t h = header_size(f);
    struct {
        size_t at;
        int want;
    } header[] = {
        {PKG_OFF_MAGIC, -EBADMSG},           {PKG_OFF_MAGIC + 7, -EBADMSG},
        {PKG_OFF_FORMAT, -EPROTONOSUPPORT},  {PKG_OFF_FLAGS, -EILSEQ},
        {PKG_OFF_BLOCK_SIZE, -EILSEQ},       {PKG_OFF_PAYLOAD_SIZE + 3, -EILSEQ},
        {PKG_OFF_SRC_SHA + 9, -EILSEQ},      {PKG_OFF_DST_VERSION, -EILSEQ},
        {PKG_OFF_PAYLOAD_SHA, -EILSEQ},      {PKG_OFF_PAYLOAD_SHA + 31, -EILSEQ},
        {PKG_FIXED_SIZE + 8, -EILSEQ},       {h - PKG_CHECKSUM_SIZE - 1, -EILSEQ},
        {h - PKG_CHECKSUM_SIZE, -EILSEQ},    {h - 1, -EILSEQ},
    };
    for (size_t i = 0; i < sizeof(header) / sizeof(header[0]); i++)
        expect_flip_fails(f, header[i].at, 0x10, header[i].want);
    expect_flip_fails(f, PKG_OFF_HEADER_SIZE, 0x01, 0);
    /* every entry of the block table */
    for (uint32_t i = 0; i < IMG_SIZE / PKG_BLOCK_SIZE; i++)
        expect_flip_fails(f, PKG_FIXED_SIZE + (size_t)i * PKG_ENTRY_SIZE + i % PKG_ENTRY_SIZE,
                          0x80, -EILSEQ);
    /* every frame: its first, a middle and its last byte, one bit each --
     * a bit that still decodes against zeros is the payload digest's */
    for (uint32_t i = 0; i < IMG_SIZE / PKG_BLOCK_SIZE; i++) {
        struct pkg_entry e;
        pkg_entry_get(entry(f->pkg, i), &e);
        size_t at[] = {0, 5, e.frame_len / 2, e.frame_len - 1};
        for (size_t k = 0; k < sizeof(at) / sizeof(at[0]); k++)
            for (int bit = 0; bit < 8; bit += 3)
                expect_flip_fails(f, h + e.frame_off + at[k], (uint8_t)(1u << bit), -EBADMSG);
    }
}

static void test_check_fd_catches_every_flipped_byte_of_a_small_package(void **state)
{
    (void)state;
    uint8_t *a, *b, *pkg;
    size_t al, bl, pl;
    assert_int_equal(pkg_image_generate(V1, 72 << 10, &a, &al), 0);
    assert_int_equal(pkg_image_generate(V2, 72 << 10, &b, &bl), 0);
    assert_int_equal(pkg_build(a, al, V1, b, bl, V2, &pkg, &pl), 0);
    assert_int_equal(check_rc(pkg, pl, NULL), 0);
    int fd = temp_fd(pkg, pl);
    for (size_t at = 0; at < pl; at++) {
        uint8_t mask = (uint8_t)(1u << (at % 8));
        assert_int_equal(pwrite(fd, &(uint8_t){pkg[at] ^ mask}, 1, (off_t)at), 1);
        int rc = pkg_check_fd(fd, pl, NULL);
        if (rc == 0)
            fail_msg("byte %zu ^ 0x%02x passed", at, mask);
        assert_int_equal(pwrite(fd, &pkg[at], 1, (off_t)at), 1);
    }
    assert_int_equal(pkg_check_fd(fd, pl, NULL), 0);
    close(fd);
    free(a);
    free(b);
    free(pkg);
}

static void test_check_fd_truncated_extra_and_foreign_files_fail(void **state)
{
    struct fixture *f = *state;
    size_t h = header_size(f);
    size_t cuts[] = {0, 5, 9, PKG_FIXED_SIZE - 1, PKG_FIXED_SIZE, h - 1, h, f->pkg_len / 2,
                     f->pkg_len - 1};
    struct pkg_info in;
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int rc = check_rc(f->pkg, cuts[i], &in);
        if (rc != -ENODATA)
            fail_msg("cut at %zu: %d", cuts[i], rc);
    }
    /* a file shorter than the length it is said to have */
    assert_int_equal(check_rc_len(f->pkg, f->pkg_len - 1, f->pkg_len, NULL), -ENODATA);
    assert_int_equal(check_rc_len(f->pkg, h + 10, f->pkg_len, NULL), -ENODATA);
    /* bytes after the end, one or many */
    uint8_t *c = calloc(1, f->pkg_len + 4096);
    memcpy(c, f->pkg, f->pkg_len);
    assert_int_equal(check_rc(c, f->pkg_len + 1, &in), -EMSGSIZE);
    assert_int_equal(check_rc(c, f->pkg_len + 4096, &in), -EMSGSIZE);
    free(c);
    /* not ours: info stays zeroed */
    static const uint8_t zip[] = "PK\3\4 a vendor package, not ours at all, longer than a header";
    memset(&in, 0xff, sizeof(in));
    assert_int_equal(check_rc(zip, sizeof(zip), &in), -EBADMSG);
    assert_int_equal(in.format_version, 0);
    assert_int_equal(in.total_size, 0);
    c = calloc(1, f->pkg_len);
    assert_int_equal(check_rc(c, f->pkg_len, NULL), -EBADMSG);
    free(c);
}

/* ---- reading piece by piece -------------------------------------------- */

static void pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
}

static void test_header_size_answers_from_the_fixed_header(void **state)
{
    struct fixture *f = *state;
    size_t need = 0;
    assert_int_equal(pkg_header_size(f->pkg, PKG_FIXED_HEADER_SIZE, &need), 0);
    assert_int_equal(need, header_size(f));
    assert_int_equal(pkg_header_size(f->pkg, f->pkg_len, &need), 0);
    assert_int_equal(pkg_header_size(f->pkg, PKG_FIXED_HEADER_SIZE - 1, &need), -ENODATA);
    assert_int_equal(pkg_header_size((const uint8_t *)"PK\3\4", 4, &need), -EBADMSG);
    uint8_t c[PKG_FIXED_HEADER_SIZE];
    memcpy(c, f->pkg, sizeof(c));
    pkg_put_le16(c + PKG_OFF_FORMAT, 1);
    assert_int_equal(pkg_header_size(c, sizeof(c), &need), -EPROTONOSUPPORT);
    pkg_put_le16(c + PKG_OFF_FORMAT, PKG_FORMAT_VERSION);
    pkg_put_le32(c + PKG_OFF_HEADER_SIZE, UINT32_MAX);
    assert_int_equal(pkg_header_size(c, sizeof(c), &need), -ERANGE);
    pkg_put_le32(c + PKG_OFF_HEADER_SIZE, 10);
    assert_int_equal(pkg_header_size(c, sizeof(c), &need), -ERANGE);
}

static void test_open_header_checks_the_file_length_and_copies_the_header(void **state)
{
    struct fixture *f = *state;
    size_t h = header_size(f);
    struct pkg *p = (void *)1;
    assert_int_equal(pkg_open_header(f->pkg, h - 1, f->pkg_len, &p), -ENODATA);
    assert_null(p);
    assert_int_equal(pkg_open_header(f->pkg, h, f->pkg_len - 1, &p), -ENODATA);
    assert_int_equal(pkg_open_header(f->pkg, h, f->pkg_len + 1, &p), -EMSGSIZE);
    uint8_t *c = copy(f->pkg, h);
    c[PKG_OFF_DST_SIZE] ^= 1;
    assert_int_equal(pkg_open_header(c, h, f->pkg_len, &p), -EILSEQ);
    c[PKG_OFF_DST_SIZE] ^= 1;
    assert_int_equal(pkg_open_header(c, h, f->pkg_len, &p), 0);
    memset(c, 0xee, h); /* not borrowed */
    free(c);
    const struct pkg_info *in = pkg_get_info(p);
    assert_string_equal(in->dst_version, V2);
    assert_int_equal(in->total_size, f->pkg_len);
    struct pkg_block b;
    assert_int_equal(pkg_block_get(p, 7, &b), 0);
    struct pkg_entry e;
    pkg_entry_get(entry(f->pkg, 7), &e);
    assert_int_equal(b.frame_off, h + e.frame_off);
    assert_int_equal(b.frame_len, e.frame_len);
    assert_int_equal(b.prefix_off, e.prefix_off);
    assert_int_equal(b.prefix_len, e.prefix_len);
    assert_int_equal(b.dst_off, 7 * PKG_BLOCK_SIZE);
    assert_int_equal(b.dst_len, PKG_BLOCK_SIZE);
    assert_int_equal(pkg_block_get(p, 8, &b), -EINVAL);
    /* the whole-buffer calls need the frames */
    struct pkg_applier *a;
    assert_int_equal(pkg_verify(p), -EINVAL);
    assert_int_equal(pkg_verify_block(p, 0), -EINVAL);
    assert_int_equal(pkg_applier_new(p, f->src, f->src_len, &a), -EINVAL);
    pkg_free(p);
}

/* Applies the package file @p pfd to the source file @p sfd block by block
 * with pread, holding one frame, one prefix and one block at a time, and
 * returns the target (malloc'd). */
static uint8_t *apply_piecewise(int pfd, uint64_t plen, int sfd, struct pkg_decoder *d)
{
    uint8_t fixed[PKG_FIXED_HEADER_SIZE];
    size_t need;
    pread_all(pfd, fixed, sizeof(fixed), 0);
    assert_int_equal(pkg_header_size(fixed, sizeof(fixed), &need), 0);
    uint8_t *hdr = malloc(need);
    pread_all(pfd, hdr, need, 0);
    struct pkg *p;
    assert_int_equal(pkg_open_header(hdr, need, plen, &p), 0);
    free(hdr);
    const struct pkg_info *in = pkg_get_info(p);
    uint8_t *out = malloc(in->dst_size);
    uint8_t *blk = malloc(in->block_size);
    for (uint32_t i = 0; i < in->block_count; i++) {
        struct pkg_block b;
        assert_int_equal(pkg_block_get(p, i, &b), 0);
        uint8_t *frame = malloc(b.frame_len);
        uint8_t *prefix = malloc(b.prefix_len ? b.prefix_len : 1);
        pread_all(pfd, frame, b.frame_len, b.frame_off);
        pread_all(sfd, prefix, b.prefix_len, b.prefix_off);
        size_t n = 0;
        assert_int_equal(pkg_decode_block(d, p, i, frame, prefix, blk, in->block_size, &n), 0);
        assert_int_equal(n, b.dst_len);
        memcpy(out + b.dst_off, blk, n);
        free(frame);
        free(prefix);
    }
    uint8_t sha[32];
    pkg_sha256(out, in->dst_size, sha);
    assert_memory_equal(sha, in->dst_sha256, 32);
    free(blk);
    pkg_free(p);
    return out;
}

static void test_open_header_and_decode_block_from_files_reproduce_the_target(void **state)
{
    struct fixture *f = *state;
    int pfd = temp_fd(f->pkg, f->pkg_len), sfd = temp_fd(f->src, f->src_len);
    struct pkg_decoder *d;
    assert_int_equal(pkg_decoder_new(&d), 0);
    uint8_t *out = apply_piecewise(pfd, f->pkg_len, sfd, d);

    struct pkg *p;
    uint8_t *all;
    size_t len;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    assert_int_equal(pkg_apply_all(p, f->src, f->src_len, &all, &len), 0);
    assert_memory_equal(out, all, len);
    assert_memory_equal(out, f->dst, len);
    free(all);
    pkg_free(p);
    free(out);

    /* pkg_open_fd() reads the same header; the decoder's errors */
    assert_int_equal(pkg_open_fd(pfd, f->pkg_len, &p), 0);
    assert_int_equal(pkg_get_info(p)->block_count, 8);
    struct pkg_block b;
    pkg_block_get(p, 2, &b);
    uint8_t *frame = malloc(b.frame_len), *blk = malloc(PKG_BLOCK_SIZE);
    pread_all(pfd, frame, b.frame_len, b.frame_off);
    const uint8_t *prefix = f->src + b.prefix_off;
    assert_int_equal(pkg_decode_block(d, p, 2, frame, prefix, blk, PKG_BLOCK_SIZE - 1, &len),
                     -ENOSPC);
    assert_int_equal(pkg_decode_block(d, p, 8, frame, prefix, blk, PKG_BLOCK_SIZE, &len),
                     -EINVAL);
    assert_int_equal(pkg_decode_block(d, p, 2, frame, NULL, blk, PKG_BLOCK_SIZE, &len), -EINVAL);
    /* the wrong source bytes: the block digest says so */
    assert_int_equal(pkg_decode_block(d, p, 2, frame, f->dst + b.prefix_off, blk, PKG_BLOCK_SIZE,
                                      &len),
                     -EBADMSG);
    frame[b.frame_len / 2] ^= 0x40;
    assert_int_equal(pkg_decode_block(d, p, 2, frame, prefix, blk, PKG_BLOCK_SIZE, &len),
                     -EBADMSG);
    frame[b.frame_len / 2] ^= 0x40;
    assert_int_equal(pkg_decode_block(d, p, 2, frame, prefix, blk, PKG_BLOCK_SIZE, &len), 0);
    assert_memory_equal(blk, f->dst + b.dst_off, len);
    free(frame);
    free(blk);
    pkg_free(p);
    assert_int_equal(pkg_open_fd(pfd, f->pkg_len + 1, &p), -EMSGSIZE);
    assert_int_equal(pkg_open_fd(pfd, header_size(f) - 1, &p), -ENODATA);
    pkg_decoder_free(d);
    pkg_decoder_free(NULL);
    close(pfd);
    close(sfd);
}

struct worker {
    const struct fixture *f;
    int pfd, sfd;
    int rounds;
    int failures;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct pkg_decoder *d;
    if (pkg_decoder_new(&d))
        return NULL;
    for (int r = 0; r < w->rounds; r++) {
        struct pkg *p;
        if (pkg_check_fd(w->pfd, w->f->pkg_len, NULL) ||
            pkg_open_fd(w->pfd, w->f->pkg_len, &p)) {
            w->failures++;
            continue;
        }
        uint8_t *blk = malloc(PKG_BLOCK_SIZE), *prefix = malloc(w->f->src_len);
        for (uint32_t i = 0; blk && prefix && i < pkg_get_info(p)->block_count; i++) {
            struct pkg_block b;
            size_t n;
            pkg_block_get(p, i, &b);
            uint8_t *frame = malloc(b.frame_len);
            if (!frame || pread(w->pfd, frame, b.frame_len, (off_t)b.frame_off) != b.frame_len ||
                pread(w->sfd, prefix, b.prefix_len, (off_t)b.prefix_off) != b.prefix_len ||
                pkg_decode_block(d, p, i, frame, prefix, blk, PKG_BLOCK_SIZE, &n) ||
                memcmp(blk, w->f->dst + b.dst_off, n))
                w->failures++;
            free(frame);
        }
        uint8_t sha[32], want[32];
        pkg_sha256(w->f->src, w->f->src_len, want);
        if (pkg_sha256_fd(w->sfd, w->f->src_len, sha) || memcmp(sha, want, 32))
            w->failures++;
        free(blk);
        free(prefix);
        pkg_free(p);
    }
    pkg_decoder_free(d);
    return NULL;
}

static void test_two_decoders_on_two_threads_share_nothing(void **state)
{
    struct fixture *f = *state;
    int pfd = temp_fd(f->pkg, f->pkg_len), sfd = temp_fd(f->src, f->src_len);
    struct worker w[2] = {{f, pfd, sfd, 6, 0}, {f, pfd, sfd, 6, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    close(pfd);
    close(sfd);
}

/* ---- images ----------------------------------------------------------- */

static void test_image_is_deterministic(void **state)
{
    struct fixture *f = *state;
    uint8_t *again;
    size_t len;
    assert_int_equal(pkg_image_generate(V1, IMG_SIZE, &again, &len), 0);
    assert_int_equal(len, f->src_len);
    assert_memory_equal(again, f->src, len);
    free(again);
    assert_memory_not_equal(f->src, f->dst, f->src_len);
}

static void test_image_default_size_and_limits(void **state)
{
    (void)state;
    uint8_t *img;
    size_t len;
    assert_int_equal(pkg_image_generate(V1, 0, &img, &len), 0);
    assert_int_equal(len, PKG_IMAGE_DEFAULT_SIZE);
    free(img);
    assert_int_equal(pkg_image_generate(V1, PKG_IMAGE_MIN_SIZE, &img, &len), 0);
    free(img);
    assert_int_equal(pkg_image_generate(V1, PKG_IMAGE_MIN_SIZE - 1, &img, &len), -EINVAL);
    assert_int_equal(pkg_image_generate(V1, (size_t)PKG_IMAGE_MAX_SIZE + 1, &img, &len), -EFBIG);
    char long_v[PKG_VERSION_MAX + 2];
    memset(long_v, '1', sizeof(long_v) - 1);
    long_v[sizeof(long_v) - 1] = 0;
    assert_int_equal(pkg_image_generate(long_v, IMG_SIZE, &img, &len), -ENAMETOOLONG);
}

static void test_two_versions_differ_like_releases(void **state)
{
    struct fixture *f = *state;
    /* the delta is a realistic fraction of the image */
    double ratio = (double)f->pkg_len / (double)f->dst_len;
    if (ratio < 0.02 || ratio > 0.40)
        fail_msg("delta is %.1f%% of the image", ratio * 100);
    /* code-like: compresses like firmware, neither random nor trivial */
    size_t cap = ZSTD_compressBound(f->src_len);
    uint8_t *z = malloc(cap);
    size_t zn = ZSTD_compress(z, cap, f->src, f->src_len, 3);
    assert_false(ZSTD_isError(zn));
    double cr = (double)zn / (double)f->src_len;
    if (cr < 0.25 || cr > 0.75)
        fail_msg("image compresses to %.1f%%", cr * 100);
    free(z);
    /* code shifted: most of the image does not sit at the same offset, yet
     * the start (header, vectors, first functions) mostly does */
    size_t same = 0;
    for (size_t i = 0; i < f->src_len; i++)
        same += f->src[i] == f->dst[i];
    assert_true(same < f->src_len * 3 / 4);
}

static void test_image_version_round_trip(void **state)
{
    struct fixture *f = *state;
    char v[PKG_VERSION_MAX + 1];
    assert_int_equal(pkg_image_version(f->src, f->src_len, v, sizeof(v)), 0);
    assert_string_equal(v, V1);
    assert_int_equal(pkg_image_version(f->dst, f->dst_len, v, sizeof(v)), 0);
    assert_string_equal(v, V2);
    assert_int_equal(pkg_image_version(f->src, f->src_len, v, strlen(V1)), -ENOSPC);
    assert_int_equal(pkg_image_version(f->src, 40, v, sizeof(v)), -ENOENT);
    assert_int_equal(pkg_image_version(f->pkg, f->pkg_len, v, sizeof(v)), -ENOENT);
    uint8_t *c = copy(f->src, f->src_len);
    memset(c + 16, 'A', 64); /* version field without its NUL */
    assert_int_equal(pkg_image_version(c, f->src_len, v, sizeof(v)), -ENOENT);
    free(c);
}

/* ---- helpers ------------------------------------------------------------ */

static void test_block_digest_is_xxh64_as_zstd_computes_it(void **state)
{
    struct fixture *f = *state;
    assert_true(pkg_xxh64("", 0) == 0xEF46DB3751D8E999ULL);
    /* zstd's frame checksum is the low 32 bits of XXH64 of the content */
    size_t lens[] = {1, 3, 4, 7, 8, 31, 32, 33, 100, 4096 + 13};
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    uint8_t z[8192];
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = ZSTD_compress2(cc, z, sizeof(z), f->src + 1000, lens[i]);
        assert_false(ZSTD_isError(n));
        assert_int_equal(pkg_get_le32(z + n - 4), (uint32_t)pkg_xxh64(f->src + 1000, lens[i]));
    }
    ZSTD_freeCCtx(cc);
}

static void test_strerror_has_a_line_per_error(void **state)
{
    (void)state;
    int codes[] = {-ENODATA, -EBADMSG,  -EPROTONOSUPPORT, -EILSEQ, -ENAMETOOLONG,
                   -ERANGE,  -EMSGSIZE, -EXDEV,           -EFBIG,  -ENOENT};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const char *m = pkg_strerror(codes[i]);
        assert_non_null(m);
        assert_true(strlen(m) > 5);
        assert_null(strchr(m, '\n'));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(m, pkg_strerror(codes[j]));
    }
}

static void test_file_write_is_atomic_and_reads_back(void **state)
{
    struct fixture *f = *state;
    char dir[] = "/tmp/test_pkg.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/p.pkg", dir);
    assert_int_equal(pkg_file_write(path, f->pkg, f->pkg_len), 0);
    assert_int_equal(pkg_file_write(path, f->pkg, 10), 0); /* replaces */
    uint8_t *b;
    size_t len;
    assert_int_equal(pkg_file_read(path, 1 << 20, &b, &len), 0);
    assert_int_equal(len, 10);
    assert_memory_equal(b, f->pkg, 10);
    free(b);
    assert_int_equal(pkg_file_read(path, 9, &b, &len), -EFBIG);
    assert_int_equal(pkg_file_read(dir, 100, &b, &len), -EISDIR);
    /* no temporary file is left beside it */
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    unlink(path);
    assert_int_equal(pkg_file_read(path, 100, &b, &len), -ENOENT);
    /* a directory that does not exist: error, nothing written */
    snprintf(path, sizeof(path), "%s/no/p.pkg", dir);
    assert_int_equal(pkg_file_write(path, f->pkg, 10), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

static void test_info_json_names_every_field(void **state)
{
    struct fixture *f = *state;
    struct pkg *p;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &p), 0);
    char *text = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&text, &n);
    assert_int_equal(pkg_info_print(pkg_get_info(p), true, m), 0);
    fclose(m);
    const char *keys[] = {
        "\"format_version\":2", "\"src_version\":\"" V1 "\"", "\"dst_version\":\"" V2 "\"",
        "\"src_sha256\":\"",    "\"dst_sha256\":\"",          "\"src_size\":524288",
        "\"block_size\":65536", "\"block_count\":8",          "\"total_size\":",
        "\"payload_sha256\":\""};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!strstr(text, keys[i]))
            fail_msg("%s missing in %s", keys[i], text);
    assert_int_equal(text[0], '{');
    assert_int_equal(text[n - 2], '}');
    free(text);
    pkg_free(p);
}

/* ---- the dfota-pack command line ------------------------------------- */

/* Runs a shell command line; returns its exit status, stderr in @p err. */
__attribute__((format(printf, 3, 4))) static int sh(char *err, size_t cap, const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    char full[1200];
    snprintf(full, sizeof(full), "%s 2>&1 >/dev/null", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(err, 1, cap - 1, p);
    err[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_dfota_pack_reports_bad_input_in_one_line(void **state)
{
    struct fixture *f = *state;
    const char *build = getenv("DFOTA_BUILD_DIR");
    char tool[512];
    snprintf(tool, sizeof(tool), "%s/dfota-pack", build ? build : ".");
    if (access(tool, X_OK))
        skip();
    char dir[] = "/tmp/test_pkg.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char good[64], bad[64], err[512];
    snprintf(good, sizeof(good), "%s/good.pkg", dir);
    snprintf(bad, sizeof(bad), "%s/bad.pkg", dir);
    assert_int_equal(pkg_file_write(good, f->pkg, f->pkg_len), 0);
    assert_int_equal(sh(err, sizeof(err), "%s verify %s", tool, good), 0);

    struct pkg_entry e3;
    pkg_entry_get(entry(f->pkg, 3), &e3);
    size_t frame3 = header_size(f) + e3.frame_off;
    /* a byte of frame 3 whose flip still decodes (a literal): only the
     * payload digest sees it */
    size_t quiet = SIZE_MAX;
    uint8_t *q = copy(f->pkg, f->pkg_len);
    for (size_t at = frame3 + e3.frame_len / 2; quiet == SIZE_MAX && at < frame3 + e3.frame_len;
         at++) {
        struct pkg *p;
        q[at] ^= 0x01;
        assert_int_equal(pkg_open(q, f->pkg_len, &p), 0);
        if (pkg_verify_block(p, 3) == 0)
            quiet = at;
        pkg_free(p);
        q[at] ^= 0x01;
    }
    free(q);
    assert_int_not_equal(quiet, SIZE_MAX);
    struct {
        size_t len;
        size_t flip; /* SIZE_MAX: none */
        uint8_t mask;
        const char *says;
    } cases[] = {
        {f->pkg_len - 1, SIZE_MAX, 0, "truncated"},
        {f->pkg_len + 1, SIZE_MAX, 0, "trailing data"},
        {f->pkg_len, 0, 1, "bad magic"},
        {f->pkg_len, PKG_OFF_DST_SIZE, 1, "checksum"},
        {f->pkg_len, frame3, 0xff, "block 3: corrupt frame"},
        {f->pkg_len, quiet, 0x01, "payload digest mismatch"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *c = calloc(1, f->pkg_len + 1);
        memcpy(c, f->pkg, f->pkg_len);
        if (cases[i].flip != SIZE_MAX)
            c[cases[i].flip] ^= cases[i].mask;
        assert_int_equal(pkg_file_write(bad, c, cases[i].len), 0);
        free(c);
        assert_int_not_equal(sh(err, sizeof(err), "%s verify %s", tool, bad), 0);
        assert_true(!strncmp(err, "dfota-pack: ", 12));
        if (!strstr(err, cases[i].says))
            fail_msg("case %zu: %s", i, err);
        assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
    }
    assert_int_equal(sh(err, sizeof(err), "%s verify %s/missing.pkg", tool, dir), 1);
    assert_non_null(strstr(err, "No such file"));
    assert_int_equal(sh(err, sizeof(err), "%s info %s --bogus", tool, good), 2);
    assert_non_null(strstr(err, "dfota-pack: unknown option '--bogus'"));
    assert_int_not_equal(
        sh(err, sizeof(err), "%s build --from 1 --to %0100d -o %s --size 64K", tool, 7, bad), 0);
    assert_non_null(strstr(err, "too long"));
    unlink(good);
    unlink(bad);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_accepts_built_package_and_reports_header),
        cmocka_unit_test(test_open_truncated_package_is_enodata),
        cmocka_unit_test(test_open_wrong_magic_is_ebadmsg),
        cmocka_unit_test(test_open_unsupported_format_version_is_eprotonosupport),
        cmocka_unit_test(test_open_flipped_header_bit_fails_checksum),
        cmocka_unit_test(test_open_block_table_entry_out_of_bounds_is_erange),
        cmocka_unit_test(test_open_bad_sizes_are_erange),
        cmocka_unit_test(test_open_version_too_long_is_enametoolong),
        cmocka_unit_test(test_open_trailing_data_is_emsgsize),
        cmocka_unit_test(test_damaged_packages_never_crash),
        cmocka_unit_test(test_build_is_deterministic),
        cmocka_unit_test(test_build_refuses_bad_versions_and_sizes),
        cmocka_unit_test(test_apply_round_trip_equals_target),
        cmocka_unit_test(test_round_trip_with_short_last_block_and_other_sizes),
        cmocka_unit_test(test_apply_with_wrong_source_is_exdev),
        cmocka_unit_test(test_corrupt_frame_byte_fails_only_that_block),
        cmocka_unit_test(test_verify_finds_a_broken_frame_without_the_source),
        cmocka_unit_test(test_apply_in_any_order_and_repeated_resumes),
        cmocka_unit_test(test_sha256_streaming_equals_one_shot_and_known_vectors),
        cmocka_unit_test(test_sha256_fd_reads_in_chunks_and_fails_on_a_short_file),
        cmocka_unit_test(test_check_fd_accepts_an_intact_package_and_fills_info),
        cmocka_unit_test(test_check_fd_finds_a_flipped_byte_in_every_region),
        cmocka_unit_test(test_check_fd_catches_every_flipped_byte_of_a_small_package),
        cmocka_unit_test(test_check_fd_truncated_extra_and_foreign_files_fail),
        cmocka_unit_test(test_header_size_answers_from_the_fixed_header),
        cmocka_unit_test(test_open_header_checks_the_file_length_and_copies_the_header),
        cmocka_unit_test(test_open_header_and_decode_block_from_files_reproduce_the_target),
        cmocka_unit_test(test_two_decoders_on_two_threads_share_nothing),
        cmocka_unit_test(test_image_is_deterministic),
        cmocka_unit_test(test_image_default_size_and_limits),
        cmocka_unit_test(test_two_versions_differ_like_releases),
        cmocka_unit_test(test_image_version_round_trip),
        cmocka_unit_test(test_block_digest_is_xxh64_as_zstd_computes_it),
        cmocka_unit_test(test_strerror_has_a_line_per_error),
        cmocka_unit_test(test_file_write_is_atomic_and_reads_back),
        cmocka_unit_test(test_info_json_names_every_field),
        cmocka_unit_test(test_dfota_pack_reports_bad_input_in_one_line),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
