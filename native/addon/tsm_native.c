/*
 * tsm_native: a thin, synchronous N-API binding for the handful of Linux
 * syscalls Node does not expose (mount, umount2, mknod, l*xattr, setns,
 * unshare, utimensat with AT_SYMLINK_NOFOLLOW, futimens, lseek SEEK_DATA/HOLE,
 * mallopt, pre-faulted memory given back piece by piece: mmap/munmap,
 * fcntl F_SETPIPE_SZ, bpf(2) for cgroup device programs, and openat2 plus the
 * *at calls on one name inside an open directory, for safe extraction).
 *
 * Rules this file follows:
 *   - every argument is type-checked here; a wrong type throws a TypeError
 *     (code ERR_INVALID_ARG_TYPE), a string containing a NUL byte throws a
 *     TypeError (code ERR_INVALID_ARG_VALUE) instead of being truncated, an
 *     out-of-range number throws a RangeError (code ERR_OUT_OF_RANGE);
 *   - strings are copied into heap buffers sized from a first length query,
 *     never into fixed-size stack buffers;
 *   - a failing syscall throws an Error shaped like Node's fs errors:
 *     { code: 'EPERM', errno: -1, syscall: 'mount', path: '/x',
 *       message: "EPERM: operation not permitted, mount '/x'" };
 *   - no global mutable state, so the module is context-aware (workers).
 *
 * Only src/native/native.ts loads this module.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include <node_api.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MAX_SAFE_INTEGER 9007199254740991LL /* 2^53 - 1 */
#define XATTR_RETRIES 16

/* ------------------------------------------------------------------------ */
/* error helpers                                                            */
/* ------------------------------------------------------------------------ */

/* An N-API call failed: make sure *some* exception is pending. */
static void throw_napi_failure(napi_env env, napi_status status) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info *info = NULL;
  const char *msg = "N-API call failed";
  if (napi_get_last_error_info(env, &info) == napi_ok && info != NULL &&
      info->error_message != NULL)
    msg = info->error_message;
  (void)status;
  napi_throw_error(env, "ERR_NAPI", msg);
}

#define NAPI_OK(call)                                                          \
  do {                                                                         \
    napi_status s_ = (call);                                                   \
    if (s_ != napi_ok) {                                                       \
      throw_napi_failure(env, s_);                                             \
      goto fail;                                                               \
    }                                                                          \
  } while (0)

static void throw_type(napi_env env, const char *code, const char *arg,
                       const char *what) {
  char *msg = NULL;
  if (asprintf(&msg, "The \"%s\" argument must be %s", arg, what) < 0) msg = NULL;
  napi_throw_type_error(env, code, msg != NULL ? msg : "invalid argument");
  free(msg);
}

static void throw_range(napi_env env, const char *arg, const char *what) {
  char *msg = NULL;
  if (asprintf(&msg, "The value of \"%s\" is out of range. It must be %s", arg,
               what) < 0)
    msg = NULL;
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE",
                         msg != NULL ? msg : "argument out of range");
  free(msg);
}

/*
 * An Error shaped like Node's fs errors, or NULL with an exception pending.
 * `err` is a positive errno. `path` may be NULL (setns, unshare).
 */
static napi_value errno_error(napi_env env, int err, const char *syscall_name,
                              const char *path) {
  const char *name = strerrorname_np(err);
  char namebuf[32];
  if (name == NULL) {
    snprintf(namebuf, sizeof namebuf, "E%d", err);
    name = namebuf;
  }
  /* glibc says "Operation not permitted", libuv/Node say "operation not
   * permitted": lower-case the first letter unless it starts an acronym. */
  char descbuf[256];
  snprintf(descbuf, sizeof descbuf, "%s", strerror(err));
  if (isupper((unsigned char)descbuf[0]) && islower((unsigned char)descbuf[1]))
    descbuf[0] = (char)tolower((unsigned char)descbuf[0]);

  char *msg = NULL;
  int rc = path != NULL
               ? asprintf(&msg, "%s: %s, %s '%s'", name, descbuf, syscall_name, path)
               : asprintf(&msg, "%s: %s, %s", name, descbuf, syscall_name);
  if (rc < 0) msg = NULL;

  napi_value code_v, msg_v, err_v, errno_v, sys_v, path_v;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code_v) != napi_ok ||
      napi_create_string_utf8(env, msg != NULL ? msg : name, NAPI_AUTO_LENGTH,
                              &msg_v) != napi_ok ||
      napi_create_error(env, code_v, msg_v, &err_v) != napi_ok ||
      napi_create_int32(env, -err, &errno_v) != napi_ok ||
      napi_set_named_property(env, err_v, "errno", errno_v) != napi_ok ||
      napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &sys_v) != napi_ok ||
      napi_set_named_property(env, err_v, "syscall", sys_v) != napi_ok) {
    free(msg);
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  if (path != NULL) {
    if (napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &path_v) != napi_ok ||
        napi_set_named_property(env, err_v, "path", path_v) != napi_ok) {
      free(msg);
      throw_napi_failure(env, napi_generic_failure);
      return NULL;
    }
  }
  free(msg);
  return err_v;
}

/* Throw errno_error(...). */
static void throw_errno(napi_env env, int err, const char *syscall_name,
                        const char *path) {
  napi_value e = errno_error(env, err, syscall_name, path);
  if (e != NULL) napi_throw(env, e);
}

/* ------------------------------------------------------------------------ */
/* argument helpers (return 0 on success, -1 with an exception pending)     */
/* ------------------------------------------------------------------------ */

static int get_args(napi_env env, napi_callback_info info, size_t n,
                    napi_value *argv) {
  size_t argc = n;
  napi_status s = napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (s != napi_ok) {
    throw_napi_failure(env, s);
    return -1;
  }
  /* Missing arguments are filled with `undefined` by N-API; the per-argument
   * type checks reject them. */
  return 0;
}

/*
 * Copy a JS string into a fresh heap buffer (*out, to free()). If `nullable`,
 * null/undefined gives *out == NULL. Rejects embedded NUL bytes.
 */
