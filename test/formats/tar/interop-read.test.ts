/**
 * Archives written by GNU tar, bsdtar and Python's tarfile are read by our reader with the
 * same names, types, numbers, PAX records and data as Python's tarfile reports for them
 * (an independent implementation); GNU tar's own listing is checked for names too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, createReadStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool, tempDir } from '../../helpers/tools.js';
import { readTar } from '../../../src/formats/tar/index.js';
import { hex, pyDump, pyName, readAll, sha256, type ReadBack } from './helpers.js';

const MAKE_TREE = fileURLToPath(new URL('./make_tree.py', import.meta.url));
let tmp: { path: string; cleanup: () => void };

function run(tool: string, args: string[], cwd: string): void {
  const r = runTool(tool, args, { cwd, env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  assert.equal(r.status, 0, `${tool} ${args.join(' ')} failed: ${r.stderr}`);
}

before(() => {
  tmp = tempDir('winsnap-tar-read-');
  for (const [dir, extra] of [['full', []], ['short', ['--no-long']]] as const) {
    run('python3', [MAKE_TREE, join(tmp.path, dir), ...extra], tmp.path);
  }
});
after(() => tmp.cleanup());

/** Compares our reading of `file` with Python's tarfile, member by member. */
async function compareWithPython(file: string): Promise<ReadBack[]> {
  const ours = await readAll(readFileSync(file), {}, 3000);
  const py = pyDump(file);
  assert.equal(ours.length, py.members.length, `${file}: member count`);
  ours.forEach((o, i) => {
    const p = py.members[i]!;
    const h = o.header;
    const what = `${file} member ${i} (${h.name})`;
    assert.equal(hex(pyName(h)), p.name, `${what}: name`);
    if (h.typeflag !== 0) assert.equal(String.fromCharCode(h.typeflag), p.type, `${what}: type`);
    assert.equal(h.size, p.size, `${what}: size`);
    assert.equal(h.mode, p.mode, `${what}: mode`);
    assert.equal(h.uid, p.uid, `${what}: uid`);
    assert.equal(h.gid, p.gid, `${what}: gid`);
    assert.equal(hex(h.uname), p.uname, `${what}: uname`);
    assert.equal(hex(h.gname), p.gname, `${what}: gname`);
    assert.equal(hex(h.linkname), p.linkname, `${what}: linkname`);
    assert.equal(h.devmajor, p.devmajor, `${what}: devmajor`);
    assert.equal(h.devminor, p.devminor, `${what}: devminor`);
    assert.equal(o.offset, p.offset, `${what}: offset`);
    const mt = Number(h.mtime.sec) + h.mtime.nsec / 1e9;
    assert.ok(Math.abs(mt - Number(p.mtime)) < 1e-5, `${what}: mtime ${mt} vs python ${p.mtime}`);
    // Python merges global records and then the entry's own (later keys override in place).
    const merged = new Map<string, string>();
    for (const r of [...h.globalPax, ...h.pax]) merged.set(r.key, r.value.toString('hex'));
    assert.deepEqual([...merged.entries()], p.pax, `${what}: PAX records`);
    if (p.sha256 !== undefined) assert.equal(sha256(o.data), p.sha256, `${what}: data`);
    else assert.equal(o.data.length, h.size, `${what}: body length`);
  });
  return ours;
}

function names(entries: ReadBack[]): string[] {
  return entries.map((e) => e.header.name);
}

