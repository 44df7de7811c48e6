import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader, cimImageFiles } from '../../../src/formats/cim/reader.js';
import { tempDir } from '../../helpers/tools.js';
import { dumpImage, expectedDump, sampleModel, stripIds, writeModel, type ModelEntry } from './model.js';

/** Applies the same operations to a writer and to an expected model (plain map). */
class Ops {
  constructor(
    readonly w: CimWriter,
    readonly m: Map<string, ModelEntry>,
  ) {}
  private key(path: string): string | undefined {
    return [...this.m.keys()].find((k) => k.toUpperCase() === path.toUpperCase());
  }
  async add(path: string, e: ModelEntry): Promise<void> {
    const k = this.key(path);
    const old = k === undefined ? undefined : this.m.get(k);
    if (k !== undefined && !(old!.dir && e.dir)) this.dropUnder(k, old!.dir);
    if (k !== undefined) this.m.delete(k);
    const one = new Map([[path, e]]);
    await writeModel(this.w, one);
    // Keep insertion order irrelevant: expectedDump is keyed by path.
    this.m.set(path, e);
  }
  private dropUnder(k: string, dir: boolean): void {
    if (!dir) return;
    const pre = `${k.toUpperCase()}\\`;
    for (const x of [...this.m.keys()]) if (x.toUpperCase().startsWith(pre)) this.m.delete(x);
  }
  async del(path: string): Promise<void> {
    const k = this.key(path)!;
    assert.ok(k, `${path} in model`);
    this.dropUnder(k, this.m.get(k)!.dir);
    this.m.delete(k);
    await this.w.deletePath(path);
  }
  async link(newPath: string, existing: string): Promise<void> {
    const target = this.m.get(this.key(existing)!)!;
    const k = this.key(newPath);
    if (k !== undefined) this.m.delete(k);
    this.m.set(newPath, target.linkTo !== undefined ? this.m.get(target.linkTo)! : target);
    await this.w.createHardLink(newPath, existing);
  }
  async ads(path: string, name: string, data: Buffer): Promise<void> {
    const e = this.m.get(this.key(path)!)!;
    const target = e.linkTo !== undefined ? this.m.get(e.linkTo)! : e;
    target.streams = { ...(target.streams ?? {}), [name]: data };
    await this.w.createAlternateStream(`${path}:${name}`, data.length);
    await this.w.write(data);
    await this.w.closeStream();
  }
}

const f = (s: string, attrs = 0x20): ModelEntry => ({ dir: false, attributes: attrs, times: [1n, 2n, 3n, 4n], data: Buffer.from(s) });
const dir = (attrs = 0): ModelEntry => ({ dir: true, attributes: attrs, times: [5n, 6n, 7n, 8n] });

async function check(path: string, model: Map<string, ModelEntry>): Promise<Map<string, { fileId: number }>> {
  const r = await CimReader.open(path);
  try {
    const got = await dumpImage(r);
    assert.deepEqual(stripIds(got), expectedDump(model), `${path} matches its model`);
    return got;
  } finally {
    await r.close();
  }
}

