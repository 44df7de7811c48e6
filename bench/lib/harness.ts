/**
 * Benchmark harness: measures a command (ours or a native baseline) in a child process with
 * the same wrapper, so wall time and peak RSS are comparable, and prints ratios. Benchmarks
 * are not tests: they print numbers, they assert nothing about time.
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const MEASURE = fileURLToPath(new URL('./measure.py', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const WINSNAP_BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));

export interface Measurement {
  wallSeconds: number;
  maxRssKiB: number;
  userSeconds: number;
  sysSeconds: number;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Feed stdin from this file. */
  stdinFile?: string;
  /** Write stdout to this file (otherwise discarded). */
  stdoutFile?: string;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs argv once under the measuring wrapper; rejects if the command fails. */
export async function measure(argv: string[], opts: MeasureOptions = {}): Promise<Measurement> {
  let cmd = argv;
  if (opts.stdinFile || opts.stdoutFile) {
    const redir = `${opts.stdinFile ? ` < ${shellQuote(opts.stdinFile)}` : ''}${
      opts.stdoutFile ? ` > ${shellQuote(opts.stdoutFile)}` : ' > /dev/null'
    }`;
    cmd = ['bash', '-c', `exec ${argv.map(shellQuote).join(' ')}${redir}`];
  }
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [MEASURE, ...cmd], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', opts.stdoutFile ? 'inherit' : 'ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let result = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => (result += d.toString()));
    child.on('error', reject);
    child.on('close', () => {
      try {
        const r = JSON.parse(result) as Measurement & { status: number };
        if (r.status !== 0) reject(new Error(`${argv.join(' ')} exited ${r.status}: ${stderr.slice(-2000)}`));
        else resolve(r);
      } catch (e) {
        reject(new Error(`measuring ${argv.join(' ')} failed: ${stderr.slice(-2000)} ${String(e)}`));
      }
    });
  });
}

/** Best (minimum wall) of n runs; peak RSS is the maximum seen. */
export async function measureBest(n: number, argv: string[], opts: MeasureOptions = {}): Promise<Measurement> {
  let best: Measurement | undefined;
  let rss = 0;
  for (let i = 0; i < n; i++) {
    const m = await measure(argv, opts);
    rss = Math.max(rss, m.maxRssKiB);
    if (!best || m.wallSeconds < best.wallSeconds) best = m;
  }
  return { ...best!, maxRssKiB: rss };
}

/**
 * Runs argv once to write `output` as a new file: the file is removed and the page cache's
 * dirty pages are written back (`sync`) first, outside the timed run. Our commands unlink an
 * existing output, while `cp` or `qemu-img` truncate and rewrite it, and ext4 writes a file
 * truncated and rewritten back when it is closed (auto_da_alloc): a `cp` of the 170 MB bench
 * tar took 0.12–0.15 s over an existing copy and 0.04–0.05 s to a new file (2026-12-06).
 * Measuring every side on a new file compares the work, not that flush.
 */
export async function measureFresh(argv: string[], output: string, opts: MeasureOptions = {}): Promise<Measurement> {
  rmSync(output, { force: true });
  spawnSync('sync');
  return measure(argv, opts);
}

/**
 * Runs the measurements in turn, `n` times (so all see the same page-cache and writeback
 * state); returns the best wall time of each, in order, with the highest peak RSS it saw.
 */
export async function measureAlternating(n: number, ...runs: (() => Promise<Measurement>)[]): Promise<Measurement[]> {
  const seen: Measurement[][] = runs.map(() => []);
  for (let i = 0; i < n; i++) for (let r = 0; r < runs.length; r++) seen[r]!.push(await runs[r]!());
  return seen.map((ms) => ({
    ...ms.reduce((x, m) => (m.wallSeconds < x.wallSeconds ? m : x)),
    maxRssKiB: Math.max(...ms.map((m) => m.maxRssKiB)),
  }));
}

export const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`;

export interface Comparison {
  name: string;
  ours: Measurement;
  baselineName: string;
  baseline: Measurement;
  /** e.g. "≤ 1.3x wall, ≤ 256 MiB RSS" */
  target?: string;
}

/** Prints one comparison line: our time / baseline time as a ratio, with peak RSS of both. */
export function report(c: Comparison): void {
  const ratio = c.ours.wallSeconds / c.baseline.wallSeconds;
  console.log(
    `${c.name}: ours ${c.ours.wallSeconds.toFixed(3)} s (peak RSS ${mib(c.ours.maxRssKiB)}) | ` +
      `${c.baselineName} ${c.baseline.wallSeconds.toFixed(3)} s (peak RSS ${mib(c.baseline.maxRssKiB)}) | ` +
      `ratio ${ratio.toFixed(2)}x${c.target ? ` (target ${c.target})` : ''}`,
  );
}

/** Prints a throughput comparison (higher is better): ours / baseline. */
export function reportRate(name: string, unit: string, ours: number, baselineName: string, baseline: number, extra = ''): void {
  console.log(
    `${name}: ours ${ours.toFixed(0)} ${unit} | ${baselineName} ${baseline.toFixed(0)} ${unit} | ratio ${(ours / baseline).toFixed(2)}x${extra ? ` ${extra}` : ''}`,
  );
}
