import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kindOf } from '../../../src/services/errdefs.js';
import { requestedScratchSize } from '../../../src/services/labels.js';
import { WindowsSnapshotter } from '../../../src/plugins/snapshots/windows/windows.js';
import { snapshotterConformance } from './conformance.js';
import { startTestServer } from '../../helpers/grpc.js';
import { runTool } from '../../helpers/tools.js';
import { UnionView } from '../../../src/formats/layerdir/union.js';
import { info as vhdxInfo } from '../../../src/formats/vhdx/index.js';
import { hivexmlTree } from '../../formats/regf/validators.js';
import { freshSnapshotter, rejectsKind } from '../../helpers/snapshotter.js';

// small scratch templates keep the suite fast; sizes do not change any behaviour under test
const TEST_LAYER_CONFIG = { sandboxTemplateSize: 64 << 20, uvmTemplateSize: 32 << 20, formatNtfs: 'never' as const };
const open = (root: string) => new WindowsSnapshotter(root, { layerConfig: TEST_LAYER_CONFIG });

// plain keys: parentless commits convert Files/ to a base layer, snapshots with parents get
// a sandbox.vhdx and convert on commit; unpack keys: neither (what containerd's unpacker uses)
for (const prefix of ['', 'extract-']) {
  const what = prefix ? 'unpack keys' : 'plain keys';
  snapshotterConformance(`windows (in-process, ${what})`, async (root) => ({ sn: open(root) }), { keyPrefix: prefix });
  snapshotterConformance(
    `windows (gRPC, ${what})`,
    async (root) => {
      const srv = await startTestServer({ windows: open(root) });
      return { sn: srv.client('windows'), cleanup: srv.close };
    },
    { keyPrefix: prefix },
  );
}

