/**
 * Streaming tar reader: USTAR, PAX ('x' and 'g' headers), GNU ('L'/'K' long names, base-256
 * numbers) and v7 headers. Bodies are pulled from the source as views of its chunks; an
 * unread body is skipped when the next entry is requested. Memory is bounded by the largest
 * source chunk plus the meta-header limits, whatever the entry sizes.
 *
 * Facts: POSIX pax "pax Interchange Format" (record precedence: an 'x' record overrides a
 * 'g' record which overrides the header field; an empty value deletes the keyword); GNU tar
 * manual "Basic Tar Format" ('L', 'K', end of archive = two zero blocks).
 */
import { isUtf8 } from 'node:buffer';
import { invalidArgument, notImplemented } from '../../services/errdefs.js';
import {
  BLOCK,
  TYPE_GLOBAL,
  TYPE_GNU_LONGLINK,
  TYPE_GNU_LONGNAME,
  TYPE_GNU_OLDLONGNAME,
  TYPE_GNU_SPARSE,
  TYPE_PAX,
  decodeHeader,
  isZeroBlock,
  type RawHeader,
} from './header.js';
import { parsePaxRecords } from './pax.js';
import { ByteSource, type ByteSourceInput } from './source.js';
import { parsePaxTime } from './time.js';
import type { PaxRecord, TarHeader, TarReadOptions, TarTime, TarType } from './types.js';

export interface TarEntry {
  header: TarHeader;
  /** Offset of the entry's first header block (its first 'x'/'L'/'K' header, if any). */
  offset: number;
  /** Offset of the entry's main (USTAR/GNU/v7) header block. */
  headerOffset: number;
  /** Offset of the first body byte. */
  dataOffset: number;
  /** The body, exactly header.size bytes; iterable once, only until the next entry is requested. */
  body: AsyncIterable<Buffer>;
  /** Reads the whole body into one Buffer; refuses bodies larger than `max` (default 64 MiB). */
  readAll(max?: number): Promise<Buffer>;
  /**
   * The whole body, synchronously, as a view of the input chunk, when the chunk already
   * holds all of it (the body then counts as read); undefined otherwise — iterate `body`.
   * The view is valid until the next entry is requested.
   */
  bufferedBody?(): Buffer | undefined;
}

export interface TarEndInfo {
  /** Offset just past the end-of-archive blocks (or of the last entry without a marker). */
  endOffset: number;
  entries: number;
  /** The archive ended with a single zero block (what followed it, if anything, was consumed
   * up to one block and belongs to the trailing bytes). */
  loneZeroBlock: boolean;
}

const DEFAULTS = {
  maxHeaderBytes: 1 << 20,
  maxMetaHeaders: 32,
  maxEntries: Number.POSITIVE_INFINITY,
  maxEntrySize: Number.MAX_SAFE_INTEGER,
  requireEndMarker: true,
  invalidUtf8: 'error' as 'error' | 'replace',
};

const HEADER_ONLY: ReadonlySet<TarType> = new Set(['dir', 'symlink', 'char', 'block', 'fifo']);

/** Type flags of headers that stand alone (no meta header, nothing unsupported): nextSync reads these. */
const PLAIN_FLAGS: readonly boolean[] = (() => {
  const t: boolean[] = new Array(256).fill(false);
  for (const c of '01234567') t[c.charCodeAt(0)] = true;
  t[0] = true;
  return t;
})();

function typeOf(flag: number, name: Buffer): TarType {
  switch (flag) {
    case 0:
      return name.length > 0 && name[name.length - 1] === 0x2f ? 'dir' : 'file';
    case 0x30:
      return 'file';
    case 0x31:
      return 'link';
    case 0x32:
      return 'symlink';
    case 0x33:
      return 'char';
    case 0x34:
      return 'block';
    case 0x35:
      return 'dir';
    case 0x36:
      return 'fifo';
    case 0x37:
      return 'contiguous';
    case 0x44:
      return 'gnu-dumpdir';
    case 0x56:
      return 'gnu-volume';
    case 0x4d:
      return 'gnu-multivolume';
    default:
      return 'unknown';
  }
}

