/**
 * StreamFingerprint: equal to a bitwise reference CRC-32 / CRC-32C (test/helpers/crc.ts, from the
 * polynomials, not from the code under test) over the whole stream, whatever the chunking;
 * any changed byte or length changes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { combineCrc, CRC32_POLY, CRC32C_POLY, StreamFingerprint } from '../../src/formats/checksum.js';
import { CASTAGNOLI, IEEE, referenceCrc } from '../helpers/crc.js';

const hex = (n: number) => n.toString(16).padStart(8, '0');

test('fingerprint = length, CRC-32 and CRC-32C of the whole stream, independent of chunking', () => {
  const data = randomBytes(20_000);
  const expected = `${data.length}:${hex(referenceCrc(data, IEEE))}:${hex(referenceCrc(data, CASTAGNOLI))}`;
  for (const cut of [[], [1], [511, 512, 4096], [19_999]]) {
    const f = new StreamFingerprint();
    let at = 0;
    for (const c of [...cut, data.length]) {
      f.update(data.subarray(at, c));
      at = c;
    }
    assert.equal(f.toString(), expected, `cut at ${cut.join(',')}`);
    assert.equal(f.bytes, data.length);
  }
  // the check values of the CRC catalogue ("123456789")
  const f = new StreamFingerprint();
  f.update(Buffer.from('123456789'));
  assert.equal(f.toString(), '9:cbf43926:e3069283');
});

test('a changed byte or an appended zero changes the fingerprint', () => {
  const data = randomBytes(4096);
  const of = (b: Buffer) => {
    const f = new StreamFingerprint();
    f.update(b);
    return f.toString();
  };
  const base = of(data);
  const flipped = Buffer.from(data);
  flipped[1234] ^= 0x10;
  assert.notEqual(of(flipped), base);
  assert.notEqual(of(Buffer.concat([data, Buffer.alloc(1)])), base);
});

test('combineCrc: the CRC of A ‖ B from the CRCs of A and B and the length of B', () => {
  for (const [la, lb] of [[0, 0], [0, 5], [5, 0], [1, 1], [13, 4096], [4096, 13], [777, 70_001]] as const) {
    const a = randomBytes(la);
    const b = randomBytes(lb);
    const ab = Buffer.concat([a, b]);
    for (const poly of [CRC32_POLY, CRC32C_POLY]) {
      assert.equal(combineCrc(referenceCrc(a, poly), referenceCrc(b, poly), lb, poly), referenceCrc(ab, poly), `${la}+${lb} poly ${hex(poly)}`);
    }
  }
  // a shift by 2^20 zero bytes = the CRC of those zeros after A, checked by the reference
  const a = randomBytes(100);
  const zeros = Buffer.alloc(1 << 20);
  assert.equal(combineCrc(referenceCrc(a, CRC32_POLY), referenceCrc(zeros, CRC32_POLY), zeros.length, CRC32_POLY), referenceCrc(Buffer.concat([a, zeros]), CRC32_POLY));
  // lengths past 2^32 (the shift is built from the length's bits): shifting by m then by n is
  // shifting by m + n, with crcB = 0 (a pure shift), for lengths whose bits differ
  const c = referenceCrc(a, CRC32C_POLY);
  for (const [m, n] of [[2 ** 32, 3], [2 ** 31, 2 ** 31], [2 ** 40 + 12345, 2 ** 33 - 1], [1, 2 ** 50]]) {
    const twice = combineCrc(combineCrc(c, 0, m!, CRC32C_POLY), 0, n!, CRC32C_POLY);
    assert.equal(combineCrc(c, 0, m! + n!, CRC32C_POLY), twice, `${m} + ${n}`);
    assert.notEqual(twice, c);
  }
});

test('StreamFingerprint.append of chunks checksummed elsewhere = update of the same bytes', () => {
  const data = randomBytes(50_000);
  const whole = new StreamFingerprint();
  whole.update(data);
  for (const size of [1, 4096, 7777, 50_000]) {
    const f = new StreamFingerprint();
    for (let at = 0; at < data.length; at += size) {
      const c = data.subarray(at, at + size);
      f.append(c.length, referenceCrc(c, CRC32_POLY), referenceCrc(c, CRC32C_POLY));
    }
    assert.equal(f.toString(), whole.toString(), `chunks of ${size}`);
  }
});
