/**
 * regf reader: hive bins, cells, key nodes (nk), subkey lists (lf/lh/li/ri), value lists,
 * values (vk, inline data, 'db' big data), security cells (sk) and class names.
 *
 * Facts: msuhanov/regf "Windows registry file format specification" (Hive bin, Cell, Index
 * leaf, Fast leaf, Hash leaf, Index root, Key node, Key values list, Key value, Key security,
 * Big data, Layered keys) and libyal/libregf's format document.
 *
 * The whole hive is held in one Buffer (hives are at most a few hundred MB); parsing walks every
 * hive bin and cell once to index allocated cell starts, so every offset found in a record is
 * checked to point at the start of an allocated cell before it is used. Keys and values are read
 * lazily. Malformed input raises InvalidArgument naming the file offset; subkey list cycles,
 * shared nodes and too-deep trees are detected when walking.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { parseBaseBlock, type BaseBlock, type ParseBaseBlockOptions } from './baseblock.js';
import {
  BASE_BLOCK_SIZE,
  BIG_DATA_SEGMENT_SIZE,
  DATA_INLINE_FLAG,
  HBIN_ALIGN,
  HBIN_HEADER_SIZE,
  INHERIT_CLASS_BIT,
  KeyFlag,
  NO_OFFSET,
  RegType,
  SIG,
  ValueFlag,
  type LayerSemanticsValue,
} from './constants.js';
import { decodeName, nameHash, namesEqual } from './names.js';
import { decodeRegMultiString, decodeRegString, type HiveKey, type HiveValue } from './tree.js';

export type ParseHiveOptions = ParseBaseBlockOptions;

const SIG_NK = SIG.nk;
const SIG_VK = SIG.vk;
const SIG_SK = SIG.sk;
const SIG_LF = SIG.lf;
const SIG_LH = SIG.lh;
const SIG_LI = SIG.li;
const SIG_RI = SIG.ri;
const SIG_DB = SIG.db;
const SIG_HBIN = SIG.hbin;
const KEY_COMP_NAME = KeyFlag.COMP_NAME;
const VALUE_COMP_NAME = ValueFlag.COMP_NAME;
const VALUE_TOMBSTONE = ValueFlag.TOMBSTONE;

/** Windows limits key trees to 512 levels. */
export const MAX_KEY_DEPTH = 512;

interface Cell {
  /** File offset of the cell payload (after the 4-byte size). */
  pos: number;
  /** Payload length (cell size minus 4). */
  len: number;
}

export class Hive {
  readonly buffer: Buffer;
  readonly header: BaseBlock;
  /** One bit per 8 bytes of hive bins data: an allocated cell starts there. */
  private readonly cellStarts: Uint8Array;
  private rootKey: RegKey | undefined;
  private readonly securities = new Map<number, Buffer>();

  constructor(buffer: Buffer, opts: ParseHiveOptions = {}) {
    this.buffer = buffer;
    this.header = parseBaseBlock(buffer, opts);
    this.cellStarts = new Uint8Array((this.header.hiveBinsDataSize >>> 6) + 1);
    this.indexBins();
  }

  get minorVersion(): number {
    return this.header.minorVersion;
  }

  /** The root key node. */
  get root(): RegKey {
    // Windows marks the root with KEY_HIVE_ENTRY; like hivex we do not require it (yarp's
    // DeletedTreeNoRootFlagHive lacks it), only that the root is an nk cell.
    this.rootKey ??= this.keyAt(this.header.rootCellOffset, '');
    return this.rootKey;
  }

  /** The key at a backslash-separated path below the root (case-insensitive), if any. */
  key(path: string): RegKey | undefined {
    return this.root.get(path);
  }

