/* fuzz_at.c - libFuzzer target of the AT command set (STYLE.md 14): a real
 * modem (modem_new(), every command table it registers: AT+QFOTADL,
 * AT+QFUPL/QFLST/QFDEL, AT+QCFGEXT, the V.250 and 3GPP commands) on an
 * in-memory UART (port_mem_new()) and a test clock, with a real store in a
 * temporary state dir, is fed arbitrary host bytes.
 *
 * Two state dirs are made per process (on /dev/shm when there is one, so
 * fsync costs nothing) and removed at exit: a pristine one, booted once (a
 * first boot makes the 4 MiB firmware image and the identity), and the one
 * each input runs on, reset to a copy of the pristine one before it. Each
 * input gets a fresh modem, port and clock on it, so an input behaves the
 * same whatever ran before it (a crash file reproduces alone).
 * The modem boots (its boot URCs are taken), then the input is fed as the
 * host sends it, except four control bytes that are never fed:
 *   0x7f  the host pauses: module time advances past the +++ guard time
 *   0x7e  the host drops DTR and raises it again
 *   0x7d  the host closes the port and opens it again
 *   0x7c  the module is powered off and on: closed and made again on the
 *         same state dir (what it saved must load)
 * Between runs of bytes module time advances 1 ms and the loop runs without
 * blocking (UV_RUN_NOWAIT), so timers fire and the completions of work on
 * libuv's threadpool (store writes) land along the way; output is taken and
 * dropped. At the end 10 s of module time pass (in 100 ms steps, each with
 * a turn of the loop: upload timeouts, resets, an update run out), the modem is closed and the
 * loop runs until nothing is left: a handle left open aborts.
 *
 *   CC=clang cmake -S . -B build-fuzz -DDFOTA_FUZZ=ON && cmake --build build-fuzz
 *   mkdir -p /tmp/fuzz_at && build-fuzz/fuzz_at -max_total_time=60 \
 *       -artifact_prefix=/tmp/fuzz_at/ /tmp/fuzz_at tests/fuzz/corpus/fuzz_at
 * (new inputs go to the first dir, crash files to the prefix: not the tree)
 */
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "dfota/clock.h"
#include "dfota/modem.h"
#include "dfota/port.h"

#define CTL_PAUSE 0x7f
#define CTL_DTR 0x7e
#define CTL_REOPEN 0x7d
#define CTL_POWER 0x7c
#define PAUSE_MS 1100 /* past the 1 s +++ guard time */

struct fx {
    uv_loop_t loop;
    struct dclock *clk;
    struct port *p;
    struct modem *m;
    bool closed;
};

static char state_dir[64];  /* where each input's modem runs */
static char pristine[64];   /* a state dir as a first boot leaves it: made once */
static char sink[1 << 16];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    if (ftw->level > 0 && remove(path) != 0)
        abort();
    return 0;
}

/* Empties @p dir (keeps the dir itself). */
static void wipe(const char *dir)
{
    if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        abort();
}

static int copy_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (ftw->level == 0)
        return 0;
    char to[PATH_MAX];
    snprintf(to, sizeof(to), "%s/%s", state_dir, path + strlen(pristine) + 1);
    if (flag == FTW_D)
        return mkdir(to, st->st_mode & 07777) == 0 ? 0 : -1;
    if (flag != FTW_F)
        return -1;
    int in = open(path, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_EXCL, st->st_mode & 07777);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    for (off_t left = st->st_size; rc == 0 && left > 0;) {
        ssize_t n = copy_file_range(in, NULL, out, NULL, (size_t)left, 0);
        if (n <= 0)
            rc = -1;
        else
            left -= n;
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

/* The state dir back to what a first boot left: the firmware image and the
 * identity kept, no setting, package or file of an earlier input. Copying
 * it costs less than a first boot, which makes and hashes a 4 MiB image. */
static void reset_state(void)
{
    wipe(state_dir);
    if (nftw(pristine, copy_entry, 16, FTW_PHYS) != 0)
        abort();
}

static void remove_dirs(void)
{
    wipe(state_dir);
    rmdir(state_dir);
    wipe(pristine);
    rmdir(pristine);
}

static void make_dirs(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(state_dir, sizeof(state_dir), "%s/fuzz_at.XXXXXX", base);
    snprintf(pristine, sizeof(pristine), "%s/fuzz_at.XXXXXX", base);
    if (!mkdtemp(state_dir) || !mkdtemp(pristine))
        abort();
    atexit(remove_dirs);
}

static void on_closed(void *arg)
{
    ((struct fx *)arg)->closed = true;
}

/* Lets @p ms of module time pass in steps of @p step ms, the loop running
 * between, the output taken. */
static void settle(struct fx *f, uint64_t ms, uint64_t step)
{
    for (uint64_t t = 0; t < ms; t += step) {
        dclock_test_advance(f->clk, step);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        port_mem_take(f->p, sink, sizeof(sink));
    }
}

static void power_on(struct fx *f, const char *dir)
{
    struct modem_cfg cfg = {
        .clock = f->clk,
        .uart = f->p,
        .state_dir = dir,
        .profile = "fast",
        .verbose = -1, /* no log: libFuzzer's output stays readable */
    };
    if (modem_new(&f->loop, &cfg, NULL, NULL, &f->m) != 0)
        abort();
    settle(f, 100, 5); /* the fast profile's boot is 65 ms */
}

static void power_off(struct fx *f)
{
    f->closed = false;
    modem_close(f->m, on_closed, f);
    f->m = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (!f->closed)
        abort();
}

/* A fresh clock, port and modem on @p dir, booted. */
static void start(struct fx *f, const char *dir)
{
    f->clk = dclock_new_test(&f->loop);
    if (!f->clk || port_mem_new(f->clk, NULL, NULL, &f->p) != 0)
        abort();
    power_on(f, dir);
}

/* Closes all of it; a handle left on the loop aborts. */
static void stop(struct fx *f)
{
    power_off(f);
    f->closed = false;
    port_close(f->p, on_closed, f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    dclock_close(f->clk, NULL, NULL);
    if (!f->closed || uv_loop_alive(&f->loop))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct fx f;
    if (!state_dir[0]) {
        make_dirs();
        if (uv_loop_init(&f.loop))
            abort();
        /* a first boot on the pristine dir, once */
        start(&f, pristine);
        stop(&f);
    }
    reset_state();
    start(&f, state_dir);

    size_t run = 0;
    for (size_t i = 0; i <= size; i++) {
        bool ctl = i < size && data[i] >= CTL_POWER && data[i] <= CTL_PAUSE;
        if (i < size && !ctl)
            continue;
        if (i > run) {
            port_mem_feed(f.p, data + run, i - run);
            settle(&f, 1, 1);
        }
        run = i + 1;
        if (i == size)
            break;
        switch (data[i]) {
        case CTL_PAUSE:
            settle(&f, PAUSE_MS, 50);
            break;
        case CTL_DTR:
            port_inject_dtr(f.p, false);
            settle(&f, 1, 1);
            port_inject_dtr(f.p, true);
            break;
        case CTL_REOPEN:
            port_mem_set_host(f.p, false);
            settle(&f, 1, 1);
            port_mem_set_host(f.p, true);
            break;
        default: /* CTL_POWER */
            power_off(&f);
            power_on(&f, state_dir);
            break;
        }
    }
    settle(&f, 10000, 100);
    stop(&f);
    return 0;
}
