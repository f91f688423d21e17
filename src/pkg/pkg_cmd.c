/* pkg_cmd.c - what the dfota-pack commands do, and the file helpers they
 * need. sim/dfota_pack.c only parses arguments and calls these; every
 * failure comes back as a negative errno plus a one-line reason. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pkg_int.h"

int pkg_file_read(const char *path, size_t max, uint8_t **out, size_t *out_len)
{
    if (!path || !out || !out_len)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (fstat(fd, &st)) {
        rc = -errno;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        rc = -EISDIR;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = -EFBIG;
        goto out;
    }
    /* one byte more than the size, to see a file that grew */
    size_t cap = (size_t)st.st_size + 1;
    buf = malloc(cap);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                rc = -EFBIG;
                goto out;
            }
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                rc = -ENOMEM;
                goto out;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max)
        rc = -EFBIG;
out:
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) ? -errno : 0;
    close(fd);
    return rc;
}

int pkg_file_write(const char *path, const void *buf, size_t len)
{
    if (!path || (!buf && len))
        return -EINVAL;
    size_t n = strlen(path) + sizeof(".tmp.XXXXXX");
    char *tmp = malloc(n);
    if (!tmp)
        return -ENOMEM;
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int rc = -errno;
        free(tmp);
        return rc;
    }
    int rc = fchmod(fd, 0644) ? -errno : 0;
    if (!rc)
        rc = write_all(fd, buf, len);
    if (!rc && fsync(fd))
        rc = -errno;
    if (close(fd) && !rc)
        rc = -errno;
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc)
        unlink(tmp);
    else
        rc = fsync_dir_of(path);
    free(tmp);
    return rc;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* Versions hold printable ASCII only; JSON needs '"' and '\' escaped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int pkg_info_print(const struct pkg_info *in, bool json, FILE *f)
{
    if (!in || !f)
        return -EINVAL;
    char ssha[65], dsha[65], psha[65];
    hex(ssha, in->src_sha256, 32);
    hex(dsha, in->dst_sha256, 32);
    hex(psha, in->payload_sha256, 32);
    if (json) {
        fprintf(f, "{\"format_version\":%u,\"src_version\":", in->format_version);
        json_str(f, in->src_version);
        fputs(",\"dst_version\":", f);
        json_str(f, in->dst_version);
        fprintf(f,
                ",\"src_sha256\":\"%s\",\"dst_sha256\":\"%s\",\"src_size\":%" PRIu64
                ",\"dst_size\":%" PRIu64 ",\"block_size\":%" PRIu32 ",\"block_count\":%" PRIu32
                ",\"header_size\":%" PRIu64 ",\"total_size\":%" PRIu64
                ",\"payload_sha256\":\"%s\"}\n",
                ssha, dsha, in->src_size, in->dst_size, in->block_size, in->block_count,
                in->header_size, in->total_size, psha);
    } else {
        fprintf(f,
                "format version: %u\n"
                "source version: %s\n"
                "source size:    %" PRIu64 "\n"
                "source sha256:  %s\n"
                "target version: %s\n"
                "target size:    %" PRIu64 "\n"
                "target sha256:  %s\n"
                "block size:     %" PRIu32 "\n"
                "block count:    %" PRIu32 "\n"
                "header size:    %" PRIu64 "\n"
                "package size:   %" PRIu64 "\n"
                "payload sha256: %s\n",
                in->format_version, in->src_version, in->src_size, ssha, in->dst_version,
                in->dst_size, dsha, in->block_size, in->block_count, in->header_size,
                in->total_size, psha);
    }
    return ferror(f) ? -EIO : 0;
}

/* Writes a one-line reason to @p msg and returns @p rc. */
__attribute__((format(printf, 4, 5))) static int fail(char *msg, size_t cap, int rc,
                                                      const char *fmt, ...)
{
    if (msg && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int generate(const char *version, size_t size, uint8_t **img, size_t *len, char *msg,
                    size_t cap)
{
    int rc = pkg_image_generate(version, size, img, len);
    if (rc == -EINVAL && !pkg_version_check(version))
        return fail(msg, cap, rc, "image size %zu below the minimum of %u bytes", size,
                    PKG_IMAGE_MIN_SIZE);
    if (rc == -EFBIG)
        return fail(msg, cap, rc, "image size %zu above the maximum of %u bytes", size,
                    PKG_IMAGE_MAX_SIZE);
    if (rc)
        return fail(msg, cap, rc, "version '%s': %s", version,
                    rc == -EINVAL ? "not a version string" : pkg_strerror(rc));
    return 0;
}

int pkg_image_load(const struct pkg_image_src *s, uint8_t **img, size_t *len,
                   char version[PKG_VERSION_MAX + 1], char *msg, size_t cap)
{
    if (!s || !img || !len || !version || (!s->path && !s->version))
        return fail(msg, cap, -EINVAL, "no image given");
    int rc = s->version ? pkg_version_check(s->version) : 0;
    if (rc)
        return fail(msg, cap, rc, "version '%s': %s", s->version,
                    rc == -EINVAL ? "not a version string" : pkg_strerror(rc));
    if (!s->path) {
        if ((rc = generate(s->version, s->size, img, len, msg, cap)))
            return rc;
        strcpy(version, s->version);
        return 0;
    }
    if ((rc = pkg_file_read(s->path, PKG_IMAGE_MAX_SIZE, img, len)))
        return fail(msg, cap, rc, "%s: %s", s->path, pkg_strerror(rc));
    if (*len == 0)
        rc = fail(msg, cap, -EINVAL, "%s: empty image", s->path);
    else if (s->version)
        strcpy(version, s->version);
    else if (pkg_image_version(*img, *len, version, PKG_VERSION_MAX + 1))
        rc = fail(msg, cap, -ENOENT, "%s: not a dfota-sim image, its version must be given",
                  s->path);
    if (rc) {
        free(*img);
        *img = NULL;
    }
    return rc;
}

int pkg_cmd_image(const char *version, size_t size, const char *path, char *msg, size_t cap)
{
    uint8_t *img;
    size_t len;
    int rc = generate(version, size, &img, &len, msg, cap);
    if (rc)
        return rc;
    rc = pkg_file_write(path, img, len);
    free(img);
    return rc ? fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc)) : 0;
}

