/**
 * ext4 extended attributes (kernel Documentation/filesystems/ext4 "Extended Attributes"):
 * name prefixes compressed to an index, entries of 16 bytes + name padded to 4, values
 * 4-aligned, the in-inode area after `i_extra_isize` (magic 0xEA020000) and the 4 KiB xattr
 * block (32-byte header, entries sorted by index, name length, name; each entry hashed).
 */
import { invalidArgument } from '../../services/errdefs.js';

export const XATTR_MAGIC = 0xea020000;
export const XATTR_ENTRY_HEADER = 16;

/** Name prefixes and their indices, longest first so `system.posix_acl_access` wins over `system.`. */
const PREFIXES: [string, number][] = [
  ['system.posix_acl_access', 2],
  ['system.posix_acl_default', 3],
  ['system.richacl', 8],
  ['user.', 1],
  ['trusted.', 4],
  ['security.', 6],
  ['system.', 7],
];
const PREFIX_OF = new Map<number, string>(PREFIXES.map(([p, i]) => [i, p]));

export interface Xattr {
  name: string;
  value: Buffer;
}

export interface EncodedXattrName {
  index: number;
  suffix: Buffer;
}

export function splitXattrName(name: string): EncodedXattrName {
  for (const [p, i] of PREFIXES) {
    if (name.startsWith(p)) {
      const suffix = Buffer.from(name.slice(p.length), 'utf8');
      if (suffix.length > 255) throw invalidArgument(`xattr name "${name}" is longer than 255 bytes`, { entry: name });
      return { index: i, suffix };
    }
  }
  throw invalidArgument(`xattr "${name}" has no namespace ext4 can store (user., trusted., security., system.)`, { entry: name });
}

export function joinXattrName(index: number, suffix: Buffer): string {
  const p = PREFIX_OF.get(index);
  if (p === undefined) throw invalidArgument(`unknown xattr name index ${index}`);
  return p + suffix.toString('utf8');
}

const pad4 = (n: number) => (n + 3) & ~3;

/** The size an entry takes in the entry table / value area. */
export function entrySize(x: EncodedXattrName): number {
  return pad4(XATTR_ENTRY_HEADER + x.suffix.length);
}
export function valueSize(v: Buffer): number {
  return pad4(v.length);
}

/** Kernel order of xattr block entries: index, then name length, then name bytes. */
export function compareXattrs(a: EncodedXattrName, b: EncodedXattrName): number {
  return a.index - b.index || a.suffix.length - b.suffix.length || Buffer.compare(a.suffix, b.suffix);
}

/** ext4_xattr_hash_entry: over the name bytes, then the value as little-endian 32-bit words. */
export function xattrEntryHash(suffix: Buffer, value: Buffer): number {
  let h = 0;
  for (const c of suffix) h = ((h << 5) ^ (h >>> 27) ^ c) >>> 0;
  const padded = Buffer.alloc(valueSize(value));
  value.copy(padded);
  for (let i = 0; i < padded.length; i += 4) h = ((h << 16) ^ (h >>> 16) ^ padded.readUInt32LE(i)) >>> 0;
  return h;
}

/** ext4_xattr_rehash: the block hash over the entry hashes. */
function blockHash(hashes: number[]): number {
  let h = 0;
  for (const e of hashes) {
    if (e === 0) return 0;
    h = ((h << 16) ^ (h >>> 16) ^ e) >>> 0;
  }
  return h;
}

export interface PlacedXattrs {
  inInode: { name: EncodedXattrName; value: Buffer }[];
  block: { name: EncodedXattrName; value: Buffer }[];
}

/** The in-inode xattr area of a 256-byte inode with extra_isize 32: magic, entries, values. */
export const IN_INODE_AREA = 256 - 128 - 32;
/** Space for entries + values in that area: 96 bytes minus the magic. */
export const IN_INODE_SPACE = IN_INODE_AREA - 4;

