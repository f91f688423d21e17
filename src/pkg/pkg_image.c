/* pkg_image.c - deterministic firmware images that stand in for releases.
 *
 * An image is laid out like a small Cortex-M firmware:
 *
 *   0x000  image header: magic "DFOTAIMG", format, size, version string
 *   0x080  vector table: addresses of the first functions
 *   0x200  code: functions of Thumb-like instructions, each followed by a
 *          literal pool (constants, addresses of strings)
 *          rodata: a banner with the version, then NUL-terminated strings
 *          0xFF up to the image size (erased flash)
 *
 * Every image of one size starts from the same base: a list of function
 * slots and strings derived from a fixed product seed. A version then
 * removes, rewrites, patches and inserts a few percent of them, chosen by a
 * hash of the version string. Calls are PC-relative and literal pools hold
 * absolute addresses, so code that moves changes bytes far from any edit,
 * as in real releases: the delta between two versions is a modest fraction
 * of the image, neither empty nor the whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkg_int.h"

#define IMG_MAGIC "DFOTAIMG"
#define IMG_FORMAT 1
#define IMG_OFF_FORMAT 8
#define IMG_OFF_SIZE 12
#define IMG_OFF_VERSION 16
#define IMG_OFF_VECTORS 0x80
#define IMG_OFF_CODE 0x200
#define IMG_VECTORS ((IMG_OFF_CODE - IMG_OFF_VECTORS) / 4)
#define IMG_LOAD_ADDR 0x08000000u

#define PRODUCT_SEED 0x42473935u /* "BG95" */

/* Per 10000 slots of a version: how many it removes, patches (a few
 * instructions changed), rewrites, and how many new functions it inserts.
 * The same for strings. */
#define VER_REMOVE 120
#define VER_PATCH 600
#define VER_REWRITE 120
#define VER_INSERT 120
#define VER_STR_CHANGE 300
#define VER_STR_INSERT 100

#define NEAR_CALL_SPAN 8 /* a call goes to a function at most this many slots away */
#define N_IDIOMS 64

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t a, uint64_t b, uint64_t c)
{
    return mix64(a ^ mix64(b ^ mix64(c)));
}

struct rng {
    uint64_t s;
};

static uint32_t rnd(struct rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(mix64(r->s) >> 32);
}

/* Uniform in [0, n). */
static uint32_t rnd_below(struct rng *r, uint32_t n)
{
    return (uint32_t)(((uint64_t)rnd(r) * n) >> 32);
}

/* Writes clipped to the image; positions count on past its end so that a
 * sizing pass (buf NULL) and the writing pass agree. */
struct out {
    uint8_t *buf;
    size_t cap;
    size_t pos;
};

static void put8(struct out *o, uint8_t b)
{
    if (o->buf && o->pos < o->cap)
        o->buf[o->pos] = b;
    o->pos++;
}

static void put16(struct out *o, uint16_t v)
{
    put8(o, (uint8_t)v);
    put8(o, (uint8_t)(v >> 8));
}

static void put32(struct out *o, uint32_t v)
{
    put16(o, (uint16_t)v);
    put16(o, (uint16_t)(v >> 16));
}

static void align(struct out *o, size_t a, uint8_t fill)
{
    while (o->pos % a)
        put8(o, fill);
}

/* One function of a version's code: which base slot it stands in, the seed
 * of its instructions and, for a patched one, the seed of the patch. */
struct fn {
    uint32_t slot;
    uint64_t seed;
    uint64_t patch; /* 0: as in the base */
};

struct gen {
    uint64_t vhash; /* of the version string */
    uint32_t n_slots, n_strings;
    struct fn *fns;
    size_t n_fns;
    uint32_t *slot_addr; /* NULL in a sizing pass */
    uint32_t *str_addr;
};

/* --- instructions ------------------------------------------------------- */

