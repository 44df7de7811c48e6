/**
 * decodeHeader (the native helper's decoder for the common block, the JavaScript one for the
 * rest) against decodeHeaderJs: the same header or the same error for every block. The blocks
 * are built here field by field (octal, base-256, spaces and NULs around digits, each magic,
 * a prefix), then corrupted at random bytes, with the checksum recomputed or left stale, and
 * sometimes written as the signed sum historic writers stored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeHeader, decodeHeaderJs, type RawHeader } from '../../../src/formats/tar/header.js';
import { nativeStatus, tarHeaderCall } from '../../../src/services/fsutil/native.js';

function outcome(f: () => RawHeader): { ok: RawHeader } | { error: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const octal = (v: number, width: number, pad: 'zeros' | 'spaces' | 'nul-first') => {
  const digits = v.toString(8);
  if (pad === 'zeros') return `${digits.padStart(width - 1, '0')}\0`;
  if (pad === 'spaces') return `${digits.padStart(width - 1, ' ')} `;
  return `${digits}\0`.padEnd(width, '\0');
};

const arbBlock = fc
  .record({
    name: fc.stringMatching(/^[a-z0-9./_-]{0,100}$/),
    prefix: fc.stringMatching(/^[a-z0-9/]{0,20}$/),
    link: fc.stringMatching(/^[a-z0-9./]{0,12}$/),
    uname: fc.constantFrom('', 'root', 'user-with-a-long-name-of-32-char'),
    mode: fc.integer({ min: 0, max: 0o7777777 }),
    uid: fc.integer({ min: 0, max: 0o7777777 }),
    size: fc.oneof(fc.integer({ min: 0, max: 1 << 20 }), fc.constant(0o77777777777)),
    mtime: fc.integer({ min: 0, max: 0o77777777777 }),
    dev: fc.integer({ min: 0, max: 0o7777777 }),
    typeflag: fc.constantFrom('0', '\0', '1', '2', '3', '5', 'x', 'L', 'g', 'S', '7', 'V'),
    magic: fc.constantFrom('ustar', 'gnu', 'v7'),
    pad: fc.constantFrom('zeros', 'spaces', 'nul-first'),
    base256: fc.constantFrom(undefined, 'size', 'uid', 'mtime'),
    corrupt: fc.array(fc.record({ at: fc.integer({ min: 0, max: 511 }), value: fc.constantFrom(0, 0x20, 0x30, 0x37, 0x38, 0x41, 0x80, 0xff) }), { maxLength: 3 }),
    checksum: fc.constantFrom('fixed', 'stale', 'signed', 'garbage', 'empty'),
  })
  .map((r) => {
    const b = Buffer.alloc(512);
    b.write(r.name, 0, 100, 'latin1');
    b.write(octal(r.mode, 8, r.pad), 100, 8, 'latin1');
    b.write(octal(r.uid, 8, r.pad), 108, 8, 'latin1');
    b.write(octal(r.uid >> 1, 8, r.pad), 116, 8, 'latin1');
    b.write(octal(r.size, 12, r.pad), 124, 12, 'latin1');
    b.write(octal(r.mtime, 12, r.pad), 136, 12, 'latin1');
    b.write(r.typeflag, 156, 1, 'latin1');
    b.write(r.link, 157, 100, 'latin1');
    if (r.magic === 'ustar') b.write('ustar\x0000', 257, 8, 'latin1');
    if (r.magic === 'gnu') b.write('ustar  \0', 257, 8, 'latin1');
    if (r.magic !== 'v7') {
      b.write(r.uname, 265, 32, 'latin1');
      b.write(r.uname.slice(0, 5), 297, 32, 'latin1');
      b.write(octal(r.dev, 8, r.pad), 329, 8, 'latin1');
      b.write(octal(r.dev >> 3, 8, r.pad), 337, 8, 'latin1');
    }
    if (r.magic === 'ustar') b.write(r.prefix, 345, 155, 'latin1');
    if (r.base256) {
      const [off, len] = r.base256 === 'size' ? [124, 12] : r.base256 === 'uid' ? [108, 8] : [136, 12];
      b.fill(0, off, off + len);
      b[off] = 0x80;
      b.writeUInt32BE(r.mtime >>> 0, off + len - 4);
    }
    const stale = Buffer.from(b);
    for (const c of r.corrupt) b[c.at] = c.value;
    const sumOf = (x: Buffer, signed: boolean) => {
      let s = 8 * 0x20;
      for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) s += signed && x[i]! >= 128 ? x[i]! - 256 : x[i]!;
      return s;
    };
    const stored = r.checksum === 'stale' ? sumOf(stale, false) : sumOf(b, r.checksum === 'signed');
    if (r.checksum === 'garbage') b.write('01x34567', 148, 8, 'latin1');
    else if (r.checksum === 'empty') b.fill(0x20, 148, 156);
    else b.write(`${(stored >>> 0).toString(8).slice(-6).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    return b;
  });

test('the native helper offers the tar header decoder (built by npm ci)', () => {
  assert.ok(nativeStatus().loaded, nativeStatus().reason);
  assert.equal(typeof tarHeaderCall(), 'function');
});

test('decodeHeader and decodeHeaderJs: the same header or the same error for every block', () => {
  let decoded = 0;
  let refused = 0;
  let byNative = 0;
  const native = tarHeaderCall()!;
  const out = new Float64Array(14);
  fc.assert(
    fc.property(arbBlock, fc.constantFrom(1 << 30, 100_000), (block, maxEntrySize) => {
      const ctx = { offset: 1536 };
      const a = outcome(() => decodeHeader(block, ctx, maxEntrySize));
      const b = outcome(() => decodeHeaderJs(block, ctx, maxEntrySize));
      assert.deepEqual(a, b);
      if ('ok' in a) decoded++;
      else refused++;
      if (native(block, out) === 1) byNative++;
    }),
    { numRuns: 4000, seed: 20261206 },
  );
  // both kinds of block were tried, in numbers, and the native decoder took hundreds
  assert.ok(decoded > 300 && refused > 300 && byNative > 300, `decoded ${decoded}, refused ${refused}, by the native decoder ${byNative}`);
});

test('the native decoder takes the common block and leaves the unusual ones to JavaScript', () => {
  const native = tarHeaderCall()!;
  const out = new Float64Array(14);
  const b = Buffer.alloc(512);
  b.write('dir/file.txt', 0, 'latin1');
  b.write('0000644\0', 100, 'latin1');
  b.write('0001750\0', 108, 'latin1');
  b.write('0001750\0', 116, 'latin1');
  b.write('00000012345\0', 124, 'latin1');
  b.write('14712345670\0', 136, 'latin1');
  b.write('0', 156, 'latin1');
  b.write('ustar\x0000', 257, 'latin1');
  b.write('root', 265, 'latin1');
  b.write('wheel', 297, 'latin1');
  b.write('usr/share', 345, 'latin1');
  let sum = 8 * 0x20;
  for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  assert.equal(native(b, out), 1);
  assert.deepEqual([...out], [0x30, 0o644, 0o1750, 0o1750, 0o12345, 0o14712345670, 0, 0, 1, 12, 9, 0, 4, 5]);
  const h = decodeHeader(b, { offset: 0 }, 1 << 30);
  assert.equal(h.name.toString(), 'usr/share/dir/file.txt');
  // a base-256 size, a bad checksum: 0 (JavaScript decodes or explains them)
  const big = Buffer.from(b);
  big.fill(0, 124, 136);
  big[124] = 0x80;
  big[135] = 1;
  assert.equal(native(big, out), 0);
  const bad = Buffer.from(b);
  bad[0] ^= 1;
  assert.equal(native(bad, out), 0);
  assert.throws(() => decodeHeader(bad, { offset: 512 }, 1 << 30), /checksum mismatch at offset 512/);
  assert.throws(() => native(b.subarray(0, 100), out), /512 bytes/);
});
