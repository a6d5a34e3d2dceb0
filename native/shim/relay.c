/*
 * The relay of exec and attach: copies the caller's stdin to the container
 * process (with -i) and its output back to the caller's stdout and stderr,
 * forwards signals and window size changes, and returns the process's wait
 * status. For attach there is no process: the other end is the supervisor's
 * attach.sock, input goes in frames (console.c) and the relay ends when the
 * supervisor closes the connection.
 * The container's ends (pipes or the pty master) are non-blocking and
 * buffered, so a process that does not read its stdin never stalls its
 * output. Output still buffered when the process exits is drained until it
 * stops coming (its background children may hold the pipes or the pty).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define QUIET_MS 100   /* after the exit: no more output for this long ends the relay */
#define DRAIN_MS 2000  /* after the exit: the relay ends by then whatever comes */

static const int forwarded[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2};

static void relay_signals(sigset_t *m)
{
    sigemptyset(m);
    sigaddset(m, SIGCHLD);
    sigaddset(m, SIGWINCH);
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(m, forwarded[i]);
}

void relay_block_signals(void)
{
    sigset_t m;
    relay_signals(&m);
    sigprocmask(SIG_BLOCK, &m, NULL);
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* after a failed write: stop this direction; a pipe's writer then sees EPIPE, the master is kept for the others */
static void copy_broken(struct relay *r, struct copy *c)
{
    c->off = c->len = 0;
    if (c->is_input) {
        if (c->to != r->master)
            close(c->to);
        c->to = -1;
        c->from = -1;
    } else if (c->from == r->master) {
        c->discard = 1;
    } else {
        close(c->from);
        c->from = -1;
    }
}

static void copy_flush(struct relay *r, struct copy *c)
{
    ssize_t n = write_some(c->to, c->buf + c->off, c->len - c->off);
    if (n < 0) {
        copy_broken(r, c);
        return;
    }
    c->off += (size_t)n;
    if (c->off == c->len)
        c->off = c->len = 0;
}

#define CTRL_P 0x10
#define CTRL_Q 0x11

/*
 * attach: Ctrl-P Ctrl-Q (Podman's and Docker's detach keys) end the relay and
 * leave the container running; a Ctrl-P followed by anything else goes
 * through (held while the next key is unknown). Returns the bytes to send.
 */
static size_t detach_keys(struct relay *r, char *p, size_t n)
{
    char out[FRAME_MAX + 1];
    size_t k = 0;
    for (size_t i = 0; i < n && !r->detached; i++) {
        if (r->held_ctrl_p) {
            r->held_ctrl_p = 0;
            if (p[i] == CTRL_Q) {
                r->detached = 1;
                break;
            }
            out[k++] = CTRL_P;
        }
        if (p[i] == CTRL_P)
            r->held_ctrl_p = 1;
        else
            out[k++] = p[i];
    }
    memcpy(p, out, k);
    return k;
}

/* returns 1 if something was read */
static int copy_read(struct relay *r, struct copy *c)
{
    size_t head = c->framed ? 3 : 0;
    size_t room = c->framed ? FRAME_MAX - 1 : sizeof c->buf; /* -1: a held Ctrl-P may come back */
    ssize_t n = read(c->from, c->buf + head, room);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) { /* EOF, or EIO from a master whose slaves are all closed */
        if (c->from != r->master && c->from > 2)
            close(c->from);
        c->from = -1;
        if (c->is_input && c->to >= 0 && c->to != r->master) {
            close(c->to); /* the process sees the end of its stdin */
            c->to = -1;
        }
        return 0;
    }
    if (c->discard)
        return 1;
    if (c->framed) {
        n = (ssize_t)detach_keys(r, c->buf + head, (size_t)n);
        if (n == 0)
            return 1;
        c->buf[0] = 'd';
        c->buf[1] = (char)(n >> 8);
        c->buf[2] = (char)(n & 0xff);
    }
    c->off = 0;
    c->len = head + (size_t)n;
    copy_flush(r, c);
    return 1;
}