  private indexBins(): void {
    const buf = this.buffer;
    const total = this.header.hiveBinsDataSize;
    let binOff = 0;
    while (binOff < total) {
      const at = BASE_BLOCK_SIZE + binOff;
      if (buf.readUInt32LE(at) !== SIG_HBIN) {
        throw invalidArgument(`regf: missing 'hbin' signature at file offset 0x${at.toString(16)}`, { offset: at });
      }
      const declared = buf.readUInt32LE(at + 4);
      if (declared !== binOff) {
        throw invalidArgument(
          `regf: hive bin at file offset 0x${at.toString(16)} declares offset 0x${declared.toString(16)} (expected 0x${binOff.toString(16)})`,
          { offset: at + 4 },
        );
      }
      const size = buf.readUInt32LE(at + 8);
      if (size < HBIN_ALIGN || size % HBIN_ALIGN !== 0 || binOff + size > total) {
        throw invalidArgument(
          `regf: hive bin at file offset 0x${at.toString(16)} has bad size ${size} (multiple of 4096 within ${total} bytes of bins expected)`,
          { offset: at + 8 },
        );
      }
      let c = binOff + HBIN_HEADER_SIZE;
      const end = binOff + size;
      while (c < end) {
        const p = BASE_BLOCK_SIZE + c;
        const raw = buf.readInt32LE(p);
        const abs = Math.abs(raw);
        if (abs < 8 || abs % 8 !== 0 || c + abs > end) {
          throw invalidArgument(
            `regf: cell at file offset 0x${p.toString(16)} has bad size ${raw} (non-zero multiple of 8 inside its hive bin expected)`,
            { offset: p },
          );
        }
        if (raw < 0) this.cellStarts[c >>> 6] |= 1 << ((c >>> 3) & 7);
        c += abs;
      }
      binOff += size;
    }
  }

  /** True when `off` (relative to the hive bins) is the start of an allocated cell. */
  isCell(off: number): boolean {
    if (off % 8 !== 0 || off >= this.header.hiveBinsDataSize) return false;
    return (this.cellStarts[off >>> 6] & (1 << ((off >>> 3) & 7))) !== 0;
  }

  /** @internal The payload of the allocated cell at relative offset `off`. */
  cell(off: number, whatArg: What, minLen = 0): Cell {
    const fileOff = BASE_BLOCK_SIZE + off;
    if (!this.isCell(off)) {
      const what = describe(whatArg);
      throw invalidArgument(
        `regf: ${what} offset 0x${off.toString(16)} (file offset 0x${fileOff.toString(16)}) is not an allocated cell`,
        { offset: fileOff },
      );
    }
    const len = -this.buffer.readInt32LE(fileOff) - 4;
    if (len < minLen) {
      const what = describe(whatArg);
      throw invalidArgument(
        `regf: ${what} cell at file offset 0x${fileOff.toString(16)} is ${len} bytes, shorter than ${minLen}`,
        { offset: fileOff },
      );
    }
    return { pos: fileOff + 4, len };
  }

  /** @internal A cell payload that must start with a 2-byte signature. */
  signedCell(off: number, sig: number, whatArg: What, minLen: number): Cell {
    const c = this.cell(off, whatArg, 2);
    const got = this.buffer.readUInt16LE(c.pos);
    if (got !== sig) {
      const what = describe(whatArg);
      throw invalidArgument(
        `regf: ${what} at file offset 0x${(c.pos - 4).toString(16)} has signature '${sigText(got)}' (expected '${sigText(sig)}')`,
        { offset: c.pos },
      );
    }
    if (c.len < minLen) {
      const what = describe(whatArg);
      throw invalidArgument(
        `regf: ${what} cell at file offset 0x${(c.pos - 4).toString(16)} is ${c.len} bytes, shorter than ${minLen}`,
        { offset: c.pos - 4 },
      );
    }
    return c;
  }

  /** @internal The descriptor of the sk cell at `off`; keys sharing a cell share the Buffer. */
  securityAt(off: number, where: () => string): Buffer {
    const cached = this.securities.get(off);
    if (cached) return cached;
    const c = this.signedCell(off, SIG_SK, () => `security cell of ${where()}`, 20);
    const size = this.buffer.readUInt32LE(c.pos + 16);
    if (20 + size > c.len) {
      throw invalidArgument(`regf: security cell of ${where()}: descriptor size ${size} runs past the ${c.len}-byte cell`, {
        offset: c.pos + 16,
      });
    }
    const sd = this.buffer.subarray(c.pos + 20, c.pos + 20 + size);
    this.securities.set(off, sd);
    return sd;
  }

