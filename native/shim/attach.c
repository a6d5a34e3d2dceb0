/*
 * attach mode: the CLI's side of a container run with -t. Connects to the
 * supervisor's attach.sock and relays the caller's terminal to it: output
 * as it comes, input (with -i) in frames, the window size at once and on
 * every SIGWINCH. The caller's terminal is raw with -i, and only loses
 * output processing without (the container's pty has done it), as in exec.
 * Ctrl-P Ctrl-Q detaches (with -i): the relay ends, the container goes on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim.h"

static int connect_attach(const char *state_dir)
{
    /* through the state dir's descriptor: a state dir path may be longer than sun_path */
    int dir = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        die("cannot open %s: %s", state_dir, strerror(errno));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/attach.sock", dir);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket: %s", strerror(errno));
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            exit(ATTACH_NO_CONSOLE); /* no supervisor holds a terminal there (any more): the CLI says why */
        die("cannot attach to the container's terminal in %s: %s", state_dir, strerror(errno));
    }
    close(dir);
    return s;
}

int mode_attach(const struct shim_opts *o)
{
    /* the CLI gone, the relay ends (SIGHUP) and the caller's terminal is given back */
    if (prctl(PR_SET_PDEATHSIG, SIGHUP) < 0)
        die("prctl: %s", strerror(errno));
    int s = connect_attach(o->state_dir);
    static struct relay r;
    r.master = -1;
    r.term = isatty(0) ? 0 : isatty(1) ? 1 : -1;
    r.size_sock = s;
    r.size_dirty = 1;
    struct copy *out = &r.c[r.n++];
    out->from = s;
    out->to = 1;
    if (o->interactive) {
        struct copy *in = &r.c[r.n++];
        in->from = 0;
        in->to = s;
        in->is_input = 1;
        in->framed = 1;
    }
    if (fcntl(s, F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
    relay_block_signals();
    signal(SIGPIPE, SIG_IGN);
    int fd = o->interactive ? 0 : 1;
    if (isatty(fd) && term_raw(fd, o->interactive) < 0)
        fprintf(stderr, "tsm-shim: cannot put the terminal in raw mode: %s\n", strerror(errno));
    relay_run(&r, 0);
    return r.detached ? ATTACH_DETACHED : 0;
}
