import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROTO_DIR, PROTO_FILES, loadContainerdApi, serviceDefinition, SNAPSHOTS_SERVICE, DIFF_SERVICE } from '../../src/server/proto.js';

const DEBIAN_GOCODE = '/usr/share/gocode/src';

test('vendored .proto files equal the Debian containerd-dev package byte for byte', () => {
  const files = [...PROTO_FILES, 'github.com/containerd/containerd/api/types/mount.proto', 'github.com/containerd/containerd/api/types/descriptor.proto'];
  for (const f of files) {
    let upstream: Buffer;
    try {
      upstream = readFileSync(join(DEBIAN_GOCODE, f));
    } catch {
      throw new Error(`${join(DEBIAN_GOCODE, f)} missing: install golang-github-containerd-containerd-dev (.ci/run does)`);
    }
    assert.ok(readFileSync(join(PROTO_DIR, f)).equals(upstream), `${f} differs from Debian's copy`);
  }
});

test('the snapshots and diff services load with every method containerd defines', () => {
  loadContainerdApi();
  assert.deepEqual(Object.keys(serviceDefinition(SNAPSHOTS_SERVICE)).sort(), [
    'Cleanup', 'Commit', 'List', 'Mounts', 'Prepare', 'Remove', 'Stat', 'Update', 'Usage', 'View',
  ]);
  assert.equal(serviceDefinition(SNAPSHOTS_SERVICE).List!.responseStream, true);
  assert.deepEqual(Object.keys(serviceDefinition(DIFF_SERVICE)).sort(), ['Apply', 'Diff']);
});
