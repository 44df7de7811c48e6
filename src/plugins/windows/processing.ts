/**
 * What a Windows host does to WCOW layer directories, done portably (hcsshim
 * ProcessBaseImage / ProcessUtilityVMImage / ConvertToBaseLayer / CreateSandboxLayer and
 * containerd's scratch handling; windows-layer-formats.md §2.3, §5):
 *
 * - base-layer processing: `Hives/<NAME>_BASE` hard links to the config hives, a `layout`
 *   file, the scratch templates `blank-base.vhdx` (dynamic VHDX) and its differencing child
 *   `blank.vhdx`, and for a UtilityVM `UtilityVM/SystemTemplateBase.vhdx` +
 *   `UtilityVM/SystemTemplate.vhdx`. Windows formats the templates NTFS; we do when
 *   `mkntfs` is installed, else they stay unformatted (`winsnap vhdx info` says which).
 *   Windows also puts WCIFS placeholders in blank-base.vhdx and edits the UVM's BCD; we
 *   cannot, and say so in docs/windows-layers.md.
 * - ConvertToBaseLayer: missing config hives are created empty, a UtilityVM needs its BCD.
 * - scratch disks: `sandbox.vhdx` copied from the base layer's `blank.vhdx` and grown to the
 *   size asked for; `vm/sandbox.vhdx` from `UtilityVM/SystemTemplate.vhdx`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, closeSync, openSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { failedPrecondition, invalidArgument, notFound } from '../../services/errdefs.js';
import { writeHive } from '../../formats/regf/index.js';
import { copyDisk, createDifferencing, createDynamic, open as openVhdx, rawToVhdx } from '../../formats/vhdx/index.js';
import { INDEX_FILE, LayerIndex } from '../../formats/layerdir/index-db.js';
import { indexHostTree } from '../../formats/layerdir/scan.js';

export interface WindowsLayerConfig {
  /** virtual size of blank-base.vhdx (Windows: 20 GB) */
  sandboxTemplateSize: number;
  /** virtual size of UtilityVM/SystemTemplateBase.vhdx */
  uvmTemplateSize: number;
  /** 'auto': NTFS when mkntfs is installed; 'never': leave templates unformatted */
  formatNtfs: 'auto' | 'never';
}

export const DEFAULT_WINDOWS_LAYER_CONFIG: WindowsLayerConfig = {
  sandboxTemplateSize: 20 * 1024 ** 3,
  uvmTemplateSize: 10 * 1024 ** 3,
  formatNtfs: 'auto',
};

const CONFIG_DIR = ['Files', 'Windows', 'System32', 'config'];
/** config hive → Hives/ name (hcsshim's CIM writer names; DEFAULT becomes DEFAULTUSER). */
export const BASE_HIVES: ReadonlyArray<[string, string]> = [
  ['SYSTEM', 'SYSTEM_BASE'],
  ['SOFTWARE', 'SOFTWARE_BASE'],
  ['SAM', 'SAM_BASE'],
  ['SECURITY', 'SECURITY_BASE'],
  ['DEFAULT', 'DEFAULTUSER_BASE'],
];
export const LAYOUT_CONTENT = 'vhd-with-hives\n';

function findMkntfs(): string | undefined {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = join(d, 'mkntfs');
    if (d && existsSync(p)) return p;
  }
  return undefined;
}

/** A seed for deterministic VHDX GUIDs: the layer's index, so equal layers give equal disks. */
function layerSeed(dir: string): string {
  const ix = join(dir, INDEX_FILE);
  return `winsnap-layer:${createHash('sha256').update(existsSync(ix) ? readFileSync(ix) : Buffer.alloc(0)).digest('hex')}`;
}

