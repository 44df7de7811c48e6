/**
 * The 512-byte tar header block: field layout, numeric fields (octal, or GNU base-256 when
 * the high bit of the first byte is set), checksum, format detection.
 *
 * Facts: POSIX pax "ustar Interchange Format" (field offsets and sizes, magic "ustar\0" +
 * version "00", prefix field, checksum = sum of header bytes with the checksum field taken
 * as spaces); GNU tar manual "Basic Tar Format" (magic "ustar " + version " \0", base-256
 * numbers: first byte 0x80 positive / 0xff negative, big-endian two's complement).
 */
import { invalidArgument } from '../../services/errdefs.js';
import { tarHeaderCall } from '../../services/fsutil/native.js';

export const BLOCK = 512;

export const F = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  chksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  version: [263, 2],
  uname: [265, 32],
  gname: [297, 32],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

export type FieldName = keyof typeof F;

/** Typeflags of headers that describe the next entry rather than being one. */
export const TYPE_PAX = 0x78; // 'x'
export const TYPE_GLOBAL = 0x67; // 'g'
export const TYPE_GNU_LONGNAME = 0x4c; // 'L'
export const TYPE_GNU_LONGLINK = 0x4b; // 'K'
export const TYPE_GNU_SPARSE = 0x53; // 'S'
export const TYPE_GNU_OLDLONGNAME = 0x4e; // 'N'

export interface RawHeader {
  /** Name field (prefix applied for USTAR), as bytes. */
  name: Buffer;
  linkname: Buffer;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: bigint;
  uname: Buffer;
  gname: Buffer;
  devmajor: number;
  devminor: number;
  magic: 'ustar' | 'gnu' | 'v7';
}

export interface HeaderContext {
  offset: number;
}

const EMPTY = Buffer.alloc(0);
/** 2^63: header times are signed 64-bit seconds */
const TIME_LIMIT = 1n << 63n;

/** Bytes of a NUL-terminated (or full-width) string field (a shared empty buffer when it is empty). */
export function fieldBytes(block: Buffer, off: number, len: number): Buffer {
  // a scan in JavaScript: fields are short, and indexOf() would cross into C++ for each
  let end = off;
  const limit = off + len;
  while (end < limit && block[end] !== 0) end++;
  return end === off ? EMPTY : block.subarray(off, end);
}

function safeName(block: Buffer): string {
  return fieldBytes(block, 0, 100).toString('latin1').replace(/[^\x20-\x7e]/g, '?');
}

function fieldError(block: Buffer, field: string, ctx: HeaderContext, detail: string): never {
  const name = safeName(block);
  throw invalidArgument(`tar: header at offset ${ctx.offset} (entry "${name}"): ${field} field ${detail}`, {
    entry: name,
    offset: ctx.offset,
  });
}

/**
 * Parses a numeric field. Octal digits may be surrounded by spaces and NULs (an empty field
 * is 0). Base-256: bit 7 of the first byte set, bit 6 the sign.
 */
export function parseNumeric(block: Buffer, field: FieldName, ctx: HeaderContext): bigint {
  const v = parseNumericFast(block, field, ctx);
  return typeof v === 'bigint' ? v : BigInt(v);
}

/** parseNumeric without BigInt for octal fields (at most 12 digits, so always a safe integer). */
function parseNumericFast(block: Buffer, field: FieldName, ctx: HeaderContext): number | bigint {
  // indexed, not destructured: unoptimized code runs array destructuring through an iterator
  const f = F[field];
  const off = f[0];
  const len = f[1];
  const first = block[off]!;
  if (first & 0x80) {
    let v = 0n;
    for (let i = off; i < off + len; i++) v = (v << 8n) | BigInt(block[i]!);
    const width = BigInt(len * 8);
    return first & 0x40 ? v - (1n << width) : v - (1n << (width - 1n));
  }
  let s = off;
  let e = off + len;
  while (s < e && (block[s] === 0x20 || block[s] === 0)) s++;
  while (e > s && (block[e - 1] === 0x20 || block[e - 1] === 0)) e--;
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = block[i]! - 0x30;
    if (c < 0 || c > 7) {
      fieldError(block, field, ctx, `is not octal (${JSON.stringify(block.subarray(off, off + len).toString('latin1'))})`);
    }
    n = n * 8 + c;
  }
  return n;
}

