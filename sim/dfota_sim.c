/* dfota-sim - one virtual Quectel BG95/BG77/BG600L-M3 module on a pty.
 * Argument parsing only: the module is src/modem. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <uv.h>

#include "dfota/ctl.h"
#include "dfota/modem.h"

struct app {
    uv_loop_t *loop;
    struct modem *modem;
    struct ctl *ctl;
    uv_signal_t sigint, sigterm;
    int exit_code;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dfota-sim [options]\n"
            "A virtual Quectel BG95/BG77/BG600L-M3 module with DFOTA, on a pseudo-terminal.\n"
            "\n"
            "  --uart PATH        symlink to the module's UART (default ./dfota-sim.tty)\n"
            "  --usb PATH         a second AT port, the USB AT port (gone in DFOTA mode)\n"
            "  --state-dir DIR    what the module keeps across power loss (default ./dfota-state)\n"
            "  --model MODEL      one of:");
    for (unsigned i = 0; modem_model_at(i); i++)
        fprintf(f, " %s", modem_model_at(i)->name);
    fprintf(f, " (default BG95-M3)\n"
               "  --firmware VERSION firmware of a new state dir (default: the model's, e.g.\n"
               "                     BG95M3LAR02A03_01.012.01.012; AT+CGMR prints the part before '_')\n"
               "  --profile NAME     timing: fast, standard (default), realistic\n"
               "  --time-scale F     module time runs F times wall time per unit (0.1: ten times faster)\n"
               "  --wait-open        power on only when a host first opens the port\n"
               "  --opaque-target V  accept packages not made by dfota-pack, updating to V\n"
               "  --no-percent-sign  UPDATING,5 instead of UPDATING,5%%\n"
               "  --pace-uart        the UART carries bytes no faster than the AT+IPR rate\n"
               "                     (always in the realistic profile)\n"
               "  --preload-package FILE  put FILE in the NAND package slot at start (tests)\n"
               "  --network-apns LIST the only APNs the network accepts a data call on, comma-\n"
               "                     separated, case-insensitive (e.g. internet,iot.example;\n"
               "                     default: any); the empty APN (network default) always is\n"
               "  --control PATH     a control socket at PATH (dfota-simctl, JSON lines; mode 0600)\n"
               "  --trace FILE       timestamped wire trace of both directions\n"
               "  -v                 more log on stderr (twice: debug)\n"
               "  --help, --version\n");
}

static void on_ready(void *ud, const char *model, const char *firmware, const char *path)
{
    (void)ud;
    /* the line hosts and test fixtures wait for */
    printf("dfota-sim: %s %s on %s\n", model, firmware, path);
    fflush(stdout);
}

/* The pid of the process holding a flock() on @p dir (the store's lock on its
 * state dir, include/dfota/store.h), read from /proc/locks; 0 if unknown. */
static long lock_holder(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return 0;
    FILE *f = fopen("/proc/locks", "r");
    if (!f)
        return 0;
    char line[256];
    long pid = 0;
    while (!pid && fgets(line, sizeof(line), f)) {
        /* "1: FLOCK  ADVISORY  WRITE 16026 fe:00:10953770 0 EOF"; a waiter
         * has "->" before FLOCK and is skipped */
        char kind[16];
        long p;
        unsigned maj, min;
        unsigned long long ino;
        if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%llu", kind, &p, &maj, &min, &ino) == 5 &&
            strcmp(kind, "FLOCK") == 0 && maj == major(st.st_dev) && min == minor(st.st_dev) &&
            ino == (unsigned long long)st.st_ino)
            pid = p;
    }
    fclose(f);
    return pid;
}

/* Says in plain words why the module could not start, where the log line
 * of the layer that failed is not enough. */
static void explain(const struct modem_cfg *cfg, int err)
{
    if (err != -EBUSY)
        return;
    /* the store's lock on its state dir is taken: another dfota-sim runs on it */
    const char *dir = cfg->state_dir ? cfg->state_dir : "./dfota-state";
    long pid = lock_holder(dir);
    char who[32] = "";
    if (pid > 0)
        snprintf(who, sizeof(who), " (pid %ld)", pid);
    fprintf(stderr,
            "dfota-sim: the state dir %s is in use by another dfota-sim%s; give another "
            "--state-dir\n",
            dir, who);
}

