/**
 * CimFS v2 image writer with the shape of cimfs.dll's API (windows-layer-formats.md §3.1–3.3):
 * `CimWriter.create` (CimCreateImage, optionally forked from a parent image in the same
 * directory), `createFile` (CimCreateFile with CIMFS_FILE_METADATA), `write` (CimWriteStream),
 * `closeStream` (CimCloseStream), `createAlternateStream`, `createHardLink`, `deletePath`
 * (CimDeletePath) and `commit` (CimCommitImage).
 *
 * Layout we write (each choice not fixed by the reference is listed in docs/formats/cim.md):
 * - one region set `<guid>` with three regions: 0 metadata (8-byte aligned), 1 page-aligned data
 *   (streams ≥ 4096 bytes), 2 small data (8-byte aligned); plus `objectid_<guid>_<i>` files
 *   listing the objects (SHA-256/192 digests) deduplicated at write time;
 * - SD, EA and reparse buffers and file data are deduplicated by content;
 * - at commit: directory link tables (sorted through the upcase table), stream tables, file
 *   tables (1024 records of 96 bytes each), the file table directory, the upcase table
 *   (inherited from the parent when forked), the filesystem object, then `<name>.cim`.
 * - a forked image lists the parent's parent region sets and the parent's own set first, so
 *   every offset in the parent's metadata stays valid; unchanged files keep pointing at parent
 *   data, SDs, EAs and reparse buffers.
 *
 * File data streams straight to the region files (≤ 1 MiB buffered); only metadata (names and
 * 96-byte-ish records per file) is held in memory until commit.
 */
