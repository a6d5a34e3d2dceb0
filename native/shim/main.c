/*
 * tsm-shim MODE [options] -- ARGV...
 *   run      --state-dir D --rootfs R --sync-fd N [--hostname H] [--cwd C]
 *            [--user UID:GID] [--env K=V]... [--tty [--tty-size ROWSxCOLS]] [SUPERVISOR OPTIONS]
 *            -- CMD ARGS...
 *   restore  --state-dir D --sync-fd N --pidfile F [--net-setup VETH,BR,ADDR/N,GW,MAC]
 *            [SUPERVISOR OPTIONS] -- /path/to/criu restore ARGS...
 *   attach   --state-dir D [--interactive]
 *   exec     --pid P [--cgroup-procs FILE]... [--cwd C] [--user UID:GID]
 *            [--env K=V]... [--interactive] [--tty] -- CMD ARGS...
 * run and exec also take the security profile (src/security/shim-args.ts):
 *   [--caps 0xMASK] [--no-new-privs] [--seccomp FILE] [--userns START:SIZE]
 *   idmap-mount --userns START:SIZE -- SOURCE TARGET
 * and run the root filesystem's:
 *   [--mask PATH]... [--ro PATH]... [--device-node T:MAJ:MIN:MODE:PATH]... [--cgroupns] [--sys-rw]
 * SUPERVISOR OPTIONS (run, restore; src/shim/supervisor-args.ts):
 *   [--log-max-size BYTES --log-max-files N] [--oom-file CGROUP_FILE [--oom-kills-before N]]
 * The per-container supervisor of tsmigrate; the CLI is its only user.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static long parse_num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0)
        die("bad %s: %s", what, s);
    return v;
}

static void parse_user(struct shim_opts *o, const char *s)
{
    char *end;
    unsigned long u = strtoul(s, &end, 10);
    if (end == s || *end != ':')
        die("bad --user %s (want UID:GID)", s);
    const char *g = end + 1;
    unsigned long gi = strtoul(g, &end, 10);
    if (end == g || *end)
        die("bad --user %s (want UID:GID)", s);
    o->uid = (uid_t)u;
    o->gid = (gid_t)gi;
    o->have_user = 1;
}

static void parse_size(struct shim_opts *o, const char *s)
{
    unsigned r, c;
    char x;
    if (sscanf(s, "%ux%u%c", &r, &c, &x) != 2 || r > 0xffff || c > 0xffff)
        die("bad --tty-size %s (want ROWSxCOLS)", s);
    o->rows = (unsigned short)r;
    o->cols = (unsigned short)c;
}

/*
 * The shim outlives the CLI: it keeps no descriptor it was handed except the
 * sync socket, and its own stdout and stderr go to shim.log in the state dir.
 */
static void isolate_fds(struct shim_opts *o)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        die("opendir /proc/self/fd: %s", strerror(errno));
    int keep = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != keep && fd != o->sync_fd)
            close(fd);
    }
    closedir(d);
    if (fcntl(o->sync_fd, F_SETFD, FD_CLOEXEC) < 0)
        die("bad --sync-fd %d: %s", o->sync_fd, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/shim.log", o->state_dir);
    int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log < 0 || null < 0)
        die("cannot open %s: %s", path, strerror(errno));
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    close(log);
    close(null);
}

