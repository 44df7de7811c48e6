/**
 * PAX time values (POSIX pax, "pax Extended Header": atime/ctime/mtime are decimal numbers of
 * seconds with an optional fraction, may be negative). The same syntax is used by
 * `LIBARCHIVE.creationtime`.
 */
import type { TarTime } from './types.js';

const INT64_LIMIT = 1n << 63n;

/** Builds a TarTime from seconds (number or bigint) and nanoseconds, normalising nsec into [0, 1e9). */
export function tarTime(sec: number | bigint, nsec = 0): TarTime {
  if (typeof sec === 'number') {
    if (!Number.isFinite(sec)) throw new RangeError(`tar time: seconds must be finite (got ${sec})`);
    const whole = Math.floor(sec);
    const fracNs = Math.round((sec - whole) * 1e9);
    return tarTime(BigInt(whole), nsec + fracNs);
  }
  if (!Number.isInteger(nsec)) throw new RangeError(`tar time: nanoseconds must be an integer (got ${nsec})`);
  let s = sec;
  let n = nsec;
  if (n < 0 || n >= 1e9) {
    const carry = Math.floor(n / 1e9);
    s += BigInt(carry);
    n -= carry * 1e9;
  }
  return { sec: s, nsec: n };
}

export function tarTimeEquals(a: TarTime, b: TarTime): boolean {
  return a.sec === b.sec && a.nsec === b.nsec;
}

/**
 * Parses a PAX time string. Returns undefined when the syntax is wrong (callers build the
 * error with their context). Fraction digits past nine are truncated (toward the value's
 * sign, as Go's archive/tar and GNU tar do). Seconds must fit in a signed 64-bit integer.
 */
export function parsePaxTime(s: string): TarTime | undefined {
  // Grammar: -?[0-9]+(\.[0-9]*)?  (checked by hand: this runs for every entry)
  const n = s.length;
  let i = 0;
  const neg = n > 0 && s.charCodeAt(0) === 0x2d;
  if (neg) i = 1;
  const intStart = i;
  while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
  const intEnd = i;
  if (intEnd === intStart) return undefined;
  let fracStart = -1;
  if (i < n) {
    if (s.charCodeAt(i) !== 0x2e) return undefined;
    fracStart = ++i;
    while (i < n && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39) i++;
    if (i !== n) return undefined;
  }
  const digits = s.slice(intStart, intEnd);
  const secs = digits.length <= 15 ? BigInt(Number(digits)) : BigInt(digits);
  if (secs >= INT64_LIMIT) return undefined;
  let nsec = 0;
  if (fracStart >= 0 && fracStart < n) {
    const f = s.slice(fracStart, Math.min(n, fracStart + 9));
    nsec = Number(f) * 10 ** (9 - f.length);
  }
  if (!neg) return { sec: secs, nsec };
  if (nsec === 0) return { sec: -secs, nsec: 0 };
  return { sec: -secs - 1n, nsec: 1e9 - nsec };
}

/** Formats a TarTime as a PAX time string: `secs` or `secs.frac` with trailing zeros trimmed. */
export function formatPaxTime(t: TarTime): string {
  if (t.nsec === 0) return t.sec.toString();
  let sign = '';
  let sec = t.sec;
  let nsec = t.nsec;
  if (sec < 0n) {
    sign = '-';
    sec = -sec - 1n;
    nsec = 1e9 - nsec;
  }
  return `${sign}${sec}.${String(nsec).padStart(9, '0')}`.replace(/0+$/, '');
}
