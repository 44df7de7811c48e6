/**
 * Growable columns: growing keeps every value, new rows read zero, views made before growth
 * see the new rows (they track the buffer's length), growth past the reservation moves the
 * rows to new arrays, and growth past the limit is refused. With a spill policy the rows move
 * into mapped files instead, and stay in memory where no file can be made.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Columns } from '../../../src/formats/ext4/columns.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { readdirSync } from 'node:fs';
import { spilledTables } from '../../../src/services/fsutil/spill.js';
import { tempDir } from '../../helpers/tools.js';

test('Columns grow in place up to their limit', () => {
  const c = new Columns(4, 64, 'rows');
  const a = c.add(Float64Array);
  const b = c.add(Uint8Array);
  for (let i = 0; i < 4; i++) {
    a[i] = 2 ** 40 + i;
    b[i] = i + 1;
  }
  c.growTo(3);
  assert.equal(c.rows, 4, 'a row that exists needs no growth');
  c.growTo(20);
  assert.equal(c.rows, 32);
  assert.equal(a.length, 32);
  assert.equal(b.length, 32);
  assert.deepEqual([...a.subarray(0, 5)], [2 ** 40, 2 ** 40 + 1, 2 ** 40 + 2, 2 ** 40 + 3, 0]);
  assert.deepEqual([...b.subarray(0, 5)], [1, 2, 3, 4, 0]);
  a[31] = 7;
  assert.equal(a[31], 7);
  assert.throws(() => c.growTo(40, 33), (e: Error) => kindOf(e) === 'InvalidArgument' && /more than 33 rows/.test(e.message));
  c.growTo(63);
  assert.equal(c.rows, 64);
  assert.throws(() => c.growTo(64), (e: Error) => kindOf(e) === 'InvalidArgument' && /more than 64 rows/.test(e.message));
});

test('Columns move to a bigger reservation when they outgrow theirs, keeping every row', () => {
  const c = new Columns(4, 1 << 20, 'rows', 8);
  const a = c.add(Uint32Array);
  for (let i = 0; i < 4; i++) a[i] = i + 10;
  assert.equal(c.growTo(7), false, 'within the reservation: in place');
  assert.equal(c.arrays()[0], a);
  assert.equal(c.growTo(8), true, 'past it: moved');
  const b = c.arrays()[0] as Uint32Array;
  assert.notEqual(b, a);
  assert.equal(b.length, 16);
  assert.deepEqual([...b.subarray(0, 5)], [10, 11, 12, 13, 0]);
  assert.equal(c.growTo(31), false, 'the new reservation is four times larger');
  assert.equal(b.length, 32);
});

test('Columns with a spill policy move into mapped files past `afterRows`, keep every row, and grow there', () => {
  const t = tempDir();
  try {
    const before = spilledTables();
    const c = new Columns(4, 1 << 20, 'rows', 1 << 10, { dir: t.path, afterRows: 16 });
    const a = c.add(Float64Array);
    const b = c.add(Uint16Array);
    for (let i = 0; i < 4; i++) {
      a[i] = 2 ** 45 + i;
      b[i] = 60000 + i;
    }
    assert.equal(c.growTo(15), false, 'up to afterRows: in memory, in place');
    assert.equal(c.spilled, false);
    assert.equal(c.growTo(16), true, 'past afterRows: moved to files');
    assert.equal(c.spilled, true);
    assert.equal(spilledTables(), before + 2, 'one file a column');
    assert.deepEqual(readdirSync(t.path), [], 'the files are unlinked');
    let [a2, b2] = c.arrays() as [Float64Array, Uint16Array];
    assert.equal(c.rows, 32);
    assert.ok(a2.length >= 32, 'a spilled column is as long as its file');
    assert.deepEqual([...a2.subarray(0, 5)], [2 ** 45, 2 ** 45 + 1, 2 ** 45 + 2, 2 ** 45 + 3, 0]);
    assert.deepEqual([...b2.subarray(0, 5)], [60000, 60001, 60002, 60003, 0]);
    assert.equal(a.length, 0, 'the in-memory buffers were released');
    for (let i = 4; i < 32; i++) a2[i] = i;
    assert.equal(a2.length, 64, 'files of twice the rows');
    assert.equal(c.growTo(40), false, 'within the files: no move');
    assert.equal(c.rows, 64);
    assert.equal(c.growTo(1000), true, 'past the files: they grow and the arrays move');
    [a2, b2] = c.arrays() as [Float64Array, Uint16Array];
    assert.equal(a2[31], 31);
    assert.equal(b2[3], 60003);
    assert.equal(a2[999], 0);
    const order = c.scratch(Uint32Array, 10);
    assert.equal(order.length, 10);
    assert.equal(spilledTables(), before + 3, 'a scratch array of a spilled table is in a file too');
    assert.throws(() => c.growTo(1 << 20), (e: Error) => kindOf(e) === 'InvalidArgument' && /more than 1048576 rows/.test(e.message));
    c.close();
    assert.equal(spilledTables(), before);
  } finally {
    t.cleanup();
  }
});

test('Columns stay in memory when the spill directory takes no file', () => {
  const c = new Columns(4, 1 << 20, 'rows', 1 << 10, { dir: '/nonexistent/winsnap-spill-dir', afterRows: 8 });
  const a = c.add(Uint32Array);
  for (let i = 0; i < 4; i++) a[i] = i + 1;
  c.growTo(100);
  assert.equal(c.spilled, false);
  const a2 = c.arrays()[0] as Uint32Array;
  assert.deepEqual([...a2.subarray(0, 5)], [1, 2, 3, 4, 0]);
  assert.equal(c.scratch(Uint32Array, 3).length, 3);
  c.close();
});
