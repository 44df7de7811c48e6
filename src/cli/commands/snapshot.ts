/**
 * `winsnap snapshot …`: the `ctr snapshots` surface (same arguments and output) over a
 * winsnap root in process, or over a running server with --address; `--json` for scripts.
 */
import { Command, Option } from 'commander';
import { formatTimestamp, KIND_NAMES, type Info, type Snapshotter } from '../../services/snapshots.js';
import type { Mount } from '../../services/mount.js';
import { isWinsnapError } from '../../services/errdefs.js';
import { Runtime } from '../../plugins/runtime.js';
import { DiffClient } from '../../server/diff-client.js';
import type { Differ } from '../../plugins/diff/types.js';
import { MT } from '../../services/compression/media-types.js';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { SnapshotsClient } from '../../server/snapshots-client.js';
import { defaultRoot } from '../defaults.js';
import { goJsonIndent, humanBytes, labelArgs, printJson, tabwrite } from '../format.js';

interface GlobalOpts {
  root: string;
  snapshotter: string;
  address?: string;
  json?: boolean;
}

function globals(cmd: Command): GlobalOpts {
  return cmd.optsWithGlobals() as GlobalOpts;
}

async function withSnapshotter<T>(cmd: Command, fn: (sn: Snapshotter, g: GlobalOpts, rt?: Runtime) => Promise<T>): Promise<T> {
  const g = globals(cmd);
  if (g.address) {
    const sn = SnapshotsClient.connect(g.address, g.snapshotter);
    try {
      return await fn(sn, g);
    } finally {
      await sn.close();
    }
  }
  const rt = new Runtime(g.root);
  try {
    return await fn(rt.snapshotter(g.snapshotter), g, rt);
  } finally {
    await rt.close();
  }
}

function sortedLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** ctr's JSON for snapshots.Info (Go field names, Kind as "Active", RFC 3339 times). */
function ctrInfo(i: Info): Record<string, unknown> {
  const out: Record<string, unknown> = { Kind: KIND_NAMES[i.kind], Name: i.name };
  if (i.parent) out.Parent = i.parent;
  if (Object.keys(i.labels).length > 0) out.Labels = sortedLabels(i.labels);
  out.Created = formatTimestamp(i.created);
  out.Updated = formatTimestamp(i.updated);
  return out;
}

function jsonInfo(i: Info): Record<string, unknown> {
  return {
    name: i.name,
    parent: i.parent,
    kind: i.kind,
    labels: sortedLabels(i.labels),
    created: formatTimestamp(i.created),
    updated: formatTimestamp(i.updated),
  };
}

function mountCommands(target: string, mounts: Mount[]): string {
  return mounts.map((m) => `mount -t ${m.type} ${m.source} ${target} -o ${m.options.join(',')}\n`).join('');
}

function ctrMounts(mounts: Mount[]): unknown {
  return mounts.map((m) => ({ Type: m.type, Source: m.source, Options: m.options }));
}

const collect = (v: string, prev: string[]) => [...prev, v];

function printCreated(g: GlobalOpts, mounts: Mount[], opts: { target?: string; mounts?: boolean }): void {
  if (g.json) {
    printJson(mounts);
    return;
  }
  if (opts.target) process.stdout.write(mountCommands(opts.target, mounts));
  if (opts.mounts) process.stdout.write(`${goJsonIndent(ctrMounts(mounts))}\n`);
}

