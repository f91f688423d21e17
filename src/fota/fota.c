/* fota.c - the DFOTA job: the package sources that fill the NAND slot, the
 * reset-and-update cycle, error codes, journal (see include/dfota/fota.h).
 *
 * The job runs on the loop thread; everything it does to files (the slot,
 * the images, the journal) runs as store_submit() work on libuv's
 * threadpool, one item at a time, and the job's state machine waits for
 * each item's completion before it moves on. A work item owns the data it
 * is given until it completes: the loop does not touch the update's
 * context (struct update) while one runs.
 */
#include "dfota/fota.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dfota/pkg.h"

#define JOURNAL "fota_journal"

/* The job's states (STYLE.md 10). */
enum job_state {
    JOB_IDLE,
    JOB_RECEIVING, /* a package source is open: bytes are coming in */
    JOB_RECEIVED,  /* the source ended: storing (and checking) what came */
    JOB_ARMING,    /* AT+QFOTADL=1 or a trigger: the journal being written */
    JOB_RESETTING, /* RESETTING to print once the journal says so, then the reset */
    JOB_RESET,     /* resetting into DFOTA mode */
    JOB_STARTING,  /* START printed, the package and the image being checked */
    JOB_UPDATING,  /* applying blocks */
    JOB_ENDING,    /* the result being made durable (journal, commit) */
    JOB_END,       /* END printed, the reboot to come */
};

static const char *state_name(enum job_state s)
{
    switch (s) {
    case JOB_IDLE:
        return "idle";
    case JOB_RECEIVING:
        return "receiving";
    case JOB_RECEIVED:
        return "received";
    case JOB_ARMING:
        return "arming";
    case JOB_RESETTING:
        return "resetting";
    case JOB_RESET:
        return "reset";
    case JOB_STARTING:
        return "starting";
    case JOB_UPDATING:
        return "updating";
    case JOB_ENDING:
        return "ending";
    case JOB_END:
        return "end";
    }
    return "?";
}

/* What survives a power cut: where the update is. */
enum journal_state { J_NONE, J_RESETTING, J_UPDATING, J_END };

struct journal {
    enum journal_state state;
    int err;
    uint32_t next, count;
    char target[PKG_VERSION_MAX + 1];
    uint8_t dst_sha[32];
};

/* The update in progress: files and buffers its work items use. */
struct update {
    int slot_fd, src_fd;
    uint64_t pkg_size, src_size;
    struct pkg *pkg; /* NULL: an opaque (vendor) package */
    struct pkg_decoder *dec;
    uint8_t *opaque_img; /* opaque mode: the target image, copied block by block */
    size_t opaque_len;
    uint8_t *frame, *prefix, *block;
    uint32_t block_size;
    uint64_t dst_size;
};

struct fota_src {
    struct fota *f;
    enum fota_src_kind kind;
    struct store_slot_writer *w;
    enum fota_src_end how;
    fota_src_done done;
    void *ud;
    uint64_t size;
    uint64_t room; /* what the slot takes (the capacity, less with a fault) */
    bool cut; /* a power cycle came while the slot was being finished */
};

struct fota {
    struct fota_cfg cfg;
    struct fota_hooks hooks;
    void *ud;
    char firmware[PKG_VERSION_MAX + 1];
    int trigger_mode;
    enum job_state state;
    struct dclock_timer timer;
    struct journal j;
    struct fota_src *src; /* the package coming in */
    struct update *up;    /* the update in progress */
    int last_pct;

    unsigned works; /* store work and slot finishes still to complete */
    bool closing;
    void (*close_cb)(void *arg);
    void *close_arg;
};

static void on_timer(struct dclock_timer *t);

/* ---- tables and URCs ------------------------------------------------- */

const char *fota_err_text(int code)
{
    switch (code) {
#define X(c, name, text)                                                                           \
    case c:                                                                                        \
        return text;
        FOTA_UPDATE_ERR_MAP(X) FOTA_DL_ERR_MAP(X) FOTA_CME_MAP(X)
#undef X
    }
    return NULL;
}

static const char *const stage_text[] = {
#define X(name, text) text,
    FOTA_STAGE_MAP(X)
#undef X
};

