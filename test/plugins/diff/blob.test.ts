/**
 * openLayerBlob: the uncompressed stream, its digest (the diff ID, always SHA-256) and the
 * blob check against its descriptor, for plain blobs (one hash serves both when the
 * descriptor's digest is SHA-256), plain blobs named by another algorithm, and gzip blobs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { gzipSync } from 'node:zlib';
import { openLayerBlob } from '../../../src/plugins/diff/blob.js';
import { kindOf } from '../../../src/services/errdefs.js';

const digestOf = (alg: string, b: Buffer) => `${alg}:${createHash(alg).update(b).digest('hex')}`;
const TAR = 'application/vnd.oci.image.layer.v1.tar';

async function open(blob: Buffer, mediaType: string, digest: string) {
  const opened = openLayerBlob(Readable.from([blob.subarray(0, 1000), blob.subarray(1000)]), { mediaType, digest, size: blob.length }, { verify: true });
  const tar = await buffer(opened.tar);
  return { opened, tar };
}

test('a plain blob: the tar is the blob, and its SHA-256 is both the blob digest and the diff ID', async () => {
  const blob = randomBytes(5000);
  const { opened, tar } = await open(blob, TAR, digestOf('sha256', blob));
  assert.ok(tar.equals(blob));
  assert.equal(opened.uncompressed.digest(), digestOf('sha256', blob));
  assert.equal(opened.uncompressed.bytes, blob.length);
  opened.verify();
});

test('a plain blob whose descriptor names other bytes fails verification', async () => {
  const blob = randomBytes(5000);
  const { opened } = await open(blob, TAR, digestOf('sha256', Buffer.from('other')));
  assert.throws(() => opened.verify(), (e: Error) => kindOf(e) === 'FailedPrecondition' && /digest mismatch/.test(e.message));
});

test('a plain blob named by SHA-512: checked with SHA-512, diff ID still SHA-256', async () => {
  const blob = randomBytes(5000);
  const { opened } = await open(blob, TAR, digestOf('sha512', blob));
  assert.equal(opened.uncompressed.digest(), digestOf('sha256', blob));
  opened.verify();
});

test('a gzip blob: the diff ID is the SHA-256 of the decompressed tar, the check is of the blob', async () => {
  const tarBytes = randomBytes(5000);
  const blob = gzipSync(tarBytes);
  const { opened, tar } = await open(blob, `${TAR}+gzip`, digestOf('sha256', blob));
  assert.ok(tar.equals(tarBytes));
  assert.equal(opened.uncompressed.digest(), digestOf('sha256', tarBytes));
  assert.equal(opened.uncompressed.bytes, tarBytes.length);
  opened.verify();
});
