/**
 * Defaults for the CLI and server: the data root (`$WINSNAP_ROOT`, else
 * `$XDG_DATA_HOME/winsnap`, else `~/.local/share/winsnap`) and the socket address
 * (`unix://<root>/winsnap.sock`).
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function defaultRoot(): string {
  if (process.env.WINSNAP_ROOT) return resolve(process.env.WINSNAP_ROOT);
  const data = process.env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'winsnap');
}

export function defaultAddress(root: string): string {
  return `unix://${join(root, 'winsnap.sock')}`;
}
