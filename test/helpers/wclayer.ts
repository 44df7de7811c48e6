/**
 * Builds Windows layer tars for tests from a compact description, through the Windows
 * entry codec and tar writer (whose own tests check them against GNU tar, bsdtar and
 * Python). Expected values in layer tests come from these descriptions.
 */
import { createHash } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { TarWriter } from '../../src/formats/tar/writer.js';
import type { TarHeaderInput } from '../../src/formats/tar/types.js';
import { readTar } from '../../src/formats/tar/reader.js';
import { tarHeaderFromWindowsEntry, type WindowsEntry } from '../../src/formats/wintar/entry.js';
import { encodeReparsePoint } from '../../src/formats/wintar/reparse.js';
import { FILE_ATTRIBUTE } from '../../src/formats/wintar/constants.js';

export interface Spec {
  name: string;
  kind?: WindowsEntry['kind'];
  data?: Buffer | string;
  /** hardlink target / symlink target */
  link?: string;
  attributes?: number;
  sd?: Buffer;
  eas?: { name: string; value: Buffer }[];
  time?: bigint;
}

/** A fixed self-relative SD (owner/group absent, NULL DACL). */
export const NULL_SD = Buffer.from([1, 0, 4, 0x80, ...new Array(16).fill(0)]);

export function entryOf(s: Spec): { header: TarHeaderInput; body?: Buffer } {
  const kind = s.kind ?? (s.data !== undefined ? 'file' : 'dir');
  const t = s.time ?? 133_000_000_000_000_000n;
  const data = s.data === undefined ? undefined : Buffer.from(s.data);
  const e: WindowsEntry = {
    name: s.name,
    kind,
    attributes: s.attributes ?? (kind === 'dir' ? FILE_ATTRIBUTE.DIRECTORY : kind === 'symlink' || kind === 'junction' ? FILE_ATTRIBUTE.REPARSE_POINT : FILE_ATTRIBUTE.ARCHIVE),
    creationTime: t,
    lastAccessTime: t + 1n,
    lastWriteTime: t + 2n,
    changeTime: t + 3n,
    eas: (s.eas ?? []).map((x) => ({ ...x, flags: 0 })),
    size: data?.length ?? 0,
    extraPax: [],
  };
  if (s.sd) e.securityDescriptor = s.sd;
  if (kind === 'hardlink' || kind === 'symlink' || kind === 'junction') e.linkTarget = s.link;
  if (kind === 'symlink' || kind === 'junction') e.reparseBuffer = encodeReparsePoint({ target: s.link!, isMountPoint: kind === 'junction' });
  if (kind === 'whiteout') e.whiteoutTarget = s.name.replace(/\.wh\.([^/]*)$/, '$1');
  if (kind === 'ads') {
    const i = s.name.lastIndexOf(':');
    e.adsBase = s.name.slice(0, i);
    e.adsStream = s.name.slice(i + 1);
  }
  return { header: tarHeaderFromWindowsEntry(e), body: kind === 'file' || kind === 'ads' ? data : undefined };
}

export async function layerTar(specs: Spec[]): Promise<Buffer> {
  const w = new TarWriter();
  const out = buffer(w.stream);
  for (const s of specs) {
    const { header, body } = entryOf(s);
    await w.writeEntry(header, body);
  }
  await w.finish();
  return out;
}

export interface SeenEntry {
  name: string;
  typeflag: number;
  linkname: string;
  pax: Array<[string, string]>;
  sha256: string;
  size: number;
}

/** The entries of a tar as comparable records (names, PAX records, data digests). */
export async function tarEntries(tar: Buffer | Readable): Promise<SeenEntry[]> {
  const out: SeenEntry[] = [];
  for await (const e of readTar(Buffer.isBuffer(tar) ? Readable.from([tar]) : tar)) {
    const data = await e.readAll(1 << 30);
    out.push({
      name: e.header.name,
      typeflag: e.header.typeflag,
      linkname: e.header.linkname,
      pax: e.header.pax.map((r) => [r.key, r.value.toString('base64')]),
      sha256: createHash('sha256').update(data).digest('hex'),
      size: data.length,
    });
  }
  return out;
}
