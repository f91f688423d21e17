/* at_engine.c - V.250 line assembly, parsing, dispatch, result formatting,
 * URC queue and data mode (see include/dfota/at.h). */
#include "dfota/at.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "at_codes.h"
#include "at_escape.h"
#include "at_line.h"
#include "at_log.h"

#define AT_MAX_ARGS 16
#define AT_MAX_TABLES 16
#define AT_URC_QUEUE_MAX 64
#define ERRNO_MAX 4095 /* the largest errno a negative result can carry */

struct at_arg {
    enum { ARG_EMPTY, ARG_INT, ARG_STR } type;
    bool quoted;
    int64_t i;
    const char *s;
};

struct at_args {
    unsigned n;
    struct at_arg v[AT_MAX_ARGS];
};

struct table {
    const struct at_cmd *cmds;
    size_t n;
    void *ud;
};

struct urc {
    struct urc *next;
    size_t len;
    char text[];
};

/* A growable byte buffer for one response group. */
struct buf {
    char *p;
    size_t len, cap;
};

struct at_engine {
    struct dclock *clk;
    struct at_engine_cfg cfg;
    struct at_settings set;
    enum at_input input;

    struct table tables[AT_MAX_TABLES];
    size_t ntables;

    struct at_log log;

    /* line framing */
    struct at_line line;
    char *last_line; /* for A/ */

    /* execution of a line */
    bool busy;
    char *exec; /* the line being run, NUL-terminated, tokenized in place */
    size_t exec_pos;
    struct buf resp;
    char numbuf[24];            /* the number of a basic command (ATE1) */
    bool ended;                 /* the current command was AT_F_LAST */
    unsigned cmd_lines;         /* information lines of the running command so far */
    bool stalled;               /* feed took less than it was given: input_ready owed */
    void (*after_fn)(void *ud); /* at_engine_after_result() */
    void *after_ud;

    /* URCs */
    struct urc *urc_head, **urc_tail;
    unsigned urc_count;
    struct dclock_timer gap;

    /* data mode */
    bool data_mode;
    const struct at_data_ops *data_ops;
    void *data_ud;
    struct at_escape esc;
};

static void run_line(struct at_engine *e);
static void flush_urcs(struct at_engine *e);