/** A GNU long name or long link ('L', 'K' body): its bytes up to the trailing NULs, copied. */
function gnuLongValue(body: Buffer): Buffer {
  let end = body.length;
  while (end > 0 && body[end - 1] === 0) end--;
  return Buffer.from(body.subarray(0, end));
}

function flagText(flag: number): string {
  return flag >= 0x20 && flag < 0x7f ? `'${String.fromCharCode(flag)}'` : `0x${flag.toString(16)}`;
}

/** Value lookup with POSIX precedence: local record > global record; an empty value deletes. */
function lookup(local: PaxRecord[], global: readonly PaxRecord[], key: string): Buffer | undefined {
  for (let i = local.length - 1; i >= 0; i--) {
    const r = local[i]!;
    if (r.key === key) return r.value.length === 0 ? undefined : r.value;
  }
  for (let i = global.length - 1; i >= 0; i--) {
    const r = global[i]!;
    if (r.key === key) return r.value.length === 0 ? undefined : r.value;
  }
  return undefined;
}

/**
 * The last few short byte strings decoded and their text (user and group names): entries of
 * a layer mostly share them, and comparing a few bytes costs less than decoding them.
 */
class NameCache {
  private readonly keys: Buffer[] = [];
  private readonly values: string[] = [];
  private next = 0;

  get(bytes: Buffer): string | undefined {
    for (let k = 0; k < this.keys.length; k++) {
      const key = this.keys[k]!;
      if (key.length !== bytes.length) continue;
      let i = 0;
      while (i < bytes.length && key[i] === bytes[i]) i++;
      if (i === bytes.length) return this.values[k];
    }
    return undefined;
  }

  /** Remembers `text` for `bytes` (copied: they may be a view of an input chunk); returns `text`. */
  put(bytes: Buffer, text: string): string {
    if (bytes.length > 64) return text;
    const k = this.next;
    this.next = (k + 1) % 4;
    this.keys[k] = Buffer.from(bytes);
    this.values[k] = text;
    return text;
  }
}

export class TarReader implements AsyncIterable<TarEntry> {
  private readonly src: ByteSource;
  private readonly opts: typeof DEFAULTS;
  private globals: readonly PaxRecord[] = [];
  private remaining = 0;
  private padding = 0;
  private currentName = '';
  private currentDataOffset = 0;
  private seq = 0;
  private count = 0;
  private failure: unknown;
  private endInfo: TarEndInfo | undefined;
  /** the last user and group names decoded (a layer's entries mostly share one or two) */
  private readonly owners = new NameCache();

  constructor(source: ByteSourceInput, options: TarReadOptions = {}) {
    this.src = new ByteSource(source);
    this.opts = { ...DEFAULTS };
    for (const [k, v] of Object.entries(options)) if (v !== undefined) (this.opts as Record<string, unknown>)[k] = v;
  }

  /** Records of every 'g' header read so far, in order. */
  get globalPax(): readonly PaxRecord[] {
    return this.globals;
  }

  /** Offset of the next unread byte of the source. */
  get position(): number {
    return this.src.offset;
  }

