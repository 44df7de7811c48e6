/**
 * Windows name comparison: NTFS and CimFS compare names by mapping every UTF-16 code unit
 * through an upcase table and comparing the results. Our table maps each BMP code unit to
 * its Unicode simple uppercase mapping when that is a single BMP code unit, else to
 * itself — the rule NTFS's $UpCase follows (surrogates and multi-unit expansions such as
 * ß → SS are left unchanged).
 */
let table: Uint16Array | undefined;

export function upcaseTable(): Uint16Array {
  if (!table) {
    table = new Uint16Array(0x10000);
    for (let c = 0; c < 0x10000; c++) {
      if (c >= 0xd800 && c <= 0xdfff) {
        table[c] = c;
        continue;
      }
      const u = String.fromCharCode(c).toUpperCase();
      table[c] = u.length === 1 ? u.charCodeAt(0) : c;
    }
  }
  return table;
}

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** The case-folded form of a name (equal folds = the same name on Windows). */
export function foldName(s: string): string {
  if (ASCII.test(s)) return s.toUpperCase();
  const t = upcaseTable();
  let out = '';
  for (let i = 0; i < s.length; i++) out += String.fromCharCode(t[s.charCodeAt(i)]!);
  return out;
}

/** Compares two names as Windows does: by their upcased UTF-16 code units. */
export function compareNames(a: string, b: string): number {
  const fa = foldName(a);
  const fb = foldName(b);
  const n = Math.min(fa.length, fb.length);
  for (let i = 0; i < n; i++) {
    const d = fa.charCodeAt(i) - fb.charCodeAt(i);
    if (d !== 0) return d;
  }
  return fa.length - fb.length;
}
