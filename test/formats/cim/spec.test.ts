/**
 * Checks the bytes we write against the format as windows-layer-formats.md §3.1–3.3 states it,
 * with a small parser written here from that text (raw Buffer reads at the documented offsets;
 * nothing from src/formats/cim is used to decode).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { encodeReparsePoint } from '../../../src/formats/wintar/reparse.js';
import { tempDir } from '../../helpers/tools.js';
import { sampleModel, writeModel } from './model.js';

/** GUID bytes → "8-4-4-4-12": Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 as is. */
function guidAt(b: Buffer, o: number): string {
  const h = (n: number, w: number): string => n.toString(16).padStart(w, '0');
  const d4 = b.subarray(o + 8, o + 16).toString('hex');
  return `${h(b.readUInt32LE(o), 8)}-${h(b.readUInt16LE(o + 4), 4)}-${h(b.readUInt16LE(o + 6), 4)}-${d4.slice(0, 4)}-${d4.slice(4)}`;
}

class Raw {
  regions: Buffer[] = [];
  constructor(readonly dir: string, sets: { guid: string; count: number }[]) {
    for (const s of sets) for (let i = 0; i < s.count; i++) this.regions.push(readFileSync(join(dir, `region_${s.guid}_${i}`)));
  }
  /** RegionOffset: high 16 bits region index, low 48 bits byte offset. */
  at(off: bigint, len: number, plus = 0): Buffer {
    const idx = Number(off >> 48n);
    const byte = Number(off & 0xffffffffffffn) + plus;
    const r = this.regions[idx]!;
    assert.ok(byte >= 40 && byte + len <= r.length, `offset 0x${off.toString(16)} in bounds`);
    return r.subarray(byte, byte + len);
  }
  /** LinkTable: Length u32, LinkCount u32, Values[n], NameOffsets u32[n], names (u16 len + UTF-16LE). */
  linkTable(b: Buffer, esize: number): { name: string; value: Buffer }[] {
    const len = b.readUInt32LE(0);
    assert.equal(len, b.length, 'link table Length covers the table');
    const n = b.readUInt32LE(4);
    const out = [];
    for (let i = 0; i < n; i++) {
      const no = b.readUInt32LE(8 + n * esize + 4 * i);
      const nl = b.readUInt16LE(no);
      out.push({ name: b.toString('utf16le', no + 2, no + 2 + 2 * nl), value: b.subarray(8 + i * esize, 8 + (i + 1) * esize) });
    }
    return out;
  }
}

function common(b: Buffer, type: number, headerLength: number): void {
  assert.equal(b.toString('latin1', 0, 8), 'cimfile0');
  assert.equal(b.readUInt32LE(8), headerLength);
  assert.equal(b[12], type);
  assert.equal(b.readUInt32LE(16), 2, 'major version 2');
  assert.equal(b.readUInt32LE(20), 0, 'minor version 0');
}

