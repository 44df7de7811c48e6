/**
 * readFileChunks: the chunks concatenate to the file for any size (empty, exact multiples,
 * a short tail), the buffers really are reused (a ring), and a missing file fails; the same
 * for the synchronous reads (`sync`), which also let the event loop run every 64 MiB.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileChunks } from '../../../src/services/fsutil/ring-reader.js';
import { StreamFingerprint } from '../../../src/formats/checksum.js';

describe('readFileChunks', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'winsnap-ring-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const sync of [false, true]) {
    test(`chunks concatenate to the file, whatever its size${sync ? ' (sync)' : ''}`, async () => {
      for (const size of [0, 1, 4096, 4097, 8192 * 3, 8192 * 3 + 17]) {
        const data = randomBytes(size);
        const p = join(dir, `f${size}`);
        writeFileSync(p, data);
        const parts: Buffer[] = [];
        for await (const c of readFileChunks(p, { chunkSize: 8192, slots: 3, sync })) {
          assert.ok(c.length > 0 && c.length <= 8192);
          parts.push(Buffer.from(c)); // copies: the ring reuses its buffers
        }
        assert.ok(Buffer.concat(parts).equals(data), `size ${size}`);
      }
    });
  }

  test('sync: the previous chunk stays intact while the consumer works on the next', async () => {
    const data = randomBytes(4096 * 7 + 100);
    const p = join(dir, 'sync-prev');
    writeFileSync(p, data);
    let prev: Buffer | undefined;
    let prevAt = 0;
    let at = 0;
    const buffers = new Set<ArrayBufferLike>();
    for await (const c of readFileChunks(p, { chunkSize: 4096, sync: true })) {
      if (prev) assert.ok(prev.equals(data.subarray(prevAt, prevAt + prev.length)), `chunk at ${prevAt} was overwritten`);
      assert.ok(c.equals(data.subarray(at, at + c.length)), `chunk at ${at}`);
      buffers.add(c.buffer);
      prev = c;
      prevAt = at;
      at += c.length;
    }
    assert.equal(at, data.length);
    assert.equal(buffers.size, 2, 'two buffers, used in turn');
  });

  test('sync: the event loop gets a turn within the first 64 MiB + a chunk', async () => {
    const p = join(dir, 'sync-yield');
    writeFileSync(p, Buffer.alloc((64 << 20) + (3 << 20), 1));
    let turned = false;
    setImmediate(() => (turned = true));
    let at = 0;
    let turnedAt = -1;
    for await (const c of readFileChunks(p, { sync: true })) {
      at += c.length;
      if (turned && turnedAt < 0) turnedAt = at;
    }
    assert.ok(turnedAt > 0 && turnedAt <= (64 << 20) + (512 << 10), `the event loop ran after ${turnedAt} bytes`);
  });

  test('the buffers are a ring: chunk k and chunk k + slots share memory', async () => {
    const p = join(dir, 'ring');
    writeFileSync(p, randomBytes(4096 * 10));
    const seen: ArrayBufferLike[] = [];
    for await (const c of readFileChunks(p, { chunkSize: 4096, readAhead: 1, slots: 3 })) seen.push(c.buffer);
    assert.equal(seen.length, 10);
    assert.equal(seen[0], seen[3]);
    assert.notEqual(seen[0], seen[1]);
    assert.notEqual(seen[1], seen[2]);
  });

  test('with reads ahead, the previous chunk stays intact while the consumer works on the next', async () => {
    const data = randomBytes(4096 * 25 + 100);
    const p = join(dir, 'ahead');
    writeFileSync(p, data);
    for (const readAhead of [1, 2, 3]) {
      let prev: Buffer | undefined;
      let prevAt = 0;
      let at = 0;
      const buffers = new Set<ArrayBufferLike>();
      for await (const c of readFileChunks(p, { chunkSize: 4096, readAhead })) {
        // let the reads in flight land before looking at the previous chunk
        await new Promise((resolve) => setImmediate(resolve));
        if (prev) assert.ok(prev.equals(data.subarray(prevAt, prevAt + prev.length)), `readAhead ${readAhead}: chunk at ${prevAt} was overwritten`);
        assert.ok(c.equals(data.subarray(at, at + c.length)), `readAhead ${readAhead}: chunk at ${at}`);
        buffers.add(c.buffer);
        prev = c;
        prevAt = at;
        at += c.length;
      }
      assert.equal(at, data.length);
      assert.equal(buffers.size, readAhead + 2, 'a ring of readAhead + 2 buffers');
    }
  });

  test('a missing file rejects', async () => {
    for (const sync of [false, true]) {
      await assert.rejects(async () => {
        for await (const _ of readFileChunks(join(dir, 'missing'), { sync })) void _;
      }, /ENOENT/);
    }
  });
});

describe('readFileChunks with a fingerprint', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'winsnap-ring-fp-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('feeds every chunk, in order, before yielding it: the fingerprint of the whole file', async () => {
    for (const size of [0, 1, 8192, 8192 * 5 + 17]) {
      const data = randomBytes(size);
      const p = join(dir, `f${size}`);
      writeFileSync(p, data);
      const expected = new StreamFingerprint();
      expected.update(data);
      for (const sync of [false, true]) {
        const fingerprint = new StreamFingerprint();
        let seen = 0;
        for await (const c of readFileChunks(p, { chunkSize: 8192, fingerprint, sync })) {
          seen += c.length;
          assert.equal(fingerprint.bytes, seen, 'the chunk is counted before it is yielded');
        }
        assert.equal(fingerprint.toString(), expected.toString(), `size ${size}${sync ? ' (sync)' : ''}`);
      }
    }
  });
});
