/**
 * Conversions between winsnap's snapshot types and containerd.services.snapshots.v1
 * messages (as proto-loader represents them), shared by the server and the client.
 */
import { invalidArgument } from '../services/errdefs.js';
import type { Mount } from '../services/mount.js';
import type { Info, Kind } from '../services/snapshots.js';
import { fromPbTimestamp, toPbTimestamp, type PbTimestamp } from './proto.js';

export interface PbMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface PbInfo {
  name: string;
  parent: string;
  kind: string;
  created_at: PbTimestamp | null;
  updated_at: PbTimestamp | null;
  labels: Record<string, string>;
}

const KIND_TO_PB: Record<Kind, string> = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' };
const KIND_FROM_PB: Record<string, Kind> = { VIEW: 'view', ACTIVE: 'active', COMMITTED: 'committed' };

export function mountToPb(m: Mount): PbMount {
  return { type: m.type, source: m.source, target: m.target ?? '', options: [...m.options] };
}

export function mountFromPb(m: PbMount): Mount {
  const out: Mount = { type: m.type, source: m.source, options: [...(m.options ?? [])] };
  if (m.target) out.target = m.target;
  return out;
}

export function infoToPb(i: Info): PbInfo {
  return {
    name: i.name,
    parent: i.parent,
    kind: KIND_TO_PB[i.kind],
    created_at: toPbTimestamp(i.created),
    updated_at: toPbTimestamp(i.updated),
    labels: { ...i.labels },
  };
}

export function kindFromPb(kind: string): Kind | undefined {
  return KIND_FROM_PB[kind];
}

export function infoFromPb(i: PbInfo): Info {
  const kind = KIND_FROM_PB[i.kind];
  if (!kind) throw invalidArgument(`unknown snapshot kind ${i.kind}`, { key: i.name });
  return {
    name: i.name,
    parent: i.parent ?? '',
    kind,
    created: fromPbTimestamp(i.created_at),
    updated: fromPbTimestamp(i.updated_at),
    labels: { ...(i.labels ?? {}) },
  };
}
