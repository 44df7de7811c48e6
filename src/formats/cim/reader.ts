/**
 * CimFS v2 image reader (windows-layer-formats.md §3.1–3.3): opens `<name>.cim`, the region
 * files of its parents' region sets and its own, and serves stat, directory listing, data and
 * alternate-stream reads, security descriptors, EAs and reparse buffers.
 *
 * Every offset read from disk is checked before use: region index in range, byte offset past
 * the 40-byte region header, object entirely inside its region file; link tables, file tables
 * and stream records are validated as they are loaded. A corrupt image gives WinsnapError
 * InvalidArgument naming the object and offset — never an out-of-range read.
 */
import { open, stat as fsStat, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { invalidArgument, notFound } from '../../services/errdefs.js';
import { FILE_ATTRIBUTE } from '../wintar/constants.js';
import {
  COMMON_HEADER_SIZE,
  FILES_PER_TABLE,
  FILESYSTEM_HEADER_SIZE,
  FILESYSTEM_SIZE,
  FILE_ID_SIZE,
  FILE_SIZE_V1,
  FILE_TABLE_DIR_ENTRY_SIZE,
  FileFlag,
  FileType,
  LINK_TABLE_HEADER_SIZE,
  MAX_COMPONENT_LENGTH,
  NAME_OFFSET_SIZE,
  PE_IMAGE_SIZE,
  PE_MAPPING_SIZE,
  OBJECTID_FILE_PREFIX,
  REGION_FILE_PREFIX,
  REGION_HEADER_SIZE,
  REGION_SET_SIZE,
  STREAM_SIZE,
  StreamType,
  UPCASE_TABLE_LENGTH,
} from './constants.js';
import { compareFolded, foldWith, splitPath, type Upcase } from './names.js';
import {
  decodeCommonHeader,
  decodeFile,
  decodeFileTableDirEntry,
  decodeFilesystem,
  decodeRegionSet,
  decodeStream,
  formatOffset,
  offsetByte,
  offsetRegion,
  type FileRecord,
  type FileTableDirEntry,
  type FilesystemObject,
  type RegionSet,
  type StreamRecord,
} from './structs.js';
import type { CimDirEntry, CimStat } from './types.js';

interface Region {
  path: string;
  fh: FileHandle;
  size: number;
}

export interface ParsedLinkTable {
  names: string[];
  folded: string[];
  values: Buffer[];
}

export interface CimWalkEntry {
  /** Path from the root with "\\" separators ("" for the root). */
  path: string;
  name: string;
  fileId: number;
  record: FileRecord;
  /** The directory file ID this link is in (0 for the root). */
  parentId: number;
}

const READ_CHUNK = 1 << 20;
const DIR_CACHE_MAX = 4096;

export class CimReader {
  readonly upcase: Upcase;
  private tables: (Buffer | undefined)[];
  private dirCache = new Map<number, ParsedLinkTable>();
  private sdCache = new Map<bigint, Buffer>();

  private constructor(
    readonly imagePath: string,
    readonly regionSet: RegionSet,
    readonly parents: RegionSet[],
    private readonly regions: Region[],
    readonly filesystem: FilesystemObject,
    readonly filesystemOffset: bigint,
    private readonly ftd: FileTableDirEntry[],
    upcase: Upcase,
  ) {
    this.upcase = upcase;
    this.tables = new Array<Buffer | undefined>(ftd.length);
  }

  /** Opens `<dir>/<name>.cim` and the region files of its parents and itself. */
  static async open(imagePath: string): Promise<CimReader> {
    const dir = dirname(imagePath);
    const what = basename(imagePath);
    let fh: FileHandle;
    try {
      fh = await open(imagePath, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`CIM image ${imagePath} does not exist`);
      throw e;
    }
    let head: Buffer;
    try {
      const st = await fh.stat();
      if (st.size < FILESYSTEM_HEADER_SIZE) {
        throw invalidArgument(`${what}: truncated image header (${st.size} bytes, need ${FILESYSTEM_HEADER_SIZE})`, { offset: 0 });
      }
      head = Buffer.alloc(Math.min(st.size, FILESYSTEM_HEADER_SIZE + REGION_SET_SIZE * 0xffff));
      await fh.read(head, 0, head.length, 0);
    } finally {
      await fh.close();
    }
    const common = decodeCommonHeader(head, FileType.Image, what);
    const own = decodeRegionSet(head, COMMON_HEADER_SIZE);
    const fsOffset = head.readBigUInt64LE(56);
    const parentCount = head.readUInt16LE(70);
    const need = FILESYSTEM_HEADER_SIZE + REGION_SET_SIZE * parentCount;
    if (head.length < need) {
      throw invalidArgument(`${what}: truncated: ${parentCount} parent region sets need ${need} bytes, file has ${head.length}`, { offset: 70 });
    }
    if (common.headerLength < FILESYSTEM_HEADER_SIZE || common.headerLength > head.length) {
      throw invalidArgument(`${what}: header length ${common.headerLength} out of range`, { offset: 8 });
    }
    const parents: RegionSet[] = [];
    for (let i = 0; i < parentCount; i++) parents.push(decodeRegionSet(head, FILESYSTEM_HEADER_SIZE + i * REGION_SET_SIZE));
    const seen = new Set<string>();
    let total = 0;
    for (const [i, rs] of [...parents, own].entries()) {
      if (seen.has(rs.guid)) {
        throw invalidArgument(`${what}: region set ${rs.guid} is listed twice (cyclic or repeated parent reference)`, {
          offset: i < parentCount ? FILESYSTEM_HEADER_SIZE + i * REGION_SET_SIZE : COMMON_HEADER_SIZE,
        });
      }
      seen.add(rs.guid);
      if (rs.count === 0) throw invalidArgument(`${what}: region set ${rs.guid} has no regions`);
      total += rs.count;
    }
    if (total > 0x10000) throw invalidArgument(`${what}: ${total} regions exceed the 65536 a region offset can address`);

    const regions: Region[] = [];
    try {
      for (const rs of [...parents, own]) {
        for (let i = 0; i < rs.count; i++) regions.push(await openRegion(join(dir, `${REGION_FILE_PREFIX}_${rs.guid}_${i}`), i));
      }
      const r = new CimReader(imagePath, own, parents, regions, decodeFilesystem(Buffer.alloc(FILESYSTEM_SIZE)), fsOffset, [], new Uint16Array(0));
      const fsBuf = await r.readObject(fsOffset, FILESYSTEM_SIZE, 'filesystem object');
      const fs = decodeFilesystem(fsBuf);
      if (fs.fileTableDirectoryLength > 0x400000) {
        throw invalidArgument(`file table directory length ${fs.fileTableDirectoryLength} is implausible`, { offset: formatOffset(fsOffset + 16n) });
      }
      const ftdBuf = await r.readObject(fs.fileTableDirectoryOffset, fs.fileTableDirectoryLength * FILE_TABLE_DIR_ENTRY_SIZE, 'file table directory');
      const ftd: FileTableDirEntry[] = [];
      for (let i = 0; i < fs.fileTableDirectoryLength; i++) {
        const e = decodeFileTableDirEntry(ftdBuf, i * FILE_TABLE_DIR_ENTRY_SIZE);
        const at = formatOffset(fs.fileTableDirectoryOffset) + `+${i * FILE_TABLE_DIR_ENTRY_SIZE}`;
        if (e.count > FILES_PER_TABLE) throw invalidArgument(`file table ${i} claims ${e.count} files (max ${FILES_PER_TABLE})`, { offset: at });
        if (e.entrySize < FILE_SIZE_V1) throw invalidArgument(`file table ${i} entry size ${e.entrySize} < ${FILE_SIZE_V1}`, { offset: at });
        r.checkRange(e.offset, e.count * e.entrySize, `file table ${i}`);
        ftd.push(e);
      }
      const upBuf = await r.readObject(fs.upcaseTableOffset, UPCASE_TABLE_LENGTH * 2, 'upcase table');
      const upcase = new Uint16Array(UPCASE_TABLE_LENGTH);
      for (let i = 0; i < UPCASE_TABLE_LENGTH; i++) upcase[i] = upBuf.readUInt16LE(i * 2);
      const reader = new CimReader(imagePath, own, parents, regions, fs, fsOffset, ftd, upcase);
      const root = await reader.fileRecord(fs.rootDirectory);
      if (root.defaultStream.type !== StreamType.LinkTable) {
        throw invalidArgument(`root file ID ${fs.rootDirectory} is not a directory`, { offset: formatOffset(fsOffset + 20n) });
      }
      return reader;
    } catch (e) {
      for (const rg of regions) await rg.fh.close().catch(() => undefined);
      throw e;
    }
  }

  async close(): Promise<void> {
    for (const rg of this.regions) await rg.fh.close().catch(() => undefined);
  }

  /** Region files in index order (parents' sets first). */
  regionPaths(): string[] {
    return this.regions.map((r) => r.path);
  }

  get regionCount(): number {
    return this.regions.length;
  }

  get rootId(): number {
    return this.filesystem.rootDirectory;
  }

  get fileCount(): number {
    return this.ftd.reduce((n, e) => n + e.count, 0);
  }

  // ---- bounds-checked object access -----------------------------------------------------------

  /** Throws InvalidArgument unless [off, off+len) lies inside a region, past its header. */
  checkRange(off: bigint, len: number | bigint, what: string): { region: Region; byte: number } {
    const idx = offsetRegion(off);
    const byte = offsetByte(off);
    if (off === 0n) throw invalidArgument(`${what}: null region offset`, { offset: '0x0' });
    const region = this.regions[idx];
    if (!region) {
      throw invalidArgument(`${what}: region offset ${formatOffset(off)} names region ${idx}, image has ${this.regions.length}`, { offset: formatOffset(off) });
    }
    if (byte < REGION_HEADER_SIZE) {
      throw invalidArgument(`${what}: region offset ${formatOffset(off)} points into the region header`, { offset: formatOffset(off) });
    }
    if (BigInt(byte) + BigInt(len) > BigInt(region.size)) {
      throw invalidArgument(
        `${what}: region offset ${formatOffset(off)} + ${len} bytes runs past the end of ${basename(region.path)} (${region.size} bytes)`,
        { offset: formatOffset(off) },
      );
    }
    return { region, byte };
  }

  async readObject(off: bigint, len: number, what: string, at = 0): Promise<Buffer> {
    const target = off + BigInt(at);
    const { region, byte } = this.checkRange(target, len, what);
    const buf = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const { bytesRead } = await region.fh.read(buf, done, len - done, byte + done);
      if (bytesRead === 0) throw invalidArgument(`${what}: ${basename(region.path)} shrank while reading`, { offset: formatOffset(target) });
      done += bytesRead;
    }
    return buf;
  }

  private async readCounted(off: bigint, prefix: 2 | 4, what: string): Promise<Buffer> {
    const head = await this.readObject(off, prefix, what);
    const n = prefix === 2 ? head.readUInt16LE(0) : head.readUInt32LE(0);
    return this.readObject(off, n, what, prefix);
  }

  // ---- files -----------------------------------------------------------------------------------

  async fileRecord(id: number): Promise<FileRecord> {
    if (!Number.isInteger(id) || id < 1) throw invalidArgument(`invalid file ID ${id}`);
    const t = Math.floor((id - 1) / FILES_PER_TABLE);
    const slot = (id - 1) % FILES_PER_TABLE;
    const e = this.ftd[t];
    if (!e || slot >= e.count) throw invalidArgument(`file ID ${id} is not in the file tables (${this.fileCount} files)`);
    let table = this.tables[t];
    if (!table) {
      table = await this.readObject(e.offset, e.count * e.entrySize, `file table ${t}`);
      this.tables[t] = table;
    }
    const rec = decodeFile(table, slot * e.entrySize, e.entrySize);
    if (rec.defaultStream.type > StreamType.PeImage) {
      throw invalidArgument(`file ID ${id}: unsupported stream type ${rec.defaultStream.type}`, { offset: formatOffset(e.offset) + `+${slot * e.entrySize + 40}` });
    }
    return rec;
  }

  static isDir(rec: FileRecord): boolean {
    return rec.defaultStream.type === StreamType.LinkTable;
  }

  /** Win32 attributes as cimfs derives them (§3.2: flags + DIRECTORY + REPARSE_POINT). */
  static attributes(rec: FileRecord): number {
    let a = 0;
    if (rec.flags & FileFlag.ReadOnly) a |= FILE_ATTRIBUTE.READONLY;
    if (rec.flags & FileFlag.Hidden) a |= FILE_ATTRIBUTE.HIDDEN;
    if (rec.flags & FileFlag.System) a |= FILE_ATTRIBUTE.SYSTEM;
    if (rec.flags & FileFlag.Archive) a |= FILE_ATTRIBUTE.ARCHIVE;
    if (rec.flags & FileFlag.Sparse) a |= FILE_ATTRIBUTE.SPARSE_FILE;
    if (CimReader.isDir(rec)) a |= FILE_ATTRIBUTE.DIRECTORY;
    if (rec.reparseOffset !== 0n) a |= FILE_ATTRIBUTE.REPARSE_POINT;
    return a;
  }

  // ---- link tables -------------------------------------------------------------------------------

  /** Parses and validates a link table (`esize` 4 for directories, 16 for stream tables). */
  parseLinkTable(b: Buffer, esize: number, what: string, at: bigint): ParsedLinkTable {
    const where = (rel: number): string => `${formatOffset(at)}+${rel}`;
    if (b.length < LINK_TABLE_HEADER_SIZE) throw invalidArgument(`${what}: link table of ${b.length} bytes is truncated`, { offset: where(0) });
    const size = b.readUInt32LE(0);
    const n = b.readUInt32LE(4);
    if (size < LINK_TABLE_HEADER_SIZE || size > b.length) {
      throw invalidArgument(`${what}: link table length ${size} does not fit its ${b.length}-byte object`, { offset: where(0) });
    }
    const fixed = LINK_TABLE_HEADER_SIZE + n * (esize + NAME_OFFSET_SIZE);
    if (fixed > size) throw invalidArgument(`${what}: link table count ${n} does not fit length ${size}`, { offset: where(4) });
    const names: string[] = [];
    const folded: string[] = [];
    const values: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const noAt = LINK_TABLE_HEADER_SIZE + n * esize + i * NAME_OFFSET_SIZE;
      const no = b.readUInt32LE(noAt);
      if (no < fixed || no + 2 > size) {
        throw invalidArgument(`${what}: name offset ${no} of entry ${i} is outside the name area [${fixed}, ${size})`, { offset: where(noAt) });
      }
      const len = b.readUInt16LE(no);
      if (len === 0 || len > MAX_COMPONENT_LENGTH || no + 2 + 2 * len > size) {
        throw invalidArgument(`${what}: name length ${len} of entry ${i} is invalid or runs past the table`, { offset: where(no) });
      }
      const name = b.toString('utf16le', no + 2, no + 2 + 2 * len);
      const f = foldWith(this.upcase, name);
      if (i > 0 && compareFolded(folded[i - 1]!, f) >= 0) {
        throw invalidArgument(`${what}: link table is not sorted by upcased name at entry ${i} (${JSON.stringify(name)})`, { offset: where(no) });
      }
      names.push(name);
      folded.push(f);
      values.push(b.subarray(LINK_TABLE_HEADER_SIZE + i * esize, LINK_TABLE_HEADER_SIZE + (i + 1) * esize));
    }
    return { names, folded, values };
  }

  private async dirTable(id: number, rec: FileRecord): Promise<ParsedLinkTable> {
    const cached = this.dirCache.get(id);
    if (cached) return cached;
    const s = rec.defaultStream;
    let t: ParsedLinkTable;
    if (s.length === 0n) t = { names: [], folded: [], values: [] };
    else {
      if (s.length > 0x7fffffffn) throw invalidArgument(`directory file ID ${id}: link table length ${s.length} is implausible`);
      const b = await this.readObject(s.dataOffset, Number(s.length), `directory file ID ${id}`);
      t = this.parseLinkTable(b, FILE_ID_SIZE, `directory file ID ${id}`, s.dataOffset);
      const max = this.fileCount;
      t.values.forEach((v, i) => {
        const child = v.readUInt32LE(0);
        if (child < 1 || child > max) {
          throw invalidArgument(`directory file ID ${id}: entry ${JSON.stringify(t.names[i])} refers to file ID ${child}, image has ${max}`, {
            offset: formatOffset(s.dataOffset) + `+${LINK_TABLE_HEADER_SIZE + i * FILE_ID_SIZE}`,
          });
        }
      });
    }
    if (this.dirCache.size >= DIR_CACHE_MAX) this.dirCache.clear();
    this.dirCache.set(id, t);
    return t;
  }

  /** Directory entries of a directory file ID, in on-disk (upcase) order. */
  async readdirById(id: number): Promise<CimDirEntry[]> {
    const rec = await this.fileRecord(id);
    if (!CimReader.isDir(rec)) throw invalidArgument(`file ID ${id} is not a directory`);
    const t = await this.dirTable(id, rec);
    return t.names.map((name, i) => ({ name, fileId: t.values[i]!.readUInt32LE(0) }));
  }

  /** Binary search of one directory by name (case-insensitive through the image's upcase table). */
  async lookupChild(dirId: number, name: string): Promise<number | undefined> {
    const rec = await this.fileRecord(dirId);
    if (!CimReader.isDir(rec)) return undefined;
    const t = await this.dirTable(dirId, rec);
    const key = foldWith(this.upcase, name);
    let lo = 0;
    let hi = t.folded.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareFolded(key, t.folded[mid]!);
      if (c === 0) return t.values[mid]!.readUInt32LE(0);
      if (c < 0) hi = mid;
      else lo = mid + 1;
    }
    return undefined;
  }

  /** Resolves a path ("\\" or "/" separated, relative to the root) to a file ID. */
  async resolve(path: string): Promise<number> {
    let id = this.rootId;
    const parts = splitPath(path);
    for (const [i, p] of parts.entries()) {
      const rec = await this.fileRecord(id);
      if (!CimReader.isDir(rec)) throw notFound(`${parts.slice(0, i).join('\\')} is not a directory`, { entry: path });
      const next = await this.lookupChild(id, p);
      if (next === undefined) throw notFound(`${path} does not exist in ${basename(this.imagePath)}`, { entry: path });
      id = next;
    }
    return id;
  }

  // ---- SD / EA / reparse / streams -----------------------------------------------------------

  async securityDescriptor(rec: FileRecord): Promise<Buffer | undefined> {
    if (rec.sdOffset === 0n) return undefined;
    let sd = this.sdCache.get(rec.sdOffset);
    if (!sd) {
      sd = await this.readCounted(rec.sdOffset, 2, 'security descriptor');
      if (this.sdCache.size > 4096) this.sdCache.clear();
      this.sdCache.set(rec.sdOffset, sd);
    }
    return sd;
  }

  async extendedAttributes(rec: FileRecord): Promise<Buffer | undefined> {
    if (rec.eaOffset === 0n) return undefined;
    return this.readObject(rec.eaOffset, rec.eaLength, 'extended attributes');
  }

  async reparseData(rec: FileRecord): Promise<Buffer | undefined> {
    if (rec.reparseOffset === 0n) return undefined;
    return this.readCounted(rec.reparseOffset, 2, 'reparse buffer');
  }

  /** The alternate data streams of a file (name + stream record), in link-table order. */
  async streamTable(rec: FileRecord): Promise<{ name: string; stream: StreamRecord }[]> {
    if (rec.streamTableOffset === 0n) return [];
    const b = await this.readCounted(rec.streamTableOffset, 4, 'stream table');
    const t = this.parseLinkTable(b, STREAM_SIZE, 'stream table', rec.streamTableOffset + 4n);
    return t.names.map((name, i) => {
      const stream = decodeStream(t.values[i]!, 0);
      if (stream.type !== StreamType.Data) {
        throw invalidArgument(`stream ${JSON.stringify(name)}: unsupported stream type ${stream.type}`, { offset: formatOffset(rec.streamTableOffset) });
      }
      return { name, stream };
    });
  }

  async statById(id: number): Promise<CimStat> {
    const rec = await this.fileRecord(id);
    const streams = await this.streamTable(rec);
    return {
      fileId: id,
      attributes: CimReader.attributes(rec),
      isDirectory: CimReader.isDir(rec),
      size: CimReader.isDir(rec) ? 0n : rec.defaultStream.length,
      creationTime: rec.creationTime,
      lastWriteTime: rec.lastWriteTime,
      changeTime: rec.changeTime,
      lastAccessTime: rec.lastAccessTime,
      securityDescriptor: await this.securityDescriptor(rec),
      extendedAttributes: await this.extendedAttributes(rec),
      reparseData: await this.reparseData(rec),
      reparseTag: rec.reparseTag,
      sparse: rec.defaultStream.sparse,
      peImage: rec.defaultStream.type === StreamType.PeImage,
      streams: streams.map((s) => ({ name: s.name, size: s.stream.length, sparse: s.stream.sparse })),
      parentFileId: rec.parentFileId,
    };
  }

  async stat(path: string): Promise<CimStat> {
    return this.statById(await this.resolve(path));
  }

  async readdir(path: string): Promise<CimDirEntry[]> {
    return this.readdirById(await this.resolve(path));
  }

  // ---- data ------------------------------------------------------------------------------------

  /** Reads a stream's bytes in chunks (bounded memory). */
  async *readStreamRecord(s: StreamRecord, what: string): AsyncGenerator<Buffer> {
    const total = s.length;
    if (total === 0n) return;
    if (s.sparse) {
      let left = total;
      while (left > 0n) {
        const n = left > BigInt(READ_CHUNK) ? READ_CHUNK : Number(left);
        yield Buffer.alloc(n);
        left -= BigInt(n);
      }
      return;
    }
    if (s.type === StreamType.LinkTable) throw invalidArgument(`${what}: is a directory`);
    if (s.type === StreamType.PeImage) {
      yield* this.readPeImage(s, what);
      return;
    }
    this.checkRange(s.dataOffset, total, what);
    let pos = 0n;
    while (pos < total) {
      const n = total - pos > BigInt(READ_CHUNK) ? READ_CHUNK : Number(total - pos);
      yield await this.readObject(s.dataOffset + pos, n, what);
      pos += BigInt(n);
    }
  }

  /** PE image streams: data at PeImage.DataOffset remapped by {FileOffset, Delta} segments. */
  private async *readPeImage(s: StreamRecord, what: string): AsyncGenerator<Buffer> {
    const pe = await this.readObject(s.dataOffset, PE_IMAGE_SIZE, `${what}: PE image descriptor`);
    const dataOffset = pe.readBigUInt64LE(0);
    const dataLength = pe.readBigUInt64LE(8) & 0x7fffffffffffffffn;
    const count = pe.readUInt16LE(20);
    const mb = await this.readObject(s.dataOffset, count * PE_MAPPING_SIZE, `${what}: PE image mappings`, PE_IMAGE_SIZE);
    const maps: { fileOffset: bigint; delta: bigint }[] = [];
    for (let i = 0; i < count; i++) {
      const m = { fileOffset: BigInt(mb.readUInt32LE(i * 8)), delta: BigInt(mb.readUInt32LE(i * 8 + 4)) };
      if (i > 0 && m.fileOffset <= maps[i - 1]!.fileOffset) {
        throw invalidArgument(`${what}: PE image mappings are not in increasing file-offset order`, { offset: formatOffset(s.dataOffset) });
      }
      maps.push(m);
    }
    const total = s.length < dataLength ? s.length : dataLength;
    if (total < s.length) throw invalidArgument(`${what}: stream length ${s.length} exceeds PE data length ${dataLength}`, { offset: formatOffset(s.dataOffset) });
    let pos = 0n;
    while (pos < total) {
      let delta = 0n;
      let end = dataLength;
      for (const m of maps) {
        if (m.fileOffset > pos) {
          end = m.fileOffset;
          break;
        }
        delta = m.delta;
      }
      if (end > total) end = total;
      let n = end - pos;
      if (n > BigInt(READ_CHUNK)) n = BigInt(READ_CHUNK);
      yield await this.readObject(dataOffset + pos + delta, Number(n), what);
      pos += n;
    }
  }

  /** The default stream (or the named alternate stream) of the file at `path`. */
  async *read(path: string, streamName?: string): AsyncGenerator<Buffer> {
    const id = await this.resolve(path);
    yield* this.readById(id, streamName, path);
  }

  async *readById(id: number, streamName?: string, label = `file ID ${id}`): AsyncGenerator<Buffer> {
    const rec = await this.fileRecord(id);
    if (streamName === undefined || streamName === '') {
      if (CimReader.isDir(rec)) throw invalidArgument(`${label} is a directory`, { entry: label });
      yield* this.readStreamRecord(rec.defaultStream, label);
      return;
    }
    const key = foldWith(this.upcase, streamName);
    const s = (await this.streamTable(rec)).find((x) => foldWith(this.upcase, x.name) === key);
    if (!s) throw notFound(`${label} has no stream ${JSON.stringify(streamName)}`, { entry: label });
    yield* this.readStreamRecord(s.stream, `${label}:${s.name}`);
  }

  async readFile(path: string, streamName?: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const b of this.read(path, streamName)) parts.push(b);
    return Buffer.concat(parts);
  }

  /**
   * Depth-first walk in link-table order, root first. A directory reached twice (a cycle or a
   * hard-linked directory) is a corrupt image.
   */
  async *walk(): AsyncGenerator<CimWalkEntry> {
    const seenDirs = new Set<number>();
    const rootRec = await this.fileRecord(this.rootId);
    seenDirs.add(this.rootId);
    yield { path: '', name: '', fileId: this.rootId, record: rootRec, parentId: 0 };
    const stack: { id: number; path: string }[] = [{ id: this.rootId, path: '' }];
    while (stack.length > 0) {
      const { id, path } = stack.pop()!;
      const entries = await this.readdirById(id);
      const subdirs: { id: number; path: string }[] = [];
      for (const e of entries) {
        const rec = await this.fileRecord(e.fileId);
        const p = path === '' ? e.name : `${path}\\${e.name}`;
        if (CimReader.isDir(rec)) {
          if (seenDirs.has(e.fileId)) {
            throw invalidArgument(`directory file ID ${e.fileId} is linked more than once (at ${p}): cyclic or shared directory`, { entry: p });
          }
          seenDirs.add(e.fileId);
          subdirs.push({ id: e.fileId, path: p });
        }
        yield { path: p, name: e.name, fileId: e.fileId, record: rec, parentId: id };
      }
      for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
    }
  }
}

