/**
 * The Windows entry codec (go-winio backuptar rules, windows-layer-formats.md §1.1–1.4, §2.1).
 * Reading: tars built by Python's tarfile with the records an hcsshim export carries are
 * mapped to the expected entries (FILETIMEs computed by hand). Writing: the records, modes
 * and types are the ones the reference lists, and Python's tarfile reads them back.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { runTool, tempDir } from '../../helpers/tools.js';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { TarWriter, readTar, paxRecord, type TarHeader } from '../../../src/formats/tar/index.js';
import {
  decodeReparsePoint,
  encodeReparsePoint,
  tarHeaderFromWindowsEntry,
  windowsEntryFromTar,
  type WindowsEntry,
} from '../../../src/formats/wintar/index.js';
import { pyDumpBuffer, hex } from '../tar/helpers.js';

let tmp: { path: string; cleanup: () => void };
before(() => {
  tmp = tempDir('winsnap-wintar-');
});
after(() => tmp.cleanup());

const SD = Buffer.from('0100048014000000300000000000000000000000010100000000000512000000010100000000000512000000', 'hex');
const EA_VALUE = Buffer.from([0, 1, 2, 0xff, 0x80, 0x0a]);

/** Python writes a tar with these headers (as a Windows layer export would); we read it back. */
async function viaPython(script: string): Promise<{ header: TarHeader; offset: number; data: Buffer }[]> {
  const out = join(tmp.path, `py-${Math.random().toString(36).slice(2)}.tar`);
  const r = runTool('python3', ['-c', `import tarfile, io, base64\nOUT = ${JSON.stringify(out)}\n${script}`]);
  assert.equal(r.status, 0, r.stderr);
  const res = [];
  for await (const e of readTar([readFileSync(out)])) res.push({ header: e.header, offset: e.headerOffset, data: await e.readAll() });
  return res;
}

