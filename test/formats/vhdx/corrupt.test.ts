/**
 * Malformed input: each corruption is made by hand on a disk we create (checksums resealed with
 * @node-rs/crc32 where the test wants to get past the CRC), and must give a clear error naming
 * the structure and offset. Where qemu has an opinion (BAT entry past end of file) it agrees.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeSync, openSync, readSync, writeSync, writeFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { runTool, tempDir } from '../../helpers/tools.js';
import { createDynamic, createDifferencing, open } from '../../../src/formats/vhdx/index.js';
import { isInvalidArgument, isNotImplemented, kindOf } from '../../../src/services/errdefs.js';
import { MiB } from './helpers.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-bad-')));
after(() => cleanup());

let n = 0;
async function fresh(size = 8 * MiB): Promise<string> {
  const p = join(dir, `d${n++}.vhdx`);
  await createDynamic(p, { size, blockSize: MiB });
  const d = await open(p, { writable: true });
  await d.write(0, Buffer.alloc(4096, 1));
  await d.close();
  return p;
}

function patch(path: string, at: number, bytes: Buffer): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}

function readAt(path: string, at: number, len: number): Buffer {
  const fd = openSync(path, 'r');
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, at);
  closeSync(fd);
  return b;
}

/** Rewrites a structure of `size` bytes at `at` with `edit` applied and its CRC-32C (field at 4) resealed. */
function editSealed(path: string, at: number, size: number, edit: (b: Buffer) => void): void {
  const b = readAt(path, at, size);
  edit(b);
  b.writeUInt32LE(0, 4);
  b.writeUInt32LE(crc32c(b), 4);
  patch(path, at, b);
}

const le64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

async function rejects(path: string, re: RegExp, kind = 'InvalidArgument'): Promise<void> {
  await assert.rejects(open(path), (e: unknown) => {
    assert.match(String(e), re);
    assert.equal(kindOf(e), kind, String(e));
    return true;
  });
}

