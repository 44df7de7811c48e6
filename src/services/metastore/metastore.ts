/**
 * Snapshot metadata store on SQLite with containerd's storage semantics
 * (snapshots/storage/bolt.go, facts in reference/containerd-semantics.md):
 *
 * - create: only Active/View; parent must exist (NotFound) and be Committed
 *   (InvalidArgument); duplicate key → AlreadyExists; returns the ID and the parent chain
 *   (immediate parent first).
 * - getSnapshot on a committed key → FailedPrecondition.
 * - update: `labels` replaces, `labels.<k>` sets/deletes one, anything else InvalidArgument;
 *   no paths = replace labels; bumps `updated`.
 * - commit: name used → AlreadyExists (checked first, as bolt), key missing → NotFound,
 *   not Active → FailedPrecondition; keeps the ID; labels from the commit options replace
 *   the old ones; usage stored; created = updated = now.
 * - remove: missing → NotFound; children → FailedPrecondition; returns ID and kind.
 * - walk: byte order of keys, filtered with containerd's filter language.
 *
 * Every operation runs in a transaction; writers take the lock up front (BEGIN IMMEDIATE)
 * and wait on a busy timeout, so several processes can share one root. The database runs
 * in WAL mode with synchronous=FULL: a committed transaction survives a crash.
 */
import Database from 'better-sqlite3';
import { alreadyExists, failedPrecondition, invalidArgument, notFound } from '../errdefs.js';
import { parseFilters, type Adaptor } from '../filters/index.js';
import { KIND_NUMBER, nowNs, type Info, type InfoUpdate, type Kind, type Usage } from '../snapshots.js';
import { SCHEMA_SQL, SCHEMA_VERSION } from './schema.js';

const KIND_OF_NUMBER: Record<number, Kind> = { 1: 'view', 2: 'active', 3: 'committed' };

/** What a snapshotter needs to lay out an active or view snapshot. */
export interface StoredSnapshot {
  id: string;
  kind: Kind;
  /** parent IDs, immediate parent first, base last */
  parentIds: string[];
}

export interface StoredInfo {
  id: string;
  info: Info;
  usage: Usage;
}

interface SnapshotRow {
  id: bigint;
  key: string;
  kind: number;
  parent_id: bigint | null;
  parent_key: string | null;
  created: bigint;
  updated: bigint;
  size: bigint;
  inodes: bigint;
}

export interface MetaStoreOptions {
  /** milliseconds to wait for another process's write lock (default 30 s) */
  busyTimeoutMs?: number;
  readonly?: boolean;
}

/** The adaptor containerd's storage uses for snapshot filters (bolt.go adaptSnapshot). */
export function snapshotAdaptor(info: Info): Adaptor {
  return {
    field(path: string[]): string | undefined {
      switch (path[0]) {
        case 'kind':
          return info.kind;
        case 'name':
          return info.name;
        case 'parent':
          return info.parent;
        case 'labels': {
          const k = path.slice(1).join('.');
          return Object.prototype.hasOwnProperty.call(info.labels, k) ? info.labels[k] : undefined;
        }
        default:
          return undefined;
      }
    },
  };
}

export class MetaStore {
  private readonly db: Database.Database;
  private closed = false;
  private readonly stmts: ReturnType<MetaStore['prepareStatements']>;

  constructor(readonly path: string, opts: MetaStoreOptions = {}) {
    this.db = new Database(path, { readonly: opts.readonly ?? false, timeout: opts.busyTimeoutMs ?? 30_000 });
    this.db.defaultSafeIntegers(true);
    if (!opts.readonly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('foreign_keys = ON');
      this.db.transaction(() => {
        this.db.exec(SCHEMA_SQL);
        this.db
          .prepare('INSERT OR IGNORE INTO meta(name, value) VALUES (?, ?)')
          .run('schema_version', String(SCHEMA_VERSION));
      }).immediate();
    }
    const v = this.db.prepare('SELECT value FROM meta WHERE name = ?').pluck().get('schema_version') as string | undefined;
    if (v !== undefined && Number(v) > SCHEMA_VERSION) {
      this.db.close();
      throw failedPrecondition(`metadata store ${path} has schema version ${v}, newer than this winsnap (${SCHEMA_VERSION})`);
    }
    this.stmts = this.prepareStatements();
  }

