/* store_efs.c - EFS files: "UFS:<file>" in efs/ufs/, "/datatx/..." in
 * efs/datatx/ (see include/dfota/store.h). */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UFS_PREFIX "UFS:"
#define DATATX_PREFIX "/datatx/"

/* A host's EFS name taken apart. */
struct efs_name {
    bool ufs;                         /* UFS, else /datatx */
    char rel[STORE_EFS_NAME_MAX + 1]; /* the path below the area's folder */
    size_t base;                      /* offset in rel of the last part */
};

/* An upload streams into a temporary file (the stream writes it on a
 * worker) that the finish renames into place. */
struct store_efs_writer {
    struct store_stream st;        /* first: the stream's callbacks cast back */
    struct store_efs_writer *next; /* in the store's list of open writers */
    int dirfd;                     /* the folder the file goes in */
    char tmp[32];
    char base[STORE_EFS_NAME_MAX + 1];
    bool overwrite;
    store_cb cb;
    void *ud;
};

/* ---- names ------------------------------------------------------------- */

/* A file or folder name: not empty, not starting with '.' (".", "..", and
 * the store's temporary files), no control characters, no ':' (storage
 * prefixes), no wildcards unless @p wild. */
static bool valid_part(const char *p, size_t n, bool wild)
{
    if (n == 0 || p[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7f || c == ':' || c == '/' || (!wild && (c == '*' || c == '?')))
            return false;
    }
    return true;
}

/* Takes the host's @p name apart; @p wild lets its last part be a pattern. */
static int efs_parse(const char *name, bool wild, struct efs_name *n)
{
    if (!name)
        return -EINVAL;
    if (strnlen(name, STORE_EFS_NAME_MAX + 1) > STORE_EFS_NAME_MAX)
        return -ENAMETOOLONG;
    const char *rel = name;
    n->ufs = name[0] != '/';
    if (strncmp(name, UFS_PREFIX, strlen(UFS_PREFIX)) == 0)
        rel += strlen(UFS_PREFIX);
    else if (!n->ufs && strncmp(name, DATATX_PREFIX, strlen(DATATX_PREFIX)) != 0)
        return -EINVAL; /* an absolute path outside /datatx */
    else if (!n->ufs)
        rel += strlen(DATATX_PREFIX);
    const char *part = rel;
    for (;;) {
        const char *slash = strchr(part, '/');
        size_t len = slash ? (size_t)(slash - part) : strlen(part);
        if ((slash && n->ufs) || !valid_part(part, len, wild && !slash))
            return -EINVAL;
        if (!slash)
            break;
        part = slash + 1;
    }
    strcpy(n->rel, rel);
    n->base = (size_t)(part - rel);
    return 0;
}

