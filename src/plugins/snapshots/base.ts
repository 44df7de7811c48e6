/**
 * What every winsnap snapshotter shares (containerd plugins/snapshots/windows/common.go and
 * the storage package): the SQLite metadata store in `<root>/metadata.db`, snapshot
 * directories `<root>/snapshots/<id>`, stat/update/usage/walk, removal by renaming to
 * `rm-<id>` inside the transaction and deleting after it, and `cleanup`.
 *
 * Crash safety: a directory is created inside the transaction that creates its row; an ID
 * whose insert rolled back may be handed out again, so a stale directory with a fresh ID is
 * replaced. `recover` (run at open and by cleanup, under the write lock) renames an `rm-<id>`
 * back when its row still exists (the removing transaction never committed) and deletes
 * every directory no row references.
 */
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { failedPrecondition, isWinsnapError } from '../../services/errdefs.js';
import { diskUsage } from '../../services/fsutil/disk-usage.js';
import { validateLabels } from '../../services/labels.js';
import { silentLogger, type Logger } from '../../services/log.js';
import { MetaStore, type MetaTx, type StoredSnapshot } from '../../services/metastore/metastore.js';
import type { Mount } from '../../services/mount.js';
import type { Info, InfoUpdate, Kind, SnapshotOptions, Snapshotter, Usage, WalkFn } from '../../services/snapshots.js';

export interface BaseSnapshotterOptions {
  logger?: Logger;
}

export const SNAPSHOTS_DIR = 'snapshots';

/**
 * Fault injection for the crash test: when WINSNAP_CRASH_WINDOW_MS is set, the process
 * pauses that long at the points where a crash is most delicate (directory changed,
 * metadata transaction not yet committed), so a SIGKILL lands there often.
 */
const CRASH_WINDOW_MS = Number(process.env.WINSNAP_CRASH_WINDOW_MS ?? 0);
const pauseArray = CRASH_WINDOW_MS > 0 ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
export function crashWindow(): void {
  if (pauseArray) Atomics.wait(pauseArray, 0, 0, CRASH_WINDOW_MS);
}
const REMOVED_PREFIX = 'rm-';
const STAGING_PREFIX = 'new-';
/** A staging directory younger than this may be in use by another process: cleanup keeps it. */
const STAGING_GRACE_MS = 60 * 60 * 1000;

export abstract class BaseSnapshotter implements Snapshotter {
  readonly ms: MetaStore;
  protected readonly log: Logger;

  protected constructor(
    readonly root: string,
    opts: BaseSnapshotterOptions = {},
  ) {
    this.log = opts.logger ?? silentLogger;
    mkdirSync(root, { recursive: true, mode: 0o700 });
    mkdirSync(join(root, SNAPSHOTS_DIR), { recursive: true, mode: 0o700 });
    this.ms = new MetaStore(join(root, 'metadata.db'));
    this.recover(false);
  }

  /** Names of entries under `<root>/snapshots` that are not snapshot directories. */
  protected reservedNames(): ReadonlySet<string> {
    return new Set();
  }

  /** A fresh staging directory under `snapshots/` (`new-…`), for work done before a transaction. */
  protected stagingDir(): string {
    return mkdtempSync(join(this.root, SNAPSHOTS_DIR, STAGING_PREFIX));
  }

  /** Moves everything in a staging directory into a snapshot directory (inside a transaction). */
  protected adoptStaging(staging: string, dir: string): void {
    for (const name of readdirSync(staging)) renameSync(join(staging, name), join(dir, name));
  }

  getSnapshotDir(id: string): string {
    return join(this.root, SNAPSHOTS_DIR, id);
  }

  parentIdsToPaths(ids: readonly string[]): string[] {
    return ids.map((id) => this.getSnapshotDir(id));
  }

  async stat(key: string): Promise<Info> {
    return this.ms.read((tx) => tx.getInfo(key).info);
  }

  async update(info: InfoUpdate, fieldpaths: string[] = []): Promise<Info> {
    validateLabels(info.labels);
    return this.ms.write((tx) => tx.updateInfo(info, fieldpaths));
  }

  async usage(key: string): Promise<Usage> {
    const { id, info, usage } = this.ms.read((tx) => tx.getInfo(key));
    if (info.kind === 'active') return this.measureUsage(id);
    return usage;
  }

  /** Usage of an active snapshot measured from disk (also stored at commit). */
  protected measureUsage(id: string): Promise<Usage> {
    return diskUsage(this.getSnapshotDir(id));
  }

  async mounts(key: string): Promise<Mount[]> {
    const sn = this.ms.read((tx) => {
      try {
        return tx.getSnapshot(key);
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to get snapshot mount') : e;
      }
    });
    return this.mountsFor(sn, key);
  }

  async prepare(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.createSnapshot('active', key, parent, opts);
  }

  async view(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.createSnapshot('view', key, parent, opts);
  }

  async walk(fn: WalkFn, ...filters: string[]): Promise<void> {
    const infos = this.ms.read((tx) => tx.list(filters));
    for (const info of infos) await fn(info);
  }

