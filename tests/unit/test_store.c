/* test_store.c - the storage layer: settings, records, the NAND slot,
 * firmware images, EFS files, and that kill -9 never tears a file. */
/* cmocka.h wants these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include "dfota/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SLOT_CAP_BG95M1 (7040u * 1024u)

struct fx {
    uv_loop_t loop;
    char dir[64];
    char outside[64]; /* a folder outside the state dir, when a test makes one */
    struct store *s;
    char path[PATH_MAX];
};

/* ---- helpers ----------------------------------------------------------- */

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void make_tmpdir(char *dir, size_t cap)
{
    snprintf(dir, cap, "/tmp/test_store.XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    make_tmpdir(f->dir, sizeof(f->dir));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(store_open_cfg(f->dir, &(struct store_cfg){.loop = &f->loop}, &f->s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    uv_run(&f->loop, UV_RUN_DEFAULT); /* what a test left queued */
    store_close(f->s);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    rm_rf(f->dir);
    if (f->outside[0])
        rm_rf(f->outside);
    free(f);
    return 0;
}

/* A path below the state directory (valid until the next call). */
static const char *at(struct fx *f, const char *rel)
{
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, rel);
    return f->path;
}

static void store_reopen(struct fx *f)
{
    assert_int_equal(store_open_cfg(f->dir, &(struct store_cfg){.loop = &f->loop}, &f->s), 0);
}

static void reopen(struct fx *f)
{
    uv_run(&f->loop, UV_RUN_DEFAULT);
    store_close(f->s);
    f->s = NULL;
    store_reopen(f);
}

/* Completions of the asynchronous calls, for the tests to wait on. */
struct done {
    int calls, result;
    uint64_t size;
};

static void done_cb(void *ud, int result)
{
    struct done *d = ud;
    d->calls++;
    d->result = result;
}

static void slot_done_cb(void *ud, int result, uint64_t size)
{
    struct done *d = ud;
    d->calls++;
    d->result = result;
    d->size = size;
}

/* Runs @p loop until the work queue of @p s is empty and returns what the
 * completion said. */
static int wait_done(uv_loop_t *loop, struct done *d)
{
    uv_run(loop, UV_RUN_DEFAULT); /* work requests keep it running until done */
    assert_int_equal(d->calls, 1);
    return d->result;
}

/* store_slot_finish(), waited for. */
static int slot_finish(uv_loop_t *loop, struct store_slot_writer *w)
{
    struct done d = {0};
    store_slot_finish(w, slot_done_cb, &d);
    return wait_done(loop, &d);
}

/* store_efs_finish(), waited for. */
static int efs_finish(uv_loop_t *loop, struct store_efs_writer *w)
{
    struct done d = {0};
    store_efs_finish(w, done_cb, &d);
    return wait_done(loop, &d);
}

/* The slot's package, read whole through store_slot_open(). */
static int slot_read(struct store *s, uint8_t **buf, size_t *len)
{
    int fd;
    uint64_t size;
    int rc = store_slot_open(s, &fd, &size);
    if (rc)
        return rc;
    *buf = malloc(size);
    assert_non_null(*buf);
    assert_int_equal(pread(fd, *buf, size, 0), (ssize_t)size);
    close(fd);
    *len = size;
    return 0;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* The temporary files below @p path, at any depth. */
static int count_tmp(const char *path)
{
    int n = 0;
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (strncmp(de->d_name, ".tmp-", 5) == 0)
            n++;
        char sub[PATH_MAX];
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += count_tmp(sub);
    }
    if (d)
        closedir(d);
    return n;
}

/* Content of generation @p gen: its number, then bytes derived from it. */
static uint8_t img_byte(uint32_t gen, size_t i)
{
    return (uint8_t)(gen * 31u + i * 7u + (i >> 9));
}

static void img_fill(uint8_t *buf, size_t len, uint32_t gen)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = i < 4 ? (uint8_t)(gen >> (8 * i)) : img_byte(gen, i);
}

/* Whether @p buf is a prefix of some generation's content; its number goes
 * to *@p gen (0 when @p len is too short to tell). */
static bool img_prefix_ok(const uint8_t *buf, size_t len, uint32_t *gen)
{
    *gen = 0;
    if (len < 4)
        return true;
    *gen =
        (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
    for (size_t i = 4; i < len; i++)
        if (buf[i] != img_byte(*gen, i))
            return false;
    return true;
}

static void expect_file(const uint8_t *buf, size_t len, const void *want, size_t want_len)
{
    assert_int_equal(len, want_len);
    assert_memory_equal(buf, want, want_len);
}

/* That setting @p key reads as @p want. */
static void expect_setting(struct store *s, const char *key, const char *want)
{
    char v[STORE_VAL_MAX + 1];
    assert_int_equal(store_get(s, key, v, sizeof(v)), 0);
    assert_string_equal(v, want);
}

typedef int (*read_fn)(struct store *s, uint8_t **buf, size_t *len);

/* That @p fn reads back exactly @p want. */
static void expect_read(struct store *s, read_fn fn, const void *want, size_t want_len)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(fn(s, &buf, &len), 0);
    expect_file(buf, len, want, want_len);
    free(buf);
}

static void expect_efs(struct store *s, const char *name, const void *want, size_t want_len)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_efs_read(s, name, &buf, &len), 0);
    expect_file(buf, len, want, want_len);
    free(buf);
}

struct listing {
    int n;
    int stop_at; /* 0: never; else return 7 at that entry */
    char names[16][STORE_EFS_NAME_MAX + 1];
    uint64_t sizes[16];
};

static int list_cb(void *ud, const char *name, uint64_t size)
{
    struct listing *l = ud;
    assert_true(l->n < 16);
    snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    l->sizes[l->n++] = size;
    return l->stop_at && l->n == l->stop_at ? 7 : 0;
}

static int efs_put_on(uv_loop_t *loop, struct store *s, const char *name, const void *buf,
                      size_t len, bool overwrite)
{
    struct store_efs_writer *w;
    int rc = store_efs_begin(s, name, overwrite, &w);
    if (rc < 0)
        return rc;
    rc = store_efs_write(w, buf, len);
    if (rc < 0) {
        store_efs_abort(w);
        return rc;
    }
    return efs_finish(loop, w);
}

#define efs_put(s, name, buf, len, ow) efs_put_on(&f->loop, s, name, buf, len, ow)

static void slot_put_on(uv_loop_t *loop, struct store *s, const void *buf, size_t len)
{
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(s, SLOT_CAP_BG95M1, &w), 0);
    assert_int_equal(store_slot_write(w, buf, len), 0);
    assert_int_equal(slot_finish(loop, w), 0);
}

#define slot_put(s, buf, len) slot_put_on(&f->loop, s, buf, len)

/* ---- settings ---------------------------------------------------------- */

static void test_settings_round_trip_survives_reopen(void **state)
{
    struct fx *f = *state;
    const char *odd = "a=b c\x01\x7f\xff\t\"'"; /* any byte but NUL, CR, LF */
    assert_int_equal(store_set(f->s, "fw_version", "BG95M3LAR02A03"), 0);
    assert_int_equal(store_set(f->s, "fota_apn", "internet.m2m"), 0);
    assert_int_equal(store_set(f->s, "empty", ""), 0);
    assert_int_equal(store_set(f->s, "odd", odd), 0);
    for (int pass = 0; pass < 2; pass++) {
        expect_setting(f->s, "fw_version", "BG95M3LAR02A03");
        expect_setting(f->s, "fota_apn", "internet.m2m");
        expect_setting(f->s, "empty", "");
        expect_setting(f->s, "odd", odd);
        reopen(f);
    }
}

static void test_settings_set_replaces_value(void **state)
{
    struct fx *f = *state;
    assert_int_equal(store_set(f->s, "fota_apn", "first"), 0);
    assert_int_equal(store_set(f->s, "fota_apn", "second"), 0);
    reopen(f);
    expect_setting(f->s, "fota_apn", "second");
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_read_all(at(f, "settings"), &buf, &len), 0);
    char *text = strndup((char *)buf, len);
    assert_non_null(strstr(text, "fota_apn=second\n"));
    assert_null(strstr(text, "first"));
    free(text);
    free(buf);
}

