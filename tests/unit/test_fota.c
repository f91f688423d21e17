/* Unit tests of the DFOTA job on a test clock and a real store in a temp
 * dir, its file work on libuv's threadpool: the package sources (what they
 * keep, capacity, the 710 check, the trigger), the cycle's URCs, every
 * <update_err>, the flash-fault seam, journal replay from each journal
 * state, trigger mode, closing mid-update. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dfota/fota.h"
#include "dfota/pkg.h"

#define OLD "BG95M3LAR02A03_01.012.01.012"
#define NEW "BG95M3LAR02A04_01.200.01.200"
#define IMG_SIZE (256u * 1024u)

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    char dir[64];
    struct store *store;
    struct fota *f;
    char urcs[160][96];
    unsigned nurc;
    int dfota_entries;
    int reboots;
    char rebooted_to[80];
    int fail_block; /* flash fault at this block, -1 none */
    uint8_t target_sha[32];
    /* the last package source's end */
    int src_calls, src_result;
    uint64_t src_size;
    int closed;
    uint64_t capacity; /* the slot's, 0: a BG95-M3's */
    int deleted;
};

/* Turns the loop and the test clock until @p cond holds; a wall-clock
 * deadline (not a sleep) only bounds a test that would otherwise hang,
 * since worker threads complete in real time. */
#define PUMP_UNTIL(x, cond)                                                                        \
    do {                                                                                           \
        time_t end_ = time(NULL) + 20;                                                             \
        while (!(cond) && time(NULL) < end_) {                                                     \
            uv_run(&(x)->loop, UV_RUN_NOWAIT);                                                     \
            if (!(cond))                                                                           \
                dclock_test_advance((x)->clk, 1);                                                  \
        }                                                                                          \
        assert_true(cond);                                                                         \
    } while (0)

static void h_urc(void *ud, const char *text)
{
    struct fx *x = ud;
    if (x->nurc < 160)
        snprintf(x->urcs[x->nurc++], sizeof(x->urcs[0]), "%s", text);
}

static void h_enter(void *ud)
{
    ((struct fx *)ud)->dfota_entries++;
}

static void h_reboot(void *ud, const char *fw)
{
    struct fx *x = ud;
    x->reboots++;
    snprintf(x->rebooted_to, sizeof(x->rebooted_to), "%s", fw);
}

static int flash_fault(void *ud, uint32_t block, uint32_t count)
{
    struct fx *x = ud;
    (void)count;
    return (int)block == x->fail_block ? -EIO : 0;
}

static const struct fota_fault_ops faults = {.update_block = flash_fault};

static const struct fota_hooks hooks = {h_urc, h_enter, h_reboot, NULL, NULL};

static void src_done(void *ud, int result, uint64_t size)
{
    struct fx *x = ud;
    x->src_calls++;
    x->src_result = result;
    x->src_size = size;
}

static void job_new(struct fx *x, const char *fw)
{
    struct fota_cfg cfg = {
        .store = x->store, .clock = x->clk,
        .slot_capacity = x->capacity ? x->capacity : 7296 * 1024,
        .pct_sign = true, .stage_ms = 20, .reset_ms = 40, .update_ms_per_mb = 64,
        .faults = &faults, .faults_ud = x,
    };
    assert_int_equal(fota_new(&cfg, &hooks, x, fw, &x->f), 0);
}

/* Sends @p len bytes through a package source of @p kind, ended @p how;
 * returns what the source's end said. */
static int send_package(struct fx *x, enum fota_src_kind kind, const uint8_t *buf, size_t len,
                        enum fota_src_end how)
{
    struct fota_src *src;
    assert_int_equal(fota_src_begin(x->f, kind, len, &src), 0);
    assert_true(fota_busy(x->f));
    assert_int_equal(fota_src_write(src, buf, len), 0);
    assert_int_equal(fota_src_taken(src), len);
    int calls = x->src_calls;
    fota_src_end(src, how, src_done, x);
    PUMP_UNTIL(x, x->src_calls > calls);
    return x->src_result;
}

/* The slot holds @p buf, put there as an upload puts it (trigger mode 0 so
 * that it waits). */
