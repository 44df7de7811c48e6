/**
 * Names in a Windows layer (DESIGN.md "Windows layer directory", invariant 5 "contained";
 * windows-layer-formats.md §2.1): relative, '/'-separated, under `Files/`, `Hives/` or
 * `UtilityVM/`. Rejected with InvalidArgument: empty names and components, '.', '..',
 * absolute paths, drive letters, backslashes, NUL and control characters, the characters
 * Win32 forbids in names (`<>"|?*`), and ':' anywhere but the alternate-data-stream suffix
 * of the last component.
 */
import { invalidArgument } from '../../services/errdefs.js';

export const LAYER_ROOTS = ['Files', 'Hives', 'UtilityVM'] as const;
const ROOTS_FOLDED = new Set(LAYER_ROOTS.map((r) => r.toUpperCase()));
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f<>"|?*\\]/;

export interface LayerName {
  /** the name without trailing slashes */
  name: string;
  /** path components */
  parts: string[];
  /** for `file:stream[:$DATA]`: the base file's name and the stream name */
  ads?: { base: string; stream: string };
}

function reject(name: string, why: string, offset?: number): never {
  throw invalidArgument(`layer entry "${name}": ${why}`, { entry: name, offset });
}

/** Validates a tar entry name of a Windows layer. */
export function parseLayerName(raw: string, offset?: number): LayerName {
  let name = raw;
  while (name.endsWith('/')) name = name.slice(0, -1);
  if (name === '') reject(raw, 'empty name', offset);
  if (name.startsWith('/')) reject(raw, 'absolute path', offset);
  if (/^[A-Za-z]:/.test(name)) reject(raw, 'drive-letter path', offset);
  const parts = name.split('/');
  for (const [i, p] of parts.entries()) {
    if (p === '') reject(raw, 'empty path component', offset);
    if (p === '.' || p === '..') reject(raw, `"${p}" path component`, offset);
    if (FORBIDDEN.test(p)) reject(raw, 'NUL, control, backslash or a character Windows forbids in names', offset);
    if (p.includes(':') && i !== parts.length - 1) reject(raw, "':' in a directory name", offset);
    if (p.endsWith(' ') || (p.endsWith('.') && !p.includes(':'))) {
      // Win32 strips trailing dots and spaces; such names would alias others
      reject(raw, 'name ends in a dot or space', offset);
    }
  }
  if (!ROOTS_FOLDED.has(parts[0]!.toUpperCase())) reject(raw, 'outside Files/, Hives/ and UtilityVM/', offset);
  if (parts[0] !== 'Files' && parts[0] !== 'Hives' && parts[0] !== 'UtilityVM') {
    reject(raw, `top-level directory must be spelled ${LAYER_ROOTS.join(', ')}`, offset);
  }
  const out: LayerName = { name, parts };
  const last = parts[parts.length - 1]!;
  const colon = last.indexOf(':');
  if (colon >= 0) {
    let stream = last.slice(colon + 1);
    if (stream.endsWith(':$DATA')) stream = stream.slice(0, -':$DATA'.length);
    if (colon === 0 || stream === '' || stream.includes(':')) reject(raw, 'malformed alternate data stream name', offset);
    out.ads = { base: [...parts.slice(0, -1), last.slice(0, colon)].join('/'), stream };
  }
  return out;
}

export const WHITEOUT_PREFIX = '.wh.';

/** For a whiteout name `dir/.wh.X`: `dir/X`; undefined for other names. */
export function whiteoutTarget(n: LayerName): string | undefined {
  const last = n.parts[n.parts.length - 1]!;
  if (!last.startsWith(WHITEOUT_PREFIX)) return undefined;
  return [...n.parts.slice(0, -1), last.slice(WHITEOUT_PREFIX.length)].join('/');
}

/** Whether a path lies under Files/ or UtilityVM/Files/ (where tombstones and links may point). */
export function inFilesTree(parts: readonly string[]): boolean {
  return (parts[0] === 'Files' && parts.length > 1) || (parts[0] === 'UtilityVM' && parts[1]?.toUpperCase() === 'FILES' && parts.length > 2);
}
