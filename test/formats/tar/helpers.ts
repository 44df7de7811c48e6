/** Shared helpers of the tar tests: collect streams, read archives fully, ask Python's tarfile. */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool } from '../../helpers/tools.js';
import { readTar, type TarHeader, type TarReadOptions } from '../../../src/formats/tar/index.js';

export const PYDUMP = fileURLToPath(new URL('./pytar_dump.py', import.meta.url));

export async function collect(src: AsyncIterable<Buffer | Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

export interface ReadBack {
  header: TarHeader;
  data: Buffer;
  offset: number;
}

/** Reads every entry of an archive held in memory, fed in chunks of `chunk` bytes. */
export async function readAll(buf: Buffer, opts?: TarReadOptions, chunk = 4096): Promise<ReadBack[]> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) chunks.push(buf.subarray(i, i + chunk));
  const out: ReadBack[] = [];
  for await (const e of readTar(chunks, opts)) out.push({ header: e.header, data: await e.readAll(), offset: e.offset });
  return out;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const hex = (s: string | Buffer): string => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s).toString('hex');

export interface PyMember {
  name: string;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  linkname: string;
  mtime: string;
  devmajor: number;
  devminor: number;
  pax: [string, string][];
  offset: number;
  sha256?: string;
}

/** Python's tarfile view of an archive file (hex-encoded byte strings). */
export function pyDump(path: string): { members: PyMember[]; global: Record<string, string> } {
  const r = runTool('python3', [PYDUMP, path]);
  if (r.status !== 0) throw new Error(`python tarfile failed on ${path}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as { members: PyMember[]; global: Record<string, string> };
}

export function pyDumpBuffer(dir: string, name: string, buf: Buffer): ReturnType<typeof pyDump> {
  const p = join(dir, name);
  writeFileSync(p, buf);
  return pyDump(p);
}

/** Python strips trailing slashes from directory names; compare names the same way. */
export function pyName(h: TarHeader): string {
  let n = h.name;
  if (h.type === 'dir') while (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1);
  return n;
}

export async function* chunksOf(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}