static void test_settings_bad_keys_and_values_refused(void **state)
{
    struct fx *f = *state;
    char long_key[STORE_KEY_MAX + 2], max_key[STORE_KEY_MAX + 1];
    memset(long_key, 'k', STORE_KEY_MAX + 1);
    long_key[STORE_KEY_MAX + 1] = '\0';
    memset(max_key, 'k', STORE_KEY_MAX);
    max_key[STORE_KEY_MAX] = '\0';
    static char long_val[STORE_VAL_MAX + 2];
    memset(long_val, 'v', STORE_VAL_MAX + 1);
    long_val[STORE_VAL_MAX + 1] = '\0';

    const char *bad_keys[] = {"", ".hidden", "a b", "a=b", "a/b", "k\n", "k\r", "é", long_key};
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        assert_int_equal(store_set(f->s, bad_keys[i], "v"), -EINVAL);
        assert_int_equal(store_get(f->s, bad_keys[i], f->path, 8), -EINVAL);
        assert_int_equal(store_del(f->s, bad_keys[i]), -EINVAL);
    }
    assert_int_equal(store_set(f->s, NULL, "v"), -EINVAL);
    const char *bad_vals[] = {"a\nb", "a\rb", "\n", long_val};
    for (size_t i = 0; i < sizeof(bad_vals) / sizeof(bad_vals[0]); i++)
        assert_int_equal(store_set(f->s, "key", bad_vals[i]), -EINVAL);
    assert_int_equal(store_set(f->s, "key", NULL), -EINVAL);
    assert_int_equal(store_get(f->s, "key", f->path, 8), -ENOENT);

    long_val[STORE_VAL_MAX] = '\0';
    const char *good_keys[] = {"a", "A-b_c.9", "-x", max_key};
    for (size_t i = 0; i < sizeof(good_keys) / sizeof(good_keys[0]); i++)
        assert_int_equal(store_set(f->s, good_keys[i], long_val), 0);
    reopen(f);
    expect_setting(f->s, max_key, long_val);
}

static void test_settings_get_needs_room_and_del_removes(void **state)
{
    struct fx *f = *state;
    char v[8];
    assert_int_equal(store_get(f->s, "apn", v, sizeof(v)), -ENOENT);
    assert_int_equal(store_set(f->s, "apn", "1234567"), 0);
    assert_int_equal(store_get(f->s, "apn", v, 7), -ENOSPC);
    assert_int_equal(store_get(f->s, "apn", v, 8), 0);
    assert_string_equal(v, "1234567");
    assert_int_equal(store_del(f->s, "apn"), 0);
    assert_int_equal(store_del(f->s, "apn"), -ENOENT);
    reopen(f);
    assert_int_equal(store_get(f->s, "apn", v, sizeof(v)), -ENOENT);
}

static void test_settings_malformed_lines_are_ignored(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    char text[8192];
    size_t n = 0;
    n += (size_t)sprintf(text + n, "# comment\ngood=1\nno_equals\n=novalue\nbad key=2\n.dot=3\n");
    n += (size_t)sprintf(text + n, "%0*d=x\n", STORE_KEY_MAX + 1, 0);    /* key too long */
    n += (size_t)sprintf(text + n, "long=%0*d\n", STORE_VAL_MAX + 1, 0); /* value too long */
    n += (size_t)sprintf(text + n, "cr=a\rb\n");
    memcpy(text + n, "nul=a\0b\n", 8);
    n += 8;
    n += (size_t)sprintf(text + n, "dup=1\ndup=2\nlast=unterminated");
    write_file(at(f, "settings"), text, n);
    store_reopen(f);

    char v[16];
    expect_setting(f->s, "good", "1");
    expect_setting(f->s, "dup", "2");
    expect_setting(f->s, "last", "unterminated");
    const char *gone[] = {"no_equals", "long", "cr", "nul"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        assert_int_equal(store_get(f->s, gone[i], v, sizeof(v)), -ENOENT);
    /* The next write keeps what parsed and drops the rest. */
    assert_int_equal(store_set(f->s, "new", "x"), 0);
    reopen(f);
    expect_setting(f->s, "dup", "2");
}

static void test_settings_count_is_bounded(void **state)
{
    struct fx *f = *state;
    char key[16];
    for (int i = 0; i < STORE_SETTINGS_MAX; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(store_set(f->s, key, "v"), 0);
    }
    assert_int_equal(store_set(f->s, "one_more", "v"), -ENOSPC);
    assert_int_equal(store_set(f->s, "k7", "replaced"), 0);
    reopen(f);
    char v[16];
    expect_setting(f->s, "k7", "replaced");
    assert_int_equal(store_get(f->s, "one_more", v, sizeof(v)), -ENOENT);
}

/* ---- the store and crash-safe files ------------------------------------ */

static void test_atomic_write_leaves_no_temp_and_survives_reopen(void **state)
{
    struct fx *f = *state;
    assert_int_equal(store_atomic_write(at(f, "blob"), "hello", 5), 0);
    assert_int_equal(store_atomic_write(at(f, "blob"), "world!", 6), 0);
    assert_int_equal(count_tmp(f->dir), 0);
    reopen(f);
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_read_all(at(f, "blob"), &buf, &len), 0);
    expect_file(buf, len, "world!", 6);
    free(buf);
    assert_int_equal(store_atomic_write(at(f, "empty"), NULL, 0), 0);
    assert_int_equal(store_read_all(at(f, "empty"), &buf, &len), 0);
    assert_non_null(buf);
    assert_int_equal(len, 0);
    free(buf);
    assert_int_equal(store_read_all(at(f, "missing"), &buf, &len), -ENOENT);
    assert_int_equal(store_read_all(f->dir, &buf, &len), -EISDIR);
    assert_int_equal(store_atomic_write(at(f, "dir/"), "x", 1), -EINVAL);
    assert_int_equal(store_atomic_write(at(f, "nodir/x"), "x", 1), -ENOENT);
}

static void test_open_removes_stale_temp_files(void **state)
{
    struct fx *f = *state;
    assert_int_equal(store_record_put(f->s, "journal", "j", 1), 0);
    assert_int_equal(efs_put(f->s, "/datatx/ssl/coap-key.pem", "key", 3, false), 0);
    store_close(f->s);
    f->s = NULL;
    const char *stale[] = {
        ".tmp-1",         "records/.tmp-2",    "slot/.tmp-3",          "fw/.tmp-4",
        "efs/ufs/.tmp-5", "efs/datatx/.tmp-6", "efs/datatx/ssl/.tmp-7"};
    for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++)
        write_file(at(f, stale[i]), "half", 4);
    assert_int_equal(count_tmp(f->dir), 7);
    store_reopen(f);
    assert_int_equal(count_tmp(f->dir), 0);
    char buf[4];
    size_t len;
    assert_int_equal(store_record_get(f->s, "journal", buf, sizeof(buf), &len), 0);
    uint64_t size;
    assert_int_equal(store_efs_size(f->s, "/datatx/ssl/coap-key.pem", &size), 0);
    assert_int_equal(size, 3);
}

static void test_open_same_dir_twice_is_busy(void **state)
{
    struct fx *f = *state;
    struct store *again;
    assert_int_equal(store_open(f->dir, &again), -EBUSY);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(f->dir, &again), 0);
    assert_string_equal(store_dir(again), f->dir);
    assert_int_equal(store_open(f->dir, &f->s), -EBUSY);
    f->s = again;
}

