/**
 * tar → ext4 (+ verity, + VHD footer), checked by tools nobody here wrote: e2fsck, debugfs,
 * veritysetup and qemu-img. The expected tree is computed from the corpus description with
 * tar-extraction rules (later entries win, parents made on demand), not by our code.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, lstatSync, readlinkSync, openSync, readSync, closeSync, linkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { TarWriter } from '../../../src/formats/tar/writer.js';
import type { PaxRecord, TarHeaderInput } from '../../../src/formats/tar/types.js';
import { tar2vhd } from '../../../src/plugins/lcow/tar2vhd.js';
import { readFileChunks } from '../../../src/services/fsutil/ring-reader.js';
import { StreamFingerprint } from '../../../src/formats/checksum.js';
import { exportExt4Layer } from '../../../src/plugins/lcow/ext4-export.js';
import { Ext4Reader } from '../../../src/formats/ext4/reader.js';
import { Ext4Writer } from '../../../src/formats/ext4/writer.js';
import { TarReader } from '../../../src/formats/tar/reader.js';
import { decodeVhdFooter, encodeVhdFooter, chsGeometry } from '../../../src/formats/vhd/footer.js';
import { decodeVeritySuperblock } from '../../../src/formats/verity/verity.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { mappedFilesMade, spilledTables } from '../../../src/services/fsutil/spill.js';
import { ext4NativeCalls } from '../../../src/services/fsutil/native.js';
import { runTool } from '../../helpers/tools.js';
import { tarEntries } from '../../helpers/wclayer.js';

interface Ent {
  header: TarHeaderInput;
  data?: Buffer;
}
const t = (sec: number, nsec = 0) => ({ sec: BigInt(sec), nsec });
const CAP = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // vfs_cap_data v2, binary

/** The corpus: every kind of entry, deep trees, links, xattrs, whiteouts, out-of-order and duplicate entries. */
function corpus(files: number): Ent[] {
  const out: Ent[] = [];
  const dir = (name: string, mode = 0o755, extra: Partial<TarHeaderInput> = {}): Ent => ({ header: { name: `${name}/`, type: 'dir', mode, uid: 0, gid: 0, mtime: t(1_600_000_000, 5), ...extra } });
  const file = (name: string, data: Buffer | string, extra: Partial<TarHeaderInput> = {}): Ent => {
    const d = Buffer.from(data);
    return { header: { name, type: 'file', mode: 0o644, uid: 1000, gid: 1000, size: d.length, mtime: t(1_650_000_000, 123_456_789), atime: t(1_650_000_001, 1), ctime: t(1_650_000_002, 999_999_999), ...extra }, data: d };
  };
  out.push(dir('usr'), dir('usr/share'), dir('usr/share/doc'));
  for (let i = 0; i < files; i++) {
    const d = `usr/share/doc/pkg${i % 97}`;
    if (i < 97) out.push(dir(d, 0o755, { uid: i, gid: i * 2 }));
    out.push(file(`${d}/file-${i}.txt`, `content of file ${i}\n`.repeat(i % 13), { uid: i % 7, gid: 65_540 + (i % 3) }));
  }
  let deep = 'deep';
  for (let i = 0; i < 40; i++) deep += `/level-${i}`;
  out.push(file(`${deep}/bottom.bin`, Buffer.alloc(70_000, 7))); // parents made on demand
  out.push(dir('deep/level-0', 0o711, { uid: 5, gid: 6 })); // a parent described after its child
  // bigger than the writer's 1 MiB output buffer, starting part-way into it, with a hole: runs
  // of blocks that cross a flush must land where the extents say
  const big = Buffer.alloc(3 * 1024 * 1024 + 100);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, big.length - 4));
  big.fill(0, 8192, 16384);
  out.push(file('opt/big.bin', big));
  out.push(file('bin/busybox', Buffer.from(createHash('sha512').update('x').digest().toString('hex').repeat(3000)), { mode: 0o4755 }));
  out.push({ header: { name: 'bin/sh', type: 'link', linkname: 'bin/busybox', mtime: 0 } });
  out.push({ header: { name: 'bin/ls', type: 'symlink', linkname: 'busybox', mtime: t(1_500_000_000) } });
  out.push({ header: { name: 'bin/ls-hard', type: 'link', linkname: 'bin/ls', mtime: 0 } });
  out.push({ header: { name: 'bin/long', type: 'symlink', linkname: `/${'a'.repeat(200)}/target`, mtime: t(1_500_000_000) } });
  out.push({ header: { name: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3, mtime: 0 } });
  out.push({ header: { name: 'dev/sda', type: 'block', mode: 0o660, devmajor: 8, devminor: 300, mtime: 0 } });
  out.push({ header: { name: 'dev/big', type: 'char', mode: 0o600, devmajor: 300, devminor: 70_000, mtime: 0 } });
  out.push({ header: { name: 'run/fifo', type: 'fifo', mode: 0o600, mtime: 0 } });
  const xattrs: PaxRecord[] = [
    { key: 'SCHILY.xattr.security.capability', value: CAP },
    { key: 'SCHILY.xattr.user.small', value: Buffer.from('v') },
    { key: 'SCHILY.xattr.user.large', value: Buffer.alloc(900, 0xab) }, // needs the xattr block
    { key: 'SCHILY.xattr.trusted.zzz', value: Buffer.from([0, 1, 2, 0, 255]) },
  ];
  out.push(file('bin/ping', 'ping', { pax: xattrs }));
  out.push(file('etc/dup', 'first version, longer than the second'));
  out.push(file('etc/dup', 'second'));
  out.push(file('etc/was-file', 'soon a directory'));
  out.push(dir('etc/was-file'));
  out.push(file('etc/was-file/inner', 'inside'));
  out.push(file('etc/was-dir/a', 'in the first directory'));
  out.push(file('etc/was-dir', 'a file over a directory drops its entries'));
  out.push(dir('etc/was-dir'));
  out.push(file('etc/was-dir/b', 'in the second directory'));
  out.push(file('etc/.wh.removed', ''));
  out.push(dir('opaque'));
  out.push(file('opaque/.wh..wh..opq', ''));
  out.push(file('opaque/kept', 'kept'));
  out.push(file('empty', ''));
  return out;
}

