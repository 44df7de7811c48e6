import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { tempDir } from '../../helpers/tools.js';
import { mergeHives, parseHive, writeHive, type HiveKey, type HiveValue, type RegKey } from '../../../src/formats/regf/index.js';
import { isInvalidArgument } from '../../../src/services/errdefs.js';
import { expectedRKeys, expectedXKey, hivexmlTree, regfexportKeys, regfinfoVersion, type MKey } from './validators.js';
import { modelCompare, treeArb, upper } from './arbitraries.js';

const sz = (s: string): Buffer => Buffer.from(s + '\0', 'utf16le');
const dw = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const cls = (s: string): Buffer => Buffer.from(s, 'utf16le');
const V = (name: string, data: Buffer, type = 3): HiveValue => ({ name, type, data });
const T = (name: string): HiveValue => ({ name, type: 0, data: Buffer.alloc(0), tombstone: true });

/** A security descriptor distinct from the writer's default (group SID S-1-5-19). */
function otherSd(): Buffer {
  const sd = Buffer.from(parseHive(writeHive({ name: 'x' })).root.security()!);
  sd.writeUInt32LE(19, sd.readUInt32LE(8) + 8);
  return sd;
}

const BASE: HiveKey = {
  name: 'CMI-CreateHive{B1}',
  values: [V('RootVal', dw(1), 4)],
  subkeys: [
    { name: 'Keep', lastWritten: 100n, values: [V('a', dw(1), 4), V('b', dw(2), 4)], subkeys: [{ name: 'Child', values: [V('c', dw(3), 4)] }] },
    {
      name: 'Modify',
      lastWritten: 500n,
      className: cls('ModCls'),
      values: [V('x', sz('old'), 1), V('y', dw(5), 4), V('z', dw(6), 4)],
      subkeys: [{ name: 'Sub1', values: [V('s', dw(1), 4)] }, { name: 'Sub2' }],
    },
    { name: 'DeleteMe', values: [V('v', dw(1), 4)], subkeys: [{ name: 'Inner' }] },
    {
      name: 'Replace',
      lastWritten: 900n,
      className: cls('BaseCls'),
      values: [V('v', sz('base'), 1), V('w', dw(1), 4)],
      subkeys: [{ name: 'OldChild', values: [V('o', dw(1), 4)] }, { name: 'OldChild2' }],
    },
    {
      name: 'Local',
      className: cls('LocalCls'),
      values: [V('l1', dw(1), 4), V('l2', dw(2), 4)],
      subkeys: [{ name: 'LocalChild', values: [V('lc', dw(1), 4)] }, { name: 'LocalChild2' }],
    },
    { name: 'ClassKey', className: cls('Inherited') },
  ],
};

function delta(sd: Buffer): HiveKey {
  return {
    name: 'ROOT',
    subkeys: [
      { name: 'keep', lastWritten: 200n, inheritClass: true, security: sd, values: [V('d', dw(4), 4)] },
      {
        name: 'Modify',
        lastWritten: 300n,
        inheritClass: true,
        values: [V('x', sz('new'), 1), T('Y'), V('n', sz('added'), 1)],
        subkeys: [
          { name: 'Sub1', layerSemantics: 1 },
          { name: 'Sub2', inheritClass: true, values: [V('s2', dw(2), 4)] },
          { name: 'Sub3', layerSemantics: 3, values: [V('s3', dw(3), 4)] },
        ],
      },
      { name: 'DeleteMe', layerSemantics: 1 },
      {
        name: 'Replace',
        lastWritten: 10n,
        layerSemantics: 3,
        className: cls('DeltaCls'),
        values: [V('v', sz('delta'), 1), T('w')],
        subkeys: [{ name: 'NewChild', layerSemantics: 3, values: [V('nc', dw(1), 4)] }, { name: 'OldChild', layerSemantics: 1 }],
      },
      {
        name: 'Local',
        layerSemantics: 2,
        values: [V('l3', dw(3), 4)],
        subkeys: [
          { name: 'LocalChild', inheritClass: true, values: [V('lc2', dw(2), 4)] },
          { name: 'NewLocal', layerSemantics: 3 },
        ],
      },
      { name: 'NewKey', layerSemantics: 3, lastWritten: 77n, subkeys: [{ name: 'Deep', layerSemantics: 3, values: [V('deep', sz('yes'), 1)] }] },
      { name: 'ClassKey', inheritClass: true },
      { name: 'GhostTomb', layerSemantics: 1 },
    ],
  };
}

