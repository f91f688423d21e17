/* store.h - the module's non-volatile memory: settings, records, the NAND
 * package slot, the firmware images and the EFS files, in one state
 * directory.
 *
 * Everything written here survives kill -9 of the process at any instant:
 * a file is never torn. Small files are rewritten whole, crash-safe (write a
 * temporary file in the same directory, fsync, rename, fsync the directory);
 * store_open() removes the temporary files a crash left behind. The two
 * streamed files are the exception by design: the NAND slot may hold a
 * partial package after a crash (as a real NAND would), and the update
 * target (fw/new) is written block by block at offsets its caller journals.
 *
 * On-disk layout under the state directory:
 *
 *     settings              "key=value" lines, rewritten whole on every change
 *     records/<name>        checksummed binary records (the update journal)
 *     slot/package          the NAND package slot
 *     fw/current            the running firmware image
 *     fw/new                the image an update is building
 *     efs/ufs/<file>        EFS "UFS:<file>" (flat)
 *     efs/datatx/...        EFS "/datatx/..." (certificates in /datatx/ssl)
 *     .tmp-*                a write in progress (in any of these folders)
 *
 * Every path inside the state directory is opened relative to directory
 * descriptors taken at store_open() and without following symlinks
 * (O_NOFOLLOW per component), so nothing planted in the directory can make
 * the store touch a file outside it.
 *
 * Threading and sharing: a store and its writers belong to one libuv loop
 * (store_cfg.loop). What must be durable runs off the loop thread: the
 * store's work queue (store_submit()) runs items one at a time, in order,
 * on libuv's threadpool, and completes them on the loop; the slot writer,
 * store_set_async() and store_efs_finish() use it, and so does the DFOTA
 * job for its own file work. A function marked "worker-safe" touches only
 * the descriptors the store opened at store_open() and may run in such a
 * work item; every other function is for the loop thread. The synchronous
 * store_set()/store_del() are for start-up and tools (do not mix them with
 * the asynchronous ones on a running store). One store per state
 * directory: store_open() takes an exclusive lock on the directory, a
 * second open of the same directory (in this or another process) fails
 * with -EBUSY. No global state: any number of stores may live in a process.
 *
 * Errors are 0 or a negative errno.
 */
#ifndef DFOTA_STORE_H
#define DFOTA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/** Longest settings key and record name, in bytes. */
#define STORE_KEY_MAX 64
/** Longest settings value, in bytes. */
#define STORE_VAL_MAX 2048
/** Most settings a store keeps. */
#define STORE_SETTINGS_MAX 256
/** Largest record payload, in bytes. */
#define STORE_RECORD_MAX (1024u * 1024u)
/** Largest firmware image (running or update target), in bytes. */
#define STORE_FW_MAX (64u * 1024u * 1024u)
/** Longest EFS name as the host spells it ("UFS:a.txt", "/datatx/ssl/k.pem"),
 *  as Quectel's FILE AT commands limit it. */
#define STORE_EFS_NAME_MAX 80
/** EFS space the emulated module offers when the configuration says 0. */
#define STORE_EFS_DEFAULT_BUDGET (4u * 1024u * 1024u)

struct store;
struct store_slot_writer;
struct store_efs_writer;

/** Configuration of store_open_cfg(); a zeroed struct selects the defaults. */
struct store_cfg {
    uint64_t efs_budget; /**< EFS space in bytes (UFS and /datatx together);
                              0: STORE_EFS_DEFAULT_BUDGET */
    uv_loop_t *loop;     /**< the loop of the asynchronous calls (borrowed; it
                              must outlive the store); NULL: none may be used */
};

/** A completion on the loop: @p result is 0 or a negative errno. */
typedef void (*store_cb)(void *ud, int result);

/* ---- the store ---------------------------------------------------------- */

/** Opens the state directory @p dir with the defaults; see store_open_cfg(). */
int store_open(const char *dir, struct store **out);

/** Opens the state directory @p dir: creates it (mkdir -p) and its layout,
 *  locks it, removes the temporary files a crash left and loads the
 *  settings. @p cfg may be NULL (defaults). On success *@p out is a store the
 *  caller closes with store_close(); @p dir is copied.
 *  Errors: -EBUSY (the directory is open in another store), -ENOTDIR or
 *  -ELOOP (a part of the layout is not a directory), -EFBIG (a settings
 *  file larger than any the store writes), -ENOMEM, or the errno
 *  of a failed mkdir/open. */