static void test_open_creates_nested_dir_and_refuses_symlinked_layout(void **state)
{
    struct fx *f = *state;
    struct store *s;
    assert_int_equal(store_open(at(f, "a/b/c"), &s), 0);
    store_close(s);
    struct stat st;
    assert_int_equal(stat(at(f, "a/b/c/efs/datatx/ssl"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    /* A layout folder swapped for a symlink to elsewhere: refused, and
     * nothing is created over there. */
    char *outside = f->outside;
    make_tmpdir(outside, sizeof(f->outside));
    rm_rf(at(f, "a/b/c/fw"));
    assert_int_equal(symlink(outside, at(f, "a/b/c/fw")), 0);
    assert_int_equal(store_open(at(f, "a/b/c"), &s), -ELOOP);
    assert_int_equal(count_tmp(outside), 0);
    DIR *d = opendir(outside);
    int entries = 0;
    while (readdir(d))
        entries++;
    closedir(d);
    assert_int_equal(entries, 2); /* "." and ".." */

    write_file(at(f, "plain"), "x", 1);
    assert_int_equal(store_open(at(f, "plain"), &s), -ENOTDIR);
}

/* ---- records ----------------------------------------------------------- */

static void test_record_round_trip(void **state)
{
    struct fx *f = *state;
    uint8_t rec[100], out[100];
    img_fill(rec, sizeof(rec), 42);
    size_t len = 0;
    assert_int_equal(store_record_get(f->s, "journal", out, sizeof(out), &len), -ENOENT);
    assert_int_equal(store_record_put(f->s, "journal", rec, sizeof(rec)), 0);
    reopen(f);
    assert_int_equal(store_record_get(f->s, "journal", out, sizeof(out), &len), 0);
    expect_file(out, len, rec, sizeof(rec));
    len = 0;
    assert_int_equal(store_record_get(f->s, "journal", out, 10, &len), -ENOSPC);
    assert_int_equal(len, 100);
    assert_int_equal(store_record_get(f->s, "journal", NULL, 0, &len), -ENOSPC);
    assert_int_equal(store_record_put(f->s, "empty", NULL, 0), 0);
    assert_int_equal(store_record_get(f->s, "empty", NULL, 0, &len), 0);
    assert_int_equal(len, 0);
    assert_int_equal(store_record_del(f->s, "journal"), 0);
    assert_int_equal(store_record_del(f->s, "journal"), -ENOENT);
    assert_int_equal(store_record_get(f->s, "journal", out, sizeof(out), &len), -ENOENT);
    assert_int_equal(store_record_put(f->s, "../x", rec, 1), -EINVAL);
    assert_int_equal(store_record_put(f->s, ".tmp-x", rec, 1), -EINVAL);
    assert_int_equal(store_record_put(f->s, "big", rec, STORE_RECORD_MAX + 1), -EFBIG);
}

static void test_record_checksum_corruption_reads_as_ebadmsg(void **state)
{
    struct fx *f = *state;
    uint8_t rec[64], out[64];
    size_t len;
    img_fill(rec, sizeof(rec), 7);
    /* A flipped payload byte, a flipped length byte, a cut-off file,
     * garbage: each reads as -EBADMSG. */
    const struct {
        long off; /* flip the byte here; -1: truncate by one; -2: garbage */
    } harm[] = {{16 + 30}, {8}, {0}, {-1}, {-2}};
    for (size_t i = 0; i < sizeof(harm) / sizeof(harm[0]); i++) {
        assert_int_equal(store_record_put(f->s, "journal", rec, sizeof(rec)), 0);
        assert_int_equal(store_record_get(f->s, "journal", out, sizeof(out), &len), 0);
        const char *p = at(f, "records/journal");
        if (harm[i].off >= 0) {
            int fd = open(p, O_RDWR);
            uint8_t b;
            assert_int_equal(pread(fd, &b, 1, harm[i].off), 1);
            b ^= 0x10;
            assert_int_equal(pwrite(fd, &b, 1, harm[i].off), 1);
            close(fd);
        } else if (harm[i].off == -1) {
            assert_int_equal(truncate(p, 16 + sizeof(rec) - 1), 0);
        } else {
            write_file(p, "junk", 4);
        }
        assert_int_equal(store_record_get(f->s, "journal", out, sizeof(out), &len), -EBADMSG);
    }
}

/* ---- the NAND package slot --------------------------------------------- */

static void test_slot_streams_chunks_and_reads_back(void **state)
{
    struct fx *f = *state;
    static uint8_t pkg[100 * 1000];
    img_fill(pkg, sizeof(pkg), 3);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    for (size_t off = 0; off < sizeof(pkg); off += 1000) {
        assert_int_equal(store_slot_write(w, pkg + off, 1000), 0);
        assert_int_equal(store_slot_written(w), off + 1000);
    }
    assert_int_equal(store_slot_size(f->s), sizeof(pkg));
    assert_int_equal(slot_finish(&f->loop, w), 0);
    reopen(f);
    assert_int_equal(store_slot_size(f->s), sizeof(pkg));
    expect_read(f->s, slot_read, pkg, sizeof(pkg));
}

static void test_slot_capacity_exact_boundary(void **state)
{
    struct fx *f = *state;
    const size_t cap = SLOT_CAP_BG95M1, chunk = 64 * 1024;
    uint8_t *pkg = malloc(cap + 1);
    assert_non_null(pkg);
    img_fill(pkg, cap + 1, 9);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, cap, &w), 0);
    for (size_t off = 0; off < cap; off += chunk)
        assert_int_equal(store_slot_write(w, pkg + off, chunk), 0); /* cap % chunk == 0 */
    assert_int_equal(store_slot_written(w), cap);
    assert_int_equal(store_slot_write(w, pkg + cap, 1), -EFBIG);
    assert_int_equal(store_slot_written(w), cap);
    assert_int_equal(slot_finish(&f->loop, w), 0);
    expect_read(f->s, slot_read, pkg, cap);

    /* A chunk that crosses the capacity writes nothing of itself. */
    assert_int_equal(store_slot_begin(f->s, 1500, &w), 0);
    assert_int_equal(store_slot_write(w, pkg, 1000), 0);
    assert_int_equal(store_slot_write(w, pkg + 1000, 501), -EFBIG);
    assert_int_equal(store_slot_size(f->s), 1000);
    assert_int_equal(store_slot_write(w, pkg + 1000, 500), 0);
    assert_int_equal(slot_finish(&f->loop, w), 0);
    expect_read(f->s, slot_read, pkg, 1500);
    free(pkg);
}

static void test_slot_new_write_replaces_old_package(void **state)
{
    struct fx *f = *state;
    uint8_t old_pkg[5000], new_pkg[300];
    img_fill(old_pkg, sizeof(old_pkg), 1);
    img_fill(new_pkg, sizeof(new_pkg), 2);
    slot_put(f->s, old_pkg, sizeof(old_pkg));
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    assert_int_equal(store_slot_size(f->s), 0); /* erased */
    assert_int_equal(store_slot_write(w, new_pkg, sizeof(new_pkg)), 0);
    assert_int_equal(slot_finish(&f->loop, w), 0);
    expect_read(f->s, slot_read, new_pkg, sizeof(new_pkg));
}

static void test_slot_delete_and_size_zero_when_empty(void **state)
{
    struct fx *f = *state;
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_slot_size(f->s), 0);
    assert_int_equal(slot_read(f->s, &buf, &len), -ENOENT);
    assert_int_equal(store_slot_delete(f->s), -ENOENT);
    slot_put(f->s, "pkg", 3);
    assert_int_equal(store_slot_size(f->s), 3);
    assert_int_equal(store_slot_delete(f->s), 0);
    assert_int_equal(store_slot_size(f->s), 0);
    assert_int_equal(slot_read(f->s, &buf, &len), -ENOENT);

    struct store_slot_writer *w, *w2;
    assert_int_equal(store_slot_begin(f->s, 0, &w), -EINVAL);
    assert_int_equal(store_slot_begin(f->s, 10, &w), 0);
    assert_int_equal(store_slot_begin(f->s, 10, &w2), -EBUSY);
    assert_int_equal(slot_finish(&f->loop, w), 0); /* nothing written: empty */
    assert_int_equal(slot_read(f->s, &buf, &len), -ENOENT);
    assert_int_equal(store_slot_delete(f->s), -ENOENT);
}

static void child_slot_done(void *ud, int result, uint64_t size)
{
    (void)size;
    *(int *)ud = result;
}

/* Forks a child that opens the store in @p dir, writes @p len bytes of
 * @p pkg into the slot in chunks of @p chunk, ends the writer when
 * @p finish says so (waiting for store_slot_finish()'s callback, not for
 * the fsync that follows it) and is killed with SIGKILL, as a power cut or
 * kill -9 would take the process. */
