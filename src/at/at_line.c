/* at_line.c - V.250 command line framing (see at_line.h). */
#include "at_line.h"

#include <errno.h>
#include <stdlib.h>

static const char *state_name(enum at_line_state s)
{
    switch (s) {
    case AT_LINE_IDLE:
        return "idle";
    case AT_LINE_A:
        return "a";
    case AT_LINE_BODY:
        return "body";
    case AT_LINE_CR:
        return "cr";
    }
    return "?";
}

static void enter_state(struct at_line *l, enum at_line_state s, const char *event)
{
    if (at_log_on(l->log, AT_LOG_DEBUG) && s != l->state)
        at_log_state(l->log, "line", state_name(l->state), state_name(s), event);
    l->state = s;
    if (s == AT_LINE_BODY) {
        l->len = 0;
        l->overflow = false;
    }
}

int at_line_init(struct at_line *l, size_t max, const struct at_settings *set,
                 const struct at_log *log)
{
    *l = (struct at_line){.state = AT_LINE_IDLE, .max = max, .set = set, .log = log};
    l->buf = malloc(max + 1);
    if (!l->buf)
        return -ENOMEM;
    l->buf[0] = '\0';
    return 0;
}

void at_line_fini(struct at_line *l)
{
    free(l->buf);
    l->buf = NULL;
}

void at_line_reset(struct at_line *l, const char *why)
{
    enter_state(l, AT_LINE_IDLE, why);
    l->len = 0;
    l->overflow = false;
}

/* ---- one handler per state, each taking one byte ---------------------- */

static enum at_line_event on_idle(struct at_line *l, char c)
{
    if (c == 'A' || c == 'a')
        enter_state(l, AT_LINE_A, "'A'");
    return AT_LINE_NONE; /* anything else is not a command: skipped */
}

static enum at_line_event on_a(struct at_line *l, char c)
{
    if (c == 'T' || c == 't') {
        enter_state(l, AT_LINE_BODY, "'T'");
    } else if (c == '/') {
        enter_state(l, AT_LINE_IDLE, "'/'");
        return AT_LINE_REPEAT;
    } else if (c != 'A' && c != 'a') {
        enter_state(l, AT_LINE_IDLE, "not a prefix");
    }
    return AT_LINE_NONE;
}

static enum at_line_event on_body(struct at_line *l, char c)
{
    if (c == (char)l->set->s3) {
        l->buf[l->len] = '\0';
        enter_state(l, AT_LINE_CR, "S3");
        return AT_LINE_DONE;
    }
    if (c == (char)l->set->s5) {
        if (l->len)
            l->len--;
    } else if (c == (char)l->set->s4 || c == '\0') {
        /* line feeds (and NULs) inside a line are not part of it */
    } else if (l->len < l->max) {
        l->buf[l->len++] = c;
    } else {
        l->overflow = true;
    }
    return AT_LINE_NONE;
}

/* Right after a line's S3: an S4 ends the line too (*quiet: no echo);
 * anything else is the next input. */
static enum at_line_event on_cr(struct at_line *l, char c, bool *quiet)
{
    if (c == (char)l->set->s4) {
        enter_state(l, AT_LINE_IDLE, "S4");
        *quiet = true;
        return AT_LINE_NONE;
    }
    enter_state(l, AT_LINE_IDLE, "no S4");
    return on_idle(l, c);
}

enum at_line_event at_line_feed(struct at_line *l, const uint8_t *buf, size_t *len, size_t *quiet)
{
    size_t n = *len;
    *quiet = 0;
    for (size_t i = 0; i < n; i++) {
        char c = (char)buf[i];
        enum at_line_event ev = AT_LINE_NONE;
        bool q = false;
        switch (l->state) {
        case AT_LINE_CR:
            /* only ever the first byte of a feed: a line's S3 ends one */
            ev = on_cr(l, c, &q);
            if (q)
                *quiet = i + 1;
            break;
        case AT_LINE_IDLE:
            ev = on_idle(l, c);
            break;
        case AT_LINE_A:
            ev = on_a(l, c);
            break;
        case AT_LINE_BODY:
            ev = on_body(l, c);
            break;
        }
        if (ev != AT_LINE_NONE) {
            *len = i + 1;
            return ev;
        }
    }
    return AT_LINE_NONE;
}

const char *at_line_text(struct at_line *l, bool *overflow)
{
    *overflow = l->overflow;
    return l->buf;
}
