/** Windows registry hive (regf) format: reader, writer, delta-hive merge, OS build lookup. */
export * from './constants.js';
export { parseBaseBlock, buildBaseBlock, baseBlockChecksum, type BaseBlock, type ParseBaseBlockOptions } from './baseblock.js';
export { parseHive, Hive, RegKey, RegValue, MAX_KEY_DEPTH, type ParseHiveOptions } from './reader.js';
export { writeHive, MAX_LEAF_ELEMENTS, type WriteHiveOptions } from './writer.js';
export { mergeHives, mergeHiveTrees, type MergeHivesOptions } from './merge.js';
export { readOsBuildNumber, CURRENT_VERSION_KEY, CURRENT_BUILD_VALUE } from './osbuild.js';
export * from './tree.js';
export { compareNames, nameHash, namesEqual, upcaseName } from './names.js';
