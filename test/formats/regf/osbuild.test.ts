import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../helpers/tools.js';
import { parseHive, readOsBuildNumber, writeHive } from '../../../src/formats/regf/index.js';
import { isInvalidArgument } from '../../../src/services/errdefs.js';
import { hivexsh } from './validators.js';

/** A SOFTWARE-like hive made by hivexsh (on a root-only seed, as hivex cannot start from nothing). */
function software(dir: string, setval: string[]): Buffer {
  const seed = join(dir, 'seed');
  writeFileSync(seed, writeHive({ name: 'CMI-CreateHive{199DAFC2-6F16-4946-BF90-5A3FC3A60902}' }));
  const out = join(dir, 'SOFTWARE');
  hivexsh(
    seed,
    ['add Microsoft', 'cd Microsoft', 'add Windows NT', 'cd Windows NT', 'add CurrentVersion', 'cd CurrentVersion', ...setval, `commit ${out}`],
    { write: true, dir },
  );
  return readFileSync(out);
}

test('reads CurrentBuild from a SOFTWARE hive written by hivex', () => {
  const dir = tempDir();
  try {
    const hive = software(dir.path, ['setval 3', 'CurrentBuildNumber', 'string:17763', 'CurrentBuild', 'string:20348', 'UBR', 'dword:0x10e6']);
    assert.equal(readOsBuildNumber(hive), '20348');
    assert.equal(readOsBuildNumber(parseHive(hive)), '20348');
  } finally {
    dir.cleanup();
  }
});

test('missing key or value gives undefined; a non-REG_SZ value is InvalidArgument (as upstream)', () => {
  const dir = tempDir();
  try {
    assert.equal(readOsBuildNumber(software(dir.path, ['setval 1', 'ProductName', 'string:x'])), undefined);
    assert.equal(readOsBuildNumber(writeHive({ name: 'R', subkeys: [{ name: 'Microsoft' }] })), undefined);
    assert.throws(
      () => readOsBuildNumber(software(dir.path, ['setval 1', 'CurrentBuild', 'dword:20348'])),
      (e: unknown) => isInvalidArgument(e) && /REG_SZ \(1\) expected/.test((e as Error).message),
    );
    assert.throws(() => readOsBuildNumber(Buffer.alloc(8192)), (e: unknown) => isInvalidArgument(e));
  } finally {
    dir.cleanup();
  }
});
