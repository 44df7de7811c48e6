/**
 * VHDX log reader (MS-VHDX §2.3): validates log entries (header, zero and data descriptors,
 * data sectors, CRC-32C, sequence numbers, LogGuid), finds the active sequence with the
 * procedure of §2.3.3 and returns the writes to replay in order. We never write log entries;
 * this is only for files other writers (Windows, qemu) left with a non-empty log.
 */
import { crc32c } from '../checksum.js';
import { invalidArgument } from '../../services/errdefs.js';
import {
  LOG_DESCRIPTOR_SIZE,
  LOG_ENTRY_HEADER_SIZE,
  LOG_SECTOR_SIZE,
  MiB,
  SIG_LOG_DATA,
  SIG_LOG_DESC,
  SIG_LOG_ENTRY,
  SIG_LOG_ZERO,
} from './constants.js';
import { readGuid, type Guid } from './guid.js';
import type { OverlayOp } from './fileio.js';

export interface LogEntry {
  /** Offset of the entry within the log. */
  position: number;
  length: number;
  tail: number;
  sequenceNumber: bigint;
  flushedFileOffset: number;
  lastFileOffset: number;
  ops: OverlayOp[];
}

export interface ReplayPlan {
  entries: LogEntry[];
  ops: OverlayOp[];
  /** The head entry's FlushedFileOffset: the file must be at least this large. */
  flushedFileOffset: number;
  /** The head entry's LastFileOffset: extend the file to at least this after replay. */
  lastFileOffset: number;
}

/** Reads `length` bytes of the circular log starting at `pos` (wrapping at the end). */
function ringRead(log: Buffer, pos: number, length: number): Buffer {
  if (pos + length <= log.length) return log.subarray(pos, pos + length);
  const first = log.subarray(pos);
  return Buffer.concat([first, log.subarray(0, length - first.length)]);
}

/** Validates the entry at `pos`; returns undefined when it is not a valid entry. */
export function parseLogEntry(log: Buffer, pos: number, logGuid: Guid): LogEntry | undefined {
  const L = log.length;
  if (pos % LOG_SECTOR_SIZE !== 0 || pos >= L) return undefined;
  const hdr = ringRead(log, pos, LOG_SECTOR_SIZE);
  if (hdr.toString('latin1', 0, 4) !== SIG_LOG_ENTRY) return undefined;
  const entryLength = hdr.readUInt32LE(8);
  const tail = hdr.readUInt32LE(12);
  const seq = hdr.readBigUInt64LE(16);
  const descCount = hdr.readUInt32LE(24);
  if (entryLength === 0 || entryLength % LOG_SECTOR_SIZE !== 0 || entryLength > L) return undefined;
  if (tail % LOG_SECTOR_SIZE !== 0 || tail >= L) return undefined;
  if (seq === 0n) return undefined;
  if (readGuid(hdr, 32) !== logGuid) return undefined;
  const flushedFileOffset = Number(hdr.readBigUInt64LE(48));
  const lastFileOffset = Number(hdr.readBigUInt64LE(56));
  if (flushedFileOffset % MiB !== 0 || lastFileOffset % MiB !== 0) return undefined;
  const descSectors = Math.ceil((LOG_ENTRY_HEADER_SIZE + descCount * LOG_DESCRIPTOR_SIZE) / LOG_SECTOR_SIZE);
  if (descSectors * LOG_SECTOR_SIZE > entryLength) return undefined;
  const entry = Buffer.from(ringRead(log, pos, entryLength));
  const stored = entry.readUInt32LE(4);
  entry.writeUInt32LE(0, 4);
  if (crc32c(entry) !== stored) return undefined;
  entry.writeUInt32LE(stored, 4);

  const ops: OverlayOp[] = [];
  let dataSector = descSectors;
  for (let i = 0; i < descCount; i++) {
    const o = LOG_ENTRY_HEADER_SIZE + i * LOG_DESCRIPTOR_SIZE;
    const sig = entry.toString('latin1', o, o + 4);
    const fileOffset = Number(entry.readBigUInt64LE(o + 16));
    if (entry.readBigUInt64LE(o + 24) !== seq) return undefined;
    if (fileOffset % LOG_SECTOR_SIZE !== 0) return undefined;
    if (sig === SIG_LOG_ZERO) {
      const zeroLength = Number(entry.readBigUInt64LE(o + 8));
      if (zeroLength % LOG_SECTOR_SIZE !== 0) return undefined;
      ops.push({ kind: 'zero', fileOffset, length: zeroLength });
    } else if (sig === SIG_LOG_DESC) {
      const trailing = entry.subarray(o + 4, o + 8);
      const leading = entry.subarray(o + 8, o + 16);
      const so = dataSector * LOG_SECTOR_SIZE;
      if (so + LOG_SECTOR_SIZE > entryLength) return undefined;
      const sector = entry.subarray(so, so + LOG_SECTOR_SIZE);
      if (sector.toString('latin1', 0, 4) !== SIG_LOG_DATA) return undefined;
      const high = sector.readUInt32LE(4);
      const low = sector.readUInt32LE(LOG_SECTOR_SIZE - 4);
      if ((BigInt(high) << 32n) + BigInt(low) !== seq) return undefined;
      const data = Buffer.alloc(LOG_SECTOR_SIZE);
      leading.copy(data, 0);
      sector.copy(data, 8, 8, LOG_SECTOR_SIZE - 4);
      trailing.copy(data, LOG_SECTOR_SIZE - 4);
      ops.push({ kind: 'data', fileOffset, data });
      dataSector++;
    } else {
      return undefined;
    }
  }
  return { position: pos, length: entryLength, tail, sequenceNumber: seq, flushedFileOffset, lastFileOffset, ops };
}

