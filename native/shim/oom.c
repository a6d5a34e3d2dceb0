/*
 * OOM kills in the container's cgroup. The kernel counts them ("oom_kill N"
 * in v1's memory.oom_control, in v2's memory.events) but does not say when;
 * the supervisor watches the counter and writes <state>/oom.json with the
 * total and the time it saw the last one rise. Woken by the kernel where it
 * can be: v1 through an eventfd registered in cgroup.event_control (signalled
 * as the cgroup goes out of memory, a moment before the kill is counted, so
 * the counter is re-read for a second after), v2 through inotify on
 * memory.events; elsewhere the counter is read once a second.
 * Kills counted by earlier incarnations of the container (before a restore
 * or a move, in another cgroup) come in as --oom-kills-before.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define RECHECK_MS 1000

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* the "oom_kill N" line of the counter file, or -1 */
static long long read_counter(const char *file)
{
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char line[256];
    long long v = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "oom_kill ", 9) == 0) {
            v = strtoll(line + 9, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* v1: an eventfd the memory cgroup signals on OOM (cgroup.event_control beside the file) */
static int v1_eventfd(const char *file)
{
    char copy[4096], ctl[4096], line[64];
    snprintf(copy, sizeof copy, "%s", file);
    snprintf(ctl, sizeof ctl, "%s/cgroup.event_control", dirname(copy));
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int cfd = open(file, O_RDONLY | O_CLOEXEC);
    if (efd < 0 || cfd < 0)
        goto fail;
    snprintf(line, sizeof line, "%d %d", efd, cfd);
    if (write_file(ctl, line) < 0)
        goto fail;
    close(cfd);
    return efd;
fail:
    fprintf(stderr, "tsm-shim: no OOM events from %s (%s): reading it once a second\n", file, strerror(errno));
    if (efd >= 0)
        close(efd);
    if (cfd >= 0)
        close(cfd);
    return -1;
}

static int v2_inotify(const char *file)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd >= 0 && inotify_add_watch(fd, file, IN_MODIFY) >= 0)
        return fd;
    fprintf(stderr, "tsm-shim: no OOM events from %s (%s): reading it once a second\n", file, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

void oom_open(struct oom_watch *w, const struct shim_opts *o)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->file = o->oom_file;
    w->before = o->oom_kills_before;
    w->last_rise_ms = -1;
    w->recheck_until_ms = -1;
    w->next_check_ms = -1;
    if (!w->file)
        return;
    const char *base = strrchr(w->file, '/');
    base = base ? base + 1 : w->file;
    w->fd = strcmp(base, "memory.oom_control") == 0 ? v1_eventfd(w->file) : v2_inotify(w->file);
    /* counted from here: a cgroup left over from an earlier container may have counted some */
    long long c = read_counter(w->file);
    w->base = w->seen = c > 0 ? c : 0;
    if (w->fd < 0)
        w->next_check_ms = now_ms() + 1000;
}

static void record(const struct oom_watch *w, const char *state_dir)
{
    char path[4096], json[256], when[64];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(json, sizeof json, "{\"oomKills\":%lld,\"lastOomKillAt\":\"%s.%03ldZ\"}\n",
             w->before + w->seen - w->base, when, t.tv_nsec / 1000000);
    snprintf(path, sizeof path, "%s/oom.json", state_dir);
    if (write_file_atomic(path, json) < 0)
        fprintf(stderr, "tsm-shim: cannot write %s: %s\n", path, strerror(errno));
}

void oom_check(struct oom_watch *w, const char *state_dir)
{
    if (!w->file)
        return;
    long long now = now_ms();
    /* without events, once a second; after one, every 100 ms for a second */
    if (w->fd < 0)
        w->next_check_ms = now + 1000;
    else if (now < w->recheck_until_ms)
        w->next_check_ms = now + 100;
    else
        w->next_check_ms = -1;
    long long c = read_counter(w->file);
    if (c <= w->seen)
        return;
    w->seen = c;
    w->last_rise_ms = now;
    record(w, state_dir);
}

void oom_event(struct oom_watch *w, const char *state_dir)
{
    char buf[4096];
    while (read(w->fd, buf, sizeof buf) > 0)
        ;
    w->recheck_until_ms = now_ms() + RECHECK_MS;
    oom_check(w, state_dir);
}

void oom_tick(struct oom_watch *w, const char *state_dir)
{
    if (w->next_check_ms >= 0 && now_ms() >= w->next_check_ms)
        oom_check(w, state_dir);
}

int oom_timeout_ms(const struct oom_watch *w)
{
    if (w->next_check_ms < 0)
        return -1;
    long long left = w->next_check_ms - now_ms();
    return left < 0 ? 0 : (int)left;
}

int oom_recent(const struct oom_watch *w)
{
    return w->last_rise_ms >= 0 && now_ms() - w->last_rise_ms <= RECHECK_MS;
}
