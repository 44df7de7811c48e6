/**
 * dm-verity level 0 kept in a file (verity.ts Level0File): for level-0 sizes around every
 * boundary (one hash block, exactly full blocks, one hash more, several levels), hashes put in
 * any order give the same root hash and the same tree bytes as verityTreeFromLevel0 over the
 * hashes in memory; missing hashes and use after close are refused.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { Level0File, verityTreeFromLevel0 } from '../../../src/formats/verity/verity.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { tempDir } from '../../helpers/tools.js';

/** Deterministic stand-ins for level-0 hashes: 32 bytes a block. */
function hashes(blocks: number): Buffer {
  const out = Buffer.alloc(blocks * 32);
  for (let i = 0; i < blocks; i++) createHash('sha256').update(`block ${i}`).digest().copy(out, i * 32);
  return out;
}

describe('Level0File', () => {
  for (const blocks of [1, 127, 128, 129, 128 * 128, 128 * 128 + 7, 3 * 128 * 128 + 1]) {
    test(`${blocks} data blocks: the same root and tree as in memory`, () => {
      const t = tempDir();
      try {
        const salt = Buffer.from('a salt of some length');
        const level0 = hashes(blocks);
        const want = verityTreeFromLevel0(level0, blocks, salt);
        const f = new Level0File(t.path);
        assert.deepEqual(readdirSync(t.path), [], 'the file is unlinked at once');
        // put in runs of varying length, last run first
        const runs: [number, number][] = [];
        for (let b = 0, n = 1; b < blocks; b += n, n = (n * 3) % 1000 || 1) runs.push([b, Math.min(blocks, b + n)]);
        for (const [from, to] of runs.reverse()) f.put(from, level0.subarray(from * 32, to * 32));
        const { rootHash, upper, level0Bytes } = f.finish(blocks, salt);
        assert.equal(rootHash.toString('hex'), want.rootHash.toString('hex'));
        assert.equal(level0Bytes, Math.ceil(blocks / 128) * 4096);
        const head = Buffer.from('superblock');
        const out = join(t.path, 'tree');
        const fd = openSync(out, 'w');
        const end = f.writeTree(fd, 100, head, upper, level0Bytes);
        closeSync(fd);
        const bytes = readFileSync(out);
        assert.equal(end, bytes.length);
        assert.ok(bytes.subarray(0, 100).every((x) => x === 0));
        assert.ok(bytes.subarray(100, 100 + head.length).equals(head));
        assert.ok(bytes.subarray(100 + head.length).equals(want.tree), 'upper levels then level 0, padded');
        f.close();
      } finally {
        t.cleanup();
      }
    });
  }

  test('missing hashes and use after close are refused', () => {
    const t = tempDir();
    try {
      const f = new Level0File(t.path);
      f.put(0, hashes(200));
      assert.throws(() => f.finish(300), (e: Error) => kindOf(e) === 'InvalidArgument' && /level-0 hashes end at byte 6400 of 9600/.test(e.message));
      assert.throws(() => f.finish(0), (e: Error) => kindOf(e) === 'InvalidArgument');
      f.close();
      assert.throws(() => f.put(0, hashes(1)), (e: Error) => kindOf(e) === 'InvalidArgument' && /closed/.test(e.message));
    } finally {
      t.cleanup();
    }
  });
});