static int get_string(napi_env env, napi_value v, const char *arg, int nullable,
                      char **out) {
  *out = NULL;
  napi_valuetype t;
  napi_status s = napi_typeof(env, v, &t);
  if (s != napi_ok) {
    throw_napi_failure(env, s);
    return -1;
  }
  if (nullable && (t == napi_null || t == napi_undefined)) return 0;
  if (t != napi_string) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", arg,
               nullable ? "of type string or null" : "of type string");
    return -1;
  }
  size_t len = 0;
  s = napi_get_value_string_utf8(env, v, NULL, 0, &len);
  if (s != napi_ok) {
    throw_napi_failure(env, s);
    return -1;
  }
  char *buf = malloc(len + 1);
  if (buf == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return -1;
  }
  size_t got = 0;
  s = napi_get_value_string_utf8(env, v, buf, len + 1, &got);
  if (s != napi_ok) {
    free(buf);
    throw_napi_failure(env, s);
    return -1;
  }
  buf[got] = '\0';
  if (got != len || memchr(buf, '\0', got) != NULL) {
    free(buf);
    throw_type(env, "ERR_INVALID_ARG_VALUE", arg,
               "a string without null bytes");
    return -1;
  }
  *out = buf;
  return 0;
}

/*
 * An integral JS number in [min, max] (both within +-(2^53-1)). If
 * `allow_bigint`, a BigInt that fits losslessly in int64 is also accepted.
 */
static int get_int(napi_env env, napi_value v, const char *arg, int64_t min,
                   int64_t max, int allow_bigint, int64_t *out) {
  napi_valuetype t;
  napi_status s = napi_typeof(env, v, &t);
  if (s != napi_ok) {
    throw_napi_failure(env, s);
    return -1;
  }
  int64_t val;
  if (t == napi_number) {
    double d;
    s = napi_get_value_double(env, v, &d);
    if (s != napi_ok) {
      throw_napi_failure(env, s);
      return -1;
    }
    /* NaN fails both comparisons; the cast is safe once d is in range. */
    if (!(d >= -(double)MAX_SAFE_INTEGER && d <= (double)MAX_SAFE_INTEGER) ||
        (double)(int64_t)d != d) {
      throw_range(env, arg, "a safe integer");
      return -1;
    }
    val = (int64_t)d;
  } else if (t == napi_bigint && allow_bigint) {
    bool lossless = false;
    s = napi_get_value_bigint_int64(env, v, &val, &lossless);
    if (s != napi_ok) {
      throw_napi_failure(env, s);
      return -1;
    }
    if (!lossless) {
      throw_range(env, arg, "representable as a signed 64-bit integer");
      return -1;
    }
  } else {
    throw_type(env, "ERR_INVALID_ARG_TYPE", arg,
               allow_bigint ? "of type number or bigint" : "of type number");
    return -1;
  }
  if (val < min || val > max) {
    char what[96];
    snprintf(what, sizeof what, ">= %lld and <= %lld", (long long)min,
             (long long)max);
    throw_range(env, arg, what);
    return -1;
  }
  *out = val;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* mount(source|null, target, fstype|null, flags, data|null)                */
/* ------------------------------------------------------------------------ */

static napi_value js_mount(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char *source = NULL, *target = NULL, *fstype = NULL, *data = NULL;
  int64_t flags = 0;
  if (get_args(env, info, 5, argv) < 0) return NULL;
  if (get_string(env, argv[0], "source", 1, &source) < 0 ||
      get_string(env, argv[1], "target", 0, &target) < 0 ||
      get_string(env, argv[2], "fstype", 1, &fstype) < 0 ||
      get_int(env, argv[3], "flags", 0, UINT32_MAX, 0, &flags) < 0 ||
      get_string(env, argv[4], "data", 1, &data) < 0)
    goto out;
  if (mount(source, target, fstype, (unsigned long)flags, data) != 0)
    throw_errno(env, errno, "mount", target);
out:
  free(source);
  free(target);
  free(fstype);
  free(data);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* umount2(target, flags)                                                   */
/* ------------------------------------------------------------------------ */

static napi_value js_umount2(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char *target = NULL;
  int64_t flags = 0;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (get_string(env, argv[0], "target", 0, &target) < 0 ||
      get_int(env, argv[1], "flags", 0, INT32_MAX, 0, &flags) < 0)
    goto out;
  if (umount2(target, (int)flags) != 0) throw_errno(env, errno, "umount2", target);
out:
  free(target);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* mknod(path, mode, major, minor)                                          */
/* ------------------------------------------------------------------------ */

static napi_value js_mknod(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *path = NULL;
  int64_t mode = 0, major_ = 0, minor_ = 0;
  if (get_args(env, info, 4, argv) < 0) return NULL;
  /* Linux dev_t as seen by the kernel: 12-bit major, 20-bit minor. */
  if (get_string(env, argv[0], "path", 0, &path) < 0 ||
      get_int(env, argv[1], "mode", 0, 0177777, 0, &mode) < 0 ||
      get_int(env, argv[2], "major", 0, 0xfff, 0, &major_) < 0 ||
      get_int(env, argv[3], "minor", 0, 0xfffff, 0, &minor_) < 0)
    goto out;
  if (mknod(path, (mode_t)mode, makedev((unsigned)major_, (unsigned)minor_)) != 0)
    throw_errno(env, errno, "mknod", path);
out:
  free(path);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* xattrs (never follow symlinks)                                           */
/* ------------------------------------------------------------------------ */

/* lgetxattr(path, name): Buffer | null (null when the attribute is absent). */
static napi_value js_lgetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_value result = NULL;
  char *path = NULL, *name = NULL, *buf = NULL;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (get_string(env, argv[0], "path", 0, &path) < 0 ||
      get_string(env, argv[1], "name", 0, &name) < 0)
    goto out;
  for (int attempt = 0;; attempt++) {
    ssize_t size = lgetxattr(path, name, NULL, 0);
    if (size < 0) {
      if (errno == ENODATA) {
        NAPI_OK(napi_get_null(env, &result));
      } else {
        throw_errno(env, errno, "lgetxattr", path);
      }
      goto out;
    }
    free(buf);
    buf = malloc((size_t)size + 1);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "lgetxattr", path);
      goto out;
    }
    /* A size-0 call would report the size again rather than copy. */
    ssize_t got = size == 0 ? 0 : lgetxattr(path, name, buf, (size_t)size);
    if (got < 0) {
      int e = errno;
      /* The value grew between the two calls: ask again. */
      if (e == ERANGE && attempt < XATTR_RETRIES) continue;
      if (e == ENODATA) {
        NAPI_OK(napi_get_null(env, &result));
      } else {
        throw_errno(env, e, "lgetxattr", path);
      }
      goto out;
    }
    void *data = NULL;
    NAPI_OK(napi_create_buffer_copy(env, (size_t)got, buf, &data, &result));
    goto out;
  }
fail:
  result = NULL;
out:
  free(path);
  free(name);
  free(buf);
  return result;
}

/* lsetxattr(path, name, value: Buffer, flags) */
static napi_value js_lsetxattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *path = NULL, *name = NULL;
  int64_t flags = 0;
  bool is_buffer = false;
  void *data = NULL;
  size_t len = 0;
  if (get_args(env, info, 4, argv) < 0) return NULL;
  if (get_string(env, argv[0], "path", 0, &path) < 0 ||
      get_string(env, argv[1], "name", 0, &name) < 0)
    goto out;
  NAPI_OK(napi_is_buffer(env, argv[2], &is_buffer));
  if (!is_buffer) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "value", "an instance of Buffer");
    goto out;
  }
  NAPI_OK(napi_get_buffer_info(env, argv[2], &data, &len));
  if (get_int(env, argv[3], "flags", 0, INT32_MAX, 0, &flags) < 0) goto out;
  /* No JS runs between getting `data` and the syscall. */
  if (lsetxattr(path, name, len > 0 ? data : "", len, (int)flags) != 0)
    throw_errno(env, errno, "lsetxattr", path);
  goto out;
