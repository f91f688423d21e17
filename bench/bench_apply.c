/* bench_apply.c - delta apply throughput: our block-by-block applier beside
 * `zstd -d --patch-from` on the same source and target images.
 *
 *   bench_apply [IMAGE_BYTES [RUNS]]     (default 4 MiB, 10 runs)
 *
 * Both are timed best of RUNS, in MB/s of target image. Ours runs in
 * memory (the module holds both images); the zstd CLI is timed as a whole
 * subprocess (start-up and file I/O included), so the ratio flatters ours
 * on small images. Temporary files live in a mkdtemp directory that is
 * removed at the end.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zstd.h>

#include "dfota/pkg.h"

extern char **environ;

#define SRC_VERSION "BG95M3LAR02A03_01.200.01.200"
#define DST_VERSION "BG95M3LAR02A03_01.201.01.201"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void row(const char *what, double mb, double secs, const char *note)
{
    printf("%-28s %8.1f MB/s  %7.2f ms  %s\n", what, mb / secs, secs * 1e3, note);
}

/* Runs argv (searched in PATH) and waits; returns its exit status or -1. */
static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ))
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct files {
    char dir[64];
    char src[96], dst[96], delta[96], out[96];
};

static void cleanup(const struct files *f)
{
    unlink(f->src);
    unlink(f->dst);
    unlink(f->delta);
    unlink(f->out);
    rmdir(f->dir);
}

/* Our apply: every block of @p p into @p out, best of @p runs. */
static double bench_ours(const struct pkg *p, const uint8_t *src, size_t src_len, uint8_t *out,
                         int runs, double *with_checks)
{
    double best = 1e9, best_full = 1e9;
    const struct pkg_info *in = pkg_get_info(p);
    for (int r = 0; r < runs; r++) {
        struct pkg_applier *a;
        double t0 = now();
        if (pkg_applier_new(p, src, src_len, &a))
            return -1;
        double t1 = now();
        size_t off = 0;
        for (uint32_t i = 0; i < in->block_count; i++) {
            size_t n;
            if (pkg_apply_block(a, i, out + off, in->dst_size - off, &n)) {
                pkg_applier_free(a);
                return -1;
            }
            off += n;
        }
        double t2 = now();
        uint8_t sha[32];
        pkg_sha256(out, off, sha);
        double t3 = now();
        pkg_applier_free(a);
        if (memcmp(sha, in->dst_sha256, 32))
            return -1;
        if (t2 - t1 < best)
            best = t2 - t1;
        if (t3 - t0 < best_full)
            best_full = t3 - t0;
    }
    *with_checks = best_full;
    return best;
}

/* The CLI's delta decoded by libzstd in this process (one frame, whole
 * source as prefix): zstd's own decode speed without process start-up. */
static double bench_zstd_lib(const struct files *f, const uint8_t *src, size_t src_len,
                             uint8_t *out, size_t dst_len, int runs)
{
    uint8_t *delta;
    size_t delta_len;
    if (pkg_file_read(f->delta, SIZE_MAX, &delta, &delta_len))
        return -1;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    double best = 1e9;
    for (int r = 0; dc && r < runs; r++) {
        double t0 = now();
        ZSTD_DCtx_reset(dc, ZSTD_reset_session_only);
        ZSTD_DCtx_setParameter(dc, ZSTD_d_windowLogMax, 31);
        ZSTD_DCtx_refPrefix(dc, src, src_len);
        size_t n = ZSTD_decompressDCtx(dc, out, dst_len, delta, delta_len);
        double t = now() - t0;
        if (ZSTD_isError(n) || n != dst_len) {
            best = -1;
            break;
        }
        if (t < best)
            best = t;
    }
    ZSTD_freeDCtx(dc);
    free(delta);
    return dc ? best : -1;
}

