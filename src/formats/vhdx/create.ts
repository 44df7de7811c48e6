/**
 * Creating VHDX files (MS-VHDX §2): fixed, dynamic and differencing disks, laid out like
 * Windows and qemu-img do — header section, 1 MiB log (empty, LogGuid zero), 1 MiB metadata
 * region, BAT region, then payload blocks. Files are written under a temporary name and renamed.
 *
 * Deterministic identifiers (default): with P = type, virtual size, block size, logical and
 * physical sector size and the optional idSeed, VirtualDiskId = derive("virtual-disk-id", P),
 * DataWriteGuid = derive("data-write", P), FileWriteGuid = derive("file-write", P); for a
 * differencing disk P is the parent's DataWriteGuid and VirtualDiskId, the block size and
 * idSeed, and VirtualDiskId is the parent's (it is IsVirtualDisk metadata, §2.6.1.2).
 * derive() is defined in guid.ts.
 */
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, relative, resolve as resolvePath, sep, win32 } from 'node:path';
import { alreadyExists, invalidArgument } from '../../services/errdefs.js';
import {
  BAT_OFFSET,
  CREATOR,
  DEFAULT_BLOCK_SIZE,
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  LOG_LENGTH,
  LOG_OFFSET,
  META_FILE_PARAMETERS,
  META_LOGICAL_SECTOR_SIZE,
  META_PARENT_LOCATOR,
  META_PHYSICAL_SECTOR_SIZE,
  META_VIRTUAL_DISK_ID,
  META_VIRTUAL_DISK_SIZE,
  METADATA_LENGTH,
  METADATA_OFFSET,
  PARENT_LOCATOR_VHDX,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  REGION_BAT,
  REGION_METADATA,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
} from './constants.js';
import { VhdxDisk, layoutMetadata } from './disk.js';
import { RandomAccessFile } from './fileio.js';
import { batRegionLength, geometry, makeBatEntry, payloadEntryIndex, validateParameters, type Geometry } from './geometry.js';
import { guidBytes, makeGuid, ZERO_GUID, type Guid } from './guid.js';
import {
  encodeFileIdentifier,
  encodeFileParameters,
  encodeHeader,
  encodeParentLocator,
  encodeRegionTable,
  type MetadataEntry,
  type ParentLocator,
} from './structs.js';
import type { CreateOptions, DifferencingOptions, DiskType, VhdxInfo } from './types.js';

export interface DiskLayout {
  type: DiskType;
  virtualSize: number;
  blockSize: number;
  logicalSectorSize: number;
  physicalSectorSize: number;
  virtualDiskId: Guid;
  dataWriteGuid: Guid;
  fileWriteGuid: Guid;
  parentLocator?: ParentLocator;
}

export interface PlannedLayout {
  geom: Geometry;
  batOffset: number;
  batLength: number;
  /** First payload byte offset (blocks are allocated from here). */
  dataOffset: number;
}

export function planLayout(d: Pick<DiskLayout, 'virtualSize' | 'blockSize' | 'logicalSectorSize'>): PlannedLayout {
  const geom = geometry(d.virtualSize, d.blockSize, d.logicalSectorSize);
  const batLength = batRegionLength(geom);
  return { geom, batOffset: BAT_OFFSET, batLength, dataOffset: BAT_OFFSET + batLength };
}

