/**
 * OS build number of a SOFTWARE hive: REG_SZ `CurrentBuild` under
 * `Microsoft\Windows NT\CurrentVersion`, as hcsshim's (since removed) getOsBuildNumberFromRegistry
 * read it from the UtilityVM SOFTWARE hive to decide whether to process the UtilityVM
 * (internal/wclayer/cim, see reference/windows-layer-formats.md §3.4). Upstream fails when the
 * type is not REG_SZ; so do we. Upstream read into a 16-byte buffer; we take the whole string.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { RegType } from './constants.js';
import { parseHive, type Hive, type ParseHiveOptions } from './reader.js';

export const CURRENT_VERSION_KEY = 'Microsoft\\Windows NT\\CurrentVersion';
export const CURRENT_BUILD_VALUE = 'CurrentBuild';

/**
 * The `CurrentBuild` string of a SOFTWARE hive, or undefined when the key or value is absent.
 * Throws InvalidArgument for a malformed hive or a value that is not REG_SZ.
 */
export function readOsBuildNumber(software: Buffer | Hive, opts: ParseHiveOptions = {}): string | undefined {
  const hive = Buffer.isBuffer(software) ? parseHive(software, opts) : software;
  const v = hive.key(CURRENT_VERSION_KEY)?.value(CURRENT_BUILD_VALUE);
  if (v === undefined || v.isTombstone) return undefined;
  if (v.type !== RegType.SZ) {
    throw invalidArgument(`regf: ${CURRENT_VERSION_KEY}\\${CURRENT_BUILD_VALUE} has type ${v.type}, REG_SZ (1) expected`);
  }
  return v.string();
}
