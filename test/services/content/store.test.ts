/** Content store: containerd local-store semantics (content/local/store.go, writer.go). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { kindOf } from '../../../src/services/errdefs.js';
import { ContentStore } from '../../../src/services/content/store.js';
import { parseDigest } from '../../../src/services/content/digest.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function fresh(): { cs: ContentStore; root: string; done: () => void } {
  const root = mkdtempSync(join(tmpdir(), 'winsnap-content-'));
  const cs = new ContentStore(root);
  return { cs, root, done: () => (cs.close(), rmSync(root, { recursive: true, force: true })) };
}

const kind = (k: string) => (e: Error) => (assert.equal(kindOf(e), k, e.message), true);

test('write, commit, info, read, walk, delete', async () => {
  const { cs, root, done } = fresh();
  try {
    const data = randomBytes(100_000);
    const w = await cs.writer({ ref: 'layer-1', total: data.length });
    await w.write(data.subarray(0, 40_000));
    await w.write(data.subarray(40_000));
    assert.equal(w.offset, data.length);
    assert.equal(w.digest(), sha(data));
    const dgst = await w.commit(data.length, sha(data), { a: '1' });
    assert.equal(dgst, sha(data));
    const info = await cs.info(dgst);
    assert.equal(info.size, data.length);
    assert.deepEqual(info.labels, { a: '1' });
    assert.ok(info.createdAt > 0n);
    assert.ok((await buffer(await cs.read(dgst))).equals(data));
    assert.ok((await buffer(await cs.read(dgst, { offset: 10, length: 20 }))).equals(data.subarray(10, 30)));
    assert.equal(statSync(join(root, 'blobs', 'sha256', parseDigest(dgst).hex)).mode & 0o222, 0, 'blobs are read-only');
    const seen: string[] = [];
    await cs.walk((i) => void seen.push(i.digest));
    assert.deepEqual(seen, [dgst]);
    await cs.walk((i) => void seen.push(`x${i.digest}`), 'labels.a==2');
    assert.equal(seen.length, 1);
    await assert.rejects(cs.status('layer-1'), kind('NotFound'));
    await cs.delete(dgst);
    await assert.rejects(cs.info(dgst), kind('NotFound'));
    await assert.rejects(cs.delete(dgst), kind('NotFound'));
  } finally {
    done();
  }
});

test('commit checks size and digest (FailedPrecondition); existing content is AlreadyExists', async () => {
  const { cs, done } = fresh();
  try {
    const data = Buffer.from('hello world');
    let w = await cs.writer({ ref: 'r1' });
    await w.write(data);
    await assert.rejects(w.commit(data.length + 1, ''), kind('FailedPrecondition'));
    w = await cs.writer({ ref: 'r2' });
    await w.write(data);
    await assert.rejects(w.commit(0, sha(Buffer.from('other'))), kind('FailedPrecondition'));
    w = await cs.writer({ ref: 'r3' });
    await w.write(data);
    await w.commit(data.length, sha(data));
    await assert.rejects(cs.writer({ ref: 'r4', expected: sha(data) }), kind('AlreadyExists'));
    w = await cs.writer({ ref: 'r5' });
    await w.write(data);
    await assert.rejects(w.commit(0, ''), kind('AlreadyExists'));
    await assert.rejects(cs.status('r5'), kind('NotFound'), 'the ingest of a duplicate is removed');
  } finally {
    done();
  }
});

test('ingests resume where they stopped; truncate(0) restarts; refs lock; abort', async () => {
  const { cs, done } = fresh();
  try {
    const data = randomBytes(50_000);
    let w = await cs.writer({ ref: 'big', total: data.length });
    await assert.rejects(cs.writer({ ref: 'big' }), kind('Unavailable'));
    await w.write(data.subarray(0, 20_000));
    await w.close();
    const st = await cs.status('big');
    assert.equal(st.ref, 'big');
    assert.equal(st.offset, 20_000);
    assert.equal(st.total, data.length);
    assert.deepEqual((await cs.listStatuses('ref==big')).map((s) => s.ref), ['big']);
    assert.deepEqual(await cs.listStatuses('ref==other'), []);
    w = await cs.writer({ ref: 'big', total: data.length });
    assert.equal(w.offset, 20_000);
    await w.write(data.subarray(20_000));
    assert.equal(await w.commit(data.length, sha(data)), sha(data));

    w = await cs.writer({ ref: 'tr' });
    await w.write(Buffer.from('garbage'));
    await w.truncate(0);
    await assert.rejects(w.truncate(3), kind('InvalidArgument'));
    await w.write(Buffer.from('good'));
    assert.equal(await w.commit(4, sha(Buffer.from('good'))), sha(Buffer.from('good')));

    w = await cs.writer({ ref: 'gone' });
    await w.write(Buffer.from('x'));
    await w.close();
    await cs.abort('gone');
    await assert.rejects(cs.status('gone'), kind('NotFound'));
    await assert.rejects(cs.abort('gone'), kind('NotFound'));
    await assert.rejects(cs.writer({ ref: '' }), kind('InvalidArgument'));
  } finally {
    done();
  }
});

test('labels update by field path', async () => {
  const { cs, done } = fresh();
  try {
    const w = await cs.writer({ ref: 'l' });
    await w.write(Buffer.from('abc'));
    const d = await w.commit(3, '', { a: '1', b: '2' });
    assert.deepEqual((await cs.update({ digest: d, labels: { a: 'x', c: '3' } }, ['labels.a', 'labels.b'])).labels, { a: 'x' });
    assert.deepEqual((await cs.update({ digest: d, labels: { z: '9' } })).labels, { z: '9' });
    assert.deepEqual((await cs.info(d)).labels, { z: '9' });
    await assert.rejects(cs.update({ digest: d }, ['size']), kind('InvalidArgument'));
    await assert.rejects(cs.info('sha256:xyz'), kind('InvalidArgument'));
  } finally {
    done();
  }
});

test('an OCI layout is imported by reference, digests verified', async () => {
  const { cs, root, done } = fresh();
  const layout = mkdtempSync(join(tmpdir(), 'winsnap-layout-'));
  try {
    const blob = randomBytes(1000);
    mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(join(layout, 'blobs', 'sha256', parseDigest(sha(blob)).hex), blob);
    assert.deepEqual(await cs.importLayout(layout), [sha(blob)]);
    assert.equal(statSync(join(root, 'blobs', 'sha256', parseDigest(sha(blob)).hex)).ino, statSync(join(layout, 'blobs', 'sha256', parseDigest(sha(blob)).hex)).ino);
    writeFileSync(join(layout, 'blobs', 'sha256', 'a'.repeat(64)), 'wrong');
    await assert.rejects(cs.importLayout(layout), kind('FailedPrecondition'));
  } finally {
    rmSync(layout, { recursive: true, force: true });
    done();
  }
});
