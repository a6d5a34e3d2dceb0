/*
 * run mode: start a container. The shim clones the container's init into new
 * PID, mount, UTS, IPC and network namespaces, where it waits. The shim tells
 * the CLI "stdio pipe:[A] pipe:[B]" (the pipes it hands the init as stdout
 * and stderr) and "pid N" on the sync socket; the CLI puts N in the cgroups and wires
 * the network, then answers "go" (or "abort"). The init then sets up its root
 * filesystem and execs the command; the shim reports "ok" or "err MESSAGE"
 * (from a close-on-exec pipe) and becomes the container's supervisor.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

struct child_args {
    const struct shim_opts *o;
    int go_r, err_w, out_w, errout_w;
    int pty_w;                  /* -t: the pty's master goes to the supervisor through this socket */
};

static void child_fail(int err_w, const char *msg)
{
    write_all(err_w, msg, strlen(msg));
    _exit(127);
}

void apply_env_path(const struct shim_opts *o)
{
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (int i = 0; i < o->nenv; i++)
        if (strncmp(o->env[i], "PATH=", 5) == 0)
            path = o->env[i] + 5;
    setenv("PATH", path, 1);
}

/* stdin /dev/null, stdout and stderr the pipes the supervisor logs */
static int pipe_stdio(struct child_args *a, char *err, size_t errlen)
{
    int devnull = open("/dev/null", O_RDWR);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(a->out_w, 1) < 0 || dup2(a->errout_w, 2) < 0) {
        snprintf(err, errlen, "stdio: %s", strerror(errno));
        return -1;
    }
    if (devnull > 2)
        close(devnull);
    close(a->out_w);
    close(a->errout_w);
    return 0;
}

/*
 * -t: a pty of the container's devpts (mounted by now) is the init's stdio and
 * controlling terminal; its master goes to the supervisor.
 */
static int tty_stdio(struct child_args *a, char *err, size_t errlen)
{
    const struct shim_opts *o = a->o;
    int m, s;
    if (pty_open(CONTAINER_PTMX, &m, &s, err, errlen) < 0)
        return -1;
    struct winsize ws = {.ws_row = o->rows, .ws_col = o->cols};
    if ((o->rows && ioctl(m, TIOCSWINSZ, &ws) < 0) || (o->have_user && fchown(s, o->uid, (gid_t)-1) < 0) ||
        send_fd(a->pty_w, m) < 0 || dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0 || ioctl(0, TIOCSCTTY, 0) < 0) {
        snprintf(err, errlen, "terminal: %s", strerror(errno));
        return -1;
    }
    close(m);
    close(s);
    close(a->pty_w);
    close(a->out_w);
    close(a->errout_w);
    return 0;
}

static int child_main(void *arg)
{
    struct child_args *a = arg;
    const struct shim_opts *o = a->o;
    char err[768], c;
    if (read(a->go_r, &c, 1) != 1)
        _exit(1); /* the CLI gave up: leave quietly */
    close(a->go_r);
    if (setsid() < 0) { /* the container's init leads its own session (CRIU wants that) */
        snprintf(err, sizeof err, "setsid: %s", strerror(errno));
        child_fail(a->err_w, err);
    }
    /* in its cgroups by now (the CLI answered go): they become its cgroup namespace's root */
    if (o->cgroupns && unshare(CLONE_NEWCGROUP) < 0) {
        snprintf(err, sizeof err, "cgroup namespace: %s", strerror(errno));
        child_fail(a->err_w, err);
    }
    if (setup_rootfs(o, err, sizeof err) < 0)
        child_fail(a->err_w, err);
    if (o->hostname && sethostname(o->hostname, strlen(o->hostname)) < 0) {
        snprintf(err, sizeof err, "sethostname: %s", strerror(errno));
        child_fail(a->err_w, err);
    }
    if ((o->tty ? tty_stdio(a, err, sizeof err) : pipe_stdio(a, err, sizeof err)) < 0)
        child_fail(a->err_w, err);
    const char *cwd = o->cwd ? o->cwd : "/";
    if (chdir(cwd) < 0) {
        snprintf(err, sizeof err, "working directory %s: %s", cwd, strerror(errno));
        child_fail(a->err_w, err);
    }
    apply_env_path(o);
    char *envp[MAX_LIST + 1];
    for (int i = 0; i < o->nenv; i++)
        envp[i] = (char *)o->env[i];
    envp[o->nenv] = NULL;
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (apply_security(o, err, sizeof err) < 0)
        child_fail(a->err_w, err);
    execvpe(o->argv[0], o->argv, envp);
    snprintf(err, sizeof err, "cannot run %s: %s", o->argv[0], strerror(errno));
    child_fail(a->err_w, err);
    return 127;
}

