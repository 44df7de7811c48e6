/**
 * tar → ext4 → [dm-verity] → [fixed VHD footer]: what hcsshim's tar2ext4.Convert and the
 * LCOW differ produce (windows-layer-formats.md §4.2–4.5), from a decompressed tar stream.
 *
 * Layout: `ext4 | verity superblock (4 KiB) | hash tree | zero padding | VHD footer`. The
 * padding makes the disk a size its CHS geometry describes exactly, so readers that size a
 * VHD by geometry (qemu) see every byte. With `hashDevice` the superblock and tree go to a
 * separate file instead (dmverity-vhd's `--hash-dev-vhd`), footed the same way.
 */
import { appendFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { TarReader } from '../../formats/tar/reader.js';
import { Ext4Writer, type Ext4WriterOptions } from '../../formats/ext4/writer.js';
import { buildVerityTree, encodeVeritySuperblock, VERITY_BLOCK } from '../../formats/verity/verity.js';
import { chsExactSize, encodeVhdFooter } from '../../formats/vhd/footer.js';
import { VerifyingCounter } from '../diff/blob.js';

export const LCOW_MAX_DISK_SIZE = 128 * 1024 ** 3;

export interface Tar2VhdOptions extends Ext4WriterOptions {
  verity?: boolean;
  /** append the fixed VHD footer (default true) */
  footer?: boolean;
  /** write the verity superblock + tree to this file instead of after the ext4 image */
  hashDevice?: string;
}

export interface Tar2VhdResult {
  /** bytes of the output file */
  size: number;
  /** bytes of the ext4 image at the start of the output */
  ext4Size: number;
  /** digest and size of the uncompressed tar that was read */
  digest: string;
  tarSize: number;
  rootHash?: string;
  /** where the verity superblock starts (in the output, or 0 in the hash device) */
  hashOffset?: number;
}

function footFile(path: string, seed: string): number {
  const len = statSync(path).size;
  const padded = chsExactSize(len);
  if (padded > len) truncateSync(path, padded);
  appendFileSync(path, encodeVhdFooter(padded, { seed }));
  return padded + 512;
}

export async function tar2vhd(tar: Readable, out: string, opts: Tar2VhdOptions = {}): Promise<Tar2VhdResult> {
  const counter = new VerifyingCounter('sha256');
  tar.on('error', (e) => counter.destroy(e));
  tar.pipe(counter);
  const reader = new TarReader(counter);
  const w = new Ext4Writer(out, opts);
  let ext4;
  try {
    for await (const e of reader) await w.add(e);
    await reader.drain();
    ext4 = w.close(counter.digest());
  } catch (err) {
    w.abort();
    await reader.close().catch(() => undefined);
    throw err;
  }
  const result: Tar2VhdResult = { size: ext4.size, ext4Size: ext4.size, digest: counter.digest(), tarSize: counter.bytes };
  if (opts.verity) {
    const tree = await buildVerityTree(out, ext4.size);
    const sb = Buffer.alloc(VERITY_BLOCK);
    encodeVeritySuperblock(tree).copy(sb);
    if (opts.hashDevice) {
      writeFileSync(opts.hashDevice, Buffer.concat([sb, tree.tree]));
      if (opts.footer !== false) footFile(opts.hashDevice, `${result.digest}:hash`);
      result.hashOffset = 0;
    } else {
      appendFileSync(out, Buffer.concat([sb, tree.tree]));
      result.hashOffset = ext4.size;
    }
    result.rootHash = tree.rootHash.toString('hex');
  }
  result.size = opts.footer === false ? statSync(out).size : footFile(out, result.digest);
  return result;
}
