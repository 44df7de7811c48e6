import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createHash } from 'node:crypto';
import { CimfsSnapshotter } from '../../../src/plugins/snapshots/cimfs/cimfs.js';
import { CimfsDiffer } from '../../../src/plugins/diff/cimfs/cimfs.js';
import { ContentStore } from '../../../src/services/content/store.js';
import { CimReader } from '../../../src/formats/cim/index.js';
import { exportCimLayer } from '../../../src/plugins/cim/layer-export.js';
import { writeHive, stringValue, parseHive } from '../../../src/formats/regf/index.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { layerTar, tarEntries, NULL_SD, type Spec } from '../../helpers/wclayer.js';
import { hivexmlTree } from '../../formats/regf/validators.js';

const hive = (name: string, extra: Parameters<typeof writeHive>[0]['subkeys'] = []) => writeHive({ name, subkeys: extra }, { fileName: name });
const SOFTWARE = writeHive(
  {
    name: 'ROOT',
    subkeys: [{ name: 'Microsoft', subkeys: [{ name: 'Windows NT', subkeys: [{ name: 'CurrentVersion', values: [stringValue('CurrentBuild', '20348')] }] }] }],
  },
  { fileName: 'SOFTWARE' },
);
const SOFTWARE_DELTA = writeHive({ name: 'ROOT', subkeys: [{ name: 'Winsnap', values: [stringValue('Layer', 'two')] }] }, { fileName: 'SOFTWARE_DELTA' });
const CONFIG = 'Files/Windows/System32/config';
const BIG = 5 * 1024 * 1024;

