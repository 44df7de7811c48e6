import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { tempDir } from '../../helpers/tools.js';
import { writeHive, parseHive, type HiveKey } from '../../../src/formats/regf/index.js';
import { isInvalidArgument } from '../../../src/services/errdefs.js';
import {
  expectedRKeys,
  expectedXKey,
  hivexmlTree,
  hivexsh,
  regfexportKeys,
  regfinfoVersion,
  type MKey,
} from './validators.js';
import { modelCompare, treeArb } from './arbitraries.js';

const u16 = (s: string) => Buffer.from(s, 'utf16le');
const sz = (s: string) => u16(s + '\0');
const dw = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
};

/** Independent walk of the raw file: bins, cells, signatures of allocated cells. */
function rawCells(buf: Buffer): { bins: { off: number; size: number }[]; cells: { off: number; size: number; sig: string; payload: Buffer }[] } {
  const binsSize = buf.readUInt32LE(40);
  const bins: { off: number; size: number }[] = [];
  const cells: { off: number; size: number; sig: string; payload: Buffer }[] = [];
  for (let off = 0; off < binsSize; ) {
    const at = 4096 + off;
    assert.equal(buf.toString('latin1', at, at + 4), 'hbin');
    assert.equal(buf.readUInt32LE(at + 4), off);
    const size = buf.readUInt32LE(at + 8);
    bins.push({ off, size });
    for (let c = off + 32; c < off + size; ) {
      const s = buf.readInt32LE(4096 + c);
      assert.ok(s !== 0 && Math.abs(s) % 8 === 0, `cell size ${s} at ${c}`);
      if (s < 0) cells.push({ off: c, size: -s, sig: buf.toString('latin1', 4096 + c + 4, 4096 + c + 6), payload: buf.subarray(4096 + c + 4, 4096 + c - s) });
      c += Math.abs(s);
    }
    off += size;
  }
  return { bins, cells };
}

function xor32(buf: Buffer): number {
  let c = 0;
  for (let i = 0; i < 508; i += 4) c ^= buf.readUInt32LE(i);
  return c >>> 0;
}

const BIG = Buffer.alloc(40000);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7 + 3) & 0xff;

function sampleTree(): MKey {
  const many: MKey[] = [];
  for (let i = 0; i < 1100; i++) many.push({ name: `Item${String(i).padStart(4, '0')}${i % 3 === 0 ? 'x' : 'Y'}` });
  return {
    name: 'CMI-CreateHive{6A1C4018-979D-4291-A7DC-7AED1C75B67C}',
    lastWritten: 133_000_000_000_000_000n,
    values: [
      { name: '', type: 1, data: sz('default value') },
      { name: 'Dword', type: 4, data: dw(0xdeadbeef) },
      { name: 'DwordBE', type: 5, data: Buffer.from([1, 2, 3, 4]) },
      { name: 'Qword', type: 11, data: Buffer.from([1, 2, 3, 4, 5, 6, 7, 0x80]) },
      { name: 'Multi', type: 7, data: u16('one\0two\0\0') },
      { name: 'Expand', type: 2, data: sz('%SystemRoot%\\system32') },
      { name: 'Link', type: 6, data: sz('\\Registry\\Machine\\Software') },
      { name: 'NoneEmpty', type: 0, data: Buffer.alloc(0) },
      { name: 'NoneData', type: 0, data: Buffer.from([9, 8, 7, 6, 5]) },
      { name: 'Bin2', type: 3, data: Buffer.from([0xab, 0xcd]) },
      { name: 'ResList', type: 8, data: Buffer.from('resource list') },
      { name: 'FullRes', type: 9, data: Buffer.from('full') },
      { name: 'ResReq', type: 10, data: Buffer.from('requirements') },
      { name: 'Odd type', type: 0x12345678, data: Buffer.from('odd') },
      { name: 'Big', type: 3, data: BIG },
      { name: 'Exactly16344', type: 3, data: BIG.subarray(0, 16344) },
      { name: 'Just16345', type: 3, data: BIG.subarray(0, 16345) },
      { name: 'Ünïcödé välüé', type: 1, data: sz('αβγ 日本語') },
      { name: '値', type: 4, data: dw(1) },
    ],
    subkeys: [
      {
        name: 'Microsoft',
        lastWritten: 1n,
        subkeys: [{ name: 'Windows NT', subkeys: [{ name: 'CurrentVersion', values: [{ name: 'CurrentBuild', type: 1, data: sz('20348') }] }] }],
      },
      { name: 'many', subkeys: many },
      { name: 'zeta', className: u16('MyClass'), values: [{ name: 'a', type: 3, data: Buffer.from([1]) }] },
      { name: 'Alpha', className: u16('C') },
      { name: '日本', values: [{ name: '日本', type: 1, data: sz('にほん') }] },
      { name: 'Ärger', subkeys: [{ name: 'deep', subkeys: [{ name: 'deeper', subkeys: [{ name: 'deepest' }] }] }] },
    ],
  };
}

