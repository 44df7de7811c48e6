/**
 * Log replay (MS-VHDX §2.3). The log is built here, by hand from the spec's structures
 * (§2.3.1.1-2.3.1.4), independently of src/formats/vhdx/log.ts; qemu replays the same file
 * (`qemu-img check -r all`) and its result is the expected content.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { copyFileSync, openSync, readFileSync, readSync, writeSync, closeSync, fstatSync, ftruncateSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { runTool, tempDir } from '../../helpers/tools.js';
import { open } from '../../../src/formats/vhdx/index.js';
import { isFailedPrecondition, isInvalidArgument } from '../../../src/services/errdefs.js';
import { assertSameBytes, MiB, qemuCheck, qemuIo, qemuToRaw } from './helpers.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-log-')));
after(() => cleanup());

const LOG_GUID = Buffer.from('00112233445566778899aabbccddeeff', 'hex'); // any non-zero 16 bytes

function pread(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  readSync(fd, b, 0, len, pos);
  return b;
}

/** One log entry: header + descriptors in the first sector(s), then one data sector per data descriptor. */
function logEntry(seq: bigint, tail: number, flushed: number, last: number, descs: ({ zero: number; at: number } | { data: Buffer; at: number })[]): Buffer {
  const dataDescs = descs.filter((d): d is { data: Buffer; at: number } => 'data' in d);
  const descSectors = Math.ceil((64 + 32 * descs.length) / 4096);
  const e = Buffer.alloc((descSectors + dataDescs.length) * 4096);
  e.write('loge', 0, 'ascii');
  e.writeUInt32LE(e.length, 8);
  e.writeUInt32LE(tail, 12);
  e.writeBigUInt64LE(seq, 16);
  e.writeUInt32LE(descs.length, 24);
  LOG_GUID.copy(e, 32);
  e.writeBigUInt64LE(BigInt(flushed), 48);
  e.writeBigUInt64LE(BigInt(last), 56);
  let sector = descSectors;
  descs.forEach((d, i) => {
    const o = 64 + 32 * i;
    if ('zero' in d) {
      e.write('zero', o, 'ascii');
      e.writeBigUInt64LE(BigInt(d.zero), o + 8);
    } else {
      e.write('desc', o, 'ascii');
      d.data.copy(e, o + 4, 4092, 4096); // TrailingBytes
      d.data.copy(e, o + 8, 0, 8); // LeadingBytes
      const s = sector++ * 4096;
      e.write('data', s, 'ascii');
      e.writeUInt32LE(Number(seq >> 32n), s + 4);
      d.data.copy(e, s + 8, 8, 4092);
      e.writeUInt32LE(Number(seq & 0xffffffffn), s + 4092);
    }
    e.writeBigUInt64LE(BigInt(d.at), o + 16);
    e.writeBigUInt64LE(seq, o + 24);
  });
  e.writeUInt32LE(crc32c(e), 4);
  return e;
}

/**
 * Builds the test file: a qemu-made dynamic disk (1 MiB blocks) with block 0 written, two new
 * 1 MiB areas appended (0x77, 0x88), and a two-entry log sequence that points payload blocks 2
 * and 3 at them (BAT sector updates) and zeroes 4 KiB of block 0.
 */
