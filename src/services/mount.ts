/**
 * Mounts as containerd describes them (api/types/mount.proto) and the option helpers the
 * Windows snapshotters and differs use (containerd mount/mount_windows.go and
 * core/mount CimFS constants in containerd 2.x).
 *
 * Option values that carry path lists are JSON produced by Go's encoding/json; we encode
 * them the same way byte for byte (nil list → `null`, HTML-safe escapes), see goJsonStrings.
 */
import { invalidArgument } from './errdefs.js';

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export const MOUNT_TYPE_BIND = 'bind';
export const MOUNT_TYPE_WINDOWS_LAYER = 'windows-layer';
export const MOUNT_TYPE_CIMFS = 'CimFS';
export const MOUNT_TYPE_BLOCKCIM = 'BlockCIM';
export const MOUNT_TYPE_LCOW_LAYER = 'lcow-layer';

/** JSON list of parent layer directories, immediate parent first. */
export const PARENT_LAYER_PATHS_FLAG = 'parentLayerPaths=';
/** JSON list of the parents' CIM paths (CimFS and BlockCIM). */
export const PARENT_LAYER_CIM_PATHS_FLAG = 'parentCimPaths=';
/** Where an unpack target's CIM is written (CimFS, unpack snapshots only). */
export const LAYER_CIM_PATH_FLAG = 'cimpath=';
export const BLOCK_CIM_TYPE_FLAG = 'blockCIMType=';
export const BLOCK_CIM_TYPE_FILE = 'file';
export const MERGED_CIM_PATH_FLAG = 'mergedCIMPath=';
export const ENABLE_LAYER_INTEGRITY_FLAG = 'enable_layer_integrity';
export const APPEND_VHD_FOOTER_FLAG = 'append_vhd_footer';

/**
 * Go's json.Marshal of a []string: `null` for a nil slice, HTML characters and the line/
 * paragraph separators escaped as \u00XX, other text as JSON.stringify writes it.
 */
export function goJsonStrings(list: readonly string[] | null | undefined): string {
  if (list == null) return 'null';
  return JSON.stringify(list).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `ro` or `rw`. */
export function accessOption(readOnly: boolean): string {
  return readOnly ? 'ro' : 'rw';
}

/** containerd Mount.ReadOnly(): true when an option is exactly `ro`. */
export function isReadOnly(m: Mount): boolean {
  return m.options.includes('ro');
}

/** The value after `prefix` in the first option that starts with it. */
export function optionValue(m: Mount, prefix: string): string | undefined {
  for (const o of m.options) if (o.startsWith(prefix)) return o.slice(prefix.length);
  return undefined;
}

function jsonList(m: Mount, prefix: string): string[] {
  const raw = optionValue(m, prefix);
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (e) {
    throw invalidArgument(`mount option ${prefix}: malformed JSON`, { option: prefix }, e);
  }
  if (parsed === null) return [];
  if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === 'string')) {
    throw invalidArgument(`mount option ${prefix}: expected a JSON list of strings`, { option: prefix });
  }
  return parsed;
}

/** containerd Mount.GetParentPaths(): the `parentLayerPaths=` list (empty when absent or null). */
export function parentLayerPaths(m: Mount): string[] {
  return jsonList(m, PARENT_LAYER_PATHS_FLAG);
}

/** containerd mount.GetParentCimPaths(). */
export function parentCimPaths(m: Mount): string[] {
  return jsonList(m, PARENT_LAYER_CIM_PATHS_FLAG);
}

export function parentLayerPathsOption(paths: readonly string[] | null): string {
  return PARENT_LAYER_PATHS_FLAG + goJsonStrings(paths);
}

export function parentCimPathsOption(paths: readonly string[] | null): string {
  return PARENT_LAYER_CIM_PATHS_FLAG + goJsonStrings(paths);
}
