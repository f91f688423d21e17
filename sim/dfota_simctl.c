/* dfota-simctl - the command-line client of dfota-sim's control socket
 * (README.md "Control socket"): one request, its answer printed for a
 * human or as the JSON line (--json); `watch` prints the event stream.
 * Argument parsing and printing only: the protocol is src/ctl's. */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_CONTROL "./dfota-sim.ctl"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dfota-simctl [--control PATH] [--json] [--modem NAME] COMMAND ...\n"
            "Drives a dfota-sim started with --control PATH (default $DFOTA_CONTROL, else\n"
            "%s).\n"
            "\n"
            "  status                  power state, firmware, job, slot, settings, network\n"
            "  power off|on            cut the power (nothing volatile survives) / power on\n"
            "  reset                   reset the module\n"
            "  dtr on|off, rts on|off  the host's DTR and RTS lines on the UART\n"
            "  network [registration registered|searching|denied|roaming|not-registered]\n"
            "          [csq N] [operator NAME] [rate BYTES_PER_S] [latency MS]\n"
            "                          show (and change) the network\n"
            "  fault list              the faults, armed or not\n"
            "  fault arm SPEC [--sticky]  arm a fault (NAME or NAME=VALUE), once or sticky\n"
            "  fault clear [NAME|all]  disarm\n"
            "  watch                   print events (URCs, power, job, data mode, faults)\n"
            "                          until interrupted, with a progress line\n"
            "  modems                  the modems behind the socket\n"
            "Exit status: 0 ok, 1 the module refused, 2 usage, 3 no connection.\n",
            DEFAULT_CONTROL);
}

struct conn {
    int fd;
    char buf[65536 + 2];
    size_t len;
};

static int conn_open(struct conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "dfota-simctl: %s: path too long\n", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "dfota-simctl: cannot connect to %s: %s\n", path, strerror(errno));
        return -1;
    }
    c->len = 0;
    return 0;
}

static int conn_send(struct conn *c, cJSON *req)
{
    char *s = cJSON_PrintUnformatted(req);
    if (!s)
        return -1;
    size_t n = strlen(s);
    s[n] = '\0';
    int r = 0;
    const char *p = s;
    for (size_t left = n; left && r == 0;) {
        ssize_t w = write(c->fd, p, left);
        if (w <= 0)
            r = -1;
        else
            p += w, left -= (size_t)w;
    }
    if (r == 0 && write(c->fd, "\n", 1) != 1)
        r = -1;
    free(s);
    return r;
}

/* The next line into *@p out (in c->buf, valid until the next call); -1 at
 * the end of the stream. */
static int conn_line(struct conn *c, char **out, size_t *consumed)
{
    if (*consumed) {
        memmove(c->buf, c->buf + *consumed, c->len - *consumed);
        c->len -= *consumed;
        *consumed = 0;
    }
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            *nl = '\0';
            *out = c->buf;
            *consumed = (size_t)(nl - c->buf) + 1;
            return 0;
        }
        if (c->len >= sizeof(c->buf) - 1)
            return -1;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
        if (n <= 0)
            return -1;
        c->len += (size_t)n;
    }
}