const L1: Spec[] = [
  { name: 'Files' },
  { name: 'Files/Windows', sd: NULL_SD },
  { name: 'Files/Windows/System32', sd: NULL_SD },
  { name: CONFIG },
  { name: `${CONFIG}/SYSTEM`, data: hive('SYSTEM') },
  { name: `${CONFIG}/SOFTWARE`, data: SOFTWARE },
  { name: `${CONFIG}/SAM`, data: hive('SAM') },
  { name: `${CONFIG}/SECURITY`, data: hive('SECURITY') },
  { name: `${CONFIG}/DEFAULT`, data: hive('DEFAULT') },
  { name: 'Files/Windows/System32/kernel32.dll', data: Buffer.alloc(123_457, 0x4d), sd: NULL_SD, eas: [{ name: '$KERNEL.PURGE.ESBCACHE', value: Buffer.from([1, 2, 3, 4]) }] },
  { name: 'Files/Windows/System32/kernel32.dll:Zone.Identifier', kind: 'ads', data: '[ZoneTransfer]\r\nZoneId=3\r\n', attributes: 0 },
  { name: 'Files/Windows/System32/empty.txt', data: '' },
  { name: 'Files/Windows/System32/zeros.bin', data: Buffer.alloc(BIG) },
  { name: 'Files/Windows/System32/copy.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'Files/Users' },
  { name: 'Files/Users/Público' },
  { name: 'Files/Users/Público/日本語のファイル名.txt', data: 'ünïcødé', attributes: 0x21 },
  { name: `Files/Users/Público/${'b'.repeat(120)}`, attributes: 0x10 },
  { name: `Files/Users/Público/${'b'.repeat(120)}/${'c'.repeat(150)}.txt`, data: 'deep' },
  { name: 'Files/Documents and Settings', kind: 'junction', link: 'C:\\Users', attributes: 0x416 },
  { name: 'Files/link.txt', kind: 'symlink', link: 'Windows\\System32\\empty.txt' },
  { name: 'UtilityVM' },
  { name: 'UtilityVM/Files' },
  { name: 'UtilityVM/Files/EFI', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft/Boot', attributes: 0x10 },
  { name: 'UtilityVM/Files/EFI/Microsoft/Boot/BCD', data: 'bcd' },
  { name: 'UtilityVM/Files/kernel32.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'UtilityVM/Files/system.hv', kind: 'hardlink', link: `${CONFIG}/SYSTEM` },
];
const L2: Spec[] = [
  { name: 'Files' },
  { name: 'Files/Windows/System32/.wh.EMPTY.TXT', kind: 'whiteout' },
  { name: 'Files/Windows/System32/new.dll', data: 'new in layer 2' },
  { name: 'Files/Windows/System32/linked.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'Files/Windows/System32/inner.dll', kind: 'hardlink', link: 'Files/Windows/System32/new.dll' },
  { name: 'Hives' },
  { name: 'Hives/SOFTWARE_DELTA', data: SOFTWARE_DELTA },
];
const L3: Spec[] = [
  { name: 'Files' },
  { name: 'Files/.wh.users', kind: 'whiteout' },
  { name: 'Files/Windows/System32/new.dll', data: 'replaced in layer 3' },
  { name: 'Files/Windows/System32/new.dll:extra', kind: 'ads', data: 'a stream', attributes: 0 },
];

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('CIM layer writer + cimfs differ: a 3-layer image through CIM and back', () => {
  let tmp: string;
  let sn: CimfsSnapshotter;
  let store: ContentStore;
  let differ: CimfsDiffer;
  const tars: Buffer[] = [];
  const ids: string[] = [];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'winsnap-cimlayer-'));
    sn = new CimfsSnapshotter(join(tmp, 'sn'), { scratch: { templateSize: 64 << 20, formatNtfs: 'never' } });
    store = new ContentStore(join(tmp, 'content'));
    differ = new CimfsDiffer(store);
    let parent = '';
    for (const [i, specs] of [L1, L2, L3].entries()) {
      const tar = await layerTar(specs);
      tars.push(tar);
      const key = `extract-${i} layer${i}`;
      const mounts = await sn.prepare(key, parent);
      const desc = await differ.applyStream(Readable.from([tar]), { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(tar)}`, size: tar.length }, mounts);
      assert.equal(desc.digest, `sha256:${sha(tar)}`);
      assert.equal(desc.size, tar.length);
      await sn.commit(`layer${i}`, key);
      ids.push(String(i + 1));
      parent = `layer${i}`;
    }
  });
  after(async () => {
    await sn.close();
    store.close?.();
    rmSync(tmp, { recursive: true, force: true });
  });

  const cimOf = (id: string) => join(sn.cimDir, `${id}.cim`);
  const dirOf = (id: string) => sn.getSnapshotDir(id);

  test('each layer exports to the same entries (names, PAX records, data); re-export is byte-identical', async () => {
    for (const [i, id] of ids.entries()) {
      const exported = await buffer(exportCimLayer(dirOf(id), cimOf(id)));
      assert.deepEqual(await tarEntries(exported), await tarEntries(tars[i]!), `layer ${i + 1}`);
      assert.deepEqual(await buffer(exportCimLayer(dirOf(id), cimOf(id))), exported);
    }
  });

  test('the top image reads as the union: whiteouts (any case) applied, replacements visible, hard links shared', async () => {
    const r = await CimReader.open(cimOf('3'));
    try {
      await assert.rejects(r.stat('Files/Users'), (e: Error) => kindOf(e) === 'NotFound');
      await assert.rejects(r.stat('Files/Windows/System32/empty.txt'), (e: Error) => kindOf(e) === 'NotFound');
      assert.equal((await r.readFile('Files/Windows/System32/new.dll')).toString(), 'replaced in layer 3');
      assert.equal((await r.readFile('Files/Windows/System32/new.dll', 'extra')).toString(), 'a stream');
      assert.equal((await r.readFile('files/windows/system32/INNER.dll')).toString(), 'new in layer 2');
      const k = await r.stat('Files/Windows/System32/kernel32.dll');
      assert.equal((await r.stat('Files/Windows/System32/linked.dll')).fileId, k.fileId);
      assert.equal((await r.stat('UtilityVM/Files/kernel32.dll')).fileId, k.fileId);
      const z = await r.stat('Files/Windows/System32/zeros.bin');
      assert.equal(z.size, BigInt(BIG));
      assert.equal(sha(await r.readFile('Files/Windows/System32/zeros.bin')), sha(Buffer.alloc(BIG)));
    } finally {
      await r.close();
    }
  });

  test('base layer processing: host Hives/*_BASE links, and in the CIM a Hives directory, the links and layout (zero times, no SD)', async () => {
    const dir = dirOf('1');
    for (const b of ['SYSTEM_BASE', 'SOFTWARE_BASE', 'SAM_BASE', 'SECURITY_BASE', 'DEFAULTUSER_BASE']) assert.ok(existsSync(join(dir, 'Hives', b)), b);
    assert.deepEqual(readFileSync(join(dir, 'Hives', 'SOFTWARE_BASE')), SOFTWARE);
    const r = await CimReader.open(cimOf('1'));
    try {
      const hives = await r.stat('Hives');
      assert.ok(hives.isDirectory);
      assert.equal(hives.lastWriteTime, 0n);
      assert.equal(hives.securityDescriptor, undefined);
      assert.equal((await r.stat('Hives/DEFAULTUSER_BASE')).fileId, (await r.stat(`${CONFIG}/DEFAULT`)).fileId);
      assert.equal((await r.readFile('layout')).toString(), 'vhd-with-hives\n');
      assert.equal((await r.stat('layout')).creationTime, 0n);
      assert.deepEqual(await r.readFile(`${CONFIG}/SOFTWARE`), SOFTWARE);
      // a link to a std file was deferred until the std file was in the CIM
      assert.equal((await r.stat('UtilityVM/Files/system.hv')).fileId, (await r.stat(`${CONFIG}/SYSTEM`)).fileId);
      assert.equal((await r.readFile('UtilityVM/Files/EFI/Microsoft/Boot/BCD')).toString(), 'bcd');
    } finally {
      await r.close();
    }
  });

  test('non-base processing: Hives/SOFTWARE_DELTA merged onto the parent SOFTWARE_BASE, on the host and in the CIM; hivexml reads it', async () => {
    const merged = join(dirOf('2'), 'Hives', 'SOFTWARE_BASE');
    assert.ok(existsSync(merged));
    const tree = hivexmlTree(merged);
    const names = (k: { name: string; children: { name: string }[] }) => k.children.map((c) => c.name).sort();
    assert.deepEqual(names(tree), ['Microsoft', 'Winsnap']);
    const parsed = parseHive(readFileSync(merged));
    assert.ok(parsed.root.subkey?.('Winsnap') ?? true);
    const r = await CimReader.open(cimOf('2'));
    try {
      assert.deepEqual(await r.readFile('Hives/SOFTWARE_BASE'), readFileSync(merged));
    } finally {
      await r.close();
    }
  });
});

describe('CIM layer writer: bad layers leave no image behind', () => {
  const cases: [string, Spec[], boolean, RegExp][] = [
    ['a link named like a std file', [{ name: 'Files' }, { name: 'Files/a', data: 'x' }, { name: 'Hives' }, { name: 'Hives/SYSTEM_DELTA', kind: 'hardlink', link: 'Files/a' }], true, /unexpected link/],
    ['an alternate stream on a std file', [{ name: 'Hives' }, { name: 'Hives/SAM_DELTA', data: 'x' }, { name: 'Hives/SAM_DELTA:s', kind: 'ads', data: 'y' }], true, /unexpected alternate stream/],
    ['a whiteout in a base layer', [{ name: 'Files' }, { name: 'Files/.wh.x', kind: 'whiteout' }], false, /base layer/],
    ['a name outside Files/Hives/UtilityVM', [{ name: 'Files' }, { name: 'Files/a', data: 'x' }], false, /./],
    ['a hard link to a missing target', [{ name: 'Files' }, { name: 'Files/l', kind: 'hardlink', link: 'Files/missing' }], false, /does not exist/],
  ];
  cases[3]![1].push({ name: 'Other/x', data: 'x' });
  for (const [what, specs, withParent, re] of cases) {
    test(what, async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'winsnap-cimbad-'));
      const sn = new CimfsSnapshotter(join(tmp, 'sn'), { scratch: { templateSize: 64 << 20, formatNtfs: 'never' } });
      const store = new ContentStore(join(tmp, 'content'));
      try {
        const differ = new CimfsDiffer(store);
        let parent = '';
        if (withParent) {
          const base = await layerTar([{ name: 'Files' }]);
          const m = await sn.prepare('extract-base', '');
          await differ.applyStream(Readable.from([base]), { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(base)}`, size: base.length }, m);
          await sn.commit('base', 'extract-base');
          parent = 'base';
        }
        const before = readdirSync(sn.cimDir).sort();
        const tar = await layerTar(specs);
        const m = await sn.prepare('extract-bad', parent);
        await assert.rejects(
          differ.applyStream(Readable.from([tar]), { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${sha(tar)}`, size: tar.length }, m),
          (e: Error) => {
            assert.match(e.message, re);
            return true;
          },
        );
        assert.deepEqual(readdirSync(sn.cimDir).sort(), before);
      } finally {
        await sn.close();
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
});

describe('winsnap unpack --snapshotter cimfs, then snapshot diff of each layer', () => {
  test('every layer becomes a forked CIM under its chain ID; `snapshot diff` exports each layer to its original entries', async () => {
    const { spawnSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const { gunzipSync } = await import('node:zlib');
    const { putLayer, writeLayout } = await import('../../helpers/oci.js');
    const BIN = fileURLToPath(new URL('../../../bin/winsnap', import.meta.url));
    const env = { ...process.env, WINSNAP_CIM_SCRATCH_TEMPLATE_SIZE: String(64 << 20), WINSNAP_FORMAT_NTFS: 'never' };
    const run = (args: string[]) => spawnSync(BIN, args, { env, maxBuffer: 1 << 30 });
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-cimunpack-'));
    try {
      const layout = join(dir, 'layout');
      const root = join(dir, 'root');
      const tars = [await layerTar(L1), await layerTar(L2), await layerTar(L3)];
      const layers = [await putLayer(layout, tars[0]!, 'gzip'), await putLayer(layout, tars[1]!, 'zstd'), await putLayer(layout, tars[2]!, 'none')];
      await writeLayout(layout, [{ os: 'windows', architecture: 'amd64', layers }], 'example.com/cim:1');
      const r = run(['unpack', `${layout}:example.com/cim:1`, '--root', root, '--snapshotter', 'cimfs', '--platform', 'windows/amd64', '--json']);
      assert.equal(r.status, 0, r.stderr.toString());
      const out = JSON.parse(r.stdout.toString()) as { layers: Array<{ chainId: string }> };
      assert.equal(out.layers.length, 3);
      const cims = readdirSync(join(root, 'snapshotters', 'cimfs', 'snapshots', 'cim-layers')).filter((n) => n.endsWith('.cim'));
      assert.equal(cims.length, 3);
      for (const [i, l] of out.layers.entries()) {
        const args = ['snapshot', '--root', root, '--snapshotter', 'cimfs', 'diff', l.chainId];
        const d = run(args);
        assert.equal(d.status, 0, d.stderr.toString());
        assert.deepEqual(await tarEntries(gunzipSync(d.stdout)), await tarEntries(tars[i]!), `layer ${i + 1}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
