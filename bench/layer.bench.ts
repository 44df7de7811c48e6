/**
 * Windows layer apply and export (issue 3): a generated 1 GiB, 50 000-file gzip layer
 * applied as a layer directory vs `tar -xzf` of the same blob, and exported again with
 * parallel gzip vs `tar -czf` of the same tree, in the same run, with peak RSS.
 * Targets: apply ≤ 1.3x, export ≤ 1.0x, peak RSS ≤ 256 MiB.
 */
import { join } from 'node:path';
import { REPO_ROOT, measure, measureAlternating, measureBest, report } from './lib/harness.js';
import { LAYER_DIR, freshDir, generatedLayerBlob, layerLabel, layerWorker } from './lib/layer-blob.js';

const blob = await generatedLayerBlob();

// apply, alternating so both see the same cache state; best of 3
const [tarApply, oursApply] = await measureAlternating(
  3,
  () => measure(['tar', '-xzf', blob, '-C', freshDir('tar-tree')]),
  () => measure(layerWorker('apply', blob, join(freshDir('ours'), 'layer')), { cwd: REPO_ROOT }),
);
report({ name: `apply ${layerLabel()}`, ours: oursApply, baselineName: 'tar -xzf', baseline: tarApply, target: '≤ 1.3x, ≤ 256 MiB' });

const layer = join(LAYER_DIR, 'ours', 'layer');
const oursExport = await measureBest(3, layerWorker('export', layer, join(LAYER_DIR, 'export-ours.tar.gz')), { cwd: REPO_ROOT });
const tarExport = await measureBest(3, ['tar', '-czf', join(LAYER_DIR, 'export-tar.tar.gz'), '-C', join(LAYER_DIR, 'tar-tree'), '.']);
report({ name: 'export the same layer, gzip', ours: oursExport, baselineName: 'tar -czf', baseline: tarExport, target: '≤ 1.0x, ≤ 256 MiB' });
