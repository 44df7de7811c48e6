/**
 * Streaming behaviour: the reader pulls the source lazily and hands out views of its chunks
 * (no copies, nothing buffered ahead), skips unread bodies, reports trailing bytes; the
 * writer waits when its output is not read (backpressure) and streams bodies as given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { TarReader, TarWriter, readTar, encodeTarHeader, type TarEntry } from '../../../src/formats/tar/index.js';
import { collect } from './helpers.js';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tempDir } from '../../helpers/tools.js';


const MiB = 1 << 20;

/** A hand-made USTAR header (independent of the writer) for a regular file of `size` bytes. */
function ustar(name: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'utf8');
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000000\0', 136);
  b.write('0', 156);
  b.write('ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

test('reader: lazy pulls, zero-copy bodies, unread bodies skipped, bounded lookahead', async () => {
  const bodySize = 64 * MiB + 100;
  const pulled: Buffer[] = [];
  let consumed = 0;
  async function* source(): AsyncGenerator<Buffer> {
    const emit = (b: Buffer): Buffer => {
      pulled.push(b);
      return b;
    };
    yield emit(ustar('big', bodySize));
    let left = bodySize;
    while (left > 0) {
      const n = Math.min(MiB, left);
      // Every chunk is a fresh buffer: a reader that kept them would grow without bound.
      yield emit(Buffer.alloc(n, 1));
      left -= n;
    }
    yield emit(Buffer.concat([Buffer.alloc(512 - (bodySize % 512)), ustar('second', 3), Buffer.from('abc'), Buffer.alloc(509)]));
    yield emit(Buffer.alloc(1024));
    yield emit(Buffer.alloc(8192)); // trailing record padding
  }
  const reader = new TarReader(source());
  const first = await reader.next();
  assert.equal(first?.header.name, 'big');
  assert.equal(pulled.length, 1, 'only the header chunk was pulled when the entry is returned');
  let seen = 0;
  for await (const c of first!.body) {
    // A view of the chunk the source gave, and never more than one chunk ahead.
    assert.equal(c.buffer, pulled[pulled.length - 1]!.buffer, 'body chunk is a view of the source chunk');
    seen += c.length;
    consumed++;
    assert.ok(pulled.length <= consumed + 1);
    if (seen > 10 * MiB) break; // leave the rest unread
  }
  const second = await reader.next();
  assert.equal(second?.header.name, 'second');
  assert.equal((await second!.readAll()).toString(), 'abc');
  assert.equal(await reader.next(), undefined);
  assert.deepEqual(reader.end, { endOffset: 512 + bodySize + (512 - (bodySize % 512)) + 1024 + 1024, entries: 2, loneZeroBlock: false });
  assert.deepEqual(await reader.drain(), { bytes: 8192, allZero: true });
});

test('reader: bufferedBody gives a body the chunk already holds, synchronously; otherwise undefined and the body streams', async () => {
  const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);
  const inChunk = Buffer.concat([ustar('a', 5), Buffer.from('hello'), pad(5), ustar('b', 3000)]);
  const bBody = Buffer.alloc(3000, 7);
  const chunks = [inChunk, bBody.subarray(0, 1000), Buffer.concat([bBody.subarray(1000), pad(3000), ustar('c', 0), Buffer.alloc(1024)])];
  const reader = new TarReader(chunks);
  const a = (await reader.next())!;
  const body = a.bufferedBody!();
  assert.equal(body?.toString(), 'hello');
  assert.equal(body!.buffer, inChunk.buffer, 'a view of the input chunk');
  assert.throws(() => a.bufferedBody!(), /iterated twice/);
  const b = (await reader.next())!;
  assert.equal(b.bufferedBody!(), undefined, 'the body runs past the chunk');
  const parts: Buffer[] = [];
  for await (const c of b.body) parts.push(Buffer.from(c));
  assert.ok(Buffer.concat(parts).equals(bBody));
  const c = (await reader.next())!;
  assert.equal(c.bufferedBody!()?.length, 0);
  assert.equal(await reader.next(), undefined);
  assert.throws(() => b.bufferedBody!(), /iterated twice|after the next entry/);
  const again = new TarReader([inChunk.subarray(0, 1024), Buffer.alloc(1024)]);
  const first = (await again.next())!;
  await again.next(); // moving on without reading 'a'
  assert.throws(() => first.bufferedBody!(), /after the next entry was requested/);
});

