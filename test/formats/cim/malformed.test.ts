/**
 * Malformed images: each corruption must give a WinsnapError with a message naming what is
 * wrong (and the offset where there is one) — never a crash or an out-of-range read.
 * Structure positions are computed from the format description (§3.2) on raw bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { WinsnapError } from '../../../src/services/errdefs.js';
import { tempDir } from '../../helpers/tools.js';

interface Layout {
  dir: string;
  guid: string;
  md: string;
  fsByte: number;
  tableByte: number;
  ids: Record<string, number>;
}

async function build(dir: string): Promise<Layout> {
  const w = await CimWriter.create(dir, 'img');
  await w.addFile('a', { attributes: 0x20, securityDescriptor: Buffer.from('0100048000000000000000000000000000000000', 'hex') }, Buffer.from('hello'));
  await w.createAlternateStream('a:s', 3);
  await w.write(Buffer.from('ads'));
  await w.closeStream();
  await w.createFile('dir', { attributes: 0x10 });
  await w.addFile('dir\\b', { attributes: 0x20 }, Buffer.from('bbbb'));
  await w.createFile('dir\\sub', { attributes: 0x10 });
  await w.addFile('dir\\sub\\c', { attributes: 0x20 }, Buffer.alloc(5000, 1));
  const { guid } = await w.commit();
  const img = readFileSync(join(dir, 'img.cim'));
  const fsOff = img.readBigUInt64LE(56);
  const md = join(dir, `region_${guid}_0`);
  const region = readFileSync(md);
  const fsByte = Number(fsOff & 0xffffffffffffn);
  const ftdByte = Number(region.readBigUInt64LE(fsByte + 8) & 0xffffffffffffn);
  const tableByte = Number(region.readBigUInt64LE(ftdByte) & 0xffffffffffffn);
  const r = await CimReader.open(join(dir, 'img.cim'));
  const ids: Record<string, number> = {};
  for (const p of ['a', 'dir', 'dir\\b', 'dir\\sub', 'dir\\sub\\c']) ids[p] = await r.resolve(p);
  await r.close();
  return { dir, guid, md, fsByte, tableByte, ids };
}

function patch(path: string, at: number, bytes: Buffer | ((b: Buffer) => void)): void {
  const b = readFileSync(path);
  if (typeof bytes === 'function') bytes(b);
  else bytes.copy(b, at);
  writeFileSync(path, b);
}
const u16 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
const u32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };

/** Opens, walks, stats and reads everything; returns the first error. */
async function exercise(dir: string): Promise<unknown> {
  try {
    const r = await CimReader.open(join(dir, 'img.cim'));
    try {
      for await (const e of r.walk()) {
        const st = await r.statById(e.fileId);
        if (!st.isDirectory) for await (const _ of r.readById(e.fileId)) void _;
        for (const s of st.streams) for await (const _ of r.readById(e.fileId, s.name)) void _;
      }
    } finally {
      await r.close();
    }
  } catch (e) {
    return e;
  }
  return undefined;
}

interface Case {
  name: string;
  corrupt: (l: Layout) => void;
  kind?: string;
  message: RegExp;
}

const fileRec = (l: Layout, id: number): number => l.tableByte + (id - 1) * 96;