static void slot_write_then_die(const char *dir, const uint8_t *pkg, size_t len, size_t chunk,
                                bool finish)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        uv_loop_t loop;
        struct store *s;
        struct store_slot_writer *w;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/slot/package", dir);
        struct stat old = {0};
        stat(path, &old);
        if (uv_loop_init(&loop) != 0 ||
            store_open_cfg(dir, &(struct store_cfg){.loop = &loop}, &s) != 0 ||
            store_slot_begin(s, SLOT_CAP_BG95M1, &w) != 0)
            _exit(1);
        for (size_t off = 0; off < len; off += chunk) {
            if (store_slot_write(w, pkg + off, len - off < chunk ? len - off : chunk) != 0)
                _exit(1);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
        /* die once the old package is erased and a buffer has landed, so
         * the kill finds the new one on its way (not still all queued) */
        struct stat st;
        while (!finish && (stat(path, &st) != 0 || st.st_ino == old.st_ino || st.st_size == 0) &&
               uv_run(&loop, UV_RUN_ONCE) != 0)
            ;
        if (finish) {
            int result = 1;
            store_slot_finish(w, child_slot_done, &result);
            while (result == 1)
                uv_run(&loop, UV_RUN_ONCE);
            if (result != 0)
                _exit(1);
        }
        raise(SIGKILL);
        _exit(1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

static void test_slot_killed_mid_write_keeps_a_prefix(void **state)
{
    struct fx *f = *state;
    const size_t len = 700 * 1024; /* more than the writer gathers at once */
    uint8_t *old_pkg = malloc(len), *new_pkg = malloc(len);
    assert_non_null(old_pkg);
    assert_non_null(new_pkg);
    img_fill(old_pkg, len, 1);
    img_fill(new_pkg, len, 2);
    slot_put(f->s, old_pkg, len);
    store_close(f->s);
    f->s = NULL;

    slot_write_then_die(f->dir, new_pkg, len, 1024, false);
    /* the old package was erased; what the writer had put in the file is
     * a prefix of the new one (what it still gathered in memory is gone,
     * as a module's RAM is at a power cut) */
    store_reopen(f);
    uint64_t size = store_slot_size(f->s);
    assert_true(size <= len);
    if (size) {
        uint8_t *buf;
        size_t got;
        assert_int_equal(slot_read(f->s, &buf, &got), 0);
        assert_int_equal(got, size);
        assert_memory_equal(buf, new_pkg, got);
        free(buf);
    }
    /* The next download overwrites it. */
    slot_put(f->s, old_pkg, 100);
    assert_int_equal(store_slot_size(f->s), 100);
    free(old_pkg);
    free(new_pkg);
}

static void test_slot_finished_unsynced_survives_kill(void **state)
{
    struct fx *f = *state;
    const size_t len = 600 * 1024 + 7; /* whole buffers and a tail */
    uint8_t *pkg = malloc(len);
    assert_non_null(pkg);
    img_fill(pkg, len, 4);
    store_close(f->s);
    f->s = NULL;

    slot_write_then_die(f->dir, pkg, len, 4096, true);
    store_reopen(f);
    assert_int_equal(store_slot_size(f->s), len);
    expect_read(f->s, slot_read, pkg, len);
    free(pkg);
}

struct finish_probe {
    struct store *s;
    const uint8_t *want;
    size_t len;
    int calls;
    bool busy; /* the fsync still queued when the package was reported */
};

static void finish_probe_cb(void *ud, int result, uint64_t size)
{
    struct finish_probe *p = ud;
    p->calls++;
    assert_int_equal(result, 0);
    assert_int_equal(size, p->len);
    /* written by now: readable whole, with the writer gone */
    uint8_t *buf;
    size_t len;
    assert_int_equal(slot_read(p->s, &buf, &len), 0);
    expect_file(buf, len, p->want, p->len);
    free(buf);
    p->busy = store_busy(p->s);
}

static void test_slot_finish_reports_once_written_and_syncs_behind(void **state)
{
    struct fx *f = *state;
    static uint8_t pkg[300 * 1024 + 5];
    img_fill(pkg, sizeof(pkg), 6);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    assert_int_equal(store_slot_write(w, pkg, sizeof(pkg)), 0);
    struct finish_probe p = {f->s, pkg, sizeof(pkg), 0, false};
    store_slot_finish(w, finish_probe_cb, &p);
    assert_int_equal(p.calls, 0); /* never synchronous */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(p.calls, 1);
    assert_true(p.busy);
    assert_false(store_busy(f->s));
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0); /* the slot is free */
    assert_int_equal(slot_finish(&f->loop, w), 0);
}

static void test_slot_untouched_until_the_first_byte(void **state)
{
    struct fx *f = *state;
    uint8_t old_pkg[5000];
    img_fill(old_pkg, sizeof(old_pkg), 1);
    slot_put(f->s, old_pkg, sizeof(old_pkg));
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    expect_read(f->s, slot_read, old_pkg, sizeof(old_pkg)); /* nothing erased yet */
    struct done d = {0};
    store_slot_finish(w, slot_done_cb, &d);
    assert_int_equal(wait_done(&f->loop, &d), 0);
    assert_int_equal(d.size, 0);
    expect_read(f->s, slot_read, old_pkg, sizeof(old_pkg)); /* no byte came: kept */
    assert_int_equal(store_slot_size(f->s), sizeof(old_pkg));

    /* an abort with nothing taken keeps it too; one byte erases it */
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    store_slot_abort(w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    expect_read(f->s, slot_read, old_pkg, sizeof(old_pkg));
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    assert_int_equal(store_slot_write(w, "x", 1), 0);
    assert_int_equal(slot_finish(&f->loop, w), 0);
    expect_read(f->s, slot_read, "x", 1);
}

static void test_slot_abort_drops_what_is_only_in_memory(void **state)
{
    struct fx *f = *state;
    static uint8_t pkg[256 * 1024 + 100];
    img_fill(pkg, sizeof(pkg), 5);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    assert_int_equal(store_slot_write(w, pkg, sizeof(pkg)), 0); /* one buffer handed over */
    store_slot_abort(w);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* the whole buffer reached the flash, the 100 bytes in memory did not */
    expect_read(f->s, slot_read, pkg, 256 * 1024);
    assert_false(store_busy(f->s));
}

static void test_slot_planted_symlink_is_never_followed(void **state)
{
    struct fx *f = *state;
    make_tmpdir(f->outside, sizeof(f->outside));
    char target[PATH_MAX];
    snprintf(target, sizeof(target), "%s/victim", f->outside);
    write_file(target, "precious", 8);
    assert_int_equal(symlink(target, at(f, "slot/package")), 0);
    int fd;
    uint64_t size;
    assert_int_equal(store_slot_open(f->s, &fd, &size), -ELOOP);
    assert_int_equal(store_slot_size(f->s), 0);
    slot_put(f->s, "new", 3); /* replaces the link, not its target */
    expect_read(f->s, slot_read, "new", 3);
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_read_all(target, &buf, &len), 0);
    expect_file(buf, len, "precious", 8);
    free(buf);
}

/* A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): it stands in for a
 * full or failing flash, a write past it fails with EFBIG. */
struct fsize_limit {
    struct rlimit old;
    void (*was)(int);
};

static struct fsize_limit fsize_limit_set(rlim_t bytes)
{
    struct fsize_limit l;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &l.old), 0);
    l.was = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = l.old;
    lim.rlim_cur = bytes;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    return l;
}

static void fsize_limit_undo(const struct fsize_limit *l)
{
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &l->old), 0);
    signal(SIGXFSZ, l->was);
}

/* A write that fails on the worker (a file-size limit stands in for a full
 * or failing flash) shows at the finish, and the package is what the file
 * holds: the whole buffers before the failure, nothing torn. */
