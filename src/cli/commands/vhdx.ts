/**
 * `winsnap vhdx create|resize|info|convert`: VHDX scratch disks from the command line
 * (src/formats/vhdx). Sizes accept plain bytes or a unit: K/M/G/T and KiB/MiB/GiB/TiB are
 * powers of 1024, KB/MB/GB/TB powers of 1000. `--json` prints one JSON object on stdout.
 */
import type { Command } from 'commander';
import type cliProgressModule from 'cli-progress';
import { invalidArgument, isFailedPrecondition, isNotFound } from '../../services/errdefs.js';
import {
  createDifferencing,
  createDynamic,
  createFixed,
  detectDiskFilesystem,
  isVhdxFile,
  open,
  rawToVhdx,
  resize,
  vhdxToRaw,
  type ProgressFn,
  type VhdxInfo,
} from '../../formats/vhdx/index.js';
import { parseSize } from '../format.js';

export function formatSize(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(2)} ${units[i]} (${n} bytes)`;
}

/** A progress bar on a terminal (cli-progress, loaded only then: ~3 ms a start otherwise). */
export async function progressBar(label: string): Promise<{ onProgress: ProgressFn; stop: () => void }> {
  if (!process.stderr.isTTY) return { onProgress: () => undefined, stop: () => undefined };
  const cliProgress: typeof cliProgressModule = (await import('cli-progress')).default;
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {doneMiB}/{totalMiB} MiB | {rate} MiB/s | ETA {eta_formatted}`,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const t0 = Date.now();
  let started = false;
  return {
    onProgress: (done, total) => {
      const fields = {
        doneMiB: (done / 2 ** 20).toFixed(0),
        totalMiB: (total / 2 ** 20).toFixed(0),
        rate: (done / 2 ** 20 / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(0),
      };
      if (!started) {
        bar.start(total, done, fields);
        started = true;
      } else bar.update(done, fields);
    },
    stop: () => started && bar.stop(),
  };
}

type Described = VhdxInfo & { filesystem?: Awaited<ReturnType<typeof detectDiskFilesystem>>; parentError?: string };

async function describeDisk(path: string, parentPath?: string): Promise<Described> {
  let d;
  let parentError: string | undefined;
  try {
    d = await open(path, parentPath ? { parentPath } : {});
  } catch (err) {
    // a differencing disk whose parent cannot be opened: still describe the file itself
    if (!(isNotFound(err) || isFailedPrecondition(err)) || !String(err).includes('parent')) throw err;
    parentError = (err as Error).message;
    d = await open(path, { noParent: true });
  }
  try {
    return { ...d.info, ...(parentError ? { parentError } : { filesystem: await detectDiskFilesystem(d) }) };
  } finally {
    await d.close();
  }
}

function fsLine(fs: Described['filesystem']): string {
  if (!fs) return 'unknown (parent not available)';
  const where = fs.partitionTable === 'none' ? 'whole disk' : `${fs.partitionTable.toUpperCase()} partition at ${fs.offset}`;
  return fs.filesystem === 'none' ? 'none (unformatted)' : fs.filesystem === 'unknown' ? `unrecognised (${where})` : `${fs.filesystem} (${where})`;
}

