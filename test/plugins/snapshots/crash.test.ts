/**
 * Crash safety (DESIGN.md): a child doing prepare/commit/remove in a loop is SIGKILLed at
 * random moments, 50 times on one root. After each kill the store must open, `cleanup` must
 * leave no directory without a snapshot row (and no row without its directory), and every
 * acknowledged commit must be present with its data intact.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WindowsSnapshotter } from '../../../src/plugins/snapshots/windows/windows.js';
import type { Info } from '../../../src/services/snapshots.js';

const WORKER = fileURLToPath(new URL('../../helpers/crash-worker.ts', import.meta.url));
const KILLS = 50;

function runAndKill(root: string, log: string, run: number, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // every other run widens the delicate windows so kills often land inside them
    const env = { ...process.env, WINSNAP_CRASH_WINDOW_MS: run % 2 === 1 ? '25' : '0' };
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, root, log, String(run)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.once('data', () => setTimeout(() => child.kill('SIGKILL'), delayMs));
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`worker exited by itself (${code}): ${stderr}`));
    });
  });
}

test(`store survives ${KILLS} SIGKILLs at random moments`, { timeout: 600_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'winsnap-crash-'));
  const root = join(tmp, 'root');
  const log = join(tmp, 'acknowledged.log');
  writeFileSync(log, '');
  let acknowledgedTotal = 0;
  try {
    for (let run = 0; run < KILLS; run++) {
      await runAndKill(root, log, run, Math.floor(Math.random() * 400));
      const sn = new WindowsSnapshotter(root);
      try {
        await sn.cleanup();
        const infos: Info[] = [];
        await sn.walk((i) => void infos.push(i));
        const ids = sn.ms.read((tx) => tx.idMap());
        const dirs = readdirSync(join(root, 'snapshots')).sort();
        assert.deepEqual(dirs, [...ids.keys()].sort(), `run ${run}: directories == snapshot rows after cleanup`);
        const byName = new Map(infos.map((i) => [i.name, i]));
        for (const [id, key] of ids) {
          const info = byName.get(key)!;
          const dataFile = join(root, 'snapshots', id, 'data');
          if (info.kind === 'committed') {
            const name = key;
            assert.ok(existsSync(dataFile), `run ${run}: committed ${name} has its data`);
            assert.equal(readFileSync(dataFile, 'utf8'), `content of ${name}\n`.repeat(64), `run ${run}: ${name} intact`);
          }
        }
        const acknowledged = readFileSync(log, 'utf8').split('\n').filter(Boolean);
        for (const name of acknowledged) {
          const info = byName.get(name);
          assert.ok(info && info.kind === 'committed', `run ${run}: acknowledged commit ${name} survives`);
        }
        acknowledgedTotal = acknowledged.length;
      } finally {
        await sn.close();
      }
    }
    assert.ok(acknowledgedTotal > 0, 'the worker acknowledged commits (the kills were not all too early)');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
