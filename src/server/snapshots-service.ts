/**
 * containerd.services.snapshots.v1.Snapshots served over any number of snapshotters: each
 * request is routed by its `snapshotter` field (containerd sends the proxy plugin's name),
 * an unknown name is NotFound. Errors map to gRPC codes as containerd's errdefs.ToGRPC.
 */
import type * as grpc from '@grpc/grpc-js';
import { notFound, toGrpc, toWinsnapError } from '../services/errdefs.js';
import type { Logger } from '../services/log.js';
import type { Info, Snapshotter } from '../services/snapshots.js';
import { infoToPb, mountToPb, type PbInfo } from './snapshots-wire.js';

/** containerd's snapshots service sends List results in blocks of this many. */
const LIST_BLOCK = 100;

export interface SnapshotterRouter {
  /** the snapshotter for a request's `snapshotter` field; throws NotFound */
  get(name: string): Snapshotter;
  names(): string[];
}

export class MapRouter implements SnapshotterRouter {
  constructor(
    private readonly byName: Map<string, Snapshotter>,
    private readonly aliases: Map<string, string> = new Map(),
  ) {}

  get(name: string): Snapshotter {
    const sn = this.byName.get(name) ?? this.byName.get(this.aliases.get(name) ?? '');
    if (!sn) {
      throw notFound(`snapshotter "${name}" is not served here (serving: ${this.names().join(', ')})`, { snapshotter: name });
    }
    return sn;
  }

  names(): string[] {
    return [...this.byName.keys(), ...this.aliases.keys()];
  }
}

type Req = Record<string, unknown> & { snapshotter: string };
type Unary = (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => void;

function fail(err: unknown): Partial<grpc.StatusObject> {
  const { code, message } = toGrpc(err);
  return { code, details: message };
}

export function snapshotsServiceImpl(router: SnapshotterRouter, log: Logger): grpc.UntypedServiceImplementation {
  const unary =
    (method: string, fn: (sn: Snapshotter, req: Req) => Promise<unknown>): Unary =>
    (call, cb) => {
      const req = call.request;
      let sn: Snapshotter;
      try {
        sn = router.get(req.snapshotter);
      } catch (e) {
        cb(fail(e));
        return;
      }
      fn(sn, req).then(
        (res) => {
          log.debug({ method, snapshotter: req.snapshotter, key: req.key ?? req.name }, 'ok');
          cb(null, res);
        },
        (e) => {
          const err = toWinsnapError(e);
          log.debug({ method, snapshotter: req.snapshotter, key: req.key ?? req.name, err: err.message }, 'failed');
          cb(fail(err));
        },
      );
    };

  const labels = (req: Req) => {
    const l = req.labels as Record<string, string> | undefined;
    return l && Object.keys(l).length > 0 ? { labels: { ...l } } : {};
  };

  return {
    Prepare: unary('Prepare', async (sn, req) => ({
      mounts: (await sn.prepare(req.key as string, req.parent as string, labels(req))).map(mountToPb),
    })),
    View: unary('View', async (sn, req) => ({
      mounts: (await sn.view(req.key as string, req.parent as string, labels(req))).map(mountToPb),
    })),
    Mounts: unary('Mounts', async (sn, req) => ({ mounts: (await sn.mounts(req.key as string)).map(mountToPb) })),
    Commit: unary('Commit', async (sn, req) => {
      await sn.commit(req.name as string, req.key as string, labels(req));
      return {};
    }),
    Remove: unary('Remove', async (sn, req) => {
      await sn.remove(req.key as string);
      return {};
    }),
    Stat: unary('Stat', async (sn, req) => ({ info: infoToPb(await sn.stat(req.key as string)) })),
    Update: unary('Update', async (sn, req) => {
      const pb = req.info as PbInfo | null;
      const mask = (req.update_mask as { paths?: string[] } | null)?.paths ?? [];
      const name = pb?.name ?? '';
      const update: { name: string; labels?: Record<string, string>; parent?: string } = {
        name,
        labels: { ...(pb?.labels ?? {}) },
      };
      if (pb?.parent) update.parent = pb.parent;
      return { info: infoToPb(await sn.update(update, mask)) };
    }),
    Usage: unary('Usage', async (sn, req) => {
      const u = await sn.usage(req.key as string);
      return { size: String(u.size), inodes: String(u.inodes) };
    }),
    Cleanup: unary('Cleanup', async (sn) => {
      await sn.cleanup();
      return {};
    }),
    List: (call: grpc.ServerWritableStream<Req, unknown>) => {
      const req = call.request;
      const run = async () => {
        const sn = router.get(req.snapshotter);
        let block: ReturnType<typeof infoToPb>[] = [];
        const flush = async () => {
          if (block.length === 0) return;
          const ok = call.write({ info: block });
          block = [];
          if (!ok) await new Promise<void>((r) => call.once('drain', () => r()));
        };
        await sn.walk(async (info: Info) => {
          block.push(infoToPb(info));
          if (block.length >= LIST_BLOCK) await flush();
        }, ...((req.filters as string[]) ?? []));
        await flush();
      };
      run().then(
        () => call.end(),
        (e) => call.emit('error', fail(e)),
      );
    },
  };
}
