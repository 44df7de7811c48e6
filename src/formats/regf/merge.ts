/**
 * Merge of a differencing ("delta") hive onto a base hive: what offreg's ORMergeHives does for
 * hcsshim's CIM layer writer (Hives\X_DELTA of a layer + the parent's Hives\X_BASE → this
 * layer's Hives\X_BASE).
 *
 * Facts (msuhanov/regf spec, "Layered keys", "Key value" flags; Windows container System_Delta
 * in yarp's corpus): a delta hive is a regf 1.6 hive whose base block flag 0x2 says layered keys
 * are supported. Each key node carries a Layer semantics field (byte 13, bits 0-1) and an Inherit
 * class bit (byte 13, bit 7):
 *   0 (none)            the key merges with the same key of the lower layer: its values are laid
 *                       over the base key's values; subkeys merge one by one;
 *   1 IsTombstone       the key, and the same key below, are deleted (no class, subkeys, values);
 *   2 IsSupersedeLocal  the key replaces the base key (values, class) but not its subkeys, which
 *                       still merge one by one;
 *   3 IsSupersedeTree   the key and its whole subtree replace the base key's subtree.
 * A value with flag 0x2 is a tombstone (REG_NONE, size 0, offset 0xFFFFFFFF): it deletes the
 * same value of the lower layer. With two values of the same name, the delta's wins. The
 * timestamp of a layered key is the most recent one in the stack. With Inherit class set, the
 * class name comes from the lower layer's key.
 *
 * Inferred (offreg is closed; documented in docs/formats/regf.md): the merged key takes the
 * delta key's security descriptor (delta key nodes carry the base key's descriptor, and changes
 * made in the container land there); a merged key (semantics 0 over an existing key) keeps the
 * base key's name spelling, nk flags, access bits and value order (replaced values in place,
 * new values appended in delta order); supersede/new keys take the delta's. Layer bits and
 * tombstones never appear in the output. Several deltas are applied in order (folding is
 * equivalent to building the key node stack, see the doc).
 */
import { invalidArgument, isWinsnapError } from '../../services/errdefs.js';
import { LayerSemantics, RegType } from './constants.js';
import { upcaseName } from './names.js';
import { parseHive, type ParseHiveOptions } from './reader.js';
import type { HiveKey, HiveValue } from './tree.js';
import { writeHive, type WriteHiveOptions } from './writer.js';

function withoutLayerBits(k: HiveKey): HiveKey {
  const out: HiveKey = { ...k };
  delete out.layerSemantics;
  delete out.inheritClass;
  return out;
}

function mergeValues(base: readonly HiveValue[], delta: readonly HiveValue[]): HiveValue[] {
  const byName = new Map<string, HiveValue>();
  for (const v of delta) byName.set(upcaseName(v.name), v);
  const out: HiveValue[] = [];
  const used = new Set<string>();
  for (const v of base) {
    const u = upcaseName(v.name);
    const d = byName.get(u);
    if (d === undefined) {
      out.push(v);
      continue;
    }
    used.add(u);
    if (!d.tombstone) out.push(plainValue(d));
  }
  for (const v of delta) {
    const u = upcaseName(v.name);
    if (used.has(u) || v.tombstone) continue;
    out.push(plainValue(v));
  }
  return out;
}

function plainValue(v: HiveValue): HiveValue {
  return v.tombstone ? { name: v.name, type: RegType.NONE, data: Buffer.alloc(0) } : { name: v.name, type: v.type, data: v.data };
}

function childMap(k: HiveKey | undefined): Map<string, HiveKey> {
  const m = new Map<string, HiveKey>();
  for (const s of k?.subkeys ?? []) m.set(upcaseName(s.name), s);
  return m;
}

/**
 * Lays delta key `d` over base key `base` (undefined when the base has no such key or it is
 * hidden by a supersede-tree ancestor). `classBase` is the base key used for class inheritance.
 * Returns undefined when the key is deleted.
 */