/* ---- small helpers ---------------------------------------------------- */

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return; /* the response is cut rather than the process killed */
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_addf(struct buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void buf_addf(struct buf *b, const char *fmt, va_list ap)
{
    char tmp[1024];
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        buf_add(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big)
        return;
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    buf_add(b, big, (size_t)n);
    free(big);
}

static void output(struct at_engine *e, const char *s, size_t n)
{
    if (n && e->cfg.output)
        e->cfg.output(e->cfg.output_ud, s, n);
}

/* Frames one line of text as information text, a result or a URC per ATV:
 * V1 "<CR><LF>text<CR><LF>", V0 "text<CR><LF>" (V.250 5.7.1). @p first is
 * false for a further line of one command's information text, which V1
 * joins to the one before it (no blank line between them). */
static void frame_line(const struct at_engine *e, struct buf *b, const char *text, size_t n,
                       bool first)
{
    if (e->set.verbose && first)
        buf_add(b, "\r\n", 2);
    buf_add(b, text, n);
    buf_add(b, "\r\n", 2);
}

/* ---- lifecycle ------------------------------------------------------- */

static void on_gap(struct dclock_timer *t)
{
    flush_urcs(t->data);
}

struct at_engine *at_engine_new(struct dclock *clk, const struct at_engine_cfg *cfg)
{
    struct at_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->clk = clk;
    if (cfg)
        e->cfg = *cfg;
    if (!e->cfg.line_max)
        e->cfg.line_max = AT_LINE_MAX_DEFAULT;
    if (!e->cfg.guard_ms)
        e->cfg.guard_ms = 1000;
    e->log =
        (struct at_log){e->cfg.log, e->cfg.ud, e->cfg.log_level, e->cfg.name ? e->cfg.name : "at"};
    e->set = (struct at_settings){.echo = true,
                                  .verbose = true,
                                  .quiet = false,
                                  .cmee = 1,
                                  .s3 = '\r',
                                  .s4 = '\n',
                                  .s5 = '\b'};
    e->last_line = calloc(1, e->cfg.line_max + 1);
    e->exec = malloc(e->cfg.line_max + 1);
    if (at_line_init(&e->line, e->cfg.line_max, &e->set, &e->log) != 0 || !e->last_line ||
        !e->exec) {
        at_engine_free(e);
        return NULL;
    }
    e->esc.log = &e->log;
    e->urc_tail = &e->urc_head;
    dclock_timer_init(clk, &e->gap, on_gap, e);
    e->input = AT_INPUT_OFF;
    return e;
}

static void drop_urcs(struct at_engine *e)
{
    struct urc *u = e->urc_head;
    while (u) {
        struct urc *next = u->next;
        free(u);
        u = next;
    }
    e->urc_head = NULL;
    e->urc_tail = &e->urc_head;
    e->urc_count = 0;
}

void at_engine_free(struct at_engine *e)
{
    if (!e)
        return;
    if (e->clk) {
        dclock_timer_stop(&e->gap);
        at_escape_stop(&e->esc);
    }
    drop_urcs(e);
    free(e->resp.p);
    at_line_fini(&e->line);
    free(e->last_line);
    free(e->exec);
    free(e);
}

int at_engine_add_table(struct at_engine *e, const struct at_cmd *cmds, size_t n, void *ud)
{
    if (e->ntables == AT_MAX_TABLES)
        return -ENOMEM;
    e->tables[e->ntables++] = (struct table){cmds, n, ud};
    return 0;
}

struct at_settings *at_engine_settings(struct at_engine *e)
{
    return &e->set;
}

bool at_engine_busy(const struct at_engine *e)
{
    return e->busy;
}

bool at_engine_in_data(const struct at_engine *e)
{
    return e->data_mode;
}

/* ---- arguments ------------------------------------------------------- */

unsigned at_args_count(const struct at_args *a)
{
    return a ? a->n : 0;
}

bool at_args_present(const struct at_args *a, unsigned i)
{
    return a && i < a->n && a->v[i].type != ARG_EMPTY;
}

int at_args_int(const struct at_args *a, unsigned i, int64_t *v)
{
    if (!at_args_present(a, i))
        return -ENOENT;
    if (a->v[i].type != ARG_INT)
        return -EINVAL;
    *v = a->v[i].i;
    return 0;
}

int at_args_str(const struct at_args *a, unsigned i, const char **s)
{
    if (!at_args_present(a, i))
        return -ENOENT;
    if (a->v[i].type != ARG_STR)
        return -EINVAL;
    *s = a->v[i].s;
    return 0;
}

bool at_args_is_str(const struct at_args *a, unsigned i)
{
    return at_args_present(a, i) && a->v[i].quoted;
}

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && s[n - 1] == ' ')
        s[--n] = '\0';
    return s;
}

static bool parse_int(const char *s, int64_t *v)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (!*p)
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *v = x;
    return true;
}

/* Splits the argument text of a SET form (NUL-terminated, modified in
 * place) into typed arguments. Returns false on a syntax error. */
static bool parse_args(char *text, struct at_args *a)
{
    a->n = 0;
    char *p = text;
    for (;;) {
        if (a->n == AT_MAX_ARGS)
            return false;
        /* find the end of this argument: a comma outside quotes */
        char *q = p;
        bool in_str = false;
        while (*q && (in_str || *q != ',')) {
            if (*q == '"')
                in_str = !in_str;
            q++;
        }
        if (in_str)
            return false;
        bool last = *q == '\0';
        *q = '\0';
        char *tok = trim(p);
        struct at_arg *arg = &a->v[a->n++];
        *arg = (struct at_arg){.type = ARG_EMPTY};
        if (*tok == '"') {
            char *close = strchr(tok + 1, '"');
            if (!close || close[1] != '\0')
                return false;
            *close = '\0';
            arg->type = ARG_STR;
            arg->quoted = true;
            arg->s = tok + 1;
        } else if (*tok) {
            if (strchr(tok, '"'))
                return false;
            if (parse_int(tok, &arg->i)) {
                arg->type = ARG_INT;
            } else {
                arg->type = ARG_STR; /* bare word: taken as a string, as modules do */
                arg->s = tok;
            }
        }
        if (last)
            break;
        p = q + 1;
    }
    /* AT+X= with nothing after it is one empty argument: no arguments */
    if (a->n == 1 && a->v[0].type == ARG_EMPTY)
        a->n = 0;
    return true;
}

