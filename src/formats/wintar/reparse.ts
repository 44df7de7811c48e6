/**
 * REPARSE_DATA_BUFFER for symbolic links (IO_REPARSE_TAG_SYMLINK) and mount points /
 * junctions (IO_REPARSE_TAG_MOUNT_POINT): Tag u32, DataLength u16, Reserved u16,
 * SubstituteNameOffset/Length, PrintNameOffset/Length (u16 each, bytes, relative to the
 * path buffer), Flags u32 (symlinks only; 1 = relative), then the UTF-16LE path buffer.
 *
 * Encoding follows go-winio's EncodeReparsePoint (windows-layer-formats.md §1.5): the
 * substitute name is the NT form of the target (`\\?\X` -> `\??\X`, `\\srv` ->
 * `\??\UNC\srv`, `C:...` -> `\??\C:...`, anything else relative and verbatim), the print
 * name is the target; both are NUL-terminated (lengths exclude the NUL), substitute first.
 * Decoding gives both names; `target` is the print name, as go-winio's backuptar uses it
 * (§1.3), or the Win32 form of the substitute name when the print name is empty.
 */
import { invalidArgument, notImplemented } from '../../services/errdefs.js';
import { IO_REPARSE_TAG_MOUNT_POINT, IO_REPARSE_TAG_SYMLINK, SYMLINK_FLAG_RELATIVE } from './constants.js';

export interface ReparsePoint {
  /** Win32 form of the link target (what the tar linkname holds). */
  target: string;
  isMountPoint: boolean;
}

export interface DecodedReparsePoint extends ReparsePoint {
  tag: number;
  substituteName: string;
  printName: string;
  /** Symlink Flags (SYMLINK_FLAG_RELATIVE); 0 for mount points. */
  flags: number;
  relative: boolean;
}

function isDriveLetter(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z]$/.test(c);
}

/** NT substitute name for a Win32 target, and whether the link is relative. */
export function ntTarget(target: string): { nt: string; relative: boolean } {
  if (target.startsWith('\\\\?\\')) return { nt: `\\??\\${target.slice(4)}`, relative: false };
  if (target.startsWith('\\\\')) return { nt: `\\??\\UNC\\${target.slice(2)}`, relative: false };
  if (target.length >= 2 && isDriveLetter(target[0]) && target[1] === ':') return { nt: `\\??\\${target}`, relative: false };
  return { nt: target, relative: true };
}

/** Win32 form of an NT substitute name (inverse of ntTarget for absolute names). */
export function win32Target(nt: string): string {
  if (nt.startsWith('\\??\\UNC\\')) return `\\\\${nt.slice(8)}`;
  if (nt.startsWith('\\??\\')) {
    const rest = nt.slice(4);
    if (rest.length >= 2 && isDriveLetter(rest[0]) && rest[1] === ':') return rest;
    return `\\\\?\\${rest}`;
  }
  return nt;
}

export function encodeReparsePoint(rp: ReparsePoint): Buffer {
  if (rp.target.includes('\0')) throw invalidArgument(`reparse target ${JSON.stringify(rp.target)} contains NUL`);
  const { nt, relative } = ntTarget(rp.target);
  const subst = Buffer.from(`${nt}\0`, 'utf16le');
  const print = Buffer.from(`${rp.target}\0`, 'utf16le');
  const fixed = rp.isMountPoint ? 8 : 12;
  const dataLength = fixed + subst.length + print.length;
  if (dataLength > 0xffff || subst.length - 2 > 0xffff) {
    throw invalidArgument(`reparse target is too long (${rp.target.length} characters)`);
  }
  const out = Buffer.alloc(8 + dataLength);
  out.writeUInt32LE(rp.isMountPoint ? IO_REPARSE_TAG_MOUNT_POINT : IO_REPARSE_TAG_SYMLINK, 0);
  out.writeUInt16LE(dataLength, 4);
  out.writeUInt16LE(0, 6);
  out.writeUInt16LE(0, 8); // SubstituteNameOffset
  out.writeUInt16LE(subst.length - 2, 10);
  out.writeUInt16LE(subst.length, 12); // PrintNameOffset
  out.writeUInt16LE(print.length - 2, 14);
  let pos = 16;
  if (!rp.isMountPoint) {
    out.writeUInt32LE(relative ? SYMLINK_FLAG_RELATIVE : 0, 16);
    pos = 20;
  }
  subst.copy(out, pos);
  print.copy(out, pos + subst.length);
  return out;
}

/** Reads the generic header: tag and the reparse data (strict about DataLength). */
export function decodeReparseHeader(buf: Buffer, base = 0): { tag: number; data: Buffer } {
  if (buf.length < 8) throw invalidArgument(`reparse buffer at offset ${base}: ${buf.length} bytes, needs at least 8`, { offset: base });
  const tag = buf.readUInt32LE(0);
  const dataLength = buf.readUInt16LE(4);
  if (8 + dataLength !== buf.length) {
    throw invalidArgument(
      `reparse buffer at offset ${base}: ReparseDataLength ${dataLength} does not match the buffer (${buf.length - 8} data bytes)`,
      { offset: base },
    );
  }
  return { tag, data: buf.subarray(8) };
}

/** Decodes a symlink or mount-point reparse buffer. Other tags are NotImplemented. */
export function decodeReparsePoint(buf: Buffer, base = 0): DecodedReparsePoint {
  const { tag, data } = decodeReparseHeader(buf, base);
  let isMountPoint: boolean;
  if (tag === IO_REPARSE_TAG_MOUNT_POINT) isMountPoint = true;
  else if (tag === IO_REPARSE_TAG_SYMLINK) isMountPoint = false;
  else throw notImplemented(`reparse buffer at offset ${base}: unsupported reparse tag 0x${tag.toString(16)}`, { offset: base });
  const fixed = isMountPoint ? 8 : 12;
  if (data.length < fixed) {
    throw invalidArgument(`reparse buffer at offset ${base}: ${data.length} data bytes, needs at least ${fixed}`, { offset: base });
  }
  const path = data.subarray(fixed);
  const name = (field: string, offAt: number): string => {
    const off = data.readUInt16LE(offAt);
    const len = data.readUInt16LE(offAt + 2);
    if (off % 2 !== 0 || len % 2 !== 0) {
      throw invalidArgument(`reparse buffer at offset ${base}: ${field} offset ${off} / length ${len} are not even`, { offset: base });
    }
    if (off + len > path.length) {
      throw invalidArgument(
        `reparse buffer at offset ${base}: ${field} (offset ${off}, length ${len}) runs past the path buffer (${path.length} bytes)`,
        { offset: base + 8 + fixed + off },
      );
    }
    return path.subarray(off, off + len).toString('utf16le');
  };
  const substituteName = name('SubstituteName', 0);
  const printName = name('PrintName', 4);
  const flags = isMountPoint ? 0 : data.readUInt32LE(8);
  return {
    tag,
    isMountPoint,
    substituteName,
    printName,
    flags,
    relative: !isMountPoint && (flags & SYMLINK_FLAG_RELATIVE) !== 0,
    target: printName !== '' ? printName : win32Target(substituteName),
  };
}
