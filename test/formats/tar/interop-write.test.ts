/**
 * Archives written by our TarWriter are read back by Python's tarfile (names, numbers, PAX
 * records in order, data), GNU tar (listing, xattr records, unknown-keyword warnings,
 * extraction) and bsdtar (mtree listing with nanosecond times and SHA-256 of the data,
 * extraction) with the values we wrote. Expected values are written out by hand here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readFileSync, readlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { runTool, tempDir } from '../../helpers/tools.js';
import { TarWriter, paxRecord, tarTime, type PaxRecord, type TarHeaderInput } from '../../../src/formats/tar/index.js';
import { collect, hex, pyDump, sha256 } from './helpers.js';

interface Spec {
  header: TarHeaderInput;
  data?: Buffer;
  /** Feed the body as an async iterable of this chunk size. */
  chunked?: number;
  /** Records the writer must add in front of header.pax (per docs/formats/tar.md). */
  auto: [string, string][];
}

const BIN = Buffer.from([0, 1, 2, 0xff, 0x0a, 0x3d, 0x20]);
const LONG_UNICODE = `Files/${'ü'.repeat(60)}/${'日本'.repeat(30)}.bin`; // 6 + 121 + 181 + 4 bytes > 256
const SPLITTABLE = `Files/${'s'.repeat(120)}/${'t'.repeat(80)}`; // 207 bytes, prefix/name split works
const LONG_LINK = `target/${'l'.repeat(143)}`; // 150 bytes
const BIG = randomBytes(100 * 1024 + 3);
const HUGE = randomBytes(1024 * 1024 + 1);
const GLOBAL: PaxRecord[] = [paxRecord('comment', 'made by winsnap tests'), paxRecord('GLOBAL.bin', BIN)];

const SPECS: Spec[] = [
  { header: { name: 'Files/', type: 'dir', mode: 0o755, mtime: tarTime(1700000000n, 500000000) }, auto: [['mtime', '1700000000.5']] },
  {
    header: {
      name: 'Files/a.txt',
      mode: 0o644,
      size: 5,
      mtime: tarTime(1700000000n, 123456789),
      atime: tarTime(1700000001n, 100),
      ctime: tarTime(-2n, 750000000),
      pax: [paxRecord('MSWINDOWS.fileattr', '32'), paxRecord('SCHILY.xattr.user.bin', BIN), paxRecord('zz.order', 'last')],
    },
    data: Buffer.from('hello'),
    auto: [
      ['mtime', '1700000000.123456789'],
      ['atime', '1700000001.0000001'],
      ['ctime', '-1.25'],
    ],
  },
  { header: { name: LONG_UNICODE, size: BIG.length, mode: 0o600 }, data: BIG, chunked: 7000, auto: [['path', LONG_UNICODE]] },
  { header: { name: SPLITTABLE, size: 3, mode: 0o644 }, data: Buffer.from('abc'), auto: [] },
  { header: { name: 'Files/longlink', type: 'symlink', linkname: LONG_LINK, mode: 0o777 }, auto: [['linkpath', LONG_LINK]] },
  { header: { name: 'Files/short-link', type: 'symlink', linkname: 'a.txt', mode: 0o777 }, auto: [] },
  { header: { name: 'Files/hard', type: 'link', linkname: 'Files/a.txt', mode: 0o644 }, auto: [] },
  {
    header: { name: 'Files/ids', size: 0, uid: 5000000, gid: 2097151, uname: 'u'.repeat(40), gname: 'grp', mode: 0o640 },
    data: Buffer.alloc(0),
    auto: [
      ['uid', '5000000'],
      ['uname', 'u'.repeat(40)],
    ],
  },
  { header: { name: 'Files/old', size: 1, mtime: tarTime(-1001n, 750000000), mode: 0o644 }, data: Buffer.from('x'), auto: [['mtime', '-1000.25']] },
  { header: { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 }, auto: [] },
  { header: { name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660 }, auto: [] },
  { header: { name: 'Files/fifo', type: 'fifo', mode: 0o644 }, auto: [] },
  { header: { name: 'Files/huge.bin', size: HUGE.length, mode: 0o644, mtime: 1700000000 }, data: HUGE, chunked: 65536, auto: [] },
  { header: { name: 'Files/.wh.gone', size: 0 }, auto: [] },
];

