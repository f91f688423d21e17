/* port_garble.c - what a UART receiving at the wrong rate makes of 8N1
 * frames (see port_garble() in include/dfota/port.h).
 *
 * Time is counted in units of 1 / (2 * tx * rx) seconds: a sent bit lasts
 * 2 * rx units and half a received bit tx units, so every edge of the line
 * and every sample point is an integer.
 */
#include "port_int.h"

#define FRAME_BITS 10u /* start, 8 data, stop */

struct line {
    const uint8_t *in;
    uint64_t nbits; /* bits sent; the line idles high (mark) after them */
    uint64_t tbit;  /* units a sent bit lasts */
};

/* Level of sent bit @p i: 0 for space, 1 for mark. */
static unsigned bit_at(const struct line *l, uint64_t i)
{
    if (i >= l->nbits)
        return 1;
    unsigned pos = (unsigned)(i % FRAME_BITS);
    if (pos == 0)
        return 0;
    if (pos == FRAME_BITS - 1)
        return 1;
    return (l->in[i / FRAME_BITS] >> (pos - 1)) & 1u;
}

static unsigned level_at(const struct line *l, uint64_t t)
{
    return bit_at(l, t / l->tbit);
}

/* The first time from @p t on at which the line is at @p level; UINT64_MAX
 * if it never is (only for level 0: the line ends idle high). */
static uint64_t next_level(const struct line *l, uint64_t t, unsigned level)
{
    uint64_t i = t / l->tbit;
    if (bit_at(l, i) == level)
        return t;
    for (i++; i <= l->nbits; i++)
        if (bit_at(l, i) == level)
            return i * l->tbit;
    return UINT64_MAX;
}

size_t port_garble(uint32_t tx_bps, uint32_t rx_bps, const uint8_t *in, size_t len, uint8_t *out,
                   size_t cap)
{
    if (!tx_bps || !rx_bps)
        return 0;
    const struct line l = {in, (uint64_t)len * FRAME_BITS, 2u * (uint64_t)rx_bps};
    const uint64_t half = tx_bps;    /* half a received bit */
    const uint64_t rbit = 2u * half; /* a received bit */
    size_t n = 0;
    uint64_t t = 0; /* the receiver hunts a start bit from here */
    while (n < cap) {
        uint64_t start = next_level(&l, t, 0);
        if (start == UINT64_MAX)
            break;
        uint64_t mid = start + half;
        if (level_at(&l, mid)) { /* a glitch, not a start bit */
            t = mid;
            continue;
        }
        unsigned byte = 0;
        for (unsigned k = 0; k < 8; k++)
            byte |= level_at(&l, mid + (k + 1) * rbit) << k;
        t = mid + (FRAME_BITS - 1) * rbit; /* the stop bit's sample */
        out[n++] = (uint8_t)byte;
        /* A stop bit sampled low: the low line is taken as the next start
         * bit (16550 resynchronisation), unless the whole frame was low (a
         * break): then the receiver waits for the line to go high first. */
        if (!level_at(&l, t) && !byte)
            t = next_level(&l, t, 1);
    }
    return n;
}
