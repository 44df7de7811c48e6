/**
 * VHDX files we create, write and grow are checked by qemu-img/qemu-io; VHDX files qemu makes
 * are read back through our reader and compared with `qemu-img convert -O raw`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync, writeFileSync, truncateSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tempDir } from '../../helpers/tools.js';
import { createDynamic, createFixed, open, rawToVhdx, resize, vhdxToRaw } from '../../../src/formats/vhdx/index.js';
import { assertSameBytes, GiB, MiB, qemuCheck, qemuInfo, qemuIo, qemuToRaw, seededBytes, seededInt } from './helpers.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-qemu-')));
after(() => cleanup());

/** Applies the same writes to our disk and to an in-memory model, then compares with qemu. */
async function writeAndCompare(path: string, size: number, seed: number, writes: number): Promise<Buffer> {
  const model = Buffer.alloc(size);
  const rnd = seededInt(seed);
  const disk = await open(path, { writable: true });
  try {
    for (let i = 0; i < writes; i++) {
      const len = 1 + (rnd() % (3 * MiB));
      const off = rnd() % (size - len);
      const data = seededBytes(len, seed * 1000 + i);
      await disk.write(off, data);
      data.copy(model, off);
    }
  } finally {
    await disk.close();
  }
  qemuCheck(path);
  assertSameBytes(qemuToRaw(path, dir), model, `${path} through qemu`);
  return model;
}

describe('disks we create pass qemu-img check and info', () => {
  const cases: { name: string; fixed: boolean; size: number; blockSize: number; lss: number }[] = [
    { name: 'dynamic, 32 MiB blocks (default)', fixed: false, size: 1 * GiB, blockSize: 32 * MiB, lss: 512 },
    { name: 'dynamic, 1 MiB blocks', fixed: false, size: 100 * MiB, blockSize: MiB, lss: 512 },
    { name: 'dynamic, 256 MiB blocks', fixed: false, size: 3 * GiB + 4096, blockSize: 256 * MiB, lss: 512 },
    { name: 'fixed, 2 MiB blocks', fixed: true, size: 64 * MiB + 512, blockSize: 2 * MiB, lss: 512 },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const p = join(dir, `${c.name.replace(/\W+/g, '_')}.vhdx`);
      const opts = { size: c.size, blockSize: c.blockSize, logicalSectorSize: c.lss };
      const info = c.fixed ? await createFixed(p, opts) : await createDynamic(p, opts);
      assert.equal(info.type, c.fixed ? 'fixed' : 'dynamic');
      qemuCheck(p);
      const q = qemuInfo(p);
      assert.equal(q.format, 'vhdx');
      assert.equal(q['virtual-size'], c.size);
      assert.equal(q['cluster-size'], c.blockSize);
      // an empty disk reads as zeros through qemu
      if (c.size <= 128 * MiB) assert.ok(qemuToRaw(p, dir).every((x) => x === 0));
    });
  }

  it('writes at random offsets: qemu sees exactly the bytes we wrote (dynamic and fixed)', async () => {
    const dyn = join(dir, 'w-dyn.vhdx');
    await createDynamic(dyn, { size: 40 * MiB, blockSize: MiB });
    await writeAndCompare(dyn, 40 * MiB, 7, 25);
    const fix = join(dir, 'w-fix.vhdx');
    await createFixed(fix, { size: 24 * MiB + 1024, blockSize: 4 * MiB });
    await writeAndCompare(fix, 24 * MiB + 1024, 11, 12);
  });

  it('a write session changes DataWriteGuid and FileWriteGuid, deterministically', async () => {
    const a = join(dir, 'det-a.vhdx');
    const b = join(dir, 'det-b.vhdx');
    for (const p of [a, b]) {
      await createDynamic(p, { size: 8 * MiB, blockSize: MiB });
      const d = await open(p, { writable: true });
      await d.write(4096, Buffer.from('same edit'));
      await d.close();
    }
    assert.deepEqual(readFileSync(a), readFileSync(b));
    const d = await open(a);
    const before = d.info;
    await d.close();
    const w = await open(a, { writable: true });
    await w.write(0, Buffer.from('another edit'));
    await w.close();
    const after = await open(a);
    assert.notEqual(after.info.dataWriteGuid, before.dataWriteGuid);
    assert.notEqual(after.info.fileWriteGuid, before.fileWriteGuid);
    await after.close();
    qemuCheck(a);
  });
});