int store_open_cfg(const char *dir, const struct store_cfg *cfg, struct store **out);

/** Closes @p s and frees it (NULL is ignored). Every slot and EFS writer of
 *  @p s must have been finished or aborted, and its work queue must be
 *  empty (store_flush() first). */
void store_close(struct store *s);

/* ---- work off the loop thread -------------------------------------------- */

/** Runs @p work(@p ud) on a libuv worker thread, then @p done(@p ud, what
 *  @p work returned) on the loop thread (@p done may be NULL). The work
 *  items of one store, its own writes included, run one at a time in the
 *  order they were submitted, so a later write never overtakes an earlier
 *  one; stores are independent of each other. @p work may call only
 *  worker-safe functions. Returns 0, -ENOMEM or -ENOTCONN (no loop);
 *  nothing is queued on an error. */
int store_submit(struct store *s, int (*work)(void *ud), store_cb done, void *ud);

/** Calls @p cb(@p ud) on the loop once every work item submitted before
 *  this call has completed (on a later turn of the loop, also when none is
 *  queued). Returns 0, -ENOMEM or -ENOTCONN (then @p cb is not called). */
int store_flush(struct store *s, void (*cb)(void *ud), void *ud);

/** Whether work is queued or running. */
bool store_busy(const struct store *s);

/** The state directory @p s was opened on; owned by @p s. */
const char *store_dir(const struct store *s);

/* ---- crash-safe whole files -------------------------------------------- */

/** Replaces the file @p path with the @p len bytes at @p buf, crash-safe:
 *  writes a temporary ".tmp-*" file in the same directory, fsyncs it,
 *  renames it over @p path and fsyncs the directory. After a crash @p path
 *  holds the old or the new content. The temporary file of a crash is
 *  removed by store_open() when it lies in the store's layout. @p buf may be
 *  NULL when @p len is 0. Errors: -EINVAL (no file name), the errno of a
 *  failed open/write/fsync/rename. */
int store_atomic_write(const char *path, const void *buf, size_t len);

/** Reads the whole regular file @p path into a buffer from malloc() that the
 *  caller frees (non-NULL even for an empty file) and its length.
 *  Errors: -ENOENT, -EISDIR or -EINVAL (not a regular file), -ENOMEM, the
 *  errno of a failed read. */
int store_read_all(const char *path, uint8_t **buf, size_t *len);

/* ---- settings ---------------------------------------------------------- */

/** Copies the value of setting @p key, NUL-terminated, into @p val of @p cap
 *  bytes. Errors: -EINVAL (bad key), -ENOENT (not set), -ENOSPC (@p cap too
 *  small; @p val is left untouched). */
int store_get(struct store *s, const char *key, char *val, size_t cap);

/** Sets setting @p key to @p val and rewrites the settings file crash-safe
 *  before returning. Keys are 1..STORE_KEY_MAX bytes of [A-Za-z0-9_.-], not
 *  starting with '.'; values are 0..STORE_VAL_MAX bytes without CR or LF.
 *  Both strings are copied. Errors: -EINVAL (bad key or value), -ENOSPC
 *  (STORE_SETTINGS_MAX settings already), -ENOMEM, write errors (the
 *  setting keeps its old value then). */
int store_set(struct store *s, const char *key, const char *val);

/** Removes setting @p key, rewriting the settings file crash-safe.
 *  Errors: -EINVAL (bad key), -ENOENT (not set), write errors. */
int store_del(struct store *s, const char *key);

/** store_set() with the file written off the loop: the value is set in
 *  memory at once (store_get() sees it) and a snapshot of the settings is
 *  written crash-safe on a worker; @p cb(@p ud, 0 or the write's errno) runs
 *  once that file is in place (a kill -9 can no longer lose the value;
 *  @p cb may be NULL). Validation errors (-EINVAL, -ENOSPC, -ENOMEM,
 *  -ENOTCONN) are returned at once and @p cb is not called. A failed write
 *  leaves the value set in memory; the next write carries it again. */
int store_set_async(struct store *s, const char *key, const char *val, store_cb cb, void *ud);

/** store_del() the same way; -ENOENT at once when @p key is not set. */
int store_del_async(struct store *s, const char *key, store_cb cb, void *ud);

/* ---- records ----------------------------------------------------------- */

/* Records are worker-safe: they touch only the records folder's fd. */