/** Splits sorted xattrs between the inode and one block; throws if they do not fit in both. */
export function placeXattrs(xattrs: Xattr[], inInodeSpace = IN_INODE_SPACE, first?: Xattr): PlacedXattrs {
  const all = xattrs.map((x) => ({ name: splitXattrName(x.name), value: x.value })).sort((a, b) => compareXattrs(a.name, b.name));
  const out: PlacedXattrs = { inInode: [], block: [] };
  let used = 4; // the in-inode table's terminating zero word
  if (first) {
    // inline data: `system.data` must live in the inode
    const x = { name: splitXattrName(first.name), value: first.value };
    const need = entrySize(x.name) + valueSize(x.value);
    if (used + need > inInodeSpace) throw invalidArgument(`${first.name} (${first.value.length} bytes) does not fit in the inode`);
    out.inInode.push(x);
    used += need;
  }
  for (const x of all) {
    const need = entrySize(x.name) + valueSize(x.value);
    if (out.block.length === 0 && used + need <= inInodeSpace) {
      out.inInode.push(x);
      used += need;
    } else out.block.push(x);
  }
  let blockUsed = 32 + 4;
  for (const x of out.block) blockUsed += entrySize(x.name) + valueSize(x.value);
  if (blockUsed > 4096) throw invalidArgument(`extended attributes need ${blockUsed} bytes; one 4 KiB block holds 4096`);
  return out;
}

function writeEntries(buf: Buffer, entriesAt: number, xs: PlacedXattrs['inInode'], valueBase: number, valueEnd: number, hashed: boolean): number[] {
  let e = entriesAt;
  let v = valueEnd;
  const hashes: number[] = [];
  for (const x of xs) {
    v -= valueSize(x.value);
    buf.writeUInt8(x.name.suffix.length, e);
    buf.writeUInt8(x.name.index, e + 1);
    buf.writeUInt16LE(v - valueBase, e + 2);
    buf.writeUInt32LE(0, e + 4);
    buf.writeUInt32LE(x.value.length, e + 8);
    const h = hashed ? xattrEntryHash(x.name.suffix, x.value) : 0;
    hashes.push(h);
    buf.writeUInt32LE(h, e + 12);
    x.name.suffix.copy(buf, e + XATTR_ENTRY_HEADER);
    x.value.copy(buf, v);
    e += entrySize(x.name);
  }
  return hashes;
}

/** Writes the in-inode area (starting at the magic) into `inode` at offset `at` (128 + extra_isize). */
export function writeInInodeXattrs(inode: Buffer, at: number, xs: PlacedXattrs['inInode']): void {
  if (xs.length === 0) return;
  inode.writeUInt32LE(XATTR_MAGIC, at);
  // value offsets are relative to the first entry
  writeEntries(inode, at + 4, xs, at + 4, inode.length, false);
}

/** An xattr block (refcount 1). */
export function encodeXattrBlock(xs: PlacedXattrs['block']): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(XATTR_MAGIC, 0);
  b.writeUInt32LE(1, 4); // refcount
  b.writeUInt32LE(1, 8); // blocks
  const hashes = writeEntries(b, 32, xs, 0, 4096, true);
  b.writeUInt32LE(blockHash(hashes), 12);
  return b;
}

/** Decodes an entry table (in-inode: valueBase = first entry; block: valueBase = 0). */
export function decodeXattrEntries(buf: Buffer, entriesAt: number, valueBase: number, end: number, what: string): Xattr[] {
  const out: Xattr[] = [];
  let e = entriesAt;
  while (e + 4 <= end && buf.readUInt32LE(e) !== 0) {
    if (e + XATTR_ENTRY_HEADER > end) throw invalidArgument(`${what}: xattr entry at ${e} runs past the end`, { offset: e });
    const nameLen = buf.readUInt8(e);
    const index = buf.readUInt8(e + 1);
    const vOff = buf.readUInt16LE(e + 2);
    const vInum = buf.readUInt32LE(e + 4);
    const vSize = buf.readUInt32LE(e + 8);
    if (vInum !== 0) throw invalidArgument(`${what}: xattr values in inodes (ea_inode) are not supported`, { offset: e });
    if (e + XATTR_ENTRY_HEADER + nameLen > end) throw invalidArgument(`${what}: xattr name at ${e} runs past the end`, { offset: e });
    const vAt = valueBase + vOff;
    if (vAt < valueBase || vAt + vSize > end) throw invalidArgument(`${what}: xattr value at ${vAt} (${vSize} bytes) out of range`, { offset: e });
    out.push({
      name: joinXattrName(index, buf.subarray(e + XATTR_ENTRY_HEADER, e + XATTR_ENTRY_HEADER + nameLen)),
      value: Buffer.from(buf.subarray(vAt, vAt + vSize)),
    });
    e += pad4(XATTR_ENTRY_HEADER + nameLen);
  }
  return out;
}