describe('resize', () => {
  it('grows a dynamic disk in place and keeps every written byte', async () => {
    const p = join(dir, 'grow.vhdx');
    await createDynamic(p, { size: 10 * MiB + 512, blockSize: MiB });
    const model = await writeAndCompare(p, 10 * MiB + 512, 3, 10);
    const info = await resize(p, 50 * MiB);
    assert.equal(info.virtualSize, 50 * MiB);
    assert.equal(info.regions.bat.offset, 3 * MiB, 'BAT stays in place when it has room');
    qemuCheck(p);
    assert.equal(qemuInfo(p)['virtual-size'], 50 * MiB);
    const expected = Buffer.concat([model, Buffer.alloc(50 * MiB - model.length)]);
    assertSameBytes(qemuToRaw(p, dir), expected, 'grown disk through qemu');
  });

  it('grows a fixed disk: new blocks allocated, data kept', async () => {
    const p = join(dir, 'grow-fixed.vhdx');
    await createFixed(p, { size: 6 * MiB, blockSize: 2 * MiB });
    const model = await writeAndCompare(p, 6 * MiB, 9, 4);
    const info = await resize(p, 11 * MiB);
    assert.equal(info.type, 'fixed');
    assert.equal(info.blockStates.FULLY_PRESENT, 6);
    qemuCheck(p);
    assertSameBytes(qemuToRaw(p, dir), Buffer.concat([model, Buffer.alloc(5 * MiB)]), 'grown fixed disk');
  });

  it('growing past what the BAT region holds relocates the BAT (1 MiB blocks, 1 GiB → 130 GiB)', async () => {
    const p = join(dir, 'relocate.vhdx');
    const before = await createDynamic(p, { size: 1 * GiB, blockSize: MiB });
    assert.equal(before.regions.bat.length, MiB);
    const d = await open(p, { writable: true });
    await d.write(0, Buffer.alloc(MiB, 0x11));
    await d.write(1 * GiB - 3 * MiB + 100, Buffer.alloc(2 * MiB, 0x22));
    await d.close();
    const info = await resize(p, 130 * GiB);
    // 130 GiB of 1 MiB blocks with chunk ratio 4096 needs 133120 + 33 entries > 131072 per MiB
    assert.ok(info.regions.bat.offset !== 3 * MiB, 'BAT moved');
    assert.ok(info.regions.bat.length >= 2 * MiB);
    qemuCheck(p);
    assert.equal(qemuInfo(p)['virtual-size'], 130 * GiB);
    qemuIo(p, [
      `read -P 0x11 0 1M`,
      `read -P 0 1M ${1 * GiB - 4 * MiB}`,
      `read -P 0x22 ${1 * GiB - 3 * MiB + 100} 2M`,
      `read -P 0 ${1 * GiB - MiB + 100} ${MiB - 100}`,
      `read -P 0 ${129 * GiB} 1M`,
    ], true);
    // and the grown disk is writable past the old end, through qemu too
    const w = await open(p, { writable: true });
    await w.write(128 * GiB, Buffer.alloc(MiB, 0x33));
    await w.close();
    qemuCheck(p);
    qemuIo(p, [`read -P 0x33 128G 1M`, `read -P 0x11 0 1M`], true);
  });

  it('refuses to shrink and refuses sizes that are not whole sectors', async () => {
    const p = join(dir, 'noshrink.vhdx');
    await createDynamic(p, { size: 8 * MiB, blockSize: MiB });
    await assert.rejects(resize(p, 4 * MiB), /shrinking is not supported/);
    await assert.rejects(resize(p, 8 * MiB + 100), /not a multiple of the logical sector size 512/);
  });
});

describe('disks qemu makes read back through our reader', () => {
  const variants = [
    { name: 'dynamic default block size', opts: 'subformat=dynamic', size: '64M' },
    { name: 'dynamic block_size=1M', opts: 'subformat=dynamic,block_size=1048576', size: '40M' },
    { name: 'dynamic block_size=8M, 4k sectors', opts: 'subformat=dynamic,block_size=8388608,log_size=1048576', size: '48M' },
    { name: 'fixed block_size=2M', opts: 'subformat=fixed,block_size=2097152', size: '20M' },
  ];
  for (const v of variants) {
    it(`${v.name}, after qemu-io writes`, async () => {
      const p = join(dir, `q-${v.name.replace(/\W+/g, '_')}.vhdx`);
      const r = runTool('qemu-img', ['create', '-f', 'vhdx', '-o', v.opts, p, v.size]);
      assert.equal(r.status, 0, r.stderr);
      qemuIo(p, ['write -P 0x5a 1000k 300k', 'write -P 0xa5 5M 2M', 'write -P 0x01 17M 512', 'write -z 5M 64k']);
      const expected = qemuToRaw(p, dir);
      const d = await open(p);
      try {
        assert.equal(d.size, expected.length);
        assertSameBytes(await d.read(0, d.size), expected, `${v.name} through our reader`);
        // unaligned reads across block boundaries too
        assertSameBytes(await d.read(1000 * 1024 - 3, 4 * MiB + 7), expected.subarray(1000 * 1024 - 3, 1000 * 1024 + 4 * MiB + 4), 'unaligned range');
      } finally {
        await d.close();
      }
      const raw = join(dir, 'ours.raw');
      await vhdxToRaw(p, raw, { overwrite: true });
      assertSameBytes(readFileSync(raw), expected, 'vhdxToRaw output');
    });
  }

  it('a disk qemu-img convert made from raw', async () => {
    const raw = join(dir, 'src.raw');
    writeFileSync(raw, Buffer.concat([seededBytes(3 * MiB, 1), Buffer.alloc(9 * MiB), seededBytes(MiB + 512, 2)]));
    const p = join(dir, 'qconv.vhdx');
    const r = runTool('qemu-img', ['convert', '-O', 'vhdx', raw, p]);
    assert.equal(r.status, 0, r.stderr);
    const d = await open(p);
    try {
      assertSameBytes(await d.read(0, d.size), readFileSync(raw), 'qemu-converted disk');
    } finally {
      await d.close();
    }
  });
});

