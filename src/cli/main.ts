/**
 * winsnap CLI: parses arguments with commander and dispatches to one command module per
 * area (src/cli/commands/*.ts). Commands are thin: parse, call one plugin/format API, print.
 * Exit status is non-zero with a one-line `winsnap: <error>` on failure.
 */
import { Command, CommanderError } from 'commander';
import { toWinsnapError } from '../services/errdefs.js';
import { COMMANDS } from './commands/index.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('winsnap')
    .description('containerd-compatible snapshotters and differs for Windows-host container layers')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  for (const register of COMMANDS) register(program);
  return program;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
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