test('reader: nextSync reads plain entries already buffered, and returns null (consuming nothing) where next() must wait or decide', async () => {
  const w = new TarWriter();
  const bytesP = collect(w);
  await w.writeEntry({ name: 'a', size: 5 }, Buffer.from('hello'));
  await w.writeEntry({ name: 'b', size: 700 }, Buffer.alloc(700, 2));
  await w.writeEntry({ name: 'x'.repeat(150), size: 1 }, Buffer.from('z')); // needs a PAX header
  await w.writeEntry({ name: 'd', size: 0 });
  await w.finish();
  const bytes = await bytesP;
  const reader = new TarReader([bytes.subarray(0, 3000), bytes.subarray(3000)]);
  assert.equal(reader.nextSync(), null, 'nothing is buffered before the first read');
  const a = (await reader.next())!;
  assert.equal(a.header.name, 'a');
  const b = reader.nextSync();
  assert.equal(b?.header.name, 'b', 'a plain header in the buffered chunk');
  assert.equal(b!.offset, 1024);
  assert.equal(b!.bufferedBody!()?.length, 700);
  const pos = reader.position;
  assert.equal(reader.nextSync(), null, 'a PAX header whose records the chunk does not hold: next() reads it');
  assert.equal(reader.position, pos, 'nothing consumed');
  const c = (await reader.next())!;
  assert.equal(c.header.name, 'x'.repeat(150));
  assert.equal(reader.nextSync()?.header.name, 'd');
  assert.equal(reader.nextSync(), null, 'the end-of-archive marker is left to next()');
  assert.equal(await reader.next(), undefined);
  assert.equal(reader.end?.entries, 4);
  assert.equal(reader.nextSync(), null);
  // a corrupt plain header fails the same way in both paths, and the reader stays failed
  const bad = Buffer.from(bytes);
  bad[1024 + 148] = 0x39; // a non-octal checksum digit in b's header
  const r2 = new TarReader([bad]);
  await r2.next();
  assert.throws(() => r2.nextSync(), /checksum/);
  await assert.rejects(r2.next(), /checksum/);
});

test('reader: nextSync reads a PAX header and its entry from the buffered chunk as next() does, and fails on bad records as next() does', async () => {
  const w = new TarWriter();
  const bytesP = collect(w);
  await w.writeEntry({ name: 'a', size: 0 });
  await w.writeEntry(
    { name: 'ü/'.repeat(60) + 'long', size: 3, mtime: { sec: 5n, nsec: 7 }, atime: { sec: 6n, nsec: 1 }, pax: [{ key: 'SCHILY.xattr.user.k', value: Buffer.from([0, 1, 2]) }] },
    Buffer.from('abc'),
  );
  await w.writeEntry({ name: 'x'.repeat(120), type: 'symlink', linkname: 't'.repeat(200) });
  await w.finish();
  const bytes = await bytesP;
  const view = (e: TarEntry) => ({ header: e.header, offset: e.offset, headerOffset: e.headerOffset, dataOffset: e.dataOffset });
  const viaNext: ReturnType<typeof view>[] = [];
  for await (const e of new TarReader([bytes])) viaNext.push(view(e));
  const r = new TarReader([bytes]);
  const first = (await r.next())!;
  const second = r.nextSync();
  assert.ok(second, 'a PAX entry in the chunk is read without waiting');
  assert.equal(second.bufferedBody!()?.toString(), 'abc');
  const third = r.nextSync();
  assert.ok(third);
  assert.deepEqual([first, second, third].map(view), viaNext);
  assert.equal(second.header.format, 'pax');
  assert.equal(r.nextSync(), null, 'the end-of-archive marker is left to next()');
  assert.equal(await r.next(), undefined);

  // a malformed record: the same error either way, and the reader stays failed
  const bad = Buffer.from(bytes);
  assert.equal(bad[512 + 156], 0x78, "the second entry's first header is a PAX header");
  bad[1024] = 0x7a; // its first record's length does not start with a digit
  const r3 = new TarReader([bad]);
  await r3.next();
  const viaNextError = await r3.next().then(
    () => undefined,
    (e: Error) => e.message,
  );
  assert.ok(viaNextError, 'next() refuses the record');
  const r4 = new TarReader([bad]);
  await r4.next();
  assert.throws(() => r4.nextSync(), (e: Error) => e.message === viaNextError);
  await assert.rejects(r4.next(), (e: Error) => e.message === viaNextError);
});

