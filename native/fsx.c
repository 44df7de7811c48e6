/*
 * winsnap's only native code: file-system and memory-mapping calls Node.js 20 does not expose,
 * reads that checksum what they read on the thread pool, dm-verity's per-block SHA-256 loop,
 * the tar header block's checksum and octal fields and the common ext4 inode, nothing else;
 * each with a JavaScript equivalent that tests compare it with.
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
 *   readChecksum(fd, buffer, position, which, out, callback(err, bytesRead))
 *     On the libuv thread pool: reads buffer.length bytes of `fd` at `position` into `buffer`
 *     (pread(2) until full or end of file; fd -1: no read, the whole buffer is checksummed), then
 *     computes the standard CRC-32 (IEEE 802.3, reflected 0x04C11DB7, as zlib) when `which & 1`
 *     and CRC-32C (Castagnoli, reflected 0x1EDC6F41) when `which & 2` of the bytes read, each
 *     from the initial state (combine per-chunk values in order: formats/checksum.ts), into the
 *     Uint32Array `out` ([0] CRC-32, [1] CRC-32C). The buffer must not be touched until the
 *     callback. Only where the CPU carries carry-less multiplication (x86-64 PCLMULQDQ):
 *     `checksumSpeed` is then "pclmul", or "vpclmul" with 512-bit VPCLMULQDQ; elsewhere the
 *     function is absent and callers checksum on the main thread. The CRCs fold 16-byte lanes with carry-less products by x^k mod P
 *     (constants computed at load from the polynomial), then finish with the byte-wise table
 *     loop: the method of Gopal et al., "Fast CRC Computation for Generic Polynomials Using
 *     PCLMULQDQ Instruction" (Intel, 2009), without its Barrett step.
 *
 *   crc(which, buffer, previous) -> number
 *     The same CRCs on the calling thread, for small buffers (VHDX headers and region tables):
 *     CRC-32 (which 1) or CRC-32C (which 2) of `buffer`, continuing from the CRC `previous` of
 *     the bytes before it (0 to start), as zlib's crc32(). Present with readChecksum.
 *
 *   setPipeSize(fd, bytes) -> number
 *     fcntl(F_SETPIPE_SZ): asks for a pipe buffer of `bytes` (Linux; unprivileged up to
 *     /proc/sys/fs/pipe-max-size, 1 MiB by default); the size the pipe now has, or -1 (also
 *     for a descriptor in non-blocking mode, which blocking reads would see fail with EAGAIN).
 *     A pipe is then read 1 MiB at a time instead of 64 KiB (convert tar2vhd from stdin).
 *
 *   sha256Blocks(data, salt, out)
 *     Synchronously (the hash worker thread calls it): out[32 i, 32 i + 32) = SHA-256(salt ‖ block
 *     i) for each 4 KiB block of `data` (dm-verity level 0). Where the CPU has the x86 SHA
 *     extensions, two blocks at a time with them (below: 56,000 blocks in 80 against 131 ms);
 *     else with the SHA-256 of the OpenSSL that the Node binary carries and exports for addons
 *     (SHA256_Init/Update/Final, found with dlsym at load; without either the function is
 *     absent). WINSNAP_NO_SHANI=1 in the environment takes the OpenSSL path (tests compare).
 *     The same bytes as node:crypto, without its per-call cost (~1 µs of 3.45 a block).
 *
 *   encodeInodes(columns, special, byIno, at, firstIno, count, piece, used, metaStart, specials, out)
 *     A piece of an ext4 inode table: the common inodes (regular files, directories and symlinks
 *     of one extent or none, FIFOs; no xattrs, inline data or side records) encoded from the ext4 writer's
 *     columns as its JavaScript encoder does, the others listed for it (below). A cold
 *     conversion otherwise ran the per-inode JavaScript unoptimized for most of 30,000 inodes.
 *
 *   dirBlocks(columns, dir, parent, out, origin) -> blocks
 *     A directory's linear ext4 blocks, built from the writer's entry and node columns (below).
 *
 *   metadataNodes(kind, size, xattrSet, inlineAt, special, byIno, out) -> count
 *     Which nodes may append blocks when the ext4 writer finishes (below), so that its loop
 *     visits those only.
 *
 *   allocate(fd, offset, length) -> 0 | errno
 *     fallocate(2) of a range the caller is about to write (below).
 *
 *   tarHeader(block, out) -> 1 | 0
 *     A 512-byte tar header block decoded in one call when its checksum holds and its numeric
 *     fields are octal: the fields into a Float64Array (below); 0 for any other block, which
 *     the JavaScript decoder (formats/tar/header.ts) decodes or refuses with its own error.
 *     ~30,000 headers of a layer, whose loops JavaScript runs unoptimized at first.
 *
 * Pure Node-API (js_native_api.h / node_api.h, ABI-stable), built by scripts/build.mjs with the
 * system C compiler; src/services/fsutil/native.ts loads it and falls back to "all data" when
 * it was not built.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>
#include <pthread.h>
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

/* ---- CRC-32 / CRC-32C on the thread pool ---------------------------------------------- */

/* x86-64 only (carry-less multiplication); elsewhere none of this is built and callers checksum in
 * JavaScript (-DWINSNAP_NO_CLMUL builds that way on x86-64 too) */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(WINSNAP_NO_CLMUL)
#include <immintrin.h>
#define FSX_HAVE_CLMUL 1

typedef struct {
  uint32_t table[256]; /* reflected byte-wise table */
  uint64_t fold4[2];   /* lane multipliers for a fold over 512 bits (four lanes at a time) */
  uint64_t fold1[2];   /* ... over 128 bits (one lane) */
  uint64_t fold2048[2]; /* ... over 2048 bits (four 512-bit accumulators, AVX-512) */
} crc_params_t;

static crc_params_t CRC_IEEE, CRC_CASTAGNOLI;

/* x^n mod P in the normal (not reflected) bit order; P given without its x^32 term */
static uint32_t xpow_mod(unsigned n, uint32_t poly) {
  uint64_t r = 1;
  for (unsigned i = 0; i < n; i++) {
    r <<= 1;
    if (r >> 32) r ^= (1ULL << 32) | poly;
  }
  return (uint32_t)r;
}

static uint64_t bit_reverse(uint64_t v, int bits) {
  uint64_t r = 0;
  for (int i = 0; i < bits; i++)
    if (v >> i & 1) r |= 1ULL << (bits - 1 - i);
  return r;
}

/*
 * In the reflected order a 64-bit lane's bit i is the coefficient of x^(63-i) (the first byte
 * read holds the highest powers), and a carry-less product of two lanes is their polynomial
 * product one bit short of a 128-bit lane pair: it stands for the product times x. To move
 * 128 bits A = H x^64 + L forward by D bits (A x^D mod P, now aligned with the data D bits
 * further on), H is multiplied by x^(D+63) mod P and L by x^(D-1) mod P.
 */
