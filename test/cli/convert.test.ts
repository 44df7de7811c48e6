import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { TarWriter } from '../../src/formats/tar/writer.js';
import { runTool } from '../helpers/tools.js';

const BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));

async function sampleTar(): Promise<Buffer> {
  const w = new TarWriter();
  const out = buffer(w.stream);
  await w.writeEntry({ name: 'app/', type: 'dir', mode: 0o755, mtime: 1 });
  for (let i = 0; i < 50; i++) await w.writeEntry({ name: `app/f${i}`, type: 'file', mode: 0o644, size: 5000, mtime: 1 }, Buffer.alloc(5000, i));
  await w.writeEntry({ name: 'app/.wh.gone', type: 'file', mode: 0, size: 0, mtime: 0 });
  await w.finish();
  return out;
}

/**
 * `copies` of the sample tar's entries as one tar (bigger than a few 512 KiB read chunks),
 * written to DIR/l.tar and converted by path with `args`: the tar, and the image and digest
 * that conversions from stdin must match.
 */
async function byPathReference(dir: string, copies: number, args: string[]): Promise<{ tar: Buffer; image: string; digest: string }> {
  const one = await sampleTar();
  const tar = Buffer.concat(Array.from({ length: copies }, () => one.subarray(0, one.length - 1024)).concat([Buffer.alloc(1024)]));
  writeFileSync(join(dir, 'l.tar'), tar);
  const image = join(dir, 'path.img');
  const r = spawnSync(BIN, ['convert', 'tar2vhd', '-i', join(dir, 'l.tar'), '-o', image, ...args, '--json']);
  assert.equal(r.status, 0, r.stderr.toString());
  return { tar, image, digest: (JSON.parse(r.stdout.toString()) as { digest: string }).digest };
}