/** The merged tree, worked out by hand from the layered-key rules. */
const EXPECTED: MKey = {
  name: 'CMI-CreateHive{B1}',
  values: [V('RootVal', dw(1), 4)],
  subkeys: [
    { name: 'ClassKey', className: cls('Inherited') },
    { name: 'Keep', lastWritten: 200n, values: [V('a', dw(1), 4), V('b', dw(2), 4), V('d', dw(4), 4)], subkeys: [{ name: 'Child', values: [V('c', dw(3), 4)] }] },
    {
      name: 'Local',
      values: [V('l3', dw(3), 4)],
      subkeys: [{ name: 'LocalChild', values: [V('lc', dw(1), 4), V('lc2', dw(2), 4)] }, { name: 'LocalChild2' }, { name: 'NewLocal' }],
    },
    {
      name: 'Modify',
      lastWritten: 500n,
      className: cls('ModCls'),
      values: [V('x', sz('new'), 1), V('z', dw(6), 4), V('n', sz('added'), 1)],
      subkeys: [{ name: 'Sub2', values: [V('s2', dw(2), 4)] }, { name: 'Sub3', values: [V('s3', dw(3), 4)] }],
    },
    { name: 'NewKey', lastWritten: 77n, subkeys: [{ name: 'Deep', values: [V('deep', sz('yes'), 1)] }] },
    { name: 'Replace', lastWritten: 10n, className: cls('DeltaCls'), values: [V('v', sz('delta'), 1)], subkeys: [{ name: 'NewChild', values: [V('nc', dw(1), 4)] }] },
  ],
};

test('merging a delta hive: adds, replaces, tombstones, supersede-local/tree, class inheritance — checked by hivexml and regfexport', () => {
  const dir = tempDir();
  try {
    const sd = otherSd();
    const base = writeHive(BASE, { minorVersion: 5 });
    const d = writeHive(delta(sd), { minorVersion: 6 });
    // The delta is a real layered hive: version 1.6, flag 0x2, tombstone records that hivex cannot read.
    assert.equal(d.readUInt32LE(144), 2);
    const merged = mergeHives(base, d);
    const file = join(dir.path, 'merged');
    writeFileSync(file, merged);
    assert.deepEqual(hivexmlTree(file), expectedXKey(EXPECTED, modelCompare));
    assert.deepEqual(regfexportKeys(file), expectedRKeys(EXPECTED, modelCompare));
    assert.equal(regfinfoVersion(file), '1.5');

    const h = parseHive(merged);
    assert.equal(h.header.flags, 0, 'no layered-keys flag in a merged hive');
    const check = (k: RegKey): void => {
      assert.equal(k.layerSemantics, 0);
      assert.equal(k.inheritClass, false);
      for (const v of k.values()) assert.equal(v.isTombstone, false);
      k.subkeys().forEach(check);
    };
    check(h.root);
    // Security: the delta key's descriptor wins; untouched keys keep the base's.
    assert.ok(h.key('Keep')!.security()!.equals(sd));
    assert.ok(h.key('Keep\\Child')!.security()!.equals(parseHive(base).key('Keep\\Child')!.security()!));
    assert.ok(!h.key('Modify')!.security()!.equals(sd));
    // Determinism.
    assert.ok(merged.equals(mergeHives(base, d)));
  } finally {
    dir.cleanup();
  }
});

test('several deltas apply in order, like ORMergeHives over a layer chain', () => {
  const base = writeHive({ name: 'R', subkeys: [{ name: 'K', values: [V('v', dw(1), 4)] }] });
  const d1 = writeHive({ name: 'R', subkeys: [{ name: 'K', layerSemantics: 1 }] }, { minorVersion: 6 });
  const d2 = writeHive({ name: 'R', subkeys: [{ name: 'K', values: [V('w', dw(2), 4)] }] }, { minorVersion: 6 });
  const once = parseHive(mergeHives(base, [d1, d2])).root.toTree();
  const stepwise = parseHive(mergeHives(mergeHives(base, d1), d2)).root.toTree();
  assert.deepEqual(once, stepwise);
  assert.deepEqual(
    parseHive(mergeHives(base, [d1, d2])).key('K')!.values().map((v) => v.name),
    ['w'],
  );
});

