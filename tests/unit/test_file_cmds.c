/* Unit tests of the FILE commands and the data-mode upload they share with
 * AT+QFOTADL="COM:": the <check_sum>, the FILE error table and the mapping
 * of store errors onto it, and AT+QFUPL's acks, timeouts and pacing on a
 * test clock through an in-memory UART with a real store. */
/* cmocka.h wants these first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "modem/file_codes.h"
#include "modem/modem_int.h"
#include "modem_fx.h"

/* ---- <check_sum> ------------------------------------------------------- */

static void test_checksum_of_even_length_xors_big_endian_words(void **state)
{
    (void)state;
    static const uint8_t four[] = {0x12, 0x34, 0x56, 0x78};
    /* 0x1234 ^ 0x5678 = 0x444c */
    assert_int_equal(modem_xor16(0, 0, four, sizeof(four)), 0x444c);
    static const uint8_t same[] = {0xab, 0xcd, 0xab, 0xcd};
    assert_int_equal(modem_xor16(0, 0, same, sizeof(same)), 0);
    assert_int_equal(modem_xor16(0, 0, NULL, 0), 0);
}

static void test_checksum_of_odd_length_takes_the_last_byte_as_high(void **state)
{
    (void)state;
    static const uint8_t three[] = {0x12, 0x34, 0x56};
    /* 0x1234 ^ 0x5600 = 0x4434 */
    assert_int_equal(modem_xor16(0, 0, three, sizeof(three)), 0x4434);
    /* "abc+++def": 0x6162 ^ 0x632b ^ 0x2b2b ^ 0x6465 ^ 0x6600 = 0x2b07 */
    const char *s = "abc+++def";
    assert_int_equal(modem_xor16(0, 0, (const uint8_t *)s, strlen(s)), 0x2b07);
    static const uint8_t one[] = {0xff};
    assert_int_equal(modem_xor16(0, 0, one, 1), 0xff00);
}

static void test_checksum_split_at_odd_offsets_equals_one_pass(void **state)
{
    (void)state;
    uint8_t buf[1001];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    uint16_t whole = modem_xor16(0, 0, buf, sizeof(buf));
    static const size_t cuts[][4] = {{1, 3, 500, 1000}, {7, 8, 9, 999}, {0, 333, 334, 1001}};
    for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
        uint16_t acc = 0;
        size_t at = 0;
        for (size_t k = 0; k < 4; k++) {
            acc = modem_xor16(acc, at, buf + at, cuts[c][k] - at);
            at = cuts[c][k];
        }
        acc = modem_xor16(acc, at, buf + at, sizeof(buf) - at);
        assert_int_equal(acc, whole);
    }
    /* and a byte at a time */
    uint16_t acc = 0;
    for (size_t i = 0; i < sizeof(buf); i++)
        acc = modem_xor16(acc, i, buf + i, 1);
    assert_int_equal(acc, whole);
}

/* ---- the FILE error table ------------------------------------------------ */

static void test_file_codes_are_unique_4xx(void **state)
{
    (void)state;
    static const int codes[] = {
#define X(code, name, text) code,
        MODEM_FILE_ERR_MAP(X)
#undef X
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    assert_int_equal(n, 21);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] >= 400 && codes[i] <= 426);
        for (size_t j = i + 1; j < n; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
}

static void test_store_errors_map_onto_file_codes(void **state)
{
    (void)state;
    static const struct {
        int err, code;
    } want[] = {
        {-EINVAL, 406}, {-ENAMETOOLONG, 406}, {-EEXIST, 407},    {-ENOENT, 405}, {-ENOSPC, 420},
        {-EDQUOT, 403}, {-EFBIG, 423},        {-EMFILE, 413},    {-EROFS, 414},  {-EACCES, 414},
        {-EBUSY, 426},  {-EBADF, 416},        {-ETIMEDOUT, 421},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(modem_file_err(want[i].err, FILE_ERR_OPEN), want[i].code);
        assert_int_equal(modem_file_err(want[i].err, FILE_ERR_DELETE), want[i].code);
    }
    /* an errno without a cause of its own: what was being done failed */
    assert_int_equal(modem_file_err(-EIO, FILE_ERR_WRITE), 409);
    assert_int_equal(modem_file_err(-EISDIR, FILE_ERR_OPEN), 410);
    assert_int_equal(modem_file_err(-EISDIR, FILE_ERR_DELETE), 418);
    assert_int_equal(modem_file_err(-ELOOP, FILE_ERR_LIST), 417);
    assert_int_equal(modem_file_err(-ENOMEM, FILE_ERR_READ), 411);
}

