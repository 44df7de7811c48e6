/**
 * Child process for the crash test: loops prepare / write / commit / remove on a `windows`
 * snapshotter root until killed. Durable snapshots `keep-<run>-<i>` are never removed; after
 * each commit returns their name is appended to the log, so the parent knows which commits
 * were acknowledged. Every snapshot holds a file `data` whose content is derived from its
 * key, so the parent can check it is intact.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WindowsSnapshotter } from '../../src/plugins/snapshots/windows/windows.js';

const [root, log, run] = process.argv.slice(2) as [string, string, string];
const sn = new WindowsSnapshotter(root);

function fill(mountSource: string, name: string): void {
  writeFileSync(join(mountSource, 'data'), `content of ${name}\n`.repeat(64));
}

process.stdout.write('ready\n');
for (let i = 0; ; i++) {
  const keep = `keep-${run}-${i}`;
  const m = await sn.prepare(`extract-${keep}`, '');
  fill(m[0]!.source, keep);
  await sn.commit(keep, `extract-${keep}`);
  appendFileSync(log, `${keep}\n`);

  const churn = `churn-${run}-${i}`;
  const c = await sn.prepare(`extract-${churn}`, keep);
  fill(c[0]!.source, churn);
  await sn.commit(churn, `extract-${churn}`);
  await sn.view(`extract-view-${churn}`, churn);
  await sn.remove(`extract-view-${churn}`);
  await sn.remove(churn);
}