async function tarOf(ents: Ent[], sparse?: { name: string; size: number; marker: Buffer }): Promise<Buffer> {
  const w = new TarWriter();
  const done = buffer(w.stream);
  await writeTar(w, ents, sparse);
  return done;
}

/** The tar as a stream, generated while it is read (for multi-GiB entries). */
function tarStream(ents: Ent[], sparse?: { name: string; size: number; marker: Buffer }): Readable {
  const w = new TarWriter();
  writeTar(w, ents, sparse).catch((e: Error) => w.destroy(e));
  return w.stream;
}

async function writeTar(w: TarWriter, ents: Ent[], sparse?: { name: string; size: number; marker: Buffer }): Promise<void> {
  for (const e of ents) await w.writeEntry(e.header, e.data);
  if (sparse) {
    const zero = Buffer.alloc(1 << 20);
    async function* body() {
      let left = sparse!.size - sparse!.marker.length;
      while (left > 0) {
        const n = Math.min(left, zero.length);
        yield zero.subarray(0, n);
        left -= n;
      }
      yield sparse!.marker;
    }
    await w.writeEntry({ name: sparse.name, type: 'file', mode: 0o600, size: sparse.size, mtime: 0 }, body());
  }
  await w.finish();
}

interface Expect {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  data?: Buffer;
  link?: string;
  dev?: [number, number];
  xattrs?: PaxRecord[];
}

/** What extracting the corpus with whiteout conversion gives, by path (independent of the writer). */
function expected(ents: Ent[]): Map<string, Expect> {
  const m = new Map<string, Expect>();
  const ensureParents = (p: string) => {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!m.has(d) || m.get(d)!.type !== 'dir') m.set(d, { type: 'dir', mode: 0o755, uid: 0, gid: 0 });
    }
  };
  const drop = (p: string) => {
    for (const k of [...m.keys()]) if (k === p || k.startsWith(`${p}/`)) m.delete(k);
  };
  for (const { header: h, data } of ents) {
    const name = h.name.replace(/\/$/, '');
    const base = name.split('/').pop()!;
    ensureParents(name);
    if (base === '.wh..wh..opq') {
      const d = name.slice(0, name.lastIndexOf('/'));
      m.get(d)!.xattrs = [{ key: 'SCHILY.xattr.trusted.overlay.opaque', value: Buffer.from('y') }];
      continue;
    }
    if (base.startsWith('.wh.')) {
      const target = `${name.slice(0, name.lastIndexOf('/') + 1)}${base.slice(4)}`;
      drop(target);
      m.set(target, { type: 'char', mode: 0, uid: 0, gid: 0, dev: [0, 0] });
      continue;
    }
    const old = m.get(name);
    if (h.type === 'dir') {
      if (old?.type !== 'dir') drop(name);
      m.set(name, { type: 'dir', mode: h.mode!, uid: h.uid ?? 0, gid: h.gid ?? 0, xattrs: old?.type === 'dir' ? old.xattrs : undefined });
    } else if (h.type === 'link') {
      drop(name);
      m.set(name, { ...m.get(h.linkname!)! });
    } else {
      drop(name);
      m.set(name, {
        type: h.type!,
        mode: h.type === 'symlink' ? 0o777 : h.mode ?? 0,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
        data,
        link: h.type === 'symlink' ? h.linkname : undefined,
        dev: h.type === 'char' || h.type === 'block' ? [h.devmajor!, h.devminor!] : undefined,
        xattrs: h.pax?.filter((r) => r.key.startsWith('SCHILY.xattr.')),
      });
    }
  }
  return m;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const TYPE_BITS: Record<string, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

