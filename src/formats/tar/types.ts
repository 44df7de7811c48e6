/**
 * Public types of the tar codec (POSIX.1-2001 pax / USTAR, GNU and v7 tar).
 *
 * Facts: POSIX "pax" utility, sections "ustar Interchange Format" and "pax Interchange
 * Format" (header layout, extended header records, keywords path/linkpath/size/uid/gid/
 * uname/gname/mtime/atime/ctime); GNU tar manual "Basic Tar Format" (GNU magic, 'L'/'K'
 * long name/link headers, base-256 numbers).
 */

/** One extended-header record. The value is kept as raw bytes so binary values survive. */
export interface PaxRecord {
  key: string;
  value: Buffer;
}

/**
 * A tar timestamp: whole seconds since the Unix epoch (floor) plus nanoseconds in
 * [0, 1e9). -1.5 s is { sec: -2n, nsec: 500000000 }. PAX time strings with more than
 * nine fraction digits are truncated to nanoseconds (the exact string stays in `pax`).
 */
export interface TarTime {
  sec: bigint;
  nsec: number;
}

export type TarType =
  | 'file' // '0' or NUL
  | 'link' // '1' hard link
  | 'symlink' // '2'
  | 'char' // '3'
  | 'block' // '4'
  | 'dir' // '5'
  | 'fifo' // '6'
  | 'contiguous' // '7'
  | 'gnu-dumpdir' // 'D'
  | 'gnu-volume' // 'V'
  | 'gnu-multivolume' // 'M'
  | 'unknown'; // any other typeflag (body is read as `size` bytes, like GNU tar does)

export type TarFormat = 'v7' | 'ustar' | 'pax' | 'gnu';

/** A decoded entry header. name/linkname/size/uid/gid/uname/gname/mtime are effective values. */
export interface TarHeader {
  name: string;
  linkname: string;
  type: TarType;
  /** The raw typeflag byte of the main header (e.g. 0x30 for '0', 0 for a v7 regular file). */
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: TarTime;
  /** From a PAX `atime` record; absent otherwise. */
  atime?: TarTime;
  /** From a PAX `ctime` record; absent otherwise. */
  ctime?: TarTime;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
  /** Records of this entry's own 'x' header(s), in file order; [] if none. */
  pax: PaxRecord[];
  /** Records of every 'g' header seen before this entry, in file order (shared, do not mutate). */
  globalPax: readonly PaxRecord[];
  /** 'pax' if the entry had an 'x' header, else from the magic of its main header. */
  format: TarFormat;
}

/** What the writer needs. A TarHeader read from an archive is a valid TarHeaderInput. */
export interface TarHeaderInput {
  name: string;
  /** Default 'file'. Ignored for the typeflag byte when `typeflag` is given. */
  type?: TarType;
  /** Raw typeflag byte to write (overrides `type`). Must not be a meta type (x, g, L, K). */
  typeflag?: number;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Seconds since the epoch, or a TarTime. Default 0. */
  mtime?: TarTime | number;
  atime?: TarTime;
  ctime?: TarTime;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  /** Records written verbatim, in this order, in an 'x' header (see docs/formats/tar.md). */
  pax?: readonly PaxRecord[];
}

export interface TarReadOptions {
  /** Largest accepted 'x', 'g', 'L' or 'K' header body, and the largest total of such
   * bodies in front of one entry. Default 1 MiB. */
  maxHeaderBytes?: number;
  /** Most meta headers ('x', 'g', 'L', 'K') accepted in front of one entry. Default 32. */
  maxMetaHeaders?: number;
  /** Most entries accepted (a tar bomb guard). Default unlimited. */
  maxEntries?: number;
  /** Largest accepted entry size. Default Number.MAX_SAFE_INTEGER. */
  maxEntrySize?: number;
  /** Require the two zero blocks at the end (default true). When false, a clean end of input
   * at a header boundary ends the archive. */
  requireEndMarker?: boolean;
  /** How to treat names/link names/user names that are not valid UTF-8: 'error' (default)
   * throws InvalidArgument, 'replace' decodes with U+FFFD. */
  invalidUtf8?: 'error' | 'replace';
}

export interface TarWriteOptions {
  /** Bytes buffered in the output stream before writes wait for the reader (default 1 MiB). */
  highWaterMark?: number;
  /** Also add path/linkpath/uname/gname records for non-ASCII values, like Go's archive/tar
   * in PAX mode (default false: only when the USTAR field is too short). */
  paxForNonAscii?: boolean;
}
