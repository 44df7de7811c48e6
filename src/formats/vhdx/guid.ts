/**
 * GUIDs in the binary form MS-VHDX uses (§2.2.3.2 "GUID in binary form"): Data1 (u32),
 * Data2 (u16), Data3 (u16) little-endian, then Data4 (8 bytes) as written. In memory a GUID is
 * its lowercase canonical string "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
 *
 * Deterministic identifiers: `deriveGuid(purpose, ...parts)` is the first 16 bytes of
 * SHA-256("winsnap-vhdx\0" + purpose + "\0" + part1 + "\0" + part2 …) with the RFC 4122
 * variant bits and version nibble 4 set, so it looks like any other GUID to Windows.
 */
import { createHash, randomBytes } from 'node:crypto';
import { invalidArgument } from '../../services/errdefs.js';

export type Guid = string;

export const ZERO_GUID: Guid = '00000000-0000-0000-0000-000000000000';

const GUID_RE = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

/** Normalises "{ABCD…}" / "abcd…" to the lowercase canonical form; throws InvalidArgument. */
export function parseGuid(text: string): Guid {
  const m = GUID_RE.exec(text.trim());
  if (!m) throw invalidArgument(`not a GUID: ${JSON.stringify(text)}`);
  return `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase();
}

/** Writes a GUID at buf[offset..offset+16) in MS binary form. */
export function writeGuid(buf: Buffer, offset: number, guid: Guid): void {
  const g = parseGuid(guid);
  const hex = g.replace(/-/g, '');
  buf.writeUInt32LE(parseInt(hex.slice(0, 8), 16), offset);
  buf.writeUInt16LE(parseInt(hex.slice(8, 12), 16), offset + 4);
  buf.writeUInt16LE(parseInt(hex.slice(12, 16), 16), offset + 6);
  Buffer.from(hex.slice(16), 'hex').copy(buf, offset + 8);
}

/** Reads a GUID stored in MS binary form. */
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

function formatRfc(bytes: Buffer): Guid {
  const b = Buffer.from(bytes.subarray(0, 16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Deterministic GUID: SHA-256 of a purpose label and parts (see module comment). */
export function deriveGuid(purpose: string, ...parts: (string | number | bigint)[]): Guid {
  const h = createHash('sha256');
  h.update('winsnap-vhdx\0');
  h.update(purpose);
  for (const p of parts) {
    h.update('\0');
    h.update(String(p));
  }
  return formatRfc(h.digest());
}

export function randomGuid(): Guid {
  return formatRfc(randomBytes(16));
}

/** How identifiers are made: derived from stated inputs (default) or random. */
export type IdMode = 'deterministic' | 'random';

/** A GUID source bound to a mode: derive(purpose, …parts) or random. */
export function makeGuid(mode: IdMode, purpose: string, ...parts: (string | number | bigint)[]): Guid {
  return mode === 'random' ? randomGuid() : deriveGuid(purpose, ...parts);
}
