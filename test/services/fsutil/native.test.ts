/**
 * The native helper (native/fsx.c via services/fsutil/native): it must be built on Linux (the
 * build step compiles it; CI has a C compiler and Node's headers), and `dataExtents` must
 * describe a sparse file exactly enough to skip its holes: ranges in order, inside the file,
 * covering every non-zero byte, and leaving out a large hole. Errors carry errno context.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataExtents, nativeStatus, type Extent } from '../../../src/services/fsutil/native.js';

const MiB = 1024 * 1024;

function checkCovers(extents: Extent[], data: Buffer): void {
  let prevEnd = -1;
  for (const e of extents) {
    assert.ok(e.start < e.end, `empty or reversed extent ${e.start}..${e.end}`);
    assert.ok(e.start > prevEnd, `extents out of order or touching at ${e.start}`);
    assert.ok(e.end <= data.length, `extent past the end: ${e.end} > ${data.length}`);
    prevEnd = e.end;
  }
  // every byte outside the extents is zero
  let pos = 0;
  for (const e of [...extents, { start: data.length, end: data.length }]) {
    const gap = data.subarray(pos, e.start);
    assert.ok(gap.every((b) => b === 0), `non-zero byte in a reported hole ${pos}..${e.start}`);
    pos = e.end;
  }
}

describe('native helper', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'winsnap-native-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is built and loads on Linux', { skip: process.platform !== 'linux' && 'the native helper is built for Linux only' }, () => {
    const s = nativeStatus();
    assert.equal(s.loaded, true, `native helper not loaded: ${s.reason}`);
  });

  test('dataExtents covers the data of a sparse file and leaves its big holes out', () => {
    const p = join(dir, 'sparse.raw');
    const fd = openSync(p, 'w');
    try {
      const size = 64 * MiB + 123;
      ftruncateSync(fd, size);
      const chunk = Buffer.alloc(MiB, 0xa5);
      writeSync(fd, chunk, 0, chunk.length, 0); // data at the start
      writeSync(fd, chunk, 0, 4096, 20 * MiB + 8192); // a small island
      writeSync(fd, chunk, 0, 100, size - 100); // a short tail, not block aligned
      const extents = dataExtents(fd, size);
      const data = readFileSync(p);
      checkCovers(extents, data);
      if (nativeStatus().loaded) {
        const covered = extents.reduce((n, e) => n + (e.end - e.start), 0);
        assert.ok(covered < 8 * MiB, `the holes were not found: ${covered} bytes reported as data`);
        assert.ok(extents.length >= 3, `expected at least 3 data extents, got ${JSON.stringify(extents)}`);
      } else assert.deepEqual(extents, [{ start: 0, end: size }]);
      // a size smaller than the file limits the answer
      for (const e of dataExtents(fd, MiB / 2)) assert.ok(e.end <= MiB / 2);
      assert.deepEqual(dataExtents(fd, 0), []);
    } finally {
      closeSync(fd);
    }
  });

  test('a file without holes is one extent; a file that is all hole has none', () => {
    const full = join(dir, 'full.raw');
    const fd = openSync(full, 'w');
    try {
      writeSync(fd, Buffer.alloc(3 * 4096 + 5, 1));
      assert.deepEqual(dataExtents(fd, 3 * 4096 + 5), [{ start: 0, end: 3 * 4096 + 5 }]);
    } finally {
      closeSync(fd);
    }
    const empty = join(dir, 'hole.raw');
    const fd2 = openSync(empty, 'w');
    try {
      ftruncateSync(fd2, 16 * MiB);
      const e = dataExtents(fd2, 16 * MiB);
      if (nativeStatus().loaded) assert.deepEqual(e, []);
      else assert.deepEqual(e, [{ start: 0, end: 16 * MiB }]);
    } finally {
      closeSync(fd2);
    }
  });

  test('a bad file descriptor is an error naming the call', { skip: !nativeStatus().loaded && 'native helper not loaded' }, () => {
    assert.throws(() => dataExtents(987654, 4096), /lseek\(SEEK_DATA\)/);
  });
});
