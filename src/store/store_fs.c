/* store_fs.c - descriptor-relative file helpers of the storage layer:
 * crash-safe replacement, bounded whole-file reads, folder walks. */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int store__write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int store__append(int fd, uint64_t *written, uint64_t limit, const void *buf, size_t len, int full)
{
    if (!buf && len > 0)
        return -EINVAL;
    if (len > limit - *written)
        return full;
    int rc = store__write_full(fd, buf, len);
    if (rc < 0) {
        /* Keep the file a clean prefix: cut off the chunk's part. */
        if (ftruncate(fd, (off_t)*written) == 0)
            lseek(fd, (off_t)*written, SEEK_SET);
        return rc;
    }
    *written += len;
    return 0;
}

int store__fsync(int fd)
{
    return fsync(fd) == 0 ? 0 : -errno;
}

static uint64_t tmp_nonce(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) == (ssize_t)sizeof(v))
        return v;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40) ^
           (uint64_t)(uintptr_t)&ts;
}

int store__tmp_create(int dirfd, char *name)
{
    for (int tries = 0; tries < 100; tries++) {
        snprintf(name, 32, STORE_TMP_PREFIX "%016llx", (unsigned long long)tmp_nonce());
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            return -errno;
    }
    return -EEXIST;
}

int store__atomic_write_at(int dirfd, const char *name, const void *buf, size_t len)
{
    char tmp[32];
    int fd = store__tmp_create(dirfd, tmp);
    if (fd < 0)
        return fd;
    int rc = 0;
    if (buf)
        rc = store__write_full(fd, buf, len);
    else if (ftruncate(fd, (off_t)len) != 0)
        rc = -errno;
    if (rc == 0)
        rc = store__fsync(fd);
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) != 0)
        rc = -errno;
    if (rc != 0) {
        unlinkat(dirfd, tmp, 0);
        return rc;
    }
    return store__fsync(dirfd);
}

int store_atomic_write(const char *path, const void *buf, size_t len)
{
    if (!path || (!buf && len > 0))
        return -EINVAL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return -EINVAL;
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return -ENOMEM;
    int dirfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dirfd < 0)
        return -errno;
    int rc = store__atomic_write_at(dirfd, base, buf, len);
    close(dirfd);
    return rc;
}

/* Reads the regular file open on @p fd to its end, refusing more than
 * @p max bytes. */
static int read_fd(int fd, size_t max, uint8_t **out, size_t *out_len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > max)
        return -EFBIG;
    size_t cap = (size_t)st.st_size + 1; /* +1: see EOF without a realloc */
    size_t len = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        if (len == cap) { /* the file grew meanwhile */
            size_t ncap = cap * 2;
            uint8_t *nbuf = len > max ? NULL : realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                return len > max ? -EFBIG : -ENOMEM;
            }
            buf = nbuf;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int rc = -errno;
            free(buf);
            return rc;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* Opens @p name in @p dirfd with @p flags added and reads it whole. */
static int read_open(int dirfd, const char *name, int flags, size_t max, uint8_t **buf, size_t *len)
{
    /* O_NONBLOCK: a FIFO planted under that name must not hang us. */
    int fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | flags);
    if (fd < 0)
        return -errno;
    int rc = read_fd(fd, max, buf, len);
    close(fd);
    return rc;
}

int store__read_at(int dirfd, const char *name, size_t max, uint8_t **buf, size_t *len)
{
    return read_open(dirfd, name, O_NOFOLLOW, max, buf, len);
}

int store_read_all(const char *path, uint8_t **buf, size_t *len)
{
    if (!path || !buf || !len)
        return -EINVAL;
    return read_open(AT_FDCWD, path, 0, SIZE_MAX, buf, len);
}

int store__unlink_at(int dirfd, const char *name)
{
    if (unlinkat(dirfd, name, 0) != 0)
        return -errno;
    return store__fsync(dirfd);
}

int store__open_dir_at(int dirfd, const char *name, bool create)
{
    if (create && mkdirat(dirfd, name, 0755) != 0 && errno != EEXIST)
        return -errno;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return fd;
    /* Linux says ENOTDIR for a symlink here; tell it apart. */
    int err = errno;
    struct stat st;
    if (err == ENOTDIR && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(st.st_mode))
        return -ELOOP;
    return -err;
}

int store__walk(int dirfd, int depth,
                int (*cb)(int dirfd, const char *name, const struct stat *st, void *ud), void *ud)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue; /* gone meanwhile */
        rc = cb(dirfd, de->d_name, &st, ud);
        if (rc != 0 || !S_ISDIR(st.st_mode) || depth <= 0)
            continue;
        int sub = store__open_dir_at(dirfd, de->d_name, false);
        if (sub < 0)
            continue; /* replaced by a non-folder meanwhile */
        rc = store__walk(sub, depth - 1, cb, ud);
        close(sub);
    }
    closedir(d);
    return rc;
}

static int remove_tmp_cb(int dirfd, const char *name, const struct stat *st, void *ud)
{
    (void)ud;
    if (S_ISDIR(st->st_mode) || strncmp(name, STORE_TMP_PREFIX, strlen(STORE_TMP_PREFIX)) != 0)
        return 0;
    int rc = store__unlink_at(dirfd, name);
    return rc == -ENOENT ? 0 : rc;
}

int store__remove_tmp(int dirfd, int depth)
{
    return store__walk(dirfd, depth, remove_tmp_cb, NULL);
}

bool store__valid_key(const char *key)
{
    size_t n = 0;
    if (!key || key[0] == '.')
        return false;
    for (; key[n]; n++) {
        unsigned char c = (unsigned char)key[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok || n >= STORE_KEY_MAX)
            return false;
    }
    return n > 0;
}
