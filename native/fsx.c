/*
 * winsnap's only native code: file-system and memory-mapping calls Node.js 20 does not expose,
 * nothing else.
 *
 *   dataExtents(fd, size) -> Float64Array [start0, end0, start1, end1, ...]
 *     The byte ranges of [0, size) that may hold data, found with lseek(SEEK_DATA/SEEK_HOLE)
 *     (lseek(2); Linux >= 3.1, FreeBSD, macOS, Solaris). Holes are never read, as qemu-img does.
 *     A file system without the support reports the whole file as data (lseek's documented
 *     fallback), so the result is always safe to use.
 *
 *   mapShared(fd, length) -> ArrayBuffer
 *     A shared, writable mapping of the first `length` bytes of the open file `fd` (mmap(2),
 *     MAP_SHARED; the file must be at least that long). On Linux the file's blocks are
 *     allocated first (fallocate(2), where the file system supports it), so that a full disk
 *     is an ENOSPC error here rather than a SIGBUS when a page is first written. Writes land in the file's page cache,
 *     and the kernel writes them back to the file and evicts them as it needs memory. The
 *     mapping lives as long as the ArrayBuffer (munmap when it is collected). Used by
 *     src/services/fsutil/spill.ts for tables too large to keep in memory.
 *
 *   dropResident(arrayBuffer)
 *     madvise(MADV_DONTNEED) over a mapping made by mapShared: its pages leave the process's
 *     resident set (dirty ones stay dirty in the page cache, so no data is lost) and are mapped
 *     again from the page cache when next touched. Refuses any other ArrayBuffer (on private
 *     memory, MADV_DONTNEED would zero it).
 *
 *   mapRead(fd, offset, length) -> ArrayBuffer
 *     A read-only shared mapping of `length` bytes of `fd` from the page-aligned `offset`,
 *     populated at once (MAP_POPULATE): the bytes of a file in the page cache without copying
 *     them, for code that only looks at them and writes them elsewhere (raw -> VHDX). The file
 *     must not shrink while mapped (a page past its new end is a SIGBUS).
 *
 *   unmap(arrayBuffer)
 *     Detaches an ArrayBuffer from mapRead (its views then have length 0) and munmaps it now
 *     rather than when it is collected; a second call does nothing.
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
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>
#include <node_api.h>

#if !defined(SEEK_DATA) || !defined(SEEK_HOLE)
#define WINSNAP_NO_SEEK_DATA 1
#endif

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *code = err == EBADF ? "EBADF" : err == ENOSPC ? "ENOSPC" : err == ENOMEM ? "ENOMEM" : err == EACCES ? "EACCES" : "EIO";
  napi_throw_error(env, code, msg);
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

#ifndef MAP_POPULATE
#define MAP_POPULATE 0 /* not Linux: pages are mapped as they are touched */
#endif

/* Tags the ArrayBuffers mapShared and mapRead make, so that dropResident touches nothing else. */
static const napi_type_tag MAPPING_TAG = {0x77696e736e61702dULL, 0x6d61707368617265ULL};

typedef struct {
  void *addr;
  size_t len;
} mapping_t;

static void unmap_finalize(napi_env env, void *data, void *hint) {
  mapping_t *m = hint;
  if (m->addr) munmap(m->addr, m->len);
  free(m);
}

/*
 * mmap of `len` bytes of `fd` from `offset` as an external ArrayBuffer, tagged MAPPING_TAG and
 * munmapped when collected; `unmappable`: also wrapped with its mapping_t, for unmap().
 */
static napi_value new_mapping(napi_env env, int fd, off_t offset, size_t len, int prot, int flags, bool unmappable) {
  mapping_t *m = malloc(sizeof *m);
  if (!m) {
    napi_throw_error(env, "ENOMEM", "mmap: out of memory");
    return NULL;
  }
  m->len = len;
  m->addr = mmap(NULL, len, prot, flags, fd, offset);
  if (m->addr == MAP_FAILED) {
    int err = errno;
    free(m);
    return throw_errno(env, "mmap", err);
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, m->addr, len, unmap_finalize, m, &ab) != napi_ok) {
    munmap(m->addr, len);
    free(m);
    return NULL;
  }
  if (napi_type_tag_object(env, ab, &MAPPING_TAG) != napi_ok) return NULL;
  if (unmappable && napi_wrap(env, ab, m, NULL, NULL, NULL) != napi_ok) return NULL;
  return ab;
}

static napi_value map_shared(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  int64_t length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &length) != napi_ok ||
      length <= 0) {
    napi_throw_type_error(env, NULL, "mapShared(fd, length): fd and a positive length");
    return NULL;
  }
#ifdef __linux__
  if (fallocate(fd, 0, 0, (off_t)length) != 0 && errno != EOPNOTSUPP && errno != ENOSYS) return throw_errno(env, "fallocate", errno);
#endif
  return new_mapping(env, fd, 0, (size_t)length, PROT_READ | PROT_WRITE, MAP_SHARED, false);
}

static napi_value map_read(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &offset) != napi_ok ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || length <= 0 || offset < 0 || offset % sysconf(_SC_PAGESIZE) != 0) {
    napi_throw_type_error(env, NULL, "mapRead(fd, offset, length): a page-aligned offset and a positive length");
    return NULL;
  }
  return new_mapping(env, fd, (off_t)offset, (size_t)length, PROT_READ, MAP_SHARED | MAP_POPULATE, true);
}

static napi_value unmap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool ours = false;
  mapping_t *m = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_check_object_type_tag(env, argv[0], &MAPPING_TAG, &ours) != napi_ok || !ours ||
      napi_unwrap(env, argv[0], (void **)&m) != napi_ok || !m) {
    napi_throw_type_error(env, NULL, "unmap(buffer): buffer must come from mapRead");
    return NULL;
  }
  if (!m->addr) return NULL; /* unmapped already */
  void *addr = m->addr;
  size_t len = m->len;
  m->addr = NULL; /* the finalizer (which frees m, maybe during the detach) must not unmap again */
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) return NULL;
  if (munmap(addr, len) != 0) return throw_errno(env, "munmap", errno);
  return NULL;
}

static napi_value drop_resident(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  bool ours = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_check_object_type_tag(env, argv[0], &MAPPING_TAG, &ours) != napi_ok || !ours) {
    napi_throw_type_error(env, NULL, "dropResident(buffer): buffer must come from mapShared");
    return NULL;
  }
  void *data;
  size_t len;
  if (napi_get_arraybuffer_info(env, argv[0], &data, &len) != napi_ok) return NULL;
  if (len > 0 && madvise(data, len, MADV_DONTNEED) != 0) return throw_errno(env, "madvise", errno);
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"dataExtents", data_extents}, {"mapShared", map_shared}, {"dropResident", drop_resident}, {"mapRead", map_read}, {"unmap", unmap}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  return exports;
}