test('merge errors: a tombstone root, a malformed delta', () => {
  const base = writeHive({ name: 'R' });
  assert.throws(
    () => mergeHives(base, writeHive({ name: 'R', layerSemantics: 1 }, { minorVersion: 6 })),
    (e: unknown) => isInvalidArgument(e) && /root key is a tombstone/.test((e as Error).message),
  );
  const bad = writeHive({ name: 'R' });
  bad.write('nope', 0, 'latin1');
  assert.throws(
    () => mergeHives(base, bad),
    (e: unknown) => isInvalidArgument(e) && /^delta hive 0: regf: bad signature/.test((e as Error).message),
  );
});

// ---- property: random base + random layered delta vs. a path-based model of the spec -----------

/** mulberry32: a small seeded PRNG so one fast-check integer drives a whole delta. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const recase = (s: string, r: () => number): string => [...s].map((c) => (r() < 0.3 ? (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) : c)).join('');

function freshName(r: () => number, taken: Set<string>): string {
  for (;;) {
    const n = `N${Math.floor(r() * 1e6)}`;
    if (!taken.has(upper(n))) {
      taken.add(upper(n));
      return n;
    }
  }
}

function randomValue(r: () => number, name: string): HiveValue {
  const k = Math.floor(r() * 3);
  if (k === 0) return V(name, dw(Math.floor(r() * 1000)), 4);
  if (k === 1) return V(name, sz(`s${Math.floor(r() * 1000)}`), 1);
  return V(name, Buffer.from([Math.floor(r() * 256), 1, 2, 3, 4, 5]), 3);
}

/** A layered delta over `base` (undefined: a new key). `inTree`: under a supersede-tree key. */
function randomDelta(r: () => number, base: MKey | undefined, name: string, inTree: boolean, depth: number): HiveKey {
  const roll = r();
  let sem: 0 | 1 | 2 | 3;
  if (inTree) sem = roll < 0.15 && base ? 1 : 3;
  else if (base === undefined) sem = roll < 0.1 ? 1 : roll < 0.55 ? 3 : roll < 0.7 ? 2 : 0;
  else sem = roll < 0.15 ? 1 : roll < (base.subkeys?.length ? 0.4 : 0.3) ? 3 : roll < 0.5 ? 2 : 0;
  const k: HiveKey = { name, layerSemantics: sem, lastWritten: BigInt(Math.floor(r() * 1000)) };
  if (sem === 1) return k;
  if (r() < 0.5) k.inheritClass = true;
  if (r() < 0.3) k.className = cls(`D${Math.floor(r() * 100)}`);
  const taken = new Set<string>();
  const values: HiveValue[] = [];
  for (const v of base?.values ?? []) {
    const p = r();
    if (p < 0.25) values.push(randomValue(r, recase(v.name, r)));
    else if (p < 0.45) values.push(T(recase(v.name, r)));
    else continue;
    taken.add(upper(v.name));
  }
  const nNew = Math.floor(r() * 3);
  for (let i = 0; i < nNew; i++) {
    const n = freshName(r, taken);
    values.push(r() < 0.2 ? T(n) : randomValue(r, n));
  }
  k.values = values;
  const kids: HiveKey[] = [];
  const takenKeys = new Set<string>();
  if (depth < 4) {
    for (const c of base?.subkeys ?? []) {
      if (r() < 0.5) {
        kids.push(randomDelta(r, c, recase(c.name, r), inTree || sem === 3, depth + 1));
        takenKeys.add(upper(c.name));
      }
    }
    const nk = Math.floor(r() * 2.2);
    for (let i = 0; i < nk; i++) kids.push(randomDelta(r, undefined, freshName(r, takenKeys), inTree || sem === 3, depth + 1));
  }
  k.subkeys = kids;
  return k;
}

interface PathNode {
  name: string;
  k: HiveKey;
}

function flatten(k: HiveKey, prefix: string, out: Map<string, PathNode>): void {
  for (const c of k.subkeys ?? []) {
    const p = prefix === '' ? upper(c.name) : `${prefix}\\${upper(c.name)}`;
    out.set(p, { name: c.name, k: c });
    flatten(c, p, out);
  }
}

/**
 * The spec's layered-key rules, evaluated per path (not recursively like the implementation):
 * a base path survives unless the delta has a tombstone at it or an ancestor, or a supersede-tree
 * key at a strict ancestor; a delta path shows unless it is a tombstone.
 */