static char *read_small_file(const char *path, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        die("cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(max + 1);
    size_t len = 0;
    ssize_t n;
    if (!buf)
        die("out of memory");
    while (len < max && (n = read(fd, buf + len, max - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("cannot read %s: %s", path, strerror(errno));
        len += (size_t)n;
    }
    close(fd);
    if (len == max)
        die("%s is larger than %zu bytes", path, max);
    buf[len] = '\0';
    return buf;
}

/* the options that take no value */
static int *bool_option(struct shim_opts *o, const char *a)
{
    const struct {
        const char *name;
        int *flag;
    } opts[] = {
        {"--no-new-privs", &o->nnp}, {"--cgroupns", &o->cgroupns}, {"--sys-rw", &o->sys_rw},
        {"--interactive", &o->interactive}, {"--tty", &o->tty},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i].name) == 0)
            return opts[i].flag;
    return NULL;
}

int main(int argc, char **argv)
{
    struct shim_opts o;
    memset(&o, 0, sizeof o);
    o.sync_fd = -1;
    /* CRIU runs us as its action script (restore --net-setup): no arguments, the hook in the environment */
    const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
    if (argc == 1 && action)
        return criu_action(action);
    if (argc < 2)
        die("usage: tsm-shim run|restore|exec|attach [options] -- ARGV...");
    o.mode = argv[1];
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        int *flag = bool_option(&o, a);
        if (flag) {
            *flag = 1;
            continue;
        }
        if (i + 1 >= argc)
            die("option %s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--state-dir") == 0)
            o.state_dir = v;
        else if (strcmp(a, "--rootfs") == 0)
            o.rootfs = v;
        else if (strcmp(a, "--hostname") == 0)
            o.hostname = v;
        else if (strcmp(a, "--cwd") == 0)
            o.cwd = v;
        else if (strcmp(a, "--user") == 0)
            parse_user(&o, v);
        else if (strcmp(a, "--sync-fd") == 0)
            o.sync_fd = (int)parse_num(v, "--sync-fd");
        else if (strcmp(a, "--pid") == 0)
            o.exec_pid = (int)parse_num(v, "--pid");
        else if (strcmp(a, "--tty-size") == 0)
            parse_size(&o, v);
        else if (strcmp(a, "--pidfile") == 0)
            o.pidfile = v;
        else if (strcmp(a, "--net-setup") == 0)
            o.net_setup = v;
        else if (strcmp(a, "--log-max-size") == 0)
            o.log_max_bytes = parse_num(v, "--log-max-size");
        else if (strcmp(a, "--log-max-files") == 0)
            o.log_max_files = (int)parse_num(v, "--log-max-files");
        else if (strcmp(a, "--oom-file") == 0)
            o.oom_file = v;
        else if (strcmp(a, "--oom-kills-before") == 0)
            o.oom_kills_before = parse_num(v, "--oom-kills-before");
        else if (strcmp(a, "--env") == 0) {
            if (o.nenv >= MAX_LIST)
                die("too many --env");
            o.env[o.nenv++] = v;
        } else if (strcmp(a, "--caps") == 0) {
            char *end;
            errno = 0;
            o.caps = strtoull(v, &end, 16);
            if (errno || *end || end == v)
                die("bad --caps %s (want a hex mask)", v);
            o.have_caps = 1;
        } else if (strcmp(a, "--userns") == 0)
            parse_userns(&o, v);
        else if (strcmp(a, "--seccomp") == 0)
            o.seccomp_text = read_small_file(v, 4 << 20);
        else if (strcmp(a, "--mask") == 0) {
            if (o.nmasks >= MAX_LIST)
                die("too many --mask");
            o.masks[o.nmasks++] = v;
        } else if (strcmp(a, "--ro") == 0) {
            if (o.nros >= MAX_LIST)
                die("too many --ro");
            o.ros[o.nros++] = v;
        } else if (strcmp(a, "--device-node") == 0) {
            if (o.ndevice_nodes >= MAX_LIST)
                die("too many --device-node");
            o.device_nodes[o.ndevice_nodes++] = v;
        } else if (strcmp(a, "--cgroup-procs") == 0) {
            if (o.ncgroup >= MAX_LIST)
                die("too many --cgroup-procs");
            o.cgroup_procs[o.ncgroup++] = v;
        } else
            die("unknown option %s", a);
    }
    o.argv = argv + i;
    o.argc = argc - i;
    if (strcmp(o.mode, "attach") == 0) {
        if (!o.state_dir)
            die("attach needs --state-dir");
        return mode_attach(&o);
    }
    if (o.argc < 1)
        die("no command after --");

    if (strcmp(o.mode, "idmap-mount") == 0)
        return mode_idmap_mount(&o);
    if (strcmp(o.mode, "exec") == 0) {
        if (o.exec_pid <= 0)
            die("exec needs --pid");
        return mode_exec(&o);
    }
    if (!o.state_dir || o.sync_fd < 0)
        die("%s needs --state-dir and --sync-fd", o.mode);
    isolate_fds(&o);
    if (setsid() < 0 && errno != EPERM)
        die("setsid: %s", strerror(errno));
    if (strcmp(o.mode, "run") == 0) {
        if (!o.rootfs)
            die("run needs --rootfs");
        return mode_run(&o);
    }
    if (strcmp(o.mode, "restore") == 0) {
        if (!o.pidfile)
            die("restore needs --pidfile");
        return mode_restore(&o);
    }
    die("unknown mode %s", o.mode);
}
