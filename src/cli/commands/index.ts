/**
 * The CLI command modules, by top-level command name, loaded on demand: a run loads only the
 * module of the command it runs (startup time and memory matter for `convert` in pipelines);
 * help without a command loads them all.
 */
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;

export const COMMAND_MODULES: Record<string, () => Promise<{ register: RegisterCommand }>> = {
  serve: () => import('./serve.js'),
  snapshot: () => import('./snapshot.js'),
  unpack: () => import('./unpack.js'),
  diff: () => import('./diff.js'),
  layer: () => import('./layer.js'),
  vhdx: () => import('./vhdx.js'),
  cim: () => import('./cim.js'),
  convert: () => import('./convert.js'),
};

/** Registration functions for `names` (every command when none of them is known). */
export async function loadCommands(names: string[] = []): Promise<RegisterCommand[]> {
  const known = names.filter((n) => n in COMMAND_MODULES);
  const wanted = known.length > 0 ? known : Object.keys(COMMAND_MODULES);
  return Promise.all(wanted.map(async (n) => (await COMMAND_MODULES[n]!()).register));
}
