/** Public types shared by the CIM writer and reader. */

/**
 * What CimCreateFile takes (cimfs.dll CIMFS_FILE_METADATA): Win32 attributes, the four
 * FILETIMEs, the default stream's size, and raw security descriptor (self-relative), extended
 * attributes (FILE_FULL_EA_INFORMATION chain) and reparse buffer (REPARSE_DATA_BUFFER).
 */
export interface CimFileMetadata {
  /** Win32 FILE_ATTRIBUTE_* bits; DIRECTORY makes a directory. Only READONLY, HIDDEN, SYSTEM,
   * ARCHIVE and SPARSE_FILE are stored; DIRECTORY and REPARSE_POINT are derived on read. */
  attributes: number;
  creationTime?: bigint;
  lastWriteTime?: bigint;
  changeTime?: bigint;
  lastAccessTime?: bigint;
  /** Size of the default data stream in bytes (ignored for directories). */
  size?: number | bigint;
  securityDescriptor?: Uint8Array;
  extendedAttributes?: Uint8Array;
  reparseData?: Uint8Array;
}

/** What the reader reports about one file. */
export interface CimStat {
  fileId: number;
  /** Win32 attributes derived as cimfs does: stored flags + DIRECTORY + REPARSE_POINT. */
  attributes: number;
  isDirectory: boolean;
  size: bigint;
  creationTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
  lastAccessTime: bigint;
  securityDescriptor?: Buffer;
  extendedAttributes?: Buffer;
  reparseData?: Buffer;
  reparseTag: number;
  /** The default stream is stored sparse (reads as zeros, no data in any region). */
  sparse: boolean;
  /** The default stream is a PE image mapping (stream type 2). */
  peImage: boolean;
  /** Alternate data streams, in link-table order. */
  streams: { name: string; size: bigint; sparse: boolean }[];
  parentFileId: number;
}

export interface CimDirEntry {
  name: string;
  fileId: number;
}
