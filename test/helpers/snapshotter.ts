/** Shared set-up for the snapshotter tests: a snapshotter on a fresh root, and error-kind checks. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kindOf } from '../../src/services/errdefs.js';

/** A snapshotter opened on `<tmp>/root`; `dir(id)` is a snapshot directory; `done` closes and removes it all. */
export function freshSnapshotter<T extends { close(): Promise<void> }>(prefix: string, open: (root: string) => T) {
  const tmp = mkdtempSync(join(tmpdir(), `winsnap-${prefix}-`));
  const root = join(tmp, 'root');
  const sn = open(root);
  return {
    tmp,
    root,
    sn,
    dir: (id: string) => join(root, 'snapshots', id),
    done: async () => {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/** `p` rejects with an error of `kind` (and a message matching `re`). */
export async function rejectsKind(p: Promise<unknown>, kind: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.equal(kindOf(e), kind, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}
