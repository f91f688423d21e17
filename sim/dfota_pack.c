/* dfota_pack.c - dfota-pack: builds, inspects and verifies dfota-sim
 * packages and generates firmware images. Argument parsing only; the work
 * is in src/pkg (pkg_cmd_*). Exit status: 0 success, 1 failure, 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dfota/pkg.h"

#define PROG "dfota-pack"
#define EXIT_USAGE 2

static const char usage_text[] =
    "Usage: " PROG " COMMAND [OPTION]...\n"
    "Builds and checks dfota-sim delta packages.\n"
    "\n"
    "  " PROG " image VERSION -o FILE [--size BYTES]\n"
    "      write the deterministic firmware image of VERSION\n"
    "  " PROG " build (--from VERSION | --from-image FILE [--from-version V])\n"
    "                   (--to VERSION | --to-image FILE [--to-version V])\n"
    "                   -o PKG [--size BYTES]\n"
    "      build the package from one image to another; a generated image\n"
    "      has the given --size, an image file gives its own version unless\n"
    "      --from-version/--to-version says it (required when the file is\n"
    "      not a dfota-sim image)\n"
    "  " PROG " info PKG [--json]\n"
    "      print the package header\n"
    "  " PROG " verify PKG [--from VERSION | --from-image FILE [--from-version V]]\n"
    "                   [--size BYTES]\n"
    "      check every byte of the package with no source image (header,\n"
    "      block table, frames, the package's own digest; fails on a flipped,\n"
    "      missing or extra byte); with a source image also apply it and check\n"
    "      the target digest; prints OK\n"
    "\n"
    "  -o, --output FILE  where to write (crash-safe: temporary file, rename)\n"
    "  --size BYTES       image size, K/M/G suffixes allowed (default 4M)\n"
    "  -h, --help         show this help\n"
    "  -V, --version      show the version\n";

enum {
    OPT_SIZE = 256,
    OPT_FROM,
    OPT_FROM_IMAGE,
    OPT_FROM_VERSION,
    OPT_TO,
    OPT_TO_IMAGE,
    OPT_TO_VERSION,
    OPT_JSON,
};

static const struct option options[] = {
    {"output", required_argument, NULL, 'o'},
    {"size", required_argument, NULL, OPT_SIZE},
    {"from", required_argument, NULL, OPT_FROM},
    {"from-image", required_argument, NULL, OPT_FROM_IMAGE},
    {"from-version", required_argument, NULL, OPT_FROM_VERSION},
    {"to", required_argument, NULL, OPT_TO},
    {"to-image", required_argument, NULL, OPT_TO_IMAGE},
    {"to-version", required_argument, NULL, OPT_TO_VERSION},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Everything a command line can say; which command may use what is
 * checked in main(). */
struct args {
    const char *output;
    const char *from, *from_image, *from_version;
    const char *to, *to_image, *to_version;
    size_t size;
    bool size_set, json;
    const char *pos[4];
    int n_pos;
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* BYTES with an optional K, M or G (binary) suffix. */
static int parse_size(const char *s, size_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned shift = 0;
    if (*end) {
        const char *sfx = "KMG";
        const char *at = strchr(sfx, *end);
        if (!at || !*at || (end[1] && strcmp(end + 1, "iB") && strcmp(end + 1, "B")))
            return -EINVAL;
        shift = 10 * (unsigned)(at - sfx + 1);
    }
    if (v > (SIZE_MAX >> shift))
        return -EINVAL;
    *out = (size_t)v << shift;
    return 0;
}

/* Parses argv (argv[0] is the command name); returns 0, or an exit status
 * after printing a one-line error; -1 when help or the version was shown. */
static int parse(int argc, char **argv, struct args *a)
{
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":o:hV", options, NULL)) != -1) {
        switch (c) {
        case 'o':
            a->output = optarg;
            break;
        case OPT_SIZE:
            if (parse_size(optarg, &a->size))
                return usage_error("bad size '%s'", optarg);
            a->size_set = true;
            break;
        case OPT_FROM:
            a->from = optarg;
            break;
        case OPT_FROM_IMAGE:
            a->from_image = optarg;
            break;
        case OPT_FROM_VERSION:
            a->from_version = optarg;
            break;
        case OPT_TO:
            a->to = optarg;
            break;
        case OPT_TO_IMAGE:
            a->to_image = optarg;
            break;
        case OPT_TO_VERSION:
            a->to_version = optarg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case 'V':
            printf(PROG " %s\n", DFOTA_VERSION);
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (a->n_pos == (int)(sizeof(a->pos) / sizeof(a->pos[0])))
            return usage_error("too many arguments");
        a->pos[a->n_pos++] = argv[i];
    }
    return 0;
}