/** Makes a template disk: NTFS-formatted when possible, else an empty dynamic VHDX. */
export async function makeTemplate(
  path: string,
  size: number,
  label: string,
  seed: string,
  cfg: Pick<WindowsLayerConfig, 'formatNtfs'>,
  blockSize?: number,
): Promise<void> {
  const mkntfs = cfg.formatNtfs === 'auto' ? findMkntfs() : undefined;
  if (!mkntfs) {
    await createDynamic(path, { size, overwrite: true, idSeed: seed, blockSize });
    return;
  }
  const tmp = mkdtempSync(`${path}.raw-`);
  try {
    const raw = join(tmp, 'disk.raw');
    const fd = openSync(raw, 'w');
    ftruncateSync(fd, size);
    closeSync(fd);
    // -T: zero times and a fixed seed, so the same size gives the same bytes (no random serial)
    const r = spawnSync(mkntfs, ['-F', '-Q', '-q', '-T', '-s', '512', '-p', '0', '-H', '0', '-S', '0', '-L', label, raw], {
      encoding: 'utf8',
      env: { ...process.env, LC_ALL: 'C' },
    });
    if (r.status !== 0) throw failedPrecondition(`mkntfs failed for ${path}: ${r.stderr || r.stdout}`, { path });
    await rawToVhdx(raw, path, { overwrite: true, idSeed: seed, blockSize });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Base-layer processing (ProcessBaseImage + ProcessUtilityVMImage). Idempotent. */
export async function processBaseLayer(dir: string, cfg: WindowsLayerConfig = DEFAULT_WINDOWS_LAYER_CONFIG): Promise<void> {
  const seed = layerSeed(dir);
  const hives = join(dir, 'Hives');
  mkdirSync(hives, { recursive: true });
  for (const [src, dst] of BASE_HIVES) {
    const from = join(dir, ...CONFIG_DIR, src);
    const to = join(hives, dst);
    rmSync(to, { force: true });
    if (existsSync(from)) linkSync(from, to);
  }
  writeFileSync(join(dir, 'layout'), LAYOUT_CONTENT);
  await makeTemplate(join(dir, 'blank-base.vhdx'), cfg.sandboxTemplateSize, 'Sandbox', `${seed}:blank-base`, cfg);
  await createDifferencing(join(dir, 'blank.vhdx'), join(dir, 'blank-base.vhdx'), { overwrite: true, idSeed: `${seed}:blank` });
  if (existsSync(join(dir, 'UtilityVM', 'Files'))) {
    const uvm = join(dir, 'UtilityVM');
    await makeTemplate(join(uvm, 'SystemTemplateBase.vhdx'), cfg.uvmTemplateSize, 'UVMScratch', `${seed}:uvm-base`, cfg);
    await createDifferencing(join(uvm, 'SystemTemplate.vhdx'), join(uvm, 'SystemTemplateBase.vhdx'), { overwrite: true, idSeed: `${seed}:uvm` });
  }
}

/** An empty hive, as offreg's ORCreateHive + ORSaveHive would leave it. */
function emptyHive(name: string): Buffer {
  return writeHive({ name: `CsiTool-CreateHive-${name}` }, { minorVersion: 6, fileName: name });
}

/** ConvertToBaseLayer: `<dir>/Files` (written on the host) becomes a processed base layer. */
export async function convertToBaseLayer(dir: string, cfg: WindowsLayerConfig = DEFAULT_WINDOWS_LAYER_CONFIG): Promise<void> {
  if (!LayerIndex.exists(dir)) {
    if (!existsSync(join(dir, 'Files'))) throw notFound(`${dir} has no Files directory to convert`, { path: dir });
    if (existsSync(join(dir, 'UtilityVM', 'Files')) && !existsSync(join(dir, 'UtilityVM', 'Files', 'EFI', 'Microsoft', 'Boot', 'BCD'))) {
      throw invalidArgument(`${dir}: a UtilityVM needs UtilityVM/Files/EFI/Microsoft/Boot/BCD`, { path: dir });
    }
    const config = join(dir, ...CONFIG_DIR);
    mkdirSync(config, { recursive: true });
    for (const [hive] of BASE_HIVES) {
      const p = join(config, hive);
      if (!existsSync(p)) writeFileSync(p, emptyHive(hive));
    }
    indexHostTree(dir);
  }
  await processBaseLayer(dir, cfg);
}

/** The scratch re-import: `<dir>` (its Files/, Hives/, UtilityVM/ and .wh. markers) becomes a layer over its parents. */
export async function convertScratchToReadOnlyLayer(dir: string, parents: string[]): Promise<void> {
  if (LayerIndex.exists(dir)) return; // converted by an earlier, interrupted commit
  mkdirSync(join(dir, 'Files'), { recursive: true });
  indexHostTree(dir, { parents });
}

export interface ScratchRequest {
  dir: string;
  parentLayerPaths: string[];
  sizeBytes: bigint;
}

/** sandbox.vhdx from the base layer's blank.vhdx, grown to sizeBytes when larger. */
export async function createScratch(req: ScratchRequest): Promise<void> {
  const base = req.parentLayerPaths[req.parentLayerPaths.length - 1];
  if (!base) throw invalidArgument('no parent layers present');
  const template = join(base, 'blank.vhdx');
  if (!existsSync(template)) throw notFound(`failed to open ${template}: the base layer has no scratch template`, { path: template });
  const dest = join(req.dir, 'sandbox.vhdx');
  await copyDisk(template, dest);
  await growTo(dest, req.sizeBytes);
}

/** vm/sandbox.vhdx from the base layer's UtilityVM/SystemTemplate.vhdx. */
export async function createUvmScratch(req: ScratchRequest): Promise<void> {
  const base = req.parentLayerPaths[req.parentLayerPaths.length - 1];
  if (!base) throw invalidArgument('no parent layers present');
  const uvm = join(base, 'UtilityVM');
  if (!existsSync(uvm)) throw notFound(`failed to find UtilityVM directory in base layer "${base}"`, { path: uvm });
  const template = join(uvm, 'SystemTemplate.vhdx');
  if (!existsSync(template)) throw notFound(`"${template}" does not exist in Utility VM image`, { path: template });
  mkdirSync(join(req.dir, 'vm'), { recursive: true });
  await copyDisk(template, join(req.dir, 'vm', 'sandbox.vhdx'));
}

export async function growTo(path: string, size: bigint): Promise<void> {
  if (size === 0n) return;
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`scratch size ${size} is too large`);
  const want = Number(((size + 511n) / 512n) * 512n); // a whole number of sectors
  const disk = await openVhdx(path, { writable: true });
  try {
    if (disk.size < want) await disk.resize(want);
  } finally {
    await disk.close();
  }
}

/** The snapshotter hooks, bound to a configuration. */
export function windowsLayerHooks(cfg: WindowsLayerConfig = DEFAULT_WINDOWS_LAYER_CONFIG) {
  return {
    createScratch,
    createUvmScratch,
    convertToBaseLayer: (dir: string) => convertToBaseLayer(dir, cfg),
    convertScratchToReadOnlyLayer,
  };
}