test('reading an hcsshim-style layer tar gives the Windows entries', async () => {
  const entries = await viaPython(`
SD = bytes.fromhex(${JSON.stringify(SD.toString('hex'))})
EA = bytes.fromhex(${JSON.stringify(EA_VALUE.toString('hex'))})
tf = tarfile.open(OUT, "w", format=tarfile.PAX_FORMAT)
def add(name, typ, mode, recs, data=b"", linkname=""):
    ti = tarfile.TarInfo(name); ti.type = typ; ti.mode = mode; ti.size = len(data); ti.linkname = linkname
    ti.mtime = 1600000001
    ti.pax_headers = recs
    tf.addfile(ti, io.BytesIO(data) if data else None)
times = {"mtime": "1600000001.5", "atime": "1600000002.0000001", "ctime": "1600000003"}
add("Files", tarfile.DIRTYPE, 0o40000, dict(times, **{"LIBARCHIVE.creationtime": "1600000000.1234567", "MSWINDOWS.fileattr": "16", "MSWINDOWS.rawsd": base64.b64encode(SD).decode()}))
add("Files/notepad.exe", tarfile.REGTYPE, 0o100000, dict(times, **{"LIBARCHIVE.creationtime": "1600000000.1234567", "MSWINDOWS.fileattr": "32", "MSWINDOWS.rawsd": base64.b64encode(SD).decode(), "MSWINDOWS.xattr.$KERNEL.PURGE.ESBCACHE": base64.b64encode(EA).decode(), "MSWINDOWS.xattr.B": ""}), b"MZ\\x90\\x00")
add("Files/notepad.exe:Zone.Identifier", tarfile.REGTYPE, 0o100000, times, b"[ZoneTransfer]")
add("Files/other.txt:stream:$DATA", tarfile.REGTYPE, 0o100000, {}, b"x")
add("Files/link", tarfile.SYMTYPE, 0o120000, {"MSWINDOWS.fileattr": "1024", "LIBARCHIVE.creationtime": "5"}, linkname="..\\\\target")
add("Files/dirlink", tarfile.SYMTYPE, 0o160000, {"MSWINDOWS.fileattr": "1040", "MSWINDOWS.mountpoint": "1"}, linkname="C:\\\\ProgramData")
add("Files/hard", tarfile.LNKTYPE, 0o644, {"MSWINDOWS.fileattr": "32", "LIBARCHIVE.creationtime": "1600000000.1234567"}, linkname="Files/notepad.exe")
add("Files/plain-dir", tarfile.DIRTYPE, 0o40000, {})
add("Files/legacy", tarfile.REGTYPE, 0o100000, {"MSWINDOWS.sd": "O:BAG:SYD:(A;;FA;;;SY)", "SCHILY.xattr.user.x": "kept"})
w = tarfile.TarInfo("Files/dir/.wh.gone"); w.mtime = 0
tf.addfile(w)
tf.close()
`);
  const e = entries.map((x) => windowsEntryFromTar(x.header, { offset: x.offset }));
  // FILETIME = unix seconds * 10^7 + 100 ns units + 116444736000000000.
  const CREATED = 132444736001234567n; // 1600000000.1234567
  const WRITTEN = 132444736015000000n; // 1600000001.5
  const ACCESSED = 132444736020000001n; // 1600000002.0000001
  const CHANGED = 132444736030000000n; // 1600000003
  // Python's tarfile adds '/' to directory names and keeps only permission bits of the mode.
  assert.deepEqual(e[0], {
    name: 'Files/',
    kind: 'dir',
    attributes: 16,
    creationTime: CREATED,
    lastAccessTime: ACCESSED,
    lastWriteTime: WRITTEN,
    changeTime: CHANGED,
    securityDescriptor: SD,
    eas: [],
    size: 0,
    mode: 0,
    extraPax: [],
  });
  assert.equal(e[1]!.kind, 'file');
  assert.equal(e[1]!.size, 4);
  assert.equal(e[1]!.attributes, 32);
  assert.deepEqual(e[1]!.eas, [
    { name: '$KERNEL.PURGE.ESBCACHE', flags: 0, value: EA_VALUE },
    { name: 'B', flags: 0, value: Buffer.alloc(0) },
  ]);
  assert.deepEqual([e[2]!.kind, e[2]!.adsBase, e[2]!.adsStream, e[2]!.attributes, e[2]!.creationTime], ['ads', 'Files/notepad.exe', 'Zone.Identifier', 0, WRITTEN]);
  assert.deepEqual([e[3]!.kind, e[3]!.adsBase, e[3]!.adsStream], ['ads', 'Files/other.txt', 'stream']);
  assert.equal(e[4]!.kind, 'symlink');
  assert.equal(e[4]!.linkTarget, '..\\target');
  assert.equal(e[4]!.creationTime, 116444736050000000n);
  assert.equal(e[4]!.lastAccessTime, e[4]!.lastWriteTime, 'missing atime defaults to mtime');
  const rp = decodeReparsePoint(e[4]!.reparseBuffer!);
  assert.deepEqual([rp.tag, rp.relative, rp.substituteName], [0xa000000c, true, '..\\target']);
  assert.equal(e[5]!.kind, 'junction');
  assert.equal(decodeReparsePoint(e[5]!.reparseBuffer!).substituteName, '\\??\\C:\\ProgramData');
  assert.deepEqual([e[6]!.kind, e[6]!.linkTarget, e[6]!.attributes, e[6]!.mode], ['hardlink', 'Files/notepad.exe', 32, 0o644]);
  assert.equal(e[7]!.name, 'Files/plain-dir/');
  assert.equal(e[7]!.attributes, 0x10, 'a directory without fileattr gets FILE_ATTRIBUTE_DIRECTORY');
  assert.equal(e[8]!.sddl, 'O:BAG:SYD:(A;;FA;;;SY)');
  assert.equal(e[8]!.securityDescriptor, undefined);
  assert.deepEqual(e[8]!.extraPax, [paxRecord('SCHILY.xattr.user.x', 'kept')]);
  assert.equal(e[8]!.attributes, 0);
  assert.deepEqual([e[9]!.kind, e[9]!.whiteoutTarget], ['whiteout', 'Files/dir/gone']);
});

test('tar slashes in a symlink target become backslashes in the reparse buffer (FromSlash)', () => {
  const h = { name: 'Files/l', linkname: '../a/b', type: 'symlink', typeflag: 0x32, mode: 0o120000, uid: 0, gid: 0, size: 0, mtime: { sec: 0n, nsec: 0 }, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [], globalPax: [], format: 'pax' } satisfies TarHeader;
  const e = windowsEntryFromTar(h);
  assert.equal(e.linkTarget, '../a/b');
  assert.ok(e.reparseBuffer!.equals(encodeReparsePoint({ target: '..\\a\\b', isMountPoint: false })));
});

function entry(over: Partial<WindowsEntry>): WindowsEntry {
  return {
    name: 'Files/x',
    kind: 'file',
    attributes: 0x20,
    creationTime: 132444736001234567n,
    lastAccessTime: 132444736020000001n,
    lastWriteTime: 132444736015000000n,
    changeTime: 132444736030000000n,
    eas: [],
    size: 0,
    extraPax: [],
    ...over,
  };
}

const recs = (h: { pax?: readonly { key: string; value: Buffer }[] }) => (h.pax ?? []).map((r) => [r.key, r.value.toString('latin1')]);