  /**
   * Creates the row and the directory in one transaction; `layout` fills the directory
   * (synchronously, inside the transaction) and may throw to abort the whole creation.
   */
  protected createWith(
    kind: Kind,
    key: string,
    parent: string,
    opts: SnapshotOptions,
    layout: (sn: StoredSnapshot, dir: string, tx: MetaTx) => void,
  ): StoredSnapshot {
    validateLabels(opts.labels);
    return this.ms.write((tx) => {
      let sn: StoredSnapshot;
      try {
        sn = tx.createSnapshot(kind, key, parent, opts.labels);
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to create snapshot') : e;
      }
      const dir = this.getSnapshotDir(sn.id);
      // a fresh ID can be one whose creating transaction rolled back after mkdir
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { mode: 0o700 });
      try {
        layout(sn, dir, tx);
      } catch (e) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      crashWindow();
      return sn;
    });
  }

  /**
   * Creates a snapshot whose files are prepared before the metadata transaction (scratch disks
   * take seconds; the transaction must not wait on them). `stage` sees the parent chain and
   * returns how to fill a staging directory, or nothing; the transaction then creates the row,
   * moves the staged files in and runs `layout`. A parent chain that changed in between aborts
   * with FailedPrecondition.
   */
  protected async createStaged(
    kind: Kind,
    key: string,
    parent: string,
    opts: SnapshotOptions,
    stage: (parentIds: readonly string[]) => ((staging: string) => Promise<void>) | undefined,
    layout?: (sn: StoredSnapshot, dir: string) => void,
  ): Promise<StoredSnapshot> {
    validateLabels(opts.labels);
    const parentIds = this.ms.read((tx) => {
      try {
        return tx.checkCreate(kind, key, parent);
      } catch (e) {
        throw isWinsnapError(e) ? e.wrap('failed to create snapshot') : e;
      }
    });
    const fill = stage(parentIds);
    let staging: string | undefined;
    try {
      if (fill) {
        staging = this.stagingDir();
        await fill(staging);
      }
      return this.createWith(kind, key, parent, opts, (sn, dir) => {
        if (sn.parentIds.join('/') !== parentIds.join('/')) {
          throw failedPrecondition(`parent ${parent} changed while ${key} was being prepared; retry`, { key, parent });
        }
        if (staging) this.adoptStaging(staging, dir);
        layout?.(sn, dir);
      });
    } finally {
      if (staging) await rm(staging, { recursive: true, force: true });
    }
  }

  protected abstract createSnapshot(kind: Kind, key: string, parent: string, opts: SnapshotOptions): Promise<Mount[]>;
  protected abstract mountsFor(sn: StoredSnapshot, key: string): Mount[];
  abstract commit(name: string, key: string, opts?: SnapshotOptions): Promise<void>;

  async remove(key: string): Promise<void> {
    let path = '';
    let renamed = '';
    try {
      this.ms.write((tx) => {
        let id: string;
        try {
          id = tx.remove(key).id;
        } catch (e) {
          throw isWinsnapError(e) ? e.wrap('failed to remove') : e;
        }
        path = this.getSnapshotDir(id);
        const to = this.getSnapshotDir(REMOVED_PREFIX + id);
        try {
          renameSync(path, to);
          renamed = to;
          crashWindow();
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      });
    } catch (e) {
      // the transaction did not commit: put the directory back (recover() does it after a crash)
      if (renamed) {
        try {
          renameSync(renamed, path);
        } catch (e2) {
          this.log.error({ err: e2, path: renamed }, 'failed to rename back after a failed remove');
        }
      }
      throw e;
    }
    if (renamed) {
      try {
        await rm(renamed, { recursive: true, force: true });
      } catch (e) {
        this.log.warn({ err: e, path: renamed }, 'failed to remove snapshot directory; cleanup will retry');
      }
    }
  }

  async cleanup(): Promise<void> {
    const doomed = this.recover(true);
    for (const p of doomed) await rm(p, { recursive: true, force: true });
  }

  /**
   * Under the write lock: restores `rm-<id>` directories whose row exists and collects the
   * directories no row references. With `rename`, those are renamed to `rm-…` and returned
   * for deletion after the transaction; otherwise (at open) only restores are done.
   */
  protected recover(rename: boolean): string[] {
    const doomed: string[] = [];
    this.ms.write((tx) => {
      const ids = tx.idMap();
      const reserved = this.reservedNames();
      const base = join(this.root, SNAPSHOTS_DIR);
      for (const name of readdirSync(base)) {
        if (reserved.has(name)) continue;
        if (name.startsWith(STAGING_PREFIX)) {
          let age = Infinity;
          try {
            age = Date.now() - statSync(join(base, name)).mtimeMs;
          } catch {
            continue;
          }
          if (age < STAGING_GRACE_MS) continue;
        }
        if (name.startsWith(REMOVED_PREFIX)) {
          const id = name.slice(REMOVED_PREFIX.length);
          if (ids.has(id)) {
            try {
              renameSync(join(base, name), join(base, id));
              this.log.warn({ id }, 'restored directory of a snapshot whose removal did not commit');
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
              doomed.push(join(base, name));
            }
          } else if (rename) doomed.push(join(base, name));
          continue;
        }
        if (!ids.has(name) && rename) {
          const to = join(base, `${REMOVED_PREFIX}orphan-${name}`);
          renameSync(join(base, name), to);
          doomed.push(to);
        }
      }
    });
    return doomed;
  }

  async close(): Promise<void> {
    this.ms.close();
  }

}