function printInfo(i: Described): void {
  const lines = [
    `path:              ${i.path}`,
    `type:              ${i.type}`,
    `virtual size:      ${formatSize(i.virtualSize)}`,
    `block size:        ${formatSize(i.blockSize)}`,
    `sector size:       logical ${i.logicalSectorSize}, physical ${i.physicalSectorSize}`,
    `filesystem:        ${fsLine(i.filesystem)}`,
    `allocated blocks:  ${i.allocatedBlocks} of ${i.payloadBlocks}`,
    `file size:         ${formatSize(i.fileSize)}`,
    `virtual disk id:   ${i.virtualDiskId}`,
    `data write guid:   ${i.dataWriteGuid}`,
    `file write guid:   ${i.fileWriteGuid}`,
  ];
  if (i.parentLocator) {
    lines.push(`parent:            ${i.parentPath ?? `not opened: ${i.parentError ?? ''}`}`);
    for (const [k, v] of Object.entries(i.parentLocator.entries)) lines.push(`  ${k.padEnd(17)}${v}`);
  }
  if (i.logReplayed) lines.push(`log:               replayed in memory (open writable to replay into the file)`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

interface CreateFlags {
  size?: string;
  fixed?: boolean;
  blockSize?: string;
  parent?: string;
  logicalSectorSize?: string;
  physicalSectorSize?: string;
  randomIds?: boolean;
  idSeed?: string;
  force?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  const vhdx = program.command('vhdx').description('create, grow, inspect and convert VHDX virtual disks');

  vhdx
    .command('create')
    .description('create a dynamic (default), fixed or differencing VHDX')
    .argument('<path>', 'VHDX file to create')
    .option('--size <size>', 'virtual size (e.g. 20GiB); optional with --parent (grows the child)')
    .option('--fixed', 'fully allocated (fixed) disk')
    .option('--block-size <size>', 'payload block size, 1MiB..256MiB (default 32MiB; the parent\'s with --parent)')
    .option('--parent <path>', 'create a differencing disk on this parent VHDX')
    .option('--logical-sector-size <n>', '512 or 4096', '512')
    .option('--physical-sector-size <n>', '512 or 4096', '4096')
    .option('--random-ids', 'random GUIDs instead of ones derived from the parameters')
    .option('--id-seed <text>', 'extra input for derived GUIDs')
    .option('--force', 'replace an existing file')
    .option('--json', 'print the new disk\'s info as JSON')
    .action(async (path: string, o: CreateFlags) => {
      const ids = { ids: o.randomIds ? ('random' as const) : ('deterministic' as const), ...(o.idSeed ? { idSeed: o.idSeed } : {}) };
      const blockSize = o.blockSize ? parseSize(o.blockSize) : undefined;
      let info: VhdxInfo;
      if (o.parent) {
        if (o.fixed) throw invalidArgument('--fixed and --parent cannot be combined');
        info = await createDifferencing(path, o.parent, { ...ids, blockSize, overwrite: o.force });
        if (o.size && parseSize(o.size) !== info.virtualSize) info = await resize(path, parseSize(o.size), ids);
      } else {
        if (!o.size) throw invalidArgument('--size is required (or --parent)');
        const opts = {
          ...ids,
          size: parseSize(o.size),
          blockSize,
          logicalSectorSize: Number(o.logicalSectorSize),
          physicalSectorSize: Number(o.physicalSectorSize),
          overwrite: o.force,
        };
        info = o.fixed ? await createFixed(path, opts) : await createDynamic(path, opts);
      }
      if (o.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else process.stdout.write(`created ${info.type} VHDX ${path}: ${formatSize(info.virtualSize)}, block size ${formatSize(info.blockSize)}\n`);
    });

  vhdx
    .command('resize')
    .description('grow a VHDX\'s virtual size (shrinking is refused)')
    .argument('<path>', 'VHDX file')
    .requiredOption('--size <size>', 'new virtual size (e.g. 40GiB)')
    .option('--random-ids', 'random GUIDs for the header updates')
    .option('--json', 'print the resized disk\'s info as JSON')
    .action(async (path: string, o: { size: string; randomIds?: boolean; json?: boolean }) => {
      const info = await resize(path, parseSize(o.size), { ids: o.randomIds ? 'random' : 'deterministic' });
      if (o.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else process.stdout.write(`resized ${path} to ${formatSize(info.virtualSize)}\n`);
    });

  vhdx
    .command('info')
    .description('show a VHDX\'s type, sizes, identifiers, parent and filesystem')
    .argument('<path>', 'VHDX file')
    .option('--parent <path>', 'parent file to use instead of the parent locator')
    .option('--json', 'print one JSON object')
    .action(async (path: string, o: { parent?: string; json?: boolean }) => {
      const i = await describeDisk(path, o.parent);
      if (o.json) process.stdout.write(`${JSON.stringify(i)}\n`);
      else printInfo(i);
    });

  vhdx
    .command('convert')
    .description('convert raw ↔ VHDX (direction from the input, or --to)')
    .argument('<in>', 'input file (raw image or VHDX)')
    .argument('<out>', 'output file')
    .option('--to <format>', 'raw or vhdx (default: the other format than the input)')
    .option('--fixed', 'raw → fixed VHDX (default dynamic)')
    .option('--block-size <size>', 'raw → VHDX block size (default 32MiB)')
    .option('--random-ids', 'random GUIDs instead of content-derived ones')
    .option('--force', 'replace an existing output file')
    .option('--json', 'print the result as JSON')
    .action(async (input: string, output: string, o: { to?: string; fixed?: boolean; blockSize?: string; randomIds?: boolean; force?: boolean; json?: boolean }) => {
      const to = o.to ?? ((await isVhdxFile(input)) ? 'raw' : 'vhdx');
      if (to !== 'raw' && to !== 'vhdx') throw invalidArgument(`--to must be raw or vhdx, not ${JSON.stringify(to)}`);
      const bar = await progressBar(to === 'vhdx' ? 'raw → vhdx' : 'vhdx → raw');
      try {
        if (to === 'vhdx') {
          const info = await rawToVhdx(input, output, {
            fixed: o.fixed,
            blockSize: o.blockSize ? parseSize(o.blockSize) : undefined,
            ids: o.randomIds ? 'random' : 'deterministic',
            overwrite: o.force,
            onProgress: bar.onProgress,
          });
          bar.stop();
          if (o.json) process.stdout.write(`${JSON.stringify(info)}\n`);
          else process.stdout.write(`wrote ${info.type} VHDX ${output}: ${formatSize(info.virtualSize)}, ${info.allocatedBlocks} of ${info.payloadBlocks} blocks allocated\n`);
        } else {
          const r = await vhdxToRaw(input, output, { overwrite: o.force, onProgress: bar.onProgress });
          bar.stop();
          if (o.json) process.stdout.write(`${JSON.stringify({ path: output, format: 'raw', virtualSize: r.virtualSize })}\n`);
          else process.stdout.write(`wrote raw image ${output}: ${formatSize(r.virtualSize)}\n`);
        }
      } finally {
        bar.stop();
      }
    });
}
