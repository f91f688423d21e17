/* store_slot.c - the NAND package slot and the firmware images (see
 * include/dfota/store.h). */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_FILE "package"
#define FW_FILE "current"
#define FWNEW_FILE "new"

/* A package arrives in chunks of a few KiB (a UART read); the stream
 * gathers them and writes each full buffer on a worker. */
struct store_slot_writer {
    struct store_stream st; /* first: the stream's callbacks cast back */
    void (*cb)(void *ud, int result, uint64_t size);
    void *ud;
};

/* The erase and the new file, at the first byte: unlink rather than
 * truncate, so that whatever sits under the name (a planted symlink too)
 * goes and a fresh file takes its place; the new name is made durable
 * before any data, so the end only has the file's content to sync. A crash
 * in between leaves the slot empty. */
static int slot_create(struct store_stream *st)
{
    int dirfd = st->s->slot_fd;
    if (unlinkat(dirfd, SLOT_FILE, 0) != 0 && errno != ENOENT)
        return -errno;
    st->fd = openat(dirfd, SLOT_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (st->fd < 0)
        return -errno;
    return store__fsync(dirfd);
}

static void writer_free(struct store_slot_writer *w)
{
    w->st.s->n_writers--;
    free(w);
}

int store_slot_begin(struct store *s, uint64_t capacity, struct store_slot_writer **out)
{
    if (!out || capacity == 0)
        return -EINVAL;
    if (s->slot_writer)
        return -EBUSY;
    struct store_slot_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    int rc = store__stream_init(&w->st, s, capacity, -EFBIG, -1, slot_create);
    if (rc) {
        free(w);
        return rc;
    }
    s->slot_writer = w;
    s->n_writers++;
    *out = w;
    return 0;
}

int store_slot_write(struct store_slot_writer *w, const void *buf, size_t len)
{
    return w ? store__stream_write(&w->st, buf, len) : -EINVAL;
}

uint64_t store_slot_written(const struct store_slot_writer *w)
{
    return w->st.taken;
}

uint64_t store_slot_backlog(const struct store_slot_writer *w)
{
    return w->st.queued + w->st.fill_len;
}

void store_slot_on_drain(struct store_slot_writer *w, void (*cb)(void *ud), void *ud)
{
    w->st.drained = cb;
    w->st.drained_ud = ud;
}

/* The last work items of a writer. The end item runs after every chunk (the
 * queue is in order) and reports; the fsync follows; an aborted writer's
 * end closes the file. Each frees the writer once it is the last. */
static int end_run(struct store_stream *st)
{
    (void)st; /* a chunk's failure comes back as the stream's error */
    return 0;
}

static int sync_run(struct store_stream *st)
{
    int rc = st->fd >= 0 ? store__fsync(st->fd) : 0;
    if (st->fd >= 0 && close(st->fd) != 0 && rc == 0)
        rc = -errno;
    st->fd = -1;
    return rc;
}

static void sync_done(struct store_stream *st, int result)
{
    (void)result; /* the package was reported written: a failed fsync only
                     weakens it against an OS crash, as a module's flash
                     wear would; nothing to tell the host any more */
    writer_free((struct store_slot_writer *)st);
}

static int sync_work(void *ud)
{
    return sync_run(ud);
}

static void sync_work_done(void *ud, int result)
{
    sync_done(ud, result);
}

static void end_done(struct store_stream *st, int result)
{
    struct store_slot_writer *w = (struct store_slot_writer *)st;
    uint64_t size = st->flushed; /* no work of this writer runs now */
    void (*cb)(void *, int, uint64_t) = w->cb;
    void *cb_ud = w->ud;
    /* the fsync is queued before the caller hears: a flush it asks for
     * then waits for it too */
    if (st->fd < 0 || store_submit(st->s, sync_work, sync_work_done, w) != 0) {
        sync_run(st); /* nothing to sync, or no memory for a work item */
        writer_free(w);
    }
    if (cb)
        cb(cb_ud, result, size);
}

void store_slot_finish(struct store_slot_writer *w, void (*cb)(void *ud, int result, uint64_t size),
                       void *ud)
{
    w->cb = cb;
    w->ud = ud;
    w->st.s->slot_writer = NULL;
    store__stream_end(&w->st, false, end_run, end_done);
}

void store_slot_abort(struct store_slot_writer *w)
{
    w->st.s->slot_writer = NULL;
    store__stream_end(&w->st, true, sync_run, sync_done);
}

/* Opens regular file @p name in @p dirfd read-only without following a
 * symlink, and its size. */
static int open_ro(int dirfd, const char *name, int *fd, uint64_t *size)
{
    int f = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (f < 0)
        return -errno;
    struct stat st;
    int rc = fstat(f, &st) != 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
    if (rc) {
        close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
    return 0;
}

/* The size of regular file @p name in @p dirfd; 0 if there is none. */
static uint64_t file_size_at(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return (uint64_t)st.st_size;
}

uint64_t store_slot_size(struct store *s)
{
    if (s->slot_writer)
        return s->slot_writer->st.taken;
    return file_size_at(s->slot_fd, SLOT_FILE);
}

int store_slot_open(struct store *s, int *fd, uint64_t *size)
{
    if (!fd || !size)
        return -EINVAL;
    int rc = open_ro(s->slot_fd, SLOT_FILE, fd, size);
    if (rc == 0 && *size == 0) {
        close(*fd);
        return -ENOENT;
    }
    return rc;
}

int store_slot_delete(struct store *s)
{
    return store__unlink_at(s->slot_fd, SLOT_FILE);
}

/* ---- firmware images --------------------------------------------------- */

int store_fw_open(struct store *s, int *fd, uint64_t *size)
{
    return fd && size ? open_ro(s->fw_fd, FW_FILE, fd, size) : -EINVAL;
}

int store_fwnew_open(struct store *s, int *fd, uint64_t *size)
{
    return fd && size ? open_ro(s->fw_fd, FWNEW_FILE, fd, size) : -EINVAL;
}

int store_fw_read(struct store *s, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return -EINVAL;
    return store__read_at(s->fw_fd, FW_FILE, STORE_FW_MAX, buf, len);
}

int store_fw_write(struct store *s, const void *buf, size_t len)
{
    if (!buf && len > 0)
        return -EINVAL;
    if (len > STORE_FW_MAX)
        return -EFBIG;
    return store__atomic_write_at(s->fw_fd, FW_FILE, buf, len);
}

int store_fwnew_begin(struct store *s, uint64_t size)
{
    if (size > STORE_FW_MAX)
        return -EFBIG;
    struct stat st;
    if (fstatat(s->fw_fd, FWNEW_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
        (uint64_t)st.st_size == size)
        return 0; /* a resume: keep what the update wrote so far */
    return store__atomic_write_at(s->fw_fd, FWNEW_FILE, NULL, (size_t)size);
}

int store_fwnew_write(struct store *s, uint64_t off, const void *buf, size_t len)
{
    if (!buf && len > 0)
        return -EINVAL;
    int fd = openat(s->fw_fd, FWNEW_FILE, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode))
        rc = -EINVAL;
    else if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off)
        rc = -EFBIG;
    const uint8_t *p = buf;
    while (rc == 0 && len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    if (rc == 0 && fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

int store_fwnew_read(struct store *s, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return -EINVAL;
    return store__read_at(s->fw_fd, FWNEW_FILE, STORE_FW_MAX, buf, len);
}

int store_fwnew_commit(struct store *s)
{
    if (renameat(s->fw_fd, FWNEW_FILE, s->fw_fd, FW_FILE) != 0)
        return -errno;
    return store__fsync(s->fw_fd);
}

int store_fwnew_discard(struct store *s)
{
    return store__unlink_at(s->fw_fd, FWNEW_FILE);
}
