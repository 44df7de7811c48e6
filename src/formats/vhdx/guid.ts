/**
 * VHDX identifiers (the GUID codec itself is ../guid.ts, shared with CimFS).
 *
 * Deterministic identifiers: `deriveGuid(purpose, ...parts)` is the first 16 bytes of
 * SHA-256("winsnap-vhdx\0" + purpose + "\0" + part1 + "\0" + part2 …) with the RFC 4122
 * variant bits and version nibble 4 set, so it looks like any other GUID to Windows.
 */
import { createHash } from 'node:crypto';
import { guidFromBytes, randomGuid, type Guid } from '../guid.js';

export { ZERO_GUID, guidBytes, parseGuid, randomGuid, readGuid, writeGuid, type Guid } from '../guid.js';

/** Deterministic GUID: SHA-256 of a purpose label and parts (see module comment). */
export function deriveGuid(purpose: string, ...parts: (string | number | bigint)[]): Guid {
  const h = createHash('sha256');
  h.update('winsnap-vhdx\0');
  h.update(purpose);
  for (const p of parts) {
    h.update('\0');
    h.update(String(p));
  }
  return guidFromBytes(h.digest());
}

/** How identifiers are made: derived from stated inputs (default) or random. */
export type IdMode = 'deterministic' | 'random';

/** A GUID source bound to a mode: derive(purpose, …parts) or random. */
export function makeGuid(mode: IdMode, purpose: string, ...parts: (string | number | bigint)[]): Guid {
  return mode === 'random' ? randomGuid() : deriveGuid(purpose, ...parts);
}
