/**
 * Debian's real containerd with winsnap as a proxy snapshotter: `winsnap serve` is started
 * through ./bin/winsnap, containerd is configured with `[proxy_plugins.winsnap]`, and `ctr
 * snapshots --snapshotter winsnap` drives it. Expected values follow the DESIGN.md mount
 * table and containerd's error texts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTool } from '../helpers/tools.js';
import { startContainerd, type ContainerdInstance } from '../../bench/lib/containerd.js';

const BIN = fileURLToPath(new URL('../../bin/winsnap', import.meta.url));

describe('containerd with winsnap as a proxy snapshotter', () => {
  let tmp = '';
  let root = '';
  let sock = '';
  let serve: ChildProcess | undefined;
  let serveLog = '';
  let ctd: ContainerdInstance | undefined;

  const ctr = (...args: string[]) => ctd!.ctr(['snapshots', '--snapshotter', 'winsnap', ...args]);
  const ok = (...args: string[]) => {
    const r = ctr(...args);
    assert.equal(r.status, 0, `ctr snapshots ${args.join(' ')} failed: ${r.stderr}\nwinsnap log:\n${serveLog.slice(-2000)}`);
    return r.stdout;
  };
  const snapDir = (id: string) => join(root, 'snapshotters', 'windows', 'snapshots', id);

  before(async () => {
    const containerd = requireTool('containerd');
    const ctrBin = requireTool('ctr');
    tmp = mkdtempSync(join(tmpdir(), 'winsnap-ctd-'));
    root = join(tmp, 'winsnap');
    sock = join(tmp, 'w.sock');
    serve = spawn(BIN, ['serve', '--root', root, '--address', `unix://${sock}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    serve.stderr!.on('data', (d: Buffer) => (serveLog += d.toString()));
    const end = Date.now() + 20_000;
    while (!existsSync(sock) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    assert.ok(existsSync(sock), `winsnap serve did not create its socket: ${serveLog}`);
    ctd = await startContainerd(join(tmp, 'ctd'), { bin: containerd, ctrBin, proxies: { winsnap: sock } });
  });

  after(async () => {
    await ctd?.stop();
    if (serve && serve.exitCode === null) {
      const exited = new Promise<number | null>((r) => serve!.once('exit', (code) => r(code)));
      serve.kill('SIGTERM');
      assert.equal(await exited, 0, 'winsnap serve exits 0 on SIGTERM');
      assert.ok(!existsSync(sock), 'socket removed on shutdown');
    }
    rmSync(tmp, { recursive: true, force: true });
  });

  test('the socket is private (mode 0600)', () => {
    assert.equal(statSync(sock).mode & 0o777, 0o600);
  });

  test('prepare, mounts, commit, view, ls, info, tree, usage, label, rm', async () => {
    ok('prepare', 'extract-base', '');
    // containerd namespaces keys as <ns>/<id>/<key> before they reach us; our IDs start at 1
    assert.equal(ok('mounts', '/mnt/t', 'extract-base'), `mount -t bind ${snapDir('1')} /mnt/t -o rw,parentLayerPaths=null\n`);
    ok('commit', 'base', 'extract-base');
    ok('prepare', 'extract-child', 'base');
    assert.equal(
      ok('mounts', '/mnt/t', 'extract-child'),
      `mount -t windows-layer ${snapDir('2')} /mnt/t -o rw,parentLayerPaths=["${snapDir('1')}"]\n`,
    );
    ok('commit', 'child', 'extract-child');
    ok('view', 'extract-look', 'child');
    assert.equal(
      ok('mounts', '/mnt/t', 'extract-look'),
      `mount -t windows-layer ${snapDir('3')} /mnt/t -o ro,parentLayerPaths=["${snapDir('2')}","${snapDir('1')}"]\n`,
    );
    ok('prepare', 'work', '');
    assert.equal(ok('mounts', '/mnt/t', 'work'), `mount -t bind ${join(snapDir('4'), 'Files')} /mnt/t -o rw,parentLayerPaths=null\n`);

    const ls = ok('ls');
    const rows = ls.trim().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(rows[0], ['KEY', 'PARENT', 'KIND']);
    assert.deepEqual(
      rows.slice(1).sort(),
      [['base', 'Committed'], ['child', 'base', 'Committed'], ['extract-look', 'child', 'View'], ['work', 'Active']].sort(),
    );

    const info = JSON.parse(ok('info', 'child')) as Record<string, unknown>;
    assert.equal(info.Kind, 'Committed');
    assert.equal(info.Name, 'child');
    assert.equal(info.Parent, 'base');

    assert.equal(ok('tree'), [' base', '  \\_ child', '    \\_ extract-look', ' work', ''].join('\n'));

    const usage = ok('usage', '-b', 'work').trim().split('\n')[1]!.trim().split(/\s+/);
    assert.equal(usage[0], 'work');
    assert.ok(Number(usage[1]) > 0 && Number(usage[2]) === 2, `usage ${usage.join(' ')}`);

    assert.match(ok('label', 'child', 'containerd.io/snapshot/team=blue'), /containerd\.io\/snapshot\/team=blue/);
    // labels with the containerd.io/snapshot/ prefix are passed on to the backend snapshotter
    const backendInfo = JSON.parse(ok('info', 'child')) as { Labels?: Record<string, string> };
    assert.equal(backendInfo.Labels?.['containerd.io/snapshot/team'], 'blue');

    ok('rm', 'extract-look');
    ok('rm', 'work');
    assert.doesNotMatch(ok('ls'), /extract-look|work/);
    // containerd removes backend snapshots in its garbage collector, shortly after
    // containerd's scheduler drops a deletion event that lands while a collection runs, so on a
    // loaded machine we trigger another collection the way users do: one more deletion.
    const end = Date.now() + 60_000;
    let poke = Date.now() + 3_000;
    for (let i = 0; (existsSync(snapDir('3')) || existsSync(snapDir('4'))) && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 100));
      if (Date.now() > poke) {
        ok('prepare', `gc-poke-${i}`, '');
        ok('rm', `gc-poke-${i++}`);
        poke = Date.now() + 3_000;
      }
    }
    assert.ok(!existsSync(snapDir('3')) && !existsSync(snapDir('4')), `removed snapshot directories are gone after containerd GC\nwinsnap log:\n${serveLog.slice(-3000)}\ncontainerd log:\n${ctd!.log().slice(-4000)}`);
  });

  test('errors a user sees: rm with children, commit of an unknown key', () => {
    const rm = ctr('rm', 'base');
    assert.notEqual(rm.status, 0);
    assert.match(rm.stderr, /failed to remove "base".*cannot remove snapshot with child: failed precondition/);
    const commit = ctr('commit', 'nope', 'no-such-key');
    assert.notEqual(commit.status, 0);
    assert.match(commit.stderr, /no-such-key.*not found/);
    assert.ok(existsSync(snapDir('1')) && existsSync(snapDir('2')), 'failed operations change nothing');
  });
});
