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
 * Observed in Windows-written hives (yarp's test corpus: a Windows container System_Delta, a
 * big-data hive and RegSaveKey output): empty values are stored inline (size 0x80000000,
 * offset 0); unused list, class and security offsets are 0xFFFFFFFF; the unused tail of a bin is
 * one free cell; every big data segment cell is allocated at the full 16344 bytes, the last too.
 *
 * Two passes and no per-cell objects: pass 1 walks the tree depth-first (key, security, class,
 * values, value list, subkey lists, then the subkeys in sorted order) recording cell sizes;
 * layout packs them into bins; pass 2 walks the same plan writing each cell at its offset.
 * Output is deterministic: no clock is read and input order of subkeys does not matter.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { buildBaseBlock } from './baseblock.js';
import {
  BASE_BLOCK_SIZE,
  BIG_DATA_SEGMENT_SIZE,
  DATA_INLINE_FLAG,
  HBIN_ALIGN,
  HBIN_HEADER_SIZE,
  HIVE_FLAG_LAYERED_KEYS,
  INHERIT_CLASS_BIT,
  INLINE_DATA_MAX,
  KeyFlag,
  NO_OFFSET,
  SIG,
  ValueFlag,
} from './constants.js';
import { compareNames, isCompressible, nameHash, nameHint, upcaseName } from './names.js';
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

const SIG_NK = SIG.nk;
const SIG_VK = SIG.vk;
const SIG_SK = SIG.sk;
const SIG_LH = SIG.lh;
const SIG_LF = SIG.lf;
const SIG_RI = SIG.ri;
const SIG_DB = SIG.db;

/** Growable list of cell sizes (bytes, 8-aligned, including the size field). */
class Sizes {
  data = new Int32Array(1024);
  length = 0;
  add(payloadLen: number): number {
    if (this.length === this.data.length) {
      const d = new Int32Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length] = (payloadLen + 4 + 7) & ~7;
    return this.length++;
  }
}

interface SecurityPlan {
  sd: Buffer;
  cell: number;
  refs: number;
}

interface KeyPlan {
  key: HiveKey;
  compressed: boolean;
  nameBytes: number;
  flags: number;
  sem: number;
  accessBits: number;
  high: number;
  nk: number;
  sk: SecurityPlan;
  cls: number;
  values: readonly HiveValue[];
  /** Index of the first cell of the first value (values' cells are contiguous). */
  valueCells: number;
  valueList: number;
  subkeys: KeyPlan[];
  /** Leaf cells, then the index root (if more than one leaf). */
  leaves: number[];
  ri: number;
  maxValueName: number;
  maxValueData: number;
}

function nameLengthError(name: string, what: string, maxUnits: number): never {
  throw invalidArgument(`regf: ${what} '${name.slice(0, 40)}…' is too long (${name.length} units, at most ${maxUnits})`);
}