static bool args_match(const struct at_cmd *c, const struct at_args *a)
{
    if (a->n < c->min_args || a->n > c->max_args)
        return false;
    for (unsigned i = 0; i < a->n; i++) {
        char t = c->types && i < strlen(c->types) ? c->types[i] : '*';
        const struct at_arg *v = &a->v[i];
        if (v->type == ARG_EMPTY || t == '*')
            continue;
        if (t == 'i' && v->type != ARG_INT)
            return false;
        if (t == 's' && !v->quoted)
            return false;
    }
    return true;
}

/* ---- results --------------------------------------------------------- */

const char *at_cme_text(int code)
{
    switch (code) {
#define X(num, name, text)                                                                         \
    case num:                                                                                      \
        return text;
        AT_CME_MAP(X)
#undef X
    }
    return NULL;
}

int at_result_errno(int err, int cme)
{
    if (err >= 0)
        return AT_OK;
    return cme > 0 ? cme : AT_ERROR;
}

/* A negative errno a handler returned as it is: answered ERROR through the
 * one mapping, and logged, since the handler should have mapped it. */
static int handler_result(struct at_engine *e, const char *name, int result)
{
    if (result < 0 && result >= -ERRNO_MAX) {
        at_logf(&e->log, AT_LOG_WARN, "%s returned errno %d (%s): answered ERROR", name, -result,
                strerror(-result));
        return at_result_errno(result, 0);
    }
    return result;
}

static void add_result(struct at_engine *e, struct buf *b, int result)
{
    if (e->set.quiet)
        return;
    if (result > 0 && e->set.cmee) {
        char tmp[64];
        const char *text = e->set.cmee == 2 ? at_cme_text(result) : NULL;
        int n = text ? snprintf(tmp, sizeof(tmp), "+CME ERROR: %s", text)
                     : snprintf(tmp, sizeof(tmp), "+CME ERROR: %d", result);
        frame_line(e, b, tmp, (size_t)n, true);
        return;
    }
    static const struct {
        int result;
        int num;
        const char *text;
    } codes[] = {
        {AT_OK, AT_RC_OK, "OK"},
        {AT_CONNECT, AT_RC_CONNECT, "CONNECT"},
        {AT_ERROR, AT_RC_ERROR, "ERROR"},
    };
    int idx = 2; /* a CME code with AT+CMEE=0 is plain ERROR */
    for (int i = 0; i < 3; i++)
        if (codes[i].result == result)
            idx = i;
    if (e->set.verbose) {
        frame_line(e, b, codes[idx].text, strlen(codes[idx].text), true);
    } else {
        char tmp[8];
        int n = snprintf(tmp, sizeof(tmp), "%d\r", codes[idx].num);
        buf_add(b, tmp, (size_t)n);
    }
}

static void send_resp(struct at_engine *e)
{
    output(e, e->resp.p, e->resp.len);
    e->resp.len = 0;
}

void at_engine_reply(struct at_engine *e, const char *fmt, ...)
{
    struct buf line = {0};
    va_list ap;
    va_start(ap, fmt);
    buf_addf(&line, fmt, ap);
    va_end(ap);
    if (line.p)
        frame_line(e, &e->resp, line.p, line.len, e->cmd_lines++ == 0);
    free(line.p);
}

/* Runs what waited for the end of the line (at_engine_after_result()). */
static void run_after(struct at_engine *e)
{
    void (*fn)(void *) = e->after_fn;
    e->after_fn = NULL;
    if (fn)
        fn(e->after_ud);
}

void at_engine_after_result(struct at_engine *e, void (*fn)(void *ud), void *ud)
{
    e->after_fn = fn;
    e->after_ud = ud;
    if (!e->busy)
        run_after(e);
}

/* The engine can take input again: tells the owner if it declined some. */
static void input_ready(struct at_engine *e)
{
    if (!e->stalled)
        return;
    e->stalled = false;
    if (e->cfg.input_ready)
        e->cfg.input_ready(e->cfg.ud);
}

