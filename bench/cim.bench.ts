/**
 * tar → CIM (issue 5): the generated 1 GiB, 50 000-file gzip Windows layer of
 * bench/layer.bench.ts written as a CIM layer (the cimfs differ's path) vs `tar -xzf` of the
 * same blob, in the same run, with peak RSS. Targets: ≤ 1.5x, peak RSS ≤ 256 MiB.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, measure, measureAlternating, report } from './lib/harness.js';
import { LAYER_DIR, freshDir, generatedLayerBlob, layerLabel, layerWorker } from './lib/layer-blob.js';

const blob = await generatedLayerBlob();
const [tar, ours] = await measureAlternating(
  3,
  () => measure(['tar', '-xzf', blob, '-C', freshDir('tar-tree')]),
  () => measure(layerWorker('cim', blob, freshDir('cim-out')), { cwd: REPO_ROOT }),
);
report({ name: `tar → CIM, ${layerLabel()}`, ours, baselineName: 'tar -xzf', baseline: tar, target: '≤ 1.5x, ≤ 256 MiB' });
rmSync(join(LAYER_DIR, 'cim-out'), { recursive: true, force: true });
