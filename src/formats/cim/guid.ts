/**
 * GUIDs as CimFS stores them: on disk in the mixed-endian Windows form (Data1 u32 LE, Data2 u16
 * LE, Data3 u16 LE, Data4[8] as is); in file names (`region_<guid>_<i>`) as lowercase
 * 8-4-4-4-12 (windows-layer-formats.md §3.1).
 *
 * Deterministic GUIDs: `deriveCimGuid(parts)` = the first 16 bytes of
 * SHA-256("winsnap-cim\0" + part1 + "\0" + part2 …) with the RFC 4122 version nibble 4 and
 * variant bits set.
 */
import { createHash, randomBytes } from 'node:crypto';
import { invalidArgument } from '../../services/errdefs.js';

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

export function parseCimGuid(text: string): string {
  const m = GUID_RE.exec(text.trim());
  if (!m) throw invalidArgument(`not a GUID: ${JSON.stringify(text)}`);
  return `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase();
}

export function encodeGuid(guid: string, buf: Buffer, offset: number): void {
  const hex = parseCimGuid(guid).replace(/-/g, '');
  buf.writeUInt32LE(parseInt(hex.slice(0, 8), 16), offset);
  buf.writeUInt16LE(parseInt(hex.slice(8, 12), 16), offset + 4);
  buf.writeUInt16LE(parseInt(hex.slice(12, 16), 16), offset + 6);
  Buffer.from(hex.slice(16), 'hex').copy(buf, offset + 8);
}

export function decodeGuid(buf: Buffer, offset: number): string {
  const d1 = buf.readUInt32LE(offset).toString(16).padStart(8, '0');
  const d2 = buf.readUInt16LE(offset + 4).toString(16).padStart(4, '0');
  const d3 = buf.readUInt16LE(offset + 6).toString(16).padStart(4, '0');
  const d4 = buf.subarray(offset + 8, offset + 16).toString('hex');
  return `${d1}-${d2}-${d3}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

function fromBytes(b: Buffer): string {
  const x = Buffer.from(b.subarray(0, 16));
  x[6] = (x[6]! & 0x0f) | 0x40;
  x[8] = (x[8]! & 0x3f) | 0x80;
  const h = x.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function deriveCimGuid(...parts: string[]): string {
  const h = createHash('sha256').update('winsnap-cim\0');
  for (const p of parts) h.update(p).update('\0');
  return fromBytes(h.digest());
}

export function randomCimGuid(): string {
  return fromBytes(randomBytes(16));
}
