/*
 * User namespaces: the container's root is an unprivileged range of host ids
 * (--userns START:SIZE; container id 0 is host id START). run mode clones the
 * init into a new user namespace and writes its maps; idmap-mount makes an
 * idmapped view of the image (host 0 appears as START) for the overlay's lower
 * layer, so the image needs no chown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

void parse_userns(struct shim_opts *o, const char *s)
{
    char *end;
    unsigned long start = strtoul(s, &end, 10);
    if (end == s || *end != ':')
        die("bad --userns %s (want START:SIZE)", s);
    const char *z = end + 1;
    unsigned long size = strtoul(z, &end, 10);
    if (end == z || *end || size == 0 || start == 0 || start + size > 0xffffffffUL)
        die("bad --userns %s (want START:SIZE within 32 bits, START above 0)", s);
    o->userns_start = (uid_t)start;
    o->userns_size = (uid_t)size;
}

int write_id_maps(pid_t pid, uid_t start, uid_t size)
{
    char path[64], map[64];
    snprintf(map, sizeof map, "0 %u %u\n", (unsigned)start, (unsigned)size);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    if (write_file(path, map) < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    return write_file(path, map);
}

/* A user namespace with the map, as an open fd, from a child that made it and is then killed. */
static int userns_fd(uid_t start, uid_t size)
{
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0)
        return -1;
    pid_t child = fork();
    if (child < 0)
        return -1;
    if (child == 0) {
        char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
        if (write(ready[1], &c, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(ready[1]);
    char c = 'n';
    int fd = -1;
    if (read(ready[0], &c, 1) == 1 && c == 'y' && write_id_maps(child, start, size) == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)child);
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    int saved = errno;
    close(ready[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    errno = saved;
    return fd;
}

/* tsm-shim idmap-mount --userns START:SIZE -- SOURCE TARGET */
int mode_idmap_mount(const struct shim_opts *o)
{
    if (!o->userns_size || o->argc != 2)
        die("idmap-mount needs --userns START:SIZE -- SOURCE TARGET");
    int ns = userns_fd(o->userns_start, o->userns_size);
    if (ns < 0)
        die("cannot make a user namespace for the idmapped mount: %s", strerror(errno));
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, o->argv[0], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0)
        die("open_tree %s: %s", o->argv[0], strerror(errno));
    struct mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    attr.userns_fd = (unsigned)ns;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
        die("idmapping %s (the filesystem may not support idmapped mounts): %s", o->argv[0], strerror(errno));
    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, o->argv[1], MOVE_MOUNT_F_EMPTY_PATH) < 0)
        die("mounting the idmapped %s on %s: %s", o->argv[0], o->argv[1], strerror(errno));
    return 0;
}