test("reader: nextSync reads GNU tar's long names and long links ('L', 'K' headers) from the buffered chunk as next() does", async () => {
  const t = tempDir();
  try {
    const deep = join(t.path, 'tree', 'd'.repeat(70), 'e'.repeat(70));
    mkdirSync(deep, { recursive: true });
    writeFileSync(join(deep, 'f'.repeat(40)), 'long\n');
    writeFileSync(join(t.path, 'tree', 'short'), 'short\n');
    symlinkSync(join('d'.repeat(70), 'e'.repeat(70), 'f'.repeat(40)), join(t.path, 'tree', 'link-with-a-long-target'));
    const out = join(t.path, 'gnu.tar');
    assert.equal(runTool('tar', ['--format=gnu', '--sort=name', '-cf', out, '-C', t.path, 'tree']).status, 0);
    const bytes = readFileSync(out);
    assert.ok(bytes.includes('././@LongLink'), "GNU tar wrote 'L'/'K' headers");
    const view = (e: TarEntry) => ({ header: e.header, offset: e.offset, headerOffset: e.headerOffset, dataOffset: e.dataOffset });
    const viaNext: ReturnType<typeof view>[] = [];
    for await (const e of new TarReader([bytes])) viaNext.push(view(e));
    const r = new TarReader([bytes]);
    const mixed: ReturnType<typeof view>[] = [];
    let sync = 0;
    let longSync = 0;
    for (;;) {
      const s = r.nextSync();
      const e = s ?? (await r.next());
      if (!e) break;
      if (s) {
        sync++;
        if (e.header.name.length > 100 || e.header.linkname.length > 100) longSync++;
      }
      mixed.push(view(e));
    }
    assert.deepEqual(mixed, viaNext);
    assert.ok(viaNext.some((e) => e.header.name.endsWith('f'.repeat(40)) && e.header.name.length > 100));
    assert.ok(viaNext.some((e) => e.header.linkname.length > 100), 'a long link target');
    assert.ok(longSync >= 3, `long-name entries read without waiting (${longSync} of ${sync})`);
  } finally {
    t.cleanup();
  }
});

test('reader over a Node Readable; close() releases it', async () => {
  const w = new TarWriter();
  const bytes = collect(w);
  for (let i = 0; i < 20; i++) await w.writeEntry({ name: `f${i}`, size: 1000 }, Buffer.alloc(1000, i));
  await w.finish();
  const stream = Readable.from([await bytes], { objectMode: false });
  const reader = new TarReader(stream);
  const e = await reader.next();
  assert.equal(e?.header.name, 'f0');
  await reader.close();
  assert.ok(stream.destroyed);
});

test('writer: backpressure stops pulling the body while nobody reads', async () => {
  const w = new TarWriter({ highWaterMark: 64 * 1024 });
  let pulls = 0;
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 160; i++) {
      pulls++;
      yield Buffer.alloc(64 * 1024, i);
    }
  }
  let done = false;
  const writing = w.writeEntry({ name: 'big', size: 160 * 64 * 1024 }, body()).then(() => {
    done = true;
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, 'the write waits for a reader');
  assert.ok(pulls <= 3, `body pulled only up to the high-water mark (pulled ${pulls})`);
  const out = collect(w);
  await writing;
  await w.finish();
  const buf = await out;
  assert.equal(buf.length, 512 + 160 * 64 * 1024 + 1024);
  const entries = [];
  for await (const e of readTar([buf])) entries.push({ name: e.header.name, data: await e.readAll(20 * MiB) });
  assert.equal(entries[0]!.data.length, 160 * 64 * 1024);
  assert.equal(entries[0]!.data[64 * 1024 * 7], 7);
});

test('writer: large Buffer bodies are passed through, not copied', async () => {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const c of w) chunks.push(c as Buffer);
  })();
  const body = Buffer.alloc(MiB, 3);
  await w.writeEntry({ name: 'x', size: body.length }, body);
  await w.finish();
  await reading;
  assert.ok(chunks.some((c) => c === body), 'the body buffer itself is emitted');
  assert.ok(encodeTarHeader({ name: 'x', size: body.length }).equals(chunks[0]!));
});

test('copying a tar entry by entry (read → write) reproduces it', async () => {
  const w = new TarWriter();
  const src = collect(w);
  await w.writeGlobalHeader([{ key: 'comment', value: Buffer.from('g') }]);
  for (let i = 0; i < 5; i++) {
    await w.writeEntry({ name: `d/${'n'.repeat(i * 60)}${i}`, size: i * 700, mtime: { sec: BigInt(i), nsec: i * 3 } }, Buffer.alloc(i * 700, i));
  }
  await w.finish();
  const original = await src;
  const copy = new TarWriter();
  const out = collect(copy);
  const reader = new TarReader([original]);
  let globalsWritten = false;
  for await (const e of reader) {
    if (!globalsWritten) {
      await copy.writeGlobalHeader(e.header.globalPax);
      globalsWritten = true;
    }
    await copy.writeEntry(e.header, e.body);
  }
  await copy.finish();
  assert.ok((await out).equals(original));
});
