/**
 * An open VHDX file (MS-VHDX §2): validation on open, log replay (§2.3.3), reads through a
 * chain of differencing parents (§2.5.1.1 block states, §2.4 sector bitmaps), writes that
 * allocate blocks, growing the virtual size, and header updates in the order of §2.2.2.1.
 *
 * We write no log entries. Crash safety comes from ordering instead: headers are updated
 * (non-current copy, flush, then the other) before anything else changes; new payload data is
 * written before the BAT entry that points to it; a BAT or metadata region that must move is
 * written in full at the end of the file and flushed before the region tables (copy 1, flush,
 * copy 2, flush) switch to it, and the old copy is left untouched.
 */
import { createHash, type Hash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve as resolvePath, win32 } from 'node:path';
import { crc32c } from '../checksum.js';
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  notImplemented,
  WinsnapError,
} from '../../services/errdefs.js';
import {
  HEADER1_OFFSET,
  HEADER2_OFFSET,
  HEADER_SECTION_SIZE,
  META_FILE_PARAMETERS,
  META_LOGICAL_SECTOR_SIZE,
  META_PARENT_LOCATOR,
  META_PHYSICAL_SECTOR_SIZE,
  META_VIRTUAL_DISK_ID,
  META_VIRTUAL_DISK_SIZE,
  METADATA_ITEM_MAX_LENGTH,
  METADATA_TABLE_SIZE,
  MiB,
  PARENT_LOCATOR_VHDX,
  PAYLOAD_BLOCK_FULLY_PRESENT,
  PAYLOAD_BLOCK_NOT_PRESENT,
  PAYLOAD_BLOCK_PARTIALLY_PRESENT,
  PAYLOAD_BLOCK_UNDEFINED,
  PAYLOAD_BLOCK_UNMAPPED,
  PAYLOAD_BLOCK_UNMAPPED_V095,
  PAYLOAD_BLOCK_ZERO,
  PAYLOAD_STATE_NAMES,
  REGION_BAT,
  REGION_METADATA,
  REGION_TABLE1_OFFSET,
  REGION_TABLE2_OFFSET,
  SB_BLOCK_NOT_PRESENT,
  SB_BLOCK_PRESENT,
  SECTOR_BITMAP_BLOCK_SIZE,
  SECTORS_PER_BITMAP_BLOCK,
} from './constants.js';
import { RandomAccessFile } from './fileio.js';
import {
  alignUp,
  batOffset,
  batRegionLength,
  batState,
  bitmapEntryIndex,
  entriesRequired,
  geometry,
  makeBatEntry,
  payloadEntryIndex,
  validateParameters,
  type Geometry,
} from './geometry.js';
import { makeGuid, parseGuid, readGuid, ZERO_GUID, type Guid, type IdMode } from './guid.js';
import { planReplay } from './log.js';
import {
  encodeHeader,
  encodeMetadataTable,
  encodeParentLocator,
  encodeRegionTable,
  parseFileIdentifier,
  parseFileParameters,
  parseHeader,
  parseMetadataTable,
  parseParentLocator,
  parseRegionTable,
  selectCurrentHeader,
  type FileParameters,
  type MetadataEntry,
  type ParentLocator,
  type RegionEntry,
  type VhdxHeader,
} from './structs.js';
import type { DiskType, OpenOptions, VhdxInfo } from './types.js';

const MAX_CHAIN_DEPTH = 64;
const KNOWN_ITEMS = new Set([
  META_FILE_PARAMETERS,
  META_VIRTUAL_DISK_SIZE,
  META_VIRTUAL_DISK_ID,
  META_LOGICAL_SECTOR_SIZE,
  META_PHYSICAL_SECTOR_SIZE,
  META_PARENT_LOCATOR,
]);

interface Span {
  start: number;
  end: number;
  what: string;
}