describe('tar2vhd: ext4 checked by e2fsck and debugfs', () => {
  let dir: string;
  let ents: Ent[];
  let tar: Buffer;
  let img: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'winsnap-ext4-'));
    ents = corpus(30_000);
    tar = await tarOf(ents);
    img = join(dir, 'layer.img');
    await tar2vhd(Readable.from([tar]), img, { convertWhiteouts: true, footer: false });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('e2fsck -fn accepts the image', () => {
    const r = runTool('e2fsck', ['-fn', img]);
    assert.equal(r.status, 0, r.stdout.toString() + r.stderr);
  });

  test('debugfs sees exactly the expected tree: names, types, modes, owners, sizes, link targets, devices, xattrs, data', () => {
    const want = expected(ents);
    // listings of every directory, in one debugfs run
    const dirs = ['', ...[...want].filter(([, e]) => e.type === 'dir').map(([p]) => p)];
    writeFileSync(join(dir, 'cmds'), dirs.map((d) => `ls -p "/${d}"`).join('\n'));
    const ls = runTool('debugfs', ['-f', join(dir, 'cmds'), img]).stdout.toString();
    const got = new Map<string, { ino: number; mode: number; uid: number; gid: number; size: string }>();
    let cur = '';
    for (const line of ls.split('\n')) {
      const cmd = /^debugfs: ls -p "\/(.*)"$/.exec(line);
      if (cmd) {
        cur = cmd[1]!;
        continue;
      }
      const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(.*)\/$/.exec(line);
      if (!m || m[5] === '.' || m[5] === '..') continue;
      const p = cur ? `${cur}/${m[5]}` : m[5]!;
      if (p === 'lost+found') continue;
      got.set(p, { ino: Number(m[1]), mode: parseInt(m[2]!, 8), uid: Number(m[3]), gid: Number(m[4]), size: m[6]! });
    }
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [p, e] of want) {
      const g = got.get(p)!;
      assert.equal(g.mode, TYPE_BITS[e.type]! | e.mode, `${p} mode`);
      assert.equal(g.uid, e.uid, `${p} uid`);
      assert.equal(g.gid, e.gid, `${p} gid`);
      if (e.type === 'file') assert.equal(Number(g.size), e.data!.length, `${p} size`);
    }
    // data: rdump everything, compare SHA-256
    const out = join(dir, 'rdump');
    runTool('mkdir', ['-p', out]);
    assert.equal(runTool('debugfs', ['-R', `rdump / ${out}`, img]).status, 0);
    for (const [p, e] of want) {
      if (e.type === 'file') assert.equal(sha(readFileSync(join(out, p))), sha(e.data!), `${p} data`);
      if (e.type === 'symlink') assert.equal(readlinkSync(join(out, p)), e.link, `${p} target`);
    }
    // hard links share the inode
    assert.equal(got.get('bin/sh')!.ino, got.get('bin/busybox')!.ino);
    assert.equal(got.get('bin/ls-hard')!.ino, got.get('bin/ls')!.ino);
    // devices, times with nanoseconds, xattrs: debugfs stat / ea_get
    const stat = (p: string) => runTool('debugfs', ['-R', `stat "/${p}"`, img]).stdout.toString();
    assert.match(stat('dev/null'), /Device major\/minor number: 01:03/);
    assert.match(stat('dev/sda'), /Device major\/minor number: 08:300 |Device major\/minor number: 08:\d+ \(hex 08:12c\)/);
    assert.match(stat('dev/big'), /\(hex 12c:11170\)/);
    assert.match(stat('etc/removed'), /Type: character special.*\n(.|\n)*Device major\/minor number: 00:00/);
    const s = stat('usr/share/doc/pkg1/file-1.txt');
    assert.match(s, /mtime: 0x[0-9a-f]+:([0-9a-f]+)/);
    const extra = (what: string) => parseInt(new RegExp(`${what}: 0x[0-9a-f]+:([0-9a-f]+)`).exec(s)![1]!, 16);
    assert.equal(extra(' mtime') >>> 2, 123_456_789);
    assert.equal(extra(' atime') >>> 2, 1);
    assert.equal(extra(' ctime') >>> 2, 999_999_999);
    for (const r of want.get('bin/ping')!.xattrs!) {
      const name = r.key.slice('SCHILY.xattr.'.length);
      const v = runTool('debugfs', ['-R', `ea_get -x "/bin/ping" ${name}`, img]).stdout.toString();
      const hex = v.replace(/[^0-9a-f]/gi, '').toLowerCase();
      assert.ok(hex.endsWith(r.value.toString('hex')) || hex.includes(r.value.toString('hex')), `${name}: ${v.slice(0, 200)}`);
    }
    assert.match(runTool('debugfs', ['-R', 'ea_list "/opaque"', img]).stdout.toString(), /trusted\.overlay\.opaque.*"?y"?/);
  });

  test('our reader exports the image back to the expected entries (whiteouts restored)', async () => {
    const back = await tarEntries(exportExt4Layer(img));
    const names = back.map((e) => e.name.replace(/\/$/, ''));
    assert.ok(names.includes('etc/.wh.removed'));
    assert.ok(names.includes('opaque/.wh..wh..opq'));
    const want = expected(ents);
    for (const e of back) {
      const n = e.name.replace(/\/$/, '');
      if (n.includes('.wh.')) continue;
      const w = want.get(n);
      assert.ok(w, `unexpected ${n}`);
      if (w.type === 'file' && e.typeflag === 0x30) assert.equal(e.sha256, sha(w.data!), n);
    }
    assert.equal(back.filter((e) => !e.name.includes('.wh.')).length, want.size - 1); // the 0/0 device became its whiteout
  });

  test('inline data: small files live in their inodes; e2fsck accepts it; debugfs and our reader read them', async () => {
    const small: Ent[] = [{ header: { name: 'i/', type: 'dir', mode: 0o755, mtime: 0 } }];
    for (const n of [0, 1, 59, 60, 61, 100, 128, 129, 4000]) {
      const d = Buffer.alloc(n);
      for (let k = 0; k < n; k++) d[k] = 65 + ((k * 7 + n) % 26);
      small.push({ header: { name: `i/f${n}`, type: 'file', mode: 0o644, size: n, mtime: 0 }, data: d });
    }
    small.push({ header: { name: 'i/with-xattr', type: 'file', mode: 0o644, size: 100, mtime: 0, pax: [{ key: 'SCHILY.xattr.user.big', value: Buffer.alloc(80, 1) }] }, data: Buffer.alloc(100, 66) });
    const img2 = join(dir, 'inline.img');
    await tar2vhd(Readable.from([await tarOf(small)]), img2, { inlineData: true, footer: false });
    const fsck = runTool('e2fsck', ['-fn', img2]);
    assert.equal(fsck.status, 0, fsck.stdout.toString());
    assert.match(runTool('dumpe2fs', ['-h', img2]).stdout.toString(), /features:.*inline_data/);
    assert.match(runTool('debugfs', ['-R', 'stat /i/f100', img2]).stdout.toString(), /Flags: 0x10000000/);
    for (const e of small.slice(1)) {
      // debugfs 1.47 `cat` writes the whole 60-byte i_block area of short inline files: compare the file's size worth
      const got = runTool('debugfs', ['-R', `cat /${e.header.name}`, img2]).stdout;
      assert.equal(sha(got.subarray(0, e.data!.length)), sha(e.data!), e.header.name);
      assert.ok(got.subarray(e.data!.length).every((x) => x === 0), e.header.name);
      assert.match(runTool('debugfs', ['-R', `stat /${e.header.name}`, img2]).stdout.toString(), new RegExp(`Size: ${e.data!.length}\\b`), e.header.name);
    }
    const back = await tarEntries(exportExt4Layer(img2));
    for (const e of small.slice(1)) assert.equal(back.find((b) => b.name === e.header.name)!.sha256, sha(e.data!), e.header.name);
  });

  test('two conversions of the same tar give identical bytes', async () => {
    const again = join(dir, 'again.img');
    await tar2vhd(Readable.from([tar]), again, { convertWhiteouts: true, footer: false });
    assert.equal(sha(readFileSync(again)), sha(readFileSync(img)));
  });

  test('the inode tables: the native encoder of the common inodes and the JavaScript one give the same bytes', async () => {
    assert.ok(ext4NativeCalls(), 'the native helper offers its ext4 encoders (built by npm ci)');
    const js = join(dir, 'js-inodes.img');
    process.env.WINSNAP_NO_NATIVE_INODES = '1';
    try {
      assert.equal(ext4NativeCalls(), undefined);
      await tar2vhd(Readable.from([tar]), js, { convertWhiteouts: true, footer: false });
    } finally {
      delete process.env.WINSNAP_NO_NATIVE_INODES;
    }
    assert.equal(sha(readFileSync(js)), sha(readFileSync(img)));
    // and with inline data and xattrs spread over many groups of a spilled table
    const a = join(dir, 'inline-native.img');
    const b = join(dir, 'inline-js.img');
    await tar2vhd(Readable.from([tar]), a, { convertWhiteouts: true, footer: false, inlineData: true, spillAfterRows: 1000 });
    process.env.WINSNAP_NO_NATIVE_INODES = '1';
    try {
      await tar2vhd(Readable.from([tar]), b, { convertWhiteouts: true, footer: false, inlineData: true, spillAfterRows: 1000 });
    } finally {
      delete process.env.WINSNAP_NO_NATIVE_INODES;
    }
    assert.equal(sha(readFileSync(a)), sha(readFileSync(b)));
    const encode = ext4NativeCalls()!.encodeInodes;
    assert.throws(() => encode([], new Uint8Array(1), new Uint32Array(1), 0, 1, 1, new Uint8Array(256), new Uint8Array(1), 0, new Int32Array(1), new Float64Array(3)), /encodeInodes\(columns/);
  });

  test('tables spilled to files (after 1000 entries) give the same bytes and root hash, and leave no file behind', async () => {
    const made = mappedFilesMade();
    const open = spilledTables();
    const spilled = join(dir, 'spilled.img');
    await tar2vhd(Readable.from([tar]), spilled, { convertWhiteouts: true, footer: false, spillAfterRows: 1000 });
    assert.ok(mappedFilesMade() >= made + 20, 'the inode and entry tables spilled');
    assert.equal(spilledTables(), open, 'and were released');
    assert.equal(sha(readFileSync(spilled)), sha(readFileSync(img)));
    const inMemory = join(dir, 'in-memory.img');
    await tar2vhd(Readable.from([tar]), inMemory, { convertWhiteouts: true, footer: false, spillAfterRows: Infinity });
    assert.equal(sha(readFileSync(inMemory)), sha(readFileSync(img)));
    // with verity hashed on the worker into a level-0 file, and a hash device
    const opts = { convertWhiteouts: true, verity: true, maxDiskSize: 128 * 1024 ** 3 };
    const a = await tar2vhd(Readable.from([tar]), join(dir, 'spilled.vhd'), { ...opts, spillAfterRows: 1000, parallel: true, hashDevice: join(dir, 'spilled.hash') });
    const b = await tar2vhd(Readable.from([tar]), join(dir, 'memory.vhd'), { ...opts, spillAfterRows: Infinity, parallel: false, hashDevice: join(dir, 'memory.hash') });
    assert.deepEqual(a, b);
    assert.equal(sha(readFileSync(join(dir, 'spilled.vhd'))), sha(readFileSync(join(dir, 'memory.vhd'))));
    assert.equal(sha(readFileSync(join(dir, 'spilled.hash'))), sha(readFileSync(join(dir, 'memory.hash'))));
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.winsnap-spill')), []);
    // with inline data (its bytes in an arena that spills too)
    const inlineSpilled = join(dir, 'inline-spilled.img');
    const inlineMemory = join(dir, 'inline-memory.img');
    await tar2vhd(Readable.from([tar]), inlineSpilled, { convertWhiteouts: true, footer: false, inlineData: true, spillAfterRows: 1000 });
    await tar2vhd(Readable.from([tar]), inlineMemory, { convertWhiteouts: true, footer: false, inlineData: true, spillAfterRows: Infinity });
    assert.equal(sha(readFileSync(inlineSpilled)), sha(readFileSync(inlineMemory)));
    assert.notEqual(sha(readFileSync(inlineSpilled)), sha(readFileSync(img)), 'inline data changed the image');
    assert.equal(runTool('e2fsck', ['-fn', inlineSpilled]).status, 0);
  });

  test('converting over an existing file replaces it: a new file, the old one untouched for its other links', async () => {
    const out = join(dir, 'replaced.img');
    const oldBytes = Buffer.alloc(3 * 1024 * 1024, 0x5a);
    writeFileSync(out, oldBytes);
    linkSync(out, join(dir, 'old-link.img'));
    await tar2vhd(Readable.from([tar]), out, { convertWhiteouts: true, footer: false });
    assert.equal(sha(readFileSync(out)), sha(readFileSync(img)));
    assert.equal(sha(readFileSync(join(dir, 'old-link.img'))), sha(oldBytes));
  });

  test('the file path (ring-buffer reads or synchronous I/O, digest and verity on a worker thread) gives the same bytes, digest and root hash as the stream path', async () => {
    const tarFile = join(dir, 'layer.tar');
    writeFileSync(tarFile, tar);
    const viaFile = join(dir, 'via-file.vhd');
    const viaStream = join(dir, 'via-stream.vhd');
    const a = await tar2vhd(readFileChunks(tarFile, { chunkSize: 64 << 10, slots: 3 }), viaFile, { tarFile, convertWhiteouts: true, verity: true, parallel: true, maxDiskSize: 128 * 1024 ** 3 });
    const b = await tar2vhd(Readable.from([tar]), viaStream, { convertWhiteouts: true, verity: true, parallel: false, maxDiskSize: 128 * 1024 ** 3 });
    assert.equal(a.digest, `sha256:${sha(tar)}`);
    assert.deepEqual(a, b);
    assert.equal(sha(readFileSync(viaFile)), sha(readFileSync(viaStream)));
    // synchronous reads and writes on this thread (fsutil/io-mode.ts), the fingerprint fed by
    // the reads: the same bytes, digest and root hash
    const viaSync = join(dir, 'via-sync.vhd');
    const fingerprint = new StreamFingerprint();
    const chunks = readFileChunks(tarFile, { chunkSize: 64 << 10, sync: true, fingerprint });
    const s = await tar2vhd(chunks, viaSync, { io: 'sync', fingerprint, tarFile, convertWhiteouts: true, verity: true, parallel: true, maxDiskSize: 128 * 1024 ** 3 });
    assert.deepEqual(s, a);
    assert.equal(sha(readFileSync(viaSync)), sha(readFileSync(viaFile)));
    // a small tar file is hashed on the calling thread by default: same result
    const inline = await tar2vhd(readFileChunks(tarFile), join(dir, 'inline.vhd'), { tarFile, convertWhiteouts: true, verity: true, maxDiskSize: 128 * 1024 ** 3 });
    assert.deepEqual(inline, a);
    assert.equal(sha(readFileSync(join(dir, 'inline.vhd'))), sha(readFileSync(viaFile)));
    // without the digest: no digest in the result, and the same bytes (identifiers come from the fingerprint)
    const bare = await tar2vhd(readFileChunks(tarFile), join(dir, 'bare.vhd'), { tarFile, digest: false, convertWhiteouts: true, verity: true, maxDiskSize: 128 * 1024 ** 3 });
    assert.equal(bare.digest, undefined);
    assert.deepEqual({ ...bare, digest: a.digest }, a);
    assert.equal(sha(readFileSync(join(dir, 'bare.vhd'))), sha(readFileSync(viaFile)));
    // the digest comes from the file: a file that is not the stream is caught
    const other = join(dir, 'other.tar');
    writeFileSync(other, Buffer.concat([tar, Buffer.alloc(512)]));
    await assert.rejects(
      tar2vhd(Readable.from([tar]), join(dir, 'x.vhd'), { tarFile: other, convertWhiteouts: true, parallel: true }),
      (e: Error) => kindOf(e) === 'FailedPrecondition' && /changed while/.test(e.message),
    );
  });
});