static void test_slot_write_error_on_the_worker_shows_at_the_finish(void **state)
{
    struct fx *f = *state;
    static uint8_t pkg[700 * 1024];
    img_fill(pkg, sizeof(pkg), 7);
    struct fsize_limit lim = fsize_limit_set(300 * 1024); /* the 2nd buffer passes it */
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    int rc = 0;
    for (size_t off = 0; off < sizeof(pkg) && rc == 0; off += 4096) {
        rc = store_slot_write(w, pkg + off, 4096);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    struct done d = {0};
    store_slot_finish(w, slot_done_cb, &d);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    fsize_limit_undo(&lim);
    /* at a write, or else at the finish */
    assert_true(rc == -EFBIG || d.result == -EFBIG);
    assert_int_equal(d.calls, 1);
    expect_read(f->s, slot_read, pkg, 256 * 1024);
    if (rc == 0)
        assert_int_equal(d.size, 256 * 1024);
}

/* ---- the work queue ---------------------------------------------------- */

struct order {
    int seen[64];
    int n;
    int done_in_order;
    bool flushed_after_all;
};

struct order_item {
    struct order *o;
    int i;
};

static int order_run(void *ud)
{
    struct order_item *it = ud;
    it->o->seen[it->o->n++] = it->i; /* one at a time: no race on n */
    return it->i;
}

static void order_done(void *ud, int result)
{
    struct order_item *it = ud;
    if (result == it->i && it->o->done_in_order == it->i)
        it->o->done_in_order++;
    free(it);
}

static void order_flushed(void *ud)
{
    struct order *o = ud;
    o->flushed_after_all = o->done_in_order == 64;
}

static void test_work_runs_one_at_a_time_in_order_and_flush_waits(void **state)
{
    struct fx *f = *state;
    struct order o = {0};
    for (int i = 0; i < 64; i++) {
        struct order_item *it = malloc(sizeof(*it));
        *it = (struct order_item){&o, i};
        assert_int_equal(store_submit(f->s, order_run, order_done, it), 0);
    }
    assert_true(store_busy(f->s));
    assert_int_equal(store_flush(f->s, order_flushed, &o), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 64; i++)
        assert_int_equal(o.seen[i], i);
    assert_int_equal(o.done_in_order, 64);
    assert_true(o.flushed_after_all);
    assert_false(store_busy(f->s));

    /* a store without a loop has no queue */
    struct store *s;
    char dir[64];
    make_tmpdir(dir, sizeof(dir));
    assert_int_equal(store_open(dir, &s), 0);
    assert_int_equal(store_submit(s, order_run, NULL, NULL), -ENOTCONN);
    assert_int_equal(store_set_async(s, "k", "v", NULL, NULL), -ENOTCONN);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(s, 10, &w), -ENOTCONN);
    store_close(s);
    rm_rf(dir);
}

static void test_set_async_is_seen_at_once_and_on_disk_at_the_callback(void **state)
{
    struct fx *f = *state;
    struct done d1 = {0}, d2 = {0}, d3 = {0};
    assert_int_equal(store_set_async(f->s, "apn", "one", done_cb, &d1), 0);
    assert_int_equal(store_set_async(f->s, "apn", "two", done_cb, &d2), 0);
    assert_int_equal(store_set_async(f->s, "gone", "x", NULL, NULL), 0);
    assert_int_equal(store_del_async(f->s, "gone", done_cb, &d3), 0);
    expect_setting(f->s, "apn", "two");
    assert_int_equal(d1.calls + d2.calls, 0);
    assert_int_equal(store_set_async(f->s, "bad key", "v", done_cb, &d1), -EINVAL);
    assert_int_equal(store_set_async(f->s, "k", "line\nfeed", done_cb, &d1), -EINVAL);
    assert_int_equal(store_del_async(f->s, "never", done_cb, &d1), -ENOENT);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(d1.calls, 1);
    assert_int_equal(d2.calls, 1);
    assert_int_equal(d3.calls, 1);
    assert_int_equal(d2.result, 0);
    reopen(f); /* the last write won: a later one is never overtaken */
    expect_setting(f->s, "apn", "two");
    char v[8];
    assert_int_equal(store_get(f->s, "gone", v, sizeof(v)), -ENOENT);
    assert_int_equal(count_tmp(f->dir), 0);
}

static void test_efs_delete_async_answers_on_the_loop(void **state)
{
    struct fx *f = *state;
    assert_int_equal(efs_put(f->s, "UFS:a", "1", 1, false), 0);
    struct done d = {0};
    assert_int_equal(store_efs_delete_async(f->s, "UFS:a", done_cb, &d), 0);
    assert_int_equal(wait_done(&f->loop, &d), 0);
    d = (struct done){0};
    assert_int_equal(store_efs_delete_async(f->s, "UFS:a", done_cb, &d), 0);
    assert_int_equal(wait_done(&f->loop, &d), -ENOENT);
}

static void test_slot_chunks_of_any_size_across_buffers(void **state)
{
    struct fx *f = *state;
    /* odd chunks, one bigger than the writer's buffer and one exactly
     * filling what is left of it, in that order and again */
    static const size_t chunks[] = {1, 4095, 700 * 1024, 3, 256 * 1024, 12345, 256 * 1024 - 1, 77};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++)
        total += chunks[i];
    uint8_t *pkg = malloc(total);
    assert_non_null(pkg);
    img_fill(pkg, total, 8);
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(f->s, SLOT_CAP_BG95M1, &w), 0);
    size_t off = 0;
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        assert_int_equal(store_slot_write(w, pkg + off, chunks[i]), 0);
        off += chunks[i];
        assert_int_equal(store_slot_written(w), off);
        assert_int_equal(store_slot_size(f->s), off);
    }
    assert_int_equal(slot_finish(&f->loop, w), 0);
    reopen(f);
    expect_read(f->s, slot_read, pkg, total);
    free(pkg);
}

/* ---- firmware images --------------------------------------------------- */

static void test_fwnew_begin_resume_keeps_content(void **state)
{
    struct fx *f = *state;
    uint8_t *buf;
    size_t len;
    uint8_t want[1000] = {0};
    assert_int_equal(store_fw_read(f->s, &buf, &len), -ENOENT);
    assert_int_equal(store_fwnew_write(f->s, 0, "abc", 3), -ENOENT);
    assert_int_equal(store_fwnew_begin(f->s, sizeof(want)), 0);
    expect_read(f->s, store_fwnew_read, want, sizeof(want));
    assert_int_equal(store_fwnew_write(f->s, 0, "abc", 3), 0);
    assert_int_equal(store_fwnew_write(f->s, 997, "xyz", 3), 0);
    memcpy(want, "abc", 3);
    memcpy(want + 997, "xyz", 3);
    assert_int_equal(store_fwnew_write(f->s, 998, "xyz", 3), -EFBIG);
    assert_int_equal(store_fwnew_write(f->s, 1001, "", 0), -EFBIG);

    /* A resume, in this life and the next, keeps what was written. */
    assert_int_equal(store_fwnew_begin(f->s, sizeof(want)), 0);
    reopen(f);
    assert_int_equal(store_fwnew_begin(f->s, sizeof(want)), 0);
    expect_read(f->s, store_fwnew_read, want, sizeof(want));

    /* Another size is another update: a fresh, zeroed target. */
    uint8_t zero[2000] = {0};
    assert_int_equal(store_fwnew_begin(f->s, sizeof(zero)), 0);
    expect_read(f->s, store_fwnew_read, zero, sizeof(zero));
    assert_int_equal(store_fwnew_begin(f->s, (uint64_t)STORE_FW_MAX + 1), -EFBIG);
}

static void test_fwnew_commit_replaces_fw_and_is_idempotent(void **state)
{
    struct fx *f = *state;
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_fw_write(f->s, "old image", 9), 0);
    assert_int_equal(store_fwnew_commit(f->s), -ENOENT);
    assert_int_equal(store_fwnew_begin(f->s, 9), 0);
    assert_int_equal(store_fwnew_write(f->s, 0, "new image", 9), 0);
    expect_read(f->s, store_fw_read, "old image", 9);
    assert_int_equal(store_fwnew_commit(f->s), 0);
    reopen(f);
    assert_int_equal(store_fwnew_commit(f->s), -ENOENT); /* already committed */
    expect_read(f->s, store_fw_read, "new image", 9);
    assert_int_equal(store_fwnew_read(f->s, &buf, &len), -ENOENT);

    assert_int_equal(store_fwnew_discard(f->s), -ENOENT);
    assert_int_equal(store_fwnew_begin(f->s, 4), 0);
    assert_int_equal(store_fwnew_discard(f->s), 0);
    assert_int_equal(store_fwnew_commit(f->s), -ENOENT);
    expect_read(f->s, store_fw_read, "new image", 9);
}

/* ---- EFS files --------------------------------------------------------- */

