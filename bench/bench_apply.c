/* bench_apply.c - delta apply throughput: our block-by-block applier beside
 * `zstd -d --patch-from` on the same source and target images.
 *
 *   bench_apply [IMAGE_BYTES [RUNS]]     (default 4 MiB, 10 runs)
 *
 * Everything is timed best of RUNS, in MB/s of target image. Ours runs in
 * memory (both images held) and, as the DFOTA job does it, from files
 * (pread of one frame and its source prefix at a time); "with all checks"
 * adds the SHA-256 of the source (before) and of the target (after), which
 * go through OpenSSL libcrypto (the CPU's SHA extensions). The zstd CLI is
 * timed as a whole subprocess (start-up and file I/O included), so the
 * ratio flatters ours on small images; libzstd decoding the CLI's delta in
 * process is shown beside it. Prints figures and ratios, asserts nothing.
 * Temporary files live in a mkdtemp directory that is removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    char src[96], dst[96], delta[96], out[96], pkg[96];
};

static void cleanup(const struct files *f)
{
    unlink(f->pkg);
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

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
    return pread(fd, buf, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

/* Our apply as the DFOTA job does it: package and source read from files
 * with pread a block at a time, the source hashed from its file, the target
 * hashed block by block as it is decoded. Best of @p runs. */
static double bench_files(const struct files *f, int runs)
{
    double best = 1e9;
    for (int r = 0; r < runs; r++) {
        int pfd = open(f->pkg, O_RDONLY | O_CLOEXEC), sfd = open(f->src, O_RDONLY | O_CLOEXEC);
        struct stat ps, ss;
        if (pfd < 0 || sfd < 0 || fstat(pfd, &ps) || fstat(sfd, &ss))
            return -1;
        double t0 = now();
        struct pkg *p;
        struct pkg_decoder *d;
        struct pkg_sha256 *h;
        uint8_t sha[32];
        if (pkg_open_fd(pfd, (uint64_t)ps.st_size, &p))
            return -1;
        const struct pkg_info *in = pkg_get_info(p);
        if (pkg_sha256_fd(sfd, (uint64_t)ss.st_size, sha) || memcmp(sha, in->src_sha256, 32) ||
            pkg_decoder_new(&d) || pkg_sha256_new(&h))
            return -1;
        uint8_t *frame = NULL, *prefix = NULL, *blk = malloc(in->block_size);
        int rc = blk ? 0 : -1;
        for (uint32_t i = 0; !rc && i < in->block_count; i++) {
            struct pkg_block b;
            size_t n;
            pkg_block_get(p, i, &b);
            frame = realloc(frame, b.frame_len);
            prefix = realloc(prefix, b.prefix_len ? b.prefix_len : 1);
            rc = !frame || !prefix || pread_all(pfd, frame, b.frame_len, b.frame_off) ||
                 pread_all(sfd, prefix, b.prefix_len, b.prefix_off) ||
                 pkg_decode_block(d, p, i, frame, prefix, blk, in->block_size, &n) ||
                 pkg_sha256_update(h, blk, n);
        }
        if (!rc)
            rc = pkg_sha256_final(h, sha) || memcmp(sha, in->dst_sha256, 32);
        double t = now() - t0;
        free(frame);
        free(prefix);
        free(blk);
        pkg_sha256_free(h);
        pkg_decoder_free(d);
        pkg_free(p);
        close(pfd);
        close(sfd);
        if (rc)
            return -1;
        if (t < best)
            best = t;
    }
    return best;
}

/* pkg_check_fd() of the package file: the check with no source image. */
static double bench_check(const struct files *f, int runs)
{
    double best = 1e9;
    int fd = open(f->pkg, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st))
        return -1;
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        int rc = pkg_check_fd(fd, (uint64_t)st.st_size, NULL);
        double t = now() - t0;
        if (rc) {
            best = -1;
            break;
        }
        if (t < best)
            best = t;
    }
    close(fd);
    return best;
}

/* One-shot SHA-256 of @p len bytes. */
static double bench_sha(const uint8_t *buf, size_t len, int runs)
{
    double best = 1e9;
    uint8_t sha[32];
    for (int r = 0; r < runs; r++) {
        double t0 = now();
        if (pkg_sha256(buf, len, sha))
            return -1;
        double t = now() - t0;
        if (t < best)
            best = t;
    }
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
    snprintf(f.pkg, sizeof(f.pkg), "%s/update.pkg", f.dir);

    int rc = 1;
    double full, ours = bench_ours(p, src, src_len, out, runs, &full), zstd = -1;
    size_t zstd_len = 0;
    if (ours < 0) {
        fprintf(stderr, "bench_apply: our apply failed\n");
        goto out;
    }
    if (pkg_file_write(f.src, src, src_len) || pkg_file_write(f.dst, dst, dst_len) ||
        pkg_file_write(f.pkg, pkgbuf, pkg_len)) {
        fprintf(stderr, "bench_apply: cannot write %s\n", f.dir);
        goto out;
    }
    double files = bench_files(&f, runs), check = bench_check(&f, runs);
    double sha = bench_sha(dst, dst_len, runs);
    if (files < 0 || check < 0 || sha < 0) {
        fprintf(stderr, "bench_apply: our apply from files or the check failed\n");
        goto out;
    }
    if ((zstd = bench_zstd(&f, dst, dst_len, runs, &zstd_len)) < 0) {
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
    row("ours, blocks only", mb, ours, "in memory");
    row("ours, with all checks", mb, full, "in memory, + SHA-256 of source and target");
    row("ours, from files, all checks", mb, files, "pread a block at a time, as the job does");
    row("pkg_check_fd (no source)", mb, check, "every frame + payload digest, MB/s of target");
    row("SHA-256 (libcrypto EVP)", mb, sha, "one-shot over the target");
    row("zstd -d --patch-from (CLI)", mb, zstd, "subprocess, file I/O");
    if (lib > 0)
        row("libzstd, CLI delta", mb, lib, "in process, one frame, no checks");
    printf("ratio ours/zstd CLI: %.2f (blocks only), %.2f (with all checks), %.2f (from files, "
           "all checks)\n",
           zstd / ours, zstd / full, zstd / files);
    if (lib > 0)
        printf("ratio ours/libzstd in process: %.2f (blocks only), %.2f (with all checks)\n",
               lib / ours, lib / full);
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
