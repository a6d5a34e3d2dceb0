/*
 * restore mode: become the parent of a process tree that CRIU restores.
 * The shim makes fresh stdout/stderr pipes, puts their write ends at fds 3
 * and 4 for CRIU (the CLI passes --inherit-fd fd[3]:pipe:[OLD] ... so the
 * restored tasks write to the new pipes); with --tty it makes a pty instead
 * and puts its slave at fd 3 (--inherit-fd fd[3]:tty[RDEV:DEV]). It runs
 * CRIU with --restore-sibling so that the restored init becomes the shim's
 * child, reads CRIU's pidfile, says
 * "pid N" and "ok" (or "err ...") on the sync socket and supervises.
 *
 * Before that it says "stdio pipe:[A] pipe:[B]" (the new pipes, which a later
 * checkpoint records; not with --tty) and "criu C": CRIU runs in its own process group C, so
 * that the CLI can kill it with everything it forked when it stops making
 * progress. Whenever CRIU fails (or is killed), whatever it had restored so
 * far is killed here: those tasks are the shim's children, not CRIU's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"


static pid_t read_pidfile(const char *path)
{
    char buf[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    return (pid_t)atoi(buf);
}

int mode_restore(const struct shim_opts *o)
{
    struct log_writer log;
    log_open(&log, o);
    /* the OOM counter's baseline before the container's first task exists */
    struct oom_watch oom;
    oom_open(&oom, o);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    int sync_fd = fcntl(o->sync_fd, F_DUPFD_CLOEXEC, 10);
    if (sync_fd < 0)
        die("dup sync fd: %s", strerror(errno));
    if (o->sync_fd != sync_fd)
        close(o->sync_fd);
    int out[2], eout[2], master = -1, slave = -1;
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(eout, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    char err[256];
    if (o->tty && pty_open("/dev/ptmx", &master, &slave, err, sizeof err) < 0)
        die("%s", err);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    pid_t criu = fork();
    if (criu < 0)
        die("fork: %s", strerror(errno));
    if (criu == 0) {
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char path[4096];
        snprintf(path, sizeof path, "%s/criu-restore.out", o->state_dir);
        int outf = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int devnull = open("/dev/null", O_RDONLY);
        if (outf < 0 || devnull < 0)
            _exit(126);
        int ok = o->tty ? dup2(slave, 3) >= 0 : dup2(out[1], 3) >= 0 && dup2(eout[1], 4) >= 0;
        if (!ok || dup2(devnull, 0) < 0 || dup2(outf, 1) < 0 || dup2(outf, 2) < 0)
            _exit(126);
        if (o->net_setup && setenv("TSM_NET", o->net_setup, 1) < 0)
            _exit(126);
        execv(o->argv[0], o->argv);
        _exit(127);
    }
    setpgid(criu, criu); /* also here: the CLI may signal the group before the child ran */
    close(out[1]);
    close(eout[1]);
    if (o->tty)
        close(slave);
    else /* a pty's key is read from the restored init (the CLI does, at resume) */
        say_stdio(sync_fd, out[0], eout[0]);
    sync_say(sync_fd, "criu %d\n", criu, NULL);
    int st;
    while (waitpid(criu, &st, 0) < 0)
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "criu restore failed (status %d)",
                 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        kill_children();
        sync_say(sync_fd, "err %s\n", 0, msg);
        return 1;
    }
    pid_t pid = read_pidfile(o->pidfile);
    if (pid <= 0) {
        kill_children();
        sync_say(sync_fd, "err %s\n", 0, "criu restore wrote no pidfile");
        return 1;
    }
    char path[4096], buf[64];
    snprintf(path, sizeof path, "%s/init.pid", o->state_dir);
    snprintf(buf, sizeof buf, "%d\n", (int)pid);
    write_file_atomic(path, buf);
    static struct console con;
    if (o->tty && console_open(&con, o, master) < 0) {
        sync_say(sync_fd, "err the container's terminal: %s\n", 0, strerror(errno));
        kill(pid, SIGKILL);
        return 1;
    }
    sync_say(sync_fd, "pid %d\n", pid, NULL);
    sync_say(sync_fd, "ok\n", 0, NULL);
    close(sync_fd);
    if (o->tty) {
        close(out[0]);
        close(eout[0]);
        return supervise(o, pid, master, -1, &log, &oom, &con);
    }
    return supervise(o, pid, out[0], eout[0], &log, &oom, NULL);
}
