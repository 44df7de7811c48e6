/**
 * The native helper (native/fsx.c via services/fsutil/native): it must be built on Linux (the
 * build step compiles it; CI has a C compiler and Node's headers), and `dataExtents` must
 * describe a sparse file exactly enough to skip its holes: ranges in order, inside the file,
 * covering every non-zero byte, and leaving out a large hole. Errors carry errno context.
 * `readChecksum` (where the CPU has PCLMULQDQ) must give the CRCs of a bitwise reference
 * for every length and alignment, and read exactly what pread would; `sha256Blocks` must
 * equal node:crypto.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CASTAGNOLI, IEEE, referenceCrc } from '../../helpers/crc.js';
import { allocateCall, CRC32_BIT, CRC32C_BIT, crcCall, dataExtents, nativeStatus, readChecksumCall, setPipeSize, sha256BlocksAddon, type Extent } from '../../../src/services/fsutil/native.js';

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

  test('allocate (fallocate before a write) allocates exactly the range (the rest of a sparse file stays a hole), grows the file, reads as zeros', { skip: process.platform !== 'linux' && 'fallocate is Linux' }, () => {
    const allocate = allocateCall();
    assert.ok(allocate, 'offered on Linux');
    const p = join(dir, 'sparse');
    const fd = openSync(p, 'w+');
    try {
      ftruncateSync(fd, 64 << 20);
      assert.equal(fstatSync(fd).blocks, 0);
      assert.equal(allocate(fd, 8 << 20, 1 << 20), 0);
      const st = fstatSync(fd);
      assert.equal(st.size, 64 << 20, 'inside the file: the size stays');
      assert.ok(st.blocks * 512 >= 1 << 20 && st.blocks * 512 < 2 << 20, `${st.blocks * 512} bytes allocated for 1 MiB`);
      assert.equal(allocate(fd, 64 << 20, 4096), 0);
      assert.equal(fstatSync(fd).size, (64 << 20) + 4096, 'past the end: the file grows as the write would make it');
      const back = Buffer.alloc(1 << 20, 1);
      assert.equal(readSync(fd, back, 0, back.length, 8 << 20), back.length);
      assert.ok(back.every((b) => b === 0));
    } finally {
      closeSync(fd);
    }
    // an error number, not a throw: a bad descriptor; bad arguments throw
    assert.equal(allocate(123456, 0, 4096), 9 /* EBADF */);
    assert.throws(() => allocate(0, -1, 4096), /non-negative offset/);
  });
});

const cpuHasClmul = process.arch === 'x64' && process.platform === 'linux' && /\bpclmulqdq\b/.test(readFileSync('/proc/cpuinfo', 'utf8'));

