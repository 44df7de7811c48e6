/** Starts a winsnap gRPC server on a temporary socket for tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Snapshotter } from '../../src/services/snapshots.js';
import { WinsnapServer, type ExtraService } from '../../src/server/server.js';
import { MapRouter } from '../../src/server/snapshots-service.js';
import { SnapshotsClient } from '../../src/server/snapshots-client.js';

export interface TestServer {
  socket: string;
  client(name: string): SnapshotsClient;
  close(): Promise<void>;
}

export async function startTestServer(snapshotters: Record<string, Snapshotter>, services: ExtraService[] = []): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-sock-'));
  const socket = join(dir, 'winsnap.sock');
  const server = new WinsnapServer({ router: new MapRouter(new Map(Object.entries(snapshotters))), services });
  await server.listen(`unix://${socket}`);
  const clients: SnapshotsClient[] = [];
  return {
    socket,
    client(name: string) {
      const c = SnapshotsClient.connect(`unix://${socket}`, name);
      clients.push(c);
      return c;
    },
    async close() {
      for (const c of clients) await c.close();
      await server.close(2000);
      for (const sn of Object.values(snapshotters)) await sn.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
