/**
 * In-memory registry tree: what the writer takes and what the reader can materialise.
 * Plus typed value constructors (REG_SZ, REG_DWORD, ...) and value decoders.
 *
 * Value encodings (winnt.h / libregf "Data types"): strings are UTF-16LE with a terminating NUL,
 * REG_MULTI_SZ is NUL-separated strings ending with an extra NUL, REG_DWORD is a little-endian
 * u32 (REG_DWORD_BIG_ENDIAN big-endian), REG_QWORD a little-endian u64. Any other type number is
 * carried as raw bytes.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { RegType, type LayerSemanticsValue } from './constants.js';

export interface HiveValue {
  /** '' is the key's default value. */
  name: string;
  /** REG_* type number; any u32 is allowed. */
  type: number;
  data: Buffer;
  /** Tombstone value of a differencing hive (deletes the same value of the parent layer). */
  tombstone?: boolean;
}

export interface HiveKey {
  name: string;
  values?: HiveValue[];
  subkeys?: HiveKey[];
  /** Last written FILETIME (100 ns since 1601-01-01 UTC). Default 0: output never depends on the clock. */
  lastWritten?: bigint;
  /** Raw class name bytes (normally UTF-16LE). */
  className?: Buffer;
  /** Self-relative security descriptor. Default: the parent's; for the root, DEFAULT_KEY_SECURITY. */
  security?: Buffer;
  /** nk flags to keep (KEY_NO_DELETE, KEY_SYM_LINK, virtualization bits...). COMP_NAME and HIVE_ENTRY are computed. */
  flags?: number;
  /** Layered key semantics (differencing hives only). */
  layerSemantics?: LayerSemanticsValue;
  /** Layered key: take the class name from the parent layer. */
  inheritClass?: boolean;
  /** nk access bits byte (offset 12). */
  accessBits?: number;
  /** Bits 16..31 of the nk "largest subkey name length" field (virtualization control, user flags, debug). */
  nameLengthHighBits?: number;
}

// ---- value constructors -------------------------------------------------------------------

/** UTF-16LE with a terminating NUL. */
export function encodeRegString(s: string): Buffer {
  return Buffer.from(s + '\0', 'utf16le');
}

export function stringValue(name: string, s: string, type: number = RegType.SZ): HiveValue {
  return { name, type, data: encodeRegString(s) };
}

export function expandStringValue(name: string, s: string): HiveValue {
  return stringValue(name, s, RegType.EXPAND_SZ);
}

export function multiStringValue(name: string, items: readonly string[]): HiveValue {
  for (const it of items) {
    if (it.includes('\0') || it === '') {
      throw invalidArgument(`regf: REG_MULTI_SZ value '${name}' has an empty item or an item containing NUL`);
    }
  }
  return { name, type: RegType.MULTI_SZ, data: Buffer.from(items.map((s) => s + '\0').join('') + '\0', 'utf16le') };
}

export function dwordValue(name: string, n: number): HiveValue {
  const data = Buffer.alloc(4);
  data.writeUInt32LE(n >>> 0, 0);
  return { name, type: RegType.DWORD, data };
}

export function dwordBigEndianValue(name: string, n: number): HiveValue {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(n >>> 0, 0);
  return { name, type: RegType.DWORD_BIG_ENDIAN, data };
}

export function qwordValue(name: string, n: bigint): HiveValue {
  const data = Buffer.alloc(8);
  data.writeBigUInt64LE(BigInt.asUintN(64, n), 0);
  return { name, type: RegType.QWORD, data };
}

export function binaryValue(name: string, data: Buffer, type: number = RegType.BINARY): HiveValue {
  return { name, type, data };
}

export function tombstoneValue(name: string): HiveValue {
  return { name, type: RegType.NONE, data: Buffer.alloc(0), tombstone: true };
}

// ---- value decoders -----------------------------------------------------------------------

/** A REG_SZ / REG_EXPAND_SZ / REG_LINK payload as text, cut at the first NUL. */
export function decodeRegString(data: Buffer): string {
  let end = 0;
  while (end + 1 < data.length && (data[end] !== 0 || data[end + 1] !== 0)) end += 2;
  return data.toString('utf16le', 0, end);
}

/** A REG_MULTI_SZ payload as its strings (the empty terminator is not an item). */
export function decodeRegMultiString(data: Buffer): string[] {
  const s = data.toString('utf16le', 0, data.length & ~1);
  const out: string[] = [];
  let start = 0;
  while (start < s.length) {
    const nul = s.indexOf('\0', start);
    const end = nul < 0 ? s.length : nul;
    if (end === start) break; // an empty string ends the list
    out.push(s.slice(start, end));
    start = end + 1;
  }
  return out;
}

