/* store_queue.c - the store's work queue: items run one at a time, in
 * order, on libuv's threadpool, and complete on the loop (see store.h). */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>

static void start_next(struct store *s);

static void run_work(uv_work_t *req)
{
    struct store_work *w = req->data;
    w->result = w->work ? w->work(w->ud) : 0;
}

static void after_work(uv_work_t *req, int status)
{
    struct store_work *w = req->data;
    struct store *s = w->s;
    (void)status; /* never cancelled */
    store_cb done = w->done;
    void *ud = w->ud;
    int result = w->result;
    free(w);
    s->q_running = NULL;
    /* the next item was queued before done() runs, so it may start first;
     * and done() may close the store once nothing is queued (a flush) */
    start_next(s);
    if (done)
        done(ud, result);
}

static void start_next(struct store *s)
{
    struct store_work *w = s->q_head;
    if (s->q_running || !w)
        return;
    s->q_head = w->next;
    if (!s->q_head)
        s->q_tail = &s->q_head;
    s->q_running = w;
    w->req.data = w;
    if (uv_queue_work(s->loop, &w->req, run_work, after_work) != 0) {
        /* libuv refuses only bad arguments: run it here rather than lose it */
        run_work(&w->req);
        after_work(&w->req, 0);
    }
}

int store_submit(struct store *s, int (*work)(void *ud), store_cb done, void *ud)
{
    if (!s->loop)
        return -ENOTCONN;
    struct store_work *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct store_work){.s = s, .work = work, .done = done, .ud = ud};
    if (!s->q_tail)
        s->q_tail = &s->q_head;
    *s->q_tail = w;
    s->q_tail = &w->next;
    start_next(s);
    return 0;
}

struct flush {
    void (*cb)(void *ud);
    void *ud;
};

static void flushed(void *ud, int result)
{
    (void)result;
    struct flush *f = ud;
    f->cb(f->ud);
    free(f);
}

int store_flush(struct store *s, void (*cb)(void *ud), void *ud)
{
    struct flush *f = malloc(sizeof(*f));
    if (!f)
        return -ENOMEM;
    *f = (struct flush){cb, ud};
    int rc = store_submit(s, NULL, flushed, f); /* an empty item after all the others */
    if (rc)
        free(f);
    return rc;
}

bool store_busy(const struct store *s)
{
    return s->q_running || s->q_head;
}
