import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { LcowDiffer } from '../../../src/plugins/diff/lcow/lcow.js';
import { LcowSnapshotter } from '../../../src/plugins/snapshots/lcow/lcow.js';
import { ContentStore } from '../../../src/services/content/store.js';
import { TarWriter } from '../../../src/formats/tar/writer.js';
import type { TarHeaderInput } from '../../../src/formats/tar/types.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { decodeVhdFooter } from '../../../src/formats/vhd/footer.js';
import { runTool } from '../../helpers/tools.js';
import { tarEntries } from '../../helpers/wclayer.js';
import { putLayer, writeLayout } from '../../helpers/oci.js';

const BIN = fileURLToPath(new URL('../../../bin/winsnap', import.meta.url));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function tar(entries: [TarHeaderInput, Buffer?][]): Promise<Buffer> {
  const w = new TarWriter();
  const out = buffer(w.stream);
  for (const [h, d] of entries) await w.writeEntry(h, d);
  await w.finish();
  return out;
}
const T = { sec: 1_700_000_000n, nsec: 250 };
const dir = (name: string): [TarHeaderInput] => [{ name: `${name}/`, type: 'dir', mode: 0o755, mtime: T, atime: T, ctime: T }];
const file = (name: string, data: string): [TarHeaderInput, Buffer] => [{ name, type: 'file', mode: 0o644, size: Buffer.byteLength(data), mtime: T, atime: T, ctime: T }, Buffer.from(data)];

describe('lcow differ (diff/lcow/lcow.go) with the lcow snapshotter', () => {
  test('apply writes layer.vhd (ext4 + VHD footer, whiteouts converted); compare reads it back; other mounts are InvalidArgument', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'winsnap-lcowdiff-'));
    const sn = new LcowSnapshotter(join(tmp, 'sn'), { defaultScratchBytes: 64 << 20 });
    const store = new ContentStore(join(tmp, 'content'));
    try {
      const differ = new LcowDiffer(store);
      const l1 = await tar([dir('etc'), file('etc/os-release', 'ID=test\n'), dir('bin'), file('bin/sh', '#!')]);
      const l2 = await tar([dir('etc'), [{ name: 'etc/.wh.os-release', type: 'file', mode: 0, size: 0, mtime: 0 }], file('etc/new', 'new')]);
      let parent = '';
      const dirs: string[] = [];
      for (const [i, t] of [l1, l2].entries()) {
        const m = await sn.prepare(`extract-${i}`, parent);
        const desc = await differ.applyStream(Readable.from([t]), { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(t)}`, size: t.length }, m);
        assert.equal(desc.digest, `sha256:${sha(t)}`);
        assert.equal(desc.size, t.length);
        const vhd = join(m[0]!.source, 'layer.vhd');
        const bytes = readFileSync(vhd);
        assert.equal(decodeVhdFooter(bytes.subarray(bytes.length - 512)).currentSize, bytes.length - 512);
        const raw = join(tmp, `l${i}.raw`);
        assert.equal(runTool('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', vhd, raw]).status, 0);
        const fsck = runTool('e2fsck', ['-fn', raw]);
        assert.equal(fsck.status, 0, fsck.stdout.toString());
        await sn.commit(`l${i}`, `extract-${i}`);
        dirs.push(m[0]!.source);
        parent = `l${i}`;
      }
      // the whiteout is a 0/0 character device in the ext4 image
      const raw2 = join(tmp, 'l1.raw');
      assert.match(runTool('debugfs', ['-R', 'stat /etc/os-release', raw2]).stdout.toString(), /Type: character special/);
      // compare: a view of l1 (mounts l1's directory) against a view of l0
      const upper = await sn.view('v-upper', 'l1');
      const lower = await sn.view('v-lower', 'l0');
      const desc = await differ.compare(lower, upper, { mediaType: 'application/vnd.oci.image.layer.v1.tar' });
      const back = await buffer(await store.read(desc.digest));
      assert.deepEqual(
        (await tarEntries(back)).map((e) => [e.name, e.sha256]),
        (await tarEntries(l2)).map((e) => [e.name, e.sha256]),
      );
      // base layer against an empty view
      const empty = await sn.view('v-empty', '');
      const base = await sn.view('v-base', 'l0');
      const d0 = await differ.compare(empty, base, { mediaType: 'application/vnd.oci.image.layer.v1.tar' });
      assert.deepEqual((await tarEntries(await buffer(await store.read(d0.digest)))).map((e) => e.name), (await tarEntries(l1)).map((e) => e.name));
      // upstream: a non-lcow mount is InvalidArgument (the lcow differ is the last in the chain)
      await assert.rejects(differ.apply({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(l1)}`, size: l1.length }, [{ type: 'windows-layer', source: tmp, options: [] }]), (e: Error) => kindOf(e) === 'InvalidArgument');
      await assert.rejects(differ.compare(lower, lower), (e: Error) => kindOf(e) === 'InvalidArgument');
      // a corrupt layer leaves no layer.vhd behind
      const m = await sn.prepare('extract-bad', 'l1');
      const bad = Buffer.concat([l1.subarray(0, 700)]);
      await assert.rejects(differ.applyStream(Readable.from([bad]), { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(bad)}`, size: bad.length }, m));
      assert.ok(!existsSync(join(m[0]!.source, 'layer.vhd')));
    } finally {
      await sn.close();
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('winsnap unpack --snapshotter lcow of a linux/amd64 image, then snapshot diff of each layer', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'winsnap-lcowunpack-'));
    try {
      const layout = join(tmp, 'layout');
      const tars = [await tar([dir('etc'), file('etc/hostname', 'box\n')]), await tar([dir('etc'), file('etc/motd', 'hi\n')])];
      const layers = [await putLayer(layout, tars[0]!, 'gzip'), await putLayer(layout, tars[1]!, 'zstd')];
      await writeLayout(layout, [{ os: 'linux', architecture: 'amd64', layers }], 'example.com/linux:1');
      const root = join(tmp, 'root');
      const env = { ...process.env };
      const r = spawnSync(BIN, ['unpack', `${layout}:example.com/linux:1`, '--root', root, '--snapshotter', 'lcow', '--platform', 'linux/amd64', '--json'], { env, maxBuffer: 1 << 28 });
      assert.equal(r.status, 0, r.stderr.toString());
      const out = JSON.parse(r.stdout.toString()) as { layers: { chainId: string }[] };
      for (const [i, l] of out.layers.entries()) {
        const d = spawnSync(BIN, ['snapshot', '--root', root, '--snapshotter', 'lcow', 'diff', l.chainId], { env, maxBuffer: 1 << 28 });
        assert.equal(d.status, 0, d.stderr.toString());
        assert.deepEqual((await tarEntries(gunzipSync(d.stdout))).map((e) => [e.name, e.sha256]), (await tarEntries(tars[i]!)).map((e) => [e.name, e.sha256]));
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