const CASES: Case[] = [
  { name: 'empty image file', corrupt: (l) => truncateSync(join(l.dir, 'img.cim'), 0), message: /truncated image header/ },
  { name: 'image truncated in the header', corrupt: (l) => truncateSync(join(l.dir, 'img.cim'), 71), message: /truncated image header \(71 bytes/ },
  { name: 'bad image magic', corrupt: (l) => patch(join(l.dir, 'img.cim'), 0, Buffer.from('cimfile1')), message: /bad magic "cimfile1"/ },
  { name: 'version 3 image', corrupt: (l) => patch(join(l.dir, 'img.cim'), 16, u32(3)), message: /unsupported CIM version 3\.0/ },
  { name: 'version 1 image', corrupt: (l) => patch(join(l.dir, 'img.cim'), 16, u32(1)), message: /unsupported CIM version 1\.0/ },
  { name: 'image with region file type', corrupt: (l) => patch(join(l.dir, 'img.cim'), 12, Buffer.from([1])), message: /file type 1, want 0/ },
  { name: 'parent count past end of file', corrupt: (l) => patch(join(l.dir, 'img.cim'), 70, u16(4)), message: /4 parent region sets need 168 bytes/ },
  { name: 'header length too large', corrupt: (l) => patch(join(l.dir, 'img.cim'), 8, u32(4096)), message: /header length 4096 out of range/ },
  {
    name: 'cyclic parent reference (own region set listed as parent)',
    corrupt: (l) => {
      const p = join(l.dir, 'img.cim');
      const b = readFileSync(p);
      const nb = Buffer.concat([b, b.subarray(32, 56)]);
      nb.writeUInt16LE(1, 70);
      nb.writeUInt32LE(96, 8);
      writeFileSync(p, nb);
    },
    message: /listed twice \(cyclic or repeated parent reference\)/,
  },
  { name: 'zero regions', corrupt: (l) => patch(join(l.dir, 'img.cim'), 48, u16(0)), message: /has no regions/ },
  { name: 'missing region file', corrupt: (l) => rmSync(join(l.dir, `region_${l.guid}_2`)), kind: 'NotFound', message: /region file region_.*_2 does not exist/ },
  { name: 'region file shorter than its header', corrupt: (l) => truncateSync(join(l.dir, `region_${l.guid}_1`), 39), message: /truncated region header/ },
  { name: 'bad region magic', corrupt: (l) => patch(join(l.dir, `region_${l.guid}_1`), 0, Buffer.from('XXXXXXXX')), message: /region_.*_1: bad magic/ },
  { name: 'region index mismatch', corrupt: (l) => patch(join(l.dir, `region_${l.guid}_1`), 32, u16(2)), message: /region header index 2, file name says 1/ },
  { name: 'region version 3', corrupt: (l) => patch(join(l.dir, `region_${l.guid}_0`), 16, u32(3)), message: /unsupported CIM version 3/ },
  { name: 'null filesystem offset', corrupt: (l) => patch(join(l.dir, 'img.cim'), 56, u64(0n)), message: /filesystem object: null region offset/ },
  { name: 'filesystem offset in region 9', corrupt: (l) => patch(join(l.dir, 'img.cim'), 56, u64((9n << 48n) | 64n)), message: /region offset 0x9000000000040 names region 9, image has 3/ },
  { name: 'filesystem offset past end', corrupt: (l) => patch(join(l.dir, 'img.cim'), 56, u64(0xffffffn)), message: /filesystem object: region offset 0xffffff \+ 24 bytes runs past the end/ },
  { name: 'filesystem offset inside region header', corrupt: (l) => patch(join(l.dir, 'img.cim'), 56, u64(8n)), message: /points into the region header/ },
  { name: 'file table directory length huge', corrupt: (l) => patch(l.md, l.fsByte + 16, u32(200000)), message: /file table directory: .* runs past the end/ },
  {
    name: 'file table count over 1024',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt16LE(2000, Number(b.readBigUInt64LE(l.fsByte + 8)) + 8)),
    message: /file table 0 claims 2000 files/,
  },
  {
    name: 'file table entry size below v1',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt16LE(40, Number(b.readBigUInt64LE(l.fsByte + 8)) + 10)),
    message: /entry size 40 < 88/,
  },
  { name: 'upcase table offset past end', corrupt: (l) => patch(l.md, l.fsByte, u64(0xfffff0n)), message: /upcase table: .*runs past the end/ },
  { name: 'root file ID 0', corrupt: (l) => patch(l.md, l.fsByte + 20, u32(0)), message: /invalid file ID 0/ },
  { name: 'root file ID beyond tables', corrupt: (l) => patch(l.md, l.fsByte + 20, u32(77)), message: /file ID 77 is not in the file tables/ },
  { name: 'root is not a directory', corrupt: (l) => patch(l.md, l.fsByte + 20, u32(2)), message: /root file ID 2 is not a directory/ },
  { name: 'unknown stream type', corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt8(7, fileRec(l, l.ids['a']!) + 40 + 14)), message: /unsupported stream type 7/ },
  {
    name: 'data offset past end of region',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeBigUInt64LE((2n << 48n) | 0xfffffn, fileRec(l, l.ids['a']!) + 40)),
    message: /region offset 0x20000000fffff \+ 5 bytes runs past the end of region_/,
  },
  { name: 'truncated data region', corrupt: (l) => truncateSync(join(l.dir, `region_${l.guid}_1`), 4096 + 100), message: /runs past the end of region_.*_1/ },
  {
    name: 'non-sparse stream with null data offset',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeBigUInt64LE(0n, fileRec(l, l.ids['dir\\b']!) + 40)),
    message: /null region offset/,
  },
  {
    name: 'SD offset past end',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeBigUInt64LE(0xfffffffn, fileRec(l, l.ids['a']!) + 56)),
    message: /security descriptor: region offset 0xfffffff/,
  },
  {
    name: 'SD length prefix runs past the region',
    corrupt: (l) =>
      {
        const b = readFileSync(l.md);
        b.writeBigUInt64LE(BigInt(b.length), fileRec(l, l.ids['a']!) + 56);
        writeFileSync(l.md, Buffer.concat([b, u16(0xffff)]));
      },
    message: /security descriptor: region offset 0x[0-9a-f]+ \+ 65535 bytes runs past the end/,
  },
  {
    name: 'stream table length prefix too large',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt32LE(0x7fffffff, Number(b.readBigUInt64LE(fileRec(l, l.ids['a']!) + 80)))),
    message: /stream table: .*runs past the end/,
  },
  {
    name: 'stream table entry of type link table',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt8(1, Number(b.readBigUInt64LE(fileRec(l, l.ids['a']!) + 80)) + 4 + 8 + 14)),
    message: /stream "s": unsupported stream type 1/,
  },
  {
    name: 'link table Length larger than the stream',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt32LE(100000, Number(b.readBigUInt64LE(fileRec(l, 1) + 40)))),
    message: /link table length 100000 does not fit/,
  },
  {
    name: 'link table count too large',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt32LE(1000, Number(b.readBigUInt64LE(fileRec(l, 1) + 40)) + 4)),
    message: /link table count 1000 does not fit/,
  },
  {
    name: 'link table name offset overlapping the values',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt32LE(8, Number(b.readBigUInt64LE(fileRec(l, 1) + 40)) + 8 + 2 * 4)),
    message: /name offset 8 of entry 0 is outside the name area/,
  },
  {
    name: 'link table name length past the table',
    corrupt: (l) =>
      patch(l.md, 0, (b) => {
        const t = Number(b.readBigUInt64LE(fileRec(l, 1) + 40));
        b.writeUInt16LE(200, t + b.readUInt32LE(t + 8 + 2 * 4));
      }),
    message: /name length 200 of entry 0 is invalid/,
  },
  {
    name: 'link table not sorted',
    corrupt: (l) =>
      patch(l.md, 0, (b) => {
        const t = Number(b.readBigUInt64LE(fileRec(l, 1) + 40));
        const no0 = b.readUInt32LE(t + 8 + 8);
        b.write('z', t + no0 + 2, 'utf16le'); // "a" → "z", before "dir"
      }),
    message: /not sorted by upcased name at entry 1/,
  },
  {
    name: 'directory entry with file ID out of range',
    corrupt: (l) => patch(l.md, 0, (b) => b.writeUInt32LE(999, Number(b.readBigUInt64LE(fileRec(l, 1) + 40)) + 8)),
    message: /refers to file ID 999, image has 6/,
  },
  {
    name: 'cyclic directory (subdirectory links back to the root)',
    corrupt: (l) =>
      patch(l.md, 0, (b) => {
        // dir\sub's only... dir's entries are b (file) and sub (dir): point "sub" at the root.
        const t = Number(b.readBigUInt64LE(fileRec(l, l.ids['dir']!) + 40));
        b.writeUInt32LE(1, t + 8 + 4);
      }),
    message: /directory file ID 1 is linked more than once .*cyclic/,
  },
];

