/** CimFS v2 images: writer (cimfs.dll-shaped API, forked images) and bounds-checked reader. */
export * from './constants.js';
export { CimWriter, splitStreamPath, type CimCreateOptions } from './writer.js';
export { CimReader, isCimImage, cimImageFiles, type CimWalkEntry, type ParsedLinkTable } from './reader.js';
export type { CimFileMetadata, CimStat, CimDirEntry } from './types.js';
export { deriveCimGuid } from './guid.js';
export { readGuid, writeGuid } from '../guid.js';
export { regionOffset, offsetRegion, offsetByte, type FileRecord, type StreamRecord, type RegionSet } from './structs.js';
