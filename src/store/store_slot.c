/* store_slot.c - the NAND package slot and the firmware images (see
 * include/dfota/store.h). */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_FILE "package"
#define FW_FILE "current"
#define FWNEW_FILE "new"
/* A package arrives in chunks of a few KiB (a UART read). The writer
 * gathers them into buffers of this size and a thread of its own writes
 * each full buffer to the file while the next one fills: the loop thread
 * only copies, so a fast upload does not wait on the file system. */
#define SLOT_BUF_SIZE (256u * 1024u)

struct store_slot_writer {
    struct store *s;
    int fd;
    uint64_t capacity;
    uint64_t written; /* taken: in the file, with the thread or in fill */
    uint8_t *buf[2];  /* fill is one of them, the other is the thread's */
    uint8_t *fill;    /* the buffer being filled, fill_len bytes of it */
    size_t fill_len;

    /* shared with the thread, under mu; cv signals both ways */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const uint8_t *out; /* what the thread is to write, or NULL: idle */
    size_t out_len;
    uint64_t flushed;   /* in the file */
    int err;            /* a failed write of the thread, not yet reported */
    bool quit;
};

/* The writer's thread: writes each buffer handed to it (a failed write is
 * cut off the file again by store__append) until told to quit. */
static void *slot_thread(void *arg)
{
    struct store_slot_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->out && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->out)
            break;
        const uint8_t *out = w->out;
        size_t len = w->out_len;
        uint64_t flushed = w->flushed;
        pthread_mutex_unlock(&w->mu);
        int rc = store__append(w->fd, &flushed, w->capacity, out, len, -EFBIG);
        pthread_mutex_lock(&w->mu);
        w->flushed = flushed;
        if (rc && !w->err)
            w->err = rc;
        w->out = NULL;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Waits until the thread has written what it was given. Returns its error,
 * if any: then what was not in the file yet is dropped, and the package is
 * what store_slot_written() says. */
static int slot_wait(struct store_slot_writer *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->out)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->err;
    w->err = 0;
    uint64_t flushed = w->flushed;
    pthread_mutex_unlock(&w->mu);
    if (rc) {
        w->written = flushed;
        w->fill_len = 0;
    }
    return rc;
}

/* Hands the filled buffer to the thread (once it is done with the other
 * one) and takes the other one to fill. */
static int slot_submit(struct store_slot_writer *w)
{
    int rc = slot_wait(w);
    if (rc || !w->fill_len)
        return rc;
    pthread_mutex_lock(&w->mu);
    w->out = w->fill;
    w->out_len = w->fill_len;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->fill = w->fill == w->buf[0] ? w->buf[1] : w->buf[0];
    w->fill_len = 0;
    return 0;
}

/* Frees @p w and what it holds; its thread must have ended. */
static void slot_free(struct store_slot_writer *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->buf[0]);
    free(w->buf[1]);
    free(w);
}

/* ---- the NAND package slot --------------------------------------------- */

int store_slot_begin(struct store *s, uint64_t capacity, struct store_slot_writer **out)
{
    if (!out || capacity == 0)
        return -EINVAL;
    if (s->slot_writer)
        return -EBUSY;
    /* The erase: unlink rather than truncate, so that whatever sits under
     * the name (a planted symlink too) goes and a fresh file takes its
     * place. A crash in between leaves the slot empty. */
    if (unlinkat(s->slot_fd, SLOT_FILE, 0) != 0 && errno != ENOENT)
        return -errno;
    struct store_slot_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->buf[0] = malloc(SLOT_BUF_SIZE);
    w->buf[1] = malloc(SLOT_BUF_SIZE);
    if (!w->buf[0] || !w->buf[1]) {
        slot_free(w);
        return -ENOMEM;
    }
    w->fill = w->buf[0];
    w->s = s;
    w->capacity = capacity;
    w->fd =
        openat(s->slot_fd, SLOT_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    /* the new name is made durable now, before any data: finishing then
     * only has the file's own content to sync */
    int rc = w->fd < 0 ? -errno : store__fsync(s->slot_fd);
    if (rc == 0)
        rc = -pthread_create(&w->thread, NULL, slot_thread, w);
    if (rc) {
        if (w->fd >= 0)
            close(w->fd);
        slot_free(w);
        return rc;
    }
    s->slot_writer = w;
    s->n_writers++;
    *out = w;
    return 0;
}

int store_slot_write(struct store_slot_writer *w, const void *buf, size_t len)
{
    if (!w || (!buf && len > 0))
        return -EINVAL;
    if (len > w->capacity - w->written)
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
        w->written += n;
        p += n;
        len -= n;
    }
    return 0;
}

uint64_t store_slot_written(const struct store_slot_writer *w)
{
    return w->written;
}

/* Ends @p w: writes the rest, ends the thread, frees; *@p fd gets the
 * file's descriptor when all went well (else it is closed here). */
static int slot_end(struct store_slot_writer *w, int *fd)
{
    int rc = slot_submit(w);
    int rc2 = slot_wait(w);
    rc = rc ? rc : rc2;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    if (rc == 0)
        *fd = w->fd;
    else
        close(w->fd);
    w->s->slot_writer = NULL;
    w->s->n_writers--;
    slot_free(w);
    return rc;
}

int store_slot_finish(struct store_slot_writer *w)
{
    if (!w)
        return -EINVAL;
    int fd;
    int rc = slot_end(w, &fd);
    if (rc)
        return rc;
    rc = store__fsync(fd);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int store_slot_finish_unsynced(struct store_slot_writer *w, int *sync_fd)
{
    if (!sync_fd) /* nobody to hand the fsync to */
        return store_slot_finish(w);
    *sync_fd = -1;
    if (!w)
        return -EINVAL;
    return slot_end(w, sync_fd);
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
        return s->slot_writer->written;
    return file_size_at(s->slot_fd, SLOT_FILE);
}

int store_slot_read(struct store *s, uint8_t **buf, size_t *len)
{
    if (!buf || !len)
        return -EINVAL;
    int rc = store__read_at(s->slot_fd, SLOT_FILE, SIZE_MAX, buf, len);
    if (rc == 0 && *len == 0) {
        free(*buf);
        *buf = NULL;
        return -ENOENT;
    }
    return rc;
}

int store_slot_delete(struct store *s)
{
    if (s->slot_writer)
        return -EBUSY;
    uint64_t size = store_slot_size(s);
    int rc = store__unlink_at(s->slot_fd, SLOT_FILE);
    return rc == 0 && size == 0 ? -ENOENT : rc;
}

/* ---- firmware images --------------------------------------------------- */

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