/**
 * Finds the active sequence (§2.3.3 steps 1-7) and returns the writes of its entries, tail
 * entry first. Throws InvalidArgument when the log holds no valid sequence.
 */
export function planReplay(log: Buffer, logGuid: Guid, logFileOffset: number): ReplayPlan {
  const L = log.length;
  let candidate: LogEntry[] = [];
  let candidateSeq = 0n;
  let curTail = 0;
  let oldTail = 0;
  for (;;) {
    const current: LogEntry[] = [];
    let head = curTail;
    let covered = 0;
    for (;;) {
      const e = parseLogEntry(log, head, logGuid);
      if (!e) break;
      const last = current[current.length - 1];
      if (last && e.sequenceNumber !== last.sequenceNumber + 1n) break;
      if (covered + e.length > L) break;
      current.push(e);
      covered += e.length;
      head = (head + e.length) % L;
    }
    let valid = false;
    if (current.length > 0) {
      const headEntry = current[current.length - 1];
      const tailIdx = current.findIndex((e) => e.position === headEntry.tail);
      if (tailIdx >= 0) {
        valid = true;
        if (headEntry.sequenceNumber > candidateSeq) {
          candidate = current.slice(tailIdx);
          candidateSeq = headEntry.sequenceNumber;
        }
      }
    }
    if (current.length === 0 || !valid) {
      curTail += LOG_SECTOR_SIZE;
      if (curTail >= L) curTail = 0;
    } else {
      curTail = head % L;
    }
    if (curTail < oldTail || (curTail === 0 && oldTail === 0)) break;
    oldTail = curTail;
  }
  if (candidate.length === 0) {
    throw invalidArgument(
      `corrupt VHDX: LogGuid ${logGuid} is set but the log at offset ${logFileOffset} holds no valid log sequence`,
      { offset: logFileOffset },
    );
  }
  const headEntry = candidate[candidate.length - 1];
  return {
    entries: candidate,
    ops: candidate.flatMap((e) => e.ops),
    flushedFileOffset: headEntry.flushedFileOffset,
    lastFileOffset: headEntry.lastFileOffset,
  };
}
