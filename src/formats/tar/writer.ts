/**
 * Streaming, deterministic tar writer (USTAR headers, PAX 'x'/'g' extended headers).
 * The encoding rules are documented in docs/formats/tar.md; in short:
 *  - caller-supplied PAX records are written first-to-last, byte for byte, in one 'x' header;
 *  - the writer adds path, linkpath, size, uid, gid, uname, gname, mtime, atime, ctime
 *    records (in that order, in front of the caller's) only for values the USTAR fields
 *    cannot hold and only if the caller did not supply that key;
 *  - an entry without records is a plain USTAR header.
 * Facts: POSIX pax "ustar Interchange Format" / "pax Interchange Format".
 */
import type { Readable } from 'node:stream';
import { ChunkQueue } from './chunkqueue.js';
import { invalidArgument } from '../../services/errdefs.js';
import {
  BLOCK,
  F,
  TYPE_GLOBAL,
  TYPE_GNU_LONGLINK,
  TYPE_GNU_LONGNAME,
  TYPE_PAX,
  finishUstarBlock,
  octalMax,
  putBytes,
  putNumeric,
  putOctal,
} from './header.js';
import { encodePaxRecords, lastPaxValue } from './pax.js';
import { formatPaxTime, parsePaxTime, tarTime, tarTimeEquals } from './time.js';
import type { PaxRecord, TarHeaderInput, TarTime, TarType, TarWriteOptions } from './types.js';

export type TarBody = Buffer | Uint8Array | AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>;

const ZERO = Buffer.alloc(BLOCK * 2);
const EMPTY = Buffer.alloc(0);
/** Pieces smaller than this are copied into a staging buffer and emitted together. */
const COALESCE_BELOW = 16 * 1024;
const STAGE_SIZE = 64 * 1024;

const TYPEFLAG: Record<TarType, number | undefined> = {
  file: 0x30,
  link: 0x31,
  symlink: 0x32,
  char: 0x33,
  block: 0x34,
  dir: 0x35,
  fifo: 0x36,
  contiguous: 0x37,
  'gnu-dumpdir': 0x44,
  'gnu-volume': 0x56,
  'gnu-multivolume': 0x4d,
  unknown: undefined,
};

const HEADER_ONLY_FLAGS = new Set([0x31, 0x32, 0x33, 0x34, 0x35, 0x36]);
const META_FLAGS = new Set([TYPE_PAX, TYPE_GLOBAL, TYPE_GNU_LONGNAME, TYPE_GNU_LONGLINK]);

/** Keys the writer may add, in the order it adds them. */
export const AUTO_PAX_KEYS = ['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime'] as const;

const MAX_SIZE_OCTAL = octalMax(F.size[1]); // 8 GiB - 1
const MAX_ID_OCTAL = octalMax(F.uid[1]); // 2097151, also mode/devmajor/devminor (8-byte fields)
const MAX_MODE = octalMax(F.mode[1]);
const MAX_TIME_OCTAL = BigInt(octalMax(F.mtime[1]));

/** Splits a name into USTAR prefix + name, or undefined if impossible. */
function splitUstarName(bytes: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (bytes.length <= 100) return { prefix: Buffer.alloc(0), name: bytes };
  if (bytes.length > 256) return undefined;
  // The longest name part (first '/' that leaves at most 100 bytes after it) with a prefix of at most 155.
  for (let i = Math.max(1, bytes.length - 101); i <= Math.min(155, bytes.length - 2); i++) {
    if (bytes[i] === 0x2f) return { prefix: bytes.subarray(0, i), name: bytes.subarray(i + 1) };
  }
  return undefined;
}

