/*
 * The container's root filesystem, set up inside its new mount namespace:
 * the overlay (already mounted by tsmigrate on the host) becomes "/" through
 * pivot_root, with /proc, a minimal /dev and a read-only /sys. Every mount is
 * one CRIU knows how to dump (proc, tmpfs, devpts, sysfs; the root is given
 * back to CRIU with --root on restore).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "shim.h"

#define FAIL(...)                                   \
    do {                                            \
        int e_ = errno;                             \
        char m_[512];                               \
        snprintf(m_, sizeof m_, __VA_ARGS__);       \
        snprintf(err, errlen, "%s: %s", m_, strerror(e_)); \
        return -1;                                  \
    } while (0)

static int mkdir_p(const char *path, mode_t mode)
{
    if (mkdir(path, mode) == 0 || errno == EEXIST)
        return 0;
    return -1;
}

struct devnode {
    const char *name;
    unsigned maj, min;
};

static const struct devnode devnodes[] = {
    {"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7},
    {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
};

static int dev_node(const struct shim_opts *o, const char *rel, const char *host, mode_t type, unsigned maj, unsigned min, mode_t mode, char *err, size_t errlen);

/* --device-node TYPE:MAJ:MIN:MODE:/dev/PATH=/HOST/PATH (parents made 0755) */
static int make_device_node(const struct shim_opts *o, const char *spec, char *err, size_t errlen)
{
    char type;
    unsigned maj, min, mode;
    int off = 0;
    if (sscanf(spec, "%c:%u:%u:%o:%n", &type, &maj, &min, &mode, &off) != 4 || off == 0 ||
        (type != 'c' && type != 'b') || strncmp(spec + off, "/dev/", 5) != 0 || strstr(spec + off, "..")) {
        errno = EINVAL;
        FAIL("bad --device-node %s", spec);
    }
    char path[256];
    const char *eq = strchr(spec + off, '=');
    if (!eq || eq[1] != '/' || (size_t)(eq - (spec + off)) >= sizeof path) {
        errno = EINVAL;
        FAIL("bad --device-node %s", spec);
    }
    snprintf(path, sizeof path, "%.*s", (int)(eq - (spec + off) - 1), spec + off + 1); /* relative to the new root */
    for (char *s = strchr(path + 4, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        if (mkdir_p(path, 0755) < 0)
            FAIL("mkdir /%s", path);
        *s = '/';
    }
    unlink(path);
    return dev_node(o, path, eq + 1, type == 'c' ? S_IFCHR : S_IFBLK, maj, min, mode & 07777, err, errlen);
}

/* masked: a file gets the container's /dev/null bound over it, a directory an empty read-only tmpfs */
static int mask_path(const char *abs, char *err, size_t errlen)
{
    const char *p = abs + 1;
    struct stat st;
    if (lstat(p, &st) < 0)
        return 0; /* not on this kernel: nothing to hide */
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", p, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=555") < 0)
            FAIL("mask %s", abs);
    } else if (mount("dev/null", p, NULL, MS_BIND, NULL) < 0)
        FAIL("mask %s", abs);
    return 0;
}

/* read-only: bound onto itself, then remounted read-only (keeping proc's nosuid,nodev,noexec) */
static int readonly_path(const char *abs, char *err, size_t errlen)
{
    const char *p = abs + 1;
    struct stat st;
    if (lstat(p, &st) < 0)
        return 0;
    if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL("bind %s", abs);
    if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        FAIL("remount %s read-only", abs);
    return 0;
}

/*
 * A node in the container's /dev: mknod, or in a user namespace (where mknod is
 * refused) a bind mount of the host's node, as runc does.
 */