test('writing: backuptar records sorted by key, type-only modes, 100 ns PAX times', () => {
  const f = tarHeaderFromWindowsEntry(
    entry({ securityDescriptor: SD, eas: [{ name: 'Z', flags: 0x80, value: Buffer.from('zz') }, { name: 'A', flags: 0, value: Buffer.from([0xff]) }], size: 7 }),
  );
  assert.equal(f.type, 'file');
  assert.equal(f.mode, 0o100000);
  assert.equal(f.size, 7);
  assert.deepEqual(recs(f), [
    ['LIBARCHIVE.creationtime', '1600000000.1234567'],
    ['MSWINDOWS.fileattr', '32'],
    ['MSWINDOWS.rawsd', SD.toString('base64')],
    ['MSWINDOWS.xattr.A', '/w=='],
    ['MSWINDOWS.xattr.Z', 'eno='],
    ['atime', '1600000002.0000001'],
    ['ctime', '1600000003'],
    ['mtime', '1600000001.5'],
  ]);
  const d = tarHeaderFromWindowsEntry(entry({ kind: 'dir', attributes: 0x10, lastWriteTime: 132444736010000000n }));
  assert.equal(d.type, 'dir');
  assert.equal(d.mode, 0o40000);
  assert.ok(!recs(d).some(([k]) => k === 'mtime'), 'whole-second mtime stays in the USTAR field');
  const l = tarHeaderFromWindowsEntry(entry({ kind: 'hardlink', linkTarget: 'Files/y' }));
  assert.deepEqual([l.type, l.mode, l.linkname], ['link', 0o644, 'Files/y']);
  assert.deepEqual(recs(l).map(([k]) => k), ['LIBARCHIVE.creationtime', 'MSWINDOWS.fileattr', 'atime', 'ctime', 'mtime']);
  const j = tarHeaderFromWindowsEntry(entry({ kind: 'junction', attributes: 0x410, linkTarget: 'C:\\t' }));
  assert.deepEqual([j.type, j.mode, j.linkname], ['symlink', 0o160000, 'C:\\t']);
  assert.deepEqual(recs(j).find(([k]) => k === 'MSWINDOWS.mountpoint'), ['MSWINDOWS.mountpoint', '1']);
  const s = tarHeaderFromWindowsEntry(entry({ kind: 'symlink', attributes: 0x400, linkTarget: undefined, reparseBuffer: encodeReparsePoint({ target: 'rel', isMountPoint: false }) }));
  assert.deepEqual([s.mode, s.linkname], [0o120000, 'rel']);
  const a = tarHeaderFromWindowsEntry(entry({ kind: 'ads', name: 'Files/x:zone', attributes: 0, creationTime: 132444736015000000n, size: 2 }));
  assert.deepEqual(recs(a), [
    ['atime', '1600000002.0000001'],
    ['ctime', '1600000003'],
    ['mtime', '1600000001.5'],
  ]);
  assert.deepEqual(tarHeaderFromWindowsEntry(entry({ kind: 'whiteout', name: 'Files/.wh.gone', securityDescriptor: SD })), {
    name: 'Files/.wh.gone',
    type: 'file',
    mode: 0,
    size: 0,
    mtime: 0,
    pax: [],
  });
  const u = tarHeaderFromWindowsEntry(entry({ name: 'Files/ünï.txt' }));
  assert.deepEqual(recs(u).map(([k]) => k).slice(-2), ['mtime', 'path'], 'non-ASCII names get a path record (Go writes one), sorted in');
  const big = tarHeaderFromWindowsEntry(entry({ size: 2 ** 34 }));
  assert.deepEqual(recs(big).find(([k]) => k === 'size'), ['size', '17179869184'], 'sizes over 8 GiB - 1 get a size record');
  assert.ok(!recs(tarHeaderFromWindowsEntry(entry({ size: 8 ** 11 - 1 }))).some(([k]) => k === 'size'));
  const long = tarHeaderFromWindowsEntry(entry({ kind: 'symlink', linkTarget: 'x'.repeat(101) }));
  assert.ok(recs(long).some(([k]) => k === 'linkpath'));
});

