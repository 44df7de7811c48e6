/**
 * bin/winsnap chooses between the dist/ bundle and the TypeScript sources: the bundle only
 * while no source file it was built from (listed in dist/BUILD) is newer than that stamp.
 * Checked on a scratch copy of the entry point with a stand-in bundle and stand-in sources
 * that each say which one ran. The real build's code cache must be accepted by V8 (else every
 * start compiles the bundle), and a cache for other bytes must be rejected, not misused.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

function scratchCheckout(): string {
  const root = mkdtempSync(join(tmpdir(), 'winsnap-entry-'));
  mkdirSync(join(root, 'bin'));
  mkdirSync(join(root, 'dist'));
  mkdirSync(join(root, 'src', 'cli'), { recursive: true });
  copyFileSync(join(REPO, 'bin', 'winsnap'), join(root, 'bin', 'winsnap'));
  copyFileSync(join(REPO, 'bin', 'bundle.cjs'), join(root, 'bin', 'bundle.cjs'));
  copyFileSync(join(REPO, 'bin', 'package.json'), join(root, 'bin', 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  writeFileSync(join(root, 'package.json'), '{"type":"module"}\n');
  writeFileSync(join(root, 'dist', 'main.cjs'), "exports.main = async function main() { process.stdout.write('bundle\\n'); return 0; };\n");
  writeFileSync(join(root, 'src', 'cli', 'main.ts'), "export async function main(): Promise<number> { process.stdout.write('sources\\n'); return 0; }\n");
  writeFileSync(join(root, 'src', 'cli', 'other.ts'), 'export const unused = 1;\n');
  writeFileSync(join(root, 'dist', 'BUILD'), 'src/cli/main.ts\n');
  return root;
}

function which(root: string): string {
  const r = spawnSync(process.execPath, [join(root, 'bin', 'winsnap')], { encoding: 'utf8', env: { ...process.env, WINSNAP_FROM_SOURCE: '' } });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function setTime(path: string, seconds: number): void {
  utimesSync(path, seconds, seconds);
}

/** A scratch checkout (removed after the test) whose stand-in bundle is newer than its source. */
function freshScratchCheckout(t: TestContext): string {
  const root = scratchCheckout();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  setTime(join(root, 'src', 'cli', 'main.ts'), 1_000_000);
  setTime(join(root, 'dist', 'BUILD'), 2_000_000);
  return root;
}

test('the bundle runs while it is newer than every source it lists, the sources once one is newer', (t) => {
  const root = scratchCheckout();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stamp = join(root, 'dist', 'BUILD');
  setTime(join(root, 'src', 'cli', 'main.ts'), 1_000_000);
  setTime(stamp, 2_000_000);
  assert.equal(which(root), 'bundle');

  // a source file the bundle was not built from does not make it stale
  setTime(join(root, 'src', 'cli', 'other.ts'), 3_000_000);
  assert.equal(which(root), 'bundle');

  // an edited source file it was built from does
  setTime(join(root, 'src', 'cli', 'main.ts'), 3_000_000);
  assert.equal(which(root), 'sources');
});

test('a missing or empty stamp, or a listed source that is gone, runs the sources', (t) => {
  const root = scratchCheckout();
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stamp = join(root, 'dist', 'BUILD');
  setTime(join(root, 'src', 'cli', 'main.ts'), 1_000_000);

  writeFileSync(stamp, 'src/cli/main.ts\nsrc/cli/deleted.ts\n');
  setTime(stamp, 2_000_000);
  assert.equal(which(root), 'sources');

  writeFileSync(stamp, '');
  setTime(stamp, 2_000_000);
  assert.equal(which(root), 'sources');

  rmSync(stamp);
  assert.equal(which(root), 'sources');
});

test('the built bundle loads with its code cache; a cache that does not match is rejected and the bundle still runs', (t) => {
  const r = spawnSync(join(REPO, 'bin', 'winsnap'), ['--version'], { encoding: 'utf8', env: { ...process.env, WINSNAP_TRACE_CODE_CACHE: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /winsnap: code cache accepted/);
  assert.match(r.stdout, /^\d+\.\d+\.\d+/);

  const root = freshScratchCheckout(t);
  // the real cache belongs to the real bundle, not to this stand-in
  copyFileSync(join(REPO, 'dist', 'main.cjs.cache'), join(root, 'dist', 'main.cjs.cache'));
  const s = spawnSync(process.execPath, [join(root, 'bin', 'winsnap')], { encoding: 'utf8', env: { ...process.env, WINSNAP_FROM_SOURCE: '', WINSNAP_TRACE_CODE_CACHE: '1' } });
  assert.equal(s.status, 0, s.stderr);
  assert.equal(s.stdout.trim(), 'bundle');
  assert.match(s.stderr, /winsnap: code cache rejected/);
});

test('the entry point is CommonJS: running the bundle runs no ES module job (the ES module loader costs ~10 ms of every start)', (t) => {
  const root = freshScratchCheckout(t);
  writeFileSync(
    join(root, 'dist', 'main.cjs'),
    "exports.main = async function main() { process.stdout.write(process.moduleLoadList.some((m) => m.endsWith('internal/modules/esm/module_job')) ? 'esm\\n' : 'cjs\\n'); return 0; };\n",
  );
  assert.equal(which(root), 'cjs');
  // and the sources still run through tsx (ES modules) when the bundle is stale
  setTime(join(root, 'src', 'cli', 'main.ts'), 3_000_000);
  assert.equal(which(root), 'sources');
});

test('a bundle the build marked as not ASCII (dist/main.cjs.utf8) is decoded as UTF-8', (t) => {
  const root = freshScratchCheckout(t);
  // non-ASCII in code, not only in comments: read as Latin-1 it would print mojibake
  writeFileSync(join(root, 'dist', 'main.cjs'), "exports.main = async function main() { process.stdout.write('bundle → é\\n'); return 0; };\n");
  writeFileSync(join(root, 'dist', 'main.cjs.utf8'), 'utf8\n');
  assert.equal(which(root), 'bundle → é');
  // the built bundle itself is ASCII, marked or not: its text reads the same either way
  const built = readFileSync(join(REPO, 'dist', 'main.cjs'));
  assert.ok(existsSync(join(REPO, 'dist', 'main.cjs.utf8')) || built.every((b) => b < 0x80), 'unmarked bundle has non-ASCII bytes');
});

test('the entry point drops NODE_EXTRA_CA_CERTS: winsnap makes no TLS connections, and Node would parse every certificate in that file at start-up', () => {
  // Node warns about an extra-certificates file it cannot load once crypto is first used;
  // `--json` computes the tar's SHA-256 with node:crypto
  const dir = mkdtempSync(join(tmpdir(), 'winsnap-entry-certs-'));
  try {
    const tar = join(dir, 'empty.tar');
    writeFileSync(tar, Buffer.alloc(1024));
    const r = spawnSync(join(REPO, 'bin', 'winsnap'), ['convert', 'tar2vhd', '-i', tar, '-o', join(dir, 'out.vhd'), '--json'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'missing-ca.pem') },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /"digest":"sha256:[0-9a-f]{64}"/);
    assert.equal(r.stderr, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
