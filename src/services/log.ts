/**
 * Structured logging (pino) to stderr, synchronous so CLI and daemon logs are never lost on
 * exit. Level from WINSNAP_LOG_LEVEL (default: info for the server, warn for the CLI).
 */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(defaultLevel = 'info', name = 'winsnap'): Logger {
  return pino(
    { name, level: process.env.WINSNAP_LOG_LEVEL ?? defaultLevel, base: { pid: process.pid } },
    pino.destination({ dest: 2, sync: true }),
  );
}

/** A logger that drops everything (library default). */
export const silentLogger: Logger = pino({ level: 'silent' });
