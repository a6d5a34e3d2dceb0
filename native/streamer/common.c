/* CRIU's image-streamer socket and its requests (criu/img-streamer.c), for both modes. */
#define _GNU_SOURCE
#include "common.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tsm-streamer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    unlink_socket();
    exit(1);
}

void unlink_socket(void)
{
    if (sock_path[0])
        unlink(sock_path);
    sock_path[0] = '\0';
}

void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("writing: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
    }
}

int read_exact(int fd, void *buf, size_t len)
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

int valid_name(const char *s, size_t n)
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

int read_request(int conn, char name[MAX_NAME + 1])
{
    uint32_t len;
    uint8_t req[MAX_REQUEST];
    if (!read_exact(conn, &len, sizeof(len)))
        return 0;
    if (len == 0 || len > sizeof(req))
        die("unexpected request from CRIU (%u bytes)", len);
    read_exact(conn, req, len);
    parse_request(req, len, name);
    return 1;
}

int recv_fd(int sock)
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
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
        die("CRIU sent something other than a pipe with an image request");
    return fd;
}

int listen_on(const char *dir, const char *socket_name)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    char path[sizeof(sock_path)];
    if (snprintf(path, sizeof(path), "%s/%s", dir, socket_name) >= (int)sizeof(path))
        die("the images directory's path is too long for a socket: %s", dir);
    strcpy(addr.sun_path, path);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket: %s", strerror(errno));
    mode_t old = umask(077); /* only root may connect */
    if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("cannot listen on %s: %s", path, strerror(errno)); /* not ours: left as it is */
    umask(old);
    strcpy(sock_path, path);
    if (listen(s, 1) < 0)
        die("listen: %s", strerror(errno));
    return s;
}

int accept_criu(int lsock)
{
    int conn = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno != EINTR && errno != EAGAIN)
            die("accept: %s", strerror(errno));
        return -1;
    }
    close(lsock);
    unlink_socket();
    return conn;
}