for (const minor of [3, 5, 6] as const) {
  test(`hive v1.${minor} from our writer reads back identically in hivexml, regfexport, regfinfo and hivexsh`, () => {
    const dir = tempDir();
    try {
      const tree = sampleTree();
      const buf = writeHive(tree as HiveKey, { minorVersion: minor, lastWritten: 133_100_000_000_000_000n, fileName: 'SOFTWARE' });
      const file = join(dir.path, 'hive');
      writeFileSync(file, buf);

      // hivex: the whole tree, every value with its data.
      assert.deepEqual(hivexmlTree(file), expectedXKey(tree, modelCompare));
      // libregf: key paths in order, class names, value names/types/sizes, no error output.
      assert.deepEqual(regfexportKeys(file), expectedRKeys(tree, modelCompare));
      assert.equal(regfinfoVersion(file), `1.${minor}`);
      // hivexsh navigation (case-insensitive cd) and listing of the index-root split list.
      const ls = hivexsh(file, ['cd MANY', 'ls'], { dir: dir.path }).trim().split('\n');
      const want = tree.subkeys![1].subkeys!.map((k) => k.name).sort(modelCompare);
      assert.deepEqual(ls, want);
      const lsval = hivexsh(file, ['cd microsoft\\windows nt\\currentversion', 'lsval CurrentBuild'], { dir: dir.path });
      assert.equal(lsval.trim(), '20348');

      // Raw structure: checksum, bin sizes, list kinds, big data records.
      assert.equal(buf.readUInt32LE(508), xor32(buf));
      assert.equal(buf.readUInt32LE(4), buf.readUInt32LE(8));
      const { bins, cells } = rawCells(buf);
      for (const b of bins) assert.equal(b.size % 4096, 0);
      assert.equal(buf.length, 4096 + bins.reduce((a, b) => a + b.size, 0));
      const sigs = new Set(cells.map((c) => c.sig));
      assert.ok(sigs.has('ri'), 'a 1100-entry subkey list is split under an index root');
      assert.ok(sigs.has(minor > 4 ? 'lh' : 'lf'));
      assert.ok(!sigs.has(minor > 4 ? 'lf' : 'lh'));
      const dbs = cells.filter((c) => c.sig === 'db');
      if (minor > 3) {
        // 40000 bytes → 3 segments, 16345 → 2 segments; 16344 bytes stays in one cell.
        assert.deepEqual(dbs.map((c) => c.payload.readUInt16LE(2)).sort(), [2, 3]);
      } else {
        assert.equal(dbs.length, 0);
      }
      // Security: one shared sk cell for the whole tree, refcount = number of keys.
      const sks = cells.filter((c) => c.sig === 'sk');
      assert.equal(sks.length, 1);
      const keyCount = cells.filter((c) => c.sig === 'nk').length;
      assert.equal(sks[0].payload.readUInt32LE(12), keyCount);
      assert.equal(sks[0].payload.readUInt32LE(4), sks[0].off, 'single sk: flink points to itself');
      assert.equal(sks[0].payload.readUInt32LE(8), sks[0].off, 'single sk: blink points to itself');
    } finally {
      dir.cleanup();
    }
  });
}

test('lh hashes and lf hints follow the spec formula', () => {
  const names = ['abc', 'ZzZz', 'A', 'CurrentVersion', 'x y', 'Üb'];
  for (const minor of [3, 5] as const) {
    const buf = writeHive({ name: 'R', subkeys: names.map((name) => ({ name })) }, { minorVersion: minor });
    const list = rawCells(buf).cells.find((c) => c.sig === (minor > 4 ? 'lh' : 'lf'));
    assert.ok(list);
    const n = list.payload.readUInt16LE(2);
    const sorted = [...names].sort(modelCompare);
    assert.equal(n, names.length);
    for (let i = 0; i < n; i++) {
      const name = sorted[i];
      const field: Buffer = list.payload.subarray(8 + 8 * i, 12 + 8 * i);
      if (minor > 4) {
        // H = 37*H + upper(c), 32-bit.
        let h = 0;
        for (const ch of name.toUpperCase()) h = (h * 37 + ch.charCodeAt(0)) % 2 ** 32;
        assert.equal(field.readUInt32LE(0), h, name);
      } else {
        const hint = Buffer.alloc(4);
        Buffer.from(name.slice(0, 4), 'latin1').copy(hint);
        assert.deepEqual(field, hint, name);
      }
    }
  }
});

