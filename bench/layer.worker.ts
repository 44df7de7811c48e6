/**
 * Worker for bench/layer.bench.ts, run as its own process so its peak RSS is measured alone:
 *   gen <out.tar.gz> <files> <bytes>   write a Windows layer blob (gzip)
 *   apply <blob.tar.gz> <dir>          apply it as a layer directory (the windows differ's path)
 *   export <dir> <out.tar.gz>          export the layer again with parallel gzip
 *   cim <blob.tar.gz> <dir>            write it as a CIM layer (<dir>/layer + <dir>/cim/1.cim)
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { TarReader } from '../src/formats/tar/reader.js';
import { TarWriter } from '../src/formats/tar/writer.js';
import { applyLayer } from '../src/formats/layerdir/apply.js';
import { exportLayer } from '../src/formats/layerdir/export.js';
import { decompressStream } from '../src/services/compression/decompress.js';
import { createParallelGzip } from '../src/services/compression/pgzip.js';
import { tarHeaderFromWindowsEntry, type WindowsEntry } from '../src/formats/wintar/entry.js';

const [cmd, a, b, c, d] = process.argv.slice(2);

function entry(name: string, kind: 'file' | 'dir', size: number, i: number): WindowsEntry {
  const t = 133_000_000_000_000_000n + BigInt(i) * 10_000_000n;
  return {
    name,
    kind,
    attributes: kind === 'dir' ? 0x10 : 0x20,
    creationTime: t,
    lastAccessTime: t,
    lastWriteTime: t,
    changeTime: t,
    securityDescriptor: Buffer.from('AQAEgBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQIAAAAAAAUgAAAAIAIAAAIAHAABAAAAAAAUAP8BHwABAQAAAAAABRIAAAA=', 'base64'),
    eas: [],
    size,
    extraPax: [],
  };
}

/** Deterministic, moderately compressible data (like binaries): random words from a small alphabet. */
function data(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const v = (x >>> 0) & 0x3f3f3f3f;
    if (i + 4 <= size) out.writeUInt32LE(v, i);
    else for (let j = i; j < size; j++) out[j] = (v >>> ((j - i) * 8)) & 0x3f;
  }
  return out;
}

async function gen(out: string, files: number, bytes: number): Promise<void> {
  const w = new TarWriter();
  const done = pipeline(w.stream, createParallelGzip(), createWriteStream(out));
  const dirs = 500;
  const bigCount = Math.floor(files / 50);
  const smallCount = files - bigCount;
  const smallSize = Math.floor((bytes * 0.25) / smallCount);
  const bigSize = Math.floor((bytes * 0.75) / bigCount);
  await w.writeEntry(tarHeaderFromWindowsEntry(entry('Files', 'dir', 0, 0)));
  let n = 0;
  for (let dI = 0; dI < dirs; dI++) {
    const dir = `Files/Program Files/App${dI}`;
    if (dI === 0) await w.writeEntry(tarHeaderFromWindowsEntry(entry('Files/Program Files', 'dir', 0, 0)));
    await w.writeEntry(tarHeaderFromWindowsEntry(entry(dir, 'dir', 0, dI)));
    const per = Math.ceil(files / dirs);
    for (let f = 0; f < per && n < files; f++, n++) {
      const size = n % 50 === 49 && n / 50 < bigCount ? bigSize : Math.max(0, smallSize + ((n * 7919) % 2001) - 1000);
      await w.writeEntry(tarHeaderFromWindowsEntry(entry(`${dir}/file${f}.dll`, 'file', size, n)), data(size, n));
    }
  }
  await w.finish();
  await done;
}

async function apply(blob: string, dir: string): Promise<void> {
  const reader = new TarReader(decompressStream(createReadStream(blob, { highWaterMark: 1 << 20 }), 'gzip'));
  await applyLayer(reader, dir);
  await reader.drain();
}

async function exp(dir: string, out: string): Promise<void> {
  await pipeline(exportLayer(dir), createParallelGzip(), createWriteStream(out));
}

async function cim(blob: string, dir: string): Promise<void> {
  const { mkdirSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { writeCimLayer } = await import('../src/plugins/cim/layer-writer.js');
  const layer = join(dir, 'layer');
  mkdirSync(layer, { recursive: true });
  const reader = new TarReader(decompressStream(createReadStream(blob, { highWaterMark: 1 << 20 }), 'gzip'));
  await writeCimLayer(reader, { layerPath: layer, cimPath: join(dir, 'cim', '1.cim'), parentLayerPaths: [], parentCimPaths: [] });
  await reader.drain();
}

if (cmd === 'gen') await gen(a!, Number(b), Number(c));
else if (cmd === 'apply') await apply(a!, b!);
else if (cmd === 'export') await exp(a!, b!);
else if (cmd === 'cim') await cim(a!, b!);
else throw new Error(`unknown command ${cmd} ${String(d)}`);
void createHash;