function modelMerge(base: MKey, d: HiveKey): MKey {
  const B = new Map<string, PathNode>();
  const D = new Map<string, PathNode>();
  flatten(base as HiveKey, '', B);
  flatten(d, '', D);
  const ancestors = (p: string): string[] => {
    const parts = p.split('\\');
    return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('\\'));
  };
  const sem = (p: string) => D.get(p)?.k.layerSemantics ?? 0;
  const baseVisible = (p: string): boolean =>
    B.has(p) && sem(p) !== 1 && ancestors(p).every((a) => !D.has(a) || (sem(a) !== 1 && sem(a) !== 3));
  const deltaVisible = (p: string): boolean => D.has(p) && sem(p) !== 1;
  const paths = new Set([...B.keys(), ...D.keys()].filter((p) => baseVisible(p) || deltaVisible(p)));

  const build = (p: string, b: HiveKey | undefined, dk: HiveKey | undefined, name: string): MKey => {
    const merging = dk !== undefined && (dk.layerSemantics ?? 0) === 0 && b !== undefined;
    const out: MKey = { name: merging || dk === undefined ? b!.name : name };
    const plain = (vs: HiveValue[]) => vs.filter((v) => !v.tombstone).map((v) => ({ name: v.name, type: v.type, data: v.data }));
    if (dk === undefined) {
      out.values = plain(b!.values ?? []);
      out.className = b!.className;
      out.lastWritten = b!.lastWritten ?? 0n;
    } else {
      const baseCls = B.get(p)?.k.className ?? (p === '' ? base.className : undefined);
      out.className = dk.inheritClass ? baseCls : dk.className;
      if (merging) {
        const dv = new Map((dk.values ?? []).map((v) => [upper(v.name), v]));
        const vals: HiveValue[] = [];
        for (const v of b.values ?? []) {
          const o = dv.get(upper(v.name));
          if (o === undefined) vals.push(v);
          else if (!o.tombstone) vals.push(o);
        }
        const bnames = new Set((b.values ?? []).map((v) => upper(v.name)));
        for (const v of dk.values ?? []) if (!bnames.has(upper(v.name)) && !v.tombstone) vals.push(v);
        out.values = plain(vals);
        const bt = b.lastWritten ?? 0n;
        const dt = dk.lastWritten ?? 0n;
        out.lastWritten = bt > dt ? bt : dt;
      } else {
        out.values = plain(dk.values ?? []);
        out.lastWritten = dk.lastWritten ?? 0n;
      }
    }
    const kids: MKey[] = [];
    for (const q of paths) {
      if ((ancestors(q).at(-1) ?? '') !== p) continue;
      const bq = baseVisible(q) ? B.get(q)!.k : undefined;
      const dq = deltaVisible(q) ? D.get(q)! : undefined;
      kids.push(build(q, bq, dq?.k, dq?.name ?? B.get(q)!.name));
    }
    out.subkeys = kids;
    return out;
  };
  const root = build('', base as HiveKey, d, base.name);
  return { ...root, name: base.name };
}

function norm(k: MKey | HiveKey): unknown {
  return {
    name: k.name,
    t: String(k.lastWritten ?? 0n),
    c: k.className && k.className.length > 0 ? k.className.toString('hex') : '',
    v: (k.values ?? []).map((v) => `${v.name}:${v.type}:${v.data.toString('hex')}`),
    s: [...(k.subkeys ?? [])].sort((a, b) => modelCompare(a.name, b.name)).map(norm),
  };
}

test('property: merge of random layered deltas equals a path-based model of the layered-key rules', () => {
  const dir = tempDir();
  try {
    let n = 0;
    fc.assert(
      fc.property(treeArb(), fc.integer(), (base, seed) => {
        const r = rng(seed);
        const d = randomDelta(r, base, 'ROOT', false, 0);
        d.layerSemantics = 0; // the root of a delta hive merges
        const merged = mergeHives(writeHive(base as HiveKey, { minorVersion: 5 }), writeHive(d, { minorVersion: 6 }));
        const want = modelMerge(base, d);
        const got = parseHive(merged).root.toTree();
        assert.deepEqual(norm(got), norm(want));
        if (n++ % 10 === 0) {
          // Every tenth case also through hivex.
          const file = join(dir.path, `m${n}`);
          writeFileSync(file, merged);
          assert.deepEqual(hivexmlTree(file), expectedXKey(want, modelCompare));
        }
      }),
      { numRuns: 120 },
    );
  } finally {
    dir.cleanup();
  }
});
