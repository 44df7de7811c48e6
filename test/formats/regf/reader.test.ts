import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tools.js';
import { parseHive, writeHive, nameHash, RegType, type HiveKey } from '../../../src/formats/regf/index.js';
import { expectedXKey, hivexmlTree, hivexsh, type MKey } from './validators.js';

// hivexsh reads lines of at most ~8 KiB, so this is the largest value it can set.
const BIG_LEN = 2700;
const bigHex = Array.from({ length: BIG_LEN }, (_, i) => ((i * 13 + 5) & 0xff).toString(16).padStart(2, '0')).join(',');
const bigBuf = Buffer.from(bigHex.replace(/,/g, ''), 'hex');

/** A hive built by hivexsh on top of a root-only hive (hivex cannot create an empty hive). */
function hivexBuiltHive(dir: string): string {
  const seed = join(dir, 'seed');
  writeFileSync(seed, writeHive({ name: 'ROOT' }, { minorVersion: 5 }));
  const out = join(dir, 'hivex-made');
  hivexsh(
    seed,
    [
      'add Microsoft',
      'cd Microsoft',
      'add Windows NT',
      'cd Windows NT',
      'add CurrentVersion',
      'cd CurrentVersion',
      'setval 4',
      'CurrentBuild',
      'string:20348',
      'ProductName',
      'string:Windows Server 2022 Datacenter',
      'UBR',
      'dword:0x000010e6',
      'InstallTime',
      'hex:11:f0,e0,d0,c0,b0,a0,d7,01', // hivexsh's qword: form keeps only 32 bits
      'cd ..',
      'cd ..',
      'cd ..',
      'add Types',
      'cd Types',
      'setval 9',
      '@',
      'expandstring:%SystemRoot%',
      'none',
      'none',
      'two bytes',
      'hex:3:61,62',
      'multi',
      'hex:7:61,00,00,00,62,00,63,00,00,00,00,00',
      'big',
      `hex:3:${bigHex}`,
      'be',
      'hex:5:00,00,01,02',
      'odd type',
      'hex:305419896:01,02,03,04,05,06',
      'link',
      'hex:6:5c,00,52,00,00,00',
      'empty',
      'hex:3:',
      'cd ..',
      'add Ünïcödé',
      'add 日本',
      'add Doomed',
      'cd Doomed',
      'add Child',
      'del', // deletes Doomed and its subtree, back at the root
      'add zzz',
      'add AAA',
      'add mmm',
      `commit ${out}`,
    ],
    { write: true, dir },
  );
  return out;
}

test('reads a hive written by hivex: keys, values of every type, big values, deleted keys', () => {
  const dir = tempDir();
  try {
    const file = hivexBuiltHive(dir.path);
    const hive = parseHive(readFileSync(file));
    const root = hive.root;
    assert.deepEqual(
      root.subkeys().map((k) => k.name),
      ['AAA', 'Microsoft', 'mmm', 'Types', 'zzz', 'Ünïcödé', '日本'],
    );
    assert.equal(root.get('Doomed'), undefined);
    const cv = hive.key('MICROSOFT\\windows nt\\CurrentVersion')!;
    assert.equal(cv.path, 'Microsoft\\Windows NT\\CurrentVersion');
    assert.equal(cv.value('currentbuild')!.type, RegType.SZ);
    assert.equal(cv.value('CurrentBuild')!.string(), '20348');
    assert.equal(cv.value('ProductName')!.string(), 'Windows Server 2022 Datacenter');
    assert.equal(cv.value('UBR')!.dword(), 0x10e6);
    assert.equal(cv.value('InstallTime')!.qword(), 0x01d7a0b0c0d0e0f0n);

    const t = hive.key('Types')!;
    const v = (n: string) => t.value(n)!;
    assert.equal(v('').type, RegType.EXPAND_SZ);
    assert.equal(v('').string(), '%SystemRoot%');
    assert.equal(v('none').type, RegType.NONE);
    assert.equal(v('none').data().length, 0);
    assert.deepEqual(v('two bytes').data(), Buffer.from('ab'));
    assert.deepEqual(v('multi').strings(), ['a', 'bc']);
    assert.equal(v('big').size, BIG_LEN);
    assert.ok(v('big').data().equals(bigBuf));
    assert.equal(v('be').dword(), 0x0102);
    assert.equal(v('odd type').type, 305419896);
    assert.deepEqual(v('odd type').data(), Buffer.from([1, 2, 3, 4, 5, 6]));
    assert.equal(v('link').type, RegType.LINK);
    assert.equal(v('link').string(), '\\R');
    assert.equal(v('empty').data().length, 0);
    assert.ok(hive.key('ünïcödé'));
    assert.ok(hive.key('日本'));

    // The whole tree as hivexml sees it equals the tree as we read it.
    const ours = root.toTree();
    assert.deepEqual(hivexmlTree(file), expectedXKey(ours as MKey, () => 0));
  } finally {
    dir.cleanup();
  }
});

