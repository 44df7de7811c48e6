/**
 * The winsnap gRPC server: one unix socket serving containerd's Snapshots service for every
 * snapshotter (routed by name) and, when given, the Diff service. The socket is created
 * with mode 0600 unless configured; a stale socket file is replaced; close() stops
 * accepting, lets in-flight calls finish (with a deadline) and removes the socket.
 */
import * as grpc from '@grpc/grpc-js';
import { chmodSync, existsSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { failedPrecondition } from '../services/errdefs.js';
import { silentLogger, type Logger } from '../services/log.js';
import { SNAPSHOTS_SERVICE, serviceDefinition, socketPath } from './proto.js';
import { snapshotsServiceImpl, type SnapshotterRouter } from './snapshots-service.js';

export interface ExtraService {
  name: string;
  impl: grpc.UntypedServiceImplementation;
}

export interface ServerOptions {
  router: SnapshotterRouter;
  /** more services on the same socket (the diff service, …) */
  services?: ExtraService[];
  logger?: Logger;
  /** socket file mode, default 0o600 */
  socketMode?: number;
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class WinsnapServer {
  private readonly server: grpc.Server;
  private readonly log: Logger;
  private path = '';

  constructor(private readonly opts: ServerOptions) {
    this.log = opts.logger ?? silentLogger;
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.max_send_message_length': 16 << 20,
    });
    this.server.addService(serviceDefinition(SNAPSHOTS_SERVICE), snapshotsServiceImpl(opts.router, this.log));
    for (const s of opts.services ?? []) this.server.addService(serviceDefinition(s.name), s.impl);
  }

  /** Binds the unix socket; resolves to its path. */
  async listen(address: string): Promise<string> {
    const path = socketPath(address);
    mkdirSync(dirname(path), { recursive: true, mode: 0o711 });
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw failedPrecondition(`${path} exists and is not a socket`, { path });
      if (await socketInUse(path)) throw failedPrecondition(`${path} is in use by another server`, { path });
      unlinkSync(path);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve()));
    });
    chmodSync(path, this.opts.socketMode ?? 0o600);
    this.path = path;
    this.log.info({ address: `unix://${path}`, snapshotters: this.opts.router.names() }, 'serving');
    return path;
  }

  /** Graceful stop: refuse new calls, wait for in-flight ones up to graceMs, then force. */
  async close(graceMs = 10_000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (this.path) {
      try {
        unlinkSync(this.path);
      } catch {
        /* already gone */
      }
    }
  }
}