static uint32_t reg(struct rng *r)
{
    /* low registers, r0-r3 most often */
    uint32_t x = rnd_below(r, 16);
    return x < 10 ? x % 4 : x % 8;
}

static uint32_t small_imm(struct rng *r)
{
    uint32_t x = rnd_below(r, 16);
    return x < 12 ? x : rnd_below(r, 256);
}

/* A simple 16-bit instruction (no call, no literal). */
static uint16_t simple_insn(struct rng *r)
{
    switch (rnd_below(r, 10)) {
    case 0:
    case 1:
        return (uint16_t)(0x2000 | reg(r) << 8 | small_imm(r)); /* movs rd, #imm */
    case 2:
    case 3:
        return (uint16_t)(0x6800 | rnd_below(r, 8) << 6 | reg(r) << 3 | reg(r)); /* ldr */
    case 4:
        return (uint16_t)(0x6000 | rnd_below(r, 8) << 6 | reg(r) << 3 | reg(r)); /* str */
    case 5:
        return (uint16_t)(0x1800 | reg(r) << 6 | reg(r) << 3 | reg(r)); /* adds */
    case 6:
        return (uint16_t)(0x2800 | reg(r) << 8 | small_imm(r)); /* cmp */
    case 7:
        return (uint16_t)(0xd000 | rnd_below(r, 14) << 8 | rnd_below(r, 24)); /* b<cond> */
    case 8:
        return (uint16_t)(0x4600 | reg(r) << 3 | reg(r)); /* mov */
    default:
        return (uint16_t)(0x0000 | rnd_below(r, 8) << 6 | reg(r) << 3 | reg(r)); /* lsls */
    }
}

/* The idioms: short instruction sequences every function may repeat, as
 * compiled code repeats its prologues, loads and loops. */
static void emit_idiom(struct out *o, uint32_t k)
{
    struct rng r = {hash3(PRODUCT_SEED, 0x1d10, k)};
    uint32_t n = 3 + rnd_below(&r, 6);
    for (uint32_t i = 0; i < n; i++)
        put16(o, simple_insn(&r));
}

static uint32_t slot_address(const struct gen *g, uint32_t slot)
{
    return g->slot_addr ? g->slot_addr[slot] : 0;
}

/* A call from the function at @p pc (standing in for @p slot). */
static void emit_call(struct out *o, const struct gen *g, struct rng *r, uint32_t slot)
{
    uint32_t target;
    if (rnd_below(r, 10) < 7) {
        int64_t t = (int64_t)slot + (int64_t)rnd_below(r, 2 * NEAR_CALL_SPAN + 1) - NEAR_CALL_SPAN;
        if (t < 0)
            t = 0;
        if (t >= (int64_t)g->n_slots)
            t = g->n_slots - 1;
        target = (uint32_t)t;
    } else {
        /* the core library: the first slots */
        uint32_t core = g->n_slots < 64 ? g->n_slots : 64;
        target = rnd_below(r, core);
    }
    uint32_t pc = IMG_LOAD_ADDR + (uint32_t)o->pos + 4;
    uint32_t off = slot_address(g, target) - pc;
    put16(o, (uint16_t)(0xf000 | ((off >> 12) & 0x7ff)));
    put16(o, (uint16_t)(0xf800 | ((off >> 1) & 0x7ff)));
}

/* A literal pool word: the address of a string, a peripheral register, or
 * a constant. */
static uint32_t literal(const struct gen *g, struct rng *r)
{
    uint32_t k = rnd_below(r, 10);
    if (k < 5)
        return g->str_addr ? g->str_addr[rnd_below(r, g->n_strings)] : 0;
    if (k < 8)
        return 0x40000000u + rnd_below(r, 64) * 0x400 + 4 * rnd_below(r, 16);
    return rnd(r);
}