/* '*' matches any run of bytes, '?' any one byte. */
static bool glob_match(const char *pat, const char *str)
{
    const char *star = NULL, *resume = NULL;
    while (*str) {
        if (*pat == '?' || (*pat != '*' && *pat == *str)) {
            pat++;
            str++;
        } else if (*pat == '*') {
            star = pat++;
            resume = str;
        } else if (star) {
            pat = star + 1;
            str = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

/* Opens the folder that holds @p n, one part at a time and never through a
 * symlink; creates missing folders when @p create. Returns the fd or
 * -errno. */
static int efs_open_parent(struct store *s, const struct efs_name *n, bool create)
{
    int fd = fcntl(n->ufs ? s->ufs_fd : s->dtx_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    char path[sizeof(n->rel)];
    memcpy(path, n->rel, n->base);
    path[n->base] = '\0';
    for (char *part = path, *slash; (slash = strchr(part, '/')) != NULL; part = slash + 1) {
        *slash = '\0';
        int sub = store__open_dir_at(fd, part, create);
        close(fd);
        if (sub < 0) /* a file where a folder should be: no such path */
            return sub == -ENOTDIR && !create ? -ENOENT : sub;
        fd = sub;
    }
    return fd;
}

/* Parses @p name (no pattern) and opens the folder that holds it. */
static int efs_locate(struct store *s, const char *name, bool create, struct efs_name *n)
{
    int rc = efs_parse(name, false, n);
    return rc < 0 ? rc : efs_open_parent(s, n, create);
}

/* What sits at @p name in @p dirfd: 0 and its size for a regular file,
 * -ENOENT, -EISDIR, -ELOOP (a symlink) or -EINVAL (anything else). */
static int efs_stat(int dirfd, const char *name, uint64_t *size)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (S_ISLNK(st.st_mode))
        return -ELOOP;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    *size = (uint64_t)st.st_size;
    return 0;
}

int store_efs_resolve(struct store *s, const char *name, char *path, size_t cap)
{
    struct efs_name n;
    int rc = efs_parse(name, false, &n);
    if (rc < 0)
        return rc;
    int len = snprintf(path, cap, "%s/efs/%s/%s", s->dir, n.ufs ? "ufs" : "datatx", n.rel);
    return len >= 0 && (size_t)len < cap ? 0 : -ENOSPC;
}

/* ---- space ------------------------------------------------------------- */

/* The files in place; an upload's temporary file counts by what its
 * writer took (on its way to the file too), see store_efs_free(). */
static int sum_cb(int dirfd, const char *name, const struct stat *st, void *ud)
{
    (void)dirfd;
    if (S_ISREG(st->st_mode) && strncmp(name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) != 0)
        *(uint64_t *)ud += (uint64_t)st->st_size;
    return 0;
}

uint64_t store_efs_free(struct store *s)
{
    uint64_t used = 0;
    store__walk(s->ufs_fd, 0, sum_cb, &used);
    store__walk(s->dtx_fd, STORE_DATATX_DEPTH, sum_cb, &used);
    for (const struct store_efs_writer *w = s->efs_writers; w; w = w->next)
        used += w->st.taken;
    return used < s->efs_budget ? s->efs_budget - used : 0;
}

/* ---- writing ----------------------------------------------------------- */

int store_efs_begin(struct store *s, const char *name, bool overwrite,
                    struct store_efs_writer **out)
{
    if (!out)
        return -EINVAL;
    if (!s->loop)
        return -ENOTCONN;
    struct efs_name n;
    int dirfd = efs_locate(s, name, true, &n);
    if (dirfd < 0)
        return dirfd;
    const char *base = n.rel + n.base;
    uint64_t old = 0;
    int rc = efs_stat(dirfd, base, &old);
    if (rc == -ENOENT)
        rc = 0;
    else if (rc == 0 || rc == -ELOOP || rc == -EINVAL)
        rc = overwrite ? 0 : -EEXIST; /* a rename replaces a link, not its target */
    struct store_efs_writer *w = rc == 0 ? calloc(1, sizeof(*w)) : NULL;
    if (rc == 0 && !w)
        rc = -ENOMEM;
    int fd = rc == 0 ? store__tmp_create(dirfd, w->tmp) : -1;
    if (rc == 0 && fd < 0)
        rc = fd;
    if (rc == 0)
        rc = store__stream_init(&w->st, s, store_efs_free(s) + old, -ENOSPC, fd, NULL);
    if (rc < 0 && fd >= 0) {
        close(fd);
        unlinkat(dirfd, w->tmp, 0); /* empty and never written: nothing to wait on */
    }
    if (rc < 0) {
        free(w);
        close(dirfd);
        return rc;
    }
    w->dirfd = dirfd;
    strcpy(w->base, base);
    w->overwrite = overwrite;
    w->next = s->efs_writers;
    s->efs_writers = w;
    s->n_writers++;
    *out = w;
    return 0;
}

int store_efs_write(struct store_efs_writer *w, const void *buf, size_t len)
{
    return w ? store__stream_write(&w->st, buf, len) : -EINVAL;
}

/* Renames @p from to @p to in @p dirfd unless @p to exists (-EEXIST). */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: a hard link is just as
     * exclusive. */
    if (linkat(dirfd, from, dirfd, to, 0) != 0)
        return -errno;
    unlinkat(dirfd, from, 0);
    return 0;
}

/* Takes @p w off the store's list of open writers: its bytes count as a
 * file in place, or not at all, from now on. */
static void writer_unlist(struct store_efs_writer *w)
{
    for (struct store_efs_writer **p = &w->st.s->efs_writers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

static void writer_free(struct store_efs_writer *w)
{
    writer_unlist(w);
    close(w->dirfd);
    w->st.s->n_writers--;
    free(w);
}

/* The ends, on a worker after every chunk: the temporary file is dropped
 * (an abort, a failed write) or synced and renamed into place, and the
 * folder synced, so the file appears whole or not at all. */
static int efs_drop_run(struct store_stream *st)
{
    struct store_efs_writer *w = (struct store_efs_writer *)st;
    close(st->fd);
    unlinkat(w->dirfd, w->tmp, 0);
    return 0;
}

static int efs_finish_run(struct store_stream *st)
{
    struct store_efs_writer *w = (struct store_efs_writer *)st;
    if (st->werr) {
        efs_drop_run(st);
        return st->werr;
    }
    int rc = store__fsync(st->fd);
    if (close(st->fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && w->overwrite)
        rc = renameat(w->dirfd, w->tmp, w->dirfd, w->base) == 0 ? 0 : -errno;
    else if (rc == 0)
        rc = rename_noreplace(w->dirfd, w->tmp, w->base);
    if (rc == 0)
        rc = store__fsync(w->dirfd);
    if (rc < 0)
        unlinkat(w->dirfd, w->tmp, 0);
    return rc;
}

static void efs_end_done(struct store_stream *st, int result)
{
    struct store_efs_writer *w = (struct store_efs_writer *)st;
    store_cb cb = w->cb;
    void *cb_ud = w->ud;
    writer_free(w);
    if (cb)
        cb(cb_ud, result);
}

void store_efs_finish(struct store_efs_writer *w, store_cb cb, void *ud)
{
    w->cb = cb;
    w->ud = ud;
    store__stream_end(&w->st, false, efs_finish_run, efs_end_done);
}

void store_efs_abort(struct store_efs_writer *w)
{
    if (!w)
        return;
    writer_unlist(w); /* what it took is as good as gone */
    store__stream_end(&w->st, true, efs_drop_run, efs_end_done);
}

/* ---- listing and deleting ---------------------------------------------- */

struct efs_match {
    char *name;
    uint64_t size;
};

struct efs_matches {
    const char *pat;
    struct efs_match *v;
    size_t n;
};

static int match_cb(int dirfd, const char *name, const struct stat *st, void *ud)
{
    (void)dirfd;
    struct efs_matches *m = ud;
    /* Files only, and only names a host could have given (nothing planted
     * with a name the parser would refuse, no temporary files). */
    if (!S_ISREG(st->st_mode) || !valid_part(name, strlen(name), false) ||
        strlen(name) > STORE_EFS_NAME_MAX || !glob_match(m->pat, name))
        return 0;
    struct efs_match *v = realloc(m->v, (m->n + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    m->v = v;
    if (!(v[m->n].name = strdup(name)))
        return -ENOMEM;
    v[m->n++].size = (uint64_t)st->st_size;
    return 0;
}

static int match_cmp(const void *a, const void *b)
{
    return strcmp(((const struct efs_match *)a)->name, ((const struct efs_match *)b)->name);
}

static void matches_free(struct efs_matches *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].name);
    free(m->v);
}

/* The files of the folder @p n names whose names match its last part, in
 * name order; *@p dirfd is that folder (or -1 when it does not exist). */
static int efs_collect(struct store *s, const struct efs_name *n, int *dirfd, struct efs_matches *m)
{
    *m = (struct efs_matches){.pat = n->rel + n->base};
    *dirfd = efs_open_parent(s, n, false);
    if (*dirfd == -ENOENT) {
        *dirfd = -1;
        return 0;
    }
    if (*dirfd < 0)
        return *dirfd;
    int rc = store__walk(*dirfd, 0, match_cb, m);
    if (rc < 0) {
        matches_free(m);
        close(*dirfd);
        return rc;
    }
    if (m->n > 1)
        qsort(m->v, m->n, sizeof(m->v[0]), match_cmp);
    return 0;
}

int store_efs_list(struct store *s, const char *pattern,
                   int (*cb)(void *ud, const char *name, uint64_t size), void *ud)
{
    struct efs_name n;
    int dirfd = -1;
    struct efs_matches m = {0};
    int rc = efs_parse(pattern, true, &n);
    if (rc == 0 && !cb)
        rc = -EINVAL;
    if (rc == 0)
        rc = efs_collect(s, &n, &dirfd, &m);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < m.n; i++) {
        char host[sizeof(DATATX_PREFIX) + 2 * sizeof(n.rel)];
        int len = snprintf(host, sizeof(host), "%s%.*s%s", n.ufs ? UFS_PREFIX : DATATX_PREFIX,
                           (int)n.base, n.rel, m.v[i].name);
        if (len <= STORE_EFS_NAME_MAX) /* else a name no host could give */
            rc = cb(ud, host, m.v[i].size);
    }
    matches_free(&m);
    if (dirfd >= 0)
        close(dirfd);
    return rc;
}

/* Deletes every file matching the pattern @p n. */
static int efs_delete_matching(struct store *s, const struct efs_name *n)
{
    int dirfd;
    struct efs_matches m;
    int rc = efs_collect(s, n, &dirfd, &m);
    if (rc < 0 || dirfd < 0)
        return rc;
    for (size_t i = 0; i < m.n; i++)
        if (unlinkat(dirfd, m.v[i].name, 0) != 0 && errno != ENOENT && rc == 0)
            rc = -errno;
    if (m.n > 0 && rc == 0)
        rc = store__fsync(dirfd);
    matches_free(&m);
    close(dirfd);
    return rc;
}

struct efs_delete {
    struct store *s;
    store_cb cb;
    void *ud;
    char name[STORE_EFS_NAME_MAX + 1];
};

static int efs_delete_run(void *ud)
{
    struct efs_delete *d = ud;
    return store_efs_delete(d->s, d->name);
}

static void efs_delete_done(void *ud, int result)
{
    struct efs_delete *d = ud;
    store_cb cb = d->cb;
    void *cb_ud = d->ud;
    free(d);
    if (cb)
        cb(cb_ud, result);
}

int store_efs_delete_async(struct store *s, const char *name, store_cb cb, void *ud)
{
    if (!name)
        return -EINVAL;
    if (strlen(name) > STORE_EFS_NAME_MAX)
        return -ENAMETOOLONG;
    struct efs_delete *d = malloc(sizeof(*d));
    if (!d)
        return -ENOMEM;
    *d = (struct efs_delete){.s = s, .cb = cb, .ud = ud};
    strcpy(d->name, name);
    int rc = store_submit(s, efs_delete_run, efs_delete_done, d);
    if (rc)
        free(d);
    return rc;
}

int store_efs_delete(struct store *s, const char *name)
{
    struct efs_name n;
    int rc = efs_parse(name, true, &n);
    if (rc < 0)
        return rc;
    if (strpbrk(n.rel + n.base, "*?"))
        return efs_delete_matching(s, &n);
    int dirfd = efs_open_parent(s, &n, false);
    if (dirfd < 0)
        return dirfd;
    uint64_t size;
    rc = efs_stat(dirfd, n.rel + n.base, &size);
    if (rc == 0 || rc == -ELOOP || rc == -EINVAL)
        rc = store__unlink_at(dirfd, n.rel + n.base); /* a link goes, not its target */
    close(dirfd);
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

int store_efs_size(struct store *s, const char *name, uint64_t *size)
{
    struct efs_name n;
    if (!size)
        return -EINVAL;
    int dirfd = efs_locate(s, name, false, &n);
    if (dirfd < 0)
        return dirfd;
    int rc = efs_stat(dirfd, n.rel + n.base, size);
    close(dirfd);
    return rc;
}

int store_efs_read(struct store *s, const char *name, uint8_t **buf, size_t *len)
{
    struct efs_name n;
    if (!buf || !len)
        return -EINVAL;
    int dirfd = efs_locate(s, name, false, &n);
    if (dirfd < 0)
        return dirfd;
    int rc = store__read_at(dirfd, n.rel + n.base, SIZE_MAX, buf, len);
    close(dirfd);
    return rc;
}
