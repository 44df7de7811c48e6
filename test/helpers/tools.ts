/**
 * Test helpers for external validators (GNU tar, bsdtar, e2fsck, qemu-img, containerd…).
 * A test that needs a tool calls requireTool(): a missing tool is a test failure with a
 * message naming the Debian package, never a silent skip. `.ci/run` installs them all.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PACKAGE_OF: Record<string, string> = {
  tar: 'tar',
  bsdtar: 'libarchive-tools',
  python3: 'python3',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  'mkfs.ext4': 'e2fsprogs',
  dumpe2fs: 'e2fsprogs',
  mkntfs: 'ntfs-3g',
  'qemu-img': 'qemu-utils',
  'qemu-io': 'qemu-utils',
  veritysetup: 'cryptsetup-bin',
  containerd: 'containerd',
  ctr: 'containerd',
  hivexsh: 'libhivex-bin',
  hivexregedit: 'libwin-hivex-perl',
  regfinfo: 'libregf-utils',
  regfexport: 'libregf-utils',
  pigz: 'pigz',
  zstd: 'zstd',
  gzip: 'gzip',
};

const found = new Map<string, string>();

/** Absolute path of an external tool; throws (fails the test) when it is missing. */
export function requireTool(name: string): string {
  const cached = found.get(name);
  if (cached) return cached;
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin']);
  for (const d of dirs) {
    const p = join(d, name);
    const r = spawnSync('test', ['-x', p]);
    if (r.status === 0) {
      found.set(name, p);
      return p;
    }
  }
  throw new Error(
    `external validator '${name}' is not installed (Debian package ${PACKAGE_OF[name] ?? '?'}); .ci/run installs it`,
  );
}

export interface RunResult {
  status: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs a tool to completion; never throws on non-zero exit (callers assert on status). */
export function runTool(name: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const bin = requireTool(name);
  const r = spawnSync(bin, args, { maxBuffer: 1 << 30, ...opts });
  if (r.error) throw r.error;
  return { status: r.status ?? -1, stdout: r.stdout as Buffer, stderr: String(r.stderr ?? '') };
}

/** A fresh temporary directory removed by the returned cleanup function. */
export function tempDir(prefix = 'winsnap-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}