static void crc_params_init(crc_params_t *p, uint32_t poly) {
  uint32_t rev = (uint32_t)bit_reverse(poly, 32);
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ rev : c >> 1;
    p->table[i] = c;
  }
  p->fold4[0] = bit_reverse(xpow_mod(512 + 63, poly), 64);
  p->fold4[1] = bit_reverse(xpow_mod(512 - 1, poly), 64);
  p->fold1[0] = bit_reverse(xpow_mod(128 + 63, poly), 64);
  p->fold1[1] = bit_reverse(xpow_mod(128 - 1, poly), 64);
  p->fold2048[0] = bit_reverse(xpow_mod(2048 + 63, poly), 64);
  p->fold2048[1] = bit_reverse(xpow_mod(2048 - 1, poly), 64);
}

static uint32_t crc_bytes(const crc_params_t *p, uint32_t state, const uint8_t *b, size_t n) {
  while (n--) state = p->table[(state ^ *b++) & 0xff] ^ (state >> 8);
  return state;
}


__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold(__m128i acc, __m128i k, __m128i next) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(acc, k, 0x00), _mm_clmulepi64_si128(acc, k, 0x11)), next);
}

/*
 * The end of a fold: `x` is 128 bits congruent to everything before `b`; the 16-byte lanes
 * left are folded in, and the table loop from a zero register finishes over those 16 bytes
 * and the last n % 16.
 */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_finish(const crc_params_t *p, __m128i x, const uint8_t *b, size_t n) {
  const __m128i k1 = _mm_set_epi64x((long long)p->fold1[1], (long long)p->fold1[0]);
  for (; n >= 16; b += 16, n -= 16) x = fold(x, k1, _mm_loadu_si128((const __m128i *)b));
  uint8_t last[16];
  _mm_storeu_si128((__m128i *)last, x);
  return ~crc_bytes(p, crc_bytes(p, 0, last, 16), b, n);
}

/* the CRC of `n` bytes continuing from the previous CRC value `crc` (0 to start) */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_clmul(const crc_params_t *p, uint32_t crc, const uint8_t *b, size_t n) {
  uint32_t state = ~crc;
  if (n < 64) return ~crc_bytes(p, state, b, n);
  /* the register's start value is the same as XORing it into the first four bytes */
  __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)b), _mm_cvtsi32_si128((int)state));
  __m128i x1 = _mm_loadu_si128((const __m128i *)(b + 16));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(b + 32));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(b + 48));
  b += 64;
  n -= 64;
  const __m128i k4 = _mm_set_epi64x((long long)p->fold4[1], (long long)p->fold4[0]);
  const __m128i k1 = _mm_set_epi64x((long long)p->fold1[1], (long long)p->fold1[0]);
  for (; n >= 64; b += 64, n -= 64) {
    x0 = fold(x0, k4, _mm_loadu_si128((const __m128i *)b));
    x1 = fold(x1, k4, _mm_loadu_si128((const __m128i *)(b + 16)));
    x2 = fold(x2, k4, _mm_loadu_si128((const __m128i *)(b + 32)));
    x3 = fold(x3, k4, _mm_loadu_si128((const __m128i *)(b + 48)));
  }
  return crc_finish(p, fold(fold(fold(x0, k1, x1), k1, x2), k1, x3), b, n);
}

static bool clmul_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

/*
 * The same folding four 128-bit lanes per instruction (VPCLMULQDQ on 512-bit registers, where
 * the CPU has it and AVX-512F): four accumulators of 64 bytes take 256 bytes a turn, each
 * moving 2048 bits; they are then folded into one (512 bits apart), its four lanes into one
 * (128 bits apart), and crc_finish ends as crc_clmul does. 170 MB from memory: 7 against
 * 12.5 ms with crc_clmul here (then bound by memory). WINSNAP_NO_VPCLMUL=1 in the environment
 * keeps crc_clmul (tests compare the two).
 */
#define FOLD512(acc, k, next) \
  _mm512_xor_si512(_mm512_xor_si512(_mm512_clmulepi64_epi128(acc, k, 0x00), _mm512_clmulepi64_epi128(acc, k, 0x11)), next)

__attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1"))) static uint32_t crc_vclmul(const crc_params_t *p, uint32_t crc, const uint8_t *b, size_t n) {
  if (n < 512) return crc_clmul(p, crc, b, n);
  uint32_t state = ~crc;
  const __m512i k2048 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)p->fold2048[1], (long long)p->fold2048[0]));
  const __m512i k512 = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)p->fold4[1], (long long)p->fold4[0]));
  const __m128i k1 = _mm_set_epi64x((long long)p->fold1[1], (long long)p->fold1[0]);
  __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(b), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)state)));
  __m512i x1 = _mm512_loadu_si512(b + 64);
  __m512i x2 = _mm512_loadu_si512(b + 128);
  __m512i x3 = _mm512_loadu_si512(b + 192);
  b += 256;
  n -= 256;
  for (; n >= 256; b += 256, n -= 256) {
    x0 = FOLD512(x0, k2048, _mm512_loadu_si512(b));
    x1 = FOLD512(x1, k2048, _mm512_loadu_si512(b + 64));
    x2 = FOLD512(x2, k2048, _mm512_loadu_si512(b + 128));
    x3 = FOLD512(x3, k2048, _mm512_loadu_si512(b + 192));
  }
  __m512i x = FOLD512(FOLD512(FOLD512(x0, k512, x1), k512, x2), k512, x3);
  for (; n >= 64; b += 64, n -= 64) x = FOLD512(x, k512, _mm512_loadu_si512(b));
  __m128i y = fold(fold(fold(_mm512_extracti32x4_epi32(x, 0), k1, _mm512_extracti32x4_epi32(x, 1)), k1, _mm512_extracti32x4_epi32(x, 2)), k1,
                   _mm512_extracti32x4_epi32(x, 3));
  return crc_finish(p, y, b, n);
}

static bool vclmul_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
}

/* crc_vclmul where the CPU has it, else crc_clmul */
static uint32_t (*crc_fast)(const crc_params_t *, uint32_t, const uint8_t *, size_t) = crc_clmul;

typedef struct {
  napi_async_work work;
  napi_ref buffer, out, callback;
  int fd;
  int64_t position;
  uint8_t *data;
  size_t len, got;
  uint32_t *dest;
  int which, err;
  uint32_t crc[2];
} checksum_job_t;

static void checksum_execute(napi_env env, void *data) {
  checksum_job_t *j = data;
  size_t n = j->len;
  if (j->fd >= 0) {
    n = 0;
    while (n < j->len) {
      ssize_t r = pread(j->fd, j->data + n, j->len - n, (off_t)(j->position + (int64_t)n));
      if (r < 0) {
        if (errno == EINTR) continue;
        j->err = errno;
        return;
      }
      if (r == 0) break;
      n += (size_t)r;
    }
  }
  j->got = n;
  if (j->which & 1) j->crc[0] = crc_fast(&CRC_IEEE, 0, j->data, n);
  if (j->which & 2) j->crc[1] = crc_fast(&CRC_CASTAGNOLI, 0, j->data, n);
}