static void put_slot(struct fx *x, const uint8_t *buf, size_t len)
{
    int mode = fota_trigger_mode(x->f);
    fota_set_trigger_mode(x->f, 0);
    assert_int_equal(send_package(x, FOTA_SRC_COM, buf, len, FOTA_SRC_COMPLETE), 0);
    fota_set_trigger_mode(x->f, mode);
    assert_int_equal(fota_slot_size(x->f), len);
    assert_false(fota_busy(x->f));
}

/* A package from @p src_version's image to NEW; the caller frees it. */
static uint8_t *make_package(struct fx *x, const char *src_version, size_t *len)
{
    uint8_t *src, *dst, *pkg;
    size_t sl, dl;
    assert_int_equal(pkg_image_generate(src_version, IMG_SIZE, &src, &sl), 0);
    assert_int_equal(pkg_image_generate(NEW, IMG_SIZE, &dst, &dl), 0);
    assert_int_equal(pkg_build(src, sl, src_version, dst, dl, NEW, &pkg, len), 0);
    pkg_sha256(dst, dl, x->target_sha);
    free(src);
    free(dst);
    return pkg;
}

/* A package from OLD to NEW (or from @p src_version's image) in the slot. */
static void put_package(struct fx *x, const char *src_version)
{
    size_t pl;
    uint8_t *pkg = make_package(x, src_version, &pl);
    put_slot(x, pkg, pl);
    free(pkg);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->clk = dclock_new_test(&x->loop);
    snprintf(x->dir, sizeof(x->dir), "/tmp/test_fota.XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    struct store_cfg scfg = {.loop = &x->loop};
    assert_int_equal(store_open_cfg(x->dir, &scfg, &x->store), 0);
    x->fail_block = -1;
    /* the running firmware's image, small for speed */
    uint8_t *img;
    size_t len;
    assert_int_equal(pkg_image_generate(OLD, IMG_SIZE, &img, &len), 0);
    assert_int_equal(store_fw_write(x->store, img, len), 0);
    free(img);
    job_new(x, OLD);
    *state = x;
    return 0;
}

static void on_closed(void *arg)
{
    ((struct fx *)arg)->closed++;
}

static void on_flushed(void *arg)
{
    ((struct fx *)arg)->closed++;
}

/* Closes the job and waits for the store's work, as the modem does. */
static void job_close(struct fx *x)
{
    x->closed = 0;
    fota_close(x->f, on_closed, x);
    PUMP_UNTIL(x, x->closed == 1);
    assert_int_equal(store_flush(x->store, on_flushed, x), 0);
    PUMP_UNTIL(x, x->closed == 2 && !store_busy(x->store));
    x->f = NULL;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    if (x->f)
        job_close(x);
    store_close(x->store);
    dclock_close(x->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

/* Runs the clock and the loop until the job reboots the module. */
static void run_to_reboot(struct fx *x)
{
    PUMP_UNTIL(x, x->reboots > 0);
    assert_int_equal(x->reboots, 1);
}

static const char *last_urc(struct fx *x)
{
    return x->nurc ? x->urcs[x->nurc - 1] : "";
}

static void assert_image(struct fx *x, const uint8_t sha[32])
{
    uint8_t *img, got[32];
    size_t len;
    assert_int_equal(store_fw_read(x->store, &img, &len), 0);
    pkg_sha256(img, len, got);
    free(img);
    assert_memory_equal(got, sha, 32);
}

static void old_sha(uint8_t sha[32])
{
    uint8_t *img;
    size_t len;
    assert_int_equal(pkg_image_generate(OLD, IMG_SIZE, &img, &len), 0);
    pkg_sha256(img, len, sha);
    free(img);
}

static void test_update_prints_the_cycle_and_installs_the_target(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    assert_int_equal(fota_start_update(x->f), 0);
    assert_int_equal(fota_start_update(x->f), FOTA_CME_BUSY);
    PUMP_UNTIL(x, x->nurc > 0); /* once the journal says so */
    assert_string_equal(x->urcs[0], "+QIND: \"FOTA\",\"RESETTING\"");
    run_to_reboot(x);
    assert_int_equal(x->dfota_entries, 1);
    assert_string_equal(x->urcs[1], "+QIND: \"FOTA\",\"START\"");
    int last = 0;
    for (unsigned i = 2; i + 1 < x->nurc; i++) {
        int pct;
        assert_int_equal(sscanf(x->urcs[i], "+QIND: \"FOTA\",\"UPDATING\",%d%%", &pct), 1);
        assert_int_equal(pct, last + 1); /* every percent, 1 to 100 */
        last = pct;
    }
    assert_int_equal(last, 100);
    assert_string_equal(last_urc(x), "+QIND: \"FOTA\",\"END\",0");
    assert_string_equal(x->rebooted_to, NEW);
    assert_image(x, x->target_sha);
    char fw[80];
    assert_int_equal(store_get(x->store, "firmware", fw, sizeof(fw)), 0);
    assert_string_equal(fw, NEW);
    assert_int_equal(fota_slot_size(x->f), 0);
    assert_false(fota_busy(x->f));
}

static void expect_error(struct fx *x, int err)
{
    uint8_t sha[32];
    old_sha(sha);
    assert_int_equal(fota_start_update(x->f), 0);
    run_to_reboot(x);
    char want[64];
    snprintf(want, sizeof(want), "+QIND: \"FOTA\",\"END\",%d", err);
    assert_string_equal(last_urc(x), want);
    assert_string_equal(x->rebooted_to, OLD);
    assert_image(x, sha); /* the old firmware, intact */
}

static void test_no_package_ends_505(void **state)
{
    expect_error(*state, FOTA_NO_PACKAGE);
}

static void test_corrupt_package_ends_506(void **state)
{
    struct fx *x = *state;
    put_slot(x, (const uint8_t *)"DFOTAPK\x01garbage", 15);
    expect_error(x, FOTA_PACKAGE_CHECK);
}

static void test_opaque_package_without_target_ends_506(void **state)
{
    struct fx *x = *state;
    put_slot(x, (const uint8_t *)"vendor package", 14);
    expect_error(x, FOTA_PACKAGE_CHECK);
}

static void test_package_for_other_firmware_ends_511(void **state)
{
    struct fx *x = *state;
    put_package(x, "BG95M3LAR02A02_01.001.01.001");
    expect_error(x, FOTA_MISMATCH);
}

static void test_flash_write_error_ends_504(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    x->fail_block = 2;
    expect_error(x, FOTA_UPDATE_FAILED);
}

/* A power cut is the job object dying with the store as it is; a new job
 * on the same store resumes from the journal. */
static void cut_and_resume(struct fx *x)
{
    job_close(x);
    x->nurc = 0;
    job_new(x, OLD);
    assert_true(fota_resume(x->f));
    run_to_reboot(x);
    assert_string_equal(last_urc(x), "+QIND: \"FOTA\",\"END\",0");
    assert_string_equal(x->rebooted_to, NEW);
    assert_image(x, x->target_sha);
}

static void test_resume_from_resetting(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    assert_int_equal(fota_start_update(x->f), 0);
    cut_and_resume(x);
}

static void test_resume_from_updating_goes_on_where_it_was(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    assert_int_equal(fota_start_update(x->f), 0);
    PUMP_UNTIL(x, x->nurc >= 3 && strstr(last_urc(x), "UPDATING") != NULL &&
                      atoi(strrchr(last_urc(x), ',') + 1) >= 50);
    cut_and_resume(x);
    int first;
    assert_int_equal(sscanf(x->urcs[1], "+QIND: \"FOTA\",\"UPDATING\",%d%%", &first), 1);
    assert_true(first > 50); /* not started over */
}

static void test_resume_from_end_finishes_the_commit(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    assert_int_equal(fota_start_update(x->f), 0);
    PUMP_UNTIL(x, strstr(last_urc(x), "END") != NULL);
    cut_and_resume(x);
}

static void test_no_journal_means_normal_boot(void **state)
{
    struct fx *x = *state;
    assert_false(fota_resume(x->f));
    assert_int_equal(x->dfota_entries, 0);
}

static void test_trigger_mode_defaults_to_1_and_resets(void **state)
{
    struct fx *x = *state;
    assert_int_equal(fota_trigger_mode(x->f), 1);
    size_t len;
    uint8_t *pkg = make_package(x, OLD, &len);
    fota_set_trigger_mode(x->f, 0);
    assert_int_equal(fota_trigger_mode(x->f), 0);
    assert_int_equal(send_package(x, FOTA_SRC_COM, pkg, len, FOTA_SRC_COMPLETE), 0);
    assert_false(fota_busy(x->f)); /* mode 0: no update */
    fota_power_cycle(x->f);
    assert_int_equal(fota_trigger_mode(x->f), 1);
    assert_int_equal(send_package(x, FOTA_SRC_COM, pkg, len, FOTA_SRC_COMPLETE), 0);
    assert_true(fota_busy(x->f)); /* mode 1: the update follows the source's end */
    run_to_reboot(x);
    assert_string_equal(x->rebooted_to, NEW);
    free(pkg);
}

static void test_com_source_stopped_early_keeps_what_arrived_and_starts_nothing(void **state)
{
    struct fx *x = *state;
    size_t len;
    uint8_t *pkg = make_package(x, OLD, &len);
    struct fota_src *src;
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_COM, len, &src), 0);
    assert_int_equal(fota_src_write(src, pkg, len / 2), 0);
    fota_src_end(src, FOTA_SRC_STOPPED, src_done, x);
    PUMP_UNTIL(x, x->src_calls == 1);
    assert_int_equal(x->src_result, 0);
    assert_int_equal(x->src_size, len / 2);
    assert_int_equal(fota_slot_size(x->f), len / 2);
    assert_false(fota_busy(x->f)); /* trigger mode 1, but no whole package */
    assert_int_equal(x->nurc, 0);
    free(pkg);
}

static void test_source_with_no_byte_leaves_the_old_package(void **state)
{
    struct fx *x = *state;
    put_slot(x, (const uint8_t *)"old package", 11);
    struct fota_src *src;
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_COM, 100, &src), 0);
    fota_src_end(src, FOTA_SRC_STOPPED, src_done, x);
    PUMP_UNTIL(x, x->src_calls == 2);
    assert_int_equal(x->src_result, 0);
    assert_int_equal(x->src_size, 0);
    assert_int_equal(fota_slot_size(x->f), 11);
}

