import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MKFS_MAX_SIZE, makeEmptyExt4 } from '../../../src/formats/ext4/mkfs.js';
import { kindOf } from '../../../src/services/errdefs.js';
import { runTool, tempDir } from '../../helpers/tools.js';

function writeImage(path: string, size: number): ReturnType<typeof makeEmptyExt4> {
  const fs = makeEmptyExt4(size, { label: 'scratch' });
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, fs.size);
    for (const e of fs.extents) writeSync(fd, e.data, 0, e.data.length, e.offset);
  } finally {
    closeSync(fd);
  }
  return fs;
}

function dumpe2fs(path: string): Map<string, string> {
  const r = runTool('dumpe2fs', ['-h', path]);
  assert.equal(r.status, 0, r.stderr);
  const m = new Map<string, string>();
  for (const line of r.stdout.toString().split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return m;
}

describe('empty ext4 (LCOW scratch filesystem)', () => {
  // sizes: below one group, exactly one group, several groups with a partial last group,
  // a last group too small to keep (dropped, as mke2fs does), and 20 GiB (160 groups, 10 flex groups)
  const GiB = 1024 ** 3;
  const cases: [string, number, number][] = [
    ['2 MiB', 2 * 1024 * 1024, 512],
    ['128 MiB (one full group)', 128 * 1024 * 1024, 32768],
    ['1 GiB + 4 MiB (partial last group)', GiB + 4 * 1024 * 1024, 263168],
    ['1 GiB + 100 KiB (tiny last group dropped)', GiB + 100 * 1024, 262144],
    ['20 GiB', 20 * GiB, 5242880],
  ];
  for (const [name, size, expectBlocks] of cases) {
    test(`${name}: e2fsck -fn accepts it; dumpe2fs shows the layout`, () => {
      const t = tempDir();
      try {
        const img = join(t.path, 'fs.img');
        const fs = writeImage(img, size);
        const r = runTool('e2fsck', ['-fn', img]);
        assert.equal(r.status, 0, `e2fsck: ${r.stdout.toString()}${r.stderr}`);
        const h = dumpe2fs(img);
        assert.equal(h.get('Block count'), String(expectBlocks));
        assert.equal(h.get('Block size'), '4096');
        assert.equal(h.get('Inode size'), '256');
        assert.equal(h.get('Filesystem volume name'), 'scratch');
        assert.equal(h.get('Filesystem state'), 'clean');
        const features = h.get('Filesystem features')!.split(/\s+/);
        for (const f of ['extent', 'flex_bg', 'filetype', 'sparse_super', 'large_file', 'dir_index', 'ext_attr']) assert.ok(features.includes(f), f);
        assert.ok(!features.includes('has_journal'));
        assert.equal(Number(h.get('Free blocks')), fs.freeBlocks);
        assert.equal(Number(h.get('Inode count')) - Number(h.get('Free inodes')), 11);
        // the root holds lost+found, as mke2fs makes it
        const ls = runTool('debugfs', ['-R', 'ls -l /', img]);
        assert.match(ls.stdout.toString(), /\b11\s+40700 .*lost\+found/);
      } finally {
        t.cleanup();
      }
    });
  }

  test('writable: debugfs -w creates files and directories, e2fsck still accepts it', () => {
    const t = tempDir();
    try {
      const img = join(t.path, 'fs.img');
      writeImage(img, 256 * 1024 * 1024);
      const src = join(t.path, 'data.bin');
      const fd = openSync(src, 'w');
      writeSync(fd, Buffer.alloc(3 * 1024 * 1024, 0x5a));
      closeSync(fd);
      for (const cmd of ['mkdir d1', `write ${src} d1/data.bin`, 'mkdir d1/d2']) {
        const r = runTool('debugfs', ['-w', '-R', cmd, img]);
        assert.equal(r.status, 0, r.stderr);
      }
      const r = runTool('e2fsck', ['-fn', img]);
      assert.equal(r.status, 0, `e2fsck: ${r.stdout.toString()}${r.stderr}`);
      const out = join(t.path, 'out.bin');
      runTool('debugfs', ['-R', `dump d1/data.bin ${out}`, img]);
      const cat = runTool('cmp', [src, out]);
      assert.equal(cat.status, 0);
    } finally {
      t.cleanup();
    }
  });

  test('deterministic: same size and label give the same bytes; a different size a different UUID', () => {
    const a = makeEmptyExt4(64 << 20, { label: 'x' });
    const b = makeEmptyExt4(64 << 20, { label: 'x' });
    assert.deepEqual(a.extents, b.extents);
    assert.notDeepEqual(makeEmptyExt4(65 << 20, { label: 'x' }).uuid, a.uuid);
  });

  test('bad sizes and labels are InvalidArgument', () => {
    for (const f of [() => makeEmptyExt4(1024 * 1024), () => makeEmptyExt4(MKFS_MAX_SIZE + 4096), () => makeEmptyExt4(64 << 20, { label: 'x'.repeat(17) })]) {
      assert.throws(f, (e: Error) => kindOf(e) === 'InvalidArgument');
    }
  });
});
