/**
 * The Windows entry model and its mapping to/from tar headers, following go-winio
 * `backuptar` and hcsshim's layer export (windows-layer-formats.md §1.1–1.4, §2.1):
 *  - MSWINDOWS.fileattr: decimal u32; absent → DIRECTORY for directories, else 0.
 *  - MSWINDOWS.rawsd: base64 (standard alphabet, padded) self-relative security descriptor.
 *  - MSWINDOWS.sd: legacy SDDL, read only upstream (kept here as `sddl`, see docs).
 *  - MSWINDOWS.mountpoint: present on a symlink entry that is really a junction.
 *  - MSWINDOWS.xattr.<name>: one per EA, base64 value; EA flags are not representable.
 *  - LIBARCHIVE.creationtime: PAX time; absent → creation time = modification time.
 *  - mtime/atime/ctime at 100 ns via PAX records; mode holds POSIX type bits only.
 *  - hard links: mode 0644, carry fileattr + creationtime; ADS: `file:stream`
 *    (`file:stream:$DATA` accepted), regular entries without MSWINDOWS records;
 *  - whiteouts `.wh.X`: bare USTAR entries (typeflag '0', mode 0, size 0, mtime 0).
 * Records are emitted sorted by key, the order Go's archive/tar writes them in.
 */
import { invalidArgument } from '../../services/errdefs.js';
import { formatPaxTime, parsePaxTime } from '../tar/time.js';
import { requiredPaxRecords } from '../tar/writer.js';
import type { PaxRecord, TarHeader, TarHeaderInput, TarTime } from '../tar/types.js';
import {
  FILE_ATTRIBUTE,
  MODE_DIR,
  MODE_REG,
  MODE_SYMLINK,
  PAX_CREATIONTIME,
  PAX_FILEATTR,
  PAX_MOUNTPOINT,
  PAX_RAWSD,
  PAX_SD,
  PAX_XATTR_PREFIX,
} from './constants.js';
import { checkEaName, type WindowsEa } from './ea.js';
import { filetimeToTarTime, tarTimeToFiletime } from './filetime.js';
import { encodeReparsePoint, decodeReparsePoint } from './reparse.js';

export type WindowsEntryKind = 'file' | 'dir' | 'symlink' | 'junction' | 'hardlink' | 'ads' | 'whiteout';

export interface WindowsEntry {
  /** The tar name ('/'-separated, e.g. "Files/Windows/x.dll", "Files/a.txt:stream"). */
  name: string;
  kind: WindowsEntryKind;
  /** FILE_ATTRIBUTE_* bits (u32). */
  attributes: number;
  /** FILETIMEs: 100 ns intervals since 1601-01-01 UTC. */
  creationTime: bigint;
  lastAccessTime: bigint;
  lastWriteTime: bigint;
  changeTime: bigint;
  /** Raw self-relative security descriptor. */
  securityDescriptor?: Buffer;
  /** Legacy SDDL string (MSWINDOWS.sd) when the tar had no raw SD. */
  sddl?: string;
  /** Extended attributes, in record order. */
  eas: WindowsEa[];
  /** REPARSE_DATA_BUFFER for symlinks and junctions. */
  reparseBuffer?: Buffer;
  /** symlink/junction: the Win32 target as stored in the tar linkname; hardlink: the tar name of the target. */
  linkTarget?: string;
  /** Data size for files and alternate data streams, else 0. */
  size: number;
  /** The tar mode. On output, defaults to backuptar's type bits for the kind. */
  mode?: number;
  /** For 'ads': the tar name of the file the stream belongs to, and the stream name (no ":$DATA"). */
  adsBase?: string;
  adsStream?: string;
  /** For 'whiteout': the tar name of the deleted entry. */
  whiteoutTarget?: string;
  /** PAX records this codec does not interpret (e.g. SCHILY.xattr.*), in order. */
  extraPax: PaxRecord[];
}

/** PAX keys the tar codec itself turns into header fields. */
const TAR_KEYS: ReadonlySet<string> = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime']);
const WINDOWS_KEYS: ReadonlySet<string> = new Set([PAX_FILEATTR, PAX_RAWSD, PAX_SD, PAX_MOUNTPOINT, PAX_CREATIONTIME]);

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const FILETIME_MAX = (1n << 64n) - 1n;
const USTAR_SIZE_MAX = 8 ** 11 - 1;
const USTAR_TIME_MAX = BigInt(8 ** 11 - 1);

