/**
 * Issue acceptance, round trip: a generated 3-layer Windows image (every record kind,
 * Unicode and deep names, an empty file and a multi-GiB all-zero file, ADS, hard links
 * within and across layers, junctions, symlinks, whiteouts including wrong-case ones) in an
 * OCI layout is unpacked with `winsnap unpack`; each layer exported again with
 * `winsnap snapshot diff` is byte-identical to the original layer tar (so its digest is the
 * config's diff ID), gzip exports hold the same entries, and exports repeat byte for byte.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { TarWriter } from '../../src/formats/tar/writer.js';
import { entryOf, layerTar, NULL_SD, tarEntries, type Spec } from '../helpers/wclayer.js';
import { putLayer, writeDockerArchive, writeLayout, type BuiltLayer } from '../helpers/oci.js';

const BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));
const BIG = 2 * 1024 ** 3 + 4096 * 3 + 1; // multi-GiB, not block aligned
const ENV = { ...process.env, WINSNAP_SCRATCH_TEMPLATE_SIZE: String(64 << 20), WINSNAP_UVM_TEMPLATE_SIZE: String(32 << 20), WINSNAP_FORMAT_NTFS: 'never' };

function cli(args: string[], input?: Buffer): { status: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(BIN, args, { env: ENV, input, maxBuffer: 1 << 30 });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: String(r.stderr) };
}

/** sha256 and size of a command's stdout, streamed (for multi-GiB output). */
function cliDigest(args: string[]): Promise<{ status: number; digest: string; size: number; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(BIN, args, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    const h = createHash('sha256');
    let size = 0;
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      h.update(d);
      size += d.length;
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ status: code ?? -1, digest: `sha256:${h.digest('hex')}`, size, stderr }));
  });
}

