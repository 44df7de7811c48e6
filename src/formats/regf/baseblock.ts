/**
 * regf base block (the 4096-byte file header): parse, validate, build.
 *
 * Facts (msuhanov/regf spec, "Base block"): signature 'regf'; primary/secondary sequence numbers
 * (equal after a clean write); last written FILETIME at 12; version 1.x at 20/24; file type 0
 * (primary file) at 28; file format 1 at 32; root cell offset at 36 and hive bins data size at 40
 * (both relative to the end of the base block); clustering factor at 44; 64-byte UTF-16LE file
 * name at 48; flags at 144 (0x2: layered keys supported); XOR-32 checksum of bytes 0..507 at 508
 * (0xFFFFFFFF is written as 0xFFFFFFFE and 0 as 1). offreg writes 'OfRg' + flags 1 at 176/180 and
 * a serialization FILETIME at 512 (we read these, and write them only when asked).
 */
import { invalidArgument } from '../../services/errdefs.js';
import { BASE_BLOCK_SIZE, HBIN_ALIGN, SIG } from './constants.js';

export interface BaseBlock {
  primarySequence: number;
  secondarySequence: number;
  /** FILETIME (100 ns since 1601-01-01 UTC). */
  lastWritten: bigint;
  majorVersion: number;
  minorVersion: number;
  /** 0 = primary file; transaction logs use 1, 2 or 6. */
  fileType: number;
  fileFormat: number;
  /** Relative to the start of the hive bins data. */
  rootCellOffset: number;
  hiveBinsDataSize: number;
  clusteringFactor: number;
  /** The debug file name field, up to the first NUL. */
  fileName: string;
  /** Base block flags (0x1 KTM locked, 0x2 layered keys supported). */
  flags: number;
  checksum: number;
  /** offreg signature fields, when present ('OfRg' at 176 or, in offreg 6.1, at 168). */
  offreg?: { flags: number; serializedAt: bigint };
}

/** XOR-32 checksum of the first 508 bytes, with the two special values the spec describes. */
export function baseBlockChecksum(buf: Buffer): number {
  let c = 0;
  for (let i = 0; i < 508; i += 4) c ^= buf.readUInt32LE(i);
  c >>>= 0;
  if (c === 0xffffffff) return 0xfffffffe;
  if (c === 0) return 1;
  return c;
}

export interface ParseBaseBlockOptions {
  /** Accept a base block whose checksum does not match (default false). */
  ignoreChecksum?: boolean;
  /** Accept sequence numbers that differ (a dirty hive; logs are not replayed). Default false. */
  allowDirty?: boolean;
}