/** Replaces record @p name with the @p len bytes at @p buf (copied; NULL when
 *  @p len is 0), crash-safe, under a CRC-32. Names follow the settings key
 *  rules. Errors: -EINVAL (bad name), -EFBIG (@p len > STORE_RECORD_MAX),
 *  -ENOMEM, write errors. */
int store_record_put(struct store *s, const char *name, const void *buf, size_t len);

/** Copies record @p name into @p buf of @p cap bytes and sets *@p len to its
 *  length. @p buf may be NULL when @p cap is 0 (to learn the length).
 *  Errors: -EINVAL (bad name), -ENOENT (no such record), -EBADMSG (the
 *  record fails its checksum or is malformed), -ENOSPC (@p cap too small;
 *  *@p len still says the length). */
int store_record_get(struct store *s, const char *name, void *buf, size_t cap, size_t *len);

/** Removes record @p name. Errors: -EINVAL (bad name), -ENOENT. */
int store_record_del(struct store *s, const char *name);

/* ---- the NAND package slot --------------------------------------------- */

/** Starts a new package of at most @p capacity bytes (the model's flash
 *  space for a package). No I/O: the package already in the slot stays
 *  untouched until the first byte arrives; then, on a worker, it is erased
 *  (unlinked, as a NAND erase: a symlink planted there goes too), the new
 *  file created and its name made durable. On success *@p out is a writer
 *  the caller ends with store_slot_finish() or store_slot_abort(); it must
 *  not outlive @p s. Errors: -EINVAL (@p capacity 0), -EBUSY (a slot writer
 *  is open), -ENOTCONN (no loop), -ENOMEM. */
int store_slot_begin(struct store *s, uint64_t capacity, struct store_slot_writer **out);

/** Takes the @p len bytes at @p buf (copied): never blocks, never waits for
 *  a worker. Chunks are gathered in 256 KiB buffers, each written to the
 *  file by a work item once full, so a kill -9 during an upload may lose
 *  what is still in memory (as a module losing power loses its RAM). A
 *  chunk that would take the package past the capacity is not taken at
 *  all: -EFBIG. A worker's write error shows at this call or a later one
 *  (the finish included): then the chunks not yet in the file are dropped,
 *  this one too, the file is cut back to what it held and
 *  store_slot_written() says that size. */
int store_slot_write(struct store_slot_writer *w, const void *buf, size_t len);

/** The bytes taken so far through @p w (in the file or about to be). */
uint64_t store_slot_written(const struct store_slot_writer *w);

/** Bytes taken through @p w that are not in the file yet (in memory,
 *  queued for a worker): what a fast door holds back on, since
 *  store_slot_write() never waits. */
uint64_t store_slot_backlog(const struct store_slot_writer *w);

/** Above this backlog a door should stop taking bytes from its peer, and
 *  go on once @p cb of store_slot_on_drain() says it went down to the low
 *  mark. */
#define STORE_SLOT_BACKLOG_HIGH (4u * 1024u * 1024u)
#define STORE_SLOT_BACKLOG_LOW (1u * 1024u * 1024u)

/** @p cb(@p ud) runs on the loop each time the backlog of @p w falls from
 *  above STORE_SLOT_BACKLOG_LOW to it or below (a worker finished a
 *  buffer). NULL stops it. Not called once @p w is finished or aborted. */
void store_slot_on_drain(struct store_slot_writer *w, void (*cb)(void *ud), void *ud);

/** Ends @p w: what it still holds is written on a worker; then
 *  @p cb(@p ud, result, size) runs on the loop once the whole package is
 *  written (a kill -9 of the process can no longer lose it: the page cache
 *  holds it) with 0 or the write's errno and the package's size. The fsync
 *  follows as a further work item (store_flush() waits for it). With no
 *  byte taken nothing is touched, the old package stays, and @p cb gets
 *  (0, 0). @p w is gone when this returns; @p cb may be NULL. */
void store_slot_finish(struct store_slot_writer *w, void (*cb)(void *ud, int result, uint64_t size),
                       void *ud);

/** Ends @p w at a power cut: what was already handed to a worker may still
 *  land (as a NAND keeps what was programmed), what sits in memory is
 *  dropped; no callback. @p w is gone when this returns. */
void store_slot_abort(struct store_slot_writer *w);

/** The size of the package in the slot; 0 when the slot is empty. While a
 *  writer is open: what it has taken so far (store_slot_written()). */