/** The first `max` bytes of a UTF-8 string, cut at a character boundary. */
function truncateUtf8(bytes: Buffer, max: number): Buffer {
  if (bytes.length <= max) return bytes;
  let end = max;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

function toTime(t: TarTime | number | undefined): TarTime {
  if (t === undefined) return { sec: 0n, nsec: 0 };
  if (typeof t === 'number') return tarTime(t);
  if (typeof t.sec !== 'bigint' || !Number.isInteger(t.nsec) || t.nsec < 0 || t.nsec >= 1e9) {
    throw invalidArgument(`tar: invalid time {sec: ${String(t.sec)}, nsec: ${t.nsec}}`);
  }
  return t;
}

interface Normalized {
  name: Buffer;
  nameStr: string;
  linkname: Buffer;
  linkStr: string;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: TarTime;
  atime?: TarTime;
  ctime?: TarTime;
  uname: Buffer;
  unameStr: string;
  gname: Buffer;
  gnameStr: string;
  devmajor: number;
  devminor: number;
  pax: readonly PaxRecord[];
}

function checkInt(v: number, what: string, name: string, max: number): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw invalidArgument(`tar: entry "${name}": ${what} ${v} is out of range (0..${max})`, { entry: name });
  }
  return v;
}

function normalize(h: TarHeaderInput): Normalized {
  const nameStr = h.name;
  if (typeof nameStr !== 'string' || nameStr.length === 0) throw invalidArgument('tar: entry name is empty');
  if (nameStr.includes('\0')) throw invalidArgument(`tar: entry name ${JSON.stringify(nameStr)} contains NUL`, { entry: nameStr });
  const linkStr = h.linkname ?? '';
  if (linkStr.includes('\0')) throw invalidArgument(`tar: entry "${nameStr}": link name contains NUL`, { entry: nameStr });
  let typeflag = h.typeflag;
  if (typeflag === undefined) {
    typeflag = TYPEFLAG[h.type ?? 'file'];
    if (typeflag === undefined) throw invalidArgument(`tar: entry "${nameStr}": type 'unknown' needs an explicit typeflag`, { entry: nameStr });
  }
  if (!Number.isInteger(typeflag) || typeflag < 0 || typeflag > 255 || META_FLAGS.has(typeflag)) {
    throw invalidArgument(`tar: entry "${nameStr}": typeflag ${typeflag} cannot be written as an entry`, { entry: nameStr });
  }
  const size = checkInt(h.size ?? 0, 'size', nameStr, Number.MAX_SAFE_INTEGER);
  if (size !== 0 && HEADER_ONLY_FLAGS.has(typeflag)) {
    throw invalidArgument(`tar: entry "${nameStr}": typeflag '${String.fromCharCode(typeflag)}' entries must have size 0`, { entry: nameStr });
  }
  const unameStr = h.uname ?? '';
  const gnameStr = h.gname ?? '';
  if (unameStr.includes('\0') || gnameStr.includes('\0')) throw invalidArgument(`tar: entry "${nameStr}": user/group name contains NUL`, { entry: nameStr });
  const n: Normalized = {
    name: Buffer.from(nameStr, 'utf8'),
    nameStr,
    linkname: linkStr === '' ? EMPTY : Buffer.from(linkStr, 'utf8'),
    linkStr,
    typeflag,
    mode: checkInt(h.mode ?? 0, 'mode', nameStr, MAX_MODE),
    uid: checkInt(h.uid ?? 0, 'uid', nameStr, Number.MAX_SAFE_INTEGER),
    gid: checkInt(h.gid ?? 0, 'gid', nameStr, Number.MAX_SAFE_INTEGER),
    size,
    mtime: toTime(h.mtime),
    uname: unameStr === '' ? EMPTY : Buffer.from(unameStr, 'utf8'),
    unameStr,
    gname: gnameStr === '' ? EMPTY : Buffer.from(gnameStr, 'utf8'),
    gnameStr,
    devmajor: checkInt(h.devmajor ?? 0, 'devmajor', nameStr, MAX_ID_OCTAL),
    devminor: checkInt(h.devminor ?? 0, 'devminor', nameStr, MAX_ID_OCTAL),
    pax: h.pax ?? [],
  };
  if (h.atime !== undefined) n.atime = toTime(h.atime);
  if (h.ctime !== undefined) n.ctime = toTime(h.ctime);
  return n;
}

/**
 * The records the writer adds in front of `header.pax` (see docs/formats/tar.md), after
 * checking that any caller-supplied path/linkpath/size/uid/gid/uname/gname/mtime/atime/ctime
 * record agrees with the header field. Exported so codecs can put them in their own order.
 */
export function requiredPaxRecords(header: TarHeaderInput, opts: Pick<TarWriteOptions, 'paxForNonAscii'> = {}): PaxRecord[] {
  return autoRecords(normalize(header), opts.paxForNonAscii ?? false);
}

