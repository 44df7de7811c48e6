#!/usr/bin/env node
// Bundles the CLI (src/cli/main.ts and everything it imports) into dist/ with esbuild, so
// `bin/winsnap` starts without compiling TypeScript at run time (tsx costs ~0.25 s and
// ~45 MiB per process; pipelines run `winsnap convert` once per layer). Each command module
// stays its own chunk (code splitting), so a run still loads only the command it runs.
// npm dependencies stay external (native addons, proto files). Writes dist/BUILD last:
// bin/winsnap uses dist/ only when that stamp is newer than every file under src/.
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
process.chdir(root);
rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: { main: 'src/cli/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunks/[name]-[hash]',
  sourcemap: 'linked',
  logLevel: 'warning',
});
writeFileSync('dist/BUILD', `${new Date().toISOString()}\n`);
