/**
 * Recognises what a virtual disk holds, for `vhdx info`: an ext4 superblock (magic 0xEF53 at
 * byte 1024 + 56; ext4 when the extents/64bit/flex_bg incompat features are set), an NTFS boot
 * sector ("NTFS    " OEM id at byte 3), either on the whole disk or inside the partitions of a
 * GPT ("EFI PART" at LBA 1) or MBR (0x55AA at byte 510) partition table; or nothing at all.
 */

export type FilesystemKind = 'ext4' | 'ext2/3' | 'ntfs' | 'none' | 'unknown';

export interface FsDetection {
  filesystem: FilesystemKind;
  partitionTable: 'gpt' | 'mbr' | 'none';
  /** Byte offset of the recognised filesystem on the virtual disk. */
  offset: number;
}

import { isZero } from './fileio.js';

type Reader = (offset: number, length: number) => Promise<Buffer>;

async function probeAt(read: Reader, size: number, offset: number): Promise<FilesystemKind | undefined> {
  if (offset + 2048 > size) return undefined;
  const b = await read(offset, 2048);
  if (b.toString('latin1', 3, 11) === 'NTFS    ') return 'ntfs';
  if (b.readUInt16LE(1024 + 56) === 0xef53) {
    const incompat = b.readUInt32LE(1024 + 0x60);
    return incompat & (0x40 | 0x80 | 0x200) ? 'ext4' : 'ext2/3';
  }
  return undefined;
}

export async function detectFilesystem(read: Reader, size: number, logicalSectorSize: number): Promise<FsDetection> {
  const whole = await probeAt(read, size, 0);
  if (whole) return { filesystem: whole, partitionTable: 'none', offset: 0 };
  const lss = logicalSectorSize;
  if (size >= 2 * lss) {
    const gpt = await read(lss, lss);
    if (gpt.toString('latin1', 0, 8) === 'EFI PART') {
      const entriesLba = Number(gpt.readBigUInt64LE(72));
      const count = Math.min(gpt.readUInt32LE(80), 128);
      const entrySize = gpt.readUInt32LE(84);
      if (entrySize >= 128 && entrySize <= 4096) {
        const table = await read(entriesLba * lss, count * entrySize);
        for (let i = 0; i < count; i++) {
          const e = table.subarray(i * entrySize, (i + 1) * entrySize);
          if (e.subarray(0, 16).every((x) => x === 0)) continue;
          const off = Number(e.readBigUInt64LE(32)) * lss;
          const fs = await probeAt(read, size, off);
          if (fs) return { filesystem: fs, partitionTable: 'gpt', offset: off };
        }
      }
      return { filesystem: 'unknown', partitionTable: 'gpt', offset: 0 };
    }
  }
  const mbr = await read(0, 512);
  if (mbr[510] === 0x55 && mbr[511] === 0xaa) {
    for (let i = 0; i < 4; i++) {
      const o = 446 + 16 * i;
      const type = mbr[o + 4];
      if (type === 0 || type === 0xee) continue;
      const off = mbr.readUInt32LE(o + 8) * lss;
      const fs = await probeAt(read, size, off);
      if (fs) return { filesystem: fs, partitionTable: 'mbr', offset: off };
    }
    return { filesystem: 'unknown', partitionTable: 'mbr', offset: 0 };
  }
  const head = await read(0, Math.min(size, 64 * 1024));
  return { filesystem: isZero(head) ? 'none' : 'unknown', partitionTable: 'none', offset: 0 };
}
