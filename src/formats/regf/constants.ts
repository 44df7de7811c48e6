/**
 * Windows registry hive (regf) constants.
 *
 * Facts from Maxim Suhanov's "Windows registry file format specification" (msuhanov/regf,
 * sections Base block, Hive bin, Cell, Key node, Key value, Big data, Layered keys) and
 * libyal/libregf "Windows NT Registry File (REGF) format" (format versions, data types).
 */

/** Size of the base block (file header); hive bins data starts right after it. */
export const BASE_BLOCK_SIZE = 4096;
/** Hive bins are multiples of this size. */
export const HBIN_ALIGN = 4096;
/** Size of a hive bin header ("hbin"). */
export const HBIN_HEADER_SIZE = 32;
/** Cells are 8-byte aligned (the size field includes itself). */
export const CELL_ALIGN = 8;
/** A relative offset that points nowhere. */
export const NO_OFFSET = 0xffffffff;
/** Largest data segment of a big data ('db') record; larger values use 'db' when minor version > 3. */
export const BIG_DATA_SEGMENT_SIZE = 16344;
/** Value data of this many bytes or fewer is stored in the vk's data offset field. */
export const INLINE_DATA_MAX = 4;
/** Most significant bit of a vk data size: data is inline. */
export const DATA_INLINE_FLAG = 0x80000000;

/** Registry value types (winnt.h REG_*). Other numbers are allowed and kept as raw bytes. */
export const RegType = {
  NONE: 0,
  SZ: 1,
  EXPAND_SZ: 2,
  BINARY: 3,
  DWORD: 4,
  DWORD_BIG_ENDIAN: 5,
  LINK: 6,
  MULTI_SZ: 7,
  RESOURCE_LIST: 8,
  FULL_RESOURCE_DESCRIPTOR: 9,
  RESOURCE_REQUIREMENTS_LIST: 10,
  QWORD: 11,
} as const;

/** Key node (nk) flags. */
export const KeyFlag = {
  VOLATILE: 0x0001,
  HIVE_EXIT: 0x0002,
  HIVE_ENTRY: 0x0004,
  NO_DELETE: 0x0008,
  SYM_LINK: 0x0010,
  COMP_NAME: 0x0020,
  PREDEF_HANDLE: 0x0040,
  VIRTUAL_SOURCE: 0x0080,
  VIRTUAL_TARGET: 0x0100,
  VIRTUAL_STORE: 0x0200,
} as const;

/** Key value (vk) flags. */
export const ValueFlag = {
  COMP_NAME: 0x0001,
  /** Tombstone value (layered keys, Windows 10 1607+): type NONE, size 0, data offset 0xFFFFFFFF. */
  TOMBSTONE: 0x0002,
} as const;

/**
 * Layer semantics of a key node in a differencing hive (2 low bits of byte 13 of the nk).
 * 0: merge with the same key in lower-numbered ("parent") layers; 1: tombstone (the key is
 * deleted); 2: supersede local (the key's own values/class replace the parent's, subkeys
 * still merge); 3: supersede tree (the whole subtree replaces the parent's).
 */
export const LayerSemantics = {
  NONE: 0,
  TOMBSTONE: 1,
  SUPERSEDE_LOCAL: 2,
  SUPERSEDE_TREE: 3,
} as const;
export type LayerSemanticsValue = (typeof LayerSemantics)[keyof typeof LayerSemantics];

/** Bit of the layered-key byte: the layered key takes its class name from the parent layer. */
export const INHERIT_CLASS_BIT = 0x80;
/** Base block flag: the hive supports layered keys (Windows 10 1607+). */
export const HIVE_FLAG_LAYERED_KEYS = 0x2;

/** Signatures of cell records. */
export const SIG = {
  regf: 0x66676572, // 'regf' read as little-endian u32
  hbin: 0x6e696268, // 'hbin'
  nk: 0x6b6e, // 'nk' as u16
  vk: 0x6b76,
  sk: 0x6b73,
  lf: 0x666c,
  lh: 0x686c,
  li: 0x696c,
  ri: 0x6972,
  db: 0x6264,
} as const;