/* One side of a build: a version to generate or an image file. */
static int image_src(const char *version, const char *image, const char *override, const char *side,
                     size_t size, struct pkg_image_src *s, bool required)
{
    if (version && image)
        return usage_error("give --%s or --%s-image, not both", side, side);
    if (override && !image)
        return usage_error("--%s-version goes with --%s-image", side, side);
    if (required && !version && !image)
        return usage_error("missing --%s or --%s-image", side, side);
    *s = (struct pkg_image_src){image ? override : version, image, size};
    return 0;
}

/* Which options a command takes. */
enum {
    ALLOW_FROM = 1,
    ALLOW_TO = 2,
    ALLOW_SIZE = 4,
    ALLOW_OUTPUT = 8,
    ALLOW_JSON = 16,
};

static int check_allowed(const char *cmd, const struct args *a, unsigned allow)
{
    if ((!(allow & ALLOW_FROM) && (a->from || a->from_image || a->from_version)) ||
        (!(allow & ALLOW_TO) && (a->to || a->to_image || a->to_version)) ||
        (!(allow & ALLOW_SIZE) && a->size_set) || (!(allow & ALLOW_OUTPUT) && a->output) ||
        (!(allow & ALLOW_JSON) && a->json))
        return usage_error("option not valid for '%s'", cmd);
    if ((allow & ALLOW_OUTPUT) && !a->output)
        return usage_error("missing -o FILE");
    return 0;
}

static int need_args(const char *cmd, const struct args *a, int n)
{
    if (a->n_pos != n)
        return usage_error("'%s' takes %s", cmd, n ? "one argument" : "no arguments");
    return 0;
}

static int finish(int rc, const char *msg)
{
    if (!rc)
        return EXIT_SUCCESS;
    fprintf(stderr, PROG ": %s\n", msg);
    return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command (try '" PROG " --help')");
    const char *cmd = argv[1];
    struct args a = {0};
    char msg[512] = "";
    int rc;

    if (cmd[0] == '-') {
        /* only --help or --version before a command */
        rc = parse(argc, argv, &a);
        if (rc)
            return rc < 0 ? EXIT_SUCCESS : rc;
        return usage_error("no command (try '" PROG " --help')");
    }
    rc = parse(argc - 1, argv + 1, &a);
    if (rc)
        return rc < 0 ? EXIT_SUCCESS : rc;

    if (!strcmp(cmd, "image")) {
        if ((rc = need_args(cmd, &a, 1)) ||
            (rc = check_allowed(cmd, &a, ALLOW_SIZE | ALLOW_OUTPUT)))
            return rc;
        return finish(pkg_cmd_image(a.pos[0], a.size, a.output, msg, sizeof(msg)), msg);
    }
    if (!strcmp(cmd, "build")) {
        struct pkg_image_src from, to;
        if ((rc = need_args(cmd, &a, 0)) ||
            (rc = check_allowed(cmd, &a, ALLOW_FROM | ALLOW_TO | ALLOW_SIZE | ALLOW_OUTPUT)) ||
            (rc = image_src(a.from, a.from_image, a.from_version, "from", a.size, &from, true)) ||
            (rc = image_src(a.to, a.to_image, a.to_version, "to", a.size, &to, true)))
            return rc;
        return finish(pkg_cmd_build(&from, &to, a.output, msg, sizeof(msg)), msg);
    }
    if (!strcmp(cmd, "info")) {
        if ((rc = need_args(cmd, &a, 1)) || (rc = check_allowed(cmd, &a, ALLOW_JSON)))
            return rc;
        return finish(pkg_cmd_info(a.pos[0], a.json, stdout, msg, sizeof(msg)), msg);
    }
    if (!strcmp(cmd, "verify")) {
        struct pkg_image_src from;
        if ((rc = need_args(cmd, &a, 1)) ||
            (rc = check_allowed(cmd, &a, ALLOW_FROM | ALLOW_SIZE)) ||
            (rc = image_src(a.from, a.from_image, a.from_version, "from", a.size, &from, false)))
            return rc;
        bool have_from = a.from || a.from_image;
        return finish(pkg_cmd_verify(a.pos[0], have_from ? &from : NULL, stdout, msg, sizeof(msg)),
                      msg);
    }
    return usage_error("unknown command '%s' (try '" PROG " --help')", cmd);
}
