import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { encodeEaBuffer } from '../../../src/formats/wintar/ea.js';
import { encodeReparsePoint } from '../../../src/formats/wintar/reparse.js';
import { tempDir } from '../../helpers/tools.js';
import { dumpImage, expectedDump, stripIds, writeModel, type ModelEntry } from './model.js';

const T = (n: number): [bigint, bigint, bigint, bigint] => [
  132000000000000000n + BigInt(n),
  132000000000000001n + BigInt(n),
  132000000000000002n + BigInt(n),
  0xfedcba9876543210n,
];
const SD_A = Buffer.from('0100048014000000300000000000000000000000010100000000000512000000010100000000000512000000', 'hex');
const SD_B = Buffer.from('01000480140000002000000000000000000000000101000000000001000000000101000000000001000000', 'hex');

/** A tree covering every record kind. */
export function sampleModel(): Map<string, ModelEntry> {
  const m = new Map<string, ModelEntry>();
  const dir = (attrs = 0, n = 0, extra: Partial<ModelEntry> = {}): ModelEntry => ({ dir: true, attributes: attrs, times: T(n), ...extra });
  const file = (data: Buffer, attrs = 0x20, n = 0, extra: Partial<ModelEntry> = {}): ModelEntry => ({ dir: false, attributes: attrs, times: T(n), data, ...extra });
  m.set('Files', dir(0, 1, { sd: SD_A }));
  m.set('Files\\Windows', dir(0x4 | 0x2, 2, { sd: SD_A }));
  m.set('Files\\Windows\\empty.txt', file(Buffer.alloc(0), 0x20, 3, { sd: SD_A }));
  m.set('Files\\Windows\\small.dll', file(Buffer.from('MZ small file data'), 0x1 | 0x20, 4, { sd: SD_B }));
  const big = Buffer.alloc(3 * 4096 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  m.set('Files\\Windows\\big.bin', file(big, 0x20, 5, { sd: SD_A }));
  m.set('Files\\Windows\\dup-of-big.bin', file(Buffer.from(big), 0x20, 6, { sd: SD_A }));
  m.set('Files\\Windows\\ads.txt', file(Buffer.from('main'), 0x20, 7, { streams: { 'Zone.Identifier': Buffer.from('[ZoneTransfer]\r\nZoneId=3\r\n'), empty: Buffer.alloc(0), Big: big } }));
  m.set('Files\\Windows\\ea.txt', file(Buffer.from('x'), 0x20, 8, { ea: encodeEaBuffer([{ name: 'LX.UID', value: Buffer.from([1, 0, 0, 0]), flags: 0 }, { name: 'SECOND', value: Buffer.from('v'), flags: 0x80 }]) }));
  m.set('Files\\Windows\\ea2.txt', file(Buffer.from('y'), 0x20, 9, { ea: encodeEaBuffer([{ name: 'LX.UID', value: Buffer.from([1, 0, 0, 0]), flags: 0 }, { name: 'SECOND', value: Buffer.from('v'), flags: 0x80 }]) }));
  m.set('Files\\link-to-small.dll', { dir: false, attributes: 0, times: T(0), linkTo: 'Files\\Windows\\small.dll' });
  m.set('Files\\symlink', file(Buffer.alloc(0), 0x20, 10, { reparse: encodeReparsePoint({ target: 'Windows\\small.dll', isMountPoint: false }) }));
  m.set('Files\\junction', dir(0, 11, { reparse: encodeReparsePoint({ target: 'C:\\Windows', isMountPoint: true }) }));
  m.set('Files\\Ünïcödé 名前 🙂.txt', file(Buffer.from('unicode'), 0x20, 12));
  m.set('Files\\ß', file(Buffer.from('eszett'), 0x20, 13));
  m.set('Files\\sparse.vhd', file(Buffer.alloc(9000), 0x200 | 0x20, 14));
  m.set('Files\\notsparse-zero', file(Buffer.alloc(100), 0x20, 15));
  let p = 'Files';
  for (let i = 0; i < 40; i++) {
    p += `\\d${i}`;
    m.set(p, dir(0, 100 + i));
  }
  m.set(`${p}\\${'n'.repeat(255)}`, file(Buffer.from('deep'), 0x20, 200));
  m.set('Files\\Many', dir());
  for (let i = 0; i < 1100; i++) m.set(`Files\\Many\\f${(i * 7919) % 1100}_${i % 3 === 0 ? 'A' : 'a'}`, file(Buffer.from(`c${i % 50}`), 0x20, i));
  m.set('Hives', dir(0, 0));
  return m;
}

test('round trip: every record kind reads back as written', async () => {
  const d = tempDir('cim-rt-');
  try {
    const model = sampleModel();
    const w = await CimWriter.create(d.path, 'layer');
    await writeModel(w, model);
    const res = await w.commit();
    assert.equal(res.imagePath, join(d.path, 'layer.cim'));
    const r = await CimReader.open(res.imagePath);
    try {
      const got = await dumpImage(r);
      assert.deepEqual(stripIds(got), expectedDump(model));
      // Hard links share one file ID; distinct files do not.
      assert.equal(got.get('FILES\\LINK-TO-SMALL.DLL')!.fileId, got.get('FILES\\WINDOWS\\SMALL.DLL')!.fileId);
      assert.notEqual(got.get('FILES\\WINDOWS\\BIG.BIN')!.fileId, got.get('FILES\\WINDOWS\\DUP-OF-BIG.BIN')!.fileId);
      // Case-insensitive lookup through the upcase table.
      assert.equal((await r.readFile('files\\WINDOWS\\Small.DLL')).toString(), 'MZ small file data');
      assert.equal((await r.readFile('FILES/ünïcödé 名前 🙂.TXT')).toString(), 'unicode');
      assert.equal((await r.readFile('files/windows/ads.txt', 'zone.identifier')).toString(), '[ZoneTransfer]\r\nZoneId=3\r\n');
      // Sparse: the all-zero stream of a SPARSE_FILE file is stored as a sparse stream.
      const sp = await r.stat('Files\\sparse.vhd');
      assert.equal(sp.sparse, true);
      assert.equal(sp.size, 9000n);
      assert.equal((await r.stat('Files\\notsparse-zero')).sparse, false);
      // Directory listing is in upcase order.
      const names = (await r.readdir('Files\\Many')).map((e) => e.name);
      assert.equal(names.length, 1100);
      const up = names.map((n) => n.toUpperCase());
      assert.deepEqual(up, [...up].sort());
      await assert.rejects(r.stat('Files\\nope'), (e: Error & { kind?: string }) => e.kind === 'NotFound');
      await assert.rejects(r.stat('Files\\Windows\\small.dll\\x'), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    } finally {
      await r.close();
    }
  } finally {
    d.cleanup();
  }
});

test('dedup: identical SDs, EAs, reparse buffers and file data are stored once', async () => {
  const d = tempDir('cim-dedup-');
  try {
    const model = sampleModel();
    const w = await CimWriter.create(d.path, 'layer');
    await writeModel(w, model);
    await w.commit();
    const r = await CimReader.open(join(d.path, 'layer.cim'));
    try {
      const small = await r.fileRecord(await r.resolve('Files\\Windows\\small.dll'));
      const files = await r.fileRecord(await r.resolve('Files'));
      const win = await r.fileRecord(await r.resolve('Files\\Windows'));
      const big1 = await r.fileRecord(await r.resolve('Files\\Windows\\big.bin'));
      const big2 = await r.fileRecord(await r.resolve('Files\\Windows\\dup-of-big.bin'));
      const ea1 = await r.fileRecord(await r.resolve('Files\\Windows\\ea.txt'));
      const ea2 = await r.fileRecord(await r.resolve('Files\\Windows\\ea2.txt'));
      assert.equal(files.sdOffset, win.sdOffset);
      assert.notEqual(files.sdOffset, small.sdOffset);
      assert.equal(big1.defaultStream.dataOffset, big2.defaultStream.dataOffset);
      assert.equal(ea1.eaOffset, ea2.eaOffset);
      // The 1100 files hold only 50 distinct contents; the small-data region proves it.
      const smallRegion = readdirSync(d.path).find((f) => /^region_.*_2$/.test(f))!;
      assert.ok(readFileSync(join(d.path, smallRegion)).length < 40 + 60 * 8 + 200, 'small-data region holds each content once');
      // Page-aligned data region: big.bin data starts on a 4096 boundary.
      assert.equal(Number(big1.defaultStream.dataOffset & 0xffffffffffffn) % 4096, 0);
    } finally {
      await r.close();
    }
  } finally {
    d.cleanup();
  }
});

test('determinism: two runs give identical files and names', async () => {
  const a = tempDir('cim-det-a-');
  const b = tempDir('cim-det-b-');
  try {
    for (const d of [a, b]) {
      const w = await CimWriter.create(d.path, 'layer');
      await writeModel(w, sampleModel());
      await w.commit();
      const w2 = await CimWriter.create(d.path, 'child', { parentName: 'layer' });
      await w2.addFile('Files\\new.txt', { attributes: 0x20 }, Buffer.from('new'));
      await w2.commit();
    }
    const la = readdirSync(a.path).sort();
    const lb = readdirSync(b.path).sort();
    assert.deepEqual(la, lb);
    assert.equal(la.length, 2 + 2 * 3 * 2);
    for (const f of la) assert.ok(readFileSync(join(a.path, f)).equals(readFileSync(join(b.path, f))), `${f} differs`);
    // A random GUID is possible on request and changes the names.
    const w = await CimWriter.create(b.path, 'rnd', { guid: 'random' });
    const res = await w.commit();
    assert.notEqual(res.guid, (await CimWriter.create(a.path, 'rnd').then((x) => x.commit())).guid);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});