static void on_closed(void *arg)
{
    struct app *app = arg;
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct app *app = h->data;
    (void)signum;
    uv_signal_stop(&app->sigint);
    uv_signal_stop(&app->sigterm);
    if (app->ctl) { /* first: it lets go of the modem */
        ctl_close(app->ctl, NULL, NULL);
        app->ctl = NULL;
    }
    if (app->modem) {
        struct modem *m = app->modem;
        app->modem = NULL;
        modem_close(m, on_closed, app);
    }
}

int main(int argc, char **argv)
{
    struct modem_cfg cfg = {0};
    const char *control = NULL;
    enum {
        O_UART = 256, O_USB, O_STATE, O_MODEL, O_FW, O_PROFILE, O_SCALE, O_WAIT, O_TRACE,
        O_OPAQUE, O_NOPCT, O_PACE, O_PRELOAD, O_APNS, O_CONTROL, O_HELP, O_VER
    };
    static const struct option opts[] = {
        {"uart", required_argument, 0, O_UART},
        {"usb", required_argument, 0, O_USB},
        {"opaque-target", required_argument, 0, O_OPAQUE},
        {"no-percent-sign", no_argument, 0, O_NOPCT},
        {"pace-uart", no_argument, 0, O_PACE},
        {"preload-package", required_argument, 0, O_PRELOAD},
        {"network-apns", required_argument, 0, O_APNS},
        {"state-dir", required_argument, 0, O_STATE},
        {"model", required_argument, 0, O_MODEL},
        {"firmware", required_argument, 0, O_FW},
        {"profile", required_argument, 0, O_PROFILE},
        {"time-scale", required_argument, 0, O_SCALE},
        {"wait-open", no_argument, 0, O_WAIT},
        {"trace", required_argument, 0, O_TRACE},
        {"control", required_argument, 0, O_CONTROL},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VER},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_UART: cfg.uart_path = optarg; break;
        case O_USB: cfg.usb_path = optarg; break;
        case O_OPAQUE: cfg.opaque_target = optarg; break;
        case O_NOPCT: cfg.no_percent_sign = true; break;
        case O_PACE: cfg.pace_uart = true; break;
        case O_PRELOAD: cfg.preload_package = optarg; break;
        case O_APNS: cfg.network_apns = optarg; break; /* argv lives as long as the modem */
        case O_STATE: cfg.state_dir = optarg; break;
        case O_MODEL: cfg.model = optarg; break;
        case O_FW: cfg.firmware = optarg; break;
        case O_PROFILE: cfg.profile = optarg; break;
        case O_SCALE:
            cfg.time_scale = strtod(optarg, &end);
            if (*end || !(cfg.time_scale > 0) || cfg.time_scale > 1000) {
                fprintf(stderr, "dfota-sim: --time-scale wants a number above 0 and up to 1000\n");
                return 2;
            }
            break;
        case O_WAIT: cfg.wait_open = true; break;
        case O_TRACE: cfg.trace_path = optarg; break;
        case O_CONTROL: control = optarg; break;
        case 'v': cfg.verbose++; break;
        case O_HELP: usage(stdout); return 0;
        case O_VER: printf("dfota-sim %s\n", DFOTA_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dfota-sim: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct app app = {.loop = uv_default_loop()};
    uv_signal_init(app.loop, &app.sigint);
    uv_signal_init(app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);

    /* the control socket listens before the ready line is printed: a rig
     * that waits for that line may connect at once */
    int r = 0;
    if (control) {
        r = ctl_new(app.loop, &(struct ctl_cfg){.path = control, .verbose = cfg.verbose},
                    &app.ctl);
        if (r)
            fprintf(stderr, "dfota-sim: cannot open the control socket %s: %s\n", control,
                    r == -EEXIST       ? "the path exists and is not a socket"
                    : r == -EADDRINUSE ? "another process listens on it"
                                       : strerror(-r));
    }
    struct modem_events ev = {.on_ready = on_ready};
    if (!r) {
        r = modem_new(app.loop, &cfg, &ev, &app, &app.modem);
        if (r)
            explain(&cfg, r);
    }
    if (!r && app.ctl)
        r = ctl_attach(app.ctl, "modem", app.modem);
    if (r) {
        on_signal(&app.sigint, SIGTERM); /* closes what was made */
        if (!app.modem)
            on_closed(&app);
        uv_run(app.loop, UV_RUN_DEFAULT);
        uv_loop_close(app.loop);
        return 1;
    }
    uv_run(app.loop, UV_RUN_DEFAULT);
    r = uv_loop_close(app.loop);
    if (r)
        fprintf(stderr, "dfota-sim: loop closed with handles left (%s)\n", uv_strerror(r));
    return r ? 1 : 0;
}
