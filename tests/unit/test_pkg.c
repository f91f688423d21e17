/* test_pkg.c - the package layer: header parsing per corruption class,
 * build and apply round trips, resumable block order, the generated
 * firmware images, the file helpers and the dfota-pack command line. */
#include <errno.h>
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
    pkg_put_le16(c + PKG_OFF_FORMAT, 1); /* the format before the payload digest */
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

/* ---- the package's own digest and the streaming reader ------------------ */

/* pkg_check_fd() of @p len bytes of @p b written to a temporary file. */
static int check_fd_rc(const uint8_t *b, size_t len, struct pkg_info *info)
{
    char path[] = "/tmp/test_pkg.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    int rc = pkg_check_fd(fd, len, info);
    close(fd);
    return rc;
}

static void test_streaming_sha256_equals_one_shot_and_the_known_vector(void **state)
{
    struct fixture *f = *state;
    uint8_t one[32], pieces[32];
    /* FIPS 180-2's "abc" */
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    assert_int_equal(pkg_sha256("abc", 3, one), 0);
    assert_memory_equal(one, abc, 32);
    assert_int_equal(pkg_sha256(f->src, f->src_len, one), 0);
    struct pkg_sha256 *h;
    assert_int_equal(pkg_sha256_new(&h), 0);
    for (size_t off = 0; off < f->src_len; off += 4093) /* odd pieces */
        assert_int_equal(pkg_sha256_update(h, f->src + off,
                                           f->src_len - off < 4093 ? f->src_len - off : 4093),
                         0);
    assert_int_equal(pkg_sha256_final(h, pieces), 0);
    pkg_sha256_free(h);
    assert_memory_equal(one, pieces, 32);

    char path[] = "/tmp/test_pkg.XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    assert_int_equal(write(fd, f->src, f->src_len), (ssize_t)f->src_len);
    assert_int_equal(pkg_sha256_fd(fd, f->src_len, pieces), 0);
    assert_memory_equal(one, pieces, 32);
    assert_int_equal(pkg_sha256_fd(fd, f->src_len + 1, pieces), -EIO); /* the file ends first */
    close(fd);
}

static void test_check_fd_finds_any_changed_byte_without_the_source(void **state)
{
    struct fixture *f = *state;
    struct pkg_info info;
    assert_int_equal(check_fd_rc(f->pkg, f->pkg_len, &info), 0);
    assert_int_equal(info.total_size, f->pkg_len);
    assert_string_equal(info.dst_version, V2);
    size_t hs = header_size(f);
    uint8_t *c = copy(f->pkg, f->pkg_len);
    /* every region: fixed header, payload digest, table, checksum, each
     * frame's first and last byte, the package's last byte */
    size_t at[64], n = 0;
    at[n++] = 20;
    at[n++] = PKG_OFF_PAYLOAD_SHA + 3;
    at[n++] = PKG_FIXED_SIZE + 5;
    at[n++] = hs - 1;
    for (uint32_t i = 0; i < 8; i++) {
        size_t len;
        uint8_t *fr = frame_in(f, c, i, &len);
        at[n++] = (size_t)(fr - c);
        at[n++] = (size_t)(fr - c) + len - 1;
    }
    at[n++] = f->pkg_len - 1;
    for (size_t k = 0; k < n; k++) {
        c[at[k]] ^= 0x01;
        int rc = check_fd_rc(c, f->pkg_len, NULL);
        if (rc == 0)
            fail_msg("a flipped bit at %zu passed the check", at[k]);
        /* the whole-buffer reader agrees */
        struct pkg *p = NULL;
        if (pkg_open(c, f->pkg_len, &p) == 0) {
            assert_int_equal(pkg_verify(p), -EBADMSG);
            pkg_free(p);
        }
        c[at[k]] ^= 0x01;
    }
    assert_int_equal(check_fd_rc(c, f->pkg_len - 1, NULL), -ENODATA);
    assert_int_equal(check_fd_rc(c, 100, NULL), -ENODATA);
    uint8_t *longer = calloc(1, f->pkg_len + 1);
    memcpy(longer, f->pkg, f->pkg_len);
    assert_int_equal(check_fd_rc(longer, f->pkg_len + 1, NULL), -EMSGSIZE);
    free(longer);
    assert_int_equal(check_fd_rc((const uint8_t *)"<html>not found</html>", 22, NULL), -EBADMSG);
    free(c);
}

