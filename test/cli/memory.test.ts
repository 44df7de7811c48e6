/**
 * Issue 4's memory bound, end to end: `winsnap convert tar2vhd` of a layer of 600,000 entries
 * (past the ~510,000 that fit in 128 MiB with the tables in memory) streamed on stdin keeps its
 * peak resident set (getrusage maxRSS, reported by the process itself as it exits) within
 * 128 MiB, with and without --verity, because its tables spill to files next to the output
 * (also when every entry has pax access and change times and extended attributes: an SELinux
 * label on each, and on every third file an xattr of its own; and with --inline, every file's
 * bytes kept for its inode); e2fsck accepts the image and veritysetup the tree.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeTarHeader } from '../../src/formats/tar/index.js';
import { runTool, tempDir } from '../helpers/tools.js';

const BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));
const ENTRIES = 600_000;
const PER_DIR = 500;
/** prints the process's peak resident set (KiB on Linux) on stderr as it exits */
const REPORT = 'data:text/javascript,process.on("exit",()=>process.stderr.write("maxRSS="+process.resourceUsage().maxRSS+"\\n"))';

const LABEL = { key: 'SCHILY.xattr.security.selinux', value: Buffer.from('system_u:object_r:lib_t:s0\0') };

/**
 * Writes a tar of ENTRIES files in directories of PER_DIR to `out`, minding backpressure.
 * 'empty': empty files. 'pax': every entry also carries a pax atime and ctime, as GNU tar's pax
 * format writes them, and an SELinux label (as `tar --xattrs --selinux` writes it), every third
 * file also a `user.id` of its own. 'small': every file holds a line of its own (for --inline).
 */
type Layer = 'empty' | 'pax' | 'small';
const smallBody = (n: number) => Buffer.from(`file ${n}\n`);

async function writeLayer(out: NodeJS.WritableStream, layer: Layer): Promise<void> {
  const pax = layer === 'pax';
  const mtime = { sec: 1_600_000_000n, nsec: 0 };
  const t = pax ? { atime: { sec: 1_600_000_001n, nsec: 5 }, ctime: { sec: 1_600_000_002n, nsec: 7 }, pax: [LABEL] } : {};
  const own = (n: number) => (pax && n % 3 === 0 ? { pax: [LABEL, { key: 'SCHILY.xattr.user.id', value: Buffer.from(`id-${n}`) }] } : {});
  let chunk: Buffer[] = [];
  let bytes = 0;
  const put = async (b: Buffer) => {
    chunk.push(b);
    bytes += b.length;
    if (bytes < 1 << 20) return;
    const ok = out.write(Buffer.concat(chunk));
    chunk = [];
    bytes = 0;
    if (!ok) await once(out, 'drain');
  };
  for (let n = 0, d = 0; n < ENTRIES; d++) {
    const dir = `usr/lib/pkg${d}`;
    await put(encodeTarHeader({ name: `${dir}/`, type: 'dir', mode: 0o755, mtime, ...t }));
    for (let i = 0; i < PER_DIR - 1 && n < ENTRIES; i++, n++) {
      const body = layer === 'small' ? smallBody(n) : undefined;
      await put(encodeTarHeader({ name: `${dir}/file-${i}.txt`, type: 'file', mode: 0o644, size: body?.length ?? 0, mtime, ...t, ...own(n) }));
      if (body) await put(Buffer.concat([body, Buffer.alloc(512 - body.length)]));
    }
    n++;
  }
  chunk.push(Buffer.alloc(1024));
  out.end(Buffer.concat(chunk));
}