// ---- security descriptors -----------------------------------------------------------------

/** A SID in string form "S-1-5-32-544" → binary. */
export function encodeSid(sid: string): Buffer {
  const m = /^S-1-(\d+)((?:-\d+)*)$/.exec(sid);
  if (!m) throw invalidArgument(`regf: malformed SID '${sid}'`);
  const subs = m[2] === '' ? [] : m[2].slice(1).split('-').map((x) => Number(x));
  const b = Buffer.alloc(8 + 4 * subs.length);
  b[0] = 1;
  b[1] = subs.length;
  b.writeUIntBE(Number(m[1]), 2, 6);
  subs.forEach((s, i) => b.writeUInt32LE(s >>> 0, 8 + 4 * i));
  return b;
}

export interface AceSpec {
  /** 0 = ACCESS_ALLOWED_ACE_TYPE, 1 = ACCESS_DENIED_ACE_TYPE. */
  type: number;
  /** ACE flags, e.g. 0x02 CONTAINER_INHERIT_ACE. */
  flags: number;
  mask: number;
  sid: string;
}

/** A self-relative security descriptor with owner, group and a DACL (no SACL). */
export function buildSecurityDescriptor(owner: string, group: string, dacl: readonly AceSpec[]): Buffer {
  const aces = dacl.map((a) => {
    const sid = encodeSid(a.sid);
    const ace = Buffer.alloc(8 + sid.length);
    ace[0] = a.type;
    ace[1] = a.flags;
    ace.writeUInt16LE(ace.length, 2);
    ace.writeUInt32LE(a.mask >>> 0, 4);
    sid.copy(ace, 8);
    return ace;
  });
  const aclBody = Buffer.concat(aces);
  const acl = Buffer.alloc(8 + aclBody.length);
  acl[0] = 2; // ACL_REVISION
  acl.writeUInt16LE(acl.length, 2);
  acl.writeUInt16LE(aces.length, 4);
  aclBody.copy(acl, 8);
  const ownerSid = encodeSid(owner);
  const groupSid = encodeSid(group);
  const hdr = Buffer.alloc(20);
  hdr[0] = 1; // revision
  hdr.writeUInt16LE(0x8004, 2); // SE_SELF_RELATIVE | SE_DACL_PRESENT
  const daclAt = 20;
  const ownerAt = daclAt + acl.length;
  const groupAt = ownerAt + ownerSid.length;
  hdr.writeUInt32LE(ownerAt, 4);
  hdr.writeUInt32LE(groupAt, 8);
  hdr.writeUInt32LE(0, 12);
  hdr.writeUInt32LE(daclAt, 16);
  return Buffer.concat([hdr, acl, ownerSid, groupSid]);
}

const KEY_ALL_ACCESS = 0x000f003f;
const KEY_READ = 0x00020019;
const CONTAINER_INHERIT_ACE = 0x02;

/**
 * Security used for a root key that has none: owner Administrators, group SYSTEM, DACL
 * SYSTEM and Administrators full control, Users read, all inherited by subkeys.
 */
export const DEFAULT_KEY_SECURITY: Buffer = buildSecurityDescriptor('S-1-5-32-544', 'S-1-5-18', [
  { type: 0, flags: CONTAINER_INHERIT_ACE, mask: KEY_ALL_ACCESS, sid: 'S-1-5-18' },
  { type: 0, flags: CONTAINER_INHERIT_ACE, mask: KEY_ALL_ACCESS, sid: 'S-1-5-32-544' },
  { type: 0, flags: CONTAINER_INHERIT_ACE, mask: KEY_READ, sid: 'S-1-5-32-545' },
]);

/** Minimal structural check of a self-relative security descriptor. */
export function checkSecurityDescriptor(sd: Buffer, where: string): void {
  if (sd.length < 20 || sd[0] !== 1 || (sd.readUInt16LE(2) & 0x8000) === 0) {
    throw invalidArgument(`regf: ${where}: not a self-relative security descriptor (revision 1, SE_SELF_RELATIVE)`);
  }
  for (const at of [4, 8, 12, 16]) {
    const off = sd.readUInt32LE(at);
    if (off !== 0 && (off < 20 || off >= sd.length)) {
      throw invalidArgument(`regf: ${where}: security descriptor field at byte ${at} points outside it (${off})`);
    }
  }
}
