/**
 * Registry name rules: storage encoding (compressed "extended ASCII" or UTF-16LE), the
 * case-insensitive order of subkey lists and the 'lh' name hash.
 *
 * Facts (msuhanov/regf spec, "Index leaf", "Fast leaf", "Hash leaf", "Key node"):
 * - a name whose UTF-16 code units are all < 256 may be stored one byte per unit with the
 *   KEY_COMP_NAME / VALUE_COMP_NAME flag, otherwise it is UTF-16LE;
 * - subkey list elements are sorted ascending by the uppercase name, comparing code units;
 * - lh hash: H = 37 * H + upcase(unit) over the UTF-16 code units, 32-bit wrap-around;
 * - lf hint: the first 4 characters as extended ASCII, NUL padded; if a character is
 *   not representable the first byte is NUL.
 *
 * Upcasing: Windows uses its NLS upcase table (RtlUpcaseUnicodeChar). We use a per-code-unit
 * mapping: ASCII a-z exactly, other units through String#toUpperCase when that yields a single
 * unit (so 'ß' stays 'ß', as Windows' one-to-one table does). The two tables may disagree for a
 * few rare non-ASCII letters; ASCII (every name in Windows base hives we know of) is exact.
 */

const upcaseCache = new Uint16Array(0x10000);
let upcaseReady = false;

function buildUpcase(): void {
  for (let c = 0; c < 0x10000; c++) {
    let u = c;
    if (c >= 0x61 && c <= 0x7a) u = c - 32;
    else if (c >= 0x80 && (c < 0xd800 || c > 0xdfff)) {
      const s = String.fromCharCode(c).toUpperCase();
      if (s.length === 1) u = s.charCodeAt(0);
    }
    upcaseCache[c] = u;
  }
  upcaseReady = true;
}

/** Uppercase one UTF-16 code unit. */
export function upcaseUnit(c: number): number {
  if (c < 0x61) return c;
  if (c <= 0x7a) return c - 32;
  if (c < 0x80) return c;
  if (!upcaseReady) buildUpcase();
  return upcaseCache[c];
}

/** Uppercase a name unit by unit (length is preserved). */
export function upcaseName(name: string): string {
  let out = '';
  let changed = false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const u = upcaseUnit(c);
    if (u !== c) changed = true;
    out += String.fromCharCode(u);
  }
  return changed ? out : name;
}

/** Case-insensitive equality of two names (registry rules). */
export function namesEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y && upcaseUnit(x) !== upcaseUnit(y)) return false;
  }
  return true;
}

/** Order of subkey list elements: uppercase names compared code unit by code unit. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = upcaseUnit(a.charCodeAt(i));
    const y = upcaseUnit(b.charCodeAt(i));
    if (x !== y) return x - y;
  }
  return a.length - b.length;
}

/** The 'lh' hash of a key name. */
export function nameHash(name: string): number {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (Math.imul(h, 37) + upcaseUnit(name.charCodeAt(i))) >>> 0;
  return h >>> 0;
}

/** The 'lf' name hint (4 bytes). */
export function nameHint(name: string): Buffer {
  const out = Buffer.alloc(4);
  for (let i = 0; i < Math.min(4, name.length); i++) {
    const c = name.charCodeAt(i);
    if (c > 0xff) {
      out[0] = 0;
      return out;
    }
    out[i] = c;
  }
  return out;
}

/** True when every code unit fits in one byte (the name can be stored compressed). */
export function isCompressible(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0xff) return false;
  return true;
}

/** Encodes a name for storage; `compressed` tells which flag to set. */
export function encodeName(name: string): { bytes: Buffer; compressed: boolean } {
  if (isCompressible(name)) return { bytes: Buffer.from(name, 'latin1'), compressed: true };
  return { bytes: Buffer.from(name, 'utf16le'), compressed: false };
}

/** Decodes a stored name. An odd-length UTF-16 name keeps its last byte as a unit of its own. */
export function decodeName(bytes: Buffer, compressed: boolean): string {
  if (compressed) return bytes.toString('latin1');
  let s = bytes.toString('utf16le', 0, bytes.length & ~1);
  if (bytes.length & 1) s += String.fromCharCode(bytes[bytes.length - 1]);
  return s;
}
