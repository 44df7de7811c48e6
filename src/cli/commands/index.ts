/** The list of CLI command modules; each adds its subcommands to the program. */
import type { Command } from 'commander';
import { register as serve } from './serve.js';
import { register as snapshot } from './snapshot.js';
import { register as vhdx } from './vhdx.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [serve, snapshot, vhdx];