const L1: Spec[] = [
  { name: 'Files' },
  { name: 'Files/Windows', sd: NULL_SD },
  { name: 'Files/Windows/System32', sd: NULL_SD },
  { name: 'Files/Windows/System32/kernel32.dll', data: Buffer.alloc(123_457, 0x4d), sd: NULL_SD, eas: [{ name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from([1, 2, 3, 4]) }] },
  { name: 'Files/Windows/System32/kernel32.dll:Zone.Identifier', kind: 'ads', data: '[ZoneTransfer]\r\nZoneId=3\r\n' },
  { name: 'Files/Windows/System32/empty.txt', data: '' },
  { name: 'Files/Windows/System32/copy.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'Files/Users' },
  { name: 'Files/Users/Público' },
  { name: 'Files/Users/Público/日本語のファイル名.txt', data: 'ünïcødé' },
  { name: 'Files/Users/Público/a', attributes: 0x10 },
  { name: `Files/Users/Público/a/${'b'.repeat(120)}`, attributes: 0x10 },
  { name: `Files/Users/Público/a/${'b'.repeat(120)}/${'c'.repeat(150)}.txt`, data: 'deep' },
  { name: 'Files/Documents and Settings', kind: 'junction', link: 'C:\\Users', attributes: 0x416 },
  { name: 'Files/link.txt', kind: 'symlink', link: 'Windows\\System32\\empty.txt' },
  { name: 'UtilityVM' },
  { name: 'UtilityVM/Files' },
  { name: 'UtilityVM/Files/EFI', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft/Boot', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'bcd' },
  { name: 'UtilityVM/Files/kernel32.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
];

const L2: Spec[] = [
  { name: 'Files' },
  { name: 'Files/Windows/System32/.wh.EMPTY.TXT', kind: 'whiteout' },
  { name: 'Files/Windows/System32/new.dll', data: 'new in layer 2' },
  { name: 'Files/Windows/System32/linked.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'Files/Windows/System32/inner.dll', kind: 'hardlink', link: 'Files/Windows/System32/new.dll' },
  { name: 'Hives' },
  { name: 'Hives/Software_Delta', data: 'regf-ish' },
];

const L3: Spec[] = [
  { name: 'Files' },
  { name: 'Files/.wh.users', kind: 'whiteout' },
  { name: 'Files/Windows/System32/new.dll:extra', kind: 'ads', data: 'not allowed without its file' },
];
// L3's ADS needs its file in the same layer (backuptar order): add the file first
L3.splice(2, 0, { name: 'Files/Windows/System32/new.dll', data: 'replaced in layer 3' });

/** L1 as a stream, with the multi-GiB zero file generated on the fly. */
function l1Stream(): Readable {
  const w = new TarWriter();
  (async () => {
    for (const s of L1) {
      const { header, body } = entryOf(s);
      await w.writeEntry(header, body);
    }
    const { header } = entryOf({ name: 'Files/Windows/System32/pagefile.sys', data: '' });
    const zero = Buffer.alloc(1 << 20);
    async function* zeros() {
      for (let left = BIG; left > 0; left -= zero.length) yield left >= zero.length ? zero : zero.subarray(0, left);
    }
    await w.writeEntry({ ...header, size: BIG, pax: header.pax }, zeros());
    await w.finish();
  })().catch((e) => w.destroy(e));
  return w.stream;
}

describe('unpack a 3-layer Windows image and export every layer again', () => {
  let dir = '';
  let root = '';
  let layers: BuiltLayer[] = [];
  let chains: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'winsnap-unpack-'));
    root = join(dir, 'root');
    const layout = join(dir, 'layout');
    layers = [await putLayer(layout, l1Stream(), 'gzip'), await putLayer(layout, await layerTar(L2), 'zstd'), await putLayer(layout, await layerTar(L3), 'none')];
    const decoy = await putLayer(layout, await layerTar([{ name: 'Files' }]), 'gzip');
    await writeLayout(layout, [
      { os: 'linux', architecture: 'amd64', layers: [decoy] },
      { os: 'windows', architecture: 'amd64', osVersion: '10.0.20348.2031', layers },
    ], 'example.com/win:ltsc2022');
    chains = [];
    for (const l of layers) {
      const prev = chains[chains.length - 1];
      chains.push(prev ? `sha256:${createHash('sha256').update(`${prev} ${l.diffId}`).digest('hex')}` : l.diffId);
    }
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  test('winsnap unpack applies and commits each layer under its chain ID; a second run skips them', () => {
    const r = cli(['unpack', `${join(dir, 'layout')}:example.com/win:ltsc2022`, '--root', root, '--platform', 'windows/amd64', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.toString()) as { chainId: string; layers: Array<{ chainId: string; diffId: string; skipped: boolean }>; image: { platform: string } };
    assert.equal(out.image.platform, 'windows/amd64');
    assert.deepEqual(out.layers.map((l) => l.chainId), chains);
    assert.deepEqual(out.layers.map((l) => l.diffId), layers.map((l) => l.diffId));
    assert.ok(out.layers.every((l) => !l.skipped));
    const again = cli(['unpack', `${join(dir, 'layout')}:example.com/win:ltsc2022`, '--root', root, '--platform', 'windows/amd64', '--json']);
    assert.equal(again.status, 0, again.stderr);
    assert.ok((JSON.parse(again.stdout.toString()) as { layers: Array<{ skipped: boolean }> }).layers.every((l) => l.skipped));
    const ls = cli(['snapshot', '--root', root, 'ls']);
    assert.equal(ls.stdout.toString().trim().split('\n').length, 4, 'three committed layers, no leftover extract snapshots');
  });

  test('the multi-GiB zero file is stored as holes', () => {
    const ix = cli(['layer', '--root', root, 'stat', chains[0]!, 'Files/Windows/System32/pagefile.sys']);
    assert.equal(ix.status, 0, ix.stderr);
    assert.equal((JSON.parse(ix.stdout.toString()) as { size: number }).size, BIG);
    const file = join(root, 'snapshotters/windows/snapshots/1/Files/Windows/System32/pagefile.sys');
    assert.equal(statSync(file).size, BIG);
    assert.ok(statSync(file).blocks * 512 < 1 << 20);
  });

  test('exporting each layer uncompressed gives back the original layer tar (digest = diff ID)', async () => {
    for (const [i, chain] of chains.entries()) {
      const r = await cliDigest(['snapshot', '--root', root, 'diff', chain, '--media-type', 'application/vnd.oci.image.layer.v1.tar']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.digest, layers[i]!.diffId, `layer ${i + 1} exports byte-identical`);
    }
  });

  test('gzip exports hold the same entries, are valid gzip and repeat byte for byte', async () => {
    for (const [i, specs] of [[1, L2], [2, L3]] as const) {
      const a = cli(['snapshot', '--root', root, 'diff', chains[i]!]);
      const b = cli(['snapshot', '--root', root, 'diff', chains[i]!]);
      assert.equal(a.status, 0, a.stderr);
      assert.ok(a.stdout.equals(b.stdout), 're-export is byte-identical');
      assert.deepEqual(await tarEntries(gunzipSync(a.stdout)), await tarEntries(await layerTar(specs)));
      const gz = spawnSync('gzip', ['-t'], { input: a.stdout });
      assert.equal(gz.status, 0, 'GNU gzip accepts the export');
    }
  });

  test('the union view shows what a container would see', () => {
    const ls = cli(['layer', '--root', root, '--json', 'ls', chains[2]!, 'Files/windows/SYSTEM32']);
    assert.equal(ls.status, 0, ls.stderr);
    const names = (JSON.parse(ls.stdout.toString()) as Array<{ name: string; layer: number }>).map((e) => e.name.split('/').pop());
    assert.deepEqual(names, ['copy.dll', 'inner.dll', 'kernel32.dll', 'kernel32.dll:Zone.Identifier', 'linked.dll', 'new.dll', 'new.dll:extra', 'pagefile.sys']);
    const cat = cli(['layer', '--root', root, 'cat', chains[2]!, 'Files/Windows/System32/New.dll']);
    assert.equal(cat.stdout.toString(), 'replaced in layer 3');
    const users = cli(['layer', '--root', root, 'stat', chains[2]!, 'Files/Users']);
    assert.notEqual(users.status, 0, 'Files/Users is deleted by layer 3');
    assert.match(users.stderr, /not found/);
  });
});

describe('unpack a legacy docker save archive', () => {
  test('layers apply from the archive in place; the image is found by tag', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-dsave-'));
    try {
      const tars = [await layerTar(L1), await layerTar(L2)];
      const archive = join(dir, 'image.tar');
      const diffIds = await writeDockerArchive(archive, tars, { os: 'windows', architecture: 'amd64' }, 'win:latest');
      const r = cli(['unpack', `${archive}:win:latest`, '--root', join(dir, 'root'), '--platform', 'windows/amd64', '--json']);
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.toString()) as { layers: Array<{ diffId: string }> };
      assert.deepEqual(out.layers.map((l) => l.diffId), diffIds);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
