/**
 * Encoders and decoders for the CimFS v2 records (layouts in constants.ts; facts from
 * windows-layer-formats.md §3.1–3.2). Decoders validate only what a record can check about
 * itself; cross-record bounds are the reader's job.
 */
import { invalidArgument } from '../../services/errdefs.js';
import {
  CIM_MAGIC,
  COMMON_HEADER_SIZE,
  FILESYSTEM_HEADER_SIZE,
  FILESYSTEM_SIZE,
  FILE_SIZE,
  FILE_TABLE_DIR_ENTRY_SIZE,
  LINK_TABLE_HEADER_SIZE,
  MAX_BYTE_OFFSET,
  MAX_STREAM_LENGTH,
  NAME_OFFSET_SIZE,
  OBJECTID_HEADER_SIZE,
  REGION_HEADER_SIZE,
  REGION_SET_SIZE,
  STREAM_SIZE,
  STREAM_SPARSE_BIT,
  VERSION_MAJOR,
  VERSION_MINOR,
} from './constants.js';
import { readGuid, writeGuid } from '../guid.js';

// ---- region offsets -------------------------------------------------------------------------

export function regionOffset(index: number, byteOffset: number): bigint {
  if (index < 0 || index > 0xffff) throw invalidArgument(`region index ${index} out of range`);
  if (byteOffset < 0 || BigInt(byteOffset) > MAX_BYTE_OFFSET) throw invalidArgument(`byte offset ${byteOffset} out of range`);
  return (BigInt(index) << 48n) | BigInt(byteOffset);
}
export const offsetRegion = (o: bigint): number => Number(o >> 48n);
export const offsetByte = (o: bigint): number => Number(o & MAX_BYTE_OFFSET);
export const formatOffset = (o: bigint): string => `0x${o.toString(16)}`;

// ---- common header ---------------------------------------------------------------------------

export interface CommonHeader {
  headerLength: number;
  type: number;
  major: number;
  minor: number;
}

export function encodeCommonHeader(buf: Buffer, h: { headerLength: number; type: number }): void {
  CIM_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(h.headerLength, 8);
  buf.writeUInt8(h.type, 12);
  buf.writeUInt8(0, 13);
  buf.writeUInt16LE(0, 14);
  buf.writeUInt32LE(VERSION_MAJOR, 16);
  buf.writeUInt32LE(VERSION_MINOR, 20);
  buf.writeBigUInt64LE(0n, 24);
}

/** Decodes and checks magic, file type and major version; `what` names the file in errors. */
export function decodeCommonHeader(buf: Buffer, expectType: number, what: string): CommonHeader {
  if (buf.length < COMMON_HEADER_SIZE) throw invalidArgument(`${what}: truncated header (${buf.length} bytes)`, { offset: 0 });
  if (!buf.subarray(0, 8).equals(CIM_MAGIC)) {
    throw invalidArgument(`${what}: bad magic ${JSON.stringify(buf.subarray(0, 8).toString('latin1'))}, want "cimfile0"`, { offset: 0 });
  }
  const h: CommonHeader = {
    headerLength: buf.readUInt32LE(8),
    type: buf.readUInt8(12),
    major: buf.readUInt32LE(16),
    minor: buf.readUInt32LE(20),
  };
  if (h.type !== expectType) throw invalidArgument(`${what}: file type ${h.type}, want ${expectType}`, { offset: 12 });
  if (h.major !== VERSION_MAJOR) {
    throw invalidArgument(`${what}: unsupported CIM version ${h.major}.${h.minor} (only version 2 is supported)`, { offset: 16 });
  }
  return h;
}

// ---- region sets and the image (filesystem) header -------------------------------------------

export interface RegionSet {
  guid: string;
  count: number;
}

export function encodeRegionSet(buf: Buffer, off: number, rs: RegionSet): void {
  writeGuid(buf, off, rs.guid);
  buf.writeUInt16LE(rs.count, off + 16);
  buf.writeUInt16LE(0, off + 18);
  buf.writeUInt32LE(0, off + 20);
}

export function decodeRegionSet(buf: Buffer, off: number): RegionSet {
  return { guid: readGuid(buf, off), count: buf.readUInt16LE(off + 16) };
}

export interface ImageHeader {
  regions: RegionSet;
  filesystemOffset: bigint;
  parents: RegionSet[];
}