  /** Set once the end of the archive has been reached. */
  get end(): TarEndInfo | undefined {
    return this.endInfo;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<TarEntry, TarEndInfo | undefined> {
    for (;;) {
      const e = await this.next();
      if (!e) return this.endInfo;
      yield e;
    }
  }

  /**
   * Reads whatever follows the end-of-archive marker (GNU tar pads to 10 KiB records; a
   * compressed stream needs its trailer read). Only valid after the end was reached.
   */
  async drain(): Promise<{ bytes: number; allZero: boolean }> {
    if (!this.endInfo) throw invalidArgument('tar: drain() called before the end of the archive');
    return this.src.drain();
  }

  /** Stops reading and releases the source (a Readable is destroyed). */
  async close(): Promise<void> {
    this.seq++;
    await this.src.close();
  }

  private fail(detail: string, offset: number, entry?: string): never {
    throw invalidArgument(`tar: ${detail}`, { entry, offset });
  }

  private async skipCurrent(): Promise<void> {
    const want = this.remaining + this.padding;
    if (want === 0) return;
    let got = this.src.skipBuffered(want);
    if (got < want) got += await this.src.skip(want - got);
    if (got < want) {
      const inBody = this.remaining;
      this.remaining = 0;
      this.padding = 0;
      this.fail(
        `truncated archive: entry "${this.currentName}" ends at offset ${this.src.offset}, ` +
          (got < inBody ? `${inBody - got} body bytes missing` : 'block padding missing'),
        this.src.offset,
        this.currentName,
      );
    }
    this.remaining = 0;
    this.padding = 0;
  }

  /** The next entry, or undefined at the end of the archive. */
  async next(): Promise<TarEntry | undefined> {
    if (this.failure !== undefined) throw this.failure;
    if (this.endInfo) return undefined;
    try {
      this.seq++;
      if (this.remaining + this.padding > 0) await this.skipCurrent();
      return await this.readEntry();
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /**
   * The next entry when it can be read from bytes already buffered, without waiting: the
   * rest of the current entry and a plain header block (no PAX or GNU meta headers before
   * it, not the end of the archive). Returns null, having consumed nothing, when that is not
   * possible: then call next(), which handles every case. Same entries, same errors.
   */
  nextSync(): TarEntry | null {
    if (this.failure !== undefined) throw this.failure;
    if (this.endInfo) return null;
    const skip = this.remaining + this.padding;
    const block = this.src.peek(skip, BLOCK);
    if (!block) return null;
    const flag = block[156]!;
    if (flag === TYPE_PAX || flag === TYPE_GNU_LONGNAME || flag === TYPE_GNU_LONGLINK) return this.metaEntrySync(skip, block);
    if (!PLAIN_FLAGS[flag] || isZeroBlock(block)) return null;
    try {
      this.seq++;
      this.src.skipBuffered(skip);
      this.remaining = 0;
      this.padding = 0;
      const at = this.src.offset;
      this.src.skipBuffered(BLOCK);
      const raw = decodeHeader(block, { offset: at }, this.opts.maxEntrySize);
      return this.buildEntry(raw, at, at, [], false, undefined, undefined);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /**
   * nextSync() for an entry of one meta header and a plain header, when the chunk holds both
   * and the meta header's body: a PAX header ('x'; GNU tar's posix format writes one for every
   * entry, other tars for long names or xattrs) or a GNU long name or long link ('L', 'K'; GNU
   * tar's default format, for paths over 100 bytes). Read as readEntry() reads it, without
   * awaiting; null, having consumed nothing, for anything else.
   */
  private metaEntrySync(skip: number, block: Buffer): TarEntry | null {
    const o = this.opts;
    if (o.maxMetaHeaders < 1) return null;
    try {
      const at = this.src.offset + skip;
      const meta = decodeHeader(block, { offset: at }, o.maxEntrySize);
      if (meta.size > o.maxHeaderBytes) return null;
      const padded = meta.size + ((BLOCK - (meta.size % BLOCK)) % BLOCK);
      const main = this.src.peek(skip + BLOCK + padded, BLOCK);
      if (!main || !PLAIN_FLAGS[main[156]!] || isZeroBlock(main)) return null;
      const body = this.src.peek(skip + BLOCK, meta.size)!;
      let local: PaxRecord[] = [];
      let longName: Buffer | undefined;
      let longLink: Buffer | undefined;
      if (meta.typeflag === TYPE_PAX) {
        // One copy of the header body; the record values are views of it.
        local = parsePaxRecords(Buffer.from(body), { offset: at, entry: meta.name.toString('latin1') });
      } else {
        if (meta.typeflag === TYPE_GNU_LONGNAME) longName = gnuLongValue(body);
        else longLink = gnuLongValue(body);
      }
      this.seq++;
      this.src.skipBuffered(skip + BLOCK + padded);
      this.remaining = 0;
      this.padding = 0;
      const mainAt = this.src.offset;
      this.src.skipBuffered(BLOCK);
      const raw = decodeHeader(main, { offset: mainAt }, o.maxEntrySize);
      return this.buildEntry(raw, mainAt, at, local, meta.typeflag === TYPE_PAX, longName, longLink);
    } catch (err) {
      this.failure = err;
      throw err;
    }
  }

  /** PAX number `key` (local records, then global ones), or `fallback` when there is none. */
  private paxNumber(local: PaxRecord[], key: string, fallback: number, max: number, entry: string, at: number): number {
    const v = lookup(local, this.globals, key);
    if (v === undefined) return fallback;
    const s = v.toString('latin1');
    if (!/^[0-9]{1,16}$/.test(s)) {
      this.fail(`entry "${entry}" at offset ${at}: PAX ${key} value ${JSON.stringify(s.slice(0, 40))} is not a valid number`, at, entry);
    }
    if (Number(s) > max) this.fail(`entry "${entry}" at offset ${at}: PAX ${key} value ${s} is too large (limit ${max})`, at, entry);
    return Number(s);
  }

  /** PAX time `key` (local records, then global ones), or undefined. */
  private paxTime(local: PaxRecord[], key: string, entry: string, at: number): TarTime | undefined {
    const v = lookup(local, this.globals, key);
    if (v === undefined) return undefined;
    const t = parsePaxTime(v.toString('latin1'));
    if (!t) this.fail(`entry "${entry}" at offset ${at}: PAX ${key} value ${JSON.stringify(v.toString('latin1'))} is not a valid time`, at, entry);
    return t;
  }

  private decodeText(bytes: Buffer, what: string, offset: number, entry?: string): string {
    if (bytes.length === 0) return '';
    if (this.opts.invalidUtf8 === 'replace' || isUtf8(bytes)) return bytes.toString('utf8');
    this.fail(`${what} at offset ${offset} is not valid UTF-8`, offset, entry ?? bytes.toString('latin1'));
  }

  private async readEntry(): Promise<TarEntry | undefined> {
    const src = this.src;
    const o = this.opts;
    let entryOffset = -1; // the first header that belongs to the entry ('g' headers do not)
    let local: PaxRecord[] = [];
    let longName: Buffer | undefined;
    let longLink: Buffer | undefined;
    let metaCount = 0;
    let metaBytes = 0;
    let hadPax = false;

    for (;;) {
      const at = src.offset;
      const block = src.take(BLOCK) ?? (await src.exact(BLOCK));
      if (block.length === 0) {
        if (metaCount > 0) this.fail(`truncated archive: extended header before offset ${at} is not followed by an entry`, at);
        if (o.requireEndMarker) this.fail(`truncated archive: input ends at offset ${at} without the end-of-archive blocks`, at);
        this.endInfo = { endOffset: at, entries: this.count, loneZeroBlock: false };
        return undefined;
      }
      if (block.length < BLOCK) this.fail(`truncated archive: header at offset ${at} has only ${block.length} of 512 bytes`, at);

      if (isZeroBlock(block)) {
        if (metaCount > 0) this.fail(`extended header before offset ${at} is followed by the end-of-archive marker`, at);
        // GNU tar, bsdtar and Python's tarfile all stop at the first zero block; so do we.
        // The second block is consumed when it is there and zero.
        const second = await src.exact(BLOCK);
        const lone = second.length !== BLOCK || !isZeroBlock(second);
        this.endInfo = { endOffset: src.offset, entries: this.count, loneZeroBlock: lone };
        return undefined;
      }

      const raw = decodeHeader(block, { offset: at }, o.maxEntrySize);
      const flag = raw.typeflag;
      if (entryOffset < 0 && flag !== TYPE_GLOBAL) entryOffset = at;
      if (flag === TYPE_PAX || flag === TYPE_GLOBAL || flag === TYPE_GNU_LONGNAME || flag === TYPE_GNU_LONGLINK) {
        metaCount++;
        const label = raw.name.toString('latin1');
        if (metaCount > o.maxMetaHeaders) {
          this.fail(`more than ${o.maxMetaHeaders} extended headers in a row at offset ${at}`, at, label);
        }
        if (raw.size > o.maxHeaderBytes) {
          this.fail(`${flagText(flag)} header at offset ${at} is ${raw.size} bytes, over the limit of ${o.maxHeaderBytes}`, at, label);
        }
        metaBytes += raw.size;
        if (metaBytes > o.maxHeaderBytes) {
          this.fail(`extended headers before offset ${at} total ${metaBytes} bytes, over the limit of ${o.maxHeaderBytes}`, at, label);
        }
        const body = src.take(raw.size) ?? (await src.exact(raw.size));
        if (body.length < raw.size) this.fail(`truncated archive: the body of the ${flagText(flag)} header at offset ${at} is incomplete`, at, label);
        const pad = (BLOCK - (raw.size % BLOCK)) % BLOCK;
        const padded = src.skipBuffered(pad);
        if (padded < pad && (await src.skip(pad - padded)) < pad - padded) {
          this.fail(`truncated archive: padding after the header at offset ${at} is missing`, at, label);
        }
        if (flag === TYPE_PAX || flag === TYPE_GLOBAL) {
          // One copy of the header body; the record values are views of it.
          const recs = parsePaxRecords(Buffer.from(body), { offset: at, entry: label });
          if (flag === TYPE_PAX) {
            hadPax = true;
            local = local.length === 0 ? recs : local.concat(recs);
          } else {
            this.globals = this.globals.concat(recs);
          }
        } else {
          const value = gnuLongValue(body);
          if (flag === TYPE_GNU_LONGNAME) longName = value;
          else longLink = value;
        }
        continue;
      }
      if (flag === TYPE_GNU_SPARSE || flag === TYPE_GNU_OLDLONGNAME) {
        throw notImplemented(`tar: GNU ${flagText(flag)} entries at offset ${at} are not supported`, {
          offset: at,
          entry: raw.name.toString('latin1'),
        });
      }
      return this.buildEntry(raw, at, entryOffset, local, hadPax, longName, longLink);
    }
  }

  private buildEntry(
    raw: RawHeader,
    at: number,
    entryOffset: number,
    local: PaxRecord[],
    hadPax: boolean,
    longName: Buffer | undefined,
    longLink: Buffer | undefined,
  ): TarEntry {
    const o = this.opts;
    const g = this.globals;
    // no PAX records (most entries of most layers): every value is the header block's
    const plain = local.length === 0 && g.length === 0;
    const nameBytes = lookup(local, g, 'path') ?? longName ?? raw.name;
    const name = this.decodeText(nameBytes, 'entry name', at);
    const entry = name;
    const linkBytes = lookup(local, g, 'linkpath') ?? longLink ?? raw.linkname;
    const linkname = this.decodeText(linkBytes, 'link name', at, entry);

    if (!plain) {
      for (const recs of [local, g]) {
        for (const r of recs) {
          if (r.key.startsWith('GNU.sparse.')) {
            throw notImplemented(`tar: GNU sparse entry "${entry}" at offset ${at} is not supported`, { entry, offset: at });
          }
        }
      }
    }

    // (no closures for the PAX lookups: two allocations per entry, for most entries unused)
    const size = plain ? raw.size : this.paxNumber(local, 'size', raw.size, o.maxEntrySize, entry, at);
    const type = typeOf(raw.typeflag, nameBytes);
    if (size !== 0 && HEADER_ONLY.has(type)) {
      this.fail(`entry "${entry}" at offset ${at}: a ${type} entry must have size 0 (has ${size})`, at, entry);
    }
    this.count++;
    if (this.count > o.maxEntries) this.fail(`more than ${o.maxEntries} entries (entry "${entry}" at offset ${at})`, at, entry);

    const unameBytes = lookup(local, g, 'uname') ?? raw.uname;
    const gnameBytes = lookup(local, g, 'gname') ?? raw.gname;
    const header: TarHeader = {
      name,
      linkname,
      type,
      typeflag: raw.typeflag,
      mode: raw.mode,
      uid: plain ? raw.uid : this.paxNumber(local, 'uid', raw.uid, Number.MAX_SAFE_INTEGER, entry, at),
      gid: plain ? raw.gid : this.paxNumber(local, 'gid', raw.gid, Number.MAX_SAFE_INTEGER, entry, at),
      size,
      mtime: (plain ? undefined : this.paxTime(local, 'mtime', entry, at)) ?? { sec: raw.mtime, nsec: 0 },
      uname: this.owners.get(unameBytes) ?? this.owners.put(unameBytes, this.decodeText(unameBytes, 'user name', at, entry)),
      gname: this.owners.get(gnameBytes) ?? this.owners.put(gnameBytes, this.decodeText(gnameBytes, 'group name', at, entry)),
      devmajor: raw.devmajor,
      devminor: raw.devminor,
      pax: local,
      globalPax: g,
      format: hadPax ? 'pax' : raw.magic,
    };
    if (!plain) {
      const atime = this.paxTime(local, 'atime', entry, at);
      if (atime) header.atime = atime;
      const ctime = this.paxTime(local, 'ctime', entry, at);
      if (ctime) header.ctime = ctime;
    }

    this.remaining = size;
    this.padding = (BLOCK - (size % BLOCK)) % BLOCK;
    this.currentName = entry;
    this.currentDataOffset = this.src.offset;
    return new ReaderEntry(this, header, entryOffset, at, this.src.offset, this.seq);
  }

  /** @internal The unread body of entry `token` if the current chunk holds all of it (then it is consumed). */
  takeBody(token: number, entry: string): Buffer | undefined {
    if (this.seq !== token) {
      throw invalidArgument(`tar: body of entry "${entry}" read after the next entry was requested`, { entry });
    }
    const b = this.src.take(this.remaining);
    if (b) this.remaining = 0;
    return b;
  }

  /** @internal Next body chunk of the entry with token `token`, or null when it is complete. */
  async bodyChunk(token: number, entry: string): Promise<Buffer | null> {
    if (this.seq !== token) {
      throw invalidArgument(`tar: body of entry "${entry}" read after the next entry was requested`, { entry });
    }
    if (this.remaining === 0) return null;
    const c = await this.src.chunk(this.remaining);
    if (!c) {
      const missing = this.remaining;
      this.remaining = 0;
      this.padding = 0;
      const err = invalidArgument(
        `tar: truncated archive: entry "${entry}" (data at offset ${this.currentDataOffset}) ends at offset ${this.src.offset}, ${missing} body bytes missing`,
        { entry, offset: this.src.offset },
      );
      this.failure = err;
      throw err;
    }
    this.remaining -= c.length;
    return c;
  }
}

class BodyIterator implements AsyncIterator<Buffer> {
  constructor(
    private readonly reader: TarReader,
    private readonly token: number,
    private readonly entry: string,
  ) {}
  async next(): Promise<IteratorResult<Buffer>> {
    const c = await this.reader.bodyChunk(this.token, this.entry);
    return c === null ? { done: true, value: undefined } : { done: false, value: c };
  }
  async return(): Promise<IteratorResult<Buffer>> {
    return { done: true, value: undefined };
  }
}

class ReaderEntry implements TarEntry {
  private used = false;

  constructor(
    private readonly reader: TarReader,
    readonly header: TarHeader,
    readonly offset: number,
    readonly headerOffset: number,
    readonly dataOffset: number,
    private readonly token: number,
  ) {}

  /** (made on demand: most consumers take bufferedBody() or readAll(), and entries are many) */
  get body(): AsyncIterable<Buffer> {
    return { [Symbol.asyncIterator]: () => this.iterator() };
  }

  private iterator(): AsyncIterator<Buffer> {
    const name = this.header.name;
    if (this.used) throw invalidArgument(`tar: body of entry "${name}" iterated twice`, { entry: name, offset: this.dataOffset });
    this.used = true;
    return new BodyIterator(this.reader, this.token, name);
  }

  bufferedBody(): Buffer | undefined {
    const name = this.header.name;
    if (this.used) throw invalidArgument(`tar: body of entry "${name}" iterated twice`, { entry: name, offset: this.dataOffset });
    const b = this.reader.takeBody(this.token, name);
    if (b) this.used = true;
    return b;
  }

  async readAll(max = 64 << 20): Promise<Buffer> {
    const size = this.header.size;
    const name = this.header.name;
    if (size > max) {
      throw invalidArgument(`tar: entry "${name}" is ${size} bytes, more than the ${max} bytes readAll accepts`, {
        entry: name,
        offset: this.headerOffset,
      });
    }
    const it = this.iterator();
    const parts: Buffer[] = [];
    for (;;) {
      const r = await it.next();
      if (r.done) break;
      parts.push(r.value);
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, size);
  }
}

/** Iterates the entries of a tar stream (see TarReader). */
export function readTar(source: ByteSourceInput, options?: TarReadOptions): AsyncGenerator<TarEntry, TarEndInfo | undefined> {
  return new TarReader(source, options)[Symbol.asyncIterator]();
}
