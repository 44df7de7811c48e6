/**
 * VHDX benchmark: raw → dynamic VHDX of a 2 GiB half-sparse raw image (64 MiB of data, then a
 * 64 MiB hole, repeated), `winsnap vhdx convert` against `qemu-img convert -O vhdx` with the
 * same 32 MiB block size, in the same run. Runs alternate (ours, qemu) so both see the same
 * page-cache and writeback conditions; the best of N is reported. Neither side fsyncs.
 * Also reported: VHDX → raw, and both outputs are checked to hold the same data.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { measureAlternating, measureFresh, report, WINSNAP_BIN } from './lib/harness.js';

const MiB = 1024 * 1024;
const SIZE = 2048 * MiB;
const RUNS = Number(process.env.VHDX_BENCH_RUNS ?? 3);

function makeRaw(path: string): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, SIZE);
  const chunk = randomBytes(4 * MiB);
  for (let off = 0; off < SIZE; off += 128 * MiB) {
    for (let o = 0; o < 64 * MiB; o += chunk.length) {
      chunk.writeUInt32LE(off + o, 0); // every chunk distinct
      writeSync(fd, chunk, 0, chunk.length, off + o);
    }
  }
  closeSync(fd);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-vhdx-bench-'));
  try {
    const raw = join(dir, 'half-sparse.raw');
    makeRaw(raw);
    const ours = join(dir, 'ours.vhdx');
    const theirs = join(dir, 'qemu.vhdx');
    const oursCmd = [process.execPath, WINSNAP_BIN, 'vhdx', 'convert', raw, ours, '--block-size', '32MiB', '--force'];
    const qemuCmd = ['qemu-img', 'convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=33554432', raw, theirs];
    const fresh = (argv: string[], out: string) => () => measureFresh(argv, out);
    const [o, q] = await measureAlternating(RUNS, fresh(oursCmd, ours), fresh(qemuCmd, theirs));
    report({ name: 'raw → VHDX, 2 GiB half-sparse', ours: o, baselineName: 'qemu-img convert', baseline: q, target: '≤ 1.0x' });

    const cmp = spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'vhdx', ours, theirs], { encoding: 'utf8' });
    console.log(`outputs hold the same data (qemu-img compare): ${cmp.status === 0 ? 'yes' : `NO: ${cmp.stdout}${cmp.stderr}`}`);

    const oursRaw = join(dir, 'ours.raw');
    const qemuRaw = join(dir, 'qemu.raw');
    const [o2, q2] = await measureAlternating(
      RUNS,
      fresh([process.execPath, WINSNAP_BIN, 'vhdx', 'convert', ours, oursRaw, '--force'], oursRaw),
      fresh(['qemu-img', 'convert', '-f', 'vhdx', '-O', 'raw', ours, qemuRaw], qemuRaw),
    );
    report({ name: 'VHDX → raw, 2 GiB half-sparse', ours: o2, baselineName: 'qemu-img convert', baseline: q2 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