export function encodeImageHeader(h: ImageHeader): Buffer {
  const len = FILESYSTEM_HEADER_SIZE + REGION_SET_SIZE * h.parents.length;
  const buf = Buffer.alloc(len);
  encodeCommonHeader(buf, { headerLength: len, type: 0 });
  encodeRegionSet(buf, COMMON_HEADER_SIZE, h.regions);
  buf.writeBigUInt64LE(h.filesystemOffset, 56);
  buf.writeUInt32LE(0, 64);
  buf.writeUInt16LE(0, 68);
  buf.writeUInt16LE(h.parents.length, 70);
  h.parents.forEach((p, i) => encodeRegionSet(buf, FILESYSTEM_HEADER_SIZE + i * REGION_SET_SIZE, p));
  return buf;
}

// ---- region and object-ID file headers -------------------------------------------------------

export function encodeRegionHeader(index: number, regionType: number): Buffer {
  const buf = Buffer.alloc(REGION_HEADER_SIZE);
  encodeCommonHeader(buf, { headerLength: REGION_HEADER_SIZE, type: 1 });
  buf.writeUInt16LE(index, 32);
  buf.writeUInt8(regionType, 34);
  return buf;
}

export function encodeObjectIdHeader(index: number, regionType: number, tableOffset: number, count: number): Buffer {
  const buf = Buffer.alloc(OBJECTID_HEADER_SIZE);
  encodeCommonHeader(buf, { headerLength: OBJECTID_HEADER_SIZE, type: 2 });
  buf.writeUInt16LE(index, 32);
  buf.writeUInt8(regionType, 34);
  buf.writeUInt32LE(tableOffset, 40);
  buf.writeUInt32LE(count, 44);
  return buf;
}

// ---- filesystem object and file table directory ----------------------------------------------

export interface FilesystemObject {
  upcaseTableOffset: bigint;
  fileTableDirectoryOffset: bigint;
  fileTableDirectoryLength: number;
  rootDirectory: number;
}

export function encodeFilesystem(fs: FilesystemObject): Buffer {
  const buf = Buffer.alloc(FILESYSTEM_SIZE);
  buf.writeBigUInt64LE(fs.upcaseTableOffset, 0);
  buf.writeBigUInt64LE(fs.fileTableDirectoryOffset, 8);
  buf.writeUInt32LE(fs.fileTableDirectoryLength, 16);
  buf.writeUInt32LE(fs.rootDirectory, 20);
  return buf;
}

export function decodeFilesystem(buf: Buffer): FilesystemObject {
  return {
    upcaseTableOffset: buf.readBigUInt64LE(0),
    fileTableDirectoryOffset: buf.readBigUInt64LE(8),
    fileTableDirectoryLength: buf.readUInt32LE(16),
    rootDirectory: buf.readUInt32LE(20),
  };
}

export interface FileTableDirEntry {
  offset: bigint;
  count: number;
  entrySize: number;
}

export function encodeFileTableDirEntry(buf: Buffer, off: number, e: FileTableDirEntry): void {
  buf.writeBigUInt64LE(e.offset, off);
  buf.writeUInt16LE(e.count, off + 8);
  buf.writeUInt16LE(e.entrySize, off + 10);
  buf.writeUInt32LE(0, off + 12);
}

export function decodeFileTableDirEntry(buf: Buffer, off: number): FileTableDirEntry {
  return { offset: buf.readBigUInt64LE(off), count: buf.readUInt16LE(off + 8), entrySize: buf.readUInt16LE(off + 10) };
}
export { FILE_TABLE_DIR_ENTRY_SIZE };

// ---- streams and files -----------------------------------------------------------------------

export interface StreamRecord {
  dataOffset: bigint;
  length: bigint;
  type: number;
  sparse: boolean;
}

export const EMPTY_STREAM: StreamRecord = { dataOffset: 0n, length: 0n, type: 0, sparse: false };

export function encodeStream(buf: Buffer, off: number, s: StreamRecord): void {
  if (s.length < 0n || s.length > MAX_STREAM_LENGTH) throw invalidArgument(`stream length ${s.length} out of range`);
  buf.writeBigUInt64LE(s.dataOffset, off);
  buf.writeBigUInt64LE(s.length | (BigInt(s.type & 0xff) << 48n) | (s.sparse ? STREAM_SPARSE_BIT : 0n), off + 8);
}

export function decodeStream(buf: Buffer, off: number): StreamRecord {
  const lt = buf.readBigUInt64LE(off + 8);
  return {
    dataOffset: buf.readBigUInt64LE(off),
    length: lt & MAX_STREAM_LENGTH,
    type: Number((lt >> 48n) & 0xffn),
    sparse: (lt & STREAM_SPARSE_BIT) !== 0n,
  };
}
export { STREAM_SIZE };