import { createHash, type Hash } from 'node:crypto';
import { rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../../services/errdefs.js';
import { FILE_ATTRIBUTE } from '../wintar/constants.js';
import { decodeEaBuffer } from '../wintar/ea.js';
import {
  FILES_PER_TABLE,
  FILE_ID_SIZE,
  FILE_SIZE,
  FILE_TABLE_DIR_ENTRY_SIZE,
  FileFlag,
  MAX_EA_NAME_LENGTH,
  MAX_FULL_EA_LENGTH,
  MAX_STREAM_LENGTH,
  OBJECTID_ENTRY_SIZE,
  OBJECTID_FILE_PREFIX,
  OBJECTID_HEADER_SIZE,
  PAGE_SIZE,
  REGION_FILE_PREFIX,
  RegionType,
  STREAM_SIZE,
  StreamType,
  UPCASE_TABLE_LENGTH,
} from './constants.js';
import { deriveCimGuid } from './guid.js';
import { parseGuid, randomGuid } from '../guid.js';
import { checkComponent, compareFolded, defaultUpcase, foldWith, splitPath, type Upcase } from './names.js';
import { CimReader } from './reader.js';
import { objectDigest, RegionFileWriter } from './region.js';
import {
  EMPTY_STREAM,
  encodeFile,
  encodeFileTableDirEntry,
  encodeFilesystem,
  encodeImageHeader,
  encodeLinkTable,
  encodeObjectIdHeader,
  encodeStream,
  regionOffset,
  type LinkEntry,
  type RegionSet,
  type StreamRecord,
} from './structs.js';
import type { CimFileMetadata } from './types.js';

export interface CimCreateOptions {
  /** Name of the parent image in the same directory (`<parent>.cim`) to fork from. */
  parentName?: string;
  /**
   * Region-set GUID. Default: derived from the image name and the parent region-set GUIDs
   * (deriveCimGuid('region-set', name, ...parentGuids)); 'random' for a random one.
   */
  guid?: string | 'random';
  /** Streams at least this long go to the page-aligned data region (default 4096). */
  pageAlignThreshold?: number;
}

/** One file or directory (an inode: hard links share it). */
interface Inode {
  dir: boolean;
  flags: number;
  creationTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
  lastAccessTime: bigint;
  sdOffset: bigint;
  eaOffset: bigint;
  eaLength: number;
  reparseOffset: bigint;
  reparseTag: number;
  data: StreamRecord;
  /** Alternate streams by folded name (created on first use). */
  streams?: Map<string, { name: string; stream: StreamRecord }>;
  children?: Map<string, Link>;
  /** Assigned at commit. */
  id: number;
  parentId: number;
}

interface Link {
  name: string;
  inode: Inode;
}

interface OpenStream {
  label: string;
  target: { inode: Inode; streamKey?: string; streamName?: string };
  size: bigint;
  written: bigint;
  region: RegionFileWriter;
  start: number;
  hash: Hash;
  allZero: boolean;
  sparseWanted: boolean;
}

const LOCAL_METADATA = 0;
const LOCAL_DATA = 1;
const LOCAL_SMALL = 2;

/**
 * "file:stream" (a trailing ":$DATA" accepted) split into the file path and the stream name,
 * or undefined when `path` names no stream. Names may hold control characters such as "\n".
 */
export function splitStreamPath(path: string): [file: string, stream: string] | undefined {
  const m = /^(.*[^:]):([^:\\/]+)(?::\$DATA)?$/is.exec(path);
  return m ? [m[1]!, m[2]!] : undefined;
}

export class CimWriter {
  private root: Inode;
  private regions: RegionFileWriter[] = [];
  private stream: OpenStream | undefined;
  private dedup = new Map<string, bigint>();
  private upcaseOffset = 0n;
  private state: 'open' | 'committed' | 'aborted' = 'open';

  private constructor(
    readonly dir: string,
    readonly name: string,
    readonly guid: string,
    private readonly parents: RegionSet[],
    private readonly upcase: Upcase,
    private readonly pageAlignThreshold: number,
  ) {
    this.root = newInode(true);
  }

  /** CimCreateImage: a new image `<dir>/<name>.cim`, empty or forked from `parentName`. */
  static async create(dir: string, name: string, opts: CimCreateOptions = {}): Promise<CimWriter> {
    if (!/^[^\\/\0]+$/.test(name) || name.endsWith('.cim')) throw invalidArgument(`invalid CIM name ${JSON.stringify(name)} (no separators, no .cim suffix)`);
    if (await stat(join(dir, `${name}.cim`)).then(() => true, () => false)) {
      throw alreadyExists(`CIM image ${name}.cim already exists in ${dir}`);
    }
    let parentReader: CimReader | undefined;
    let parents: RegionSet[] = [];
    let upcase = defaultUpcase();
    if (opts.parentName !== undefined) {
      if (opts.parentName === name) throw invalidArgument(`CIM ${name} cannot be its own parent`);
      parentReader = await CimReader.open(join(dir, `${opts.parentName}.cim`));
      parents = [...parentReader.parents, parentReader.regionSet];
      upcase = parentReader.upcase;
    }
    try {
      const guid =
        opts.guid === 'random'
          ? randomGuid()
          : opts.guid !== undefined
            ? parseGuid(opts.guid)
            : deriveCimGuid('region-set', name, ...parents.map((p) => p.guid));
      if (parents.some((p) => p.guid === guid)) throw invalidArgument(`region set GUID ${guid} is already used by a parent`);
      const regionBase = parents.reduce((n, p) => n + p.count, 0);
      if (regionBase + 3 > 0x10000) throw invalidArgument(`parent chain has ${regionBase} regions; no room for more`);
      const w = new CimWriter(dir, name, guid, parents, upcase, opts.pageAlignThreshold ?? PAGE_SIZE);
      const kinds: [number, number][] = [
        [RegionType.Metadata, 8],
        [RegionType.Data, PAGE_SIZE],
        [RegionType.SmallData, 8],
      ];
      for (const [i, [type, align]] of kinds.entries()) {
        w.regions.push(await RegionFileWriter.create(join(dir, `${REGION_FILE_PREFIX}_${guid}_${i}`), i, type, align));
      }
      if (parentReader) {
        await w.loadParent(parentReader);
        w.upcaseOffset = parentReader.filesystem.upcaseTableOffset;
      }
      return w;
    } finally {
      await parentReader?.close();
    }
  }

  private globalIndex(local: number): number {
    return this.parents.reduce((n, p) => n + p.count, 0) + local;
  }

  /** Copies the parent's namespace (records only; all offsets keep pointing at parent regions). */
  private async loadParent(r: CimReader): Promise<void> {
    const byId = new Map<number, Inode>();
    const seen = new Set<bigint>();
    const inodeFor = async (id: number): Promise<Inode> => {
      let ino = byId.get(id);
      if (ino) return ino;
      const rec = await r.fileRecord(id);
      ino = {
        dir: CimReader.isDir(rec),
        flags: rec.flags,
        creationTime: rec.creationTime,
        lastWriteTime: rec.lastWriteTime,
        changeTime: rec.changeTime,
        lastAccessTime: rec.lastAccessTime,
        sdOffset: rec.sdOffset,
        eaOffset: rec.eaOffset,
        eaLength: rec.eaOffset === 0n ? 0 : rec.eaLength,
        reparseOffset: rec.reparseOffset,
        reparseTag: rec.reparseTag,
        data: CimReader.isDir(rec) ? EMPTY_STREAM : rec.defaultStream,
        streams: undefined,
        children: CimReader.isDir(rec) ? new Map() : undefined,
        id: 0,
        parentId: 0,
      };
      for (const s of await r.streamTable(rec)) (ino.streams ??= new Map()).set(foldWith(this.upcase, s.name), { name: s.name, stream: s.stream });
      // Seed content dedup with the parent's SD, EA and reparse objects, keyed exactly as
      // putObject keys new ones (most files share a handful of SDs).
      if (rec.sdOffset !== 0n && !seen.has(rec.sdOffset)) {
        seen.add(rec.sdOffset);
        const sd = await r.securityDescriptor(rec);
        if (sd) this.dedup.set(dedupKey('sd', u16Counted(sd)), rec.sdOffset);
      }
      if (rec.eaOffset !== 0n && !seen.has(rec.eaOffset)) {
        seen.add(rec.eaOffset);
        const ea = await r.extendedAttributes(rec);
        if (ea && ea.length > 0) this.dedup.set(dedupKey('ea', ea), rec.eaOffset);
      }
      if (rec.reparseOffset !== 0n && !seen.has(rec.reparseOffset)) {
        seen.add(rec.reparseOffset);
        const rp = await r.reparseData(rec);
        if (rp) this.dedup.set(dedupKey('reparse', u16Counted(rp)), rec.reparseOffset);
      }
      byId.set(id, ino);
      return ino;
    };
    for await (const e of r.walk()) {
      const ino = await inodeFor(e.fileId);
      if (e.parentId === 0) {
        this.root = ino;
        continue;
      }
      const parent = byId.get(e.parentId)!;
      parent.children!.set(foldWith(this.upcase, e.name), { name: e.name, inode: ino });
    }
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw failedPrecondition(`CIM ${this.name} is already ${this.state}`);
  }

  private assertNoStream(op: string): void {
    if (this.stream) throw failedPrecondition(`${op}: stream for ${this.stream.label} is still open (call closeStream)`);
  }

  /** Finds the directory that holds `parts`' last component. */
  private parentDir(parts: string[], path: string): Inode {
    let cur = this.root;
    for (const p of parts.slice(0, -1)) {
      const l = cur.children?.get(foldWith(this.upcase, p));
      if (!l) throw notFound(`parent directory of ${path} does not exist`, { entry: path });
      if (!l.inode.dir) throw notFound(`${p} in ${path} is not a directory`, { entry: path });
      cur = l.inode;
    }
    return cur;
  }

  private lookup(path: string): Inode | undefined {
    let cur = this.root;
    for (const p of splitPath(path)) {
      const l = cur.children?.get(foldWith(this.upcase, p));
      if (!l) return undefined;
      cur = l.inode;
    }
    return cur;
  }

  /** True when `path` exists in the image being written (including inherited entries). */
  exists(path: string): boolean {
    return this.lookup(path) !== undefined;
  }

  private async putObject(kind: string, data: Buffer): Promise<bigint> {
    const key = dedupKey(kind, data);
    const hit = this.dedup.get(key);
    if (hit !== undefined) return hit;
    const md = this.regions[LOCAL_METADATA]!;
    const at = await md.appendObject(data);
    md.objectIds.push({ length: BigInt(data.length), digest: objectDigest(data), offset: at });
    const off = regionOffset(this.globalIndex(LOCAL_METADATA), at);
    this.dedup.set(key, off);
    return off;
  }

  /**
   * CimCreateFile: creates (or replaces) the file or directory at `path` and, for a file with a
   * non-zero size, opens its default stream for `write`. Replacing a directory with a directory
   * keeps its entries; any other replacement drops what was there (only this link for a
   * hard-linked file).
   */
  async createFile(path: string, meta: CimFileMetadata): Promise<void> {
    this.assertOpen();
    this.assertNoStream('createFile');
    const parts = splitPath(path);
    const isDir = (meta.attributes & FILE_ATTRIBUTE.DIRECTORY) !== 0;
    const size = BigInt(meta.size ?? 0);
    if (!isDir && (size < 0n || size > MAX_STREAM_LENGTH)) throw invalidArgument(`file size ${size} out of range`, { entry: path });
    const ino = newInode(isDir);
    await this.applyMetadata(ino, meta, path);
    if (parts.length === 0) {
      if (!isDir) throw invalidArgument('the root must be a directory', { entry: path });
      ino.children = this.root.children;
      this.root = ino;
      return;
    }
    const parent = this.parentDir(parts, path);
    const name = parts[parts.length - 1]!;
    const key = foldWith(this.upcase, name);
    const old = parent.children!.get(key);
    if (old && old.inode.dir && isDir) ino.children = old.inode.children;
    parent.children!.set(key, { name, inode: ino });
    if (!isDir && size > 0n) this.openStream(path, { inode: ino }, size, (meta.attributes & FILE_ATTRIBUTE.SPARSE_FILE) !== 0);
  }

  private async applyMetadata(ino: Inode, meta: CimFileMetadata, path: string): Promise<void> {
    const a = meta.attributes;
    ino.flags =
      (a & FILE_ATTRIBUTE.READONLY ? FileFlag.ReadOnly : 0) |
      (a & FILE_ATTRIBUTE.HIDDEN ? FileFlag.Hidden : 0) |
      (a & FILE_ATTRIBUTE.SYSTEM ? FileFlag.System : 0) |
      (a & FILE_ATTRIBUTE.ARCHIVE ? FileFlag.Archive : 0) |
      (a & FILE_ATTRIBUTE.SPARSE_FILE ? FileFlag.Sparse : 0);
    ino.creationTime = meta.creationTime ?? 0n;
    ino.lastWriteTime = meta.lastWriteTime ?? 0n;
    ino.changeTime = meta.changeTime ?? 0n;
    ino.lastAccessTime = meta.lastAccessTime ?? 0n;
    for (const t of [ino.creationTime, ino.lastWriteTime, ino.changeTime, ino.lastAccessTime]) {
      if (t < 0n || t > 0xffffffffffffffffn) throw invalidArgument(`timestamp ${t} is not a FILETIME`, { entry: path });
    }
    if (meta.securityDescriptor && meta.securityDescriptor.length > 0) {
      const sd = Buffer.from(meta.securityDescriptor);
      if (sd.length > 0xffff) throw invalidArgument(`security descriptor of ${sd.length} bytes exceeds 65535`, { entry: path });
      ino.sdOffset = await this.putObject('sd', u16Counted(sd));
    }
    if (meta.extendedAttributes && meta.extendedAttributes.length > 0) {
      const ea = Buffer.from(meta.extendedAttributes);
      if (ea.length > MAX_FULL_EA_LENGTH) throw invalidArgument(`EA buffer of ${ea.length} bytes exceeds ${MAX_FULL_EA_LENGTH}`, { entry: path });
      try {
        for (const e of decodeEaBuffer(ea)) {
          if (Buffer.byteLength(e.name) > MAX_EA_NAME_LENGTH) throw invalidArgument(`EA name ${JSON.stringify(e.name)} exceeds ${MAX_EA_NAME_LENGTH} bytes`);
        }
      } catch (e) {
        throw invalidArgument(`${path}: invalid EA buffer: ${(e as Error).message}`, { entry: path }, e);
      }
      ino.eaOffset = await this.putObject('ea', ea);
      ino.eaLength = ea.length;
    }
    if (meta.reparseData && meta.reparseData.length > 0) {
      const rp = Buffer.from(meta.reparseData);
      if (rp.length < 8) throw invalidArgument(`reparse buffer of ${rp.length} bytes is shorter than its 8-byte header`, { entry: path });
      if (rp.length > 0xffff) throw invalidArgument(`reparse buffer of ${rp.length} bytes exceeds 65535`, { entry: path });
      ino.reparseOffset = await this.putObject('reparse', u16Counted(rp));
      ino.reparseTag = rp.readUInt32LE(0);
    }
  }

  private openStream(label: string, target: OpenStream['target'], size: bigint, sparseWanted: boolean): void {
    const local = size >= BigInt(this.pageAlignThreshold) ? LOCAL_DATA : LOCAL_SMALL;
    const region = this.regions[local]!;
    const start = region.pad();
    this.stream = { label, target, size, written: 0n, region, start, hash: createHash('sha256'), allZero: true, sparseWanted };
  }

  /** CimWriteStream: appends bytes to the open stream. */
  async write(data: Uint8Array): Promise<void> {
    this.assertOpen();
    const s = this.stream;
    if (!s) throw failedPrecondition('write: no stream is open');
    if (s.written + BigInt(data.length) > s.size) {
      throw invalidArgument(`write: ${s.label} would exceed its declared size ${s.size}`, { entry: s.label });
    }
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    s.hash.update(b);
    if (s.sparseWanted && s.allZero && !isZero(b)) s.allZero = false;
    // Copy (the caller may reuse its buffer) outside Buffer's shared pool, so pending data
    // never pins pool slabs that also hold long-lived small objects.
    const copy = Buffer.allocUnsafeSlow(b.length);
    b.copy(copy);
    await s.region.write(copy);
    s.written += BigInt(b.length);
  }

  /** CimCloseStream: the stream must have received exactly its declared size. */
  async closeStream(): Promise<void> {
    this.assertOpen();
    const s = this.stream;
    if (!s) throw failedPrecondition('closeStream: no stream is open');
    this.stream = undefined;
    if (s.written !== s.size) {
      await s.region.truncateTo(s.start);
      throw invalidArgument(`closeStream: ${s.label} got ${s.written} of ${s.size} bytes`, { entry: s.label });
    }
    let rec: StreamRecord;
    if (s.sparseWanted && s.allZero) {
      // Sparse stream: no data stored, reads return zeros (§3.2 Stream bit 56).
      await s.region.truncateTo(s.start);
      rec = { dataOffset: 0n, length: s.size, type: StreamType.Data, sparse: true };
    } else {
      const digest = s.hash.digest();
      const key = `d${s.size}:${digest.toString('base64')}`;
      const hit = this.dedup.get(key);
      if (hit !== undefined) {
        await s.region.truncateTo(s.start);
        rec = { dataOffset: hit, length: s.size, type: StreamType.Data, sparse: false };
      } else {
        const off = regionOffset(this.globalIndex(s.region.localIndex), s.start);
        s.region.objectIds.push({ length: s.size, digest: Buffer.from(digest.subarray(0, 24)), offset: s.start });
        this.dedup.set(key, off);
        rec = { dataOffset: off, length: s.size, type: StreamType.Data, sparse: false };
      }
    }
    const t = s.target;
    if (t.streamKey !== undefined) (t.inode.streams ??= new Map()).set(t.streamKey, { name: t.streamName!, stream: rec });
    else t.inode.data = rec;
  }

  /**
   * CimCreateAlternateStream: `path` is "file:stream" (a trailing ":$DATA" is accepted). Opens
   * the stream for `write` (call closeStream even when size is 0).
   */
  async createAlternateStream(path: string, size: number | bigint): Promise<void> {
    this.assertOpen();
    this.assertNoStream('createAlternateStream');
    const m = splitStreamPath(path);
    if (!m) throw invalidArgument(`alternate stream path ${JSON.stringify(path)} is not "file:stream"`, { entry: path });
    const [filePath, streamName] = m;
    checkComponent(streamName, path);
    const ino = this.lookup(filePath);
    if (!ino) throw notFound(`${filePath} does not exist`, { entry: path });
    const n = BigInt(size);
    if (n < 0n || n > MAX_STREAM_LENGTH) throw invalidArgument(`stream size ${n} out of range`, { entry: path });
    this.openStream(path, { inode: ino, streamKey: foldWith(this.upcase, streamName), streamName }, n, false);
  }

  /** CimCreateHardLink: `newPath` becomes another name of the file at `existingPath`. */
  async createHardLink(newPath: string, existingPath: string): Promise<void> {
    this.assertOpen();
    this.assertNoStream('createHardLink');
    const target = this.lookup(existingPath);
    if (!target) throw notFound(`hard link target ${existingPath} does not exist`, { entry: newPath });
    if (target.dir) throw invalidArgument(`hard link target ${existingPath} is a directory`, { entry: newPath });
    const parts = splitPath(newPath);
    if (parts.length === 0) throw invalidArgument('cannot link over the root', { entry: newPath });
    const parent = this.parentDir(parts, newPath);
    const name = parts[parts.length - 1]!;
    const key = foldWith(this.upcase, name);
    const old = parent.children!.get(key);
    if (old?.inode.dir) throw alreadyExists(`${newPath} is an existing directory`, { entry: newPath });
    parent.children!.set(key, { name, inode: target });
  }

  /** CimDeletePath: removes a file, or a directory with everything under it. */
  async deletePath(path: string): Promise<void> {
    this.assertOpen();
    this.assertNoStream('deletePath');
    const parts = splitPath(path);
    if (parts.length === 0) throw invalidArgument('cannot delete the root', { entry: path });
    const parent = this.parentDir(parts, path);
    const key = foldWith(this.upcase, parts[parts.length - 1]!);
    if (!parent.children!.delete(key)) throw notFound(`${path} does not exist`, { entry: path });
  }

  /** Convenience: createFile + write all chunks + closeStream. */
  async addFile(path: string, meta: CimFileMetadata, data?: Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    let size = meta.size;
    if (data instanceof Uint8Array && size === undefined) size = data.length;
    await this.createFile(path, { ...meta, size });
    if (!this.stream) return;
    if (data instanceof Uint8Array) await this.write(data);
    else if (data) for await (const c of data) await this.write(c);
    await this.closeStream();
  }

  /** CimCommitImage: writes the metadata, the region and object-ID files, then `<name>.cim`. */
  async commit(): Promise<{ imagePath: string; guid: string; regionFiles: string[]; objectIdFiles: string[] }> {
    this.assertOpen();
    this.assertNoStream('commit');
    const md = this.regions[LOCAL_METADATA]!;
    const mdIndex = this.globalIndex(LOCAL_METADATA);
    try {
      // 1. File IDs: breadth-first in upcase order from the root (root = 1); a hard-linked file
      // gets its ID, and its ParentFileId, where it is first met.
      const order: Inode[] = [];
      this.root.id = 1;
      this.root.parentId = 0;
      order.push(this.root);
      const seen = new Set<Inode>([this.root]);
      for (let i = 0; i < order.length; i++) {
        const dir = order[i]!;
        if (!dir.children) continue;
        for (const l of sortedLinks(dir.children)) {
          if (seen.has(l.inode)) continue;
          seen.add(l.inode);
          l.inode.id = order.length + 1;
          l.inode.parentId = dir.id;
          order.push(l.inode);
        }
      }
      // 2. Link tables and stream tables.
      const dirStreams = new Map<Inode, StreamRecord>();
      const streamTables = new Map<Inode, bigint>();
      for (const ino of order) {
        if (ino.dir) {
          const links = sortedLinks(ino.children!);
          if (links.length === 0) dirStreams.set(ino, { dataOffset: 0n, length: 0n, type: StreamType.LinkTable, sparse: false });
          else {
            const entries: LinkEntry[] = links.map((l) => {
              const v = Buffer.alloc(FILE_ID_SIZE);
              v.writeUInt32LE(l.inode.id, 0);
              return { name: l.name, value: v };
            });
            const tbl = encodeLinkTable(entries, FILE_ID_SIZE);
            const at = await md.appendObject(tbl);
            dirStreams.set(ino, { dataOffset: regionOffset(mdIndex, at), length: BigInt(tbl.length), type: StreamType.LinkTable, sparse: false });
          }
        }
        if (ino.streams && ino.streams.size > 0) {
          const entries = [...ino.streams.entries()]
            .sort((a, b) => compareFolded(a[0], b[0]))
            .map(([, s]) => {
              const v = Buffer.alloc(STREAM_SIZE);
              encodeStream(v, 0, s.stream);
              return { name: s.name, value: v };
            });
          const tbl = encodeLinkTable(entries, STREAM_SIZE);
          const at = await md.appendObject(u32Counted(tbl));
          streamTables.set(ino, regionOffset(mdIndex, at));
        }
      }
      // 3. File tables and their directory.
      const ftd: Buffer = Buffer.alloc(Math.ceil(order.length / FILES_PER_TABLE) * FILE_TABLE_DIR_ENTRY_SIZE);
      for (let t = 0; t * FILES_PER_TABLE < order.length; t++) {
        const slice = order.slice(t * FILES_PER_TABLE, (t + 1) * FILES_PER_TABLE);
        const tb = Buffer.alloc(slice.length * FILE_SIZE);
        slice.forEach((ino, i) =>
          encodeFile(tb, i * FILE_SIZE, {
            flags: ino.flags,
            eaLength: ino.eaLength,
            reparseTag: ino.reparseOffset === 0n ? 0 : ino.reparseTag,
            creationTime: ino.creationTime,
            lastWriteTime: ino.lastWriteTime,
            changeTime: ino.changeTime,
            lastAccessTime: ino.lastAccessTime,
            defaultStream: ino.dir ? dirStreams.get(ino)! : ino.data,
            sdOffset: ino.sdOffset,
            eaOffset: ino.eaOffset,
            reparseOffset: ino.reparseOffset,
            streamTableOffset: streamTables.get(ino) ?? 0n,
            parentFileId: ino.parentId,
            baseRegionIndex: 0,
          }),
        );
        const at = await md.appendObject(tb);
        encodeFileTableDirEntry(ftd, t * FILE_TABLE_DIR_ENTRY_SIZE, { offset: regionOffset(mdIndex, at), count: slice.length, entrySize: FILE_SIZE });
      }
      const ftdOffset = regionOffset(mdIndex, await md.appendObject(ftd));
      // 4. Upcase table (new images only) and the filesystem object.
      if (this.upcaseOffset === 0n) {
        const up = Buffer.alloc(UPCASE_TABLE_LENGTH * 2);
        for (let i = 0; i < UPCASE_TABLE_LENGTH; i++) up.writeUInt16LE(this.upcase[i]!, i * 2);
        this.upcaseOffset = regionOffset(mdIndex, await md.appendObject(up));
      }
      const fsOffset = regionOffset(
        mdIndex,
        await md.appendObject(
          encodeFilesystem({
            upcaseTableOffset: this.upcaseOffset,
            fileTableDirectoryOffset: ftdOffset,
            fileTableDirectoryLength: ftd.length / FILE_TABLE_DIR_ENTRY_SIZE,
            rootDirectory: 1,
          }),
        ),
      );
      // 5. Region files and object-ID files.
      const regionFiles: string[] = [];
      const objectIdFiles: string[] = [];
      for (const r of this.regions) {
        await r.finish();
        regionFiles.push(r.path);
        const ids = [...r.objectIds].sort((a, b) => a.offset - b.offset);
        const ob = Buffer.alloc(OBJECTID_HEADER_SIZE + ids.length * OBJECTID_ENTRY_SIZE);
        encodeObjectIdHeader(r.localIndex, r.regionType, OBJECTID_HEADER_SIZE, ids.length).copy(ob, 0);
        ids.forEach((o, i) => {
          const at = OBJECTID_HEADER_SIZE + i * OBJECTID_ENTRY_SIZE;
          ob.writeBigUInt64LE(o.length, at);
          o.digest.copy(ob, at + 8);
          ob.writeBigUInt64LE(BigInt(o.offset), at + 32);
        });
        const op = join(this.dir, `${OBJECTID_FILE_PREFIX}_${this.guid}_${r.localIndex}`);
        await writeFile(op, ob);
        objectIdFiles.push(op);
      }
      // 6. The image file, last and atomically.
      const imagePath = join(this.dir, `${this.name}.cim`);
      const tmp = `${imagePath}.tmp-${process.pid}`;
      await writeFile(tmp, encodeImageHeader({ regions: { guid: this.guid, count: this.regions.length }, filesystemOffset: fsOffset, parents: this.parents }));
      await rename(tmp, imagePath);
      this.state = 'committed';
      return { imagePath, guid: this.guid, regionFiles, objectIdFiles };
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  /** Abandons the image: closes and removes the region files written so far. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    this.stream = undefined;
    for (const r of this.regions) {
      await r.abort();
      await rm(r.path, { force: true });
      await rm(join(this.dir, `${OBJECTID_FILE_PREFIX}_${this.guid}_${r.localIndex}`), { force: true });
    }
  }
}

function newInode(dir: boolean): Inode {
  return {
    dir,
    flags: 0,
    creationTime: 0n,
    lastWriteTime: 0n,
    changeTime: 0n,
    lastAccessTime: 0n,
    sdOffset: 0n,
    eaOffset: 0n,
    eaLength: 0,
    reparseOffset: 0n,
    reparseTag: 0,
    data: EMPTY_STREAM,
    streams: undefined,
    children: dir ? new Map() : undefined,
    id: 0,
    parentId: 0,
  };
}

function sortedLinks(children: Map<string, Link>): Link[] {
  return [...children.entries()].sort((a, b) => compareFolded(a[0], b[0])).map(([, l]) => l);
}

function dedupKey(kind: string, data: Buffer): string {
  return `${kind}${data.length}:${createHash('sha256').update(data).digest('base64')}`;
}

function u16Counted(b: Buffer): Buffer {
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16LE(b.length, 0);
  b.copy(out, 2);
  return out;
}

function u32Counted(b: Buffer): Buffer {
  const out = Buffer.alloc(4 + b.length);
  out.writeUInt32LE(b.length, 0);
  b.copy(out, 4);
  return out;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
