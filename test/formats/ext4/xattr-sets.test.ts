/**
 * The ext4 writer's xattr sets: what is added comes back (names and binary values, in order),
 * a set seen recently gets the same number, sets past the recent ones are still stored and
 * read back, and a spilling store (mapped files) gives the same sets as one in memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XattrSets } from '../../../src/formats/ext4/xattr-sets.js';
import { spilledTables } from '../../../src/services/fsutil/spill.js';
import { nativeStatus } from '../../../src/services/fsutil/native.js';
import { IN_INODE_AREA, placeXattrs, writeInInodeXattrs, type Xattr } from '../../../src/formats/ext4/xattr.js';
import { tempDir } from '../../helpers/tools.js';

const x = (name: string, value: string | Buffer): Xattr => ({ name, value: Buffer.isBuffer(value) ? value : Buffer.from(value) });
const label = x('security.selinux', 'system_u:object_r:usr_t:s0\0');
const capability = x('security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'));

test('a set comes back as it was added: names (UTF-8), binary values, order', () => {
  const sets = new XattrSets();
  try {
    const given = [capability, x('user.naïve', ''), x('trusted.overlay.opaque', 'y'), label, x('user.big', Buffer.alloc(3000, 0xfe))];
    const id = sets.add(given);
    assert.ok(id >= 1);
    assert.deepEqual(sets.get(id), given);
    const copy = sets.get(id)[0]!.value;
    copy[0] = 0x55;
    assert.deepEqual(sets.get(id)[0], capability, 'get() gives copies');
    assert.throws(() => sets.get(0), RangeError);
    assert.throws(() => sets.get(id + 1), RangeError);
  } finally {
    sets.close();
  }
});

test('inInodeArea: the in-inode area placeXattrs and writeInInodeXattrs give an inode, for a set that fits; none for one that needs a block', () => {
  const sets = new XattrSets();
  try {
    const cases = [[label], [label, capability], [x('user.a', Buffer.alloc(60, 1))], [x('user.a', Buffer.alloc(80))], [label, capability, x('user.b', 'bb')], [x('nonamespace', 'v')], [x('trusted.overlay.opaque', 'y'), x('user.z', ''), x('system.posix_acl_access', Buffer.from([2, 0, 0, 0]))]];
    let fitting = 0;
    for (const given of cases) {
      let expected: Buffer | undefined;
      try {
        const placed = placeXattrs(given);
        if (placed.block.length === 0) {
          const inode = Buffer.alloc(256);
          writeInInodeXattrs(inode, 256 - IN_INODE_AREA, placed.inInode);
          expected = inode.subarray(256 - IN_INODE_AREA);
        }
      } catch {
        expected = undefined; // refused names: the writer places them (and reports the error) the slow way
      }
      const area = sets.inInodeArea(sets.add(given));
      assert.deepEqual(area && Buffer.from(area), expected, given.map((g) => g.name).join());
      if (expected) fitting++;
    }
    assert.equal(fitting, 3, 'both kinds of set were tried');
  } finally {
    sets.close();
  }
});

test('a set among the last 16 stored gets the same number; a different value, name or order is a different set', () => {
  const sets = new XattrSets();
  try {
    const a = sets.add([label]);
    assert.equal(sets.add([x('security.selinux', 'system_u:object_r:usr_t:s0\0')]), a);
    const b = sets.add([label, capability]);
    assert.notEqual(b, a);
    assert.notEqual(sets.add([capability, label]), b);
    assert.notEqual(sets.add([x('security.selinux', 'system_u:object_r:etc_t:s0\0')]), a);
    assert.equal(sets.add([label, capability]), b);
  } finally {
    sets.close();
  }
  // shared while among the last 16 stored; stored again (the same xattrs, a new number) after
  const ring = new XattrSets();
  try {
    const a = ring.add([label]);
    for (let i = 0; i < 15; i++) ring.add([x('user.n', `${i}`)]);
    assert.equal(ring.add([label]), a, 'the 16th stored before');
    ring.add([x('user.n', 'one more')]);
    const again = ring.add([label]);
    assert.notEqual(again, a, '17th: stored again');
    assert.deepEqual(ring.get(again), ring.get(a));
    assert.equal(ring.add([x('user.n', '3')]), again - 13, 'found again however the ring turned');
  } finally {
    ring.close();
  }
});

test('many distinct sets (past those remembered for sharing, and past a spill threshold) all read back, spilled or not', () => {
  const dir = tempDir();
  try {
    const made: Xattr[][] = [];
    for (let i = 0; i < 5000; i++) made.push(i % 2 ? [label, x('user.id', `id-${i}`)] : [x('user.n', Buffer.alloc(1 + (i % 300), i & 0xff))]);
    const results: Xattr[][][] = [];
    for (const spill of [undefined, { dir: dir.path, afterRows: 1000 }]) {
      const before = spilledTables();
      const sets = new XattrSets(spill);
      try {
        const ids = made.map((m) => sets.add(m));
        assert.equal(new Set(ids).size, ids.length, 'distinct sets, distinct numbers');
        results.push(ids.map((id) => sets.get(id)));
        if (spill && nativeStatus().loaded) assert.equal(spilledTables(), before + 4, 'the rows (three columns) and the bytes moved to files');
      } finally {
        sets.close();
      }
    }
    assert.deepEqual(results[0], made);
    assert.deepEqual(results[1], made);
  } finally {
    dir.cleanup();
  }
});