describe('tar2vhd: verity, VHD footer, size limits', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'winsnap-vhd-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('veritysetup verify accepts image + tree with our root hash (same as veritysetup format computes); one flipped data byte fails', async () => {
    const tar = await tarOf(corpus(300));
    const out = join(dir, 'v.vhd');
    const r = await tar2vhd(Readable.from([tar]), out, { convertWhiteouts: true, verity: true, maxDiskSize: 128 * 1024 ** 3 });
    assert.ok(r.rootHash && r.hashOffset === r.ext4Size);
    const ok = runTool('veritysetup', ['verify', out, out, r.rootHash!, `--hash-offset=${r.hashOffset}`]);
    assert.equal(ok.status, 0, ok.stderr);
    // independent computation of the root hash over the ext4 bytes
    const ext4 = join(dir, 'plain.img');
    writeFileSync(ext4, readFileSync(out).subarray(0, r.ext4Size));
    const fmt = runTool('veritysetup', ['format', '--salt', '00'.repeat(32), '--data-block-size=4096', '--hash-block-size=4096', ext4, join(dir, 'hash.bin')]);
    assert.equal(fmt.status, 0, fmt.stderr);
    assert.equal(/Root hash:\s+([0-9a-f]+)/.exec(fmt.stdout.toString())![1], r.rootHash);
    const sb = decodeVeritySuperblock(readFileSync(out).subarray(r.ext4Size, r.ext4Size + 512));
    assert.equal(sb.dataBlocks, r.ext4Size / 4096);
    assert.equal(sb.algorithm, 'sha256');
    const bad = join(dir, 'bad.vhd');
    const b = readFileSync(out);
    b[Math.floor(r.ext4Size / 2)] ^= 0xff;
    writeFileSync(bad, b);
    assert.notEqual(runTool('veritysetup', ['verify', bad, bad, r.rootHash!, `--hash-offset=${r.hashOffset}`]).status, 0);
  });

  test('qemu-img reads the fixed VHD at its true size and returns the ext4 bytes', async () => {
    const tar = await tarOf(corpus(200));
    const plain = join(dir, 'p.img');
    const vhd = join(dir, 'p.vhd');
    const a = await tar2vhd(Readable.from([tar]), plain, { convertWhiteouts: true, footer: false });
    const v = await tar2vhd(Readable.from([tar]), vhd, { convertWhiteouts: true });
    const info = JSON.parse(runTool('qemu-img', ['info', '--output=json', '-f', 'vpc', vhd]).stdout.toString());
    assert.equal(info['virtual-size'], v.size - 512);
    const raw = join(dir, 'p.raw');
    assert.equal(runTool('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', vhd, raw]).status, 0);
    const rawBytes = readFileSync(raw);
    assert.deepEqual(rawBytes.subarray(0, a.size), readFileSync(plain));
    assert.ok(rawBytes.subarray(a.size).every((x) => x === 0), 'padding after the filesystem is zero');
    const footer = decodeVhdFooter(readFileSync(vhd).subarray(v.size - 512));
    assert.equal(footer.currentSize, v.size - 512);
    assert.equal(footer.diskType, 2);
  });

  test('footer geometry follows the spec table; malformed footers are refused', () => {
    // VHD spec appendix examples: sizes and the geometry the algorithm gives
    assert.deepEqual(chsGeometry(127 * 1024 * 1024 * 1024 + 512 * 1024 * 1024), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
    assert.deepEqual(chsGeometry(10 * 1024 * 1024), { cylinders: 301, heads: 4, sectorsPerTrack: 17 });
    const f = encodeVhdFooter(10 * 1024 * 1024);
    const badCookie = Buffer.from(f);
    badCookie.write('xonectix', 0, 'latin1');
    assert.throws(() => decodeVhdFooter(badCookie), (e: Error) => kindOf(e) === 'InvalidArgument' && /cookie/.test(e.message));
    const badSum = Buffer.from(f);
    badSum[100] ^= 1;
    assert.throws(() => decodeVhdFooter(badSum), (e: Error) => kindOf(e) === 'InvalidArgument' && /checksum/.test(e.message));
    assert.throws(() => decodeVhdFooter(f.subarray(0, 100)), (e: Error) => kindOf(e) === 'InvalidArgument');
  });

  test('a directory of 40,000 entries (626 blocks, written a megabyte at a time): e2fsck accepts it, every entry reads back in order', async () => {
    const w = new TarWriter();
    const out = buffer(w.stream);
    await w.writeEntry({ name: 'big/', type: 'dir', mode: 0o755, mtime: 1 });
    const names: string[] = [];
    for (let i = 0; i < 40_000; i++) {
      names.push(`big/${'n'.repeat(50)}-${String(i).padStart(5, '0')}`); // rec_len 64: 64 entries a block
      await w.writeEntry({ name: names[i]!, type: 'file', mode: 0o644, size: 0, mtime: 1 });
    }
    await w.finish();
    const img = join(dir, 'bigdir.img');
    await tar2vhd(Readable.from([await out]), img, { footer: false });
    assert.equal(runTool('e2fsck', ['-fn', img]).status, 0);
    assert.match(runTool('debugfs', ['-R', 'stat /big', img]).stdout.toString(), /Size: 2564096\b/, '626 blocks');
    const back = (await tarEntries(exportExt4Layer(img))).map((e) => e.name).filter((n) => n.startsWith('big/') && n !== 'big/');
    assert.deepEqual(back, names);
  });

  test('a layer of 40,000 empty files: the image ends in a zero tail (zeroFrom) that verity hashes unread, with the root veritysetup verifies', async () => {
    const w = new TarWriter();
    const out = buffer(w.stream);
    for (let d = 0; d < 80; d++) {
      await w.writeEntry({ name: `d${d}/`, type: 'dir', mode: 0o755, mtime: 1 });
      for (let i = 0; i < 500; i++) await w.writeEntry({ name: `d${d}/f${i}`, type: 'file', mode: 0o644, size: 0, mtime: 1 });
    }
    await w.finish();
    const tarBytes = await out;
    // the writer's zero tail: never written, zeros (40,080 inodes need two groups of 128 MiB)
    const img = join(dir, 'many.img');
    const ew = new Ext4Writer(img, {});
    const reader = new TarReader([tarBytes]);
    for (let e = await reader.next(); e; e = await reader.next()) if (!ew.tryAdd(e)) await ew.add(e);
    const r = await ew.close();
    assert.ok(r.zeroFrom < r.blocks - 30_000, `a tail of ${r.blocks - r.zeroFrom} blocks`);
    const fd = openSync(img, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (let b = r.zeroFrom; b < r.blocks; b += 256) {
        const n = readSync(fd, buf, 0, Math.min(256, r.blocks - b) * 4096, b * 4096);
        assert.ok(buf.subarray(0, n).every((x) => x === 0), `block ${b} is zero`);
      }
      const last = Buffer.alloc(4096);
      readSync(fd, last, 0, 4096, (r.zeroFrom - 1) * 4096);
      assert.ok(last.some((x) => x !== 0), 'the block before the tail (the last inode bitmap) is not');
    } finally {
      closeSync(fd);
    }
    // the tail is a hole of the image file: writes allocate only what they write (native allocate)
    for (const io of ['pool', 'sync'] as const) {
      const sparse = join(dir, `many-${io}.img`);
      await tar2vhd(Readable.from([tarBytes]), sparse, { footer: false, io });
      const st = statSync(sparse);
      assert.equal(st.size, r.size);
      assert.ok(st.blocks * 512 <= r.zeroFrom * 4096 + (1 << 20), `${io}: ${st.blocks * 512} bytes allocated of ${r.zeroFrom * 4096} written`);
    }
    // verity on the worker and on this thread: the same root, which veritysetup verifies
    const opts = { footer: false, verity: true, maxDiskSize: 128 * 1024 ** 3 };
    const a = await tar2vhd(Readable.from([tarBytes]), join(dir, 'many-w.img'), { ...opts, parallel: true });
    const b = await tar2vhd(Readable.from([tarBytes]), join(dir, 'many-t.img'), { ...opts, parallel: false });
    assert.equal(a.rootHash, b.rootHash);
    assert.equal(a.ext4Size, r.size);
    const v = runTool('veritysetup', ['verify', join(dir, 'many-w.img'), join(dir, 'many-w.img'), a.rootHash!, `--hash-offset=${a.hashOffset}`]);
    assert.equal(v.status, 0, v.stderr);
  });

  test('a tar that replaces lost+found with a file: the file gets its own inode, inode 11 stays free, e2fsck accepts it', async () => {
    const ents: Ent[] = [
      { header: { name: 'lost+found', type: 'file', mode: 0o644, size: 3, mtime: 0 }, data: Buffer.from('hi\n') },
      { header: { name: 'd/', type: 'dir', mode: 0o755, mtime: 0 } },
    ];
    const img = join(dir, 'lpf.img');
    await tar2vhd(Readable.from([await tarOf(ents)]), img, { footer: false });
    const fsck = runTool('e2fsck', ['-fn', img]);
    assert.equal(fsck.status, 0, fsck.stdout.toString());
    assert.equal(runTool('debugfs', ['-R', 'cat /lost+found', img]).stdout.toString(), 'hi\n');
    assert.doesNotMatch(runTool('debugfs', ['-R', 'ls /', img]).stdout.toString(), /\b11\s+\(/);
  });

  test('exceeding --max-size is a clear InvalidArgument', async () => {
    const tar = await tarOf([{ header: { name: 'big', type: 'file', size: 3 << 20, mode: 0o644, mtime: 0 }, data: Buffer.alloc(3 << 20, 1) }]);
    await assert.rejects(tar2vhd(Readable.from([tar]), join(dir, 'small.img'), { maxDiskSize: 2 << 20 }), (e: Error) => kindOf(e) === 'InvalidArgument' && /maximum disk size/.test(e.message));
  });

  test('a >4 GiB sparse file: holes stay unallocated, e2fsck accepts it, the tail reads back', async () => {
    const size = 4.5 * 1024 ** 3;
    const marker = Buffer.from('the end of a big sparse file');
    const img = join(dir, 'sparse.img');
    const r = await tar2vhd(tarStream([{ header: { name: 'x/', type: 'dir', mode: 0o755, mtime: 0 } }], { name: 'x/huge', size, marker }), img, { footer: false, maxDiskSize: 128 * 1024 ** 3 });
    assert.ok(r.size < 64 * 1024 * 1024, `image ${r.size} bytes`);
    const fsck = runTool('e2fsck', ['-fn', img]);
    assert.equal(fsck.status, 0, fsck.stdout.toString());
    const st = runTool('debugfs', ['-R', 'stat /x/huge', img]).stdout.toString();
    assert.match(st, new RegExp(`Size: ${size}\\b`));
    const rd = await Ext4Reader.open(img);
    try {
      let ino = 0;
      for await (const e of rd.walk()) if (e.path === 'x/huge') ino = e.inode.ino;
      const inode = await rd.inode(ino);
      const exts = await rd.extents(inode);
      assert.equal(exts.length, 1);
      const [lb, , phys] = exts[0]!;
      assert.equal(lb, Math.floor((size - marker.length) / 4096));
      const block = await rd.readAt(phys * 4096, 4096, 'tail');
      assert.ok(block.includes(marker));
    } finally {
      await rd.close();
    }
  });

  test('the ext4 reader refuses corrupt images with clear errors', async () => {
    const tar = await tarOf(corpus(20));
    const img = join(dir, 'c.img');
    await tar2vhd(Readable.from([tar]), img, { footer: false });
    const good = readFileSync(img);
    const bad = (mutate: (b: Buffer) => Buffer) => {
      const p = join(dir, `bad-${Math.random()}.img`);
      writeFileSync(p, mutate(Buffer.from(good)));
      return p;
    };
    const badMagic = bad((b) => {
      b.writeUInt16LE(0, 1024 + 56);
      return b;
    });
    await assert.rejects(Ext4Reader.open(badMagic), (e: Error) => kindOf(e) === 'InvalidArgument' && /magic/.test(e.message));
    await assert.rejects(Ext4Reader.open(bad((b) => b.subarray(0, 8192))), (e: Error) => kindOf(e) === 'InvalidArgument');
    // an inode table pointer past the end: reading an inode fails cleanly
    const badTable = bad((b) => {
      b.writeUInt32LE(0xfffffff0, 4096 + 8);
      return b;
    });
    const r = await Ext4Reader.open(badTable);
    await assert.rejects(r.inode(2), (e: Error) => kindOf(e) === 'InvalidArgument' && /outside the filesystem/.test(e.message));
    await r.close();
    void statSync;
    void readdirSync;
    void lstatSync;
    void openSync;
    void readSync;
    void closeSync;
  });
});
