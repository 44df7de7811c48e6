/**
 * Property: a Windows entry written as a tar header (through TarWriter) and read back
 * (through TarReader and windowsEntryFromTar) is the same entry, with the documented
 * normalisations: EAs come back in key order with flags 0, extra records in key order,
 * the mode defaults to backuptar's type bits, symlinks gain their reparse buffer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TarWriter, readTar, type PaxRecord } from '../../../src/formats/tar/index.js';
import {
  defaultWindowsMode,
  encodeReparsePoint,
  tarHeaderFromWindowsEntry,
  windowsEntryFromTar,
  type WindowsEntry,
  type WindowsEntryKind,
} from '../../../src/formats/wintar/index.js';

const seg = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 10 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }),
  fc.integer({ min: 1, max: 120 }).map((n) => 'w'.repeat(n)),
).map((s) => s.replace(/[\0/:]/g, '_'));
const path = fc.array(seg, { minLength: 1, maxLength: 4 }).map((p) => `Files/${p.join('/')}`).filter((s) => !/(^|\/)\.wh\./.test(s));
const filetime = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 116444736000000000n, max: 140000000000000000n }));
const eaName = fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).map((s) => s.replace(/[\0=\n]/g, '_'));
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((u) => Buffer.from(u));

const entryArb: fc.Arbitrary<WindowsEntry> = fc
  .record({
    kind: fc.constantFrom<WindowsEntryKind>('file', 'file', 'dir', 'symlink', 'junction', 'hardlink', 'ads', 'whiteout'),
    name: path,
    stream: seg,
    dataSuffix: fc.boolean(),
    attributes: fc.oneof(fc.constantFrom(0, 0x10, 0x20, 0x410, 0x80), fc.integer({ min: 0, max: 0xffffffff })),
    creationTime: filetime,
    lastAccessTime: filetime,
    lastWriteTime: filetime,
    changeTime: filetime,
    sd: fc.option(bytes(120), { nil: undefined }),
    sddl: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
    eas: fc.uniqueArray(fc.record({ name: eaName, value: bytes(100) }), { selector: (e) => e.name, maxLength: 4 }),
    target: fc.oneof(path, fc.constantFrom('C:\\Windows', '..\\x', '\\\\srv\\share', '\\\\?\\Volume{1}\\')),
    size: fc.integer({ min: 0, max: 2 ** 40 }),
    mode: fc.option(fc.integer({ min: 0, max: 0o7777777 }), { nil: undefined }),
    extra: fc.uniqueArray(fc.record({ key: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 10 }).map((k) => `X.${k.replace(/[=\n\0]/g, '_')}`), value: bytes(50) }), {
      selector: (r) => r.key,
      maxLength: 3,
    }),
  })
  .map((r) => {
    const e: WindowsEntry = {
      name: r.name,
      kind: r.kind,
      attributes: r.attributes,
      creationTime: r.creationTime,
      lastAccessTime: r.lastAccessTime,
      lastWriteTime: r.lastWriteTime,
      changeTime: r.changeTime,
      eas: r.eas.map((x) => ({ name: x.name, flags: 0, value: x.value })),
      size: r.kind === 'file' || r.kind === 'ads' ? r.size : 0,
      extraPax: r.extra.map((x) => ({ key: x.key, value: x.value })),
    };
    if (r.sd) e.securityDescriptor = r.sd;
    else if (r.sddl !== undefined) e.sddl = r.sddl;
    if (r.mode !== undefined) e.mode = r.mode;
    if (r.kind === 'symlink' || r.kind === 'junction' || r.kind === 'hardlink') e.linkTarget = r.target;
    if (r.kind === 'ads') e.name = `${r.name}:${r.stream}${r.dataSuffix ? ':$DATA' : ''}`;
    if (r.kind === 'whiteout') e.name = r.name.replace(/[^/]+$/, (b) => `.wh.${b}`);
    return e;
  });

/** A body generator that yields `size` zero bytes without allocating them all. */
async function* zeros(size: number): AsyncGenerator<Buffer> {
  const chunk = Buffer.alloc(1 << 16);
  for (let left = size; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

const byKey = (a: { key: string }, b: { key: string }) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));

test('property: Windows entry → tar → Windows entry is the identity (up to documented normalisation)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 5 }), async (entries) => {
      // Keep the bodies small: the property is about headers, sizes up to 1 TiB are faked as small.
      const small = entries.map((e) => ({ ...e, size: e.size % 5000 }));
      const w = new TarWriter();
      const parts: Buffer[] = [];
      const reading = (async () => {
        for await (const c of w) parts.push(c);
      })();
      for (const e of small) await w.writeEntry(tarHeaderFromWindowsEntry(e), e.size ? zeros(e.size) : undefined);
      await w.finish();
      await reading;
      let i = 0;
      for await (const t of readTar([Buffer.concat(parts)])) {
        const want = small[i++]!;
        const got = windowsEntryFromTar(t.header, { offset: t.headerOffset });
        assert.equal(got.name, want.name);
        assert.equal(got.kind, want.kind);
        if (want.kind === 'whiteout') {
          assert.equal(got.whiteoutTarget, want.name.replace(/\.wh\.([^/]*)$/, '$1'));
          assert.equal(got.mode, 0);
          // Bare USTAR unless the name needs a PAX path record (as Go would write it).
          assert.ok(t.header.pax.every((r) => r.key === 'path'));
          if (/^[\x00-\x7f]{1,100}$/.test(want.name)) assert.deepEqual(t.header.pax, []);
          continue;
        }
        assert.equal(got.attributes, want.attributes);
        assert.equal(got.creationTime, want.creationTime);
        assert.equal(got.lastAccessTime, want.lastAccessTime);
        assert.equal(got.lastWriteTime, want.lastWriteTime);
        assert.equal(got.changeTime, want.changeTime);
        assert.deepEqual(got.securityDescriptor, want.securityDescriptor);
        assert.equal(got.sddl, want.sddl);
        assert.deepEqual(
          got.eas,
          [...want.eas].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name))),
        );
        assert.deepEqual(got.extraPax, [...want.extraPax].sort(byKey) as PaxRecord[]);
        assert.equal(got.size, want.size);
        assert.equal(got.mode, want.mode ?? defaultWindowsMode(want.kind, want.attributes));
        assert.equal(got.linkTarget, want.linkTarget);
        if (want.kind === 'symlink' || want.kind === 'junction') {
          assert.ok(got.reparseBuffer!.equals(encodeReparsePoint({ target: want.linkTarget!.replace(/\//g, '\\'), isMountPoint: want.kind === 'junction' })));
        }
        if (want.kind === 'ads') {
          const [, stream] = /:([^:]+)(?::\$DATA)?$/.exec(want.name)!;
          assert.equal(got.adsStream, stream);
          assert.equal(got.adsBase, want.name.slice(0, want.name.length - want.name.split('/').pop()!.length) + want.name.split('/').pop()!.split(':')[0]);
        }
        // The records are sorted by key, as Go's archive/tar writes them.
        const keys = t.header.pax.map((r) => Buffer.from(r.key));
        for (let k = 1; k < keys.length; k++) assert.ok(Buffer.compare(keys[k - 1]!, keys[k]!) <= 0, 'records sorted');
      }
      assert.equal(i, small.length);
    }),
    { numRuns: 150 },
  );
});
