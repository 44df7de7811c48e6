/**
 * buildVerityTree over a file: with `zeroFrom`, the blocks from there on are taken to be zero
 * without being read, and the tree is the one reading them gives when they are zero; the root
 * hash is the one `veritysetup format` computes for the same data and salt.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildVerityTree } from '../../../src/formats/verity/verity.js';
import { runTool, tempDir } from '../../helpers/tools.js';

test('zeroFrom: the zero tail hashed unread gives the same tree; veritysetup agrees on the root', async () => {
  const t = tempDir();
  try {
    const salt = randomBytes(32);
    const file = join(t.path, 'data');
    writeFileSync(file, randomBytes(100 * 4096));
    truncateSync(file, (100 + 20_000) * 4096); // a hole: 20,000 zero blocks
    const size = (100 + 20_000) * 4096;
    const read = await buildVerityTree(file, size, { salt });
    for (const zeroFrom of [100, 150, 20_100, 30_000]) {
      const unread = await buildVerityTree(file, size, { salt, zeroFrom });
      assert.ok(unread.rootHash.equals(read.rootHash), `zeroFrom ${zeroFrom}`);
      assert.ok(unread.tree.equals(read.tree), `zeroFrom ${zeroFrom}`);
    }
    // not read: data blocks past zeroFrom are hashed as zeros
    assert.ok(!(await buildVerityTree(file, size, { salt, zeroFrom: 50 })).rootHash.equals(read.rootHash), 'blocks 50–99 are not zero');

    const hashFile = join(t.path, 'hash');
    const r = runTool('veritysetup', ['format', file, hashFile, `--salt=${salt.toString('hex')}`, '--data-block-size=4096', '--hash-block-size=4096']);
    assert.equal(r.status, 0, r.stderr);
    const root = /Root hash:\s+([0-9a-f]+)/.exec(r.stdout.toString())?.[1];
    assert.equal(root, read.rootHash.toString('hex'));
  } finally {
    t.cleanup();
  }
});
