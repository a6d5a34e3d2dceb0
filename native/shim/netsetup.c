/*
 * CRIU action script mode. A container in a user namespace is restored with
 * `--empty-ns net` (CRIU cannot recreate its veth from inside the namespace):
 * CRIU runs this binary as its --action-script, and at "setup-namespaces" it
 * wires the new network namespace as `run` did, from TSM_NET (set by restore
 * mode from --net-setup HOSTVETH,BRIDGE,ADDR/PREFIX,GATEWAY,MAC): the veth pair
 * with the container's address and MAC, before CRIU restores the sockets.
 * Every other hook is a no-op.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

static int run(char *const argv[])
{
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "tsm-shim: %s %s %s ... failed (status %d)\n", argv[0], argv[1], argv[2], st);
        return -1;
    }
    return 0;
}

int criu_action(const char *action)
{
    const char *spec = getenv("TSM_NET");
    const char *pid = getenv("CRTOOLS_INIT_PID");
    if (strcmp(action, "setup-namespaces") != 0 || !spec || !pid)
        return 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *f[5];
    int n = 0;
    for (char *s = strtok(buf, ","); s && n < 5; s = strtok(NULL, ","))
        f[n++] = s;
    if (n != 5 || atoi(pid) <= 1) {
        fprintf(stderr, "tsm-shim: bad TSM_NET %s or CRTOOLS_INIT_PID %s\n", spec, pid);
        return 1;
    }
    char ns[64];
    snprintf(ns, sizeof ns, "--net=/proc/%d/ns/net", atoi(pid));
    char *veth = f[0], *bridge = f[1], *addr = f[2], *gw = f[3], *mac = f[4];
    char *add[] = {"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "address", mac, "netns", (char *)pid, NULL};
    char *master[] = {"ip", "link", "set", "dev", veth, "master", bridge, NULL};
    char *up[] = {"ip", "link", "set", "dev", veth, "up", NULL};
    char *a[] = {"nsenter", ns, "ip", "addr", "add", addr, "dev", "eth0", NULL};
    char *eup[] = {"nsenter", ns, "ip", "link", "set", "dev", "eth0", "up", NULL};
    char *lo[] = {"nsenter", ns, "ip", "link", "set", "dev", "lo", "up", NULL};
    char *route[] = {"nsenter", ns, "ip", "route", "replace", "default", "via", gw, "dev", "eth0", NULL};
    char *const *steps[] = {add, master, up, a, eup, lo, route};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (run(steps[i]) < 0)
            return 1;
    return 0;
}
