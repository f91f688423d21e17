/* Unit tests of the control layer's pure parts: the line assembler and the
 * request parser of the JSON-lines protocol, the fault table's parsing and
 * trigger logic, the fault seams it answers, and the socket path rules of
 * ctl_new(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl_int.h"
#include "dfota/ctl.h"
#include "dfota/fota.h"
#include "dfota/net.h"

/* ---- lines ----------------------------------------------------------------- */

struct got {
    char lines[8][128];
    int n, too_long;
};

static void on_line(void *ud, const char *text, size_t len, bool too_long)
{
    struct got *g = ud;
    if (too_long) {
        g->too_long++;
        return;
    }
    assert_int_equal(strlen(text), len);
    if (g->n < 8)
        snprintf(g->lines[g->n], sizeof(g->lines[0]), "%s", text);
    g->n++;
}

static void test_lines_split_across_chunks_and_strip_cr(void **state)
{
    (void)state;
    struct ctl_lines l = {0};
    struct got g = {0};
    assert_int_equal(ctl_lines_feed(&l, "{\"a\"", 4, on_line, &g), 0);
    assert_int_equal(g.n, 0);
    assert_int_equal(ctl_lines_feed(&l, ":1}\r\n\n{}\n{", 10, on_line, &g), 0);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.lines[0], "{\"a\":1}");
    assert_string_equal(g.lines[1], "");
    assert_string_equal(g.lines[2], "{}");
    assert_int_equal(ctl_lines_feed(&l, "}\n", 2, on_line, &g), 0);
    assert_string_equal(g.lines[3], "{}");
    ctl_lines_free(&l);
}

static void test_line_over_the_limit_is_reported_once_and_skipped(void **state)
{
    (void)state;
    struct ctl_lines l = {0};
    struct got g = {0};
    size_t big = CTL_LINE_MAX + 10;
    char *buf = malloc(big);
    memset(buf, 'x', big);
    /* in two pieces, the limit crossed in the first */
    assert_int_equal(ctl_lines_feed(&l, buf, big, on_line, &g), 0);
    assert_int_equal(ctl_lines_feed(&l, buf, 1000, on_line, &g), 0);
    assert_int_equal(g.too_long, 1);
    assert_int_equal(g.n, 0);
    assert_int_equal(ctl_lines_feed(&l, "\n{}\n", 4, on_line, &g), 0);
    assert_int_equal(g.too_long, 1);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.lines[0], "{}");
    /* a line of exactly the limit is taken */
    g = (struct got){0};
    buf[CTL_LINE_MAX] = '\n';
    assert_int_equal(ctl_lines_feed(&l, buf, CTL_LINE_MAX + 1, on_line, &g), 0);
    assert_int_equal(g.too_long, 0);
    assert_int_equal(g.n, 1);
    assert_true(l.cap <= CTL_LINE_MAX + 1);
    free(buf);
    ctl_lines_free(&l);
}

/* ---- requests ----------------------------------------------------------- */

static const struct {
    const char *line;
    int result;
    const char *cmd; /* on 0 */
    const char *err; /* on -EINVAL */
    bool has_id;
} reqs[] = {
    {"{\"id\":1,\"cmd\":\"status\"}", 0, "status", NULL, true},
    {" {\"cmd\":\"power\",\"id\":\"x\",\"state\":\"off\"}  ", 0, "power", NULL, true},
    {"{\"id\":1}", -EINVAL, NULL, "no \"cmd\" string", true},
    {"{\"id\":1,\"cmd\":\"\"}", -EINVAL, NULL, "no \"cmd\" string", true},
    {"{\"id\":1,\"cmd\":7}", -EINVAL, NULL, "no \"cmd\" string", true},
    {"{\"cmd\":\"status\"}", -EINVAL, NULL, "no \"id\"", false},
    {"{\"id\":[1],\"cmd\":\"status\"}", -EINVAL, NULL, "\"id\" is a number or a string", false},
    {"[1,2]", -EINVAL, NULL, "a request is a JSON object", false},
    {"{\"id\":1,\"cmd\":\"status\"} {}", -EINVAL, NULL, "not JSON", false},
    {"{\"id\":1,", -EINVAL, NULL, "not JSON", false},
    {"status", -EINVAL, NULL, "not JSON", false},
    {"", -EINVAL, NULL, "not JSON", false},
};