int pkg_cmd_build(const struct pkg_image_src *from, const struct pkg_image_src *to,
                  const char *path, char *msg, size_t cap)
{
    uint8_t *src = NULL, *dst = NULL, *pkg = NULL;
    size_t src_len, dst_len, pkg_len;
    char src_v[PKG_VERSION_MAX + 1], dst_v[PKG_VERSION_MAX + 1];
    int rc = pkg_image_load(from, &src, &src_len, src_v, msg, cap);
    if (!rc)
        rc = pkg_image_load(to, &dst, &dst_len, dst_v, msg, cap);
    if (!rc && (rc = pkg_build(src, src_len, src_v, dst, dst_len, dst_v, &pkg, &pkg_len)))
        fail(msg, cap, rc, "building the package: %s", pkg_strerror(rc));
    if (!rc && (rc = pkg_file_write(path, pkg, pkg_len)))
        fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc));
    free(src);
    free(dst);
    free(pkg);
    return rc;
}

/* Opens the file @p path for reading and gives its length. */
static int open_file(const char *path, int *fd, uint64_t *len, char *msg, size_t cap)
{
    struct stat st;
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = *fd < 0 ? -errno : 0;
    if (!rc && fstat(*fd, &st))
        rc = -errno;
    if (!rc && S_ISDIR(st.st_mode))
        rc = -EISDIR;
    if (rc) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc));
    }
    *len = (uint64_t)st.st_size;
    return 0;
}

/* A one-line reason for a package that failed to open or check: @p in is
 * what the check filled (zero until the header parsed), @p bad the block
 * whose frame is corrupt (UINT32_MAX: none). */
static int fail_pkg(const char *path, int rc, const struct pkg_info *in, uint32_t bad, char *msg,
                    size_t cap)
{
    if (rc == -EBADMSG && !in->format_version)
        return fail(msg, cap, rc, "%s: not a dfota-sim package (bad magic)", path);
    if (rc == -EBADMSG && bad != UINT32_MAX)
        return fail(msg, cap, rc, "%s: block %" PRIu32 ": corrupt frame", path, bad);
    if (rc == -EBADMSG)
        return fail(msg, cap, rc, "%s: payload digest mismatch (damaged package bytes)", path);
    return fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc));
}

int pkg_cmd_info(const char *path, bool json, FILE *f, char *msg, size_t cap)
{
    int fd;
    uint64_t len = 0;
    struct pkg *p;
    int rc = open_file(path, &fd, &len, msg, cap);
    if (rc)
        return rc;
    rc = pkg_open_fd(fd, len, &p);
    close(fd);
    if (rc) {
        struct pkg_info none = {0};
        return fail_pkg(path, rc, &none, UINT32_MAX, msg, cap);
    }
    if ((rc = pkg_info_print(pkg_get_info(p), json, f)))
        fail(msg, cap, rc, "writing the output: %s", pkg_strerror(rc));
    pkg_free(p);
    return rc;
}

/* Applies the package file @p path to the image @p from describes and
 * checks the target digest. */
static int verify_apply(const char *path, const struct pkg_image_src *from, char *msg, size_t cap)
{
    uint8_t *buf = NULL, *src = NULL, *dst = NULL;
    size_t len, src_len, dst_len;
    char src_v[PKG_VERSION_MAX + 1];
    struct pkg *p = NULL;
    int rc = pkg_file_read(path, PKG_FILE_MAX, &buf, &len);
    if (rc)
        fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc));
    else if ((rc = pkg_open(buf, len, &p)))
        fail(msg, cap, rc, "%s: %s", path, pkg_strerror(rc)); /* changed since the check */
    if (!rc && !(rc = pkg_image_load(from, &src, &src_len, src_v, msg, cap))) {
        rc = pkg_apply_all(p, src, src_len, &dst, &dst_len);
        if (rc == -EXDEV)
            fail(msg, cap, rc, "%s: the source image is not the package's source (%s)", path,
                 pkg_get_info(p)->src_version);
        else if (rc)
            fail(msg, cap, rc, "%s: applying: %s", path,
                 rc == -EBADMSG ? "corrupt block or target digest mismatch" : pkg_strerror(rc));
    }
    pkg_free(p);
    free(buf);
    free(src);
    free(dst);
    return rc;
}

int pkg_cmd_verify(const char *path, const struct pkg_image_src *from, FILE *f, char *msg,
                   size_t cap)
{
    int fd;
    uint64_t len = 0;
    struct pkg_info in;
    uint32_t bad;
    int rc = open_file(path, &fd, &len, msg, cap);
    if (rc)
        return rc;
    rc = pkg_check_fd_where(fd, len, &in, &bad);
    close(fd);
    if (rc)
        return fail_pkg(path, rc, &in, bad, msg, cap);
    if (from && (rc = verify_apply(path, from, msg, cap)))
        return rc;
    fprintf(f, "OK\n");
    return 0;
}