  /** @internal */
  keyAt(off: number, parentPath: string): RegKey {
    return new RegKey(this, off, parentPath);
  }
}

/** A description of what a cell should hold, built only when an error message needs it. */
type What = string | (() => string);
const describe = (w: What): string => (typeof w === 'string' ? w : w());

function sigText(sig: number): string {
  const a = sig & 0xff;
  const b = sig >>> 8;
  const ch = (x: number) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : `\\x${x.toString(16).padStart(2, '0')}`);
  return ch(a) + ch(b);
}

/** A key node. */
export class RegKey {
  readonly hive: Hive;
  /** Offset of the nk cell, relative to the hive bins data. */
  readonly offset: number;
  readonly name: string;
  private readonly parentPath: string;
  private readonly isRoot: boolean;
  readonly flags: number;
  readonly lastWritten: bigint;
  readonly accessBits: number;
  readonly layerSemantics: LayerSemanticsValue;
  readonly inheritClass: boolean;
  readonly subkeyCount: number;
  readonly valueCount: number;
  /** Bits 16..31 of the "largest subkey name length" field (virtualization/user flags, debug). */
  readonly nameLengthHighBits: number;
  private readonly subkeyListOffset: number;
  private readonly valueListOffset: number;
  private readonly securityOffset: number;
  private readonly classOffset: number;
  private readonly classLength: number;

  constructor(hive: Hive, off: number, parentPath: string) {
    const c = hive.signedCell(off, SIG_NK, 'key node', 76);
    const b = hive.buffer;
    const p = c.pos;
    this.hive = hive;
    this.offset = off;
    this.flags = b.readUInt16LE(p + 2);
    this.lastWritten = b.readBigUInt64LE(p + 4);
    this.accessBits = b[p + 12];
    const layered = b[p + 13];
    this.layerSemantics = (layered & 3) as LayerSemanticsValue;
    this.inheritClass = (layered & INHERIT_CLASS_BIT) !== 0;
    this.subkeyCount = b.readUInt32LE(p + 20);
    this.subkeyListOffset = b.readUInt32LE(p + 28);
    this.valueCount = b.readUInt32LE(p + 36);
    this.valueListOffset = b.readUInt32LE(p + 40);
    this.securityOffset = b.readUInt32LE(p + 44);
    this.classOffset = b.readUInt32LE(p + 48);
    this.nameLengthHighBits = b.readUInt16LE(p + 54);
    const nameLen = b.readUInt16LE(p + 72);
    this.classLength = b.readUInt16LE(p + 74);
    if (76 + nameLen > c.len) {
      throw invalidArgument(
        `regf: key node at file offset 0x${(p - 4).toString(16)}: name length ${nameLen} runs past the ${c.len}-byte cell`,
        { offset: p + 72 },
      );
    }
    this.name = decodeName(b.subarray(p + 76, p + 76 + nameLen), (this.flags & KEY_COMP_NAME) !== 0);
    this.parentPath = parentPath;
    this.isRoot = parentPath === '' && off === hive.header.rootCellOffset;
  }

  /** Backslash path from the root (the root's path is ''). */
  get path(): string {
    return this.isRoot ? '' : this.parentPath === '' ? this.name : `${this.parentPath}\\${this.name}`;
  }

  private where(): string {
    return `key '${this.path === '' ? '\\' : this.path}' (nk at file offset 0x${(BASE_BLOCK_SIZE + this.offset).toString(16)})`;
  }

  /** Raw class name bytes, if the key has one. */
  classBytes(): Buffer | undefined {
    if (this.classLength === 0 || this.classOffset === NO_OFFSET) return undefined;
    const c = this.hive.cell(this.classOffset, () => `class name of ${this.where()}`, this.classLength);
    return this.hive.buffer.subarray(c.pos, c.pos + this.classLength);
  }

