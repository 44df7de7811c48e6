/**
 * raw → VHDX reads its input through read-only mappings when the native helper is loaded, and
 * with read() otherwise: both give the same file (also the same identifiers, which come from
 * the CRC-32 of each chunk: on the thread pool natively, else on the main thread), and
 * qemu-img sees the input's bytes in it.
 * The input has data chunks, an all-zero chunk inside data, holes, and an unaligned tail.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool, tempDir } from '../../helpers/tools.js';

const BIN = fileURLToPath(new URL('../../../bin/winsnap', import.meta.url));
const MiB = 1024 * 1024;

describe('raw → VHDX through mappings', () => {
  test('mapped and read inputs give identical VHDX files holding the raw bytes', () => {
    const t = tempDir();
    try {
      const raw = join(t.path, 'in.raw');
      const fd = openSync(raw, 'w');
      const size = 40 * MiB + 1536; // not a whole chunk at the end
      ftruncateSync(fd, size);
      const data = Buffer.alloc(5 * MiB);
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
      data.fill(0, 2 * MiB, 4 * MiB); // a zero chunk between data
      writeSync(fd, data, 0, data.length, 3 * MiB);
      writeSync(fd, data, 0, data.length, size - data.length);
      closeSync(fd);
      const outs = ['mapped', 'read'].map((how) => {
        const out = join(t.path, `${how}.vhdx`);
        const env = { ...process.env, WINSNAP_NO_NATIVE: how === 'read' ? '1' : '0' };
        const r = spawnSync(BIN, ['vhdx', 'convert', raw, out, '--block-size', '4MiB'], { env, encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        return out;
      });
      assert.ok(readFileSync(outs[0]!).equals(readFileSync(outs[1]!)), 'the same file either way');
      assert.equal(runTool('qemu-img', ['check', '-f', 'vhdx', outs[0]!]).status, 0);
      const back = join(t.path, 'back.raw');
      assert.equal(runTool('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', outs[0]!, back]).status, 0);
      assert.ok(readFileSync(back).subarray(0, size).equals(readFileSync(raw)));
    } finally {
      t.cleanup();
    }
  });
});
