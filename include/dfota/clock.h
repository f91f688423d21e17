/* clock.h - real, scaled and test clocks; every delay of the module goes
 * through one of these.
 *
 * Time is "module time" in milliseconds: what the emulated module believes
 * has passed. A real clock maps it onto the wall clock multiplied by a scale
 * (0.01 runs a 1 s guard time in 10 ms); a test clock moves only when a test
 * calls dclock_test_advance(), so unit tests never sleep.
 *
 * Timers are plain structs owned by their user (no libuv handle each): the
 * clock keeps them in a list ordered by due time and drives them from one
 * uv_timer_t (real) or from dclock_test_advance() (test). Stopping is
 * synchronous, so a user may free its timer right after dclock_timer_stop().
 */
#ifndef DFOTA_CLOCK_H
#define DFOTA_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct dclock;
struct dclock_timer;

typedef void (*dclock_cb)(struct dclock_timer *t);

/** A timer; fields are private to clock.c. Embed it in the owner's struct. */
struct dclock_timer {
    struct dclock *clock;
    dclock_cb cb;
    void *data; /**< free for the owner */
    uint64_t due;
    uint64_t seq;
    struct dclock_timer *next;
    bool active;
};

/** A clock on @p loop whose module time runs @p scale times slower than
 *  the wall clock would make a real module's (scale 1: real time; 0.1: ten
 *  times faster). Returns NULL on bad scale or no memory. Close with
 *  dclock_close(). */
struct dclock *dclock_new_real(uv_loop_t *loop, double scale);

/** A test clock: module time starts at 0 and advances only through
 *  dclock_test_advance(). Holds no libuv handle. */
struct dclock *dclock_new_test(uv_loop_t *loop);

/** Closes the clock; @p cb (may be NULL) runs once its handle is closed
 *  (at once for a test clock). All timers must be stopped first. */
void dclock_close(struct dclock *c, void (*cb)(void *arg), void *arg);

/** The loop the clock runs on. */
uv_loop_t *dclock_loop(const struct dclock *c);

/** Module time in milliseconds since the clock was made. */
uint64_t dclock_now(const struct dclock *c);

/** Module time in microseconds (for byte pacing at high baud rates). */
uint64_t dclock_now_us(const struct dclock *c);

/** The scale of a real clock (1.0 for a test clock). */
double dclock_scale(const struct dclock *c);

/** Sets up @p t on @p c; @p cb runs when it fires. Does not start it. */
void dclock_timer_init(struct dclock *c, struct dclock_timer *t, dclock_cb cb, void *data);

/** (Re)starts @p t to fire once after @p ms of module time (0: on the next
 *  turn of the loop, never synchronously). */
void dclock_timer_start(struct dclock_timer *t, uint64_t ms);

/** Stops @p t if it is pending; safe to call on a stopped timer. */
void dclock_timer_stop(struct dclock_timer *t);

/** Whether @p t is pending. */
bool dclock_timer_active(const struct dclock_timer *t);

/** Test clock: moves module time forward by @p ms, firing every timer that
 *  comes due on the way, in due order (timers started by callbacks included).
 *  Returns the number of timers fired. */
unsigned dclock_test_advance(struct dclock *c, uint64_t ms);

#endif
