/*
 * exec mode: run a command inside a running container. Joins the container's
 * cgroups first (while the host's cgroup files are still visible), then its
 * user (if it has one), cgroup, ipc, uts, net, pid and mount namespaces, forks (the child is the one that
 * lands in the PID namespace), relays its stdio and passes its exit status on.
 *
 * The caller's terminal never reaches the container: the process gets pipes
 * (stdin /dev/null unless -i) or, with -t, a pty of the container's own
 * devpts, and leads its own session, so /dev/tty is that pty or nothing.
 * Only this shim, outside the container's PID namespace, holds the caller's
 * descriptors, and it is not dumpable, so the container cannot ptrace the
 * child for them in the moment between fork and dup2.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

static const struct {
    const char *name;
    int type;
} namespaces[] = {
    {"user", CLONE_NEWUSER}, {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS}, {"net", CLONE_NEWNET},
    {"pid", CLONE_NEWPID}, {"mnt", CLONE_NEWNS},
};
#define NNS ((int)(sizeof namespaces / sizeof namespaces[0]))

/* the process's descriptors 0-2 */
struct exec_stdio {
    int fd[3];
};

static void close_from(int lowest)
{
    if (syscall(SYS_close_range, (unsigned)lowest, ~0U, 0) == 0)
        return;
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    for (long fd = lowest; fd < max; fd++)
        close((int)fd);
}

/* a missing 0-2 would let a pipe take its number */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
            die("cannot open /dev/null: %s", strerror(errno));
}

static void add_copy(struct relay *r, int from, int to, int is_input)
{
    struct copy *c = &r->c[r->n++];
    memset(c, 0, sizeof *c);
    c->from = from;
    c->to = to;
    c->is_input = is_input;
    if (fcntl(is_input ? to : from, F_SETFL, O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
}

static void make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
}

/* Runs in the container's mount namespace. Fills the process's ends and the relay's. */
static void plan_stdio(const struct shim_opts *o, int devnull, struct exec_stdio *io, struct relay *r)
{
    memset(r, 0, sizeof *r);
    r->master = r->term = r->size_sock = -1;
    if (o->tty) {
        char err[256];
        int m, s;
        if (pty_open(CONTAINER_PTMX, &m, &s, err, sizeof err) < 0)
            die("%s", err);
        if (o->have_user && fchown(s, o->uid, (gid_t)-1) < 0)
            die("cannot give the pty to user %u: %s", o->uid, strerror(errno));
        io->fd[0] = io->fd[1] = io->fd[2] = s;
        r->master = m;
        r->term = isatty(0) ? 0 : isatty(1) ? 1 : -1;
        winsize_copy(r->term, m); /* before the process starts, so it sees the size at once */
        add_copy(r, m, 1, 0);
        if (o->interactive)
            add_copy(r, 0, m, 1);
        return;
    }
    int out[2], errp[2];
    make_pipe(out);
    make_pipe(errp);
    io->fd[1] = out[1];
    io->fd[2] = errp[1];
    add_copy(r, out[0], 1, 0);
    add_copy(r, errp[0], 2, 0);
    if (o->interactive) {
        int in[2];
        make_pipe(in);
        io->fd[0] = in[0];
        add_copy(r, 0, in[1], 1);
    } else {
        io->fd[0] = devnull;
    }
}

static void exec_child(const struct shim_opts *o, const struct exec_stdio *io, int in_userns)
{
    /* first of all: the caller's descriptors go, the process's own take 0-2 */
    for (int i = 0; i < 3; i++)
        if (dup2(io->fd[i], i) < 0)
            die("dup2: %s", strerror(errno));
    close_from(3);
    /* a session of its own: no controlling terminal but the pty it is given */
    if (setsid() < 0)
        die("setsid: %s", strerror(errno));
    if (o->tty && ioctl(0, TIOCSCTTY, 0) < 0)
        die("cannot make the pty the controlling terminal: %s", strerror(errno));
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* host root is not mapped in the container's user namespace: become its root */
    if (in_userns && (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        die("becoming root in the container's user namespace: %s", strerror(errno));
    if (o->cwd && chdir(o->cwd) < 0)
        die("chdir %s: %s", o->cwd, strerror(errno));
    apply_env_path(o);
    char *envp[MAX_LIST + 1];
    for (int i = 0; i < o->nenv; i++)
        envp[i] = (char *)o->env[i];
    envp[o->nenv] = NULL;
    char err[512];
    if (apply_security(o, err, sizeof err) < 0)
        die("%s", err);
    execvpe(o->argv[0], o->argv, envp);
    int e = errno;
    fprintf(stderr, "tsm-shim: cannot run %s in the container: %s\n", o->argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

int mode_exec(const struct shim_opts *o)
{
    close_from(3); /* nothing the caller leaked reaches the container */
    ensure_std_fds();
    if (prctl(PR_SET_DUMPABLE, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGHUP) < 0)
        die("prctl: %s", strerror(errno));
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        die("cannot open /dev/null: %s", strerror(errno));
    int fds[NNS];
    for (int i = 0; i < NNS; i++) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/%s", o->exec_pid, namespaces[i].name);
        fds[i] = open(p, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0)
            die("cannot open %s: %s (is the container running?)", p, strerror(errno));
    }
    if (join_cgroups(o, getpid()) < 0)
        die("cannot join the container's cgroup: %s", strerror(errno));
    /* a container without a user namespace shares ours: joining it again is EINVAL */
    struct stat mine, theirs;
    int in_userns = stat("/proc/self/ns/user", &mine) == 0 && fstat(fds[0], &theirs) == 0 && mine.st_ino != theirs.st_ino;
    for (int i = 0; i < NNS; i++) {
        if (namespaces[i].type == CLONE_NEWUSER && !in_userns) {
            close(fds[i]);
            continue;
        }
        if (setns(fds[i], namespaces[i].type) < 0)
            die("setns %s: %s", namespaces[i].name, strerror(errno));
        close(fds[i]);
    }
    struct exec_stdio io;
    static struct relay r;
    plan_stdio(o, devnull, &io, &r);
    relay_block_signals();
    pid_t child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0)
        exec_child(o, &io, in_userns);
    for (int i = 0; i < 3; i++)
        if (io.fd[i] != devnull && (i == 0 || io.fd[i] != io.fd[i - 1]))
            close(io.fd[i]);
    close(devnull);
    signal(SIGPIPE, SIG_IGN);
    if (o->tty) {
        int fd = o->interactive ? 0 : 1;
        if (isatty(fd) && term_raw(fd, o->interactive) < 0)
            fprintf(stderr, "tsm-shim: cannot put the terminal in raw mode: %s\n", strerror(errno));
    }
    int st = relay_run(&r, child);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}
