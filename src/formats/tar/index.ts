/** Tar codec: streaming reader and deterministic writer (USTAR, PAX, GNU long names, base-256). */
export type { PaxRecord, TarTime, TarType, TarFormat, TarHeader, TarHeaderInput, TarReadOptions, TarWriteOptions } from './types.js';
export { TarReader, readTar, type TarEntry, type TarEndInfo } from './reader.js';
export {
  TarWriter,
  writeTar,
  encodeTarHeader,
  encodeGlobalHeader,
  requiredPaxRecords,
  AUTO_PAX_KEYS,
  type TarBody,
  type TarInputEntry,
} from './writer.js';
export { parsePaxRecords, encodePaxRecords, lastPaxValue, paxRecord } from './pax.js';
export { tarTime, tarTimeEquals, parsePaxTime, formatPaxTime } from './time.js';
export type { ByteSourceInput, ByteChunk } from './source.js';
