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

/**
 * Jobs started now and awaited together later, each kept only while it is pending (a long run
 * of jobs, e.g. one per megabyte of a conversion's output, holds nothing for the finished
 * ones); `settled()` waits for those still pending and rethrows the first failure.
 */
export class PendingJobs {
  private readonly pending = new Set<Promise<unknown>>();
  private failure: { err: unknown } | undefined;

  add(job: Promise<unknown>): void {
    this.pending.add(job);
    job.then(
      () => this.pending.delete(job),
      (err: unknown) => {
        this.failure ??= { err };
        this.pending.delete(job);
      },
    );
  }

  /** Jobs still pending. */
  get size(): number {
    return this.pending.size;
  }

  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    if (this.failure) throw this.failure.err;
  }
}