static void checksum_complete(napi_env env, napi_status status, void *data) {
  checksum_job_t *j = data;
  napi_value cb, argv[2], undef;
  napi_get_undefined(env, &undef);
  if (napi_get_reference_value(env, j->callback, &cb) == napi_ok) {
    if (status != napi_ok || j->err) {
      char msg[160];
      int err = j->err ? j->err : EIO;
      snprintf(msg, sizeof msg, "readChecksum: %s", status != napi_ok ? "cancelled" : strerror(err));
      napi_value code, text;
      napi_create_string_utf8(env, err == EBADF ? "EBADF" : err == EISDIR ? "EISDIR" : "EIO", NAPI_AUTO_LENGTH, &code);
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
      napi_create_error(env, code, text, &argv[0]);
      napi_call_function(env, undef, cb, 1, argv, NULL);
    } else {
      j->dest[0] = j->crc[0];
      j->dest[1] = j->crc[1];
      argv[0] = undef;
      napi_create_double(env, (double)j->got, &argv[1]);
      napi_call_function(env, undef, cb, 2, argv, NULL);
    }
  }
  napi_delete_reference(env, j->buffer);
  napi_delete_reference(env, j->out);
  napi_delete_reference(env, j->callback);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value read_checksum(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int32_t fd, which;
  int64_t position;
  bool isBuffer = false, isTyped = false;
  void *data = NULL, *out = NULL;
  size_t len = 0, outLen = 0;
  napi_typedarray_type outType;
  napi_valuetype cbType;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_is_buffer(env, argv[1], &isBuffer) != napi_ok || !isBuffer ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || napi_get_value_int64(env, argv[2], &position) != napi_ok ||
      position < 0 || napi_get_value_int32(env, argv[3], &which) != napi_ok || napi_is_typedarray(env, argv[4], &isTyped) != napi_ok ||
      !isTyped || napi_get_typedarray_info(env, argv[4], &outType, &outLen, &out, NULL, NULL) != napi_ok ||
      outType != napi_uint32_array || outLen < 2 || napi_typeof(env, argv[5], &cbType) != napi_ok || cbType != napi_function) {
    napi_throw_type_error(env, NULL, "readChecksum(fd, buffer, position, which, out: Uint32Array(2), callback)");
    return NULL;
  }
  checksum_job_t *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "readChecksum: out of memory");
    return NULL;
  }
  j->fd = fd;
  j->position = position;
  j->data = data;
  j->len = len;
  j->dest = out;
  j->which = which;
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &j->buffer) != napi_ok || napi_create_reference(env, argv[4], 1, &j->out) != napi_ok ||
      napi_create_reference(env, argv[5], 1, &j->callback) != napi_ok ||
      napi_create_string_utf8(env, "winsnap:readChecksum", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, checksum_execute, checksum_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_throw_error(env, "EIO", "readChecksum: could not queue the work");
    return NULL; /* the few bytes of a failed job are not worth the bookkeeping to free */
  }
  return NULL;
}

static napi_value crc_sync(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t which;
  uint32_t previous = 0;
  bool isBuffer = false;
  void *data;
  size_t len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &which) != napi_ok ||
      (which != 1 && which != 2) || napi_is_buffer(env, argv[1], &isBuffer) != napi_ok || !isBuffer ||
      napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok || (argc > 2 && napi_get_value_uint32(env, argv[2], &previous) != napi_ok)) {
    napi_throw_type_error(env, NULL, "crc(which: 1 | 2, buffer, previous?)");
    return NULL;
  }
  uint32_t v = crc_fast(which == 1 ? &CRC_IEEE : &CRC_CASTAGNOLI, previous, data, len);
  napi_value out;
  napi_create_uint32(env, v, &out);
  return out;
}

#endif /* FSX_HAVE_CLMUL */

/* ---- SHA-256 of salted 4 KiB blocks (dm-verity level 0) ------------------------------------ */

/* OpenSSL's SHA256_CTX is 112 bytes; the functions only take a pointer to it */
typedef struct {
  _Alignas(16) unsigned char opaque[256];
} sha256_ctx_t;
static int (*sha256_init)(sha256_ctx_t *);
static int (*sha256_update)(sha256_ctx_t *, const void *, size_t);
static int (*sha256_final)(unsigned char *, sha256_ctx_t *);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(WINSNAP_NO_SHANI)
#define FSX_HAVE_SHANI 1
/*
 * SHA-256 (FIPS 180-4) with the x86 SHA extensions, two messages at a time: a 4 KiB block's
 * salted hash is one chain of 65 compressions, and sha256rnds2 waits on its previous result,
 * so two independent chains in step keep the unit busy where one leaves it idle between
 * rounds. The round constants and initial hash value are computed at load from their
 * definition (the first 32 bits of the fractional parts of the cube roots of the first 64
 * primes, and of the square roots of the first 8); registers hold the state as ABEF / CDGH,
 * the order sha256rnds2 works in.
 */
static uint32_t SHA256_K[64] __attribute__((aligned(16)));
static uint32_t SHA256_IV[8];

/* floor(x^(1/k)) for k = 2 or 3, of a 128-bit x < 2^108, by bisection */
static uint64_t int_root(unsigned __int128 x, int k) {
  uint64_t lo = 0, hi = (uint64_t)1 << 37;
  while (hi - lo > 1) {
    uint64_t mid = lo + (hi - lo) / 2;
    unsigned __int128 p = (unsigned __int128)mid * mid;
    if (k == 3) p *= mid;
    if (p <= x) lo = mid;
    else hi = mid;
  }
  return lo;
}

static void sha256_constants(void) {
  unsigned found = 0;
  for (uint32_t n = 2; found < 64; n++) {
    bool prime = true;
    for (uint32_t d = 2; d * d <= n; d++)
      if (n % d == 0) prime = false;
    if (!prime) continue;
    SHA256_K[found] = (uint32_t)int_root((unsigned __int128)n << 96, 3); /* low 32 bits: the fraction */
    if (found < 8) SHA256_IV[found] = (uint32_t)int_root((unsigned __int128)n << 64, 2);
    found++;
  }
}

typedef struct {
  __m128i abef, cdgh;
} shani_state_t;

__attribute__((target("sha,sse4.1,ssse3"))) static shani_state_t shani_load(const uint32_t h[8]) {
  __m128i dcba = _mm_loadu_si128((const __m128i *)h);
  __m128i hgfe = _mm_loadu_si128((const __m128i *)(h + 4));
  __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
  __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
  shani_state_t st = {_mm_alignr_epi8(cdab, efgh, 8), _mm_blend_epi16(efgh, cdab, 0xF0)};
  return st;
}

