/**
 * The CIM layer writer: a Windows layer tar written straight into a (forked) CIM image, with
 * hcsshim's rules (internal/wclayer/cim LayerWriter.go, seed 004; windows-layer-formats.md
 * §3.4):
 *
 * - file data is written raw; SD, EAs and (for symlinks and junctions only) the reparse
 *   buffer come from the Windows entry codec; REPARSE_POINT is forced on for symlinks and
 *   junctions and stripped everywhere else;
 * - "std files" — `Hives/{SYSTEM,SOFTWARE,SAM,SECURITY,DEFAULTUSER}_DELTA` and
 *   `Files/Windows/System32/config/{SYSTEM,SOFTWARE,SAM,SECURITY,DEFAULT}` (case-insensitive),
 *   `UtilityVM/Files/Windows/System32/config/{SYSTEM,SOFTWARE}`,
 *   `UtilityVM/Files/EFI/Microsoft/Boot/{BCD,bootmgfw.efi}` (case-sensitive) — are written
 *   into the layer directory first and added to the CIM at close; a hard link to a std file is
 *   deferred until then; a link or an alternate stream *on* a std file is an error;
 * - whiteouts remove the name (of any case) inherited from the parent image;
 * - at close, a base layer gets host `Hives/<X>_BASE` hard links to its config hives and, in
 *   the CIM, a `Hives` directory, the same links and a `layout` file (`vhd-with-hives\n`),
 *   all with zero times and no SD; a non-base layer merges each `Hives/<X>_DELTA` onto its
 *   immediate parent's `Hives/<X>_BASE` (our regf merge) into `Hives/<X>_BASE`, on the host
 *   and in the CIM.
 *
 * The layer's own tar entries (name, kind, hard-link target, in tar order) are listed in
 * `winsnap-cim-layer.ndjson` in the layer directory, so the layer can be exported again from
 * the CIM (a forked image holds its parents' entries too; layer-export.ts).
 *
 * Deviations, all more permissive than hcsshim and documented in docs/cimfs.md: ADS names
 * `file:stream` are accepted as well as `file:stream:$DATA`; a whiteout of a name the parents
 * do not have is ignored. The image is written under its final name only at commit; a failure
 * aborts it (its region files are removed).
 */
