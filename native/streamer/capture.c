/*
 * tsm-streamer capture DIR (main.c)
 *
 * Serves CRIU's image-streamer socket for `criu dump --stream --images-dir DIR`
 * and writes the images to stdout as tsmigrate's image records (the format of
 * src/transfer/live-images.ts), so that CRIU's pages go from the dumped tasks
 * to the SSH stream without being written to and read back from tmpfs:
 *
 *   'D' | name length u8 | name | offset u64 BE | length u32 BE | bytes
 *   'E' | count u32 BE | count x (name length u8 | name | size u64 BE)
 *
 * CRIU's side of the protocol (criu/img-streamer.c): one connection to
 * DIR/streamer-capture.sock; for every image it opens, a request (u32 length,
 * then a protobuf ImgStreamerRequestEntry { string filename = 1 }) followed by
 * the read end of a pipe (SCM_RIGHTS, one dummy byte). CRIU writes the image
 * into that pipe (pages are spliced) and closes it; the connection closes when
 * the dump is over. Every pipe is drained as data comes (CRIU writes several
 * images at once); data moves pipe to stdout with splice(), without a copy.
 *
 * stderr: "ready\n" once the socket listens, then errors (one line each).
 * stdin: tsmigrate writes "ok\n" once CRIU has exited 0; only then is the end
 * record written (a failed dump never looks complete). stdin closing without
 * it: exit 3, no end record. Any protocol error: exit 1 (CRIU then fails on a
 * broken pipe).
 */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (1u << 20)

struct image {
    char name[MAX_NAME + 1];
    int fd;     /* the pipe's read end; -1 once it ended */
    uint64_t size;
};

static struct image *images;
static size_t n_images, cap_images, n_open;

/* One request: an image's name and its pipe. 0 when CRIU has closed the connection. */
static int take_request(int conn)
{
    char name[MAX_NAME + 1];
    if (!read_request(conn, name))
        return 0;
    int fd = recv_fd(conn);
    for (size_t i = 0; i < n_images; i++)
        if (!strcmp(images[i].name, name))
            die("CRIU opened %s twice", name);
    if (n_images >= MAX_FILES)
        die("more than %d images", MAX_FILES);
    if (n_images == cap_images) {
        cap_images = cap_images ? cap_images * 2 : 64;
        images = realloc(images, cap_images * sizeof(*images));
        if (!images)
            die("out of memory");
    }
    /* a wider pipe: fewer wake-ups for CRIU and for us (best effort) */
    fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE);
    struct image *im = &images[n_images++];
    strcpy(im->name, name);
    im->fd = fd;
    im->size = 0;
    n_open++;
    return 1;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* What the pipe holds now, as one 'D' record; closes the image at its end. */
static void drain(struct image *im, int out, int *can_splice)
{
    int avail = 0;
    if (ioctl(im->fd, FIONREAD, &avail) < 0)
        die("FIONREAD on the pipe of %s: %s", im->name, strerror(errno));
    if (avail <= 0) {
        /* readable with nothing in it: CRIU closed its end */
        close(im->fd);
        im->fd = -1;
        n_open--;
        return;
    }
    uint32_t len = (uint32_t)avail > CHUNK ? CHUNK : (uint32_t)avail;
    size_t nl = strlen(im->name);
    uint8_t hdr[2 + MAX_NAME + 12];
    hdr[0] = 'D';
    hdr[1] = (uint8_t)nl;
    memcpy(hdr + 2, im->name, nl);
    put_u64(hdr + 2 + nl, im->size);
    put_u32(hdr + 10 + nl, len);
    write_all(out, hdr, 14 + nl);
    uint32_t left = len;
    while (left > 0 && *can_splice) {
        ssize_t n = splice(im->fd, NULL, out, NULL, left, SPLICE_F_MOVE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EINVAL) {
            *can_splice = 0; /* stdout is something splice cannot write to */
            break;
        }
        if (n < 0)
            die("moving %s: %s", im->name, strerror(errno));
        if (n == 0)
            die("the pipe of %s ended early", im->name);
        left -= (uint32_t)n;
    }
    static char buf[CHUNK];
    while (left > 0) {
        ssize_t n = read(im->fd, buf, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("reading %s: %s", im->name, n ? strerror(errno) : "ended early");
        write_all(out, buf, (size_t)n);
        left -= (uint32_t)n;
    }
    im->size += len;
}

static void end_record(int out)
{
    size_t total = 5;
    for (size_t i = 0; i < n_images; i++)
        total += 1 + strlen(images[i].name) + 8;
    uint8_t *e = malloc(total);
    if (!e)
        die("out of memory");
    e[0] = 'E';
    put_u32(e + 1, (uint32_t)n_images);
    size_t at = 5;
    for (size_t i = 0; i < n_images; i++) {
        size_t nl = strlen(images[i].name);
        e[at] = (uint8_t)nl;
        memcpy(e + at + 1, images[i].name, nl);
        put_u64(e + at + 1 + nl, images[i].size);
        at += 1 + nl + 8;
    }
    write_all(out, e, total);
    free(e);
}

/* Has tsmigrate said "ok"? Exits when stdin closes without it. */
static int read_verdict(void)
{
    char c;
    ssize_t n;
    do
        n = read(STDIN_FILENO, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n == 1 && c == 'o')
        return 1;
    if (n == 1)
        return 0; /* the rest of "ok\n" */
    unlink_socket();
    exit(3);
}

int capture_main(const char *dir)
{
    int out = STDOUT_FILENO;
    int fl = fcntl(out, F_GETFL);
    if (fl >= 0 && (fl & O_NONBLOCK))
        fcntl(out, F_SETFL, fl & ~O_NONBLOCK);
    /* room for several records on the way to tsmigrate (a socket or a pipe; best effort), so that
       CRIU, this loop and the reader do not run in lock-step, a 64 KiB step at a time */
    int sndbuf = 4 << 20;
    if (setsockopt(out, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0)
        setsockopt(out, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    fcntl(out, F_SETPIPE_SZ, PIPE_SIZE);
    int lsock = listen_on(dir, "streamer-capture.sock");
    write_all(STDERR_FILENO, "ready\n", 6);

    int conn = -1, conn_done = 0, verdict = 0, can_splice = 1;
    struct pollfd *pfd = NULL;
    size_t cap_pfd = 0;
    while (!conn_done || n_open > 0) {
        size_t need = 2 + n_images;
        if (need > cap_pfd) {
            cap_pfd = need * 2;
            pfd = realloc(pfd, cap_pfd * sizeof(*pfd));
            if (!pfd)
                die("out of memory");
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = verdict ? -1 : STDIN_FILENO, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = conn_done ? -1 : conn >= 0 ? conn : lsock, .events = POLLIN };
        for (size_t i = 0; i < n_images; i++)
            pfd[n++] = (struct pollfd){ .fd = images[i].fd, .events = POLLIN };
        if (poll(pfd, n, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }
        if (pfd[0].revents)
            verdict = read_verdict();
        /* the pipes first: CRIU may be blocked on one of them */
        for (size_t i = 0; i < n_images; i++)
            if (pfd[2 + i].revents && images[i].fd >= 0)
                drain(&images[i], out, &can_splice);
        if (pfd[1].revents) {
            if (conn < 0) {
                conn = accept_criu(lsock);
            } else if (!take_request(conn)) {
                close(conn);
                conn_done = 1;
            }
        }
    }
    while (!verdict)
        verdict = read_verdict();
    end_record(out);
    return 0;
}
