/**
 * Layer directories: apply/export round trips, Windows name semantics, chains, union view,
 * host-tree conversion and malformed input (DESIGN.md invariants 1-5).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { kindOf } from '../../../src/services/errdefs.js';
import { readTar } from '../../../src/formats/tar/reader.js';
import { applyLayer } from '../../../src/formats/layerdir/apply.js';
import { exportLayer } from '../../../src/formats/layerdir/export.js';
import { indexHostTree } from '../../../src/formats/layerdir/scan.js';
import { UnionView } from '../../../src/formats/layerdir/union.js';
import { LayerIndex } from '../../../src/formats/layerdir/index-db.js';
import { NULL_SD, layerTar, tarEntries, type Spec } from '../../helpers/wclayer.js';
import { requireTool } from '../../helpers/tools.js';

function tmp(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-layerdir-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

const apply = (tar: Buffer, dir: string, parents: string[] = []) => applyLayer(readTar(Readable.from([tar])), dir, { parents });

const BASE: Spec[] = [
  { name: 'Files' },
  { name: 'Files/Windows', sd: NULL_SD },
  { name: 'Files/Windows/System32' },
  { name: 'Files/Windows/System32/kernel32.dll', data: Buffer.alloc(70_000, 0x4d), sd: NULL_SD, eas: [{ name: 'EA1', value: Buffer.from([1, 2, 3]) }] },
  { name: 'Files/Windows/System32/kernel32.dll:Zone.Identifier', kind: 'ads', data: '[ZoneTransfer]\r\nZoneId=3\r\n' },
  { name: 'Files/Windows/System32/empty.txt', data: '' },
  { name: 'Files/Windows/System32/zeros.bin', data: Buffer.alloc(3 << 20) },
  { name: 'Files/Windows/System32/copy.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
  { name: 'Files/Users' },
  { name: 'Files/Users/Público' },
  { name: 'Files/Users/Público/日本語のファイル名.txt', data: 'ünïcødé' },
  { name: `Files/Users/${'deep/'.repeat(30)}leaf.txt`.replace(/deep\//g, 'd/'), data: 'x' },
  { name: 'Files/Documents and Settings', kind: 'junction', link: 'C:\\Users', attributes: 0x410 },
  { name: 'Files/link.txt', kind: 'symlink', link: 'Windows\\System32\\empty.txt' },
  { name: 'UtilityVM' },
  { name: 'UtilityVM/Files' },
  { name: 'UtilityVM/Files/kernel32.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
];

describe('layerdir: apply and export', () => {
  test('a base layer round-trips byte for byte; host tree is readable', async () => {
    const { dir, done } = tmp();
    try {
      const tar = await layerTar(BASE.filter((s) => !s.name.includes('/d/')).concat(BASE.filter((s) => s.name.includes('/d/'))));
      const layer = join(dir, 'layer');
      const r = await apply(tar, layer);
      assert.equal(r.base, true);
      assert.equal(r.hasUtilityVM, true);
      assert.equal(readFileSync(join(layer, 'Files/Users/Público/日本語のファイル名.txt'), 'utf8'), 'ünïcødé');
      assert.equal(readFileSync(join(layer, 'Files/Windows/System32/kernel32.dll:Zone.Identifier'), 'utf8'), '[ZoneTransfer]\r\nZoneId=3\r\n');
      const k = statSync(join(layer, 'Files/Windows/System32/kernel32.dll'));
      assert.equal(statSync(join(layer, 'UtilityVM/Files/kernel32.dll')).ino, k.ino, 'hard links share the inode');
      assert.ok(statSync(join(layer, 'Files/Windows/System32/zeros.bin')).blocks * 512 < 1 << 20, 'zeros are holes');
      const out = await buffer(exportLayer(layer));
      assert.ok(out.equals(tar), 'export is byte-identical to the input');
      const again = join(dir, 'again');
      await apply(out, again);
      assert.ok((await buffer(exportLayer(again))).equals(out), 're-apply + re-export is byte-identical');
    } finally {
      done();
    }
  });

  test('tars written by Python tarfile keep names, PAX records and data', async () => {
    requireTool('python3');
    const { dir, done } = tmp();
    try {
      const script = `
import tarfile, io, base64
t = tarfile.open(${JSON.stringify(join(dir, 'py.tar'))}, 'w', format=tarfile.PAX_FORMAT)
def add(name, data=None, kind=tarfile.REGTYPE, pax=None, link=''):
    ti = tarfile.TarInfo(name); ti.type = kind; ti.mtime = 1700000000; ti.linkname = link
    ti.pax_headers = pax or {}
    if data is not None: ti.size = len(data)
    t.addfile(ti, io.BytesIO(data) if data is not None else None)
sd = base64.b64encode(bytes([1,0,4,0x80] + [0]*16)).decode()
add('Files', kind=tarfile.DIRTYPE, pax={'MSWINDOWS.fileattr': '16', 'MSWINDOWS.rawsd': sd})
add('Files/a.txt', b'hello', pax={'MSWINDOWS.fileattr': '32', 'LIBARCHIVE.creationtime': '1699999999.5', 'mtime': '1700000000.1234567'})
add('Files/a.txt:s', b'stream')
add('Files/b.txt', kind=tarfile.LNKTYPE, link='Files/a.txt', pax={'MSWINDOWS.fileattr': '32'})
add('Files/j', kind=tarfile.SYMTYPE, link='C:\\\\x', pax={'MSWINDOWS.mountpoint': '1', 'MSWINDOWS.fileattr': '1040'})
t.close()`;
      const py = spawnSync('python3', ['-c', script], { encoding: 'utf8' });
      assert.equal(py.status, 0, py.stderr);
      const tar = readFileSync(join(dir, 'py.tar'));
      const layer = join(dir, 'layer');
      await apply(tar, layer);
      const back = await buffer(exportLayer(layer));
      assert.deepEqual(await tarEntries(back), await tarEntries(tar));
    } finally {
      done();
    }
  });

  test('a chain: hard links to a parent layer, wrong-case whiteouts, union view', async () => {
    const { dir, done } = tmp();
    try {
      const l1 = join(dir, 'l1');
      const l2 = join(dir, 'l2');
      const l3 = join(dir, 'l3');
      await apply(await layerTar(BASE), l1);
      const t2 = await layerTar([
        { name: 'Files' },
        { name: 'Files/Windows/System32/.wh.EMPTY.TXT', kind: 'whiteout' },
        { name: 'Files/WINDOWS/System32/new.dll', data: 'new' },
        { name: 'Files/Windows/System32/linked.dll', kind: 'hardlink', link: 'Files/Windows/System32/kernel32.dll' },
        { name: 'Files/Windows/System32/.wh.copy.dll', kind: 'whiteout' },
        { name: 'Hives' },
        { name: 'Hives/Software_Delta', data: 'delta' },
      ]);
      await apply(t2, l2, [l1]);
      assert.equal(statSync(join(l2, 'Files/Windows/System32/linked.dll')).ino, statSync(join(l1, 'Files/Windows/System32/kernel32.dll')).ino);
      assert.ok(existsSync(join(l2, 'Files/Windows/System32/new.dll')), 'one host spelling per directory: the parent layer\'s');
      assert.ok((await buffer(exportLayer(l2))).equals(t2));
      await apply(await layerTar([{ name: 'Files' }, { name: 'Files/.wh.Users', kind: 'whiteout' }]), l3, [l2, l1]);
      const u = new UnionView([l3, l2, l1]);
      try {
        const names = u.list('Files/windows/system32').map((e) => e.name.split('/').pop());
        assert.deepEqual(names, ['kernel32.dll', 'kernel32.dll:Zone.Identifier', 'linked.dll', 'new.dll', 'zeros.bin']);
        assert.equal(u.stat('files/windows/system32/KERNEL32.DLL').layer, 2);
        assert.equal((await buffer(u.read('Files/Windows/System32/new.dll'))).toString(), 'new');
        assert.throws(() => u.stat('Files/Windows/System32/empty.txt'), (e: Error) => kindOf(e) === 'NotFound');
        assert.throws(() => u.stat('Files/Users/Público'), (e: Error) => kindOf(e) === 'NotFound');
        assert.deepEqual(u.list('Files').map((e) => e.name), ['Files/Documents and Settings', 'Files/link.txt', 'Files/Windows']);
        const j = u.stat('Files/Documents and Settings');
        assert.equal(j.kind, 'junction');
        assert.equal(j.windows.linkTarget, 'C:\\Users');
        assert.ok(j.windows.securityDescriptor === undefined);
        assert.deepEqual(u.stat('Files/Windows').windows.securityDescriptor, NULL_SD);
      } finally {
        u.close();
      }
    } finally {
      done();
    }
  });
});

describe('layerdir: malformed layers are rejected and leave nothing behind', () => {
  const bad: Array<[string, Spec[], string[]?]> = [
    ['dot-dot', [{ name: 'Files' }, { name: 'Files/../../etc/passwd', data: 'x' }]],
    ['absolute', [{ name: '/Files/x', data: 'x' }]],
    ['drive letter', [{ name: 'C:/Files/x', data: 'x' }]],
    ['outside the layer trees', [{ name: 'etc/passwd', data: 'x' }]],
    ['backslash', [{ name: 'Files\\..\\x', data: 'x' }]],
    ['duplicate entry', [{ name: 'Files' }, { name: 'Files/a', data: '1' }, { name: 'Files/A', data: '2' }]],
    ['hard link escaping', [{ name: 'Files' }, { name: 'Files/a', kind: 'hardlink', link: '../../etc/passwd' }]],
    ['hard link to Hives', [{ name: 'Files' }, { name: 'Hives' }, { name: 'Hives/x', data: '1' }, { name: 'Files/a', kind: 'hardlink', link: 'Hives/x' }]],
    ['hard link to nothing', [{ name: 'Files' }, { name: 'Files/a', kind: 'hardlink', link: 'Files/missing' }]],
    ['write through a symlink', [{ name: 'Files' }, { name: 'Files/evil', kind: 'symlink', link: 'C:\\' }, { name: 'Files/evil/x', data: 'x' }]],
    ['write through a junction', [{ name: 'Files' }, { name: 'Files/j', kind: 'junction', link: '\\??\\C:\\', attributes: 0x410 }, { name: 'Files/j/x', data: 'x' }]],
    ['tombstone outside Files', [{ name: 'Hives' }, { name: 'Hives/.wh.x', kind: 'whiteout' }], ['parent']],
    ['tombstone in a base layer', [{ name: 'Files' }, { name: 'Files/.wh.x', kind: 'whiteout' }]],
    ['ADS without its file', [{ name: 'Files' }, { name: 'Files/a:s', kind: 'ads', data: 'x' }]],
  ];
  for (const [what, specs, opt] of bad) {
    test(what, async () => {
      const { dir, done } = tmp();
      try {
        const parents: string[] = [];
        if (opt?.includes('parent')) {
          const p = join(dir, 'p');
          await apply(await layerTar([{ name: 'Files' }]), p);
          parents.push(p);
        }
        const layer = join(dir, 'layer');
        await assert.rejects(apply(await layerTar(specs), layer, parents), (e: Error) => {
          assert.equal(kindOf(e), 'InvalidArgument', e.message);
          return true;
        });
        assert.deepEqual(readdirSync(layer), [], 'nothing written');
        assert.ok(!existsSync(join(dir, 'etc')) && !existsSync('/etc/passwd.winsnap'));
      } finally {
        done();
      }
    });
  }

  test('a layer directory that is not empty is refused', async () => {
    const { dir, done } = tmp();
    try {
      mkdirSync(join(dir, 'layer', 'Files'), { recursive: true });
      await assert.rejects(apply(await layerTar([{ name: 'Files' }]), join(dir, 'layer')), (e: Error) => kindOf(e) === 'FailedPrecondition');
    } finally {
      done();
    }
  });
});

describe('layerdir: converting a host tree', () => {
  test('files, streams, hard links and whiteouts become entries; export lists them', async () => {
    const { dir, done } = tmp();
    try {
      const p = join(dir, 'parent');
      await apply(await layerTar(BASE), p);
      const w = join(dir, 'writable');
      mkdirSync(join(w, 'Files/Windows/System32'), { recursive: true });
      writeFileSync(join(w, 'Files/Windows/System32/new.txt'), 'new data');
      writeFileSync(join(w, 'Files/Windows/System32/new.txt:meta'), 'stream');
      linkSync(join(w, 'Files/Windows/System32/new.txt'), join(w, 'Files/Windows/second.txt'));
      writeFileSync(join(w, 'Files/Windows/System32/.wh.kernel32.dll'), '');
      const n = indexHostTree(w, { parents: [p] });
      assert.equal(n, 7);
      assert.ok(!existsSync(join(w, 'Files/Windows/System32/.wh.kernel32.dll')), 'marker files are removed');
      const entries = await tarEntries(await buffer(exportLayer(w)));
      assert.deepEqual(entries.map((e) => [e.name, e.typeflag]), [
        ['Files', 0x35],
        ['Files/Windows', 0x35],
        ['Files/Windows/second.txt', 0x30],
        ['Files/Windows/System32', 0x35],
        ['Files/Windows/System32/.wh.kernel32.dll', 0x30],
        ['Files/Windows/System32/new.txt', 0x31],
        ['Files/Windows/System32/new.txt:meta', 0x30],
      ]);
      const second = entries[2]!;
      assert.equal(second.sha256, createHash('sha256').update('new data').digest('hex'));
      assert.ok(second.pax.some(([k]) => k === 'MSWINDOWS.fileattr'));
      const u = new UnionView([w, p]);
      try {
        assert.throws(() => u.stat('Files/Windows/System32/kernel32.dll'), (e: Error) => kindOf(e) === 'NotFound');
        assert.equal(u.stat('Files/Windows/System32/zeros.bin').layer, 1);
      } finally {
        u.close();
      }
      assert.equal(new LayerIndexCount(w).count, 7);
    } finally {
      done();
    }
  });

  test('host symlinks and tombstones in a base layer are refused', () => {
    const { dir, done } = tmp();
    try {
      mkdirSync(join(dir, 'a/Files'), { recursive: true });
      writeFileSync(join(dir, 'a/Files/.wh.x'), '');
      assert.throws(() => indexHostTree(join(dir, 'a')), (e: Error) => kindOf(e) === 'InvalidArgument');
      assert.ok(!LayerIndex.exists(join(dir, 'a')));
    } finally {
      done();
    }
  });
});

class LayerIndexCount {
  readonly count: number;
  constructor(dir: string) {
    const ix = LayerIndex.open(dir);
    this.count = ix.count;
    ix.close();
  }
}
