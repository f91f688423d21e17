/* store.c - the state directory: open/close, settings and records (see
 * include/dfota/store.h). */
#include "store_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define SETTINGS_FILE "settings"
#define SETTINGS_HEADER "# dfota-sim settings 1\n"
/* The largest settings file store_set() can write. */
#define SETTINGS_FILE_MAX                                                                          \
    (sizeof(SETTINGS_HEADER) + (size_t)STORE_SETTINGS_MAX * (STORE_KEY_MAX + STORE_VAL_MAX + 2))

/* Record file: "DFRC", version, payload length, CRC-32 of the 12 bytes
 * before it and the payload (all little-endian), then the payload. */
#define REC_MAGIC "DFRC"
#define REC_VERSION 1u
#define REC_HDR 16u

/* ---- open / close ------------------------------------------------------ */

static int mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return rc;
}

static void settings_free(struct store *s)
{
    for (size_t i = 0; i < s->n_kv; i++) {
        free(s->kv[i].key);
        free(s->kv[i].val);
    }
    free(s->kv);
    s->kv = NULL;
    s->n_kv = 0;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    assert(s->n_writers == 0); /* writers point at s */
    assert(!store_busy(s));    /* so do work items */
    int *fds[] = {&s->rec_fd, &s->slot_fd, &s->fw_fd, &s->ufs_fd, &s->dtx_fd, &s->root_fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (*fds[i] >= 0)
            close(*fds[i]); /* the root fd last: it holds the lock */
    settings_free(s);
    free(s->dir);
    free(s);
}

static int layout_dir(int parent, const char *name, int *fd)
{
    *fd = store__open_dir_at(parent, name, true);
    return *fd < 0 ? *fd : 0;
}

/* Opens (creating) the folders of the layout and removes what crashed
 * writes left in them. */
static int open_layout(struct store *s)
{
    int efs = -1, ssl = -1;
    int rc = layout_dir(s->root_fd, "records", &s->rec_fd);
    if (rc == 0)
        rc = layout_dir(s->root_fd, "slot", &s->slot_fd);
    if (rc == 0)
        rc = layout_dir(s->root_fd, "fw", &s->fw_fd);
    if (rc == 0)
        rc = layout_dir(s->root_fd, "efs", &efs);
    if (rc == 0)
        rc = layout_dir(efs, "ufs", &s->ufs_fd);
    if (rc == 0)
        rc = layout_dir(efs, "datatx", &s->dtx_fd);
    if (rc == 0)
        rc = layout_dir(s->dtx_fd, "ssl", &ssl);
    if (efs >= 0)
        close(efs);
    if (ssl >= 0)
        close(ssl);
    struct {
        int fd;
        int depth;
    } clean[] = {{s->root_fd, 0}, {s->rec_fd, 0}, {s->slot_fd, 0},
                 {s->fw_fd, 0},   {s->ufs_fd, 0}, {s->dtx_fd, STORE_DATATX_DEPTH}};
    for (size_t i = 0; rc == 0 && i < sizeof(clean) / sizeof(clean[0]); i++)
        rc = store__remove_tmp(clean[i].fd, clean[i].depth);
    return rc;
}

static int settings_load(struct store *s);

int store_open_cfg(const char *dir, const struct store_cfg *cfg, struct store **out)
{
    if (!dir || !*dir || !out)
        return -EINVAL;
    int rc = mkdir_p(dir);
    if (rc < 0)
        return rc;
    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->rec_fd = s->slot_fd = s->fw_fd = s->ufs_fd = s->dtx_fd = -1;
    s->efs_budget = cfg && cfg->efs_budget ? cfg->efs_budget : STORE_EFS_DEFAULT_BUDGET;
    s->loop = cfg ? cfg->loop : NULL;
    s->q_tail = &s->q_head;
    s->dir = strdup(dir);
    s->root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!s->dir)
        rc = -ENOMEM;
    else if (s->root_fd < 0)
        rc = -errno;
    else if (flock(s->root_fd, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
    else if ((rc = open_layout(s)) == 0)
        rc = settings_load(s);
    if (rc < 0) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int store_open(const char *dir, struct store **out)
{
    return store_open_cfg(dir, NULL, out);
}

const char *store_dir(const struct store *s)
{
    return s->dir;
}

/* ---- settings ---------------------------------------------------------- */

/* Binary search: whether @p key is set; *pos is its index or where it goes. */
static bool kv_find(const struct store *s, const char *key, size_t *pos)
{
    size_t lo = 0, hi = s->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->kv[mid].key, key);
        if (c == 0) {
            *pos = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return false;
}

/* Room for one more setting, so that kv_put() cannot fail. */
static int kv_reserve(struct store *s)
{
    if (s->n_kv >= STORE_SETTINGS_MAX)
        return -ENOSPC;
    struct store_kv *kv = realloc(s->kv, (s->n_kv + 1) * sizeof(*kv));
    if (!kv)
        return -ENOMEM;
    s->kv = kv;
    return 0;
}

/* Sets @p key to @p val in memory, taking both strings; kv_reserve() first
 * when the key may be new. */
static void kv_put(struct store *s, char *key, char *val)
{
    size_t pos;
    if (kv_find(s, key, &pos)) {
        free(key);
        free(s->kv[pos].val);
        s->kv[pos].val = val;
        return;
    }
    memmove(&s->kv[pos + 1], &s->kv[pos], (s->n_kv - pos) * sizeof(s->kv[0]));
    s->kv[pos] = (struct store_kv){key, val};
    s->n_kv++;
}

static bool valid_value(const char *val)
{
    size_t n = strnlen(val, STORE_VAL_MAX + 1);
    return n <= STORE_VAL_MAX && !memchr(val, '\r', n) && !memchr(val, '\n', n);
}

/* One "key=value" line (without its '\n'); malformed lines are skipped. */
static int settings_parse_line(struct store *s, const char *line, size_t len)
{
    const char *eq = memchr(line, '=', len);
    if (len == 0 || line[0] == '#' || !eq || memchr(line, '\0', len))
        return 0;
    size_t klen = (size_t)(eq - line), vlen = len - klen - 1;
    if (klen > STORE_KEY_MAX || vlen > STORE_VAL_MAX || memchr(eq + 1, '\r', vlen))
        return 0;
    char key[STORE_KEY_MAX + 1];
    memcpy(key, line, klen);
    key[klen] = '\0';
    size_t pos;
    if (!store__valid_key(key) || (!kv_find(s, key, &pos) && s->n_kv >= STORE_SETTINGS_MAX))
        return 0;
    char *k = strdup(key), *v = strndup(eq + 1, vlen);
    int rc = k && v ? kv_reserve(s) : -ENOMEM;
    if (rc < 0) {
        free(k);
        free(v);
        return rc;
    }
    kv_put(s, k, v); /* a repeated key: the last line wins */
    return 0;
}

static int settings_load(struct store *s)
{
    uint8_t *buf;
    size_t len;
    int rc = store__read_at(s->root_fd, SETTINGS_FILE, SETTINGS_FILE_MAX, &buf, &len);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    const char *p = (const char *)buf;
    while (len > 0 && rc == 0) {
        const char *nl = memchr(p, '\n', len);
        size_t ll = nl ? (size_t)(nl - p) : len;
        rc = settings_parse_line(s, p, ll);
        size_t adv = nl ? ll + 1 : ll;
        p += adv;
        len -= adv;
    }
    free(buf);
    return rc;
}

/* The settings file as it is with @p key set to @p val (@p val NULL:
 * without @p key), in key order, into a buffer from malloc(). */
static int settings_build(struct store *s, const char *key, const char *val, char **out,
                          size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return -ENOMEM;
    fputs(SETTINGS_HEADER, f);
    bool done = val == NULL;
    for (size_t i = 0; i < s->n_kv; i++) {
        int c = strcmp(s->kv[i].key, key);
        if (!done && c >= 0) {
            fprintf(f, "%s=%s\n", key, val);
            done = true;
        }
        if (c != 0)
            fprintf(f, "%s=%s\n", s->kv[i].key, s->kv[i].val);
    }
    if (!done)
        fprintf(f, "%s=%s\n", key, val);
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Writes the settings file as settings_build() makes it. */
static int settings_write(struct store *s, const char *key, const char *val)
{
    char *buf;
    size_t len;
    int rc = settings_build(s, key, val, &buf, &len);
    if (rc == 0)
        rc = store__atomic_write_at(s->root_fd, SETTINGS_FILE, buf, len);
    free(buf);
    return rc;
}

/* A snapshot of the settings file on its way to disk. */
struct settings_job {
    struct store *s;
    char *buf;
    size_t len;
    store_cb cb;
    void *ud;
};

static int settings_job_run(void *ud)
{
    struct settings_job *j = ud;
    return store__atomic_write_at(j->s->root_fd, SETTINGS_FILE, j->buf, j->len);
}

static void settings_job_done(void *ud, int result)
{
    struct settings_job *j = ud;
    store_cb cb = j->cb;
    void *cb_ud = j->ud;
    free(j->buf);
    free(j);
    if (cb)
        cb(cb_ud, result);
}

/* Queues the write of the settings with @p key set to @p val (NULL: gone). */
static int settings_write_async(struct store *s, const char *key, const char *val, store_cb cb,
                                void *ud)
{
    if (!s->loop)
        return -ENOTCONN;
    struct settings_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    *j = (struct settings_job){.s = s, .cb = cb, .ud = ud};
    int rc = settings_build(s, key, val, &j->buf, &j->len);
    if (rc == 0)
        rc = store_submit(s, settings_job_run, settings_job_done, j);
    if (rc) {
        free(j->buf);
        free(j);
    }
    return rc;
}

int store_get(struct store *s, const char *key, char *val, size_t cap)
{
    size_t pos;
    if (!store__valid_key(key))
        return -EINVAL;
    if (!kv_find(s, key, &pos))
        return -ENOENT;
    size_t n = strlen(s->kv[pos].val);
    if (!val || n >= cap)
        return -ENOSPC;
    memcpy(val, s->kv[pos].val, n + 1);
    return 0;
}

/* How a settings change reaches the file: at once, or through the work
 * queue (then @p cb follows). */
typedef int (*settings_writer)(struct store *s, const char *key, const char *val, store_cb cb,
                               void *ud);

static int settings_write_now(struct store *s, const char *key, const char *val, store_cb cb,
                              void *ud)
{
    (void)cb;
    (void)ud;
    return settings_write(s, key, val);
}

/* Sets @p key to @p val in memory once @p write has taken the settings
 * with it. */
static int set_with(struct store *s, const char *key, const char *val, settings_writer write,
                    store_cb cb, void *ud)
{
    size_t pos;
    if (!store__valid_key(key) || !val || !valid_value(val))
        return -EINVAL;
    int rc = kv_find(s, key, &pos) ? 0 : kv_reserve(s);
    if (rc < 0)
        return rc;
    char *k = strdup(key), *v = strdup(val);
    rc = k && v ? write(s, key, val, cb, ud) : -ENOMEM;
    if (rc < 0) {
        free(k);
        free(v);
        return rc;
    }
    kv_put(s, k, v);
    return 0;
}

/* Removes @p key from memory once @p write has taken the settings without
 * it. */
static int del_with(struct store *s, const char *key, settings_writer write, store_cb cb,
                    void *ud)
{
    size_t pos;
    if (!store__valid_key(key))
        return -EINVAL;
    if (!kv_find(s, key, &pos))
        return -ENOENT;
    int rc = write(s, key, NULL, cb, ud);
    if (rc < 0)
        return rc;
    free(s->kv[pos].key);
    free(s->kv[pos].val);
    memmove(&s->kv[pos], &s->kv[pos + 1], (s->n_kv - pos - 1) * sizeof(s->kv[0]));
    s->n_kv--;
    return 0;
}

int store_set(struct store *s, const char *key, const char *val)
{
    return set_with(s, key, val, settings_write_now, NULL, NULL);
}

int store_del(struct store *s, const char *key)
{
    return del_with(s, key, settings_write_now, NULL, NULL);
}

int store_set_async(struct store *s, const char *key, const char *val, store_cb cb, void *ud)
{
    return set_with(s, key, val, settings_write_async, cb, ud);
}

int store_del_async(struct store *s, const char *key, store_cb cb, void *ud)
{
    return del_with(s, key, settings_write_async, cb, ud);
}

/* ---- records ----------------------------------------------------------- */

/* CRC-32 (IEEE 802.3, as zlib's crc32()), chainable, nibble table. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return ~crc;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    return crc32_update(crc32_update(0, hdr, 12), payload, len);
}

int store_record_put(struct store *s, const char *name, const void *buf, size_t len)
{
    if (!store__valid_key(name) || (!buf && len > 0))
        return -EINVAL;
    if (len > STORE_RECORD_MAX)
        return -EFBIG;
    uint8_t *rec = malloc(REC_HDR + len);
    if (!rec)
        return -ENOMEM;
    memcpy(rec, REC_MAGIC, 4);
    put_le32(rec + 4, REC_VERSION);
    put_le32(rec + 8, (uint32_t)len);
    if (len > 0)
        memcpy(rec + REC_HDR, buf, len);
    put_le32(rec + 12, rec_crc(rec, rec + REC_HDR, len));
    int rc = store__atomic_write_at(s->rec_fd, name, rec, REC_HDR + len);
    free(rec);
    return rc;
}

int store_record_get(struct store *s, const char *name, void *buf, size_t cap, size_t *len)
{
    if (!store__valid_key(name) || !len || (!buf && cap > 0))
        return -EINVAL;
    uint8_t *rec;
    size_t n;
    int rc = store__read_at(s->rec_fd, name, REC_HDR + STORE_RECORD_MAX, &rec, &n);
    if (rc == -EFBIG)
        return -EBADMSG;
    if (rc < 0)
        return rc;
    if (n < REC_HDR || memcmp(rec, REC_MAGIC, 4) != 0 || get_le32(rec + 4) != REC_VERSION ||
        get_le32(rec + 8) != n - REC_HDR ||
        get_le32(rec + 12) != rec_crc(rec, rec + REC_HDR, n - REC_HDR))
        rc = -EBADMSG;
    else if ((*len = n - REC_HDR) > cap)
        rc = -ENOSPC;
    else if (*len > 0)
        memcpy(buf, rec + REC_HDR, *len);
    free(rec);
    return rc;
}

int store_record_del(struct store *s, const char *name)
{
    if (!store__valid_key(name))
        return -EINVAL;
    return store__unlink_at(s->rec_fd, name);
}
