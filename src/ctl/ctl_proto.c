/* ctl_proto.c - the control socket's protocol: one JSON object per line
 * each way (ctl_int.h). Bounded: a line longer than CTL_LINE_MAX is
 * dropped whole and answered with an error, never buffered. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_int.h"

/* ---- lines ------------------------------------------------------------- */

static int lines_append(struct ctl_lines *l, const char *p, size_t n)
{
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap ? l->cap : 256;
        while (cap < l->len + n + 1)
            cap *= 2;
        if (cap > CTL_LINE_MAX + 1)
            cap = CTL_LINE_MAX + 1;
        char *b = realloc(l->buf, cap);
        if (!b)
            return -ENOMEM;
        l->buf = b;
        l->cap = cap;
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
    return 0;
}

int ctl_lines_feed(struct ctl_lines *l, const char *buf, size_t len, ctl_line_cb cb, void *ud)
{
    while (len) {
        const char *nl = memchr(buf, '\n', len);
        size_t n = nl ? (size_t)(nl - buf) : len;
        if (!l->skipping && l->len + n > CTL_LINE_MAX) {
            l->skipping = true; /* told once, when it goes over */
            l->len = 0;
            cb(ud, NULL, 0, true);
        }
        if (!l->skipping && lines_append(l, buf, n) != 0) {
            l->len = 0;
            return -ENOMEM;
        }
        if (!nl)
            return 0;
        if (!l->skipping) {
            size_t ll = l->len;
            if (ll && l->buf[ll - 1] == '\r')
                ll--;
            if (!l->buf && lines_append(l, "", 0) != 0)
                return -ENOMEM;
            l->buf[ll] = '\0';
            l->len = 0;
            cb(ud, l->buf, ll, false);
        }
        l->skipping = false;
        l->len = 0;
        buf += n + 1;
        len -= n + 1;
    }
    return 0;
}

void ctl_lines_free(struct ctl_lines *l)
{
    free(l->buf);
    *l = (struct ctl_lines){0};
}

/* ---- requests ------------------------------------------------------------ */

int ctl_req_parse(const char *text, size_t len, struct ctl_req *out, const char **err)
{
    *out = (struct ctl_req){0};
    if (strlen(text) != len) {
        *err = "a NUL byte in the line";
        return -EINVAL;
    }
    /* the whole line is one value: nothing but blanks may follow it (its
     * NUL terminator is where cJSON checks that) */
    out->root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, true);
    if (!out->root) {
        *err = "not JSON";
        return -EINVAL;
    }
    if (!cJSON_IsObject(out->root)) {
        *err = "a request is a JSON object";
        return -EINVAL;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(out->root, "id");
    if (id && (cJSON_IsNumber(id) || cJSON_IsString(id)))
        out->id = id;
    else if (id) {
        *err = "\"id\" is a number or a string";
        return -EINVAL;
    } else {
        *err = "no \"id\"";
        return -EINVAL;
    }
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(out->root, "cmd");
    if (!cJSON_IsString(cmd) || !cmd->valuestring[0]) {
        *err = "no \"cmd\" string";
        return -EINVAL;
    }
    out->cmd = cmd->valuestring;
    return 0;
}

void ctl_req_free(struct ctl_req *r)
{
    cJSON_Delete(r->root);
    *r = (struct ctl_req){0};
}

static const cJSON *member(const struct ctl_req *r, const char *name)
{
    return r->root ? cJSON_GetObjectItemCaseSensitive(r->root, name) : NULL;
}

int ctl_req_str(const struct ctl_req *r, const char *name, const char **out)
{
    const cJSON *v = member(r, name);
    if (!v || cJSON_IsNull(v))
        return -ENOENT;
    if (!cJSON_IsString(v))
        return -EINVAL;
    *out = v->valuestring;
    return 0;
}

int ctl_req_bool(const struct ctl_req *r, const char *name, bool *out)
{
    const cJSON *v = member(r, name);
    if (!v || cJSON_IsNull(v))
        return -ENOENT;
    if (!cJSON_IsBool(v))
        return -EINVAL;
    *out = cJSON_IsTrue(v);
    return 0;
}

int ctl_req_num(const struct ctl_req *r, const char *name, double *out)
{
    const cJSON *v = member(r, name);
    if (!v || cJSON_IsNull(v))
        return -ENOENT;
    if (!cJSON_IsNumber(v))
        return -EINVAL;
    *out = v->valuedouble;
    return 0;
}

/* ---- answers ------------------------------------------------------------- */

cJSON *ctl_answer_new(const cJSON *id, bool ok)
{
    cJSON *a = cJSON_CreateObject();
    if (!a)
        return NULL;
    cJSON *idc = id ? cJSON_Duplicate(id, false) : cJSON_CreateNull();
    if (!idc || !cJSON_AddItemToObject(a, "id", idc) || !cJSON_AddBoolToObject(a, "ok", ok)) {
        cJSON_Delete(idc);
        cJSON_Delete(a);
        return NULL;
    }
    return a;
}

int ctl_json_line(cJSON *obj, char **out, size_t *len)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s)
        return -ENOMEM;
    size_t n = strlen(s);
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        return -ENOMEM;
    }
    line[n] = '\n';
    line[n + 1] = '\0';
    *out = line;
    *len = n + 1;
    return 0;
}

int ctl_error_line(const cJSON *id, const char *msg, char **out, size_t *len)
{
    cJSON *a = ctl_answer_new(id, false);
    if (a && !cJSON_AddStringToObject(a, "error", msg)) {
        cJSON_Delete(a);
        a = NULL;
    }
    return ctl_json_line(a, out, len);
}
