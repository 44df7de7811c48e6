/**
 * Content store with containerd's semantics (content/local/store.go + writer.go; the
 * metadata layer's labels): blobs at `<root>/blobs/<alg>/<hex>`, ingests by ref under
 * `<root>/ingest/<sha256(ref)>/{data,ref,startedat,updatedat,total}`, resumable writers,
 * commit with expected size and digest (mismatch → FailedPrecondition), labels and
 * created/updated times in `<root>/metadata.db`, walk/list with containerd filters, delete,
 * abort, status.
 *
 * The blob layout is an OCI image layout's, so `importLayout` can take an OCI layout's
 * blobs by reference (hard links, copy across devices) after verifying each digest.
 *
 * A ref is locked while a writer is open in this process (a second writer → Unavailable).
 */
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import { chmod, copyFile, link, mkdir, open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { alreadyExists, failedPrecondition, invalidArgument, notFound, unavailable } from '../errdefs.js';
import { parseFilters, type Adaptor } from '../filters/index.js';
import { Digester, parseDigest } from './digest.js';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ContentInfo {
  digest: string;
  size: number;
  /** ns since epoch */
  createdAt: bigint;
  updatedAt: bigint;
  labels: Record<string, string>;
}

export interface ContentStatus {
  ref: string;
  offset: number;
  total: number;
  startedAt: bigint;
  updatedAt: bigint;
  expected: string;
}

export interface WriterOptions {
  ref: string;
  /** expected total size (0 = unknown) */
  total?: number;
  /** expected digest: a writer for content already present is AlreadyExists */
  expected?: string;
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;
const msToNs = (ms: number): bigint => BigInt(Math.round(ms)) * 1_000_000n;

function contentAdaptor(i: ContentInfo): Adaptor {
  return {
    field(path) {
      switch (path[0]) {
        case 'digest':
          return i.digest;
        case 'size':
          return String(i.size);
        case 'labels': {
          const k = path.slice(1).join('.');
          return Object.prototype.hasOwnProperty.call(i.labels, k) ? i.labels[k] : undefined;
        }
        default:
          return undefined;
      }
    },
  };
}

export class ContentStore {
  private readonly db: Database.Database;
  private readonly locks = new Set<string>();

  constructor(readonly root: string) {
    mkdirSync(join(root, 'ingest'), { recursive: true });
    mkdirSync(join(root, 'blobs', 'sha256'), { recursive: true });
    this.db = new Database(join(root, 'metadata.db'), { timeout: 30_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, created INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS labels (digest TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (digest, name)) WITHOUT ROWID;`);
    this.db.defaultSafeIntegers(true);
  }

  blobPath(dgst: string): string {
    const { algorithm, hex } = parseDigest(dgst);
    return join(this.root, 'blobs', algorithm, hex);
  }

  private ingestDir(ref: string): string {
    return join(this.root, 'ingest', createHash('sha256').update(ref).digest('hex'));
  }

  private labelsOf(dgst: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of this.db.prepare('SELECT name, value FROM labels WHERE digest = ?').all(dgst) as { name: string; value: string }[]) {
      out[r.name] = r.value;
    }
    return out;
  }

  private setLabels(dgst: string, labels: Record<string, string>, replace: boolean): Record<string, string> {
    return this.db.transaction(() => {
      if (replace) this.db.prepare('DELETE FROM labels WHERE digest = ?').run(dgst);
      for (const [k, v] of Object.entries(labels)) {
        if (v === '') this.db.prepare('DELETE FROM labels WHERE digest = ? AND name = ?').run(dgst, k);
        else this.db.prepare('INSERT OR REPLACE INTO labels(digest, name, value) VALUES (?, ?, ?)').run(dgst, k, v);
      }
      return this.labelsOf(dgst);
    }).immediate();
  }

  private times(dgst: string, mtimeMs: number): { created: bigint; updated: bigint } {
    const r = this.db.prepare('SELECT created, updated FROM blobs WHERE digest = ?').get(dgst) as
      | { created: bigint; updated: bigint }
      | undefined;
    return r ?? { created: msToNs(mtimeMs), updated: msToNs(mtimeMs) };
  }

  async info(dgst: string): Promise<ContentInfo> {
    const p = this.blobPath(dgst);
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`content ${dgst}`, { digest: dgst });
      throw e;
    }
    const t = this.times(dgst, st.mtimeMs);
    return { digest: dgst, size: st.size, createdAt: t.created, updatedAt: t.updated, labels: this.labelsOf(dgst) };
  }

  /** Labels by field path: `labels` replaces, `labels.<k>` sets/removes one; none = replace. */
  async update(info: { digest: string; labels?: Record<string, string> }, fieldpaths: string[] = []): Promise<ContentInfo> {
    const cur = await this.info(info.digest);
    let labels: Record<string, string> = {};
    let replace = false;
    if (fieldpaths.length === 0) {
      replace = true;
      labels = { ...(info.labels ?? {}) };
    }
    for (const path of fieldpaths) {
      if (path.startsWith('labels.')) {
        const k = path.slice('labels.'.length);
        labels[k] = info.labels?.[k] ?? '';
      } else if (path === 'labels') {
        replace = true;
        labels = { ...labels, ...(info.labels ?? {}) };
      } else {
        throw invalidArgument(`cannot update "${path}" field on content info "${info.digest}"`, { digest: info.digest, field: path });
      }
    }
    const updated = nowNs();
    this.db
      .prepare('INSERT INTO blobs(digest, created, updated) VALUES (?, ?, ?) ON CONFLICT(digest) DO UPDATE SET updated = excluded.updated')
      .run(info.digest, cur.createdAt, updated);
    const out = this.setLabels(info.digest, labels, replace);
    return { ...cur, labels: out, updatedAt: updated };
  }

  async walk(fn: (info: ContentInfo) => void | Promise<void>, ...filters: string[]): Promise<void> {
    const filter = parseFilters(filters);
    const blobs = join(this.root, 'blobs');
    for (const alg of (await readdir(blobs)).sort()) {
      for (const hex of (await readdir(join(blobs, alg))).sort()) {
        const dgst = `${alg}:${hex}`;
        let info: ContentInfo;
        try {
          info = await this.info(dgst);
        } catch {
          continue; // not a blob name, or removed meanwhile
        }
        if (filter.match(contentAdaptor(info))) await fn(info);
      }
    }
  }

  async delete(dgst: string): Promise<void> {
    const p = this.blobPath(dgst);
    try {
      await stat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`content ${dgst}`, { digest: dgst });
      throw e;
    }
    await rm(p, { force: true });
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM labels WHERE digest = ?').run(dgst);
      this.db.prepare('DELETE FROM blobs WHERE digest = ?').run(dgst);
    }).immediate();
  }

  /** A stream over a blob (optionally a byte range); NotFound when absent. */
  async read(dgst: string, range: { offset?: number; length?: number } = {}): Promise<Readable> {
    const p = this.blobPath(dgst);
    await this.info(dgst);
    const start = range.offset ?? 0;
    const end = range.length !== undefined && range.length > 0 ? start + range.length - 1 : undefined;
    return createReadStream(p, { start, end, highWaterMark: 1 << 20 });
  }

  async status(ref: string): Promise<ContentStatus> {
    return this.statusOf(this.ingestDir(ref), ref);
  }

  private async statusOf(dir: string, wantRef?: string): Promise<ContentStatus> {
    let ref: string;
    let size: number;
    let mtime: number;
    try {
      ref = await readFile(join(dir, 'ref'), 'utf8');
      const st = await stat(join(dir, 'data'));
      size = st.size;
      mtime = st.mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`ingest ref ${JSON.stringify(wantRef ?? dir)}`, { ref: wantRef });
      throw e;
    }
    const num = async (f: string): Promise<string> => {
      try {
        return (await readFile(join(dir, f), 'utf8')).trim();
      } catch {
        return '';
      }
    };
    const startedAt = BigInt((await num('startedat')) || '0');
    let updatedAt = BigInt((await num('updatedat')) || '0');
    if (msToNs(mtime) > updatedAt) updatedAt = msToNs(mtime);
    return { ref, offset: size, total: Number((await num('total')) || '0'), startedAt, updatedAt, expected: await num('expected') };
  }

  async listStatuses(...filters: string[]): Promise<ContentStatus[]> {
    const filter = parseFilters(filters);
    const out: ContentStatus[] = [];
    for (const name of (await readdir(join(this.root, 'ingest'))).sort()) {
      let s: ContentStatus;
      try {
        s = await this.statusOf(join(this.root, 'ingest', name));
      } catch {
        continue;
      }
      if (filter.match({ field: (p) => (p[0] === 'ref' ? s.ref : undefined) })) out.push(s);
    }
    return out;
  }

  async abort(ref: string): Promise<void> {
    const dir = this.ingestDir(ref);
    try {
      await stat(dir);
    } catch {
      throw notFound(`ingest ref ${JSON.stringify(ref)}`, { ref });
    }
    if (this.locks.has(ref)) throw unavailable(`ref ${ref} locked by an open writer`, { ref });
    await rm(dir, { recursive: true, force: true });
  }

  /** Opens (or resumes) the ingest for a ref. */
  async writer(opts: WriterOptions): Promise<ContentWriter> {
    const { ref } = opts;
    if (!ref) throw invalidArgument('ref must not be empty');
    if (opts.expected) {
      try {
        await stat(this.blobPath(opts.expected));
        throw alreadyExists(`content ${opts.expected}`, { digest: opts.expected });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    if (this.locks.has(ref)) throw unavailable(`ref ${ref} locked`, { ref });
    this.locks.add(ref);
    try {
      const dir = this.ingestDir(ref);
      const digester = new Digester();
      let offset = 0;
      let total = opts.total ?? 0;
      let startedAt = nowNs();
      let resumed = false;
      try {
        await mkdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        try {
          const s = await this.statusOf(dir, ref);
          if (s.ref !== ref) throw failedPrecondition(`ref key does not match: ${ref} != ${s.ref}`, { ref });
          if (total > 0 && s.total > 0 && total !== s.total) {
            throw failedPrecondition(`provided total differs from status: ${total} != ${s.total}`, { ref });
          }
          // re-hash what is already there so the digest covers the whole blob
          for await (const chunk of createReadStream(join(dir, 'data'), { highWaterMark: 1 << 20 })) {
            digester.update(chunk as Buffer);
            offset += (chunk as Buffer).length;
          }
          total = s.total || total;
          startedAt = s.startedAt;
          resumed = true;
        } catch (err) {
          if ((err as { kind?: string }).kind === 'FailedPrecondition') throw err;
          // unreadable ingest: start over
        }
      }
      if (!resumed) {
        await writeFile(join(dir, 'ref'), ref);
        await writeFile(join(dir, 'startedat'), String(startedAt));
        await writeFile(join(dir, 'updatedat'), String(startedAt));
        if (total > 0) await writeFile(join(dir, 'total'), String(total));
        if (opts.expected) await writeFile(join(dir, 'expected'), opts.expected);
        await writeFile(join(dir, 'data'), '');
      }
      const fh = await open(join(dir, 'data'), 'r+');
      if (!resumed) await fh.truncate(0);
      return new ContentWriter(this, ref, dir, fh, digester, offset, total, startedAt, () => this.locks.delete(ref));
    } catch (e) {
      this.locks.delete(ref);
      throw e;
    }
  }

  /** Moves a finished ingest into place (called by ContentWriter.commit). */
  async commitIngest(dir: string, dgst: string, labels: Record<string, string> | undefined): Promise<void> {
    const target = this.blobPath(dgst);
    await mkdir(join(target, '..'), { recursive: true });
    try {
      await stat(target);
      await rm(dir, { recursive: true, force: true });
      throw alreadyExists(`content ${dgst}`, { digest: dgst });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await rename(join(dir, 'data'), target);
    await chmod(target, 0o444);
    await rm(dir, { recursive: true, force: true });
    const t = nowNs();
    this.db.prepare('INSERT OR REPLACE INTO blobs(digest, created, updated) VALUES (?, ?, ?)').run(dgst, t, t);
    if (labels && Object.keys(labels).length > 0) this.setLabels(dgst, labels, true);
  }

  /**
   * Takes every blob of an OCI image layout (`<dir>/blobs/<alg>/<hex>`) by reference: a hard
   * link when possible, a copy otherwise. Each digest is verified; a mismatch is
   * FailedPrecondition and nothing is added for that blob. Returns the digests added.
   */
  async importLayout(layoutDir: string): Promise<string[]> {
    const added: string[] = [];
    const blobs = join(layoutDir, 'blobs');
    for (const alg of await readdir(blobs)) {
      for (const hex of await readdir(join(blobs, alg))) {
        const dgst = `${alg}:${hex}`;
        parseDigest(dgst);
        const src = join(blobs, alg, hex);
        const h = createHash(alg);
        for await (const c of createReadStream(src, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
        if (`${alg}:${h.digest('hex')}` !== dgst) throw failedPrecondition(`blob ${src} does not match its digest`, { digest: dgst });
        const target = this.blobPath(dgst);
        await mkdir(join(target, '..'), { recursive: true });
        try {
          await stat(target);
          continue;
        } catch {
          /* not present */
        }
        try {
          await link(src, target);
        } catch {
          await copyFile(src, target);
        }
        added.push(dgst);
      }
    }
    return added;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export class ContentWriter {
  private closed = false;

  constructor(
    private readonly store: ContentStore,
    readonly ref: string,
    private readonly dir: string,
    private fh: FileHandle,
    private readonly digester: Digester,
    private off: number,
    readonly total: number,
    readonly startedAt: bigint,
    private readonly unlock: () => void,
  ) {}

  get offset(): number {
    return this.off;
  }

  /** Digest of everything written so far. */
  digest(): string {
    return this.digester.digest();
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.ensureOpen();
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, this.off + done);
      done += bytesWritten;
    }
    this.digester.update(chunk);
    this.off += chunk.length;
  }

  /** Only 0 is supported, as containerd's local store. */
  async truncate(size: number): Promise<void> {
    this.ensureOpen();
    if (size !== 0) throw invalidArgument(`Truncate: unsupported size ${size}`, { ref: this.ref });
    await this.fh.truncate(0);
    this.digester.reset();
    this.off = 0;
  }

  async commit(size: number, expected: string, labels?: Record<string, string>): Promise<string> {
    if (this.closed) throw failedPrecondition('cannot commit on closed writer', { ref: this.ref });
    this.closed = true;
    try {
      await this.fh.sync();
      const st = await this.fh.stat();
      await this.fh.close();
      if (size > 0 && size !== st.size) {
        throw failedPrecondition(`unexpected commit size ${st.size}, expected ${size}`, { ref: this.ref });
      }
      const dgst = this.digester.digest();
      if (expected && expected !== dgst) {
        throw failedPrecondition(`unexpected commit digest ${dgst}, expected ${expected}`, { ref: this.ref, digest: dgst });
      }
      await this.store.commitIngest(this.dir, dgst, labels);
      return dgst;
    } finally {
      this.unlock();
    }
  }

  /** Closes without committing; the ingest stays for a later resume. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fh.sync();
      await this.fh.close();
      await writeFile(join(this.dir, 'updatedat'), String(nowNs()));
    } finally {
      this.unlock();
    }
  }

  private ensureOpen(): void {
    if (this.closed) throw failedPrecondition('writer is closed', { ref: this.ref });
  }
}