export function parseBaseBlock(buf: Buffer, opts: ParseBaseBlockOptions = {}): BaseBlock {
  if (buf.length < BASE_BLOCK_SIZE) {
    throw invalidArgument(`regf: file is ${buf.length} bytes, shorter than the 4096-byte base block`, { offset: 0 });
  }
  if (buf.readUInt32LE(0) !== SIG.regf) {
    throw invalidArgument(`regf: bad signature at offset 0 (expected 'regf')`, { offset: 0 });
  }
  const stored = buf.readUInt32LE(508);
  const computed = baseBlockChecksum(buf);
  if (stored !== computed && !opts.ignoreChecksum) {
    throw invalidArgument(
      `regf: base block checksum mismatch at offset 508 (stored 0x${stored.toString(16)}, computed 0x${computed.toString(16)})`,
      { offset: 508 },
    );
  }
  const bb: BaseBlock = {
    primarySequence: buf.readUInt32LE(4),
    secondarySequence: buf.readUInt32LE(8),
    lastWritten: buf.readBigUInt64LE(12),
    majorVersion: buf.readUInt32LE(20),
    minorVersion: buf.readUInt32LE(24),
    fileType: buf.readUInt32LE(28),
    fileFormat: buf.readUInt32LE(32),
    rootCellOffset: buf.readUInt32LE(36),
    hiveBinsDataSize: buf.readUInt32LE(40),
    clusteringFactor: buf.readUInt32LE(44),
    fileName: readUtf16z(buf, 48, 64),
    flags: buf.readUInt32LE(144),
    checksum: stored,
  };
  const ofrgAt = buf.readUInt32LE(176) === 0x6752664f ? 176 : buf.readUInt32LE(168) === 0x6752664f ? 168 : -1;
  if (ofrgAt >= 0) bb.offreg = { flags: buf.readUInt32LE(ofrgAt + 4), serializedAt: buf.readBigUInt64LE(512) };

  if (bb.majorVersion !== 1 || bb.minorVersion < 3 || bb.minorVersion > 6) {
    throw invalidArgument(
      `regf: unsupported hive version ${bb.majorVersion}.${bb.minorVersion} at offset 20 (supported 1.3 to 1.6)`,
      { offset: 20 },
    );
  }
  if (bb.fileType !== 0) {
    throw invalidArgument(`regf: file type ${bb.fileType} at offset 28 is not a primary hive file (transaction log?)`, {
      offset: 28,
    });
  }
  if (bb.fileFormat !== 1) {
    throw invalidArgument(`regf: file format ${bb.fileFormat} at offset 32 is not 1 (direct memory load)`, { offset: 32 });
  }
  if (bb.primarySequence !== bb.secondarySequence && !opts.allowDirty) {
    throw invalidArgument(
      `regf: hive is dirty (sequence numbers ${bb.primarySequence} != ${bb.secondarySequence} at offset 4); ` +
        'transaction log recovery is not supported',
      { offset: 4 },
    );
  }
  if (bb.hiveBinsDataSize === 0 || bb.hiveBinsDataSize % HBIN_ALIGN !== 0) {
    throw invalidArgument(`regf: hive bins data size ${bb.hiveBinsDataSize} at offset 40 is not a positive multiple of 4096`, {
      offset: 40,
    });
  }
  if (BASE_BLOCK_SIZE + bb.hiveBinsDataSize > buf.length) {
    throw invalidArgument(
      `regf: hive bins data size ${bb.hiveBinsDataSize} at offset 40 runs past the end of the ${buf.length}-byte file (truncated hive?)`,
      { offset: 40 },
    );
  }
  if (bb.rootCellOffset >= bb.hiveBinsDataSize) {
    throw invalidArgument(`regf: root cell offset 0x${bb.rootCellOffset.toString(16)} at offset 36 is outside the hive bins`, {
      offset: 36,
    });
  }
  return bb;
}

function readUtf16z(buf: Buffer, off: number, len: number): string {
  let end = off;
  while (end + 1 < off + len && (buf[end] !== 0 || buf[end + 1] !== 0)) end += 2;
  return buf.toString('utf16le', off, end);
}

export interface BuildBaseBlockFields {
  sequence: number;
  lastWritten: bigint;
  minorVersion: number;
  rootCellOffset: number;
  hiveBinsDataSize: number;
  fileName: string;
  flags: number;
  /** Write offreg's 'OfRg' signature with this serialization FILETIME. */
  offregSerializedAt?: bigint;
}

/** A complete 4096-byte base block with a valid checksum. */
export function buildBaseBlock(f: BuildBaseBlockFields): Buffer {
  const b = Buffer.alloc(BASE_BLOCK_SIZE);
  b.writeUInt32LE(SIG.regf, 0);
  b.writeUInt32LE(f.sequence >>> 0, 4);
  b.writeUInt32LE(f.sequence >>> 0, 8);
  b.writeBigUInt64LE(f.lastWritten, 12);
  b.writeUInt32LE(1, 20);
  b.writeUInt32LE(f.minorVersion, 24);
  b.writeUInt32LE(0, 28);
  b.writeUInt32LE(1, 32);
  b.writeUInt32LE(f.rootCellOffset, 36);
  b.writeUInt32LE(f.hiveBinsDataSize, 40);
  b.writeUInt32LE(1, 44);
  const name = Buffer.from(f.fileName, 'utf16le');
  name.copy(b, 48, 0, Math.min(name.length & ~1, 62));
  b.writeUInt32LE(f.flags >>> 0, 144);
  if (f.offregSerializedAt !== undefined) {
    b.writeUInt32LE(0x6752664f, 176);
    b.writeUInt32LE(1, 180);
    b.writeBigUInt64LE(f.offregSerializedAt, 512);
  }
  b.writeUInt32LE(baseBlockChecksum(b), 508);
  return b;
}
