/**
 * Streaming decompression for layer blobs (gzip through node:zlib, zstd through zstd-napi).
 * Truncated or corrupt input is an InvalidArgument error naming the compression and the
 * compressed byte offset reached, never a crash; memory stays bounded.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { createRequire } from 'node:module';
import { invalidArgument } from '../errdefs.js';
import type { Compression } from './media-types.js';

/** zstd-napi (a native addon) is loaded on first use: most runs never see zstd. */
function loadZstd(): typeof import('zstd-napi') {
  return createRequire(import.meta.url)('zstd-napi') as typeof import('zstd-napi');
}

/** Counts bytes flowing through (the compressed offset for error messages). */
class Counter extends Transform {
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Returns a Readable of the decompressed bytes of `source`. Errors from the source or the
 * decompressor come out of the returned stream.
 */
export function decompressStream(source: Readable, compression: Compression): Readable {
  if (compression === 'none') return source;
  const counter = new Counter();
  const dec: Transform =
    compression === 'gzip' ? createGunzip({ chunkSize: 256 * 1024 }) : (new (loadZstd().DecompressStream)() as unknown as Transform);
  const wrapError = (e: Error) =>
    invalidArgument(`corrupt or truncated ${compression} stream at compressed byte ${counter.bytes}: ${e.message}`, {
      compression,
      offset: counter.bytes,
    }, e);
  const out = new Transform({
    transform(chunk, _enc, cb) {
      cb(null, chunk);
    },
  });
  // errors of the source pass through unchanged; decompressor errors name the offset
  source.on('error', (e) => out.destroy(e));
  source.pipe(counter).pipe(dec);
  dec.on('error', (e) => out.destroy(wrapError(e)));
  dec.pipe(out);
  out.on('close', () => {
    if (!source.destroyed && !source.readableEnded) source.destroy();
  });
  return out;
}