function smallNumeric(block: Buffer, field: FieldName, ctx: HeaderContext, max: number): number {
  const v = parseNumericFast(block, field, ctx);
  if (v < 0) fieldError(block, field, ctx, `is negative (${v})`);
  if (v > max) fieldError(block, field, ctx, `is out of range (${v})`);
  return Number(v);
}

/** True for an all-zero block (end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  // asked of every header, whose first byte (the name's) is not zero: a byte loop stops there
  // (reading 8 bytes at a time as a BigInt allocated one per header)
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * A 32-bit view of the whole ArrayBuffer the last header came from (headers come from a few
 * reused chunks), made again for another buffer or one that grew since.
 */
let wordsOf: ArrayBufferLike | undefined;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/** Unsigned sum of the block with the checksum field counted as spaces. */
export function unsignedChecksum(block: Buffer): number {
  let u = 0;
  if ((block.byteOffset & 3) === 0) {
    // Two 16-bit lanes per 32-bit word: at most 128 * 2 * 255 per lane, no overflow.
    if (block.buffer !== wordsOf || (block.byteOffset >>> 2) + BLOCK / 4 > words.length) {
      wordsOf = block.buffer;
      words = new Uint32Array(block.buffer, 0, block.buffer.byteLength >>> 2);
    }
    const w = words;
    const base = block.byteOffset >>> 2;
    let acc = 0;
    for (let i = base; i < base + BLOCK / 4; i++) {
      const x = w[i]!;
      acc += (x & 0x00ff00ff) + ((x >>> 8) & 0x00ff00ff);
    }
    u = (acc & 0xffff) + (acc >>> 16);
  } else {
    for (let i = 0; i < BLOCK; i++) u += block[i]!;
  }
  for (let i = 148; i < 156; i++) u -= block[i]!;
  return u + 8 * 0x20;
}

/** Signed sum (historic writers summed signed chars); only needed when the unsigned one fails. */
export function signedChecksum(block: Buffer): number {
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    s += b >= 128 ? b - 256 : b;
  }
  return s;
}

/** Fields of the native decoder's output (see fsx.c tarHeader). */
const NATIVE_OUT = new Float64Array(14);
const MAGICS: readonly RawHeader['magic'][] = ['v7', 'ustar', 'gnu'];
const SLASH = Buffer.from('/');
let nativeDecoder: ((block: Uint8Array, out: Float64Array) => number) | null | undefined;

/**
 * Decodes and validates one (non-zero) header block. A block whose checksum holds and whose
 * numeric fields are all octal (nearly every header) is decoded by the native helper in one
 * call where it is built (the checksum and field loops cost ~1 µs a header in JavaScript, much
 * more before the JIT has compiled them: 30,000 headers of a layer); every other block, and
 * every error, goes through decodeHeaderJs. The same result either way (tests compare).
 */
