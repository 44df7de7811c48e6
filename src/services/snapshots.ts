/**
 * The snapshotter contract (containerd snapshots/snapshotter.go): kinds, info, usage and the
 * API every winsnap snapshotter implements, in process or behind the gRPC proxy.
 */
import type { Mount } from './mount.js';

/** containerd's UnpackKeyPrefix; unpack snapshots are recognised with "contains", as upstream. */
export const UNPACK_KEY_PREFIX = 'extract';
/** Label the unpacker sets on its prepare: the chain ID it will commit as. */
export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';

export type Kind = 'view' | 'active' | 'committed';

/** Wire values of containerd.services.snapshots.v1.Kind. */
export const KIND_NUMBER: Readonly<Record<Kind, number>> = { view: 1, active: 2, committed: 3 };
export const KIND_NAMES: Readonly<Record<Kind, string>> = { view: 'View', active: 'Active', committed: 'Committed' };

/** Nanoseconds since the Unix epoch. */
export type TimestampNs = bigint;

export interface Info {
  kind: Kind;
  /** name (committed) or key (active/view) */
  name: string;
  /** name of the parent, '' for none */
  parent: string;
  labels: Record<string, string>;
  created: TimestampNs;
  updated: TimestampNs;
}

export interface Usage {
  size: number;
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

/** An update request: the name plus the fields named by the field paths. */
export interface InfoUpdate {
  name: string;
  labels?: Record<string, string>;
  /** ignored unless named in fieldpaths, which is then an error (immutable) */
  parent?: string;
  kind?: Kind;
}

export type WalkFn = (info: Info) => void | Promise<void>;

export interface Snapshotter {
  stat(key: string): Promise<Info>;
  update(info: InfoUpdate, fieldpaths?: string[]): Promise<Info>;
  usage(key: string): Promise<Usage>;
  mounts(key: string): Promise<Mount[]>;
  prepare(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  view(key: string, parent: string, opts?: SnapshotOptions): Promise<Mount[]>;
  commit(name: string, key: string, opts?: SnapshotOptions): Promise<void>;
  remove(key: string): Promise<void>;
  /** Calls fn for each snapshot matching any of the filters (all when none are given). */
  walk(fn: WalkFn, ...filters: string[]): Promise<void>;
  /** Removes directories and files no snapshot references. */
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

export function isUnpackKey(key: string): boolean {
  return key.includes(UNPACK_KEY_PREFIX);
}

export function nowNs(): TimestampNs {
  return BigInt(Date.now()) * 1_000_000n;
}

/** RFC 3339 with nanoseconds, as Go's time.Time JSON (trailing zeros trimmed). */
export function formatTimestamp(ns: TimestampNs): string {
  const ms = Number(ns / 1_000_000n);
  const frac = ns % 1_000_000_000n;
  const base = new Date(ms).toISOString().slice(0, 19);
  if (frac === 0n) return `${base}Z`;
  return `${base}.${frac.toString().padStart(9, '0').replace(/0+$/, '')}Z`;
}