function conflict(n: Normalized, key: string, value: string): never {
  throw invalidArgument(
    `tar: entry "${n.nameStr}": PAX record ${key}=${JSON.stringify(lastPaxValue(n.pax, key)!.toString('utf8'))} disagrees with the header value ${JSON.stringify(value)}`,
    { entry: n.nameStr, key },
  );
}

function addString(n: Normalized, have: Set<string> | undefined, out: PaxRecord[], key: string, value: string, bytes: Buffer, needed: boolean): void {
  if (have?.has(key)) {
    if (!lastPaxValue(n.pax, key)!.equals(bytes)) conflict(n, key, value);
  } else if (needed) {
    out.push({ key, value: bytes });
  }
}

function addNumber(n: Normalized, have: Set<string> | undefined, out: PaxRecord[], key: string, value: number, needed: boolean): void {
  if (have?.has(key)) {
    if (lastPaxValue(n.pax, key)!.toString('latin1') !== String(value)) conflict(n, key, String(value));
  } else if (needed) {
    out.push({ key, value: Buffer.from(String(value), 'latin1') });
  }
}

function addTime(n: Normalized, have: Set<string> | undefined, out: PaxRecord[], key: string, value: TarTime | undefined, needed: boolean): void {
  if (value === undefined) return;
  if (have?.has(key)) {
    const t = parsePaxTime(lastPaxValue(n.pax, key)!.toString('latin1'));
    if (!t || !tarTimeEquals(t, value)) conflict(n, key, formatPaxTime(value));
  } else if (needed) {
    out.push({ key, value: Buffer.from(formatPaxTime(value), 'latin1') });
  }
}

function autoRecords(n: Normalized, nonAscii: boolean): PaxRecord[] {
  const have = n.pax.length === 0 ? undefined : new Set(n.pax.map((r) => r.key));
  const out: PaxRecord[] = [];
  const na = (s: string, bytes: Buffer): boolean => nonAscii && bytes.length !== s.length; // UTF-8 longer than UTF-16 ⇔ non-ASCII
  addString(n, have, out, 'path', n.nameStr, n.name, splitUstarName(n.name) === undefined || na(n.nameStr, n.name));
  addString(n, have, out, 'linkpath', n.linkStr, n.linkname, n.linkname.length > 100 || na(n.linkStr, n.linkname));
  addNumber(n, have, out, 'size', n.size, n.size > MAX_SIZE_OCTAL);
  addNumber(n, have, out, 'uid', n.uid, n.uid > MAX_ID_OCTAL);
  addNumber(n, have, out, 'gid', n.gid, n.gid > MAX_ID_OCTAL);
  addString(n, have, out, 'uname', n.unameStr, n.uname, n.uname.length > 32 || na(n.unameStr, n.uname));
  addString(n, have, out, 'gname', n.gnameStr, n.gname, n.gname.length > 32 || na(n.gnameStr, n.gname));
  addTime(n, have, out, 'mtime', n.mtime, n.mtime.nsec !== 0 || n.mtime.sec < 0n || n.mtime.sec > MAX_TIME_OCTAL);
  addTime(n, have, out, 'atime', n.atime, true);
  addTime(n, have, out, 'ctime', n.ctime, true);
  return out;
}

/** Fills `b` (512 zero bytes) with the USTAR header of the entry. */
function ustarBlock(n: Normalized, b: Buffer = Buffer.alloc(BLOCK)): Buffer {
  const split = splitUstarName(n.name);
  if (split) {
    putBytes(b, 'name', split.name);
    putBytes(b, 'prefix', split.prefix);
  } else {
    putBytes(b, 'name', truncateUtf8(n.name, 100));
  }
  putOctal(b, 'mode', n.mode);
  putNumeric(b, 'uid', n.uid);
  putNumeric(b, 'gid', n.gid);
  putNumeric(b, 'size', n.size);
  putNumeric(b, 'mtime', n.mtime.sec);
  b[156] = n.typeflag;
  putBytes(b, 'linkname', truncateUtf8(n.linkname, 100));
  putBytes(b, 'uname', truncateUtf8(n.uname, 32));
  putBytes(b, 'gname', truncateUtf8(n.gname, 32));
  putOctal(b, 'devmajor', n.devmajor);
  putOctal(b, 'devminor', n.devminor);
  finishUstarBlock(b);
  return b;
}

