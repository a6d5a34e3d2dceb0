/*
 * Terminals. The process run with a terminal gets a pty of the container's
 * own devpts instance (mounted newinstance at /dev/pts by rootfs.c), never
 * the caller's (a restored init gets one of the host's: CRIU restores the
 * container's devpts itself, after the descriptors it inherits are made); the caller's terminal is only read and written by the shim,
 * in raw mode while it is relayed and restored at exit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "shim.h"

/*
 * A pty from the devpts whose ptmx is `ptmx`: the container's /dev/pts/ptmx
 * (called inside its mount namespace), or the host's /dev/ptmx.
 */
int pty_open(const char *ptmx, int *master, int *slave, char *err, size_t errlen)
{
    int m = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NOFOLLOW);
    if (m < 0 && errno == ELOOP && strcmp(ptmx, CONTAINER_PTMX) != 0) /* the host's may be a link to pts/ptmx */
        m = open(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) {
        snprintf(err, errlen, "cannot open %s: %s", ptmx, strerror(errno));
        return -1;
    }
    unsigned n;
    int unlock = 0;
    if (ioctl(m, TIOCGPTN, &n) < 0) {
        snprintf(err, errlen, "%s is not a pty multiplexer", ptmx);
        close(m);
        return -1;
    }
    if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
        snprintf(err, errlen, "cannot unlock the pty: %s", strerror(errno));
        close(m);
        return -1;
    }
    /* the peer of this very master: no path lookup the container could redirect */
    int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        snprintf(err, errlen, "cannot open the pty's slave: %s", strerror(errno));
        close(m);
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

static int term_fd = -1;
static struct termios term_saved;

static void term_restore(void)
{
    if (term_fd >= 0)
        tcsetattr(term_fd, TCSADRAIN, &term_saved);
    term_fd = -1;
}

/*
 * input too: raw, every key reaches the container's pty, which has its own line
 * discipline (Ctrl-C included). Else only output processing goes: the pty has
 * already turned "\n" into "\r\n", and Ctrl-C stays a signal for the shim to forward.
 */
int term_raw(int fd, int input_too)
{
    struct termios raw;
    if (tcgetattr(fd, &term_saved) < 0)
        return -1;
    raw = term_saved;
    if (input_too)
        cfmakeraw(&raw);
    else
        raw.c_oflag &= ~(tcflag_t)OPOST;
    static int registered;
    if (!registered && atexit(term_restore) == 0)
        registered = 1;
    term_fd = fd;
    if (tcsetattr(fd, TCSADRAIN, &raw) < 0) {
        term_fd = -1;
        return -1;
    }
    return 0;
}

void winsize_copy(int from, int to)
{
    struct winsize ws;
    if (from >= 0 && ioctl(from, TIOCGWINSZ, &ws) == 0)
        ioctl(to, TIOCSWINSZ, &ws);
}
