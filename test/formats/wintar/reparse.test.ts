/**
 * Reparse buffers for symlinks and junctions. Expected bytes are laid out by hand from
 * REPARSE_DATA_BUFFER (tag, DataLength, Reserved, Substitute/Print offsets and lengths,
 * symlink Flags) and the substitute-name rules of windows-layer-formats.md §1.5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { decodeReparsePoint, encodeReparsePoint } from '../../../src/formats/wintar/index.js';

const u16 = (s: string) => Buffer.from(s, 'utf16le').toString('hex');
const le16 = (n: number) => n.toString(16).padStart(4, '0').replace(/(..)(..)/, '$2$1');

test('relative symlink: substitute = print = target, flag 1', () => {
  const target = 'foo\\bar'; // 7 UTF-16 units, 14 bytes, 16 with NUL
  const want =
    '0c0000a0' + // IO_REPARSE_TAG_SYMLINK
    le16(12 + 16 + 16) + '0000' + // DataLength 44, Reserved
    le16(0) + le16(14) + le16(16) + le16(14) + // subst off/len, print off/len
    '01000000' + // SYMLINK_FLAG_RELATIVE
    u16('foo\\bar\0') +
    u16('foo\\bar\0');
  const buf = encodeReparsePoint({ target, isMountPoint: false });
  assert.equal(buf.toString('hex'), want);
  assert.deepEqual(decodeReparsePoint(buf), {
    tag: 0xa000000c,
    isMountPoint: false,
    substituteName: target,
    printName: target,
    flags: 1,
    relative: true,
    target,
  });
});

test('junction to C:\\target: substitute \\??\\C:\\target, no flags field', () => {
  const subst = '\\??\\C:\\target'; // 13 units
  const print = 'C:\\target'; // 9 units
  const want =
    '030000a0' +
    le16(8 + 28 + 20) + '0000' +
    le16(0) + le16(26) + le16(28) + le16(18) +
    u16(`${subst}\0`) +
    u16(`${print}\0`);
  const buf = encodeReparsePoint({ target: print, isMountPoint: true });
  assert.equal(buf.toString('hex'), want);
  const d = decodeReparsePoint(buf);
  assert.equal(d.substituteName, subst);
  assert.equal(d.target, print);
  assert.equal(d.isMountPoint, true);
  assert.equal(d.relative, false);
});

test('substitute-name rules: \\\\?\\X, UNC, drive letter, rooted, relative', () => {
  const cases: [string, string, number][] = [
    ['\\\\?\\Volume{1234}\\dir', '\\??\\Volume{1234}\\dir', 0],
    ['\\\\server\\share\\x', '\\??\\UNC\\server\\share\\x', 0],
    ['d:\\x', '\\??\\d:\\x', 0],
    ['\\rooted\\path', '\\rooted\\path', 1], // no drive: treated as relative (as go-winio does)
    ['..\\sibling', '..\\sibling', 1],
  ];
  for (const [target, subst, flags] of cases) {
    const d = decodeReparsePoint(encodeReparsePoint({ target, isMountPoint: false }));
    assert.equal(d.substituteName, subst, target);
    assert.equal(d.flags, flags, target);
    assert.equal(d.target, target);
  }
});

test('an empty print name falls back to the Win32 form of the substitute name', () => {
  // Hand-built junction with print name length 0.
  const subst = u16('\\??\\UNC\\srv\\share\0');
  const data = Buffer.from(le16(0) + le16(subst.length / 2 - 2) + le16(subst.length / 2) + le16(0) + subst + '0000', 'hex');
  const buf = Buffer.concat([Buffer.from('030000a0' + le16(data.length) + '0000', 'hex'), data]);
  const d = decodeReparsePoint(buf);
  assert.equal(d.printName, '');
  assert.equal(d.target, '\\\\srv\\share');
});

test('property: decode(encode(target)) keeps the target and kind', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 200 }).map((s) => s.replace(/\0/g, '_')), fc.boolean(), (target, isMountPoint) => {
      const d = decodeReparsePoint(encodeReparsePoint({ target, isMountPoint }));
      assert.equal(d.target, target);
      assert.equal(d.printName, target);
      assert.equal(d.isMountPoint, isMountPoint);
    }),
    { numRuns: 300 },
  );
});

function bad(buf: Buffer, re: RegExp, kind = 'InvalidArgument'): void {
  assert.throws(() => decodeReparsePoint(buf, 40), (e: unknown) => e instanceof WinsnapError && e.kind === kind && re.test(e.message) && typeof e.context.offset === 'number');
}

test('malformed reparse buffers: short, length mismatch, names out of range, odd, unknown tag', () => {
  const good = encodeReparsePoint({ target: 'foo\\bar', isMountPoint: false });
  bad(good.subarray(0, 6), /6 bytes, needs at least 8/);
  bad(good.subarray(0, good.length - 2), /ReparseDataLength 44 does not match the buffer \(42 data bytes\)/);
  const outOfRange = Buffer.from(good);
  outOfRange.writeUInt16LE(30, 8 + 4); // PrintNameOffset 30 + length 14 > 32
  bad(outOfRange, /PrintName \(offset 30, length 14\) runs past the path buffer \(32 bytes\)/);
  const substOut = Buffer.from(good);
  substOut.writeUInt16LE(100, 8 + 2); // SubstituteNameLength 100
  bad(substOut, /SubstituteName \(offset 0, length 100\)/);
  const odd = Buffer.from(good);
  odd.writeUInt16LE(15, 8 + 6);
  bad(odd, /not even/);
  const shortData = Buffer.from('0c0000a0' + le16(4) + '0000' + '00000000', 'hex');
  bad(shortData, /4 data bytes, needs at least 12/);
  const other = Buffer.from('1d0000a0' + le16(0) + '0000', 'hex'); // IO_REPARSE_TAG_LX_SYMLINK
  bad(other, /unsupported reparse tag 0xa000001d/, 'NotImplemented');
});
