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
/* A package arrives in chunks of a few KiB (a UART read). The writer
 * gathers them into buffers of this size and hands each full one to the
 * store's work queue: the loop thread only copies. */
#define SLOT_BUF_SIZE (256u * 1024u)

/* The loop's fields are used on the loop thread only; the worker's only by
 * the writer's work items, which the store's queue runs one at a time. */
struct store_slot_writer {
    struct store *s;
    uint64_t capacity;
    /* loop */
    uint64_t taken;   /* in the file, queued, or in fill */
    uint8_t *fill;    /* the buffer being filled, fill_len bytes of it */
    size_t fill_len;
    int err;          /* a worker's error not yet reported */
    uint64_t queued;  /* handed to workers, not yet in the file */
    void (*drained)(void *ud); /* the backlog went down to STORE_SLOT_BACKLOG_LOW */
    void *drained_ud;
    void (*cb)(void *ud, int result, uint64_t size);
    void *ud;
    /* worker */
    int fd;           /* -1 until the first chunk created the file */
    uint64_t flushed; /* in the file */
    int werr;         /* a failed write: the chunks after it are dropped */
};

/* One buffer on its way to the file. */
struct chunk {
    struct store_slot_writer *w;
    uint8_t *buf;
    size_t len;
    uint64_t flushed; /* the file's size after this chunk's work */
};

/* The erase and the new file, at the first byte: unlink rather than
 * truncate, so that whatever sits under the name (a planted symlink too)
 * goes and a fresh file takes its place; the new name is made durable
 * before any data, so the end only has the file's content to sync. A crash
 * in between leaves the slot empty. */
static int slot_create(struct store_slot_writer *w)
{
    int dirfd = w->s->slot_fd;
    if (unlinkat(dirfd, SLOT_FILE, 0) != 0 && errno != ENOENT)
        return -errno;
    w->fd = openat(dirfd, SLOT_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return -errno;
    return store__fsync(dirfd);
}

static int chunk_run(void *ud)
{
    struct chunk *c = ud;
    struct store_slot_writer *w = c->w;
    if (!w->werr && w->fd < 0)
        w->werr = slot_create(w);
    if (!w->werr)
        w->werr = store__append(w->fd, &w->flushed, w->capacity, c->buf, c->len, -EFBIG);
    c->flushed = w->flushed;
    return w->werr;
}

static void chunk_done(void *ud, int result)
{
    struct chunk *c = ud;
    struct store_slot_writer *w = c->w;
    if (result && !w->err) {
        /* what is not in the file is dropped: the package is what it holds */
        w->err = result;
        w->taken = c->flushed;
        w->fill_len = 0;
    }
    uint64_t before = w->queued;
    w->queued -= c->len;
    free(c->buf);
    free(c);
    if (w->drained && before > STORE_SLOT_BACKLOG_LOW && w->queued <= STORE_SLOT_BACKLOG_LOW)
        w->drained(w->drained_ud);
}

/* Hands the filled buffer to the queue; the writer takes a fresh one. */
static int slot_submit(struct store_slot_writer *w)
{
    struct chunk *c = malloc(sizeof(*c));
    uint8_t *next = malloc(SLOT_BUF_SIZE);
    if (!c || !next) {
        free(c);
        free(next);
        return -ENOMEM;
    }
    *c = (struct chunk){.w = w, .buf = w->fill, .len = w->fill_len};
    int rc = store_submit(w->s, chunk_run, chunk_done, c);
    if (rc) {
        free(c);
        free(next);
        return rc;
    }
    w->queued += w->fill_len;
    w->fill = next;
    w->fill_len = 0;
    return 0;
}

static void writer_free(struct store_slot_writer *w)
{
    w->s->n_writers--;
    free(w->fill);
    free(w);
}

int store_slot_begin(struct store *s, uint64_t capacity, struct store_slot_writer **out)
{
    if (!out || capacity == 0)
        return -EINVAL;
    if (s->slot_writer)
        return -EBUSY;
    if (!s->loop)
        return -ENOTCONN;
    struct store_slot_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->fill = malloc(SLOT_BUF_SIZE))) {
        free(w);
        return -ENOMEM;
    }
    w->s = s;
    w->capacity = capacity;
    w->fd = -1;
    s->slot_writer = w;
    s->n_writers++;
    *out = w;
    return 0;
}

