/**
 * Exports a layer directory back to a Windows layer tar: the index's entries in tar order,
 * each header exactly as recorded at apply time (or synthesized at conversion), with data
 * read from the host files. Deterministic: the same layer gives the same bytes. A host
 * file whose size no longer matches its entry is FailedPrecondition (the layer was
 * modified behind our back).
 */
import { closeSync, fstatSync, openSync, readSync, constants } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { failedPrecondition } from '../../services/errdefs.js';
import { TarWriter } from '../tar/writer.js';
import type { TarHeaderInput } from '../tar/types.js';
import { EntryKind, LayerIndex } from './index-db.js';

export interface ExportedEntry {
  header: TarHeaderInput;
  /** data for files and alternate data streams */
  body?: AsyncIterable<Buffer>;
}

const CHUNK = 1 << 20;

async function* readHostFile(path: string, size: number, entry: string): AsyncGenerator<Buffer> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const st = fstatSync(fd);
    if (st.size !== size) {
      throw failedPrecondition(`layer file ${path} is ${st.size} bytes but entry "${entry}" records ${size}`, { entry, path });
    }
    let pos = 0;
    while (pos < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, pos + got);
        if (n === 0) throw failedPrecondition(`layer file ${path} ended early`, { entry, path });
        got += n;
      }
      pos += got;
      yield buf;
    }
  } finally {
    closeSync(fd);
  }
}

export interface ExportOptions {
  /** where the index is, when not in the layer directory (see scan.ts indexDir) */
  indexDir?: string;
  /** rewrites each header before it is written (e.g. to clamp times) */
  mapHeader?: (h: TarHeaderInput) => TarHeaderInput;
}

/** The entries of a committed layer, in tar order. */
export async function* layerEntries(layerDir: string, opts: ExportOptions = {}): AsyncGenerator<ExportedEntry> {
  const ix = LayerIndex.open(opts.indexDir ?? layerDir);
  const map = opts.mapHeader ?? ((h: TarHeaderInput) => h);
  try {
    for (const e of ix.entries()) {
      const withData = (e.kind === EntryKind.File || e.kind === EntryKind.Ads) && e.header.size > 0;
      const header = map(e.header);
      yield withData ? { header, body: readHostFile(join(layerDir, e.host!), e.header.size, e.name) } : { header };
    }
  } finally {
    ix.close();
  }
}

/** The layer as an (uncompressed) tar stream. */
export function exportLayer(layerDir: string, opts: ExportOptions = {}): Readable {
  const w = new TarWriter();
  (async () => {
    try {
      for await (const e of layerEntries(layerDir, opts)) await w.writeEntry(e.header, e.body);
      await w.finish();
    } catch (err) {
      w.destroy(err as Error);
    }
  })();
  return w.stream;
}