/* ---- printing ---------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = get(o, name);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = get(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void print_net(const cJSON *n)
{
    double rate = num(n, "link_rate");
    printf("network    %s (stat %d), CSQ %d,%d, \"%s\", %s\n", str(n, "registration"),
           (int)num(n, "stat"), (int)num(n, "csq"), (int)num(n, "ber"), str(n, "operator"),
           cJSON_IsTrue(get(n, "attached")) ? "PS attached" : "not attached");
    printf("apns       %s\n", str(n, "apns"));
    if (rate > 0)
        printf("link       %.0f bytes/s, latency %d ms\n", rate, (int)num(n, "latency_ms"));
    else
        printf("link       unlimited, latency %d ms\n", (int)num(n, "latency_ms"));
}

static void print_status(const cJSON *a)
{
    const cJSON *job = get(a, "job"), *slot = get(a, "slot"), *set = get(a, "settings");
    const cJSON *lines = get(a, "lines");
    printf("power      %s\n", str(a, "power"));
    printf("model      %s\n", str(a, "model"));
    printf("firmware   %s\n", str(a, "firmware"));
    printf("image      sha256 %s\n", str(a, "image_sha256"));
    printf("job        %s", str(job, "state"));
    if (cJSON_IsString(get(job, "kind")))
        printf(" (%s)", str(job, "kind"));
    if (cJSON_IsString(get(job, "stage")))
        printf(", %s", str(job, "stage"));
    if (num(job, "percent") >= 0)
        printf(" %d%%", (int)num(job, "percent"));
    if (num(job, "bytes") > 0) {
        printf(", %.0f bytes", num(job, "bytes"));
        if (num(job, "total") > 0)
            printf(" of %.0f", num(job, "total"));
    }
    printf("\n");
    printf("slot       %.0f of %.0f bytes\n", num(slot, "size"), num(slot, "capacity"));
    printf("trigger    %d\n", (int)num(a, "trigger_mode"));
    printf("settings   AT+IPR=%d AT&D%d fota_apn=%s\n", (int)num(set, "ipr"),
           (int)num(set, "dtr_mode"), str(set, "fota_apn"));
    printf("lines      DTR %s, RTS %s%s\n", cJSON_IsTrue(get(lines, "dtr")) ? "on" : "off",
           cJSON_IsTrue(get(lines, "rts")) ? "on" : "off",
           cJSON_IsTrue(get(a, "data_mode")) ? ", data mode" : "");
    print_net(get(a, "network"));
}

static void print_faults(const cJSON *a, bool all)
{
    const cJSON *f;
    int armed = 0;
    cJSON_ArrayForEach(f, get(a, "faults"))
    {
        bool on = cJSON_IsTrue(get(f, "armed"));
        if (!on && !all)
            continue;
        armed += on;
        char spec[96];
        if (on && cJSON_IsNumber(get(f, "value")))
            snprintf(spec, sizeof(spec), "%s=%g", str(f, "name"), num(f, "value"));
        else
            snprintf(spec, sizeof(spec), "%s%s", str(f, "name"),
                     cJSON_IsTrue(get(f, "takes_value")) ? "=N" : "");
        printf("%-26s %-14s %s\n", spec,
               on ? (cJSON_IsTrue(get(f, "sticky")) ? "armed, sticky" : "armed") : "-",
               str(f, "help"));
    }
    if (!all && !armed)
        printf("no fault armed\n");
}

/* The percent of a +QIND: "FOTA","DOWNLOADING",45% / "UPDATING" URC, -1. */
static int progress_of(const char *text, const char **stage)
{
    static const char *const stages[] = {"DOWNLOADING", "UPDATING"};
    for (int i = 0; i < 2; i++) {
        char pre[48];
        snprintf(pre, sizeof(pre), "+QIND: \"FOTA\",\"%s\",", stages[i]);
        if (strncmp(text, pre, strlen(pre)) == 0) {
            *stage = stages[i];
            return atoi(text + strlen(pre));
        }
    }
    return -1;
}

static void print_event(const cJSON *e, bool tty, bool *bar)
{
    const char *kind = str(e, "event");
    double t = num(e, "t") / 1000.0;
    const char *stage = NULL;
    int pct = strcmp(kind, "urc") == 0 ? progress_of(str(e, "text"), &stage) : -1;
    if (pct >= 0) {
        char hashes[41];
        int n = pct * 40 / 100;
        memset(hashes, '#', (size_t)n);
        memset(hashes + n, '.', (size_t)(40 - n));
        hashes[40] = '\0';
        printf("%s%10.3f %-11s [%s] %3d%%%s", tty ? "\r" : "", t, stage, hashes, pct,
               tty ? "" : "\n");
        *bar = tty;
        fflush(stdout);
        return;
    }
    if (*bar) {
        printf("\n");
        *bar = false;
    }
    if (strcmp(kind, "urc") == 0)
        printf("%10.3f urc   %s\n", t, str(e, "text"));
    else if (strcmp(kind, "fault") == 0 && cJSON_IsNumber(get(e, "value")))
        printf("%10.3f fault %s=%g fired\n", t, str(e, "name"), num(e, "value"));
    else if (strcmp(kind, "fault") == 0)
        printf("%10.3f fault %s fired\n", t, str(e, "name"));
    else if (strcmp(kind, "data") == 0)
        printf("%10.3f data  %s %s data mode (%s)\n", t, str(e, "port"),
               cJSON_IsTrue(get(e, "on")) ? "enters" : "leaves", str(e, "why"));
    else
        printf("%10.3f %-5s %s -> %s (%s)\n", t, kind, str(e, "from"), str(e, "to"), str(e, "why"));
    fflush(stdout);
}

/* ---- commands -------------------------------------------------------- */