test('spec: image, region and object-ID headers and the filesystem object', async () => {
  const d = tempDir('cim-spec-');
  try {
    const w = await CimWriter.create(d.path, 'base');
    await writeModel(w, sampleModel());
    await w.commit();
    const w2 = await CimWriter.create(d.path, 'child', { parentName: 'base' });
    await w2.addFile('Files\\x', { attributes: 0 }, Buffer.from('x'));
    await w2.commit();

    const img = readFileSync(join(d.path, 'base.cim'));
    assert.equal(img.length, 72, 'FilesystemHeader is 72 bytes with no parents');
    common(img, 0, 72);
    const guid = guidAt(img, 32);
    assert.equal(img.readUInt16LE(48), 3, 'three regions');
    assert.equal(img.readUInt16LE(70), 0, 'ParentCount');
    const fsOff = img.readBigUInt64LE(56);
    assert.equal(Number(fsOff >> 48n), 0, 'filesystem object in own region 0');
    const files = readdirSync(d.path);
    for (let i = 0; i < 3; i++) {
      const r = readFileSync(join(d.path, `region_${guid}_${i}`));
      common(r, 1, 40);
      assert.equal(r.readUInt16LE(32), i, 'region index');
      const o = readFileSync(join(d.path, `objectid_${guid}_${i}`));
      common(o, 2, 48);
      assert.equal(o.readUInt16LE(32), i);
      assert.equal(o.readUInt32LE(40), 48, 'TableOffset');
      assert.equal(o.length, 48 + 40 * o.readUInt32LE(44), 'Count entries of 40 bytes');
    }
    assert.ok(files.every((f) => /^(base|child)\.cim$|^(region|objectid)_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_[0-2]$/.test(f)), files.join(','));

    // Forked: ParentCount 1, parent region set = base's, own regions counted after the parent's.
    const ch = readFileSync(join(d.path, 'child.cim'));
    common(ch, 0, 96);
    assert.equal(ch.readUInt16LE(70), 1);
    assert.equal(guidAt(ch, 72), guid);
    assert.equal(ch.readUInt16LE(72 + 16), 3);
    assert.equal(Number(ch.readBigUInt64LE(56) >> 48n), 3, 'child filesystem object is in region 3 = its own region 0');

    // Filesystem object (24 bytes).
    const raw = new Raw(d.path, [{ guid, count: 3 }]);
    const fs = raw.at(fsOff, 24);
    const upcase = raw.at(fs.readBigUInt64LE(0), 0x20000);
    assert.equal(upcase.readUInt16LE(2 * 0x61), 0x41, "upcase['a'] = 'A'");
    assert.equal(upcase.readUInt16LE(2 * 0x41), 0x41);
    assert.equal(upcase.readUInt16LE(2 * 0xe9), 0xc9, "upcase['é'] = 'É'");
    assert.equal(upcase.readUInt16LE(2 * 0x3b1), 0x391, 'upcase[α] = Α');
    const ftdLen = fs.readUInt32LE(16);
    const ftd = raw.at(fs.readBigUInt64LE(8), 16 * ftdLen);
    const rootId = fs.readUInt32LE(20);
    let total = 0;
    const tables: { off: bigint; count: number; size: number }[] = [];
    for (let i = 0; i < ftdLen; i++) {
      const e = { off: ftd.readBigUInt64LE(16 * i), count: ftd.readUInt16LE(16 * i + 8), size: ftd.readUInt16LE(16 * i + 10) };
      assert.equal(e.size, 96, 'v2 File records are 96 bytes');
      assert.ok(e.count <= 1024);
      if (i < ftdLen - 1) assert.equal(e.count, 1024);
      total += e.count;
      tables.push(e);
    }
    // Distinct files: root + every model entry except the one hard link.
    assert.equal(total, 1 + sampleModel().size - 1);
    const file = (id: number): Buffer => {
      const t = tables[Math.floor((id - 1) / 1024)]!;
      return raw.at(t.off, 96, ((id - 1) % 1024) * 96);
    };
    const streamType = (f: Buffer): number => Number((f.readBigUInt64LE(48) >> 48n) & 0xffn);
    const streamLen = (f: Buffer): bigint => f.readBigUInt64LE(48) & 0xffffffffffffn;
    const dir = (f: Buffer): { name: string; id: number }[] => {
      assert.equal(streamType(f), 1, 'directory default stream is a link table');
      if (streamLen(f) === 0n) return [];
      return raw.linkTable(raw.at(f.readBigUInt64LE(40), Number(streamLen(f))), 4).map((e) => ({ name: e.name, id: e.value.readUInt32LE(0) }));
    };
    const lookup = (path: string): Buffer => {
      let f = file(rootId);
      for (const p of path.split('\\')) {
        const hit = dir(f).find((e) => e.name.toUpperCase() === p.toUpperCase());
        assert.ok(hit, `${p} found`);
        f = file(hit.id);
      }
      return f;
    };
    const rootNames = dir(file(rootId)).map((e) => e.name);
    assert.deepEqual(rootNames, ['Files', 'Hives']);
    // small.dll: Flags RO|Archive = 0x9, times, stream type 0 length 18, SD u16-counted.
    const small = lookup('Files\\Windows\\small.dll');
    assert.equal(small.readUInt16LE(0), 0x9);
    assert.equal(small.readBigUInt64LE(8), 132000000000000004n, 'CreationTime');
    assert.equal(small.readBigUInt64LE(16), 132000000000000005n, 'LastWriteTime');
    assert.equal(small.readBigUInt64LE(24), 132000000000000006n, 'ChangeTime');
    assert.equal(small.readBigUInt64LE(32), 0xfedcba9876543210n, 'LastAccessTime');
    assert.equal(streamType(small), 0);
    assert.equal(streamLen(small), 18n);
    assert.equal(raw.at(small.readBigUInt64LE(40), 18).toString(), 'MZ small file data');
    const sdLen = raw.at(small.readBigUInt64LE(56), 2).readUInt16LE(0);
    assert.equal(raw.at(small.readBigUInt64LE(56), sdLen, 2).toString('hex').slice(0, 8), '01000480', 'self-relative SD');
    assert.equal(small.readBigUInt64LE(64), 0n, 'no EA');
    assert.equal(small.readBigUInt64LE(72), 0n, 'no reparse');
    // Hard link: same file ID; ParentFileId of a file is its directory's ID.
    const winDir = dir(lookup('Files\\Windows'));
    const filesDir = dir(lookup('Files'));
    assert.equal(filesDir.find((e) => e.name === 'link-to-small.dll')!.id, winDir.find((e) => e.name === 'small.dll')!.id);
    const windowsId = filesDir.find((e) => e.name === 'Windows')!.id;
    assert.equal(lookup('Files\\Windows\\big.bin').readUInt32LE(88), windowsId, 'ParentFileId');
    // Directory link tables sorted by upcased name.
    const many = dir(lookup('Files\\Many')).map((e) => e.name.toUpperCase());
    assert.deepEqual(many, [...many].sort());
    // Symlink: ReparseTag IO_REPARSE_TAG_SYMLINK and the u16-counted buffer.
    const sym = lookup('Files\\symlink');
    assert.equal(sym.readUInt32LE(4), 0xa000000c);
    const rp = encodeReparsePoint({ target: 'Windows\\small.dll', isMountPoint: false });
    const rpLen = raw.at(sym.readBigUInt64LE(72), 2).readUInt16LE(0);
    assert.ok(raw.at(sym.readBigUInt64LE(72), rpLen, 2).equals(rp));
    // EA: EaLength bytes at EaOffset.
    const ea = lookup('Files\\Windows\\ea.txt');
    assert.ok(ea.readUInt16LE(2) > 0);
    assert.equal(raw.at(ea.readBigUInt64LE(64), ea.readUInt16LE(2)).toString('latin1', 8, 14), 'LX.UID', 'FILE_FULL_EA_INFORMATION name at +8');
    // ADS: u32-counted LinkTable<Stream> with 16-byte stream values, sorted.
    const ads = lookup('Files\\Windows\\ads.txt');
    const stOff = ads.readBigUInt64LE(80);
    const stLen = raw.at(stOff, 4).readUInt32LE(0);
    const st = raw.linkTable(raw.at(stOff, stLen, 4), 16);
    assert.deepEqual(st.map((s) => s.name), ['Big', 'empty', 'Zone.Identifier']);
    const zone = st[2]!.value;
    assert.equal(zone.readBigUInt64LE(8), 26n, 'length 26, type 0, not sparse');
    assert.equal(raw.at(zone.readBigUInt64LE(0), 26).toString(), '[ZoneTransfer]\r\nZoneId=3\r\n');
    // Sparse stream: bit 56 set, no data offset; SPARSE flag 0x10 on the file.
    const sp = lookup('Files\\sparse.vhd');
    assert.equal(sp.readBigUInt64LE(48), 9000n | (1n << 56n));
    assert.equal(sp.readBigUInt64LE(40), 0n);
    assert.equal(sp.readUInt16LE(0), 0x10 | 0x8);
    // Page-aligned data for a large file.
    const big = lookup('Files\\Windows\\big.bin');
    assert.equal(Number(big.readBigUInt64LE(40) >> 48n), 1, 'large data in the page-aligned region');
    assert.equal(Number(big.readBigUInt64LE(40) & 0xffffffffffffn) % 4096, 0);
    // Empty file: null stream.
    const empty = lookup('Files\\Windows\\empty.txt');
    assert.equal(empty.readBigUInt64LE(40), 0n);
    assert.equal(empty.readBigUInt64LE(48), 0n);
  } finally {
    d.cleanup();
  }
});