test('malformed images give clear errors', async () => {
  const base = tempDir('cim-bad-');
  try {
    const src = join(base.path, 'src');
    mkdirSync(src);
    const layout = await build(src);
    assert.equal(await exercise(src), undefined, 'the pristine image reads cleanly');
    const failures: string[] = [];
    for (const [i, c] of CASES.entries()) {
      const dir = join(base.path, `case${i}`);
      cpSync(src, dir, { recursive: true });
      const l = { ...layout, dir, md: join(dir, `region_${layout.guid}_0`) };
      c.corrupt(l);
      const err = await exercise(dir);
      if (!(err instanceof WinsnapError)) failures.push(`${c.name}: got ${String(err)}`);
      else if (err.kind !== (c.kind ?? 'InvalidArgument') || !c.message.test(err.message)) failures.push(`${c.name}: ${err.kind}: ${err.message}`);
    }
    assert.deepEqual(failures, []);
  } finally {
    base.cleanup();
  }
});

test('random corruption and truncation never escape as anything but WinsnapError', async () => {
  const base = tempDir('cim-fuzz-');
  try {
    const src = join(base.path, 'src');
    mkdirSync(src);
    const l = await build(src);
    const files = readdirSync(src);
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let errors = 0;
    for (let i = 0; i < 150; i++) {
      const dir = join(base.path, `f${i}`);
      cpSync(src, dir, { recursive: true });
      const f = join(dir, i % 3 === 0 ? files[rnd(files.length)]! : `region_${l.guid}_0`);
      const b = readFileSync(f);
      if (i % 5 === 0) truncateSync(f, rnd(b.length));
      else {
        // Corrupt bytes outside the upcase table (mostly metadata structures).
        for (let k = 0; k < 4; k++) {
          const at = rnd(b.length);
          if (at >= 40 && b.length > 0x20000 && at > l.fsByte - 0x20100 && at < l.fsByte) continue;
          b[at] = rnd(256);
        }
        writeFileSync(f, b);
      }
      const err = await exercise(dir);
      if (err !== undefined) {
        errors++;
        assert.ok(err instanceof WinsnapError, `iteration ${i}: ${String((err as Error).stack ?? err)}`);
      }
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(errors > 20, `corruptions detected: ${errors}`);
  } finally {
    base.cleanup();
  }
});