__attribute__((target("sha,sse4.1,ssse3"))) static void shani_store(shani_state_t st, uint8_t out[32]) {
  __m128i feba = _mm_shuffle_epi32(st.abef, 0x1B);
  __m128i dchg = _mm_shuffle_epi32(st.cdgh, 0xB1);
  uint32_t w[8];
  _mm_storeu_si128((__m128i *)w, _mm_blend_epi16(feba, dchg, 0xF0));
  _mm_storeu_si128((__m128i *)(w + 4), _mm_alignr_epi8(dchg, feba, 8));
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (uint8_t)(w[i] >> 24);
    out[4 * i + 1] = (uint8_t)(w[i] >> 16);
    out[4 * i + 2] = (uint8_t)(w[i] >> 8);
    out[4 * i + 3] = (uint8_t)w[i];
  }
}

/* one 64-byte block of each of two messages into their states */
__attribute__((target("sha,sse4.1,ssse3"))) static void shani_compress2(shani_state_t *x, shani_state_t *y, const uint8_t *p, const uint8_t *q) {
  const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
  __m128i a0 = x->abef, a1 = x->cdgh, b0 = y->abef, b1 = y->cdgh;
  __m128i wa[4], wb[4];
  for (int i = 0; i < 4; i++) {
    wa[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
    wb[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(q + 16 * i)), bswap);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; i++) {
    const __m128i k = _mm_load_si128((const __m128i *)&SHA256_K[4 * i]);
    __m128i ma = _mm_add_epi32(wa[i & 3], k), mb = _mm_add_epi32(wb[i & 3], k);
    a1 = _mm_sha256rnds2_epu32(a1, a0, ma);
    b1 = _mm_sha256rnds2_epu32(b1, b0, mb);
    if (i >= 3 && i <= 14) { /* the message schedule: words 4i+4 .. 4i+7 */
      wa[(i + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(wa[(i + 1) & 3], _mm_alignr_epi8(wa[i & 3], wa[(i - 1) & 3], 4)), wa[i & 3]);
      wb[(i + 1) & 3] = _mm_sha256msg2_epu32(_mm_add_epi32(wb[(i + 1) & 3], _mm_alignr_epi8(wb[i & 3], wb[(i - 1) & 3], 4)), wb[i & 3]);
    }
    a0 = _mm_sha256rnds2_epu32(a0, a1, _mm_shuffle_epi32(ma, 0x0E));
    b0 = _mm_sha256rnds2_epu32(b0, b1, _mm_shuffle_epi32(mb, 0x0E));
    if (i >= 1 && i <= 12) {
      wa[(i - 1) & 3] = _mm_sha256msg1_epu32(wa[(i - 1) & 3], wa[i & 3]);
      wb[(i - 1) & 3] = _mm_sha256msg1_epu32(wb[(i - 1) & 3], wb[i & 3]);
    }
  }
  x->abef = _mm_add_epi32(x->abef, a0);
  x->cdgh = _mm_add_epi32(x->cdgh, a1);
  y->abef = _mm_add_epi32(y->abef, b0);
  y->cdgh = _mm_add_epi32(y->cdgh, b1);
}

/*
 * SHA-256(salt ‖ block) of two 4 KiB blocks p and q: the salt's whole 64-byte blocks are
 * compressed once (`prefix`); each message is then rem (the salt's last saltLen % 64 bytes) ‖
 * block ‖ padding, compressed 64 bytes at a time, both in step (their layouts are the same).
 */
__attribute__((target("sha,sse4.1,ssse3"))) static void shani_salted_pair(shani_state_t prefix, const uint8_t *rem, size_t r, uint64_t totalBits,
                                                                            const uint8_t *p, const uint8_t *q, uint8_t *outP, uint8_t *outQ) {
  shani_state_t x = prefix, y = prefix;
  uint8_t bx[128], by[128];
  size_t off = 0; /* bytes of the block consumed */
  if (r > 0) {
    memcpy(bx, rem, r);
    memcpy(by, rem, r);
    memcpy(bx + r, p, 64 - r);
    memcpy(by + r, q, 64 - r);
    shani_compress2(&x, &y, bx, by);
    off = 64 - r;
  }
  for (; off + 64 <= 4096; off += 64) shani_compress2(&x, &y, p + off, q + off);
  /* the rest of the block, 0x80, zeros, the length in bits (big-endian): one or two blocks */
  size_t left = 4096 - off;
  size_t tail = left + 1 + 8 <= 64 ? 64 : 128;
  memset(bx, 0, tail);
  memset(by, 0, tail);
  memcpy(bx, p + off, left);
  memcpy(by, q + off, left);
  bx[left] = by[left] = 0x80;
  for (int i = 0; i < 8; i++) bx[tail - 1 - i] = by[tail - 1 - i] = (uint8_t)(totalBits >> (8 * i));
  for (size_t at = 0; at < tail; at += 64) shani_compress2(&x, &y, bx + at, by + at);
  shani_store(x, outP);
  shani_store(y, outQ);
}

static bool shani_usable(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sha") && __builtin_cpu_supports("sse4.1") && __builtin_cpu_supports("ssse3") && !getenv("WINSNAP_NO_SHANI");
}
static bool use_shani;

/* the state after the salt's whole 64-byte blocks (two chains of the same data) */
__attribute__((target("sha,sse4.1,ssse3"))) static shani_state_t shani_prefix(const uint8_t *salt, size_t saltLen) {
  shani_state_t x = shani_load(SHA256_IV), y = x;
  for (size_t at = 0; at + 64 <= saltLen; at += 64) shani_compress2(&x, &y, salt + at, salt + at);
  return x;
}
#endif

static napi_value sha256_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *data, *salt, *out;
  size_t len, saltLen, outLen;
  bool b0 = false, b1 = false, b2 = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_is_buffer(env, argv[0], &b0) != napi_ok ||
      napi_is_buffer(env, argv[1], &b1) != napi_ok || napi_is_buffer(env, argv[2], &b2) != napi_ok || !b0 || !b1 || !b2 ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || napi_get_buffer_info(env, argv[1], &salt, &saltLen) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &out, &outLen) != napi_ok || len % 4096 != 0 || outLen < len / 4096 * 32) {
    napi_throw_type_error(env, NULL, "sha256Blocks(data: 4 KiB blocks, salt, out: 32 bytes a block)");
    return NULL;
  }
  size_t blocks = len / 4096, i = 0;
#ifdef FSX_HAVE_SHANI
  if (use_shani) {
    shani_state_t prefix = shani_prefix(salt, saltLen);
    const uint8_t *rem = (const uint8_t *)salt + saltLen - saltLen % 64;
    uint64_t bits = ((uint64_t)saltLen + 4096) * 8;
    for (; i + 2 <= blocks; i += 2)
      shani_salted_pair(prefix, rem, saltLen % 64, bits, (const uint8_t *)data + i * 4096, (const uint8_t *)data + (i + 1) * 4096,
                        (uint8_t *)out + i * 32, (uint8_t *)out + (i + 1) * 32);
    if (i < blocks) { /* an odd last block: paired with itself */
      uint8_t spare[32];
      shani_salted_pair(prefix, rem, saltLen % 64, bits, (const uint8_t *)data + i * 4096, (const uint8_t *)data + i * 4096, (uint8_t *)out + i * 32, spare);
      i++;
    }
    return NULL;
  }