const TYPECHAR: Record<string, string> = { file: '0', link: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' };

let tmp: { path: string; cleanup: () => void };
let archive: string;

async function* chunks(b: Buffer, n: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

async function build(): Promise<Buffer> {
  const w = new TarWriter({ highWaterMark: 16 * 1024 });
  const out = collect(w);
  await w.writeGlobalHeader(GLOBAL);
  for (const s of SPECS) {
    const body = s.data === undefined ? undefined : s.chunked ? chunks(s.data, s.chunked) : s.data;
    await w.writeEntry(s.header, body);
  }
  await w.finish();
  return out;
}

before(async () => {
  tmp = tempDir('winsnap-tar-write-');
  archive = join(tmp.path, 'ours.tar');
  writeFileSync(archive, await build());
});
after(() => tmp.cleanup());

test('writing the same entries twice gives identical bytes', async () => {
  assert.ok((await build()).equals(readFileSync(archive)));
});

test('Python tarfile reads names, numbers, PAX records (in order) and data', () => {
  const py = pyDump(archive);
  assert.equal(py.members.length, SPECS.length);
  assert.deepEqual(
    Object.entries(py.global),
    GLOBAL.map((r) => [r.key, r.value.toString('hex')]),
  );
  SPECS.forEach((s, i) => {
    const m = py.members[i]!;
    const h = s.header;
    const what = `member ${i} (${h.name})`;
    const expectName = h.type === 'dir' ? h.name.replace(/\/+$/, '') : h.name;
    assert.equal(m.name, hex(expectName), `${what}: name`);
    assert.equal(m.type, TYPECHAR[h.type ?? 'file'], `${what}: type`);
    assert.equal(m.size, h.size ?? 0, `${what}: size`);
    assert.equal(m.mode, h.mode ?? 0, `${what}: mode`);
    assert.equal(m.uid, h.uid ?? 0, `${what}: uid`);
    assert.equal(m.gid, h.gid ?? 0, `${what}: gid`);
    assert.equal(m.uname, hex(h.uname ?? ''), `${what}: uname`);
    assert.equal(m.gname, hex(h.gname ?? ''), `${what}: gname`);
    assert.equal(m.linkname, hex(h.linkname ?? ''), `${what}: linkname`);
    assert.equal(m.devmajor, h.devmajor ?? 0);
    assert.equal(m.devminor, h.devminor ?? 0);
    const expected = new Map<string, string>();
    for (const r of GLOBAL) expected.set(r.key, r.value.toString('hex'));
    for (const [k, v] of s.auto) expected.set(k, hex(v));
    for (const r of h.pax ?? []) expected.set(r.key, r.value.toString('hex'));
    assert.deepEqual(m.pax, [...expected.entries()], `${what}: PAX records`);
    if (s.data) assert.equal(m.sha256, sha256(s.data), `${what}: data`);
  });
});

function gnuTar(args: string[]): { out: string; err: string } {
  const r = runTool('tar', args, { env: { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' } });
  assert.equal(r.status, 0, `tar ${args.join(' ')}: ${r.stderr}`);
  return { out: r.stdout.toString('utf8'), err: r.stderr };
}

test('GNU tar lists the names, times and xattr records, and extracts the data', () => {
  const list = gnuTar(['--quoting-style=literal', '-tf', archive]);
  assert.deepEqual(list.out.split('\n').filter(Boolean), SPECS.map((s) => s.header.name));
  assert.match(list.err, /Ignoring unknown extended header keyword 'MSWINDOWS\.fileattr'/);
  assert.match(list.err, /Ignoring unknown extended header keyword 'zz\.order'/);

  const verbose = gnuTar(['--quoting-style=literal', '--full-time', '--numeric-owner', '--xattrs', '--xattrs-include=*', '-tvvf', archive]);
  const lines = verbose.out.split('\n');
  const aLine = lines.findIndex((l) => l.endsWith(' Files/a.txt'));
  assert.ok(aLine >= 0);
  assert.match(lines[aLine]!, /2023-11-14 22:13:20\.123456789 Files\/a\.txt$/);
  assert.match(lines[aLine + 1]!, new RegExp(`x:\\s+${BIN.length} user\\.bin`), 'the SCHILY.xattr record is seen');
  assert.ok(lines.some((l) => / 5000000\/2097151 .* Files\/ids$/.test(l)), 'big uid/gid');
  assert.ok(lines.some((l) => / Files\/old$/.test(l)));
  assert.ok(lines.some((l) => l.includes(`Files/longlink -> ${LONG_LINK}`)));
  assert.ok(lines.some((l) => l.includes('Files/hard link to Files/a.txt')));

  const dest = join(tmp.path, 'gnu-x');
  mkdirSync(dest);
  gnuTar(['--xattrs', '--xattrs-include=*', '-xf', archive, '-C', dest, '--exclude=dev/*', '--exclude=Files/fifo']);
  assert.equal(getxattr(join(dest, 'Files/a.txt'), 'user.bin'), BIN.toString('hex'), 'GNU tar applied the binary SCHILY.xattr record');
  assert.ok(readFileSync(join(dest, LONG_UNICODE)).equals(BIG));
  assert.ok(readFileSync(join(dest, 'Files/huge.bin')).equals(HUGE));
  assert.equal(readFileSync(join(dest, SPLITTABLE), 'utf8'), 'abc');
  assert.equal(readlinkSync(join(dest, 'Files/longlink')), LONG_LINK);
  assert.equal(lstatSync(join(dest, 'Files/hard')).ino, lstatSync(join(dest, 'Files/a.txt')).ino);
  assert.equal(lstatSync(join(dest, 'Files/.wh.gone')).size, 0);
  // GNU tar's listing prints negative fractional times oddly; the extracted file shows the value.
  assert.equal(lstatSync(join(dest, 'Files/old'), { bigint: true }).mtimeNs, -1000250000000n, 'mtime -1000.25 s');
  assert.equal(lstatSync(join(dest, 'Files/a.txt'), { bigint: true }).mtimeNs, 1700000000123456789n);
});

/** An extended attribute of a file, as hex (read with Python's os.getxattr). */
function getxattr(path: string, name: string): string {
  const r = runTool('python3', ['-c', 'import os, sys; print(os.getxattr(sys.argv[1], sys.argv[2]).hex())', path, name]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.toString().trim();
}

/** Decodes the octal escapes mtree uses in names. */
function unvis(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

test('bsdtar reads names, nanosecond times, ids, links and data (mtree listing), and extracts', () => {
  const r = runTool('bsdtar', ['-cf', '-', '--format=mtree', '--options', 'mtree:sha256,mtree:!use-set', `@${archive}`]);
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('./'))
    .map((l) => {
      const [name, ...kv] = l.split(' ');
      return { name: unvis(name!.slice(2)), kv: Object.fromEntries(kv.map((x) => x.split('=') as [string, string])) };
    });
  // mtree output is grouped by directory: match rows by name.
  assert.deepEqual(rows.map((r) => r.name).sort(), SPECS.map((s) => s.header.name.replace(/\/+$/, '')).sort());
  SPECS.forEach((s) => {
    const h = s.header;
    const row = rows.find((r) => r.name === h.name.replace(/\/+$/, ''))!;
    const t = h.mtime === undefined ? { sec: 0n, nsec: 0 } : typeof h.mtime === 'number' ? tarTime(h.mtime) : h.mtime;
    // libarchive reads a negative fractional PAX time "-1000.25" as -1000 + 0.25 (a libarchive
    // quirk; POSIX, GNU tar and Python read -1000.25), so only non-negative times are compared.
    if (t.sec >= 0n) {
      const [sec, frac = ''] = row.kv.time!.split('.');
      assert.deepEqual({ sec: BigInt(sec!), nsec: Number(frac.padEnd(9, '0')) }, t, `${h.name}: time`);
    }
    assert.equal(row.kv.uid, String(h.uid ?? 0));
    if (s.data && (h.type ?? 'file') === 'file') assert.equal(row.kv.sha256digest, sha256(s.data), `${h.name}: data`);
    if (h.type === 'symlink') assert.equal(unvis(row.kv.link!), h.linkname);
  });
  const dest = join(tmp.path, 'bsd-x');
  mkdirSync(dest);
  const x = runTool('bsdtar', ['--xattrs', '-xf', archive, '-C', dest, '--exclude', 'dev/*', '--exclude', 'Files/fifo']);
  assert.equal(x.status, 0, x.stderr);
  assert.equal(getxattr(join(dest, 'Files/a.txt'), 'user.bin'), BIN.toString('hex'), 'bsdtar applied the binary SCHILY.xattr record');
  assert.ok(readFileSync(join(dest, LONG_UNICODE)).equals(BIG));
  assert.equal(readlinkSync(join(dest, 'Files/longlink')), LONG_LINK);
  assert.equal(lstatSync(join(dest, 'Files/hard')).ino, lstatSync(join(dest, 'Files/a.txt')).ino);
});