async function convert(args: string[], layer: Layer = 'empty'): Promise<{ maxRssMiB: number; stdout: string }> {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS; // as bin/winsnap's shebang does
  const child = spawn(process.execPath, ['--import', REPORT, BIN, 'convert', 'tar2vhd', '-i', '-', ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = once(child, 'close');
  await writeLayer(child.stdin, layer);
  const [code] = (await exited) as [number];
  assert.equal(code, 0, stderr);
  const m = /maxRSS=(\d+)/.exec(stderr);
  assert.ok(m, `no maxRSS report: ${stderr}`);
  return { maxRssMiB: Number(m[1]) / 1024, stdout };
}

/**
 * Converts `layer` into `layer.vhd` of a temporary directory (`args` after the output), checks
 * the peak RSS (≤ 128 MiB) and that nothing but the output is left there, after `check`.
 */
async function boundedConversion(ctx: TestContext, args: string[], layer: Layer, check: (out: string, stdout: string) => void): Promise<void> {
  const t = tempDir();
  try {
    const out = join(t.path, 'layer.vhd');
    const { maxRssMiB, stdout } = await convert(['-o', out, ...args], layer);
    ctx.diagnostic(`peak RSS ${maxRssMiB.toFixed(1)} MiB`);
    assert.ok(maxRssMiB <= 128, `peak RSS ${maxRssMiB.toFixed(1)} MiB`);
    check(out, stdout);
    assert.deepEqual(readdirSync(t.path), ['layer.vhd']);
  } finally {
    t.cleanup();
  }
}

describe('memory stays bounded for a layer of 600,000 entries', () => {
  test('tar2vhd of entries that all carry pax atime, ctime and xattrs: peak RSS ≤ 128 MiB; e2fsck accepts the image; no spill file left', async (ctx) => {
    await boundedConversion(ctx, ['--no-footer'], 'pax', (out) => {
      assert.equal(runTool('e2fsck', ['-fn', out]).status, 0);
      // a file's times (seconds; nanoseconds << 2 in the extra field); every entry has the same
      const stat = runTool('debugfs', ['-R', 'stat /usr/lib/pkg1199/file-498.txt', out]).stdout.toString();
      assert.match(stat, /atime: 0x5f5e1001:00000014/);
      assert.match(stat, /ctime: 0x5f5e1002:0000001c/);
      // files are numbered n = 500 * directory + i (a directory takes a number too): file-498 of
      // pkg1199 is 599,998 (no user.id), file-497 is 599,997 (a multiple of 3: its own user.id)
      const xattrs = (path: string) => runTool('debugfs', ['-R', `ea_list ${path}`, out]).stdout.toString();
      assert.match(xattrs('/usr/lib/pkg1199/file-498.txt'), /security.selinux \(27\) = "system_u:object_r:lib_t:s0\\000"/);
      assert.doesNotMatch(xattrs('/usr/lib/pkg1199/file-498.txt'), /user.id/);
      assert.match(xattrs('/usr/lib/pkg1199/file-497.txt'), /user.id \(9\) = "id-599997"/);
      assert.match(xattrs('/usr/lib/pkg7'), /security.selinux/);
    });
  });

  test('tar2vhd --inline of small files: peak RSS ≤ 128 MiB; e2fsck accepts the image; debugfs reads a file', async (ctx) => {
    await boundedConversion(ctx, ['--no-footer', '--inline'], 'small', (out) => {
      assert.equal(runTool('e2fsck', ['-fn', out]).status, 0);
      // file-7 of pkg1000 is file number 500 * 1000 + 7
      const stat = runTool('debugfs', ['-R', 'stat /usr/lib/pkg1000/file-7.txt', out]).stdout.toString();
      assert.match(stat, /Size of inline data: 60/);
      const cat = runTool('debugfs', ['-R', 'cat /usr/lib/pkg1000/file-7.txt', out]).stdout;
      assert.equal(cat.subarray(0, smallBody(500_007).length).toString(), smallBody(500_007).toString());
    });
  });

  test('tar2vhd --verity: peak RSS ≤ 128 MiB; veritysetup verifies the tree', async (ctx) => {
    await boundedConversion(ctx, ['--verity', '--json'], 'empty', (out, stdout) => {
      const j = JSON.parse(stdout) as { rootHash: string; hashOffset: number };
      assert.equal(runTool('veritysetup', ['verify', out, out, j.rootHash, `--hash-offset=${j.hashOffset}`]).status, 0);
    });
  });
});