  private prepareStatements() {
    const db = this.db;
    const select = `SELECT s.id, s.key, s.kind, s.parent_id, p.key AS parent_key, s.created, s.updated, s.size, s.inodes
      FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;
    return {
      byKey: db.prepare(`${select} WHERE s.key = ?`),
      all: db.prepare(`${select} ORDER BY CAST(s.key AS BLOB)`),
      labels: db.prepare('SELECT name, value FROM labels WHERE snapshot_id = ?'),
      allLabels: db.prepare('SELECT snapshot_id, name, value FROM labels'),
      insert: db.prepare('INSERT INTO snapshots(key, kind, parent_id, created, updated) VALUES (?, ?, ?, ?, ?)'),
      insertLabel: db.prepare('INSERT INTO labels(snapshot_id, name, value) VALUES (?, ?, ?)'),
      deleteLabels: db.prepare('DELETE FROM labels WHERE snapshot_id = ?'),
      setUpdated: db.prepare('UPDATE snapshots SET updated = ? WHERE id = ?'),
      commit: db.prepare('UPDATE snapshots SET key = ?, kind = 3, created = ?, updated = ?, size = ?, inodes = ? WHERE id = ?'),
      hasChild: db.prepare('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').pluck(),
      delete: db.prepare('DELETE FROM snapshots WHERE id = ?'),
      parentChain: db.prepare(`WITH RECURSIVE chain(id, parent_id, depth) AS (
          SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
          UNION ALL SELECT s.id, s.parent_id, chain.depth + 1 FROM snapshots s JOIN chain ON s.id = chain.parent_id)
        SELECT id FROM chain ORDER BY depth`).pluck(),
      idMap: db.prepare('SELECT id, key FROM snapshots'),
    };
  }

  /** Runs fn in a read transaction. */
  read<T>(fn: (tx: MetaTx) => T): T {
    this.ensureOpen();
    return this.db.transaction(() => fn(new MetaTx(this.db, this.stmts))).deferred();
  }

  /** Runs fn in a write transaction that holds the database write lock from its start. */
  write<T>(fn: (tx: MetaTx) => T): T {
    this.ensureOpen();
    return this.db.transaction(() => fn(new MetaTx(this.db, this.stmts))).immediate();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private ensureOpen(): void {
    if (this.closed) throw failedPrecondition(`metadata store ${this.path} is closed`);
  }
}

type Stmts = ReturnType<MetaStore['prepareStatements']>;

/** Operations inside one transaction (synchronous: nothing may await inside). */
export class MetaTx {
  constructor(
    private readonly db: Database.Database,
    private readonly s: Stmts,
  ) {}

  private row(key: string): SnapshotRow | undefined {
    const r = this.s.byKey.get(key) as SnapshotRow | undefined;
    if (r) r.kind = Number(r.kind);
    return r;
  }

  private labelsOf(id: bigint): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of this.s.labels.all(id) as { name: string; value: string }[]) out[r.name] = r.value;
    return out;
  }

  private toInfo(r: SnapshotRow, labels: Record<string, string>): Info {
    return {
      kind: KIND_OF_NUMBER[r.kind]!,
      name: r.key,
      parent: r.parent_key ?? '',
      labels,
      created: r.created,
      updated: r.updated,
    };
  }

  /** Replaces the labels; empty values are not stored (bolt's WriteLabels). Returns what was stored. */
  private writeLabels(id: bigint, labels: Record<string, string> | undefined): Record<string, string> {
    this.s.deleteLabels.run(id);
    const stored: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels ?? {})) {
      if (v === '') continue;
      this.s.insertLabel.run(id, k, v);
      stored[k] = v;
    }
    return stored;
  }

  private parentIds(parentId: bigint | null): string[] {
    if (parentId === null) return [];
    return (this.s.parentChain.all(parentId) as bigint[]).map(String);
  }

  exists(key: string): boolean {
    return this.row(key) !== undefined;
  }

  /** containerd storage.GetInfo: ID, info and stored usage of any snapshot. */
  getInfo(key: string): StoredInfo {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${key} does not exist`, { key });
    return {
      id: String(r.id),
      info: this.toInfo(r, this.labelsOf(r.id)),
      usage: { size: Number(r.size), inodes: Number(r.inodes) },
    };
  }

  /** containerd storage.GetSnapshot: active or view snapshots only. */
  getSnapshot(key: string): StoredSnapshot {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${key} does not exist`, { key });
    const kind = KIND_OF_NUMBER[r.kind]!;
    if (kind !== 'active' && kind !== 'view') {
      throw failedPrecondition(`requested snapshot ${key} not active or view`, { key });
    }
    return { id: String(r.id), kind, parentIds: this.parentIds(r.parent_id) };
  }

  /**
   * The checks createSnapshot makes, without creating anything; returns the parent chain the
   * new snapshot would get (for work that must happen before the creating transaction).
   */
  checkCreate(kind: Kind, key: string, parent: string): string[] {
    if (kind !== 'active' && kind !== 'view') {
      throw invalidArgument(`snapshot type ${kind} invalid; only snapshots of type Active or View can be created`, { key });
    }
    if (key === '') throw invalidArgument('snapshot key must not be empty');
    let parentRow: SnapshotRow | undefined;
    if (parent !== '') {
      parentRow = this.row(parent);
      if (!parentRow) throw notFound(`missing parent "${parent}" bucket`, { key, parent });
      if (parentRow.kind !== KIND_NUMBER.committed) {
        throw invalidArgument(`parent "${parent}" is not committed snapshot`, { key, parent });
      }
    }
    if (this.row(key)) throw alreadyExists(`snapshot ${key}`, { key });
    return parentRow ? this.parentIds(parentRow.id) : [];
  }

  createSnapshot(kind: Kind, key: string, parent: string, labels?: Record<string, string>): StoredSnapshot {
    this.checkCreate(kind, key, parent);
    const parentRow = parent !== '' ? this.row(parent) : undefined;
    const t = nowNs();
    const res = this.s.insert.run(key, KIND_NUMBER[kind], parentRow?.id ?? null, t, t);
    const id = BigInt(res.lastInsertRowid);
    this.writeLabels(id, labels);
    return { id: String(id), kind, parentIds: parentRow ? this.parentIds(parentRow.id) : [] };
  }

  updateInfo(update: InfoUpdate, fieldpaths: string[] = []): Info {
    const r = this.row(update.name);
    if (!r) throw notFound('snapshot does not exist', { key: update.name });
    let labels = this.labelsOf(r.id);
    if (fieldpaths.length > 0) {
      for (const path of fieldpaths) {
        if (path.startsWith('labels.')) {
          const k = path.slice('labels.'.length);
          const v = update.labels?.[k];
          if (v === undefined || v === '') delete labels[k];
          else labels[k] = v;
          continue;
        }
        if (path === 'labels') {
          labels = { ...(update.labels ?? {}) };
          continue;
        }
        throw invalidArgument(`cannot update "${path}" field on snapshot "${update.name}"`, { key: update.name, field: path });
      }
    } else {
      labels = { ...(update.labels ?? {}) };
    }
    const t = nowNs();
    this.s.setUpdated.run(t, r.id);
    return this.toInfo({ ...r, updated: t }, this.writeLabels(r.id, labels));
  }

  /** Active → Committed under `name`; returns the (unchanged) ID. */
  commitActive(key: string, name: string, usage: Usage, labels?: Record<string, string>): string {
    if (this.row(name)) throw alreadyExists(`committed snapshot ${name}`, { key, name });
    const r = this.row(key);
    if (!r) throw notFound(`failed to get active snapshot "${key}"`, { key });
    if (r.kind !== KIND_NUMBER.active) throw failedPrecondition(`snapshot "${key}" is not active`, { key });
    const t = nowNs();
    this.s.commit.run(name, t, t, Math.max(0, Math.trunc(usage.size)), Math.max(0, Math.trunc(usage.inodes)), r.id);
    this.writeLabels(r.id, labels);
    return String(r.id);
  }

  remove(key: string): { id: string; kind: Kind } {
    const r = this.row(key);
    if (!r) throw notFound(`snapshot ${key}`, { key });
    if (this.s.hasChild.get(r.id) !== undefined) {
      throw failedPrecondition('cannot remove snapshot with child', { key });
    }
    this.s.deleteLabels.run(r.id);
    this.s.delete.run(r.id);
    return { id: String(r.id), kind: KIND_OF_NUMBER[r.kind]! };
  }

  /** Every snapshot matching any of the filters (all when none), in byte order of names. */
  list(filters: string[] = []): Info[] {
    const filter = parseFilters(filters);
    const labelsById = new Map<bigint, Record<string, string>>();
    for (const l of this.s.allLabels.all() as { snapshot_id: bigint; name: string; value: string }[]) {
      let m = labelsById.get(l.snapshot_id);
      if (!m) labelsById.set(l.snapshot_id, (m = {}));
      m[l.name] = l.value;
    }
    const out: Info[] = [];
    for (const r of this.s.all.all() as SnapshotRow[]) {
      r.kind = Number(r.kind);
      const info = this.toInfo(r, labelsById.get(r.id) ?? {});
      if (filter.match(snapshotAdaptor(info))) out.push(info);
    }
    return out;
  }

  /** ID → key/name of every snapshot (containerd storage.IDMap). */
  idMap(): Map<string, string> {
    const m = new Map<string, string>();
    for (const r of this.s.idMap.all() as { id: bigint; key: string }[]) m.set(String(r.id), r.key);
    return m;
  }
}