test('forked CIMs three deep: adds, replacements and deletions on top of parents', async () => {
  const d = tempDir('cim-fork-');
  try {
    const base = sampleModel();
    const w0 = await CimWriter.create(d.path, 'l0');
    await writeModel(w0, base);
    await w0.commit();
    const snapshots: Map<string, ModelEntry>[] = [structuredCloneModel(base)];

    // Layer 1.
    const m1 = structuredCloneModel(base);
    const w1 = await CimWriter.create(d.path, 'l1', { parentName: 'l0' });
    const o1 = new Ops(w1, m1);
    await o1.del('Files\\Windows\\big.bin');
    await o1.del('Files\\d0\\d1');
    await o1.add('Files\\Windows\\small.dll', f('replaced small in l1'));
    await o1.add('Files\\new-in-l1.txt', f('l1 data'));
    await o1.add('Files\\Many', dir(0x2)); // dir over dir keeps entries
    await o1.add('Files\\notsparse-zero', dir()); // dir over file
    await o1.add('Files\\notsparse-zero\\inside', f('inside'));
    await o1.link('Files\\link-to-new', 'Files\\new-in-l1.txt');
    await o1.link('Hives\\link-to-parent-ads', 'Files\\Windows\\ads.txt');
    await o1.ads('Files\\Windows\\ea.txt', 'added', Buffer.from('ads on an inherited file'));
    await w1.commit();
    snapshots.push(structuredCloneModel(m1));

    // Layer 2.
    const m2 = structuredCloneModel(m1);
    const w2 = await CimWriter.create(d.path, 'l2', { parentName: 'l1' });
    const o2 = new Ops(w2, m2);
    await o2.del('Files\\Many');
    await o2.add('Files\\Windows', f('file over dir'));
    await o2.add('Files\\new-in-l1.txt', f('l2 replaces l1 file'));
    await o2.add('Hives\\SYSTEM_BASE', f('regf'.padEnd(5000, '.')));
    await w2.commit();
    snapshots.push(structuredCloneModel(m2));

    // Layer 3.
    const m3 = structuredCloneModel(m2);
    const w3 = await CimWriter.create(d.path, 'l3', { parentName: 'l2' });
    const o3 = new Ops(w3, m3);
    await o3.add('Files\\Windows', dir());
    await o3.add('Files\\Windows\\again.txt', f('back'));
    await o3.del('Hives\\link-to-parent-ads');
    await o3.add('Files', dir(0x4)); // root-level dir replaced with dir: all children kept
    await w3.commit();
    snapshots.push(structuredCloneModel(m3));

    const dumps = [];
    for (const [i, m] of snapshots.entries()) dumps.push(await check(join(d.path, `l${i}.cim`), m));
    // l1: the new link and its target are one file; l2 replaced one name only.
    assert.equal(dumps[1]!.get('Files\\link-to-new')!.fileId, dumps[1]!.get('Files\\new-in-l1.txt')!.fileId);
    assert.notEqual(dumps[2]!.get('Files\\link-to-new')!.fileId, dumps[2]!.get('Files\\new-in-l1.txt')!.fileId);

    // Headers: each image lists all ancestors' region sets, oldest first.
    const img = (n: number): Buffer => readFileSync(join(d.path, `l${n}.cim`));
    for (let n = 0; n < 4; n++) assert.equal(img(n).readUInt16LE(70), n, `l${n} ParentCount`);
    for (let n = 1; n < 4; n++) {
      for (let p = 0; p < n; p++) assert.ok(img(n).subarray(72 + 24 * p, 72 + 24 * p + 16).equals(img(p).subarray(32, 48)), `l${n} parent ${p} is l${p}'s set`);
    }
    // Unchanged file data is not copied into a child's data regions.
    const guid = (n: number): string => {
      const b = img(n);
      const h = (x: number, w: number): string => x.toString(16).padStart(w, '0');
      const d4 = b.subarray(40, 48).toString('hex');
      return `${h(b.readUInt32LE(32), 8)}-${h(b.readUInt16LE(36), 4)}-${h(b.readUInt16LE(38), 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
    };
    // Each image's own files: the .cim, its 3 region and 3 object-ID files (not the parents').
    const own = await cimImageFiles(join(d.path, 'l2.cim'));
    assert.equal(own.length, 7);
    assert.ok(own.every((p) => p.endsWith('l2.cim') || p.includes(guid(2))));
    assert.equal(statSync(join(d.path, `region_${guid(1)}_1`)).size, 40, 'l1 wrote no page-aligned data');
    assert.equal(statSync(join(d.path, `region_${guid(3)}_1`)).size, 40, 'l3 wrote no page-aligned data');
    assert.ok(statSync(join(d.path, `region_${guid(2)}_1`)).size >= 4096 + 5000, 'l2 wrote its 5000-byte hive page-aligned');
    // l3 reuses the inherited upcase table: its metadata region is far smaller than l0's.
    assert.ok(statSync(join(d.path, `region_${guid(3)}_0`)).size < statSync(join(d.path, `region_${guid(0)}_0`)).size - 0x20000 + 0x8000);
  } finally {
    d.cleanup();
  }
});

test('forks reuse the parent SD, EA and reparse objects', async () => {
  const d = tempDir('cim-fork-dedup-');
  try {
    const sd = Buffer.from('0100048014000000300000000000000000000000010100000000000512000000010100000000000512000000', 'hex');
    const ea2 = (() => {
      const b = Buffer.alloc(8 + 6 + 1 + 1);
      b[5] = 6;
      b.writeUInt16LE(1, 6);
      b.write('USERAX', 8, 'latin1');
      b[15] = 0x31;
      return b;
    })();
    const rp = Buffer.from('0c0000a00c000000000000000000000001000000', 'hex');
    const w = await CimWriter.create(d.path, 'p');
    await w.addFile('a', { attributes: 0x20, securityDescriptor: sd, extendedAttributes: ea2, reparseData: rp });
    await w.commit();
    const w2 = await CimWriter.create(d.path, 'c', { parentName: 'p' });
    await w2.addFile('b', { attributes: 0x20, securityDescriptor: sd, extendedAttributes: ea2, reparseData: rp });
    await w2.commit();
    const r = await CimReader.open(join(d.path, 'c.cim'));
    try {
      const a = await r.fileRecord(await r.resolve('a'));
      const b = await r.fileRecord(await r.resolve('b'));
      assert.equal(Number(a.sdOffset >> 48n), 0, 'parent object in region 0 (the parent set)');
      assert.equal(b.sdOffset, a.sdOffset);
      assert.equal(b.eaOffset, a.eaOffset);
      assert.equal(b.reparseOffset, a.reparseOffset);
    } finally {
      await r.close();
    }
  } finally {
    d.cleanup();
  }
});

test('fork errors: missing parent, deleting what does not exist, self parent', async () => {
  const d = tempDir('cim-fork-err-');
  try {
    await assert.rejects(CimWriter.create(d.path, 'x', { parentName: 'nope' }), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    await assert.rejects(CimWriter.create(d.path, 'x', { parentName: 'x' }), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument');
    const w = await CimWriter.create(d.path, 'base');
    await assert.rejects(w.deletePath('nothing'), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    await assert.rejects(w.createFile('a\\b', { attributes: 0 }), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    await w.createFile('f', { attributes: 0, size: 3 });
    await assert.rejects(w.createFile('g', { attributes: 0 }), (e: Error & { kind?: string }) => e.kind === 'FailedPrecondition');
    await assert.rejects(w.write(Buffer.from('abcd')), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument');
    await w.write(Buffer.from('ab'));
    await assert.rejects(w.closeStream(), /got 2 of 3 bytes/);
    await assert.rejects(w.createHardLink('h', 'f\\x'), (e: Error & { kind?: string }) => e.kind === 'NotFound');
    await w.createFile('dir', { attributes: 0x10 });
    await assert.rejects(w.createHardLink('h', 'dir'), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument');
    await assert.rejects(w.createFile('bad:name', { attributes: 0 }), (e: Error & { kind?: string }) => e.kind === 'InvalidArgument');
    await assert.rejects(w.createFile(`${'x'.repeat(256)}`, { attributes: 0 }), /longer than 255/);
    await w.commit();
    await assert.rejects(CimWriter.create(d.path, 'base'), (e: Error & { kind?: string }) => e.kind === 'AlreadyExists');
    await assert.rejects(w.createFile('late', { attributes: 0 }), (e: Error & { kind?: string }) => e.kind === 'FailedPrecondition');
  } finally {
    d.cleanup();
  }
});

test('root metadata can be set and is kept by forks unless replaced', async () => {
  const d = tempDir('cim-root-');
  try {
    const sd = Buffer.from('01000480000000000000000000000000', 'hex');
    const w = await CimWriter.create(d.path, 'base');
    await w.addFile('a', { attributes: 0x20 }, Buffer.from('a'));
    await w.createFile('', { attributes: 0x10 | 0x2, lastWriteTime: 99n, securityDescriptor: sd });
    await w.commit();
    const w2 = await CimWriter.create(d.path, 'child', { parentName: 'base' });
    await w2.addFile('b', { attributes: 0x20 }, Buffer.from('b'));
    await w2.commit();
    for (const name of ['base', 'child']) {
      const r = await CimReader.open(join(d.path, `${name}.cim`));
      try {
        const st = await r.stat('');
        assert.equal(st.attributes, 0x10 | 0x2);
        assert.equal(st.lastWriteTime, 99n);
        assert.ok(st.securityDescriptor?.equals(sd));
        assert.equal((await r.readFile('A')).toString(), 'a');
        assert.equal(st.fileId, 1);
      } finally {
        await r.close();
      }
    }
    await assert.rejects(w2.createFile('', { attributes: 0 }), (e: Error & { kind?: string }) => e.kind === 'FailedPrecondition');
  } finally {
    d.cleanup();
  }
});

function structuredCloneModel(m: Map<string, ModelEntry>): Map<string, ModelEntry> {
  // Preserve shared identity (hard links) while deep-copying.
  const copies = new Map<ModelEntry, ModelEntry>();
  const out = new Map<string, ModelEntry>();
  for (const [k, v0] of m) {
    const v = v0.linkTo !== undefined ? m.get(v0.linkTo)! : v0;
    let c = copies.get(v);
    if (!c) {
      c = { ...v, streams: v.streams ? { ...v.streams } : undefined };
      copies.set(v, c);
    }
    out.set(k, c);
  }
  return out;
}
