/**
 * tar2vhd (issue 4): a ~200 MB / 30k-file tar of /usr/share/doc and /usr/share/man converted
 * to ext4 + VHD footer, against `cp` of the same tar (the I/O floor) and against the native
 * pipeline `tar -x` + `mke2fs -t ext4 -d DIR` (+ `veritysetup format` for --verity), in the
 * same run, with peak RSS. Targets: ≤ 3.0x cp without verity, ≤ 4.0x with, RSS ≤ 128 MiB.
 * The targets are judged on the command (`winsnap convert tar2vhd`, a process per layer).
 * Also reported, for information: the same conversion repeated inside one process (as
 * `winsnap serve` runs the lcow differ), first run and best warm run, against the same cp.
 * And peak RSS by entry count (generated tars of 100k to 500k small files): the target says
 * ≤ 128 MiB whatever the layer size, and memory grows with entries, not bytes.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WINSNAP_BIN, measure, measureBest, report } from './lib/harness.js';
import { manyFilesTar } from './lib/many-files-tar.js';

const DIR = '/tmp/winsnap-bench-tar2vhd';
mkdirSync(DIR, { recursive: true });
const tar = join(DIR, 'doc-man.tar');
if (!existsSync(tar)) {
  const r = spawnSync('tar', ['-cf', tar, '-C', '/usr/share', 'doc', 'man'], { stdio: 'inherit' });
  if (r.status !== 0 && !existsSync(tar)) throw new Error('could not build the input tar');
}
const count = spawnSync('bash', ['-c', `tar -tf ${tar} | wc -l`], { encoding: 'utf8' }).stdout.trim();
console.log(`input: ${tar}, ${(statSync(tar).size / 1e6).toFixed(0)} MB, ${count} entries`);

const out = join(DIR, 'out.vhd');
const cp = await measureBest(3, ['cp', tar, join(DIR, 'copy.tar')]);
const ours = await measureBest(3, [WINSNAP_BIN, 'convert', 'tar2vhd', '-i', tar, '-o', out, '--max-size', '128G']);
report({ name: 'tar2vhd (ext4 + VHD footer)', ours, baselineName: 'cp', baseline: cp, target: '≤ 3.0x, ≤ 128 MiB' });
const oursV = await measureBest(3, [WINSNAP_BIN, 'convert', 'tar2vhd', '-i', tar, '-o', out, '--verity', '--max-size', '128G']);
report({ name: 'tar2vhd --verity', ours: oursV, baselineName: 'cp', baseline: cp, target: '≤ 4.0x, ≤ 128 MiB' });

// in one long-lived process (bench/tar2vhd.inproc.mjs): the first run, then the best of the warm ones
const INPROC = fileURLToPath(new URL('./tar2vhd.inproc.mjs', import.meta.url));
for (const extra of [[], ['--verity']]) {
  const timesFile = join(DIR, 'inproc.json');
  const m = await measure([process.execPath, INPROC, timesFile, tar, out, '4', ...extra]);
  const times = JSON.parse(readFileSync(timesFile, 'utf8')) as number[];
  const warm = Math.min(...times.slice(1));
  const label = `tar2vhd${extra.length ? ' ' + extra.join(' ') : ''} in one process (4 runs)`;
  console.log(
    `${label}: first ${times[0]!.toFixed(3)} s, best warm ${warm.toFixed(3)} s (${(warm / cp.wallSeconds).toFixed(2)}x cp), peak RSS ${(m.maxRssKiB / 1024).toFixed(1)} MiB`,
  );
}

// native pipeline: extract, then mke2fs -d (size: what ours needed, plus 20% room for mke2fs' own metadata)
const tree = join(DIR, 'tree');
const img = join(DIR, 'native.img');
const size = `${Math.ceil((statSync(out).size * 1.4) / 1024 / 1024) + 64}M`;
const native = [
  'bash',
  '-c',
  `rm -rf ${tree} ${img} && mkdir ${tree} && tar -xf ${tar} -C ${tree} && mke2fs -q -t ext4 -O ^has_journal -d ${tree} ${img} ${size}`,
];
const nativeRun = await measureBest(3, native);
report({ name: 'tar2vhd', ours, baselineName: 'tar -x + mke2fs -d', baseline: nativeRun });
const nativeV = await measureBest(3, ['bash', '-c', `${native[2]} && veritysetup format ${img} ${join(DIR, 'native.hash')} > /dev/null`]);
report({ name: 'tar2vhd --verity', ours: oursV, baselineName: 'tar -x + mke2fs -d + veritysetup format', baseline: nativeV });
rmSync(tree, { recursive: true, force: true });

// peak RSS by entry count: directories of 500 files of a few bytes
for (const files of [100_000, 300_000, 500_000]) {
  const manyTar = join(DIR, `many-${files}.tar`);
  const entries = manyFilesTar(manyTar, files);
  const m = await measure([WINSNAP_BIN, 'convert', 'tar2vhd', '-i', manyTar, '-o', out, '--max-size', '128G']);
  const rss = m.maxRssKiB / 1024;
  console.log(`tar2vhd of ${entries} entries (${(statSync(manyTar).size / 1e6).toFixed(0)} MB): ${m.wallSeconds.toFixed(3)} s, peak RSS ${rss.toFixed(1)} MiB (target ≤ 128 MiB: ${rss <= 128 ? 'met' : 'NOT met'})`);
  rmSync(manyTar, { force: true });
}