int store_slot_write(struct store_slot_writer *w, const void *buf, size_t len)
{
    if (!w || (!buf && len > 0))
        return -EINVAL;
    if (w->err) {
        int rc = w->err;
        w->err = 0;
        return rc;
    }
    if (len > w->capacity - w->taken)
        return -EFBIG;
    const uint8_t *p = buf;
    while (len) {
        if (w->fill_len == SLOT_BUF_SIZE) {
            int rc = slot_submit(w);
            if (rc)
                return rc;
        }
        size_t n = SLOT_BUF_SIZE - w->fill_len;
        n = n < len ? n : len;
        memcpy(w->fill + w->fill_len, p, n);
        w->fill_len += n;
        w->taken += n;
        p += n;
        len -= n;
    }
    return 0;
}

uint64_t store_slot_written(const struct store_slot_writer *w)
{
    return w->taken;
}

uint64_t store_slot_backlog(const struct store_slot_writer *w)
{
    return w->queued + w->fill_len;
}

void store_slot_on_drain(struct store_slot_writer *w, void (*cb)(void *ud), void *ud)
{
    w->drained = cb;
    w->drained_ud = ud;
}

/* The last work items of a writer. The end item runs after every chunk (the
 * queue is in order) and reports; the fsync follows; close() ends an
 * aborted writer. Each frees the writer once it is the last. */
static int end_run(void *ud)
{
    struct store_slot_writer *w = ud;
    return w->werr;
}

static int sync_run(void *ud)
{
    struct store_slot_writer *w = ud;
    int rc = w->fd >= 0 ? store__fsync(w->fd) : 0;
    if (w->fd >= 0 && close(w->fd) != 0 && rc == 0)
        rc = -errno;
    w->fd = -1;
    return rc;
}

static void sync_done(void *ud, int result)
{
    struct store_slot_writer *w = ud;
    (void)result; /* the package was reported written: a failed fsync only
                     weakens it against an OS crash, as a module's flash
                     wear would; nothing to tell the host any more */
    writer_free(w);
}

static void end_done(void *ud, int result)
{
    struct store_slot_writer *w = ud;
    uint64_t size = w->flushed; /* no work of this writer runs now */
    void (*cb)(void *, int, uint64_t) = w->cb;
    void *cb_ud = w->ud;
    /* the fsync is queued before the caller hears: a flush it asks for
     * then waits for it too */
    if (w->fd < 0 || store_submit(w->s, sync_run, sync_done, w) != 0) {
        sync_run(w); /* nothing to sync, or no memory for a work item */
        writer_free(w);
    }
    if (cb)
        cb(cb_ud, result, size);
}

/* Queues what @p w still holds (unless @p drop) and then @p run/@p done. */
static void slot_end(struct store_slot_writer *w, bool drop, int (*run)(void *),
                     void (*done)(void *, int))
{
    w->s->slot_writer = NULL;
    w->drained = NULL; /* the door is done with it */
    if (!drop && w->fill_len && !w->err && slot_submit(w) != 0)
        w->err = -ENOMEM;
    w->fill_len = 0;
    if (store_submit(w->s, run, done, w) != 0) {
        /* no memory for the last item: finish here, on the loop, rather
         * than leave the package half told */
        done(w, run(w));
    }
}

void store_slot_finish(struct store_slot_writer *w, void (*cb)(void *ud, int result, uint64_t size),
                       void *ud)
{
    w->cb = cb;
    w->ud = ud;
    slot_end(w, false, end_run, end_done);
}

void store_slot_abort(struct store_slot_writer *w)
{
    slot_end(w, true, sync_run, sync_done);
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
        return s->slot_writer->taken;
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
