/**
 * Win32 backup streams (BackupRead/BackupWrite format): a sequence of WIN32_STREAM_ID
 * headers, each a packed 20-byte little-endian header (StreamId u32, StreamAttributes u32,
 * Size u64, NameSize u32) followed by NameSize bytes of UTF-16LE name (no NUL) and Size
 * bytes of data, with no padding. A BACKUP_SPARSE_BLOCK's Size includes a leading u64
 * offset of the block within the file.
 * Facts: windows-layer-formats.md §1.5 and §1.4 (stream order written from a tar entry).
 */
import { invalidArgument } from '../../services/errdefs.js';
import { ByteSource, type ByteSourceInput } from '../tar/source.js';
import { BackupStreamId } from './constants.js';
import { encodeEaBuffer } from './ea.js';
import { encodeReparsePoint } from './reparse.js';
import type { WindowsEntry } from './entry.js';

export const BACKUP_HEADER_SIZE = 20;
const SPARSE_OFFSET_SIZE = 8;
const DEFAULT_MAX_NAME = 64 * 1024;

export interface BackupStreamHeader {
  id: number;
  attributes: number;
  /** Size of the stream data in bytes (for SPARSE_BLOCK: including the 8-byte offset). */
  size: number;
  /** Stream name (e.g. ":stream:$DATA" for ALTERNATE_DATA), '' if none. */
  name: string;
}

export function encodeBackupStreamHeader(h: BackupStreamHeader): Buffer {
  const name = Buffer.from(h.name, 'utf16le');
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw invalidArgument(`backup stream: size ${h.size} out of range`);
  for (const [k, v] of [['id', h.id], ['attributes', h.attributes]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw invalidArgument(`backup stream: ${k} ${v} out of range`);
  }
  const out = Buffer.alloc(BACKUP_HEADER_SIZE + name.length);
  out.writeUInt32LE(h.id, 0);
  out.writeUInt32LE(h.attributes, 4);
  out.writeBigUInt64LE(BigInt(h.size), 8);
  out.writeUInt32LE(name.length, 16);
  name.copy(out, BACKUP_HEADER_SIZE);
  return out;
}

/** Decodes the header at `pos` of `buf`; returns it and the offset of its data. */
export function decodeBackupStreamHeader(buf: Buffer, pos = 0, base = 0, maxName = DEFAULT_MAX_NAME): { header: BackupStreamHeader; dataOffset: number } {
  const at = base + pos;
  if (buf.length - pos < BACKUP_HEADER_SIZE) {
    throw invalidArgument(`backup stream: truncated stream header at offset ${at} (${buf.length - pos} of 20 bytes)`, { offset: at });
  }
  const id = buf.readUInt32LE(pos);
  const attributes = buf.readUInt32LE(pos + 4);
  const size64 = buf.readBigUInt64LE(pos + 8);
  const nameSize = buf.readUInt32LE(pos + 16);
  if (size64 > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`backup stream: stream at offset ${at} has absurd size ${size64}`, { offset: at });
  if (nameSize % 2 !== 0) throw invalidArgument(`backup stream: stream at offset ${at} has odd name size ${nameSize}`, { offset: at });
  if (nameSize > maxName) throw invalidArgument(`backup stream: stream at offset ${at} has name size ${nameSize} over the limit ${maxName}`, { offset: at });
  const nameEnd = pos + BACKUP_HEADER_SIZE + nameSize;
  if (nameEnd > buf.length) throw invalidArgument(`backup stream: truncated stream name at offset ${at + BACKUP_HEADER_SIZE}`, { offset: at });
  const header = { id, attributes, size: Number(size64), name: buf.subarray(pos + BACKUP_HEADER_SIZE, nameEnd).toString('utf16le') };
  if (id === BackupStreamId.SPARSE_BLOCK && header.size < SPARSE_OFFSET_SIZE) {
    throw invalidArgument(`backup stream: sparse block at offset ${at} has size ${header.size}, less than its 8-byte offset`, { offset: at });
  }
  return { header, dataOffset: nameEnd };
}

export interface BackupStreamRecord {
  header: BackupStreamHeader;
  /** Offset of the stream header. */
  offset: number;
  /** For SPARSE_BLOCK: the block's offset in the file. */
  sparseOffset?: number;
  /** Stream data (for SPARSE_BLOCK: without the 8-byte offset). A view of the input. */
  data: Buffer;
}

function sparseOffsetOf(b: Buffer, at: number): number {
  const v = b.readBigUInt64LE(0);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`backup stream: sparse block at offset ${at} has absurd offset ${v}`, { offset: at });
  return Number(v);
}