async function openRegion(path: string, localIndex: number): Promise<Region> {
  const what = basename(path);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`region file ${what} does not exist`);
    throw e;
  }
  try {
    const st = await fh.stat();
    const head = Buffer.alloc(Math.min(st.size, REGION_HEADER_SIZE));
    await fh.read(head, 0, head.length, 0);
    if (head.length < REGION_HEADER_SIZE) {
      throw invalidArgument(`${what}: truncated region header (${st.size} bytes, need ${REGION_HEADER_SIZE})`, { offset: 0 });
    }
    decodeCommonHeader(head, FileType.Region, what);
    const idx = head.readUInt16LE(32);
    if (idx !== localIndex) throw invalidArgument(`${what}: region header index ${idx}, file name says ${localIndex}`, { offset: 32 });
    return { path, fh, size: st.size };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** True when `path` exists and starts with the CIM magic. */
export async function isCimImage(path: string): Promise<boolean> {
  try {
    const st = await fsStat(path);
    if (!st.isFile()) return false;
    const fh = await open(path, 'r');
    try {
      const b = Buffer.alloc(8);
      await fh.read(b, 0, 8, 0);
      return b.toString('latin1') === 'cimfile0';
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/**
 * The files that belong to one image (not its parents): `<name>.cim`, its own
 * `region_<guid>_<i>` files and whichever `objectid_<guid>_<i>` files exist. Reads only the
 * image header, so it works when region files are damaged or missing.
 */
export async function cimImageFiles(imagePath: string): Promise<string[]> {
  const fh = await open(imagePath, 'r').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw notFound(`CIM image ${imagePath} does not exist`);
    throw e;
  });
  const head = Buffer.alloc(FILESYSTEM_HEADER_SIZE);
  let n: number;
  try {
    ({ bytesRead: n } = await fh.read(head, 0, head.length, 0));
  } finally {
    await fh.close();
  }
  if (n < FILESYSTEM_HEADER_SIZE) throw invalidArgument(`${basename(imagePath)}: truncated image header (${n} bytes)`, { offset: 0 });
  decodeCommonHeader(head, FileType.Image, basename(imagePath));
  const own = decodeRegionSet(head, COMMON_HEADER_SIZE);
  const dir = dirname(imagePath);
  const out = [imagePath];
  for (let i = 0; i < own.count; i++) out.push(join(dir, `${REGION_FILE_PREFIX}_${own.guid}_${i}`));
  for (let i = 0; i < own.count; i++) {
    const p = join(dir, `${OBJECTID_FILE_PREFIX}_${own.guid}_${i}`);
    if (await fsStat(p).then(() => true, () => false)) out.push(p);
  }
  return out;
}