static void test_request_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct ctl_req r;
        const char *err = NULL;
        int rc = ctl_req_parse(reqs[i].line, strlen(reqs[i].line), &r, &err);
        if (rc != reqs[i].result)
            fail_msg("%s: %d", reqs[i].line, rc);
        if (rc == 0)
            assert_string_equal(r.cmd, reqs[i].cmd);
        else
            assert_string_equal(err, reqs[i].err);
        assert_int_equal(r.id != NULL, reqs[i].has_id);
        ctl_req_free(&r);
    }
}

static void test_request_with_a_nul_byte_is_refused(void **state)
{
    (void)state;
    const char line[] = "{\"id\":1,\"cmd\":\"status\"}\0x";
    struct ctl_req r;
    const char *err;
    assert_int_equal(ctl_req_parse(line, sizeof(line) - 1, &r, &err), -EINVAL);
    ctl_req_free(&r);
}

static void test_getters_are_typed(void **state)
{
    (void)state;
    const char *line = "{\"id\":1,\"cmd\":\"x\",\"s\":\"v\",\"b\":true,\"n\":4.5,\"z\":null}";
    struct ctl_req r;
    const char *err, *s;
    bool b;
    double n;
    assert_int_equal(ctl_req_parse(line, strlen(line), &r, &err), 0);
    assert_int_equal(ctl_req_str(&r, "s", &s), 0);
    assert_string_equal(s, "v");
    assert_int_equal(ctl_req_str(&r, "b", &s), -EINVAL);
    assert_int_equal(ctl_req_str(&r, "none", &s), -ENOENT);
    assert_int_equal(ctl_req_str(&r, "z", &s), -ENOENT);
    assert_int_equal(ctl_req_bool(&r, "b", &b), 0);
    assert_true(b);
    assert_int_equal(ctl_req_bool(&r, "n", &b), -EINVAL);
    assert_int_equal(ctl_req_num(&r, "n", &n), 0);
    assert_true(n == 4.5);
    assert_int_equal(ctl_req_num(&r, "s", &n), -EINVAL);
    ctl_req_free(&r);
}

static void test_answers_echo_the_id(void **state)
{
    (void)state;
    const char *line = "{\"id\":\"abc\",\"cmd\":\"x\"}";
    struct ctl_req r;
    const char *err;
    assert_int_equal(ctl_req_parse(line, strlen(line), &r, &err), 0);
    char *out;
    size_t len;
    assert_int_equal(ctl_error_line(r.id, "nope", &out, &len), 0);
    assert_string_equal(out, "{\"id\":\"abc\",\"ok\":false,\"error\":\"nope\"}\n");
    assert_int_equal(len, strlen(out));
    free(out);
    cJSON *a = ctl_answer_new(r.id, true);
    cJSON_AddNumberToObject(a, "v", 1);
    assert_int_equal(ctl_json_line(a, &out, &len), 0);
    assert_string_equal(out, "{\"id\":\"abc\",\"ok\":true,\"v\":1}\n");
    free(out);
    assert_int_equal(ctl_error_line(NULL, "bad", &out, &len), 0);
    assert_string_equal(out, "{\"id\":null,\"ok\":false,\"error\":\"bad\"}\n");
    free(out);
    ctl_req_free(&r);
}

/* ---- faults ------------------------------------------------------------ */

static const struct {
    const char *spec;
    int result;
    enum ctl_fault_id id;
    double value;
} specs[] = {
    {"dns.fail", 0, CTL_FAULT_DNS_FAIL, 0},
    {"http.status=404", 0, CTL_FAULT_HTTP_STATUS, 404},
    {"download.stall_at=40%", 0, CTL_FAULT_DL_STALL_AT, 40},
    {"update.power_cut_at=100", 0, CTL_FAULT_UPDATE_POWER_CUT_AT, 100},
    {"urc.delay=250", 0, CTL_FAULT_URC_DELAY, 250},
    {"uart.drop=0.25", 0, CTL_FAULT_UART_DROP, 0.25},
    {"dns.fail=1", -EINVAL, 0, 0},
    {"http.status", -EINVAL, 0, 0},
    {"http.status=", -EINVAL, 0, 0},
    {"http.status=99", -EINVAL, 0, 0},
    {"http.status=600", -EINVAL, 0, 0},
    {"http.status=404.5", -EINVAL, 0, 0},
    {"download.drop_at=101", -EINVAL, 0, 0},
    {"download.drop_at=-1", -EINVAL, 0, 0},
    {"urc.delay=0", -EINVAL, 0, 0},
    {"uart.drop=1.5", -EINVAL, 0, 0},
    {"uart.drop=nan", -EINVAL, 0, 0},
    {"dns", -EINVAL, 0, 0},
    {"dns.failx", -EINVAL, 0, 0},
    {"", -EINVAL, 0, 0},
};

