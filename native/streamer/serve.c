/*
 * tsm-streamer serve DIR (main.c)
 *
 * Serves CRIU's image-streamer socket for `criu restore --stream --images-dir
 * DIR` from the image files in DIR while they are still arriving, so that the
 * restore runs during the transfer instead of after it. CRIU's side of the
 * protocol (criu/img-streamer.c): one connection to DIR/streamer-serve.sock;
 * for every image it opens, a request (u32 length, then a protobuf
 * ImgStreamerRequestEntry { string filename = 1 }), our reply (u32 length, then
 * ImgStreamerReplyEntry { bool exists = 1 }) and, if it exists, the write end
 * of a pipe (SCM_RIGHTS) into which we put the image and which we then close.
 * CRIU reads pages from that pipe in order, as they come.
 *
 * stdin, from tsmigrate, one line each (a name last, checked as a plain name):
 *   f SIZE NAME    the manifest: NAME will hold SIZE bytes
 *   m              the manifest is complete (any other name does not exist)
 *   a BYTES NAME   the first BYTES of NAME are written (only grows)
 * A request that comes before "m" waits for it. stdin closing before every
 * file is whole means the transfer failed: exit 3, every pipe closed (CRIU
 * then fails on an image cut short). Data is read from the file, checksummed
 * and written to the pipe from that same buffer, so the sum is of exactly the
 * bytes CRIU gets (a splice would hand CRIU page-cache pages that can still
 * change after they were summed).
 * stdout: "s NAME SIZE CRC32" (CRC32 in 8 hex digits) once an image has been
 * served whole; if CRIU stopped reading early, the rest of the file is read
 * for the sum all the same. tsmigrate compares the sums with the images'
 * sums as they arrived (agent/restore-while-receiving.ts).
 * stderr: "ready\n" once the socket listens, then errors (one line each).
 */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define CHUNK (1u << 20)
#define MAX_SIZE (1ull << 53)

struct file {
    char name[MAX_NAME + 1];
    uint64_t size;  /* from the manifest */
    uint64_t avail; /* written so far */
};

struct serve {
    struct file *f;
    int pipe;  /* CRIU's pipe (write end, non-blocking); -1 once CRIU closed it */
    int fd;    /* the file, opened once it has data; -1 before */
    off_t off; /* read (and summed) so far */
    char *buf; /* read, not yet in the pipe: buf[at, len) */
    size_t at, len;
    uLong crc;
};

static struct file *files;
static size_t n_files, cap_files;
static struct serve *serves;
static size_t n_serves, cap_serves;
static int dir_fd = -1;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 64;
    p = realloc(p, *cap * size);
    if (!p)
        die("out of memory");
    return p;
}

static struct file *find(const char *name)
{
    for (size_t i = 0; i < n_files; i++)
        if (!strcmp(files[i].name, name))
            return &files[i];
    return NULL;
}

static int all_whole(void)
{
    for (size_t i = 0; i < n_files; i++)
        if (files[i].avail < files[i].size)
            return 0;
    return 1;
}

/* "X NUMBER NAME": the number and the name, checked */
static struct file *parse_entry(char *line, uint64_t *num, int known)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(line + 2, &end, 10);
    if (errno || end == line + 2 || *end != ' ' || v > MAX_SIZE)
        die("bad control line from tsmigrate: %.80s", line);
    const char *name = end + 1;
    if (!valid_name(name, strlen(name)))
        die("bad image name from tsmigrate: %.80s", name);
    *num = v;
    struct file *f = find(name);
    if (known && !f)
        die("%s is not in the manifest", name);
    if (!known && f)
        die("%s is twice in the manifest", name);
    if (!known) {
        if (n_files >= MAX_FILES)
            die("more than %d images", MAX_FILES);
        files = grow(files, &cap_files, n_files, sizeof(*files));
        f = &files[n_files++];
        strcpy(f->name, name);
        f->size = v;
        f->avail = 0;
    }
    return f;
}

static void control_line(char *line, int *manifest_done)
{
    uint64_t v;
    if (line[0] == 'm' && line[1] == '\0') {
        *manifest_done = 1;
    } else if (line[0] == 'f' && line[1] == ' ' && !*manifest_done) {
        parse_entry(line, &v, 0);
    } else if (line[0] == 'a' && line[1] == ' ') {
        struct file *f = parse_entry(line, &v, 1);
        if (v < f->avail || v > f->size)
            die("%s: %" PRIu64 " bytes written, after %" PRIu64 " of %" PRIu64, f->name, v, f->avail, f->size);
        f->avail = v;
    } else {
        die("bad control line from tsmigrate: %.80s", line);
    }
}

/* What stdin holds now, line by line; 0 once it has closed. */
static int read_control(int *manifest_done)
{
    static char buf[64 * 1024];
    static size_t have;
    ssize_t n;
    do
        n = read(STDIN_FILENO, buf + have, sizeof(buf) - 1 - have);
    while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN)
        return 1;
    if (n < 0)
        die("reading stdin: %s", strerror(errno));
    if (n == 0)
        return 0;
    have += (size_t)n;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
        *nl = '\0';
        control_line(start, manifest_done);
        start = nl + 1;
    }
    have -= (size_t)(start - buf);
    memmove(buf, start, have);
    if (have == sizeof(buf) - 1)
        die("a control line from tsmigrate is too long");
    return 1;
}

static void reply(int conn, int exists)
{
    uint8_t msg[6] = { 2, 0, 0, 0, 0x08, exists ? 1 : 0 }; /* u32 length (little-endian, as CRIU reads it), then the entry */
    write_all(conn, msg, sizeof(msg));
}

