/* What both modes of tsm-streamer share: CRIU's image-streamer socket and its requests. */
#ifndef TSM_STREAMER_COMMON_H
#define TSM_STREAMER_COMMON_H
#include <stddef.h>
#include <stdint.h>

#define MAX_NAME 128
#define MAX_FILES 100000
#define MAX_REQUEST 1024
#define PIPE_SIZE (1 << 20)

/* "tsm-streamer: <message>" on stderr, the socket removed, exit 1 */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void write_all(int fd, const void *buf, size_t len);
/* exactly len bytes; 0 at a clean end before the first byte, 1 when read */
int read_exact(int fd, void *buf, size_t len);
/* a plain image file name: [A-Za-z0-9][A-Za-z0-9._-]*, at most MAX_NAME */
int valid_name(const char *s, size_t n);
/* the next request on CRIU's connection: the image's name; 0 when CRIU has closed it */
int read_request(int conn, char name[MAX_NAME + 1]);
int recv_fd(int sock);
/* listen on DIR/SOCKET_NAME (mode 0600: only root connects); exits on failure */
int listen_on(const char *dir, const char *socket_name);
/* after CRIU has connected: the socket file goes */
void unlink_socket(void);
/* a CRIU connection accepted on lsock (the listening socket closed), or -1 to poll again */
int accept_criu(int lsock);
#endif
