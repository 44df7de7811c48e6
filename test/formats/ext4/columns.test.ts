/**
 * Growable columns: growing keeps every value, new rows read zero, views made before growth
 * see the new rows (they track the buffer's length), growth past the reservation moves the
 * rows to new arrays, and growth past the limit is refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Columns } from '../../../src/formats/ext4/columns.js';
import { kindOf } from '../../../src/services/errdefs.js';

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
