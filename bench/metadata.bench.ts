/**
 * Metadata throughput: cycles of prepare + commit + stat + remove per second against the
 * `windows` snapshotter in process, through winsnap's gRPC server, and — with the same gRPC
 * client — against containerd's own snapshots service (its `native` snapshotter), started in
 * the same run. Unpack keys are used so every snapshotter does only metadata + directory work.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WindowsSnapshotter } from '../src/plugins/snapshots/windows/windows.js';
import type { Snapshotter } from '../src/services/snapshots.js';
import { WinsnapServer } from '../src/server/server.js';
import { MapRouter } from '../src/server/snapshots-service.js';
import { SnapshotsClient } from '../src/server/snapshots-client.js';
import { startContainerd } from './lib/containerd.js';
import { reportRate, mib } from './lib/harness.js';

const CYCLES = Number(process.env.BENCH_CYCLES ?? 400);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const GC_ROOT = { 'containerd.io/gc.root': '2026-01-01T00:00:00Z' };

async function cycles(sn: Snapshotter, tag: string, n: number, concurrency: number): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const key = `extract-${tag}-${i}`;
      const name = `${tag}-${i}`;
      // gc.root keeps containerd's garbage collector off the snapshots (ctr sets it too)
      await sn.prepare(key, '', { labels: GC_ROOT });
      await sn.commit(name, key, { labels: GC_ROOT });
      await sn.stat(name);
      await sn.remove(name);
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return n / s;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'winsnap-bench-meta-'));
  try {
    const inproc = new WindowsSnapshotter(join(tmp, 'inproc'));
    await cycles(inproc, 'warm', 50, 1);
    const inSeq = await cycles(inproc, 'seq', CYCLES, 1);
    await inproc.close();

    const served = new WindowsSnapshotter(join(tmp, 'served'));
    const server = new WinsnapServer({ router: new MapRouter(new Map([['windows', served]])) });
    const sock = join(tmp, 'w.sock');
    await server.listen(sock);
    const client = SnapshotsClient.connect(sock, 'windows');
    await cycles(client, 'warm', 50, 1);
    const oursSeq = await cycles(client, 'seq', CYCLES, 1);
    const oursPar = await cycles(client, 'par', CYCLES, CONCURRENCY);

    const ctd = await startContainerd(join(tmp, 'ctd'));
    let ctdSeq: number;
    let ctdPar: number;
    try {
      const native = SnapshotsClient.connect(ctd.socket, 'native', { namespace: 'bench' });
      await cycles(native, 'warm', 50, 1);
      ctdSeq = await cycles(native, 'seq', CYCLES, 1);
      ctdPar = await cycles(native, 'par', CYCLES, CONCURRENCY);
      await native.close();
    } finally {
      await ctd.stop();
    }
    await client.close();
    await server.close();
    await served.close();

    console.log(`windows snapshotter in-process: ${inSeq.toFixed(0)} cycles/s (prepare+commit+stat+remove, sequential)`);
    reportRate('metadata over gRPC, sequential', 'cycles/s', oursSeq, 'containerd native over gRPC', ctdSeq, '(target >= 1.0x)');
    reportRate(`metadata over gRPC, ${CONCURRENCY} in flight`, 'cycles/s', oursPar, 'containerd native over gRPC', ctdPar, '(target >= 1.0x)');
    console.log(`peak RSS of the bench process (winsnap side, in-process + server): ${mib(process.resourceUsage().maxRSS)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
