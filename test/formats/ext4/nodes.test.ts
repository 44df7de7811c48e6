/**
 * The writer's node table: extents merge only when both the logical and the physical blocks
 * continue the last extent (and it is not at ext4's maximum length); attributes survive growth
 * past the initial capacity; copying attributes copies every column and the side record; the
 * node limit is a clear InvalidArgument.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_EXTENT_LEN, NodeTable } from '../../../src/formats/ext4/nodes.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { tempDir } from '../../helpers/tools.js';

const t0 = { sec: 0n, nsec: 0 };

describe('NodeTable', () => {
  test('blocks appended in order merge into extents; a gap in either numbering starts a new one', () => {
    const t = new NodeTable();
    const n = t.add('file', 0o644, 0, 0);
    assert.equal(t.extentCount(n), 0);
    assert.deepEqual(t.extents(n), []);
    t.addBlock(n, 0, 100);
    t.addBlock(n, 1, 101);
    assert.deepEqual(t.extents(n), [0, 2, 100]);
    t.addBlock(n, 3, 102); // a hole at logical block 2
    t.addBlock(n, 4, 103);
    t.addBlock(n, 5, 200); // physical gap
    t.addBlock(n, 6, 201);
    assert.deepEqual(t.extents(n), [0, 2, 100, 3, 2, 102, 5, 2, 200]);
    assert.equal(t.extentCount(n), 3);
    assert.equal(t.dataBlocks(n), 6);
  });

  test('an extent stops at the maximum length ext4 allows', () => {
    const t = new NodeTable();
    const n = t.add('file', 0o644, 0, 0);
    for (let i = 0; i < MAX_EXTENT_LEN + 2; i++) t.addBlock(n, i, 5000 + i);
    assert.deepEqual(t.extents(n), [0, MAX_EXTENT_LEN, 5000, MAX_EXTENT_LEN, 2, 5000 + MAX_EXTENT_LEN]);
    assert.equal(t.dataBlocks(n), MAX_EXTENT_LEN + 2);
  });

  test('a run of blocks added at once gives the extents its blocks added one by one give', () => {
    // runs: [logical gap, physical gap, length], crossing the maximum extent length
    const runs = [[0, 0, 5], [0, 0, MAX_EXTENT_LEN], [0, 0, 3], [2, 0, 7], [0, 9, 1], [0, 0, 2 * MAX_EXTENT_LEN + 11], [4, 4, 1]];
    const bulk = new NodeTable();
    const single = new NodeTable();
    const a = bulk.add('file', 0o644, 0, 0);
    const b = single.add('file', 0o644, 0, 0);
    let logical = 0;
    let physical = 1000;
    for (const [lg, pg, n] of runs) {
      logical += lg!;
      physical += pg!;
      bulk.addBlock(a, logical, physical, n);
      for (let i = 0; i < n!; i++) single.addBlock(b, logical + i, physical + i);
      logical += n!;
      physical += n!;
    }
    assert.deepEqual(bulk.extents(a), single.extents(b));
    assert.equal(bulk.dataBlocks(a), runs.reduce((sum, r) => sum + r[2]!, 0));
    assert.ok(bulk.extentCount(a) > 4);
  });

  test('setExtents replaces the extents, also by none', () => {
    const t = new NodeTable();
    const n = t.add('dir', 0o755, 0, 0);
    t.setExtents(n, [0, 3, 10, 3, 1, 20]);
    assert.deepEqual(t.extents(n), [0, 3, 10, 3, 1, 20]);
    t.setExtents(n, [0, 1, 7]);
    assert.deepEqual(t.extents(n), [0, 1, 7]);
    assert.equal(t.extentCount(n), 1);
    t.setExtents(n, []);
    assert.equal(t.extentCount(n), 0);
  });

  test('attributes survive growth past the initial capacity and past the reserved address space; big values keep their precision', () => {
    const t = new NodeTable(undefined, 4096); // reserved for 4096 rows: the table moves twice
    const count = 20_000;
    for (let i = 0; i < count; i++) {
      const n = t.add(i % 2 ? 'file' : 'dir', i & 0o7777, i * 7, 2 ** 32 + i, undefined, { sec: BigInt(-(2 ** 31) + i), nsec: i });
      t.size[n] = 2 ** 45 + i;
      t.addBlock(n, i, 2 ** 32 - 1 - i);
    }
    assert.equal(t.count, count);
    for (const i of [0, 4095, 4096, 8191, 8192, 19_999]) {
      assert.equal(t.kind[i], i % 2 ? 0 : 1);
      assert.equal(t.perm[i], i & 0o7777);
      assert.equal(t.uid[i], i * 7);
      assert.equal(t.gid[i], i, 'gid modulo 2^32');
      assert.equal(t.mSec[i], -(2 ** 31) + i);
      assert.equal(t.mNsec[i], i);
      assert.equal(t.size[i], 2 ** 45 + i);
      assert.deepEqual(t.extents(i), [i, 1, 2 ** 32 - 1 - i]);
    }
  });

  test('access and change times are columns (the modification time when the tar gives none), never side records', () => {
    const t = new NodeTable();
    const none = t.add('file', 0o644, 0, 0, undefined, { sec: 5n, nsec: 1 });
    assert.deepEqual([t.aSec[none], t.aNsec[none], t.cSec[none], t.cNsec[none]], [5, 1, 5, 1]);
    const differ = t.add('file', 0o644, 0, 0, { sec: 6n, nsec: 2 }, { sec: 5n, nsec: 1 }, t0);
    assert.deepEqual([t.aSec[differ], t.aNsec[differ], t.cSec[differ], t.cNsec[differ]], [6, 2, 0, 0]);
    assert.equal(t.ext.get(differ), undefined, 'no side record for times (a pax tar gives them for every entry)');
    const old = t.add('file', 0o644, 0, 0, { sec: -(2n ** 31n), nsec: 999_999_999 }, undefined, { sec: 2n ** 34n, nsec: 7 });
    assert.deepEqual([t.aSec[old], t.aNsec[old], t.cSec[old], t.cNsec[old], t.mSec[old]], [-(2 ** 31), 999_999_999, 2 ** 34, 7, 0]);
  });

  test('copyAttributes gives every attribute, the side record included', () => {
    const t = new NodeTable();
    const old = t.add('dir', 0o700, 1, 1);
    t.setExtents(old, [0, 1, 50]);
    t.setXattrs(old, [{ name: 'user.old', value: Buffer.from('x') }]);
    assert.deepEqual(t.xattrs(old), [{ name: 'user.old', value: Buffer.from('x') }]);
    const next = t.add('dir', 0o755, 2, 3, undefined, { sec: 9n, nsec: 8 });
    t.copyAttributes(next, old);
    assert.equal(t.perm[old], 0o755);
    assert.equal(t.uid[old], 2);
    assert.equal(t.gid[old], 3);
    assert.equal(t.mSec[old], 9);
    assert.equal(t.mNsec[old], 8);
    assert.deepEqual(t.xattrs(old), [], 'the later entry has no xattrs: neither has the directory now');
    assert.equal(t.ext.get(old), undefined);
    assert.equal(t.extentCount(old), 0);
    const sym = t.add('symlink', 0o777, 0, 0);
    t.setTarget(sym, 'x');
    t.more(sym).devMajor = 3;
    const other = t.add('file', 0o644, 0, 0);
    t.copyAttributes(sym, other);
    assert.equal(t.kind[other], t.kind[sym]);
    assert.equal(t.target(other).toString(), 'x');
    assert.equal(t.ext.get(other)?.devMajor, 3);
  });

  test('symlink targets: UTF-8 in one arena (lone surrogates as Buffer encodes them), sizes set, kept across growth and spilling', () => {
    const dir = tempDir();
    try {
      for (const spill of [undefined, { dir: dir.path, afterRows: 1000 }]) {
        const t = new NodeTable(undefined, undefined, spill);
        const want: string[] = [];
        for (let i = 0; i < 20_000; i++) {
          const s = `../lib/${'é'.repeat(i % 7)}target-${i}${i % 1000 === 0 ? '\ud800' : ''}${'x'.repeat(i % 300)}`;
          want.push(s);
          const n = t.add('symlink', 0o777, 0, 0);
          assert.equal(t.setTarget(n, s), Buffer.byteLength(s));
        }
        for (let i = 0; i < want.length; i += 7) {
          assert.ok(t.target(i).equals(Buffer.from(want[i]!, 'utf8')), `target ${i}`);
          assert.equal(t.size[i], Buffer.byteLength(want[i]!));
        }
        assert.equal(t.ext.size, 0, 'no side records for symlinks');
        t.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  test('inline data: bytes in one arena, sizes set, kept across growth and spilling; dropped on request; no side records', () => {
    const dir = tempDir();
    try {
      for (const spill of [undefined, { dir: dir.path, afterRows: 1000 }]) {
        const t = new NodeTable(undefined, undefined, spill);
        const want: Buffer[] = [];
        for (let i = 0; i < 20_000; i++) {
          const data = Buffer.alloc(i % 129, i & 0xff);
          want.push(data);
          const n = t.add('file', 0o644, 0, 0);
          t.setInline(n, data);
          data.fill(0x55); // the table keeps its own copy
        }
        for (let i = 0; i < want.length; i += 7) {
          assert.ok(t.inline(i)!.equals(Buffer.alloc(i % 129, i & 0xff)), `data ${i}`);
          assert.equal(t.size[i], i % 129);
        }
        t.dropInline(5);
        assert.equal(t.inline(5), undefined);
        assert.equal(t.inline(t.add('file', 0o644, 0, 0)), undefined, 'a new file has none');
        assert.equal(t.ext.size, 0, 'no side records for inline data');
        t.close();
      }
    } finally {
      dir.cleanup();
    }
  });

  test('more nodes than the limit is an InvalidArgument error', () => {
    const t = new NodeTable(8192);
    for (let i = 0; i < 8192; i++) t.add('fifo', 0, 0, 0);
    assert.throws(() => t.add('fifo', 0, 0, 0), (e: Error) => kindOf(e) === 'InvalidArgument' && /8192 inodes/.test(e.message));
  });
});
