/**
 * The snapshotter contract, stated once (containerd snapshots/testsuite/testsuite.go, minus
 * what needs a kernel mount) and run against every snapshotter, in process and through the
 * gRPC server. Expected values are containerd's rules (reference/containerd-semantics.md),
 * not outputs of our code.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kindOf, type ErrorKind } from '../../../src/services/errdefs.js';
import { nowNs, type Info, type Snapshotter } from '../../../src/services/snapshots.js';

export interface SnapshotterUnderTest {
  sn: Snapshotter;
  /** closes clients/servers; the root directory is removed by the suite */
  cleanup?: () => Promise<void>;
}

export interface ConformanceOptions {
  /** prefix for every key and name (e.g. `extract-` to exercise unpack snapshots) */
  keyPrefix?: string;
}

export type SnapshotterFactory = (root: string) => Promise<SnapshotterUnderTest>;

async function expectKind(p: Promise<unknown>, kind: ErrorKind, what: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.equal(kindOf(e), kind, `${what}: expected ${kind}, got ${kindOf(e)}: ${(e as Error).message}`);
    return;
  }
  assert.fail(`${what}: expected ${kind}, but it succeeded`);
}

async function names(sn: Snapshotter, ...filters: string[]): Promise<string[]> {
  const out: string[] = [];
  await sn.walk((i) => void out.push(i.name), ...filters);
  return out.sort();
}