/* Answer a request: whether the image exists and, if so, take its pipe. */
static void answer(int conn, const char *name)
{
    struct file *f = find(name);
    reply(conn, f != NULL);
    if (!f)
        return;
    int pipe = recv_fd(conn);
    fcntl(pipe, F_SETPIPE_SZ, PIPE_SIZE); /* fewer wake-ups on both sides (best effort) */
    int fl = fcntl(pipe, F_GETFL);
    if (fl < 0 || fcntl(pipe, F_SETFL, fl | O_NONBLOCK) < 0)
        die("making the pipe of %s non-blocking: %s", name, strerror(errno));
    serves = grow(serves, &cap_serves, n_serves, sizeof(*serves));
    serves[n_serves++] = (struct serve){ .f = f, .pipe = pipe, .fd = -1, .off = 0, .crc = crc32(0, NULL, 0) };
}

static void end_serve(size_t i)
{
    if (serves[i].pipe >= 0)
        close(serves[i].pipe);
    if (serves[i].fd >= 0)
        close(serves[i].fd);
    free(serves[i].buf);
    serves[i] = serves[--n_serves];
}

static void report(const struct serve *s)
{
    char line[MAX_NAME + 64];
    int n = snprintf(line, sizeof(line), "s %s %" PRIu64 " %08lx\n", s->f->name, s->f->size, (unsigned long)s->crc);
    write_all(STDOUT_FILENO, line, (size_t)n);
}

/* Move what is written and fits into the pipe; 1 when the serve is over (whole and summed). */
static int feed(struct serve *s)
{
    for (;;) {
        if (s->at < s->len) {
            if (s->pipe < 0) {
                s->at = s->len;
                continue;
            }
            ssize_t n = write(s->pipe, s->buf + s->at, s->len - s->at);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return 0;
            if (n < 0 && errno == EPIPE) {
                /* CRIU closed its end: it has what it wanted, or it failed (its log says why) */
                close(s->pipe);
                s->pipe = -1;
                continue;
            }
            if (n < 0)
                die("moving %s: %s", s->f->name, strerror(errno));
            s->at += (size_t)n;
            continue;
        }
        if ((uint64_t)s->off == s->f->size) {
            report(s);
            return 1; /* whole (an empty image: at once) */
        }
        if ((uint64_t)s->off >= s->f->avail)
            return 0; /* not written yet */
        if (s->fd < 0) {
            s->fd = openat(dir_fd, s->f->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
            if (s->fd < 0)
                die("opening %s: %s", s->f->name, strerror(errno));
        }
        if (!s->buf && !(s->buf = malloc(CHUNK)))
            die("out of memory");
        uint64_t left = s->f->avail - (uint64_t)s->off;
        ssize_t r = pread(s->fd, s->buf, left > CHUNK ? CHUNK : (size_t)left, s->off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("reading %s: %s", s->f->name, r ? strerror(errno) : "it is shorter than written");
        s->crc = crc32(s->crc, (const Bytef *)s->buf, (uInt)r);
        s->off += r;
        s->at = 0;
        s->len = (size_t)r;
    }
}

int serve_main(const char *dir)
{
    dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0)
        die("opening %s: %s", dir, strerror(errno));
    int fl = fcntl(STDIN_FILENO, F_GETFL);
    if (fl < 0 || fcntl(STDIN_FILENO, F_SETFL, fl | O_NONBLOCK) < 0)
        die("making stdin non-blocking: %s", strerror(errno));
    int lsock = listen_on(dir, "streamer-serve.sock");
    write_all(STDERR_FILENO, "ready\n", 6);

    int conn = -1, conn_done = 0, input_open = 1, manifest_done = 0;
    char pending[MAX_NAME + 1] = ""; /* a request waiting for the manifest */
    struct pollfd *pfd = NULL;
    size_t cap_pfd = 0;
    while (!conn_done || n_serves > 0) {
        if (pending[0] && manifest_done) {
            answer(conn, pending);
            pending[0] = '\0';
        }
        /* whatever can move now; the serves that are over go */
        for (size_t i = 0; i < n_serves;) {
            if (feed(&serves[i]))
                end_serve(i);
            else
                i++;
        }
        if (conn_done && n_serves == 0)
            break;
        pfd = grow(pfd, &cap_pfd, 2 + n_serves + 1, sizeof(*pfd));
        size_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = input_open ? STDIN_FILENO : -1, .events = POLLIN };
        int want_conn = !conn_done && !pending[0];
        pfd[n++] = (struct pollfd){ .fd = !want_conn ? -1 : conn >= 0 ? conn : lsock, .events = POLLIN };
        for (size_t i = 0; i < n_serves; i++) {
            /* data to move, the pipe was full */
            int waiting = serves[i].at < serves[i].len || (uint64_t)serves[i].off < serves[i].f->avail;
            pfd[n++] = (struct pollfd){ .fd = waiting ? serves[i].pipe : -1, .events = POLLOUT };
        }
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        if (pfd[0].revents && !read_control(&manifest_done)) {
            input_open = 0;
            if (!manifest_done || !all_whole()) {
                fputs("tsm-streamer: the images stopped arriving before they were whole\n", stderr);
                unlink_socket();
                exit(3);
            }
        }
        if (pfd[1].revents) {
            if (conn < 0) {
                conn = accept_criu(lsock);
            } else {
                char name[MAX_NAME + 1];
                if (!read_request(conn, name)) {
                    close(conn);
                    conn_done = 1;
                } else if (manifest_done) {
                    answer(conn, name);
                } else {
                    strcpy(pending, name);
                }
            }
        }
    }
    return 0;
}
