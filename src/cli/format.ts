/**
 * Output helpers that reproduce what `ctr` prints: Go's text/tabwriter (minwidth 1,
 * tabwidth 8, padding 1, padchar ' '), json.MarshalIndent with four spaces, and
 * containerd's progress.Bytes sizes ("%02.1f KiB").
 */
import { invalidArgument } from '../services/errdefs.js';

/** Go tabwriter.NewWriter(w, 1, 8, 1, ' ', 0) over rows whose every cell ends in a tab. */
export function tabwrite(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((r) => r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length + 1)).join('') + '\n').join('');
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

/** containerd pkg/progress Bytes.String(). */
export function humanBytes(n: number): string {
  let size = n;
  let i = 0;
  while (size >= 1024 && i < UNITS.length - 1) {
    size /= 1024;
    i++;
  }
  return `${size.toFixed(1).padStart(2, '0')} ${UNITS[i]}`;
}

/** Go's json.MarshalIndent(x, "", "    ") for plain data (HTML-safe escapes as Go). */
export function goJsonIndent(x: unknown): string {
  return JSON.stringify(x, null, 4).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Our --json output: one JSON document, bigint as decimal strings. */
export function printJson(x: unknown): void {
  process.stdout.write(`${JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

/** `k=v` arguments to a map (a bare `k` means `true`, as ctr's LabelArgs). */
export function labelArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of args) {
    const i = a.indexOf('=');
    if (i < 0) out[a] = 'true';
    else out[a.slice(0, i)] = a.slice(i + 1);
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tib: 2 ** 40,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
};

/** "20GiB", "512MiB", "10G", "1.5T", "4096" → bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw invalidArgument(`bad size ${JSON.stringify(text)} (use bytes or e.g. 20GiB, 512MiB, 10G)`);
  const v = Number(m[1]) * unit;
  if (!Number.isSafeInteger(v)) throw invalidArgument(`size ${JSON.stringify(text)} is not a whole number of bytes`);
  return v;
}
