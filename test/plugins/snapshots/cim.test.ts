import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CimfsSnapshotter } from '../../../src/plugins/snapshots/cimfs/cimfs.js';
import { BlockCimSnapshotter, type BlockCimBackend, type BlockCimRef } from '../../../src/plugins/snapshots/blockcim/blockcim.js';
import { CimWriter } from '../../../src/formats/cim/index.js';
import { info as vhdxInfo } from '../../../src/formats/vhdx/index.js';
import { snapshotterConformance } from './conformance.js';
import { startTestServer } from '../../helpers/grpc.js';
import { runTool } from '../../helpers/tools.js';
import { freshSnapshotter, rejectsKind } from '../../helpers/snapshotter.js';

const MiB = 1024 * 1024;
const scratch = { templateSize: 64 * MiB, formatNtfs: 'never' as const };
const openCimfs = (root: string) => new CimfsSnapshotter(root, { scratch });
const openBlock = (root: string, extra: ConstructorParameters<typeof BlockCimSnapshotter>[1] = {}) =>
  new BlockCimSnapshotter(root, { scratch, ...extra });

// upstream supports only unpack snapshots without parents and commits only unpack keys, so
// the contract is stated for unpack keys (plain keys are covered by the tests below)
for (const [name, open] of [
  ['cimfs', openCimfs],
  ['blockcim', (root: string) => openBlock(root)],
] as const) {
  snapshotterConformance(`${name} (in-process, unpack keys)`, async (root) => ({ sn: open(root) }), { keyPrefix: 'extract-' });
  snapshotterConformance(
    `${name} (gRPC, unpack keys)`,
    async (root) => {
      const srv = await startTestServer({ [name]: open(root) });
      return { sn: srv.client(name), cleanup: srv.close };
    },
    { keyPrefix: 'extract-' },
  );
}

function fresh<T extends CimfsSnapshotter | BlockCimSnapshotter>(open: (root: string) => T) {
  return freshSnapshotter('cim', open);
}

/** Writes a small CIM image for snapshot id (what the cimfs differ does on unpack). */
async function writeCim(cimDir: string, id: string, parent?: string): Promise<void> {
  const w = await CimWriter.create(cimDir, id, parent ? { parentName: parent } : {});
  await w.addFile('Files', { attributes: 0x10 });
  await w.addFile(`Files/f${id}.txt`, { attributes: 0x20, size: 5000 }, [Buffer.alloc(5000, 0x41)]);
  await w.commit();
}