test('GNU tar --format=pax (long and unicode names, xattrs, ns times, links, fifo)', async () => {
  const out = join(tmp.path, 'gnu-pax.tar');
  run('tar', ['--format=pax', '--xattrs', '--xattrs-include=*', '-cf', out, '-C', join(tmp.path, 'full'), 'tree'], tmp.path);
  const ours = await compareWithPython(out);
  const small = ours.find((e) => e.header.name === 'tree/small.txt')!;
  const xattr = small.header.pax.find((r) => r.key === 'SCHILY.xattr.user.bin');
  assert.deepEqual(xattr?.value, Buffer.from([0, 1, 2, 0xff, 0x0a, 0x3d]));
  const st = statSync(join(tmp.path, 'full/tree/small.txt'), { bigint: true });
  assert.equal(small.header.mtime.sec * 1_000_000_000n + BigInt(small.header.mtime.nsec), st.mtimeNs, 'nanosecond mtime kept');
  assert.ok(ours.some((e) => e.header.type === 'link' && e.header.name === 'tree/hard'));
  assert.ok(ours.some((e) => e.header.type === 'fifo'));
  // GNU tar's own listing gives the same names in the same order.
  const r = runTool('tar', ['--quoting-style=literal', '-tf', out], { env: { ...process.env, LC_ALL: 'C.UTF-8' } });
  assert.deepEqual(r.stdout.toString('utf8').split('\n').filter(Boolean), names(ours));
});

test('GNU tar --format=gnu (L/K long names and links, hard link)', async () => {
  const out = join(tmp.path, 'gnu.tar');
  run('tar', ['--format=gnu', '-cf', out, '-C', join(tmp.path, 'full'), 'tree'], tmp.path);
  const ours = await compareWithPython(out);
  assert.ok(ours.every((e) => e.header.format === 'gnu'));
  assert.ok(ours.some((e) => Buffer.byteLength(e.header.name) > 256), 'a name longer than USTAR can hold');
  assert.ok(ours.some((e) => e.header.linkname.length === 150), 'a long link name');
});

test('GNU tar --format=gnu base-256 uid/gid and negative mtime', async () => {
  const out = join(tmp.path, 'gnu-b256.tar');
  run(
    'tar',
    ['--format=gnu', '--owner=big:5000000', '--group=big:6000000', '--mtime=@-1000', '-cf', out, '-C', join(tmp.path, 'short'), 'tree/small.txt'],
    tmp.path,
  );
  const raw = readFileSync(out);
  assert.equal(raw[108]! & 0x80, 0x80, 'uid field is base-256 (checked on the raw bytes)');
  assert.equal(raw[136], 0xff, 'mtime field is negative base-256');
  const ours = await compareWithPython(out);
  assert.equal(ours[0]!.header.uid, 5000000);
  assert.equal(ours[0]!.header.gid, 6000000);
  assert.deepEqual(ours[0]!.header.mtime, { sec: -1000n, nsec: 0 });
});

for (const format of ['pax', 'gnutar', 'ustar', 'v7']) {
  test(`bsdtar --format=${format}`, async () => {
    const out = join(tmp.path, `bsd-${format}.tar`);
    const src = format === 'pax' || format === 'gnutar' ? 'full' : 'short';
    // v7 cannot hold FIFOs or unicode-free guarantees; list regular files and dirs only.
    const members = format === 'v7' ? ['tree/small.txt', 'tree/sub', 'tree/empty', 'tree/link', 'tree/hard'] : ['tree'];
    run('bsdtar', [`--format=${format}`, '-cf', out, '-C', join(tmp.path, src), ...members], tmp.path);
    const ours = await compareWithPython(out);
    assert.ok(ours.length >= 5);
    if (format === 'pax') {
      const small = ours.find((e) => e.header.name === 'tree/small.txt')!;
      assert.ok(small.header.pax.some((r) => r.key === 'SCHILY.xattr.user.bin' && r.value.equals(Buffer.from([0, 1, 2, 0xff, 0x0a, 0x3d]))));
    }
    if (format === 'v7') assert.ok(ours.every((e) => e.header.format === 'v7'));
  });
}