export function decodeHeader(block: Buffer, ctx: HeaderContext, maxEntrySize: number): RawHeader {
  if (nativeDecoder === undefined) nativeDecoder = tarHeaderCall() ?? null;
  const o = NATIVE_OUT;
  if (nativeDecoder === null || block.length < BLOCK || nativeDecoder(block, o) !== 1 || o[4]! > maxEntrySize) return decodeHeaderJs(block, ctx, maxEntrySize);
  const magic = MAGICS[o[8]!]!;
  const nameLen = o[9]!;
  const prefixLen = o[10]!;
  let name = nameLen === 0 ? EMPTY : block.subarray(0, nameLen);
  if (prefixLen > 0) name = Buffer.concat([block.subarray(F.prefix[0], F.prefix[0] + prefixLen), SLASH, name]);
  const linkLen = o[11]!;
  // the owner names and the time of consecutive headers are mostly the same: the last ones are
  // kept (the names as copies, since headers come from reused chunks) instead of a view and a
  // BigInt made per header
  const uname = (lastUname = ownerName(block, F.uname[0], o[12]!, lastUname));
  const gname = (lastGname = ownerName(block, F.gname[0], o[13]!, lastGname));
  if (o[5] !== lastMtime) {
    lastMtime = o[5]!;
    lastMtimeBig = BigInt(lastMtime);
  }
  return {
    name,
    linkname: linkLen === 0 ? EMPTY : block.subarray(F.linkname[0], F.linkname[0] + linkLen),
    typeflag: o[0]!,
    mode: o[1]!,
    uid: o[2]!,
    gid: o[3]!,
    size: o[4]!,
    mtime: lastMtimeBig,
    uname,
    gname,
    devmajor: o[6]!,
    devminor: o[7]!,
    magic,
  };
}

let lastUname: Buffer = EMPTY;
let lastGname: Buffer = EMPTY;
let lastMtime = 0;
let lastMtimeBig = 0n;

/** The `len` bytes at block[off]: `last` when they are the same bytes, else a copy. */
function ownerName(block: Buffer, off: number, len: number, last: Buffer): Buffer {
  if (len === 0) return EMPTY;
  if (last.length === len) {
    let i = 0;
    while (i < len && last[i] === block[off + i]) i++;
    if (i === len) return last;
  }
  return Buffer.from(block.subarray(off, off + len));
}

/** decodeHeader in JavaScript: every block, every error (exported for the tests that compare). */
export function decodeHeaderJs(block: Buffer, ctx: HeaderContext, maxEntrySize: number): RawHeader {
  // Checksum first: nothing else in a block is trustworthy before it.
  const coff = F.chksum[0];
  const clen = F.chksum[1];
  let cs = 0;
  let digits = 0;
  for (let i = coff; i < coff + clen; i++) {
    const b = block[i]!;
    if (b === 0 || b === 0x20) {
      if (digits > 0) break;
      continue;
    }
    if (b < 0x30 || b > 0x37) fieldError(block, 'checksum', ctx, 'is not octal');
    cs = cs * 8 + (b - 0x30);
    digits++;
  }
  if (digits === 0) fieldError(block, 'checksum', ctx, 'is empty');
  const unsigned = unsignedChecksum(block);
  if (cs !== unsigned && cs !== signedChecksum(block)) {
    const name = safeName(block);
    throw invalidArgument(
      `tar: header checksum mismatch at offset ${ctx.offset} (entry "${name}"): stored ${cs.toString(8)}, computed ${unsigned.toString(8)}`,
      { entry: name, offset: ctx.offset },
    );
  }

  // "ustar\0" (POSIX) or "ustar " + " \0" (GNU).
  let magic: RawHeader['magic'] = 'v7';
  if (block[257] === 0x75 && block[258] === 0x73 && block[259] === 0x74 && block[260] === 0x61 && block[261] === 0x72) {
    if (block[262] === 0) magic = 'ustar';
    else if (block[262] === 0x20 && block[263] === 0x20 && block[264] === 0) magic = 'gnu';
  }

  let name = fieldBytes(block, F.name[0], F.name[1]);
  if (magic === 'ustar') {
    const prefix = fieldBytes(block, F.prefix[0], F.prefix[1]);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }

  const size = parseNumericFast(block, 'size', ctx);
  if (size < 0) fieldError(block, 'size', ctx, `is negative (${size})`);
  if (size > maxEntrySize) fieldError(block, 'size', ctx, `is too large (${size} bytes)`);

  const hasUstarFields = magic !== 'v7';
  // an octal field always fits; only base-256 can exceed a signed 64-bit time
  const mtimeField = parseNumericFast(block, 'mtime', ctx);
  const mtime = typeof mtimeField === 'bigint' ? mtimeField : BigInt(mtimeField);
  if (typeof mtimeField === 'bigint' && (mtime >= TIME_LIMIT || mtime < -TIME_LIMIT)) fieldError(block, 'mtime', ctx, `is out of range (${mtime})`);
  return {
    name,
    linkname: fieldBytes(block, F.linkname[0], F.linkname[1]),
    typeflag: block[156]!,
    mode: smallNumeric(block, 'mode', ctx, 0xffffffff),
    uid: smallNumeric(block, 'uid', ctx, Number.MAX_SAFE_INTEGER),
    gid: smallNumeric(block, 'gid', ctx, Number.MAX_SAFE_INTEGER),
    size: Number(size),
    mtime,
    uname: hasUstarFields ? fieldBytes(block, F.uname[0], F.uname[1]) : EMPTY,
    gname: hasUstarFields ? fieldBytes(block, F.gname[0], F.gname[1]) : EMPTY,
    devmajor: hasUstarFields ? smallNumeric(block, 'devmajor', ctx, 0xffffffff) : 0,
    devminor: hasUstarFields ? smallNumeric(block, 'devminor', ctx, 0xffffffff) : 0,
    magic,
  };
}

