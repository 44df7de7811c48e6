/**
 * Encoders and validating parsers for the fixed VHDX structures (MS-VHDX §2.2.1 file type
 * identifier, §2.2.2 headers, §2.2.3 region table, §2.6.1 metadata table, §2.6.2 known
 * metadata items, §2.6.2.6 parent locator). Every parse error names the structure and the
 * byte offset in the file.
 */
import { crc32c } from '../checksum.js';
import { invalidArgument } from '../../services/errdefs.js';
import {
  FP_HAS_PARENT,
  FP_LEAVE_BLOCK_ALLOCATED,
  HEADER_SIZE,
  META_FLAG_IS_REQUIRED,
  META_FLAG_IS_USER,
  META_FLAG_IS_VIRTUAL_DISK,
  METADATA_MAX_ENTRIES,
  METADATA_TABLE_SIZE,
  REGION_TABLE_MAX_ENTRIES,
  REGION_TABLE_SIZE,
  SIG_FILE,
  SIG_HEADER,
  SIG_METADATA,
  SIG_REGION,
} from './constants.js';
import { readGuid, writeGuid, type Guid } from './guid.js';

/** CRC-32C of buf with the 4-byte checksum field at crcOffset taken as zero. */
export function checksumWithZeroField(buf: Buffer, crcOffset: number): number {
  const saved = buf.readUInt32LE(crcOffset);
  buf.writeUInt32LE(0, crcOffset);
  const crc = crc32c(buf);
  buf.writeUInt32LE(saved, crcOffset);
  return crc;
}

/** Stores the CRC-32C of buf (checksum field zeroed) into the field. */
export function sealChecksum(buf: Buffer, crcOffset: number): void {
  buf.writeUInt32LE(0, crcOffset);
  buf.writeUInt32LE(crc32c(buf), crcOffset);
}

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

// ---------------------------------------------------------------- file type identifier (§2.2.1)

export function encodeFileIdentifier(creator: string): Buffer {
  const b = Buffer.alloc(64 * 1024);
  b.write(SIG_FILE, 0, 'ascii');
  const c = Buffer.from(creator, 'utf16le');
  c.copy(b, 8, 0, Math.min(c.length, 510));
  return b;
}

export function parseFileIdentifier(buf: Buffer): { creator: string } {
  if (buf.length < 8 || buf.toString('ascii', 0, 8) !== SIG_FILE) {
    throw invalidArgument(
      `not a VHDX file: file type identifier at offset 0 is ${JSON.stringify(buf.toString('latin1', 0, 8))}, expected "vhdxfile"`,
      { offset: 0 },
    );
  }
  const raw = buf.subarray(8, 520).toString('utf16le');
  const nul = raw.indexOf('\0');
  return { creator: nul >= 0 ? raw.slice(0, nul) : raw };
}

// ---------------------------------------------------------------- headers (§2.2.2)

export interface VhdxHeader {
  sequenceNumber: bigint;
  fileWriteGuid: Guid;
  dataWriteGuid: Guid;
  logGuid: Guid;
  logVersion: number;
  version: number;
  logLength: number;
  logOffset: number;
}

export function encodeHeader(h: VhdxHeader): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.write(SIG_HEADER, 0, 'ascii');
  b.writeBigUInt64LE(h.sequenceNumber, 8);
  writeGuid(b, 16, h.fileWriteGuid);
  writeGuid(b, 32, h.dataWriteGuid);
  writeGuid(b, 48, h.logGuid);
  b.writeUInt16LE(h.logVersion, 64);
  b.writeUInt16LE(h.version, 66);
  b.writeUInt32LE(h.logLength, 68);
  b.writeBigUInt64LE(BigInt(h.logOffset), 72);
  sealChecksum(b, 4);
  return b;
}

/** Parses one 4 KiB header; returns the reason it is invalid instead of throwing. */
export function parseHeader(buf: Buffer, fileOffset: number): { header?: VhdxHeader; problem?: string } {
  if (buf.length < HEADER_SIZE) return { problem: `header at offset ${fileOffset} is truncated` };
  const b = buf.subarray(0, HEADER_SIZE);
  const sig = b.toString('latin1', 0, 4);
  if (sig !== SIG_HEADER) return { problem: `header at offset ${fileOffset}: bad signature ${JSON.stringify(sig)}, expected "head"` };
  const stored = b.readUInt32LE(4);
  const computed = checksumWithZeroField(Buffer.from(b), 4);
  if (stored !== computed) {
    return { problem: `header at offset ${fileOffset}: CRC-32C mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})` };
  }
  const header: VhdxHeader = {
    sequenceNumber: b.readBigUInt64LE(8),
    fileWriteGuid: readGuid(b, 16),
    dataWriteGuid: readGuid(b, 32),
    logGuid: readGuid(b, 48),
    logVersion: b.readUInt16LE(64),
    version: b.readUInt16LE(66),
    logLength: b.readUInt32LE(68),
    logOffset: Number(b.readBigUInt64LE(72)),
  };
  if (header.version !== 1) return { problem: `header at offset ${fileOffset}: unsupported Version ${header.version} (MS-VHDX requires 1)` };
  return { header };
}

