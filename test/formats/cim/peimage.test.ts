/**
 * PE image streams (stream type 2): the writer never produces them (like
 * CimCreateFlagDoNotExpandPEImages), but images made by cimfs.dll may contain them, so the reader
 * must remap reads. Built here by hand per §3.2: PeImage {DataOffset u64, DataLength u64,
 * ImageLength u32, MappingCount u16, Flags u16} + {FileOffset u32, Delta u32}[]; a read at file
 * offset o uses the last mapping with FileOffset ≤ o and reads DataOffset + o + Delta.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { tempDir } from '../../helpers/tools.js';

test('PE image stream: reads are remapped by the mapping table', async () => {
  const d = tempDir('cim-pe-');
  try {
    // Data region content: 8192 bytes, byte i = i % 251.
    const raw = Buffer.alloc(8192);
    for (let i = 0; i < raw.length; i++) raw[i] = i % 251;
    const w = await CimWriter.create(d.path, 'img');
    await w.addFile('pe.dll', { attributes: 0x20 }, raw);
    const { guid } = await w.commit();
    const img = readFileSync(join(d.path, 'img.cim'));
    const mdPath = join(d.path, `region_${guid}_0`);
    const md = readFileSync(mdPath);
    const fsByte = Number(img.readBigUInt64LE(56) & 0xffffffffffffn);
    const ftd = Number(md.readBigUInt64LE(fsByte + 8) & 0xffffffffffffn);
    const table = Number(md.readBigUInt64LE(ftd) & 0xffffffffffffn);
    const rec = table + 1 * 96; // file ID 2 = pe.dll (root is 1)
    const dataOff = md.readBigUInt64LE(rec + 40);
    // File of 1000 bytes: [0,512) at data+0, [512,1000) at data+512+3584 = data+4096.
    const pe = Buffer.alloc(24 + 2 * 8);
    pe.writeBigUInt64LE(dataOff, 0);
    pe.writeBigUInt64LE(1000n, 8);
    pe.writeUInt32LE(8192, 16);
    pe.writeUInt16LE(2, 20);
    pe.writeUInt16LE(1, 22);
    pe.writeUInt32LE(0, 24);
    pe.writeUInt32LE(0, 28);
    pe.writeUInt32LE(512, 32);
    pe.writeUInt32LE(3584, 36);
    const peAt = md.length;
    const out = Buffer.concat([md, pe]);
    out.writeBigUInt64LE(BigInt(peAt), rec + 40);
    out.writeBigUInt64LE(1000n | (2n << 48n), rec + 48);
    writeFileSync(mdPath, out);

    const r = await CimReader.open(join(d.path, 'img.cim'));
    try {
      const st = await r.stat('pe.dll');
      assert.equal(st.peImage, true);
      assert.equal(st.size, 1000n);
      const got = await r.readFile('pe.dll');
      const want = Buffer.concat([raw.subarray(0, 512), raw.subarray(4096, 4096 + 488)]);
      assert.ok(got.equals(want));
    } finally {
      await r.close();
    }
    // A mapping that points past the data region is caught.
    const bad = Buffer.from(out);
    bad.writeUInt32LE(0x7fffffff, peAt + 36);
    writeFileSync(mdPath, bad);
    const r2 = await CimReader.open(join(d.path, 'img.cim'));
    try {
      await assert.rejects(r2.readFile('pe.dll'), (e) => e instanceof WinsnapError && /pe\.dll: region offset .* runs past the end/.test(e.message));
    } finally {
      await r2.close();
    }
  } finally {
    d.cleanup();
  }
});

test('writer rejects malformed EA buffers and oversize SD/reparse', async () => {
  const d = tempDir('cim-ea-');
  try {
    const w = await CimWriter.create(d.path, 'img');
    await assert.rejects(w.createFile('x', { attributes: 0, extendedAttributes: Buffer.from('0000000000040100415f00010203', 'hex') }), /invalid EA buffer/);
    await assert.rejects(w.createFile('x', { attributes: 0, securityDescriptor: Buffer.alloc(70000, 1) }), /exceeds 65535/);
    await assert.rejects(w.createFile('x', { attributes: 0, reparseData: Buffer.alloc(4) }), /shorter than its 8-byte header/);
    await w.abort();
  } finally {
    d.cleanup();
  }
});