  /** The class name as text (UTF-16LE), if any. */
  className(): string | undefined {
    const b = this.classBytes();
    return b === undefined ? undefined : decodeName(b, false);
  }

  /** The self-relative security descriptor from the key's sk cell, if it has one. */
  security(): Buffer | undefined {
    if (this.securityOffset === NO_OFFSET) return undefined;
    return this.hive.securityAt(this.securityOffset, () => this.where());
  }

  /**
   * The subkey list entries in list order (ri indirection resolved), each with its 'lh' hash
   * when the leaf is a hash leaf.
   */
  private subkeyEntries(): { off: number; hash?: number }[] {
    if (this.subkeyCount === 0) return [];
    const hive = this.hive;
    const b = hive.buffer;
    const out: { off: number; hash?: number }[] = [];
    const seenLists = new Set<number>();
    const readLeaf = (off: number, fromRoot: boolean): void => {
      if (seenLists.has(off)) {
        throw invalidArgument(
          `regf: subkey list at file offset 0x${(BASE_BLOCK_SIZE + off).toString(16)} of ${this.where()} is referenced twice (cycle)`,
          { offset: BASE_BLOCK_SIZE + off },
        );
      }
      seenLists.add(off);
      const c = hive.cell(off, () => `subkey list of ${this.where()}`, 4);
      const sig = b.readUInt16LE(c.pos);
      const n = b.readUInt16LE(c.pos + 2);
      let stride: number;
      if (sig === SIG_LF || sig === SIG_LH) stride = 8;
      else if (sig === SIG_LI) stride = 4;
      else if (sig === SIG_RI) {
        if (fromRoot) {
          throw invalidArgument(
            `regf: index root at file offset 0x${(c.pos - 4).toString(16)} of ${this.where()} points to another index root`,
            { offset: c.pos },
          );
        }
        if (4 + 4 * n > c.len) {
          throw invalidArgument(`regf: index root at file offset 0x${(c.pos - 4).toString(16)}: ${n} elements do not fit its cell`, {
            offset: c.pos + 2,
          });
        }
        for (let i = 0; i < n; i++) readLeaf(b.readUInt32LE(c.pos + 4 + 4 * i), true);
        return;
      } else {
        throw invalidArgument(
          `regf: subkey list at file offset 0x${(c.pos - 4).toString(16)} of ${this.where()} has signature '${sigText(sig)}' (lf, lh, li or ri expected)`,
          { offset: c.pos },
        );
      }
      if (4 + stride * n > c.len) {
        throw invalidArgument(`regf: subkey list at file offset 0x${(c.pos - 4).toString(16)}: ${n} elements do not fit its cell`, {
          offset: c.pos + 2,
        });
      }
      for (let i = 0; i < n; i++) {
        const at = c.pos + 4 + stride * i;
        out.push(sig === SIG_LH ? { off: b.readUInt32LE(at), hash: b.readUInt32LE(at + 4) } : { off: b.readUInt32LE(at) });
      }
    };
    readLeaf(this.subkeyListOffset, false);
    if (out.length !== this.subkeyCount) {
      throw invalidArgument(
        `regf: ${this.where()} declares ${this.subkeyCount} subkeys but its subkey lists hold ${out.length}`,
        { offset: BASE_BLOCK_SIZE + this.offset + 4 + 20 },
      );
    }
    return out;
  }

  /** Subkeys in stored order (sorted by uppercase name in a valid hive). */
  subkeys(): RegKey[] {
    return this.subkeyEntries().map((e) => this.hive.keyAt(e.off, this.path));
  }

  /**
   * The direct subkey with this name (case-insensitive), if any. For an ASCII name, 'lh' hashes
   * skip non-matching nodes (every writer agrees on the ASCII hash; hivex hashes UTF-8 bytes, so
   * non-ASCII names are compared one by one).
   */
  subkey(name: string): RegKey | undefined {
    const want = /^[\x00-\x7f]*$/.test(name) ? nameHash(name) : undefined;
    for (const e of this.subkeyEntries()) {
      if (want !== undefined && e.hash !== undefined && e.hash !== want) continue;
      const k = this.hive.keyAt(e.off, this.path);
      if (namesEqual(k.name, name)) return k;
    }
    return undefined;
  }

