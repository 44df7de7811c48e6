/**
 * The fixed-VHD footer (Microsoft "Virtual Hard Disk Image Format Specification" v1.0,
 * "Hard Disk Footer Format" and Appendix "CHS Calculation"): 512 big-endian bytes at the end
 * of the disk. Unlike hcsshim (geometry 0, which makes qemu see an empty disk), we write the
 * spec's CHS geometry; and because readers that follow the spec size a disk by its geometry
 * (qemu does for unknown creators), `chsExactSize` gives the smallest size ≥ n whose
 * geometry covers it exactly — callers pad the disk to it. The unique ID is derived from
 * content by default.
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../../services/errdefs.js';

export const VHD_FOOTER_SIZE = 512;
const COOKIE = 'conectix';
export const VHD_DISK_TYPE_FIXED = 2;
/** Creator application written by winsnap. */
export const VHD_CREATOR_APP = 'wnsp';

export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/** The spec's CHS algorithm for a disk of `size` bytes. */
export function chsGeometry(size: number): Geometry {
  let totalSectors = Math.floor(size / 512);
  if (totalSectors > 65535 * 16 * 255) totalSectors = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (totalSectors >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(totalSectors / spt);
  } else {
    spt = 17;
    cth = Math.floor(totalSectors / spt);
    heads = Math.floor((cth + 1023) / 1024);
    if (heads < 4) heads = 4;
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(totalSectors / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(totalSectors / spt);
    }
  }
  return { cylinders: Math.floor(cth / heads), heads, sectorsPerTrack: spt };
}

export const geometryBytes = (g: Geometry) => g.cylinders * g.heads * g.sectorsPerTrack * 512;

/** The smallest size ≥ n (a multiple of 512) that its own CHS geometry describes exactly. */
export function chsExactSize(n: number): number {
  let s = Math.ceil(n / 512) * 512;
  for (let i = 0; i < 10_000; i++) {
    const g = chsGeometry(s);
    if (geometryBytes(g) === s) return s;
    const step = g.heads * g.sectorsPerTrack * 512;
    s = Math.max(s + 512, Math.ceil(s / step) * step);
  }
  throw invalidArgument(`no CHS-exact size found near ${n}`);
}

export interface VhdFooter {
  currentSize: number;
  originalSize: number;
  geometry: Geometry;
  diskType: number;
  uniqueId: Buffer;
  creatorApp: string;
  checksum: number;
}

function checksumOf(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < VHD_FOOTER_SIZE; i++) if (i < 64 || i >= 68) sum += b[i]!;
  return ~sum >>> 0;
}

/** A fixed-disk footer for a disk of `size` bytes (`uniqueId`: default derived from `seed`). */
export function encodeVhdFooter(size: number, opts: { uniqueId?: Buffer; seed?: string } = {}): Buffer {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0) throw invalidArgument(`VHD size ${size} must be a positive multiple of 512`);
  const b = Buffer.alloc(VHD_FOOTER_SIZE);
  b.write(COOKIE, 0, 'latin1');
  b.writeUInt32BE(2, 8); // features: reserved bit
  b.writeUInt32BE(0x00010000, 12);
  b.writeBigUInt64BE(0xffffffffffffffffn, 16); // fixed disks have no data offset
  b.writeUInt32BE(0, 24); // timestamp: none (deterministic)
  b.write(VHD_CREATOR_APP, 28, 'latin1');
  b.writeUInt32BE(0x000a0000, 32);
  b.write('Wi2k', 36, 'latin1');
  b.writeBigUInt64BE(BigInt(size), 40);
  b.writeBigUInt64BE(BigInt(size), 48);
  const g = chsGeometry(size);
  b.writeUInt16BE(g.cylinders, 56);
  b.writeUInt8(g.heads, 58);
  b.writeUInt8(g.sectorsPerTrack, 59);
  b.writeUInt32BE(VHD_DISK_TYPE_FIXED, 60);
  const id = opts.uniqueId ?? createHash('sha256').update(`winsnap vhd\0${opts.seed ?? ''}\0${size}`).digest().subarray(0, 16);
  if (id.length !== 16) throw invalidArgument('VHD unique ID must be 16 bytes');
  id.copy(b, 68);
  b.writeUInt32BE(checksumOf(b), 64);
  return b;
}

/** Parses and validates a footer (the last 512 bytes of a fixed VHD). */
export function decodeVhdFooter(b: Buffer): VhdFooter {
  if (b.length !== VHD_FOOTER_SIZE) throw invalidArgument(`VHD footer must be 512 bytes, got ${b.length}`);
  if (b.toString('latin1', 0, 8) !== COOKIE) throw invalidArgument('VHD footer: bad cookie (expected "conectix")', { offset: 0 });
  const checksum = b.readUInt32BE(64);
  if (checksum !== checksumOf(b)) throw invalidArgument(`VHD footer: checksum ${checksum.toString(16)} does not match ${checksumOf(b).toString(16)}`, { offset: 64 });
  const version = b.readUInt32BE(12);
  if (version >>> 16 !== 1) throw invalidArgument(`VHD footer: unsupported version ${version.toString(16)}`, { offset: 12 });
  const currentSize = Number(b.readBigUInt64BE(48));
  return {
    currentSize,
    originalSize: Number(b.readBigUInt64BE(40)),
    geometry: { cylinders: b.readUInt16BE(56), heads: b.readUInt8(58), sectorsPerTrack: b.readUInt8(59) },
    diskType: b.readUInt32BE(60),
    uniqueId: Buffer.from(b.subarray(68, 84)),
    creatorApp: b.toString('latin1', 28, 32),
    checksum,
  };
}
