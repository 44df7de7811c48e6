/** Shared helpers for the VHDX tests: qemu-img/qemu-io wrappers and a seeded byte generator. */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { runTool } from '../../helpers/tools.js';

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export interface QemuInfo {
  format: string;
  'virtual-size': number;
  'cluster-size'?: number;
  'backing-filename'?: string;
}

export function qemuInfo(path: string): QemuInfo {
  const r = runTool('qemu-img', ['info', '--output=json', path]);
  assert.equal(r.status, 0, `qemu-img info ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString()) as QemuInfo;
}

/** Asserts `qemu-img check` finds no errors (exit status 0 and its "No errors" line). */
export function qemuCheck(path: string): void {
  const r = runTool('qemu-img', ['check', '-f', 'vhdx', path]);
  assert.equal(r.status, 0, `qemu-img check ${path} failed (${r.status}): ${r.stdout.toString()} ${r.stderr}`);
  assert.match(r.stdout.toString(), /No errors were found on the image/);
}

/** The virtual disk as qemu sees it (small disks only). */
export function qemuToRaw(path: string, dir: string, fmt = 'vhdx'): Buffer {
  const out = join(dir, `qemu-raw-${Date.now()}-${Math.random().toString(36).slice(2)}.raw`);
  const r = runTool('qemu-img', ['convert', '-f', fmt, '-O', 'raw', path, out]);
  assert.equal(r.status, 0, `qemu-img convert ${path}: ${r.stderr}`);
  const data = readFileSync(out);
  rmSync(out);
  return data;
}

export function qemuIo(path: string, cmds: string[], readOnly = false): string {
  const args = ['-f', 'vhdx', ...(readOnly ? ['-r'] : []), ...cmds.flatMap((c) => ['-c', c]), path];
  const r = runTool('qemu-io', args);
  const out = r.stdout.toString() + r.stderr;
  assert.equal(r.status, 0, `qemu-io ${cmds.join('; ')}: ${out}`);
  assert.doesNotMatch(out, /Pattern verification failed|error|failed/i, out);
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32) so failures reproduce. */
export function seededBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export function seededInt(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** First differing offset of two buffers, for readable assertion messages. */
export function firstDiff(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

export function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  const d = firstDiff(actual, expected);
  assert.equal(d, -1, `${what}: first difference at byte ${d} (lengths ${actual.length} / ${expected.length})`);
}