  /** The key at a backslash-separated relative path (case-insensitive), if any. */
  get(path: string): RegKey | undefined {
    let k: RegKey | undefined = this;
    for (const part of path.split('\\')) {
      if (part === '') continue;
      k = k.subkey(part);
      if (!k) return undefined;
    }
    return k;
  }

  /** Values in stored order. */
  values(): RegValue[] {
    if (this.valueCount === 0) return [];
    const hive = this.hive;
    const c = hive.cell(this.valueListOffset, () => `value list of ${this.where()}`, 4 * this.valueCount);
    const out: RegValue[] = [];
    for (let i = 0; i < this.valueCount; i++) {
      out.push(new RegValue(this, hive.buffer.readUInt32LE(c.pos + 4 * i)));
    }
    return out;
  }

  /** The value with this name (case-insensitive; '' is the default value), if any. */
  value(name: string): RegValue | undefined {
    return this.values().find((v) => namesEqual(v.name, name));
  }

  /**
   * The whole subtree as plain objects (the writer's input type). Detects cycles, nodes
   * reachable twice and trees deeper than 512 levels.
   */
  toTree(): HiveKey {
    const seen = new Set<number>();
    const walk = (k: RegKey, depth: number): HiveKey => {
      if (seen.has(k.offset)) {
        throw invalidArgument(`regf: ${k.where()} is reachable twice (subkey cycle or shared node)`, {
          offset: BASE_BLOCK_SIZE + k.offset,
        });
      }
      if (depth > MAX_KEY_DEPTH) {
        throw invalidArgument(`regf: ${k.where()} is nested deeper than ${MAX_KEY_DEPTH} levels`, {
          offset: BASE_BLOCK_SIZE + k.offset,
        });
      }
      seen.add(k.offset);
      const node: HiveKey = {
        name: k.name,
        lastWritten: k.lastWritten,
        flags: k.flags & ~(KEY_COMP_NAME | KeyFlag.HIVE_ENTRY),
        values: k.values().map((v) => v.toValue()),
        subkeys: k.subkeys().map((s) => walk(s, depth + 1)),
      };
      const cls = k.classBytes();
      if (cls !== undefined) node.className = cls;
      const sd = k.security();
      if (sd !== undefined) node.security = sd;
      if (k.layerSemantics !== 0) node.layerSemantics = k.layerSemantics;
      if (k.inheritClass) node.inheritClass = true;
      if (k.accessBits !== 0) node.accessBits = k.accessBits;
      if (k.nameLengthHighBits !== 0) node.nameLengthHighBits = k.nameLengthHighBits;
      return node;
    };
    return walk(this, 0);
  }
}

/** A key value (vk). */
export class RegValue {
  readonly key: RegKey;
  readonly offset: number;
  readonly name: string;
  readonly type: number;
  readonly flags: number;
  /** Data size in bytes (the inline bit removed). */
  readonly size: number;
  private readonly rawSize: number;
  private readonly dataOffset: number;
  private readonly pos: number;

  constructor(key: RegKey, off: number) {
    const hive = key.hive;
    const c = hive.signedCell(off, SIG_VK, () => `value of key '${key.path}'`, 20);
    const b = hive.buffer;
    const p = c.pos;
    this.key = key;
    this.offset = off;
    this.pos = p;
    const nameLen = b.readUInt16LE(p + 2);
    this.rawSize = b.readUInt32LE(p + 4);
    this.size = this.rawSize & ~DATA_INLINE_FLAG;
    this.dataOffset = b.readUInt32LE(p + 8);
    this.type = b.readUInt32LE(p + 12);
    this.flags = b.readUInt16LE(p + 16);
    if (20 + nameLen > c.len) {
      throw invalidArgument(
        `regf: value at file offset 0x${(p - 4).toString(16)}: name length ${nameLen} runs past the ${c.len}-byte cell`,
        { offset: p + 2 },
      );
    }
    this.name = decodeName(b.subarray(p + 20, p + 20 + nameLen), (this.flags & VALUE_COMP_NAME) !== 0);
  }