/* Ends the running line with its final result and lets queued work go. */
static void end_line(struct at_engine *e, int result)
{
    if (result != AT_NONE)
        add_result(e, &e->resp, result);
    send_resp(e);
    e->busy = false;
    /* URCs, queued or yet to come, keep a gap after the final result */
    dclock_timer_start(&e->gap, e->cfg.urc_gap_ms);
    run_after(e);
    input_ready(e);
}

/* Handles the result of one command; returns whether the line goes on. */
static bool command_done(struct at_engine *e, int result)
{
    switch (result) {
    case AT_PENDING:
        return false;
    case AT_CONNECT:
        add_result(e, &e->resp, AT_CONNECT);
        send_resp(e);
        e->ended = true; /* what follows on the line is dropped: data comes next */
        return false;
    case AT_OK:
        if (!e->ended)
            return true;
        end_line(e, AT_OK);
        return false;
    default:
        end_line(e, result);
        return false;
    }
}

void at_engine_finish(struct at_engine *e, int result)
{
    if (!e->busy)
        return;
    if (e->data_mode)
        at_engine_leave_data(e);
    if (command_done(e, handler_result(e, "a finished command", result)))
        run_line(e);
}

/* ---- parsing and dispatch -------------------------------------------- */

static const struct at_cmd *lookup(struct at_engine *e, const char *name, void **ud)
{
    for (size_t t = 0; t < e->ntables; t++)
        for (size_t i = 0; i < e->tables[t].n; i++)
            if (strcasecmp(e->tables[t].cmds[i].name, name) == 0) {
                *ud = e->tables[t].ud;
                return &e->tables[t].cmds[i];
            }
    return NULL;
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!%-./:_", c));
}

/* Parses the next command of the line into name/form/argument text.
 * Returns 1 for a command, 0 at the end of the line, -1 on a syntax error. */
static int next_command(struct at_engine *e, char *name, size_t name_cap, enum at_form *form,
                        char **argtext)
{
    char *s = e->exec;
    size_t p = e->exec_pos;
    while (s[p] == ' ' || s[p] == ';')
        p++;
    if (!s[p]) {
        e->exec_pos = p;
        return 0;
    }
    size_t n = 0;
    *argtext = NULL;
    char c = s[p];
    bool extended = c == '+';
    if (extended) {
        name[n++] = s[p++];
        while (is_name_char(s[p]) && n + 1 < name_cap)
            name[n++] = s[p++];
        if (n == 1)
            return -1;
    } else if (c == '&' && isalpha((unsigned char)s[p + 1])) {
        name[n++] = '&';
        name[n++] = (char)toupper((unsigned char)s[p + 1]);
        p += 2;
    } else if ((c == 'S' || c == 's') && isdigit((unsigned char)s[p + 1])) {
        name[n++] = 'S';
        p++;
        while (isdigit((unsigned char)s[p]) && n + 1 < name_cap)
            name[n++] = s[p++];
    } else if (isalpha((unsigned char)c)) {
        name[n++] = (char)toupper((unsigned char)c);
        p++;
    } else {
        return -1;
    }
    name[n] = '\0';
    bool s_reg = name[0] == 'S' && n > 1;
    if (s[p] == '=' && s[p + 1] == '?') {
        *form = AT_FORM_TEST;
        p += 2;
    } else if (s[p] == '?') {
        *form = AT_FORM_READ;
        p++;
    } else if (s[p] == '=' && (extended || s_reg)) {
        *form = AT_FORM_SET;
        p++;
        /* extended and S arguments run to the next ';' outside quotes */
        size_t start = p;
        bool in_str = false;
        while (s[p] && (in_str || s[p] != ';')) {
            if (s[p] == '"')
                in_str = !in_str;
            p++;
        }
        if (s[p]) /* ';' */
            s[p++] = '\0';
        *argtext = s + start;
    } else if (!extended && !s_reg && isdigit((unsigned char)s[p])) {
        /* basic command with a number: ATE0, AT&D2 */
        *form = AT_FORM_SET;
        size_t start = p;
        while (isdigit((unsigned char)s[p]))
            p++;
        size_t len = p - start;
        if (len >= sizeof(e->numbuf))
            return -1;
        memcpy(e->numbuf, s + start, len);
        e->numbuf[len] = '\0';
        *argtext = e->numbuf;
    } else {
        *form = AT_FORM_EXEC;
    }
    /* an extended command must end at ';' or the end of the line */
    if (extended && *form != AT_FORM_SET) {
        while (s[p] == ' ')
            p++;
        if (s[p] && s[p] != ';')
            return -1;
    }
    e->exec_pos = p;
    return 1;
}

