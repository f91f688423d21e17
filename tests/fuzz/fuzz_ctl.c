/* fuzz_ctl.c - libFuzzer target of the control socket's request parsing
 * (STYLE.md 14): arbitrary bytes go through the line assembler
 * (ctl_lines_feed(), in chunks whose sizes the input's first byte picks),
 * each line through the request parser, the typed getters of every member
 * a command reads, the fault spec parser when a "spec" is there, and the
 * answer a server would write (ctl_error_line() / ctl_json_line()). The
 * assembler must stay bounded (CTL_LINE_MAX) and nothing may leak.
 *
 *   CC=clang cmake -S . -B build-fuzz -DDFOTA_FUZZ=ON && cmake --build build-fuzz
 *   mkdir -p /tmp/fuzz_ctl && build-fuzz/fuzz_ctl -max_total_time=60 \
 *       -artifact_prefix=/tmp/fuzz_ctl/ /tmp/fuzz_ctl tests/fuzz/corpus/fuzz_ctl
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl_int.h"

static void on_line(void *ud, const char *text, size_t len, bool too_long)
{
    struct ctl_lines *l = ud;
    if (l->cap > CTL_LINE_MAX + 1)
        abort(); /* the assembler outgrew its bound */
    char *out;
    size_t n;
    if (too_long) {
        if (ctl_error_line(NULL, "line too long", &out, &n) == 0)
            free(out);
        return;
    }
    struct ctl_req r;
    const char *err = NULL;
    if (ctl_req_parse(text, len, &r, &err) != 0) {
        if (!err)
            abort(); /* every refusal says why */
        if (ctl_error_line(r.id, err, &out, &n) == 0)
            free(out);
        ctl_req_free(&r);
        return;
    }
    static const char *const names[] = {"state",    "on",        "registration", "csq",
                                        "operator", "link_rate", "latency_ms",   "op",
                                        "spec",     "sticky",    "modem"};
    const char *s;
    bool b;
    double d;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        (void)ctl_req_str(&r, names[i], &s);
        (void)ctl_req_bool(&r, names[i], &b);
        (void)ctl_req_num(&r, names[i], &d);
    }
    if (ctl_req_str(&r, "spec", &s) == 0) {
        enum ctl_fault_id id;
        if (ctl_fault_parse(s, &id, &d, &err) == 0 && (id < 0 || id >= CTL_FAULT_COUNT))
            abort();
        (void)ctl_fault_find(s);
    }
    cJSON *a = ctl_answer_new(r.id, true);
    if (a) {
        cJSON_AddStringToObject(a, "cmd", r.cmd);
        if (ctl_json_line(a, &out, &n) == 0)
            free(out);
    }
    ctl_req_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    size_t chunk = (size_t)data[0] * 7 + 1;
    data++, size--;
    struct ctl_lines l = {0};
    while (size) {
        size_t n = size < chunk ? size : chunk;
        if (ctl_lines_feed(&l, (const char *)data, n, on_line, &l) != 0)
            break;
        data += n, size -= n;
    }
    ctl_lines_free(&l);
    return 0;
}
