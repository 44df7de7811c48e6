/**
 * Property tests (fast-check) for the tar codec: random headers (Unicode and very long
 * names, binary PAX values, big ids, sub-second and negative times, every type) written and
 * read back give the same headers and data; writing twice, and re-writing what was read,
 * give identical bytes; Python's tarfile agrees on a sample.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { tempDir } from '../../helpers/tools.js';
import {
  TarReader,
  TarWriter,
  readTar,
  type TarEntry,
  formatPaxTime,
  type PaxRecord,
  type TarHeaderInput,
  type TarTime,
  type TarType,
} from '../../../src/formats/tar/index.js';
import { collect, hex, pyDumpBuffer, sha256 } from './helpers.js';

interface Item {
  header: TarHeaderInput;
  data: Buffer;
}

const segment = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
  fc.integer({ min: 1, max: 130 }).map((n) => 'x'.repeat(n)),
);
const nameArb = fc
  .array(segment, { minLength: 1, maxLength: 5 })
  .map((parts) => parts.join('/').replace(/\0/g, '_'))
  .filter((s) => s.length > 0 && !s.endsWith('/') && !s.includes('PaxHeaders.0'));

const timeArb: fc.Arbitrary<TarTime> = fc.record({
  sec: fc.oneof(fc.bigInt({ min: 0n, max: 8n ** 11n - 1n }), fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n })),
  nsec: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999_999_999 })),
}).map(({ sec, nsec }) => ({ sec, nsec })); // plain objects (fc.record's have a null prototype)
const idArb = fc.oneof(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const userArb = fc.oneof(fc.constant(''), fc.string({ unit: 'grapheme-ascii', maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 12 })).map((s) =>
  s.replace(/\0/g, '_'),
);
const keyArb = fc
  .string({ unit: 'binary', minLength: 1, maxLength: 20 })
  .map((s) => `X.${s.replace(/[=\0\n]/g, '_')}`);
const recordArb: fc.Arbitrary<PaxRecord> = fc.record({
  key: keyArb,
  value: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
}).map(({ key, value }) => ({ key, value }));
const typeArb = fc.constantFrom<TarType>('file', 'file', 'file', 'dir', 'symlink', 'link', 'char', 'block', 'fifo', 'contiguous');

const itemArb: fc.Arbitrary<Item> = fc
  .record({
    name: nameArb,
    type: typeArb,
    linkname: nameArb,
    mode: fc.integer({ min: 0, max: 0o7777777 }),
    uid: idArb,
    gid: idArb,
    mtime: timeArb,
    atime: fc.option(timeArb, { nil: undefined }),
    ctime: fc.option(timeArb, { nil: undefined }),
    uname: userArb,
    gname: userArb,
    devmajor: fc.integer({ min: 0, max: 0o7777777 }),
    devminor: fc.integer({ min: 0, max: 0o7777777 }),
    pax: fc.array(recordArb, { maxLength: 4 }),
    explicitPath: fc.boolean(),
    data: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 500, maxLength: 3000 })).map((u) => Buffer.from(u)),
  })
  .map((r) => {
    const hasData = r.type === 'file' || r.type === 'contiguous';
    const hasLink = r.type === 'symlink' || r.type === 'link';
    const data = hasData ? r.data : Buffer.alloc(0);
    const pax = r.explicitPath ? [...r.pax, { key: 'path', value: Buffer.from(r.name, 'utf8') }] : r.pax;
    const header: TarHeaderInput = {
      name: r.name,
      type: r.type,
      linkname: hasLink ? r.linkname : '',
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      size: data.length,
      mtime: r.mtime,
      uname: r.uname,
      gname: r.gname,
      devmajor: r.devmajor,
      devminor: r.devminor,
      pax,
    };
    if (r.atime) header.atime = r.atime;
    if (r.ctime) header.ctime = r.ctime;
    return { header, data };
  });

async function writeArchive(items: Item[]): Promise<Buffer> {
  const w = new TarWriter({ highWaterMark: 4096 });
  const out = collect(w);
  for (const it of items) await w.writeEntry(it.header, it.data);
  await w.finish();
  return out;
}

async function* randomChunks(buf: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let i = 0;
  let k = 0;
  while (i < buf.length) {
    const n = sizes[k++ % sizes.length]!;
    yield buf.subarray(i, i + n);
    i += n;
  }
}

/** True when a name fits the USTAR name field, directly or split at a '/' into prefix/name. */
function fitsUstar(name: string): boolean {
  const b = Buffer.from(name, 'utf8');
  if (b.length <= 100) return true;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x2f && i <= 155 && b.length - i - 1 <= 100 && b.length - i - 1 >= 1) return true;
  }
  return false;
}

/** The writer's documented rule, stated independently: which keys it must add. */
function expectedAutoKeys(h: TarHeaderInput): string[] {
  const given = new Set((h.pax ?? []).map((r) => r.key));
  const keys: string[] = [];
  const need = (k: string, cond: boolean): void => {
    if (cond && !given.has(k)) keys.push(k);
  };
  const mt = h.mtime as TarTime;
  need('path', !fitsUstar(h.name));
  need('linkpath', Buffer.byteLength(h.linkname ?? '', 'utf8') > 100);
  need('size', (h.size ?? 0) > 0o77777777777);
  need('uid', (h.uid ?? 0) > 0o7777777);
  need('gid', (h.gid ?? 0) > 0o7777777);
  need('uname', Buffer.byteLength(h.uname ?? '', 'utf8') > 32);
  need('gname', Buffer.byteLength(h.gname ?? '', 'utf8') > 32);
  need('mtime', mt.nsec !== 0 || mt.sec < 0n || mt.sec > 0o77777777777n);
  need('atime', h.atime !== undefined);
  need('ctime', h.ctime !== undefined);
  return keys;
}