  get isTombstone(): boolean {
    return (this.flags & VALUE_TOMBSTONE) !== 0;
  }

  private where(): string {
    return `value '${this.name}' of key '${this.key.path}' (vk at file offset 0x${(this.pos - 4).toString(16)})`;
  }

  /** The value's data bytes (big data segments joined). */
  data(): Buffer {
    const hive = this.key.hive;
    const b = hive.buffer;
    const len = this.size;
    if ((this.rawSize & DATA_INLINE_FLAG) !== 0) {
      if (len > 4) {
        throw invalidArgument(`regf: ${this.where()}: inline data of ${len} bytes (at most 4 allowed)`, { offset: this.pos + 4 });
      }
      return b.subarray(this.pos + 8, this.pos + 8 + len);
    }
    if (len === 0) return b.subarray(0, 0);
    const c = hive.cell(this.dataOffset, () => `data of ${this.where()}`);
    if (c.len >= len) return b.subarray(c.pos, c.pos + len);
    if (hive.minorVersion < 4 || c.len < 8 || b.readUInt16LE(c.pos) !== SIG_DB) {
      throw invalidArgument(
        `regf: ${this.where()}: ${len} bytes of data do not fit the ${c.len}-byte data cell and it is not a big data ('db') record`,
        { offset: c.pos },
      );
    }
    const n = b.readUInt16LE(c.pos + 2);
    const need = Math.ceil(len / BIG_DATA_SEGMENT_SIZE);
    if (n !== need) {
      throw invalidArgument(`regf: ${this.where()}: big data record has ${n} segments for ${len} bytes (${need} expected)`, {
        offset: c.pos + 2,
      });
    }
    const list = hive.cell(b.readUInt32LE(c.pos + 4), () => `big data segment list of ${this.where()}`, 4 * n);
    const parts: Buffer[] = [];
    let left = len;
    for (let i = 0; i < n; i++) {
      const want = Math.min(left, BIG_DATA_SEGMENT_SIZE);
      const seg = hive.cell(b.readUInt32LE(list.pos + 4 * i), () => `big data segment ${i} of ${this.where()}`, want);
      parts.push(b.subarray(seg.pos, seg.pos + want));
      left -= want;
    }
    return Buffer.concat(parts, len);
  }

  /** REG_SZ / REG_EXPAND_SZ / REG_LINK text (up to the first NUL). */
  string(): string {
    return decodeRegString(this.data());
  }

  /** REG_MULTI_SZ items. */
  strings(): string[] {
    return decodeRegMultiString(this.data());
  }

  /** REG_DWORD (little-endian) or REG_DWORD_BIG_ENDIAN as an unsigned number. */
  dword(): number {
    const d = this.data();
    if (d.length < 4) throw invalidArgument(`regf: ${this.where()}: ${d.length} bytes is too short for a DWORD`);
    return this.type === RegType.DWORD_BIG_ENDIAN ? d.readUInt32BE(0) : d.readUInt32LE(0);
  }

  /** REG_QWORD as an unsigned bigint. */
  qword(): bigint {
    const d = this.data();
    if (d.length < 8) throw invalidArgument(`regf: ${this.where()}: ${d.length} bytes is too short for a QWORD`);
    return d.readBigUInt64LE(0);
  }

  /** The value as a plain object (the writer's input type). */
  toValue(): HiveValue {
    const v: HiveValue = { name: this.name, type: this.type, data: this.isTombstone ? Buffer.alloc(0) : this.data() };
    if (this.isTombstone) v.tombstone = true;
    return v;
  }
}

/** Parses a hive held in memory. Throws InvalidArgument for malformed input. */
export function parseHive(buf: Buffer, opts: ParseHiveOptions = {}): Hive {
  return new Hive(buf, opts);
}
