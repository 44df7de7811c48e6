/**
 * Malformed and hostile input: each case is rejected with a WinsnapError of kind
 * InvalidArgument (NotImplemented for GNU sparse) whose message and context name the byte
 * offset (and the entry where there is one); no crash, no hang. Inputs are built by hand
 * here (a tiny independent USTAR encoder) or by corrupting archives GNU tar wrote.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tempDir } from '../../helpers/tools.js';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { TarWriter, readTar, type TarReadOptions } from '../../../src/formats/tar/index.js';
import { collect } from './helpers.js';

// ----- an independent, minimal USTAR block builder (POSIX field offsets) -----
interface Raw {
  name: string;
  typeflag?: string;
  size?: number;
  /** Raw 12-byte size field (overrides size). */
  sizeField?: Buffer;
  mode?: string;
  mtimeField?: string;
  magic?: 'ustar' | 'gnu';
}
function block(r: Raw): Buffer {
  const b = Buffer.alloc(512);
  b.write(r.name, 0, 100, 'utf8');
  b.write(r.mode ?? '0000644\0', 100, 'latin1');
  b.write('0000000\0', 108, 'latin1');
  b.write('0000000\0', 116, 'latin1');
  if (r.sizeField) r.sizeField.copy(b, 124);
  else b.write((r.size ?? 0).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  b.write(r.mtimeField ?? '00000000000\0', 136, 'latin1');
  b.write(r.typeflag ?? '0', 156, 'latin1');
  if (r.magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
  else b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}
function pad(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}
function entry(r: Raw, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([block({ ...r, size: r.size ?? data.length }), pad(data)]);
}
function pax(records: string | Buffer, name = 'PaxHeaders/x'): Buffer {
  const body = Buffer.isBuffer(records) ? records : Buffer.from(records, 'utf8');
  return entry({ name, typeflag: 'x' }, body);
}
const END = Buffer.alloc(1024);
const file = (name: string, data: string): Buffer => entry({ name }, Buffer.from(data));

async function readEverything(input: Buffer | AsyncIterable<Buffer>, opts?: TarReadOptions): Promise<string[]> {
  const names: string[] = [];
  const src = Buffer.isBuffer(input) ? [input] : input;
  for await (const e of readTar(src, opts)) {
    names.push(e.header.name);
    for await (const c of e.body) void c; // streamed, whatever the size
  }
  return names;
}

async function rejects(
  input: Buffer | AsyncIterable<Buffer>,
  pattern: RegExp,
  want: { offset?: number; entry?: string; kind?: string } = {},
  opts?: TarReadOptions,
): Promise<WinsnapError> {
  let caught: unknown;
  try {
    await readEverything(input, opts);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof WinsnapError, `expected a WinsnapError, got ${String(caught)}`);
  assert.equal(caught.kind, want.kind ?? 'InvalidArgument', caught.message);
  assert.match(caught.message, pattern);
  assert.equal(typeof caught.context.offset, 'number', `offset in context: ${caught.message}`);
  if (want.offset !== undefined) {
    assert.equal(caught.context.offset, want.offset, caught.message);
    assert.ok(caught.message.includes(String(want.offset)), `offset in message: ${caught.message}`);
  }
  if (want.entry !== undefined) {
    assert.equal(caught.context.entry, want.entry, caught.message);
    assert.ok(caught.message.includes(want.entry), `entry in message: ${caught.message}`);
  }
  return caught;
}

let tmp: { path: string; cleanup: () => void };
let gnu: Buffer;
before(() => {
  tmp = tempDir('winsnap-tar-bad-');
  writeFileSync(join(tmp.path, 'a.txt'), 'hello world\n');
  writeFileSync(join(tmp.path, 'b.txt'), Buffer.alloc(1500, 7));
  const r = runTool('tar', ['--format=pax', '-cf', join(tmp.path, 'g.tar'), '-C', tmp.path, 'a.txt', 'b.txt']);
  assert.equal(r.status, 0, r.stderr);
  gnu = readFileSync(join(tmp.path, 'g.tar'));
});
after(() => tmp.cleanup());

test('the hand-built corpus baseline is valid', async () => {
  assert.deepEqual(await readEverything(Buffer.concat([pax('11 path=ab\n'), file('x', 'data'), END])), ['ab']);
  assert.deepEqual(await readEverything(gnu), ['a.txt', 'b.txt']);
});

test('header checksum error (a flipped byte in a GNU tar archive)', async () => {
  const bad = Buffer.from(gnu);
  const firstReal = 1024; // GNU tar --format=pax: 'x' header + its records, then the USTAR header
  bad[firstReal + 1] ^= 0x01;
  await rejects(bad, /checksum mismatch/, { offset: firstReal });
  const bad0 = Buffer.from(gnu);
  bad0[5] ^= 0x40;
  await rejects(bad0, /checksum mismatch at offset 0/, { offset: 0 });
});

test('checksum field not octal / empty', async () => {
  const b = block({ name: 'x' });
  b.write('12x4', 148, 'latin1');
  await rejects(Buffer.concat([b, END]), /checksum field is not octal/, { offset: 0, entry: 'x' });
  const e = block({ name: 'y' });
  e.fill(0, 148, 156);
  await rejects(Buffer.concat([e, END]), /checksum field is empty/, { offset: 0, entry: 'y' });
});

test('bad octal in the size, mode and mtime fields', async () => {
  await rejects(Buffer.concat([block({ name: 'sz', sizeField: Buffer.from('0000000x12\0\0') }), END]), /size field is not octal/, { offset: 0, entry: 'sz' });
  await rejects(Buffer.concat([file('ok', 'a'), block({ name: 'md', mode: '00009\0\0\0' }), END]), /mode field is not octal/, { offset: 1024, entry: 'md' });
  await rejects(Buffer.concat([block({ name: 'mt', mtimeField: '1234-678901\0' }), END]), /mtime field is not octal/, { offset: 0, entry: 'mt' });
});

test('negative and absurd sizes (base-256) are rejected before any body is read', async () => {
  const neg = Buffer.alloc(12, 0xff); // -1
  await rejects(Buffer.concat([block({ name: 'neg', sizeField: neg }), END]), /size field is negative/, { offset: 0, entry: 'neg' });
  const huge = Buffer.alloc(12);
  huge[0] = 0x80;
  huge[1] = 0x01; // 2^80
  await rejects(Buffer.concat([block({ name: 'huge', sizeField: huge }), END]), /size field is too large/, { offset: 0, entry: 'huge' });
  // A large but representable size with no data behind it: truncated, not a hang.
  const big = Buffer.alloc(12);
  big[0] = 0x80;
  big[6] = 0x01; // 2^40
  await rejects(Buffer.concat([block({ name: 'big', sizeField: big }), END]), /truncated archive: entry "big"/, { entry: 'big' });
  await rejects(Buffer.concat([file('small', 'x'.repeat(600)), END]), /size field is too large/, { offset: 0 }, { maxEntrySize: 512 });
});

test('bad PAX record syntax', async () => {
  const cases: [string | Buffer, RegExp][] = [
    ['10 path=ab\n', /does not end with a newline/], // length says 10, the record is 11 bytes
    ['13 path=ab\n', /exceeds the header size/], // length past the body end
    ['11 pathxab\n', /no "="/],
    ['11 path=abX', /does not end with a newline/],
    ['x1 path=ab\n', /does not start with a decimal length/],
    ['11path=abc\n', /not followed by a space/],
    ['4 =\n', /out of range|empty keyword/],
    ['8 =abcd\n', /empty keyword/],
    ['0 \n', /out of range/],
    [Buffer.concat([Buffer.from('11 pa'), Buffer.from([0]), Buffer.from('h=ab\n')]), /keyword contains NUL/],
    [Buffer.concat([Buffer.from('10 p'), Buffer.from([0xff, 0xfe]), Buffer.from('h=a\n')]), /keyword is not valid UTF-8/],
    ['11 path=ab\n\0\0\0', /does not start with a decimal length/],
  ];
  for (const [recs, re] of cases) {
    const input = Buffer.concat([file('first', 'abc'), pax(recs, 'PaxHeaders/bad'), file('x', 'data'), END]);
    await rejects(input, re, { offset: 1024, entry: 'PaxHeaders/bad' });
  }
});

test('bad PAX values for size, uid, mtime', async () => {
  await rejects(Buffer.concat([pax('12 size=12a\n'), file('v', ''), END]), /PAX size value "12a" is not a valid number/, { offset: 1024, entry: 'v' });
  await rejects(Buffer.concat([pax('10 uid=-1\n'), file('u', ''), END]), /PAX uid value "-1"/, { offset: 1024, entry: 'u' });
  await rejects(Buffer.concat([pax('15 mtime=1.2.3\n'), file('m', ''), END]), /PAX mtime value "1\.2\.3" is not a valid time/, { offset: 1024, entry: 'm' });
  await rejects(Buffer.concat([pax('29 size=99999999999999999999\n'), file('s', ''), END]), /PAX size value/, { offset: 1024, entry: 's' });
  await rejects(Buffer.concat([pax('25 size=9999999999999999\n'), file('t', ''), END]), /PAX size value 9999999999999999 is too large/, { offset: 1024, entry: 't' });
});

test('truncated header, truncated body, missing padding, missing end marker', async () => {
  await rejects(gnu.subarray(0, 300), /header at offset 0 has only 300 of 512 bytes/, { offset: 0 });
  const withBody = Buffer.concat([file('a', 'x'.repeat(1000)), END]);
  // Cut inside the body: readAll fails, and so does skipping the body.
  await rejects(withBody.subarray(0, 512 + 700), /truncated archive: entry "a".*300 body bytes missing/, { entry: 'a' });
  let skipped: unknown;
  try {
    for await (const e of readTar([withBody.subarray(0, 512 + 700)])) void e;
  } catch (e) {
    skipped = e;
  }
  assert.ok(skipped instanceof WinsnapError && /entry "a"/.test(skipped.message) && skipped.kind === 'InvalidArgument');
  await rejects(withBody.subarray(0, 512 + 1000), /entry "a".*block padding missing/, { entry: 'a' });
  await rejects(withBody.subarray(0, 1536), /without the end-of-archive blocks/, { offset: 1536 });
  assert.deepEqual(await readEverything(withBody.subarray(0, 1536), { requireEndMarker: false }), ['a']);
  await rejects(Buffer.alloc(0), /without the end-of-archive blocks/, { offset: 0 });
  await rejects(Buffer.concat([file('a', 'b'), pax('11 path=ab\n')]), /is not followed by an entry/, { offset: 2048 });
  await rejects(Buffer.concat([file('a', 'b'), pax('11 path=ab\n'), END]), /followed by the end-of-archive marker/, { offset: 2048 });
  await rejects(Buffer.concat([entry({ name: 'PaxHeaders/x', typeflag: 'x', size: 100 }).subarray(0, 512 + 50)]), /body of the 'x' header at offset 0 is incomplete/, { offset: 0 });
});

test('oversized PAX and GNU long-name headers are refused before their body is read', async () => {
  const declared = block({ name: 'PaxHeaders/big', typeflag: 'x', size: 2 << 20 });
  await rejects(Buffer.concat([declared]), /'x' header at offset 0 is 2097152 bytes, over the limit of 1048576/, { offset: 0 });
  const longName = block({ name: '././@LongLink', typeflag: 'L', size: 5000, magic: 'gnu' });
  await rejects(Buffer.concat([longName]), /'L' header at offset 0 is 5000 bytes, over the limit of 4096/, { offset: 0 }, { maxHeaderBytes: 4096 });
  // Several headers that are each under the limit but together over it.
  const recs = `${'1000 a=' + 'v'.repeat(992)}\n`.repeat(3);
  await rejects(Buffer.concat([pax(recs), pax(recs), file('x', ''), END]), /total 6000 bytes, over the limit of 5000/, { offset: 3584 }, { maxHeaderBytes: 5000 });
});

test('tar bomb: an endless stream of PAX headers is rejected, no hang', async () => {
  let produced = 0;
  async function* endless(): AsyncGenerator<Buffer> {
    const one = pax('11 path=ab\n');
    for (;;) {
      produced++;
      yield one;
    }
  }
  await rejects(endless(), /more than 32 extended headers in a row/);
  assert.ok(produced < 40, `stopped early (${produced} headers pulled)`);
  let globals = 0;
  async function* endlessGlobal(): AsyncGenerator<Buffer> {
    const g = entry({ name: 'GlobalHead', typeflag: 'g' }, Buffer.from('11 path=ab\n'));
    for (;;) {
      globals++;
      yield g;
    }
  }
  await rejects(endlessGlobal(), /more than 32 extended headers/);
  assert.ok(globals < 40);
});

test('tar bomb: entry count limit', async () => {
  const many = Buffer.concat([...Array.from({ length: 5 }, (_, i) => file(`f${i}`, 'x')), END]);
  await rejects(many, /more than 3 entries \(entry "f3" at offset 3072\)/, { offset: 3072, entry: 'f3' }, { maxEntries: 3 });
});

test('header-only types with a size, GNU sparse, invalid UTF-8 names', async () => {
  await rejects(Buffer.concat([entry({ name: 'd/', typeflag: '5', size: 10 }, Buffer.alloc(10)), END]), /a dir entry must have size 0/, { offset: 0, entry: 'd/' });
  await rejects(Buffer.concat([entry({ name: 's', typeflag: 'S', magic: 'gnu' }), END]), /GNU 'S' entries/, { offset: 0, kind: 'NotImplemented' });
  await rejects(Buffer.concat([pax('22 GNU.sparse.major=1\n'), file('sp', ''), END]), /GNU sparse entry "sp"/, { offset: 1024, entry: 'sp', kind: 'NotImplemented' });
  const badName = block({ name: 'x' });
  badName[1] = 0xff;
  badName.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of badName) sum += x;
  badName.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  await rejects(Buffer.concat([badName, END]), /entry name at offset 0 is not valid UTF-8/, { offset: 0 });
  assert.deepEqual(await readEverything(Buffer.concat([badName, END]), { invalidUtf8: 'replace' }), ['x\ufffd']);
});

test('a lone zero block ends the archive like GNU tar, bsdtar and tarfile do', async () => {
  const input = Buffer.concat([file('a', 'x'), Buffer.alloc(512), file('b', 'y'), END]);
  const names: string[] = [];
  const reader = readTar([input]);
  for (;;) {
    const r = await reader.next();
    if (r.done) {
      assert.equal(r.value?.loneZeroBlock, true);
      break;
    }
    names.push(r.value.header.name);
  }
  assert.deepEqual(names, ['a']);
});

test('a body cannot be read after the next entry was requested, nor twice', async () => {
  const input = Buffer.concat([file('a', 'x'.repeat(2000)), file('b', 'y'), END]);
  const it = readTar([input.subarray(0, 700), input.subarray(700)]);
  const a = (await it.next()).value as { body: AsyncIterable<Buffer> };
  const iter = a.body[Symbol.asyncIterator]();
  await iter.next();
  const b = await it.next();
  assert.equal((b.value as { header: { name: string } }).header.name, 'b');
  await assert.rejects(iter.next(), (e: unknown) => e instanceof WinsnapError && /read after the next entry/.test(e.message));
  const c = (b.value as { body: AsyncIterable<Buffer> }).body;
  for await (const x of c) void x;
  assert.throws(() => c[Symbol.asyncIterator](), /iterated twice/);
});

test('writer rejects bad input with InvalidArgument before writing anything', async () => {
  const w = new TarWriter();
  const out = collect(w);
  const bad = async (h: Parameters<TarWriter['writeEntry']>[0], body: Buffer | undefined, re: RegExp) => {
    await assert.rejects(w.writeEntry(h, body), (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message));
  };
  await bad({ name: 'a\0b' }, undefined, /contains NUL/);
  await bad({ name: '' }, undefined, /name is empty/);
  await bad({ name: 'p', pax: [{ key: 'path', value: Buffer.from('q') }] }, undefined, /PAX record path="q" disagrees with the header value "p"/);
  await bad({ name: 'm', mtime: 5, pax: [{ key: 'mtime', value: Buffer.from('6') }] }, undefined, /mtime.*disagrees/);
  await bad({ name: 'k', pax: [{ key: 'a=b', value: Buffer.from('1') }] }, undefined, /keyword contains "="/);
  await bad({ name: 'k', pax: [{ key: '', value: Buffer.from('1') }] }, undefined, /empty keyword/);
  await bad({ name: 'd', type: 'dir', size: 5 }, Buffer.alloc(5), /must have size 0/);
  await bad({ name: 'x', typeflag: 0x78 }, undefined, /cannot be written as an entry/);
  await bad({ name: 'u', uid: -1 }, undefined, /uid -1 is out of range/);
  await bad({ name: 'mode', mode: 0o100000000 }, undefined, /mode .* out of range/);
  await bad({ name: 's', size: 3 }, Buffer.from('ab'), /body is 2 bytes, header size is 3/);
  await bad({ name: 's', size: 3 }, undefined, /has size 3 but no body/);
  // Nothing was written by the failed calls: the archive is still valid and empty.
  await w.writeEntry({ name: 'ok', size: 2 }, Buffer.from('ok'));
  await w.finish();
  assert.deepEqual(await readEverything(await out), ['ok']);
});

test('writer: a streamed body of the wrong length fails the output stream', async () => {
  const w = new TarWriter();
  const out = collect(w);
  async function* short(): AsyncGenerator<Buffer> {
    yield Buffer.alloc(10);
  }
  await assert.rejects(w.writeEntry({ name: 'short', size: 20 }, short()), /body is 10 bytes, header size is 20/);
  await assert.rejects(out, /body is 10 bytes/);
  await assert.rejects(w.writeEntry({ name: 'after', size: 0 }), /write after finish/);
});
