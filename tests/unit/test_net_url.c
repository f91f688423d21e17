/* Unit tests of the URL parser of the net layer: a table of good URLs with
 * what they parse to, a table of bad ones, and Location resolution. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dfota/net.h"

struct good {
    const char *url;
    enum net_scheme scheme;
    const char *host;
    bool ipv6;
    uint16_t port;
    const char *path;
};

static const struct good goods[] = {
    {"http://example.com/fw.bin", NET_HTTP, "example.com", false, 80, "/fw.bin"},
    {"HTTP://example.com/fw.bin", NET_HTTP, "example.com", false, 80, "/fw.bin"},
    {"hTTps://Example.COM/a/b", NET_HTTPS, "Example.COM", false, 443, "/a/b"},
    {"coap://h", NET_COAP, "h", false, 5683, "/"},
    {"COAPS://h:1/x", NET_COAPS, "h", false, 1, "/x"},
    {"http://example.com", NET_HTTP, "example.com", false, 80, "/"},
    {"http://example.com:8080", NET_HTTP, "example.com", false, 8080, "/"},
    {"http://example.com:65535/", NET_HTTP, "example.com", false, 65535, "/"},
    {"http://example.com:00080/", NET_HTTP, "example.com", false, 80, "/"},
    {"http://10.0.0.1/p", NET_HTTP, "10.0.0.1", false, 80, "/p"},
    {"http://10.0.0.1:81/p", NET_HTTP, "10.0.0.1", false, 81, "/p"},
    {"http://[::1]/p", NET_HTTP, "::1", true, 80, "/p"},
    {"https://[2001:db8::1]:8443/p?q=1", NET_HTTPS, "2001:db8::1", true, 8443, "/p?q=1"},
    {"http://h/p?a=1&b=%20x", NET_HTTP, "h", false, 80, "/p?a=1&b=%20x"},
    {"http://h?a=1", NET_HTTP, "h", false, 80, "/?a=1"},
    {"http://h/p#frag", NET_HTTP, "h", false, 80, "/p"},
    {"http://h/p?q#frag", NET_HTTP, "h", false, 80, "/p?q"},
    {"http://h#frag", NET_HTTP, "h", false, 80, "/"},
    {"http://my-host_1.example./x", NET_HTTP, "my-host_1.example.", false, 80, "/x"},
    {"http://h/a//b/../c", NET_HTTP, "h", false, 80, "/a//b/../c"}, /* byte for byte */
};

static const char *const bads[] = {
    "",
    "ftp://h/",
    "http:/h/",
    "http://",
    "http:///p",
    "http://:80/p",
    "http://h:0/",
    "http://h:70000/",
    "http://h:65536/",
    "http://h:abc/",
    "http://h:/",
    "http://h:8a/",
    "http://h:123456/",
    "http://h:80:81/",
    "http://h p/",
    "http://h/p q",
    "http://h/p\tq",
    "http://h/p\x7f",
    "http://h/p\r\n",
    "http://user@h/",
    "http://user:pw@h/",
    "http://[::1/",
    "http://[]/",
    "http://[::g]/",
    "http://[::1]x/",
    "http://[::1]:/",
    "http://[fe80::1%25eth0]/",
    "http://1.2.3.256/",
    "http://1.2.3.4.5/",
    "http://h..example/",
    "http://.h/",
    "http://h!/",
};

static void test_good_urls_parse_to_their_parts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        struct net_url u;
        const struct good *g = &goods[i];
        if (net_url_parse(g->url, &u) != 0)
            fail_msg("%s does not parse", g->url);
        assert_int_equal(u.scheme, g->scheme);
        assert_string_equal(u.host, g->host);
        assert_int_equal(u.ipv6, g->ipv6);
        assert_int_equal(u.port, g->port);
        assert_string_equal(u.path, g->path);
    }
}

static void test_bad_urls_are_einval(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct net_url u;
        int rc = net_url_parse(bads[i], &u);
        if (rc != -EINVAL)
            fail_msg("\"%s\" gives %d", bads[i], rc);
    }
    assert_int_equal(net_url_parse(NULL, NULL), -EINVAL);
}

static void test_url_length_limit_is_700_bytes(void **state)
{
    (void)state;
    char url[NET_URL_MAX + 2];
    struct net_url u;
    strcpy(url, "http://h/");
    memset(url + 9, 'a', NET_URL_MAX - 9);
    url[NET_URL_MAX] = '\0';
    assert_int_equal(net_url_parse(url, &u), 0);
    assert_int_equal(strlen(u.path), NET_URL_MAX - 8);
    url[NET_URL_MAX] = 'a';
    url[NET_URL_MAX + 1] = '\0';
    assert_int_equal(net_url_parse(url, &u), -EINVAL);
    /* a host beyond 255 bytes */
    char big[NET_URL_MAX + 1];
    strcpy(big, "http://");
    memset(big + 7, 'h', 256);
    strcpy(big + 7 + 256, "/");
    assert_int_equal(net_url_parse(big, &u), -EINVAL);
}

