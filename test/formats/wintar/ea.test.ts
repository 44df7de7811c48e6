/**
 * FILE_FULL_EA_INFORMATION chains. Expected bytes are laid out by hand from the structure
 * (windows-layer-formats.md §1.5: NextEntryOffset u32, Flags u8, NameLength u8,
 * ValueLength u16, name, NUL, value, every entry padded to 4 bytes, last NextEntryOffset 0).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { decodeEaBuffer, encodeEaBuffer, type WindowsEa } from '../../../src/formats/wintar/index.js';

const VECTOR = Buffer.from(
  [
    '0c000000', // NextEntryOffset 12
    '00', '01', '0200', // flags, name length 1, value length 2
    '41', '00', '7879', // "A" NUL "xy"  (8+1+1+2 = 12, already aligned)
    '00000000', // last entry
    '80', '06', '0000', // FILE_NEED_EA, name length 6, value length 0
    '4c4f4e474552', '00', // "LONGER" NUL (8+6+1 = 15)
    '00', // padding to 16
  ].join(''),
  'hex',
);
const EAS: WindowsEa[] = [
  { name: 'A', flags: 0, value: Buffer.from('xy') },
  { name: 'LONGER', flags: 0x80, value: Buffer.alloc(0) },
];

test('encode/decode a hand-built EA chain', () => {
  assert.equal(encodeEaBuffer(EAS).toString('hex'), VECTOR.toString('hex'));
  assert.deepEqual(decodeEaBuffer(VECTOR), EAS);
  assert.deepEqual(decodeEaBuffer(Buffer.alloc(0)), []);
  // A last entry without its final padding is accepted (the chain ends at its data).
  assert.deepEqual(decodeEaBuffer(VECTOR.subarray(0, 27)), EAS);
});

const eaArb = fc
  .record({
    name: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 255 }).map((s) => s.replace(/\0/g, '_')),
    flags: fc.integer({ min: 0, max: 255 }),
    value: fc.uint8Array({ maxLength: 700 }).map((u) => Buffer.from(u)),
  })
  .map(({ name, flags, value }) => ({ name, flags, value }));

test('property: decode(encode(eas)) = eas, every entry 4-aligned', () => {
  fc.assert(
    fc.property(fc.array(eaArb, { maxLength: 8 }), (eas) => {
      const buf = encodeEaBuffer(eas);
      assert.equal(buf.length % 4, 0);
      assert.deepEqual(decodeEaBuffer(buf), eas);
    }),
    { numRuns: 300 },
  );
});

function expectBad(buf: Buffer, re: RegExp, offset: number): void {
  assert.throws(
    () => decodeEaBuffer(buf, 100),
    (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message) && e.context.offset === 100 + offset,
  );
}

test('malformed EA buffers: bad offsets, truncation, missing NUL, trailing bytes', () => {
  const withNext = (n: number) => {
    const b = Buffer.from(VECTOR);
    b.writeUInt32LE(n, 0);
    return b;
  };
  expectBad(withNext(13), /not a multiple of 4/, 0);
  expectBad(withNext(8), /points inside the entry/, 0);
  expectBad(withNext(28), /points past the buffer end/, 0);
  expectBad(withNext(20), /leaves a gap of 8 bytes/, 0);
  expectBad(VECTOR.subarray(0, 5), /needs 8 header bytes, 5 left/, 0);
  expectBad(VECTOR.subarray(0, 12 + 6), /needs 8 header bytes, 6 left/, 12);
  const long = Buffer.from(VECTOR);
  long.writeUInt16LE(500, 12 + 6); // second value length 500
  expectBad(long, /run past the buffer end/, 12);
  const noNul = Buffer.from(VECTOR);
  noNul[8 + 1] = 0x42;
  expectBad(noNul, /not NUL-terminated/, 0);
  expectBad(Buffer.concat([VECTOR, Buffer.from([0, 0, 0, 0])]), /5 unexpected bytes after the last entry/, 12);
  const garbage = Buffer.from(VECTOR);
  garbage[27] = 1;
  expectBad(garbage, /1 unexpected bytes after the last entry/, 12);
  const empty = Buffer.from(VECTOR);
  empty[5] = 0;
  expectBad(empty, /empty name/, 0);
});

test('encode refuses names and values Windows cannot hold', () => {
  const bad = (ea: WindowsEa, re: RegExp) =>
    assert.throws(() => encodeEaBuffer([ea]), (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message));
  bad({ name: 'N'.repeat(256), flags: 0, value: Buffer.alloc(0) }, /256 bytes \(max 255\)/);
  bad({ name: '', flags: 0, value: Buffer.alloc(0) }, /empty/);
  bad({ name: 'V', flags: 0, value: Buffer.alloc(65536) }, /65536 bytes \(max 65535\)/);
  bad({ name: 'F', flags: 256, value: Buffer.alloc(0) }, /flags 256/);
});
