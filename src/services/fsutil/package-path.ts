/**
 * Files that ship beside the code (`proto/`, `dist/native/`), found from wherever the code
 * runs: the TypeScript sources under src/ or the esbuild bundle under dist/. Both sit inside
 * the package, so the first directory upwards holding a package.json and the wanted path is it.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The absolute path of `relative` in the winsnap package root, or undefined when it is not there. */
export function packagePath(relative: string): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const p = join(dir, relative);
    if (existsSync(join(dir, 'package.json')) && existsSync(p)) return p;
    if (dirname(dir) === dir) return undefined;
  }
}