let tmp: { path: string; cleanup: () => void };
before(() => {
  tmp = tempDir('winsnap-tar-prop-');
});
after(() => tmp.cleanup());

test('write → read gives the same headers, records and data; read → write gives the same bytes', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(itemArb, { minLength: 1, maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 8 }),
      async (items, sizes) => {
        const bytes = await writeArchive(items);
        assert.ok((await writeArchive(items)).equals(bytes), 'deterministic');
        const back: Item[] = [];
        let i = 0;
        for await (const e of readTar(randomChunks(bytes, sizes))) {
          const want = items[i++]!.header;
          const h = e.header;
          assert.equal(h.name, want.name);
          assert.equal(h.type, want.type);
          assert.equal(h.linkname, want.linkname);
          assert.equal(h.mode, want.mode);
          assert.equal(h.uid, want.uid);
          assert.equal(h.gid, want.gid);
          assert.equal(h.uname, want.uname);
          assert.equal(h.gname, want.gname);
          assert.equal(h.size, want.size);
          assert.equal(h.devmajor, want.devmajor);
          assert.equal(h.devminor, want.devminor);
          assert.deepEqual(h.mtime, want.mtime);
          assert.deepEqual(h.atime, want.atime);
          assert.deepEqual(h.ctime, want.ctime);
          const auto = expectedAutoKeys(want);
          assert.deepEqual(
            h.pax.map((r) => r.key),
            [...auto, ...(want.pax ?? []).map((r) => r.key)],
            'auto records in front, caller records in order',
          );
          (want.pax ?? []).forEach((r, k) => assert.ok(h.pax[auto.length + k]!.value.equals(r.value), `record ${r.key} byte for byte`));
          const data = await e.readAll();
          back.push({ header: h, data });
        }
        assert.equal(i, items.length);
        back.forEach((b, k) => assert.ok(b.data.equals(items[k]!.data)));
        // Re-encoding what was read (records now explicit) reproduces the archive exactly.
        assert.ok((await writeArchive(back)).equals(bytes), 'read → write is byte-identical');
      },
    ),
    { numRuns: 150 },
  );
});

test('nextSync (buffered entries without awaiting) mixed with next() reads exactly what next() alone reads', async () => {
  const view = (e: TarEntry, data: Buffer) => ({ header: e.header, offset: e.offset, headerOffset: e.headerOffset, dataOffset: e.dataOffset, data });
  await fc.assert(
    fc.asyncProperty(
      fc.array(itemArb, { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 8 }),
      fc.boolean(),
      async (items, sizes, useBuffered) => {
        const bytes = await writeArchive(items);
        const plain: ReturnType<typeof view>[] = [];
        for await (const e of readTar(randomChunks(bytes, sizes))) plain.push(view(e, await e.readAll()));
        const mixed: ReturnType<typeof view>[] = [];
        const r = new TarReader(randomChunks(bytes, sizes));
        for (;;) {
          const e = r.nextSync() ?? (await r.next());
          if (!e) break;
          mixed.push(view(e, (useBuffered ? e.bufferedBody?.() : undefined) ?? (await e.readAll())));
        }
        assert.deepEqual(mixed, plain);
        assert.deepEqual(r.end, { endOffset: bytes.length, entries: items.length, loneZeroBlock: false });
      },
    ),
    { numRuns: 150 },
  );
});

test("Python's tarfile agrees with what we wrote (sample)", async () => {
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(itemArb, { minLength: 1, maxLength: 8 }), async (items) => {
      const bytes = await writeArchive(items);
      const py = pyDumpBuffer(tmp.path, `p${run++}.tar`, bytes);
      assert.equal(py.members.length, items.length);
      items.forEach((it, k) => {
        const m = py.members[k]!;
        const h = it.header;
        assert.equal(m.name, hex(h.name), 'name');
        assert.equal(m.linkname, hex(h.linkname ?? ''), 'linkname');
        assert.equal(m.size, h.size);
        assert.equal(m.uid, h.uid);
        assert.equal(m.gid, h.gid);
        assert.equal(m.uname, hex(h.uname ?? ''));
        assert.equal(m.gname, hex(h.gname ?? ''));
        assert.equal(m.mode, h.mode);
        const recs = new Map<string, string>();
        const auto = expectedAutoKeys(h);
        const mt = h.mtime as TarTime;
        const autoValue: Record<string, string> = {
          path: h.name,
          linkpath: h.linkname ?? '',
          size: String(h.size),
          uid: String(h.uid),
          gid: String(h.gid),
          uname: h.uname ?? '',
          gname: h.gname ?? '',
          mtime: formatPaxTime(mt),
          atime: h.atime ? formatPaxTime(h.atime) : '',
          ctime: h.ctime ? formatPaxTime(h.ctime) : '',
        };
        for (const key of auto) recs.set(key, hex(autoValue[key]!));
        for (const r of h.pax ?? []) recs.set(r.key, r.value.toString('hex'));
        assert.deepEqual(m.pax, [...recs.entries()], 'PAX records');
        if (m.sha256 !== undefined) assert.equal(m.sha256, sha256(it.data));
      });
    }),
    { numRuns: 15 },
  );
});
