/**
 * Progress bars on a TTY (cli-progress), silent otherwise: bytes, rate and ETA per task.
 */
import cliProgress from 'cli-progress';

export interface Bar {
  update(done: number): void;
  stop(): void;
}

export function progressEnabled(): boolean {
  return Boolean(process.stderr.isTTY) && process.env.WINSNAP_NO_PROGRESS === undefined;
}

const fmtBytes = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

/** A set of bars on stderr; a no-op when stderr is not a terminal. */
export class Progress {
  private readonly multi: cliProgress.MultiBar | undefined;

  constructor() {
    this.multi = progressEnabled()
      ? new cliProgress.MultiBar(
          {
            stream: process.stderr,
            format: '{label} [{bar}] {percentage}% | {doneText}/{totalText} | {rate}/s | ETA {eta_formatted}',
            hideCursor: true,
            clearOnComplete: false,
            etaBuffer: 20,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  }

  bar(label: string, total: number): Bar {
    if (!this.multi) return { update: () => undefined, stop: () => undefined };
    const start = Date.now();
    const b = this.multi.create(Math.max(total, 1), 0, { label, doneText: fmtBytes(0), totalText: fmtBytes(total), rate: '0 B' });
    return {
      update: (done) => {
        const secs = Math.max((Date.now() - start) / 1000, 0.001);
        b.update(done, { doneText: fmtBytes(done), rate: fmtBytes(done / secs) });
      },
      stop: () => b.stop(),
    };
  }

  stop(): void {
    this.multi?.stop();
  }
}