export function register(program: Command): void {
  const snap = program
    .command('snapshot')
    .alias('snapshots')
    .description('manage snapshots (the `ctr snapshots` commands)')
    .addOption(new Option('--root <dir>', 'winsnap data root').default(defaultRoot()))
    .addOption(new Option('--snapshotter <name>', 'snapshotter to use').default('windows'))
    .option('--address <address>', 'talk to a running `winsnap serve` at this socket instead of opening the root')
    .option('--json', 'print JSON');

  for (const kind of ['prepare', 'view'] as const) {
    snap
      .command(kind)
      .description(kind === 'prepare' ? 'prepare a snapshot from a committed snapshot' : 'create a read-only snapshot from a committed snapshot')
      .argument('<key>')
      .argument('[parent]', 'committed parent', '')
      .option('-t, --target <path>', 'mount target path, will print mount, if provided')
      .option('--mounts', 'print out snapshot mounts as JSON')
      .option('--label <k=v>', 'label to set (repeatable)', collect, [] as string[])
      .action(async (key: string, parent: string, opts: { target?: string; mounts?: boolean; label: string[] }, cmd: Command) => {
        await withSnapshotter(cmd, async (sn, g) => {
          const labels = labelArgs(opts.label);
          const mounts = await (kind === 'prepare' ? sn.prepare(key, parent, { labels }) : sn.view(key, parent, { labels }));
          printCreated(g, mounts, opts);
        });
      });
  }

  snap
    .command('commit')
    .description('commit an active snapshot into the provided name')
    .argument('<key>', 'name of the committed snapshot')
    .argument('<active>', 'key of the active snapshot')
    .option('--label <k=v>', 'label to set (repeatable)', collect, [] as string[])
    .action(async (key: string, active: string, opts: { label: string[] }, cmd: Command) => {
      await withSnapshotter(cmd, (sn) => sn.commit(key, active, { labels: labelArgs(opts.label) }));
    });

  snap
    .command('rm')
    .aliases(['delete', 'del', 'remove'])
    .description('remove snapshots')
    .argument('<key...>')
    .action(async (keys: string[], _opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, async (sn) => {
        for (const key of keys) {
          try {
            await sn.remove(key);
          } catch (e) {
            throw isWinsnapError(e) ? e.wrap(`failed to remove "${key}"`) : e;
          }
        }
      });
    });

  snap
    .command('ls')
    .alias('list')
    .description('list snapshots')
    .option('--filter <filter>', 'containerd filter; several are OR-ed (repeatable)', collect, [] as string[])
    .action(async (opts: { filter: string[] }, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const infos: Info[] = [];
        await sn.walk((i) => void infos.push(i), ...opts.filter);
        if (g.json) printJson(infos.map(jsonInfo));
        else process.stdout.write(tabwrite([['KEY', 'PARENT', 'KIND'], ...infos.map((i) => [i.name, i.parent, KIND_NAMES[i.kind]])]));
      });
    });

  snap
    .command('info')
    .description('get info about a snapshot')
    .argument('<key>')
    .action(async (key: string, _opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const info = await sn.stat(key);
        if (g.json) printJson(jsonInfo(info));
        else process.stdout.write(`${goJsonIndent(ctrInfo(info))}\n`);
      });
    });

  snap
    .command('tree')
    .description('display tree view of snapshot branches')
    .action(async (_opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const nodes: { name: string; parent: string; children: string[] }[] = [];
        const index = new Map<string, (typeof nodes)[number]>();
        const add = (name: string, parent: string) => {
          let n = index.get(name);
          if (!n) {
            n = { name, parent, children: [] };
            nodes.push(n);
            index.set(name, n);
          } else n.parent = parent;
          if (parent) {
            if (!index.has(parent)) add(parent, '');
            index.get(parent)!.children.push(name);
          }
        };
        await sn.walk((i) => add(i.name, i.parent));
        if (g.json) {
          const build = (name: string): unknown => ({ name, children: index.get(name)!.children.map(build) });
          printJson(nodes.filter((n) => !n.parent).map((n) => build(n.name)));
          return;
        }
        let out = '';
        const print = (name: string, level: number) => {
          const prefix = '  '.repeat(level) + (level > 0 ? '\\_' : '');
          out += `${prefix} ${name}\n`;
          for (const c of index.get(name)!.children) print(c, level + 1);
        };
        for (const n of nodes) if (!n.parent) print(n.name, 0);
        process.stdout.write(out);
      });
    });

  snap
    .command('usage')
    .description('usage snapshots')
    .argument('[keys...]')
    .option('-b', 'display size in bytes')
    .action(async (keys: string[], opts: { b?: boolean }, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const names: string[] = keys.length > 0 ? keys : [];
        if (keys.length === 0) await sn.walk((i) => void names.push(i.name));
        const rows: { key: string; size: number; inodes: number }[] = [];
        for (const key of names) rows.push({ key, ...(await sn.usage(key)) });
        if (g.json) printJson(rows);
        else {
          const size = (n: number) => (opts.b ? String(n) : humanBytes(n));
          process.stdout.write(tabwrite([['KEY', 'SIZE', 'INODES'], ...rows.map((r) => [r.key, size(r.size), String(r.inodes)])]));
        }
      });
    });

  snap
    .command('label')
    .description('add labels to a snapshot (an empty value removes the label)')
    .argument('<name>')
    .argument('[labels...]', '<label>=<value>')
    .action(async (name: string, args: string[], _opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const labels = labelArgs(args);
        const paths = Object.keys(labels).map((k) => `labels.${k}`);
        const set = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ''));
        const info = paths.length === 0 ? await sn.stat(name) : await sn.update({ name, labels: set }, paths);
        if (g.json) printJson(sortedLabels(info.labels));
        else process.stdout.write(`${Object.entries(sortedLabels(info.labels)).map(([k, v]) => `${k}=${v}`).join(',')}\n`);
      });
    });

  snap
    .command('mounts')
    .aliases(['m', 'mount'])
    .description('mount gets mount commands for the snapshots')
    .argument('<target>')
    .argument('<key>')
    .action(async (target: string, key: string, _opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g) => {
        const mounts = await sn.mounts(key);
        if (g.json) printJson(mounts);
        else process.stdout.write(mountCommands(target, mounts));
      });
    });

  snap
    .command('diff')
    .description("write the diff of two snapshots as a layer blob; the second defaults to the first's parent")
    .argument('<a>', 'snapshot (upper)')
    .argument('[b]', 'snapshot (lower); default: the parent of <a>')
    .option('-o, --output <file>', 'write the blob here (default: stdout)')
    .option('--media-type <type>', 'media type of the diff', MT.ociLayerGzip)
    .option('--ref <ref>', 'content upload reference to use')
    .option('--label <k=v>', 'label for the content (repeatable)', collect, [] as string[])
    .action(async (a: string, b: string | undefined, opts: { output?: string; mediaType: string; ref?: string; label: string[] }, cmd: Command) => {
      await withSnapshotter(cmd, async (sn, g, rt) => {
        const epochEnv = process.env.SOURCE_DATE_EPOCH;
        const sourceDateEpoch = epochEnv && /^\d+$/.test(epochEnv) ? new Date(Number(epochEnv) * 1000) : undefined;
        const compareOpts = { mediaType: opts.mediaType, reference: opts.ref, labels: labelArgs(opts.label), sourceDateEpoch };
        const temps: string[] = [];
        const unique = () => randomBytes(6).toString('hex');
        const mountsOf = async (key: string) => {
          const info = await sn.stat(key);
          if (info.kind === 'active') return sn.mounts(key);
          // temporary views use unpack keys: no scratch disk is made for them (ctr's views get one)
          const viewKey = `extract-winsnap-diff-view-${unique()}`;
          temps.push(viewKey);
          return sn.view(viewKey, key);
        };
        try {
          let lower;
          let upper;
          if (b) {
            upper = await mountsOf(a);
            lower = await mountsOf(b);
          } else {
            const info = await sn.stat(a);
            const lowerKey = `extract-winsnap-diff-parent-view-${unique()}`;
            temps.push(lowerKey);
            lower = await sn.view(lowerKey, info.parent);
            upper = await mountsOf(a);
          }
          let desc;
          if (rt) {
            desc = await (rt.differ as Differ).compare(lower, upper, compareOpts);
            const out = opts.output ? createWriteStream(opts.output) : process.stdout;
            await pipeline(await rt.content.read(desc.digest), out, { end: Boolean(opts.output) });
          } else {
            const client = new DiffClient(g.address!);
            try {
              desc = await client.diff(lower, upper, { mediaType: opts.mediaType, ref: opts.ref, labels: compareOpts.labels });
            } finally {
              client.close();
            }
          }
          if (g.json || opts.output) process.stderr.write(`${JSON.stringify({ mediaType: desc.mediaType, digest: desc.digest, size: desc.size })}\n`);
        } finally {
          for (const k of temps.reverse()) await sn.remove(k).catch(() => undefined);
        }
      });
    });

  snap
    .command('cleanup')
    .description('remove directories and files no snapshot references')
    .action(async (_opts: unknown, cmd: Command) => {
      await withSnapshotter(cmd, (sn) => sn.cleanup());
    });
}
