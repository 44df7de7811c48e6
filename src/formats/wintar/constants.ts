/**
 * Constants of the Windows layer tar (go-winio `backuptar`) and the Win32 backup stream.
 * Facts: shared/reference/windows-layer-formats.md §1.1 (PAX keys), §1.5 (stream IDs,
 * reparse tags); FILE_ATTRIBUTE_* values from the Win32 "File Attribute Constants" page.
 */

/** PAX keys written/read by go-winio backuptar. */
export const PAX_FILEATTR = 'MSWINDOWS.fileattr';
export const PAX_RAWSD = 'MSWINDOWS.rawsd';
export const PAX_SD = 'MSWINDOWS.sd';
export const PAX_MOUNTPOINT = 'MSWINDOWS.mountpoint';
export const PAX_XATTR_PREFIX = 'MSWINDOWS.xattr.';
export const PAX_CREATIONTIME = 'LIBARCHIVE.creationtime';

export const FILE_ATTRIBUTE = {
  READONLY: 0x1,
  HIDDEN: 0x2,
  SYSTEM: 0x4,
  DIRECTORY: 0x10,
  ARCHIVE: 0x20,
  DEVICE: 0x40,
  NORMAL: 0x80,
  TEMPORARY: 0x100,
  SPARSE_FILE: 0x200,
  REPARSE_POINT: 0x400,
  COMPRESSED: 0x800,
  OFFLINE: 0x1000,
  NOT_CONTENT_INDEXED: 0x2000,
  ENCRYPTED: 0x4000,
} as const;

/** WIN32_STREAM_ID.dwStreamId values (BACKUP_*). */
export const BackupStreamId = {
  DATA: 1,
  EA_DATA: 2,
  SECURITY_DATA: 3,
  ALTERNATE_DATA: 4,
  LINK: 5,
  PROPERTY_DATA: 6,
  OBJECT_ID: 7,
  REPARSE_DATA: 8,
  SPARSE_BLOCK: 9,
  TXFS_DATA: 10,
} as const;

/** WIN32_STREAM_ID.dwStreamAttributes bits. */
export const STREAM_MODIFIED_WHEN_READ = 0x1;
export const STREAM_CONTAINS_SECURITY = 0x2;
export const STREAM_CONTAINS_PROPERTIES = 0x4;
export const STREAM_SPARSE_ATTRIBUTE = 0x8;

export const IO_REPARSE_TAG_MOUNT_POINT = 0xa0000003;
export const IO_REPARSE_TAG_SYMLINK = 0xa000000c;
/** SYMLINK_FLAG_RELATIVE in the symlink reparse buffer's Flags. */
export const SYMLINK_FLAG_RELATIVE = 0x1;

/** POSIX file type bits that backuptar puts in the tar mode (no permission bits). */
export const MODE_DIR = 0o040000;
export const MODE_REG = 0o100000;
export const MODE_SYMLINK = 0o120000;
