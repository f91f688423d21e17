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

/* A file streamed from the loop to the store's workers (store_stream.c):
 * the slot's package, an EFS upload. Chunks are gathered in buffers of
 * STORE_STREAM_BUF bytes, each full buffer written by a work item, so the
 * loop thread only copies. The loop's fields are used on the loop thread
 * only; the worker's only by the stream's work items, which the store's
 * queue runs one at a time. A writer embeds its stream as its first
 * member, so the callbacks below may cast it back. */
#define STORE_STREAM_BUF (256u * 1024u)

struct store_stream {
    struct store *s;
    uint64_t limit;                                        /* the most the file may take */
    int full;                                              /* the error of a chunk past it */
    int (*create)(struct store_stream *st);                /* worker: opens fd, first chunk */
    int (*end_run)(struct store_stream *st);               /* worker: the last item */
    void (*end_done)(struct store_stream *st, int result); /* loop */
    /* loop */
    uint64_t taken; /* in the file, queued, or in fill */
    uint8_t *fill;  /* the buffer being filled, fill_len bytes of it */
    size_t fill_len;
    int err; /* the first failure: every later write says it */
    uint64_t queued;           /* handed to workers, not yet in the file */
    void (*drained)(void *ud); /* the backlog went down to STORE_SLOT_BACKLOG_LOW */
    void *drained_ud;
    /* worker */
    int fd;           /* -1 until create() made the file */
    uint64_t flushed; /* in the file */
    int werr;         /* a failed write: the chunks after it are dropped */
};

/** Starts @p st for a file that may take @p limit bytes (a chunk past it
 *  gets @p full); @p fd is the open file, or -1 for @p create to make on a
 *  worker when the first buffer goes out. Errors: -ENOTCONN (the store has
 *  no loop), -ENOMEM. */
int store__stream_init(struct store_stream *st, struct store *s, uint64_t limit, int full, int fd,
                       int (*create)(struct store_stream *st));

/** Takes the @p len bytes at @p buf (copied); never waits for a worker. A
 *  chunk past the limit is not taken (the stream's @p full error); once a
 *  worker's write failed, this and every later call says that error and
 *  the bytes not in the file are dropped (taken is cut back to them). */
int store__stream_write(struct store_stream *st, const void *buf, size_t len);

/** Ends @p st: queues what it still holds (unless @p drop), then @p run on a
 *  worker after every chunk, then @p done on the loop with @p run's result
 *  or else the stream's first error. The buffer is freed before @p done;
 *  @p done frees the writer. */
void store__stream_end(struct store_stream *st, bool drop, int (*run)(struct store_stream *st),
                       void (*done)(struct store_stream *st, int result));

struct store {
    char *dir;
    uv_loop_t *loop;
    struct store_work *q_head, **q_tail; /* waiting, oldest first */
    struct store_work *q_running;        /* on a worker, or NULL */
    int root_fd;                         /* the state directory; holds the flock */
    int rec_fd;                          /* records/ */
    int slot_fd;                         /* slot/ */
    int fw_fd;                           /* fw/ */
    int ufs_fd;                          /* efs/ufs/ */
    int dtx_fd;                          /* efs/datatx/ */
    uint64_t efs_budget;
    struct store_kv *kv; /* settings, sorted by key */
    size_t n_kv;
    struct store_slot_writer *slot_writer; /* the open slot writer, or NULL */
    struct store_efs_writer *efs_writers;  /* open EFS writers, a list */
    unsigned n_writers;                    /* open slot and EFS writers */
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
