/**
 * FILETIME (100 ns intervals since 1601-01-01 UTC, as a bigint) <-> tar times.
 * backuptar converts through Unix nanoseconds: FILETIME -> ns = (ft - EPOCH) * 100;
 * ns -> FILETIME = trunc(ns / 100) + EPOCH (Go integer division truncates toward zero).
 * Facts: windows-layer-formats.md §1.2 ("Every FILETIME is converted through Unix
 * nanoseconds"); EPOCH = 116444736000000000 (1601→1970 in 100 ns units).
 */
import type { TarTime } from '../tar/types.js';

export const FILETIME_UNIX_EPOCH = 116444736000000000n;
const NS_PER_S = 1_000_000_000n;

export function filetimeToTarTime(ft: bigint): TarTime {
  const ns = (ft - FILETIME_UNIX_EPOCH) * 100n;
  let sec = ns / NS_PER_S;
  let nsec = ns % NS_PER_S;
  if (nsec < 0n) {
    nsec += NS_PER_S;
    sec -= 1n;
  }
  return { sec, nsec: Number(nsec) };
}

export function tarTimeToFiletime(t: TarTime): bigint {
  const ns = t.sec * NS_PER_S + BigInt(t.nsec);
  return ns / 100n + FILETIME_UNIX_EPOCH; // BigInt division truncates toward zero, like Go
}