export function snapshotterConformance(label: string, factory: SnapshotterFactory, opts: ConformanceOptions = {}): void {
  const p = (s: string): string => (s === '' ? '' : `${opts.keyPrefix ?? ''}${s}`);
  const gcRoot = { 'containerd.io/gc.root': '2026-01-01T00:00:00Z' };

  async function withSnapshotter(fn: (sn: Snapshotter, root: string) => Promise<void>): Promise<void> {
    const tmp = mkdtempSync(join(tmpdir(), 'winsnap-conformance-'));
    const root = join(tmp, 'root');
    const sut = await factory(root);
    try {
      await fn(sut.sn, root);
    } finally {
      try {
        await sut.sn.close();
      } catch {
        /* closing twice is part of a test */
      }
      await sut.cleanup?.();
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  const it = (name: string, fn: (sn: Snapshotter, root: string) => Promise<void>) =>
    test(name, () => withSnapshotter(fn));

  describe(`snapshotter conformance: ${label}`, () => {
    it('basic: prepare, stat active, commit, stat committed, prepare on committed', async (sn) => {
      const mounts = await sn.prepare(p('preparing'), '', { labels: gcRoot });
      assert.ok(mounts.length >= 1, 'expected mounts to have entries');
      const a = await sn.stat(p('preparing'));
      assert.equal(a.name, p('preparing'));
      assert.equal(a.kind, 'active');
      assert.equal(a.parent, '');
      assert.deepEqual(a.labels, gcRoot);
      await sn.commit(p('committed'), p('preparing'), { labels: gcRoot });
      const c = await sn.stat(p('committed'));
      assert.equal(c.kind, 'committed');
      assert.equal(c.name, p('committed'));
      assert.equal(c.parent, '');
      await expectKind(sn.stat(p('preparing')), 'NotFound', 'stat of the committed key');
      const next = await sn.prepare(p('nextlayer'), p('committed'), { labels: gcRoot });
      assert.ok(next.length >= 1);
      const n = await sn.stat(p('nextlayer'));
      assert.equal(n.kind, 'active');
      assert.equal(n.parent, p('committed'));
      await sn.commit(p('nextcommitted'), p('nextlayer'), { labels: gcRoot });
      const nc = await sn.stat(p('nextcommitted'));
      assert.equal(nc.parent, p('committed'));
      const v = await sn.view(p('view'), p('nextcommitted'), { labels: gcRoot });
      assert.ok(v.length >= 1);
      assert.equal((await sn.stat(p('view'))).kind, 'view');
      assert.deepEqual(await names(sn), [p('committed'), p('nextcommitted'), p('view')].sort());
      await sn.remove(p('view'));
      await sn.remove(p('nextcommitted'));
      await sn.remove(p('committed'));
      assert.deepEqual(await names(sn), []);
    });

    it('transitivity: a chain keeps each parent', async (sn) => {
      await sn.prepare(p('l1-a'), '');
      await sn.commit(p('l1'), p('l1-a'));
      await sn.prepare(p('l2-a'), p('l1'));
      await sn.commit(p('l2'), p('l2-a'));
      await sn.prepare(p('l3-a'), p('l2'));
      assert.equal((await sn.stat(p('l2'))).parent, p('l1'));
      assert.equal((await sn.stat(p('l3-a'))).parent, p('l2'));
    });

    it('prepare/view with a used key fail with AlreadyExists', async (sn) => {
      await sn.prepare(p('preparing'), '');
      await sn.commit(p('snapA'), p('preparing'));
      await sn.prepare(p('newlayer'), p('snapA'));
      await expectKind(sn.view(p('newlayer'), p('snapA')), 'AlreadyExists', 'view with a prepared key');
      await sn.prepare(p('prepLayer'), p('snapA'));
      await expectKind(sn.prepare(p('prepLayer'), p('snapA')), 'AlreadyExists', 'second prepare');
      await sn.view(p('viewLayer'), p('snapA'));
      await expectKind(sn.view(p('viewLayer'), p('snapA')), 'AlreadyExists', 'second view');
      await expectKind(sn.prepare(p('snapA'), ''), 'AlreadyExists', 'prepare with a committed name');
    });

    it('prepare/commit/remove error cases', async (sn) => {
      await expectKind(sn.prepare(p('x'), p('missing')), 'NotFound', 'prepare on a missing parent');
      await sn.prepare(p('active'), '');
      await expectKind(sn.prepare(p('y'), p('active')), 'InvalidArgument', 'prepare on an active parent');
      await sn.view(p('v'), '');
      await expectKind(sn.prepare(p('y'), p('v')), 'InvalidArgument', 'prepare on a view parent');
      await expectKind(sn.commit(p('c'), p('nokey')), 'NotFound', 'commit of an unknown key');
      await expectKind(sn.commit(p('c'), p('v')), 'FailedPrecondition', 'commit of a view');
      await sn.prepare(p('a2'), '');
      await sn.commit(p('c'), p('a2'));
      await expectKind(sn.commit(p('c2'), p('c')), 'FailedPrecondition', 'commit of a committed snapshot');
      await expectKind(sn.commit(p('c'), p('active')), 'AlreadyExists', 'commit to a used name');
      assert.equal((await sn.stat(p('active'))).kind, 'active', 'failed commit leaves the key active');
      await expectKind(sn.remove(p('nokey')), 'NotFound', 'remove of an unknown key');
      await expectKind(sn.stat(p('nokey')), 'NotFound', 'stat of an unknown key');
      await expectKind(sn.mounts(p('nokey')), 'NotFound', 'mounts of an unknown key');
      await expectKind(sn.mounts(p('c')), 'FailedPrecondition', 'mounts of a committed snapshot');
      await expectKind(sn.usage(p('nokey')), 'NotFound', 'usage of an unknown key');
      await expectKind(sn.update({ name: p('nokey'), labels: {} }), 'NotFound', 'update of an unknown key');
    });

    it('mounts can be recovered for active and view snapshots', async (sn) => {
      const m1 = await sn.prepare(p('a'), '');
      assert.deepEqual(await sn.mounts(p('a')), m1);
      await sn.commit(p('c'), p('a'));
      const m2 = await sn.view(p('v'), p('c'));
      assert.deepEqual(await sn.mounts(p('v')), m2);
    });

    it('update: timestamps, labels, field paths, immutable fields', async (sn) => {
      const t1 = nowNs();
      await sn.prepare(p('c1-a'), '', { labels: gcRoot });
      await sn.commit(p('c1'), p('c1-a'), { labels: gcRoot });
      await sn.prepare(p('c2-a'), p('c1'), { labels: gcRoot });
      await sn.commit(p('c2'), p('c2-a'), { labels: gcRoot });
      await sn.prepare(p('a1'), p('c2'), { labels: gcRoot });
      await sn.prepare(p('a2'), '', { labels: gcRoot });
      await sn.view(p('v1'), p('c2'), { labels: gcRoot });
      await sn.view(p('v2'), '', { labels: gcRoot });
      const t2 = nowNs();
      const cases: Array<[string, Info['kind'], string]> = [
        ['c1', 'committed', ''],
        ['c2', 'committed', 'c1'],
        ['a1', 'active', 'c2'],
        ['a2', 'active', ''],
        ['v1', 'view', 'c2'],
        ['v2', 'view', ''],
      ];
      for (const [n, kind, parent] of cases) {
        let st = await sn.stat(p(n));
        assert.ok(st.created >= t1 && st.created <= t2, `${n}: created ${st.created} not in [${t1}, ${t2}]`);
        assert.equal(st.updated, st.created, `${n}: updated == created`);
        assert.equal(st.kind, kind);
        assert.equal(st.parent, p(parent));
        const createdAt = st.created;
        const expected = { l1: 'v1', l2: 'v2', l3: 'v3', ...gcRoot };
        const u1 = nowNs();
        st = await sn.update({ name: p(n), parent: 'doesnotexist', labels: expected });
        const u2 = nowNs();
        assert.equal(st.created, createdAt, `${n}: created unchanged`);
        assert.ok(st.updated >= u1 && st.updated <= u2, `${n}: updated in range`);
        assert.equal(st.kind, kind);
        assert.equal(st.parent, p(parent), `${n}: parent is immutable`);
        assert.deepEqual(st.labels, expected);
        st = await sn.update({ name: p(n), labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
        assert.deepEqual(st.labels, { l1: 'updated', l3: 'v3', ...gcRoot });
        st = await sn.update({ name: p(n), labels: { l4: 'v4', ...gcRoot } }, ['labels']);
        assert.deepEqual(st.labels, { l4: 'v4', ...gcRoot });
        assert.deepEqual((await sn.stat(p(n))).labels, { l4: 'v4', ...gcRoot });
        await expectKind(sn.update({ name: p(n), parent: 'doesnotexist' }, ['parent']), 'InvalidArgument', 'immutable parent');
        await expectKind(sn.update({ name: p(n) }, ['kind']), 'InvalidArgument', 'immutable kind');
      }
    });

    it('labels given at commit replace the active snapshot labels', async (sn) => {
      await sn.prepare(p('a'), '', { labels: { x: '1', y: '2' } });
      await sn.commit(p('c'), p('a'), { labels: { z: '3' } });
      assert.deepEqual((await sn.stat(p('c'))).labels, { z: '3' });
      await sn.prepare(p('b'), '', { labels: { x: '1' } });
      await sn.commit(p('d'), p('b'));
      assert.deepEqual((await sn.stat(p('d'))).labels, {});
    });

    it('remove: keys can be reused, committed can be removed and re-made', async (sn) => {
      await sn.prepare(p('committed-a'), '', { labels: gcRoot });
      await sn.commit(p('committed-1'), p('committed-a'), { labels: gcRoot });
      await sn.prepare(p('reuse-1'), p('committed-1'), { labels: gcRoot });
      await sn.remove(p('reuse-1'));
      await sn.view(p('reuse-1'), p('committed-1'), { labels: gcRoot });
      await sn.remove(p('reuse-1'));
      await sn.prepare(p('reuse-1'), '', { labels: gcRoot });
      await sn.remove(p('committed-1'));
      await sn.commit(p('committed-1'), p('reuse-1'), { labels: gcRoot });
      assert.equal((await sn.stat(p('committed-1'))).kind, 'committed');
    });

    it('remove of an intermediate snapshot fails while it has children', async (sn) => {
      await sn.prepare(p('base-a'), '');
      await sn.commit(p('base'), p('base-a'));
      await sn.prepare(p('mid-a'), p('base'));
      await sn.commit(p('mid'), p('mid-a'));
      await sn.prepare(p('top'), p('mid'));
      await expectKind(sn.remove(p('mid')), 'FailedPrecondition', 'remove with child');
      await expectKind(sn.remove(p('base')), 'FailedPrecondition', 'remove with child');
      await sn.remove(p('top'));
      await sn.remove(p('mid'));
      await sn.remove(p('base'));
      assert.deepEqual(await names(sn), []);
    });

    it('walk with filters', async (sn) => {
      const gc = { 'containerd.io/gc.root': 'check-walk' };
      await sn.prepare(p('a-np'), '', { labels: gc });
      await sn.prepare(p('p-tmp'), '', { labels: gc });
      await sn.commit(p('p'), p('p-tmp'), { labels: gc });
      await sn.prepare(p('a'), p('p'), { labels: gc });
      await sn.view(p('v'), p('p'), { labels: gc });
      await sn.prepare(p('p-wl-tmp'), '', { labels: gc });
      await sn.commit(p('p-wl'), p('p-wl-tmp'), { labels: { l: '1', ...gc } });
      await sn.prepare(p('a-wl'), p('p-wl'), { labels: { l: '2', ...gc } });
      await sn.view(p('v-wl'), p('p-wl'), { labels: { l: '3', ...gc } });
      await sn.prepare(p('a-np-wl'), '', { labels: { l: '2', ...gc } });
      const q = (s: string) => JSON.stringify(p(s));
      const cases: Array<[string[], string[]]> = [
        [['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels."containerd.io/gc.root"==check-walk']],
        [['a-np', 'a', 'a-wl', 'a-np-wl'], ['kind==active,labels."containerd.io/gc.root"==check-walk']],
        [['v', 'v-wl'], ['kind==view,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'p-wl'], ['kind==committed,labels."containerd.io/gc.root"==check-walk']],
        [['p', 'a-np-wl'], [`name==${q('p')}`, `name==${q('a-np-wl')}`]],
        [['a-wl'], [`name==${q('a-wl')},labels.l`]],
        [['a', 'v'], [`parent==${q('p')}`]],
        [['a', 'v', 'a-wl', 'v-wl'], ['parent!="",labels."containerd.io/gc.root"==check-walk']],
        [['p-wl', 'a-wl', 'v-wl', 'a-np-wl'], ['labels.l']],
        [['a-wl', 'a-np-wl'], ['labels.l==2']],
        [['a-wl', 'a-np-wl', 'p-wl'], ['labels.l~="^[12]$"']],
        [['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl'], []],
      ];
      for (const [want, filters] of cases) {
        assert.deepEqual(await names(sn, ...filters), want.map(p).sort(), `filters ${JSON.stringify(filters)}`);
      }
      await expectKind(names(sn, 'name=='), 'InvalidArgument', 'malformed filter');
      await expectKind(names(sn, 'labels."unterminated==x'), 'InvalidArgument', 'malformed filter');
    });

    it('stat inside walk', async (sn) => {
      await sn.prepare(p('a'), '');
      await sn.commit(p('c'), p('a'));
      await sn.view(p('v'), p('c'));
      let seen = 0;
      await sn.walk(async (info) => {
        const st = await sn.stat(info.name);
        assert.equal(st.name, info.name);
        assert.equal(st.kind, info.kind);
        seen++;
      });
      assert.equal(seen, 2);
    });

    it('usage: active measured, committed stored, view reported', async (sn) => {
      await sn.prepare(p('a'), '');
      const u = await sn.usage(p('a'));
      assert.ok(u.size >= 0 && u.inodes >= 1, `usage ${JSON.stringify(u)}`);
      await sn.commit(p('c'), p('a'));
      const uc = await sn.usage(p('c'));
      assert.ok(uc.size >= 0 && uc.inodes >= 1);
    });

    it('close twice', async (sn) => {
      await sn.prepare(p('ct-prepare'), '');
      await sn.commit(p('ct'), p('ct-prepare'));
      await sn.remove(p('ct'));
      await sn.close();
      await sn.close();
    });

    it('a 128-deep parent chain', async (sn) => {
      let parent = '';
      for (let i = 0; i < 128; i++) {
        await sn.prepare(p(`layer-${i}-a`), parent);
        await sn.commit(p(`layer-${i}`), p(`layer-${i}-a`));
        parent = p(`layer-${i}`);
      }
      await sn.prepare(p('top'), parent);
      assert.equal((await sn.stat(p('top'))).parent, p('layer-127'));
      assert.equal((await sn.stat(p('layer-64'))).parent, p('layer-63'));
      assert.equal((await names(sn, 'kind==committed')).length, 128);
      await sn.remove(p('top'));
      for (let i = 127; i >= 0; i--) await sn.remove(p(`layer-${i}`));
      assert.deepEqual(await names(sn), []);
    });

    it('concurrent prepares', async (sn) => {
      await sn.prepare(p('base-a'), '');
      await sn.commit(p('base'), p('base-a'));
      const results = await Promise.allSettled(
        Array.from({ length: 32 }, (_, i) => sn.prepare(p(`c-${i}`), p('base'))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 32);
      const same = await Promise.allSettled(Array.from({ length: 16 }, () => sn.prepare(p('same'), p('base'))));
      assert.equal(same.filter((r) => r.status === 'fulfilled').length, 1, 'exactly one prepare of one key wins');
      for (const r of same) if (r.status === 'rejected') assert.equal(kindOf(r.reason), 'AlreadyExists');
      assert.equal((await names(sn, 'kind==active')).length, 33);
      const removes = await Promise.allSettled(Array.from({ length: 32 }, (_, i) => sn.remove(p(`c-${i}`))));
      assert.equal(removes.filter((r) => r.status === 'fulfilled').length, 32);
    });

    it('cleanup keeps every snapshot', async (sn) => {
      await sn.prepare(p('a'), '');
      await sn.commit(p('c'), p('a'));
      await sn.prepare(p('b'), p('c'));
      await sn.view(p('v'), p('c'));
      await sn.cleanup();
      assert.deepEqual(await names(sn), [p('b'), p('c'), p('v')].sort());
      assert.ok((await sn.mounts(p('b'))).length >= 1);
    });
  });
}