/* One instruction of a body: simple, idiom, call or literal load. */
static void emit_insn(struct out *o, const struct gen *g, struct rng *r, uint32_t slot,
                      uint32_t *n_lit)
{
    uint32_t k = rnd_below(r, 100);
    if (k < 8) {
        emit_call(o, g, r, slot);
    } else if (k < 13 && *n_lit < 32) {
        put16(o, (uint16_t)(0x4800 | reg(r) << 8 | *n_lit));
        ++*n_lit;
    } else if (k < 30) {
        emit_idiom(o, rnd_below(r, N_IDIOMS));
    } else {
        put16(o, simple_insn(r));
    }
}

static uint32_t body_length(struct rng *r)
{
    uint32_t k = rnd_below(r, 100);
    if (k < 70)
        return 6 + rnd_below(r, 50);
    if (k < 95)
        return 50 + rnd_below(r, 250);
    return 300 + rnd_below(r, 1200);
}

/* Emits one function: prologue, body (with the patch's edits), epilogue,
 * literal pool. The literal words come from their own generator so that a
 * patch does not change the whole pool. */
static void emit_function(struct out *o, const struct gen *g, const struct fn *f)
{
    struct rng r = {f->seed};
    struct rng lit = {f->seed ^ 0x11711u};
    struct rng p = {f->patch};
    uint32_t n = body_length(&r);
    uint32_t n_lit = 0;
    /* a patch: up to three places where instructions are replaced, added
     * or dropped */
    uint32_t edit_at[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX};
    uint32_t edit_kind[3] = {0}, edit_len[3] = {0};
    if (f->patch) {
        uint32_t ne = 1 + rnd_below(&p, 3);
        for (uint32_t e = 0; e < ne; e++) {
            edit_at[e] = rnd_below(&p, n);
            edit_kind[e] = rnd_below(&p, 3);
            edit_len[e] = 1 + rnd_below(&p, 6);
        }
    }

    put16(o, (uint16_t)(0xb500 | (0xf0 & (rnd(&r) | 0x10)))); /* push {..., lr} */
    uint32_t skip = 0;
    for (uint32_t i = 0; i < n; i++) {
        for (int e = 0; e < 3; e++) {
            if (edit_at[e] != i)
                continue;
            if (edit_kind[e] != 1) /* replace or drop */
                skip += edit_len[e];
            if (edit_kind[e] != 2) /* replace or add */
                for (uint32_t k = 0; k < edit_len[e]; k++)
                    emit_insn(o, g, &p, f->slot, &n_lit);
        }
        if (skip) {
            /* still draw it, so that what follows is the base's */
            struct out none = {NULL, 0, o->pos};
            emit_insn(&none, g, &r, f->slot, &n_lit);
            skip--;
            continue;
        }
        emit_insn(o, g, &r, f->slot, &n_lit);
    }
    put16(o, 0xbd00 | 0xf0); /* pop {..., pc} */
    align(o, 4, 0x00);
    for (uint32_t i = 0; i < n_lit; i++)
        put32(o, literal(g, &lit));
}

/* --- strings ------------------------------------------------------------ */