static void test_first_byte_of_a_new_package_replaces_the_old_one(void **state)
{
    struct fx *x = *state;
    put_slot(x, (const uint8_t *)"old package, long", 17);
    fota_set_trigger_mode(x->f, 0);
    assert_int_equal(send_package(x, FOTA_SRC_COM, (const uint8_t *)"new", 3, FOTA_SRC_STOPPED),
                     0);
    assert_int_equal(fota_slot_size(x->f), 3);
}

static void test_download_of_an_intact_package_passes_and_triggers_the_update(void **state)
{
    struct fx *x = *state;
    size_t len;
    uint8_t *pkg = make_package(x, OLD, &len);
    assert_int_equal(send_package(x, FOTA_SRC_DOWNLOAD, pkg, len, FOTA_SRC_COMPLETE), 0);
    assert_int_equal(x->src_size, len);
    run_to_reboot(x);
    assert_string_equal(last_urc(x), "+QIND: \"FOTA\",\"END\",0");
    assert_image(x, x->target_sha);
    free(pkg);
}

static void test_download_with_a_flipped_byte_ends_710_and_starts_nothing(void **state)
{
    struct fx *x = *state;
    size_t len;
    uint8_t *pkg = make_package(x, OLD, &len);
    size_t at[] = {10, len / 2, len - 1}; /* header, a frame, the last byte */
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        pkg[at[i]] ^= 0x20;
        assert_int_equal(send_package(x, FOTA_SRC_DOWNLOAD, pkg, len, FOTA_SRC_COMPLETE),
                         FOTA_DL_CHECK);
        assert_false(fota_busy(x->f));
        pkg[at[i]] ^= 0x20;
    }
    assert_int_equal(send_package(x, FOTA_SRC_DOWNLOAD, pkg, len - 1, FOTA_SRC_COMPLETE),
                     FOTA_DL_CHECK); /* truncated */
    assert_int_equal(send_package(x, FOTA_SRC_DOWNLOAD, (const uint8_t *)"<html>", 6,
                                  FOTA_SRC_COMPLETE),
                     FOTA_DL_CHECK); /* not a package at all */
    assert_int_equal(x->nurc, 0);
    free(pkg);
}

