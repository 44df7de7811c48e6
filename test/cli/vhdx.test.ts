/** `winsnap vhdx …` through the real entry point (./bin/winsnap), checked with qemu-img. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool, tempDir } from '../helpers/tools.js';
import { progressBar } from '../../src/cli/commands/vhdx.js';

const BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));
const MiB = 1024 * 1024;

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-cli-')));
after(() => cleanup());

function winsnap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(...args: string[]): string {
  const r = winsnap(...args);
  assert.equal(r.status, 0, `winsnap ${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, '', 'no progress output when stderr is not a TTY');
  return r.stdout;
}

function qemuJson(path: string): { format: string; 'virtual-size': number; 'cluster-size': number } {
  const r = runTool('qemu-img', ['info', '--output=json', path]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.toString());
}

function qemuCheckOk(path: string): void {
  const r = runTool('qemu-img', ['check', path]);
  assert.equal(r.status, 0, r.stdout.toString() + r.stderr);
}

describe('winsnap vhdx', () => {
  it('create (dynamic, --json), info, resize', () => {
    const p = join(dir, 'scratch.vhdx');
    const created = JSON.parse(ok('vhdx', 'create', p, '--size', '64MiB', '--block-size', '1MiB', '--json'));
    assert.equal(created.type, 'dynamic');
    assert.equal(created.virtualSize, 64 * MiB);
    assert.deepEqual(
      { f: qemuJson(p).format, s: qemuJson(p)['virtual-size'], c: qemuJson(p)['cluster-size'] },
      { f: 'vhdx', s: 64 * MiB, c: MiB },
    );
    qemuCheckOk(p);
    const info = JSON.parse(ok('vhdx', 'info', p, '--json'));
    assert.equal(info.type, 'dynamic');
    assert.equal(info.filesystem.filesystem, 'none');
    assert.match(ok('vhdx', 'info', p), /type:\s+dynamic[\s\S]*filesystem:\s+none \(unformatted\)/);
    assert.match(ok('vhdx', 'resize', p, '--size', '128M'), /resized .* to 128 MiB/);
    assert.equal(qemuJson(p)['virtual-size'], 128 * MiB);
    qemuCheckOk(p);
  });

  it('create --fixed and the default 32 MiB block size', () => {
    const p = join(dir, 'fixed.vhdx');
    const bad = winsnap('vhdx', 'create', p, '--size', '100000000', '--fixed');
    assert.match(bad.stderr, /virtual size 100000000 is not a multiple of the logical sector size 512/);
    assert.match(ok('vhdx', 'create', p, '--size', '96MB', '--fixed'), /created fixed VHDX/);
    assert.equal(qemuJson(p)['cluster-size'], 32 * MiB);
    assert.equal(qemuJson(p)['virtual-size'], 96000000);
    qemuCheckOk(p);
  });

  it('create --parent makes a differencing disk; info shows the parent', () => {
    const base = join(dir, 'base.vhdx');
    ok('vhdx', 'create', base, '--size', '32MiB', '--block-size', '2MiB');
    const child = join(dir, 'child.vhdx');
    const info = JSON.parse(ok('vhdx', 'create', child, '--parent', base, '--size', '48MiB', '--json'));
    assert.equal(info.type, 'differencing');
    assert.equal(info.virtualSize, 48 * MiB);
    const text = ok('vhdx', 'info', child);
    assert.match(text, /type:\s+differencing/);
    assert.match(text, /relative_path\s+\.\\base\.vhdx/);
    assert.match(text, new RegExp(`parent:\\s+${base.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    // with the parent gone, info still describes the child and says why the parent is missing
    renameSync(base, join(dir, 'gone.vhdx'));
    const orphan = ok('vhdx', 'info', child);
    assert.match(orphan, /type:\s+differencing/);
    assert.match(orphan, /parent:\s+not opened: .*parent disk not found/);
    assert.match(orphan, /filesystem:\s+unknown \(parent not available\)/);
  });

  it('convert raw → vhdx → raw round-trips and info recognises ext4', () => {
    const raw = join(dir, 'fs.raw');
    writeFileSync(raw, '');
    const mk = runTool('mkfs.ext4', ['-q', '-F', raw, '24M']);
    assert.equal(mk.status, 0, mk.stderr);
    const v = join(dir, 'fs.vhdx');
    assert.match(ok('vhdx', 'convert', raw, v, '--block-size', '1MiB'), /wrote dynamic VHDX .* blocks allocated/);
    qemuCheckOk(v);
    assert.match(ok('vhdx', 'info', v), /filesystem:\s+ext4 \(whole disk\)/);
    const back = join(dir, 'back.raw');
    const r = JSON.parse(ok('vhdx', 'convert', v, back, '--json'));
    assert.equal(r.virtualSize, 24 * MiB);
    assert.deepEqual(readFileSync(back), readFileSync(raw));
  });

  it('a conversion on a terminal draws a progress bar (cli-progress, loaded only then); none otherwise', async () => {
    // in this process, with stderr taken for a terminal and its writes captured (no pseudo-terminal needed)
    const stderr = process.stderr as NodeJS.WriteStream & { isTTY?: boolean };
    const wasTTY = stderr.isTTY;
    const write = stderr.write;
    let seen = '';
    try {
      stderr.write = ((chunk: string | Uint8Array) => ((seen += chunk.toString()), true)) as typeof stderr.write;
      stderr.isTTY = false;
      const quiet = await progressBar('raw → vhdx');
      quiet.onProgress(1, 2);
      quiet.stop();
      assert.equal(seen, '', 'nothing when stderr is not a terminal');
      stderr.isTTY = true;
      const bar = await progressBar('raw → vhdx');
      bar.onProgress(3 * MiB, 6 * MiB);
      bar.onProgress(6 * MiB, 6 * MiB);
      bar.stop();
    } finally {
      stderr.write = write;
      stderr.isTTY = wasTTY;
    }
    assert.match(seen, /raw → vhdx \[/, 'the bar is drawn');
    assert.match(seen, /100% \| 6\/6 MiB/, 'and completed');
  });

  it('errors: bad size, missing file, existing output, shrink', () => {
    let r = winsnap('vhdx', 'create', join(dir, 'x.vhdx'), '--size', '12 parsecs');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^winsnap: bad size "12 parsecs"/);
    r = winsnap('vhdx', 'info', join(dir, 'nope.vhdx'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /nope\.vhdx does not exist: not found/);
    const p = join(dir, 'exists.vhdx');
    ok('vhdx', 'create', p, '--size', '8MiB');
    r = winsnap('vhdx', 'create', p, '--size', '8MiB');
    assert.match(r.stderr, /already exists/);
    r = winsnap('vhdx', 'resize', p, '--size', '4MiB');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /shrinking is not supported/);
  });
});