/* Runs the commands of the line from exec_pos until one is pending, fails,
 * or the line ends. */
static void run_line(struct at_engine *e)
{
    for (;;) {
        char name[40];
        enum at_form form;
        char *argtext;
        int r = next_command(e, name, sizeof(name), &form, &argtext);
        if (r == 0) {
            end_line(e, AT_OK);
            return;
        }
        if (r < 0) {
            end_line(e, AT_ERROR);
            return;
        }
        void *ud = NULL;
        const struct at_cmd *c = lookup(e, name, &ud);
        if (!c) {
            end_line(e, AT_ERROR);
            return;
        }
        /* the table's checks, before the handler runs (redis style) */
        if (!(c->forms & form)) {
            end_line(e, AT_CME_NOT_ALLOWED); /* ERROR under AT+CMEE=0 */
            return;
        }
        struct at_args args = {0};
        if (form == AT_FORM_SET && (!parse_args(argtext, &args) || !args_match(c, &args))) {
            end_line(e, c->bad_args > 0 ? c->bad_args : AT_ERROR);
            return;
        }
        if (form == AT_FORM_SET && (c->flags & AT_F_JOB) && e->cfg.job_running &&
            e->cfg.job_running(e->cfg.ud)) {
            end_line(e, c->busy > 0 ? c->busy : AT_ERROR);
            return;
        }
        e->ended = (c->flags & AT_F_LAST) != 0;
        e->cmd_lines = 0;
        int result = handler_result(e, c->name, c->handler(e, form, &args, ud));
        if (!command_done(e, result))
            return;
    }
}

/* Runs a framed line; @p text is the line after "AT". */
static void execute(struct at_engine *e, const char *text, bool overflow)
{
    e->busy = true;
    e->resp.len = 0;
    if (overflow || e->input == AT_INPUT_ERROR) {
        end_line(e, AT_ERROR);
        return;
    }
    size_t n = strlen(text) + 1;
    if (text != e->last_line)
        memcpy(e->last_line, text, n);
    memcpy(e->exec, text, n);
    e->exec_pos = 0;
    run_line(e);
}

/* ---- input ----------------------------------------------------------- */

static size_t data_remaining(void *ud)
{
    struct at_engine *e = ud;
    return e->data_ops && e->data_ops->remaining ? e->data_ops->remaining(e->data_ud) : SIZE_MAX;
}

static void data_bytes(void *ud, const uint8_t *buf, size_t len)
{
    struct at_engine *e = ud;
    if (e->data_mode)
        e->data_ops->on_data(e->data_ud, buf, len);
}

static void data_escape(void *ud)
{
    struct at_engine *e = ud;
    if (!e->data_mode)
        return;
    const struct at_data_ops *ops = e->data_ops;
    void *dud = e->data_ud;
    at_engine_leave_data(e);
    ops->on_escape(dud);
}

/* Feeds data-mode bytes through the +++ rule; returns how many it took
 * (less than @p len when the sink got all it wanted and data mode ended). */
static size_t feed_data(struct at_engine *e, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (used < len && e->data_mode) {
        size_t want = data_remaining(e);
        size_t held = at_escape_held(&e->esc);
        size_t room = want > held ? want - held : 1;
        size_t n = len - used < room ? len - used : room;
        at_escape_feed(&e->esc, buf + used, n);
        used += n;
    }
    return used;
}

