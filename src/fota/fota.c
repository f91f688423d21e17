/* fota.c - the DFOTA job: reset-and-update cycle, error codes, journal
 * (see include/dfota/fota.h). */
#include "dfota/fota.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfota/pkg.h"

#define JOURNAL "fota_journal"

/* The job's states (STYLE.md 10). */
enum job_state {
    JOB_IDLE,
    JOB_RESETTING, /* RESETTING printed, the module about to reset */
    JOB_RESET,     /* resetting into DFOTA mode */
    JOB_UPDATING,  /* applying blocks */
    JOB_END,       /* END printed, the reboot to come */
};

/* What survives a power cut: where the update is. */
enum journal_state { J_NONE, J_RESETTING, J_UPDATING, J_END };

struct journal {
    enum journal_state state;
    int err;
    uint32_t next, count;
    char target[PKG_VERSION_MAX + 1];
    uint8_t dst_sha[32];
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

    /* the update in progress */
    uint8_t *pkg_buf;
    size_t pkg_len;
    struct pkg *pkg;
    uint8_t *src;
    size_t src_len;
    struct pkg_applier *applier;
    uint8_t *opaque_img; /* opaque mode: the target image, copied block by block */
    size_t opaque_len;
    uint32_t block_size;
    uint64_t dst_size;
    uint8_t *block;
    int last_pct;
};

static void on_timer(struct dclock_timer *t);

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

static void urc(struct fota *f, enum fota_stage stage, int value)
{
    char text[96];
    f->hooks.urc(f->ud, fota_urc(text, sizeof(text), stage, value, f->cfg.pct_sign));
}

/* ---- journal --------------------------------------------------------- */

static int journal_put(struct fota *f)
{
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", f->j.dst_sha[i]);
    char rec[256];
    int n = snprintf(rec, sizeof(rec), "v1 %d %d %u %u %s %s", (int)f->j.state, f->j.err,
                     (unsigned)f->j.next, (unsigned)f->j.count, hex,
                     f->j.target[0] ? f->j.target : "-");
    return store_record_put(f->cfg.store, JOURNAL, rec, (size_t)n);
}