/** Decodes a whole backup stream held in memory. Strict: it must end exactly after a stream. */
export function decodeBackupStream(buf: Buffer): BackupStreamRecord[] {
  const out: BackupStreamRecord[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const { header, dataOffset } = decodeBackupStreamHeader(buf, pos);
    const end = dataOffset + header.size;
    if (end > buf.length) {
      throw invalidArgument(`backup stream: stream at offset ${pos} needs ${header.size} data bytes, ${buf.length - dataOffset} left`, { offset: pos });
    }
    const rec: BackupStreamRecord = { header, offset: pos, data: buf.subarray(dataOffset, end) };
    if (header.id === BackupStreamId.SPARSE_BLOCK) {
      rec.sparseOffset = sparseOffsetOf(rec.data, pos);
      rec.data = rec.data.subarray(SPARSE_OFFSET_SIZE);
    }
    out.push(rec);
    pos = end;
  }
  return out;
}

export interface BackupStreamPart {
  header: BackupStreamHeader;
  offset: number;
  sparseOffset?: number;
  /** Data bytes (for SPARSE_BLOCK: without the offset); iterable once, until the next part. */
  body: AsyncIterable<Buffer>;
  readAll(max?: number): Promise<Buffer>;
}

/** Streams the parts of a backup stream; unread data is skipped when the next part is requested. */
export async function* readBackupStream(source: ByteSourceInput, opts: { maxNameBytes?: number } = {}): AsyncGenerator<BackupStreamPart> {
  const src = new ByteSource(source);
  let remaining = 0;
  let seq = 0;
  for (;;) {
    if (remaining > 0) {
      const want = remaining;
      remaining = 0;
      if ((await src.skip(want)) < want) {
        throw invalidArgument(`backup stream: truncated stream data (input ends at offset ${src.offset})`, { offset: src.offset });
      }
    }
    seq++;
    const at = src.offset;
    const fixed = await src.exact(BACKUP_HEADER_SIZE);
    if (fixed.length === 0) return;
    if (fixed.length < BACKUP_HEADER_SIZE) {
      throw invalidArgument(`backup stream: truncated stream header at offset ${at} (${fixed.length} of 20 bytes)`, { offset: at });
    }
    const nameSize = fixed.readUInt32LE(16);
    const maxName = opts.maxNameBytes ?? DEFAULT_MAX_NAME;
    if (nameSize > maxName) throw invalidArgument(`backup stream: stream at offset ${at} has name size ${nameSize} over the limit ${maxName}`, { offset: at });
    const name = await src.exact(nameSize);
    const { header } = decodeBackupStreamHeader(Buffer.concat([fixed, name]), 0, at, maxName);
    let dataSize = header.size;
    let sparseOffset: number | undefined;
    if (header.id === BackupStreamId.SPARSE_BLOCK) {
      const off = await src.exact(SPARSE_OFFSET_SIZE);
      if (off.length < SPARSE_OFFSET_SIZE) throw invalidArgument(`backup stream: truncated sparse block offset at offset ${at}`, { offset: at });
      sparseOffset = sparseOffsetOf(off, at);
      dataSize -= SPARSE_OFFSET_SIZE;
    }
    remaining = dataSize;
    const token = seq;
    let used = false;
    async function* chunks(): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        if (seq !== token) throw invalidArgument(`backup stream: data of the stream at offset ${at} read after the next stream was requested`, { offset: at });
        const c = await src.chunk(remaining);
        if (!c) throw invalidArgument(`backup stream: truncated data of the stream at offset ${at} (input ends at offset ${src.offset})`, { offset: src.offset });
        remaining -= c.length;
        yield c;
      }
    }
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]() {
        if (used) throw invalidArgument(`backup stream: data of the stream at offset ${at} iterated twice`, { offset: at });
        used = true;
        return chunks();
      },
    };
    const part: BackupStreamPart = {
      header,
      offset: at,
      body,
      async readAll(max = 64 << 20) {
        if (dataSize > max) throw invalidArgument(`backup stream: stream at offset ${at} is ${dataSize} bytes, over ${max}`, { offset: at });
        const parts: Buffer[] = [];
        for await (const c of body) parts.push(c);
        return Buffer.concat(parts, dataSize);
      },
    };
    if (sparseOffset !== undefined) part.sparseOffset = sparseOffset;
    yield part;
  }
}

