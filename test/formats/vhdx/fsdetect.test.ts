/**
 * `vhdx info` says what the disk holds: ext4 made by mkfs.ext4 (whole disk, or inside a GPT
 * partition laid out here by hand from the UEFI GPT header layout), an NTFS boot sector, or nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openSync, writeSync, closeSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTool, tempDir } from '../../helpers/tools.js';
import { createDynamic, detectDiskFilesystem, open, rawToVhdx } from '../../../src/formats/vhdx/index.js';
import { MiB } from './helpers.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-fs-')));
after(() => cleanup());

async function detect(path: string) {
  const d = await open(path);
  try {
    return await detectDiskFilesystem(d);
  } finally {
    await d.close();
  }
}

describe('filesystem detection', () => {
  it('unformatted disk', async () => {
    const p = join(dir, 'blank.vhdx');
    await createDynamic(p, { size: 16 * MiB });
    assert.deepEqual(await detect(p), { filesystem: 'none', partitionTable: 'none', offset: 0 });
  });

  it('whole-disk ext4 from mkfs.ext4', async () => {
    const raw = join(dir, 'ext4.raw');
    writeFileSync(raw, "");
    const r = runTool('mkfs.ext4', ['-q', '-F', raw, '16M']);
    assert.equal(r.status, 0, r.stderr);
    const p = join(dir, 'ext4.vhdx');
    await rawToVhdx(raw, p, { blockSize: MiB });
    assert.deepEqual(await detect(p), { filesystem: 'ext4', partitionTable: 'none', offset: 0 });
  });

  it('ext4 inside the second partition of a GPT disk; NTFS boot sector in an MBR partition', async () => {
    const raw = join(dir, 'gpt.raw');
    writeFileSync(raw, "");
    const r = runTool('mkfs.ext4', ['-q', '-F', '-E', 'offset=4194304', raw, '8M']);
    assert.equal(r.status, 0, r.stderr);
    truncateSync(raw, 16 * MiB);
    const fd = openSync(raw, 'r+');
    const hdr = Buffer.alloc(512);
    hdr.write('EFI PART', 0, 'ascii');
    hdr.writeBigUInt64LE(2n, 72); // partition entries start at LBA 2
    hdr.writeUInt32LE(128, 80); // number of entries
    hdr.writeUInt32LE(128, 84); // entry size
    writeSync(fd, hdr, 0, 512, 512);
    const entries = Buffer.alloc(128 * 128);
    entries.fill(0x11, 0, 16); // entry 0: a small partition (e.g. MSR) at LBA 2048, no filesystem
    entries.writeBigUInt64LE(2048n, 32);
    entries.fill(0x22, 128, 144); // entry 1: the data partition at 4 MiB
    entries.writeBigUInt64LE(8192n, 128 + 32);
    writeSync(fd, entries, 0, entries.length, 1024);
    closeSync(fd);
    const p = join(dir, 'gpt.vhdx');
    await rawToVhdx(raw, p, { blockSize: MiB });
    assert.deepEqual(await detect(p), { filesystem: 'ext4', partitionTable: 'gpt', offset: 4 * MiB });

    const mbr = join(dir, 'mbr.raw');
    writeFileSync(mbr, "");
    truncateSync(mbr, 8 * MiB);
    const fd2 = openSync(mbr, 'r+');
    const sec = Buffer.alloc(512);
    sec[446 + 4] = 0x07; // partition 1: type 0x07 (NTFS/exFAT), start LBA 2048
    sec.writeUInt32LE(2048, 446 + 8);
    sec[510] = 0x55;
    sec[511] = 0xaa;
    writeSync(fd2, sec, 0, 512, 0);
    const boot = Buffer.alloc(512);
    boot.write('NTFS    ', 3, 'ascii');
    writeSync(fd2, boot, 0, 512, MiB);
    closeSync(fd2);
    const p2 = join(dir, 'mbr.vhdx');
    await rawToVhdx(mbr, p2, { blockSize: MiB });
    assert.deepEqual(await detect(p2), { filesystem: 'ntfs', partitionTable: 'mbr', offset: MiB });
  });
});
