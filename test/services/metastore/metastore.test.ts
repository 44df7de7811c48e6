/**
 * Metadata store: containerd storage rules not covered by the snapshotter conformance suite,
 * and several processes on one database.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kindOf } from '../../../src/services/errdefs.js';
import { MetaStore } from '../../../src/services/metastore/metastore.js';

function store(): { ms: MetaStore; path: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-ms-'));
  const path = join(dir, 'metadata.db');
  const ms = new MetaStore(path);
  return { ms, path, done: () => (ms.close(), rmSync(dir, { recursive: true, force: true })) };
}

test('IDs are monotonic and never reused after removal; parent chain is immediate-first', () => {
  const { ms, done } = store();
  try {
    const a = ms.write((tx) => tx.createSnapshot('active', 'a', ''));
    ms.write((tx) => tx.commitActive('a', 'A', { size: 10, inodes: 2 }));
    const b = ms.write((tx) => tx.createSnapshot('active', 'b', 'A'));
    ms.write((tx) => tx.commitActive('b', 'B', { size: 0, inodes: 0 }));
    const c = ms.write((tx) => tx.createSnapshot('view', 'c', 'B'));
    assert.deepEqual([a.id, b.id, c.id], ['1', '2', '3']);
    assert.deepEqual(c.parentIds, ['2', '1']);
    ms.write((tx) => tx.remove('c'));
    const d = ms.write((tx) => tx.createSnapshot('active', 'd', ''));
    assert.equal(d.id, '4');
    assert.deepEqual(ms.read((tx) => tx.getInfo('A')).usage, { size: 10, inodes: 2 });
    assert.deepEqual(
      [...ms.read((tx) => tx.idMap())].sort(),
      [['1', 'A'], ['2', 'B'], ['4', 'd']],
    );
  } finally {
    done();
  }
});

test('labels: empty values are dropped, labels.<k> sets and deletes, unknown paths rejected', () => {
  const { ms, done } = store();
  try {
    ms.write((tx) => tx.createSnapshot('active', 'a', '', { x: '1', empty: '' }));
    assert.deepEqual(ms.read((tx) => tx.getInfo('a')).info.labels, { x: '1' });
    let info = ms.write((tx) => tx.updateInfo({ name: 'a', labels: { y: '2' } }, ['labels.y', 'labels.x']));
    assert.deepEqual(info.labels, { y: '2' });
    info = ms.write((tx) => tx.updateInfo({ name: 'a', labels: { z: '3' } }));
    assert.deepEqual(info.labels, { z: '3' });
    assert.throws(() => ms.write((tx) => tx.updateInfo({ name: 'a' }, ['name'])), (e: Error) => kindOf(e) === 'InvalidArgument');
    assert.throws(() => ms.write((tx) => tx.createSnapshot('committed', 'q', '')), (e: Error) => kindOf(e) === 'InvalidArgument');
    assert.throws(() => ms.read((tx) => tx.getSnapshot('zz')), (e: Error) => kindOf(e) === 'NotFound');
  } finally {
    done();
  }
});

test('a failed transaction changes nothing', () => {
  const { ms, done } = store();
  try {
    assert.throws(() =>
      ms.write((tx) => {
        tx.createSnapshot('active', 'a', '');
        throw new Error('boom');
      }),
    );
    assert.throws(() => ms.read((tx) => tx.getInfo('a')), (e: Error) => kindOf(e) === 'NotFound');
  } finally {
    done();
  }
});

const WORKER = fileURLToPath(new URL('./metastore-worker.ts', import.meta.url));

test('two processes writing one database concurrently stay consistent', { timeout: 120_000 }, async () => {
  const { ms, path, done } = store();
  try {
    const run = (tag: string) =>
      new Promise<void>((resolve, reject) => {
        const p = spawn(process.execPath, ['--import', 'tsx', WORKER, path, tag, '150'], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${tag} exited ${code}: ${err}`))));
      });
    await Promise.all([run('p1'), run('p2'), run('p3')]);
    const infos = ms.read((tx) => tx.list());
    // each worker leaves its committed base and 150 committed children; its other snapshots were removed
    for (const tag of ['p1', 'p2', 'p3']) {
      assert.equal(infos.filter((i) => i.name.startsWith(`${tag}-c-`) && i.kind === 'committed' && i.parent === `${tag}-base`).length, 150);
      assert.equal(infos.filter((i) => i.name.startsWith(`${tag}-tmp-`)).length, 0);
    }
    const ids = [...ms.read((tx) => tx.idMap()).keys()].map(Number);
    assert.equal(new Set(ids).size, ids.length, 'IDs unique');
    assert.equal(ms.read((tx) => tx.list()).length, 3 * 151);
  } finally {
    done();
  }
});
