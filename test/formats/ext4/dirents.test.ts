/**
 * The writer's directory entries against a model (a Map per directory, which keeps insertion
 * order and replaces in place): random operations over a few directories and a small name
 * alphabet (so names repeat), across table growth; names stored as Buffer encodes them. Spilled
 * to files (columns.ts), the table answers exactly as in memory.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DirectoryEntries, MAX_NAME_BYTES } from '../../../src/formats/ext4/dirents.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { spilledTables } from '../../../src/services/fsutil/spill.js';
import { tempDir } from '../../helpers/tools.js';

function listed(d: DirectoryEntries, dir: number): [string, number][] {
  const out: [string, number][] = [];
  for (let e = d.first(dir); e !== 0; e = d.next(e)) {
    const at = d.nameOffset(e);
    out.push([Buffer.from(d.names.subarray(at, at + d.nameLength(e))).toString('utf8'), d.node(e)]);
  }
  return out;
}

describe('DirectoryEntries', () => {
  test('agrees with a Map per directory over random sets and gets', () => {
    const name = fc.oneof(fc.stringMatching(/^[ab.]{1,3}$/), fc.constantFrom('é', 'ü-x', '日本', '😀', 'a😀b'), fc.string({ minLength: 1, maxLength: 20 }));
    const op = fc.record({ dir: fc.integer({ min: 0, max: 5 }), name, node: fc.integer({ min: 0, max: 2 ** 32 - 1 }), get: fc.boolean() });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const d = new DirectoryEntries();
        const model = new Map<number, Map<string, number>>();
        for (const o of ops) {
          // the model keys by the bytes on disk, as the table does
          const key = Buffer.from(o.name, 'utf8').toString('utf8');
          const m = model.get(o.dir) ?? new Map<string, number>();
          model.set(o.dir, m);
          if (o.get) assert.equal(d.get(o.dir, o.name), m.get(key) ?? -1);
          else {
            d.set(o.dir, o.name, o.node);
            m.set(key, o.node);
          }
        }
        for (let dir = 0; dir <= 5; dir++) assert.deepEqual(listed(d, dir), [...(model.get(dir) ?? new Map())]);
      }),
      { numRuns: 300 },
    );
  });

  test('many entries: growth of the rows, the arena and the hash table, in place and by moving, keep every entry and the order', () => {
    const d = new DirectoryEntries(4096, 1 << 16); // small reservations: rows and arena both move
    const n = 50_000;
    for (let i = 0; i < n; i++) d.set(i % 97, `file-${i}-${'x'.repeat(i % 40)}`, i);
    for (let i = 0; i < n; i += 7) assert.equal(d.get(i % 97, `file-${i}-${'x'.repeat(i % 40)}`), i);
    assert.equal(d.get(3, 'file-0-'), -1, 'same name, other directory');
    d.set(5000, 'late', 1); // a directory number past the ones seen so far
    assert.deepEqual(listed(d, 5000), [['late', 1]]);
    const dir0 = listed(d, 0);
    assert.equal(dir0.length, Math.ceil(n / 97));
    assert.deepEqual(dir0.slice(0, 2).map(([, node]) => node), [0, 97]);
    assert.equal(d.count, n + 1);
  });

  test('spilled to files, the entries, their order and every lookup are as in memory', () => {
    const t = tempDir();
    try {
      const before = spilledTables();
      const mem = new DirectoryEntries();
      const spilled = new DirectoryEntries(undefined, undefined, { dir: t.path, afterRows: 1000 });
      const n = 40_000;
      for (let i = 0; i < n; i++) {
        const dir = (i * 31) % 1201;
        const name = `n${i % 30_000}-${'é'.repeat(i % 5)}`; // names repeat: replaced in place
        mem.set(dir, name, i);
        spilled.set(dir, name, i);
      }
      assert.equal(spilledTables(), before + 8, 'the six row columns, the names and the hash table spilled');
      assert.equal(spilled.count, mem.count);
      for (let dir = 0; dir < 1201; dir++) assert.deepEqual(listed(spilled, dir), listed(mem, dir));
      for (let i = 0; i < n; i += 13) {
        const dir = (i * 31) % 1201;
        const name = `n${i % 30_000}-${'é'.repeat(i % 5)}`;
        assert.equal(spilled.get(dir, name), mem.get(dir, name));
        assert.equal(spilled.get(dir + 1, name), mem.get(dir + 1, name));
      }
      spilled.close();
      assert.equal(spilledTables(), before);
    } finally {
      t.cleanup();
    }
  });

  test('a lone surrogate is stored as U+FFFD, so it names the same entry as U+FFFD', () => {
    const d = new DirectoryEntries();
    d.set(0, 'a\ud800', 1);
    assert.equal(d.get(0, 'a\ufffd'), 1);
    assert.deepEqual(listed(d, 0), [['a\ufffd', 1]]);
  });

  test('a name longer than 255 bytes is an InvalidArgument error; 255 bytes is fine', () => {
    const d = new DirectoryEntries();
    d.set(0, 'é'.repeat(127) + 'x', 1); // 255 bytes
    assert.equal(d.get(0, 'é'.repeat(127) + 'x'), 1);
    assert.throws(() => d.set(0, 'é'.repeat(128), 2), (e: Error) => kindOf(e) === 'InvalidArgument');
    assert.throws(() => d.get(0, 'x'.repeat(MAX_NAME_BYTES + 1)), (e: Error) => kindOf(e) === 'InvalidArgument');
  });

  test('add() takes only the name the last find() did not find, in that directory', () => {
    const d = new DirectoryEntries();
    assert.throws(() => d.add(0, 1), /does not follow/);
    assert.equal(d.find(0, 'x'), 0);
    assert.throws(() => d.add(1, 1), /does not follow/, 'another directory');
    d.add(0, 7);
    assert.throws(() => d.add(0, 8), /does not follow/, 'added already');
    assert.notEqual(d.find(0, 'x'), 0);
    assert.throws(() => d.add(0, 9), /does not follow/, 'found: adding would duplicate it');
    assert.deepEqual(listed(d, 0), [['x', 7]]);
  });
});
