/**
 * CimFS version-2 on-disk constants and record sizes (windows-layer-formats.md §3.1–3.2; the
 * field layout is that of hcsshim's unmerged `internal/cimfs/format/format.go`, commit
 * e86001a65, also in the ambarve/hcsshim fork).
 *
 * All integers are little-endian. A `RegionOffset` is a u64 whose high 16 bits are a region
 * index (parent region sets first, then the image's own regions) and whose low 48 bits are a
 * byte offset in that region file; 0 is the null offset.
 */

/** "cimfile0" */
export const CIM_MAGIC = Buffer.from('cimfile0', 'latin1');

export const VERSION_MAJOR = 2;
export const VERSION_MINOR = 0;

/** CommonHeader.Type */
export const FileType = { Image: 0, Region: 1, ObjectId: 2 } as const;

/**
 * RegionHeader.Type. format.go declares these without `iota` so all three evaluate to 0 in
 * Go; we write the intended values (0, 1, 2) and accept any value on read.
 */
export const RegionType = { Metadata: 0, Data: 1, SmallData: 2 } as const;

export const PAGE_SIZE = 4096;

/** CommonHeader: Magic[8], HeaderLength u32, Type u8, u8, u16, Version{Major u32, Minor u32}, u64. */
export const COMMON_HEADER_SIZE = 32;
/** RegionSet: GUID[16], Count u16, u16, u32. */
export const REGION_SET_SIZE = 24;
/** FilesystemHeader: Common, Regions, FilesystemOffset u64, u32, u16, ParentCount u16. */
export const FILESYSTEM_HEADER_SIZE = 72;
/** RegionHeader: Common, Index u16, Type u8, u8, u32. */
export const REGION_HEADER_SIZE = 40;
/** ObjectIdHeader: Common, Index u16, Type u8, u8, u32, TableOffset u32, Count u32. */
export const OBJECTID_HEADER_SIZE = 48;
/** ObjectIdEntry: ObjectID{Length u64, Digest[24]}, Offset u64. */
export const OBJECTID_ENTRY_SIZE = 40;
export const OBJECTID_DIGEST_SIZE = 24;
/** Filesystem: UpcaseTableOffset, FileTableDirectoryOffset, FileTableDirectoryLength u32, RootDirectory u32. */
export const FILESYSTEM_SIZE = 24;
/** FileTableDirectoryEntry: Offset, Count u16, EntrySize u16, u32. */
export const FILE_TABLE_DIR_ENTRY_SIZE = 16;
export const FILES_PER_TABLE = 1024;
/** File record in v2 (v1 lacked the last 8 bytes: ParentFileId, BaseRegionIndex, Reserved). */
export const FILE_SIZE = 96;
export const FILE_SIZE_V1 = 88;
/** Stream: DataOffset u64, LengthAndType u64 (length bits 0–47, type 48–55, sparse bit 56). */
export const STREAM_SIZE = 16;
/** PeImage: DataOffset, DataLength u64, ImageLength u32, MappingCount u16, Flags u16. */
export const PE_IMAGE_SIZE = 24;
export const PE_MAPPING_SIZE = 8;
/** LinkTable header: Length u32, LinkCount u32. */
export const LINK_TABLE_HEADER_SIZE = 8;
export const FILE_ID_SIZE = 4;
export const NAME_OFFSET_SIZE = 4;

export const UPCASE_TABLE_LENGTH = 0x10000;

export const StreamType = { Data: 0, LinkTable: 1, PeImage: 2 } as const;
export const STREAM_SPARSE_BIT = 1n << 56n;
export const MAX_STREAM_LENGTH = (1n << 48n) - 1n;
export const MAX_BYTE_OFFSET = (1n << 48n) - 1n;

/** File.Flags */
export const FileFlag = { ReadOnly: 0x1, Hidden: 0x2, System: 0x4, Archive: 0x8, Sparse: 0x10 } as const;

export const MAX_COMPONENT_LENGTH = 0xff;
export const MAX_PATH_LENGTH = 0x7fff;
export const MAX_EA_NAME_LENGTH = 0xfe;
export const MAX_FULL_EA_LENGTH = 0xffff;

/** Region file / object-ID file name prefixes: `region_<guid>_<i>`, `objectid_<guid>_<i>`. */
export const REGION_FILE_PREFIX = 'region';
export const OBJECTID_FILE_PREFIX = 'objectid';