static void test_fault_spec_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        enum ctl_fault_id id;
        double v;
        const char *err = NULL;
        int rc = ctl_fault_parse(specs[i].spec, &id, &v, &err);
        if (rc != specs[i].result)
            fail_msg("%s: %d", specs[i].spec, rc);
        if (rc == 0) {
            assert_int_equal(id, specs[i].id);
            assert_true(v == specs[i].value);
        } else {
            assert_non_null(err);
        }
    }
    /* every name of the table parses back to itself */
    for (int i = 0; i < CTL_FAULT_COUNT; i++)
        assert_int_equal(ctl_fault_find(ctl_fault_name((enum ctl_fault_id)i)), i);
}

struct fx {
    int fired[CTL_FAULT_COUNT];
    int cuts;
};

static void fired(void *ud, enum ctl_fault_id id, double value)
{
    (void)value;
    ((struct fx *)ud)->fired[id]++;
}

static void cut(void *ud)
{
    ((struct fx *)ud)->cuts++;
}

static const struct ctl_fault_actions actions = {fired, cut};

static void test_a_fault_fires_once_unless_sticky(void **state)
{
    (void)state;
    struct fx x = {0};
    struct ctl_faults t;
    ctl_faults_init(&t, &actions, &x, 1000);
    assert_false(ctl_faults_take(&t, CTL_FAULT_DNS_FAIL, NULL));
    ctl_faults_arm(&t, CTL_FAULT_DNS_FAIL, 0, false);
    assert_true(ctl_faults_take(&t, CTL_FAULT_DNS_FAIL, NULL));
    assert_false(ctl_faults_take(&t, CTL_FAULT_DNS_FAIL, NULL));
    assert_int_equal(x.fired[CTL_FAULT_DNS_FAIL], 1);
    ctl_faults_arm(&t, CTL_FAULT_DNS_FAIL, 0, true);
    for (int i = 0; i < 3; i++)
        assert_true(ctl_faults_take(&t, CTL_FAULT_DNS_FAIL, NULL));
    assert_int_equal(t.f[CTL_FAULT_DNS_FAIL].fired, 3);
    ctl_faults_clear(&t, CTL_FAULT_DNS_FAIL);
    assert_false(ctl_faults_take(&t, CTL_FAULT_DNS_FAIL, NULL));
    ctl_faults_arm(&t, CTL_FAULT_SLOT_FULL, 0, true);
    ctl_faults_arm(&t, CTL_FAULT_TCP_REFUSE, 0, true);
    ctl_faults_clear_all(&t);
    assert_false(ctl_faults_take(&t, CTL_FAULT_SLOT_FULL, NULL));
    assert_false(ctl_faults_take(&t, CTL_FAULT_TCP_REFUSE, NULL));
}

static void test_a_percent_fault_waits_for_its_percent(void **state)
{
    (void)state;
    struct fx x = {0};
    struct ctl_faults t;
    ctl_faults_init(&t, &actions, &x, 1000);
    ctl_faults_arm(&t, CTL_FAULT_UPDATE_FAIL_AT, 40, false);
    const struct fota_fault_ops *job = &ctl_fault_ops.job;
    /* 10 blocks: block k is written once k * 10 % have been reported */
    for (uint32_t k = 0; k < 4; k++)
        assert_int_equal(job->update_block(&t, k, 10), 0);
    assert_int_equal(job->update_block(&t, 4, 10), -EIO);
    assert_int_equal(job->update_block(&t, 5, 10), 0); /* once */
    ctl_faults_arm(&t, CTL_FAULT_UPDATE_POWER_CUT_AT, 50, false);
    assert_int_equal(job->update_block(&t, 4, 10), 0);
    assert_int_equal(x.cuts, 0);
    assert_int_equal(job->update_block(&t, 5, 10), 0); /* the write goes on; the cut comes after */
    assert_int_equal(x.cuts, 1);
    assert_int_equal(job->update_block(&t, 6, 10), 0);
    assert_int_equal(x.cuts, 1);
}