/** Serialises `root` (the hive's root key) into a hive file. */
export function writeHive(root: HiveKey, opts: WriteHiveOptions = {}): Buffer {
  const minor = opts.minorVersion ?? 5;
  if (![3, 4, 5, 6].includes(minor)) throw invalidArgument(`regf: unsupported minor version ${String(minor)} (3..6)`);
  const useLh = minor > 4;
  const useBigData = minor > 3;
  const sizes = new Sizes();
  const securities = new Map<string, SecurityPlan>();
  const skOrder: SecurityPlan[] = [];
  let layered = false;

  const byBuffer = new Map<Buffer, SecurityPlan>();
  const securityFor = (sd: Buffer, path: string): SecurityPlan => {
    let s = byBuffer.get(sd);
    if (s) {
      s.refs++;
      return s;
    }
    const id = sd.toString('latin1');
    s = securities.get(id);
    if (s) byBuffer.set(sd, s);
    else {
      checkSecurityDescriptor(sd, `security descriptor of key '${path}'`);
      s = { sd, cell: sizes.add(20 + sd.length), refs: 0 };
      securities.set(id, s);
      byBuffer.set(sd, s);
      skOrder.push(s);
    }
    s.refs++;
    return s;
  };

  // ---- pass 1: plan ------------------------------------------------------------------------
  const planValues = (values: readonly HiveValue[], path: string, p: { maxValueName: number; maxValueData: number }): number => {
    let first = -1;
    let names: Set<string> | undefined;
    if (values.length > 1) names = new Set();
    for (const v of values) {
      if (v.name.length > 16383) nameLengthError(v.name, 'value name', 16383);
      if (names) {
        const u = upcaseName(v.name);
        if (names.has(u)) throw invalidArgument(`regf: key '${path}' has two values named '${v.name}' (names are case-insensitive)`);
        names.add(u);
      }
      if (!Number.isInteger(v.type) || v.type < 0 || v.type > 0xffffffff) {
        throw invalidArgument(`regf: value '${path}\\${v.name}' has type ${v.type} (a u32 expected)`);
      }
      const len = v.data.length;
      if (v.tombstone) {
        layered = true;
        if (v.type !== 0 || len !== 0) throw invalidArgument(`regf: tombstone value '${path}\\${v.name}' must have type REG_NONE and no data`);
      }
      if (len > 0x7fffffff) throw invalidArgument(`regf: value '${path}\\${v.name}' data is too large (${len} bytes)`);
      const nameBytes = isCompressible(v.name) ? v.name.length : 2 * v.name.length;
      const vk = sizes.add(20 + nameBytes);
      if (first < 0) first = vk;
      if (!v.tombstone && len > INLINE_DATA_MAX) {
        if (!useBigData || len <= BIG_DATA_SEGMENT_SIZE) sizes.add(len);
        else {
          const n = Math.ceil(len / BIG_DATA_SEGMENT_SIZE);
          if (n > 0xffff) throw invalidArgument(`regf: value '${path}\\${v.name}' data is too large for a big data record`);
          sizes.add(8); // db
          sizes.add(4 * n); // segment list
          for (let i = 0; i < n; i++) sizes.add(BIG_DATA_SEGMENT_SIZE);
        }
      }
      p.maxValueName = Math.max(p.maxValueName, 2 * v.name.length);
      if (!v.tombstone) p.maxValueData = Math.max(p.maxValueData, len);
    }
    return first;
  };

  const planKey = (k: HiveKey, parentSd: Buffer, path: string, depth: number, isRoot: boolean): KeyPlan => {
    if (depth > MAX_KEY_DEPTH) throw invalidArgument(`regf: key '${path}' is nested deeper than ${MAX_KEY_DEPTH} levels`);
    const name = k.name;
    if (!isRoot && (name === '' || name.includes('\\'))) {
      throw invalidArgument(`regf: key name '${name}' under '${path}' is empty or contains a backslash`);
    }
    if (name.length > 255) nameLengthError(name, 'key name', 255);
    const compressed = isCompressible(name);
    const sem = k.layerSemantics ?? 0;
    if (sem !== 0 && sem !== 1 && sem !== 2 && sem !== 3) throw invalidArgument(`regf: key '${path}' has layer semantics ${String(sem)} (0..3)`);
    if (sem !== 0 || k.inheritClass) layered = true;
    const accessBits = k.accessBits ?? 0;
    if (!Number.isInteger(accessBits) || accessBits < 0 || accessBits > 0xff) {
      throw invalidArgument(`regf: key '${path}' access bits ${accessBits} do not fit a byte`);
    }
    let flags = (k.flags ?? (isRoot ? KeyFlag.NO_DELETE : 0)) & 0xffff & ~(KeyFlag.COMP_NAME | KeyFlag.HIVE_ENTRY);
    if (isRoot) flags |= KeyFlag.HIVE_ENTRY;
    if (compressed) flags |= KeyFlag.COMP_NAME;
    const className = k.className;
    if (className !== undefined && className.length > 0xffff) {
      throw invalidArgument(`regf: key '${path}' class name is too long (${className.length} bytes)`);
    }
    const sd = k.security ?? parentSd;
    const nameBytes = compressed ? name.length : 2 * name.length;
    const nk = sizes.add(76 + nameBytes);
    const sk = securityFor(sd, path);
    const cls = className !== undefined && className.length > 0 ? sizes.add(className.length) : -1;
    const values = k.values ?? [];
    const plan: KeyPlan = {
      key: k,
      compressed,
      nameBytes,
      flags,
      sem,
      accessBits,
      high: k.nameLengthHighBits ?? 0,
      nk,
      sk,
      cls,
      values,
      valueCells: -1,
      valueList: -1,
      subkeys: [],
      leaves: [],
      ri: -1,
      maxValueName: 0,
      maxValueData: 0,
    };
    plan.valueCells = planValues(values, path, plan);
    if (values.length > 0) plan.valueList = sizes.add(4 * values.length);

    const subkeys = k.subkeys ?? [];
    if (subkeys.length > 0) {
      const sorted = subkeys.length > 1 ? [...subkeys].sort((a, b) => compareNames(a.name, b.name)) : subkeys;
      for (let i = 1; i < sorted.length; i++) {
        if (compareNames(sorted[i - 1].name, sorted[i].name) === 0) {
          throw invalidArgument(`regf: key '${path}' has two subkeys named '${sorted[i].name}' (names are case-insensitive)`);
        }
      }
      for (let from = 0; from < sorted.length; from += MAX_LEAF_ELEMENTS) {
        plan.leaves.push(sizes.add(4 + 8 * (Math.min(sorted.length, from + MAX_LEAF_ELEMENTS) - from)));
      }
      if (plan.leaves.length > 1) {
        if (plan.leaves.length > 0xffff) throw invalidArgument(`regf: key '${path}' has too many subkeys (${sorted.length})`);
        plan.ri = sizes.add(4 + 4 * plan.leaves.length);
      }
      for (const s of sorted) plan.subkeys.push(planKey(s, sd, path === '' ? s.name : `${path}\\${s.name}`, depth + 1, false));
    }
    return plan;
  };

  const rootPlan = planKey(root, root.security ?? DEFAULT_KEY_SECURITY, '', 0, true);

  // ---- layout: pack cells into bins in order ---------------------------------------------------
  // A cell that does not fit the rest of the current bin starts a new bin (the rest becomes one
  // free cell); a cell larger than a 4 KiB bin gets a bin rounded up to a multiple of 4096.
  const count = sizes.length;
  const size = sizes.data;
  const offsets = new Uint32Array(count);
  const bins: number[] = []; // pairs: offset, size
  let binEnd = 0;
  let cursor = 0;
  for (let i = 0; i < count; i++) {
    const s = size[i];
    if (i === 0 || cursor + s > binEnd) {
      const binSize = Math.max(HBIN_ALIGN, Math.ceil((HBIN_HEADER_SIZE + s) / HBIN_ALIGN) * HBIN_ALIGN);
      bins.push(binEnd, binSize);
      cursor = binEnd + HBIN_HEADER_SIZE;
      binEnd += binSize;
    }
    offsets[i] = cursor;
    cursor += s;
  }
  const hiveBinsSize = binEnd;
  if (hiveBinsSize > 0xffffffff - BASE_BLOCK_SIZE) throw invalidArgument(`regf: hive would be ${hiveBinsSize} bytes (over 4 GiB)`);

  const out = Buffer.alloc(BASE_BLOCK_SIZE + hiveBinsSize);
  const lastWritten = opts.lastWritten ?? 0n;
  const dvh = new DataView(out.buffer, out.byteOffset, out.byteLength);
  {
    // Bin headers, cell size fields and free cells for the bin tails.
    let ci = 0;
    for (let b = 0; b < bins.length; b += 2) {
      const binOff = bins[b];
      const binSize = bins[b + 1];
      const at = BASE_BLOCK_SIZE + binOff;
      out.writeUInt32LE(SIG.hbin, at);
      out.writeUInt32LE(binOff, at + 4);
      out.writeUInt32LE(binSize, at + 8);
      if (b === 0) out.writeBigUInt64LE(lastWritten, at + 20);
      const end = binOff + binSize;
      let pos = binOff + HBIN_HEADER_SIZE;
      while (ci < count && offsets[ci] < end) {
        dvh.setInt32(BASE_BLOCK_SIZE + offsets[ci], -size[ci], true);
        pos = offsets[ci] + size[ci];
        ci++;
      }
      if (pos < end) out.writeInt32LE(end - pos, BASE_BLOCK_SIZE + pos);
    }
  }
  const at = (cell: number): number => BASE_BLOCK_SIZE + offsets[cell] + 4;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const w32 = (v: number, pos: number): void => dv.setUint32(pos, v, true);
  const w16 = (v: number, pos: number): void => dv.setUint16(pos, v, true);

  // ---- pass 2: write ----------------------------------------------------------------------------
  skOrder.forEach((s, i) => {
    const p = at(s.cell);
    const n = skOrder.length;
    w16(SIG_SK, p);
    w32(offsets[skOrder[(i + 1) % n].cell], p + 4); // flink
    w32(offsets[skOrder[(i - 1 + n) % n].cell], p + 8); // blink
    w32(s.refs, p + 12);
    w32(s.sd.length, p + 16);
    s.sd.copy(out, p + 20);
  });

  const writeValues = (plan: KeyPlan): void => {
    let cell = plan.valueCells;
    const listPos = plan.valueList >= 0 ? at(plan.valueList) : 0;
    plan.values.forEach((v, i) => {
      const vk = cell++;
      const p = at(vk);
      const data = v.data;
      const len = data.length;
      const compressed = isCompressible(v.name);
      w32(offsets[vk], listPos + 4 * i);
      w16(SIG_VK, p);
      w16(compressed ? v.name.length : 2 * v.name.length, p + 2);
      if (v.tombstone) {
        w32(0, p + 4);
        w32(NO_OFFSET, p + 8);
      } else if (len <= INLINE_DATA_MAX) {
        w32((len | DATA_INLINE_FLAG) >>> 0, p + 4);
        data.copy(out, p + 8); // the unused bytes of the field stay zero
      } else {
        w32(len, p + 4);
        if (!useBigData || len <= BIG_DATA_SEGMENT_SIZE) {
          const d = cell++;
          w32(offsets[d], p + 8);
          data.copy(out, at(d));
        } else {
          const n = Math.ceil(len / BIG_DATA_SEGMENT_SIZE);
          const db = cell++;
          const list = cell++;
          w32(offsets[db], p + 8);
          const dbp = at(db);
          w16(SIG_DB, dbp);
          w16(n, dbp + 2);
          w32(offsets[list], dbp + 4);
          const lp = at(list);
          for (let s = 0; s < n; s++) {
            const seg = cell++;
            w32(offsets[seg], lp + 4 * s);
            data.copy(out, at(seg), s * BIG_DATA_SEGMENT_SIZE, Math.min(len, (s + 1) * BIG_DATA_SEGMENT_SIZE));
          }
        }
      }
      w32(v.type >>> 0, p + 12);
      w16((compressed ? ValueFlag.COMP_NAME : 0) | (v.tombstone ? ValueFlag.TOMBSTONE : 0), p + 16);
      out.write(v.name, p + 20, compressed ? 'latin1' : 'utf16le');
    });
  };

  const writeKey = (plan: KeyPlan, parentNk: number): void => {
    const k = plan.key;
    const p = at(plan.nk);
    const subs = plan.subkeys;
    let maxSubName = 0;
    let maxSubClass = 0;
    for (const s of subs) {
      maxSubName = Math.max(maxSubName, 2 * s.key.name.length);
      maxSubClass = Math.max(maxSubClass, s.key.className?.length ?? 0);
    }
    w16(SIG_NK, p);
    w16(plan.flags, p + 2);
    dv.setBigUint64(p + 4, k.lastWritten ?? 0n, true);
    out[p + 12] = plan.accessBits;
    out[p + 13] = (k.inheritClass ? INHERIT_CLASS_BIT : 0) | plan.sem;
    w32(parentNk >= 0 ? offsets[parentNk] : NO_OFFSET, p + 16);
    w32(subs.length, p + 20);
    const listRoot = plan.ri >= 0 ? plan.ri : plan.leaves.length > 0 ? plan.leaves[0] : -1;
    w32(listRoot >= 0 ? offsets[listRoot] : NO_OFFSET, p + 28);
    w32(NO_OFFSET, p + 32);
    w32(plan.values.length, p + 36);
    w32(plan.valueList >= 0 ? offsets[plan.valueList] : NO_OFFSET, p + 40);
    w32(offsets[plan.sk.cell], p + 44);
    w32(plan.cls >= 0 ? offsets[plan.cls] : NO_OFFSET, p + 48);
    w16(Math.min(maxSubName, 0xffff), p + 52);
    w16(plan.high & 0xffff, p + 54);
    w32(maxSubClass, p + 56);
    w32(plan.maxValueName, p + 60);
    w32(plan.maxValueData, p + 64);
    w16(plan.nameBytes, p + 72);
    w16(plan.cls >= 0 ? k.className!.length : 0, p + 74);
    out.write(k.name, p + 76, plan.compressed ? 'latin1' : 'utf16le');
    if (plan.cls >= 0) k.className!.copy(out, at(plan.cls));
    writeValues(plan);
    plan.leaves.forEach((leaf, li) => {
      const lp = at(leaf);
      const from = li * MAX_LEAF_ELEMENTS;
      const to = Math.min(subs.length, from + MAX_LEAF_ELEMENTS);
      w16(useLh ? SIG_LH : SIG_LF, lp);
      w16(to - from, lp + 2);
      for (let i = from; i < to; i++) {
        const e = lp + 4 + 8 * (i - from);
        w32(offsets[subs[i].nk], e);
        if (useLh) w32(nameHash(subs[i].key.name), e + 4);
        else nameHint(subs[i].key.name).copy(out, e + 4);
      }
    });
    if (plan.ri >= 0) {
      const rp = at(plan.ri);
      w16(SIG_RI, rp);
      w16(plan.leaves.length, rp + 2);
      plan.leaves.forEach((leaf, i) => w32(offsets[leaf], rp + 4 + 4 * i));
    }
    for (const s of subs) writeKey(s, plan.nk);
  };
  writeKey(rootPlan, -1);

  const bb = buildBaseBlock({
    sequence: opts.sequence ?? 1,
    lastWritten,
    minorVersion: minor,
    rootCellOffset: offsets[rootPlan.nk],
    hiveBinsDataSize: hiveBinsSize,
    fileName: opts.fileName ?? '',
    flags: opts.flags ?? (layered ? HIVE_FLAG_LAYERED_KEYS : 0),
    offregSerializedAt: opts.offregSerializedAt,
  });
  bb.copy(out, 0);
  return out;
}
