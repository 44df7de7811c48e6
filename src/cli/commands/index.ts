/** The list of CLI command modules; each adds its subcommands to the program. */
import type { Command } from 'commander';
import { register as serve } from './serve.js';
import { register as snapshot } from './snapshot.js';
import { register as vhdx } from './vhdx.js';
import { register as diff } from './diff.js';
import { register as layer } from './layer.js';
import { register as unpack } from './unpack.js';
import { register as cim } from './cim.js';
import { register as convert } from './convert.js';

export type RegisterCommand = (program: Command) => void;

export const COMMANDS: RegisterCommand[] = [serve, snapshot, unpack, diff, layer, vhdx, cim, convert];