fail:
out:
  free(path);
  free(name);
  return NULL;
}

/* llistxattr(path): string[] */
static napi_value js_llistxattr(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value result = NULL;
  char *path = NULL, *buf = NULL;
  ssize_t got = 0;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_string(env, argv[0], "path", 0, &path) < 0) goto out;
  for (int attempt = 0;; attempt++) {
    ssize_t size = llistxattr(path, NULL, 0);
    if (size < 0) {
      throw_errno(env, errno, "llistxattr", path);
      goto out;
    }
    free(buf);
    buf = malloc((size_t)size + 1);
    if (buf == NULL) {
      throw_errno(env, ENOMEM, "llistxattr", path);
      goto out;
    }
    /* A size-0 call would report the size again rather than copy. */
    got = size == 0 ? 0 : llistxattr(path, buf, (size_t)size);
    if (got < 0) {
      int e = errno;
      if (e == ERANGE && attempt < XATTR_RETRIES) continue; /* list grew */
      throw_errno(env, e, "llistxattr", path);
      goto out;
    }
    break;
  }
  buf[got] = '\0'; /* defensive: the kernel NUL-terminates every name */
  NAPI_OK(napi_create_array(env, &result));
  uint32_t idx = 0;
  for (ssize_t off = 0; off < got;) {
    size_t n = strnlen(buf + off, (size_t)(got - off));
    if (n > 0) {
      napi_value s;
      NAPI_OK(napi_create_string_utf8(env, buf + off, n, &s));
      NAPI_OK(napi_set_element(env, result, idx++, s));
    }
    off += (ssize_t)n + 1;
  }
  goto out;
fail:
  result = NULL;
out:
  free(path);
  free(buf);
  return result;
}

/* lremovexattr(path, name) */
static napi_value js_lremovexattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char *path = NULL, *name = NULL;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (get_string(env, argv[0], "path", 0, &path) < 0 ||
      get_string(env, argv[1], "name", 0, &name) < 0)
    goto out;
  if (lremovexattr(path, name) != 0) throw_errno(env, errno, "lremovexattr", path);
out:
  free(path);
  free(name);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* namespaces (NB: they act on the calling thread only)                     */
/* ------------------------------------------------------------------------ */

static napi_value js_setns(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t fd = 0, nstype = 0;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (get_int(env, argv[0], "fd", 0, INT32_MAX, 0, &fd) < 0 ||
      get_int(env, argv[1], "nstype", 0, INT32_MAX, 0, &nstype) < 0)
    return NULL;
  if (setns((int)fd, (int)nstype) != 0) throw_errno(env, errno, "setns", NULL);
  return NULL;
}

static napi_value js_unshare(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t flags = 0;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_int(env, argv[0], "flags", 0, INT32_MAX, 0, &flags) < 0) return NULL;
  if (unshare((int)flags) != 0) throw_errno(env, errno, "unshare", NULL);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* lutimesNs(path, atimeSec, atimeNsec, mtimeSec, mtimeNsec)                */
/* ------------------------------------------------------------------------ */

static int get_nsec(napi_env env, napi_value v, const char *arg, long *out) {
  int64_t n = 0;
  if (get_int(env, v, arg, 0, UTIME_NOW > UTIME_OMIT ? UTIME_NOW : UTIME_OMIT, 0,
              &n) < 0)
    return -1;
  if (n > 999999999 && n != UTIME_NOW && n != UTIME_OMIT) {
    throw_range(env, arg, ">= 0 and <= 999999999 (or UTIME_NOW / UTIME_OMIT)");
    return -1;
  }
  *out = (long)n;
  return 0;
}