size_t at_engine_feed(struct at_engine *e, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (used < len) {
        if (e->input == AT_INPUT_OFF)
            return len; /* nobody listens: the bytes are gone */
        if (e->data_mode) {
            used += feed_data(e, buf + used, len - used);
            continue;
        }
        if (e->busy) {
            /* a command runs: the rest waits with the owner */
            e->stalled = true;
            return used;
        }
        size_t n = len - used, quiet;
        enum at_line_event ev = at_line_feed(&e->line, buf + used, &n, &quiet);
        if (e->set.echo && n > quiet)
            output(e, (const char *)buf + used + quiet, n - quiet);
        used += n;
        bool overflow;
        switch (ev) {
        case AT_LINE_NONE:
            break;
        case AT_LINE_DONE: {
            const char *text = at_line_text(&e->line, &overflow);
            execute(e, text, overflow);
            return used; /* one line a call: the owner checks its output in between */
        }
        case AT_LINE_REPEAT:
            execute(e, e->last_line, false);
            return used;
        }
    }
    return used;
}

void at_engine_set_input(struct at_engine *e, enum at_input in)
{
    if (e->input == in)
        return;
    e->input = in;
    at_line_reset(&e->line, in == AT_INPUT_OFF ? "input off" : "input on");
    if (in == AT_INPUT_OFF) {
        if (e->data_mode)
            at_engine_leave_data(e);
        e->busy = false;
        e->resp.len = 0;
        dclock_timer_stop(&e->gap);
        drop_urcs(e);
        run_after(e);
        input_ready(e); /* what waited is taken now, and dropped */
    }
}

/* ---- URCs ------------------------------------------------------------ */

static bool urc_may_go(const struct at_engine *e)
{
    return !e->busy && !e->data_mode && !dclock_timer_active(&e->gap);
}

/* Takes the oldest URC off the queue; the caller frees it. */
static struct urc *urc_pop(struct at_engine *e)
{
    struct urc *u = e->urc_head;
    e->urc_head = u->next;
    if (!e->urc_head)
        e->urc_tail = &e->urc_head;
    e->urc_count--;
    return u;
}

static void flush_urcs(struct at_engine *e)
{
    while (e->urc_head && urc_may_go(e)) {
        struct urc *u = urc_pop(e);
        output(e, u->text, u->len);
        free(u);
    }
}

static void post_urc(struct at_engine *e, bool now, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void post_urc(struct at_engine *e, bool now, const char *fmt, va_list ap)
{
    if (e->input == AT_INPUT_OFF && !now)
        return;
    struct buf text = {0}, framed = {0};
    buf_addf(&text, fmt, ap);
    if (text.p)
        frame_line(e, &framed, text.p, text.len, true);
    free(text.p);
    if (!framed.p)
        return;
    if (now || (!e->urc_head && urc_may_go(e))) {
        output(e, framed.p, framed.len);
        free(framed.p);
        return;
    }
    if (e->urc_count == AT_URC_QUEUE_MAX)
        free(urc_pop(e)); /* a module with a full buffer loses the oldest */
    struct urc *u = malloc(sizeof(*u) + framed.len);
    if (u) {
        u->next = NULL;
        u->len = framed.len;
        memcpy(u->text, framed.p, framed.len);
        *e->urc_tail = u;
        e->urc_tail = &u->next;
        e->urc_count++;
    }
    free(framed.p);
}

void at_engine_urc(struct at_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    post_urc(e, false, fmt, ap);
    va_end(ap);
}

void at_engine_urc_now(struct at_engine *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    post_urc(e, true, fmt, ap);
    va_end(ap);
}

/* ---- data mode ------------------------------------------------------- */

void at_engine_enter_data(struct at_engine *e, const struct at_data_ops *ops, void *ud)
{
    e->data_mode = true;
    e->data_ops = ops;
    e->data_ud = ud;
    e->esc.data = data_bytes;
    e->esc.escape = data_escape;
    e->esc.remaining = data_remaining;
    e->esc.ud = e;
    at_escape_start(&e->esc, e->clk, e->cfg.guard_ms);
}

void at_engine_leave_data(struct at_engine *e)
{
    if (!e->data_mode)
        return;
    at_escape_stop(&e->esc);
    e->data_mode = false;
    e->data_ops = NULL;
    e->data_ud = NULL;
}

void at_engine_dtr_drop(struct at_engine *e)
{
    if (!e->data_mode)
        return;
    at_escape_flush(&e->esc); /* held '+' were data after all */
    data_escape(e);
}