/* attach: the caller's window size as a 'w' frame, between two input frames */
static void send_size(struct relay *r)
{
    struct winsize ws;
    if (r->term < 0 || ioctl(r->term, TIOCGWINSZ, &ws) < 0) {
        r->size_dirty = 0;
        return;
    }
    struct copy *in = NULL;
    for (int i = 0; i < r->n; i++)
        if (r->c[i].is_input && r->c[i].to == r->size_sock)
            in = &r->c[i];
    if (in && in->off < in->len)
        return; /* after the frame under way */
    char f[7] = {'w', 0, 4, (char)(ws.ws_row >> 8), (char)ws.ws_row, (char)(ws.ws_col >> 8), (char)ws.ws_col};
    r->size_dirty = 0;
    if (in) {
        memcpy(in->buf, f, sizeof f);
        in->off = 0;
        in->len = sizeof f;
        copy_flush(r, in);
    } else if (write(r->size_sock, f, sizeof f) != (ssize_t)sizeof f) {
        r->size_dirty = 1;
    }
}

/*
 * Ctrl-C and Ctrl-\ at the caller's terminal go, as a terminal sends them, to
 * the foreground process group: the pty's, or without one the process's own
 * group (it leads its session). Other signals go to the process.
 */
static void forward(struct relay *r, pid_t child, int sig)
{
    if (sig != SIGINT && sig != SIGQUIT) {
        kill(child, sig);
        return;
    }
    pid_t fg = r->master >= 0 ? tcgetpgrp(r->master) : -1;
    if (kill(-(fg > 0 ? fg : child), sig) < 0)
        kill(child, sig);
}

static void on_signals(struct relay *r, int sfd, pid_t child, int *exited, int *status)
{
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGWINCH) {
            if (r->master >= 0)
                winsize_copy(r->term, r->master);
            if (r->size_sock >= 0)
                r->size_dirty = 1;
        } else if (sig == SIGCHLD || *exited) {
            continue;
        } else if (child) {
            forward(r, child, sig);
        } else if (sig == SIGTERM || sig == SIGHUP) {
            *exited = 1; /* attach: leave; the container goes on */
        }
        /* attach: Ctrl-C and Ctrl-\ reach the whole foreground group, and the CLI passes them on */
    }
    int st;
    if (child && !*exited && waitpid(child, &st, WNOHANG) == child) {
        *exited = 1;
        *status = st;
    }
}

int relay_run(struct relay *r, pid_t child)
{
    sigset_t m;
    relay_signals(&m);
    int sfd = signalfd(-1, &m, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));

    int exited = 0, status = 0;
    long exit_at = 0, last_data = 0;
    for (;;) {
        if (r->size_dirty && !exited)
            send_size(r);
        struct pollfd p[RELAY_MAX + 1];
        int which[RELAY_MAX + 1];
        int np = 0, busy = 0;
        p[np++] = (struct pollfd){sfd, POLLIN, 0};
        for (int i = 0; i < r->n; i++) {
            struct copy *c = &r->c[i];
            if (exited && c->is_input)
                continue;
            if (c->off < c->len) {
                p[np] = (struct pollfd){c->to, POLLOUT, 0};
                which[np++] = i;
                busy = 1;
            } else if (c->from >= 0) {
                p[np] = (struct pollfd){c->from, POLLIN, 0};
                which[np++] = i;
                if (!c->is_input)
                    busy = 1;
            }
        }
        if (!child && (!busy || exited || r->detached))
            break; /* attach: the supervisor closed the connection, or the caller left */
        int timeout = -1;
        if (exited) {
            long t = now_ms();
            long left = exit_at + DRAIN_MS - t;
            long quiet = last_data + QUIET_MS - t;
            if (!busy || left <= 0 || quiet <= 0)
                break;
            timeout = (int)(quiet < left ? quiet : left);
        }
        int n = poll(p, (nfds_t)np, timeout);
        if (n < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        for (int k = 1; k < np; k++) {
            struct copy *c = &r->c[which[k]];
            if (!p[k].revents)
                continue;
            if (p[k].events == POLLOUT)
                copy_flush(r, c);
            else if (copy_read(r, c) && exited)
                last_data = now_ms();
        }
        if (p[0].revents & POLLIN) {
            on_signals(r, sfd, child, &exited, &status);
            if (exited && !exit_at)
                exit_at = last_data = now_ms();
        }
    }
    close(sfd);
    return status;
}