function applyKey(base: HiveKey | undefined, d: HiveKey, classBase: HiveKey | undefined, path: string): HiveKey | undefined {
  const sem = d.layerSemantics ?? LayerSemantics.NONE;
  if (sem === LayerSemantics.TOMBSTONE) return undefined;
  const merging = sem === LayerSemantics.NONE && base !== undefined;
  const out: HiveKey = withoutLayerBits(merging ? { ...base, name: base.name } : { ...d });
  delete out.className;

  // Class name: inherited from the lower layer's key, or the delta's own.
  const cls = d.inheritClass ? classBase?.className : d.className;
  if (cls !== undefined && cls.length > 0) out.className = cls;

  out.security = d.security ?? base?.security;
  if (out.security === undefined) delete out.security;

  if (merging) {
    const bt = base.lastWritten ?? 0n;
    const dt = d.lastWritten ?? 0n;
    out.lastWritten = dt > bt ? dt : bt;
    out.values = mergeValues(base.values ?? [], d.values ?? []);
  } else {
    out.lastWritten = d.lastWritten ?? 0n;
    out.values = (d.values ?? []).filter((v) => !v.tombstone).map(plainValue);
  }

  // Subkeys: a supersede-tree key hides the whole base subtree; otherwise base subkeys the
  // delta does not mention stay, and each delta subkey is laid over its base counterpart.
  const hideBase = sem === LayerSemantics.SUPERSEDE_TREE || base === undefined;
  const baseChildren = hideBase ? new Map<string, HiveKey>() : childMap(base);
  const classChildren = childMap(classBase);
  const result: HiveKey[] = [];
  const deltaNames = new Set<string>();
  for (const dc of d.subkeys ?? []) {
    const u = upcaseName(dc.name);
    if (deltaNames.has(u)) throw invalidArgument(`regf merge: delta key '${path}' has two subkeys named '${dc.name}'`);
    deltaNames.add(u);
    const merged = applyKey(baseChildren.get(u), dc, classChildren.get(u), path === '' ? dc.name : `${path}\\${dc.name}`);
    if (merged) result.push(merged);
  }
  if (!hideBase) {
    for (const bc of base.subkeys ?? []) if (!deltaNames.has(upcaseName(bc.name))) result.push(bc);
  }
  out.subkeys = result;
  return out;
}

/**
 * Lays a differencing hive's tree over a base tree (both as read by `RegKey.toTree()`).
 * The result has no layer semantics and no tombstones from the delta.
 */
export function mergeHiveTrees(base: HiveKey, delta: HiveKey): HiveKey {
  if ((delta.layerSemantics ?? 0) === LayerSemantics.TOMBSTONE) {
    throw invalidArgument('regf merge: the delta hive root key is a tombstone');
  }
  const merged = applyKey(base, delta, base, '');
  // The root keeps the base root's name: the root's name is no part of any key path.
  return { ...merged!, name: base.name };
}

export interface MergeHivesOptions extends WriteHiveOptions {
  /** Options for parsing the inputs. */
  parse?: ParseHiveOptions;
}

/**
 * ORMergeHives([base, ...deltas]) + ORSaveHive: parses the hives, lays each delta over the
 * result in order, and writes a new hive. The output keeps the base hive's minor version unless
 * `minorVersion` is given; timestamps come from the inputs (the base block's last written time is
 * 0 unless `lastWritten` is given), so the output depends only on the inputs.
 */
export function mergeHives(base: Buffer, deltas: Buffer | readonly Buffer[], opts: MergeHivesOptions = {}): Buffer {
  const list = Buffer.isBuffer(deltas) ? [deltas] : deltas;
  const baseHive = parseHive(base, opts.parse);
  let tree = baseHive.root.toTree();
  for (const [i, d] of list.entries()) {
    let deltaTree: HiveKey;
    try {
      deltaTree = parseHive(d, opts.parse).root.toTree();
    } catch (e) {
      throw isWinsnapError(e) ? e.wrap(`delta hive ${i}`) : e;
    }
    tree = mergeHiveTrees(tree, deltaTree);
  }
  const { parse: _parse, ...writeOpts } = opts;
  const minor = (opts.minorVersion ?? baseHive.header.minorVersion) as 3 | 4 | 5 | 6;
  return writeHive(tree, { ...writeOpts, minorVersion: minor });
}