import { closeSync, constants, existsSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { failedPrecondition, invalidArgument, isWinsnapError, kindOf } from '../../services/errdefs.js';
import type { TarEntry } from '../../formats/tar/reader.js';
import { windowsEntryFromTar, type WindowsEntry } from '../../formats/wintar/entry.js';
import { FILE_ATTRIBUTE } from '../../formats/wintar/constants.js';
import { encodeEaBuffer } from '../../formats/wintar/ea.js';
import { securityDescriptorFromSddl } from '../../formats/wintar/sddl.js';
import { inFilesTree, parseLayerName, whiteoutTarget } from '../../formats/layerdir/names.js';
import { foldName } from '../../formats/common/upcase.js';
import { CimWriter, type CimFileMetadata } from '../../formats/cim/index.js';
import { mergeHives } from '../../formats/regf/index.js';

export interface CimLayerTarget {
  /** the snapshot directory: std files and host hives go here */
  layerPath: string;
  /** `<cim dir>/<name>.cim` to create */
  cimPath: string;
  /** parent layer directories, immediate parent first */
  parentLayerPaths: string[];
  /** parent CIM images, immediate parent first (the new image forks the first) */
  parentCimPaths: string[];
}

/** hive name in config/, its `_BASE` and `_DELTA` names under Hives/ */
export const CIM_HIVES: ReadonlyArray<{ name: string; base: string; delta: string }> = [
  { name: 'SYSTEM', base: 'SYSTEM_BASE', delta: 'SYSTEM_DELTA' },
  { name: 'SOFTWARE', base: 'SOFTWARE_BASE', delta: 'SOFTWARE_DELTA' },
  { name: 'SAM', base: 'SAM_BASE', delta: 'SAM_DELTA' },
  { name: 'SECURITY', base: 'SECURITY_BASE', delta: 'SECURITY_DELTA' },
  { name: 'DEFAULT', base: 'DEFAULTUSER_BASE', delta: 'DEFAULTUSER_DELTA' },
];
const CONFIG = 'Files/Windows/System32/config';
const CASE_INSENSITIVE_STD = new Set(
  CIM_HIVES.flatMap((h) => [foldName(`Hives/${h.delta}`), foldName(`${CONFIG}/${h.name}`)]),
);
const CASE_SENSITIVE_STD = new Set([
  `UtilityVM/${CONFIG}/SYSTEM`,
  `UtilityVM/${CONFIG}/SOFTWARE`,
  'UtilityVM/Files/EFI/Microsoft/Boot/BCD',
  'UtilityVM/Files/EFI/Microsoft/Boot/bootmgfw.efi',
]);
export const LAYOUT_CONTENT = 'vhd-with-hives\n';
/** The list of the layer's own tar entries (one JSON object per line). */
export const CIM_LAYER_ENTRIES = 'winsnap-cim-layer.ndjson';

export interface CimLayerEntry {
  /** the tar name */
  n: string;
  k: WindowsEntry['kind'];
  /** hard links: the target's tar name */
  l?: string;
}
const NORMAL = FILE_ATTRIBUTE.NORMAL;

/** isStdFile: written outside the CIM first, added at close. */
export function isStdFile(name: string): boolean {
  return CASE_INSENSITIVE_STD.has(foldName(name)) || CASE_SENSITIVE_STD.has(name);
}

function metadataOf(we: WindowsEntry): CimFileMetadata {
  const reparse = we.kind === 'symlink' || we.kind === 'junction';
  let attributes = we.attributes;
  attributes = reparse ? attributes | FILE_ATTRIBUTE.REPARSE_POINT : attributes & ~FILE_ATTRIBUTE.REPARSE_POINT;
  if (we.kind === 'dir') attributes |= FILE_ATTRIBUTE.DIRECTORY;
  const sd = we.securityDescriptor ?? (we.sddl ? securityDescriptorFromSddl(we.sddl) : undefined);
  return {
    attributes: attributes >>> 0,
    creationTime: we.creationTime,
    lastWriteTime: we.lastWriteTime,
    changeTime: we.changeTime,
    lastAccessTime: we.lastAccessTime,
    size: we.kind === 'file' ? we.size : 0,
    securityDescriptor: sd,
    extendedAttributes: we.eas.length > 0 ? encodeEaBuffer(we.eas) : undefined,
    reparseData: reparse ? we.reparseBuffer : undefined,
  };
}

type PendingOp = { kind: 'add'; path: string; host: string; meta: CimFileMetadata } | { kind: 'link'; path: string; target: string };

/** Writes the layer tar `entries` as the CIM image `target.cimPath`. Returns whether it was a base layer. */
export async function writeCimLayer(entries: AsyncIterable<TarEntry>, target: CimLayerTarget): Promise<{ base: boolean }> {
  const cimDir = dirname(target.cimPath);
  const name = basename(target.cimPath).replace(/\.cim$/i, '');
  if (name === basename(target.cimPath)) throw invalidArgument(`CIM path ${target.cimPath} must end in .cim`, { path: target.cimPath });
  const parentCim = target.parentCimPaths[0];
  if (parentCim !== undefined && dirname(parentCim) !== cimDir) {
    throw invalidArgument(`parent CIM ${parentCim} must be in the same directory as ${target.cimPath}`, { path: parentCim });
  }
  if (target.parentLayerPaths.length !== target.parentCimPaths.length) {
    throw invalidArgument(
      `${target.parentLayerPaths.length} parent layer paths but ${target.parentCimPaths.length} parent CIM paths`,
      { path: target.layerPath },
    );
  }
  const base = target.parentLayerPaths.length === 0;
  mkdirSync(cimDir, { recursive: true });
  const cim = await CimWriter.create(cimDir, name, parentCim ? { parentName: basename(parentCim).replace(/\.cim$/i, '') } : {});
  const pending: PendingOp[] = [];
  const listTmp = join(target.layerPath, `${CIM_LAYER_ENTRIES}.tmp`);
  const list = openSync(listTmp, 'w');
  let listClosed = false;
  const closeList = () => {
    if (!listClosed) closeSync(list);
    listClosed = true;
  };
  /** std files written to the host, by folded name */
  const stdHost = new Map<string, string>();

  const writeStdFile = async (e: TarEntry, n: string, offset: number): Promise<string> => {
    const host = join(target.layerPath, ...n.split('/'));
    mkdirSync(dirname(host), { recursive: true });
    let fd: number;
    try {
      fd = openSync(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw invalidArgument(`duplicate entry "${n}"`, { entry: n, offset });
      throw err;
    }
    try {
      let pos = 0;
      for await (const chunk of e.body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off, pos + off);
        pos += chunk.length;
      }
    } finally {
      closeSync(fd);
    }
    return host;
  };

  try {
    for await (const e of entries) {
      const offset = e.offset;
      const n = parseLayerName(e.header.name, offset);
      const we = windowsEntryFromTar(e.header, { offset });
      const rec: CimLayerEntry = { n: e.header.name, k: we.kind };
      if (we.kind === 'hardlink') rec.l = we.linkTarget;
      writeSync(list, `${JSON.stringify(rec)}\n`);
      const at = (err: unknown) => (isWinsnapError(err) ? err.wrap(`layer entry "${n.name}" at offset ${offset}`) : err);
      try {
        switch (we.kind) {
          case 'whiteout': {
            const t = whiteoutTarget(n)!;
            if (base) throw invalidArgument(`invalid tombstone "${n.name}": a base layer (no parents) cannot delete`, { entry: n.name, offset });
            if (!inFilesTree(t.split('/'))) {
              throw invalidArgument(`invalid tombstone "${n.name}": only names under Files/ or UtilityVM/Files/ can be deleted`, { entry: n.name, offset });
            }
            try {
              await cim.deletePath(t);
            } catch (err) {
              if (kindOf(err) !== 'NotFound') throw err;
            }
            break;
          }
          case 'hardlink': {
            const linkTarget = parseLayerName(we.linkTarget ?? '', offset).name;
            if (isStdFile(n.name)) throw invalidArgument(`unexpected link ${n.name} in layer`, { entry: n.name, offset });
            if (isStdFile(linkTarget)) pending.push({ kind: 'link', path: n.name, target: linkTarget });
            else await cim.createHardLink(n.name, linkTarget);
            break;
          }
          case 'ads': {
            if (isStdFile(we.adsBase!)) throw invalidArgument(`unexpected alternate stream ${n.name} in layer`, { entry: n.name, offset });
            await cim.createAlternateStream(`${we.adsBase}:${we.adsStream}`, we.size);
            for await (const chunk of e.body) await cim.write(chunk);
            await cim.closeStream();
            break;
          }
          default: {
            const meta = metadataOf(we);
            if (we.kind === 'file' && isStdFile(n.name)) {
              const host = await writeStdFile(e, n.name, offset);
              stdHost.set(foldName(n.name), host);
              pending.push({ kind: 'add', path: n.name, host, meta });
              break;
            }
            await cim.createFile(n.name, meta);
            if (we.kind === 'file' && we.size > 0) {
              for await (const chunk of e.body) await cim.write(chunk);
              await cim.closeStream();
            }
          }
        }
      } catch (err) {
        throw at(err);
      }
    }

    const zero: Omit<CimFileMetadata, 'attributes'> = { creationTime: 0n, lastWriteTime: 0n, changeTime: 0n, lastAccessTime: 0n };
    if (base) {
      // processBaseLayer: Hives/<X>_BASE links to the config hives, the layout file
      mkdirSync(join(target.layerPath, 'Hives'), { recursive: true });
      pending.push({ kind: 'add', path: 'Hives', host: '', meta: { attributes: FILE_ATTRIBUTE.DIRECTORY, ...zero } });
      for (const h of CIM_HIVES) {
        const host = stdHost.get(foldName(`${CONFIG}/${h.name}`));
        if (!host) continue;
        linkSync(host, join(target.layerPath, 'Hives', h.base));
        pending.push({ kind: 'link', path: `Hives/${h.base}`, target: `${CONFIG}/${h.name}` });
      }
      pending.push({ kind: 'add', path: 'layout', host: '', meta: { attributes: NORMAL, size: LAYOUT_CONTENT.length, ...zero } });
    } else {
      // processNonBaseLayer: merge each delta onto the immediate parent's base hive
      for (const h of CIM_HIVES) {
        const delta = stdHost.get(foldName(`Hives/${h.delta}`));
        if (!delta) continue;
        const parentBase = join(target.parentLayerPaths[0]!, 'Hives', h.base);
        if (!existsSync(parentBase)) {
          throw failedPrecondition(`cannot merge Hives/${h.delta}: the parent layer has no Hives/${h.base}`, { path: parentBase });
        }
        let merged: Buffer;
        try {
          merged = mergeHives(readFileSync(parentBase), readFileSync(delta));
        } catch (err) {
          throw isWinsnapError(err) ? err.wrap(`merging Hives/${h.delta} onto ${parentBase}`) : err;
        }
        const out = join(target.layerPath, 'Hives', h.base);
        writeFileSync(out, merged, { flag: 'wx' });
        pending.push({ kind: 'add', path: `Hives/${h.base}`, host: out, meta: { attributes: NORMAL, size: merged.length, ...zero } });
      }
    }

    for (const op of pending) {
      if (op.kind === 'link') {
        await cim.createHardLink(op.path, op.target);
        continue;
      }
      if (op.path === 'Hives' && cim.exists('Hives')) continue; // the tar had the directory already
      await cim.createFile(op.path, op.meta);
      const size = Number(op.meta.size ?? 0);
      if ((op.meta.attributes & FILE_ATTRIBUTE.DIRECTORY) !== 0 || size === 0) continue;
      if (op.path === 'layout') await cim.write(Buffer.from(LAYOUT_CONTENT));
      else for await (const chunk of createReadStream(op.host, { highWaterMark: 1 << 20 })) await cim.write(chunk as Buffer);
      await cim.closeStream();
    }
    closeList();
    renameSync(listTmp, join(target.layerPath, CIM_LAYER_ENTRIES));
    await cim.commit();
    return { base };
  } catch (e) {
    closeList();
    rmSync(listTmp, { force: true });
    await cim.abort().catch(() => undefined);
    throw e;
  }
}