static int on_off(const char *word, bool *out)
{
    if (word && strcmp(word, "on") == 0)
        *out = true;
    else if (word && strcmp(word, "off") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

/* The request of the command words @p argv[0..argc): NULL on a usage error. */
static cJSON *build(int argc, char **argv)
{
    cJSON *r = cJSON_CreateObject();
    const char *cmd = argv[0];
    cJSON_AddNumberToObject(r, "id", 1);
    cJSON_AddStringToObject(r, "cmd", cmd);
    bool on;
    if ((!strcmp(cmd, "status") || !strcmp(cmd, "reset") || !strcmp(cmd, "watch") ||
         !strcmp(cmd, "modems")) &&
        argc == 1)
        return r;
    if (!strcmp(cmd, "power") && argc == 2 && on_off(argv[1], &on) == 0) {
        cJSON_AddStringToObject(r, "state", argv[1]);
        return r;
    }
    if ((!strcmp(cmd, "dtr") || !strcmp(cmd, "rts")) && argc == 2 && on_off(argv[1], &on) == 0) {
        cJSON_AddBoolToObject(r, "on", on);
        return r;
    }
    if (!strcmp(cmd, "network") && argc % 2 == 1) {
        static const struct {
            const char *word, *member;
            bool number;
        } keys[] = {{"registration", "registration", false},
                    {"reg", "registration", false},
                    {"csq", "csq", true},
                    {"operator", "operator", false},
                    {"rate", "link_rate", true},
                    {"latency", "latency_ms", true}};
        for (int i = 1; i < argc; i += 2) {
            size_t k = 0;
            while (k < sizeof(keys) / sizeof(keys[0]) && strcmp(keys[k].word, argv[i]) != 0)
                k++;
            if (k == sizeof(keys) / sizeof(keys[0]))
                goto bad;
            if (keys[k].number) {
                char *end;
                double v = strtod(argv[i + 1], &end);
                if (*end || end == argv[i + 1])
                    goto bad;
                cJSON_AddNumberToObject(r, keys[k].member, v);
            } else {
                cJSON_AddStringToObject(r, keys[k].member, argv[i + 1]);
            }
        }
        return r;
    }
    if (!strcmp(cmd, "fault")) {
        const char *op = argc > 1 ? argv[1] : "list";
        cJSON_AddStringToObject(r, "op", op);
        if (!strcmp(op, "list") && argc <= 2)
            return r;
        if (!strcmp(op, "clear") && argc <= 3) {
            if (argc == 3)
                cJSON_AddStringToObject(r, "spec", argv[2]);
            return r;
        }
        if (!strcmp(op, "arm") && (argc == 3 || (argc == 4 && !strcmp(argv[3], "--sticky")))) {
            cJSON_AddStringToObject(r, "spec", argv[2]);
            cJSON_AddBoolToObject(r, "sticky", argc == 4);
            return r;
        }
    }
bad:
    cJSON_Delete(r);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *path = getenv("DFOTA_CONTROL");
    const char *modem = NULL;
    bool json = false;
    enum { O_CONTROL = 256, O_JSON, O_MODEM, O_HELP };
    static const struct option opts[] = {
        {"control", required_argument, 0, O_CONTROL},
        {"json", no_argument, 0, O_JSON},
        {"modem", required_argument, 0, O_MODEM},
        {"help", no_argument, 0, O_HELP},
        {0, 0, 0, 0},
    };
    int c;
    /* "+": options end at the command (fault arm X --sticky is the command's) */
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (c) {
        case O_CONTROL:
            path = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_MODEM:
            modem = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cJSON *req = build(argc - optind, argv + optind);
    if (!req) {
        fprintf(stderr, "dfota-simctl: bad command (dfota-simctl --help)\n");
        return 2;
    }
    if (modem)
        cJSON_AddStringToObject(req, "modem", modem);
    const char *cmd = argv[optind];
    struct conn *cn = malloc(sizeof(*cn));
    if (!cn || conn_open(cn, path && path[0] ? path : DEFAULT_CONTROL) != 0 ||
        conn_send(cn, req) != 0) {
        cJSON_Delete(req);
        free(cn);
        return 3;
    }
    cJSON_Delete(req);
    char *line;
    size_t used = 0;
    if (conn_line(cn, &line, &used) != 0) {
        fprintf(stderr, "dfota-simctl: the connection closed without an answer\n");
        return 3;
    }
    cJSON *a = cJSON_Parse(line);
    bool ok = a && cJSON_IsTrue(get(a, "ok"));
    if (json) {
        printf("%s\n", line);
    } else if (!ok) {
        fprintf(stderr, "dfota-simctl: %s: %s\n", cmd, a ? str(a, "error") : line);
    } else if (!strcmp(cmd, "status")) {
        print_status(a);
    } else if (!strcmp(cmd, "network")) {
        print_net(a);
    } else if (!strcmp(cmd, "fault")) {
        const char *op = argc - optind > 1 ? argv[optind + 1] : "list";
        print_faults(a, !strcmp(op, "list"));
    } else if (!strcmp(cmd, "modems")) {
        const cJSON *m;
        cJSON_ArrayForEach(m, get(a, "modems")) printf("%s\n", m->valuestring);
    }
    cJSON_Delete(a);
    int rc = ok ? 0 : 1;
    if (ok && !strcmp(cmd, "watch")) {
        /* until the module goes away or we are interrupted */
        bool tty = isatty(STDOUT_FILENO), bar = false;
        if (!json)
            fprintf(stderr, "dfota-simctl: watching (interrupt to stop)\n");
        fflush(stdout);
        while (conn_line(cn, &line, &used) == 0) {
            if (json) {
                printf("%s\n", line);
                fflush(stdout);
                continue;
            }
            cJSON *e = cJSON_Parse(line);
            if (e)
                print_event(e, tty, &bar);
            cJSON_Delete(e);
        }
        if (bar)
            printf("\n");
    }
    close(cn->fd);
    free(cn);
    return rc;
}