uint64_t store_slot_size(struct store *s);

/** Opens the slot's package read-only for pread() and sets its size.
 *  Worker-safe. Errors: -ENOENT (empty slot), -ELOOP (a symlink planted in
 *  its place: never followed), -EINVAL (not a regular file), open errors. */
int store_slot_open(struct store *s, int *fd, uint64_t *size);

/** Empties the slot (unlink, fsync of the folder). Worker-safe: the caller,
 *  the DFOTA job (the slot's only owner), makes sure no writer is open.
 *  Errors: -ENOENT (already empty), unlink errors. */
int store_slot_delete(struct store *s);

/* ---- firmware images --------------------------------------------------- */

/* Every function of this section is worker-safe. */

/** Opens the running image (store_fw_open) or the update target
 *  (store_fwnew_open) read-only for pread() and sets its size. Errors:
 *  -ENOENT, -ELOOP or -EINVAL (not a regular file), open errors. */
int store_fw_open(struct store *s, int *fd, uint64_t *size);
int store_fwnew_open(struct store *s, int *fd, uint64_t *size);

/** Reads the running firmware image into a buffer from malloc() the caller
 *  frees. Errors: -ENOENT (never written), -ENOMEM, read errors. */
int store_fw_read(struct store *s, uint8_t **buf, size_t *len);

/** Replaces the running firmware image, crash-safe. Errors: -EFBIG
 *  (@p len > STORE_FW_MAX), write errors. */
int store_fw_write(struct store *s, const void *buf, size_t len);

/** Makes the update target @p size bytes long: keeps it, content and all,
 *  when it already has that size (a resumed update); otherwise replaces it
 *  crash-safe with @p size zero bytes. Errors: -EFBIG (@p size >
 *  STORE_FW_MAX), write errors. */
int store_fwnew_begin(struct store *s, uint64_t size);

/** Writes the @p len bytes at @p buf at offset @p off of the update target
 *  and fdatasyncs it: durable when it returns.
 *  Errors: -ENOENT (no target: store_fwnew_begin() first), -EFBIG (past the
 *  size given to store_fwnew_begin()), write errors. */
int store_fwnew_write(struct store *s, uint64_t off, const void *buf, size_t len);

/** Reads the update target into a buffer from malloc() the caller frees.
 *  Errors: -ENOENT (no target), -ENOMEM, read errors. */
int store_fwnew_read(struct store *s, uint8_t **buf, size_t *len);

/** Makes the update target the running image (rename, fsync of the
 *  directory): atomic, and idempotent across a crash: once committed the
 *  target is gone and a second call says -ENOENT.
 *  Errors: -ENOENT (no target), rename errors. */
int store_fwnew_commit(struct store *s);

/** Removes the update target. Errors: -ENOENT (no target). */
int store_fwnew_discard(struct store *s);

/* ---- EFS files --------------------------------------------------------- */

/* Names are spelled as the host spells them: "UFS:<file>" (or a bare
 * "<file>", which is UFS too, as in Quectel's FILE commands) for the flat
 * user file system, "/datatx/<path>" for the APP EFS (certificates in
 * /datatx and /datatx/ssl; folders below /datatx are created on write).
 * Refused with -EINVAL: empty names or components, components starting
 * with '.' (so "." and ".."), control characters, ':' '*' '?' in a file or
 * folder name, '/' in a UFS name, absolute paths outside /datatx. Longer
 * than STORE_EFS_NAME_MAX: -ENAMETOOLONG. */

/** Writes the path in the host's file system of EFS file @p name into
 *  @p path of @p cap bytes (for a library that loads a file by path; mind
 *  that such a load follows symlinks, store_efs_read() does not).
 *  Errors: -EINVAL, -ENAMETOOLONG (bad name), -ENOSPC (@p cap too small). */
int store_efs_resolve(struct store *s, const char *name, char *path, size_t cap);

/** Starts writing EFS file @p name (a QFUPL upload): the data streams into a
 *  temporary file that store_efs_finish() puts in place atomically. The
 *  space it may take is the EFS free space (plus the old file's size when
 *  it replaces one). On success *@p out is a writer the caller ends with
 *  store_efs_finish() or store_efs_abort(); it must not outlive @p s.
 *  Missing folders below /datatx are created here. A symlink planted under
 *  the name is replaced on finish, never written through.
 *  Errors: -EINVAL, -ENAMETOOLONG (bad name), -EEXIST (something has that
 *  name and !@p overwrite), -EISDIR (a folder has that name), -ELOOP (a
 *  symlink where a folder should be), -ENOTDIR (a file where a folder
 *  should be), -ENOTCONN (no loop), -ENOMEM, open errors. */
