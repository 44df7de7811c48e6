/**
 * Bitmap ranges: setBits and countBits against a bit-at-a-time model, for ranges that start
 * and end inside bytes, span whole bytes, or are empty.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countBits, setBits } from '../../../src/formats/ext4/bitmap.js';

const bit = (bits: Uint8Array, i: number) => (bits[i >> 3]! >> (i & 7)) & 1;

/** A bitmap of 1 to 40 bytes and a range [first, first + count) inside it. */
const bitmapAndRange = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(), fc.nat()).map(([bits, a, b]) => {
  const size = bits.length * 8;
  const first = a % (size + 1);
  return { bits, size, first, count: b % (size - first + 1) };
});

test('setBits sets exactly the range, on top of what is already set', () => {
  fc.assert(
    fc.property(bitmapAndRange, ({ bits: initial, size, first, count }) => {
      const bits = Uint8Array.from(initial);
      setBits(bits, first, count);
      for (let i = 0; i < size; i++) {
        const want = i >= first && i < first + count ? 1 : bit(initial, i);
        assert.equal(bit(bits, i), want, `bit ${i} after setBits(${first}, ${count})`);
      }
    }),
  );
});

test('countBits counts the set bits of the range', () => {
  fc.assert(
    fc.property(bitmapAndRange, ({ bits, first, count }) => {
      let want = 0;
      for (let i = first; i < first + count; i++) want += bit(bits, i);
      assert.equal(countBits(bits, first, count), want);
    }),
  );
});

test('a whole group: 32768 bits, with partial bytes at both ends', () => {
  const bits = new Uint8Array(4096);
  setBits(bits, 3, 32760);
  assert.equal(countBits(bits, 0, 32768), 32760);
  assert.equal(bits[0], 0b11111000);
  assert.equal(bits[4095], 0b00000111);
  assert.equal(countBits(bits, 5, 0), 0);
});
