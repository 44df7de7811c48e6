/**
 * Tar codec throughput against native tools on the same input, same run.
 *  - read: our TarReader pulling every body byte vs `cat F | tar -tf -` (GNU tar reads every
 *    byte from a pipe, no seeking) — for 50k small files and for 4 x 256 MiB files.
 *  - copy (read + re-encode into a pipe): our reader → TarWriter vs `bsdtar -cf - @F | cat`.
 * The corpus is built once under /tmp/winsnap-bench-tar (kept for reruns).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, measureBest, report } from './lib/harness.js';

const DIR = '/tmp/winsnap-bench-tar';
const WORKER = join(REPO_ROOT, 'bench/tar.worker.ts');

function sh(cmd: string): void {
  const r = spawnSync('bash', ['-c', cmd], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`failed: ${cmd}`);
}

function corpus(): { small: string; big: string } {
  const small = join(DIR, 'small.tar');
  const big = join(DIR, 'big.tar');
  if (!existsSync(small) || !existsSync(big)) {
    mkdirSync(DIR, { recursive: true });
    sh(`cd ${DIR} && python3 - <<'EOF'
import os, random
r = random.Random(1)
for d in range(200):
    p = f'small/d{d:03}'
    os.makedirs(p, exist_ok=True)
    for f in range(250):
        with open(f'{p}/f{f:03}.bin', 'wb') as fh:
            fh.write(os.urandom(r.randint(100, 8000)))
os.makedirs('big', exist_ok=True)
for i in range(4):
    with open(f'big/b{i}.bin', 'wb') as fh:
        for _ in range(256):
            fh.write(os.urandom(1 << 20))
EOF
tar --format=pax -cf small.tar small && tar --format=pax -cf big.tar big && rm -rf small big`);
  }
  return { small, big };
}

const { small, big } = corpus();
const node = process.execPath;
for (const [label, file] of [
  ['small files (50k x 0.1-8 KiB, 290 MB)', small],
  ['big files (4 x 256 MiB)', big],
] as const) {
  const ours = await measureBest(3, [node, '--import', 'tsx', WORKER, 'read', file], { cwd: REPO_ROOT });
  const base = await measureBest(3, ['bash', '-c', `cat '${file}' | tar -tf - > /dev/null`]);
  report({ name: `tar read, ${label}`, ours, baselineName: 'cat | tar -tf -', baseline: base });
}
for (const [label, file] of [
  ['small files', small],
  ['big files', big],
] as const) {
  // Both write into a pipe (bsdtar skips writing when its output is /dev/null).
  const ours = await measureBest(3, ['bash', '-c', `'${node}' --import tsx '${WORKER}' copy '${file}' | cat > /dev/null`], { cwd: REPO_ROOT });
  const base = await measureBest(3, ['bash', '-c', `bsdtar -cf - --format=pax '@${file}' | cat > /dev/null`]);
  report({ name: `tar copy (read + write), ${label}`, ours, baselineName: 'bsdtar -cf - @F | cat', baseline: base });
}
