/* store_slot.c - the NAND package slot and the firmware images (see
 * include/dfota/store.h). */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SLOT_FILE "package"
#define FW_FILE "current"
#define FWNEW_FILE "new"
/* writeback of a package being written starts every this many bytes */
#define STORE_WRITEBACK_STEP (1u << 20)

struct store_slot_writer {
    struct store *s;
    int fd;
    uint64_t capacity;
    uint64_t written;
};

/* ---- the NAND package slot --------------------------------------------- */

int store_slot_begin(struct store *s, uint64_t capacity, struct store_slot_writer **out)
{
    if (!out || capacity == 0)
        return -EINVAL;
    if (s->slot_busy)
        return -EBUSY;
    /* The erase: unlink rather than truncate, so that whatever sits under
     * the name (a planted symlink too) goes and a fresh file takes its
     * place. A crash in between leaves the slot empty. */
    if (unlinkat(s->slot_fd, SLOT_FILE, 0) != 0 && errno != ENOENT)
        return -errno;
    struct store_slot_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->fd =
        openat(s->slot_fd, SLOT_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int rc = -errno;
        free(w);
        return rc;
    }
    /* the new name is made durable now, before any data: finishing then
     * only has the file's own content to sync */
    int drc = store__fsync(s->slot_fd);
    if (drc) {
        close(w->fd);
        free(w);
        return drc;
    }
    w->s = s;
    w->capacity = capacity;
    s->slot_busy = true;
    s->n_writers++;
    *out = w;
    return 0;
}

int store_slot_write(struct store_slot_writer *w, const void *buf, size_t len)
{
    if (!w)
        return -EINVAL;
    uint64_t before = w->written;
    int rc = store__append(w->fd, &w->written, w->capacity, buf, len, -EFBIG);
    /* start writeback of each whole MiB as it fills, so that the fsync of
     * store_slot_finish() has little left to do (a package is up to 7 MB) */
    if (rc == 0 && w->written / STORE_WRITEBACK_STEP != before / STORE_WRITEBACK_STEP) {
        uint64_t end = w->written / STORE_WRITEBACK_STEP * STORE_WRITEBACK_STEP;
        sync_file_range(w->fd, (off_t)(end - STORE_WRITEBACK_STEP), STORE_WRITEBACK_STEP,
                        SYNC_FILE_RANGE_WRITE);
    }
    return rc;
}

uint64_t store_slot_written(const struct store_slot_writer *w)
{
    return w->written;
}

int store_slot_finish(struct store_slot_writer *w)
{
    if (!w)
        return -EINVAL;
    int rc = store__fsync(w->fd);
    if (close(w->fd) != 0 && rc == 0)
        rc = -errno;
    w->s->slot_busy = false;
    w->s->n_writers--;
    free(w);
    return rc;
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
    if (s->slot_busy)
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
