import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kindOf } from '../../../src/services/errdefs.js';
import { requestedScratchSize } from '../../../src/services/labels.js';
import { WindowsSnapshotter } from '../../../src/plugins/snapshots/windows/windows.js';
import { snapshotterConformance } from './conformance.js';
import { startTestServer } from '../../helpers/grpc.js';

// Commit-time conversion and scratch disks arrive with the layer-store and VHDX modules;
// until then the contract is exercised through unpack keys, which need neither.
snapshotterConformance('windows (in-process, unpack keys)', async (root) => ({ sn: new WindowsSnapshotter(root) }), {
  keyPrefix: 'extract-',
});

snapshotterConformance(
  'windows (gRPC, unpack keys)',
  async (root) => {
    const srv = await startTestServer({ windows: new WindowsSnapshotter(root) });
    return { sn: srv.client('windows'), cleanup: srv.close };
  },
  { keyPrefix: 'extract-' },
);

function fresh(): { root: string; sn: WindowsSnapshotter; done: () => Promise<void> } {
  const tmp = mkdtempSync(join(tmpdir(), 'winsnap-windows-'));
  const root = join(tmp, 'root');
  const sn = new WindowsSnapshotter(root);
  return {
    root,
    sn,
    done: async () => {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

async function rejectsKind(p: Promise<unknown>, kind: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.equal(kindOf(e), kind, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('windows snapshotter: mounts and layout (DESIGN.md mount table)', () => {
  test('parentless unpack key: bind of the snapshot dir, parentLayerPaths=null', async () => {
    const { root, sn, done } = fresh();
    try {
      const m = await sn.prepare('default/1/extract-123 sha256:abc', '');
      assert.deepEqual(m, [{ type: 'bind', source: join(root, 'snapshots', '1'), options: ['rw', 'parentLayerPaths=null'] }]);
      assert.deepEqual(readdirSync(join(root, 'snapshots', '1')), [], 'an unpack snapshot starts empty');
    } finally {
      await done();
    }
  });

  test('parentless other key: bind of Files/, which exists', async () => {
    const { root, sn, done } = fresh();
    try {
      const m = await sn.prepare('work', '');
      assert.deepEqual(m, [
        { type: 'bind', source: join(root, 'snapshots', '1', 'Files'), options: ['rw', 'parentLayerPaths=null'] },
      ]);
      assert.ok(existsSync(join(root, 'snapshots', '1', 'Files')));
      const v = await sn.view('look', '');
      assert.deepEqual(v, [
        { type: 'bind', source: join(root, 'snapshots', '2', 'Files'), options: ['ro', 'parentLayerPaths=null'] },
      ]);
    } finally {
      await done();
    }
  });

  test('with parents: windows-layer, immediate parent first, base last', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('extract-a base', '');
      await sn.commit('base', 'extract-a base');
      await sn.prepare('extract-b mid', 'base');
      await sn.commit('mid', 'extract-b mid');
      const m = await sn.prepare('extract-c top', 'mid');
      const s = (id: string) => join(root, 'snapshots', id);
      assert.deepEqual(m, [
        { type: 'windows-layer', source: s('3'), options: ['rw', `parentLayerPaths=["${s('2')}","${s('1')}"]`] },
      ]);
      assert.deepEqual(await sn.mounts('extract-c top'), m);
      const v = await sn.view('extract-view', 'mid');
      assert.deepEqual(v[0]!.options, ['ro', `parentLayerPaths=["${s('2')}","${s('1')}"]`]);
    } finally {
      await done();
    }
  });

  test('parent paths are JSON-encoded exactly as Go does (HTML-safe escapes)', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'winsnap-windows-'));
    const root = join(tmp, 'a<b>&c');
    const sn = new WindowsSnapshotter(root);
    try {
      await sn.prepare('extract-1', '');
      await sn.commit('base', 'extract-1');
      const m = await sn.prepare('extract-2', 'base');
      const esc = join(tmp, 'a\\u003cb\\u003e\\u0026c', 'snapshots', '1');
      assert.equal(m[0]!.options[1], `parentLayerPaths=["${esc}"]`);
    } finally {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('windows snapshotter: scratch and conversion paths', () => {
  test('a non-unpack snapshot with parents needs a scratch disk: NotImplemented, nothing left behind', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('extract-a', '');
      await sn.commit('base', 'extract-a');
      await rejectsKind(sn.prepare('container', 'base'), 'NotImplemented', /sandbox\.vhdx/);
      await rejectsKind(sn.view('container-view', 'base'), 'NotImplemented', /sandbox\.vhdx/);
      await rejectsKind(
        sn.prepare('uvm', 'base', { labels: { 'containerd.io/snapshot/io.microsoft.vm.storage.scratch': 'true' } }),
        'NotImplemented',
        /UVM/,
      );
      await rejectsKind(sn.stat('container'), 'NotFound');
      assert.deepEqual(readdirSync(join(root, 'snapshots')).sort(), ['1']);
    } finally {
      await done();
    }
  });

  test('malformed size labels are InvalidArgument', async () => {
    const { sn, done } = fresh();
    try {
      await sn.prepare('extract-a', '');
      await sn.commit('base', 'extract-a');
      for (const labels of <Record<string, string>[]>[
        { 'containerd.io/snapshot/windows/rootfs.sizebytes': 'ten' },
        { 'containerd.io/snapshot/windows/rootfs.sizebytes': '-1' },
        { 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb': '1.5' },
        { 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb': '4294967296' },
      ]) {
        await rejectsKind(sn.prepare('c', 'base', { labels }), 'InvalidArgument', /failed to parse label/);
      }
    } finally {
      await done();
    }
  });

  test('size label rules: GiB label as uint32, bytes label wins', () => {
    const GB = 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb';
    const BYTES = 'containerd.io/snapshot/windows/rootfs.sizebytes';
    assert.equal(requestedScratchSize({}), 0n);
    assert.equal(requestedScratchSize({ [GB]: '20' }), 20n * 1073741824n);
    assert.equal(requestedScratchSize({ [GB]: '4294967295' }), 4294967295n * 1073741824n);
    assert.equal(requestedScratchSize({ [GB]: '20', [BYTES]: '1000' }), 1000n);
    assert.equal(requestedScratchSize({ [BYTES]: '18446744073709551615' }), 18446744073709551615n);
    assert.throws(() => requestedScratchSize({ [BYTES]: '18446744073709551616' }), (e: Error) => kindOf(e) === 'InvalidArgument');
    assert.throws(() => requestedScratchSize({ [GB]: '20', [BYTES]: '' }), (e: Error) => kindOf(e) === 'InvalidArgument');
  });

  test('committing a non-unpack snapshot needs conversion: NotImplemented, still active', async () => {
    const { sn, done } = fresh();
    try {
      await sn.prepare('work', '');
      await rejectsKind(sn.commit('base', 'work'), 'NotImplemented', /base layer/);
      assert.equal((await sn.stat('work')).kind, 'active');
      await rejectsKind(sn.stat('base'), 'NotFound');
    } finally {
      await done();
    }
  });
});

describe('windows snapshotter: usage, removal, cleanup, crash recovery', () => {
  test('usage of an active snapshot is measured from disk; commit stores it', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('extract-a', '');
      const before = await sn.usage('extract-a');
      const dir = join(root, 'snapshots', '1');
      mkdirSync(join(dir, 'Files'));
      writeFileSync(join(dir, 'Files', 'big.bin'), Buffer.alloc(100_000, 1));
      const after = await sn.usage('extract-a');
      assert.equal(after.inodes, before.inodes + 2);
      assert.ok(after.size >= before.size + 100_000, JSON.stringify({ before, after }));
      await sn.commit('base', 'extract-a');
      assert.deepEqual(await sn.usage('base'), after);
    } finally {
      await done();
    }
  });

  test('remove deletes the directory; cleanup removes what no snapshot references', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('extract-a', '');
      await sn.commit('base', 'extract-a');
      await sn.prepare('extract-b', 'base');
      await sn.remove('extract-b');
      assert.deepEqual(readdirSync(join(root, 'snapshots')), ['1']);
      mkdirSync(join(root, 'snapshots', '77'));
      mkdirSync(join(root, 'snapshots', 'rm-9'));
      writeFileSync(join(root, 'snapshots', 'rm-9', 'x'), 'x');
      await sn.cleanup();
      assert.deepEqual(readdirSync(join(root, 'snapshots')), ['1']);
      assert.equal((await sn.stat('base')).kind, 'committed');
    } finally {
      await done();
    }
  });

  test('a removal that never committed is rolled back at open', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('extract-a', '');
      writeFileSync(join(root, 'snapshots', '1', 'data'), 'keep me');
      await sn.commit('base', 'extract-a');
      await sn.close();
      // what a crash between the rename and the metadata commit leaves behind
      renameSync(join(root, 'snapshots', '1'), join(root, 'snapshots', 'rm-1'));
      const again = new WindowsSnapshotter(root);
      try {
        assert.deepEqual(readdirSync(join(root, 'snapshots')), ['1']);
        assert.ok(existsSync(join(root, 'snapshots', '1', 'data')));
        await again.cleanup();
        assert.ok(existsSync(join(root, 'snapshots', '1', 'data')));
      } finally {
        await again.close();
      }
    } finally {
      await done();
    }
  });

  test('a stale directory left by a rolled-back create is replaced, not reused', async () => {
    const { root, sn, done } = fresh();
    try {
      mkdirSync(join(root, 'snapshots', '1'));
      writeFileSync(join(root, 'snapshots', '1', 'stale'), 'x');
      await sn.prepare('extract-a', '');
      assert.deepEqual(readdirSync(join(root, 'snapshots', '1')), []);
    } finally {
      await done();
    }
  });
});
