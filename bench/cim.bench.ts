/**
 * tar → CIM (issue 5): the generated 1 GiB, 50 000-file gzip Windows layer of
 * bench/layer.bench.ts written as a CIM layer (the cimfs differ's path) vs `tar -xzf` of the
 * same blob, in the same run, with peak RSS. Targets: ≤ 1.5x, peak RSS ≤ 256 MiB.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, measure, report, type Measurement } from './lib/harness.js';

const DIR = '/tmp/winsnap-bench-layer';
const WORKER = join(REPO_ROOT, 'bench/layer.worker.ts');
const FILES = Number(process.env.BENCH_LAYER_FILES ?? 50_000);
const BYTES = Number(process.env.BENCH_LAYER_BYTES ?? 1024 ** 3);
const worker = (...args: string[]) => [process.execPath, '--import', 'tsx', WORKER, ...args];

mkdirSync(DIR, { recursive: true });
const blob = join(DIR, `layer-${FILES}-${BYTES}.tar.gz`);
if (!existsSync(blob)) {
  console.log(`generating ${blob} (${FILES} files, ${BYTES} bytes)…`);
  await measure(worker('gen', blob, String(FILES), String(BYTES)), { cwd: REPO_ROOT });
}
const fresh = (name: string) => {
  const p = join(DIR, name);
  rmSync(p, { recursive: true, force: true });
  mkdirSync(p, { recursive: true });
  return p;
};
let ours: Measurement | undefined;
let tar: Measurement | undefined;
for (let i = 0; i < 3; i++) {
  const t = await measure(['tar', '-xzf', blob, '-C', fresh('tar-tree')]);
  const o = await measure(worker('cim', blob, fresh('cim-out')), { cwd: REPO_ROOT });
  if (!tar || t.wallSeconds < tar.wallSeconds) tar = { ...t, maxRssKiB: Math.max(t.maxRssKiB, tar?.maxRssKiB ?? 0) };
  if (!ours || o.wallSeconds < ours.wallSeconds) ours = { ...o, maxRssKiB: Math.max(o.maxRssKiB, ours?.maxRssKiB ?? 0) };
}
report({ name: `tar → CIM, ${FILES} files / ${(BYTES / 1024 ** 3).toFixed(2)} GiB gzip layer`, ours: ours!, baselineName: 'tar -xzf', baseline: tar!, target: '≤ 1.5x, ≤ 256 MiB' });
rmSync(join(DIR, 'cim-out'), { recursive: true, force: true });
