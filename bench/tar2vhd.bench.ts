/**
 * tar2vhd (issue 4): a ~200 MB / 30k-file tar of /usr/share/doc and /usr/share/man converted
 * to ext4 + VHD footer, against `cp` of the same tar (the I/O floor) and against the native
 * pipeline `tar -x` + `mke2fs -t ext4 -d DIR` (+ `veritysetup format` for --verity), in the
 * same run, with peak RSS. Targets: ≤ 3.0x cp without verity, ≤ 4.0x with, RSS ≤ 128 MiB.
 * The targets are judged on the command (`winsnap convert tar2vhd`, a process per layer).
 * `cp` writes a new file, as the conversion does (see measureFresh in lib/harness.ts): over an
 * existing copy, ext4's flush on close nearly triples its time. Also reported, for information:
 * the same conversion repeated inside one process (as `winsnap serve` runs the lcow differ),
 * first run and best warm run, against the same cp.
 * Optionally, upstream's Go tar2ext4 in the same runs: TAR2EXT4=/path/to/tar2ext4 (built from
 * hcsshim's cmd/tar2ext4; nothing is downloaded here), and TAR2EXT4_VERITY_FLAG naming its
 * dm-verity flag if the build has one (the upstream command has none).
 * And peak RSS by entry count (generated tars of 100k to 500k small files): the target says
 * ≤ 128 MiB whatever the layer size, and memory grows with entries, not bytes.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WINSNAP_BIN, measure, measureAlternating, measureBest, measureFresh, report } from './lib/harness.js';
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
const copy = join(DIR, 'copy.tar');
// Every run writes a new file (measureFresh), ours alternating with cp (and upstream's tar2ext4
// when TAR2EXT4 names a build of hcsshim's cmd/tar2ext4), so all see the same page-cache and
// writeback state. The cp baseline is the best of all its runs.
const RUNS = Number(process.env.TAR2VHD_BENCH_RUNS ?? 5);
const UPSTREAM = process.env.TAR2EXT4;
const convert = (extra: string[]) => () => measureFresh([WINSNAP_BIN, 'convert', 'tar2vhd', '-i', tar, '-o', out, ...extra, '--max-size', '128G'], out);
const cpNew = () => measureFresh(['cp', tar, copy], copy);
const upstreamOut = join(DIR, 'upstream.vhd');
const upstream = (extra: string[]) => () => measureFresh([UPSTREAM!, '-i', tar, '-o', upstreamOut, '-vhd', ...extra], upstreamOut);
// `cp` over an existing copy (see below): the copy is made if missing and the page cache's dirty
// pages written back (`sync`) before each timed run, outside it, as measureFresh does
const copyOver = join(DIR, 'copy-over.tar');
const cpOverRun = () => {
  if (!existsSync(copyOver)) spawnSync('cp', [tar, copyOver]);
  spawnSync('sync');
  return measure(['cp', tar, copyOver]);
};
const [ours, cp1, over1, up] = await measureAlternating(RUNS, convert([]), cpNew, cpOverRun, ...(UPSTREAM ? [upstream([])] : []));
const [oursV, cp2, over2, upV] = await measureAlternating(RUNS, convert(['--verity']), cpNew, cpOverRun, ...(UPSTREAM && process.env.TAR2EXT4_VERITY_FLAG ? [upstream([process.env.TAR2EXT4_VERITY_FLAG])] : []));
const cp = cp1!.wallSeconds <= cp2!.wallSeconds ? cp1! : cp2!;
const cpOver = over1!.wallSeconds <= over2!.wallSeconds ? over1! : over2!;
report({ name: 'tar2vhd (ext4 + VHD footer)', ours: ours!, baselineName: 'cp to a new file', baseline: cp, target: '≤ 3.0x, ≤ 128 MiB' });
report({ name: 'tar2vhd --verity', ours: oursV!, baselineName: 'cp to a new file', baseline: cp, target: '≤ 4.0x, ≤ 128 MiB' });
// The targets were set against upstream measuring "2.9–4.5x cp" here: only a cp over an
// existing copy gives upstream that ratio (against a cp to a new file it is ~9-13x; docs/lcow.md).
// Measured in the same alternating runs as ours (best of all its runs), from the seventh session
// on; before, as the best of three runs after the others, which drifted with writeback state
// (0.095-0.147 s).
report({ name: 'tar2vhd (ext4 + VHD footer)', ours: ours!, baselineName: 'cp over an existing copy', baseline: cpOver, target: '≤ 3.0x as the issue measured upstream' });
report({ name: 'tar2vhd --verity', ours: oursV!, baselineName: 'cp over an existing copy', baseline: cpOver, target: '≤ 4.0x as the issue measured upstream' });
if (up) {
  report({ name: 'tar2vhd (ext4 + VHD footer)', ours: ours!, baselineName: `upstream ${UPSTREAM} -vhd`, baseline: up });
  console.log(`upstream / cp to a new file: ${(up.wallSeconds / cp.wallSeconds).toFixed(2)}x; / cp over an existing copy: ${(up.wallSeconds / cpOver.wallSeconds).toFixed(2)}x`);
}
if (upV) report({ name: 'tar2vhd --verity', ours: oursV!, baselineName: `upstream ${UPSTREAM} -vhd ${process.env.TAR2EXT4_VERITY_FLAG}`, baseline: upV });
rmSync(copy, { force: true });
rmSync(copyOver, { force: true });
rmSync(upstreamOut, { force: true });

// in one long-lived process (bench/tar2vhd.inproc.mjs): the first run, then the best of the warm ones
const INPROC = fileURLToPath(new URL('./tar2vhd.inproc.mjs', import.meta.url));
for (const extra of [[], ['--verity']]) {
  const timesFile = join(DIR, 'inproc.json');
  const m = await measure([process.execPath, INPROC, timesFile, tar, out, '4', ...extra]);
  const times = JSON.parse(readFileSync(timesFile, 'utf8')) as number[];
  const warm = Math.min(...times.slice(1));
  const label = `tar2vhd${extra.length ? ' ' + extra.join(' ') : ''} in one process (4 runs)`;
  console.log(
    `${label}: first ${times[0]!.toFixed(3)} s, best warm ${warm.toFixed(3)} s (${(warm / cp.wallSeconds).toFixed(2)}x cp to a new file, ${(warm / cpOver.wallSeconds).toFixed(2)}x cp over a copy), peak RSS ${(m.maxRssKiB / 1024).toFixed(1)} MiB`,
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
