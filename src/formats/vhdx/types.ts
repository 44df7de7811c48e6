/** Public types of the VHDX module. */
import type { Guid, IdMode } from './guid.js';

export type DiskType = 'fixed' | 'dynamic' | 'differencing';

export interface VhdxInfo {
  path: string;
  type: DiskType;
  virtualSize: number;
  blockSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  leaveBlockAllocated: boolean;
  hasParent: boolean;
  /** Page-83 identifier (Virtual Disk ID metadata item). */
  virtualDiskId: Guid;
  fileWriteGuid: Guid;
  dataWriteGuid: Guid;
  logGuid: Guid;
  /** Current header's SequenceNumber as a decimal string (a u64). */
  sequenceNumber: string;
  creator: string;
  fileSize: number;
  chunkRatio: number;
  payloadBlocks: number;
  /** Payload blocks FULLY_PRESENT or PARTIALLY_PRESENT in this file. */
  allocatedBlocks: number;
  /** Count of payload blocks per state name (NOT_PRESENT, ZERO, FULLY_PRESENT, …). */
  blockStates: Record<string, number>;
  sectorBitmapBlocks: number;
  regions: { bat: { offset: number; length: number }; metadata: { offset: number; length: number }; log: { offset: number; length: number } };
  /** Parent locator key/value pairs (differencing disks only). */
  parentLocator?: { type: Guid; entries: Record<string, string> };
  /** Resolved parent path, when the parent was opened. */
  parentPath?: string;
  /** True when a non-empty log was replayed while opening (in the file, or in memory for read-only opens). */
  logReplayed: boolean;
}

export interface IdOptions {
  /** 'deterministic' (default): GUIDs derived from stated inputs; 'random': fresh random GUIDs. */
  ids?: IdMode;
  /** Extra input mixed into derived GUIDs (e.g. a snapshot key) so equal parameters can still differ. */
  idSeed?: string;
}

export interface CreateOptions extends IdOptions {
  /** Virtual size in bytes (multiple of the logical sector size). */
  size: number;
  /** Payload block size; default 32 MiB (what Windows uses for sandbox.vhdx). */
  blockSize?: number;
  /** 512 (default) or 4096. */
  logicalSectorSize?: number;
  /** 512 or 4096 (default). */
  physicalSectorSize?: number;
  /** Replace an existing file (default: fail with AlreadyExists). */
  overwrite?: boolean;
}

export interface DifferencingOptions extends IdOptions {
  /** Payload block size; default: the parent's. */
  blockSize?: number;
  /** absolute_win32_path to record (must start with \\?\); on Windows hosts it is derived when omitted. */
  parentWin32Path?: string;
  overwrite?: boolean;
}

export interface OpenOptions extends IdOptions {
  /** Open for writing (default read-only). */
  writable?: boolean;
  /** Use this file as the parent instead of resolving the parent locator. */
  parentPath?: string;
  /**
   * What to do with a non-empty log: 'replay' (default; in the file when writable, in memory
   * otherwise) or 'refuse' (fail with FailedPrecondition).
   */
  log?: 'replay' | 'refuse';
  /** Do not open the parent of a differencing disk (info only; reads that need the parent fail). */
  noParent?: boolean;
}

export type ProgressFn = (done: number, total: number) => void;
