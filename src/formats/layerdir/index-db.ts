/**
 * The metadata index of a Windows layer directory: `winsnap-layer.db`, a SQLite file with
 * one row per tar entry in tar order. A row keeps everything needed to write the entry back
 * exactly (typeflag, mode, ids, names, times, device numbers, size, the raw PAX records)
 * plus what lookups need: the case-folded name, the entry kind, the host path holding its
 * data and, for whiteouts and hard links, the folded target.
 *
 * The file is written under a temporary name and renamed into place last: a layer is
 * complete exactly when its index exists (invariant 3, atomic).
 */
import Database from 'better-sqlite3';
import { existsSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { alreadyExists, failedPrecondition, invalidArgument } from '../../services/errdefs.js';
import { encodePaxRecords, parsePaxRecords } from '../tar/pax.js';
import type { PaxRecord, TarHeaderInput } from '../tar/types.js';

export const INDEX_FILE = 'winsnap-layer.db';
export const INDEX_FORMAT_VERSION = '1';

export enum EntryKind {
  File = 0,
  Dir = 1,
  Reparse = 2,
  HardLink = 3,
  Ads = 4,
  Whiteout = 5,
  Other = 6,
}

export interface IndexedEntry {
  seq: number;
  /** the tar name exactly as written (may end in '/') */
  name: string;
  folded: string;
  kind: EntryKind;
  /** host path (relative to the layer directory) of the data or directory, if any */
  host: string | null;
  /** whiteout: folded name it deletes; hard link: folded name it links to */
  target: string | null;
  header: TarHeaderInput & { pax: PaxRecord[]; size: number; mode: number };
  /** FILE_ATTRIBUTE_* of the entry (from MSWINDOWS.fileattr or defaults) */
  attributes: number;
}

const SCHEMA = `
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE entries (
  seq INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  folded TEXT NOT NULL,
  kind INTEGER NOT NULL,
  host TEXT,
  target TEXT,
  attributes INTEGER NOT NULL,
  typeflag INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  uname TEXT NOT NULL,
  gname TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_s INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  linkname TEXT NOT NULL,
  devmajor INTEGER NOT NULL,
  devminor INTEGER NOT NULL,
  pax BLOB
);
CREATE UNIQUE INDEX entries_folded ON entries(folded);
CREATE INDEX entries_target ON entries(target) WHERE target IS NOT NULL;
`;

interface Row {
  seq: number;
  name: string;
  folded: string;
  kind: number;
  host: string | null;
  target: string | null;
  attributes: number;
  typeflag: number;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime_s: number | bigint;
  mtime_ns: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  pax: Buffer | null;
}

function rowToEntry(r: Row): IndexedEntry {
  const pax = r.pax ? parsePaxRecords(r.pax, { offset: 0, entry: r.name }) : [];
  return {
    seq: r.seq,
    name: r.name,
    folded: r.folded,
    kind: r.kind as EntryKind,
    host: r.host,
    target: r.target,
    attributes: r.attributes,
    header: {
      name: r.name,
      typeflag: r.typeflag,
      mode: r.mode,
      uid: r.uid,
      gid: r.gid,
      uname: r.uname,
      gname: r.gname,
      size: r.size,
      mtime: { sec: BigInt(r.mtime_s), nsec: r.mtime_ns },
      linkname: r.linkname,
      devmajor: r.devmajor,
      devminor: r.devminor,
      pax,
    },
  };
}

const TYPEFLAG: Record<string, number> = {
  file: 0x30, link: 0x31, symlink: 0x32, char: 0x33, block: 0x34, dir: 0x35, fifo: 0x36, contiguous: 0x37,
};

/** The typeflag byte a header input stands for. */
export function typeflagOf(h: TarHeaderInput): number {
  return h.typeflag ?? TYPEFLAG[h.type ?? 'file'] ?? 0x30;
}

/** Builds a new index; `commit()` renames it into place. */
export class IndexWriter {
  private readonly db: Database.Database;
  private readonly tmp: string;
  private readonly insertStmt: Database.Statement;
  private readonly byFolded: Database.Statement;
  private seq = 0;
  private done = false;

  constructor(private readonly layerDir: string, meta: Record<string, string> = {}) {
    this.tmp = join(layerDir, `${INDEX_FILE}.tmp-${process.pid}-${Date.now()}`);
    this.db = new Database(this.tmp);
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.exec(SCHEMA);
    this.db.exec('BEGIN');
    const putMeta = this.db.prepare('INSERT INTO meta(name, value) VALUES (?, ?)');
    putMeta.run('format', INDEX_FORMAT_VERSION);
    for (const [k, v] of Object.entries(meta)) putMeta.run(k, v);
    this.insertStmt = this.db.prepare(
      `INSERT INTO entries(seq, name, folded, kind, host, target, attributes, typeflag, mode, uid, gid, uname, gname, size, mtime_s, mtime_ns, linkname, devmajor, devminor, pax)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.byFolded = this.db.prepare('SELECT * FROM entries WHERE folded = ?');
  }

  /** Adds the next entry (tar order). A folded name seen before is a duplicate: InvalidArgument. */
  add(e: Omit<IndexedEntry, 'seq'>, offset?: number): number {
    const h = e.header;
    const mtime = typeof h.mtime === 'number' ? { sec: BigInt(Math.floor(h.mtime)), nsec: 0 } : h.mtime ?? { sec: 0n, nsec: 0 };
    const seq = this.seq++;
    try {
      this.insertStmt.run(
        seq, e.name, e.folded, e.kind, e.host, e.target, e.attributes >>> 0,
        typeflagOf(h), h.mode, h.uid ?? 0, h.gid ?? 0, h.uname ?? '', h.gname ?? '', h.size,
        mtime.sec, mtime.nsec, h.linkname ?? '', h.devmajor ?? 0, h.devminor ?? 0,
        h.pax.length > 0 ? encodePaxRecords(h.pax) : null,
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        const prev = this.byFolded.get(e.folded) as Row | undefined;
        throw invalidArgument(`duplicate layer entry "${e.name}" (same name as "${prev?.name ?? '?'}" ignoring case)`, {
          entry: e.name,
          offset,
        });
      }
      throw err;
    }
    return seq;
  }

  /** The entry already added under a folded name, if any. */
  get(folded: string): IndexedEntry | undefined {
    const r = this.byFolded.get(folded) as Row | undefined;
    return r ? rowToEntry(r) : undefined;
  }

  get count(): number {
    return this.seq;
  }

  /** Writes the index durably and renames it into place (the commit point of the layer). */
  commit(): void {
    if (this.done) throw failedPrecondition('layer index already finished');
    this.done = true;
    this.db.exec('COMMIT');
    this.db.pragma('journal_mode = DELETE');
    this.db.close();
    const final = join(this.layerDir, INDEX_FILE);
    if (existsSync(final)) {
      rmSync(this.tmp, { force: true });
      throw alreadyExists(`${this.layerDir} already holds a layer index`, { path: this.layerDir });
    }
    renameSync(this.tmp, final);
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    try {
      this.db.close();
    } finally {
      rmSync(this.tmp, { force: true });
    }
  }
}

/** A committed layer index, read-only. */
export class LayerIndex {
  private readonly db: Database.Database;
  private readonly byFolded: Database.Statement;
  private readonly whiteoutFor: Database.Statement;

  private constructor(readonly layerDir: string) {
    this.db = new Database(join(layerDir, INDEX_FILE), { readonly: true, fileMustExist: true });
    this.byFolded = this.db.prepare('SELECT * FROM entries WHERE folded = ?');
    this.whiteoutFor = this.db.prepare('SELECT 1 FROM entries WHERE kind = 5 AND target = ? LIMIT 1').pluck();
  }

  static exists(layerDir: string): boolean {
    return existsSync(join(layerDir, INDEX_FILE));
  }

  static open(layerDir: string): LayerIndex {
    if (!LayerIndex.exists(layerDir)) {
      throw failedPrecondition(`${layerDir} is not a complete layer (no ${INDEX_FILE})`, { path: layerDir });
    }
    const ix = new LayerIndex(layerDir);
    const v = ix.meta('format');
    if (v !== INDEX_FORMAT_VERSION) {
      ix.close();
      throw failedPrecondition(`${layerDir}: layer index format ${String(v)} is not supported`, { path: layerDir });
    }
    return ix;
  }

  meta(name: string): string | undefined {
    return this.db.prepare('SELECT value FROM meta WHERE name = ?').pluck().get(name) as string | undefined;
  }

  get(folded: string): IndexedEntry | undefined {
    const r = this.byFolded.get(folded) as Row | undefined;
    return r ? rowToEntry(r) : undefined;
  }

  /** Whether this layer deletes the (folded) name with a whiteout. */
  deletes(folded: string): boolean {
    return this.whiteoutFor.get(folded) !== undefined;
  }

  /** Every entry in tar order (streamed from the database). */
  *entries(): Generator<IndexedEntry> {
    for (const r of this.db.prepare('SELECT * FROM entries ORDER BY seq').iterate() as Iterable<Row>) yield rowToEntry(r);
  }

  /** Entries whose folded name starts with a folded directory prefix (for listings). */
  *under(foldedDir: string): Generator<IndexedEntry> {
    const lo = `${foldedDir}/`;
    const hi = `${foldedDir}0`; // '/' + 1
    for (const r of this.db.prepare('SELECT * FROM entries WHERE folded >= ? AND folded < ? ORDER BY folded').iterate(lo, hi) as Iterable<Row>) {
      yield rowToEntry(r);
    }
  }

  get count(): number {
    return Number(this.db.prepare('SELECT count(*) FROM entries').pluck().get());
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
