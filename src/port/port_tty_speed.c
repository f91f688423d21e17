/* port_tty_speed.c - reads a tty's speed with TCGETS2, which gives the
 * rate in bits per second whatever the host set (a B* constant or an
 * arbitrary BOTHER rate).
 *
 * This file cannot include port_int.h: libuv's headers pull in <termios.h>,
 * whose struct termios clashes with the kernel's <asm/termbits.h> that
 * defines struct termios2. Its one function is declared in port_int.h.
 */
#include <asm/termbits.h>
#include <stdint.h>
#include <sys/ioctl.h>

uint32_t port_int_tty_speed(int fd);

uint32_t port_int_tty_speed(int fd)
{
    struct termios2 t;
    if (ioctl(fd, TCGETS2, &t) != 0)
        return 0;
    /* The host's receive speed is what garbles the module's output; a zero
     * input speed means "same as output". */
    return t.c_ispeed ? t.c_ispeed : t.c_ospeed;
}