describe('cimfs snapshotter (plugins/snapshots/windows/cimfs.go)', () => {
  test('mounts: CimFS, cimpath for every snapshot, parent layer and CIM paths with parents', async () => {
    const { root, sn, dir, done } = fresh(openCimfs);
    try {
      const cims = join(root, 'snapshots', 'cim-layers');
      const m1 = await sn.prepare('extract-1', '');
      assert.deepEqual(m1, [{ type: 'CimFS', source: dir('1'), options: ['rw', `cimpath=${join(cims, '1.cim')}`] }]);
      await writeCim(cims, '1');
      await sn.commit('base', 'extract-1');
      await sn.prepare('extract-2', 'base');
      await writeCim(cims, '2', '1');
      await sn.commit('l2', 'extract-2');
      const m3 = await sn.prepare('container', 'l2');
      assert.deepEqual(m3, [
        {
          type: 'CimFS',
          source: dir('3'),
          options: [
            'rw',
            `cimpath=${join(cims, '3.cim')}`,
            `parentLayerPaths=["${dir('2')}","${dir('1')}"]`,
            `parentCimPaths=["${join(cims, '2.cim')}","${join(cims, '1.cim')}"]`,
          ],
        },
      ]);
      const v = await sn.view('v', 'l2');
      assert.equal(v[0]!.options[0], 'ro');
      assert.deepEqual(await sn.mounts('container'), m3);
    } finally {
      await done();
    }
  });

  test('scratch: sandbox.vhdx copied from the root blank.vhdx (child of blank-base.vhdx) and grown; parentless scratch is refused', async () => {
    const { root, sn, dir, done } = fresh(openCimfs);
    try {
      await rejectsKind(sn.prepare('c0', ''), 'InvalidArgument', /scratch snapshot without any parents isn't supported/);
      await assert.rejects(sn.stat('c0'));
      await sn.prepare('extract-1', '');
      await sn.commit('base', 'extract-1');
      assert.ok(!existsSync(join(dir('1'), 'sandbox.vhdx')));
      await sn.prepare('c1', 'base');
      const base = await vhdxInfo(join(root, 'blank-base.vhdx'));
      assert.equal(base.blockSize, MiB);
      assert.equal(runTool('qemu-img', ['check', '-f', 'vhdx', join(root, 'blank-base.vhdx')]).status, 0);
      const sandbox = await vhdxInfo(join(dir('2'), 'sandbox.vhdx'));
      assert.equal(sandbox.type, 'differencing');
      assert.equal(sandbox.virtualSize, 64 * MiB);
      await sn.prepare('c2', 'base', { labels: { 'containerd.io/snapshot/windows/rootfs.sizebytes': String(256 * MiB) } });
      assert.equal((await vhdxInfo(join(dir('3'), 'sandbox.vhdx'))).virtualSize, 256 * MiB);
      await rejectsKind(sn.commit('x', 'c1'), 'NotImplemented', /committing a scratch snapshot to read-only cim layer isn't supported yet/);
    } finally {
      await done();
    }
  });

  test('usage of a committed layer includes its own CIM files; remove and cleanup destroy them', async () => {
    const { root, sn, done } = fresh(openCimfs);
    try {
      const cims = join(root, 'snapshots', 'cim-layers');
      await sn.prepare('extract-1', '');
      await writeCim(cims, '1');
      await sn.commit('base', 'extract-1');
      await sn.prepare('extract-2', 'base');
      await writeCim(cims, '2', '1');
      await sn.commit('l2', 'extract-2');
      const ownFiles = (id: string) => readdirSync(cims).filter((n) => n === `${id}.cim` || n.includes('_'));
      const u = await sn.usage('l2');
      assert.ok(u.size >= 5000, `usage ${u.size} must include the CIM data`);
      const before = readdirSync(cims);
      await sn.remove('l2');
      const after = readdirSync(cims);
      assert.ok(!after.includes('2.cim'));
      assert.ok(after.includes('1.cim'));
      assert.ok(after.length < before.length - 1, 'the forked image region files are gone too');
      // the parent image still opens and reads after its child was destroyed
      const { CimReader } = await import('../../../src/formats/cim/index.js');
      const r = await CimReader.open(join(cims, '1.cim'));
      assert.equal((await r.readFile('Files/f1.txt')).length, 5000);
      await r.close();
      // an image whose snapshot is gone is destroyed by cleanup; stale unowned region files too
      await writeCim(cims, '99');
      writeFileSync(join(cims, 'region_deadbeef_0'), 'x');
      utimesSync(join(cims, 'region_deadbeef_0'), new Date(0), new Date(0));
      await sn.cleanup();
      assert.ok(!existsSync(join(cims, '99.cim')));
      assert.ok(!existsSync(join(cims, 'region_deadbeef_0')));
      assert.ok(existsSync(join(cims, '1.cim')));
      assert.ok(ownFiles('1').length >= 2);
    } finally {
      await done();
    }
  });
});

describe('blockcim snapshotter (plugins/snapshots/windows/block_cimfs.go)', () => {
  test('mounts: layer CIM source, parentCimPaths ([] when none), blockCIMType=file, config flags, no rw/ro', async () => {
    const { sn, dir, done } = fresh((root) => openBlock(root, { enableLayerIntegrity: true, appendVhdFooter: true }));
    try {
      const m1 = await sn.prepare('extract-1', '');
      assert.deepEqual(m1, [
        {
          type: 'BlockCIM',
          source: join(dir('1'), 'layer.vhd', 'layer.cim'),
          options: ['parentCimPaths=[]', 'blockCIMType=file', 'enable_layer_integrity', 'append_vhd_footer'],
        },
      ]);
      await sn.commit('base', 'extract-1');
      const m2 = await sn.prepare('c', 'base');
      assert.deepEqual(m2, [
        {
          type: 'BlockCIM',
          source: dir('2'),
          options: [`parentCimPaths=["${join(dir('1'), 'layer.vhd', 'layer.cim')}"]`, 'blockCIMType=file', 'enable_layer_integrity', 'append_vhd_footer'],
        },
      ]);
    } finally {
      await done();
    }
  });

  test('a scratch on several layers needs a merged CIM: NotImplemented naming the missing spec, and nothing is left behind', async () => {
    const { sn, done } = fresh((root) => openBlock(root));
    try {
      await sn.prepare('extract-1', '');
      await sn.commit('base', 'extract-1');
      await sn.prepare('extract-2', 'base');
      await sn.commit('l2', 'extract-2');
      await rejectsKind(sn.prepare('c', 'l2'), 'NotImplemented', /block CIM container format .* not publicly specified/);
      await assert.rejects(sn.stat('c'));
      // one parent needs no merge
      await sn.prepare('c1', 'base');
    } finally {
      await done();
    }
  });

  test('merged CIM: made once per immediate parent under a per-parent lock, then mounted via mergedCIMPath', async () => {
    const calls: { sources: BlockCimRef[]; target: BlockCimRef }[] = [];
    let inFlight = 0;
    const backend: BlockCimBackend = {
      async merge(sources, target) {
        inFlight++;
        assert.equal(inFlight, 1, 'merges of one parent must not overlap');
        calls.push({ sources, target });
        await new Promise((r) => setTimeout(r, 20));
        writeFileSync(target.blockPath, 'merged');
        inFlight--;
      },
    };
    const { sn, dir, done } = fresh((root) => openBlock(root, { backend }));
    try {
      await sn.prepare('extract-1', '');
      await sn.commit('base', 'extract-1');
      await sn.prepare('extract-2', 'base');
      await sn.commit('l2', 'extract-2');
      const mounts = await Promise.all(['c1', 'c2', 'c3'].map((k) => sn.prepare(k, 'l2')));
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0]!.sources.map((s) => s.blockPath), [join(dir('2'), 'layer.vhd'), join(dir('1'), 'layer.vhd')]);
      assert.equal(calls[0]!.target.blockPath, join(dir('2'), 'merged.vhd'));
      for (const m of mounts) assert.ok(m[0]!.options.includes(`mergedCIMPath=${join(dir('2'), 'merged.vhd', 'merged.cim')}`));
    } finally {
      await done();
    }
  });
});
