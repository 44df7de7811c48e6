/**
 * Name handling for CIM link tables: entries are sorted by their names mapped code unit by code
 * unit through the image's upcase table (windows-layer-formats.md §3.2), and lookup is a binary
 * search in that order. Comparing mapped UTF-16 code units is what Windows' name comparison
 * does; `src/formats/common/upcase.ts` provides the table new images carry.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { upcaseTable } from '../common/upcase.js';
import { MAX_COMPONENT_LENGTH, MAX_PATH_LENGTH } from './constants.js';

export type Upcase = Uint16Array;

export function defaultUpcase(): Upcase {
  return upcaseTable();
}

const asciiStandard = new WeakMap<Upcase, boolean>();

/** True when `table` maps ASCII exactly as String.prototype.toUpperCase does. */
function hasStandardAscii(table: Upcase): boolean {
  let v = asciiStandard.get(table);
  if (v === undefined) {
    v = true;
    for (let c = 0; c < 0x80; c++) if (table[c] !== String.fromCharCode(c).toUpperCase().charCodeAt(0)) v = false;
    asciiStandard.set(table, v);
  }
  return v;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The upcased form of a name under `table`; equal folds are the same name. */
export function foldWith(table: Upcase, s: string): string {
  if (ASCII.test(s) && hasStandardAscii(table)) return s.toUpperCase();
  const codes = new Array<number>(s.length);
  for (let i = 0; i < s.length; i++) codes[i] = table[s.charCodeAt(i)]!;
  return String.fromCharCode(...codes);
}

/** Orders two folded names by UTF-16 code unit (JS string order). */
export function compareFolded(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Splits a CIM path ("a\\b\\c" or "a/b/c", leading separators ignored) into checked components. */
export function splitPath(path: string): string[] {
  if (path.length > MAX_PATH_LENGTH) throw invalidArgument(`path longer than ${MAX_PATH_LENGTH} UTF-16 units`, { entry: path.slice(0, 80) });
  const parts = path.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  for (const p of parts) checkComponent(p, path);
  return parts;
}

export function checkComponent(name: string, path = name): void {
  if (name.length === 0) throw invalidArgument('empty name component', { entry: path });
  if (name.length > MAX_COMPONENT_LENGTH) throw invalidArgument(`name component longer than ${MAX_COMPONENT_LENGTH} UTF-16 units`, { entry: path });
  if (name === '..') throw invalidArgument('path component ".." is not allowed', { entry: path });
  // eslint-disable-next-line no-control-regex
  if (/[\x00\\/:]/.test(name)) throw invalidArgument(`name component ${JSON.stringify(name)} contains a reserved character`, { entry: path });
}
