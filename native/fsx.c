/*
 * winsnap's only native code: file-system calls Node.js 20 does not expose, nothing else.
 *
 *   dataExtents(fd, size) -> Float64Array [start0, end0, start1, end1, ...]
 *     The byte ranges of [0, size) that may hold data, found with lseek(SEEK_DATA/SEEK_HOLE)
 *     (lseek(2); Linux >= 3.1, FreeBSD, macOS, Solaris). Holes are never read, as qemu-img does.
 *     A file system without the support reports the whole file as data (lseek's documented
 *     fallback), so the result is always safe to use.
 *
 * Pure Node-API (js_native_api.h / node_api.h, ABI-stable), built by scripts/build.mjs with the
 * system C compiler; src/services/fsutil/native.ts loads it and falls back to "all data" when
 * it was not built.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include <node_api.h>

#if !defined(SEEK_DATA) || !defined(SEEK_HOLE)
#define WINSNAP_NO_SEEK_DATA 1
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, err == EBADF ? "EBADF" : "EIO", msg);
  return NULL;
}

/* Ranges are collected in a growing buffer; most files have few extents. */
typedef struct {
  double *v;
  size_t n, cap;
} ranges_t;

static int push(ranges_t *r, double a, double b) {
  if (r->n + 2 > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    double *v = realloc(r->v, cap * sizeof(double));
    if (!v) return -1;
    r->v = v;
    r->cap = cap;
  }
  /* merge with the previous range when they touch */
  if (r->n >= 2 && r->v[r->n - 1] == a) {
    r->v[r->n - 1] = b;
    return 0;
  }
  r->v[r->n++] = a;
  r->v[r->n++] = b;
  return 0;
}

static napi_value data_extents(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "dataExtents(fd, size)");
    return NULL;
  }
  int32_t fd;
  int64_t size;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &size) != napi_ok || size < 0) {
    napi_throw_type_error(env, NULL, "dataExtents(fd, size): fd and size must be numbers");
    return NULL;
  }
  ranges_t r = {0};
#ifdef WINSNAP_NO_SEEK_DATA
  if (size > 0 && push(&r, 0, (double)size) < 0) goto nomem;
#else
  off_t pos = 0;
  while (pos < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break; /* only a hole from pos to the end */
      if (errno == EINVAL || errno == EOPNOTSUPP) { /* no support: all of the rest is data */
        if (push(&r, (double)pos, (double)size) < 0) goto nomem;
        break;
      }
      free(r.v);
      return throw_errno(env, "lseek(SEEK_DATA)", errno);
    }
    if (data >= size) break;
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) {
      free(r.v);
      return throw_errno(env, "lseek(SEEK_HOLE)", errno);
    }
    if (hole > size) hole = size;
    if (push(&r, (double)data, (double)hole) < 0) goto nomem;
    pos = hole;
  }
#endif
  napi_value ab, arr;
  void *dst;
  if (napi_create_arraybuffer(env, r.n * sizeof(double), &dst, &ab) != napi_ok) goto nomem;
  if (r.n) memcpy(dst, r.v, r.n * sizeof(double));
  free(r.v);
  if (napi_create_typedarray(env, napi_float64_array, r.n, ab, 0, &arr) != napi_ok) return NULL;
  return arr;
nomem:
  free(r.v);
  napi_throw_error(env, "ENOMEM", "dataExtents: out of memory");
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "dataExtents", NAPI_AUTO_LENGTH, data_extents, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "dataExtents", fn) != napi_ok) return NULL;
  return exports;
}
