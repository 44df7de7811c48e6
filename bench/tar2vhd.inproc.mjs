// Benchmark worker for bench/tar2vhd.bench.ts: runs `convert tar2vhd` N times in one process
// through the built CLI bundle (dist/main.cjs with its code cache, loaded as bin/winsnap loads
// it), as a long-lived process such as `winsnap serve` (where the lcow differ converts layers)
// would: no process start-up,
// and from the second run on, code the JIT has already compiled. Prints the wall time of each
// run, in seconds, as a JSON array into TIMES_FILE.
// Usage: node bench/tar2vhd.inproc.mjs TIMES_FILE TAR OUT N [extra convert options...]
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

const [timesFile, tar, out, n, ...extra] = process.argv.slice(2);
const { loadBundle } = await import(new URL('../bin/bundle.cjs', import.meta.url).href);
const { main } = loadBundle().exports;
const times = [];
for (let i = 0; i < Number(n); i++) {
  const t = process.hrtime.bigint();
  // the inlining cap, set once the command's modules are loaded, as bin/winsnap does
  const hooks = i === 0 ? { commandsLoaded: () => setFlagsFromString('--max-inlined-bytecode-size=100') } : {};
  const code = await main(['convert', 'tar2vhd', '-i', tar, '-o', out, '--max-size', '128G', ...extra], hooks);
  if (code !== 0) process.exit(code);
  times.push(Number(process.hrtime.bigint() - t) / 1e9);
}
writeFileSync(timesFile, `${JSON.stringify(times)}\n`);