/* ---- AT+QFUPL on a modem with a test clock ------------------------------ */

static void start(struct mfx *f, bool pace)
{
    f->cfg.pace_uart = pace;
    mfx_power_on(f);
}

static int setup(void **state)
{
    return mfx_setup(state, "test_file_cmds");
}

static int teardown(void **state)
{
    return mfx_teardown(state);
}

/* Moves module time on a millisecond at a time, letting the loop run
 * between (a paced in-memory port resumes its input from the loop). */
static void advance(struct mfx *f, uint64_t ms)
{
    for (uint64_t i = 0; i < ms; i++) {
        dclock_test_advance(f->clk, 1);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

static void send_bytes(struct mfx *f, const void *buf, size_t len)
{
    port_mem_feed(f->p, buf, len);
}

/* Sends @p line (ATE0 is set) and returns what came back. */
static const char *at(struct mfx *f, const char *line)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s\r", line);
    send_bytes(f, buf, strlen(buf));
    if (f->cfg.pace_uart)
        advance(f, 10);
    return mfx_take(f);
}

static void expect_report(struct mfx *f, const uint8_t *data, size_t len)
{
    char want[64];
    snprintf(want, sizeof(want), "\r\n+QFUPL: %zu,%x\r\n\r\nOK\r\n", len,
             modem_xor16(0, 0, data, len));
    assert_string_equal(mfx_take(f), want);
}

static void booted(void **state, bool pace)
{
    struct mfx *f = *state;
    start(f, pace);
    assert_string_equal(at(f, "ATE0"), "ATE0\r\r\nOK\r\n");
}

static void test_qfupl_acks_each_whole_block_and_not_before(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    static uint8_t data[2 * 1024 + 1];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i ^ 0x5a);
    assert_string_equal(at(f, "AT+QFUPL=\"/datatx/ssl/coap-key.pem\",2049,5,1"), "\r\nCONNECT\r\n");
    send_bytes(f, data, 1023);
    assert_string_equal(mfx_take(f), "");
    send_bytes(f, data + 1023, 1);
    assert_string_equal(mfx_take(f), "A");
    send_bytes(f, data + 1024, 1024);
    assert_string_equal(mfx_take(f), "A");
    send_bytes(f, data + 2048, 1);
    expect_report(f, data, sizeof(data));
}

static void test_qfupl_timeout_is_421_at_the_timeout_not_before(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:t.bin\",10,2"), "\r\nCONNECT\r\n");
    dclock_test_advance(f->clk, 1999);
    assert_string_equal(mfx_take(f), "");
    dclock_test_advance(f->clk, 1);
    assert_string_equal(mfx_take(f), "\r\n+CME ERROR: 421\r\n");
    assert_string_equal(at(f, "AT+QFLST"), "\r\nOK\r\n");
    /* the timeout counts from the last byte; what arrived is kept */
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:t.bin\",10,2"), "\r\nCONNECT\r\n");
    dclock_test_advance(f->clk, 1500);
    send_bytes(f, "xyz", 3);
    dclock_test_advance(f->clk, 1999);
    assert_string_equal(mfx_take(f), "");
    dclock_test_advance(f->clk, 1);
    expect_report(f, (const uint8_t *)"xyz", 3);
    assert_string_equal(at(f, "AT+QFLST"), "\r\n+QFLST: \"UFS:t.bin\",3\r\n\r\nOK\r\n");
}

static void test_qfupl_cut_by_a_power_loss_leaves_no_file(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:c.bin\",100"), "\r\nCONNECT\r\n");
    send_bytes(f, "half", 4);
    mfx_stop(f);
    start(f, false);
    assert_string_equal(at(f, "ATE0;+QFLST"), "ATE0;+QFLST\r\r\nOK\r\n");
}

static void test_qfupl_dtr_drop_keeps_what_arrived(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    assert_string_equal(at(f, "AT&D1"), "\r\nOK\r\n");
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:d.bin\",100"), "\r\nCONNECT\r\n");
    send_bytes(f, "++", 2);
    port_inject_dtr(f->p, false);
    expect_report(f, (const uint8_t *)"++", 2);
    port_inject_dtr(f->p, true);
    assert_string_equal(at(f, "AT+QFLDS"), "\r\n+QFLDS: 2,1\r\n\r\nOK\r\n");
}