/** A USTAR header for an 'x' or 'g' extended header of `size` bytes. */
function metaBlock(name: Buffer, flag: number, size: number, b: Buffer = Buffer.alloc(BLOCK)): Buffer {
  putBytes(b, 'name', truncateUtf8(name, 100));
  putOctal(b, 'mode', 0o644);
  putOctal(b, 'uid', 0);
  putOctal(b, 'gid', 0);
  putNumeric(b, 'size', size);
  putOctal(b, 'mtime', 0);
  b[156] = flag;
  putOctal(b, 'devmajor', 0);
  putOctal(b, 'devminor', 0);
  finishUstarBlock(b);
  return b;
}

function paxHeaderName(name: Buffer): Buffer {
  // dir/PaxHeaders.0/base, as Go's archive/tar names it; truncated to the name field.
  let s = name;
  while (s.length > 1 && s[s.length - 1] === 0x2f) s = s.subarray(0, s.length - 1);
  const slash = s.lastIndexOf(0x2f);
  const dir = slash >= 0 ? s.subarray(0, slash + 1) : Buffer.alloc(0);
  const base = slash >= 0 ? s.subarray(slash + 1) : s;
  return Buffer.concat([dir, Buffer.from('PaxHeaders.0/'), base]);
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * Encodes the header blocks of one entry: an optional 'x' header with its records, then
 * the USTAR header. Deterministic: the same input always gives the same bytes.
 */
export function encodeTarHeader(header: TarHeaderInput, opts: Pick<TarWriteOptions, 'paxForNonAscii'> = {}): Buffer {
  const n = normalize(header);
  const records = autoRecords(n, opts.paxForNonAscii ?? false);
  const all = records.length === 0 ? n.pax : records.concat(n.pax);
  if (all.length === 0) return ustarBlock(n);
  const data = encodePaxRecords(all);
  // One buffer: 'x' header block, its records, padding, the USTAR block.
  const dataEnd = BLOCK + data.length + padding(data.length);
  const out = Buffer.alloc(dataEnd + BLOCK);
  metaBlock(paxHeaderName(n.name), TYPE_PAX, data.length, out.subarray(0, BLOCK));
  data.copy(out, BLOCK);
  ustarBlock(n, out.subarray(dataEnd));
  return out;
}

/** Encodes a 'g' (global) extended header with the given records. */
export function encodeGlobalHeader(records: readonly PaxRecord[]): Buffer {
  const data = encodePaxRecords(records);
  const g = metaBlock(Buffer.from('GlobalHead.0.0'), TYPE_GLOBAL, data.length);
  return Buffer.concat([g, data, ZERO.subarray(0, padding(data.length))]);
}

/**
 * Streaming writer. Call writeEntry() for each entry (one at a time, awaiting each), then
 * finish(). Consume the bytes either by async iteration of the writer (chunks come out as
 * they went in: bodies are not copied) or through `stream` (a Node Readable) — one of the
 * two. A write waits while more than `highWaterMark` bytes are queued and unread.
 */
export class TarWriter implements AsyncIterable<Buffer> {
  private readonly queue: ChunkQueue;
  private readonly nonAscii: boolean;
  private busy = false;
  private finished = false;
  private written = 0;
  private stage = Buffer.allocUnsafe(STAGE_SIZE);
  private staged = 0;

  constructor(options: TarWriteOptions = {}) {
    this.queue = new ChunkQueue(options.highWaterMark ?? 1 << 20);
    this.nonAscii = options.paxForNonAscii ?? false;
  }

  /** The archive bytes as a Node Readable (created on first use). */
  get stream(): Readable {
    return this.queue.toReadable();
  }

  /** Bytes produced so far. */
  get bytesWritten(): number {
    return this.written;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.queue[Symbol.asyncIterator]();
  }

  /**
   * Emits bytes. Small pieces (headers, padding, small bodies) are staged and emitted in
   * blocks of up to 64 KiB, which keeps the consumer's write calls few; larger pieces pass
   * through as they are (after the staged bytes).
   */
  private async push(b: Buffer): Promise<void> {
    if (b.length === 0) return;
    this.written += b.length;
    if (b.length < COALESCE_BELOW) {
      if (this.staged + b.length > STAGE_SIZE) await this.flushStage();
      b.copy(this.stage, this.staged);
      this.staged += b.length;
      return;
    }
    await this.flushStage();
    await this.queue.push(b);
  }

  private async flushStage(): Promise<void> {
    if (this.staged === 0) return;
    const out = this.stage.subarray(0, this.staged);
    this.stage = Buffer.allocUnsafe(STAGE_SIZE);
    this.staged = 0;
    await this.queue.push(out);
  }

  /** Hands every byte written so far to the consumer (writes stage small pieces). */
  async flush(): Promise<void> {
    this.begin();
    try {
      await this.flushStage();
    } finally {
      this.busy = false;
    }
  }

  private begin(): void {
    if (this.finished) throw invalidArgument('tar: write after finish()');
    if (this.busy) throw invalidArgument('tar: concurrent writes (await each writeEntry before the next)');
    this.busy = true;
  }

  /** Writes a 'g' header; its records apply to every later entry for readers. */
  async writeGlobalHeader(records: readonly PaxRecord[]): Promise<void> {
    this.begin();
    try {
      await this.push(encodeGlobalHeader(records));
    } finally {
      this.busy = false;
    }
  }

  /** Writes one entry; `body` must deliver exactly header.size bytes. */
  async writeEntry(header: TarHeaderInput, body?: TarBody): Promise<void> {
    this.begin();
    try {
      // Validation errors surface here, before any byte of the entry is out.
      const head = encodeTarHeader(header, { paxForNonAscii: this.nonAscii });
      const size = header.size ?? 0;
      const name = header.name;
      if (body === undefined) {
        if (size !== 0) throw invalidArgument(`tar: entry "${name}" has size ${size} but no body`, { entry: name });
        await this.push(head);
        return;
      }
      if (body instanceof Uint8Array) {
        const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        if (buf.length !== size) {
          throw invalidArgument(`tar: entry "${name}": body is ${buf.length} bytes, header size is ${size}`, { entry: name });
        }
        await this.push(head);
        await this.push(buf);
        await this.push(ZERO.subarray(0, padding(size)));
        return;
      }
      await this.push(head);
      try {
        await this.pushBody(body, name, size);
      } catch (err) {
        // Part of the entry is out: fail the stream so no consumer sees a bad archive.
        this.finished = true;
        this.queue.fail(err as Error);
        throw err;
      }
    } finally {
      this.busy = false;
    }
  }

  private async pushBody(body: AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>, name: string, size: number): Promise<void> {
    let got = 0;
    for await (const chunk of body as AsyncIterable<Buffer | Uint8Array>) {
      const c = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      got += c.length;
      if (got > size) {
        throw invalidArgument(`tar: entry "${name}": body is longer than the header size ${size}`, { entry: name });
      }
      await this.push(c);
    }
    if (got !== size) {
      throw invalidArgument(`tar: entry "${name}": body is ${got} bytes, header size is ${size}`, { entry: name });
    }
    await this.push(ZERO.subarray(0, padding(size)));
  }

  /** Writes the end-of-archive marker (two zero blocks) and ends the stream. */
  async finish(): Promise<void> {
    this.begin();
    try {
      await this.push(ZERO);
      await this.flushStage();
      this.finished = true;
      this.queue.end();
    } finally {
      this.busy = false;
    }
  }

  /** Aborts: the stream emits `err`. */
  destroy(err?: Error): void {
    this.finished = true;
    this.queue.fail(err ?? new Error('tar writer destroyed'));
  }
}

export interface TarInputEntry {
  header: TarHeaderInput;
  body?: TarBody;
}

/** Writes a whole archive from an (async) iterable of entries; returns the byte stream. */
export function writeTar(entries: AsyncIterable<TarInputEntry> | Iterable<TarInputEntry>, options?: TarWriteOptions): Readable {
  const w = new TarWriter(options);
  void (async () => {
    try {
      for await (const e of entries as AsyncIterable<TarInputEntry>) await w.writeEntry(e.header, e.body);
      await w.finish();
    } catch (err) {
      w.destroy(err as Error);
    }
  })();
  return w.stream;
}
