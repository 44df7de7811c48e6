/**
 * VHDX on-disk constants, from the MS-VHDX specification (v20240423):
 * §2.2 header section layout, §2.2.1 file type identifier, §2.2.2 headers, §2.2.3 region table,
 * §2.3.1 log entry signatures, §2.4 blocks and chunk size, §2.5.1 BAT entry states,
 * §2.6 metadata table and known items, §2.6.2.6.3 VHDX parent locator.
 */

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/** §2.2: the header section is 1 MiB of five 64 KiB items. */
export const HEADER_SECTION_SIZE = MiB;
export const FILE_ID_OFFSET = 0;
export const HEADER1_OFFSET = 64 * KiB;
export const HEADER2_OFFSET = 128 * KiB;
export const REGION_TABLE1_OFFSET = 192 * KiB;
export const REGION_TABLE2_OFFSET = 256 * KiB;
/** §2.2.2: a header is a 4 KiB structure (CRC over all 4 KiB). */
export const HEADER_SIZE = 4 * KiB;
/** §2.2.3: a region table is 64 KiB (CRC over all 64 KiB). */
export const REGION_TABLE_SIZE = 64 * KiB;
export const REGION_TABLE_MAX_ENTRIES = 2047;

/** Signatures as the ASCII bytes stored at offset 0 of each structure. */
export const SIG_FILE = 'vhdxfile';
export const SIG_HEADER = 'head';
export const SIG_REGION = 'regi';
export const SIG_METADATA = 'metadata';
export const SIG_LOG_ENTRY = 'loge';
export const SIG_LOG_ZERO = 'zero';
export const SIG_LOG_DESC = 'desc';
export const SIG_LOG_DATA = 'data';

/** §2.3.1: log sectors are 4 KiB; an entry header is 64 bytes, descriptors 32 bytes. */
export const LOG_SECTOR_SIZE = 4 * KiB;
export const LOG_ENTRY_HEADER_SIZE = 64;
export const LOG_DESCRIPTOR_SIZE = 32;

/** §2.2.3.2 known regions. */
export const REGION_BAT = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const REGION_METADATA = '8b7ca206-4790-4b9a-b8fe-575f050f886e';

/** §2.6.2 known metadata items. */
export const META_FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const META_VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const META_VIRTUAL_DISK_ID = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const META_LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const META_PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const META_PARENT_LOCATOR = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';
/** §2.6.2.6.3: the VHDX parent locator type. */
export const PARENT_LOCATOR_VHDX = 'b04aefb7-d19e-4a81-b789-25b8e9445913';

/** §2.6.1: the metadata table is 64 KiB; header and entries are 32 bytes; items start at ≥ 64 KiB. */
export const METADATA_TABLE_SIZE = 64 * KiB;
export const METADATA_MAX_ENTRIES = 2047;
export const METADATA_ITEM_MAX_LENGTH = MiB;
/** Metadata table entry flag bits (§2.6.1.2). */
export const META_FLAG_IS_USER = 1;
export const META_FLAG_IS_VIRTUAL_DISK = 2;
export const META_FLAG_IS_REQUIRED = 4;
/** File parameters flag bits (§2.6.2.1). */
export const FP_LEAVE_BLOCK_ALLOCATED = 1;
export const FP_HAS_PARENT = 2;

/** §2.6.2.1: block size is a power of two in [1 MiB, 256 MiB]. */
export const BLOCK_SIZE_MIN = MiB;
export const BLOCK_SIZE_MAX = 256 * MiB;
/** Windows' scratch (sandbox.vhdx) block size, our default. */
export const DEFAULT_BLOCK_SIZE = 32 * MiB;
/** §2.6.2.2: virtual disk size is at most 64 TiB. */
export const MAX_VIRTUAL_DISK_SIZE = 64 * TiB;
/** §2.4: a sector bitmap block is 1 MiB and describes 2^23 sectors. */
export const SECTOR_BITMAP_BLOCK_SIZE = MiB;
export const SECTORS_PER_BITMAP_BLOCK = 2 ** 23;

/** §2.5.1.1 payload block states. */
export const PAYLOAD_BLOCK_NOT_PRESENT = 0;
export const PAYLOAD_BLOCK_UNDEFINED = 1;
export const PAYLOAD_BLOCK_ZERO = 2;
export const PAYLOAD_BLOCK_UNMAPPED = 3;
/** Draft v0.95 of the format numbered UNMAPPED 5 (value 5 is reserved in v1.0); read as UNMAPPED, like qemu. */
export const PAYLOAD_BLOCK_UNMAPPED_V095 = 5;
export const PAYLOAD_BLOCK_FULLY_PRESENT = 6;
export const PAYLOAD_BLOCK_PARTIALLY_PRESENT = 7;
/** §2.5.1.2 sector bitmap block states. */
export const SB_BLOCK_NOT_PRESENT = 0;
export const SB_BLOCK_PRESENT = 6;

export const PAYLOAD_STATE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOT_PRESENT',
  1: 'UNDEFINED',
  2: 'ZERO',
  3: 'UNMAPPED',
  5: 'UNMAPPED_V095',
  6: 'FULLY_PRESENT',
  7: 'PARTIALLY_PRESENT',
};

/** Layout of files we create (same shape as Windows and qemu-img): log, metadata, BAT, then blocks. */
export const LOG_OFFSET = MiB;
export const LOG_LENGTH = MiB;
export const METADATA_OFFSET = 2 * MiB;
export const METADATA_LENGTH = MiB;
export const BAT_OFFSET = 3 * MiB;

export const CREATOR = 'winsnap';
