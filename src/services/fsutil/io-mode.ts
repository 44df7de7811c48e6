/**
 * Where a one-shot conversion does its file I/O: on libuv's thread pool, overlapping the
 * parsing ('pool'), or with synchronous calls on the converting thread ('sync').
 *
 * On a machine of two cores the pool does not overlap anything: the conversion's thread,
 * V8's optimizing compiler and the pool's reads and writes share two cores, the woken pool
 * thread takes the converting thread's core, and the conversion waits for its reads and
 * writes (~80 ms idle in a profiled 430 ms run of the bench tar). Synchronous calls there made
 * `convert tar2vhd` of the bench tar 380 → 340 ms (median of 12 alternating runs; `--verity`
 * 460 → 420 ms, with less CPU: docs/lcow.md). With more cores the pool has a core of its own.
 *
 * Only for a process that does one thing: synchronous I/O holds its event loop for the whole
 * conversion (readers yield to it every 64 MiB). A server (`winsnap serve`) keeps the pool.
 * WINSNAP_IO=sync|pool overrides the choice (tests run both paths).
 */
import { availableParallelism } from 'node:os';

export type IoMode = 'pool' | 'sync';

export function oneShotIoMode(env: NodeJS.ProcessEnv = process.env): IoMode {
  const forced = env.WINSNAP_IO;
  if (forced === 'sync' || forced === 'pool') return forced;
  return availableParallelism() <= 2 ? 'sync' : 'pool';
}