test('Python tarfile: PAX with arbitrary binary records and global headers', async () => {
  const out = join(tmp.path, 'py-pax.tar');
  const script = `
import tarfile, io, base64
g = {"comment": "global one", "GLOBAL.key": "v\\udcff\\x00x"}
tf = tarfile.open(${JSON.stringify(out)}, "w", format=tarfile.PAX_FORMAT, pax_headers=g)
ti = tarfile.TarInfo("Files/a.txt"); ti.size = 5; ti.mtime = 1700000000
ti.pax_headers = {"MSWINDOWS.rawsd": base64.b64encode(bytes(range(20))).decode(), "SCHILY.xattr.user.b": "\\udc80\\x01\\n=\\udcff", "mtime": "1700000000.1234567891", "atime": "-1.5"}
tf.addfile(ti, io.BytesIO(b"abcde"))
d = tarfile.TarInfo("Files/dir"); d.type = tarfile.DIRTYPE; d.mode = 0o755
tf.addfile(d)
l = tarfile.TarInfo("Files/" + "\\u00e9" * 80); l.type = tarfile.SYMTYPE; l.linkname = "x" * 200
tf.addfile(l)
big = tarfile.TarInfo("big-ids"); big.uid = 2**40; big.gid = 3; big.uname = "u" * 40
tf.addfile(big)
tf.close()
`;
  run('python3', ['-c', script], tmp.path);
  const ours = await compareWithPython(out);
  assert.deepEqual(
    ours[0]!.header.globalPax.map((r) => [r.key, r.value]),
    [
      ['hdrcharset', Buffer.from('BINARY')], // Python adds it because a value is not UTF-8
      ['comment', Buffer.from('global one')],
      ['GLOBAL.key', Buffer.from([0x76, 0xff, 0x00, 0x78])],
    ],
  );
  const a = ours[0]!.header;
  assert.deepEqual(a.mtime, { sec: 1700000000n, nsec: 123456789 }, 'fraction digits past 9 truncated');
  assert.deepEqual(a.atime, { sec: -2n, nsec: 500000000 });
  assert.deepEqual(a.pax.find((r) => r.key === 'SCHILY.xattr.user.b')!.value, Buffer.from([0x80, 0x01, 0x0a, 0x3d, 0xff]));
  assert.equal(ours[3]!.header.uid, 2 ** 40);
  assert.equal(ours[3]!.header.uname, 'u'.repeat(40));
});

test('Python tarfile: GNU and USTAR formats', async () => {
  for (const fmt of ['GNU_FORMAT', 'USTAR_FORMAT']) {
    const out = join(tmp.path, `py-${fmt}.tar`);
    const longName = fmt === 'GNU_FORMAT' ? '"L" * 300' : '"a" * 120 + "/" + "b" * 90';
    const script = `
import tarfile, io
tf = tarfile.open(${JSON.stringify(out)}, "w", format=tarfile.${fmt})
ti = tarfile.TarInfo(${longName}); ti.size = 3
tf.addfile(ti, io.BytesIO(b"xyz"))
c = tarfile.TarInfo("dev/null"); c.type = tarfile.CHRTYPE; c.devmajor = 1; c.devminor = 3
tf.addfile(c)
h = tarfile.TarInfo("hl"); h.type = tarfile.LNKTYPE; h.linkname = ${fmt === 'GNU_FORMAT' ? longName : '"target"'}
tf.addfile(h)
tf.close()
`;
    run('python3', ['-c', script], tmp.path);
    const ours = await compareWithPython(out);
    assert.equal(ours.length, 3);
    assert.equal(ours[1]!.header.type, 'char');
    assert.equal(ours[2]!.header.type, 'link');
  }
});

test('reads from a Readable with trailing record padding (GNU tar pads to 10 KiB)', async () => {
  const out = join(tmp.path, 'gnu-pax.tar');
  const reader = readTar(createReadStream(out, { highWaterMark: 1000 }));
  let n = 0;
  for (;;) {
    const r = await reader.next();
    if (r.done) {
      assert.ok(r.value && r.value.endOffset > 0);
      break;
    }
    n++;
  }
  assert.ok(n > 5);
  assert.equal(readFileSync(out).length % 10240, 0);
});