void sync_say(int fd, const char *fmt, int arg, const char *str)
{
    char line[2048];
    if (str)
        snprintf(line, sizeof line, fmt, str);
    else
        snprintf(line, sizeof line, fmt, arg);
    write_all(fd, line, strlen(line));
}

int mode_run(const struct shim_opts *o)
{
    struct log_writer log;
    log_open(&log, o);
    /* the OOM counter's baseline before the container's first task exists */
    struct oom_watch oom;
    oom_open(&oom, o);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        die("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
    int go[2], errp[2], out[2], eout[2], ptys[2] = {-1, -1};
    if (pipe2(go, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(eout, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    if (o->tty && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, ptys) < 0)
        die("socketpair: %s", strerror(errno));
    /* the container's ends must survive exec */
    fcntl(out[1], F_SETFD, 0);
    fcntl(eout[1], F_SETFD, 0);

    /* block the signals supervise() takes through a signalfd before any child exists */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    struct child_args a = {o, go[0], errp[1], out[1], eout[1], ptys[1]};
    size_t stack_size = 1 << 20;
    char *stack = malloc(stack_size);
    if (!stack)
        die("out of memory");
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD;
    if (o->userns_size)
        flags |= CLONE_NEWUSER;
    pid_t pid = clone(child_main, stack + stack_size, flags, &a);
    if (pid < 0) {
        sync_say(o->sync_fd, "err clone: %s\n", 0, strerror(errno));
        return 1;
    }
    if (o->userns_size && write_id_maps(pid, o->userns_start, o->userns_size) < 0) {
        sync_say(o->sync_fd, "err user namespace maps: %s\n", 0, strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    close(go[0]);
    close(errp[1]);
    close(out[1]);
    close(eout[1]);
    if (o->tty)
        close(ptys[1]);

    char path[4096], buf[64];
    snprintf(path, sizeof path, "%s/init.pid", o->state_dir);
    snprintf(buf, sizeof buf, "%d\n", (int)pid);
    write_file_atomic(path, buf);

    if (!o->tty) /* a pty's key is read from the init once it opened it (the CLI does) */
        say_stdio(o->sync_fd, out[0], eout[0]);
    sync_say(o->sync_fd, "pid %d\n", pid, NULL);
    char line[256];
    if (read_line(o->sync_fd, line, sizeof line) < 0 || strcmp(line, "go") != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(path);
        return 1;
    }
    if (write_all(go[1], "g", 1) < 0)
        die("go pipe: %s", strerror(errno));
    close(go[1]);
    char err[1024];
    ssize_t n;
    do
        n = read(errp[0], err, sizeof err - 1);
    while (n < 0 && errno == EINTR);
    close(errp[0]);
    if (n > 0) {
        err[n] = '\0';
        sync_say(o->sync_fd, "err %s\n", 0, err);
        waitpid(pid, NULL, 0);
        unlink(path);
        return 1;
    }
    if (!o->tty) {
        sync_say(o->sync_fd, "ok\n", 0, NULL);
        close(o->sync_fd);
        return supervise(o, pid, out[0], eout[0], &log, &oom, NULL);
    }
    /* the init sent the master before its exec succeeded */
    static struct console con;
    int master = recv_fd(ptys[0]);
    if (master < 0 || console_open(&con, o, master) < 0) {
        sync_say(o->sync_fd, "err the container's terminal: %s\n", 0, strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(path);
        return 1;
    }
    close(ptys[0]);
    close(out[0]);
    close(eout[0]);
    sync_say(o->sync_fd, "ok\n", 0, NULL);
    close(o->sync_fd);
    return supervise(o, pid, master, -1, &log, &oom, &con);
}
