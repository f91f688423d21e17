/* store_stream.c - a file streamed from the loop to the store's workers:
 * the slot's package and an EFS upload (see store_int.h). */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One buffer on its way to the file. */
struct chunk {
    struct store_stream *st;
    uint8_t *buf;
    size_t len;
    uint64_t flushed; /* the file's size after this chunk's work */
};

static int chunk_run(void *ud)
{
    struct chunk *c = ud;
    struct store_stream *st = c->st;
    if (!st->werr && st->fd < 0)
        st->werr = st->create ? st->create(st) : -EBADF;
    if (!st->werr)
        st->werr = store__append(st->fd, &st->flushed, st->limit, c->buf, c->len, st->full);
    c->flushed = st->flushed;
    return st->werr;
}

static void chunk_done(void *ud, int result)
{
    struct chunk *c = ud;
    struct store_stream *st = c->st;
    if (result && !st->err) {
        /* what is not in the file is dropped: the file is what it holds */
        st->err = result;
        st->taken = c->flushed;
        st->fill_len = 0;
    }
    uint64_t before = st->queued;
    st->queued -= c->len;
    free(c->buf);
    free(c);
    if (st->drained && before > STORE_SLOT_BACKLOG_LOW && st->queued <= STORE_SLOT_BACKLOG_LOW)
        st->drained(st->drained_ud);
}

/* Hands the filled buffer to the queue; the stream takes a fresh one. */
static int stream_submit(struct store_stream *st)
{
    struct chunk *c = malloc(sizeof(*c));
    uint8_t *next = malloc(STORE_STREAM_BUF);
    if (!c || !next) {
        free(c);
        free(next);
        return -ENOMEM;
    }
    *c = (struct chunk){.st = st, .buf = st->fill, .len = st->fill_len};
    int rc = store_submit(st->s, chunk_run, chunk_done, c);
    if (rc) {
        free(c);
        free(next);
        return rc;
    }
    st->queued += st->fill_len;
    st->fill = next;
    st->fill_len = 0;
    return 0;
}

int store__stream_init(struct store_stream *st, struct store *s, uint64_t limit, int full, int fd,
                       int (*create)(struct store_stream *st))
{
    if (!s->loop)
        return -ENOTCONN;
    *st = (struct store_stream){.s = s, .limit = limit, .full = full, .create = create, .fd = fd};
    st->fill = malloc(STORE_STREAM_BUF);
    return st->fill ? 0 : -ENOMEM;
}

int store__stream_write(struct store_stream *st, const void *buf, size_t len)
{
    if (!buf && len > 0)
        return -EINVAL;
    if (st->err)
        return st->err; /* the file is past saving */
    if (len > st->limit - st->taken)
        return st->full;
    const uint8_t *p = buf;
    while (len) {
        if (st->fill_len == STORE_STREAM_BUF) {
            int rc = stream_submit(st);
            if (rc)
                return rc;
        }
        size_t n = STORE_STREAM_BUF - st->fill_len;
        n = n < len ? n : len;
        memcpy(st->fill + st->fill_len, p, n);
        st->fill_len += n;
        st->taken += n;
        p += n;
        len -= n;
    }
    return 0;
}

/* The stream's last work item: the owner's end on the worker, then on the
 * loop its done with the end's result or else the first error the stream
 * met (a chunk's write, or no memory to queue the last buffer). Every
 * chunk's done has run by then: the queue is in order. */
static int last_run(void *ud)
{
    struct store_stream *st = ud;
    return st->end_run(st);
}

static void last_done(void *ud, int result)
{
    struct store_stream *st = ud;
    if (result == 0)
        result = st->err;
    free(st->fill);
    st->fill = NULL;
    st->end_done(st, result);
}

void store__stream_end(struct store_stream *st, bool drop, int (*run)(struct store_stream *st),
                       void (*done)(struct store_stream *st, int result))
{
    st->drained = NULL; /* the door is done with it */
    if (!drop && st->fill_len && !st->err && stream_submit(st) != 0)
        st->err = -ENOMEM;
    st->fill_len = 0;
    st->end_run = run;
    st->end_done = done;
    if (store_submit(st->s, last_run, last_done, st) != 0) {
        /* no memory for the last item: end here, on the loop, rather than
         * leave the file half told */
        last_done(st, last_run(st));
    }
}
