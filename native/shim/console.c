/*
 * The console of a container run with a terminal (-t): the supervisor holds
 * the pty master, copies what the container writes to its log and to the one
 * client attached through attach.sock in the state dir, and feeds what that
 * client sends to the pty. Output from before the first attach is kept (its
 * last EARLY_MAX bytes) and sent on attach, so a shell's first prompt is not
 * lost to the moment between start and attach.
 *
 * Client to supervisor, frames of TYPE (1 byte), LEN (2 bytes, big-endian), DATA:
 *   'd' input for the pty; 'w' window size: rows, cols (2 bytes each).
 * Supervisor to client: the terminal's output, as is. The supervisor closes
 * the connection when the container's init is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "shim.h"

static void drop_client(struct console *c)
{
    if (c->client >= 0)
        close(c->client);
    c->client = -1;
    c->nin = 0;
}

int console_open(struct console *c, const struct shim_opts *o, int master)
{
    memset(c, 0, sizeof *c);
    c->client = -1;
    c->master = fcntl(master, F_DUPFD_CLOEXEC, 3);
    if (c->master < 0 || fcntl(c->master, F_SETFL, O_NONBLOCK) < 0)
        return -1;
    /* through the state dir's descriptor: a state dir path may be longer than sun_path */
    int dir = open(o->state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return -1;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/attach.sock", dir);
    unlink(a.sun_path);
    c->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(077);
    int rc = c->listener < 0 ? -1 : bind(c->listener, (struct sockaddr *)&a, sizeof a);
    umask(old);
    if (rc == 0)
        rc = listen(c->listener, 4);
    close(dir);
    return rc;
}

/* what the container wrote: to the attached client, or kept for the first one */
void console_output(struct console *c, const char *buf, size_t n)
{
    if (c->client >= 0) {
        if (write_all(c->client, buf, n) < 0)
            drop_client(c);
        return;
    }
    if (c->attached)
        return;
    if (n >= EARLY_MAX) {
        memcpy(c->early, buf + n - EARLY_MAX, EARLY_MAX);
        c->nearly = EARLY_MAX;
        return;
    }
    if (c->nearly + n > EARLY_MAX) {
        size_t drop = c->nearly + n - EARLY_MAX;
        memmove(c->early, c->early + drop, c->nearly - drop);
        c->nearly -= drop;
    }
    memcpy(c->early + c->nearly, buf, n);
    c->nearly += n;
}

static void accept_client(struct console *c)
{
    int fd = accept4(c->listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (c->client >= 0) { /* one client at a time */
        close(fd);
        return;
    }
    /* a client that stops reading is dropped rather than stalling the container's output */
    struct timeval t = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
    c->client = fd;
    if (!c->attached && c->nearly && write_all(fd, c->early, c->nearly) < 0)
        drop_client(c);
    c->attached = 1;
    c->nearly = 0;
}

static void flush_input(struct console *c)
{
    ssize_t n = write_some(c->master, c->pend + c->pend_off, c->pend_len - c->pend_off);
    c->pend_off += n < 0 ? c->pend_len : (size_t)n; /* an error: the pty is gone, the input has nowhere to go */
    if (c->pend_off >= c->pend_len)
        c->pend_off = c->pend_len = 0;
}

/* whole frames from the client, while the pty takes input */
static void take_frames(struct console *c)
{
    size_t at = 0;
    while (c->pend_len == 0 && c->nin - at >= 3) {
        unsigned char *f = c->in + at;
        size_t len = (size_t)f[1] << 8 | f[2];
        if (len > FRAME_MAX) {
            drop_client(c);
            return;
        }
        if (c->nin - at < 3 + len)
            break;
        if (f[0] == 'd') {
            memcpy(c->pend, f + 3, len);
            c->pend_len = len;
            flush_input(c);
        } else if (f[0] == 'w' && len == 4) {
            struct winsize ws = {.ws_row = (unsigned short)(f[3] << 8 | f[4]), .ws_col = (unsigned short)(f[5] << 8 | f[6])};
            ioctl(c->master, TIOCSWINSZ, &ws);
        }
        at += 3 + len;
    }
    memmove(c->in, c->in + at, c->nin - at);
    c->nin -= at;
}

int console_fds(struct console *c, struct pollfd *p)
{
    int n = 0;
    p[n++] = (struct pollfd){c->listener, POLLIN, 0};
    if (c->pend_len)
        p[n++] = (struct pollfd){c->master, POLLOUT, 0};
    else if (c->client >= 0)
        p[n++] = (struct pollfd){c->client, POLLIN, 0};
    return n;
}

void console_ready(struct console *c, const struct pollfd *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (!p[i].revents)
            continue;
        if (p[i].fd == c->listener) {
            accept_client(c);
        } else if (p[i].fd == c->master) {
            flush_input(c);
            take_frames(c);
        } else if (p[i].fd == c->client) {
            ssize_t r = read(c->client, c->in + c->nin, sizeof c->in - c->nin);
            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r <= 0) {
                drop_client(c);
                continue;
            }
            c->nin += (size_t)r;
            take_frames(c);
        }
    }
}

void console_close(struct console *c, const struct shim_opts *o)
{
    drop_client(c);
    close(c->listener);
    close(c->master);
    char path[4096];
    snprintf(path, sizeof path, "%s/attach.sock", o->state_dir);
    unlink(path);
}