// ---------------------------------------------------------------------------------------
// Encoding

/** Largest value an octal field of `len` bytes holds (len-1 digits and a NUL). */
export function octalMax(len: number): number {
  return 8 ** (len - 1) - 1;
}

/** Writes `value` as zero-padded octal with a trailing NUL. Caller checks the range. */
export function putOctal(block: Buffer, field: FieldName, value: number): void {
  const [off, len] = F[field];
  let v = value;
  for (let i = off + len - 2; i >= off; i--) {
    block[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  block[off + len - 1] = 0;
}

/** Writes a GNU base-256 number (big-endian two's complement with bit 7 of byte 0 set). */
export function putBase256(block: Buffer, field: FieldName, value: bigint): void {
  const [off, len] = F[field];
  const width = BigInt(len * 8);
  let v = value < 0n ? (1n << width) + value : value;
  for (let i = off + len - 1; i >= off; i--) {
    block[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[off] = block[off]! | 0x80;
}

/** True when `value` fits the base-256 form of the field (one sign bit, bit 7 is the marker). */
export function fitsBase256(field: FieldName, value: bigint): boolean {
  const bits = BigInt(F[field][1] * 8 - 1);
  const lim = 1n << (bits - 1n);
  return value >= -lim && value < lim;
}

const OCTAL_MAX = { 8: 8 ** 7 - 1, 12: 8 ** 11 - 1 } as Record<number, number>;

/** Writes a numeric field: octal when it fits, else base-256 (the PAX record carries the value). */
export function putNumeric(block: Buffer, field: FieldName, value: number | bigint): void {
  const max = OCTAL_MAX[F[field][1]] ?? octalMax(F[field][1]);
  if (typeof value === 'number') {
    if (value >= 0 && value <= max) putOctal(block, field, value);
    else putBase256(block, field, BigInt(value));
  } else if (value >= 0n && value <= BigInt(max)) putOctal(block, field, Number(value));
  else putBase256(block, field, value);
}

/** Copies string bytes into a field; the caller guarantees bytes.length <= field length. */
export function putBytes(block: Buffer, field: FieldName, bytes: Buffer): void {
  const [off, len] = F[field];
  bytes.copy(block, off, 0, Math.min(len, bytes.length));
}

/** Fills in magic/version (USTAR) and the checksum. */
export function finishUstarBlock(block: Buffer): void {
  block.write('ustar\0', 257, 6, 'latin1');
  block.write('00', 263, 2, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = unsignedChecksum(block);
  for (let i = 153; i >= 148; i--) {
    block[i] = 0x30 + (sum % 8);
    sum = Math.floor(sum / 8);
  }
  block[154] = 0;
  block[155] = 0x20;
}