static void test_sizes_beyond_the_slot_are_refused_before_a_byte_is_written(void **state)
{
    struct fx *x = *state;
    job_close(x);
    x->capacity = 4096;
    job_new(x, OLD);
    put_slot(x, (const uint8_t *)"kept", 4);
    struct fota_src *src;
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_COM, 4097, &src), FOTA_CME_PARAM);
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_DOWNLOAD, 4097, &src), FOTA_DL_TOO_LARGE);
    assert_false(fota_busy(x->f));
    /* size unknown (chunked): the chunk that would pass the slot is refused */
    static uint8_t buf[5000];
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_DOWNLOAD, 0, &src), 0);
    assert_int_equal(fota_src_write(src, buf, 4000), 0);
    assert_int_equal(fota_src_write(src, buf, 1000), FOTA_DL_TOO_LARGE);
    assert_int_equal(fota_src_taken(src), 4000);
    fota_src_end(src, FOTA_SRC_STOPPED, src_done, x);
    PUMP_UNTIL(x, x->src_calls == 2);
    assert_int_equal(fota_slot_size(x->f), 4000);
}

static void test_a_second_source_or_an_update_while_one_runs_is_busy(void **state)
{
    struct fx *x = *state;
    struct fota_src *src, *other;
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_COM, 10, &src), 0);
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_DOWNLOAD, 10, &other), FOTA_CME_BUSY);
    assert_int_equal(fota_start_update(x->f), FOTA_CME_BUSY);
    assert_int_equal(fota_slot_delete(x->f, NULL, NULL), FOTA_CME_BUSY);
    fota_src_end(src, FOTA_SRC_CUT, src_done, x); /* a power cut: nobody hears */
    assert_false(fota_busy(x->f));
    uv_run(&x->loop, UV_RUN_NOWAIT);
    assert_int_equal(x->src_calls, 0);
}