export class VhdxDisk {
  private header!: VhdxHeader;
  private headerIndex: 0 | 1 = 0;
  private creator = '';
  private regions: RegionEntry[] = [];
  private batRegion!: RegionEntry;
  private metaRegion!: RegionEntry;
  private metaEntries: MetadataEntry[] = [];
  private params!: FileParameters;
  private virtualSize = 0;
  private logicalSectorSize = 512;
  private physicalSectorSize = 4096;
  private virtualDiskId: Guid = ZERO_GUID;
  private locator?: ParentLocator;
  private geom!: Geometry;
  private bat!: Buffer;
  private nextFree = 0;
  private logReplayed = false;
  private parentDisk?: VhdxDisk;
  private parentFile?: string;
  private ids: IdMode;
  private idSeed: string;
  private sessionFileGuidSet = false;
  private sessionDataGuidSet = false;
  private originalDataWriteGuid: Guid = ZERO_GUID;
  private sessionDigest?: Hash;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly file: RandomAccessFile,
    opts: OpenOptions,
  ) {
    this.ids = opts.ids ?? 'deterministic';
    this.idSeed = opts.idSeed ?? '';
  }

  /** Opens and validates a VHDX file (and its parents, read-only). */
  static async open(path: string, opts: OpenOptions = {}, depth = 0): Promise<VhdxDisk> {
    if (depth > MAX_CHAIN_DEPTH) throw invalidArgument(`differencing chain deeper than ${MAX_CHAIN_DEPTH} at ${path} (a parent loop?)`);
    let file: RandomAccessFile;
    try {
      file = await RandomAccessFile.open(path, opts.writable ?? false);
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw notFound(`VHDX file ${path} does not exist`, { path });
      throw err;
    }
    const disk = new VhdxDisk(path, file, opts);
    try {
      await disk.load(opts, depth);
      return disk;
    } catch (err) {
      await file.close().catch(() => undefined);
      await disk.parentDisk?.close().catch(() => undefined);
      if (err instanceof WinsnapError && !err.detail.includes(path)) throw err.wrap(path, { path });
      throw err;
    }
  }

  // ------------------------------------------------------------------ loading and validation

  private corrupt(msg: string, offset?: number): WinsnapError {
    return invalidArgument(`corrupt VHDX: ${msg}`, offset === undefined ? {} : { offset });
  }

  private async load(opts: OpenOptions, depth: number): Promise<void> {
    const f = this.file;
    if (f.size < HEADER_SECTION_SIZE) {
      parseFileIdentifier(await f.read(0, 8));
      throw this.corrupt(`file is ${f.size} bytes, shorter than the 1 MiB header section`, 0);
    }
    const section = await f.read(0, HEADER_SECTION_SIZE);
    this.creator = parseFileIdentifier(section).creator;
    const h1 = parseHeader(section.subarray(HEADER1_OFFSET), HEADER1_OFFSET);
    const h2 = parseHeader(section.subarray(HEADER2_OFFSET), HEADER2_OFFSET);
    const cur = selectCurrentHeader(h1, h2);
    this.header = cur.header;
    this.headerIndex = cur.index;
    this.originalDataWriteGuid = this.header.dataWriteGuid;
    const { logOffset, logLength } = this.header;
    if (logLength > 0 && (logOffset % MiB !== 0 || logOffset < MiB || logLength % MiB !== 0)) {
      throw this.corrupt(`log region at offset ${logOffset} length ${logLength} is not 1 MiB aligned after the header section`, HEADER1_OFFSET);
    }
    if (this.header.logGuid !== ZERO_GUID) await this.replayLog(opts);

    // Region tables: copy 1, or copy 2 when copy 1 is damaged (they are written identically).
    const sec = this.logReplayed ? await f.read(0, HEADER_SECTION_SIZE) : section;
    const rt1 = parseRegionTable(sec.subarray(REGION_TABLE1_OFFSET), REGION_TABLE1_OFFSET);
    const rt = rt1.entries ? rt1 : parseRegionTable(sec.subarray(REGION_TABLE2_OFFSET), REGION_TABLE2_OFFSET);
    if (!rt.entries) throw this.corrupt(`no valid region table (${rt1.problem}; ${rt.problem})`, REGION_TABLE1_OFFSET);
    this.regions = rt.entries;
    this.validateRegions();

    await this.loadMetadata();
    this.geom = geometry(this.virtualSize, this.params.blockSize, this.logicalSectorSize);
    await this.loadBat();
    this.validateLayout();

    if (this.params.hasParent && !opts.noParent) await this.openParent(opts, depth);
  }

  private async replayLog(opts: OpenOptions): Promise<void> {
    const h = this.header;
    const where = `log at offset ${h.logOffset} (LogGuid ${h.logGuid})`;
    if (opts.log === 'refuse') {
      throw failedPrecondition(`${this.path}: the ${where} is not empty and must be replayed before use`, { offset: h.logOffset });
    }
    if (h.logVersion !== 0) throw notImplemented(`${this.path}: ${where} has LogVersion ${h.logVersion}; only version 0 can be replayed`);
    if (h.logLength === 0) throw this.corrupt(`LogGuid ${h.logGuid} is set but LogLength is 0`, HEADER1_OFFSET);
    if (h.logLength > 256 * MiB) throw notImplemented(`${this.path}: ${where} is ${h.logLength} bytes; logs over 256 MiB are not replayed`);
    const log = await this.file.read(h.logOffset, h.logLength);
    const plan = planReplay(log, h.logGuid, h.logOffset);
    if (this.file.size < plan.flushedFileOffset) {
      throw this.corrupt(`file is ${this.file.size} bytes but the log's FlushedFileOffset is ${plan.flushedFileOffset}: the file was truncated`, h.logOffset);
    }
    this.logReplayed = true;
    if (!this.file.writable) {
      this.file.overlay = plan.ops;
      this.file.size = Math.max(this.file.size, plan.lastFileOffset);
      return;
    }
    // §2.2.2: FileWriteGuid changes before any modification, including log playback.
    await this.touchHeaders(false);
    for (const op of plan.ops) {
      if (op.kind === 'data') await this.file.write(op.fileOffset, op.data);
      else {
        const z = Buffer.alloc(Math.min(op.length, 4 * MiB));
        for (let o = 0; o < op.length; o += z.length) await this.file.write(op.fileOffset + o, z.subarray(0, Math.min(z.length, op.length - o)));
      }
    }
    if (this.file.size < plan.lastFileOffset) await this.file.truncate(plan.lastFileOffset);
    await this.file.sync();
    await this.updateHeaders({ logGuid: ZERO_GUID });
  }

  private validateRegions(): void {
    let bat: RegionEntry | undefined;
    let meta: RegionEntry | undefined;
    for (const r of this.regions) {
      if (r.fileOffset % MiB !== 0 || r.fileOffset < MiB || r.length % MiB !== 0 || r.length === 0) {
        throw this.corrupt(`region ${r.guid} at offset ${r.fileOffset} length ${r.length} is not 1 MiB aligned after the header section`, REGION_TABLE1_OFFSET);
      }
      if (r.guid === REGION_BAT) {
        if (bat) throw this.corrupt(`region table lists the BAT region twice`, REGION_TABLE1_OFFSET);
        bat = r;
      } else if (r.guid === REGION_METADATA) {
        if (meta) throw this.corrupt(`region table lists the metadata region twice`, REGION_TABLE1_OFFSET);
        meta = r;
      } else if (r.required) {
        throw notImplemented(`${this.path}: required region ${r.guid} at offset ${r.fileOffset} is not understood`);
      }
    }
    const spans: Span[] = [{ start: 0, end: HEADER_SECTION_SIZE, what: 'header section' }];
    if (this.header.logLength > 0) spans.push({ start: this.header.logOffset, end: this.header.logOffset + this.header.logLength, what: 'log' });
    for (const r of this.regions) {
      const name = r.guid === REGION_BAT ? 'BAT region' : r.guid === REGION_METADATA ? 'metadata region' : `region ${r.guid}`;
      spans.push({ start: r.fileOffset, end: r.fileOffset + r.length, what: `${name} (offset ${r.fileOffset}, length ${r.length})` });
    }
    this.checkOverlaps(spans, 0);
    if (!bat) throw this.corrupt(`region table has no BAT region`, REGION_TABLE1_OFFSET);
    if (!meta) throw this.corrupt(`region table has no metadata region`, REGION_TABLE1_OFFSET);
    this.batRegion = bat;
    this.metaRegion = meta;
  }

  private async loadMetadata(): Promise<void> {
    const m = this.metaRegion;
    const table = await this.file.read(m.fileOffset, METADATA_TABLE_SIZE);
    this.metaEntries = parseMetadataTable(table, m.fileOffset);
    const seen = new Set<string>();
    const spans: Span[] = [];
    for (const e of this.metaEntries) {
      const key = `${e.itemId}/${e.isUser}`;
      if (seen.has(key)) throw this.corrupt(`metadata item ${e.itemId} listed twice`, m.fileOffset);
      seen.add(key);
      if (e.length === 0) continue;
      if (e.offset < METADATA_TABLE_SIZE || e.length > METADATA_ITEM_MAX_LENGTH || e.offset + e.length > m.length) {
        throw this.corrupt(`metadata item ${e.itemId} at region offset ${e.offset} length ${e.length} lies outside the metadata region (length ${m.length})`, m.fileOffset);
      }
      spans.push({ start: e.offset, end: e.offset + e.length, what: `metadata item ${e.itemId}` });
      if (!e.isUser && !KNOWN_ITEMS.has(e.itemId) && e.isRequired) {
        throw notImplemented(`${this.path}: required metadata item ${e.itemId} is not understood`);
      }
    }
    this.checkOverlaps(spans, m.fileOffset);
    const item = async (id: string, minLen: number): Promise<Buffer | undefined> => {
      const e = this.metaEntries.find((x) => x.itemId === id && !x.isUser);
      if (!e) return undefined;
      if (e.length < minLen) throw this.corrupt(`metadata item ${id} is ${e.length} bytes, expected at least ${minLen}`, m.fileOffset + e.offset);
      return this.file.read(m.fileOffset + e.offset, e.length);
    };
    const need = async (id: string, name: string, len: number): Promise<Buffer> => {
      const b = await item(id, len);
      if (!b) throw this.corrupt(`required metadata item ${name} (${id}) is missing`, m.fileOffset);
      return b;
    };
    this.params = parseFileParameters(await need(META_FILE_PARAMETERS, 'File Parameters', 8));
    this.virtualSize = Number((await need(META_VIRTUAL_DISK_SIZE, 'Virtual Disk Size', 8)).readBigUInt64LE(0));
    this.virtualDiskId = readGuid(await need(META_VIRTUAL_DISK_ID, 'Virtual Disk ID', 16), 0);
    this.logicalSectorSize = (await need(META_LOGICAL_SECTOR_SIZE, 'Logical Sector Size', 4)).readUInt32LE(0);
    this.physicalSectorSize = (await need(META_PHYSICAL_SECTOR_SIZE, 'Physical Sector Size', 4)).readUInt32LE(0);
    try {
      validateParameters({
        virtualSize: this.virtualSize,
        blockSize: this.params.blockSize,
        logicalSectorSize: this.logicalSectorSize,
        physicalSectorSize: this.physicalSectorSize,
      });
    } catch (err) {
      throw this.corrupt(`metadata: ${(err as WinsnapError).detail}`, m.fileOffset);
    }
    const pl = await item(META_PARENT_LOCATOR, 20);
    if (pl) {
      const e = this.metaEntries.find((x) => x.itemId === META_PARENT_LOCATOR && !x.isUser)!;
      this.locator = parseParentLocator(pl, m.fileOffset + e.offset);
    }
    if (this.params.hasParent && !this.locator) throw this.corrupt(`HasParent is set but there is no parent locator`, m.fileOffset);
  }

  private async loadBat(): Promise<void> {
    const g = this.geom;
    const diff = this.params.hasParent;
    const needed = entriesRequired(g, diff);
    if (needed * 8 > this.batRegion.length) {
      throw this.corrupt(`BAT region (${this.batRegion.length} bytes at offset ${this.batRegion.fileOffset}) is too small for ${needed} entries`, this.batRegion.fileOffset);
    }
    this.bat = Buffer.alloc(g.batEntries * 8);
    const held = Math.min(this.bat.length, this.batRegion.length);
    await this.file.readInto(this.bat, 0, held, this.batRegion.fileOffset);
  }

  /** BAT entry checks: states, offsets inside the file, nothing overlapping anything else. */
  private validateLayout(): void {
    const g = this.geom;
    const diff = this.params.hasParent;
    const size = this.file.size;
    const spans: Span[] = [{ start: 0, end: HEADER_SECTION_SIZE, what: 'header section' }];
    if (this.header.logLength > 0) spans.push({ start: this.header.logOffset, end: this.header.logOffset + this.header.logLength, what: 'log' });
    for (const r of this.regions) {
      const name = r.guid === REGION_BAT ? 'BAT region' : r.guid === REGION_METADATA ? 'metadata region' : `region ${r.guid}`;
      if (r.fileOffset + r.length > size) {
        throw this.corrupt(`${name} at offset ${r.fileOffset} length ${r.length} extends past end of file (size ${size})`, r.fileOffset);
      }
      spans.push({ start: r.fileOffset, end: r.fileOffset + r.length, what: name });
    }
    let end = Math.max(...spans.map((s) => s.end));
    for (let b = 0; b < g.payloadBlocks; b++) {
      const idx = payloadEntryIndex(g, b);
      const e = this.entry(idx);
      const st = batState(e);
      if (st === 4) throw this.corrupt(`BAT entry ${idx} (payload block ${b}) has reserved state ${st}`, this.batRegion.fileOffset + idx * 8);
      if (st === PAYLOAD_BLOCK_PARTIALLY_PRESENT && !diff) {
        throw this.corrupt(`BAT entry ${idx} (payload block ${b}) is PARTIALLY_PRESENT in a disk without a parent`, this.batRegion.fileOffset + idx * 8);
      }
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        const off = batOffset(e);
        const what = `BAT entry ${idx} (payload block ${b}, ${PAYLOAD_STATE_NAMES[st]}) at file offset ${off}`;
        if (off < HEADER_SECTION_SIZE) throw this.corrupt(`${what} points into the header section`, this.batRegion.fileOffset + idx * 8);
        if (off + g.blockSize > size) {
          throw this.corrupt(`${what} + ${g.blockSize} extends past end of file (size ${size})`, this.batRegion.fileOffset + idx * 8);
        }
        spans.push({ start: off, end: off + g.blockSize, what });
        end = Math.max(end, off + g.blockSize);
      }
    }
    for (let c = 0; c < g.bitmapBlocks; c++) {
      const idx = bitmapEntryIndex(g, c);
      if (idx * 8 >= this.batRegion.length) break;
      const e = this.entry(idx);
      const st = batState(e);
      if (st !== SB_BLOCK_PRESENT) continue;
      if (!diff) continue; // must not happen in dynamic/fixed disks; unused, so tolerated
      const off = batOffset(e);
      const what = `BAT entry ${idx} (sector bitmap block ${c}) at file offset ${off}`;
      if (off < HEADER_SECTION_SIZE || off + SECTOR_BITMAP_BLOCK_SIZE > size) {
        throw this.corrupt(`${what} lies outside the file (size ${size})`, this.batRegion.fileOffset + idx * 8);
      }
      spans.push({ start: off, end: off + SECTOR_BITMAP_BLOCK_SIZE, what });
      end = Math.max(end, off + SECTOR_BITMAP_BLOCK_SIZE);
    }
    if (diff) {
      for (let b = 0; b < g.payloadBlocks; b++) {
        if (batState(this.entry(payloadEntryIndex(g, b))) !== PAYLOAD_BLOCK_PARTIALLY_PRESENT) continue;
        const c = Math.floor(b / g.chunkRatio);
        if (batState(this.entry(bitmapEntryIndex(g, c))) !== SB_BLOCK_PRESENT) {
          throw this.corrupt(`payload block ${b} is PARTIALLY_PRESENT but sector bitmap block ${c} is not present`, this.batRegion.fileOffset);
        }
      }
    }
    this.checkOverlaps(spans, 0);
    this.nextFree = alignUp(Math.max(end, size), MiB);
  }

  private checkOverlaps(spans: Span[], base: number): void {
    const sorted = [...spans].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].start < sorted[i - 1].end) {
        throw this.corrupt(`${sorted[i].what} overlaps ${sorted[i - 1].what}`, base + sorted[i].start);
      }
    }
  }

  private async openParent(opts: OpenOptions, depth: number): Promise<void> {
    const loc = this.locator!;
    if (loc.locatorType !== PARENT_LOCATOR_VHDX) {
      throw notImplemented(`${this.path}: parent locator type ${loc.locatorType} is not the VHDX locator ${PARENT_LOCATOR_VHDX}`);
    }
    const kv = new Map(loc.entries);
    const linkage = kv.get('parent_linkage');
    if (!linkage) throw this.corrupt(`parent locator has no parent_linkage entry`, this.metaRegion.fileOffset);
    const accepted = [linkage, kv.get('parent_linkage2')].filter((x): x is string => !!x).map((x) => parseGuid(x));
    const candidates = opts.parentPath ? [opts.parentPath] : parentCandidates(this.path, kv);
    if (candidates.length === 0) throw this.corrupt(`parent locator has no relative_path, volume_path or absolute_win32_path usable here`, this.metaRegion.fileOffset);
    let found: string | undefined;
    for (const c of candidates) {
      if (await stat(c).then((s) => s.isFile(), () => false)) {
        found = c;
        break;
      }
    }
    if (!found) throw notFound(`${this.path}: parent disk not found (tried ${candidates.join(', ')})`, { path: this.path });
    const parent = await VhdxDisk.open(found, { log: opts.log, ids: this.ids }, depth + 1);
    this.parentDisk = parent;
    this.parentFile = found;
    if (!accepted.includes(parent.header.dataWriteGuid)) {
      throw failedPrecondition(
        `${this.path}: parent ${found} has DataWriteGuid ${parent.header.dataWriteGuid} but parent_linkage is ${accepted.join(' or ')} (the parent changed after this disk was made)`,
        { path: this.path },
      );
    }
    if (parent.logicalSectorSize !== this.logicalSectorSize) {
      throw failedPrecondition(`${this.path}: logical sector size ${this.logicalSectorSize} differs from parent ${found} (${parent.logicalSectorSize})`);
    }
  }

  // ------------------------------------------------------------------ info

  private entry(idx: number): bigint {
    return idx * 8 < this.bat.length ? this.bat.readBigUInt64LE(idx * 8) : 0n;
  }

  /** State of payload block `block` (§2.5.1.1 value). */
  blockState(block: number): number {
    return batState(this.entry(payloadEntryIndex(this.geom, block)));
  }

  get type(): DiskType {
    return this.params.hasParent ? 'differencing' : this.params.leaveBlockAllocated ? 'fixed' : 'dynamic';
  }

  get size(): number {
    return this.virtualSize;
  }

  get parent(): VhdxDisk | undefined {
    return this.parentDisk;
  }

  get info(): VhdxInfo {
    const g = this.geom;
    const states: Record<string, number> = {};
    let allocated = 0;
    for (let b = 0; b < g.payloadBlocks; b++) {
      const st = this.blockState(b);
      const name = PAYLOAD_STATE_NAMES[st] ?? `STATE_${st}`;
      states[name] = (states[name] ?? 0) + 1;
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) allocated++;
    }
    let sb = 0;
    for (let c = 0; c < g.bitmapBlocks; c++) if (batState(this.entry(bitmapEntryIndex(g, c))) === SB_BLOCK_PRESENT) sb++;
    return {
      path: this.path,
      type: this.type,
      virtualSize: this.virtualSize,
      blockSize: this.params.blockSize,
      logicalSectorSize: this.logicalSectorSize,
      physicalSectorSize: this.physicalSectorSize,
      leaveBlockAllocated: this.params.leaveBlockAllocated,
      hasParent: this.params.hasParent,
      virtualDiskId: this.virtualDiskId,
      fileWriteGuid: this.header.fileWriteGuid,
      dataWriteGuid: this.header.dataWriteGuid,
      logGuid: this.header.logGuid,
      sequenceNumber: this.header.sequenceNumber.toString(),
      creator: this.creator,
      fileSize: this.file.size,
      chunkRatio: g.chunkRatio,
      payloadBlocks: g.payloadBlocks,
      allocatedBlocks: allocated,
      blockStates: states,
      sectorBitmapBlocks: sb,
      regions: {
        bat: { offset: this.batRegion.fileOffset, length: this.batRegion.length },
        metadata: { offset: this.metaRegion.fileOffset, length: this.metaRegion.length },
        log: { offset: this.header.logOffset, length: this.header.logLength },
      },
      ...(this.locator ? { parentLocator: { type: this.locator.locatorType, entries: Object.fromEntries(this.locator.entries) } } : {}),
      ...(this.parentFile ? { parentPath: this.parentFile } : {}),
      logReplayed: this.logReplayed,
    };
  }

  /** True when [offset, offset+length) may hold non-zero data somewhere in the chain. */
  mayHaveData(offset: number, length: number): boolean {
    const end = Math.min(offset + length, this.virtualSize);
    const bs = this.geom.blockSize;
    for (let b = Math.floor(offset / bs); b * bs < end; b++) {
      const st = this.blockState(b);
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) return true;
      if (st === PAYLOAD_BLOCK_NOT_PRESENT && this.parentDisk) {
        const s = Math.max(offset, b * bs);
        const e = Math.min(end, (b + 1) * bs);
        if (s < this.parentDisk.virtualSize && this.parentDisk.mayHaveData(s, Math.min(e, this.parentDisk.virtualSize) - s)) return true;
      }
    }
    return false;
  }

  /**
   * File byte ranges holding live structures: header section, log, regions, allocated payload
   * and sector bitmap blocks (sorted, merged). Everything else in the file is free space.
   */
  usedRanges(): { start: number; end: number }[] {
    const g = this.geom;
    const spans: { start: number; end: number }[] = [{ start: 0, end: HEADER_SECTION_SIZE }];
    if (this.header.logLength > 0) spans.push({ start: this.header.logOffset, end: this.header.logOffset + this.header.logLength });
    for (const r of this.regions) spans.push({ start: r.fileOffset, end: r.fileOffset + r.length });
    for (let b = 0; b < g.payloadBlocks; b++) {
      const e = this.entry(payloadEntryIndex(g, b));
      const st = batState(e);
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) spans.push({ start: batOffset(e), end: batOffset(e) + g.blockSize });
    }
    if (this.params.hasParent) {
      for (let c = 0; c < g.bitmapBlocks; c++) {
        const e = this.entry(bitmapEntryIndex(g, c));
        if (batState(e) === SB_BLOCK_PRESENT) spans.push({ start: batOffset(e), end: batOffset(e) + SECTOR_BITMAP_BLOCK_SIZE });
      }
    }
    spans.sort((a, b) => a.start - b.start);
    const out: { start: number; end: number }[] = [];
    for (const s of spans) {
      const last = out[out.length - 1];
      if (last && s.start <= last.end) last.end = Math.max(last.end, s.end);
      else out.push({ ...s });
    }
    return out;
  }

  // ------------------------------------------------------------------ reads

  async read(offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    await this.readInto(buf, offset);
    return buf;
  }

  /** Fills buf with the virtual disk bytes at [offset, offset + buf.length). */
  async readInto(buf: Buffer, offset: number): Promise<void> {
    this.checkRange(offset, buf.length);
    const bs = this.geom.blockSize;
    let pos = offset;
    const end = offset + buf.length;
    while (pos < end) {
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(end - pos, bs - inBlock);
      await this.readBlockRange(block, inBlock, buf.subarray(pos - offset, pos - offset + n), pos);
      pos += n;
    }
  }

  private checkRange(offset: number, length: number): void {
    if (this.closed) throw failedPrecondition(`${this.path} is closed`);
    if (!Number.isSafeInteger(offset) || offset < 0 || length < 0 || offset + length > this.virtualSize) {
      throw invalidArgument(`range [${offset}, ${offset + length}) is outside the virtual disk (size ${this.virtualSize})`, { path: this.path, offset });
    }
  }

  private async readFromParent(dst: Buffer, vpos: number): Promise<void> {
    const p = this.parentDisk;
    if (!p && this.params.hasParent) throw failedPrecondition(`${this.path} was opened without its parent; this range needs the parent`, { offset: vpos });
    const inParent = p ? Math.max(0, Math.min(dst.length, p.virtualSize - vpos)) : 0;
    if (p && inParent > 0) await p.readInto(dst.subarray(0, inParent), vpos);
    if (inParent < dst.length) dst.fill(0, inParent);
  }

  private async readBlockRange(block: number, inBlock: number, dst: Buffer, vpos: number): Promise<void> {
    const idx = payloadEntryIndex(this.geom, block);
    const e = this.entry(idx);
    const st = batState(e);
    switch (st) {
      case PAYLOAD_BLOCK_FULLY_PRESENT:
        return this.file.readInto(dst, 0, dst.length, batOffset(e) + inBlock);
      case PAYLOAD_BLOCK_PARTIALLY_PRESENT: {
        const lss = this.logicalSectorSize;
        const firstSector = Math.floor(vpos / lss);
        const lastSector = Math.floor((vpos + dst.length - 1) / lss);
        const bits = await this.readBitmap(firstSector, lastSector - firstSector + 1);
        let p = 0;
        while (p < dst.length) {
          const s = Math.floor((vpos + p) / lss);
          const present = bits(s);
          let q = p;
          while (q < dst.length && bits(Math.floor((vpos + q) / lss)) === present) q = Math.min(dst.length, (Math.floor((vpos + q) / lss) + 1) * lss - vpos);
          const part = dst.subarray(p, q);
          if (present) await this.file.readInto(part, 0, part.length, batOffset(e) + inBlock + p);
          else await this.readFromParent(part, vpos + p);
          p = q;
        }
        return;
      }
      case PAYLOAD_BLOCK_NOT_PRESENT:
        if (this.params.hasParent) return this.readFromParent(dst, vpos);
        dst.fill(0);
        return;
      case PAYLOAD_BLOCK_ZERO:
      case PAYLOAD_BLOCK_UNMAPPED:
      case PAYLOAD_BLOCK_UNMAPPED_V095:
      case PAYLOAD_BLOCK_UNDEFINED:
        dst.fill(0);
        return;
      default:
        throw this.corrupt(`BAT entry ${idx} (payload block ${block}) has invalid state ${st}`, this.batRegion.fileOffset + idx * 8);
    }
  }

  /** Reads the sector bitmap bits for sectors [first, first+count) (one chunk); returns a bit lookup by absolute sector. */
  private async readBitmap(first: number, count: number): Promise<(sector: number) => boolean> {
    const chunk = Math.floor(first / SECTORS_PER_BITMAP_BLOCK);
    const e = this.entry(bitmapEntryIndex(this.geom, chunk));
    if (batState(e) !== SB_BLOCK_PRESENT) throw this.corrupt(`sector bitmap block ${chunk} is not present`, this.batRegion.fileOffset);
    const base = chunk * SECTORS_PER_BITMAP_BLOCK;
    const b0 = (first - base) >> 3;
    const b1 = (first - base + count - 1) >> 3;
    const bytes = await this.file.read(batOffset(e) + b0, b1 - b0 + 1);
    return (sector: number) => {
      const i = sector - base;
      return ((bytes[(i >> 3) - b0] >> (i & 7)) & 1) === 1;
    };
  }

  // ------------------------------------------------------------------ header updates

  private async updateHeaders(fields: Partial<VhdxHeader>): Promise<void> {
    for (let i = 0; i < 2; i++) {
      const next: VhdxHeader = { ...this.header, ...fields, sequenceNumber: this.header.sequenceNumber + 1n };
      const target = this.headerIndex === 0 ? 1 : 0;
      await this.file.write(target === 0 ? HEADER1_OFFSET : HEADER2_OFFSET, encodeHeader(next));
      await this.file.sync();
      this.header = next;
      this.headerIndex = target;
    }
  }

  /** First modification in this session: new FileWriteGuid (and DataWriteGuid when visible). */
  private async touchHeaders(visible: boolean): Promise<void> {
    if (!this.file.writable) throw failedPrecondition(`${this.path} is open read-only`);
    const fields: Partial<VhdxHeader> = {};
    const seq = this.header.sequenceNumber;
    if (!this.sessionFileGuidSet) fields.fileWriteGuid = makeGuid(this.ids, 'file-write', this.header.fileWriteGuid, seq, this.idSeed);
    if (visible && !this.sessionDataGuidSet) {
      fields.dataWriteGuid = makeGuid(this.ids, 'data-write-pending', this.header.dataWriteGuid, seq, this.idSeed);
      this.sessionDigest = createHash('sha256');
    }
    if (Object.keys(fields).length === 0) return;
    await this.updateHeaders(fields);
    this.sessionFileGuidSet = true;
    if (visible) this.sessionDataGuidSet = true;
  }

  private noteVisible(...parts: (string | number)[]): void {
    this.sessionDigest?.update(parts.join('\0') + '\n');
  }

  // ------------------------------------------------------------------ writes

  private async setEntry(idx: number, state: number, off: number): Promise<void> {
    const b = Buffer.alloc(8);
    const v = makeBatEntry(state, off);
    b.writeBigUInt64LE(v);
    await this.file.write(this.batRegion.fileOffset + idx * 8, b);
    b.copy(this.bat, idx * 8);
  }

  private async allocate(length: number): Promise<number> {
    const off = this.nextFree;
    this.nextFree += alignUp(length, MiB);
    if (this.file.size < this.nextFree) await this.file.truncate(this.nextFree);
    return off;
  }

  /** Writes data at virtual offset `offset`, allocating blocks as needed. */
  async write(offset: number, data: Buffer): Promise<void> {
    this.checkRange(offset, data.length);
    if (!this.file.writable) throw failedPrecondition(`${this.path} is open read-only`);
    if (data.length === 0) return;
    await this.touchHeaders(true);
    this.noteVisible('w', offset, data.length, crc32c(data));
    const lss = this.logicalSectorSize;
    const a0 = Math.floor(offset / lss) * lss;
    const a1 = Math.ceil((offset + data.length) / lss) * lss;
    if (a0 !== offset || a1 !== offset + data.length) {
      const merged = await this.read(a0, a1 - a0);
      data.copy(merged, offset - a0);
      data = merged;
      offset = a0;
    }
    const bs = this.geom.blockSize;
    let pos = offset;
    const end = offset + data.length;
    while (pos < end) {
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(end - pos, bs - inBlock);
      await this.writeBlockRange(block, inBlock, data.subarray(pos - offset, pos - offset + n));
      pos += n;
    }
  }

  private async writeBlockRange(block: number, inBlock: number, src: Buffer): Promise<void> {
    const g = this.geom;
    const idx = payloadEntryIndex(g, block);
    const e = this.entry(idx);
    const st = batState(e);
    if (st === PAYLOAD_BLOCK_FULLY_PRESENT) return this.file.write(batOffset(e) + inBlock, src);
    if (st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
      await this.file.write(batOffset(e) + inBlock, src);
      if (inBlock === 0 && src.length >= Math.min(g.blockSize, this.virtualSize - block * g.blockSize)) {
        return this.setEntry(idx, PAYLOAD_BLOCK_FULLY_PRESENT, batOffset(e)); // every sector now here
      }
      return this.setBitmapBits(block * g.blockSize + inBlock, src.length, true);
    }
    if (st !== PAYLOAD_BLOCK_NOT_PRESENT && st !== PAYLOAD_BLOCK_ZERO && st !== PAYLOAD_BLOCK_UNMAPPED && st !== PAYLOAD_BLOCK_UNMAPPED_V095 && st !== PAYLOAD_BLOCK_UNDEFINED) {
      throw this.corrupt(`BAT entry ${idx} (payload block ${block}) has invalid state ${st}`, this.batRegion.fileOffset + idx * 8);
    }
    const blockStart = block * g.blockSize;
    const blockLen = Math.min(g.blockSize, this.virtualSize - blockStart);
    const fromParent = this.params.hasParent && st === PAYLOAD_BLOCK_NOT_PRESENT;
    const whole = inBlock === 0 && src.length >= blockLen;
    const off = await this.allocate(g.blockSize);
    await this.file.write(off + inBlock, src);
    if (fromParent && !whole) {
      await this.ensureBitmapBlock(Math.floor(block / g.chunkRatio));
      await this.setBitmapBits(blockStart, g.blockSize, false);
      await this.setBitmapBits(blockStart + inBlock, src.length, true);
      await this.setEntry(idx, PAYLOAD_BLOCK_PARTIALLY_PRESENT, off);
    } else {
      await this.setEntry(idx, PAYLOAD_BLOCK_FULLY_PRESENT, off);
    }
  }

  private async ensureBitmapBlock(chunk: number): Promise<void> {
    const idx = bitmapEntryIndex(this.geom, chunk);
    if (batState(this.entry(idx)) === SB_BLOCK_PRESENT) return;
    const off = await this.allocate(SECTOR_BITMAP_BLOCK_SIZE);
    await this.setEntry(idx, SB_BLOCK_PRESENT, off);
  }

  /** Sets or clears the sector bitmap bits of virtual byte range [vpos, vpos+len) (sector aligned, one block). */
  private async setBitmapBits(vpos: number, len: number, value: boolean): Promise<void> {
    const lss = this.logicalSectorSize;
    const first = Math.floor(vpos / lss);
    const count = Math.ceil(len / lss);
    const chunk = Math.floor(first / SECTORS_PER_BITMAP_BLOCK);
    const e = this.entry(bitmapEntryIndex(this.geom, chunk));
    const base = chunk * SECTORS_PER_BITMAP_BLOCK;
    const b0 = (first - base) >> 3;
    const b1 = (first - base + count - 1) >> 3;
    const fileOff = batOffset(e) + b0;
    const bytes = await this.file.read(fileOff, b1 - b0 + 1);
    for (let s = first - base; s < first - base + count; s++) {
      const i = (s >> 3) - b0;
      if (value) bytes[i] |= 1 << (s & 7);
      else bytes[i] &= ~(1 << (s & 7));
    }
    await this.file.write(fileOff, bytes);
  }

  // ------------------------------------------------------------------ resize

  /** Grows the virtual size (§2.6.2.2), relocating the BAT when its region is too small. */
  async resize(newSize: number): Promise<void> {
    if (!this.file.writable) throw failedPrecondition(`${this.path} is open read-only`);
    const lss = this.logicalSectorSize;
    if (!Number.isSafeInteger(newSize) || newSize % lss !== 0) {
      throw invalidArgument(`${this.path}: new size ${newSize} is not a multiple of the logical sector size ${lss}`, { path: this.path });
    }
    if (newSize < this.virtualSize) {
      throw invalidArgument(`${this.path}: shrinking is not supported: new size ${newSize} is smaller than the current ${this.virtualSize}`, { path: this.path });
    }
    validateParameters({ virtualSize: newSize, blockSize: this.params.blockSize, logicalSectorSize: lss, physicalSectorSize: this.physicalSectorSize });
    if (newSize === this.virtualSize) return;
    await this.touchHeaders(true);
    this.noteVisible('resize', newSize);
    const old = this.geom;
    const g = geometry(newSize, old.blockSize, lss);
    const bs = g.blockSize;

    // 1. Bytes of the old last block beyond the old size become visible: make them zero first.
    const oldVs = this.virtualSize;
    if (oldVs % bs !== 0) {
      const block = Math.floor(oldVs / bs);
      const e = this.entry(payloadEntryIndex(old, block));
      const st = batState(e);
      const from = oldVs - block * bs;
      const to = Math.min(bs, newSize - block * bs);
      if (st === PAYLOAD_BLOCK_FULLY_PRESENT || st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) {
        await this.file.write(batOffset(e) + from, Buffer.alloc(to - from));
        if (st === PAYLOAD_BLOCK_PARTIALLY_PRESENT) await this.setBitmapBits(oldVs, to - from, true);
      }
    }

    // 2. The new BAT (in memory), new payload blocks for fixed disks.
    const bat = Buffer.alloc(g.batEntries * 8);
    this.bat.copy(bat, 0, 0, Math.min(this.bat.length, bat.length));
    const relocate = g.batEntries * 8 > this.batRegion.length;
    const newBatLength = relocate ? batRegionLength(g) : this.batRegion.length;
    const newBatOffset = relocate ? await this.allocate(newBatLength) : this.batRegion.fileOffset;
    if (this.params.leaveBlockAllocated && !this.params.hasParent && g.payloadBlocks > old.payloadBlocks) {
      const first = old.payloadBlocks;
      const base = await this.allocate((g.payloadBlocks - first) * bs);
      for (let b = first; b < g.payloadBlocks; b++) {
        bat.writeBigUInt64LE(makeBatEntry(PAYLOAD_BLOCK_FULLY_PRESENT, base + (b - first) * bs), payloadEntryIndex(g, b) * 8);
      }
    }

    // 3. Write it: in place (only the grown tail), or whole at the end of the file.
    // (rewriting unchanged entries with the same bytes is harmless if torn)
    await this.file.write(newBatOffset, bat.subarray(0, Math.min(bat.length, newBatLength)));
    await this.file.sync();
    this.bat = bat;
    if (relocate) {
      this.regions = this.regions.map((r) => (r.guid === REGION_BAT ? { ...r, fileOffset: newBatOffset, length: newBatLength } : r));
      await this.writeRegionTables();
      this.batRegion = this.regions.find((r) => r.guid === REGION_BAT)!;
    }

    // 4. Switch the virtual size (a single 8-byte write in the metadata region).
    const sizeItem = this.metaEntries.find((x) => x.itemId === META_VIRTUAL_DISK_SIZE && !x.isUser)!;
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(newSize));
    await this.file.write(this.metaRegion.fileOffset + sizeItem.offset, b);
    await this.file.sync();
    this.virtualSize = newSize;
    this.geom = g;
  }

  private async writeRegionTables(): Promise<void> {
    const rt = encodeRegionTable(this.regions);
    await this.file.write(REGION_TABLE1_OFFSET, rt);
    await this.file.sync();
    await this.file.write(REGION_TABLE2_OFFSET, rt);
    await this.file.sync();
  }

  // ------------------------------------------------------------------ parent locator rewrite

  /**
   * Replaces the parent locator's key/value pairs (e.g. after copying a differencing disk).
   * The metadata region is rebuilt at the end of the file and the region tables switched to it.
   */
  async setParentLocator(entries: [string, string][]): Promise<void> {
    if (!this.params.hasParent) throw failedPrecondition(`${this.path} is not a differencing disk`);
    await this.touchHeaders(false);
    const m = this.metaRegion;
    const items: { entry: MetadataEntry; data: Buffer }[] = [];
    for (const e of this.metaEntries) {
      const data = e.itemId === META_PARENT_LOCATOR && !e.isUser
        ? encodeParentLocator({ locatorType: this.locator!.locatorType, entries })
        : e.length > 0 ? await this.file.read(m.fileOffset + e.offset, e.length) : Buffer.alloc(0);
      items.push({ entry: e, data });
    }
    const { region, table } = layoutMetadata(items);
    const length = alignUp(region.length, MiB);
    const off = await this.allocate(length);
    await this.file.write(off, region);
    await this.file.sync();
    this.regions = this.regions.map((r) => (r.guid === REGION_METADATA ? { ...r, fileOffset: off, length } : r));
    await this.writeRegionTables();
    this.metaRegion = this.regions.find((r) => r.guid === REGION_METADATA)!;
    this.metaEntries = table;
    this.locator = { locatorType: this.locator!.locatorType, entries };
  }

  // ------------------------------------------------------------------ close

  async flush(): Promise<void> {
    if (this.file.writable) await this.file.sync();
  }

  /**
   * Flushes and closes. In deterministic mode a session that changed visible data ends with a
   * header update setting DataWriteGuid to SHA-256(previous DataWriteGuid, every write's offset,
   * length and CRC-32C, every resize) — same edits, same identity.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.file.writable) {
        if (this.sessionDigest && this.ids === 'deterministic') {
          await this.file.sync();
          const digest = this.sessionDigest.digest('hex');
          await this.updateHeaders({ dataWriteGuid: makeGuid('deterministic', 'data-write', this.originalDataWriteGuid, digest, this.idSeed) });
        }
        await this.file.sync();
      }
    } finally {
      this.closed = true;
      await this.file.close();
      await this.parentDisk?.close();
    }
  }
}

/** Lays out a metadata region: the 64 KiB table, then items back to back (8-byte aligned). */
export function layoutMetadata(items: { entry: MetadataEntry; data: Buffer }[]): { region: Buffer; table: MetadataEntry[] } {
  let pos = METADATA_TABLE_SIZE;
  const table: MetadataEntry[] = [];
  const parts: { pos: number; data: Buffer }[] = [];
  for (const { entry, data } of items) {
    if (data.length === 0) {
      table.push({ ...entry, offset: 0, length: 0 });
      continue;
    }
    table.push({ ...entry, offset: pos, length: data.length });
    parts.push({ pos, data });
    pos = alignUp(pos + data.length, 8);
  }
  const region = Buffer.alloc(alignUp(pos, MiB));
  encodeMetadataTable(table).copy(region, 0);
  for (const p of parts) p.data.copy(region, p.pos);
  return { region, table };
}

/** Parent file candidates from locator entries, in the spec's order (relative, volume, absolute). */
function parentCandidates(childPath: string, kv: Map<string, string>): string[] {
  const out: string[] = [];
  const rel = kv.get('relative_path');
  const dir = dirname(resolvePath(childPath));
  if (rel) {
    if (process.platform === 'win32') out.push(win32.resolve(dir, rel));
    else out.push(resolvePath(dir, rel.replace(/\\/g, '/')));
  }
  for (const key of ['volume_path', 'absolute_win32_path']) {
    const v = kv.get(key);
    if (!v) continue;
    if (process.platform === 'win32') out.push(v);
    else {
      // Only usable here when the recorded path, minus \\?\, is an absolute POSIX path.
      const stripped = v.startsWith('\\\\?\\') ? v.slice(4) : v;
      const posix = stripped.replace(/\\/g, '/');
      if (isAbsolute(posix)) out.push(posix);
    }
  }
  return [...new Set(out)];
}