static int dev_node(const struct shim_opts *o, const char *rel, const char *host, mode_t type, unsigned maj, unsigned min, mode_t mode, char *err, size_t errlen)
{
    if (!o->userns_size) {
        if (mknod(rel, type | mode, makedev(maj, min)) < 0)
            FAIL("mknod /%s", rel);
        return 0;
    }
    int fd = open(rel, O_CREAT | O_WRONLY | O_CLOEXEC, 0);
    if (fd < 0)
        FAIL("create /%s", rel);
    close(fd);
    struct stat st;
    if (stat(host, &st) < 0 || (st.st_mode & S_IFMT) != type || major(st.st_rdev) != maj || minor(st.st_rdev) != min) {
        errno = ENODEV;
        FAIL("host node %s for /%s", host, rel);
    }
    if (mount(host, rel, NULL, MS_BIND, NULL) < 0)
        FAIL("bind %s on /%s", host, rel);
    return 0;
}

static int setup_dev(const struct shim_opts *o, char *err, size_t errlen)
{
    if (mkdir_p("dev", 0755) < 0)
        FAIL("mkdir /dev");
    if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC | MS_STRICTATIME, "mode=755,size=65536k") < 0)
        FAIL("mount tmpfs on /dev");
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof devnodes / sizeof devnodes[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, "dev/%s", devnodes[i].name);
        char host[64];
        snprintf(host, sizeof host, "/dev/%s", devnodes[i].name);
        if (dev_node(o, p, host, S_IFCHR, devnodes[i].maj, devnodes[i].min, 0666, err, errlen) < 0) {
            umask(old);
            return -1;
        }
    }
    umask(old);
    if (mkdir_p("dev/pts", 0755) < 0)
        FAIL("mkdir /dev/pts");
    if (mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620") < 0)
        FAIL("mount devpts on /dev/pts");
    if (symlink("pts/ptmx", "dev/ptmx") < 0)
        FAIL("symlink /dev/ptmx");
    if (mkdir_p("dev/shm", 01777) < 0)
        FAIL("mkdir /dev/shm");
    if (mount("shm", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
        FAIL("mount tmpfs on /dev/shm");
    const char *links[][2] = {
        {"/proc/self/fd", "dev/fd"},
        {"/proc/self/fd/0", "dev/stdin"},
        {"/proc/self/fd/1", "dev/stdout"},
        {"/proc/self/fd/2", "dev/stderr"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlink(links[i][0], links[i][1]) < 0)
            FAIL("symlink %s", links[i][1]);
    return 0;
}

int setup_rootfs(const struct shim_opts *o, char *err, size_t errlen)
{
    const char *rootfs = o->rootfs;
    /* nothing we mount may propagate back to the host */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL("make / private");
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL("bind %s", rootfs);
    if (chdir(rootfs) < 0)
        FAIL("chdir %s", rootfs);
    /* the state dir is reached as the host's root; from here on (files made in the
       namespace's own mounts) the init is the user namespace's root, START on the host */
    if (o->userns_size && (setgroups(0, NULL) < 0 || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
        FAIL("becoming root in the user namespace");
    if (mkdir_p("proc", 0555) < 0)
        FAIL("mkdir /proc");
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        FAIL("mount /proc");
    if (mkdir_p("sys", 0555) < 0)
        FAIL("mkdir /sys");
    if (mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | (o->sys_rw ? 0 : MS_RDONLY), NULL) < 0)
        FAIL("mount /sys");
    if (setup_dev(o, err, errlen) < 0)
        return -1;
    for (int i = 0; i < o->ndevice_nodes; i++)
        if (make_device_node(o, o->device_nodes[i], err, errlen) < 0)
            return -1;
    for (int i = 0; i < o->nmasks; i++)
        if (mask_path(o->masks[i], err, errlen) < 0)
            return -1;
    for (int i = 0; i < o->nros; i++)
        if (readonly_path(o->ros[i], err, errlen) < 0)
            return -1;
    mkdir_p("tmp", 01777);
    /* pivot_root(".", ".") stacks the old root under the new one; detach it */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        FAIL("detach the old root");
    if (chdir("/") < 0)
        FAIL("chdir /");
    return 0;
}
