/**
 * regf writer: serialises an in-memory key tree into a complete, clean hive file.
 *
 * Facts (msuhanov/regf spec): hive bins are multiples of 4096 bytes with a 32-byte 'hbin'
 * header and cells that never cross a bin; cells are 8-byte aligned with a negative size when
 * allocated; subkey lists are sorted by uppercase name ('lh' with name hashes when the minor
 * version is > 4, 'lf' with name hints otherwise; an 'ri' index root splits long lists); values
 * of at most 4 bytes live in the vk data offset field with bit 31 of the size set; data larger
 * than 16344 bytes is split into 16344-byte segments behind a 'db' record when the minor version
 * is > 3; every key points to an 'sk' cell and the sk cells form a circular doubly linked list
 * with reference counts; layered keys (version 1.6, base block flag 0x2) keep layer semantics in
 * byte 13 of the nk and tombstone values have flag 0x2, type REG_NONE, size 0, offset 0xFFFFFFFF.
 *
 * Observed in Windows-written hives (yarp's test corpus: a Windows container System_Delta and
 * RegSaveKey output): empty values are stored inline (size 0x80000000, offset 0); unused list,
 * class and security offsets are 0xFFFFFFFF; the unused tail of a bin is one free cell.
 *
 * Output is deterministic: cells are laid out depth-first (key, security, class, values,
 * subkey lists, then the subkeys in sorted order); no clock is read.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { buildBaseBlock } from './baseblock.js';
import {
  BASE_BLOCK_SIZE,
  BIG_DATA_SEGMENT_SIZE,
  CELL_ALIGN,
  DATA_INLINE_FLAG,
  HBIN_ALIGN,
  HBIN_HEADER_SIZE,
  HIVE_FLAG_LAYERED_KEYS,
  INHERIT_CLASS_BIT,
  INLINE_DATA_MAX,
  KeyFlag,
  LayerSemantics,
  NO_OFFSET,
  RegType,
  SIG,
  ValueFlag,
} from './constants.js';
import { compareNames, encodeName, nameHash, nameHint, upcaseName } from './names.js';
import { MAX_KEY_DEPTH } from './reader.js';
import { DEFAULT_KEY_SECURITY, checkSecurityDescriptor, type HiveKey, type HiveValue } from './tree.js';

export interface WriteHiveOptions {
  /** Hive format minor version 3..6 (major is 1). Default 5 (REG_LATEST_FORMAT). */
  minorVersion?: 3 | 4 | 5 | 6;
  /** Base block (and first hbin) last written FILETIME. Default 0. */
  lastWritten?: bigint;
  /** Primary = secondary sequence number. Default 1. */
  sequence?: number;
  /** Debug file name field of the base block (at most 31 UTF-16 units kept). Default ''. */
  fileName?: string;
  /**
   * Base block flags. Default: 0x2 (layered keys supported) when any key has layer semantics or
   * any value is a tombstone, else 0.
   */
  flags?: number;
  /** Write offreg's 'OfRg' signature with this serialization FILETIME (offreg-saved hives carry it). */
  offregSerializedAt?: bigint;
}

/** Largest number of elements per subkey leaf: an lh/lf cell of 8 + 8n bytes fits one 4 KiB bin. */
export const MAX_LEAF_ELEMENTS = 507;

interface Cell {
  /** Total cell size including the 4-byte size field, 8-aligned. */
  size: number;
  /** Offset relative to the hive bins data, assigned by layout(). */
  offset: number;
  fill: (b: Buffer, pos: number) => void;
}

class CellList {
  readonly cells: Cell[] = [];
  add(payloadLen: number, fill: (b: Buffer, pos: number) => void): Cell {
    const size = Math.ceil((payloadLen + 4) / CELL_ALIGN) * CELL_ALIGN;
    const c: Cell = { size, offset: -1, fill };
    this.cells.push(c);
    return c;
  }
}