static napi_value js_lutimes_ns(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char *path = NULL;
  int64_t asec = 0, msec = 0;
  struct timespec ts[2];
  memset(ts, 0, sizeof ts);
  if (get_args(env, info, 5, argv) < 0) return NULL;
  if (get_string(env, argv[0], "path", 0, &path) < 0 ||
      get_int(env, argv[1], "atimeSec", INT64_MIN, INT64_MAX, 1, &asec) < 0 ||
      get_nsec(env, argv[2], "atimeNsec", &ts[0].tv_nsec) < 0 ||
      get_int(env, argv[3], "mtimeSec", INT64_MIN, INT64_MAX, 1, &msec) < 0 ||
      get_nsec(env, argv[4], "mtimeNsec", &ts[1].tv_nsec) < 0)
    goto out;
  ts[0].tv_sec = (time_t)asec;
  ts[1].tv_sec = (time_t)msec;
  if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno(env, errno, "utimensat", path);
out:
  free(path);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* futimesNs(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec)                  */
/* ------------------------------------------------------------------------ */

static napi_value js_futimes_ns(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  int64_t fd = 0, asec = 0, msec = 0;
  struct timespec ts[2];
  memset(ts, 0, sizeof ts);
  if (get_args(env, info, 5, argv) < 0) return NULL;
  if (get_int(env, argv[0], "fd", 0, INT32_MAX, 0, &fd) < 0 ||
      get_int(env, argv[1], "atimeSec", INT64_MIN, INT64_MAX, 1, &asec) < 0 ||
      get_nsec(env, argv[2], "atimeNsec", &ts[0].tv_nsec) < 0 ||
      get_int(env, argv[3], "mtimeSec", INT64_MIN, INT64_MAX, 1, &msec) < 0 ||
      get_nsec(env, argv[4], "mtimeNsec", &ts[1].tv_nsec) < 0)
    return NULL;
  ts[0].tv_sec = (time_t)asec;
  ts[1].tv_sec = (time_t)msec;
  if (futimens((int)fd, ts) != 0) throw_errno(env, errno, "futimens", NULL);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* mallocTune(trimThreshold, mmapThreshold, topPad): mallopt(3) for a       */
/* process that streams bulk data. With glibc's defaults, freed Buffers at  */
/* the top of the heap are given back to the kernel (trim) and taken again  */
/* a moment later, every page faulting anew; on hosts where a page fault is */
/* expensive (nested or paravirtualised guests) that doubled the CPU cost   */
/* of a transfer. Returns true when glibc took all three.                   */
/* ------------------------------------------------------------------------ */

static napi_value js_malloc_tune(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  napi_value result = NULL;
  int64_t trim = 0, mmap_thr = 0, pad = 0;
  if (get_args(env, info, 3, argv) < 0) return NULL;
  if (get_int(env, argv[0], "trimThreshold", 0, INT32_MAX, 0, &trim) < 0 ||
      get_int(env, argv[1], "mmapThreshold", 0, 32 << 20, 0, &mmap_thr) < 0 ||
      get_int(env, argv[2], "topPad", 0, INT32_MAX, 0, &pad) < 0)
    return NULL;
  int ok = mallopt(M_TRIM_THRESHOLD, (int)trim) == 1;
  ok = (mallopt(M_MMAP_THRESHOLD, (int)mmap_thr) == 1) && ok;
  ok = (mallopt(M_TOP_PAD, (int)pad) == 1) && ok;
  if (napi_get_boolean(env, ok, &result) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------ */
/* memPrefault(bytes) -> handle; memRelease(handle, bytes) -> bytes left.   */
/* Anonymous memory faulted in now (MAP_POPULATE) and handed back to the    */
/* kernel later, from the tail, a piece at a time. A guest that reports its */
/* free memory to the hypervisor (virtio free page reporting, after about   */
/* two seconds) pays several times the normal cost when it touches that     */
/* memory again; pages freed a moment before a restore or a tmpfs write     */
/* are still backed. The handle is an External: what is left is unmapped    */
/* when it is collected, so nothing leaks.                                  */
/* ------------------------------------------------------------------------ */

struct prefault {
  char *base;
  size_t len;
};

static void prefault_finalize(napi_env env, void *data, void *hint) {
  struct prefault *r = data;
  (void)env;
  (void)hint;
  if (r->len) munmap(r->base, r->len);
  free(r);
}

static napi_value js_mem_prefault(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value result = NULL;
  int64_t bytes = 0;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_int(env, argv[0], "bytes", 1, (int64_t)1 << 40, 0, &bytes) < 0) return NULL;
  long page = sysconf(_SC_PAGESIZE);
  size_t len = ((size_t)bytes + (size_t)page - 1) & ~((size_t)page - 1);
  struct prefault *r = malloc(sizeof *r);
  if (r == NULL) {
    throw_errno(env, ENOMEM, "malloc", NULL);
    return NULL;
  }
  void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (base == MAP_FAILED) {
    int err = errno;
    free(r);
    throw_errno(env, err, "mmap", NULL);
    return NULL;
  }
  r->base = base;
  r->len = len;
  napi_status s = napi_create_external(env, r, prefault_finalize, NULL, &result);
  if (s != napi_ok) {
    munmap(base, len);
    free(r);
    throw_napi_failure(env, s);
    return NULL;
  }
  return result;
}

static napi_value js_mem_release(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_value result = NULL;
  int64_t bytes = 0;
  struct prefault *r = NULL;
  napi_valuetype t;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (napi_typeof(env, argv[0], &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, argv[0], (void **)&r) != napi_ok || r == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "The \"handle\" argument must be a handle from memPrefault");
    return NULL;
  }
  if (get_int(env, argv[1], "bytes", 0, MAX_SAFE_INTEGER, 0, &bytes) < 0) return NULL;
  long page = sysconf(_SC_PAGESIZE);
  size_t cut = ((size_t)bytes + (size_t)page - 1) & ~((size_t)page - 1);
  if (cut > r->len) cut = r->len;
  if (cut > 0) {
    if (munmap(r->base + (r->len - cut), cut) != 0) {
      throw_errno(env, errno, "munmap", NULL);
      return NULL;
    }
    r->len -= cut;
  }
  if (napi_create_double(env, (double)r->len, &result) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

/* (fd, integer) arguments, as setPipeSize and seekData/seekHole take them. */
static int get_fd_and_int(napi_env env, napi_callback_info info, const char *name,
                          int64_t min, int64_t max, int64_t *fd, int64_t *v) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv) < 0) return -1;
  if (get_int(env, argv[0], "fd", 0, INT32_MAX, 0, fd) < 0 ||
      get_int(env, argv[1], name, min, max, 0, v) < 0)
    return -1;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* setPipeSize(fd, bytes) -> the pipe's new capacity: fcntl F_SETPIPE_SZ.   */
/* The peer agent's stdin and stdout are pipes from sshd; at the default    */
/* 64 KiB sshd and the agent wake each other for every 64 KiB of a bulk     */
/* stream (measured: 1 MiB pipes cut sshd's CPU per GiB by a quarter).      */
/* ------------------------------------------------------------------------ */

static napi_value js_set_pipe_size(napi_env env, napi_callback_info info) {
  napi_value result = NULL;
  int64_t fd = 0, bytes = 0;
  if (get_fd_and_int(env, info, "bytes", 4096, INT32_MAX, &fd, &bytes) < 0) return NULL;
  int got = fcntl((int)fd, F_SETPIPE_SZ, (int)bytes);
  if (got < 0) {
    throw_errno(env, errno, "fcntl", NULL);
    return NULL;
  }
  if (napi_create_int32(env, got, &result) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------ */
/* allocate(fd, offset, bytes) -> undefined: fallocate(2) mode 0.          */
/* The peer preallocates the tmpfs file its largest memory image will go   */
/* into before the freeze: writing into allocated tmpfs pages costs half  */
/* of allocating them as the write goes (measured: 1 GiB 200 vs 460 ms).  */
/* ------------------------------------------------------------------------ */

static napi_value js_allocate(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t fd = 0, off = 0, bytes = 0;
  if (get_args(env, info, 3, argv) < 0) return NULL;
  if (get_int(env, argv[0], "fd", 0, INT32_MAX, 0, &fd) < 0 ||
      get_int(env, argv[1], "offset", 0, MAX_SAFE_INTEGER, 0, &off) < 0 ||
      get_int(env, argv[2], "bytes", 1, MAX_SAFE_INTEGER, 0, &bytes) < 0)
    return NULL;
  int r;
  do
    r = fallocate((int)fd, 0, (off_t)off, (off_t)bytes);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    throw_errno(env, errno, "fallocate", NULL);
    return NULL;
  }
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* seekData(fd, offset) / seekHole(fd, offset): lseek(2) with SEEK_DATA /   */
/* SEEK_HOLE. Returns the new offset, or null on ENXIO (no data / hole at   */
/* or after `offset`, i.e. offset >= file size for SEEK_HOLE).              */
/* ------------------------------------------------------------------------ */

static napi_value seek_common(napi_env env, napi_callback_info info, int whence,
                              const char *syscall_name) {
  napi_value result = NULL;
  int64_t fd = 0, off = 0;
  if (get_fd_and_int(env, info, "offset", 0, MAX_SAFE_INTEGER, &fd, &off) < 0) return NULL;
  off_t r = lseek((int)fd, (off_t)off, whence);
  if (r < 0) {
    if (errno == ENXIO) {
      if (napi_get_null(env, &result) != napi_ok) {
        throw_napi_failure(env, napi_generic_failure);
        return NULL;
      }
      return result;
    }
    throw_errno(env, errno, syscall_name, NULL);
    return NULL;
  }
  if (napi_create_int64(env, (int64_t)r, &result) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

static napi_value js_seek_data(napi_env env, napi_callback_info info) {
  return seek_common(env, info, SEEK_DATA, "lseek");
}

static napi_value js_seek_hole(napi_env env, napi_callback_info info) {
  return seek_common(env, info, SEEK_HOLE, "lseek");
}

/* ------------------------------------------------------------------------ */
/* cgroup device programs, bpf(2):                                          */
/*   bpfDeviceProgLoad(insns: Buffer, license) -> fd                        */
/*   bpfDeviceProgQuery(cgroupFd) -> { attachFlags, progIds }               */
/*   bpfDeviceProgAttach(cgroupFd, progFd, replaceFd | null)                */
/*   bpfDeviceProgDetach(cgroupFd, progFd)                                  */
/*   bpfProgFdById(id) -> fd;  bpfProgId(fd) -> id                          */
/* The program type (BPF_PROG_TYPE_CGROUP_DEVICE) and the attach type       */
/* (BPF_CGROUP_DEVICE, always with BPF_F_ALLOW_MULTI) are fixed here: these */
/* bindings load and attach nothing else. Returned fds are O_CLOEXEC (the   */
/* kernel's choice) and never 0; the caller closes them.                    */
/* ------------------------------------------------------------------------ */

#define BPF_LOAD_RETRIES 30          /* the verifier returns EAGAIN on a signal */
#define BPF_MAX_DEVICE_INSNS 4096    /* BPF_MAXINSNS */
#define BPF_VERIFIER_LOG_SIZE (256 * 1024)
#define BPF_QUERY_RETRIES 8

/* Room past union bpf_attr: kernels 6.17+ write BPF_PROG_QUERY's `revision`
 * whatever size is passed, which may lie beyond the union of the headers we
 * are built with. The kernel ignores (zero) bytes past the size it knows. */
union bpf_attr_room {
  union bpf_attr a;
  unsigned char room[256];
};

static long sys_bpf(int cmd, union bpf_attr_room *attr) {
  return syscall(SYS_bpf, cmd, &attr->a, sizeof attr->a);
}

/* A new bpf fd, moved off 0 (bpf(2) reads fd 0 in some fields as "none"). */
static int bpf_fd_result(long fd) {
  if (fd != 0) return (int)fd;
  int moved = fcntl(0, F_DUPFD_CLOEXEC, 1);
  int err = errno;
  close(0);
  errno = err;
  return moved;
}

static int device_prog_load(const void *insns, size_t cnt, const char *license,
                            char *log, size_t log_size) {
  union bpf_attr_room attr;
  memset(&attr, 0, sizeof attr);
  attr.a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.a.insn_cnt = (uint32_t)cnt;
  attr.a.insns = (uint64_t)(uintptr_t)insns;
  attr.a.license = (uint64_t)(uintptr_t)license;
  if (log != NULL) {
    log[0] = '\0';
    attr.a.log_level = 1;
    attr.a.log_buf = (uint64_t)(uintptr_t)log;
    attr.a.log_size = (uint32_t)log_size;
  }
  for (int attempt = 0;; attempt++) {
    long fd = sys_bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) return bpf_fd_result(fd);
    if (errno != EAGAIN || attempt >= BPF_LOAD_RETRIES) return -1;
  }
}

static napi_value make_fd(napi_env env, int fd) {
  napi_value result = NULL;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

static napi_value js_bpf_device_prog_load(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char *license = NULL, *log = NULL;
  bool is_buffer = false;
  void *data = NULL;
  size_t len = 0;
  napi_value result = NULL;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  NAPI_OK(napi_is_buffer(env, argv[0], &is_buffer));
  if (!is_buffer) {
    throw_type(env, "ERR_INVALID_ARG_TYPE", "insns", "an instance of Buffer");
    goto out;
  }
  NAPI_OK(napi_get_buffer_info(env, argv[0], &data, &len));
  if (len == 0 || len % sizeof(struct bpf_insn) != 0 ||
      len / sizeof(struct bpf_insn) > BPF_MAX_DEVICE_INSNS) {
    throw_range(env, "insns", "1 to 4096 eight-byte instructions");
    goto out;
  }
  if (get_string(env, argv[1], "license", 0, &license) < 0) goto out;
  /* No JS runs between getting `data` and the syscalls. */
  int fd = device_prog_load(data, len / sizeof(struct bpf_insn), license, NULL, 0);
  if (fd < 0) {
    int err = errno;
    /* Load again with the verifier's log, to say why (the fast path skips it). */
    log = malloc(BPF_VERIFIER_LOG_SIZE);
    if (log != NULL) {
      fd = device_prog_load(data, len / sizeof(struct bpf_insn), license, log,
                            BPF_VERIFIER_LOG_SIZE);
      log[BPF_VERIFIER_LOG_SIZE - 1] = '\0';
    }
    if (fd < 0) {
      napi_value e = errno_error(env, err, "bpf(BPF_PROG_LOAD)", NULL);
      if (e == NULL) goto out;
      if (log != NULL && log[0] != '\0') {
        napi_value log_v;
        NAPI_OK(napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &log_v));
        NAPI_OK(napi_set_named_property(env, e, "verifierLog", log_v));
      }
      napi_throw(env, e);
      goto out;
    }
  }
  result = make_fd(env, fd);
  goto out;
fail:
  result = NULL;
out:
  free(license);
  free(log);
  return result;
}

static napi_value js_bpf_device_prog_query(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value result = NULL, ids_v, flags_v;
  int64_t fd = 0;
  uint32_t cap = 64, *ids = NULL;
  union bpf_attr_room attr;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_int(env, argv[0], "cgroupFd", 0, INT32_MAX, 0, &fd) < 0) return NULL;
  for (int attempt = 0;; attempt++) {
    free(ids);
    ids = calloc(cap, sizeof *ids);
    if (ids == NULL) {
      throw_errno(env, ENOMEM, "malloc", NULL);
      goto out;
    }
    memset(&attr, 0, sizeof attr);
    attr.a.query.target_fd = (uint32_t)fd;
    attr.a.query.attach_type = BPF_CGROUP_DEVICE;
    attr.a.query.prog_ids = (uint64_t)(uintptr_t)ids;
    attr.a.query.prog_cnt = cap;
    if (sys_bpf(BPF_PROG_QUERY, &attr) == 0) break;
    /* ENOSPC: more programs than room; prog_cnt says how many there are. */
    if (errno == ENOSPC && attempt < BPF_QUERY_RETRIES && attr.a.query.prog_cnt > cap) {
      cap = attr.a.query.prog_cnt;
      continue;
    }
    throw_errno(env, errno, "bpf(BPF_PROG_QUERY)", NULL);
    goto out;
  }
  NAPI_OK(napi_create_object(env, &result));
  NAPI_OK(napi_create_uint32(env, attr.a.query.attach_flags, &flags_v));
  NAPI_OK(napi_set_named_property(env, result, "attachFlags", flags_v));
  NAPI_OK(napi_create_array(env, &ids_v));
  for (uint32_t i = 0; i < attr.a.query.prog_cnt && i < cap; i++) {
    napi_value id_v;
    NAPI_OK(napi_create_uint32(env, ids[i], &id_v));
    NAPI_OK(napi_set_element(env, ids_v, i, id_v));
  }
  NAPI_OK(napi_set_named_property(env, result, "progIds", ids_v));
  goto out;
fail:
  result = NULL;
out:
  free(ids);
  return result;
}

/* (cgroupFd, progFd, ...) into attr for BPF_PROG_ATTACH / BPF_PROG_DETACH. */
static int get_cgroup_prog_args(napi_env env, const napi_value *argv,
                                union bpf_attr_room *attr) {
  int64_t cg = 0, prog = 0;
  if (get_int(env, argv[0], "cgroupFd", 0, INT32_MAX, 0, &cg) < 0 ||
      get_int(env, argv[1], "progFd", 0, INT32_MAX, 0, &prog) < 0)
    return -1;
  memset(attr, 0, sizeof *attr);
  attr->a.target_fd = (uint32_t)cg;
  attr->a.attach_bpf_fd = (uint32_t)prog;
  attr->a.attach_type = BPF_CGROUP_DEVICE;
  return 0;
}

static napi_value js_bpf_device_prog_attach(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t replace = 0;
  napi_valuetype t;
  union bpf_attr_room attr;
  if (get_args(env, info, 3, argv) < 0 || get_cgroup_prog_args(env, argv, &attr) < 0)
    return NULL;
  if (napi_typeof(env, argv[2], &t) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  if (t != napi_null && t != napi_undefined &&
      get_int(env, argv[2], "replaceFd", 1, INT32_MAX, 0, &replace) < 0)
    return NULL;
  attr.a.attach_flags = BPF_F_ALLOW_MULTI;
  if (replace > 0) {
    attr.a.attach_flags |= BPF_F_REPLACE;
    attr.a.replace_bpf_fd = (uint32_t)replace;
  }
  if (sys_bpf(BPF_PROG_ATTACH, &attr) != 0) throw_errno(env, errno, "bpf(BPF_PROG_ATTACH)", NULL);
  return NULL;
}

static napi_value js_bpf_device_prog_detach(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  union bpf_attr_room attr;
  if (get_args(env, info, 2, argv) < 0 || get_cgroup_prog_args(env, argv, &attr) < 0)
    return NULL;
  if (sys_bpf(BPF_PROG_DETACH, &attr) != 0) throw_errno(env, errno, "bpf(BPF_PROG_DETACH)", NULL);
  return NULL;
}

static napi_value js_bpf_prog_fd_by_id(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t id = 0;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_int(env, argv[0], "id", 1, UINT32_MAX, 0, &id) < 0) return NULL;
  union bpf_attr_room attr;
  memset(&attr, 0, sizeof attr);
  attr.a.prog_id = (uint32_t)id;
  long fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
  if (fd >= 0) fd = bpf_fd_result(fd);
  if (fd < 0) {
    throw_errno(env, errno, "bpf(BPF_PROG_GET_FD_BY_ID)", NULL);
    return NULL;
  }
  return make_fd(env, (int)fd);
}

static napi_value js_bpf_prog_id(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  napi_value result = NULL;
  int64_t fd = 0;
  struct bpf_prog_info pinfo;
  if (get_args(env, info, 1, argv) < 0) return NULL;
  if (get_int(env, argv[0], "progFd", 0, INT32_MAX, 0, &fd) < 0) return NULL;
  memset(&pinfo, 0, sizeof pinfo);
  union bpf_attr_room attr;
  memset(&attr, 0, sizeof attr);
  attr.a.info.bpf_fd = (uint32_t)fd;
  attr.a.info.info_len = sizeof pinfo;
  attr.a.info.info = (uint64_t)(uintptr_t)&pinfo;
  if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0) {
    throw_errno(env, errno, "bpf(BPF_OBJ_GET_INFO_BY_FD)", NULL);
    return NULL;
  }
  if (napi_create_uint32(env, pinfo.id, &result) != napi_ok) {
    throw_napi_failure(env, napi_generic_failure);
    return NULL;
  }
  return result;
}

/* ------------------------------------------------------------------------ */
/* paths beneath a directory fd (safe extraction): openat2 with RESOLVE_*,  */
/* and the *at calls on one name inside an already opened directory         */
/* ------------------------------------------------------------------------ */

/* A name for the *at calls below: one component, never "", "." or "..". */
static int get_name(napi_env env, napi_value v, const char *arg, char **out) {
  if (get_string(env, v, arg, 0, out) < 0) return -1;
  const char *n = *out;
  if (n[0] == '\0' || strchr(n, '/') != NULL || strcmp(n, ".") == 0 ||
      strcmp(n, "..") == 0) {
    free(*out);
    *out = NULL;
    throw_type(env, "ERR_INVALID_ARG_VALUE", arg,
               "one path component (no '/', not '.' or '..')");
    return -1;
  }
  return 0;
}

static int get_fd(napi_env env, napi_value v, const char *arg, int *out) {
  int64_t fd = 0;
  if (get_int(env, v, arg, 0, INT32_MAX, 0, &fd) < 0) return -1;
  *out = (int)fd;
  return 0;
}

/* The (dirfd, name) pair that starts most *at calls, from argv[0] and argv[1]. */
static int get_at(napi_env env, napi_value *argv, int *dirfd, char **name) {
  if (get_fd(env, argv[0], "dirfd", dirfd) < 0) return -1;
  return get_name(env, argv[1], "name", name);
}

/* openat2(dirfd, path, flags, mode, resolve): fd. Always O_CLOEXEC. */
static napi_value js_openat2(napi_env env, napi_callback_info info) {
  napi_value argv[5], result = NULL;
  char *path = NULL;
  int dirfd = -1;
  int64_t flags = 0, mode = 0, resolve = 0;
  if (get_args(env, info, 5, argv) < 0) return NULL;
  if (get_fd(env, argv[0], "dirfd", &dirfd) < 0 ||
      get_string(env, argv[1], "path", 0, &path) < 0 ||
      get_int(env, argv[2], "flags", 0, INT32_MAX, 0, &flags) < 0 ||
      get_int(env, argv[3], "mode", 0, 07777, 0, &mode) < 0 ||
      get_int(env, argv[4], "resolve", 0, INT32_MAX, 0, &resolve) < 0)
    goto out;
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)flags | O_CLOEXEC;
  /* the kernel refuses a mode without O_CREAT / O_TMPFILE */
  how.mode = ((flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE) ? (uint64_t)mode : 0;
  how.resolve = (uint64_t)resolve;
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN && (resolve & RESOLVE_CACHED) == 0);
  if (fd < 0) {
    throw_errno(env, errno, "openat2", path);
    goto out;
  }
  NAPI_OK(napi_create_int32(env, (int32_t)fd, &result));
out:
fail:
  free(path);
  return result;
}

/* mkdirat(dirfd, name, mode) */
static napi_value js_mkdirat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char *name = NULL;
  int dirfd = -1;
  int64_t mode = 0;
  if (get_args(env, info, 3, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0 ||
      get_int(env, argv[2], "mode", 0, 07777, 0, &mode) < 0)
    goto out;
  if (mkdirat(dirfd, name, (mode_t)mode) != 0) throw_errno(env, errno, "mkdirat", name);
out:
  free(name);
  return NULL;
}

/* symlinkat(target, dirfd, name) */
static napi_value js_symlinkat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char *target = NULL, *name = NULL;
  int dirfd = -1;
  if (get_args(env, info, 3, argv) < 0) return NULL;
  if (get_string(env, argv[0], "target", 0, &target) < 0 ||
      get_fd(env, argv[1], "dirfd", &dirfd) < 0 ||
      get_name(env, argv[2], "name", &name) < 0)
    goto out;
  if (symlinkat(target, dirfd, name) != 0) throw_errno(env, errno, "symlinkat", name);
out:
  free(target);
  free(name);
  return NULL;
}

/* linkat(olddirfd, oldname, newdirfd, newname): never follows a symlink at oldname */
static napi_value js_linkat(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *oldname = NULL, *newname = NULL;
  int olddirfd = -1, newdirfd = -1;
  if (get_args(env, info, 4, argv) < 0) return NULL;
  if (get_fd(env, argv[0], "olddirfd", &olddirfd) < 0 ||
      get_name(env, argv[1], "oldname", &oldname) < 0 ||
      get_fd(env, argv[2], "newdirfd", &newdirfd) < 0 ||
      get_name(env, argv[3], "newname", &newname) < 0)
    goto out;
  if (linkat(olddirfd, oldname, newdirfd, newname, 0) != 0) throw_errno(env, errno, "linkat", newname);
out:
  free(oldname);
  free(newname);
  return NULL;
}

/* unlinkat(dirfd, name, flags): flags 0 or AT_REMOVEDIR */
static napi_value js_unlinkat(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char *name = NULL;
  int dirfd = -1;
  int64_t flags = 0;
  if (get_args(env, info, 3, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0 ||
      get_int(env, argv[2], "flags", 0, INT32_MAX, 0, &flags) < 0)
    goto out;
  if (unlinkat(dirfd, name, (int)flags) != 0) throw_errno(env, errno, "unlinkat", name);
out:
  free(name);
  return NULL;
}

/* mknodat(dirfd, name, mode, major, minor) */
static napi_value js_mknodat(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char *name = NULL;
  int dirfd = -1;
  int64_t mode = 0, major_ = 0, minor_ = 0;
  if (get_args(env, info, 5, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0 ||
      get_int(env, argv[2], "mode", 0, 0177777, 0, &mode) < 0 ||
      get_int(env, argv[3], "major", 0, 0xfff, 0, &major_) < 0 ||
      get_int(env, argv[4], "minor", 0, 0xfffff, 0, &minor_) < 0)
    goto out;
  if (mknodat(dirfd, name, (mode_t)mode, makedev((unsigned)major_, (unsigned)minor_)) != 0)
    throw_errno(env, errno, "mknodat", name);
out:
  free(name);
  return NULL;
}

/* fchownat(dirfd, name, uid, gid): never follows a symlink at name */
static napi_value js_lchownat(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char *name = NULL;
  int dirfd = -1;
  int64_t uid = 0, gid = 0;
  if (get_args(env, info, 4, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0 ||
      get_int(env, argv[2], "uid", 0, UINT32_MAX - 1, 0, &uid) < 0 ||
      get_int(env, argv[3], "gid", 0, UINT32_MAX - 1, 0, &gid) < 0)
    goto out;
  if (fchownat(dirfd, name, (uid_t)uid, (gid_t)gid, AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno(env, errno, "fchownat", name);
out:
  free(name);
  return NULL;
}

/* utimensat(dirfd, name, atimeSec, atimeNsec, mtimeSec, mtimeNsec): never follows a symlink at name */
static napi_value js_lutimensat(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  char *name = NULL;
  int dirfd = -1;
  int64_t asec = 0, msec = 0;
  struct timespec ts[2];
  memset(ts, 0, sizeof ts);
  if (get_args(env, info, 6, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0 ||
      get_int(env, argv[2], "atimeSec", INT64_MIN, INT64_MAX, 1, &asec) < 0 ||
      get_nsec(env, argv[3], "atimeNsec", &ts[0].tv_nsec) < 0 ||
      get_int(env, argv[4], "mtimeSec", INT64_MIN, INT64_MAX, 1, &msec) < 0 ||
      get_nsec(env, argv[5], "mtimeNsec", &ts[1].tv_nsec) < 0)
    goto out;
  ts[0].tv_sec = (time_t)asec;
  ts[1].tv_sec = (time_t)msec;
  if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) != 0) throw_errno(env, errno, "utimensat", name);
out:
  free(name);
  return NULL;
}

/* lstatat(dirfd, name): the st_mode of name (not followed), or null when it does not exist */
static napi_value js_lstatat(napi_env env, napi_callback_info info) {
  napi_value argv[2], result = NULL;
  char *name = NULL;
  int dirfd = -1;
  if (get_args(env, info, 2, argv) < 0) return NULL;
  if (get_at(env, argv, &dirfd, &name) < 0)
    goto out;
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) NAPI_OK(napi_get_null(env, &result));
    else throw_errno(env, errno, "fstatat", name);
    goto out;
  }
  NAPI_OK(napi_create_uint32(env, (uint32_t)st.st_mode, &result));
out:
fail:
  free(name);
  return result;
}

/* ------------------------------------------------------------------------ */
/* module                                                                   */
/* ------------------------------------------------------------------------ */

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct constant {
  const char *name;
  int64_t value;
};

#define C(x) {#x, (int64_t)(x)}
static const struct constant constants[] = {
    C(MS_RDONLY),     C(MS_NOSUID),     C(MS_NODEV),      C(MS_NOEXEC),
    C(MS_SYNCHRONOUS), C(MS_REMOUNT),   C(MS_MANDLOCK),   C(MS_DIRSYNC),
    C(MS_NOSYMFOLLOW), C(MS_NOATIME),   C(MS_NODIRATIME), C(MS_BIND),
    C(MS_MOVE),       C(MS_REC),        C(MS_SILENT),     C(MS_UNBINDABLE),
    C(MS_PRIVATE),    C(MS_SLAVE),      C(MS_SHARED),     C(MS_RELATIME),
    C(MS_STRICTATIME), C(MS_LAZYTIME),
    C(MNT_FORCE),     C(MNT_DETACH),    C(MNT_EXPIRE),    C(UMOUNT_NOFOLLOW),
    C(S_IFMT),        C(S_IFSOCK),      C(S_IFLNK),       C(S_IFREG),
    C(S_IFBLK),       C(S_IFDIR),       C(S_IFCHR),       C(S_IFIFO),
    C(XATTR_CREATE),  C(XATTR_REPLACE),
    C(CLONE_NEWNS),   C(CLONE_NEWCGROUP), C(CLONE_NEWUTS), C(CLONE_NEWIPC),
    C(CLONE_NEWUSER), C(CLONE_NEWPID),  C(CLONE_NEWNET),  C(CLONE_NEWTIME),
    C(UTIME_NOW),     C(UTIME_OMIT),
    C(RESOLVE_BENEATH), C(RESOLVE_NO_SYMLINKS), C(RESOLVE_NO_MAGICLINKS), C(RESOLVE_NO_XDEV),
    C(O_PATH),        C(AT_REMOVEDIR),
};
#undef C

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {
      {"mount", js_mount},
      {"umount2", js_umount2},
      {"mknod", js_mknod},
      {"lgetxattr", js_lgetxattr},
      {"lsetxattr", js_lsetxattr},
      {"llistxattr", js_llistxattr},
      {"lremovexattr", js_lremovexattr},
      {"setns", js_setns},
      {"unshare", js_unshare},
      {"lutimesNs", js_lutimes_ns},
      {"futimesNs", js_futimes_ns},
      {"seekData", js_seek_data},
      {"seekHole", js_seek_hole},
      {"mallocTune", js_malloc_tune},
      {"memPrefault", js_mem_prefault},
      {"memRelease", js_mem_release},
      {"setPipeSize", js_set_pipe_size},
      {"allocate", js_allocate},
      {"bpfDeviceProgLoad", js_bpf_device_prog_load},
      {"bpfDeviceProgQuery", js_bpf_device_prog_query},
      {"bpfDeviceProgAttach", js_bpf_device_prog_attach},
      {"bpfDeviceProgDetach", js_bpf_device_prog_detach},
      {"bpfProgFdById", js_bpf_prog_fd_by_id},
      {"bpfProgId", js_bpf_prog_id},
      {"openat2", js_openat2},
      {"mkdirat", js_mkdirat},
      {"symlinkat", js_symlinkat},
      {"linkat", js_linkat},
      {"unlinkat", js_unlinkat},
      {"mknodat", js_mknodat},
      {"lchownat", js_lchownat},
      {"lutimensat", js_lutimensat},
      {"lstatat", js_lstatat},
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    NAPI_OK(napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb,
                                 NULL, &fn));
    NAPI_OK(napi_set_named_property(env, exports, fns[i].name, fn));
  }
  napi_value consts;
  NAPI_OK(napi_create_object(env, &consts));
  for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++) {
    napi_value v;
    NAPI_OK(napi_create_int64(env, constants[i].value, &v));
    NAPI_OK(napi_set_named_property(env, consts, constants[i].name, v));
  }
  NAPI_OK(napi_object_freeze(env, consts));
  NAPI_OK(napi_set_named_property(env, exports, "constants", consts));
  return exports;
fail:
  return NULL;
}