/**
 * Picks the current header (§2.2.2): the only valid one, or the valid one with the greater
 * SequenceNumber. Two valid headers with equal sequence numbers are accepted only when identical.
 */
export function selectCurrentHeader(
  h1: { header?: VhdxHeader; problem?: string },
  h2: { header?: VhdxHeader; problem?: string },
): { header: VhdxHeader; index: 0 | 1 } {
  if (h1.header && h2.header) {
    if (h1.header.sequenceNumber > h2.header.sequenceNumber) return { header: h1.header, index: 0 };
    if (h2.header.sequenceNumber > h1.header.sequenceNumber) return { header: h2.header, index: 1 };
    if (JSON.stringify(h1.header, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ===
        JSON.stringify(h2.header, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))) {
      return { header: h1.header, index: 0 };
    }
    throw invalidArgument(`corrupt VHDX: both headers are valid with the same SequenceNumber ${h1.header.sequenceNumber} but differ`, { offset: 65536 });
  }
  if (h1.header) return { header: h1.header, index: 0 };
  if (h2.header) return { header: h2.header, index: 1 };
  throw invalidArgument(`corrupt VHDX: no valid header (${h1.problem}; ${h2.problem})`, { offset: 65536 });
}

// ---------------------------------------------------------------- region table (§2.2.3)

export interface RegionEntry {
  guid: Guid;
  fileOffset: number;
  length: number;
  required: boolean;
}

export function encodeRegionTable(entries: RegionEntry[]): Buffer {
  const b = Buffer.alloc(REGION_TABLE_SIZE);
  b.write(SIG_REGION, 0, 'ascii');
  b.writeUInt32LE(entries.length, 8);
  entries.forEach((e, i) => {
    const o = 16 + 32 * i;
    writeGuid(b, o, e.guid);
    b.writeBigUInt64LE(BigInt(e.fileOffset), o + 16);
    b.writeUInt32LE(e.length, o + 24);
    b.writeUInt32LE(e.required ? 1 : 0, o + 28);
  });
  sealChecksum(b, 4);
  return b;
}

export function parseRegionTable(buf: Buffer, fileOffset: number): { entries?: RegionEntry[]; problem?: string } {
  if (buf.length < REGION_TABLE_SIZE) return { problem: `region table at offset ${fileOffset} is truncated` };
  const b = buf.subarray(0, REGION_TABLE_SIZE);
  const sig = b.toString('latin1', 0, 4);
  if (sig !== SIG_REGION) return { problem: `region table at offset ${fileOffset}: bad signature ${JSON.stringify(sig)}, expected "regi"` };
  const stored = b.readUInt32LE(4);
  const computed = checksumWithZeroField(Buffer.from(b), 4);
  if (stored !== computed) {
    return { problem: `region table at offset ${fileOffset}: CRC-32C mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})` };
  }
  const count = b.readUInt32LE(8);
  if (count > REGION_TABLE_MAX_ENTRIES) return { problem: `region table at offset ${fileOffset}: EntryCount ${count} exceeds 2047` };
  const entries: RegionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 16 + 32 * i;
    entries.push({
      guid: readGuid(b, o),
      fileOffset: Number(b.readBigUInt64LE(o + 16)),
      length: b.readUInt32LE(o + 24),
      required: (b.readUInt32LE(o + 28) & 1) === 1,
    });
  }
  return { entries };
}

// ---------------------------------------------------------------- metadata table (§2.6.1)

export interface MetadataEntry {
  itemId: Guid;
  offset: number;
  length: number;
  isUser: boolean;
  isVirtualDisk: boolean;
  isRequired: boolean;
}

/** Builds the 64 KiB metadata table for the given entries. */
export function encodeMetadataTable(entries: MetadataEntry[]): Buffer {
  const b = Buffer.alloc(METADATA_TABLE_SIZE);
  b.write(SIG_METADATA, 0, 'ascii');
  b.writeUInt16LE(entries.length, 10);
  entries.forEach((e, i) => {
    const o = 32 + 32 * i;
    writeGuid(b, o, e.itemId);
    b.writeUInt32LE(e.offset, o + 16);
    b.writeUInt32LE(e.length, o + 20);
    b.writeUInt32LE(
      (e.isUser ? META_FLAG_IS_USER : 0) | (e.isVirtualDisk ? META_FLAG_IS_VIRTUAL_DISK : 0) | (e.isRequired ? META_FLAG_IS_REQUIRED : 0),
      o + 24,
    );
  });
  return b;
}

