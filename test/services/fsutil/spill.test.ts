/**
 * Spilled tables (services/fsutil/spill.ts over native/fsx.c mapShared/dropResident): a mapped
 * temporary file reads zero, keeps what is written through growth and through dropping its
 * pages, really leaves the resident set when dropped, leaves no file behind, and falls back
 * (undefined) where no file can be made; dropResident refuses memory it did not map.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MappedFile, MAPPED_LIMIT, openTempFile, spilledTables, trimResident } from '../../../src/services/fsutil/spill.js';
import { mappingCalls, nativeStatus } from '../../../src/services/fsutil/native.js';
import { tempDir } from '../../helpers/tools.js';
import { kindOf } from '../../../src/services/errdefs.js';

const MiB = 1024 * 1024;

/** Resident file-backed bytes of this process (RssFile + RssShmem). */
function fileResident(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]) * 1024;
  return kib('RssFile') + kib('RssShmem');
}

function make(dir: string, bytes: number): MappedFile {
  const f = MappedFile.create(dir, bytes);
  assert.ok(f, `no mapped file: native helper ${JSON.stringify(nativeStatus())}`);
  return f;
}

describe('spill', () => {
  test('the native helper is built, with its mapping calls', () => {
    assert.deepEqual(nativeStatus(), { loaded: true });
    assert.ok(mappingCalls());
  });

  test('a mapped file reads zero, keeps its data through growth and dropped pages, and leaves nothing behind', () => {
    const t = tempDir();
    try {
      const before = spilledTables();
      const f = make(t.path, 3 * 4096);
      assert.equal(spilledTables(), before + 1);
      assert.deepEqual(readdirSync(t.path), [], 'the file is unlinked at once');
      let a = new Uint32Array(f.buffer);
      assert.equal(a.length, 3 * 1024);
      assert.ok(a.every((v) => v === 0));
      for (let i = 0; i < a.length; i++) a[i] = i * 7 + 1;
      f.dropResident();
      for (let i = 0; i < a.length; i += 97) assert.equal(a[i], i * 7 + 1, 'dropped pages come back from the file');
      a = new Uint32Array(f.grow(5 * MiB));
      assert.equal(a.length, (5 * MiB) / 4);
      for (let i = 0; i < 3 * 1024; i++) assert.equal(a[i], i * 7 + 1);
      assert.ok(a.subarray(3 * 1024).every((v) => v === 0), 'grown rows are zero');
      f.close();
      f.close(); // twice is fine
      assert.equal(spilledTables(), before);
      assert.deepEqual(readdirSync(t.path), []);
    } finally {
      t.cleanup();
    }
  });

  test('dropping a mapping takes its pages out of the resident set', () => {
    const t = tempDir();
    try {
      const f = make(t.path, 64 * MiB);
      const base = fileResident();
      new Uint8Array(f.buffer).fill(0xa5);
      const filled = fileResident();
      assert.ok(filled - base >= 56 * MiB, `64 MiB written through the mapping: +${(filled - base) / MiB} MiB resident`);
      f.dropResident();
      const dropped = fileResident();
      assert.ok(filled - dropped >= 56 * MiB, `after dropResident: ${(filled - dropped) / MiB} MiB fewer resident`);
      assert.equal(new Uint8Array(f.buffer)[40 * MiB], 0xa5);
      f.close();
    } finally {
      t.cleanup();
    }
  });

  test('trimResident drops the mappings only once more than MAPPED_LIMIT of them is resident', () => {
    const t = tempDir();
    try {
      const f = make(t.path, MAPPED_LIMIT * 4);
      const a = new Uint8Array(f.buffer);
      a.fill(1, 0, 4096);
      assert.equal(trimResident(), false, 'one page resident');
      a.fill(2, 0, MAPPED_LIMIT * 3);
      const before = fileResident();
      assert.equal(trimResident(), true);
      assert.ok(before - fileResident() >= MAPPED_LIMIT * 2, 'the pages left the resident set');
      assert.equal(a[MAPPED_LIMIT * 2], 2);
      f.close();
      assert.equal(trimResident(), false, 'nothing spilled: nothing to do');
    } finally {
      t.cleanup();
    }
  });

  test('a table that cannot grow fails with an Unavailable error naming the directory', () => {
    const t = tempDir();
    try {
      const f = make(t.path, 4096);
      f.close(); // its descriptor is gone: growing must fail cleanly
      assert.throws(
        () => f.grow(8192),
        (e: Error) => kindOf(e) === 'Unavailable' && e.message.includes(t.path) && /8192 bytes/.test(e.message),
      );
    } finally {
      t.cleanup();
    }
  });

  test('mapRead maps part of a file read-only without copying; unmap releases it at once', () => {
    const t = tempDir();
    try {
      const calls = mappingCalls()!;
      const path = join(t.path, 'data');
      const data = Buffer.alloc(3 * 65536);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
      writeFileSync(path, data);
      const fd = openSync(path, 'r');
      try {
        const ab = calls.mapRead(fd, 65536, 2 * 65536);
        const view = Buffer.from(ab);
        assert.ok(view.equals(data.subarray(65536)));
        calls.unmap(ab);
        assert.equal(ab.byteLength, 0, 'detached: its views see nothing');
        assert.equal(view.length, 0);
        calls.unmap(ab); // twice: nothing more happens
        assert.throws(() => calls.mapRead(fd, 100, 4096), TypeError, 'offsets must be page-aligned');
        assert.throws(() => calls.unmap(new ArrayBuffer(8)), TypeError);
        const tmp = openTempFile(t.path);
        assert.throws(() => calls.unmap(calls.mapShared(tmp, 4096)), TypeError, 'only mapRead buffers');
        closeSync(tmp);
      } finally {
        closeSync(fd);
      }
    } finally {
      t.cleanup();
    }
  });

  test('no file where none can be made: undefined (callers keep their tables in memory)', () => {
    assert.equal(MappedFile.create('/nonexistent/winsnap-spill-dir', 4096), undefined);
    assert.throws(() => openTempFile('/nonexistent/winsnap-spill-dir'), /ENOENT/);
  });

  test('dropResident refuses memory mapShared did not make; mapShared refuses bad arguments', () => {
    const calls = mappingCalls()!;
    assert.throws(() => calls.dropResident(new ArrayBuffer(4096)), TypeError);
    assert.throws(() => calls.dropResident({} as ArrayBuffer), TypeError);
    assert.throws(() => calls.mapShared(-1, 4096), /Bad file descriptor/);
    assert.throws(() => calls.mapShared(0, 0), TypeError);
    const t = tempDir();
    try {
      assert.throws(() => calls.mapShared(999_999, 4096), /Bad file descriptor/);
      assert.deepEqual(readdirSync(join(t.path)), []);
    } finally {
      t.cleanup();
    }
  });
});