static const char *const words[] = {
    "init",   "modem",   "fota",   "error",  "timeout", "retry",  "socket", "http",
    "coap",   "nand",    "flash",  "write",  "read",    "failed", "ok",     "state",
    "urc",    "at",      "cmd",    "buffer", "len",     "%d",     "%s",     "0x%08x",
    "apn",    "pdp",     "attach", "detach", "rssi",    "cell",   "band",   "lte",
    "nb-iot", "cat-m1",  "gnss",   "fix",    "power",   "sleep",  "wake",   "reset",
    "update", "package", "delta",  "check",  "version", "image",  "boot",   "slot",
    "efs",    "file",    "open",   "close",  "tls",     "cert",   "key",    "queue",
    "task",   "mutex",   "event",  "signal", "sim",     "pin",    "imei",   "network",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static void emit_string(struct out *o, uint64_t seed)
{
    struct rng r = {seed};
    uint32_t n = 2 + rnd_below(&r, 6);
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            put8(o, rnd_below(&r, 4) ? ' ' : '_');
        for (const char *w = words[rnd_below(&r, N_WORDS)]; *w; w++)
            put8(o, (uint8_t)*w);
    }
    put8(o, '\n');
    put8(o, 0);
    align(o, 4, 0);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

/* What a version does to slot or string @p i: a number below 10000. */
static uint32_t roll(uint64_t vhash, uint32_t i, uint32_t what)
{
    return (uint32_t)(hash3(vhash, i, what) % 10000);
}

/* Emits the rodata: the banner, then every string, recording addresses. */
static void emit_rodata(struct out *o, const struct gen *g, const char *version, uint32_t *addr)
{
    static const char banner[] = "Quectel dfota-sim firmware ";
    for (const char *c = banner; *c; c++)
        put8(o, (uint8_t)*c);
    for (const char *c = version; *c; c++)
        put8(o, (uint8_t)*c);
    put8(o, 0);
    align(o, 4, 0);
    for (uint32_t s = 0; s < g->n_strings; s++) {
        uint64_t seed = hash3(PRODUCT_SEED, 0x5781, s);
        if (roll(g->vhash, s, 5) < VER_STR_CHANGE)
            seed = hash3(g->vhash, s, 6);
        if (addr)
            addr[s] = IMG_LOAD_ADDR + (uint32_t)o->pos;
        emit_string(o, seed);
        if (roll(g->vhash, s, 7) < VER_STR_INSERT)
            emit_string(o, hash3(g->vhash, s, 8));
    }
}

/* The function list of a version: the base slots, less removed ones, with
 * rewrites, patches and insertions. */
static void plan_functions(struct gen *g)
{
    g->n_fns = 0;
    for (uint32_t j = 0; j < g->n_slots; j++) {
        uint32_t u = roll(g->vhash, j, 1);
        struct fn f = {j, hash3(PRODUCT_SEED, 0xf00, j), 0};
        /* the vector table's functions stay */
        bool removed = u < VER_REMOVE && j >= IMG_VECTORS;
        if (u >= VER_REMOVE && u < VER_REMOVE + VER_PATCH)
            f.patch = hash3(g->vhash, j, 2) | 1;
        else if (u >= VER_REMOVE + VER_PATCH && u < VER_REMOVE + VER_PATCH + VER_REWRITE)
            f.seed = hash3(g->vhash, j, 3);
        if (!removed)
            g->fns[g->n_fns++] = f;
        if (roll(g->vhash, j, 4) < VER_INSERT)
            g->fns[g->n_fns++] = (struct fn){j, hash3(g->vhash, j, 9), 0};
    }
}

/* Emits the code; when @p first_addr is not NULL records, per slot, the
 * address of the first function standing in for it. */
static void emit_code(struct out *o, const struct gen *g, uint32_t *first_addr)
{
    for (size_t i = 0; i < g->n_fns; i++) {
        align(o, 4, 0x00);
        uint32_t *a = first_addr ? &first_addr[g->fns[i].slot] : NULL;
        if (a && *a == UINT32_MAX)
            *a = (IMG_LOAD_ADDR + (uint32_t)o->pos) | 1; /* Thumb bit */
        emit_function(o, g, &g->fns[i]);
    }
    align(o, 16, 0x00);
}

/* Picks how many base slots and strings fill an image of @p size. */
static void size_base(struct gen *g, size_t size)
{
    size_t code_budget = size / 100 * 74, str_budget = size / 100 * 12;
    struct out o = {NULL, 0, 0};
    g->n_strings = 0;
    while (o.pos < str_budget)
        emit_string(&o, hash3(PRODUCT_SEED, 0x5781, g->n_strings++));
    /* sizes do not depend on call targets or literals, so measure with
     * none */
    g->n_slots = 1; /* any non-zero count, for the call target clamp */
    o.pos = 0;
    uint32_t n = 0;
    while (o.pos < code_budget) {
        struct fn f = {n, hash3(PRODUCT_SEED, 0xf00, n), 0};
        emit_function(&o, g, &f);
        align(&o, 4, 0);
        n++;
    }
    g->n_slots = n;
}

int pkg_image_generate(const char *version, size_t size, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return -EINVAL;
    int rc = pkg_version_check(version);
    if (rc)
        return rc;
    if (size == 0)
        size = PKG_IMAGE_DEFAULT_SIZE;
    if (size < PKG_IMAGE_MIN_SIZE)
        return -EINVAL;
    if (size > PKG_IMAGE_MAX_SIZE)
        return -EFBIG;

    struct gen g = {.vhash = fnv1a(version) | 1};
    size_base(&g, size);
    uint8_t *img = malloc(size);
    g.fns = calloc(2 * (size_t)g.n_slots, sizeof(*g.fns));
    g.slot_addr = calloc(g.n_slots, sizeof(*g.slot_addr));
    g.str_addr = calloc(g.n_strings, sizeof(*g.str_addr));
    if (!img || !g.fns || !g.slot_addr || !g.str_addr) {
        rc = -ENOMEM;
        goto out;
    }
    plan_functions(&g);

    /* pass 1: where every function and string lands (sizes do not depend
     * on addresses) */
    uint32_t *slot_addr = g.slot_addr, *str_addr = g.str_addr;
    g.slot_addr = NULL;
    g.str_addr = NULL;
    struct out o = {NULL, 0, IMG_OFF_CODE};
    for (uint32_t j = 0; j < g.n_slots; j++)
        slot_addr[j] = UINT32_MAX;
    emit_code(&o, &g, slot_addr);
    emit_rodata(&o, &g, version, str_addr);
    /* a removed slot's callers call the next function instead */
    uint32_t next = IMG_LOAD_ADDR | 1;
    for (uint32_t j = g.n_slots; j-- > 0;) {
        if (slot_addr[j] == UINT32_MAX)
            slot_addr[j] = next;
        next = slot_addr[j];
    }
    g.slot_addr = slot_addr;
    g.str_addr = str_addr;

    /* pass 2: the bytes */
    memset(img, 0xff, size);
    o = (struct out){img, size, 0};
    for (const char *c = IMG_MAGIC; *c; c++)
        put8(&o, (uint8_t)*c);
    put32(&o, IMG_FORMAT);
    put32(&o, (uint32_t)size);
    size_t vlen = strlen(version);
    for (size_t i = 0; i < PKG_VERSION_FIELD; i++)
        put8(&o, (uint8_t)(i < vlen ? version[i] : 0));
    o.pos = IMG_OFF_VECTORS;
    put32(&o, IMG_LOAD_ADDR + (uint32_t)size); /* initial stack pointer */
    for (uint32_t v = 1; v < IMG_VECTORS; v++)
        put32(&o, g.slot_addr[v % g.n_slots]);
    emit_code(&o, &g, NULL);
    emit_rodata(&o, &g, version, NULL);

    *out = img;
    *out_len = size;
    img = NULL;
    rc = 0;
out:
    free(img);
    free(g.fns);
    free(g.slot_addr);
    free(g.str_addr);
    return rc;
}

int pkg_image_version(const uint8_t *img, size_t len, char *out, size_t cap)
{
    char v[PKG_VERSION_FIELD];
    if (!img || len < IMG_OFF_VERSION + PKG_VERSION_FIELD || memcmp(img, IMG_MAGIC, 8) ||
        pkg_get_le32(img + IMG_OFF_FORMAT) != IMG_FORMAT ||
        pkg_version_field_get(img + IMG_OFF_VERSION, v))
        return -ENOENT;
    size_t n = strlen(v);
    if (!out || cap <= n)
        return -ENOSPC;
    memcpy(out, v, n + 1);
    return 0;
}