describe('corrupt VHDX input', () => {
  it('bad file type identifier', async () => {
    const p = await fresh();
    patch(p, 0, Buffer.from('notvhdx!'));
    await rejects(p, /not a VHDX file: file type identifier at offset 0/);
    const raw = join(dir, 'tiny.bin');
    writeFileSync(raw, 'hello');
    await rejects(raw, /not a VHDX file/);
  });

  it('header CRC mismatch: the other header is used; both bad is an error naming both', async () => {
    const p = await fresh();
    patch(p, 128 * 1024 + 200, Buffer.from([0xee])); // header 2 (current) reserved area
    const d = await open(p);
    assert.ok(d.info.sequenceNumber);
    await d.close();
    patch(p, 64 * 1024 + 200, Buffer.from([0xee]));
    await rejects(p, /no valid header.*offset 65536: CRC-32C mismatch.*offset 131072: CRC-32C mismatch/);
  });

  it('bad header signature (CRC resealed)', async () => {
    const p = await fresh();
    editSealed(p, 64 * 1024, 4096, (b) => b.write('HEAD', 0, 'ascii'));
    editSealed(p, 128 * 1024, 4096, (b) => b.write('HEAD', 0, 'ascii'));
    await rejects(p, /bad signature "HEAD", expected "head"/);
  });

  it('region table: copy 2 stands in for a damaged copy 1; both damaged is an error', async () => {
    const p = await fresh();
    patch(p, 192 * 1024 + 4000, Buffer.from([0x55]));
    const d = await open(p);
    await d.close();
    editSealed(p, 256 * 1024, 65536, (b) => b.write('REGI', 0, 'ascii'));
    await rejects(p, /no valid region table.*offset 196608: CRC-32C mismatch.*offset 262144: bad signature "REGI"/);
  });

  it('overlapping regions', async () => {
    const p = await fresh();
    for (const at of [192 * 1024, 256 * 1024]) {
      // entry 1 is the metadata region: move it onto the BAT (entry 0)
      editSealed(p, at, 65536, (b) => b.writeBigUInt64LE(b.readBigUInt64LE(16 + 16), 16 + 32 + 16));
    }
    await rejects(p, /overlaps/);
  });

  it('unknown required region is refused (NotImplemented)', async () => {
    const p = await fresh();
    for (const at of [192 * 1024, 256 * 1024]) {
      editSealed(p, at, 65536, (b) => {
        b.writeUInt32LE(3, 8);
        const o = 16 + 64;
        Buffer.from('0123456789abcdef0123456789abcdef', 'hex').copy(b, o);
        b.writeBigUInt64LE(BigInt(100 * MiB), o + 16);
        b.writeUInt32LE(MiB, o + 24);
        b.writeUInt32LE(1, o + 28);
      });
    }
    await assert.rejects(open(p), (e: unknown) => isNotImplemented(e) && /required region .* is not understood/.test(String(e)));
  });

  it('BAT entry past end of file (qemu-img check agrees it is corrupt)', async () => {
    const p = await fresh();
    const d = await open(p);
    const batOff = d.info.regions.bat.offset;
    await d.close();
    patch(p, batOff + 8, le64((500n << 20n) | 6n)); // payload block 1 FULLY_PRESENT at 500 MiB
    await rejects(p, /BAT entry 1 \(payload block 1, FULLY_PRESENT\) at file offset 524288000 \+ 1048576 extends past end of file/);
    const q = runTool('qemu-img', ['check', p]);
    assert.notEqual(q.status, 0, 'qemu-img check also reports the image as corrupt');
  });

  it('two BAT entries pointing at the same block', async () => {
    const p = await fresh();
    const d = await open(p);
    const batOff = d.info.regions.bat.offset;
    await d.close();
    patch(p, batOff + 8, readAt(p, batOff, 8));
    await rejects(p, /payload block 1.*overlaps.*payload block 0/);
  });

  it('PARTIALLY_PRESENT in a dynamic disk, reserved states', async () => {
    const p = await fresh();
    const d = await open(p);
    const batOff = d.info.regions.bat.offset;
    await d.close();
    const e = readAt(p, batOff, 8);
    patch(p, batOff, le64((e.readBigUInt64LE(0) & ~7n) | 7n));
    await rejects(p, /PARTIALLY_PRESENT in a disk without a parent/);
    patch(p, batOff, le64((e.readBigUInt64LE(0) & ~7n) | 4n));
    await rejects(p, /reserved state 4/);
  });

  it('metadata: bad signature, missing required item, bad block size', async () => {
    const p = await fresh();
    const d = await open(p);
    const meta = d.info.regions.metadata.offset;
    await d.close();
    patch(p, meta, Buffer.from('METADATA'));
    await rejects(p, /metadata table at offset 2097152: bad signature "METADATA"/);
    patch(p, meta, Buffer.from('metadata'));
    const count = readAt(p, meta + 10, 2).readUInt16LE(0);
    const c = Buffer.alloc(2);
    c.writeUInt16LE(count - 1);
    patch(p, meta, Buffer.from('metadata'));
    patch(p, meta + 10, c); // drops the last item: Physical Sector Size
    await rejects(p, /required metadata item Physical Sector Size .* is missing/);
    c.writeUInt16LE(count);
    patch(p, meta + 10, c);
    const fpOff = readAt(p, meta + 32 + 16, 4).readUInt32LE(0); // entry 0 is File Parameters
    const bs = Buffer.alloc(4);
    bs.writeUInt32LE(3 * MiB);
    patch(p, meta + fpOff, bs);
    await rejects(p, /block size 3145728 must be a power of two/);
  });

  it('truncated file', async () => {
    const p = await fresh();
    truncateSync(p, 300 * 1024);
    await rejects(p, /shorter than the 1 MiB header section/);
  });

  it('out-of-range reads and writes are InvalidArgument; writes to read-only opens are FailedPrecondition', async () => {
    const p = await fresh();
    const d = await open(p);
    await assert.rejects(d.read(8 * MiB - 10, 11), (e: unknown) => isInvalidArgument(e) && /outside the virtual disk/.test(String(e)));
    await assert.rejects(d.write(0, Buffer.alloc(1)), (e: unknown) => kindOf(e) === 'FailedPrecondition');
    await d.close();
  });

  it('differencing disk whose parent locator has no parent_linkage', async () => {
    const parent = await fresh();
    const child = join(dir, 'child-nolink.vhdx');
    await createDifferencing(child, parent);
    const d = await open(child);
    const meta = d.info.regions.metadata.offset;
    await d.close();
    // rename the key in place: "parent_linkage" → "parent_linkagX" (UTF-16LE, same length)
    const region = readAt(child, meta, MiB);
    const key = Buffer.from('parent_linkage', 'utf16le');
    const at = region.indexOf(key);
    assert.ok(at > 0);
    patch(child, meta + at + key.length - 2, Buffer.from('X\0', 'latin1'));
    await rejects(child, /no parent_linkage entry/);
  });
});

describe('payload block states on read', () => {
  it('ZERO, UNMAPPED, UNDEFINED, v0.95 UNMAPPED (5) and NOT_PRESENT read as zeros, as qemu reads them', async () => {
    const p = join(dir, 'states.vhdx');
    await createDynamic(p, { size: 6 * MiB, blockSize: MiB });
    const d = await open(p, { writable: true });
    for (let b = 0; b < 6; b++) await d.write(b * MiB, Buffer.alloc(MiB, 0x10 + b));
    const batOff = d.info.regions.bat.offset;
    await d.close();
    const states = [2, 3, 1, 5, 0]; // blocks 0-4; block 5 stays FULLY_PRESENT
    states.forEach((st, b) => {
      const e = readAt(p, batOff + b * 8, 8).readBigUInt64LE(0);
      patch(p, batOff + b * 8, le64(st === 0 || st === 2 ? BigInt(st) : (e & ~7n) | BigInt(st)));
    });
    const r = await open(p);
    const all = await r.read(0, 6 * MiB);
    await r.close();
    assert.ok(all.subarray(0, 5 * MiB).every((x) => x === 0));
    assert.ok(all.subarray(5 * MiB).every((x) => x === 0x15));
    const q = runTool('qemu-img', ['convert', '-O', 'raw', p, join(dir, 'states.raw')]);
    assert.equal(q.status, 0, q.stderr);
    assert.deepEqual(readAt(join(dir, 'states.raw'), 0, 6 * MiB), all);
  });
});
