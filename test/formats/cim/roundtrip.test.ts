import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { tempDir } from '../../helpers/tools.js';
import { dumpImage, expectedDump, sampleModel, stripIds, writeModel } from './model.js';

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
      assert.equal(got.get('Files\\link-to-small.dll')!.fileId, got.get('Files\\Windows\\small.dll')!.fileId);
      assert.notEqual(got.get('Files\\Windows\\big.bin')!.fileId, got.get('Files\\Windows\\dup-of-big.bin')!.fileId);
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
