/**
 * CimFS GUIDs: stored in the Windows binary form and named in region files
 * (`region_<guid>_<i>`) in lowercase 8-4-4-4-12 (windows-layer-formats.md §3.1); the codec is
 * ../guid.ts, shared with VHDX.
 *
 * Deterministic GUIDs: `deriveCimGuid(parts)` = the first 16 bytes of
 * SHA-256("winsnap-cim\0" + part1 + "\0" + part2 …) with the RFC 4122 version nibble 4 and
 * variant bits set.
 */
import { createHash } from 'node:crypto';
import { guidFromBytes, type Guid } from '../guid.js';

export function deriveCimGuid(...parts: string[]): Guid {
  const h = createHash('sha256').update('winsnap-cim\0');
  for (const p of parts) h.update(p).update('\0');
  return guidFromBytes(h.digest());
}