interface SecurityCell {
  /** Position in the circular sk list. */
  index: number;
  cell: Cell;
  sd: Buffer;
  refs: number;
}

function checkName(name: string, what: string, maxUnits: number): void {
  const bytes = encodeName(name).bytes.length;
  if (bytes > 0xffff || name.length > maxUnits) {
    throw invalidArgument(`regf: ${what} '${name.slice(0, 40)}…' is too long (${name.length} units, at most ${maxUnits})`);
  }
}

/** Serialises `root` (the hive's root key) into a hive file. */
export function writeHive(root: HiveKey, opts: WriteHiveOptions = {}): Buffer {
  const minor = opts.minorVersion ?? 5;
  if (![3, 4, 5, 6].includes(minor)) throw invalidArgument(`regf: unsupported minor version ${String(minor)} (3..6)`);
  const useLh = minor > 4;
  const useBigData = minor > 3;
  const cells = new CellList();
  const securities = new Map<string, SecurityCell>();
  const skOrder: SecurityCell[] = [];
  let layered = false;

  const securityFor = (sd: Buffer, where: string): SecurityCell => {
    const key = sd.toString('base64');
    let s = securities.get(key);
    if (!s) {
      checkSecurityDescriptor(sd, where);
      const sc: SecurityCell = {
        sd,
        refs: 0,
        index: skOrder.length,
        cell: cells.add(20 + sd.length, (b, p) => {
          b.writeUInt16LE(SIG.sk, p);
          const n = skOrder.length;
          const next = skOrder[(sc.index + 1) % n].cell.offset;
          const prev = skOrder[(sc.index - 1 + n) % n].cell.offset;
          b.writeUInt32LE(next, p + 4); // flink
          b.writeUInt32LE(prev, p + 8); // blink
          b.writeUInt32LE(sc.refs, p + 12);
          b.writeUInt32LE(sd.length, p + 16);
          sd.copy(b, p + 20);
        }),
      };
      s = sc;
      securities.set(key, s);
      skOrder.push(sc);
    }
    s.refs++;
    return s;
  };

  const emitValue = (v: HiveValue, where: string): { cell: Cell; nameUnits: number; size: number } => {
    const path = `${where}\\${v.name === '' ? '(default)' : v.name}`;
    checkName(v.name, 'value name', 16383);
    if (!Number.isInteger(v.type) || v.type < 0 || v.type > 0xffffffff) {
      throw invalidArgument(`regf: value '${path}' has type ${v.type} (a u32 expected)`);
    }
    const { bytes: nameBytes, compressed } = encodeName(v.name);
    const data = v.data;
    if (v.tombstone) {
      layered = true;
      if (v.type !== RegType.NONE || data.length !== 0) {
        throw invalidArgument(`regf: tombstone value '${path}' must have type REG_NONE and no data`);
      }
    }
    if (data.length > 0x7fffffff) throw invalidArgument(`regf: value '${path}' data is too large (${data.length} bytes)`);
    let dataOffsetField: () => number;
    let sizeField = data.length;
    if (v.tombstone) {
      sizeField = 0;
      dataOffsetField = () => NO_OFFSET;
    } else if (data.length <= INLINE_DATA_MAX) {
      sizeField = (data.length | DATA_INLINE_FLAG) >>> 0;
      const inline = Buffer.alloc(4);
      data.copy(inline);
      const word = inline.readUInt32LE(0);
      dataOffsetField = () => word;
    } else if (!useBigData || data.length <= BIG_DATA_SEGMENT_SIZE) {
      const dc = cells.add(data.length, (b, p) => data.copy(b, p));
      dataOffsetField = () => dc.offset;
    } else {
      const n = Math.ceil(data.length / BIG_DATA_SEGMENT_SIZE);
      if (n > 0xffff) throw invalidArgument(`regf: value '${path}' data is too large for a big data record`);
      const segs: Cell[] = [];
      const db = cells.add(8, (b, p) => {
        b.writeUInt16LE(SIG.db, p);
        b.writeUInt16LE(n, p + 2);
        b.writeUInt32LE(list.offset, p + 4);
      });
      const list = cells.add(4 * n, (b, p) => segs.forEach((s, i) => b.writeUInt32LE(s.offset, p + 4 * i)));
      // Windows allocates every segment at full size, the last one too (observed in a Windows-written
      // hive); hivex relies on it (it takes cell size - 8 bytes from each segment).
      for (let i = 0; i < n; i++) {
        const part = data.subarray(i * BIG_DATA_SEGMENT_SIZE, Math.min(data.length, (i + 1) * BIG_DATA_SEGMENT_SIZE));
        segs.push(cells.add(BIG_DATA_SEGMENT_SIZE, (b, p) => part.copy(b, p)));
      }
      dataOffsetField = () => db.offset;
    }
    const flags = (compressed ? ValueFlag.COMP_NAME : 0) | (v.tombstone ? ValueFlag.TOMBSTONE : 0);
    const cell = cells.add(20 + nameBytes.length, (b, p) => {
      b.writeUInt16LE(SIG.vk, p);
      b.writeUInt16LE(nameBytes.length, p + 2);
      b.writeUInt32LE(sizeField, p + 4);
      b.writeUInt32LE(dataOffsetField() >>> 0, p + 8);
      b.writeUInt32LE(v.type >>> 0, p + 12);
      b.writeUInt16LE(flags, p + 16);
      nameBytes.copy(b, p + 20);
    });
    return { cell, nameUnits: v.name.length, size: v.tombstone ? 0 : data.length };
  };

  interface Emitted {
    nk: Cell;
    name: string;
    classLen: number;
  }

  const emitKey = (k: HiveKey, parentNk: Cell | undefined, parentSd: Buffer, path: string, depth: number): Emitted => {
    if (depth > MAX_KEY_DEPTH) throw invalidArgument(`regf: key '${path}' is nested deeper than ${MAX_KEY_DEPTH} levels`);
    const isRoot = parentNk === undefined;
    if (!isRoot && (k.name === '' || k.name.includes('\\'))) {
      throw invalidArgument(`regf: key name '${k.name}' under '${path}' is empty or contains a backslash`);
    }
    checkName(k.name, 'key name', 255);
    const { bytes: nameBytes, compressed } = encodeName(k.name);
    const sem = k.layerSemantics ?? LayerSemantics.NONE;
    if (![0, 1, 2, 3].includes(sem)) throw invalidArgument(`regf: key '${path}' has layer semantics ${String(sem)} (0..3)`);
    if (sem !== 0 || k.inheritClass) layered = true;
    const accessBits = k.accessBits ?? 0;
    if (!Number.isInteger(accessBits) || accessBits < 0 || accessBits > 0xff) {
      throw invalidArgument(`regf: key '${path}' access bits ${accessBits} do not fit a byte`);
    }
    const high = k.nameLengthHighBits ?? 0;
    const sd = k.security ?? parentSd;
    let flags = (k.flags ?? (isRoot ? KeyFlag.NO_DELETE : 0)) & 0xffff & ~(KeyFlag.COMP_NAME | KeyFlag.HIVE_ENTRY);
    if (isRoot) flags |= KeyFlag.HIVE_ENTRY;
    if (compressed) flags |= KeyFlag.COMP_NAME;

    // Check names are unique (case-insensitive) before laying anything out.
    const values = k.values ?? [];
    const valueNames = new Set<string>();
    for (const v of values) {
      const u = upcaseName(v.name);
      if (valueNames.has(u)) throw invalidArgument(`regf: key '${path}' has two values named '${v.name}' (names are case-insensitive)`);
      valueNames.add(u);
    }
    const subkeys = [...(k.subkeys ?? [])].sort((a, b) => compareNames(a.name, b.name));
    for (let i = 1; i < subkeys.length; i++) {
      if (compareNames(subkeys[i - 1].name, subkeys[i].name) === 0) {
        throw invalidArgument(`regf: key '${path}' has two subkeys named '${subkeys[i].name}' (names are case-insensitive)`);
      }
    }

    let valueList: Cell | undefined;
    const valueCells: Cell[] = [];
    let maxValueName = 0;
    let maxValueData = 0;
    const sub = subkeys.map(() => undefined as Emitted | undefined);
    const leaves: { cell: Cell; from: number; to: number }[] = [];
    let listRoot: Cell | undefined;
    let classCell: Cell | undefined;
    const className = k.className;
    if (className !== undefined && className.length > 0xffff) {
      throw invalidArgument(`regf: key '${path}' class name is too long (${className.length} bytes)`);
    }

    const nk = cells.add(76 + nameBytes.length, (b, p) => {
      b.writeUInt16LE(SIG.nk, p);
      b.writeUInt16LE(flags, p + 2);
      b.writeBigUInt64LE(k.lastWritten ?? 0n, p + 4);
      b[p + 12] = accessBits;
      b[p + 13] = (k.inheritClass ? INHERIT_CLASS_BIT : 0) | sem;
      b.writeUInt32LE(parentNk ? parentNk.offset : NO_OFFSET, p + 16);
      b.writeUInt32LE(subkeys.length, p + 20);
      b.writeUInt32LE(0, p + 24);
      b.writeUInt32LE(listRoot ? listRoot.offset : NO_OFFSET, p + 28);
      b.writeUInt32LE(NO_OFFSET, p + 32);
      b.writeUInt32LE(values.length, p + 36);
      b.writeUInt32LE(valueList ? valueList.offset : NO_OFFSET, p + 40);
      b.writeUInt32LE(sk.cell.offset, p + 44);
      b.writeUInt32LE(classCell ? classCell.offset : NO_OFFSET, p + 48);
      let maxSubName = 0;
      let maxSubClass = 0;
      for (const s of sub) {
        maxSubName = Math.max(maxSubName, s!.name.length * 2);
        maxSubClass = Math.max(maxSubClass, s!.classLen);
      }
      b.writeUInt16LE(Math.min(maxSubName, 0xffff), p + 52);
      b.writeUInt16LE(high & 0xffff, p + 54);
      b.writeUInt32LE(maxSubClass, p + 56);
      b.writeUInt32LE(maxValueName, p + 60);
      b.writeUInt32LE(maxValueData, p + 64);
      b.writeUInt32LE(0, p + 68);
      b.writeUInt16LE(nameBytes.length, p + 72);
      b.writeUInt16LE(className ? className.length : 0, p + 74);
      nameBytes.copy(b, p + 76);
    });
    const sk = securityFor(sd, `security descriptor of key '${path}'`);
    if (className !== undefined && className.length > 0) classCell = cells.add(className.length, (b, p) => className.copy(b, p));

    for (const v of values) {
      const e = emitValue(v, path);
      valueCells.push(e.cell);
      maxValueName = Math.max(maxValueName, e.nameUnits * 2);
      maxValueData = Math.max(maxValueData, e.size);
    }
    if (values.length > 0) {
      valueList = cells.add(4 * values.length, (b, p) => valueCells.forEach((c, i) => b.writeUInt32LE(c.offset, p + 4 * i)));
    }

    if (subkeys.length > 0) {
      const stride = 8;
      for (let from = 0; from < subkeys.length; from += MAX_LEAF_ELEMENTS) {
        const to = Math.min(subkeys.length, from + MAX_LEAF_ELEMENTS);
        const cell = cells.add(4 + stride * (to - from), (b, p) => {
          b.writeUInt16LE(useLh ? SIG.lh : SIG.lf, p);
          b.writeUInt16LE(to - from, p + 2);
          for (let i = from; i < to; i++) {
            const at = p + 4 + stride * (i - from);
            b.writeUInt32LE(sub[i]!.nk.offset, at);
            if (useLh) b.writeUInt32LE(nameHash(subkeys[i].name), at + 4);
            else nameHint(subkeys[i].name).copy(b, at + 4);
          }
        });
        leaves.push({ cell, from, to });
      }
      if (leaves.length === 1) listRoot = leaves[0].cell;
      else {
        if (leaves.length > 0xffff) throw invalidArgument(`regf: key '${path}' has too many subkeys (${subkeys.length})`);
        listRoot = cells.add(4 + 4 * leaves.length, (b, p) => {
          b.writeUInt16LE(SIG.ri, p);
          b.writeUInt16LE(leaves.length, p + 2);
          leaves.forEach((l, i) => b.writeUInt32LE(l.cell.offset, p + 4 + 4 * i));
        });
      }
    }

    subkeys.forEach((s, i) => {
      sub[i] = emitKey(s, nk, sd, path === '' ? s.name : `${path}\\${s.name}`, depth + 1);
    });
    return { nk, name: k.name, classLen: className ? className.length : 0 };
  };

  const rootSd = root.security ?? DEFAULT_KEY_SECURITY;
  const rootEmitted = emitKey(root, undefined, rootSd, '', 0);

  // Layout: pack cells into bins in order; a cell that does not fit the rest of the current bin
  // starts a new bin (the rest becomes one free cell); a cell larger than a 4 KiB bin gets a bin
  // rounded up to a multiple of 4096.
  const bins: { offset: number; size: number }[] = [];
  let binStart = 0;
  let binEnd = 0;
  let cursor = 0;
  for (const c of cells.cells) {
    if (bins.length === 0 || cursor + c.size > binEnd) {
      binStart = binEnd;
      const size = Math.max(HBIN_ALIGN, Math.ceil((HBIN_HEADER_SIZE + c.size) / HBIN_ALIGN) * HBIN_ALIGN);
      bins.push({ offset: binStart, size });
      binEnd = binStart + size;
      cursor = binStart + HBIN_HEADER_SIZE;
    }
    c.offset = cursor;
    cursor += c.size;
  }
  if (bins.length === 0) throw invalidArgument('regf: nothing to write');
  const hiveBinsSize = binEnd;
  if (hiveBinsSize > 0xffffffff - BASE_BLOCK_SIZE) throw invalidArgument(`regf: hive would be ${hiveBinsSize} bytes (over 4 GiB)`);

  const out = Buffer.alloc(BASE_BLOCK_SIZE + hiveBinsSize);
  const lastWritten = opts.lastWritten ?? 0n;
  for (const [i, bin] of bins.entries()) {
    const at = BASE_BLOCK_SIZE + bin.offset;
    out.writeUInt32LE(SIG.hbin, at);
    out.writeUInt32LE(bin.offset, at + 4);
    out.writeUInt32LE(bin.size, at + 8);
    if (i === 0) out.writeBigUInt64LE(lastWritten, at + 20);
  }
  // Free cells fill every gap (bin tails).
  let ci = 0;
  for (const bin of bins) {
    let pos = bin.offset + HBIN_HEADER_SIZE;
    const end = bin.offset + bin.size;
    while (pos < end) {
      const c = cells.cells[ci];
      if (c && c.offset === pos) {
        out.writeInt32LE(-c.size, BASE_BLOCK_SIZE + pos);
        c.fill(out, BASE_BLOCK_SIZE + pos + 4);
        pos += c.size;
        ci++;
      } else {
        out.writeInt32LE(end - pos, BASE_BLOCK_SIZE + pos);
        pos = end;
      }
    }
  }

  const flags = opts.flags ?? (layered ? HIVE_FLAG_LAYERED_KEYS : 0);
  const bb = buildBaseBlock({
    sequence: opts.sequence ?? 1,
    lastWritten,
    minorVersion: minor,
    rootCellOffset: rootEmitted.nk.offset,
    hiveBinsDataSize: hiveBinsSize,
    fileName: opts.fileName ?? '',
    flags,
    offregSerializedAt: opts.offregSerializedAt,
  });
  bb.copy(out, 0);
  return out;
}
