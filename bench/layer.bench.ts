/**
 * Windows layer apply and export (issue 3): a generated 1 GiB, 50 000-file gzip layer
 * applied as a layer directory vs `tar -xzf` of the same blob, and exported again with
 * parallel gzip vs `tar -czf` of the same tree, in the same run, with peak RSS.
 * Targets: apply ≤ 1.3x, export ≤ 1.0x, peak RSS ≤ 256 MiB.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, measure, measureBest, report, type Measurement } from './lib/harness.js';

const DIR = '/tmp/winsnap-bench-layer';
const WORKER = join(REPO_ROOT, 'bench/layer.worker.ts');
const FILES = Number(process.env.BENCH_LAYER_FILES ?? 50_000);
const BYTES = Number(process.env.BENCH_LAYER_BYTES ?? 1024 ** 3);
const node = process.execPath;
const worker = (...args: string[]) => [node, '--import', 'tsx', WORKER, ...args];

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

// apply, alternating so both see the same cache state; best of 3
let oursApply: Measurement | undefined;
let tarApply: Measurement | undefined;
for (let i = 0; i < 3; i++) {
  const t = await measure(['tar', '-xzf', blob, '-C', fresh('tar-tree')]);
  const o = await measure(worker('apply', blob, join(fresh('ours'), 'layer')), { cwd: REPO_ROOT });
  if (!tarApply || t.wallSeconds < tarApply.wallSeconds) tarApply = { ...t, maxRssKiB: Math.max(t.maxRssKiB, tarApply?.maxRssKiB ?? 0) };
  if (!oursApply || o.wallSeconds < oursApply.wallSeconds) oursApply = { ...o, maxRssKiB: Math.max(o.maxRssKiB, oursApply?.maxRssKiB ?? 0) };
}
report({ name: `apply ${FILES} files / ${(BYTES / 1024 ** 3).toFixed(2)} GiB gzip layer`, ours: oursApply!, baselineName: 'tar -xzf', baseline: tarApply!, target: '≤ 1.3x, ≤ 256 MiB' });

const layer = join(DIR, 'ours', 'layer');
const oursExport = await measureBest(3, worker('export', layer, join(DIR, 'export-ours.tar.gz')), { cwd: REPO_ROOT });
const tarExport = await measureBest(3, ['tar', '-czf', join(DIR, 'export-tar.tar.gz'), '-C', join(DIR, 'tar-tree'), '.']);
report({ name: 'export the same layer, gzip', ours: oursExport, baselineName: 'tar -czf', baseline: tarExport, target: '≤ 1.0x, ≤ 256 MiB' });