static void test_streaming_reader_rebuilds_the_target_block_by_block(void **state)
{
    struct fixture *f = *state;
    size_t need;
    assert_int_equal(pkg_header_size(f->pkg, PKG_FIXED_HEADER_SIZE, &need), 0);
    assert_int_equal(need, header_size(f));
    assert_int_equal(pkg_header_size(f->pkg, PKG_FIXED_HEADER_SIZE - 1, &need), -ENODATA);
    /* the header alone, in its own buffer that goes away */
    uint8_t *hdr = copy(f->pkg, need);
    struct pkg *p;
    assert_int_equal(pkg_open_header(hdr, need, f->pkg_len, &p), 0);
    free(hdr);
    struct pkg *q;
    hdr = copy(f->pkg, need);
    assert_int_equal(pkg_open_header(hdr, need, f->pkg_len - 1, &q), -ENODATA);
    assert_int_equal(pkg_open_header(hdr, need - 1, f->pkg_len, &q), -ENODATA);
    free(hdr);
    struct pkg_decoder *d1, *d2;
    assert_int_equal(pkg_decoder_new(&d1), 0);
    assert_int_equal(pkg_decoder_new(&d2), 0);
    uint8_t *out = calloc(1, f->dst_len);
    const struct pkg_info *in = pkg_get_info(p);
    for (uint32_t i = 0; i < in->block_count; i++) {
        struct pkg_block b;
        assert_int_equal(pkg_block_get(p, i, &b), 0);
        /* each piece in a buffer of exactly its size, as read from files */
        uint8_t *frame = copy(f->pkg + b.frame_off, b.frame_len);
        uint8_t *prefix = copy(f->src + b.prefix_off, b.prefix_len);
        size_t got;
        assert_int_equal(pkg_decode_block(i % 2 ? d1 : d2, p, i, frame, prefix, out + b.dst_off,
                                          f->dst_len - b.dst_off, &got),
                         0);
        assert_int_equal(got, b.dst_len);
        frame[b.frame_len / 2] ^= 0x40;
        uint8_t *scratch = malloc(b.dst_len);
        assert_int_equal(pkg_decode_block(d1, p, i, frame, prefix, scratch, b.dst_len, &got),
                         -EBADMSG);
        free(scratch);
        free(frame);
        free(prefix);
    }
    uint8_t *whole;
    size_t whole_len;
    assert_int_equal(pkg_apply_all(p == NULL ? NULL : p, f->src, f->src_len, &whole, &whole_len),
                     -EINVAL); /* the header-only package has no frames to apply */
    struct pkg *full;
    assert_int_equal(pkg_open(f->pkg, f->pkg_len, &full), 0);
    assert_int_equal(pkg_apply_all(full, f->src, f->src_len, &whole, &whole_len), 0);
    assert_memory_equal(out, whole, f->dst_len);
    assert_memory_equal(out, f->dst, f->dst_len);
    struct pkg_block b;
    assert_int_equal(pkg_block_get(p, in->block_count, &b), -EINVAL);
    free(whole);
    free(out);
    pkg_free(full);
    pkg_decoder_free(d1);
    pkg_decoder_free(d2);
    pkg_free(p);
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
        "\"block_size\":65536", "\"block_count\":8",          "\"total_size\":"};
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

    struct {
        size_t len;
        size_t flip; /* SIZE_MAX: none */
        const char *says;
    } cases[] = {
        {f->pkg_len - 1, SIZE_MAX, "truncated"},
        {f->pkg_len, 0, "bad magic"},
        {f->pkg_len, PKG_OFF_DST_SIZE, "checksum"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *c = copy(f->pkg, f->pkg_len);
        if (cases[i].flip != SIZE_MAX)
            c[cases[i].flip] ^= 1;
        assert_int_equal(pkg_file_write(bad, c, cases[i].len), 0);
        free(c);
        assert_int_not_equal(sh(err, sizeof(err), "%s verify %s", tool, bad), 0);
        assert_true(!strncmp(err, "dfota-pack: ", 12));
        assert_non_null(strstr(err, cases[i].says));
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
        cmocka_unit_test(test_streaming_sha256_equals_one_shot_and_the_known_vector),
        cmocka_unit_test(test_check_fd_finds_any_changed_byte_without_the_source),
        cmocka_unit_test(test_streaming_reader_rebuilds_the_target_block_by_block),
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
