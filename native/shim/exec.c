/*
 * exec mode: run a command inside a running container. Joins the container's
 * cgroups first (while the host's cgroup files are still visible), then its
 * ipc, uts, net, pid and mount namespaces, forks (the child is the one that
 * lands in the PID namespace), and passes the child's exit status on.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

int mode_exec(const struct shim_opts *o)
{
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
    pid_t child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0) {
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
        die("cannot run %s in the container: %s", o->argv[0], strerror(errno));
    }
    /* forward the usual terminal signals to the child */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int st;
    while (waitpid(child, &st, 0) < 0) {
        if (errno != EINTR)
            die("waitpid: %s", strerror(errno));
    }
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}