function fresh() {
  return freshSnapshotter('windows', open);
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

describe('windows snapshotter: scratch disks and commit-time conversion', () => {
  // qemu cannot open differencing VHDX (the scratch copies are): those are read with our
  // reader, whose parent-chain reads are checked against qemu-made disks in test/formats/vhdx
  const diskSize = async (path: string) => {
    const i = await vhdxInfo(path);
    assert.equal(i.type, 'differencing');
    assert.ok(i.parentPath && existsSync(i.parentPath), 'parent resolved');
    return i.virtualSize;
  };
  const qemuInfo = (path: string) => {
    const r = runTool('qemu-img', ['info', '--output=json', path]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.toString()) as { 'virtual-size': number; format: string };
  };
  const qemuCheck = (path: string) => assert.equal(runTool('qemu-img', ['check', path]).status, 0, `qemu-img check ${path}`);

  test('committing Files/ makes a base layer: hives, layout, scratch templates, an index', async () => {
    const { root, sn, done } = fresh();
    try {
      const [m] = await sn.prepare('work', '');
      writeFileSync(join(m!.source, 'hello.txt'), 'hello');
      await sn.commit('base', 'work');
      const dir = join(root, 'snapshots', '1');
      for (const h of ['SYSTEM', 'SOFTWARE', 'SAM', 'SECURITY', 'DEFAULT']) {
        assert.ok(existsSync(join(dir, 'Files/Windows/System32/config', h)), `fabricated ${h}`);
      }
      assert.deepEqual(readdirSync(join(dir, 'Hives')).sort(), ['DEFAULTUSER_BASE', 'SAM_BASE', 'SECURITY_BASE', 'SOFTWARE_BASE', 'SYSTEM_BASE']);
      assert.equal(readFileSync(join(dir, 'layout'), 'utf8'), 'vhd-with-hives\n');
      assert.equal(qemuInfo(join(dir, 'blank-base.vhdx'))['virtual-size'], 64 << 20);
      qemuCheck(join(dir, 'blank-base.vhdx'));
      assert.ok(existsSync(join(dir, 'winsnap-layer.db')));
      const tree = hivexmlTree(join(dir, 'Files/Windows/System32/config/SOFTWARE'));
      assert.equal(tree.children.length, 0, 'an empty hive: the root key alone');
      const blank = await vhdxInfo(join(dir, 'blank.vhdx'));
      assert.equal(blank.type, 'differencing');
      assert.equal(blank.parentPath, join(dir, 'blank-base.vhdx'));
    } finally {
      await done();
    }
  });

  test('a snapshot with parents gets sandbox.vhdx from the base template, grown to the size label', async () => {
    const { root, sn, done } = fresh();
    try {
      await sn.prepare('work', '');
      await sn.commit('base', 'work');
      await sn.prepare('c', 'base', { labels: { 'containerd.io/snapshot/windows/rootfs.sizebytes': String(200 << 20) } });
      assert.equal(await diskSize(join(root, 'snapshots', '2', 'sandbox.vhdx')), 200 << 20);
      await sn.prepare('d', 'base', { labels: { 'containerd.io/snapshot/io.microsoft.container.storage.rootfs.size-gb': '1' } });
      assert.equal(await diskSize(join(root, 'snapshots', '3', 'sandbox.vhdx')), 1 << 30);
      await sn.prepare('e', 'base');
      assert.equal(await diskSize(join(root, 'snapshots', '4', 'sandbox.vhdx')), 64 << 20, 'no label: the template size');
      await sn.view('v', 'base');
      assert.equal(await diskSize(join(root, 'snapshots', '5', 'sandbox.vhdx')), 1 << 30, 'a view gets 1 GiB');
      await assert.rejects(
        sn.prepare('uvm', 'base', { labels: { 'containerd.io/snapshot/io.microsoft.vm.storage.scratch': 'true' } }),
        (e: Error) => kindOf(e) === 'NotFound' && /UtilityVM/.test(e.message),
      );
      await rejectsKind(sn.stat('uvm'), 'NotFound');
      assert.deepEqual(readdirSync(join(root, 'snapshots')).filter((n) => n.startsWith('new-')), [], 'no staging left');
    } finally {
      await done();
    }
  });

  test('the UVM scratch label adds vm/sandbox.vhdx from the base UtilityVM template', async () => {
    const { root, sn, done } = fresh();
    try {
      const [m] = await sn.prepare('work', '');
      const files = m!.source;
      const uvm = join(files, '..', 'UtilityVM', 'Files', 'EFI', 'Microsoft', 'Boot');
      mkdirSync(uvm, { recursive: true });
      writeFileSync(join(uvm, 'BCD'), 'bcd');
      await sn.commit('base', 'work');
      await sn.prepare('c', 'base', { labels: { 'containerd.io/snapshot/io.microsoft.vm.storage.scratch': '' } });
      assert.equal(await diskSize(join(root, 'snapshots', '2', 'vm', 'sandbox.vhdx')), 32 << 20);
      qemuCheck(join(root, 'snapshots', '1', 'UtilityVM', 'SystemTemplateBase.vhdx'));
      assert.ok(existsSync(join(root, 'snapshots', '2', 'sandbox.vhdx')));
    } finally {
      await done();
    }
  });

  test('committing a snapshot with parents turns its tree into a read-only layer with tombstones', async () => {
    const { root, sn, done } = fresh();
    try {
      const [m] = await sn.prepare('work', '');
      writeFileSync(join(m!.source, 'old.txt'), 'old');
      await sn.commit('base', 'work');
      const [c] = await sn.prepare('child', 'base');
      mkdirSync(join(c!.source, 'Files'));
      writeFileSync(join(c!.source, 'Files', 'new.txt'), 'new');
      writeFileSync(join(c!.source, 'Files', '.wh.OLD.TXT'), '');
      await sn.commit('layer2', 'child');
      const u = new UnionView([join(root, 'snapshots', '2'), join(root, 'snapshots', '1')]);
      try {
        assert.deepEqual(u.list('Files').map((e) => e.name).filter((n) => !n.startsWith('Files/Windows')), ['Files/new.txt']);
      } finally {
        u.close();
      }
    } finally {
      await done();
    }
  });

  test('without the layer operations the paths fail with NotImplemented, nothing left behind', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'winsnap-windows-'));
    const sn = new WindowsSnapshotter(join(tmp, 'root'), { hooks: {} });
    try {
      await sn.prepare('extract-a', '');
      await sn.commit('base', 'extract-a');
      await rejectsKind(sn.prepare('container', 'base'), 'NotImplemented', /sandbox\.vhdx/);
      await sn.prepare('work', '');
      await rejectsKind(sn.commit('b2', 'work'), 'NotImplemented', /base layer/);
      assert.equal((await sn.stat('work')).kind, 'active');
      assert.deepEqual(readdirSync(join(tmp, 'root', 'snapshots')).sort(), ['1', '2']);
    } finally {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
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
