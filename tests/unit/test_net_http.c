/* Unit tests of the HTTP download (src/net/net_http.c) against a canned
 * server on 127.0.0.1 in the same loop (a uv_tcp_t listener that writes
 * one fixed answer per connection), on the test clock: bodies by
 * Content-Length, chunked and read to the close, the status codes, a
 * redirect, a short body and a stall. The e2e suite runs the real nginx. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dfota/fota.h"
#include "dfota/net.h"

struct server {
    uv_tcp_t listen;
    uv_tcp_t peer[8];
    unsigned npeer;
    const char *answers[8]; /* one per connection, in order */
    bool hold;              /* keep the connection open after the answer */
    uv_write_t w[8];
    char req[8][1024];
    size_t req_len[8];
};

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct server srv;
    int port;
    struct net_http *h;
    uint64_t size;
    char body[8192];
    size_t body_len;
    int end; /* -1 until on_end */
    bool freed;
};

static void on_srv_read_alloc(uv_handle_t *hd, size_t n, uv_buf_t *b)
{
    (void)n;
    struct server *s = hd->data;
    unsigned i = (unsigned)((uv_tcp_t *)hd - s->peer);
    *b = uv_buf_init(s->req[i] + s->req_len[i], (unsigned)(sizeof(s->req[i]) - 1 - s->req_len[i]));
}

static void on_srv_written(uv_write_t *w, int status)
{
    (void)status;
    struct server *s = w->data;
    unsigned i = (unsigned)(w - s->w);
    if (!s->hold)
        uv_close((uv_handle_t *)&s->peer[i], NULL);
}

static void on_srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct server *s = st->data;
    unsigned i = (unsigned)((uv_tcp_t *)st - s->peer);
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)st))
            uv_close((uv_handle_t *)st, NULL);
        return;
    }
    s->req_len[i] += (size_t)n;
    s->req[i][s->req_len[i]] = '\0';
    if (!strstr(s->req[i], "\r\n\r\n"))
        return;
    uv_read_stop(st);
    uv_buf_t out = uv_buf_init((char *)s->answers[i], (unsigned)strlen(s->answers[i]));
    s->w[i].data = s;
    assert_int_equal(uv_write(&s->w[i], st, &out, 1, on_srv_written), 0);
}

