/**
 * Differencing disks. qemu cannot open differencing VHDX (block/vhdx.c returns ENOTSUP when
 * HasParent is set), so the chain is checked against independent construction: the parent's
 * bytes as qemu reads them, with the child's writes applied in a test-side model.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tempDir } from '../../helpers/tools.js';
import { copyDisk, createDifferencing, createDynamic, createFixed, open, resize, vhdxToRaw } from '../../../src/formats/vhdx/index.js';
import { isFailedPrecondition, isNotFound } from '../../../src/services/errdefs.js';
import { assertSameBytes, MiB, qemuIo, qemuToRaw, seededBytes, seededInt } from './helpers.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-diff-')));
after(() => cleanup());

/** A qemu-made parent with known content; returns its bytes as qemu reads them. */
function qemuParent(path: string, size: string): Buffer {
  const r = runTool('qemu-img', ['create', '-f', 'vhdx', '-o', 'block_size=1048576', path, size]);
  assert.equal(r.status, 0, r.stderr);
  qemuIo(path, ['write -P 0x41 0 3M', 'write -P 0x42 5M 512', 'write -P 0x43 9M 2M']);
  return qemuToRaw(path, dir);
}

async function applyWrites(path: string, model: Buffer, seed: number, n: number, maxLen: number): Promise<void> {
  const rnd = seededInt(seed);
  const d = await open(path, { writable: true });
  try {
    for (let i = 0; i < n; i++) {
      const len = 1 + (rnd() % maxLen);
      const off = rnd() % (model.length - len);
      const data = seededBytes(len, seed * 7919 + i);
      await d.write(off, data);
      data.copy(model, off);
    }
  } finally {
    await d.close();
  }
}

async function readAll(path: string): Promise<Buffer> {
  const d = await open(path);
  try {
    return await d.read(0, d.size);
  } finally {
    await d.close();
  }
}