test('written Windows entries are read by Python tarfile with exactly these records', async () => {
  const es = [
    entry({ kind: 'dir', name: 'Files', attributes: 0x10 }),
    entry({ name: 'Files/a.bin', securityDescriptor: SD, eas: [{ name: 'E', flags: 0, value: EA_VALUE }], size: 3 }),
    entry({ kind: 'ads', name: 'Files/a.bin:s', attributes: 0, creationTime: 132444736015000000n, size: 1 }),
    entry({ kind: 'junction', name: 'Files/j', attributes: 0x410, linkTarget: 'C:\\Users' }),
    entry({ kind: 'whiteout', name: 'Files/.wh.old' }),
  ];
  const w = new TarWriter();
  const parts: Buffer[] = [];
  const reading = (async () => {
    for await (const c of w) parts.push(c);
  })();
  for (const x of es) {
    const h = tarHeaderFromWindowsEntry(x);
    await w.writeEntry(h, x.size ? Buffer.alloc(x.size, 1) : undefined);
  }
  await w.finish();
  await reading;
  const py = pyDumpBuffer(tmp.path, 'win.tar', Buffer.concat(parts));
  const headers = es.map(tarHeaderFromWindowsEntry);
  py.members.forEach((m, i) => {
    assert.equal(m.name, hex(es[i]!.name));
    assert.equal(m.mode, headers[i]!.mode);
    assert.deepEqual(m.pax, recs(headers[i]!).map(([k, v]) => [k, Buffer.from(v, 'latin1').toString('hex')]));
  });
  assert.deepEqual(py.members[4]!.pax, [], 'whiteout is a bare USTAR entry');
  assert.equal(py.members[4]!.type, '0');
  assert.equal(py.members[4]!.mtime, '0');
});

test('malformed Windows records are InvalidArgument with the entry name and offset', () => {
  const base: TarHeader = { name: 'Files/bad', linkname: '', type: 'file', typeflag: 0x30, mode: 0o100000, uid: 0, gid: 0, size: 0, mtime: { sec: 0n, nsec: 0 }, uname: '', gname: '', devmajor: 0, devminor: 0, pax: [], globalPax: [], format: 'pax' };
  const bad = (over: Partial<TarHeader>, re: RegExp) =>
    assert.throws(
      () => windowsEntryFromTar({ ...base, ...over }, { offset: 4096 }),
      (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message) && /Files\/bad|Files\/a/.test(e.message) && e.context.offset === 4096,
    );
  bad({ pax: [paxRecord('MSWINDOWS.fileattr', 'abc')] }, /fileattr value "abc" is not a decimal u32/);
  bad({ pax: [paxRecord('MSWINDOWS.fileattr', '4294967296')] }, /not a decimal u32/);
  bad({ pax: [paxRecord('MSWINDOWS.fileattr', '-1')] }, /not a decimal u32/);
  for (const b64 of ['abc', 'ab=c', 'a!==', 'AAAA=', '====', 'QQ']) bad({ pax: [paxRecord('MSWINDOWS.rawsd', b64)] }, /MSWINDOWS\.rawsd is not valid base64/);
  bad({ pax: [paxRecord('MSWINDOWS.xattr.E', 'Zm9v\n')] }, /MSWINDOWS\.xattr\.E is not valid base64/);
  bad({ pax: [paxRecord('MSWINDOWS.xattr.', 'Zm9v')] }, /EA name is empty/);
  bad({ pax: [paxRecord(`MSWINDOWS.xattr.${'N'.repeat(256)}`, 'Zm9v')] }, /256 bytes/);
  bad({ pax: [paxRecord('LIBARCHIVE.creationtime', '1.2.3')] }, /creationtime value "1\.2\.3" is not a PAX time/);
  bad({ mtime: { sec: -20000000000n, nsec: 0 } }, /outside the FILETIME range/);
  bad({ type: 'char', typeflag: 0x33 }, /type 'char' has no Windows equivalent/);
  bad({ name: 'Files/a:' }, /bad alternate data stream name/);
  bad({ name: 'Files/a::$DATA' }, /bad alternate data stream name/);
  bad({ name: 'Files/a:s:$INDEX_ALLOCATION' }, /bad alternate data stream name/);
});

test('writing refuses entries the format cannot hold', () => {
  const bad = (over: Partial<WindowsEntry>, re: RegExp) =>
    assert.throws(() => tarHeaderFromWindowsEntry(entry(over)), (e: unknown) => e instanceof WinsnapError && e.kind === 'InvalidArgument' && re.test(e.message));
  bad({ attributes: 2 ** 32 }, /not a u32/);
  bad({ creationTime: -1n }, /creationTime -1 is not a FILETIME/);
  bad({ eas: [{ name: 'A', flags: 0, value: Buffer.alloc(0) }, { name: 'A', flags: 0, value: Buffer.alloc(1) }] }, /duplicate EA "A"/);
  bad({ kind: 'symlink' }, /symlink has no target/);
  bad({ kind: 'hardlink' }, /hard link has no target/);
  bad({ kind: 'ads', name: 'Files/noads' }, /has no ":"/);
  bad({ extraPax: [paxRecord('MSWINDOWS.fileattr', '1')] }, /collides/);
  bad({ extraPax: [paxRecord('mtime', '1')] }, /collides/);
});