test('output is deterministic and independent of input order', () => {
  const a = sampleTree();
  const b = sampleTree();
  b.subkeys!.reverse();
  b.subkeys![4].subkeys!.reverse();
  const x = writeHive(a as HiveKey);
  const y = writeHive(b as HiveKey);
  assert.ok(x.equals(y));
  assert.ok(x.equals(writeHive(a as HiveKey)));
});

test('security descriptors: inherited from the parent, shared by content, refcounted and linked', () => {
  const sdA = parseHive(writeHive({ name: 'x' })).root.security()!;
  // A second descriptor: same layout, different group SID (S-1-5-19 instead of S-1-5-18).
  const sdB = Buffer.from(sdA);
  const grp = sdB.readUInt32LE(8);
  sdB.writeUInt32LE(19, grp + 8);
  const buf = writeHive({
    name: 'R',
    subkeys: [
      { name: 'a', security: sdB, subkeys: [{ name: 'a1' }, { name: 'a2', security: sdA }] },
      { name: 'b', subkeys: [{ name: 'b1', security: sdB }] },
    ],
  });
  const h = parseHive(buf);
  const sdOf = (p: string) => h.key(p)!.security()!.toString('hex');
  assert.equal(sdOf('a'), sdB.toString('hex'));
  assert.equal(sdOf('a\\a1'), sdB.toString('hex'));
  assert.equal(sdOf('a\\a2'), sdA.toString('hex'));
  assert.equal(sdOf('b'), sdA.toString('hex'));
  assert.equal(sdOf('b\\b1'), sdB.toString('hex'));
  const sks = rawCells(buf).cells.filter((c) => c.sig === 'sk');
  assert.equal(sks.length, 2);
  const refs = sks.map((c) => c.payload.readUInt32LE(12)).sort();
  assert.deepEqual(refs, [3, 3]); // sdA: R, a\a2, b; sdB: a, a\a1, b\b1
});

test('writer rejects invalid trees with InvalidArgument', () => {
  const bad: HiveKey[] = [
    { name: 'R', subkeys: [{ name: 'Abc' }, { name: 'aBC' }] },
    { name: 'R', values: [{ name: 'v', type: 1, data: Buffer.alloc(2) }, { name: 'V', type: 3, data: Buffer.alloc(0) }] },
    { name: 'R', subkeys: [{ name: 'a\\b' }] },
    { name: 'R', subkeys: [{ name: '' }] },
    { name: 'R', values: [{ name: 't', type: 1, data: Buffer.alloc(2), tombstone: true }] },
    { name: 'R', values: [{ name: 't', type: -1, data: Buffer.alloc(2) }] },
    { name: 'R', subkeys: [{ name: 'x'.repeat(256) }] },
    { name: 'R', security: Buffer.from('not a descriptor at all') },
  ];
  let deep: HiveKey = { name: 'leaf' };
  for (let i = 0; i < 520; i++) deep = { name: `k${i}`, subkeys: [deep] };
  bad.push({ name: 'R', subkeys: [deep] });
  for (const t of bad) assert.throws(() => writeHive(t), (e: unknown) => isInvalidArgument(e));
});

test('property: random trees survive write → hivexml / regfexport (external readers)', () => {
  const dir = tempDir();
  try {
    let n = 0;
    fc.assert(
      fc.property(treeArb(), fc.constantFrom(3 as const, 5 as const, 6 as const), (tree, minor) => {
        const file = join(dir.path, `p${n++}`);
        writeFileSync(file, writeHive(tree as HiveKey, { minorVersion: minor }));
        assert.deepEqual(hivexmlTree(file), expectedXKey(tree, modelCompare));
        assert.deepEqual(regfexportKeys(file), expectedRKeys(tree, modelCompare));
      }),
      { numRuns: 25 },
    );
  } finally {
    dir.cleanup();
  }
});