function buildDirtyDisk(path: string): { block0: number } {
  let r = runTool('qemu-img', ['create', '-f', 'vhdx', '-o', 'block_size=1048576,log_size=1048576', path, '8M']);
  assert.equal(r.status, 0, r.stderr);
  qemuIo(path, ['write -P 0x5a 0 1M']);
  const fd = openSync(path, 'r+');
  try {
    // current header: the valid one with the larger SequenceNumber (§2.2.2)
    const hs = [0x10000, 0x20000].map((off) => ({ off, b: pread(fd, off, 4096) }));
    const cur = hs.sort((a, b) => (a.b.readBigUInt64LE(8) > b.b.readBigUInt64LE(8) ? -1 : 1))[0];
    const logOffset = Number(cur.b.readBigUInt64LE(72));
    // region table 1: find the BAT region
    const rt = pread(fd, 0x30000, 65536);
    let batOffset = -1;
    for (let i = 0; i < rt.readUInt32LE(8); i++) {
      const o = 16 + 32 * i;
      if (rt.subarray(o, o + 16).toString('hex') === '6677c22d23f600429d64115e9bfd4a08') batOffset = Number(rt.readBigUInt64LE(o + 16));
    }
    assert.ok(batOffset > 0);
    const batSector = pread(fd, batOffset, 4096);
    const block0 = Number(batSector.readBigUInt64LE(0) >> 20n) * MiB;
    assert.equal(Number(batSector.readBigUInt64LE(0) & 7n), 6, 'qemu allocated block 0');
    const size = Math.ceil(fstatSync(fd).size / MiB) * MiB;
    ftruncateSync(fd, size);
    const areaA = size;
    const areaB = size + MiB;
    writeSync(fd, Buffer.alloc(MiB, 0x77), 0, MiB, areaA);
    writeSync(fd, Buffer.alloc(MiB, 0x88), 0, MiB, areaB);
    const end = size + 2 * MiB;
    // BAT entries: payload block i is entry i (chunk ratio 4096 here); state 6 = FULLY_PRESENT
    const bat1 = Buffer.from(batSector);
    bat1.writeBigUInt64LE((BigInt(areaA / MiB) << 20n) | 6n, 2 * 8);
    const bat2 = Buffer.from(bat1);
    bat2.writeBigUInt64LE((BigInt(areaB / MiB) << 20n) | 6n, 3 * 8);
    const e1 = logEntry(5n, 0, end, end, [{ zero: 4096, at: block0 + 8192 }, { data: bat1, at: batOffset }]);
    const e2 = logEntry(6n, 0, end, end, [{ data: bat2, at: batOffset }]);
    writeSync(fd, e1, 0, e1.length, logOffset);
    writeSync(fd, e2, 0, e2.length, logOffset + e1.length);
    // set LogGuid in the current header and reseal its CRC-32C
    LOG_GUID.copy(cur.b, 48);
    cur.b.writeUInt32LE(0, 4);
    cur.b.writeUInt32LE(crc32c(cur.b), 4);
    writeSync(fd, cur.b, 0, 4096, cur.off);
    return { block0 };
  } finally {
    closeSync(fd);
  }
}

describe('log replay', () => {
  it('replays a constructed two-entry log exactly as qemu does (in memory read-only, in the file writable)', async () => {
    const dirty = join(dir, 'dirty.vhdx');
    buildDirtyDisk(dirty);
    // qemu refuses a read-only open of a file whose log needs replay; check -r all replays it
    const ro = runTool('qemu-img', ['info', dirty]);
    assert.notEqual(ro.status, 0);
    assert.match(ro.stderr, /log/i);
    const viaQemu = join(dir, 'qemu-replayed.vhdx');
    copyFileSync(dirty, viaQemu);
    const fix = runTool('qemu-img', ['check', '-r', 'all', viaQemu]);
    assert.equal(fix.status, 0, fix.stdout.toString() + fix.stderr);
    const expected = qemuToRaw(viaQemu, dir);
    // sanity: qemu applied our log (so the log is well-formed per qemu too)
    assert.ok(expected.subarray(2 * MiB, 3 * MiB).every((x) => x === 0x77));
    assert.ok(expected.subarray(3 * MiB, 4 * MiB).every((x) => x === 0x88));
    assert.ok(expected.subarray(8192, 12288).every((x) => x === 0));
    assert.ok(expected.subarray(0, 8192).every((x) => x === 0x5a));

    // read-only: replayed in memory, file untouched
    const before = createHash('sha256').update(readFileSync(dirty)).digest('hex');
    const d = await open(dirty);
    assert.equal(d.info.logReplayed, true);
    assertSameBytes(await d.read(0, d.size), expected, 'in-memory replay');
    await d.close();
    assert.equal(createHash('sha256').update(readFileSync(dirty)).digest('hex'), before);

    // refusing is a FailedPrecondition naming the log offset
    await assert.rejects(open(dirty, { log: 'refuse' }), (e: unknown) => isFailedPrecondition(e) && /log at offset 1048576/.test(String(e)));

    // writable: replayed into the file, LogGuid cleared; qemu then opens it without complaint
    const w = await open(dirty, { writable: true });
    assert.equal(w.info.logGuid, '00000000-0000-0000-0000-000000000000');
    await w.close();
    qemuCheck(dirty);
    assertSameBytes(qemuToRaw(dirty, dir), expected, 'file replay, read by qemu');
  });

  it('a set LogGuid with no valid entry (bad entry CRC) is refused as corrupt', async () => {
    const p = join(dir, 'badlog.vhdx');
    buildDirtyDisk(p);
    const fd = openSync(p, 'r+');
    const cur = [0x10000, 0x20000].map((off) => pread(fd, off, 4096)).sort((a, b) => (a.readBigUInt64LE(8) > b.readBigUInt64LE(8) ? -1 : 1))[0];
    const logOffset = Number(cur.readBigUInt64LE(72));
    // corrupt a byte inside both entries' descriptors: their CRC-32C no longer matches
    writeSync(fd, Buffer.from([0xff]), 0, 1, logOffset + 100);
    writeSync(fd, Buffer.from([0xff]), 0, 1, logOffset + 8192 + 100);
    closeSync(fd);
    await assert.rejects(open(p), (e: unknown) => isInvalidArgument(e) && /no valid log sequence/.test(String(e)));
  });
});