static void test_efs_name_validation(void **state)
{
    struct fx *f = *state;
    char max_name[STORE_EFS_NAME_MAX + 1], long_name[STORE_EFS_NAME_MAX + 2];
    snprintf(max_name, sizeof(max_name), "UFS:%0*d", STORE_EFS_NAME_MAX - 4, 0);
    snprintf(long_name, sizeof(long_name), "UFS:%0*d", STORE_EFS_NAME_MAX - 3, 0);
    const struct {
        const char *name;
        int rc;
        const char *path; /* below the state dir, when rc == 0 */
    } t[] = {
        {"UFS:a.txt", 0, "efs/ufs/a.txt"},
        {"a.txt", 0, "efs/ufs/a.txt"},
        {"UFS:x..y", 0, "efs/ufs/x..y"},
        {"UFS:with space", 0, "efs/ufs/with space"},
        {"/datatx/fota_cacert.pem", 0, "efs/datatx/fota_cacert.pem"},
        {"/datatx/ssl/coap_fota.psk", 0, "efs/datatx/ssl/coap_fota.psk"},
        {"/datatx/a/b/c", 0, "efs/datatx/a/b/c"},
        {max_name, 0, NULL},
        {long_name, -ENAMETOOLONG, NULL},
        {"", -EINVAL, NULL},
        {"UFS:", -EINVAL, NULL},
        {"..", -EINVAL, NULL},
        {".", -EINVAL, NULL},
        {"UFS:..", -EINVAL, NULL},
        {"UFS:.hidden", -EINVAL, NULL},
        {"/etc/passwd", -EINVAL, NULL},
        {"/datatx/../x", -EINVAL, NULL},
        {"/datatx/ssl/../../x", -EINVAL, NULL},
        {"/datatx//x", -EINVAL, NULL},
        {"/datatx/", -EINVAL, NULL},
        {"/datatx", -EINVAL, NULL},
        {"/datatxx/a", -EINVAL, NULL},
        {"/datatx/ssl/", -EINVAL, NULL},
        {"/datatx/.tmp-1", -EINVAL, NULL},
        {"UFS:a/b", -EINVAL, NULL},
        {"UFS:../x", -EINVAL, NULL},
        {"UFS:a\x01", -EINVAL, NULL},
        {"UFS:a\x7f", -EINVAL, NULL},
        {"/datatx/a\nb", -EINVAL, NULL},
        {"UFS:a*", -EINVAL, NULL},
        {"UFS:a?", -EINVAL, NULL},
        {"RAM:x", -EINVAL, NULL},
        {"UFS:a:b", -EINVAL, NULL},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char path[PATH_MAX];
        int rc = store_efs_resolve(f->s, t[i].name, path, sizeof(path));
        if (rc != t[i].rc)
            fail_msg("resolve \"%s\": %d, want %d", t[i].name, rc, t[i].rc);
        if (t[i].path)
            assert_string_equal(path, at(f, t[i].path));
        if (t[i].rc == 0)
            continue;
        /* Every entry point refuses it alike, and nothing is created. */
        struct store_efs_writer *w;
        uint8_t *buf;
        size_t len;
        uint64_t size;
        assert_int_equal(store_efs_begin(f->s, t[i].name, true, &w), t[i].rc);
        assert_int_equal(store_efs_read(f->s, t[i].name, &buf, &len), t[i].rc);
        assert_int_equal(store_efs_size(f->s, t[i].name, &size), t[i].rc);
        if (!strpbrk(t[i].name, "*?")) /* else a pattern to delete */
            assert_int_equal(store_efs_delete(f->s, t[i].name), t[i].rc);
    }
    char small[8];
    assert_int_equal(store_efs_resolve(f->s, "UFS:a.txt", small, sizeof(small)), -ENOSPC);
    assert_int_equal(efs_put(f->s, max_name, "m", 1, false), 0);
    assert_int_equal(count_tmp(f->dir), 0);
}