static int journal_get(struct fota *f, struct journal *j)
{
    char rec[256];
    size_t len;
    *j = (struct journal){0};
    int r = store_record_get(f->cfg.store, JOURNAL, rec, sizeof(rec) - 1, &len);
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

static int journal_set(struct fota *f, enum journal_state s)
{
    f->j.state = s;
    int r = journal_put(f);
    if (r)
        fprintf(stderr, "dfota-sim: cannot write the update journal: %s\n", strerror(-r));
    return r;
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

static void release_update(struct fota *f)
{
    pkg_applier_free(f->applier);
    pkg_free(f->pkg);
    free(f->pkg_buf);
    free(f->src);
    free(f->opaque_img);
    free(f->block);
    f->applier = NULL;
    f->pkg = NULL;
    f->pkg_buf = f->src = f->opaque_img = f->block = NULL;
}

void fota_free(struct fota *f)
{
    if (!f)
        return;
    dclock_timer_stop(&f->timer);
    release_update(f);
    free(f);
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
}

const char *fota_firmware(const struct fota *f)
{
    return f->firmware;
}

int fota_ensure_image(struct fota *f)
{
    uint8_t *img;
    size_t len;
    int r = store_fw_read(f->cfg.store, &img, &len);
    if (r == 0) {
        free(img);
        return 0;
    }
    if (r != -ENOENT)
        return r;
    r = pkg_image_generate(f->firmware, 0, &img, &len);
    if (r)
        return r;
    r = store_fw_write(f->cfg.store, img, len);
    free(img);
    return r;
}

/* ---- the cycle ------------------------------------------------------- */

static void enter(struct fota *f, enum job_state s, uint32_t delay_ms)
{
    f->state = s;
    dclock_timer_stop(&f->timer);
    switch (s) {
    case JOB_IDLE:
        return;
    case JOB_RESETTING:
    case JOB_RESET:
    case JOB_UPDATING:
    case JOB_END:
        dclock_timer_start(&f->timer, delay_ms);
        return;
    }
}

int fota_start_update(struct fota *f)
{
    if (fota_busy(f))
        return FOTA_CME_BUSY;
    f->j = (struct journal){0};
    journal_set(f, J_RESETTING);
    urc(f, FOTA_STAGE_RESETTING, -1);
    enter(f, JOB_RESETTING, f->cfg.stage_ms);
    return 0;
}

void fota_package_ready(struct fota *f)
{
    if (f->trigger_mode == 1 && !fota_busy(f))
        fota_start_update(f);
}

/* Ends the update with @p err: the journal first, then what it promises
 * (idempotent, so that a resume from J_END can do it again). */
static void finish(struct fota *f, int err)
{
    f->j.err = err;
    journal_set(f, J_END);
    if (err == 0) {
        int r = store_fwnew_commit(f->cfg.store);
        if (r && r != -ENOENT)
            fprintf(stderr, "dfota-sim: cannot commit the new image: %s\n", strerror(-r));
        r = store_set(f->cfg.store, "firmware", f->j.target);
        if (r)
            fprintf(stderr, "dfota-sim: cannot store the new version: %s\n", strerror(-r));
        snprintf(f->firmware, sizeof(f->firmware), "%s", f->j.target);
        store_slot_delete(f->cfg.store); /* the package is used up */
    } else {
        store_fwnew_discard(f->cfg.store);
    }
    release_update(f);
    urc(f, FOTA_STAGE_END, err);
    enter(f, JOB_END, f->cfg.stage_ms);
}

/* Checks the slot's package against the running firmware and prepares the
 * apply; returns 0 or an <update_err>. */
static int prepare(struct fota *f)
{
    int r = store_slot_read(f->cfg.store, &f->pkg_buf, &f->pkg_len);
    if (r == -ENOENT || (r == 0 && f->pkg_len == 0))
        return FOTA_NO_PACKAGE;
    if (r)
        return FOTA_UNKNOWN;
    r = store_fw_read(f->cfg.store, &f->src, &f->src_len);
    if (r)
        return FOTA_UNKNOWN;
    uint8_t dst_sha[32];
    char target[PKG_VERSION_MAX + 1];
    if (!pkg_is_ours(f->pkg_buf, f->pkg_len)) {
        /* a vendor package: accepted only when told what it updates to */
        if (!f->cfg.opaque_target)
            return FOTA_PACKAGE_CHECK;
        r = pkg_image_generate(f->cfg.opaque_target, f->src_len, &f->opaque_img, &f->opaque_len);
        if (r)
            return FOTA_UNKNOWN;
        pkg_sha256(f->opaque_img, f->opaque_len, dst_sha);
        snprintf(target, sizeof(target), "%s", f->cfg.opaque_target);
        f->block_size = PKG_BLOCK_SIZE;
        f->dst_size = f->opaque_len;
    } else {
        /* the header here; each frame and its digest as its block is applied */
        if (pkg_open(f->pkg_buf, f->pkg_len, &f->pkg))
            return FOTA_PACKAGE_CHECK;
        const struct pkg_info *in = pkg_get_info(f->pkg);
        if (strcmp(in->src_version, f->firmware) != 0)
            return FOTA_MISMATCH;
        r = pkg_applier_new(f->pkg, f->src, f->src_len, &f->applier);
        if (r == -EXDEV)
            return FOTA_MISMATCH;
        if (r)
            return FOTA_PACKAGE_CHECK;
        memcpy(dst_sha, in->dst_sha256, 32);
        snprintf(target, sizeof(target), "%s", in->dst_version);
        f->block_size = in->block_size;
        f->dst_size = in->dst_size;
    }
    uint32_t count = (uint32_t)((f->dst_size + f->block_size - 1) / f->block_size);
    /* the same update cut short: go on where the journal says */
    bool resume = f->j.state == J_UPDATING && f->j.count == count &&
                  memcmp(f->j.dst_sha, dst_sha, 32) == 0 && strcmp(f->j.target, target) == 0;
    if (!resume) {
        f->j.next = 0;
        f->j.count = count;
        memcpy(f->j.dst_sha, dst_sha, 32);
        snprintf(f->j.target, sizeof(f->j.target), "%s", target);
        store_fwnew_discard(f->cfg.store);
    }
    if (store_fwnew_begin(f->cfg.store, f->dst_size) != 0)
        return FOTA_UPDATE_FAILED;
    f->block = malloc(f->block_size);
    if (!f->block)
        return FOTA_UNKNOWN;
    f->last_pct = (int)((uint64_t)f->j.next * 100 / count);
    /* an update that could not resume after a power cut must not start */
    return journal_set(f, J_UPDATING) ? FOTA_UPDATE_FAILED : 0;
}

static uint32_t block_delay(const struct fota *f)
{
    return (uint32_t)((uint64_t)f->cfg.update_ms_per_mb * f->block_size / (1u << 20));
}

static void start(struct fota *f)
{
    urc(f, FOTA_STAGE_START, -1);
    int err = prepare(f);
    if (err) {
        finish(f, err);
        return;
    }
    enter(f, JOB_UPDATING, block_delay(f));
}

/* One block of the update: decode, write durably, journal, report. */
static void step(struct fota *f)
{
    uint32_t k = f->j.next;
    if (k >= f->j.count) {
        uint8_t *img;
        size_t len;
        uint8_t sha[32];
        int ok = store_fwnew_read(f->cfg.store, &img, &len) == 0;
        if (ok) {
            pkg_sha256(img, len, sha);
            ok = len == f->dst_size && memcmp(sha, f->j.dst_sha, 32) == 0;
            free(img);
        }
        finish(f, ok ? FOTA_OK : FOTA_UPDATE_FAILED);
        return;
    }
    size_t n;
    int r;
    if (f->applier) {
        r = pkg_apply_block(f->applier, k, f->block, f->block_size, &n);
        if (r) {
            finish(f, FOTA_PACKAGE_CHECK);
            return;
        }
    } else {
        uint64_t off = (uint64_t)k * f->block_size;
        n = f->opaque_len - off < f->block_size ? f->opaque_len - off : f->block_size;
        memcpy(f->block, f->opaque_img + off, n);
    }
    r = f->cfg.flash_fault ? f->cfg.flash_fault(f->cfg.flash_fault_ud, k) : 0;
    if (!r)
        r = store_fwnew_write(f->cfg.store, (uint64_t)k * f->block_size, f->block, n);
    if (r) {
        finish(f, FOTA_UPDATE_FAILED);
        return;
    }
    f->j.next = k + 1;
    if (journal_set(f, J_UPDATING)) {
        finish(f, FOTA_UPDATE_FAILED);
        return;
    }
    /* every percent the applied blocks have passed, as the note's 2.3
     * transcript shows them (a 64-block image passes 1-2 per block) */
    int pct = (int)((uint64_t)f->j.next * 100 / f->j.count);
    while (f->last_pct < pct)
        urc(f, FOTA_STAGE_UPDATING, ++f->last_pct);
    enter(f, JOB_UPDATING, block_delay(f));
}

static void on_timer(struct dclock_timer *t)
{
    struct fota *f = t->data;
    switch (f->state) {
    case JOB_IDLE:
        break;
    case JOB_RESETTING:
        f->hooks.enter_dfota(f->ud);
        enter(f, JOB_RESET, f->cfg.reset_ms);
        break;
    case JOB_RESET:
        start(f);
        break;
    case JOB_UPDATING:
        step(f);
        break;
    case JOB_END:
        store_record_del(f->cfg.store, JOURNAL);
        f->j = (struct journal){0};
        enter(f, JOB_IDLE, 0);
        f->hooks.reboot(f->ud, f->firmware);
        break;
    }
}

bool fota_resume(struct fota *f)
{
    struct journal j;
    int r = journal_get(f, &j);
    if (r == -ENOENT)
        return false;
    if (r) {
        /* cannot happen through our own writes (records are atomic); a
         * journal damaged from outside is dropped, the old firmware kept */
        fprintf(stderr, "dfota-sim: update journal unreadable (%s): dropped\n", strerror(-r));
        store_record_del(f->cfg.store, JOURNAL);
        return false;
    }
    f->j = j;
    f->hooks.enter_dfota(f->ud);
    switch (j.state) {
    case J_RESETTING:
    case J_UPDATING:
        enter(f, JOB_RESET, f->cfg.reset_ms);
        break;
    case J_END:
        finish(f, j.err);
        break;
    case J_NONE:
        break;
    }
    return true;
}
