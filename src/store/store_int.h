/* store_int.h - what the files of the storage layer share: the store
 * object and the descriptor-relative file helpers (store_fs.c). */
#ifndef DFOTA_STORE_INT_H
#define DFOTA_STORE_INT_H

#include "dfota/store.h"

#include <sys/stat.h>

/** Names of the files a write in progress uses; removed by store_open(). */
#define STORE_TMP_PREFIX ".tmp-"

/** Deepest folder nesting below /datatx that a name of STORE_EFS_NAME_MAX
 *  bytes allows. */
#define STORE_DATATX_DEPTH (STORE_EFS_NAME_MAX / 2)

struct store_kv {
    char *key;
    char *val;
};

/* One item of the store's work queue (store_queue.c). */
struct store_work {
    struct store_work *next;
    uv_work_t req;
    struct store *s;
    int (*work)(void *ud);
    store_cb done;
    void *ud;
    int result;
};

struct store {
    char *dir;
    uv_loop_t *loop;
    struct store_work *q_head, **q_tail; /* waiting, oldest first */
    struct store_work *q_running;        /* on a worker, or NULL */
    int root_fd; /* the state directory; holds the flock */
    int rec_fd;  /* records/ */
    int slot_fd; /* slot/ */
    int fw_fd;   /* fw/ */
    int ufs_fd;  /* efs/ufs/ */
    int dtx_fd;  /* efs/datatx/ */
    uint64_t efs_budget;
    struct store_kv *kv; /* settings, sorted by key */
    size_t n_kv;
    struct store_slot_writer *slot_writer; /* the open slot writer, or NULL */
    unsigned n_writers; /* open slot and EFS writers */
};

/** Writes all @p len bytes at @p buf to @p fd (retrying short writes). */
int store__write_full(int fd, const void *buf, size_t len);

/** Appends a chunk of a streamed file: the @p len bytes at @p buf go to
 *  @p fd, which holds *@p written bytes, unless that would pass @p limit
 *  (then nothing is written and @p full is returned). A failed write is
 *  cut off again, so the file stays what was written before. */
int store__append(int fd, uint64_t *written, uint64_t limit, const void *buf, size_t len, int full);

/** Creates a new temporary file in @p dirfd (O_EXCL, mode 0644); its name
 *  goes to @p name (at least 32 bytes). Returns the fd or -errno. */
int store__tmp_create(int dirfd, char *name);

/** fsync() of @p fd as 0 or -errno. */
int store__fsync(int fd);

/** Crash-safe replacement of @p name in @p dirfd by the @p len bytes at
 *  @p buf, or by @p len zero bytes when @p buf is NULL (see
 *  store_atomic_write()). */
int store__atomic_write_at(int dirfd, const char *name, const void *buf, size_t len);

/** Reads the regular file @p name in @p dirfd (not following a symlink) into
 *  a malloc'd buffer; -EFBIG when it is longer than @p max. */
int store__read_at(int dirfd, const char *name, size_t max, uint8_t **buf, size_t *len);

/** Unlinks @p name in @p dirfd and fsyncs @p dirfd; -ENOENT if missing. */
int store__unlink_at(int dirfd, const char *name);

/** Opens the folder @p name below @p dirfd without following a symlink;
 *  creates it first when @p create. Returns the fd or -errno: -ELOOP for a
 *  symlink, -ENOTDIR for another non-folder. */
int store__open_dir_at(int dirfd, const char *name, bool create);

/** Calls @p cb for every entry of @p dirfd but "." and "..", with its
 *  lstat, and descends into folders (not symlinks) @p depth levels deep.
 *  Stops at the first non-zero return of @p cb and returns it. */
int store__walk(int dirfd, int depth,
                int (*cb)(int dirfd, const char *name, const struct stat *st, void *ud), void *ud);

/** Removes the temporary files in @p dirfd, @p depth folder levels deep. */
int store__remove_tmp(int dirfd, int depth);

/** Whether @p key is a valid settings key or record name. */
bool store__valid_key(const char *key);

#endif /* DFOTA_STORE_INT_H */