/* The zstd CLI: make the delta once, then time decoding it. */
static double bench_zstd(const struct files *f, const uint8_t *dst, size_t dst_len, int runs,
                         size_t *delta_len)
{
    char patch[128];
    snprintf(patch, sizeof(patch), "--patch-from=%s", f->src);
    char *mk[] = {"zstd", "-qq", "-f", patch, (char *)f->dst, "-o", (char *)f->delta, NULL};
    if (run(mk))
        return -1;
    char *dec[] = {"zstd", "-q", "-d", "-f", patch, (char *)f->delta, "-o", (char *)f->out, NULL};
    double best = 1e9;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        if (run(dec))
            return -1;
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    uint8_t *got, *d;
    size_t got_len;
    if (pkg_file_read(f->out, dst_len + 1, &got, &got_len))
        return -1;
    bool same = got_len == dst_len && !memcmp(got, dst, dst_len);
    free(got);
    if (!same || pkg_file_read(f->delta, SIZE_MAX, &d, delta_len))
        return -1;
    free(d);
    return best;
}

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? strtoull(argv[1], NULL, 0) : PKG_IMAGE_DEFAULT_SIZE;
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    if (runs < 1)
        runs = 1;
    uint8_t *src, *dst, *pkgbuf, *out;
    size_t src_len, dst_len, pkg_len;
    struct pkg *p;
    if (pkg_image_generate(SRC_VERSION, size, &src, &src_len) ||
        pkg_image_generate(DST_VERSION, size, &dst, &dst_len)) {
        fprintf(stderr, "bench_apply: cannot generate images of %zu bytes\n", size);
        return 1;
    }
    double t0 = now();
    if (pkg_build(src, src_len, SRC_VERSION, dst, dst_len, DST_VERSION, &pkgbuf, &pkg_len) ||
        pkg_open(pkgbuf, pkg_len, &p)) {
        fprintf(stderr, "bench_apply: build failed\n");
        return 1;
    }
    double build = now() - t0;
    out = malloc(dst_len);

    struct files f;
    snprintf(f.dir, sizeof(f.dir), "/tmp/bench_apply.XXXXXX");
    if (!out || !mkdtemp(f.dir)) {
        perror("bench_apply: mkdtemp");
        return 1;
    }
    snprintf(f.src, sizeof(f.src), "%s/src.img", f.dir);
    snprintf(f.dst, sizeof(f.dst), "%s/dst.img", f.dir);
    snprintf(f.delta, sizeof(f.delta), "%s/delta.zst", f.dir);
    snprintf(f.out, sizeof(f.out), "%s/out.img", f.dir);

    int rc = 1;
    double full, ours = bench_ours(p, src, src_len, out, runs, &full), zstd = -1;
    size_t zstd_len = 0;
    if (ours < 0) {
        fprintf(stderr, "bench_apply: our apply failed\n");
        goto out;
    }
    if (pkg_file_write(f.src, src, src_len) || pkg_file_write(f.dst, dst, dst_len) ||
        (zstd = bench_zstd(&f, dst, dst_len, runs, &zstd_len)) < 0) {
        fprintf(stderr, "bench_apply: zstd CLI run failed\n");
        goto out;
    }

    double lib = bench_zstd_lib(&f, src, src_len, out, dst_len, runs);
    double mb = (double)dst_len / 1e6;
    printf("image %zu bytes, %u blocks, best of %d runs\n", dst_len, pkg_get_info(p)->block_count,
           runs);
    printf("package   %9zu bytes (%.1f%% of target), built in %.0f ms\n", pkg_len,
           100.0 * (double)pkg_len / (double)dst_len, build * 1e3);
    printf("zstd delta %8zu bytes (%.1f%% of target)\n", zstd_len,
           100.0 * (double)zstd_len / (double)dst_len);
    row("ours, blocks only", mb, ours, "");
    row("ours, with SHA-256 checks", mb, full, "source and target digests");
    row("zstd -d --patch-from (CLI)", mb, zstd, "subprocess, file I/O");
    if (lib > 0)
        row("libzstd, CLI delta", mb, lib, "in process, one frame, no checks");
    printf("ratio ours/zstd CLI: %.2f (blocks only), %.2f (with checks)\n", zstd / ours,
           zstd / full);
    rc = 0;
out:
    cleanup(&f);
    pkg_free(p);
    free(pkgbuf);
    free(src);
    free(dst);
    free(out);
    return rc;
}
