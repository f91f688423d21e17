/* port_tty_speed.c - reads and sets a tty's speed with TCGETS2/TCSETS2,
 * which give the rate in bits per second whatever the host set (a B*
 * constant or an arbitrary BOTHER rate).
 *
 * This file cannot include port_int.h: libuv's headers pull in <termios.h>,
 * whose struct termios clashes with the kernel's <asm/termbits.h> that
 * defines struct termios2. Its one function is declared in port_int.h.
 */
#include <asm/termbits.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

uint32_t port_int_tty_speed(int fd);
int port_int_tty_set_speed(int fd, uint32_t bps);

uint32_t port_int_tty_speed(int fd)
{
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) != 0)
        return 0;
    /* The host's receive speed is what garbles the module's output; a zero
     * input speed means "same as output". */
    return t.c_ispeed ? t.c_ispeed : t.c_ospeed;
}

/* A standard rate as its B* constant (what cfgetospeed() of a host then
 * reads), any other as BOTHER. */
static tcflag_t speed_code(uint32_t bps)
{
    static const struct {
        uint32_t bps;
        tcflag_t code;
    } codes[] = {{4800, B4800},     {9600, B9600},       {19200, B19200},    {38400, B38400},
                 {57600, B57600},   {115200, B115200},   {230400, B230400},  {460800, B460800},
                 {921600, B921600}, {3000000, B3000000}, {4000000, B4000000}};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i].bps == bps)
            return codes[i].code;
    return BOTHER;
}

int port_int_tty_set_speed(int fd, uint32_t bps)
{
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) != 0)
        return -errno;
    t.c_cflag &= ~(tcflag_t)(CBAUD | (CBAUD << IBSHIFT));
    t.c_cflag |= speed_code(bps); /* input speed: same as output */
    t.c_ispeed = bps;
    t.c_ospeed = bps;
    return ioctl(fd, TCSETS2, &t) == 0 ? 0 : -errno;
}