test('our lh name hash equals the one hivex writes for ASCII names', () => {
  const dir = tempDir();
  try {
    const buf = readFileSync(hivexBuiltHive(dir.path));
    // Walk raw cells for 'lh' lists and check each element's hash against the name of its nk.
    let checked = 0;
    for (let off = 0; off < buf.readUInt32LE(40); ) {
      const size = buf.readUInt32LE(4096 + off + 8);
      for (let c = off + 32; c < off + size; ) {
        const s = buf.readInt32LE(4096 + c);
        const p = 4096 + c + 4;
        if (s < 0 && buf.toString('latin1', p, p + 2) === 'lh') {
          for (let i = 0; i < buf.readUInt16LE(p + 2); i++) {
            const nk = 4096 + buf.readUInt32LE(p + 4 + 8 * i) + 4;
            const flags = buf.readUInt16LE(nk + 2);
            const len = buf.readUInt16LE(nk + 72);
            const name = flags & 0x20 ? buf.toString('latin1', nk + 76, nk + 76 + len) : buf.toString('utf16le', nk + 76, nk + 76 + len);
            if (!/^[\x00-\x7f]*$/.test(name)) continue; // hivex hashes UTF-8 bytes of non-ASCII names
            assert.equal(nameHash(name), buf.readUInt32LE(p + 8 + 8 * i), name);
            checked++;
          }
        }
        c += Math.abs(s);
      }
      off += size;
    }
    assert.equal(checked, 7, 'AAA, Microsoft, mmm, Types, zzz, Windows NT, CurrentVersion');
  } finally {
    dir.cleanup();
  }
});

test('reads a single data cell larger than 16344 bytes in a 1.5 hive (hivex writes big values so)', () => {
  // hivex's writer never makes 'db' records; a 1.3 layout relabelled 1.5 has the same shape.
  const data = Buffer.alloc(30000, 0x5a);
  const buf = writeHive({ name: 'R', values: [{ name: 'v', type: 3, data }] }, { minorVersion: 3 });
  buf.writeUInt32LE(5, 24); // relabel as 1.5: the data is still one cell
  let c = 0;
  for (let i = 0; i < 508; i += 4) c ^= buf.readUInt32LE(i);
  buf.writeUInt32LE(c >>> 0 || 1, 508);
  assert.ok(parseHive(buf).root.value('v')!.data().equals(data));
});

test('key lookups: case-insensitive paths, default value, missing keys', () => {
  const tree: HiveKey = {
    name: 'R',
    values: [{ name: '', type: 1, data: Buffer.from('d\0', 'utf16le') }],
    subkeys: [{ name: 'Abc', subkeys: [{ name: 'Déf' }] }, { name: 'X' }],
  };
  const h = parseHive(writeHive(tree));
  assert.equal(h.key('abc\\DÉF')?.path, 'Abc\\Déf');
  assert.equal(h.key('\\abc\\\\déf\\')?.name, 'Déf');
  assert.equal(h.key('abc\\nope'), undefined);
  assert.equal(h.root.value('')!.string(), 'd');
  assert.equal(h.root.value('missing'), undefined);
  assert.equal(h.key('')!.name, 'R');
});
