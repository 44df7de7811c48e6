import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { compress as zstdCompress } from 'zstd-napi';
import { kindOf } from '../../../src/services/errdefs.js';
import { decompressStream } from '../../../src/services/compression/decompress.js';
import { layerCompression, sniffCompression, MT } from '../../../src/services/compression/media-types.js';
import { createParallelGzip } from '../../../src/services/compression/pgzip.js';
import { runTool } from '../../helpers/tools.js';

const chunked = (b: Buffer, n = 7919) => Readable.from((function* () {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
})());

test('media types map to compressions as containerd; unknown is NotImplemented', () => {
  assert.equal(layerCompression(MT.ociLayer), 'none');
  assert.equal(layerCompression(MT.ociLayerGzip), 'gzip');
  assert.equal(layerCompression(MT.ociLayerZstd), 'zstd');
  assert.equal(layerCompression(MT.dockerLayerGzip), 'gzip');
  assert.equal(layerCompression(MT.dockerForeignLayerGzip), 'gzip');
  assert.equal(layerCompression(MT.ociNondistLayerGzip), 'gzip');
  for (const bad of ['application/json', `${MT.ociLayer}+bzip2`, 'application/vnd.oci.image.layer.v1.tar+gzip+x']) {
    assert.throws(() => layerCompression(bad), (e: Error) => kindOf(e) === 'NotImplemented', bad);
  }
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8])), 'gzip');
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.equal(sniffCompression(Buffer.from('ustar')), 'none');
});

test('gzip and zstd streams decompress; GNU gzip output too', async () => {
  const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(500_000, 7)]);
  assert.ok((await buffer(decompressStream(chunked(gzipSync(data)), 'gzip'))).equals(data));
  assert.ok((await buffer(decompressStream(chunked(await zstdCompress(data)), 'zstd'))).equals(data));
  const gnu = runTool('gzip', ['-c'], { input: data });
  assert.equal(gnu.status, 0);
  assert.ok((await buffer(decompressStream(chunked(gnu.stdout), 'gzip'))).equals(data));
});

test('truncated and corrupt streams are InvalidArgument naming the offset', async () => {
  const data = randomBytes(200_000);
  const gz = gzipSync(data);
  const zs = await zstdCompress(data);
  const corrupt = Buffer.from(gz);
  corrupt[5000] ^= 0xff;
  // zstd frames carry no checksum by default: corrupt the frame header, which is always checked
  const zcorrupt = Buffer.from(zs);
  zcorrupt[4] ^= 0xff;
  zcorrupt.fill(0xff, 5, 12);
  for (const [input, c] of [
    [gz.subarray(0, gz.length - 100), 'gzip'],
    [corrupt, 'gzip'],
    [Buffer.from('not gzip at all'), 'gzip'],
    [zs.subarray(0, zs.length - 50), 'zstd'],
    [zcorrupt, 'zstd'],
  ] as const) {
    await assert.rejects(buffer(decompressStream(chunked(input), c)), (e: Error) => {
      assert.equal(kindOf(e), 'InvalidArgument', e.message);
      assert.match(e.message, new RegExp(`${c} stream at compressed byte \\d+`));
      return true;
    });
  }
});

test('parallel gzip output is valid gzip that GNU gzip decodes (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 300_000 }),
      fc.integer({ min: 1, max: 9 }),
      fc.constantFrom(1024, 4096, 65536, 131072),
      async (arr, level, blockSize) => {
        const data = Buffer.from(arr);
        const out = await buffer(chunked(data, 3001).pipe(createParallelGzip({ level, blockSize })));
        const r = spawnSync('gzip', ['-dc'], { input: out, maxBuffer: 1 << 26 });
        assert.equal(r.status, 0, String(r.stderr));
        assert.ok(Buffer.from(r.stdout).equals(data));
      },
    ),
    { numRuns: 25 },
  );
});

test('parallel gzip is deterministic and matches across chunkings', async () => {
  const data = Buffer.concat([randomBytes(1_000_000), Buffer.alloc(2_000_000, 1)]);
  const a = await buffer(chunked(data, 65536).pipe(createParallelGzip()));
  const b = await buffer(chunked(data, 12345).pipe(createParallelGzip()));
  assert.ok(a.equals(b));
  assert.equal(runTool('gzip', ['-t'], { input: a }).status, 0);
});