static void test_scheme_is_the_prefix_in_any_case(void **state)
{
    (void)state;
    enum net_scheme s;
    assert_int_equal(net_url_scheme("HtTp://x", &s), 0);
    assert_int_equal(s, NET_HTTP);
    assert_int_equal(net_url_scheme("https://", &s), 0);
    assert_int_equal(s, NET_HTTPS);
    assert_int_equal(net_url_scheme("coap://", &s), 0);
    assert_int_equal(s, NET_COAP);
    assert_int_equal(net_url_scheme("CoApS://x y", &s), 0); /* prefix only */
    assert_int_equal(s, NET_COAPS);
    assert_int_equal(net_url_scheme("http:/x", &s), -EINVAL);
    assert_int_equal(net_url_scheme("ftp://x", &s), -EINVAL);
    assert_int_equal(net_url_scheme("", &s), -EINVAL);
    assert_int_equal(net_url_scheme(NULL, &s), -EINVAL);
}

struct res {
    const char *base, *ref;
    const char *want; /* "scheme-id host port path", NULL: -EINVAL */
};

static const struct res resolves[] = {
    {"http://a.example/d1/d2/f?x", "http://b.example/g", "0 b.example 80 /g"},
    {"http://a.example/d1/f", "HTTPS://b.example:8443/g?q#f", "1 b.example 8443 /g?q"},
    {"https://a.example/d1/f", "http://b.example/g", "0 b.example 80 /g"},
    {"http://a.example:81/d1/f", "//c.example/h", "0 c.example 80 /h"},
    {"https://a.example/d1/f", "//c.example:9/h?q", "1 c.example 9 /h?q"},
    {"http://a.example:81/d1/f", "/abs/p?q=1", "0 a.example 81 /abs/p?q=1"},
    {"http://a.example/d1/d2/f?x", "g", "0 a.example 80 /d1/d2/g"},
    {"http://a.example/d1/d2/f?x", "g?y=2", "0 a.example 80 /d1/d2/g?y=2"},
    {"http://a.example/d1/d2/", "g", "0 a.example 80 /d1/d2/g"},
    {"http://a.example/d1/d2/f", "../g", "0 a.example 80 /d1/g"},
    {"http://a.example/d1/d2/f", "./g", "0 a.example 80 /d1/d2/g"},
    {"http://a.example/d1/d2/f", "../../../g", "0 a.example 80 /g"},
    {"http://a.example/d1/d2/f", "/a/./b/../c", "0 a.example 80 /a/c"},
    {"http://a.example/d1/f?x", "?y", "0 a.example 80 /d1/f?y"},
    {"http://a.example/d1/f?x", "#frag", "0 a.example 80 /d1/f?x"},
    {"http://[::1]:8080/d/f", "g", "0 ::1 8080 /d/g"},
    {"http://a.example/", "g#frag", "0 a.example 80 /g"},
    {"http://a.example/f", "coap://b.example/g", NULL},
    {"http://a.example/f", "ftp://b.example/g", NULL},
    {"http://a.example/f", "mailto:x@y", NULL},
    {"http://a.example/f", "", NULL},
    {"http://a.example/f", "/p q", NULL},
    {"http://a.example/f", "http://b.example:0/", NULL},
    {"http://a.example/f", "//user@b.example/", NULL},
    {"http://a.example/f", "/p\r\nX: y", NULL},
    {"coap://a.example/f", "coaps://b.example/g", "3 b.example 5684 /g"},
};

static void test_location_resolves_against_the_base(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(resolves) / sizeof(resolves[0]); i++) {
        const struct res *r = &resolves[i];
        struct net_url base, out;
        assert_int_equal(net_url_parse(r->base, &base), 0);
        int rc = net_url_resolve(&base, r->ref, &out);
        if (!r->want) {
            if (rc != -EINVAL)
                fail_msg("%s + %s gives %d", r->base, r->ref, rc);
            continue;
        }
        if (rc != 0)
            fail_msg("%s + %s gives %d", r->base, r->ref, rc);
        char got[2 * NET_URL_MAX];
        snprintf(got, sizeof(got), "%d %s %u %s", (int)out.scheme, out.host, out.port, out.path);
        if (strcmp(got, r->want) != 0)
            fail_msg("%s + %s: got \"%s\", want \"%s\"", r->base, r->ref, got, r->want);
    }
}

static void test_resolve_keeps_the_700_byte_limit(void **state)
{
    (void)state;
    struct net_url base, out;
    char ref[NET_URL_MAX + 2];
    assert_int_equal(net_url_parse("http://h/dir/f", &base), 0);
    memset(ref, 'a', NET_URL_MAX + 1);
    ref[NET_URL_MAX + 1] = '\0';
    assert_int_equal(net_url_resolve(&base, ref, &out), -EINVAL);
    ref[NET_URL_MAX - 5] = '\0'; /* "/dir/" + 695 bytes = 700 */
    assert_int_equal(net_url_resolve(&base, ref, &out), 0);
    assert_int_equal(strlen(out.path), NET_URL_MAX);
    ref[NET_URL_MAX - 5] = 'a';
    ref[NET_URL_MAX - 4] = '\0';
    assert_int_equal(net_url_resolve(&base, ref, &out), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls_parse_to_their_parts),
        cmocka_unit_test(test_bad_urls_are_einval),
        cmocka_unit_test(test_url_length_limit_is_700_bytes),
        cmocka_unit_test(test_scheme_is_the_prefix_in_any_case),
        cmocka_unit_test(test_location_resolves_against_the_base),
        cmocka_unit_test(test_resolve_keeps_the_700_byte_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
