/**
 * Starts Debian's real containerd on a private root/state/socket (CRI disabled), optionally
 * with winsnap registered as a proxy snapshotter. Used by the integration test and benches.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ContainerdInstance {
  socket: string;
  dir: string;
  proc: ChildProcess;
  log: () => string;
  ctr(args: string[]): { status: number; stdout: string; stderr: string };
  stop(): Promise<void>;
}

export interface ContainerdOptions {
  /** containerd binary (default: from PATH) */
  bin?: string;
  ctrBin?: string;
  /** proxy snapshotter name → socket path */
  proxies?: Record<string, string>;
}

async function waitFor(cond: () => boolean, ms: number, what: string, log: () => string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}\n${log().slice(-3000)}`);
}

export async function startContainerd(dir: string, opts: ContainerdOptions = {}): Promise<ContainerdInstance> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'c.sock');
  const proxies = Object.entries(opts.proxies ?? {})
    .map(([name, path]) => `  [proxy_plugins.${JSON.stringify(name)}]\n    type = "snapshot"\n    address = ${JSON.stringify(path)}\n`)
    .join('');
  const config = `version = 2
root = ${JSON.stringify(join(dir, 'root'))}
state = ${JSON.stringify(join(dir, 'state'))}
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = ${JSON.stringify(socket)}
[ttrpc]
  address = ${JSON.stringify(`${socket}.ttrpc`)}
[plugins."io.containerd.gc.v1.scheduler"]
  # collect right after each removal, so removed proxy snapshots reach the backend promptly
  deletion_threshold = 1
  pause_threshold = 0.5
  schedule_delay = "0s"
  startup_delay = "0s"
[proxy_plugins]
${proxies}`;
  writeFileSync(join(dir, 'config.toml'), config);
  let output = '';
  const proc = spawn(opts.bin ?? 'containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const log = () => output;
  const ctr = (args: string[]) => {
    const r = spawnSync(opts.ctrBin ?? 'ctr', ['--address', socket, ...args], { encoding: 'utf8' });
    if (r.error) throw r.error;
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  await waitFor(() => existsSync(socket) && /containerd successfully booted/.test(output), 20_000, 'containerd to boot', log);
  return {
    socket,
    dir,
    proc,
    log,
    ctr,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    },
  };
}