int store_efs_begin(struct store *s, const char *name, bool overwrite,
                    struct store_efs_writer **out);

/** Takes the @p len bytes at @p buf (copied) as store_slot_write() does:
 *  never blocks, never waits for a worker; the chunks are gathered in
 *  buffers, each written to the temporary file by a work item. A chunk
 *  that would pass the space the file may take is not taken: -ENOSPC, the
 *  part before stays. A worker's write error shows at this call or a later
 *  one, and at the finish (which then keeps no file). */
int store_efs_write(struct store_efs_writer *w, const void *buf, size_t len);

/** On a worker, after what @p w still holds is written: fsyncs the file
 *  and renames it into place (then fsyncs the folder), so the file appears
 *  whole or not at all; then @p cb(@p ud, result) on the loop with 0,
 *  -EEXIST (the file appeared meanwhile and the writer may not overwrite),
 *  a write error of an earlier chunk or an fsync/rename errno (the file is
 *  unchanged then). @p w is gone when this returns; @p cb may be NULL. */
void store_efs_finish(struct store_efs_writer *w, store_cb cb, void *ud);

/** Drops what @p w took (the file keeps its old content, if any); the
 *  temporary file goes on a worker, behind the chunks already queued, and
 *  @p w is freed then (store_flush() waits for it). @p w is not to be used
 *  after this call; NULL is ignored. */
void store_efs_abort(struct store_efs_writer *w);

/** store_efs_delete() on a worker (@p name is copied), then @p cb(@p ud,
 *  result) on the loop. Returns 0, -ENOMEM, -ENOTCONN or -ENAMETOOLONG
 *  (then @p cb is not called). */
int store_efs_delete_async(struct store *s, const char *name, store_cb cb, void *ud);

/** Deletes EFS file @p name. Worker-safe. A name with '*' or '?' in its last part is a
 *  pattern as in store_efs_list() and deletes every file it matches ("*" and
 *  "UFS:*": every UFS file), 0 even when none matches.
 *  A symlink under the name is removed, its target left alone.
 *  Errors: -EINVAL, -ENAMETOOLONG (bad name), -ENOENT (no such file),
 *  -EISDIR (a folder), -ELOOP (a symlink where a folder should be). */
int store_efs_delete(struct store *s, const char *name);

/** Sets *@p size to the size of EFS file @p name.
 *  Errors: -EINVAL, -ENAMETOOLONG (bad name), -ENOENT, -EISDIR, -ELOOP (a
 *  symlink, at the name or where a folder should be). */
int store_efs_size(struct store *s, const char *name, uint64_t *size);

/** Calls @p cb for each EFS file matching @p pattern, in name order, with the
 *  file's name as the host spells it ("UFS:<file>", "/datatx/<path>"; the
 *  string lives until @p cb returns) and its size. A pattern is a name whose
 *  last part may hold '*' (any run) and '?' (one byte): "*" or "UFS:*" is
 *  every UFS file, "/datatx/ssl/\*" every file in /datatx/ssl; folders are
 *  not listed, nor descended into. @p cb returns 0 to go on; another value
 *  stops the listing and is returned. A folder that does not exist lists
 *  nothing. Errors: -EINVAL, -ENAMETOOLONG (bad pattern), -ELOOP (a symlink
 *  where a folder should be), -ENOMEM. */
int store_efs_list(struct store *s, const char *pattern,
                   int (*cb)(void *ud, const char *name, uint64_t size), void *ud);

/** Reads EFS file @p name into a buffer from malloc() the caller frees.
 *  Errors: -EINVAL, -ENAMETOOLONG (bad name), -ENOENT, -EISDIR, -ELOOP (a
 *  symlink, at the name or where a folder should be: never followed),
 *  -ENOMEM, read errors. */
int store_efs_read(struct store *s, const char *name, uint8_t **buf, size_t *len);

/** The free EFS space the emulated module reports: the configured budget
 *  minus the size of every file stored and of what each open writer took
 *  (writes in progress, in memory too), 0 at the least. */
uint64_t store_efs_free(struct store *s);

#endif /* DFOTA_STORE_H */
