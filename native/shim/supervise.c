/*
 * The supervisor loop: copy the container's stdout and stderr (or its pty,
 * with a console: console.c) to its log (logfile.c) and the attached client, reap every child (the shim is a child subreaper, so orphans of
 * the container land here too), record OOM kills (oom.c), and when the
 * container's init exits, record its exit status in exit.json and leave.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

/* oom_killed: the kernel killed a task of the container for memory within a second of its end */
static void record_exit(const struct shim_opts *o, int status, int oom_killed)
{
    char path[4096], json[512], when[64];
    const char *oom = oom_killed ? "true" : "false";
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (WIFEXITED(status))
        snprintf(json, sizeof json, "{\"exitCode\":%d,\"signal\":null,\"exitedAt\":\"%s\",\"oomKilled\":%s}\n",
                 WEXITSTATUS(status), when, oom);
    else {
        const char *abbrev = sigabbrev_np(WTERMSIG(status));
        snprintf(json, sizeof json, "{\"exitCode\":%d,\"signal\":\"SIG%s\",\"exitedAt\":\"%s\",\"oomKilled\":%s}\n",
                 128 + WTERMSIG(status), abbrev ? abbrev : "UNKNOWN", when, oom);
    }
    snprintf(path, sizeof path, "%s/exit.json", o->state_dir);
    if (write_file_atomic(path, json) < 0)
        fprintf(stderr, "tsm-shim: cannot write %s: %s\n", path, strerror(errno));
}

/* copy what is readable; returns 0 on EOF (or EIO: a pty with no process left), 1 otherwise */
static int pump(int from, struct log_writer *log, struct console *con)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    log_write(log, buf, (size_t)n);
    if (con)
        console_output(con, buf, (size_t)n);
    return 1;
}

int supervise(const struct shim_opts *o, pid_t init_pid, int out_fd, int err_fd, struct log_writer *log,
              struct oom_watch *oom, struct console *con)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0)
        die("signalfd: %s", strerror(errno));

    int init_done = 0, status = 0, oom_killed = 0;
    struct timespec deadline = {0, 0};
    for (;;) {
        struct pollfd p[7] = {
            {sfd, POLLIN, 0}, {out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {oom->fd, POLLIN, 0},
        };
        int np = 4 + (con ? console_fds(con, p + 4) : 0);
        int timeout = init_done ? -1 : oom_timeout_ms(oom);
        if (init_done) {
            /* after init is gone, drain the pipes for at most one second */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long ms = (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1000000;
            if (ms <= 0 || (p[1].fd < 0 && p[2].fd < 0))
                break;
            if (timeout < 0 || ms < timeout)
                timeout = (int)ms;
        }
        int n = poll(p, (nfds_t)np, timeout);
        if (n < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (!init_done)
            oom_tick(oom, o->state_dir);
        if (n <= 0)
            continue;
        if (p[3].fd >= 0 && (p[3].revents & POLLIN))
            oom_event(oom, o->state_dir);
        if (con)
            console_ready(con, p + 4, np - 4);
        if (p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) && !pump(out_fd, log, con)) {
            close(out_fd);
            out_fd = -1;
        }
        if (p[2].fd >= 0 && (p[2].revents & (POLLIN | POLLHUP)) && !pump(err_fd, log, con)) {
            close(err_fd);
            err_fd = -1;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) {
                    /* the shim is not the way to stop a container: pass it on */
                    if (!init_done)
                        kill(init_pid, (int)si.ssi_signo);
                }
            }
            for (;;) {
                int st;
                pid_t w = waitpid(-1, &st, WNOHANG);
                if (w <= 0)
                    break;
                if (w == init_pid && !init_done) {
                    init_done = 1;
                    status = st;
                    /* an OOM kill is counted before its SIGKILL is sent */
                    oom_check(oom, o->state_dir);
                    oom_killed = oom_recent(oom);
                    clock_gettime(CLOCK_MONOTONIC, &deadline);
                    deadline.tv_sec += 1;
                }
            }
        }
    }
    /* reap what is left (the kernel killed the rest of the PID namespace) */
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    if (con)
        console_close(con, o);
    record_exit(o, status, oom_killed);
    return 0;
}