export interface FileRecord {
  flags: number;
  eaLength: number;
  reparseTag: number;
  creationTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
  lastAccessTime: bigint;
  defaultStream: StreamRecord;
  sdOffset: bigint;
  eaOffset: bigint;
  reparseOffset: bigint;
  streamTableOffset: bigint;
  parentFileId: number;
  baseRegionIndex: number;
}

export function encodeFile(buf: Buffer, off: number, f: FileRecord): void {
  buf.writeUInt16LE(f.flags, off);
  buf.writeUInt16LE(f.eaLength, off + 2);
  buf.writeUInt32LE(f.reparseTag >>> 0, off + 4);
  buf.writeBigUInt64LE(f.creationTime, off + 8);
  buf.writeBigUInt64LE(f.lastWriteTime, off + 16);
  buf.writeBigUInt64LE(f.changeTime, off + 24);
  buf.writeBigUInt64LE(f.lastAccessTime, off + 32);
  encodeStream(buf, off + 40, f.defaultStream);
  buf.writeBigUInt64LE(f.sdOffset, off + 56);
  buf.writeBigUInt64LE(f.eaOffset, off + 64);
  buf.writeBigUInt64LE(f.reparseOffset, off + 72);
  buf.writeBigUInt64LE(f.streamTableOffset, off + 80);
  buf.writeUInt32LE(f.parentFileId, off + 88);
  buf.writeUInt16LE(f.baseRegionIndex, off + 92);
  buf.writeUInt16LE(0, off + 94);
}

/** Decodes a file record of `size` bytes (≥ 88; a v1-sized record has zero trailing fields). */
export function decodeFile(buf: Buffer, off: number, size: number): FileRecord {
  const b = Buffer.alloc(FILE_SIZE);
  buf.copy(b, 0, off, off + Math.min(size, FILE_SIZE));
  return {
    flags: b.readUInt16LE(0),
    eaLength: b.readUInt16LE(2),
    reparseTag: b.readUInt32LE(4),
    creationTime: b.readBigUInt64LE(8),
    lastWriteTime: b.readBigUInt64LE(16),
    changeTime: b.readBigUInt64LE(24),
    lastAccessTime: b.readBigUInt64LE(32),
    defaultStream: decodeStream(b, 40),
    sdOffset: b.readBigUInt64LE(56),
    eaOffset: b.readBigUInt64LE(64),
    reparseOffset: b.readBigUInt64LE(72),
    streamTableOffset: b.readBigUInt64LE(80),
    parentFileId: b.readUInt32LE(88),
    baseRegionIndex: b.readUInt16LE(92),
  };
}

// ---- link tables -----------------------------------------------------------------------------

export interface LinkEntry {
  name: string;
  /** The value: a FileID (4 bytes) for directories, a Stream (16 bytes) for stream tables. */
  value: Buffer;
}

/**
 * Builds a link table: {Length u32, LinkCount u32}, Values[], NameOffsets u32[], then the
 * names (u16 length in UTF-16 units + UTF-16LE), offsets relative to the table start.
 * `entries` must already be in upcase order.
 */
export function encodeLinkTable(entries: readonly LinkEntry[], valueSize: number): Buffer {
  const n = entries.length;
  const fixed = LINK_TABLE_HEADER_SIZE + n * (valueSize + NAME_OFFSET_SIZE);
  let namesLen = 0;
  for (const e of entries) namesLen += 2 + 2 * e.name.length;
  const total = fixed + namesLen;
  const buf = Buffer.alloc(total);
  buf.writeUInt32LE(total, 0);
  buf.writeUInt32LE(n, 4);
  let nameOff = fixed;
  entries.forEach((e, i) => {
    if (e.value.length !== valueSize) throw invalidArgument(`link table value of ${e.value.length} bytes, want ${valueSize}`);
    e.value.copy(buf, LINK_TABLE_HEADER_SIZE + i * valueSize);
    buf.writeUInt32LE(nameOff, LINK_TABLE_HEADER_SIZE + n * valueSize + i * NAME_OFFSET_SIZE);
    buf.writeUInt16LE(e.name.length, nameOff);
    buf.write(e.name, nameOff + 2, 'utf16le');
    nameOff += 2 + 2 * e.name.length;
  });
  return buf;
}
