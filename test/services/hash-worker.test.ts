/**
 * The hashing worker: digests and dm-verity level-0 hashes computed on another thread must
 * equal node:crypto computed here, block by block; blocks past the end hash as zero blocks;
 * level-0 hashes written to a file land where their blocks say; blocks known to be zero
 * (zeroFrom) get the zero block's hash unread; failures surface as
 * Unavailable errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { HashWorker } from '../../src/services/hash-worker.js';
import { kindOf } from '../../src/services/errdefs.js';

describe('HashWorker', () => {
  let dir = '';
  let file = '';
  let data: Buffer;
  let w: HashWorker;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'winsnap-hw-'));
    file = join(dir, 'data');
    data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(4096 * 3), randomBytes(1000)]);
    writeFileSync(file, data);
    w = new HashWorker();
  });
  after(async () => {
    await w.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('digestFile gives the file digest and length', async () => {
    const r = await w.digestFile(file);
    assert.equal(r.digest, `sha256:${createHash('sha256').update(data).digest('hex')}`);
    assert.equal(r.bytes, data.length);
    assert.equal((await w.digestFile(file, 'sha512')).digest, `sha512:${createHash('sha512').update(data).digest('hex')}`);
  });

  test('verityLevel0 hashes salt ‖ block for each block of a range; past the end the block is zeros', async () => {
    const salt = randomBytes(32);
    const blocks = Math.ceil(data.length / 4096) + 2; // two blocks past the end
    const from = 5;
    const got = await w.verityLevel0(file, from, blocks, salt);
    assert.equal(got.length, (blocks - from) * 32);
    for (let b = from; b < blocks; b++) {
      const block = Buffer.alloc(4096);
      if (b * 4096 < data.length) data.copy(block, 0, b * 4096, Math.min(data.length, (b + 1) * 4096));
      const want = createHash('sha256').update(salt).update(block).digest();
      assert.ok(got.subarray((b - from) * 32, (b - from + 1) * 32).equals(want), `block ${b}`);
    }
  });

  test('without the native helper (node:crypto per block) the level-0 hashes are the same', async () => {
    const salt = randomBytes(32);
    const blocks = Math.ceil(data.length / 4096) + 1;
    const plain = new HashWorker({ native: false });
    try {
      const a = await plain.verityLevel0(file, 3, blocks, salt);
      const b = await w.verityLevel0(file, 3, blocks, salt);
      assert.ok(a.equals(b));
      const block = data.subarray(3 * 4096, 4 * 4096);
      assert.ok(a.subarray(0, 32).equals(createHash('sha256').update(salt).update(block).digest()));
    } finally {
      await plain.close();
    }
  });

  test('verityLevel0ToFile writes the same hashes to a file at 32 bytes a block, runs in any order', async () => {
    const salt = randomBytes(32);
    const blocks = Math.ceil(data.length / 4096) + 2;
    const want = await w.verityLevel0(file, 0, blocks, salt);
    const out = join(dir, 'level0');
    const fd = openSync(out, 'w+');
    try {
      // a run much longer than the worker's 1 MiB read buffer, then the rest before it
      await Promise.all([w.verityLevel0ToFile(file, 300, blocks, salt, fd), w.verityLevel0ToFile(file, 0, 300, salt, fd)]);
    } finally {
      closeSync(fd);
    }
    assert.ok(readFileSync(out).equals(want));
  });

  test('with zeroFrom, blocks from there on get the zero block\'s hash without being read (both forms)', async () => {
    const salt = randomBytes(32);
    // a file whose last 3000 blocks are a hole (zeros), and blocks past its end
    const sparse = join(dir, 'sparse');
    const head = randomBytes(40 * 4096);
    writeFileSync(sparse, head);
    truncateSync(sparse, (40 + 3000) * 4096);
    const blocks = 40 + 3000 + 2;
    const want = await w.verityLevel0(sparse, 0, blocks, salt);
    // any zeroFrom at or past the hole's start (40), also past the end or before `from`
    for (const zeroFrom of [40, 700, blocks, blocks + 5]) {
      assert.ok((await w.verityLevel0(sparse, 7, blocks, salt, zeroFrom)).equals(want.subarray(7 * 32)), `returned, zeroFrom ${zeroFrom}`);
      assert.ok((await w.verityLevel0(sparse, 900, blocks, salt, zeroFrom)).equals(want.subarray(900 * 32)), `from past zeroFrom ${zeroFrom}`);
      const out = join(dir, `level0-${zeroFrom}`);
      const fd = openSync(out, 'w+');
      try {
        await w.verityLevel0ToFile(sparse, 0, blocks, salt, fd, zeroFrom);
      } finally {
        closeSync(fd);
      }
      assert.ok(readFileSync(out).equals(want), `to a file, zeroFrom ${zeroFrom}`);
    }
    // and it really is not read: a non-zero block past zeroFrom still hashes as zeros
    const zeroHash = createHash('sha256').update(salt).update(Buffer.alloc(4096)).digest();
    const got = await w.verityLevel0(file, 0, 4, salt, 2);
    assert.ok(got.subarray(64, 96).equals(zeroHash));
    assert.ok(!got.subarray(0, 32).equals(zeroHash));
  });

  test('a missing file is an Unavailable error naming it; the worker keeps serving', async () => {
    await assert.rejects(w.digestFile(join(dir, 'nope')), (e: Error) => kindOf(e) === 'Unavailable' && /nope/.test(e.message));
    assert.equal((await w.digestFile(file)).bytes, data.length);
  });

  test('after close, requests fail instead of hanging', async () => {
    const w2 = new HashWorker();
    await w2.close();
    await assert.rejects(w2.digestFile(file), (e: Error) => kindOf(e) === 'Unavailable');
  });

  test('works in a host process started with --input-type=module (the flag is not handed to the worker)', () => {
    const src = new URL('../../src/services/hash-worker.ts', import.meta.url).href;
    const code = `const { HashWorker } = await import(${JSON.stringify(src)}); const w = new HashWorker(); try { console.log((await w.digestFile(${JSON.stringify(file)})).digest); } finally { await w.close(); }`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { encoding: 'utf8' });
    assert.equal(out.trim(), `sha256:${createHash('sha256').update(data).digest('hex')}`);
  });
});
