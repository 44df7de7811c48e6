/**
 * StreamFingerprint: equal to a bitwise reference CRC-32 / CRC-32C (written here from the
 * polynomials, not from the code under test) over the whole stream, whatever the chunking;
 * any changed byte or length changes it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { StreamFingerprint } from '../../src/formats/checksum.js';

/** Reflected CRC-32 with polynomial `poly` (0xEDB88320: IEEE; 0x82F63B78: Castagnoli). */
function referenceCrc(data: Uint8Array, poly: number): number {
  let c = 0xffffffff;
  for (const byte of data) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const hex = (n: number) => n.toString(16).padStart(8, '0');

test('fingerprint = length, CRC-32 and CRC-32C of the whole stream, independent of chunking', () => {
  const data = randomBytes(20_000);
  const expected = `${data.length}:${hex(referenceCrc(data, 0xedb88320))}:${hex(referenceCrc(data, 0x82f63b78))}`;
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
