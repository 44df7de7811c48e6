/** Windows layer tar codec (go-winio backuptar rules) and Win32 backup-stream structures. */
export * from './constants.js';
export { FILETIME_UNIX_EPOCH, filetimeToTarTime, tarTimeToFiletime } from './filetime.js';
export { encodeEaBuffer, decodeEaBuffer, checkEaName, type WindowsEa } from './ea.js';
export {
  encodeReparsePoint,
  decodeReparsePoint,
  decodeReparseHeader,
  ntTarget,
  win32Target,
  type ReparsePoint,
  type DecodedReparsePoint,
} from './reparse.js';
export {
  BACKUP_HEADER_SIZE,
  encodeBackupStreamHeader,
  decodeBackupStreamHeader,
  decodeBackupStream,
  readBackupStream,
  encodeBackupStream,
  windowsEntryBackupStream,
  type BackupStreamHeader,
  type BackupStreamRecord,
  type BackupStreamPart,
  type BackupStreamInput,
  type AlternateStreamInput,
  type StreamData,
} from './backupstream.js';
export {
  windowsEntryFromTar,
  tarHeaderFromWindowsEntry,
  defaultWindowsMode,
  parseAdsName,
  type WindowsEntry,
  type WindowsEntryKind,
  type WindowsDecodeOptions,
} from './entry.js';
export { securityDescriptorFromSddl } from './sddl.js';
