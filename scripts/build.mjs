#!/usr/bin/env node
// Bundles the CLI (src/cli/main.ts and everything it imports) into dist/main.cjs with esbuild,
// so `bin/winsnap` starts without compiling TypeScript at run time (tsx costs ~0.25 s and
// ~45 MiB per process; pipelines run `winsnap convert` once per layer). One CommonJS script,
// because bin/bundle.cjs compiles it with V8's code cache (Node 20 caches no ES modules); the
// command modules are still evaluated only when their command runs (esbuild wraps what
// main.ts imports dynamically), and scripts/code-cache.mjs then writes dist/main.cjs.cache.
// Pure-JS dependencies a command needs at start (commander, cli-progress) are bundled: loading
// them from node_modules through the ESM loader cost ~15 ms per run. Native addons, and
// packages that find files or spawn threads by path (pino, gRPC, proto-loader), stay external.
// Writes dist/BUILD after the bundle: the source files the bundle was built from (esbuild's
// metafile), one per line; bin/winsnap uses dist/ only when that stamp is newer than each of
// them. Then the code cache (scripts/code-cache.mjs).
//
// Also compiles native/fsx.c (file-system calls Node 20 lacks, see that file) into
// dist/native/fsx.node with the system C compiler and Node's own headers. Without a compiler
// or headers the build says so and goes on: src/services/fsutil/native.ts then falls back to
// plain reads (correct, slower on sparse files).
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

// commander requires node:child_process when it loads, for subcommands that are separate
// executables (winsnap has none): loading that built-in took ~2 ms of every command's start.
// Its require is pointed at a module that loads the real one on first use.
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'lazy-child-process', namespace: 'winsnap-lazy' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'winsnap-lazy' }, () => ({
      contents: "module.exports = new Proxy({}, { get: (_, key) => require('node:child_process')[key] });",
      loader: 'js',
    }));
  },
};
process.chdir(root);
rmSync('dist', { recursive: true, force: true });
const result = await build({
  metafile: true,
  entryPoints: { main: 'src/cli/main.ts' },
  outfile: 'dist/main.cjs',
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3', 'zstd-napi', '@node-rs/crc32', 'pino', '@grpc/grpc-js', '@grpc/proto-loader', 'esbuild', 'tsx', 'fast-check'],
  // the sources are ES modules: import.meta.url becomes the bundle's own URL
  define: { 'import.meta.url': '__winsnapImportMetaUrl' },
  banner: { js: "const __winsnapImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyChildProcessForCommander],
  sourcemap: 'linked',
  charset: 'ascii', // non-ASCII in strings and names escaped...
  logLevel: 'warning',
});
// ...and what esbuild keeps of the sources' comments made ASCII too, so that bin/bundle.cjs
// reads the bundle as Latin-1 (the decoder's fast path: 1 against 4 ms for UTF-8 here). Only
// lines that are comments are touched (JSDoc, // and block-comment lines); should any other
// line hold a non-ASCII character, the bundle stays as it is and dist/main.cjs.utf8 tells the
// loader to decode it as UTF-8.
const bundlePath = 'dist/main.cjs';
const commentLine = /^\s*(\/\/|\/\*|\*)/;
const lines = readFileSync(bundlePath, 'utf8').split('\n');
if (lines.every((l) => commentLine.test(l) || !/[^\x00-\x7f]/.test(l))) {
  writeFileSync(bundlePath, lines.map((l) => (commentLine.test(l) ? l.replace(/[^\x00-\x7f]/g, '?') : l)).join('\n'));
} else writeFileSync(`${bundlePath}.utf8`, 'the bundle has non-ASCII characters outside comments: decode it as UTF-8\n');

function nodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find((d) => d && existsSync(join(d, 'node_api.h')));
}

function buildNative() {
  if (process.platform === 'win32') return 'not built on Windows (no SEEK_DATA there)';
  const headers = nodeHeaders();
  if (!headers) return "Node's headers (node_api.h) were not found";
  mkdirSync('dist/native', { recursive: true });
  const args = ['-O2', '-Wall', '-Werror', '-shared', '-fPIC', '-I', headers, 'native/fsx.c', '-o', 'dist/native/fsx.node'];
  if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
  const problems = [];
  for (const cc of process.env.CC ? [process.env.CC] : ['cc', 'gcc', 'clang']) {
    const r = spawnSync(cc, args, { encoding: 'utf8' });
    if (r.error) problems.push(`${cc} could not run (${r.error.code ?? r.error.message})`);
    else if (r.status !== 0) return `${cc} failed:\n${r.stderr}`;
    else return undefined;
  }
  return `no C compiler: ${problems.join('; ')}`;
}

const nativeProblem = buildNative();
if (nativeProblem) console.warn(`winsnap build: native/fsx.c not built (${nativeProblem}); sparse inputs are read in full`);
// bundled inputs under src/ (dependencies change only with package-lock.json and npm ci, which rebuilds)
const sources = Object.keys(result.metafile.inputs).filter((p) => p.startsWith('src/')).sort();
writeFileSync('dist/BUILD', `${sources.join('\n')}\n`);
// the code cache, from a process that runs a few commands with the bundle (a failure costs
// only speed: the bundle then compiles at each start)
const cache = spawnSync(process.execPath, ['scripts/code-cache.mjs'], { encoding: 'utf8' });
if (cache.status !== 0) console.warn(`winsnap build: no code cache (${(cache.stderr || cache.error?.message || '').trim()})`);
