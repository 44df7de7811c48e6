/**
 * `winsnap serve`: one unix socket serving containerd's Snapshots API for every winsnap
 * snapshotter (and, as they land, the Diff API). Requests are routed by the `snapshotter`
 * field; `--alias NAME=SNAPSHOTTER` maps a containerd proxy plugin name to one of ours
 * (`winsnap` → `windows` by default). Stops gracefully on SIGINT/SIGTERM.
 */
import { Command, Option } from 'commander';
import { invalidArgument } from '../../services/errdefs.js';
import { createLogger } from '../../services/log.js';
import { isSnapshotterName, SNAPSHOTTER_NAMES } from '../../plugins/snapshots/registry.js';
import { Runtime } from '../../plugins/runtime.js';
import { diffServiceImpl } from '../../server/diff-service.js';
import { DIFF_SERVICE } from '../../server/proto.js';
import { WinsnapServer } from '../../server/server.js';
import { MapRouter } from '../../server/snapshots-service.js';
import { defaultAddress, defaultRoot } from '../defaults.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  program
    .command('serve')
    .description('serve the snapshotters (and diff service) over gRPC for containerd')
    .addOption(new Option('--root <dir>', 'winsnap data root').default(defaultRoot()))
    .option('--address <address>', 'unix socket to listen on (default: unix://<root>/winsnap.sock)')
    .option('--socket-mode <octal>', 'socket file mode', '0600')
    .option('--alias <name=snapshotter>', 'serve a snapshotter under another name (repeatable)', collect, [] as string[])
    .action(async (opts: { root: string; address?: string; socketMode: string; alias: string[] }) => {
      const log = createLogger('info');
      const socketMode = Number.parseInt(opts.socketMode, 8);
      if (!Number.isInteger(socketMode) || socketMode < 0 || socketMode > 0o777) {
        throw invalidArgument(`--socket-mode ${opts.socketMode}: expected an octal mode like 0600`);
      }
      const aliases = new Map<string, string>([['winsnap', 'windows']]);
      for (const a of opts.alias) {
        const [name, target] = a.split('=', 2);
        if (!name || !target || !isSnapshotterName(target)) {
          throw invalidArgument(`--alias ${a}: expected NAME=SNAPSHOTTER with SNAPSHOTTER one of ${SNAPSHOTTER_NAMES.join(', ')}`);
        }
        aliases.set(name, target);
      }
      const rt = new Runtime(opts.root, { logger: log });
      const snapshotters = rt.allSnapshotters();
      const server = new WinsnapServer({
        router: new MapRouter(snapshotters, aliases),
        services: [{ name: DIFF_SERVICE, impl: diffServiceImpl(rt.differ, log) }],
        logger: log,
        socketMode,
      });
      const address = opts.address ?? defaultAddress(opts.root);
      await server.listen(address);
      await new Promise<void>((resolve) => {
        const stop = (signal: string) => {
          log.info({ signal }, 'shutting down');
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve();
        };
        const onInt = () => stop('SIGINT');
        const onTerm = () => stop('SIGTERM');
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
      });
      await server.close();
      await rt.close();
      log.info('stopped');
    });
}
