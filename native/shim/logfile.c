/*
 * The container's log: <state>/container.log, rotated by size as docker's
 * json-file driver does (max-size, max-file). When a write would take the
 * current file past max_bytes, the file ends at the last line that fits and
 * is renamed container.log.1 (older ones shift up, the oldest beyond
 * max_files is removed), and a new one is started: every file stays at most
 * max_bytes; only a line longer than that, or one written in pieces, is split. Readers (tsmigrate logs, a move) read the files oldest
 * first. The size is read back before every write: a move appends the
 * source's tail to the file the restored supervisor already has open.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim.h"

static void log_path(const struct log_writer *w, int index, char *buf, size_t len)
{
    if (index == 0)
        snprintf(buf, len, "%s/container.log", w->dir);
    else
        snprintf(buf, len, "%s/container.log.%d", w->dir, index);
}

static int open_current(const struct log_writer *w)
{
    char path[4096];
    log_path(w, 0, path, sizeof path);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

void log_open(struct log_writer *w, const struct shim_opts *o)
{
    w->dir = o->state_dir;
    w->max_bytes = o->log_max_bytes;
    w->max_files = o->log_max_files > 0 ? o->log_max_files : 1;
    w->fd = open_current(w);
    if (w->fd < 0)
        die("cannot open %s/container.log: %s", w->dir, strerror(errno));
}

/* container.log -> .1 -> .2 ...; the one that would become .max_files goes */
static void rotate(struct log_writer *w)
{
    char from[4096], to[4096];
    log_path(w, w->max_files - 1, from, sizeof from);
    if (unlink(from) < 0 && errno != ENOENT)
        fprintf(stderr, "tsm-shim: cannot remove %s: %s\n", from, strerror(errno));
    for (int i = w->max_files - 1; i >= 1; i--) {
        log_path(w, i - 1, from, sizeof from);
        log_path(w, i, to, sizeof to);
        if (rename(from, to) < 0 && errno != ENOENT)
            fprintf(stderr, "tsm-shim: cannot rename %s: %s\n", from, strerror(errno));
    }
    int fd = open_current(w);
    if (fd < 0) {
        /* keep writing where we can, unbounded, rather than lose the output */
        fprintf(stderr, "tsm-shim: cannot start a new log file: %s; no more rotation\n", strerror(errno));
        w->max_bytes = 0;
        return;
    }
    close(w->fd);
    w->fd = fd;
}

void log_write(struct log_writer *w, const char *buf, size_t n)
{
    while (n > 0) {
        size_t chunk = n;
        if (w->max_bytes > 0) {
            struct stat st;
            long long size = fstat(w->fd, &st) == 0 ? (long long)st.st_size : 0;
            long long room = w->max_bytes - size;
            if ((long long)n > room) {
                /* end the file at a line's end where one fits, else start the next one */
                const char *nl = room > 0 ? memrchr(buf, '\n', (size_t)room) : NULL;
                if (nl) {
                    chunk = (size_t)(nl - buf) + 1;
                } else if (size > 0) {
                    rotate(w);
                    continue;
                } else {
                    chunk = (size_t)w->max_bytes; /* a line longer than a file */
                }
            }
        }
        if (write_all(w->fd, buf, chunk) < 0) {
            fprintf(stderr, "tsm-shim: log write failed: %s\n", strerror(errno));
            return;
        }
        buf += chunk;
        n -= chunk;
        if (n > 0 && w->max_bytes > 0)
            rotate(w);
    }
}