static void test_power_cycle_while_a_package_is_stored_tells_nobody(void **state)
{
    struct fx *x = *state;
    size_t len;
    uint8_t *pkg = make_package(x, OLD, &len);
    struct fota_src *src;
    assert_int_equal(fota_src_begin(x->f, FOTA_SRC_COM, len, &src), 0);
    assert_int_equal(fota_src_write(src, pkg, len), 0);
    fota_src_end(src, FOTA_SRC_COMPLETE, src_done, x);
    fota_power_cycle(x->f);
    PUMP_UNTIL(x, !fota_busy(x->f));
    assert_int_equal(x->src_calls, 0);
    assert_int_equal(x->nurc, 0); /* no update triggered by the lost answer */
    assert_int_equal(fota_slot_size(x->f), len); /* but the flash has it */
    free(pkg);
}

static void deleted(void *ud, int result)
{
    struct fx *x = ud;
    assert_int_equal(result, 0);
    x->deleted++;
}

static void test_slot_delete_empties_the_slot_and_an_empty_slot_is_fine(void **state)
{
    struct fx *x = *state;
    put_slot(x, (const uint8_t *)"package", 7);
    assert_int_equal(fota_slot_delete(x->f, deleted, x), 0);
    PUMP_UNTIL(x, x->deleted == 1);
    assert_int_equal(fota_slot_size(x->f), 0);
    assert_int_equal(fota_slot_delete(x->f, deleted, x), 0);
    PUMP_UNTIL(x, x->deleted == 2);
}

static void test_symlink_planted_as_the_slot_ends_505(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    char slot[128], moved[128];
    snprintf(slot, sizeof(slot), "%s/slot/package", x->dir);
    snprintf(moved, sizeof(moved), "%s/elsewhere.pkg", x->dir);
    assert_int_equal(rename(slot, moved), 0);
    assert_int_equal(symlink(moved, slot), 0);
    expect_error(x, FOTA_NO_PACKAGE);
}

static void test_closing_mid_update_frees_everything_and_resumes_later(void **state)
{
    struct fx *x = *state;
    put_package(x, OLD);
    assert_int_equal(fota_start_update(x->f), 0);
    PUMP_UNTIL(x, strstr(last_urc(x), "UPDATING") != NULL);
    cut_and_resume(x); /* the leak checker of the ASan build sees the rest */
}

static void test_error_table_and_urc_format(void **state)
{
    (void)state;
    assert_string_equal(fota_err_text(505), "Update package not exist");
    assert_string_equal(fota_err_text(591), "DFOTA is ongoing");
    assert_string_equal(fota_err_text(708), "Downloaded file is too large");
    assert_null(fota_err_text(509));
    char b[64];
    assert_string_equal(fota_urc(b, sizeof(b), FOTA_STAGE_UPDATING, 5, true),
                        "+QIND: \"FOTA\",\"UPDATING\",5%");
    assert_string_equal(fota_urc(b, sizeof(b), FOTA_STAGE_UPDATING, 5, false),
                        "+QIND: \"FOTA\",\"UPDATING\",5");
    assert_string_equal(fota_urc(b, sizeof(b), FOTA_STAGE_HTTPEND, 0, true),
                        "+QIND: \"FOTA\",\"HTTPEND\",0");
    assert_string_equal(fota_urc(b, sizeof(b), FOTA_STAGE_END, 504, true),
                        "+QIND: \"FOTA\",\"END\",504");
}