export type StreamData = Buffer | AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>;

export interface BackupStreamInput {
  id: number;
  attributes?: number;
  name?: string;
  /** Data size (for SPARSE_BLOCK: without the offset). Defaults to data.length for Buffers. */
  size?: number;
  sparseOffset?: number;
  data?: StreamData;
}

/** Encodes streams into backup-stream bytes; each data source must deliver exactly `size` bytes. */
export async function* encodeBackupStream(streams: AsyncIterable<BackupStreamInput> | Iterable<BackupStreamInput>): AsyncGenerator<Buffer> {
  for await (const s of streams as AsyncIterable<BackupStreamInput>) {
    const size = s.size ?? (Buffer.isBuffer(s.data) ? s.data.length : undefined);
    if (size === undefined) throw invalidArgument(`backup stream: stream ${s.id} needs a size`);
    const sparse = s.id === BackupStreamId.SPARSE_BLOCK;
    if (sparse && s.sparseOffset === undefined) throw invalidArgument('backup stream: a sparse block needs sparseOffset');
    const head = encodeBackupStreamHeader({ id: s.id, attributes: s.attributes ?? 0, size: size + (sparse ? SPARSE_OFFSET_SIZE : 0), name: s.name ?? '' });
    if (sparse) {
      const off = Buffer.alloc(SPARSE_OFFSET_SIZE);
      off.writeBigUInt64LE(BigInt(s.sparseOffset!));
      yield Buffer.concat([head, off]);
    } else {
      yield head;
    }
    if (s.data === undefined) {
      if (size !== 0) throw invalidArgument(`backup stream: stream ${s.id} has size ${size} but no data`);
      continue;
    }
    if (Buffer.isBuffer(s.data)) {
      if (s.data.length !== size) throw invalidArgument(`backup stream: stream ${s.id} data is ${s.data.length} bytes, size says ${size}`);
      if (size > 0) yield s.data;
      continue;
    }
    let got = 0;
    for await (const c of s.data as AsyncIterable<Buffer | Uint8Array>) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      got += b.length;
      if (got > size) throw invalidArgument(`backup stream: stream ${s.id} data is longer than its size ${size}`);
      if (b.length > 0) yield b;
    }
    if (got !== size) throw invalidArgument(`backup stream: stream ${s.id} data is ${got} bytes, size says ${size}`);
  }
}

export interface AlternateStreamInput {
  /** Stream name without colons or the ":$DATA" suffix. */
  name: string;
  size: number;
  data: StreamData;
}

/**
 * The backup stream BackupWrite expects for a Windows entry, in go-winio's order (§1.4):
 * SECURITY (if an SD), EA (if EAs), REPARSE (symlinks and junctions), DATA (files),
 * then one ALTERNATE_DATA stream ":<name>:$DATA" per alternate stream.
 */
export function windowsEntryBackupStream(
  entry: WindowsEntry,
  data?: StreamData,
  alternateStreams: readonly AlternateStreamInput[] = [],
): AsyncGenerator<Buffer> {
  const streams: BackupStreamInput[] = [];
  if (entry.securityDescriptor && entry.securityDescriptor.length > 0) {
    streams.push({ id: BackupStreamId.SECURITY_DATA, data: entry.securityDescriptor });
  }
  if (entry.eas.length > 0) streams.push({ id: BackupStreamId.EA_DATA, data: encodeEaBuffer(entry.eas) });
  if (entry.kind === 'symlink' || entry.kind === 'junction') {
    const rp = entry.reparseBuffer ?? encodeReparsePoint({ target: entry.linkTarget ?? '', isMountPoint: entry.kind === 'junction' });
    streams.push({ id: BackupStreamId.REPARSE_DATA, data: rp });
  }
  if (entry.kind === 'file') {
    const s: BackupStreamInput = { id: BackupStreamId.DATA, size: entry.size };
    if (data !== undefined) s.data = data;
    streams.push(s);
  }
  for (const a of alternateStreams) {
    if (a.name === '' || a.name.includes(':')) throw invalidArgument(`backup stream: bad alternate stream name ${JSON.stringify(a.name)}`);
    streams.push({ id: BackupStreamId.ALTERNATE_DATA, name: `:${a.name}:$DATA`, size: a.size, data: a.data });
  }
  return encodeBackupStream(streams);
}
