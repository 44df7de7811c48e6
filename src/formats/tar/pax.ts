/**
 * PAX extended header records (POSIX pax, "pax Extended Header"): each record is
 * `"%d %s=%s\n", <length>, <keyword>, <value>` where length counts the whole record,
 * including its own digits, the space, the '=' and the newline. Values are kept as raw
 * bytes; keywords are UTF-8.
 */
import { invalidArgument } from '../../services/errdefs.js';
import type { PaxRecord } from './types.js';

const SPACE = 0x20;
const EQUALS = 0x3d;
const NEWLINE = 0x0a;

export interface PaxContext {
  /** Byte offset of the extended header block (for messages). */
  offset: number;
  /** Name of the header block carrying the records, if known. */
  entry?: string;
}

function bad(detail: string, ctx: PaxContext, at: number): never {
  throw invalidArgument(
    `tar: bad PAX record at offset ${ctx.offset} (record byte ${at}${ctx.entry ? `, header "${ctx.entry}"` : ''}): ${detail}`,
    { entry: ctx.entry, offset: ctx.offset },
  );
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses the body of an 'x' or 'g' header. Strict: every byte must belong to a well-formed
 * record. Values are views of `body`.
 */
export function parsePaxRecords(body: Buffer, ctx: PaxContext): PaxRecord[] {
  const out: PaxRecord[] = [];
  let pos = 0;
  while (pos < body.length) {
    // Length: decimal digits, then one space.
    let i = pos;
    let len = 0;
    while (i < body.length && body[i]! >= 0x30 && body[i]! <= 0x39) {
      len = len * 10 + (body[i]! - 0x30);
      if (len > body.length) bad('record length exceeds the header size', ctx, pos);
      i++;
    }
    if (i === pos) bad('record does not start with a decimal length', ctx, pos);
    if (i >= body.length || body[i] !== SPACE) bad('length not followed by a space', ctx, pos);
    const end = pos + len;
    if (len < i - pos + 4 || end > body.length) bad(`record length ${len} out of range`, ctx, pos);
    if (body[end - 1] !== NEWLINE) bad(`record of length ${len} does not end with a newline`, ctx, pos);
    const keyStart = i + 1;
    const eq = body.indexOf(EQUALS, keyStart);
    if (eq < 0 || eq >= end - 1) bad('record has no "="', ctx, pos);
    if (eq === keyStart) bad('record has an empty keyword', ctx, pos);
    const keyBytes = body.subarray(keyStart, eq);
    if (keyBytes.includes(0)) bad('keyword contains NUL', ctx, pos);
    let key: string;
    try {
      key = utf8.decode(keyBytes);
    } catch {
      bad('keyword is not valid UTF-8', ctx, pos);
    }
    // A view of `body` (the reader hands in its own copy of the header body).
    out.push({ key, value: body.subarray(eq + 1, end - 1) });
    pos = end;
  }
  return out;
}

function decimalLength(n: number): number {
  return String(n).length;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Validates a keyword for writing: non-empty Unicode without '=', NUL or newline. */
export function checkPaxKey(key: string): string | undefined {
  if (key.length === 0) return 'empty keyword';
  if (key.includes('=')) return 'keyword contains "="';
  if (key.includes('\0')) return 'keyword contains NUL';
  if (key.includes('\n')) return 'keyword contains a newline';
  if (LONE_SURROGATE.test(key)) return 'keyword is not valid Unicode';
  return undefined;
}

/** Encodes records in the given order. */
export function encodePaxRecords(records: readonly PaxRecord[]): Buffer {
  const keys: Buffer[] = [];
  const lens: number[] = [];
  let total = 0;
  for (const r of records) {
    const problem = checkPaxKey(r.key);
    if (problem) throw invalidArgument(`tar: cannot write PAX record "${r.key}": ${problem}`, { key: r.key });
    const key = Buffer.from(r.key, 'utf8');
    const base = key.length + r.value.length + 3; // ' ' '=' '\n'
    let len = base + decimalLength(base);
    if (decimalLength(len) !== len - base) len = base + decimalLength(len);
    keys.push(key);
    lens.push(len);
    total += len;
  }
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  records.forEach((r, i) => {
    pos += out.write(`${lens[i]} `, pos, 'latin1');
    pos += keys[i]!.copy(out, pos);
    out[pos++] = EQUALS;
    pos += r.value.copy(out, pos);
    out[pos++] = NEWLINE;
  });
  return out;
}

/** The value of the last record with this key (local records override earlier ones). */
export function lastPaxValue(records: readonly PaxRecord[], key: string): Buffer | undefined {
  for (let i = records.length - 1; i >= 0; i--) if (records[i]!.key === key) return records[i]!.value;
  return undefined;
}

/** Convenience: a record with a UTF-8 string value. */
export function paxRecord(key: string, value: string | Buffer): PaxRecord {
  return { key, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value };
}