describe('winsnap convert', () => {
  test('tar2vhd from .tar.gz with --verity --whiteouts --json; roothash agrees; veritysetup verifies; stdin works', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-'));
    try {
      const tar = await sampleTar();
      writeFileSync(join(dir, 'l.tar.gz'), gzipSync(tar));
      const out = join(dir, 'l.vhd');
      const r = spawnSync(BIN, ['convert', 'tar2vhd', '-i', join(dir, 'l.tar.gz'), '-o', out, '--verity', '--whiteouts', '--json']);
      assert.equal(r.status, 0, r.stderr.toString());
      const j = JSON.parse(r.stdout.toString()) as { size: number; digest: string; rootHash: string; hashOffset: number; ext4Size: number };
      assert.equal(j.size, statSync(out).size);
      assert.match(j.digest, /^sha256:[0-9a-f]{64}$/);
      assert.equal(runTool('veritysetup', ['verify', out, out, j.rootHash, `--hash-offset=${j.hashOffset}`]).status, 0);
      const rh = spawnSync(BIN, ['convert', 'roothash', '-i', join(dir, 'l.tar.gz')]);
      assert.equal(rh.status, 0, rh.stderr.toString());
      // roothash uses the LCOW 128 GiB limit, which changes the layout, so compare with a matching conversion
      const out2 = join(dir, 'l2.img');
      const r2 = spawnSync(BIN, ['convert', 'tar2vhd', '-i', '-', '-o', out2, '--verity', '--whiteouts', '--no-footer', '--max-size', '128G', '--json'], { input: tar });
      assert.equal(r2.status, 0, r2.stderr.toString());
      assert.equal(rh.stdout.toString().trim(), (JSON.parse(r2.stdout.toString()) as { rootHash: string }).rootHash);
      assert.equal(readFileSync(out2).length, (JSON.parse(r2.stdout.toString()) as { size: number }).size);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('stdin redirected from a file (read from its offset, plain or gzip) gives the bytes a path gives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-'));
    try {
      // the tar follows 1,536 bytes the reader of stdin has already taken.
      // Equal images also mean equal fingerprints (they seed the UUIDs): by path the reads compute
      // the CRCs on the thread pool (native readChecksum), from stdin the main thread does
      const { tar: big, image: byPath, digest } = await byPathReference(dir, 3, ['--no-footer']);
      for (const [name, bytes] of [['skip.tar', big], ['skip.tar.gz', gzipSync(big)]] as const) {
        const file = join(dir, name);
        writeFileSync(file, Buffer.concat([Buffer.alloc(1536, 0x41), bytes]));
        const fd = openSync(file, 'r');
        try {
          readSync(fd, Buffer.alloc(1536), 0, 1536, null); // stdin's offset is now 1536
          const out = join(dir, `${name}.img`);
          const r = spawnSync(BIN, ['convert', 'tar2vhd', '-i', '-', '-o', out, '--no-footer', '--json'], { stdio: [fd, 'pipe', 'pipe'] });
          assert.equal(r.status, 0, r.stderr.toString());
          assert.equal((JSON.parse(r.stdout.toString()) as { digest: string }).digest, digest, name);
          assert.ok(readFileSync(out).equals(readFileSync(byPath)), name);
        } finally {
          closeSync(fd);
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a tar piped to stdin (read from the descriptor once its pipe buffer is 1 MiB), plain or gzip, gives the bytes a path gives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-'));
    try {
      const { tar: big, image: byPath, digest } = await byPathReference(dir, 5, []);
      for (const [name, bytes] of [['plain', big], ['gzip', gzipSync(big)]] as const) {
        const out = join(dir, `${name}.img`);
        const file = join(dir, `in.${name}`);
        writeFileSync(file, bytes);
        // a shell pipe (Node's own stdio "pipes" are sockets, which stream as before)
        const r = spawnSync('bash', ['-c', 'cat "$0" | "$1" convert tar2vhd -i - -o "$2" --json', file, BIN, out]);
        assert.equal(r.status, 0, r.stderr.toString());
        assert.equal((JSON.parse(r.stdout.toString()) as { digest: string }).digest, digest, name);
        assert.ok(readFileSync(out).equals(readFileSync(byPath)), name);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('tar2vhd runs in a process limited to 2 GB of address space (ulimit -v), with the same bytes as without', async () => {
    // the writer's tables reserve address space to grow into; under RLIMIT_AS they must not take
    // what V8 needs (a first version reserved ~6 GB and failed to allocate)
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-'));
    try {
      const tar = join(dir, 'l.tar');
      writeFileSync(tar, await sampleTar());
      const free = join(dir, 'free.vhd');
      const limited = join(dir, 'limited.vhd');
      const r1 = spawnSync(BIN, ['convert', 'tar2vhd', '-i', tar, '-o', free, '--verity']);
      assert.equal(r1.status, 0, r1.stderr.toString());
      const r2 = spawnSync('bash', ['-c', 'ulimit -v 2000000 && exec "$0" "$@"', BIN, 'convert', 'tar2vhd', '-i', tar, '-o', limited, '--verity']);
      assert.equal(r2.status, 0, r2.stderr.toString());
      assert.ok(readFileSync(limited).equals(readFileSync(free)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('synchronous I/O, the thread pool (WINSNAP_IO=sync|pool) and no native helper (WINSNAP_NO_NATIVE=1) give the same image, digest and root hash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-io-'));
    try {
      const ref = await byPathReference(dir, 40, ['--verity']); // ~10 MB: many read chunks and write buffers
      const variants: Record<string, NodeJS.ProcessEnv> = { sync: { WINSNAP_IO: 'sync' }, pool: { WINSNAP_IO: 'pool' }, 'no-native': { WINSNAP_NO_NATIVE: '1' } };
      const results = Object.entries(variants).map(([name, env]) => {
        const out = join(dir, `${name}.vhd`);
        const r = spawnSync(BIN, ['convert', 'tar2vhd', '-i', join(dir, 'l.tar'), '-o', out, '--verity', '--json'], { env: { ...process.env, ...env } });
        assert.equal(r.status, 0, r.stderr.toString());
        assert.ok(readFileSync(out).equals(readFileSync(ref.image)), `${name}: the image`);
        return JSON.parse(r.stdout.toString()) as { digest: string; rootHash: string };
      });
      assert.deepEqual(results[0], results[1]);
      assert.deepEqual(results[0], results[2]);
      assert.equal(results[0]!.digest, ref.digest);
      assert.match(results[0]!.rootHash, /^[0-9a-f]{64}$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('errors: missing input, too small --max-size, a bad size — one line, non-zero exit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'winsnap-convert-'));
    try {
      const miss = spawnSync(BIN, ['convert', 'tar2vhd', '-i', join(dir, 'nope.tar'), '-o', join(dir, 'x')]);
      assert.notEqual(miss.status, 0);
      const big = gzipSync(Buffer.alloc(0));
      writeFileSync(join(dir, 'e.tar.gz'), big);
      const inl = spawnSync(BIN, ['convert', 'tar2vhd', '-i', join(dir, 'e.tar.gz'), '-o', join(dir, 'x'), '--max-size', 'lots']);
      assert.notEqual(inl.status, 0);
      assert.match(inl.stderr.toString(), /^winsnap: /);
      assert.equal(inl.stderr.toString().trim().split('\n').length, 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
