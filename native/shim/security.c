/*
 * The container's security profile, applied by the process that is about to
 * exec the container's command (run's init, exec's child): the capability
 * bounding set cut, no_new_privs, the seccomp filter, the user switch, and the
 * capability sets cut to what the profile keeps (inheritable and ambient
 * empty). The filter is loaded while CAP_SYS_ADMIN is still held, so a profile
 * without no_new_privs can load it; it must allow what follows it here
 * (prctl, setgroups, setresgid, setresuid, capset, execve), as the default does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define FAILF(...)                                  \
    do {                                            \
        snprintf(err, errlen, __VA_ARGS__);         \
        return -1;                                  \
    } while (0)

static int last_cap(void)
{
    char buf[16] = {0};
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int n = 40;
    if (f) {
        if (fgets(buf, sizeof buf, f))
            n = atoi(buf);
        fclose(f);
    }
    return n;
}

static int parse_action(const char *a, int errnum, uint32_t *out)
{
    if (strcmp(a, "allow") == 0)
        *out = SCMP_ACT_ALLOW;
    else if (strcmp(a, "errno") == 0)
        *out = SCMP_ACT_ERRNO((uint16_t)errnum);
    else if (strcmp(a, "kill") == 0)
        *out = SCMP_ACT_KILL_PROCESS;
    else if (strcmp(a, "trap") == 0)
        *out = SCMP_ACT_TRAP;
    else if (strcmp(a, "log") == 0)
        *out = SCMP_ACT_LOG;
    else
        return -1;
    return 0;
}

static int parse_op(const char *s, enum scmp_compare *op)
{
    static const struct { const char *n; enum scmp_compare op; } ops[] = {
        {"eq", SCMP_CMP_EQ}, {"ne", SCMP_CMP_NE}, {"lt", SCMP_CMP_LT}, {"le", SCMP_CMP_LE},
        {"gt", SCMP_CMP_GT}, {"ge", SCMP_CMP_GE}, {"masked_eq", SCMP_CMP_MASKED_EQ},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(s, ops[i].n) == 0) {
            *op = ops[i].op;
            return 0;
        }
    return -1;
}

/*
 * The rules (read by main.c before any namespace is entered; written by src/security/seccomp.ts):
 *   default ACTION ERRNO
 *   rule ACTION ERRNO SYSCALL [INDEX OP VALUE VALUE2]...
 * Syscalls this libseccomp does not know on this architecture are skipped.
 */
static int load_seccomp(const char *text, char *err, size_t errlen)
{
    const char *file = "rules";
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    if (!f)
        FAILF("seccomp rules: %s", strerror(errno));
    char line[1024];
    scmp_filter_ctx ctx = NULL;
    int lineno = 0, rc = -1;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *tok[4 + 6 * 4];
        int n = 0;
        for (char *s = strtok(line, " \n"); s && n < (int)(sizeof tok / sizeof tok[0]); s = strtok(NULL, " \n"))
            tok[n++] = s;
        if (n == 0)
            continue;
        uint32_t act;
        if (strcmp(tok[0], "default") == 0 && n == 3 && !ctx) {
            if (parse_action(tok[1], atoi(tok[2]), &act) < 0)
                break;
            ctx = seccomp_init(act);
            if (!ctx) {
                snprintf(err, errlen, "seccomp_init failed");
                goto out;
            }
            /* no_new_privs is ours to decide (--no-new-privs), not libseccomp's */
            seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
            continue;
        }
        if (strcmp(tok[0], "rule") != 0 || !ctx || n < 4 || (n - 4) % 4 != 0)
            break;
        if (parse_action(tok[1], atoi(tok[2]), &act) < 0)
            break;
        int nr = seccomp_syscall_resolve_name(tok[3]);
        if (nr == __NR_SCMP_ERROR)
            continue;
        struct scmp_arg_cmp cmp[6];
        int ncmp = 0, bad = 0;
        for (int i = 4; i + 3 < n; i += 4) {
            enum scmp_compare op;
            if (parse_op(tok[i + 1], &op) < 0) {
                bad = 1;
                break;
            }
            cmp[ncmp].arg = (unsigned)atoi(tok[i]);
            cmp[ncmp].op = op;
            cmp[ncmp].datum_a = strtoull(tok[i + 2], NULL, 10);
            cmp[ncmp].datum_b = strtoull(tok[i + 3], NULL, 10);
            ncmp++;
        }
        if (bad)
            break;
        int r = seccomp_rule_add_array(ctx, act, nr, (unsigned)ncmp, cmp);
        /* -EEXIST/-EACCES: the same action as the default, or a duplicate: nothing to add */
        if (r < 0 && r != -EEXIST && r != -EACCES) {
            snprintf(err, errlen, "seccomp rule for %s: %s", tok[3], strerror(-r));
            goto out;
        }
    }
    if (!feof(f)) {
        snprintf(err, errlen, "seccomp %s: bad line %d", file, lineno);
        goto out;
    }
    if (!ctx) {
        snprintf(err, errlen, "seccomp %s have no default action", file);
        goto out;
    }
    int r = seccomp_load(ctx);
    if (r < 0) {
        snprintf(err, errlen, "loading the seccomp filter: %s", strerror(-r));
        goto out;
    }
    rc = 0;
out:
    if (ctx)
        seccomp_release(ctx);
    fclose(f);
    return rc;
}

static int set_caps(unsigned long long keep, char *err, size_t errlen)
{
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    /* what this host gave us bounds what the container can keep (a VM may withhold some) */
    if (syscall(SYS_capget, &h, d) < 0)
        FAILF("capget: %s", strerror(errno));
    keep &= (unsigned long long)d[1].permitted << 32 | d[0].permitted;
    memset(d, 0, sizeof d);
    d[0].effective = d[0].permitted = (uint32_t)keep;
    d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
    if (syscall(SYS_capset, &h, d) < 0)
        FAILF("capset: %s", strerror(errno));
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        FAILF("clearing ambient capabilities: %s", strerror(errno));
    return 0;
}

int apply_security(const struct shim_opts *o, char *err, size_t errlen)
{
    if (o->have_caps) {
        int last = last_cap();
        for (int c = 0; c <= last; c++)
            if (!(o->caps >> c & 1ULL) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
                FAILF("dropping capability %d from the bounding set: %s", c, strerror(errno));
        if (o->have_user && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
            FAILF("PR_SET_KEEPCAPS: %s", strerror(errno));
    }
    if (o->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        FAILF("no_new_privs: %s", strerror(errno));
    if (o->seccomp_text && load_seccomp(o->seccomp_text, err, errlen) < 0)
        return -1;
    if (o->have_user) {
        gid_t g = o->gid;
        if (setgroups(1, &g) < 0 || setresgid(o->gid, o->gid, o->gid) < 0 || setresuid(o->uid, o->uid, o->uid) < 0)
            FAILF("user %u:%u: %s", o->uid, o->gid, strerror(errno));
    }
    if (o->have_caps && set_caps(o->caps, err, errlen) < 0)
        return -1;
    return 0;
}
