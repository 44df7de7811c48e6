/**
 * winsnap CLI: parses arguments with commander and dispatches to one command module per
 * area (src/cli/commands/*.ts). Commands are thin: parse, call one plugin/format API, print.
 * Exit status is non-zero with a one-line `winsnap: <error>` on failure.
 */
import { Command, CommanderError } from 'commander';
import { toWinsnapError } from '../services/errdefs.js';
import { loadCommands, type RegisterCommand } from './commands/index.js';

export const VERSION = '0.1.0';

export function buildProgram(commands: RegisterCommand[]): Command {
  const program = new Command('winsnap')
    .description('containerd-compatible snapshotters and differs for Windows-host container layers')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

/** What the entry point runs between loading the command's modules and running it. */
export interface MainHooks {
  /** called once the modules of the command being run are loaded */
  commandsLoaded?: () => void;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[], hooks: MainHooks = {}): Promise<number> {
  let program: Command;
  try {
    // only the command being run is loaded (all of them for help or an unknown command,
    // none for the version)
    const first = argv.find((a) => !a.startsWith('-'));
    const versionOnly = !first && argv.some((a) => a === '-V' || a === '--version');
    program = buildProgram(versionOnly ? [] : await loadCommands(first ? [first] : []));
    hooks.commandsLoaded?.();
  } catch (err) {
    process.stderr.write(`winsnap: ${toWinsnapError(err).message}\n`);
    return 1;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version output are successful exits; usage errors were already printed
      return err.exitCode;
    }
    const e = toWinsnapError(err);
    process.stderr.write(`winsnap: ${e.message}\n`);
    if (process.env.WINSNAP_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    return 1;
  }
}