static void test_efs_planted_symlink_is_not_followed(void **state)
{
    struct fx *f = *state;
    char *outside = f->outside, secret[128];
    make_tmpdir(outside, sizeof(f->outside));
    snprintf(secret, sizeof(secret), "%s/secret", outside);
    write_file(secret, "secret", 6);
    uint8_t *buf;
    size_t len;
    uint64_t size;
    struct store_efs_writer *w;
    struct listing l = {0};

    /* A file symlink in UFS: not read, not listed, replaced (not written
     * through) by an overwrite, and only the link goes on delete. */
    assert_int_equal(symlink(secret, at(f, "efs/ufs/evil")), 0);
    assert_int_equal(store_efs_read(f->s, "UFS:evil", &buf, &len), -ELOOP);
    assert_int_equal(store_efs_size(f->s, "UFS:evil", &size), -ELOOP);
    assert_int_equal(store_efs_list(f->s, "*", list_cb, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_efs_begin(f->s, "UFS:evil", false, &w), -EEXIST);
    assert_int_equal(efs_put(f->s, "UFS:evil", "new", 3, true), 0);
    assert_int_equal(store_read_all(secret, &buf, &len), 0);
    expect_file(buf, len, "secret", 6);
    free(buf);
    expect_efs(f->s, "UFS:evil", "new", 3);
    assert_int_equal(symlink(secret, at(f, "efs/ufs/evil2")), 0);
    assert_int_equal(store_efs_delete(f->s, "UFS:evil2"), 0);
    assert_int_equal(access(secret, F_OK), 0);

    /* A folder symlink in /datatx: nothing goes through it. */
    rm_rf(at(f, "efs/datatx/ssl"));
    assert_int_equal(symlink(outside, at(f, "efs/datatx/ssl")), 0);
    assert_int_equal(store_efs_read(f->s, "/datatx/ssl/secret", &buf, &len), -ELOOP);
    assert_int_equal(store_efs_size(f->s, "/datatx/ssl/secret", &size), -ELOOP);
    assert_int_equal(store_efs_begin(f->s, "/datatx/ssl/new.pem", true, &w), -ELOOP);
    assert_int_equal(store_efs_delete(f->s, "/datatx/ssl/secret"), -ELOOP);
    assert_int_equal(store_efs_delete(f->s, "/datatx/ssl/*"), -ELOOP);
    assert_int_equal(store_efs_list(f->s, "/datatx/ssl/*", list_cb, &l), -ELOOP);
    assert_int_equal(l.n, 0);
    assert_int_equal(store_read_all(secret, &buf, &len), 0);
    expect_file(buf, len, "secret", 6);
    free(buf);
    assert_int_equal(count_tmp(outside), 0);
}

static void test_efs_write_read_list_delete(void **state)
{
    struct fx *f = *state;
    assert_int_equal(efs_put(f->s, "UFS:b.txt", "bbb", 3, false), 0);
    assert_int_equal(efs_put(f->s, "a.txt", "aaaaa", 5, false), 0);
    assert_int_equal(efs_put(f->s, "/datatx/fota_cacert.pem", "0123456789", 10, false), 0);
    assert_int_equal(efs_put(f->s, "/datatx/ssl/coap-key.pem", "key", 3, false), 0);
    assert_int_equal(efs_put(f->s, "/datatx/sub/dir/deep.bin", "d", 1, false), 0);
    reopen(f);

    const struct {
        const char *pattern;
        int n;
        const char *first;
        uint64_t first_size;
    } t[] = {
        {"*", 2, "UFS:a.txt", 5},
        {"UFS:*", 2, "UFS:a.txt", 5},
        {"UFS:b*", 1, "UFS:b.txt", 3},
        {"UFS:?.txt", 2, "UFS:a.txt", 5},
        {"UFS:b.txt", 1, "UFS:b.txt", 3},
        {"UFS:c.txt", 0, NULL, 0},
        {"/datatx/*", 1, "/datatx/fota_cacert.pem", 10},
        {"/datatx/ssl/*", 1, "/datatx/ssl/coap-key.pem", 3},
        {"/datatx/sub/dir/*.bin", 1, "/datatx/sub/dir/deep.bin", 1},
        {"/datatx/nodir/*", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct listing l = {0};
        assert_int_equal(store_efs_list(f->s, t[i].pattern, list_cb, &l), 0);
        if (l.n != t[i].n)
            fail_msg("list \"%s\": %d files, want %d", t[i].pattern, l.n, t[i].n);
        if (t[i].first) {
            assert_string_equal(l.names[0], t[i].first);
            assert_int_equal(l.sizes[0], t[i].first_size);
        }
    }
    struct listing stop = {.stop_at = 1};
    assert_int_equal(store_efs_list(f->s, "*", list_cb, &stop), 7);
    assert_int_equal(stop.n, 1);
    assert_int_equal(store_efs_list(f->s, "/etc/*", list_cb, &stop), -EINVAL);

    uint8_t *buf;
    size_t len;
    uint64_t size;
    expect_efs(f->s, "/datatx/ssl/coap-key.pem", "key", 3);
    assert_int_equal(store_efs_size(f->s, "UFS:a.txt", &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(store_efs_size(f->s, "/datatx/ssl", &size), -EISDIR);
    assert_int_equal(store_efs_size(f->s, "/datatx/fota_cacert.pem/x", &size), -ENOENT);
    assert_int_equal(store_efs_read(f->s, "UFS:none", &buf, &len), -ENOENT);

    assert_int_equal(store_efs_delete(f->s, "UFS:a.txt"), 0);
    assert_int_equal(store_efs_delete(f->s, "UFS:a.txt"), -ENOENT);
    assert_int_equal(store_efs_delete(f->s, "/datatx/ssl"), -EISDIR);
    assert_int_equal(store_efs_delete(f->s, "/datatx/nodir/x"), -ENOENT);
    assert_int_equal(store_efs_size(f->s, "UFS:a.txt", &size), -ENOENT);
}

static void test_efs_delete_ufs_star_deletes_all_ufs_only(void **state)
{
    struct fx *f = *state;
    const char *ufs[] = {"UFS:one", "UFS:two", "three"};
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(efs_put(f->s, ufs[i], "x", 1, true), 0);
        assert_int_equal(efs_put(f->s, "/datatx/fota_cacert.pem", "ca", 2, true), 0);
        assert_int_equal(store_efs_delete(f->s, pass == 0 ? "UFS:*" : "*"), 0);
        struct listing l = {0};
        assert_int_equal(store_efs_list(f->s, "*", list_cb, &l), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(store_efs_list(f->s, "/datatx/*", list_cb, &l), 0);
        assert_int_equal(l.n, 1);
    }
    assert_int_equal(store_efs_delete(f->s, "UFS:*"), 0); /* none left: still fine */
}

static void test_efs_overwrite_rules_and_abort(void **state)
{
    struct fx *f = *state;
    struct store_efs_writer *w, *w2;
    assert_int_equal(efs_put(f->s, "UFS:f", "old", 3, false), 0);
    assert_int_equal(efs_put(f->s, "UFS:f", "new", 3, false), -EEXIST);
    assert_int_equal(store_efs_begin(f->s, "/datatx/ssl", true, &w), -EISDIR);

    /* Until finish the old content stays; abort keeps it. */
    assert_int_equal(store_efs_begin(f->s, "UFS:f", true, &w), 0);
    assert_int_equal(store_efs_write(w, "half", 4), 0);
    expect_efs(f->s, "UFS:f", "old", 3);
    store_efs_abort(w);
    expect_efs(f->s, "UFS:f", "old", 3);
    assert_int_equal(efs_put(f->s, "UFS:f", "newer", 5, true), 0);
    expect_efs(f->s, "UFS:f", "newer", 5);

    /* Two uploads of a new name without overwrite: the first to finish
     * wins, the other gets -EEXIST. */
    assert_int_equal(store_efs_begin(f->s, "UFS:race", false, &w), 0);
    assert_int_equal(store_efs_begin(f->s, "UFS:race", false, &w2), 0);
    assert_int_equal(store_efs_write(w, "first", 5), 0);
    assert_int_equal(store_efs_write(w2, "second", 6), 0);
    assert_int_equal(efs_finish(&f->loop, w2), 0);
    assert_int_equal(efs_finish(&f->loop, w), -EEXIST);
    expect_efs(f->s, "UFS:race", "second", 6);
    assert_int_equal(count_tmp(f->dir), 0);
}

/* The size of the one temporary file in efs/ufs, -1 when there is none. */
static long long ufs_tmp_size(struct fx *f)
{
    DIR *d = opendir(at(f, "efs/ufs"));
    assert_non_null(d);
    long long size = -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(de->d_name, ".tmp-", 5) != 0 || fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        assert_int_equal(size, -1);
        size = (long long)st.st_size;
    }
    closedir(d);
    return size;
}

/* The loop thread only copies: a worker writes each full buffer into the
 * temporary file; an abort drops the file. */
static void test_efs_chunks_and_abort_run_on_a_worker(void **state)
{
    struct fx *f = *state;
    static uint8_t data[300 * 1024];
    img_fill(data, sizeof(data), 3);
    assert_int_equal(efs_put(f->s, "UFS:f", "old", 3, false), 0);
    struct store_efs_writer *w;
    assert_int_equal(store_efs_begin(f->s, "UFS:f", true, &w), 0);
    for (size_t off = 0; off < 256 * 1024; off += 4096)
        assert_int_equal(store_efs_write(w, data + off, 4096), 0);
    assert_int_equal(ufs_tmp_size(f), 0); /* in memory: a buffer's worth */
    for (size_t off = 256 * 1024; off < sizeof(data); off += 4096)
        assert_int_equal(store_efs_write(w, data + off, 4096), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the full buffer, written on a worker */
    assert_int_equal(ufs_tmp_size(f), 256 * 1024);
    store_efs_abort(w); /* the unlink runs on a worker, whenever it gets to it */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(ufs_tmp_size(f), -1);
    expect_efs(f->s, "UFS:f", "old", 3);
    /* and a finish writes the rest first */
    assert_int_equal(efs_put(f->s, "UFS:f", data, sizeof(data), true), 0);
    expect_efs(f->s, "UFS:f", data, sizeof(data));
}

/* A write that fails on the worker shows at a later write or the finish,
 * and no file is kept (nor a temporary one); the space is free again. */
static void test_efs_write_error_on_the_worker_keeps_no_file(void **state)
{
    struct fx *f = *state;
    static uint8_t data[700 * 1024];
    img_fill(data, sizeof(data), 9);
    uint64_t free_before = store_efs_free(f->s);
    struct fsize_limit lim = fsize_limit_set(300 * 1024); /* the 2nd buffer passes it */
    struct store_efs_writer *w;
    assert_int_equal(store_efs_begin(f->s, "/datatx/big.pem", false, &w), 0);
    int rc = 0;
    for (size_t off = 0; off < sizeof(data) && rc == 0; off += 4096) {
        rc = store_efs_write(w, data + off, 4096);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    if (rc)
        assert_int_equal(store_efs_write(w, data, 1), rc); /* and stays failed */
    struct done d = {0};
    store_efs_finish(w, done_cb, &d);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    fsize_limit_undo(&lim);
    assert_true(rc == -EFBIG || rc == 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.result, -EFBIG);
    uint64_t size;
    assert_int_equal(store_efs_size(f->s, "/datatx/big.pem", &size), -ENOENT);
    assert_int_equal(count_tmp(f->dir), 0);
    assert_int_equal(store_efs_free(f->s), free_before);
}

static void test_efs_free_space_is_a_budget(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    struct store_cfg cfg = {.efs_budget = 10000, .loop = &f->loop};
    assert_int_equal(store_open_cfg(f->dir, &cfg, &f->s), 0);
    static uint8_t data[10001];
    assert_int_equal(store_efs_free(f->s), 10000);
    assert_int_equal(efs_put(f->s, "UFS:a", data, 4000, false), 0);
    assert_int_equal(store_efs_free(f->s), 6000);

    struct store_efs_writer *w;
    assert_int_equal(store_efs_begin(f->s, "/datatx/ssl/b", false, &w), 0);
    assert_int_equal(store_efs_write(w, data, 5000), 0);
    assert_int_equal(store_efs_free(f->s), 1000); /* an upload in progress counts */
    assert_int_equal(store_efs_write(w, data, 1001), -ENOSPC);
    assert_int_equal(store_efs_write(w, data, 1000), 0);
    assert_int_equal(efs_finish(&f->loop, w), 0);
    assert_int_equal(store_efs_free(f->s), 0);
    uint64_t size;
    assert_int_equal(store_efs_size(f->s, "/datatx/ssl/b", &size), 0);
    assert_int_equal(size, 6000);

    /* Replacing a file may use the space the old one frees. */
    assert_int_equal(efs_put(f->s, "UFS:a", data, 4001, true), -ENOSPC);
    assert_int_equal(efs_put(f->s, "UFS:a", data, 4000, true), 0);
    assert_int_equal(store_efs_delete(f->s, "UFS:a"), 0);
    assert_int_equal(store_efs_free(f->s), 4000);
}

/* ---- kill -9 ----------------------------------------------------------- */

#define CRASH_FW_SIZE (256u * 1024u)
#define CRASH_REC_SIZE 4096u
#define CRASH_EFS_SIZE 8192u
#define CRASH_CHUNK (16u * 1024u)

static void setting_value(char *val, size_t cap, uint32_t gen)
{
    int n = snprintf(val, cap, "g%u-", gen);
    for (size_t i = (size_t)n; i + 1 < cap; i++)
        val[i] = (char)('a' + (gen + i) % 26);
    val[cap - 1] = '\0';
}

static void child_efs_done(void *ud, int result)
{
    *(int *)ud = result;
}

/* The child: rewrites every kind of file, generation after generation, and
 * reports each finished generation on @p wfd, until it is killed. */
static void crash_child(const char *dir, uint32_t gen, int wfd)
{
    struct store *s;
    uv_loop_t loop;
    uint8_t *img = malloc(CRASH_FW_SIZE);
    if (!img || uv_loop_init(&loop) != 0 ||
        store_open_cfg(dir, &(struct store_cfg){.loop = &loop}, &s) != 0)
        _exit(2);
    for (;; gen++) {
        char val[200];
        setting_value(val, sizeof(val), gen);
        img_fill(img, CRASH_FW_SIZE, gen);
        struct store_slot_writer *w;
        struct store_efs_writer *e;
        if (store_set(s, "gen", val) != 0 ||
            store_record_put(s, "journal", img, CRASH_REC_SIZE) != 0 ||
            store_fw_write(s, img, CRASH_FW_SIZE) != 0 ||
            store_efs_begin(s, "UFS:cert.pem", true, &e) != 0 ||
            store_efs_write(e, img, CRASH_EFS_SIZE) != 0)
            _exit(3);
        int result = 1;
        store_efs_finish(e, child_efs_done, &result);
        while (result == 1)
            uv_run(&loop, UV_RUN_ONCE);
        if (result != 0 || store_slot_begin(s, SLOT_CAP_BG95M1, &w) != 0)
            _exit(3);
        for (size_t off = 0; off < CRASH_FW_SIZE; off += CRASH_CHUNK)
            if (store_slot_write(w, img + off, CRASH_CHUNK) != 0)
                _exit(3);
        result = 1;
        store_slot_finish(w, child_slot_done, &result);
        while (result == 1)
            uv_run(&loop, UV_RUN_ONCE);
        if (result != 0 || write(wfd, "g", 1) != 1)
            _exit(3);
    }
}

/* Reopens the store after a kill and checks that every file is one
 * generation's whole content (the slot: a prefix of one). Returns the
 * generation of the settings. */
static uint32_t crash_check(struct fx *f)
{
    store_reopen(f);
    assert_int_equal(count_tmp(f->dir), 0);

    char val[200], want[200];
    assert_int_equal(store_get(f->s, "gen", val, sizeof(val)), 0);
    unsigned g_set = 0;
    assert_int_equal(sscanf(val, "g%u-", &g_set), 1);
    setting_value(want, sizeof(want), g_set);
    assert_string_equal(val, want);

    uint8_t *buf;
    size_t len;
    uint32_t g_rec, g_fw, g_efs, g_slot;
    static uint8_t rec[CRASH_REC_SIZE];
    assert_int_equal(store_record_get(f->s, "journal", rec, sizeof(rec), &len), 0);
    assert_int_equal(len, CRASH_REC_SIZE);
    assert_true(img_prefix_ok(rec, len, &g_rec));

    assert_int_equal(store_fw_read(f->s, &buf, &len), 0);
    assert_int_equal(len, CRASH_FW_SIZE);
    assert_true(img_prefix_ok(buf, len, &g_fw));
    free(buf);

    assert_int_equal(store_efs_read(f->s, "UFS:cert.pem", &buf, &len), 0);
    assert_int_equal(len, CRASH_EFS_SIZE);
    assert_true(img_prefix_ok(buf, len, &g_efs));
    free(buf);

    int rc = slot_read(f->s, &buf, &len);
    if (rc == -ENOENT) {
        len = 0;
        g_slot = 0;
    } else {
        assert_int_equal(rc, 0);
        assert_true(len <= CRASH_FW_SIZE);
        assert_true(img_prefix_ok(buf, len, &g_slot));
        free(buf);
    }
    /* Written in this order, so never a newer generation further on. */
    assert_true(g_set >= g_rec && g_rec >= g_fw && g_fw >= g_efs);
    assert_true(len < 4 || (g_efs >= g_slot && g_set - g_slot <= 1));
    store_close(f->s);
    f->s = NULL;
    return g_set;
}

static void test_kill9_leaves_every_file_old_or_new(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("kill -9 test seed %u\n", seed);
    for (uint32_t round = 1; round <= 6; round++) {
        uint32_t base = round * 1000000u;
        unsigned iterations = 1 + (unsigned)rand_r(&seed) % 6;
        unsigned spin = (unsigned)rand_r(&seed) % 2000000u;
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_child(f->dir, base, fds[1]);
        }
        close(fds[1]);
        for (unsigned i = 0; i < iterations; i++) {
            char c;
            assert_int_equal(read(fds[0], &c, 1), 1);
        }
        for (volatile unsigned i = 0; i < spin; i++) /* land anywhere in the next one */
            ;
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        close(fds[0]);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        uint32_t g = crash_check(f);
        assert_true(g >= base + iterations - 1);
    }
    store_reopen(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_settings_round_trip_survives_reopen),
        T(test_settings_set_replaces_value),
        T(test_settings_bad_keys_and_values_refused),
        T(test_settings_get_needs_room_and_del_removes),
        T(test_settings_malformed_lines_are_ignored),
        T(test_settings_count_is_bounded),
        T(test_atomic_write_leaves_no_temp_and_survives_reopen),
        T(test_open_removes_stale_temp_files),
        T(test_open_same_dir_twice_is_busy),
        T(test_open_creates_nested_dir_and_refuses_symlinked_layout),
        T(test_record_round_trip),
        T(test_record_checksum_corruption_reads_as_ebadmsg),
        T(test_slot_streams_chunks_and_reads_back),
        T(test_slot_capacity_exact_boundary),
        T(test_slot_new_write_replaces_old_package),
        T(test_slot_delete_and_size_zero_when_empty),
        T(test_slot_killed_mid_write_keeps_a_prefix),
        T(test_slot_finished_unsynced_survives_kill),
        T(test_slot_finish_reports_once_written_and_syncs_behind),
        T(test_slot_untouched_until_the_first_byte),
        T(test_slot_abort_drops_what_is_only_in_memory),
        T(test_slot_write_error_on_the_worker_shows_at_the_finish),
        T(test_slot_planted_symlink_is_never_followed),
        T(test_work_runs_one_at_a_time_in_order_and_flush_waits),
        T(test_set_async_is_seen_at_once_and_on_disk_at_the_callback),
        T(test_efs_delete_async_answers_on_the_loop),
        T(test_slot_chunks_of_any_size_across_buffers),
        T(test_fwnew_begin_resume_keeps_content),
        T(test_fwnew_commit_replaces_fw_and_is_idempotent),
        T(test_efs_name_validation),
        T(test_efs_planted_symlink_is_not_followed),
        T(test_efs_write_read_list_delete),
        T(test_efs_delete_ufs_star_deletes_all_ufs_only),
        T(test_efs_overwrite_rules_and_abort),
        T(test_efs_chunks_and_abort_run_on_a_worker),
        T(test_efs_write_error_on_the_worker_keeps_no_file),
        T(test_efs_free_space_is_a_budget),
        T(test_kill9_leaves_every_file_old_or_new),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
