/**
 * NTFS extended attributes as a FILE_FULL_EA_INFORMATION chain (the BACKUP_EA_DATA stream,
 * ZwQueryEaFile/ZwSetEaFile). Per entry: NextEntryOffset u32, Flags u8, EaNameLength u8,
 * EaValueLength u16, the name, a NUL, the value; every entry, the last included, is padded
 * to a multiple of 4 bytes; the last entry has NextEntryOffset 0.
 * Facts: windows-layer-formats.md §1.5 "EA buffer"; limits name <= 255 bytes, value <= 65535.
 */
import { invalidArgument } from '../../services/errdefs.js';

export interface WindowsEa {
  /** EA name (NTFS stores ASCII names; encoded here as UTF-8 bytes, 1..255 of them). */
  name: string;
  /** EA flags byte (FILE_NEED_EA = 0x80). Not representable in the layer tar (upstream drops it). */
  flags: number;
  value: Buffer;
}

const HEADER = 8;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Problem with an EA name, or undefined if it can be written. */
export function checkEaName(name: string): string | undefined {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) return 'EA name is empty';
  if (bytes > 255) return `EA name is ${bytes} bytes (max 255)`;
  if (name.includes('\0')) return 'EA name contains NUL';
  return undefined;
}

export function encodeEaBuffer(eas: readonly WindowsEa[]): Buffer {
  let total = 0;
  const names = eas.map((ea) => {
    const problem = checkEaName(ea.name);
    if (problem) throw invalidArgument(`EA ${JSON.stringify(ea.name)}: ${problem}`, { ea: ea.name });
    if (ea.value.length > 0xffff) throw invalidArgument(`EA ${JSON.stringify(ea.name)}: value is ${ea.value.length} bytes (max 65535)`, { ea: ea.name });
    if (!Number.isInteger(ea.flags) || ea.flags < 0 || ea.flags > 0xff) throw invalidArgument(`EA ${JSON.stringify(ea.name)}: flags ${ea.flags} out of range`, { ea: ea.name });
    const n = Buffer.from(ea.name, 'utf8');
    total += align4(HEADER + n.length + 1 + ea.value.length);
    return n;
  });
  const out = Buffer.alloc(total);
  let pos = 0;
  eas.forEach((ea, i) => {
    const name = names[i]!;
    const len = align4(HEADER + name.length + 1 + ea.value.length);
    out.writeUInt32LE(i === eas.length - 1 ? 0 : len, pos);
    out[pos + 4] = ea.flags;
    out[pos + 5] = name.length;
    out.writeUInt16LE(ea.value.length, pos + 6);
    name.copy(out, pos + HEADER);
    ea.value.copy(out, pos + HEADER + name.length + 1);
    pos += len;
  });
  return out;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes an EA chain. Strict: every entry lies inside the buffer, names are NUL-terminated,
 * NextEntryOffset points past the entry's end and is 4-aligned, and only zero padding
 * (fewer than 4 bytes) may follow the last entry. `base` is added to reported offsets.
 */
export function decodeEaBuffer(buf: Buffer, base = 0): WindowsEa[] {
  const out: WindowsEa[] = [];
  let pos = 0;
  const bad = (at: number, detail: string): never => {
    throw invalidArgument(`EA buffer: entry at offset ${base + at}: ${detail}`, { offset: base + at });
  };
  while (pos < buf.length) {
    if (buf.length - pos < HEADER) bad(pos, `needs ${HEADER} header bytes, ${buf.length - pos} left`);
    const next = buf.readUInt32LE(pos);
    const flags = buf[pos + 4]!;
    const nameLen = buf[pos + 5]!;
    const valueLen = buf.readUInt16LE(pos + 6);
    const end = pos + HEADER + nameLen + 1 + valueLen;
    if (nameLen === 0) bad(pos, 'empty name');
    if (end > buf.length) bad(pos, `name (${nameLen}) and value (${valueLen}) run past the buffer end (${buf.length})`);
    if (buf[pos + HEADER + nameLen] !== 0) bad(pos, 'name is not NUL-terminated');
    let name = '';
    try {
      name = utf8.decode(buf.subarray(pos + HEADER, pos + HEADER + nameLen));
    } catch {
      bad(pos, 'name is not valid UTF-8');
    }
    if (name.includes('\0')) bad(pos, 'name contains NUL');
    out.push({ name, flags, value: Buffer.from(buf.subarray(end - valueLen, end)) });
    if (next === 0) {
      const rest = buf.subarray(end);
      if (rest.length >= 4 || rest.some((b) => b !== 0)) bad(pos, `${rest.length} unexpected bytes after the last entry`);
      break;
    }
    if (next % 4 !== 0) bad(pos, `NextEntryOffset ${next} is not a multiple of 4`);
    if (pos + next < end) bad(pos, `NextEntryOffset ${next} points inside the entry`);
    if (pos + next >= buf.length) bad(pos, `NextEntryOffset ${next} points past the buffer end`);
    if (pos + next - end >= 4) bad(pos, `NextEntryOffset ${next} leaves a gap of ${pos + next - end} bytes`);
    pos += next;
  }
  return out;
}
