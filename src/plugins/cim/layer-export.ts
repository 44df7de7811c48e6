/**
 * Exports a CIM layer back to an OCI Windows layer tar (hcsshim cannot): the layer's own
 * entries, in their original order, from `winsnap-cim-layer.ndjson` (written by the CIM layer
 * writer); everything else — attributes, the four times, security descriptor, EAs, reparse
 * buffer (symlink and junction targets), sizes and data of default and alternate streams —
 * is read from the CIM image. Entries are encoded by the Windows entry codec, so a layer
 * written by that codec exports to the same entries. Deterministic.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { failedPrecondition, invalidArgument } from '../../services/errdefs.js';
import { CimReader } from '../../formats/cim/index.js';
import { TarWriter } from '../../formats/tar/writer.js';
import type { TarHeaderInput } from '../../formats/tar/types.js';
import { decodeEaBuffer } from '../../formats/wintar/ea.js';
import { FILE_ATTRIBUTE, IO_REPARSE_TAG_MOUNT_POINT } from '../../formats/wintar/constants.js';
import { parseAdsName, tarHeaderFromWindowsEntry, type WindowsEntry } from '../../formats/wintar/entry.js';
import { CIM_LAYER_ENTRIES, type CimLayerEntry } from './layer-writer.js';

async function* layerList(layerPath: string): AsyncGenerator<CimLayerEntry> {
  const rl = createInterface({ input: createReadStream(join(layerPath, CIM_LAYER_ENTRIES)), crlfDelay: Infinity });
  let line = 0;
  for await (const text of rl) {
    line++;
    if (text === '') continue;
    try {
      yield JSON.parse(text) as CimLayerEntry;
    } catch {
      throw invalidArgument(`${CIM_LAYER_ENTRIES} line ${line} is not JSON`, { path: layerPath, offset: line });
    }
  }
}

/** The tar entries of a CIM layer, header and body each. */
export async function* cimLayerEntries(layerPath: string, cimPath: string): AsyncGenerator<{ header: TarHeaderInput; body?: AsyncIterable<Buffer> }> {
  const cim = await CimReader.open(cimPath);
  try {
    for await (const e of layerList(layerPath)) {
      const name = e.n.replace(/\/+$/, '');
      if (e.k === 'whiteout') {
        yield { header: tarHeaderFromWindowsEntry({ name, kind: 'whiteout', attributes: 0, creationTime: 0n, lastAccessTime: 0n, lastWriteTime: 0n, changeTime: 0n, eas: [], size: 0, extraPax: [] }) };
        continue;
      }
      const ads = e.k === 'ads' ? parseAdsName(name) : undefined;
      const path = ads ? ads.base : name;
      let st;
      try {
        st = await cim.stat(path);
      } catch (err) {
        throw failedPrecondition(`CIM ${cimPath} has no ${path} for layer entry "${e.n}": ${(err as Error).message}`, { entry: e.n });
      }
      const we: WindowsEntry = {
        name: e.n,
        kind: e.k,
        attributes: e.k === 'ads' ? 0 : st.attributes,
        creationTime: st.creationTime,
        lastAccessTime: st.lastAccessTime,
        lastWriteTime: st.lastWriteTime,
        changeTime: st.changeTime,
        // ADS entries carry no records of their own; hard links only the basic information
        securityDescriptor: e.k === 'ads' || e.k === 'hardlink' ? undefined : st.securityDescriptor,
        eas: e.k !== 'ads' && e.k !== 'hardlink' && st.extendedAttributes ? decodeEaBuffer(st.extendedAttributes) : [],
        size: 0,
        extraPax: [],
      };
      if (e.k === 'symlink' || e.k === 'junction') {
        if (!st.reparseData) throw failedPrecondition(`CIM ${cimPath}: ${path} has no reparse data`, { entry: e.n });
        we.reparseBuffer = st.reparseData;
        we.kind = st.reparseTag === IO_REPARSE_TAG_MOUNT_POINT ? 'junction' : 'symlink';
      } else if (e.k !== 'dir') {
        we.attributes &= ~FILE_ATTRIBUTE.REPARSE_POINT;
      }
      if (e.k === 'hardlink') we.linkTarget = e.l;
      let body: AsyncIterable<Buffer> | undefined;
      if (e.k === 'file') {
        we.size = Number(st.size);
        if (we.size > 0) body = cim.read(path);
      } else if (ads) {
        const s = st.streams.find((x) => x.name.toUpperCase() === ads.stream.toUpperCase());
        if (!s) throw failedPrecondition(`CIM ${cimPath}: ${path} has no stream ${ads.stream}`, { entry: e.n });
        we.size = Number(s.size);
        if (we.size > 0) body = cim.read(path, s.name);
      }
      yield { header: tarHeaderFromWindowsEntry(we), body };
    }
  } finally {
    await cim.close();
  }
}

/** The CIM layer as an (uncompressed) tar stream. */
export function exportCimLayer(layerPath: string, cimPath: string): Readable {
  const w = new TarWriter();
  (async () => {
    try {
      for await (const e of cimLayerEntries(layerPath, cimPath)) await w.writeEntry(e.header, e.body);
      await w.finish();
    } catch (err) {
      w.destroy(err as Error);
    }
  })();
  return w.stream;
}
