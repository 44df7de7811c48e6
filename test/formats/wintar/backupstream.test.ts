/**
 * Win32 backup streams: WIN32_STREAM_ID headers laid out by hand (StreamId u32, Attributes
 * u32, Size u64, NameSize u32, UTF-16LE name, data; no padding; sparse blocks carry a u64
 * offset inside Size), streaming and in-memory decoding, and the stream order BackupWrite
 * gets for a Windows entry (windows-layer-formats.md §1.4–1.5).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WinsnapError } from '../../../src/services/errdefs.js';
import {
  BackupStreamId,
  decodeBackupStream,
  decodeEaBuffer,
  decodeReparsePoint,
  encodeBackupStream,
  readBackupStream,
  windowsEntryBackupStream,
  type BackupStreamInput,
  type WindowsEntry,
} from '../../../src/formats/wintar/index.js';

async function collect(src: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(c);
  return Buffer.concat(parts);
}

const VECTOR = Buffer.from(
  [
    // DATA, no name, 5 bytes
    '01000000', '00000000', '0500000000000000', '00000000', '68656c6c6f',
    // ALTERNATE_DATA ":s:$DATA" (8 units = 16 bytes), 2 bytes
    '04000000', '00000000', '0200000000000000', '10000000', Buffer.from(':s:$DATA', 'utf16le').toString('hex'), '6869',
    // SPARSE_BLOCK at offset 4096 with 3 data bytes: Size = 8 + 3, sparse attribute 8
    '09000000', '08000000', '0b00000000000000', '00000000', '0010000000000000', '414243',
  ].join(''),
  'hex',
);

test('encode and decode a hand-built backup stream', async () => {
  const streams: BackupStreamInput[] = [
    { id: BackupStreamId.DATA, data: Buffer.from('hello') },
    { id: BackupStreamId.ALTERNATE_DATA, name: ':s:$DATA', data: Buffer.from('hi') },
    { id: BackupStreamId.SPARSE_BLOCK, attributes: 8, sparseOffset: 4096, data: Buffer.from('ABC') },
  ];
  assert.equal((await collect(encodeBackupStream(streams))).toString('hex'), VECTOR.toString('hex'));
  const recs = decodeBackupStream(VECTOR);
  assert.deepEqual(
    recs.map((r) => [r.header, r.offset, r.sparseOffset, r.data.toString()]),
    [
      [{ id: 1, attributes: 0, size: 5, name: '' }, 0, undefined, 'hello'],
      [{ id: 4, attributes: 0, size: 2, name: ':s:$DATA' }, 25, undefined, 'hi'],
      [{ id: 9, attributes: 8, size: 11, name: '' }, 63, 4096, 'ABC'],
    ],
  );
});

test('streaming decode: byte-at-a-time input, unread data skipped', async () => {
  async function* bytes(): AsyncGenerator<Buffer> {
    for (let i = 0; i < VECTOR.length; i++) yield VECTOR.subarray(i, i + 1);
  }
  const seen: [number, string, number | undefined][] = [];
  for await (const part of readBackupStream(bytes())) {
    // Leave the DATA stream unread; read the others.
    seen.push([part.header.id, part.header.id === 1 ? '' : (await part.readAll()).toString(), part.sparseOffset]);
  }
  assert.deepEqual(seen, [
    [1, '', undefined],
    [4, 'hi', undefined],
    [9, 'ABC', 4096],
  ]);
});

const streamArb: fc.Arbitrary<BackupStreamInput> = fc.oneof(
  fc.record({
    id: fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 10),
    attributes: fc.integer({ min: 0, max: 0xffffffff }),
    name: fc.string({ unit: 'binary', maxLength: 20 }),
    data: fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
  }),
  fc.record({
    id: fc.constant(9),
    attributes: fc.constant(8),
    name: fc.constant(''),
    sparseOffset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    data: fc.uint8Array({ maxLength: 600 }).map((u) => Buffer.from(u)),
  }),
);

test('property: decode(encode(streams)) = streams, in memory and streaming', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(streamArb, { maxLength: 6 }), fc.integer({ min: 1, max: 50 }), async (streams, chunk) => {
      const buf = await collect(encodeBackupStream(streams));
      const expect = streams.map((s) => [s.id, s.attributes, s.name, s.sparseOffset, (s.data as Buffer).toString('hex')]);
      assert.deepEqual(
        decodeBackupStream(buf).map((r) => [r.header.id, r.header.attributes, r.header.name, r.sparseOffset, r.data.toString('hex')]),
        expect,
      );
      async function* chunks(): AsyncGenerator<Buffer> {
        for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk);
      }
      const streamed = [];
      for await (const p of readBackupStream(chunks())) {
        streamed.push([p.header.id, p.header.attributes, p.header.name, p.sparseOffset, (await p.readAll()).toString('hex')]);
      }
      assert.deepEqual(streamed, expect);
    }),
    { numRuns: 200 },
  );
});

test('malformed backup streams: truncation, odd or oversized names, absurd sizes, short sparse blocks', async () => {
  const bad = async (buf: Buffer, re: RegExp) => {
    assert.throws(() => decodeBackupStream(buf), (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message) && typeof e.context.offset === 'number');
    await assert.rejects(
      (async () => {
        for await (const p of readBackupStream([buf])) await p.readAll();
      })(),
      (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && typeof e.context.offset === 'number',
    );
  };
  await bad(VECTOR.subarray(0, 10), /truncated stream header at offset 0 \(10 of 20 bytes\)/);
  await bad(VECTOR.subarray(0, 25 + 30), /truncated stream name at offset 45/);
  await bad(VECTOR.subarray(0, 23), /stream at offset 0 needs 5 data bytes, 3 left|truncated/);
  const odd = Buffer.from(VECTOR);
  odd.writeUInt32LE(15, 25 + 16);
  await bad(odd, /odd name size 15/);
  const hugeName = Buffer.from(VECTOR);
  hugeName.writeUInt32LE(1 << 30, 16);
  await bad(hugeName, /name size 1073741824 over the limit/);
  const absurd = Buffer.from(VECTOR);
  absurd.writeBigUInt64LE(1n << 60n, 8);
  await bad(absurd, /absurd size 1152921504606846976/);
  const shortSparse = Buffer.from(VECTOR);
  shortSparse.writeBigUInt64LE(4n, 63 + 8);
  await bad(shortSparse, /sparse block at offset 63 has size 4, less than its 8-byte offset/);
});

test('a Windows entry becomes SECURITY, EA, REPARSE, DATA, ALTERNATE_DATA streams in that order', async () => {
  const sd = Buffer.from('0100048000000000000000000000000000000000', 'hex');
  const base: WindowsEntry = {
    name: 'Files/x',
    kind: 'file',
    attributes: 0x20,
    creationTime: 0n,
    lastAccessTime: 0n,
    lastWriteTime: 0n,
    changeTime: 0n,
    securityDescriptor: sd,
    eas: [{ name: 'E', flags: 0, value: Buffer.from('v') }],
    size: 4,
    extraPax: [],
  };
  const file = decodeBackupStream(await collect(windowsEntryBackupStream(base, Buffer.from('data'), [{ name: 'zone', size: 2, data: Buffer.from('ZI') }])));
  assert.deepEqual(
    file.map((r) => [r.header.id, r.header.name]),
    [
      [3, ''],
      [2, ''],
      [1, ''],
      [4, ':zone:$DATA'],
    ],
  );
  assert.ok(file[0]!.data.equals(sd));
  assert.deepEqual(decodeEaBuffer(file[1]!.data), base.eas);
  assert.equal(file[2]!.data.toString(), 'data');
  const link = decodeBackupStream(
    await collect(windowsEntryBackupStream({ ...base, kind: 'junction', size: 0, securityDescriptor: undefined, eas: [], linkTarget: 'C:\\t' })),
  );
  assert.deepEqual(link.map((r) => r.header.id), [8]);
  assert.equal(decodeReparsePoint(link[0]!.data).substituteName, '\\??\\C:\\t');
});
