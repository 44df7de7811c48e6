/**
 * A Snapshotter that talks to a containerd Snapshots gRPC service (ours or containerd's own)
 * for one snapshotter name. Errors come back as WinsnapError via containerd's FromGRPC rules.
 */
import * as grpc from '@grpc/grpc-js';
import { fromGrpc } from '../services/errdefs.js';
import type { Mount } from '../services/mount.js';
import type { Info, InfoUpdate, SnapshotOptions, Snapshotter, Usage, WalkFn } from '../services/snapshots.js';
import { SNAPSHOTS_SERVICE, serviceClient, socketPath } from './proto.js';
import { infoFromPb, infoToPb, mountFromPb, type PbInfo, type PbMount } from './snapshots-wire.js';

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type RawClient = grpc.Client & Record<string, (req: unknown, metaOrCb: grpc.Metadata | Callback, cb?: Callback) => unknown>;

export interface ClientOptions {
  /** containerd namespace header, for talking to containerd itself */
  namespace?: string;
}

export function dialSnapshots(address: string): grpc.Client {
  const Ctor = serviceClient(SNAPSHOTS_SERVICE);
  const target = address.startsWith('unix:') ? address : `unix://${socketPath(address)}`;
  return new Ctor(target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 16 << 20,
  });
}

export class SnapshotsClient implements Snapshotter {
  private closed = false;
  private readonly meta: grpc.Metadata;

  constructor(
    private readonly client: grpc.Client,
    readonly snapshotter: string,
    opts: ClientOptions = {},
    private readonly ownsClient = false,
  ) {
    this.meta = new grpc.Metadata();
    if (opts.namespace) this.meta.set('containerd-namespace', opts.namespace);
  }

  static connect(address: string, snapshotter: string, opts: ClientOptions = {}): SnapshotsClient {
    return new SnapshotsClient(dialSnapshots(address), snapshotter, opts, true);
  }

  private call<T>(method: string, req: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
      (this.client as RawClient)[method]!({ snapshotter: this.snapshotter, ...req }, this.meta, (err, res) => {
        if (err) reject(fromGrpc(err.code, err.details));
        else resolve(res as T);
      });
    });
  }

  async stat(key: string): Promise<Info> {
    return infoFromPb((await this.call<{ info: PbInfo }>('Stat', { key })).info);
  }

  async update(info: InfoUpdate, fieldpaths: string[] = []): Promise<Info> {
    const pb = infoToPb({
      name: info.name,
      parent: info.parent ?? '',
      kind: info.kind ?? 'active',
      labels: info.labels ?? {},
      created: 0n,
      updated: 0n,
    });
    const res = await this.call<{ info: PbInfo }>('Update', {
      info: { ...pb, kind: 'UNKNOWN', created_at: null, updated_at: null },
      update_mask: { paths: fieldpaths },
    });
    return infoFromPb(res.info);
  }

  async usage(key: string): Promise<Usage> {
    const u = await this.call<{ size: string; inodes: string }>('Usage', { key });
    return { size: Number(u.size), inodes: Number(u.inodes) };
  }

  async mounts(key: string): Promise<Mount[]> {
    return (await this.call<{ mounts: PbMount[] }>('Mounts', { key })).mounts.map(mountFromPb);
  }

  async prepare(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    const res = await this.call<{ mounts: PbMount[] }>('Prepare', { key, parent, labels: opts.labels ?? {} });
    return res.mounts.map(mountFromPb);
  }

  async view(key: string, parent: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    const res = await this.call<{ mounts: PbMount[] }>('View', { key, parent, labels: opts.labels ?? {} });
    return res.mounts.map(mountFromPb);
  }

  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    await this.call('Commit', { name, key, labels: opts.labels ?? {} });
  }

  async remove(key: string): Promise<void> {
    await this.call('Remove', { key });
  }

  async walk(fn: WalkFn, ...filters: string[]): Promise<void> {
    const infos = await new Promise<Info[]>((resolve, reject) => {
      const out: Info[] = [];
      const stream = (this.client as unknown as Record<string, (req: unknown, meta: grpc.Metadata) => grpc.ClientReadableStream<{ info: PbInfo[] }>>)
        .List!({ snapshotter: this.snapshotter, filters }, this.meta);
      stream.on('data', (msg: { info: PbInfo[] }) => {
        for (const i of msg.info) out.push(infoFromPb(i));
      });
      stream.on('error', (err: grpc.ServiceError) => reject(fromGrpc(err.code, err.details)));
      stream.on('end', () => resolve(out));
    });
    for (const i of infos) await fn(i);
  }

  async cleanup(): Promise<void> {
    await this.call('Cleanup', {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.close();
  }
}
