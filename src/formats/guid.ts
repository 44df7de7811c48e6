/**
 * Windows GUIDs, shared by the formats that store them (VHDX, CimFS). On disk they are in the
 * mixed-endian binary form (MS-VHDX §2.2.3.2 "GUID in binary form"; windows-layer-formats.md
 * §3.1): Data1 (u32), Data2 (u16), Data3 (u16) little-endian, then Data4 (8 bytes) as written.
 * In memory a GUID is its lowercase canonical string "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
 */
import { randomBytes } from 'node:crypto';
import { invalidArgument } from '../services/errdefs.js';

export type Guid = string;

export const ZERO_GUID: Guid = '00000000-0000-0000-0000-000000000000';

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** Normalises "{ABCD…}" / "abcd…" to the lowercase canonical form; throws InvalidArgument. */
export function parseGuid(text: string): Guid {
  const m = GUID_RE.exec(text.trim());
  if (!m) throw invalidArgument(`not a GUID: ${JSON.stringify(text)}`);
  return `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase();
}

/** Writes a GUID at buf[offset..offset+16) in binary form. */
export function writeGuid(buf: Buffer, offset: number, guid: Guid): void {
  const hex = parseGuid(guid).replace(/-/g, '');
  buf.writeUInt32LE(parseInt(hex.slice(0, 8), 16), offset);
  buf.writeUInt16LE(parseInt(hex.slice(8, 12), 16), offset + 4);
  buf.writeUInt16LE(parseInt(hex.slice(12, 16), 16), offset + 6);
  Buffer.from(hex.slice(16), 'hex').copy(buf, offset + 8);
}

/** Reads a GUID stored in binary form. */
export function readGuid(buf: Buffer, offset: number): Guid {
  const d1 = buf.readUInt32LE(offset).toString(16).padStart(8, '0');
  const d2 = buf.readUInt16LE(offset + 4).toString(16).padStart(4, '0');
  const d3 = buf.readUInt16LE(offset + 6).toString(16).padStart(4, '0');
  const d4 = buf.subarray(offset + 8, offset + 16).toString('hex');
  return `${d1}-${d2}-${d3}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

export function guidBytes(guid: Guid): Buffer {
  const b = Buffer.alloc(16);
  writeGuid(b, 0, guid);
  return b;
}

/** A GUID from the first 16 of `bytes` (e.g. a digest) with the RFC 4122 version-4 nibble and variant bits set. */
export function guidFromBytes(bytes: Buffer): Guid {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4 layout
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function randomGuid(): Guid {
  return guidFromBytes(randomBytes(16));
}