/* The size of the one temporary file in efs/ufs (an upload in progress),
 * -1 when there is none. */
static long long ufs_tmp_size(struct mfx *f)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/efs/ufs", f->dir);
    DIR *d = opendir(path);
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

static void fill_data(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(i * 13 + (i >> 10));
}

/* The loop thread only copies an upload's chunks: a worker writes each
 * full buffer to the temporary file, the loop never does. */
static void test_qfupl_chunks_reach_the_file_on_a_worker(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    static uint8_t data[600 * 1024];
    fill_data(data, sizeof(data));
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:big.bin\",614400"), "\r\nCONNECT\r\n");
    for (size_t off = 0; off < 256 * 1024; off += 4096)
        send_bytes(f, data + off, 4096);
    assert_int_equal(ufs_tmp_size(f), 0); /* in memory: a buffer's worth */
    for (size_t off = 256 * 1024; off < 300 * 1024; off += 4096)
        send_bytes(f, data + off, 4096);
    mfx_settle(f); /* the full buffer, written on a worker */
    assert_int_equal(ufs_tmp_size(f), 256 * 1024);
    for (size_t off = 300 * 1024; off < sizeof(data); off += 4096)
        send_bytes(f, data + off, 4096);
    expect_report(f, data, sizeof(data));
    assert_int_equal(ufs_tmp_size(f), -1);
    uint8_t *buf;
    size_t len;
    assert_int_equal(store_efs_read(f->m->store, "UFS:big.bin", &buf, &len), 0);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(buf, data, sizeof(data));
    free(buf);
}

/* A write that fails on a worker (a file-size limit stands in for a full
 * or failing flash) answers an error, at a later chunk or the end, and
 * leaves no file, no temporary file. */
static void test_qfupl_write_error_on_a_worker_answers_an_error(void **state)
{
    struct mfx *f = *state;
    booted(state, false);
    static uint8_t data[700 * 1024];
    fill_data(data, sizeof(data));
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 300 * 1024; /* the second 256 KiB buffer passes it */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:big.bin\",716800"), "\r\nCONNECT\r\n");
    const char *got = "";
    for (size_t off = 0; off < sizeof(data) && !*got; off += 4096) {
        send_bytes(f, data + off, 4096);
        got = mfx_take(f); /* nothing more is sent once data mode ended */
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_string_equal(got, "\r\n+CME ERROR: 423\r\n");
    assert_string_equal(at(f, "AT+QFLST"), "\r\nOK\r\n");
    assert_int_equal(ufs_tmp_size(f), -1);
}

/* 1152 bytes at 115200 bps, 10 bits a byte: 100 ms of line time. */
static void paced_upload(void **state, bool pace)
{
    struct mfx *f = *state;
    booted(state, pace);
    static uint8_t data[1152];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7);
    assert_string_equal(at(f, "AT+QFUPL=\"UFS:p.bin\",1152"), "\r\nCONNECT\r\n");
    send_bytes(f, data, sizeof(data));
    if (pace) {
        advance(f, 95);
        assert_string_equal(mfx_take(f), "");
        advance(f, 20);
        mfx_settle(f);      /* the file is kept on a worker */
        advance(f, 10); /* and the answer leaves at the line rate */
    }
    expect_report(f, data, sizeof(data));
}

static void test_pace_uart_takes_data_at_the_ipr_rate(void **state)
{
    paced_upload(state, true);
}

static void test_without_pace_uart_data_arrives_at_once(void **state)
{
    paced_upload(state, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_of_even_length_xors_big_endian_words),
        cmocka_unit_test(test_checksum_of_odd_length_takes_the_last_byte_as_high),
        cmocka_unit_test(test_checksum_split_at_odd_offsets_equals_one_pass),
        cmocka_unit_test(test_file_codes_are_unique_4xx),
        cmocka_unit_test(test_store_errors_map_onto_file_codes),
        cmocka_unit_test_setup_teardown(test_qfupl_acks_each_whole_block_and_not_before, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_qfupl_timeout_is_421_at_the_timeout_not_before, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_qfupl_cut_by_a_power_loss_leaves_no_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_qfupl_dtr_drop_keeps_what_arrived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qfupl_chunks_reach_the_file_on_a_worker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_qfupl_write_error_on_a_worker_answers_an_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pace_uart_takes_data_at_the_ipr_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_pace_uart_data_arrives_at_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
