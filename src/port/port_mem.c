/* port_mem.c - the in-memory port: the unit tests of the layers above play
 * the host through port_mem_*() (see include/dfota/port.h). */
#include "port_int.h"

#include <stdlib.h>
#include <string.h>

#define MEM_HOST_MAX (4u * 1024u * 1024u) /* what the host side holds untaken */
#define MEM_CHUNK 4096u                   /* input is raised in pieces of at most this */

struct port_mem {
    struct port base;
    uv_idle_t idle;          /* delivers input whose pacing pause has ended */
    struct port_buf in;      /* the host sent it, the module has not read it */
    struct port_buf to_host; /* the module sent it, the host has not taken it */
    uint32_t host_bps;
    size_t host_window; /* the most to_host holds */
    bool reading;
    bool delivering;
};

static const struct port_ops mem_ops;

static struct port_mem *mem_of(struct port *p)
{
    return p->ops == &mem_ops ? (struct port_mem *)p : NULL;
}

/* Raises the input the pacing allows now, in pieces (a copy each, so that
 * on_data may feed more). */
static void mem_deliver(struct port_mem *m)
{
    if (m->delivering)
        return; /* a feed from on_data: the outer call goes on */
    m->delivering = true;
    uint8_t chunk[MEM_CHUNK];
    while (m->in.len && m->reading && !m->base.closing) {
        size_t n = port_int_rx_budget(&m->base);
        if (!n)
            break;
        if (n > m->in.len)
            n = m->in.len;
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        memcpy(chunk, m->in.data + m->in.head, n);
        port_buf_consume(&m->in, n);
        port_int_rx(&m->base, chunk, n);
    }
    if (!m->in.len)
        port_int_rx_idle(&m->base);
    m->delivering = false;
}

static void on_idle(uv_idle_t *h)
{
    struct port_mem *m = h->data;
    uv_idle_stop(h);
    mem_deliver(m);
}

static ssize_t mem_write(struct port *p, const uint8_t *buf, size_t len)
{
    struct port_mem *m = mem_of(p);
    size_t room = m->to_host.len < m->host_window ? m->host_window - m->to_host.len : 0;
    size_t n = len < room ? len : room;
    int rc = port_buf_append(&m->to_host, buf, n, m->host_window);
    return rc < 0 ? rc : (ssize_t)n;
}

static void mem_want_write(struct port *p, bool on)
{
    (void)p; /* port_mem_take() tells the common part when there is room */
    (void)on;
}

static void mem_want_read(struct port *p, bool on)
{
    struct port_mem *m = mem_of(p);
    m->reading = on;
    /* Never raise input from inside the caller (port_set_rate(), a timer):
     * the next turn of the loop does. */
    if (on && m->in.len)
        uv_idle_start(&m->idle, on_idle);
}

static void mem_discard(struct port *p)
{
    struct port_mem *m = mem_of(p);
    p->stats.dropped += m->to_host.len;
    port_buf_consume(&m->to_host, m->to_host.len);
}

static uint32_t mem_host_rate(const struct port *p)
{
    return ((const struct port_mem *)p)->host_bps;
}

static void on_mem_closed(uv_handle_t *h)
{
    struct port_mem *m = h->data;
    port_int_closed(&m->base);
}

static void mem_close(struct port *p)
{
    struct port_mem *m = mem_of(p);
    uv_close((uv_handle_t *)&m->idle, on_mem_closed);
}

static void mem_destroy(struct port *p)
{
    struct port_mem *m = mem_of(p);
    port_buf_free(&m->in);
    port_buf_free(&m->to_host);
    free(m);
}

static const struct port_ops mem_ops = {
    .kind = "mem",
    .write = mem_write,
    .want_write = mem_want_write,
    .want_read = mem_want_read,
    .discard = mem_discard,
    .host_rate = mem_host_rate,
    .close = mem_close,
    .destroy = mem_destroy,
};

int port_mem_new(struct dclock *clk, const struct port_events *ev, void *ud, struct port **out)
{
    struct port_mem *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    int rc = port_int_init(&m->base, &mem_ops, clk, ev, ud, "mem", 0);
    if (rc == 0) {
        rc = uv_idle_init(dclock_loop(clk), &m->idle);
        if (rc < 0)
            port_int_fini(&m->base);
    }
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->idle.data = m;
    m->reading = true;
    m->host_window = MEM_HOST_MAX;
    m->base.host_open = true;
    *out = &m->base;
    return 0;
}

void port_mem_feed(struct port *p, const void *buf, size_t len)
{
    struct port_mem *m = mem_of(p);
    if (!m || p->closing || port_buf_append(&m->in, buf, len, SIZE_MAX) < 0)
        return;
    mem_deliver(m);
}

size_t port_mem_take(struct port *p, char *buf, size_t cap)
{
    struct port_mem *m = mem_of(p);
    if (!m || !cap)
        return 0;
    size_t n = m->to_host.len < cap - 1 ? m->to_host.len : cap - 1;
    if (n)
        memcpy(buf, m->to_host.data + m->to_host.head, n);
    buf[n] = '\0';
    port_buf_consume(&m->to_host, n);
    if (n)
        port_int_writable(p);
    return n;
}

void port_mem_set_host(struct port *p, bool open)
{
    if (mem_of(p))
        port_int_host(p, open);
}

void port_mem_set_host_rate(struct port *p, uint32_t bps)
{
    struct port_mem *m = mem_of(p);
    if (m)
        m->host_bps = bps;
}

void port_mem_set_host_window(struct port *p, size_t bytes)
{
    struct port_mem *m = mem_of(p);
    if (m)
        m->host_window = bytes ? bytes : MEM_HOST_MAX;
}

size_t port_mem_unread(const struct port *p)
{
    const struct port_mem *m = p->ops == &mem_ops ? (const struct port_mem *)p : NULL;
    return m ? m->in.len + p->hold.len : 0;
}
