/**
 * Promise helpers shared by the streaming pipelines (tar2vhd, VHDX conversion, the ring reader).
 */

/**
 * `p` itself, marked as handled: a promise started now and awaited later (after other work)
 * would otherwise be reported as an unhandled rejection if it failed in between. The caller
 * still sees the rejection where it awaits `p`.
 */
export function later<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}