/** Writes the header section, empty log, metadata region and BAT of a new disk into `f`. */
export async function writeStructures(f: RandomAccessFile, d: DiskLayout, plan: PlannedLayout, bat: Buffer): Promise<void> {
  const items: { entry: MetadataEntry; data: Buffer }[] = [];
  const add = (itemId: string, isVirtualDisk: boolean, data: Buffer) =>
    items.push({ entry: { itemId, offset: 0, length: 0, isUser: false, isVirtualDisk, isRequired: true }, data });
  add(META_FILE_PARAMETERS, false, encodeFileParameters({ blockSize: d.blockSize, leaveBlockAllocated: d.type === 'fixed', hasParent: d.type === 'differencing' }));
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(d.virtualSize));
  add(META_VIRTUAL_DISK_SIZE, true, size);
  add(META_VIRTUAL_DISK_ID, true, guidBytes(d.virtualDiskId));
  const lss = Buffer.alloc(4);
  lss.writeUInt32LE(d.logicalSectorSize);
  add(META_LOGICAL_SECTOR_SIZE, true, lss);
  const pss = Buffer.alloc(4);
  pss.writeUInt32LE(d.physicalSectorSize);
  add(META_PHYSICAL_SECTOR_SIZE, true, pss);
  if (d.parentLocator) add(META_PARENT_LOCATOR, false, encodeParentLocator(d.parentLocator));
  const { region } = layoutMetadata(items);
  if (region.length > METADATA_LENGTH) throw invalidArgument(`metadata (${region.length} bytes) does not fit its 1 MiB region`);

  await f.write(0, encodeFileIdentifier(CREATOR));
  const rt = encodeRegionTable([
    { guid: REGION_BAT, fileOffset: plan.batOffset, length: plan.batLength, required: true },
    { guid: REGION_METADATA, fileOffset: METADATA_OFFSET, length: METADATA_LENGTH, required: true },
  ]);
  await f.write(REGION_TABLE1_OFFSET, rt);
  await f.write(REGION_TABLE2_OFFSET, rt);
  await f.write(METADATA_OFFSET, region);
  await f.write(plan.batOffset, bat);
  if (f.size < plan.dataOffset) await f.truncate(plan.dataOffset);
  // Headers last: sequence numbers 1 and 2, header 2 current, identical otherwise.
  const h = {
    fileWriteGuid: d.fileWriteGuid,
    dataWriteGuid: d.dataWriteGuid,
    logGuid: ZERO_GUID,
    logVersion: 0,
    version: 1,
    logLength: LOG_LENGTH,
    logOffset: LOG_OFFSET,
  };
  await f.write(HEADER1_OFFSET, encodeHeader({ ...h, sequenceNumber: 1n }));
  await f.write(HEADER2_OFFSET, encodeHeader({ ...h, sequenceNumber: 2n }));
}

/** A temporary sibling path; `finish` renames it over `path`, `abort` removes it. */
export async function beginAtomicCreate(path: string, overwrite: boolean): Promise<{ tmp: string; finish: () => Promise<void>; abort: () => Promise<void> }> {
  if (!overwrite && (await stat(path).then(() => true, () => false))) {
    throw alreadyExists(`${path} already exists`, { path });
  }
  const tmp = `${path}.tmp-${process.pid}-${Date.now().toString(36)}`;
  return {
    tmp,
    finish: async () => {
      if (!overwrite && (await stat(path).then(() => true, () => false))) {
        await rm(tmp, { force: true });
        throw alreadyExists(`${path} already exists`, { path });
      }
      await rename(tmp, path);
    },
    abort: () => rm(tmp, { force: true }),
  };
}

async function createDisk(path: string, d: DiskLayout, overwrite: boolean): Promise<VhdxInfo> {
  validateParameters(d);
  const plan = planLayout(d);
  const bat = Buffer.alloc(plan.geom.batEntries * 8);
  let end = plan.dataOffset;
  if (d.type === 'fixed') {
    for (let b = 0; b < plan.geom.payloadBlocks; b++) {
      bat.writeBigUInt64LE(makeBatEntry(PAYLOAD_BLOCK_FULLY_PRESENT, plan.dataOffset + b * d.blockSize), payloadEntryIndex(plan.geom, b) * 8);
    }
    end = plan.dataOffset + plan.geom.payloadBlocks * d.blockSize;
  }
  const at = await beginAtomicCreate(path, overwrite);
  try {
    const f = await RandomAccessFile.create(at.tmp, true);
    try {
      await writeStructures(f, d, plan, bat);
      if (f.size < end) await f.truncate(end);
      await f.sync();
    } finally {
      await f.close();
    }
    await at.finish();
  } catch (err) {
    await at.abort();
    throw err;
  }
  const disk = await VhdxDisk.open(path);
  try {
    return disk.info;
  } finally {
    await disk.close();
  }
}

function baseParams(opts: CreateOptions) {
  return {
    virtualSize: opts.size,
    blockSize: opts.blockSize ?? DEFAULT_BLOCK_SIZE,
    logicalSectorSize: opts.logicalSectorSize ?? 512,
    physicalSectorSize: opts.physicalSectorSize ?? 4096,
  };
}