#endif
  sha256_ctx_t salted, ctx;
  sha256_init(&salted);
  sha256_update(&salted, salt, saltLen);
  for (; i < blocks; i++) {
    ctx = salted;
    sha256_update(&ctx, (const unsigned char *)data + i * 4096, 4096);
    sha256_final((unsigned char *)out + i * 32, &ctx);
  }
  return NULL;
}

/*
 * allocate(fd, offset, length) -> 0 | errno
 *   fallocate(2) of [offset, offset + length) just before the caller writes it (the file grows
 *   as the write would make it): a write into allocated blocks skips ext4's delayed-allocation
 *   bookkeeping per page (230 MB in 1 MiB writes: 39-48 against 26-32 ms here). Only what is
 *   written is allocated, so sparse outputs stay sparse. The error number, never a throw:
 *   EOPNOTSUPP and the like only mean the write does the allocating; ENOSPC is the write's
 *   error to report.
 */
static napi_value allocate_range(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t offset, length;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok || napi_get_value_int64(env, argv[2], &length) != napi_ok || offset < 0 || length <= 0) {
    napi_throw_type_error(env, NULL, "allocate(fd, offset, length): a non-negative offset and a positive length");
    return NULL;
  }
  int err = 0;
#ifdef __linux__
  if (fallocate(fd, 0, (off_t)offset, (off_t)length) != 0) err = errno;
#else
  err = ENOSYS;
#endif
  napi_value r;
  napi_create_int32(env, err, &r);
  return r;
}

static napi_value set_pipe_size(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd, size;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &size) != napi_ok || size <= 0) {
    napi_throw_type_error(env, NULL, "setPipeSize(fd, bytes > 0)");
    return NULL;
  }
  int got = -1;
#ifdef F_SETPIPE_SZ
  /* a non-blocking pipe would fail blocking reads with EAGAIN: callers stream it instead */
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && !(flags & O_NONBLOCK)) got = fcntl(fd, F_SETPIPE_SZ, size);
#endif
  napi_create_int32(env, got < 0 ? -1 : got, &out);
  return out;
}

/*
 * What the CPU and the process offer, found and computed once per process: the module is
 * initialized again in every worker thread that loads it (the hash worker does), while the
 * thread pool may be using the CRC tables.
 */
/* ---- tar header blocks (formats/tar/header.ts decodeHeader's common case) ------------------- */

/* The length of the NUL-terminated (or full-width) field at b[off, off + len). */
static double field_len(const unsigned char *b, int off, int len) {
  const unsigned char *nul = memchr(b + off, 0, (size_t)len);
  return nul ? (double)(nul - (b + off)) : len;
}

/*
 * The octal number at b[off, off + len): spaces and NULs around the digits, nothing but
 * digits between them (an empty field is 0). False for anything else, base-256 included.
 */
static bool octal_field(const unsigned char *b, int off, int len, double *out) {
  if (b[off] & 0x80) return false;
  int s = off, e = off + len;
  while (s < e && (b[s] == 0x20 || b[s] == 0)) s++;
  while (e > s && (b[e - 1] == 0x20 || b[e - 1] == 0)) e--;
  uint64_t v = 0;
  for (int i = s; i < e; i++) {
    unsigned c = (unsigned)b[i] - 0x30;
    if (c > 7) return false;
    v = v * 8 + c;
  }
  *out = (double)v; /* at most 12 digits: < 2^36, exact */
  return true;
}

/*
 * tarHeader(block, out) -> 1 | 0
 *   Decodes a 512-byte tar header block whose checksum holds (unsigned sum, or the signed sum
 *   historic writers used) and whose numeric fields are all octal, into the Float64Array
 *   `out`: [typeflag, mode, uid, gid, size, mtime, devmajor, devminor, magic (0 v7, 1 ustar,
 *   2 GNU), name, prefix, linkname, uname and gname lengths]. 0 for anything else (a malformed
 *   or base-256 field, a bad checksum), left to the JavaScript decoder, which explains it.
 */
static napi_value tar_header(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *data, *outData;
  size_t len, outLen;
  napi_typedarray_type type;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_buffer_info(env, argv[0], &data, &len) != napi_ok || len < 512 ||
      napi_get_typedarray_info(env, argv[1], &type, &outLen, &outData, NULL, NULL) != napi_ok || type != napi_float64_array || outLen < 14) {
    napi_throw_type_error(env, NULL, "tarHeader(block of 512 bytes, Float64Array(14))");
    return NULL;
  }
  const unsigned char *b = data;
  double *o = outData;
  int32_t ok = 0;
  /* the checksum field: octal digits, spaces and NULs before them, ended by a space or NUL */
  uint32_t stored = 0;
  int digits = 0;
  bool bad = false;
  for (int i = 148; i < 156; i++) {
    unsigned char c = b[i];
    if (c == 0 || c == 0x20) {
      if (digits > 0) break;
      continue;
    }
    if (c < 0x30 || c > 0x37) {
      bad = true;
      break;
    }
    stored = stored * 8 + (c - 0x30);
    digits++;
  }
  if (!bad && digits > 0) {
    /* the unsigned sum 8 bytes at a time in four 16-bit lanes (64 words of at most 2 * 255 a
       lane: no carry between lanes; GCC 12 -O2 does not vectorize the byte loop, 234 against
       33 ns), then the checksum field taken out and counted as spaces; the signed sum only
       when the unsigned one does not match */
    uint64_t acc = 0;
    for (int i = 0; i < 512; i += 8) {
      uint64_t x;
      memcpy(&x, b + i, 8);
      acc += (x & 0x00ff00ff00ff00ffULL) + ((x >> 8) & 0x00ff00ff00ff00ffULL);
    }
    uint32_t u = (uint32_t)((acc & 0xffff) + ((acc >> 16) & 0xffff) + ((acc >> 32) & 0xffff) + (acc >> 48)) + 8 * 0x20;
    for (int i = 148; i < 156; i++) u -= b[i];
    bool matches = stored == u;
    if (!matches) {
      int32_t sgn = 8 * 0x20;
      for (int i = 0; i < 148; i++) sgn += (signed char)b[i];
      for (int i = 156; i < 512; i++) sgn += (signed char)b[i];
      matches = (int32_t)stored == sgn;
    }
    if (matches) {
      int magic = 0;
      if (b[257] == 'u' && b[258] == 's' && b[259] == 't' && b[260] == 'a' && b[261] == 'r') {
        if (b[262] == 0) magic = 1;
        else if (b[262] == 0x20 && b[263] == 0x20 && b[264] == 0) magic = 2;
      }
      o[0] = b[156];
      o[6] = o[7] = 0;
      if (octal_field(b, 124, 12, &o[4]) && octal_field(b, 136, 12, &o[5]) && octal_field(b, 100, 8, &o[1]) && octal_field(b, 108, 8, &o[2]) &&
          octal_field(b, 116, 8, &o[3]) && (magic == 0 || (octal_field(b, 329, 8, &o[6]) && octal_field(b, 337, 8, &o[7])))) {
        o[8] = magic;
        o[9] = field_len(b, 0, 100);
        o[10] = magic == 1 ? field_len(b, 345, 155) : 0;
        o[11] = field_len(b, 157, 100);
        o[12] = magic != 0 ? field_len(b, 265, 32) : 0;
        o[13] = magic != 0 ? field_len(b, 297, 32) : 0;
        ok = 1;
      }
    }
  }
  napi_value r;
  napi_create_int32(env, ok, &r);
  return r;
}

