/* Unit tests of the DFOTA job on a test clock and a real store in a temp
 * dir: the cycle's URCs, every <update_err>, the flash-fault seam, journal
 * replay from each journal state, trigger mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
};

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

static int flash_fault(void *ud, uint32_t block)
{
    struct fx *x = ud;
    return (int)block == x->fail_block ? -EIO : 0;
}

static const struct fota_hooks hooks = {h_urc, h_enter, h_reboot};

static void job_new(struct fx *x, const char *fw)
{
    struct fota_cfg cfg = {
        .store = x->store, .clock = x->clk, .slot_capacity = 7296 * 1024,
        .pct_sign = true, .stage_ms = 20, .reset_ms = 40, .update_ms_per_mb = 64,
        .flash_fault = flash_fault, .flash_fault_ud = x,
    };
    assert_int_equal(fota_new(&cfg, &hooks, x, fw, &x->f), 0);
}

static void put_slot(struct fx *x, const uint8_t *buf, size_t len)
{
    struct store_slot_writer *w;
    assert_int_equal(store_slot_begin(x->store, 7296 * 1024, &w), 0);
    assert_int_equal(store_slot_write(w, buf, len), 0);
    assert_int_equal(store_slot_finish(w), 0);
}

/* A package from OLD to NEW (or from @p src_version's image) in the slot. */
static void put_package(struct fx *x, const char *src_version)
{
    uint8_t *src, *dst, *pkg;
    size_t sl, dl, pl;
    assert_int_equal(pkg_image_generate(src_version, IMG_SIZE, &src, &sl), 0);
    assert_int_equal(pkg_image_generate(NEW, IMG_SIZE, &dst, &dl), 0);
    assert_int_equal(pkg_build(src, sl, src_version, dst, dl, NEW, &pkg, &pl), 0);
    pkg_sha256(dst, dl, x->target_sha);
    put_slot(x, pkg, pl);
    free(src);
    free(dst);
    free(pkg);
}

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof(*x));
    assert_int_equal(uv_loop_init(&x->loop), 0);
    x->clk = dclock_new_test(&x->loop);
    snprintf(x->dir, sizeof(x->dir), "/tmp/test_fota.XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    assert_int_equal(store_open(x->dir, &x->store), 0);
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

static int teardown(void **state)
{
    struct fx *x = *state;
    fota_free(x->f);
    store_close(x->store);
    dclock_close(x->clk, NULL, NULL);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", x->dir);
    assert_int_equal(system(cmd), 0);
    free(x);
    return 0;
}

/* Runs the clock until the job reboots the module (bounded). */
static void run_to_reboot(struct fx *x)
{
    for (int i = 0; i < 10000 && !x->reboots; i++)
        dclock_test_advance(x->clk, 10);
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
    assert_string_equal(x->urcs[0], "+QIND: \"FOTA\",\"RESETTING\"");
    assert_int_equal(fota_start_update(x->f), FOTA_CME_BUSY);
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
    assert_int_equal(store_slot_size(x->store), 0);
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
    fota_free(x->f);
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
    for (int i = 0; i < 10000 && (x->nurc < 3 || strstr(last_urc(x), "UPDATING") == NULL ||
                                  atoi(strrchr(last_urc(x), ',') + 1) < 50);
         i++)
        dclock_test_advance(x->clk, 1);
    assert_non_null(strstr(last_urc(x), "UPDATING"));
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
    for (int i = 0; i < 10000 && strstr(last_urc(x), "END") == NULL; i++)
        dclock_test_advance(x->clk, 1);
    assert_non_null(strstr(last_urc(x), "END"));
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
    fota_set_trigger_mode(x->f, 0);
    assert_int_equal(fota_trigger_mode(x->f), 0);
    fota_package_ready(x->f); /* mode 0: no update */
    assert_false(fota_busy(x->f));
    fota_power_cycle(x->f);
    assert_int_equal(fota_trigger_mode(x->f), 1);
    fota_package_ready(x->f);
    assert_true(fota_busy(x->f));
    run_to_reboot(x);
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
        T(test_error_table_and_urc_format),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
