/*
 * tsm-streamer capture DIR
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
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_NAME 128
#define MAX_FILES 100000
#define MAX_REQUEST 1024
#define CHUNK (1u << 20)
#define PIPE_SIZE (1 << 20)

struct image {
    char name[MAX_NAME + 1];
    int fd;     /* the pipe's read end; -1 once it ended */
    uint64_t size;
};

static struct image *images;
static size_t n_images, cap_images, n_open;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tsm-streamer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (sock_path[0])
        unlink(sock_path);
    exit(1);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("writing the image stream: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
}

/* Read exactly len bytes; 0 at a clean end before the first byte, 1 when read. */
static int read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("reading CRIU's request: %s", strerror(errno));
        }
        if (n == 0) {
            if (got == 0)
                return 0;
            die("CRIU's request was cut short (%zu of %zu bytes)", got, len);
        }
        got += (size_t)n;
    }
    return 1;
}

static int valid_name(const char *s, size_t n)
{
    if (n < 1 || n > MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

/* ImgStreamerRequestEntry { required string filename = 1; }: tag 0x0a, varint length, bytes. */
static void parse_request(const uint8_t *b, size_t n, char *name)
{
    size_t at = 0;
    uint64_t len = 0;
    if (n < 2 || b[at++] != 0x0a)
        die("unexpected request from CRIU (not an image file name)");
    for (int shift = 0; at < n && shift < 28; shift += 7) {
        uint8_t c = b[at++];
        len |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            goto have_len;
    }
    die("unexpected request from CRIU (bad length)");
have_len:
    if (len != n - at)
        die("unexpected request from CRIU (%zu bytes for a name of %llu)", n, (unsigned long long)len);
    if (!valid_name((const char *)b + at, len))
        die("CRIU asked for an image with an unexpected name (%.*s)", (int)len, b + at);
    memcpy(name, b + at, len);
    name[len] = '\0';
}

static int recv_fd(int sock)
{
    char dummy;
    struct iovec iov = { .iov_base = &dummy, .iov_len = 1 };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        die("receiving CRIU's pipe: %s", strerror(errno));
    if (n == 0)
        die("CRIU closed the connection before sending the pipe of an image");
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)) || (msg.msg_flags & MSG_CTRUNC))
        die("CRIU sent no pipe with an image request");
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof(fd));
    return fd;
}

/* One request: an image's name and its pipe. 0 when CRIU has closed the connection. */
static int take_request(int conn)
{
    uint32_t len;
    uint8_t req[MAX_REQUEST];
    char name[MAX_NAME + 1];
    if (!read_exact(conn, &len, sizeof(len)))
        return 0;
    if (len == 0 || len > sizeof(req))
        die("unexpected request from CRIU (%u bytes)", len);
    read_exact(conn, req, len);
    parse_request(req, len, name);
    int fd = recv_fd(conn);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
        die("CRIU sent something other than a pipe for %s", name);
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
    if (sock_path[0])
        unlink(sock_path);
    exit(3);
}

static int listen_on(const char *dir)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (snprintf(sock_path, sizeof(sock_path), "%s/streamer-capture.sock", dir) >= (int)sizeof(sock_path)) {
        sock_path[0] = '\0';
        die("the images directory's path is too long for a socket: %s", dir);
    }
    strcpy(addr.sun_path, sock_path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket: %s", strerror(errno));
    mode_t old = umask(077); /* only root may connect and feed it images */
    if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int e = errno;
        umask(old);
        char path[sizeof(sock_path)];
        strcpy(path, sock_path);
        sock_path[0] = '\0'; /* not ours: leave it */
        die("cannot listen on %s: %s", path, strerror(e));
    }
    umask(old);
    if (listen(s, 1) < 0)
        die("listen: %s", strerror(errno));
    return s;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "capture"))
        die("usage: tsm-streamer capture DIR");
    signal(SIGPIPE, SIG_IGN);
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
    int lsock = listen_on(argv[2]);
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
                conn = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
                if (conn < 0 && errno != EINTR && errno != EAGAIN)
                    die("accept: %s", strerror(errno));
                if (conn >= 0) {
                    close(lsock);
                    unlink(sock_path);
                    sock_path[0] = '\0';
                }
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