function basenameOf(name: string): { dir: string; base: string } {
  let n = name;
  while (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1);
  const i = n.lastIndexOf('/');
  return i < 0 ? { dir: '', base: n } : { dir: n.slice(0, i + 1), base: n.slice(i + 1) };
}

function splitAds(name: string): { base: string; stream: string } | undefined | null {
  const { dir, base } = basenameOf(name);
  const colon = base.indexOf(':');
  if (colon < 0) return undefined;
  let stream = base.slice(colon + 1);
  if (stream.endsWith(':$DATA')) stream = stream.slice(0, -':$DATA'.length);
  if (stream === '' || stream.includes(':') || colon === 0) return null;
  return { base: dir + base.slice(0, colon), stream };
}

/**
 * Splits an alternate-data-stream tar name ("dir/file:stream" or "dir/file:stream:$DATA");
 * undefined when the name has no ':' in its last component, InvalidArgument when malformed.
 */
export function parseAdsName(name: string): { base: string; stream: string } | undefined {
  const r = splitAds(name);
  if (r === null) throw invalidArgument(`windows tar: entry "${name}": bad alternate data stream name`, { entry: name });
  return r;
}

export interface WindowsDecodeOptions {
  /** Offset of the tar header, for error messages. */
  offset?: number;
}

/** Maps a tar header (as read by TarReader) to a Windows entry. */
export function windowsEntryFromTar(header: TarHeader, opts: WindowsDecodeOptions = {}): WindowsEntry {
  const name = header.name;
  const at = opts.offset;
  const where = at === undefined ? `entry "${name}"` : `entry "${name}" at offset ${at}`;
  const bad = (detail: string, key?: string): never => {
    throw invalidArgument(`windows tar: ${where}: ${detail}`, { entry: name, offset: at, key });
  };
  const base64 = (key: string, v: Buffer): Buffer => {
    const s = v.toString('latin1');
    if (s.length % 4 !== 0 || !BASE64.test(s)) bad(`${key} is not valid base64`, key);
    return Buffer.from(s, 'base64');
  };

  let attributes: number | undefined;
  let securityDescriptor: Buffer | undefined;
  let sddl: string | undefined;
  let mountPoint = false;
  let creation: TarTime | undefined;
  const eas = new Map<string, WindowsEa>();
  const extraPax: PaxRecord[] = [];

  // Global records first, so the entry's own records override them.
  const handle = (r: PaxRecord, local: boolean): void => {
    const k = r.key;
    if (k === PAX_FILEATTR) {
      const s = r.value.toString('latin1');
      if (!/^[0-9]{1,10}$/.test(s) || Number(s) > 0xffffffff) bad(`${k} value ${JSON.stringify(s)} is not a decimal u32`, k);
      attributes = Number(s);
    } else if (k === PAX_RAWSD) {
      securityDescriptor = base64(k, r.value);
    } else if (k === PAX_SD) {
      sddl = r.value.toString('utf8');
    } else if (k === PAX_MOUNTPOINT) {
      mountPoint = true;
    } else if (k === PAX_CREATIONTIME) {
      const t = parsePaxTime(r.value.toString('latin1'));
      if (!t) bad(`${k} value ${JSON.stringify(r.value.toString('latin1'))} is not a PAX time`, k);
      creation = t;
    } else if (k.startsWith(PAX_XATTR_PREFIX)) {
      const eaName = k.slice(PAX_XATTR_PREFIX.length);
      const problem = checkEaName(eaName);
      if (problem) bad(`${k}: ${problem}`, k);
      eas.delete(eaName);
      eas.set(eaName, { name: eaName, flags: 0, value: base64(k, r.value) });
    } else if (local && !TAR_KEYS.has(k)) {
      extraPax.push(r);
    }
  };
  for (const r of header.globalPax) handle(r, false);
  for (const r of header.pax) handle(r, true);

  const ft = (t: TarTime, what: string): bigint => {
    const v = tarTimeToFiletime(t);
    if (v < 0n || v > FILETIME_MAX) bad(`${what} ${formatPaxTime(t)} is outside the FILETIME range`);
    return v;
  };
  const lastWriteTime = ft(header.mtime, 'mtime');
  const entry: WindowsEntry = {
    name,
    kind: 'file',
    attributes: 0,
    creationTime: creation ? ft(creation, PAX_CREATIONTIME) : lastWriteTime,
    lastAccessTime: header.atime ? ft(header.atime, 'atime') : lastWriteTime,
    lastWriteTime,
    changeTime: header.ctime ? ft(header.ctime, 'ctime') : lastWriteTime,
    eas: [...eas.values()],
    size: 0,
    mode: header.mode,
    extraPax,
  };
  if (securityDescriptor) entry.securityDescriptor = securityDescriptor;
  else if (sddl !== undefined) entry.sddl = sddl;

  switch (header.type) {
    case 'dir':
      entry.kind = 'dir';
      break;
    case 'symlink': {
      entry.kind = mountPoint ? 'junction' : 'symlink';
      entry.linkTarget = header.linkname;
      entry.reparseBuffer = encodeReparsePoint({ target: header.linkname.replace(/\//g, '\\'), isMountPoint: mountPoint });
      break;
    }
    case 'link':
      entry.kind = 'hardlink';
      entry.linkTarget = header.linkname;
      break;
    case 'file': {
      const { dir, base } = basenameOf(name);
      if (base.startsWith('.wh.')) {
        entry.kind = 'whiteout';
        entry.whiteoutTarget = dir + base.slice(4);
        break;
      }
      const ads = splitAds(name);
      if (ads === null) bad('bad alternate data stream name');
      if (ads) {
        entry.kind = 'ads';
        entry.adsBase = ads.base;
        entry.adsStream = ads.stream;
      }
      entry.size = header.size;
      break;
    }
    default:
      bad(`tar entry type '${header.type}' has no Windows equivalent`);
  }
  entry.attributes = attributes ?? (entry.kind === 'dir' ? FILE_ATTRIBUTE.DIRECTORY : 0);
  return entry;
}

/** The tar mode backuptar writes for an entry of this kind. */
export function defaultWindowsMode(kind: WindowsEntryKind, attributes: number): number {
  switch (kind) {
    case 'file':
    case 'ads':
      return MODE_REG;
    case 'dir':
      return MODE_DIR;
    case 'symlink':
    case 'junction':
      return MODE_SYMLINK | (attributes & FILE_ATTRIBUTE.DIRECTORY ? MODE_DIR : 0);
    case 'hardlink':
      return 0o644;
    case 'whiteout':
      return 0;
  }
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}

function compareKeys(a: PaxRecord, b: PaxRecord): number {
  return Buffer.compare(Buffer.from(a.key, 'utf8'), Buffer.from(b.key, 'utf8'));
}

/** Maps a Windows entry to a tar header for TarWriter, with backuptar's records sorted by key. */
export function tarHeaderFromWindowsEntry(entry: WindowsEntry): TarHeaderInput {
  const name = entry.name;
  const bad = (detail: string): never => {
    throw invalidArgument(`windows tar: entry "${name}": ${detail}`, { entry: name });
  };
  if (entry.kind === 'whiteout') {
    // Go writes tar.Header{Name} (format unset): USTAR when the name fits (prefix split
    // allowed), else PAX with only a path record.
    const fits = isAscii(name) && requiredPaxRecords({ name }).length === 0;
    return { name, type: 'file', mode: 0, size: 0, mtime: 0, pax: fits ? [] : [{ key: 'path', value: Buffer.from(name, 'utf8') }] };
  }

  if (!Number.isInteger(entry.attributes) || entry.attributes < 0 || entry.attributes > 0xffffffff) bad(`attributes ${entry.attributes} are not a u32`);
  const times: [string, bigint][] = [
    ['creationTime', entry.creationTime],
    ['lastAccessTime', entry.lastAccessTime],
    ['lastWriteTime', entry.lastWriteTime],
    ['changeTime', entry.changeTime],
  ];
  for (const [k, v] of times) if (typeof v !== 'bigint' || v < 0n || v > FILETIME_MAX) bad(`${k} ${String(v)} is not a FILETIME`);

  const records: PaxRecord[] = [];
  const add = (key: string, value: string | Buffer): void => {
    records.push({ key, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value });
  };
  const isAds = entry.kind === 'ads';
  if (!isAds || entry.attributes !== 0) add(PAX_FILEATTR, String(entry.attributes));
  if (entry.securityDescriptor) add(PAX_RAWSD, entry.securityDescriptor.toString('base64'));
  else if (entry.sddl !== undefined) add(PAX_SD, entry.sddl);
  if (entry.kind === 'junction') add(PAX_MOUNTPOINT, '1');
  const seen = new Set<string>();
  for (const ea of entry.eas) {
    const problem = checkEaName(ea.name);
    if (problem) bad(problem);
    if (/[=\n]/.test(ea.name)) bad(`EA name ${JSON.stringify(ea.name)} cannot be a PAX keyword (contains "=" or a newline)`);
    if (seen.has(ea.name)) bad(`duplicate EA ${JSON.stringify(ea.name)}`);
    seen.add(ea.name);
    if (ea.value.length > 0xffff) bad(`EA ${JSON.stringify(ea.name)} value is ${ea.value.length} bytes (max 65535)`);
    add(PAX_XATTR_PREFIX + ea.name, ea.value.toString('base64'));
  }
  if (!isAds || entry.creationTime !== entry.lastWriteTime) add(PAX_CREATIONTIME, formatPaxTime(filetimeToTarTime(entry.creationTime)));

  const mtime = filetimeToTarTime(entry.lastWriteTime);
  const atime = filetimeToTarTime(entry.lastAccessTime);
  const ctime = filetimeToTarTime(entry.changeTime);
  if (mtime.nsec !== 0 || mtime.sec < 0n || mtime.sec > USTAR_TIME_MAX) add('mtime', formatPaxTime(mtime));
  add('atime', formatPaxTime(atime));
  add('ctime', formatPaxTime(ctime));

  let type: TarHeaderInput['type'];
  let linkname = '';
  let size = 0;
  switch (entry.kind) {
    case 'file':
    case 'ads':
      type = 'file';
      if (isAds) parseAdsName(name) ?? bad('alternate data stream name has no ":"');
      if (!Number.isSafeInteger(entry.size) || entry.size < 0) bad(`size ${entry.size} out of range`);
      size = entry.size;
      break;
    case 'dir':
      type = 'dir';
      break;
    case 'symlink':
    case 'junction': {
      type = 'symlink';
      const target = entry.linkTarget ?? (entry.reparseBuffer ? decodeReparsePoint(entry.reparseBuffer).target : undefined);
      if (target === undefined || target === '') bad(`${entry.kind} has no target`);
      linkname = target!;
      break;
    }
    case 'hardlink':
      type = 'link';
      if (!entry.linkTarget) bad('hard link has no target');
      linkname = entry.linkTarget!;
      break;
    default:
      bad(`unknown kind ${String(entry.kind)}`);
  }
  // Go's archive/tar (PAX format) adds these whenever the value is not plain ASCII or too long.
  if (!isAscii(name) || Buffer.byteLength(name, 'utf8') > 100) add('path', name);
  if (linkname !== '' && (!isAscii(linkname) || Buffer.byteLength(linkname, 'utf8') > 100)) add('linkpath', linkname);
  if (size > USTAR_SIZE_MAX) add('size', String(size));

  const generated = new Set(records.map((r) => r.key));
  for (const r of entry.extraPax) {
    if (generated.has(r.key) || TAR_KEYS.has(r.key) || WINDOWS_KEYS.has(r.key) || r.key.startsWith(PAX_XATTR_PREFIX)) {
      bad(`extra PAX record ${r.key} collides with a record the codec writes`);
    }
    records.push(r);
  }
  records.sort(compareKeys);

  return {
    name,
    type,
    linkname,
    mode: entry.mode ?? defaultWindowsMode(entry.kind, entry.attributes),
    size,
    mtime,
    atime,
    ctime,
    pax: records,
  };
}
