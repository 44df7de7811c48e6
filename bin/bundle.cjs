// Loads the CLI bundle for bin/winsnap (and the bench's in-process runner): dist/main.cjs, one
// CommonJS script built by scripts/build.mjs, compiled through node:vm with V8's code cache
// dist/main.cjs.cache (scripts/code-cache.mjs writes it at build time after running a few
// commands, so it holds the bytecode of the functions a conversion runs). With the cache a
// process neither parses the bundle nor compiles those functions when first called:
// `winsnap convert tar2vhd` of a one-file tar took 75 against 92 ms (hyperfine, 2026-12-06),
// and the bench tar's conversion ~20 ms less. Node 20 has no compile cache for ES modules
// (module.enableCompileCache is Node 22), hence the CommonJS bundle. V8 rejects a cache made
// for other bytes, another V8 or other flags; the bundle then compiles as without one.
// `bundleIsFresh()`: whether dist/ is newer than every source file it was built from (listed
// in dist/BUILD), so an edited checkout never runs stale code.
// CommonJS, as bin/winsnap (bin/package.json): an ES module entry point costs Node its ES module
// loader before any of our code runs, ~10 ms of every start (hyperfine, 2026-12-06: `--version`
// 53 → 41 ms).
'use strict';
const { existsSync, readFileSync, statSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join, sep } = require('node:path');
const { Script } = require('node:vm');

const root = join(__dirname, '..');
const BUNDLE = join(root, 'dist', 'main.cjs');
const CODE_CACHE = `${BUNDLE}.cache`;

function bundleIsFresh() {
  try {
    const stamp = join(root, 'dist', 'BUILD');
    const built = statSync(stamp).mtimeMs;
    const sources = readFileSync(stamp, 'utf8').split('\n').filter(Boolean);
    // root + the relative path, not join(): path.join normalizes each of the ~100 paths (~3 ms
    // of every start, before anything is compiled)
    const prefix = root.endsWith(sep) ? root : root + sep;
    return sources.length > 0 && sources.every((s) => statSync(prefix + s).mtimeMs <= built);
  } catch {
    return false; // no bundle, or a file it was built from is gone
  }
}

/**
 * Compiles and runs dist/main.cjs as Node runs a CommonJS module; `codeCache: false` ignores
 * the cache (the cache builder). Returns its exports, the compiled script (for
 * createCachedData) and what became of the cache: 'accepted', 'rejected' or 'none'.
 */
function loadBundle({ codeCache = true } = {}) {
  // ASCII, read as Latin-1 (the fast decoder), unless the build marked it (scripts/build.mjs)
  const source = readFileSync(BUNDLE, existsSync(`${BUNDLE}.utf8`) ? 'utf8' : 'latin1');
  let cachedData;
  if (codeCache) {
    try {
      cachedData = readFileSync(CODE_CACHE);
    } catch {
      cachedData = undefined; // not built (the build could not run its commands): compile
    }
  }
  // the wrapper Node puts around a CommonJS module, on the source's first line (same line numbers)
  const script = new Script(`(function (exports, require, module, __filename, __dirname) { ${source}\n})`, { filename: BUNDLE, cachedData });
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
  const cache = cachedData === undefined ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted';
  return { exports: module.exports, script, cache };
}

module.exports = { BUNDLE, CODE_CACHE, bundleIsFresh, loadBundle };
