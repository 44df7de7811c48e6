/**
 * The generated Windows layer the layer and CIM benchmarks share: a gzip blob of FILES files /
 * BYTES bytes (env BENCH_LAYER_FILES / BENCH_LAYER_BYTES, default 50 000 / 1 GiB), made once by
 * bench/layer.worker.ts and kept under /tmp/winsnap-bench-layer.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, measure } from './harness.js';

export const LAYER_DIR = '/tmp/winsnap-bench-layer';
export const FILES = Number(process.env.BENCH_LAYER_FILES ?? 50_000);
export const BYTES = Number(process.env.BENCH_LAYER_BYTES ?? 1024 ** 3);
const WORKER = join(REPO_ROOT, 'bench/layer.worker.ts');

/** argv running a layer.worker.ts command through tsx. */
export const layerWorker = (...args: string[]): string[] => [process.execPath, '--import', 'tsx', WORKER, ...args];

/** The blob's path, generated on first use. */
export async function generatedLayerBlob(): Promise<string> {
  mkdirSync(LAYER_DIR, { recursive: true });
  const blob = join(LAYER_DIR, `layer-${FILES}-${BYTES}.tar.gz`);
  if (!existsSync(blob)) {
    console.log(`generating ${blob} (${FILES} files, ${BYTES} bytes)…`);
    await measure(layerWorker('gen', blob, String(FILES), String(BYTES)), { cwd: REPO_ROOT });
  }
  return blob;
}

/** An empty directory `name` under the bench directory (emptied if it exists). */
export function freshDir(name: string): string {
  const p = join(LAYER_DIR, name);
  rmSync(p, { recursive: true, force: true });
  mkdirSync(p, { recursive: true });
  return p;
}

export const layerLabel = (): string => `${FILES} files / ${(BYTES / 1024 ** 3).toFixed(2)} GiB gzip layer`;