/* ---- ext4 inode tables (formats/ext4/writer.ts encodeInode's common inode) ------------------- */

static void put16(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

/* an ext4 timestamp as writer.ts writeTime: low 32 bits of the seconds, (nsec << 2 | epoch) */
static void put_time(unsigned char *in, double sec, uint32_t nsec, int at, int extraAt) {
  const double min = -2147483648.0, max = 17179869184.0 + 2147483647.0;
  if (sec < min) sec = min, nsec = 0;
  if (sec > max) sec = max, nsec = 999999999;
  int64_t s = (int64_t)sec;
  int32_t lo = (int32_t)(uint32_t)((uint64_t)s & 0xffffffffu);
  uint32_t epoch = (uint32_t)((s - lo) >> 32) & 3;
  put32(in + at, (uint32_t)lo);
  put32(in + extraAt, (nsec << 2) | epoch);
}

enum { C_KIND, C_PERM, C_UID, C_GID, C_MSEC, C_MNSEC, C_ASEC, C_ANSEC, C_CSEC, C_CNSEC, C_SIZE, C_FLOG, C_FLEN, C_FPHYS, C_XSET, C_INLINE, C_XBLOCK, C_INO, C_LINKS, C_TARGETAT, C_TARGETS, C_COUNT };
static const napi_typedarray_type COLUMN_TYPES[C_COUNT] = {
    napi_uint8_array,  napi_uint16_array,  napi_uint32_array, napi_uint32_array, napi_float64_array, napi_uint32_array, napi_float64_array,
    napi_uint32_array, napi_float64_array, napi_uint32_array, napi_float64_array, napi_uint32_array, napi_uint16_array, napi_uint32_array,
    napi_uint32_array, napi_uint32_array, napi_uint32_array, napi_uint32_array, napi_uint32_array, napi_uint32_array, napi_uint8_array};

static bool typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type type;
  bool is = false;
  return napi_is_typedarray(env, v, &is) == napi_ok && is && napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) == napi_ok && type == want;
}

/* `array` is a JS array of exactly `n` typed arrays of the given types: their data and lengths */
static bool typed_columns(napi_env env, napi_value array, uint32_t n, const napi_typedarray_type *types, void **col, size_t *len) {
  bool isArray = false;
  uint32_t count = 0;
  if (napi_is_array(env, array, &isArray) != napi_ok || !isArray || napi_get_array_length(env, array, &count) != napi_ok || count != n) return false;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, array, i, &v) != napi_ok || !typed(env, v, types[i], &col[i], &len[i])) return false;
  }
  return true;
}

/*
 * encodeInodes(columns, special, byIno, at, firstIno, count, piece, used, metaStart, specials, out)
 *   One piece of an inode table: for the nodes byIno[at], byIno[at + 1], ... whose inode numbers
 *   are below firstIno + count, the 256-byte inodes of the common kinds (regular files and
 *   directories of at most one extent, FIFOs; no xattrs, no inline data, nothing in the
 *   writer's side records: `special` 0) into the zeroed `piece` at (ino - firstIno) * 256, as
 *   encodeInode writes them, and their data blocks below metaStart into the `used` bitmap.
 *   Every other node's position in byIno goes to `specials` for the JavaScript encoder. out =
 *   [the next at, directories encoded, specials listed].
 */