const char *fota_urc(char *buf, size_t cap, enum fota_stage stage, int value, bool pct_sign)
{
    bool pct = stage == FOTA_STAGE_UPDATING || stage == FOTA_STAGE_DOWNLOADING;
    if (value < 0)
        snprintf(buf, cap, "+QIND: \"FOTA\",\"%s\"", stage_text[stage]);
    else
        snprintf(buf, cap, "+QIND: \"FOTA\",\"%s\",%d%s", stage_text[stage], value,
                 pct && pct_sign ? "%" : "");
    return buf;
}

int fota_pct_gate(struct fota_pct_gate *g, uint64_t done, uint64_t total, uint64_t now,
                  uint32_t min_ms)
{
    if (!total || done >= total)
        return -1;
    int pct = (int)(done * 100 / total);
    if (pct <= g->last || (g->last >= 0 && now - g->at < min_ms))
        return -1;
    g->last = pct;
    g->at = now;
    return pct;
}

static void urc(struct fota *f, enum fota_stage stage, int value)
{
    char text[96];
    f->hooks.urc(f->ud, fota_urc(text, sizeof(text), stage, value, f->cfg.pct_sign));
}

static void jlog(const struct fota *f, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void jlog(const struct fota *f, int level, const char *fmt, ...)
{
    if (!f->hooks.log)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    f->hooks.log(f->ud, level, msg);
}

/* ---- journal --------------------------------------------------------- */

/* Worker-safe: records touch only the store's fixed descriptors. */
static int journal_put(struct store *s, const struct journal *j)
{
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", j->dst_sha[i]);
    char rec[256];
    int n = snprintf(rec, sizeof(rec), "v1 %d %d %u %u %s %s", (int)j->state, j->err,
                     (unsigned)j->next, (unsigned)j->count, hex, j->target[0] ? j->target : "-");
    return store_record_put(s, JOURNAL, rec, (size_t)n);
}

static int journal_get(struct store *s, struct journal *j)
{
    char rec[256];
    size_t len;
    *j = (struct journal){0};
    int r = store_record_get(s, JOURNAL, rec, sizeof(rec) - 1, &len);
    if (r)
        return r;
    rec[len] = '\0';
    int state, err;
    unsigned next, count;
    char hex[65], target[PKG_VERSION_MAX + 1];
    if (sscanf(rec, "v1 %d %d %u %u %64s %63s", &state, &err, &next, &count, hex, target) != 6 ||
        state < J_RESETTING || state > J_END || strlen(hex) != 64)
        return -EBADMSG;
    j->state = (enum journal_state)state;
    j->err = err;
    j->next = next;
    j->count = count;
    for (int i = 0; i < 32; i++) {
        unsigned b;
        if (sscanf(hex + 2 * i, "%2x", &b) != 1)
            return -EBADMSG;
        j->dst_sha[i] = (uint8_t)b;
    }
    snprintf(j->target, sizeof(j->target), "%s", strcmp(target, "-") ? target : "");
    return 0;
}

/* ---- work off the loop ----------------------------------------------- */

/* One store_submit() item of the job: run() on a worker with what the item
 * carries, then done() on the loop (not once the job is closing). */
struct job_work {
    struct fota *f;
    int (*run)(struct job_work *w);
    void (*done)(struct fota *f, struct job_work *w, int result);
    struct journal j;    /* the journal to write, and what the work made of it */
    struct update *up;   /* the update it works on, if any */
    char firmware[PKG_VERSION_MAX + 1];
    const char *opaque_target;
    struct fota_src *src;
    void (*cb)(void *ud, int result);
    void *cb_ud;
    int fault; /* run_step: the flash fails this block's write with it */
    bool always; /* done() runs even when the job is closing (it frees what it was given) */
};

static void close_now(struct fota *f);

static int work_run(void *ud)
{
    struct job_work *w = ud;
    return w->run(w);
}

static void work_done(void *ud, int result)
{
    struct job_work *w = ud;
    struct fota *f = w->f;
    f->works--;
    if (w->done && (!f->closing || w->always))
        w->done(f, w, result);
    free(w);
    if (f->closing && !f->works)
        close_now(f);
}

/* Queues @p run; on a queueing failure @p done runs at once with -ENOMEM,
 * so a caller has one path for every outcome. */
static void submit(struct fota *f, int (*run)(struct job_work *),
                   void (*done)(struct fota *, struct job_work *, int), struct job_work *proto)
{
    struct job_work *w = malloc(sizeof(*w));
    if (!w) {
        struct job_work tmp = *proto;
        tmp.f = f;
        if (done)
            done(f, &tmp, -ENOMEM);
        return;
    }
    *w = *proto;
    w->f = f;
    w->run = run;
    w->done = done;
    f->works++;
    if (store_submit(f->cfg.store, work_run, work_done, w) != 0) {
        f->works--;
        if (done)
            done(f, w, -ENOMEM);
        free(w);
    }
}

/* ---- lifecycle ------------------------------------------------------- */

int fota_new(const struct fota_cfg *cfg, const struct fota_hooks *hooks, void *ud,
             const char *firmware, struct fota **out)
{
    struct fota *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->cfg = *cfg;
    f->hooks = *hooks;
    f->ud = ud;
    snprintf(f->firmware, sizeof(f->firmware), "%s", firmware);
    f->trigger_mode = 1;
    dclock_timer_init(cfg->clock, &f->timer, on_timer, f);
    *out = f;
    return 0;
}

static void update_free(struct update *u)
{
    if (!u)
        return;
    if (u->slot_fd >= 0)
        close(u->slot_fd);
    if (u->src_fd >= 0)
        close(u->src_fd);
    pkg_free(u->pkg);
    pkg_decoder_free(u->dec);
    free(u->opaque_img);
    free(u->frame);
    free(u->prefix);
    free(u->block);
    free(u);
}

static void close_now(struct fota *f)
{
    void (*cb)(void *) = f->close_cb;
    void *arg = f->close_arg;
    update_free(f->up);
    free(f->src);
    free(f);
    if (cb)
        cb(arg);
}

void fota_close(struct fota *f, void (*cb)(void *arg), void *arg)
{
    if (!f) {
        if (cb)
            cb(arg);
        return;
    }
    dclock_timer_stop(&f->timer);
    f->closing = true;
    f->close_cb = cb;
    f->close_arg = arg;
    if (f->src && f->state == JOB_RECEIVING) {
        store_slot_abort(f->src->w);
        free(f->src);
        f->src = NULL;
    }
    if (!f->works)
        close_now(f);
}

bool fota_busy(const struct fota *f)
{
    return f->state != JOB_IDLE;
}

int fota_trigger_mode(const struct fota *f)
{
    return f->trigger_mode;
}

void fota_set_trigger_mode(struct fota *f, int mode)
{
    f->trigger_mode = mode ? 1 : 0;
}

void fota_power_cycle(struct fota *f)
{
    f->trigger_mode = 1;
    fota_src_forget(f);
}

void fota_get_status(const struct fota *f, struct fota_status *out)
{
    *out = (struct fota_status){.state = state_name(f->state), .percent = -1};
    switch (f->state) {
    case JOB_IDLE:
        break;
    case JOB_RECEIVING:
    case JOB_RECEIVED:
        out->kind = f->src && f->src->kind == FOTA_SRC_COM ? "com" : "download";
        if (f->src && f->state == JOB_RECEIVING)
            out->bytes = store_slot_written(f->src->w);
        break;
    case JOB_UPDATING:
        out->percent = f->last_pct;
        /* fall through */
    case JOB_ARMING:
    case JOB_RESETTING:
    case JOB_RESET:
    case JOB_STARTING:
    case JOB_ENDING:
    case JOB_END:
        out->kind = "update";
        out->block = f->j.next;
        out->count = f->j.count;
        break;
    }
}

const char *fota_firmware(const struct fota *f)
{
    return f->firmware;
}

uint64_t fota_slot_capacity(const struct fota *f)
{
    return f->cfg.slot_capacity;
}

uint64_t fota_slot_size(const struct fota *f)
{
    return store_slot_size(f->cfg.store);
}

int fota_ensure_image(struct fota *f)
{
    int fd;
    uint64_t size;
    int r = store_fw_open(f->cfg.store, &fd, &size);
    if (r == 0) {
        close(fd);
        return 0;
    }
    if (r != -ENOENT)
        return r;
    uint8_t *img;
    size_t len;
    r = pkg_image_generate(f->firmware, 0, &img, &len);
    if (r)
        return r;
    r = store_fw_write(f->cfg.store, img, len);
    free(img);
    return r;
}

/* ---- the state machine ----------------------------------------------- */

static void enter(struct fota *f, enum job_state s, uint32_t delay_ms, const char *event)
{
    if (f->state != s) {
        jlog(f, 2, "job: %s -> %s (%s)", state_name(f->state), state_name(s), event);
        if (f->hooks.state)
            f->hooks.state(f->ud, state_name(f->state), state_name(s), event);
    }
    f->state = s;
    dclock_timer_stop(&f->timer);
    switch (s) {
    case JOB_IDLE:
    case JOB_RECEIVING:
    case JOB_RECEIVED:
    case JOB_ARMING:
    case JOB_STARTING:
    case JOB_ENDING:
        return; /* these wait for a source or a work item, not for time */
    case JOB_RESETTING:
    case JOB_RESET:
    case JOB_UPDATING:
    case JOB_END:
        dclock_timer_start(&f->timer, delay_ms);
        return;
    }
}

/* ---- the slot: delete ------------------------------------------------ */

static int run_slot_delete(struct job_work *w)
{
    int r = store_slot_delete(w->f->cfg.store);
    return r == -ENOENT ? 0 : r; /* an empty slot is deleted already */
}

static void slot_deleted(struct fota *f, struct job_work *w, int result)
{
    (void)f;
    w->cb(w->cb_ud, result);
}

int fota_slot_delete(struct fota *f, void (*cb)(void *ud, int result), void *ud)
{
    if (fota_busy(f))
        return FOTA_CME_BUSY;
    submit(f, run_slot_delete, slot_deleted,
           &(struct job_work){.cb = cb, .cb_ud = ud, .always = true});
    return 0;
}

/* ---- package sources --------------------------------------------------- */

/* The faults' seams: what the flash lets the job do. */
static uint64_t slot_room(const struct fota *f)
{
    const struct fota_fault_ops *o = f->cfg.faults;
    return o && o->slot_room ? o->slot_room(f->cfg.faults_ud, f->cfg.slot_capacity)
                             : f->cfg.slot_capacity;
}

int fota_src_begin(struct fota *f, enum fota_src_kind kind, uint64_t size, struct fota_src **out)
{
    if (fota_busy(f))
        return FOTA_CME_BUSY;
    uint64_t room = slot_room(f);
    if (size > room)
        return kind == FOTA_SRC_COM ? FOTA_CME_PARAM : FOTA_DL_TOO_LARGE;
    struct fota_src *s = calloc(1, sizeof(*s));
    if (!s)
        return FOTA_DL_UNKNOWN;
    /* a full flash (room 0) still opens the slot: the first byte is what
     * does not fit (fota_src_write()) */
    int r = store_slot_begin(f->cfg.store, room ? room : 1, &s->w);
    if (r) {
        free(s);
        jlog(f, 0, "cannot open the package slot: %s", strerror(-r));
        return r == -EBUSY ? FOTA_CME_BUSY : FOTA_DL_UNKNOWN;
    }
    s->f = f;
    s->kind = kind;
    s->room = room;
    f->src = s;
    enter(f, JOB_RECEIVING, 0, kind == FOTA_SRC_COM ? "upload" : "download");
    *out = s;
    return 0;
}

/* The slot_write seam: a failed write, or a byte of @p buf flipped in a
 * copy (*@p copy, to free) that is written instead. */
static int slot_fault(struct fota_src *s, const void **buf, size_t len, uint8_t **copy)
{
    const struct fota_fault_ops *o = s->f->cfg.faults;
    *copy = NULL;
    if (!o || !o->slot_write || !len)
        return 0;
    size_t flip = SIZE_MAX;
    int r = o->slot_write(s->f->cfg.faults_ud, store_slot_written(s->w), len, &flip);
    if (r || flip >= len)
        return r;
    if (!(*copy = malloc(len)))
        return -ENOMEM;
    memcpy(*copy, *buf, len);
    (*copy)[flip] ^= 0x5a;
    *buf = *copy;
    return 0;
}

int fota_src_write(struct fota_src *s, const void *buf, size_t len)
{
    if (store_slot_written(s->w) + len > s->room)
        return FOTA_DL_TOO_LARGE;
    uint8_t *copy;
    int r = slot_fault(s, &buf, len, &copy);
    if (!r)
        r = store_slot_write(s->w, buf, len);
    free(copy);
    if (r == 0)
        return 0;
    if (r == -EFBIG)
        return FOTA_DL_TOO_LARGE;
    jlog(s->f, 0, "package slot write failed: %s", strerror(-r));
    return FOTA_DL_WRITE;
}

uint64_t fota_src_taken(const struct fota_src *s)
{
    return store_slot_written(s->w);
}

int fota_src_expect(struct fota_src *s, uint64_t size)
{
    if (size > s->room) {
        jlog(s->f, 0, "a package of %llu bytes cannot fit the slot's %llu",
             (unsigned long long)size, (unsigned long long)s->room);
        return FOTA_DL_TOO_LARGE;
    }
    return 0;
}

bool fota_src_full(const struct fota_src *s)
{
    return store_slot_backlog(s->w) > STORE_SLOT_BACKLOG_HIGH;
}

void fota_src_on_room(struct fota_src *s, void (*cb)(void *ud), void *ud)
{
    store_slot_on_drain(s->w, cb, ud);
}

/* The source is over with @p result: the door hears it, then the trigger. */
static void src_over(struct fota *f, struct fota_src *s, int result)
{
    f->src = NULL;
    enter(f, JOB_IDLE, 0, result ? "package refused" : "package stored");
    bool cut = s->cut;
    bool trigger = !cut && result == 0 && s->how == FOTA_SRC_COMPLETE && s->size > 0;
    if (!cut && s->done)
        s->done(s->ud, result, s->size);
    free(s);
    if (trigger && f->trigger_mode == 1 && !fota_busy(f))
        fota_start_update(f);
}

/* The package check of a complete download (710): the package's own digest,
 * no source image needed. An opaque package passes when the module is told
 * what it updates to, as it does at the update. */
static int run_check(struct job_work *w)
{
    struct fota *f = w->f;
    int fd;
    uint64_t size;
    int r = store_slot_open(f->cfg.store, &fd, &size);
    if (r)
        return FOTA_DL_CHECK;
    uint8_t head[8];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    if (n > 0 && !pkg_is_ours(head, (size_t)n))
        r = w->opaque_target ? 0 : FOTA_DL_CHECK;
    else
        r = pkg_check_fd(fd, size, NULL) ? FOTA_DL_CHECK : 0;
    close(fd);
    return r;
}

static void checked(struct fota *f, struct job_work *w, int result)
{
    if (result == -ENOMEM)
        result = FOTA_DL_UNKNOWN;
    src_over(f, w->src, result);
}

static void src_stored(void *ud, int result, uint64_t size)
{
    struct fota_src *s = ud;
    struct fota *f = s->f;
    f->works--;
    s->size = size;
    if (f->closing) {
        free(s);
        f->src = NULL;
        if (!f->works)
            close_now(f);
        return;
    }
    if (result) {
        jlog(f, 0, "package slot write failed: %s", strerror(-result));
        src_over(f, s, FOTA_DL_WRITE);
        return;
    }
    if (s->how == FOTA_SRC_COMPLETE && s->kind == FOTA_SRC_DOWNLOAD && !s->cut) {
        submit(f, run_check, checked,
               &(struct job_work){.src = s, .opaque_target = f->cfg.opaque_target});
        return;
    }
    src_over(f, s, 0);
}

void fota_src_end(struct fota_src *s, enum fota_src_end how, fota_src_done done, void *ud)
{
    struct fota *f = s->f;
    if (how == FOTA_SRC_CUT) {
        /* what arrived goes on to the flash, nobody hears of it (a kill
         * -9 loses what is only in memory, as a power cut loses RAM) */
        store_slot_finish(s->w, NULL, NULL);
        f->src = NULL;
        free(s);
        enter(f, JOB_IDLE, 0, "power cut");
        return;
    }
    s->how = how;
    s->done = done;
    s->ud = ud;
    enter(f, JOB_RECEIVED, 0, how == FOTA_SRC_COMPLETE ? "complete" : "stopped");
    f->works++;
    store_slot_finish(s->w, src_stored, s);
}

void fota_src_forget(struct fota *f)
{
    if (f->src && f->state == JOB_RECEIVED)
        f->src->cut = true; /* its store completes, but nobody is told */
}

/* ---- the update cycle -------------------------------------------------- */

static int run_journal(struct job_work *w)
{
    return journal_put(w->f->cfg.store, &w->j);
}

static void resetting_journalled(struct fota *f, struct job_work *w, int result)
{
    (void)w;
    if (result) /* as before a journal existed: the update still runs, a power cut restarts it */
        jlog(f, 0, "cannot write the update journal: %s", strerror(-result));
    urc(f, FOTA_STAGE_RESETTING, -1);
    enter(f, JOB_RESETTING, f->cfg.stage_ms, "journal written");
}

int fota_start_update(struct fota *f)
{
    if (fota_busy(f))
        return FOTA_CME_BUSY;
    f->j = (struct journal){.state = J_RESETTING};
    enter(f, JOB_ARMING, 0, "start");
    submit(f, run_journal, resetting_journalled, &(struct job_work){.j = f->j});
    return 0;
}

static void start_finish(struct fota *f, int err);

/* Reads exactly @p len bytes at @p off: 0, or -EIO on a short read. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

/* Checks the slot's package against the running firmware and prepares the
 * apply (on a worker). Returns 0 or an <update_err>. */
static int prepare_package(struct job_work *w, uint8_t dst_sha[32], char *target, size_t cap)
{
    struct update *u = w->up;
    uint8_t head[8];
    size_t n = u->pkg_size < sizeof(head) ? (size_t)u->pkg_size : sizeof(head);
    if (pread_full(u->slot_fd, head, n, 0))
        return FOTA_PACKAGE_CHECK;
    if (!pkg_is_ours(head, n)) {
        /* a vendor package: accepted only when told what it updates to */
        if (!w->opaque_target)
            return FOTA_PACKAGE_CHECK;
        if (pkg_image_generate(w->opaque_target, (size_t)u->src_size, &u->opaque_img,
                               &u->opaque_len))
            return FOTA_UNKNOWN;
        pkg_sha256(u->opaque_img, u->opaque_len, dst_sha);
        snprintf(target, cap, "%s", w->opaque_target);
        u->block_size = PKG_BLOCK_SIZE;
        u->dst_size = u->opaque_len;
        return 0;
    }
    if (pkg_open_fd(u->slot_fd, u->pkg_size, &u->pkg))
        return FOTA_PACKAGE_CHECK;
    const struct pkg_info *in = pkg_get_info(u->pkg);
    if (strcmp(in->src_version, w->firmware) != 0)
        return FOTA_MISMATCH;
    /* the whole package against its own digest, then the source image */
    if (pkg_check_fd(u->slot_fd, u->pkg_size, NULL))
        return FOTA_PACKAGE_CHECK;
    uint8_t src_sha[32];
    if (u->src_size != in->src_size || pkg_sha256_fd(u->src_fd, u->src_size, src_sha) ||
        memcmp(src_sha, in->src_sha256, 32) != 0)
        return FOTA_MISMATCH;
    size_t max_frame = 0, max_prefix = 1;
    for (uint32_t i = 0; i < in->block_count; i++) {
        struct pkg_block b;
        pkg_block_get(u->pkg, i, &b);
        max_frame = b.frame_len > max_frame ? b.frame_len : max_frame;
        max_prefix = b.prefix_len > max_prefix ? b.prefix_len : max_prefix;
    }
    u->frame = malloc(max_frame);
    u->prefix = malloc(max_prefix);
    if (!u->frame || !u->prefix || pkg_decoder_new(&u->dec))
        return FOTA_UNKNOWN;
    memcpy(dst_sha, in->dst_sha256, 32);
    snprintf(target, cap, "%s", in->dst_version);
    u->block_size = in->block_size;
    u->dst_size = in->dst_size;
    return 0;
}

static int run_prepare(struct job_work *w)
{
    struct store *s = w->f->cfg.store;
    struct update *u = w->up;
    int r = store_slot_open(s, &u->slot_fd, &u->pkg_size);
    if (r == -ENOENT || r == -ELOOP || r == -EINVAL)
        return FOTA_NO_PACKAGE; /* none, or not a file the module wrote */
    if (r)
        return FOTA_UNKNOWN;
    if (store_fw_open(s, &u->src_fd, &u->src_size))
        return FOTA_UNKNOWN;
    uint8_t dst_sha[32];
    char target[PKG_VERSION_MAX + 1];
    int err = prepare_package(w, dst_sha, target, sizeof(target));
    if (err)
        return err;
    u->block = malloc(u->block_size);
    if (!u->block)
        return FOTA_UNKNOWN;
    struct journal *j = &w->j;
    uint32_t count = (uint32_t)((u->dst_size + u->block_size - 1) / u->block_size);
    /* the same update cut short: go on where the journal says */
    bool resume = j->state == J_UPDATING && j->count == count &&
                  memcmp(j->dst_sha, dst_sha, 32) == 0 && strcmp(j->target, target) == 0;
    if (!resume) {
        j->next = 0;
        j->count = count;
        memcpy(j->dst_sha, dst_sha, 32);
        snprintf(j->target, sizeof(j->target), "%s", target);
        store_fwnew_discard(s);
    }
    if (store_fwnew_begin(s, u->dst_size) != 0)
        return FOTA_UPDATE_FAILED;
    /* an update that could not resume after a power cut must not start */
    j->state = J_UPDATING;
    return journal_put(s, j) ? FOTA_UPDATE_FAILED : 0;
}

static uint32_t block_delay(const struct fota *f)
{
    return (uint32_t)((uint64_t)f->cfg.update_ms_per_mb * f->up->block_size / (1u << 20));
}

static void prepared(struct fota *f, struct job_work *w, int result)
{
    if (result == -ENOMEM)
        result = FOTA_UNKNOWN;
    if (result) {
        start_finish(f, result);
        return;
    }
    f->j = w->j;
    f->last_pct = (int)((uint64_t)f->j.next * 100 / f->j.count);
    enter(f, JOB_UPDATING, block_delay(f), "package checked");
}

static void start(struct fota *f)
{
    urc(f, FOTA_STAGE_START, -1);
    enter(f, JOB_STARTING, 0, "reset done");
    struct update *u = calloc(1, sizeof(*u));
    if (!u) {
        start_finish(f, FOTA_UNKNOWN);
        return;
    }
    u->slot_fd = u->src_fd = -1;
    f->up = u;
    const struct fota_fault_ops *o = f->cfg.faults;
    int err = o && o->update_start ? o->update_start(f->cfg.faults_ud) : 0;
    if (err) {
        start_finish(f, err);
        return;
    }
    struct job_work proto = {.j = f->j, .up = u, .opaque_target = f->cfg.opaque_target};
    snprintf(proto.firmware, sizeof(proto.firmware), "%s", f->firmware);
    submit(f, run_prepare, prepared, &proto);
}

/* One block of the update (on a worker): decode, write durably, journal. */
static int run_step(struct job_work *w)
{
    struct fota *f = w->f;
    struct update *u = w->up;
    uint32_t k = w->j.next;
    size_t n;
    if (u->pkg) {
        struct pkg_block b;
        pkg_block_get(u->pkg, k, &b);
        if (pread_full(u->slot_fd, u->frame, b.frame_len, b.frame_off))
            return FOTA_PACKAGE_CHECK;
        if (pread_full(u->src_fd, u->prefix, b.prefix_len, b.prefix_off))
            return FOTA_UPDATE_FAILED;
        if (pkg_decode_block(u->dec, u->pkg, k, u->frame, u->prefix, u->block, u->block_size, &n))
            return FOTA_PACKAGE_CHECK;
    } else {
        uint64_t off = (uint64_t)k * u->block_size;
        n = u->opaque_len - off < u->block_size ? u->opaque_len - off : u->block_size;
        memcpy(u->block, u->opaque_img + off, n);
    }
    int r = w->fault;
    if (!r)
        r = store_fwnew_write(f->cfg.store, (uint64_t)k * u->block_size, u->block, n);
    if (r)
        return FOTA_UPDATE_FAILED;
    w->j.next = k + 1;
    return journal_put(f->cfg.store, &w->j) ? FOTA_UPDATE_FAILED : 0;
}

/* The whole target against the package's digest (on a worker). */
static int run_verify(struct job_work *w)
{
    int fd;
    uint64_t size;
    uint8_t sha[32];
    if (store_fwnew_open(w->f->cfg.store, &fd, &size))
        return FOTA_UPDATE_FAILED;
    int r = pkg_sha256_fd(fd, size, sha);
    close(fd);
    return r == 0 && size == w->up->dst_size && memcmp(sha, w->j.dst_sha, 32) == 0
               ? FOTA_OK
               : FOTA_UPDATE_FAILED;
}

static void verified(struct fota *f, struct job_work *w, int result)
{
    (void)w;
    start_finish(f, result == -ENOMEM ? FOTA_UNKNOWN : result);
}

static void stepped(struct fota *f, struct job_work *w, int result)
{
    if (result) {
        start_finish(f, result == -ENOMEM ? FOTA_UNKNOWN : result);
        return;
    }
    f->j.next = w->j.next;
    /* every percent the applied blocks have passed, as the note's 2.3
     * transcript shows them (a 64-block image passes 1-2 per block) */
    int pct = (int)((uint64_t)f->j.next * 100 / f->j.count);
    while (f->last_pct < pct)
        urc(f, FOTA_STAGE_UPDATING, ++f->last_pct);
    enter(f, JOB_UPDATING, block_delay(f), "block written");
}

static void step(struct fota *f)
{
    struct job_work proto = {.j = f->j, .up = f->up};
    const struct fota_fault_ops *o = f->cfg.faults;
    if (o && o->update_block && f->j.next < f->j.count)
        proto.fault = o->update_block(f->cfg.faults_ud, f->j.next, f->j.count);
    if (f->j.next >= f->j.count)
        submit(f, run_verify, verified, &proto);
    else
        submit(f, run_step, stepped, &proto);
}

/* Makes the result durable (on a worker), idempotent so that a resume from
 * J_END can do it again: the journal first, then what it promises. */
static int run_finish(struct job_work *w)
{
    struct store *s = w->f->cfg.store;
    w->j.state = J_END;
    int r = journal_put(s, &w->j);
    if (r)
        return r;
    if (w->j.err == 0) {
        r = store_fwnew_commit(s);
        if (r && r != -ENOENT)
            return r;
        r = store_slot_delete(s); /* the package is used up */
        return r == -ENOENT ? 0 : r;
    }
    r = store_fwnew_discard(s);
    return r == -ENOENT ? 0 : r;
}

static void settings_written(void *ud, int result)
{
    if (result)
        jlog(ud, 0, "cannot store the new version: %s", strerror(-result));
}

static void finished(struct fota *f, struct job_work *w, int result)
{
    if (result)
        jlog(f, 0, "cannot finish the update cleanly: %s", strerror(-result));
    f->j = w->j;
    if (f->j.err == 0) {
        snprintf(f->firmware, sizeof(f->firmware), "%s", f->j.target);
        int r = store_set_async(f->cfg.store, "firmware", f->j.target, settings_written, f);
        if (r)
            settings_written(f, r);
    }
    update_free(f->up);
    f->up = NULL;
    urc(f, FOTA_STAGE_END, f->j.err);
    enter(f, JOB_END, f->cfg.stage_ms, "result durable");
}

/* Ends the update with @p err. */
static void start_finish(struct fota *f, int err)
{
    f->j.err = err;
    enter(f, JOB_ENDING, 0, err ? "failed" : "verified");
    submit(f, run_finish, finished, &(struct job_work){.j = f->j});
}

static int run_journal_del(struct job_work *w)
{
    int r = store_record_del(w->f->cfg.store, JOURNAL);
    return r == -ENOENT ? 0 : r;
}

static void journal_deleted(struct fota *f, struct job_work *w, int result)
{
    (void)w;
    if (result)
        jlog(f, 0, "cannot remove the update journal: %s", strerror(-result));
    f->j = (struct journal){0};
    enter(f, JOB_IDLE, 0, "reboot");
    f->hooks.reboot(f->ud, f->firmware);
}

static void on_timer(struct dclock_timer *t)
{
    struct fota *f = t->data;
    switch (f->state) {
    case JOB_IDLE:
    case JOB_RECEIVING:
    case JOB_RECEIVED:
    case JOB_ARMING:
    case JOB_STARTING:
    case JOB_ENDING:
        break;
    case JOB_RESETTING:
        f->hooks.enter_dfota(f->ud);
        enter(f, JOB_RESET, f->cfg.reset_ms, "reset");
        break;
    case JOB_RESET:
        start(f);
        break;
    case JOB_UPDATING:
        step(f);
        break;
    case JOB_END:
        submit(f, run_journal_del, journal_deleted, &(struct job_work){0});
        break;
    }
}

bool fota_resume(struct fota *f)
{
    struct journal j;
    int r = journal_get(f->cfg.store, &j);
    if (r == -ENOENT)
        return false;
    if (r) {
        /* cannot happen through our own writes (records are atomic); a
         * journal damaged from outside is dropped, the old firmware kept */
        jlog(f, 0, "update journal unreadable (%s): dropped", strerror(-r));
        submit(f, run_journal_del, NULL, &(struct job_work){0});
        return false;
    }
    f->j = j;
    f->hooks.enter_dfota(f->ud);
    switch (j.state) {
    case J_RESETTING:
    case J_UPDATING:
        enter(f, JOB_RESET, f->cfg.reset_ms, "power on mid-update");
        break;
    case J_END:
        start_finish(f, j.err);
        break;
    case J_NONE:
        break;
    }
    return true;
}