export function parseMetadataTable(buf: Buffer, fileOffset: number): MetadataEntry[] {
  const sig = buf.toString('latin1', 0, 8);
  if (sig !== SIG_METADATA) {
    throw invalidArgument(`corrupt VHDX: metadata table at offset ${fileOffset}: bad signature ${JSON.stringify(sig)}, expected "metadata"`, { offset: fileOffset });
  }
  const count = buf.readUInt16LE(10);
  if (count > METADATA_MAX_ENTRIES) {
    throw invalidArgument(`corrupt VHDX: metadata table at offset ${fileOffset}: EntryCount ${count} exceeds 2047`, { offset: fileOffset });
  }
  const out: MetadataEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = 32 + 32 * i;
    const flags = buf.readUInt32LE(o + 24);
    out.push({
      itemId: readGuid(buf, o),
      offset: buf.readUInt32LE(o + 16),
      length: buf.readUInt32LE(o + 20),
      isUser: (flags & META_FLAG_IS_USER) !== 0,
      isVirtualDisk: (flags & META_FLAG_IS_VIRTUAL_DISK) !== 0,
      isRequired: (flags & META_FLAG_IS_REQUIRED) !== 0,
    });
  }
  return out;
}

// ---------------------------------------------------------------- known metadata items (§2.6.2)

export interface FileParameters {
  blockSize: number;
  leaveBlockAllocated: boolean;
  hasParent: boolean;
}

export function encodeFileParameters(p: FileParameters): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(p.blockSize, 0);
  b.writeUInt32LE((p.leaveBlockAllocated ? FP_LEAVE_BLOCK_ALLOCATED : 0) | (p.hasParent ? FP_HAS_PARENT : 0), 4);
  return b;
}

export function parseFileParameters(b: Buffer): FileParameters {
  const flags = b.readUInt32LE(4);
  return { blockSize: b.readUInt32LE(0), leaveBlockAllocated: (flags & FP_LEAVE_BLOCK_ALLOCATED) !== 0, hasParent: (flags & FP_HAS_PARENT) !== 0 };
}

// ---------------------------------------------------------------- parent locator (§2.6.2.6)

export interface ParentLocator {
  locatorType: Guid;
  /** Key → value, in file order. */
  entries: [string, string][];
}

export function encodeParentLocator(loc: ParentLocator): Buffer {
  const n = loc.entries.length;
  const tableEnd = 20 + 12 * n;
  const strings: Buffer[] = [];
  const b0 = Buffer.alloc(tableEnd);
  writeGuid(b0, 0, loc.locatorType);
  b0.writeUInt16LE(n, 18);
  let pos = tableEnd;
  loc.entries.forEach(([k, v], i) => {
    const kb = Buffer.from(k, 'utf16le');
    const vb = Buffer.from(v, 'utf16le');
    if (kb.length === 0 || vb.length === 0 || kb.length > 0xffff || vb.length > 0xffff) {
      throw invalidArgument(`parent locator entry ${JSON.stringify(k)}: key and value must be 1..65535 bytes`);
    }
    const o = 20 + 12 * i;
    b0.writeUInt32LE(pos, o);
    b0.writeUInt32LE(pos + kb.length, o + 4);
    b0.writeUInt16LE(kb.length, o + 8);
    b0.writeUInt16LE(vb.length, o + 10);
    strings.push(kb, vb);
    pos += kb.length + vb.length;
  });
  return Buffer.concat([b0, ...strings]);
}

export function parseParentLocator(b: Buffer, fileOffset: number): ParentLocator {
  const bad = (why: string) => invalidArgument(`corrupt VHDX: parent locator at offset ${fileOffset}: ${why}`, { offset: fileOffset });
  if (b.length < 20) throw bad('shorter than its 20-byte header');
  const n = b.readUInt16LE(18);
  if (20 + 12 * n > b.length) throw bad(`${n} entries do not fit in ${b.length} bytes`);
  const entries: [string, string][] = [];
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const o = 20 + 12 * i;
    const ko = b.readUInt32LE(o);
    const vo = b.readUInt32LE(o + 4);
    const kl = b.readUInt16LE(o + 8);
    const vl = b.readUInt16LE(o + 10);
    if (ko === 0 || vo === 0 || kl === 0 || vl === 0) throw bad(`entry ${i} has a zero offset or length`);
    if (ko + kl > b.length || vo + vl > b.length) throw bad(`entry ${i} points past the item's end`);
    const k = b.toString('utf16le', ko, ko + kl);
    if (seen.has(k)) throw bad(`duplicate key ${JSON.stringify(k)}`);
    seen.add(k);
    entries.push([k, b.toString('utf16le', vo, vo + vl)]);
  }
  return { locatorType: readGuid(b, 0), entries };
}