static void on_conn(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    struct server *s = l->data;
    assert_true(s->npeer < 8);
    uv_tcp_t *p = &s->peer[s->npeer++];
    uv_tcp_init(l->loop, p);
    p->data = s;
    assert_int_equal(uv_accept(l, (uv_stream_t *)p), 0);
    uv_read_start((uv_stream_t *)p, on_srv_read_alloc, on_srv_read);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->clk = dclock_new_test(&f->loop);
    uv_tcp_init(&f->loop, &f->srv.listen);
    f->srv.listen.data = &f->srv;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&f->srv.listen, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->srv.listen, 4, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof(got);
    uv_tcp_getsockname(&f->srv.listen, (struct sockaddr *)&got, &len);
    f->port = ntohs(got.sin_port);
    f->end = -1;
    *state = f;
    return 0;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_freed(void *arg)
{
    ((struct fx *)arg)->freed = true;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->h)
        net_http_close(f->h, on_freed, f);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    dclock_close(f->clk, NULL, NULL);
    uv_walk(&f->loop, walk_close, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(!f->h || f->freed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static int on_size(void *ud, uint64_t size)
{
    ((struct fx *)ud)->size = size;
    return 0;
}

static int on_data(void *ud, const uint8_t *buf, size_t len)
{
    struct fx *f = ud;
    assert_true(f->body_len + len < sizeof(f->body));
    memcpy(f->body + f->body_len, buf, len);
    f->body_len += len;
    return 0;
}

static void on_end(void *ud, int err)
{
    ((struct fx *)ud)->end = err;
}

static const struct net_dl_ops ops = {on_size, on_data, on_end};

/* Starts a download of @p path and runs the loop until it ends (the test
 * clock advanced by @p advance_ms once the loop is idle, for timeouts). */
static int download(struct fx *f, const char *path, uint64_t advance_ms)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", f->port, path);
    struct net_url u;
    assert_int_equal(net_url_parse(url, &u), 0);
    struct net_http_cfg cfg = {.loop = &f->loop, .clock = f->clk, .stall_timeout_ms = 1000};
    assert_int_equal(net_http_start(&cfg, &ops, f, &u, &f->h), 0);
    dclock_test_advance(f->clk, 0); /* the start's latency timer */
    for (int turns = 0; f->end < 0 && turns < 200000; turns++) {
        if (uv_run(&f->loop, UV_RUN_NOWAIT) == 0 || turns % 50 == 49)
            dclock_test_advance(f->clk, advance_ms);
    }
    return f->end;
}

static void test_content_length_body_arrives_whole(void **state)
{
    struct fx *f = *state;
    f->srv.answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    assert_int_equal(download(f, "/pkg?x=1", 0), 0);
    assert_int_equal(f->size, 5);
    assert_int_equal(f->body_len, 5);
    assert_memory_equal(f->body, "hello", 5);
    /* the request as the module sends it: path and query kept, Host with the port */
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", f->port);
    assert_non_null(strstr(f->srv.req[0], "GET /pkg?x=1 HTTP/1.1\r\n"));
    assert_non_null(strstr(f->srv.req[0], host));
    assert_non_null(strstr(f->srv.req[0], "\r\nUser-Agent: "));
}

static void test_chunked_body_has_no_size(void **state)
{
    struct fx *f = *state;
    f->srv.answers[0] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_int_equal(download(f, "/c", 0), 0);
    assert_int_equal(f->size, 0);
    assert_int_equal(f->body_len, 5);
    assert_memory_equal(f->body, "abcde", 5);
}

static void test_body_read_to_the_close(void **state)
{
    struct fx *f = *state;
    f->srv.answers[0] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end";
    assert_int_equal(download(f, "/r", 0), 0);
    assert_int_equal(f->body_len, strlen("until the end"));
}

static void test_status_codes_map_to_table_3(void **state)
{
    static const struct {
        const char *answer;
        int code;
    } cases[] = {
        {"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", FOTA_DL_NOT_FOUND},
        {"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n", FOTA_DL_NOT_FOUND},
        {"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", FOTA_DL_REQUEST},
        {"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n", FOTA_DL_REQUEST}, /* no Location */
        {"garbage\r\n\r\n", FOTA_DL_REQUEST},
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", FOTA_DL_TIMEOUT},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc", FOTA_DL_TIMEOUT},
    };
    struct fx *f = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        f->end = -1;
        f->body_len = 0;
        f->srv.answers[i] = cases[i].answer; /* connection i */
        int got = download(f, "/s", 0);
        net_http_close(f->h, NULL, NULL);
        f->h = NULL;
        if (got != cases[i].code)
            fail_msg("case %zu: %d, want %d", i, got, cases[i].code);
    }
}

static void test_relative_redirect_is_followed(void **state)
{
    struct fx *f = *state;
    f->srv.answers[0] = "HTTP/1.1 302 Found\r\nLocation: next?y\r\nContent-Length: 0\r\n\r\n";
    f->srv.answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(download(f, "/dir/first", 0), 0);
    assert_int_equal(f->srv.npeer, 2);
    assert_non_null(strstr(f->srv.req[1], "GET /dir/next?y HTTP/1.1\r\n"));
    assert_memory_equal(f->body, "ok", 2);
}

static void test_a_stall_ends_with_704_on_the_test_clock(void **state)
{
    struct fx *f = *state;
    f->srv.hold = true;
    f->srv.answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart";
    assert_int_equal(download(f, "/slow", 250), FOTA_DL_TIMEOUT);
    assert_int_equal(f->body_len, 4);
}

static void test_refused_connection_is_702(void **state)
{
    struct fx *f = *state;
    uv_close((uv_handle_t *)&f->srv.listen, NULL); /* nobody listens on the port now */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(download(f, "/x", 0), FOTA_DL_CONNECT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_content_length_body_arrives_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_body_has_no_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_read_to_the_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_codes_map_to_table_3, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_redirect_is_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_stall_ends_with_704_on_the_test_clock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_connection_is_702, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
