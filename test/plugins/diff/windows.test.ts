/**
 * The `windows` differ: upstream's mount rules (containerd diff/windows), Apply and Compare
 * behaviour, the diff chain, the gRPC Diff service, and bad input (issue acceptance: each a
 * clear error, nothing written outside the snapshot root, nothing committed, cleanup leaves
 * no orphan).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gunzipSync, gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { kindOf } from '../../../src/services/errdefs.js';
import { ContentStore } from '../../../src/services/content/store.js';
import { MT } from '../../../src/services/compression/media-types.js';
import { WindowsSnapshotter } from '../../../src/plugins/snapshots/windows/windows.js';
import { WindowsDiffer, mountPairToLayerStack, mountsToLayerAndParents, clampHeaderTimes } from '../../../src/plugins/diff/windows/windows.js';
import { DiffChain } from '../../../src/plugins/diff/chain.js';
import type { Differ } from '../../../src/plugins/diff/types.js';
import { unpackImage } from '../../../src/plugins/unpack.js';
import { OciLayout } from '../../../src/services/images/oci-layout.js';
import { only } from '../../../src/services/platforms/index.js';
import { diffServiceImpl } from '../../../src/server/diff-service.js';
import { DiffClient } from '../../../src/server/diff-client.js';
import { DIFF_SERVICE } from '../../../src/server/proto.js';
import { silentLogger } from '../../../src/services/log.js';
import { layerTar, tarEntries, type Spec } from '../../helpers/wclayer.js';
import { putLayer, writeLayout } from '../../helpers/oci.js';
import { startTestServer } from '../../helpers/grpc.js';

const CFG = { sandboxTemplateSize: 64 << 20, uvmTemplateSize: 32 << 20, formatNtfs: 'never' as const };
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const kind = (k: string, re?: RegExp) => (e: Error) => {
  assert.equal(kindOf(e), k, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

interface Env {
  dir: string;
  sn: WindowsSnapshotter;
  cs: ContentStore;
  differ: WindowsDiffer;
  done: () => Promise<void>;
}

function env(): Env {
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-wdiff-'));
  const sn = new WindowsSnapshotter(join(dir, 'sn'), { layerConfig: CFG });
  const cs = new ContentStore(join(dir, 'content'));
  return {
    dir,
    sn,
    cs,
    differ: new WindowsDiffer(cs, CFG),
    done: async () => {
      await sn.close();
      cs.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function putBlob(cs: ContentStore, data: Buffer): Promise<string> {
  const w = await cs.writer({ ref: `t-${Math.random()}` });
  await w.write(data);
  try {
    return await w.commit(data.length, '');
  } catch (e) {
    if (kindOf(e) === 'AlreadyExists') return sha(data);
    throw e;
  }
}

const BASE: Spec[] = [{ name: 'Files' }, { name: 'Files/a.txt', data: 'A' }, { name: 'Files/dir' }, { name: 'Files/dir/b.txt', data: 'B' }];
const W = (source: string, ro: boolean, parents: string[] | null, type = 'windows-layer') => ({
  type,
  source,
  options: [ro ? 'ro' : 'rw', `parentLayerPaths=${parents === null ? 'null' : JSON.stringify(parents)}`],
});

describe('windows differ: mount rules (containerd mountsToLayerAndParents / mountPairToLayerStack)', () => {
  test('one mount; other types fall through with NotImplemented', () => {
    assert.throws(() => mountsToLayerAndParents([]), kind('InvalidArgument', /number of mounts should always be 1/));
    assert.throws(() => mountsToLayerAndParents([W('/a', false, []), W('/b', false, [])]), kind('InvalidArgument'));
    assert.throws(() => mountsToLayerAndParents([W('/a', false, [], 'lcow-layer')]), kind('NotImplemented', /does not support layer type lcow-layer/));
    assert.deepEqual(mountsToLayerAndParents([W('/l', false, ['/p1', '/p2'])]), { layer: '/l', parents: ['/p1', '/p2'] });
    assert.deepEqual(mountsToLayerAndParents([W('/sandbox', true, ['/p1', '/p2'])]), { layer: '/p1', parents: ['/p2'] });
    assert.deepEqual(mountsToLayerAndParents([W('/x', true, null, 'bind')]), { layer: '', parents: [] });
    assert.deepEqual(mountsToLayerAndParents([W('/s/1/Files', false, null, 'bind')]), { layer: '/s/1', parents: [] });
  });

  test('layer pairs: every upstream error case', () => {
    assert.deepEqual(mountPairToLayerStack([W('/v', true, null, 'bind')], [W('/u', false, null, 'bind')]), ['/u']);
    assert.deepEqual(mountPairToLayerStack([W('/v', true, ['/p', '/b'])], [W('/u', false, ['/p', '/b'])]), ['/u', '/p', '/b']);
    assert.throws(() => mountPairToLayerStack([W('/v', true, null, 'bind')], [W('/u', false, ['/p'])]), kind('InvalidArgument', /with parents against a null layer/));
    assert.throws(() => mountPairToLayerStack([W('/l', false, [])], [W('/u', false, [])]), kind('InvalidArgument', /no parents against another layer/));
    assert.throws(() => mountPairToLayerStack([W('/l', false, [])], [W('/u', false, ['/other'])]), kind('InvalidArgument', /other than its own parent/));
    assert.throws(() => mountPairToLayerStack([W('/p', false, ['/x'])], [W('/u', false, ['/p', '/y'])]), kind('InvalidArgument', /different parents/));
    assert.throws(() => mountPairToLayerStack([W('/p', false, [])], [W('/u', false, ['/p', '/y'])]), kind('InvalidArgument', /different parents/));
    assert.throws(() => mountPairToLayerStack([W('/p', false, [], 'lcow-layer')], [W('/u', false, ['/p'])]), kind('InvalidArgument', /non-windows-layer/));
    assert.throws(() => mountPairToLayerStack([W('/p', false, [])], [W('/u', false, [], 'lcow-layer')]), kind('NotImplemented', /Upper mount invalid/));
    assert.throws(() => mountPairToLayerStack([], [W('/u', false, [])]), kind('InvalidArgument', /Lower mount invalid/));
  });
});

describe('windows differ: apply and compare', () => {
  test('apply returns the uncompressed descriptor for gzip, zstd and plain layers', async () => {
    const e = env();
    try {
      const tar = await layerTar(BASE);
      for (const [mt, blob] of [[MT.ociLayerGzip, gzipSync(tar)], [MT.ociLayerZstd, await zstdCompress(tar)], [MT.ociLayer, tar], [MT.dockerLayerGzip, gzipSync(tar)]] as const) {
        const key = `extract-${mt}`;
        const mounts = await e.sn.prepare(key, '');
        const d = await putBlob(e.cs, Buffer.from(blob));
        const applied = await e.differ.apply({ mediaType: mt, digest: d, size: blob.length }, mounts);
        assert.deepEqual(applied, { mediaType: MT.ociLayer, digest: sha(tar), size: tar.length });
        await e.sn.remove(key);
      }
    } finally {
      await e.done();
    }
  });

  test('trailing data after the tar is read and counted in the uncompressed digest', async () => {
    const e = env();
    try {
      const tar = Buffer.concat([await layerTar(BASE), Buffer.alloc(10240)]);
      const mounts = await e.sn.prepare('extract-t', '');
      const applied = await e.differ.applyStream(Readable.from([tar]), { mediaType: MT.ociLayer, digest: sha(tar), size: tar.length }, mounts, { verify: true });
      assert.equal(applied.digest, sha(tar));
      assert.equal(applied.size, tar.length);
    } finally {
      await e.done();
    }
  });

  test('compare: gzip by default with containerd.io/uncompressed, plain on request, references reused, other types NotImplemented', async () => {
    const e = env();
    try {
      const tar = await layerTar(BASE);
      const m = await e.sn.prepare('extract-1', '');
      await e.differ.applyStream(Readable.from([tar]), { mediaType: MT.ociLayer, digest: sha(tar), size: tar.length }, m);
      await e.sn.commit('base', 'extract-1');
      const lower = await e.sn.view('lower', '');
      const upper = await e.sn.view('upper', 'base');
      const gz = await e.differ.compare(lower, upper);
      assert.equal(gz.mediaType, MT.ociLayerGzip);
      const blob = await buffer(await e.cs.read(gz.digest));
      assert.ok(gunzipSync(blob).equals(tar), 'the diff of a layer against nothing is the layer');
      assert.equal((await e.cs.info(gz.digest)).labels['containerd.io/uncompressed'], sha(tar));
      const plain = await e.differ.compare(lower, upper, { mediaType: MT.ociLayer, reference: 'my-ref', labels: { x: 'y' } });
      assert.equal(plain.digest, sha(tar));
      assert.deepEqual((await e.cs.info(plain.digest)).labels, { x: 'y' });
      // the same reference again: the earlier ingest is truncated, the result already exists
      assert.deepEqual(await e.differ.compare(lower, upper, { mediaType: MT.ociLayer, reference: 'my-ref' }), plain);
      await assert.rejects(e.differ.compare(lower, upper, { mediaType: MT.ociLayerZstd }), kind('NotImplemented', /unsupported diff media type/));
      assert.deepEqual(await e.cs.listStatuses(), [], 'no ingest left behind');
    } finally {
      await e.done();
    }
  });

  test('compare of an active snapshot with parents exports its writable tree with tombstones', async () => {
    const e = env();
    try {
      const tar = await layerTar(BASE);
      const m = await e.sn.prepare('extract-1', '');
      await e.differ.applyStream(Readable.from([tar]), { mediaType: MT.ociLayer, digest: sha(tar), size: tar.length }, m);
      await e.sn.commit('base', 'extract-1');
      const up = await e.sn.prepare('work', 'base');
      const { mkdirSync, writeFileSync } = await import('node:fs');
      mkdirSync(join(up[0]!.source, 'Files'));
      writeFileSync(join(up[0]!.source, 'Files', 'new.txt'), 'N');
      writeFileSync(join(up[0]!.source, 'Files', '.wh.a.txt'), '');
      const lower = await e.sn.view('lower', 'base');
      const d = await e.differ.compare(lower, up, { mediaType: MT.ociLayer });
      const names = (await tarEntries(await buffer(await e.cs.read(d.digest)))).map((x) => x.name);
      assert.deepEqual(names, ['Files', 'Files/.wh.a.txt', 'Files/new.txt']);
      assert.ok(existsSync(join(up[0]!.source, 'Files', '.wh.a.txt')), 'compare leaves the writable tree alone');
    } finally {
      await e.done();
    }
  });

  test('SOURCE_DATE_EPOCH clamps later times', () => {
    const h = clampHeaderTimes(
      { name: 'Files/a', mtime: { sec: 2_000_000_000n, nsec: 5 }, pax: [{ key: 'mtime', value: Buffer.from('2000000000.000000005') }, { key: 'LIBARCHIVE.creationtime', value: Buffer.from('1000') }] },
      new Date(1_500_000_000_000),
    );
    assert.deepEqual(h.mtime, { sec: 1_500_000_000n, nsec: 0 });
    assert.deepEqual(h.pax!.map((r) => [r.key, r.value.toString()]), [['mtime', '1500000000'], ['LIBARCHIVE.creationtime', '1000']]);
  });

  test('the diff chain falls through on NotImplemented, and says so when nobody can', async () => {
    const e = env();
    try {
      const seen: string[] = [];
      const other: Differ = {
        name: 'other',
        apply: async () => (seen.push('apply'), { mediaType: 'x', digest: 'sha256:' + '0'.repeat(64), size: 1 }),
        applyStream: async () => (seen.push('applyStream'), { mediaType: 'x', digest: 'sha256:' + '0'.repeat(64), size: 1 }),
        compare: async () => (seen.push('compare'), { mediaType: 'x', digest: 'sha256:' + '0'.repeat(64), size: 1 }),
      };
      const chain = new DiffChain([e.differ, other]);
      const lcow = [{ type: 'lcow-layer', source: '/x', options: ['rw'] }];
      await chain.apply({ mediaType: MT.ociLayer, digest: 'sha256:' + '1'.repeat(64), size: 1 }, lcow);
      await chain.compare(lcow, lcow);
      assert.deepEqual(seen, ['apply', 'compare']);
      await assert.rejects(new DiffChain([e.differ]).apply({ mediaType: MT.ociLayer, digest: 'sha256:' + '1'.repeat(64), size: 1 }, lcow), kind('NotImplemented', /no differ/));
    } finally {
      await e.done();
    }
  });
});

describe('windows differ: the gRPC Diff service', () => {
  test('Apply and Diff over the socket', async () => {
    const e = env();
    const srv = await startTestServer({ windows: e.sn }, [{ name: DIFF_SERVICE, impl: diffServiceImpl(e.differ, silentLogger) }]);
    const client = new DiffClient(`unix://${srv.socket}`);
    try {
      const tar = await layerTar(BASE);
      const d = await putBlob(e.cs, gzipSync(tar));
      const mounts = await srv.client('windows').prepare('extract-g', '');
      const applied = await client.apply({ mediaType: MT.ociLayerGzip, digest: d, size: gzipSync(tar).length }, mounts);
      assert.equal(applied.digest, sha(tar));
      await srv.client('windows').commit('g', 'extract-g');
      const lower = await srv.client('windows').view('gl', '');
      const upper = await srv.client('windows').view('gu', 'g');
      const diff = await client.diff(lower, upper, { mediaType: MT.ociLayer });
      assert.equal(diff.digest, sha(tar));
      await assert.rejects(client.apply({ mediaType: 'application/x-unknown', digest: d, size: 1 }, mounts), kind('NotImplemented'));
      await assert.rejects(client.diff([], upper), kind('InvalidArgument'));
    } finally {
      client.close();
      await srv.close();
      e.cs.close();
      rmSync(e.dir, { recursive: true, force: true });
    }
  });
});

describe('windows differ: bad input is rejected; nothing committed, nothing left behind', () => {
  async function unpackBad(e: Env, blob: Buffer | Readable, mediaType: string, diffId?: string, size?: number, digest?: string) {
    const layout = join(e.dir, `layout-${Math.random()}`);
    const built = await putLayer(layout, Buffer.isBuffer(blob) ? blob : await buffer(blob), 'none');
    if (digest) {
      // a tampered layout: the blob stored under a digest its bytes do not have
      const { renameSync } = await import('node:fs');
      renameSync(join(layout, 'blobs', 'sha256', built.descriptor.digest.slice(7)), join(layout, 'blobs', 'sha256', digest.slice(7)));
    }
    const desc = { mediaType, digest: digest ?? built.descriptor.digest, size: size ?? built.descriptor.size };
    await writeLayout(layout, [{ os: 'windows', architecture: 'amd64', layers: [{ descriptor: desc, diffId: diffId ?? built.diffId }] }]);
    const l = await OciLayout.open(layout);
    return unpackImage(l, l.root(), only({ os: 'windows', architecture: 'amd64' }), e.sn, e.differ);
  }

  async function expectClean(e: Env) {
    const infos: string[] = [];
    await e.sn.walk((i) => void infos.push(i.name));
    assert.deepEqual(infos, [], 'no snapshot left (committed or active)');
    await e.sn.cleanup();
    assert.deepEqual(readdirSync(join(e.dir, 'sn', 'snapshots')), [], 'cleanup leaves no orphan');
    const outside = readdirSync(e.dir).filter((n) => !['sn', 'content'].includes(n) && !n.startsWith('layout-'));
    assert.deepEqual(outside, [], 'nothing written outside the snapshot root');
  }

  const tarOf = (specs: Spec[]) => layerTar(specs);

  const cases: Array<[string, () => Promise<{ blob: Buffer; mediaType: string; diffId?: string; size?: number; digest?: string }>, string, RegExp]> = [
    ['truncated gzip', async () => { const g = gzipSync(await tarOf(BASE)); return { blob: g.subarray(0, g.length - 20), mediaType: MT.ociLayerGzip }; }, 'InvalidArgument', /gzip stream/],
    ['corrupt gzip (CRC)', async () => { const g = gzipSync(await tarOf(BASE)); g[g.length - 8] ^= 0xff; return { blob: g, mediaType: MT.ociLayerGzip }; }, 'InvalidArgument', /gzip stream/],
    ['corrupt gzip (header)', async () => { const g = gzipSync(await tarOf(BASE)); g[0] = 0; return { blob: g, mediaType: MT.ociLayerGzip }; }, 'InvalidArgument', /gzip stream/],
    ['truncated zstd', async () => { const z = await zstdCompress(await tarOf(BASE)); return { blob: z.subarray(0, z.length - 10), mediaType: MT.ociLayerZstd }; }, 'InvalidArgument', /zstd stream/],
    ['corrupt zstd', async () => { const z = Buffer.from(await zstdCompress(await tarOf(BASE))); z[4] ^= 0xff; z.fill(0xff, 5, 12); return { blob: z, mediaType: MT.ociLayerZstd }; }, 'InvalidArgument', /zstd stream/],
    ['bad PAX syntax', async () => { const t = await tarOf(BASE); const i = t.indexOf('MSWINDOWS.fileattr'); t.write('X', i - 2); fixChecksums(t); return { blob: t, mediaType: MT.ociLayer }; }, 'InvalidArgument', /tar|PAX|pax/],
    ['bad base64 in rawsd', async () => { const t = await tarOf([{ name: 'Files', sd: Buffer.alloc(20, 1) }]); const i = t.indexOf('MSWINDOWS.rawsd='); t.write('!', i + 'MSWINDOWS.rawsd='.length); return { blob: t, mediaType: MT.ociLayer }; }, 'InvalidArgument', /base64/],
    ['header checksum error', async () => { const t = await tarOf(BASE); t[10] ^= 0x01; return { blob: t, mediaType: MT.ociLayer }; }, 'InvalidArgument', /checksum/],
    ['duplicate entries', async () => ({ blob: await tarOf([{ name: 'Files' }, { name: 'Files/x', data: '1' }, { name: 'Files/X', data: '2' }]), mediaType: MT.ociLayer }), 'InvalidArgument', /duplicate/],
    ['../ in a name', async () => ({ blob: await tarOf([{ name: 'Files' }, { name: 'Files/../../../tmp/pwned', data: 'x' }]), mediaType: MT.ociLayer }), 'InvalidArgument', /\.\./],
    ['blob digest mismatch against the descriptor', async () => ({ blob: await tarOf(BASE), mediaType: MT.ociLayer, digest: sha(Buffer.from('other')) }), 'FailedPrecondition', /digest mismatch/],
    ['blob size mismatch against the descriptor', async () => { const t = await tarOf(BASE); return { blob: t, mediaType: MT.ociLayer, size: t.length - 1 }; }, 'FailedPrecondition', /bytes/],
    ['content that does not match the diff ID', async () => ({ blob: await tarOf(BASE), mediaType: MT.ociLayer, diffId: sha(Buffer.from('not it')) }), 'FailedPrecondition', /diff ID/],
    ['unknown media type', async () => ({ blob: await tarOf(BASE), mediaType: 'application/vnd.example.layer+bzip2' }), 'NotImplemented', /unsupported diff media type/],
  ];

  for (const [what, make, k, re] of cases) {
    test(what, async () => {
      const e = env();
      try {
        const c = await make();
        c.diffId ??= sha(await tarOf(BASE));
        await assert.rejects(unpackBad(e, c.blob, c.mediaType, c.diffId, c.size, c.digest), kind(k, re));
        await expectClean(e);
        assert.ok(!existsSync('/tmp/pwned'));
      } finally {
        await e.done();
      }
    });
  }
});

/** Recomputes tar header checksums after a test edits header bytes. */
function fixChecksums(t: Buffer): void {
  for (let off = 0; off + 512 <= t.length; off += 512) {
    const block = t.subarray(off, off + 512);
    if (block.subarray(257, 262).toString('latin1') !== 'ustar') continue;
    block.fill(0x20, 148, 156);
    let sum = 0;
    for (const b of block) sum += b;
    block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  }
}
