/**
 * Benchmark worker for bench/tar.bench.ts: reads a tar file with TarReader, pulling every
 * body byte (like `tar -xOf`), or copies it entry by entry through TarWriter to stdout.
 * Usage: node --import tsx bench/tar.worker.ts read|copy FILE
 */
import { createReadStream } from 'node:fs';
import { TarReader, TarWriter } from '../src/formats/tar/index.js';

const [mode, file] = process.argv.slice(2);
if ((mode !== 'read' && mode !== 'copy') || !file) {
  console.error('usage: tar.worker.ts read|copy FILE');
  process.exit(2);
}
const reader = new TarReader(createReadStream(file, { highWaterMark: 1 << 20 }));
if (mode === 'read') {
  let entries = 0;
  let bytes = 0;
  for await (const e of reader) {
    entries++;
    for await (const c of e.body) bytes += c.length;
  }
  process.stderr.write(`${entries} entries, ${bytes} bytes\n`);
} else {
  const w = new TarWriter();
  const stream = w.stream;
  const ended = new Promise((resolve) => stream.on('end', resolve));
  stream.pipe(process.stdout);
  for await (const e of reader) await w.writeEntry(e.header, e.body);
  await w.finish();
  await ended;
}