static napi_value encode_inodes(napi_env env, napi_callback_info info) {
  size_t argc = 11;
  napi_value argv[11];
  void *col[C_COUNT];
  size_t collen[C_COUNT];
  unsigned char *special, *piece, *used;
  uint32_t *byIno;
  int32_t *specials;
  double *out;
  size_t specialLen, byInoLen, pieceLen, usedLen, specialsLen, outLen;
  int64_t at, firstIno, count, metaStart;
  const char *usage = "encodeInodes(columns, special, byIno, at, firstIno, count, piece, used, metaStart, specials, out)";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 11 || !typed_columns(env, argv[0], C_COUNT, COLUMN_TYPES, col, collen)) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  size_t rows = SIZE_MAX;
  for (uint32_t i = 0; i < C_COUNT; i++)
    if (i != C_TARGETS && collen[i] < rows) rows = collen[i];
  if (!typed(env, argv[1], napi_uint8_array, (void **)&special, &specialLen) || !typed(env, argv[2], napi_uint32_array, (void **)&byIno, &byInoLen) ||
      napi_get_value_int64(env, argv[3], &at) != napi_ok || napi_get_value_int64(env, argv[4], &firstIno) != napi_ok ||
      napi_get_value_int64(env, argv[5], &count) != napi_ok || !typed(env, argv[6], napi_uint8_array, (void **)&piece, &pieceLen) ||
      !typed(env, argv[7], napi_uint8_array, (void **)&used, &usedLen) || napi_get_value_int64(env, argv[8], &metaStart) != napi_ok ||
      !typed(env, argv[9], napi_int32_array, (void **)&specials, &specialsLen) || !typed(env, argv[10], napi_float64_array, (void **)&out, &outLen) ||
      outLen < 3 || at < 0 || count < 0 || firstIno < 1 || (size_t)count * 256 > pieceLen || specialsLen < (size_t)count) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  const uint8_t *kind = col[C_KIND];
  const uint16_t *perm = col[C_PERM], *flen = col[C_FLEN];
  const uint32_t *uid = col[C_UID], *gid = col[C_GID], *mnsec = col[C_MNSEC], *ansec = col[C_ANSEC], *cnsec = col[C_CNSEC], *flog = col[C_FLOG],
                 *fphys = col[C_FPHYS], *xset = col[C_XSET], *inl = col[C_INLINE], *xblock = col[C_XBLOCK], *ino = col[C_INO], *links = col[C_LINKS],
                 *targetAt = col[C_TARGETAT];
  const unsigned char *targets = col[C_TARGETS];
  size_t targetsLen = collen[C_TARGETS];
  const double *msec = col[C_MSEC], *asec = col[C_ASEC], *csec = col[C_CSEC], *size = col[C_SIZE];
  static const uint32_t FILE_FORMAT[6] = {0100000, 0040000, 0120000, 0020000, 0060000, 0010000};
  size_t ns = 0;
  double dirs = 0;
  for (; (size_t)at < byInoLen; at++) {
    uint32_t n = byIno[at];
    if (n >= rows || n >= specialLen) {
      napi_throw_range_error(env, NULL, "encodeInodes: a node past the columns");
      return NULL;
    }
    if (ino[n] >= firstIno + count) break;
    if (ino[n] < firstIno) {
      napi_throw_range_error(env, NULL, "encodeInodes: inode numbers out of order");
      return NULL;
    }
    uint8_t k = kind[n];
    if (special[n] || k == 3 || k == 4 || k > 5 || xset[n] != 0 || inl[n] != 0 || (k == 2 && size[n] < 60 && targetAt[n] + size[n] > targetsLen)) {
      specials[ns++] = (int32_t)at;
      continue;
    }
    unsigned char *in = piece + (size_t)(ino[n] - firstIno) * 256;
    uint64_t sz = (uint64_t)size[n];
    put16(in + 0, FILE_FORMAT[k] | perm[n]);
    put16(in + 2, uid[n] & 0xffff);
    put32(in + 4, (uint32_t)sz);
    put_time(in, asec[n], ansec[n], 8, 140);
    put_time(in, csec[n], cnsec[n], 12, 132);
    put_time(in, msec[n], mnsec[n], 16, 136);
    put_time(in, msec[n], mnsec[n], 144, 148); /* crtime = mtime, as tar2ext4 */
    put16(in + 24, gid[n] & 0xffff);
    put16(in + 26, links[n] > 65000 ? 1 : links[n]);
    uint64_t sectors = ((uint64_t)flen[n] + (xblock[n] != 0 ? 1 : 0)) * 8;
    put32(in + 28, (uint32_t)sectors);
    put16(in + 116, (uint32_t)(sectors >> 32));
    bool extents = k == 0 || k == 1 || (k == 2 && sz >= 60); /* a long symlink's target is in a block */
    put32(in + 32, extents ? 0x80000 : 0);
    if (k == 2 && !extents) memcpy(in + 40, targets + targetAt[n], (size_t)sz); /* a fast symlink's target in i_block */
    if (extents) {
      uint32_t extentCount = flen[n] == 0 ? 0 : 1;
      put16(in + 40, 0xf30a);
      put16(in + 42, extentCount);
      put16(in + 44, 4);
      if (extentCount) {
        put32(in + 52, flog[n]);
        put16(in + 56, flen[n]);
        put16(in + 58, 0); /* physical block numbers are 32-bit in the column */
        put32(in + 60, fphys[n]);
      }
    }
    put32(in + 104, xblock[n]);
    put32(in + 108, (uint32_t)(sz >> 32));
    put16(in + 120, uid[n] >> 16);
    put16(in + 122, gid[n] >> 16);
    put16(in + 128, 32); /* EXTRA_ISIZE */
    if (k == 1) dirs++;
    else if (k == 0 && flen[n] != 0 && fphys[n] < metaStart) {
      uint64_t first = fphys[n], end = first + flen[n];
      if ((end + 7) / 8 > usedLen) {
        napi_throw_range_error(env, NULL, "encodeInodes: data blocks past the bitmap");
        return NULL;
      }
      for (uint64_t b = first; b < end; b++) used[b >> 3] |= (unsigned char)(1u << (b & 7));
    }
  }
  out[0] = (double)at;
  out[1] = dirs;
  out[2] = (double)ns;
  return NULL;
}

/*
 * metadataNodes(kind, size, xattrSet, inlineAt, special, byIno, out) -> count
 *   The positions in byIno of the nodes that may append blocks when the ext4 writer finishes
 *   (appendInodeMetadata: directories, symlinks of 60 bytes or more, nodes with xattrs, inline
 *   data or side records), in order, into the Int32Array `out`; the writer skips the others.
 */
static napi_value metadata_nodes(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  uint8_t *kind, *special;
  double *size;
  uint32_t *xset, *inl, *byIno;
  int32_t *out;
  size_t kindLen, sizeLen, xsetLen, inlLen, specialLen, byInoLen, outLen;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7 || !typed(env, argv[0], napi_uint8_array, (void **)&kind, &kindLen) ||
      !typed(env, argv[1], napi_float64_array, (void **)&size, &sizeLen) || !typed(env, argv[2], napi_uint32_array, (void **)&xset, &xsetLen) ||
      !typed(env, argv[3], napi_uint32_array, (void **)&inl, &inlLen) || !typed(env, argv[4], napi_uint8_array, (void **)&special, &specialLen) ||
      !typed(env, argv[5], napi_uint32_array, (void **)&byIno, &byInoLen) || !typed(env, argv[6], napi_int32_array, (void **)&out, &outLen) ||
      outLen < byInoLen) {
    napi_throw_type_error(env, NULL, "metadataNodes(kind, size, xattrSet, inlineAt, special, byIno, out)");
    return NULL;
  }
  size_t rows = kindLen;
  if (sizeLen < rows) rows = sizeLen;
  if (xsetLen < rows) rows = xsetLen;
  if (inlLen < rows) rows = inlLen;
  if (specialLen < rows) rows = specialLen;
  int32_t count = 0;
  for (size_t i = 0; i < byInoLen; i++) {
    uint32_t n = byIno[i];
    if (n >= rows) {
      napi_throw_range_error(env, NULL, "metadataNodes: a node past the columns");
      return NULL;
    }
    if (kind[n] == 1 || (kind[n] == 2 && size[n] >= 60) || xset[n] != 0 || inl[n] != 0 || special[n]) out[count++] = (int32_t)i;
  }
  napi_value r;
  napi_create_int32(env, count, &r);
  return r;
}

/* appending linear directory entries to blocks (zeroed): where the block and the next record start, the last record */
typedef struct {
  unsigned char *d;
  uint64_t base, pos, lastAt;
} dirent_writer_t;

/* one record: 8 bytes + the name, 4-aligned; a record that does not fit the block starts the
   next, and the block's last record takes the block's rest */
static void put_dirent(dirent_writer_t *w, uint32_t inode, uint8_t kind, const unsigned char *name, uint32_t nlen) {
  static const unsigned char FILE_TYPE[6] = {1, 2, 7, 3, 4, 5};
  uint32_t rec = (nlen + 11) & ~3u;
  if (w->pos + rec > 4096) {
    put16(w->d + w->lastAt + 4, (uint32_t)(4096 - (w->lastAt - w->base)));
    w->base += 4096;
    w->pos = 0;
  }
  unsigned char *r = w->d + w->base + w->pos;
  put32(r, inode);
  put16(r + 4, rec);
  r[6] = (unsigned char)nlen;
  r[7] = kind < 6 ? FILE_TYPE[kind] : 0;
  memcpy(r + 8, name, nlen);
  w->lastAt = w->base + w->pos;
  w->pos += rec;
}

