/* tsm-shim: the per-container supervisor. See shim.c for the protocol. */
#ifndef TSM_SHIM_H
#define TSM_SHIM_H

#include <stddef.h>
#include <sys/types.h>

#define MAX_LIST 256
#define FRAME_MAX 4096          /* the largest input frame of attach.sock (console.c) */

struct shim_opts {
    const char *mode;           /* "run", "restore" or "exec" */
    const char *state_dir;      /* where shim.pid, init.pid, exit.json, container.log live */
    const char *rootfs;         /* run: the mounted rootfs (overlay merged dir) */
    const char *hostname;
    const char *cwd;
    int have_user;
    uid_t uid;
    gid_t gid;
    int sync_fd;                /* run/restore: socket to the CLI for the handshake */
    int exec_pid;               /* exec: the container init's host pid */
    int interactive;            /* exec: relay the caller's stdin (else the process reads /dev/null) */
    int tty;                    /* run, exec: the process gets a pty of the container's devpts */
    unsigned short rows, cols;  /* run -t: the pty's first window size */
    const char *pidfile;        /* restore: CRIU's --pidfile */
    const char *net_setup;      /* restore: --net-setup, TSM_NET for the action script (netsetup.c) */
    long long log_max_bytes;    /* run/restore: rotate container.log at this size (0: never) */
    int log_max_files;          /* run/restore: log files kept, the current one included */
    const char *oom_file;       /* run/restore: the cgroup file counting OOM kills ("oom_kill N") */
    long long oom_kills_before; /* run/restore: OOM kills counted before a restore or move */
    const char *env[MAX_LIST];
    int nenv;
    const char *cgroup_procs[MAX_LIST];
    int ncgroup;
    /* security profile (security.c, rootfs.c): absent options leave root's powers as they are */
    int have_caps;
    unsigned long long caps;    /* --caps: the capabilities kept */
    int nnp;                    /* --no-new-privs */
    char *seccomp_text;         /* --seccomp FILE, read at start (the file is on the host) */
    const char *masks[MAX_LIST];
    int nmasks;
    const char *ros[MAX_LIST];
    int nros;
    const char *device_nodes[MAX_LIST]; /* --device-node TYPE:MAJ:MIN:MODE:PATH */
    int ndevice_nodes;
    int cgroupns;               /* --cgroupns: the init gets a cgroup namespace */
    int sys_rw;                 /* --sys-rw: /sys writable (privileged) */
    uid_t userns_start, userns_size; /* --userns START:SIZE (userns.c); size 0: none */
    char **argv;                /* command (run/exec) or criu argv (restore) */
    int argc;
};

/* util.c */
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
int write_all(int fd, const void *buf, size_t len);
ssize_t write_some(int fd, const void *buf, size_t len);
int write_file(const char *path, const char *data);
int write_file_atomic(const char *path, const char *data);
int read_line(int fd, char *buf, size_t len);
int join_cgroups(const struct shim_opts *o, pid_t pid);
int send_fd(int sock, int fd);
int recv_fd(int sock);
void say_stdio(int sync_fd, int out_fd, int err_fd);
void kill_children(void);

/* rootfs.c: runs in the container's new mount namespace */
int setup_rootfs(const struct shim_opts *o, char *err, size_t errlen);

/* security.c: just before the container's command is exec'd */
int apply_security(const struct shim_opts *o, char *err, size_t errlen);

/* console.c: the pty of a container run with -t, and the client attached to it */
#define EARLY_MAX 65536
struct pollfd;
struct console {
    int master, listener, client;
    int attached;               /* a client came once */
    size_t nearly;
    char early[EARLY_MAX];      /* output before the first attach */
    size_t nin;
    unsigned char in[2 * (3 + FRAME_MAX)]; /* frames from the client */
    size_t pend_off, pend_len;
    char pend[FRAME_MAX];       /* input the pty has not taken yet */
};
int console_open(struct console *c, const struct shim_opts *o, int master);
void console_output(struct console *c, const char *buf, size_t n);
int console_fds(struct console *c, struct pollfd *p);
void console_ready(struct console *c, const struct pollfd *p, int n);
void console_close(struct console *c, const struct shim_opts *o);


/* logfile.c: container.log, rotated by size */
struct log_writer {
    const char *dir;
    int fd;
    long long max_bytes;
    int max_files;
};
void log_open(struct log_writer *w, const struct shim_opts *o);
void log_write(struct log_writer *w, const char *buf, size_t n);

/* oom.c: the cgroup's OOM-kill counter, recorded in oom.json */
struct oom_watch {
    const char *file;
    int fd;                      /* readable on an event; -1: read the counter once a second */
    long long before, base, seen;
    long long last_rise_ms;      /* CLOCK_MONOTONIC, -1: none yet */
    long long recheck_until_ms;
    long long next_check_ms;     /* -1: none due */
};
void oom_open(struct oom_watch *w, const struct shim_opts *o);
void oom_event(struct oom_watch *w, const char *state_dir);
void oom_check(struct oom_watch *w, const char *state_dir);
/* read the counter if a read is due */
void oom_tick(struct oom_watch *w, const char *state_dir);
/* how long the supervisor may sleep before the counter is read again (-1: until an event) */
int oom_timeout_ms(const struct oom_watch *w);
/* whether the counter rose within the last second */
int oom_recent(const struct oom_watch *w);

/* supervise.c: con is NULL without a terminal */
int supervise(const struct shim_opts *o, pid_t init_pid, int out_fd, int err_fd, struct log_writer *log,
              struct oom_watch *oom, struct console *con);

void apply_env_path(const struct shim_opts *o);
void sync_say(int fd, const char *fmt, int arg, const char *str);

/* userns.c */
void parse_userns(struct shim_opts *o, const char *s);
int write_id_maps(pid_t pid, uid_t start, uid_t size);

/* netsetup.c: run by CRIU as its --action-script */
int criu_action(const char *action);

/* pty.c */
#define CONTAINER_PTMX "/dev/pts/ptmx" /* inside the container's mount namespace */
int pty_open(const char *ptmx, int *master, int *slave, char *err, size_t errlen);
int term_raw(int fd, int input_too);
void winsize_copy(int from, int to);

/* relay.c: one direction of the exec or attach relay */
struct copy {
    int from, to;
    int is_input;               /* the caller's stdin to the process */
    int framed;                 /* attach: input goes in 'd' frames (console.c) */
    int discard;                /* the reader went away: read and drop */
    size_t off, len;
    char buf[16384];
};
#define RELAY_MAX 3
struct relay {
    struct copy c[RELAY_MAX];
    int n;
    int master;                 /* the pty master, or -1 */
    int term;                   /* the caller's terminal (window size), or -1 */
    int size_sock;              /* attach: the window size goes here in 'w' frames, or -1 */
    int size_dirty;             /* a 'w' frame is due */
    int held_ctrl_p, detached;  /* attach: the detach keys (relay.c) */
};
void relay_block_signals(void);
int relay_run(struct relay *r, pid_t child);

/* modes */
int mode_idmap_mount(const struct shim_opts *o);
int mode_run(const struct shim_opts *o);
int mode_restore(const struct shim_opts *o);
int mode_exec(const struct shim_opts *o);
int mode_attach(const struct shim_opts *o);
#define ATTACH_NO_CONSOLE 3     /* attach's exit code: nothing listens on attach.sock */
#define ATTACH_DETACHED 4       /* attach's exit code: the caller detached (Ctrl-P Ctrl-Q) */

#endif