static void test_downloading_percent_rises_once_each_at_most_per_interval(void **state)
{
    (void)state;
    struct fota_pct_gate g = FOTA_PCT_GATE_INIT;
    const uint64_t size = 1000;
    /* on a test clock: bytes arrive every 50 ms, the profile allows one
     * URC per 200 ms; what comes through rises and keeps its spacing */
    struct dclock *clk = NULL;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    clk = dclock_new_test(&loop);
    assert_non_null(clk);
    int got[64], n = 0;
    uint64_t at[64];
    for (uint64_t done = 0; done < size; done += 37) {
        int pct = fota_pct_gate(&g, done, size, dclock_now(clk), 200);
        if (pct >= 0) {
            assert_true(n < 64);
            at[n] = dclock_now(clk);
            got[n++] = pct;
        }
        dclock_test_advance(clk, 50);
    }
    assert_int_equal(got[0], 0); /* the first at once */
    for (int i = 1; i < n; i++) {
        assert_true(got[i] > got[i - 1]);
        assert_true(got[i] < 100);
        assert_true(at[i] - at[i - 1] >= 200);
    }
    assert_int_equal(n, 7); /* 27 chunks over 1350 ms: at 0, 200, ... 1200 ms */
    dclock_close(clk, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* no interval: every new value once, none repeated, none going back */
    struct fota_pct_gate h = FOTA_PCT_GATE_INIT;
    assert_int_equal(fota_pct_gate(&h, 10, size, 0, 0), 1);
    assert_int_equal(fota_pct_gate(&h, 15, size, 0, 0), -1); /* still 1 % */
    assert_int_equal(fota_pct_gate(&h, 5, size, 0, 0), -1);  /* back to 0 % */
    assert_int_equal(fota_pct_gate(&h, 999, size, 0, 0), 99);
    assert_int_equal(fota_pct_gate(&h, size, size, 0, 0), -1); /* 100 %: the door's, at the end */
    assert_int_equal(fota_pct_gate(&h, 2 * size, size, 0, 0), -1);
    struct fota_pct_gate u = FOTA_PCT_GATE_INIT;
    assert_int_equal(fota_pct_gate(&u, 500, 0, 0, 0), -1); /* no length known */
    /* 100 * done does not overflow for a slot-sized package */
    assert_int_equal(fota_pct_gate(&u, 7471103, 7471104, 0, 0), 99);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_update_prints_the_cycle_and_installs_the_target),
        T(test_no_package_ends_505),
        T(test_corrupt_package_ends_506),
        T(test_opaque_package_without_target_ends_506),
        T(test_package_for_other_firmware_ends_511),
        T(test_flash_write_error_ends_504),
        T(test_resume_from_resetting),
        T(test_resume_from_updating_goes_on_where_it_was),
        T(test_resume_from_end_finishes_the_commit),
        T(test_no_journal_means_normal_boot),
        T(test_trigger_mode_defaults_to_1_and_resets),
        T(test_com_source_stopped_early_keeps_what_arrived_and_starts_nothing),
        T(test_source_with_no_byte_leaves_the_old_package),
        T(test_first_byte_of_a_new_package_replaces_the_old_one),
        T(test_download_of_an_intact_package_passes_and_triggers_the_update),
        T(test_download_with_a_flipped_byte_ends_710_and_starts_nothing),
        T(test_sizes_beyond_the_slot_are_refused_before_a_byte_is_written),
        T(test_a_second_source_or_an_update_while_one_runs_is_busy),
        T(test_power_cycle_while_a_package_is_stored_tells_nobody),
        T(test_slot_delete_empties_the_slot_and_an_empty_slot_is_fine),
        T(test_symlink_planted_as_the_slot_ends_505),
        T(test_closing_mid_update_frees_everything_and_resumes_later),
        T(test_error_table_and_urc_format),
        T(test_downloading_percent_rises_once_each_at_most_per_interval),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