describe('setPipeSize', () => {
  test('grows a pipe to 1 MiB on Linux, and refuses what is not a pipe', { skip: process.platform !== 'linux' && 'F_SETPIPE_SZ is Linux' }, () => {
    // the child's stdin is a pipe from `echo` (a shell pipe: Node's own stdio "pipes" are sockets)
    const src = fileURLToPath(new URL('../../../src/services/fsutil/native.ts', import.meta.url));
    const code = `const { setPipeSize } = await import(${JSON.stringify(src)}); console.log(setPipeSize(0, 1 << 20) ?? 'none');`;
    const r = spawnSync('bash', ['-c', 'echo x | "$0" --import tsx --input-type=module -e "$1"', process.execPath, code], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Number(r.stdout.trim()) >= 1 << 20, `pipe size ${r.stdout}`);
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-pipe-'));
    try {
      const fd = openSync(join(dir, 'f'), 'w');
      try {
        assert.equal(setPipeSize(fd, 1 << 20), undefined);
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sha256Blocks (dm-verity level 0 with the OpenSSL of the Node binary)', () => {
  test('is offered on Linux, and equals node:crypto for each salted 4 KiB block', { skip: process.platform !== 'linux' && 'built for Linux only' }, async () => {
    const addon = sha256BlocksAddon();
    assert.ok(addon, 'the native helper does not offer sha256Blocks');
    const { sha256Blocks } = createRequire(import.meta.url)(addon) as { sha256Blocks: (d: Buffer, s: Buffer, o: Buffer) => void };
    // salts of whole 64-byte blocks, of a remainder, and of a remainder that makes the padding two blocks
    for (const saltLength of [0, 32, 60, 64, 100, 129]) {
      const data = randomBytes(4096 * 5);
      const salt = randomBytes(saltLength);
      const out = Buffer.alloc(5 * 32 + 3, 0xee);
      sha256Blocks(data, salt, out);
      for (let i = 0; i < 5; i++) {
        const want = createHash('sha256').update(salt).update(data.subarray(i * 4096, (i + 1) * 4096)).digest();
        assert.ok(out.subarray(i * 32, i * 32 + 32).equals(want), `block ${i}, salt of ${saltLength} bytes`);
      }
      assert.ok(out.subarray(160).equals(Buffer.alloc(3, 0xee)), 'wrote past its blocks');
    }
    // the SHA-extensions path (where the CPU has them) and OpenSSL's (a child told WINSNAP_NO_SHANI=1) agree
    const data = randomBytes(4096 * 3);
    const salt = randomBytes(32);
    const here = Buffer.alloc(96);
    sha256Blocks(data, salt, here);
    const code = `const { sha256Blocks } = require(${JSON.stringify(addon)}); const o = Buffer.alloc(96);
      sha256Blocks(Buffer.from(${JSON.stringify(data.toString('hex'))}, 'hex'), Buffer.from(${JSON.stringify(salt.toString('hex'))}, 'hex'), o); console.log(o.toString('hex'));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, WINSNAP_NO_SHANI: '1' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), here.toString('hex'));
    assert.throws(() => sha256Blocks(Buffer.alloc(4095), Buffer.alloc(0), Buffer.alloc(32)), /4 KiB blocks/);
    assert.throws(() => sha256Blocks(Buffer.alloc(8192), Buffer.alloc(0), Buffer.alloc(32)), /32 bytes a block/);
  });
});

describe('readChecksum (CRCs on the thread pool)', () => {
  let dir = '';
  before(() => (dir = mkdtempSync(join(tmpdir(), 'winsnap-crc-'))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('is offered on x86-64 Linux with PCLMULQDQ', { skip: !cpuHasClmul && 'not an x86-64 Linux CPU with carry-less multiplication' }, () => {
    assert.ok(readChecksumCall(), 'readChecksum missing although the CPU has PCLMULQDQ');
  });

  const call = readChecksumCall();
  test('CRC-32 and CRC-32C of buffers of every length around the 16- and 64-byte lanes', { skip: !call && 'not offered here' }, async () => {
    const out = new Uint32Array(2);
    const backing = randomBytes(70_000);
    for (const len of [0, 1, 3, 4, 15, 16, 17, 31, 32, 48, 63, 64, 65, 79, 80, 127, 128, 129, 191, 1000, 4096, 65_537]) {
      for (const offset of [0, 1, 7]) {
        const b = backing.subarray(offset, offset + len); // unaligned views too
        out.fill(0xdeadbeef);
        assert.equal(await call!(-1, b, 0, CRC32_BIT | CRC32C_BIT, out), len);
        assert.equal(out[0], referenceCrc(b, IEEE), `CRC-32 of ${len} bytes at +${offset}`);
        assert.equal(out[1], referenceCrc(b, CASTAGNOLI), `CRC-32C of ${len} bytes at +${offset}`);
      }
    }
    // the check values of the CRC catalogue
    assert.equal(await call!(-1, Buffer.from('123456789'), 0, CRC32_BIT | CRC32C_BIT, out), 9);
    assert.deepEqual([...out], [0xcbf43926, 0xe3069283]);
    // only the CRCs asked for
    out.fill(7);
    await call!(-1, Buffer.from('123456789'), 0, CRC32C_BIT, out);
    assert.deepEqual([...out], [0, 0xe3069283]);
  });

  test('crc (on the calling thread): the same CRCs, continuing from the CRC of the bytes before', { skip: !call && 'not offered here' }, () => {
    const crc = crcCall()!;
    assert.ok(crc, 'crc missing although readChecksum is offered');
    const data = randomBytes(9000);
    for (const [cut, end] of [[0, 0], [0, 9000], [1, 100], [17, 4113], [64, 8999]] as const) {
      for (const [which, poly] of [[CRC32_BIT, IEEE], [CRC32C_BIT, CASTAGNOLI]] as const) {
        const head = data.subarray(0, cut);
        const tail = data.subarray(cut, end);
        assert.equal(crc(which, data.subarray(0, end)), referenceCrc(data.subarray(0, end), poly), `whole ${end}`);
        assert.equal(crc(which, tail, crc(which, head)), referenceCrc(data.subarray(0, end), poly), `${cut} then ${end - cut}`);
      }
    }
    assert.throws(() => crc(3, Buffer.alloc(1)), /crc\(which/);
  });

  test('the 128-bit (PCLMULQDQ) and 512-bit (VPCLMULQDQ) folds give the same CRCs', { skip: !call && 'not offered here' }, () => {
    // this process uses the widest the CPU has; a child told WINSNAP_NO_VPCLMUL=1 the 128-bit one
    const data = randomBytes(70_001);
    const lengths = [0, 255, 256, 511, 512, 513, 767, 4096, 70_001];
    const here = lengths.map((n) => [crcCall()!(CRC32_BIT, data.subarray(0, n)), crcCall()!(CRC32C_BIT, data.subarray(1, n))]);
    const file = join(dir, 'crc-data');
    writeFileSync(file, data);
    const addon = createRequire(import.meta.url).resolve(sha256BlocksAddon()!);
    const code = `const b = require(${JSON.stringify(addon)}); const d = require('fs').readFileSync(${JSON.stringify(file)});
      console.log(JSON.stringify({ speed: b.checksumSpeed, crcs: ${JSON.stringify(lengths)}.map((n) => [b.crc(1, d.subarray(0, n)), b.crc(2, d.subarray(1, n))]) }));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', env: { ...process.env, WINSNAP_NO_VPCLMUL: '1' } });
    assert.equal(r.status, 0, r.stderr);
    const child = JSON.parse(r.stdout) as { speed: string; crcs: number[][] };
    assert.equal(child.speed, 'pclmul');
    assert.deepEqual(child.crcs, here);
    for (let i = 0; i < lengths.length; i++) assert.equal(here[i]![0], referenceCrc(data.subarray(0, lengths[i]), IEEE), `length ${lengths[i]}`);
  });

  test('reads the file at the position, stops at its end, and checksums what it read', { skip: !call && 'not offered here' }, async () => {
    const data = randomBytes(3 * 65_536 + 1234);
    const p = join(dir, 'data');
    writeFileSync(p, data);
    const fd = openSync(p, 'r');
    try {
      const buf = Buffer.alloc(65_536);
      const out = new Uint32Array(2);
      for (const pos of [0, 100, 2 * 65_536, 3 * 65_536, data.length - 1, data.length, data.length + 10]) {
        const n = await call!(fd, buf, pos, CRC32_BIT | CRC32C_BIT, out);
        const want = data.subarray(Math.min(pos, data.length), Math.min(pos + buf.length, data.length));
        assert.equal(n, want.length, `bytes read at ${pos}`);
        assert.ok(buf.subarray(0, n).equals(want), `bytes at ${pos}`);
        assert.deepEqual([...out], [referenceCrc(want, IEEE), referenceCrc(want, CASTAGNOLI)], `CRCs at ${pos}`);
      }
    } finally {
      closeSync(fd);
    }
  });

  test('a bad descriptor rejects with EBADF; bad arguments throw', { skip: !call && 'not offered here' }, async () => {
    await assert.rejects(call!(987654, Buffer.alloc(16), 0, CRC32_BIT, new Uint32Array(2)), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && /readChecksum/.test(e.message));
    await assert.rejects(call!(-1, Buffer.alloc(16), 0, CRC32_BIT, new Uint32Array(1)), /readChecksum\(fd, buffer/);
  });
});