describe('raw → VHDX conversion', () => {
  it('half-sparse raw → our VHDX → qemu-img convert -O raw is identical (dynamic and fixed)', async () => {
    const raw = join(dir, 'half.raw');
    const size = 70 * MiB + 1536; // not a multiple of the block size
    const fd = openSync(raw, 'w');
    for (let off = 0; off < size; off += 8 * MiB) {
      if ((off / (8 * MiB)) % 2 === 0) writeSync(fd, seededBytes(Math.min(3 * MiB, size - off), off / MiB), 0, undefined, off);
    }
    closeSync(fd);
    truncateSync(raw, size);
    const input = readFileSync(raw);
    for (const fixed of [false, true]) {
      const p = join(dir, `conv-${fixed}.vhdx`);
      const progress: number[] = [];
      const info = await rawToVhdx(raw, p, { fixed, blockSize: 2 * MiB, onProgress: (d) => progress.push(d) });
      assert.equal(info.virtualSize, size);
      assert.equal(progress[progress.length - 1], size);
      if (!fixed) assert.ok(info.allocatedBlocks < info.payloadBlocks / 2 + 2, `sparse: ${info.allocatedBlocks} of ${info.payloadBlocks} blocks allocated`);
      qemuCheck(p);
      assertSameBytes(qemuToRaw(p, dir), input, `raw → vhdx (fixed=${fixed}) → qemu raw`);
    }
  });

  it('allocated but all-zero data stays unallocated; one changed byte changes the identifiers', async () => {
    const raw = join(dir, 'zeros.raw');
    writeFileSync(raw, Buffer.alloc(6 * MiB)); // written zeros: data extents, no data
    const z = join(dir, 'zeros.vhdx');
    const info = await rawToVhdx(raw, z, { blockSize: 2 * MiB });
    assert.equal(info.allocatedBlocks, 0);
    qemuCheck(z);
    assertSameBytes(qemuToRaw(z, dir), readFileSync(raw), 'zeros');
    // content-derived identifiers see a change in the middle of a chunk
    const a = join(dir, 'one-a.vhdx');
    const b = join(dir, 'one-b.vhdx');
    const data = seededBytes(4 * MiB, 7);
    writeFileSync(raw, data);
    await rawToVhdx(raw, a, { blockSize: 2 * MiB });
    data[MiB + 12345] ^= 1;
    writeFileSync(raw, data);
    await rawToVhdx(raw, b, { blockSize: 2 * MiB });
    const ids: string[] = [];
    for (const p of [a, b]) {
      const d = await open(p);
      ids.push(d.info.virtualDiskId);
      await d.close();
    }
    assert.notEqual(ids[0], ids[1]);
    assertSameBytes(qemuToRaw(b, dir), data, 'one byte changed');
  });

  it('pads a raw image that is not whole sectors; same input gives byte-identical files', async () => {
    const raw = join(dir, 'odd.raw');
    writeFileSync(raw, seededBytes(MiB + 100, 42));
    const a = join(dir, 'odd-a.vhdx');
    const b = join(dir, 'odd-b.vhdx');
    await rawToVhdx(raw, a, { blockSize: MiB });
    await rawToVhdx(raw, b, { blockSize: MiB });
    assert.deepEqual(readFileSync(a), readFileSync(b));
    const out = qemuToRaw(a, dir);
    assert.equal(out.length, MiB + 512);
    assertSameBytes(out, Buffer.concat([readFileSync(raw), Buffer.alloc(412)]), 'padded');
    const c = join(dir, 'odd-c.vhdx');
    await rawToVhdx(raw, c, { blockSize: MiB, ids: 'random' });
    assert.notDeepEqual(readFileSync(a).subarray(64 * 1024, 128 * 1024), readFileSync(c).subarray(64 * 1024, 128 * 1024));
  });
});