function idsFor(type: DiskType, p: ReturnType<typeof baseParams>, opts: CreateOptions) {
  const mode = opts.ids ?? 'deterministic';
  const parts = [type, p.virtualSize, p.blockSize, p.logicalSectorSize, p.physicalSectorSize, opts.idSeed ?? ''];
  return {
    virtualDiskId: makeGuid(mode, 'virtual-disk-id', ...parts),
    dataWriteGuid: makeGuid(mode, 'data-write', ...parts),
    fileWriteGuid: makeGuid(mode, 'file-write', ...parts),
  };
}

/** Creates a dynamic (sparse) VHDX. */
export async function createDynamic(path: string, opts: CreateOptions): Promise<VhdxInfo> {
  const p = baseParams(opts);
  validateParameters(p);
  return createDisk(path, { type: 'dynamic', ...p, ...idsFor('dynamic', p, opts) }, opts.overwrite ?? false);
}

/** Creates a fixed VHDX: every block FULLY_PRESENT, LeaveBlockAllocated set (the file is sparse on disk). */
export async function createFixed(path: string, opts: CreateOptions): Promise<VhdxInfo> {
  const p = baseParams(opts);
  validateParameters(p);
  return createDisk(path, { type: 'fixed', ...p, ...idsFor('fixed', p, opts) }, opts.overwrite ?? false);
}

/** Windows relative path from the child's directory to the parent ("..\\x\\parent.vhdx", ".\\parent.vhdx"). */
export function relativeParentPath(childPath: string, parentPath: string): string {
  const rel = relative(dirname(resolvePath(childPath)), resolvePath(parentPath));
  const win = rel.split(sep).join('\\');
  return win.startsWith('..') ? win : `.\\${win}`;
}

/** Parent locator entries (§2.6.2.6.3) for a child at childPath bound to a parent. */
export function parentLocatorEntries(childPath: string, parentPath: string, parentDataWriteGuid: Guid, parentWin32Path?: string): [string, string][] {
  const entries: [string, string][] = [
    ['parent_linkage', `{${parentDataWriteGuid.toLowerCase()}}`],
    ['relative_path', relativeParentPath(childPath, parentPath)],
  ];
  let abs = parentWin32Path;
  if (abs === undefined && process.platform === 'win32') abs = `\\\\?\\${win32.resolve(parentPath)}`;
  if (abs !== undefined) {
    if (!abs.startsWith('\\\\?\\')) throw invalidArgument(`absolute_win32_path ${JSON.stringify(abs)} must begin with \\\\?\\`);
    entries.push(['absolute_win32_path', abs]);
  }
  return entries;
}

/** Creates a differencing VHDX whose parent is parentPath (any VHDX type). */
export async function createDifferencing(path: string, parentPath: string, opts: DifferencingOptions = {}): Promise<VhdxInfo> {
  const parent = await VhdxDisk.open(parentPath);
  let d: DiskLayout;
  try {
    const pi = parent.info;
    const mode = opts.ids ?? 'deterministic';
    const blockSize = opts.blockSize ?? pi.blockSize;
    const parts = [pi.dataWriteGuid, pi.virtualDiskId, blockSize, opts.idSeed ?? ''];
    d = {
      type: 'differencing',
      virtualSize: pi.virtualSize,
      blockSize,
      logicalSectorSize: pi.logicalSectorSize,
      physicalSectorSize: pi.physicalSectorSize,
      virtualDiskId: pi.virtualDiskId,
      dataWriteGuid: makeGuid(mode, 'data-write', 'differencing', ...parts),
      fileWriteGuid: makeGuid(mode, 'file-write', 'differencing', ...parts),
      parentLocator: {
        locatorType: PARENT_LOCATOR_VHDX,
        entries: parentLocatorEntries(path, parentPath, pi.dataWriteGuid, opts.parentWin32Path),
      },
    };
  } finally {
    await parent.close();
  }
  if (basename(path) === '') throw invalidArgument(`bad path ${JSON.stringify(path)}`);
  return createDisk(path, d, opts.overwrite ?? false);
}
