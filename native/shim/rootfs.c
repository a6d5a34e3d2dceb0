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

static int setup_dev(char *err, size_t errlen)
{
    if (mkdir_p("dev", 0755) < 0)
        FAIL("mkdir /dev");
    if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0)
        FAIL("mount tmpfs on /dev");
    mode_t old = umask(0);
    for (size_t i = 0; i < sizeof devnodes / sizeof devnodes[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, "dev/%s", devnodes[i].name);
        if (mknod(p, S_IFCHR | 0666, makedev(devnodes[i].maj, devnodes[i].min)) < 0) {
            umask(old);
            FAIL("mknod /dev/%s", devnodes[i].name);
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

int setup_rootfs(const char *rootfs, char *err, size_t errlen)
{
    /* nothing we mount may propagate back to the host */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL("make / private");
    if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL("bind %s", rootfs);
    if (chdir(rootfs) < 0)
        FAIL("chdir %s", rootfs);
    if (mkdir_p("proc", 0555) < 0)
        FAIL("mkdir /proc");
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        FAIL("mount /proc");
    if (mkdir_p("sys", 0555) < 0)
        FAIL("mkdir /sys");
    if (mount("sysfs", "sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0)
        FAIL("mount /sys read-only");
    if (setup_dev(err, errlen) < 0)
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