describe('differencing disks', () => {
  it('reads the parent through NOT_PRESENT blocks and child data over it (partial and full blocks)', async () => {
    const parent = join(dir, 'base.vhdx');
    const model = qemuParent(parent, '16M');
    const child = join(dir, 'child.vhdx');
    const info = await createDifferencing(child, parent);
    assert.equal(info.type, 'differencing');
    assert.equal(info.virtualSize, 16 * MiB);
    assert.equal(info.blockSize, MiB, 'defaults to the parent block size');
    assert.match(info.parentLocator!.entries.parent_linkage, /^\{[0-9a-f-]{36}\}$/);
    assert.equal(info.parentLocator!.entries.relative_path, '.\\base.vhdx');
    const pinfo = await open(parent).then(async (p) => {
      const i = p.info;
      await p.close();
      return i;
    });
    assert.equal(info.parentLocator!.entries.parent_linkage, `{${pinfo.dataWriteGuid}}`);
    assert.equal(info.virtualDiskId, pinfo.virtualDiskId, 'Virtual Disk ID is IsVirtualDisk metadata: copied from the parent');
    assertSameBytes(await readAll(child), model, 'fresh child reads as its parent');

    // unaligned small writes → PARTIALLY_PRESENT blocks with sector bitmaps; one whole block → FULLY_PRESENT
    await applyWrites(child, model, 1, 30, 3000);
    const d = await open(child, { writable: true });
    const whole = seededBytes(MiB, 99);
    await d.write(12 * MiB, whole);
    whole.copy(model, 12 * MiB);
    await d.close();
    const c = await open(child);
    assert.ok((c.info.blockStates.PARTIALLY_PRESENT ?? 0) > 0, JSON.stringify(c.info.blockStates));
    assert.equal(c.blockState(12), 6, 'whole-block write is FULLY_PRESENT');
    assert.equal(c.info.sectorBitmapBlocks, 1);
    await c.close();
    assertSameBytes(await readAll(child), model, 'child = parent + writes');
    // the parent is untouched
    assertSameBytes(qemuToRaw(parent, dir), qemuToRaw(parent, dir), 'parent');
    const raw = join(dir, 'child.raw');
    await vhdxToRaw(child, raw);
    assertSameBytes(readFileSync(raw), model, 'vhdxToRaw of the chain');
  });

  it('a three-level chain with a fixed base, writes at every level', async () => {
    const base = join(dir, 'l0.vhdx');
    await createFixed(base, { size: 8 * MiB, blockSize: MiB });
    const model = Buffer.alloc(8 * MiB);
    await applyWrites(base, model, 2, 6, 700 * 1024);
    const mid = join(dir, 'l1.vhdx');
    await createDifferencing(mid, base, { blockSize: 2 * MiB });
    await applyWrites(mid, model, 3, 10, 300 * 1024);
    const top = join(dir, 'l2.vhdx');
    await createDifferencing(top, mid);
    await applyWrites(top, model, 4, 10, 5000);
    assertSameBytes(await readAll(top), model, 'three-level chain');
  });

  it('4096-byte logical sectors (qemu 7.2 cannot open these): dynamic parent + child, unaligned writes', async () => {
    const base = join(dir, 'k4-base.vhdx');
    const info = await createDynamic(base, { size: 24 * MiB, blockSize: MiB, logicalSectorSize: 4096, physicalSectorSize: 4096 });
    assert.equal(info.logicalSectorSize, 4096);
    assert.equal(info.chunkRatio, 32768, '2^23 sectors × 4096 bytes / 1 MiB');
    const model = Buffer.alloc(24 * MiB);
    await applyWrites(base, model, 21, 8, 2 * MiB);
    const child = join(dir, 'k4-child.vhdx');
    await createDifferencing(child, base);
    await applyWrites(child, model, 22, 20, 10000);
    assertSameBytes(await readAll(child), model, '4K-sector chain');
  });

  it('refuses a parent whose DataWriteGuid no longer matches parent_linkage', async () => {
    const parent = join(dir, 'p-changed.vhdx');
    await createDynamic(parent, { size: 4 * MiB, blockSize: MiB });
    const child = join(dir, 'c-changed.vhdx');
    await createDifferencing(child, parent);
    const p = await open(parent, { writable: true });
    await p.write(0, Buffer.from('parent modified after the child was made'));
    await p.close();
    await assert.rejects(open(child), (e: unknown) => isFailedPrecondition(e) && /parent_linkage/.test(String(e)));
  });

  it('missing parent is NotFound naming the paths tried; parentPath overrides the locator', async () => {
    const sub = join(dir, 'moved');
    mkdirSync(sub);
    const parent = join(dir, 'p-moved.vhdx');
    await createDynamic(parent, { size: 4 * MiB, blockSize: MiB });
    const child = join(dir, 'c-moved.vhdx');
    await createDifferencing(child, parent);
    renameSync(parent, join(sub, 'p-moved.vhdx'));
    await assert.rejects(open(child), (e: unknown) => isNotFound(e) && /p-moved\.vhdx/.test(String(e)));
    const d = await open(child, { parentPath: join(sub, 'p-moved.vhdx') });
    assert.equal(d.info.parentPath, join(sub, 'p-moved.vhdx'));
    await d.close();
  });

  it('copy into another directory re-points relative_path; the copy is sparse and reads the same', async () => {
    const parent = join(dir, 'blank-base.vhdx');
    await createDynamic(parent, { size: 64 * MiB, blockSize: MiB });
    const model = Buffer.alloc(64 * MiB);
    await applyWrites(parent, model, 5, 4, 100 * 1024);
    const blank = join(dir, 'blank.vhdx');
    await createDifferencing(blank, parent);
    await applyWrites(blank, model, 6, 4, 100 * 1024);
    const snap = join(dir, 'snapshots', '1');
    mkdirSync(snap, { recursive: true });
    const sandbox = join(snap, 'sandbox.vhdx');
    const info = await copyDisk(blank, sandbox);
    assert.equal(info.parentLocator!.entries.relative_path, '..\\..\\blank-base.vhdx');
    assertSameBytes(await readAll(sandbox), model, 'copied differencing disk');
    // a copy in the same directory is byte-identical to its source
    const twin = join(dir, 'twin.vhdx');
    await copyDisk(blank, twin);
    assert.deepEqual(readFileSync(twin), readFileSync(blank));
    // and the copy grows like the snapshotter's ExpandSandboxSize
    await resize(sandbox, 100 * MiB);
    const grown = await readAll(sandbox);
    assert.equal(grown.length, 100 * MiB);
    assertSameBytes(grown, Buffer.concat([model, Buffer.alloc(36 * MiB)]), 'grown differencing copy');
  });
});