static void test_download_faults_give_table_3_codes(void **state)
{
    (void)state;
    struct fx x = {0};
    struct ctl_faults t;
    ctl_faults_init(&t, &actions, &x, 1234);
    struct net_url http = {.scheme = NET_HTTP}, https = {.scheme = NET_HTTPS};
    const struct modem_fault_ops *o = &ctl_fault_ops;
    assert_int_equal(o->dl_start(&t, &http), 0);
    static const struct {
        enum ctl_fault_id id;
        double value;
        int code;
    } cases[] = {
        {CTL_FAULT_DNS_FAIL, 0, FOTA_DL_CONNECT},
        {CTL_FAULT_TCP_REFUSE, 0, FOTA_DL_CONNECT},
        {CTL_FAULT_NET_START, 0, FOTA_DL_UNKNOWN},
        {CTL_FAULT_HTTP_STATUS, 404, FOTA_DL_NOT_FOUND},
        {CTL_FAULT_HTTP_STATUS, 410, FOTA_DL_NOT_FOUND},
        {CTL_FAULT_HTTP_STATUS, 500, FOTA_DL_REQUEST},
        {CTL_FAULT_HTTP_STATUS, 301, FOTA_DL_REQUEST},
        {CTL_FAULT_HTTP_STATUS, 200, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ctl_faults_arm(&t, cases[i].id, cases[i].value, false);
        assert_int_equal(o->dl_start(&t, &http), cases[i].code);
        assert_int_equal(o->dl_start(&t, &http), 0);
    }
    /* a TLS fault waits for an https download */
    ctl_faults_arm(&t, CTL_FAULT_TLS_HANDSHAKE, 0, false);
    assert_int_equal(o->dl_start(&t, &http), 0);
    assert_int_equal(o->dl_start(&t, &https), FOTA_DL_CONNECT);
    /* the body: a drop at once, a stall after the stall timeout */
    uint32_t silence = 0;
    ctl_faults_arm(&t, CTL_FAULT_DL_DROP_AT, 50, false);
    assert_int_equal(o->dl_data(&t, 499, 1000, &silence), 0);
    assert_int_equal(o->dl_data(&t, 500, 1000, &silence), FOTA_DL_TIMEOUT);
    assert_int_equal(silence, 0);
    ctl_faults_arm(&t, CTL_FAULT_DL_STALL_AT, 10, false);
    assert_int_equal(o->dl_data(&t, 100, 0, &silence), 0); /* no length: no percent */
    assert_int_equal(o->dl_data(&t, 100, 1000, &silence), FOTA_DL_TIMEOUT);
    assert_int_equal(silence, 1234);
}

static void test_slot_faults(void **state)
{
    (void)state;
    struct ctl_faults t;
    ctl_faults_init(&t, NULL, NULL, 1000);
    const struct fota_fault_ops *job = &ctl_fault_ops.job;
    size_t flip = SIZE_MAX;
    assert_int_equal(job->slot_room(&t, 7000), 7000);
    ctl_faults_arm(&t, CTL_FAULT_SLOT_FULL, 0, false);
    assert_int_equal(job->slot_room(&t, 7000), 0);
    assert_int_equal(job->slot_room(&t, 7000), 7000);
    ctl_faults_arm(&t, CTL_FAULT_SLOT_WRITE_FAIL, 0, false);
    assert_int_equal(job->slot_write(&t, 0, 10, &flip), -EIO);
    assert_int_equal(job->slot_write(&t, 0, 10, &flip), 0);
    assert_true(flip == SIZE_MAX);
    /* corruption waits for a chunk past the package's magic */
    ctl_faults_arm(&t, CTL_FAULT_PACKAGE_CORRUPT, 0, false);
    assert_int_equal(job->slot_write(&t, 0, 64, &flip), 0);
    assert_true(flip == SIZE_MAX);
    assert_int_equal(job->slot_write(&t, 64 - 4, 100, &flip), 0);
    assert_int_equal(flip, 4);
    flip = SIZE_MAX;
    assert_int_equal(job->slot_write(&t, 200, 100, &flip), 0);
    assert_true(flip == SIZE_MAX);
    ctl_faults_arm(&t, CTL_FAULT_UPDATE_UNKNOWN, 0, false);
    assert_int_equal(job->update_start(&t), FOTA_UNKNOWN);
    assert_int_equal(job->update_start(&t), 0);
}

static void test_urc_delay_and_uart_drop(void **state)
{
    (void)state;
    struct ctl_faults t;
    ctl_faults_init(&t, NULL, NULL, 1000);
    const struct modem_fault_ops *o = &ctl_fault_ops;
    assert_int_equal(o->urc_delay(&t, "RDY"), 0);
    ctl_faults_arm(&t, CTL_FAULT_URC_DELAY, 300, false);
    assert_int_equal(o->urc_delay(&t, "RDY"), 300);
    assert_int_equal(o->urc_delay(&t, "RDY"), 0);
    uint8_t in[1000], out[1000];
    memset(in, 'a', sizeof(in));
    assert_int_equal(o->uart_out(&t, in, sizeof(in), out), sizeof(in));
    ctl_faults_arm(&t, CTL_FAULT_UART_DROP, 1, true);
    assert_int_equal(o->uart_out(&t, in, sizeof(in), out), 0);
    ctl_faults_arm(&t, CTL_FAULT_UART_DROP, 0.5, false);
    size_t n = o->uart_out(&t, in, sizeof(in), out);
    assert_true(n > 400 && n < 600);
    assert_int_equal(o->uart_out(&t, in, sizeof(in), out), sizeof(in)); /* once */
    /* deterministic: the same table state loses the same bytes */
    struct ctl_faults a, b;
    ctl_faults_init(&a, NULL, NULL, 0);
    ctl_faults_init(&b, NULL, NULL, 0);
    ctl_faults_arm(&a, CTL_FAULT_UART_DROP, 0.3, false);
    ctl_faults_arm(&b, CTL_FAULT_UART_DROP, 0.3, false);
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    uint8_t out2[1000];
    size_t na = o->uart_out(&a, in, sizeof(in), out), nb = o->uart_out(&b, in, sizeof(in), out2);
    assert_int_equal(na, nb);
    assert_memory_equal(out, out2, na);
}

/* ---- the socket's path ---------------------------------------------------- */

static void closed(void *arg)
{
    (*(int *)arg)++;
}

static void test_socket_path_rules(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_ctl_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/c.sock", dir);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct ctl *c;
    int n = 0;

    /* a regular file there is refused and kept */
    FILE *f = fopen(path, "w");
    fclose(f);
    assert_int_equal(ctl_new(&loop, &(struct ctl_cfg){.path = path}, &c), -EEXIST);
    assert_int_equal(access(path, F_OK), 0);
    unlink(path);

    /* a stale socket (bound, nobody listening) is replaced */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    assert_int_equal(ctl_new(&loop, &(struct ctl_cfg){.path = path}, &c), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);

    /* a live one is refused */
    struct ctl *c2;
    assert_int_equal(ctl_new(&loop, &(struct ctl_cfg){.path = path}, &c2), -EADDRINUSE);
    uv_run(&loop, UV_RUN_NOWAIT);

    ctl_close(c, closed, &n);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(n, 1);
    assert_int_equal(access(path, F_OK), -1); /* removed at the close */
    assert_int_equal(uv_loop_close(&loop), 0);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_split_across_chunks_and_strip_cr),
        cmocka_unit_test(test_line_over_the_limit_is_reported_once_and_skipped),
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_request_with_a_nul_byte_is_refused),
        cmocka_unit_test(test_getters_are_typed),
        cmocka_unit_test(test_answers_echo_the_id),
        cmocka_unit_test(test_fault_spec_table),
        cmocka_unit_test(test_a_fault_fires_once_unless_sticky),
        cmocka_unit_test(test_a_percent_fault_waits_for_its_percent),
        cmocka_unit_test(test_download_faults_give_table_3_codes),
        cmocka_unit_test(test_slot_faults),
        cmocka_unit_test(test_urc_delay_and_uart_drop),
        cmocka_unit_test(test_socket_path_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