/*
 * dirBlocks([firstOf, nextOf, nodeOf, nameAt, nameLen, names, ino, kind], dir, parent, out, origin) -> blocks
 *   A directory's linear ext4 blocks as writer.ts appendDir builds them: ".", "..", then its
 *   entries in order (a handle e is 1-based: nextOf[e-1], nodeOf[e-1], nameAt[e-1] and
 *   nameLen[e-1] in the writer's DirectoryEntries), each record 8 bytes + the name, 4-aligned,
 *   the last record of a block taking the block's rest. Returns the number of blocks; with
 *   `out` (a Uint8Array, not null) also writes them, zeroed first, at out[origin...] when they
 *   fit there (else writes nothing: the caller builds the directory itself).
 */
static napi_value dir_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *col[8];
  size_t len[8];
  static const napi_typedarray_type types[8] = {napi_uint32_array, napi_uint32_array, napi_uint32_array, napi_uint32_array,
                                                napi_uint8_array,  napi_uint8_array,  napi_uint32_array, napi_uint8_array};
  int64_t dir, parent, origin;
  const char *usage = "dirBlocks(columns, dir, parent, out | null, origin)";
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || !typed_columns(env, argv[0], 8, types, col, len) ||
      napi_get_value_int64(env, argv[1], &dir) != napi_ok || napi_get_value_int64(env, argv[2], &parent) != napi_ok ||
      napi_get_value_int64(env, argv[4], &origin) != napi_ok || dir < 0 || parent < 0 || origin < 0) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  const uint32_t *firstOf = col[0], *nextOf = col[1], *nodeOf = col[2], *nameAt = col[3], *ino = col[6];
  const uint8_t *nameLen = col[4], *names = col[5], *kind = col[7];
  size_t rows = len[1] < len[2] ? len[1] : len[2];
  if (len[3] < rows) rows = len[3];
  if (len[4] < rows) rows = len[4];
  size_t nodes = len[6] < len[7] ? len[6] : len[7];
  if ((size_t)dir >= nodes || (size_t)parent >= nodes) {
    napi_throw_range_error(env, NULL, "dirBlocks: a node past the columns");
    return NULL;
  }
  uint32_t first = (size_t)dir < len[0] ? firstOf[dir] : 0;
  /* the blocks: "." and ".." (12 bytes each) start the first */
  uint64_t blocks = 1, pos = 24, seen = 0;
  for (uint32_t e = first; e != 0; e = nextOf[e - 1]) {
    if (e - 1 >= rows || ++seen > rows) {
      napi_throw_range_error(env, NULL, "dirBlocks: a broken entry list");
      return NULL;
    }
    uint32_t rec = ((uint32_t)nameLen[e - 1] + 11) & ~3u;
    if (pos + rec > 4096) blocks++, pos = 0;
    pos += rec;
  }
  napi_valuetype outType;
  if (napi_typeof(env, argv[3], &outType) != napi_ok) return NULL;
  if (outType != napi_null) {
    unsigned char *out;
    size_t outLen;
    if (!typed(env, argv[3], napi_uint8_array, (void **)&out, &outLen)) {
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    if ((uint64_t)origin + blocks * 4096 <= outLen) {
      static const unsigned char DOTS[2] = {'.', '.'};
      dirent_writer_t w = {out + origin, 0, 0, 0};
      memset(w.d, 0, (size_t)blocks * 4096);
      put_dirent(&w, ino[dir], 1 /* directory */, DOTS, 1);
      put_dirent(&w, ino[parent], 1, DOTS, 2);
      for (uint32_t e = first; e != 0; e = nextOf[e - 1]) {
        uint32_t node = nodeOf[e - 1], nlen = nameLen[e - 1];
        if (node >= nodes || (size_t)nameAt[e - 1] + nlen > len[5]) {
          napi_throw_range_error(env, NULL, "dirBlocks: an entry past the columns");
          return NULL;
        }
        put_dirent(&w, ino[node], kind[node], names + nameAt[e - 1], nlen);
      }
      put16(w.d + w.lastAt + 4, (uint32_t)(4096 - (w.lastAt - w.base)));
    }
  }
  napi_value r;
  napi_create_double(env, (double)blocks, &r);
  return r;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool sha256_ok;
#ifdef FSX_HAVE_CLMUL
static bool clmul_ok;
#endif

static void init_process(void) {
  *(void **)&sha256_init = dlsym(RTLD_DEFAULT, "SHA256_Init");
  *(void **)&sha256_update = dlsym(RTLD_DEFAULT, "SHA256_Update");
  *(void **)&sha256_final = dlsym(RTLD_DEFAULT, "SHA256_Final");
  sha256_ok = sha256_init && sha256_update && sha256_final;
#ifdef FSX_HAVE_SHANI
  use_shani = shani_usable();
  if (use_shani) sha256_constants();
  sha256_ok = sha256_ok || use_shani;
#endif
#ifdef FSX_HAVE_CLMUL
  clmul_ok = clmul_usable();
  if (clmul_ok) {
    crc_params_init(&CRC_IEEE, 0x04C11DB7u);
    crc_params_init(&CRC_CASTAGNOLI, 0x1EDC6F41u);
    if (vclmul_usable() && !getenv("WINSNAP_NO_VPCLMUL")) crc_fast = crc_vclmul;
  }
#endif
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"dataExtents", data_extents}, {"mapShared", map_shared}, {"dropResident", drop_resident},
             {"mapRead", map_read},        {"unmap", unmap},           {"setPipeSize", set_pipe_size},
             {"tarHeader", tar_header},   {"allocate", allocate_range}, {"encodeInodes", encode_inodes},
             {"metadataNodes", metadata_nodes}, {"dirBlocks", dir_blocks}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &fn) != napi_ok) return NULL;
    if (napi_set_named_property(env, exports, fns[i].name, fn) != napi_ok) return NULL;
  }
  pthread_once(&once, init_process);
  if (sha256_ok) {
    napi_value fn;
    if (napi_create_function(env, "sha256Blocks", NAPI_AUTO_LENGTH, sha256_blocks, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "sha256Blocks", fn) != napi_ok)
      return NULL;
  }
#ifdef FSX_HAVE_CLMUL
  if (clmul_ok) {
    napi_value fn, sync, speed;
    if (napi_create_function(env, "readChecksum", NAPI_AUTO_LENGTH, read_checksum, NULL, &fn) != napi_ok ||
        napi_set_named_property(env, exports, "readChecksum", fn) != napi_ok ||
        napi_create_function(env, "crc", NAPI_AUTO_LENGTH, crc_sync, NULL, &sync) != napi_ok ||
        napi_set_named_property(env, exports, "crc", sync) != napi_ok ||
        napi_create_string_utf8(env, crc_fast == crc_vclmul ? "vpclmul" : "pclmul", NAPI_AUTO_LENGTH, &speed) != napi_ok ||
        napi_set_named_property(env, exports, "checksumSpeed", speed) != napi_ok)
      return NULL;
  }
#endif
  return exports;
}
