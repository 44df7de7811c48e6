/**
 * Test helpers: an independent expected model of a CIM namespace (plain maps, no code from
 * src/formats/cim), a writer driver, and a dump of what the reader sees, for comparisons.
 */
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';

export interface ModelEntry {
  dir: boolean;
  attributes: number;
  times: [bigint, bigint, bigint, bigint];
  data?: Buffer;
  sd?: Buffer;
  ea?: Buffer;
  reparse?: Buffer;
  streams?: Record<string, Buffer>;
  /** For hard links: the path of the entry this one is a link to. */
  linkTo?: string;
}

/** What the reader should report as attributes (§3.2: 5 flags + DIRECTORY + REPARSE_POINT). */
export function expectedAttributes(e: ModelEntry): number {
  let a = e.attributes & (0x1 | 0x2 | 0x4 | 0x20 | 0x200);
  if (e.dir) a |= 0x10;
  if (e.reparse) a |= 0x400;
  return a;
}

/** Writes the model (paths in insertion order; parents before children). */
export async function writeModel(w: CimWriter, model: Map<string, ModelEntry>): Promise<void> {
  for (const [path, e] of model) {
    if (e.linkTo !== undefined) {
      await w.createHardLink(path, e.linkTo);
      continue;
    }
    await w.addFile(
      path,
      {
        attributes: e.attributes | (e.dir ? 0x10 : 0),
        creationTime: e.times[0],
        lastWriteTime: e.times[1],
        changeTime: e.times[2],
        lastAccessTime: e.times[3],
        securityDescriptor: e.sd,
        extendedAttributes: e.ea,
        reparseData: e.reparse,
        size: e.data?.length ?? 0,
      },
      e.data && e.data.length > 0 ? [e.data.subarray(0, 7), e.data.subarray(7)] : undefined,
    );
    for (const [s, d] of Object.entries(e.streams ?? {})) {
      await w.createAlternateStream(`${path}:${s}`, d.length);
      if (d.length > 0) await w.write(d);
      await w.closeStream();
    }
  }
}

export interface Dumped {
  fileId: number;
  dir: boolean;
  attributes: number;
  times: [bigint, bigint, bigint, bigint];
  data?: string;
  sd?: string;
  ea?: string;
  reparse?: string;
  streams: Record<string, string>;
}

/** Everything the reader reports, keyed by upper-cased path. */
export async function dumpImage(r: CimReader): Promise<Map<string, Dumped & { path: string }>> {
  const out = new Map<string, Dumped & { path: string }>();
  for await (const e of r.walk()) {
    if (e.path === '') continue;
    const st = await r.statById(e.fileId);
    const streams: Record<string, string> = {};
    for (const s of st.streams) {
      const parts: Buffer[] = [];
      for await (const b of r.readById(e.fileId, s.name)) parts.push(b);
      streams[s.name] = Buffer.concat(parts).toString('hex');
    }
    let data: string | undefined;
    if (!st.isDirectory) {
      const parts: Buffer[] = [];
      for await (const b of r.readById(e.fileId)) parts.push(b);
      data = Buffer.concat(parts).toString('hex');
    }
    out.set(e.path.toUpperCase(), {
      path: e.path,
      fileId: e.fileId,
      dir: st.isDirectory,
      attributes: st.attributes,
      times: [st.creationTime, st.lastWriteTime, st.changeTime, st.lastAccessTime],
      data,
      sd: st.securityDescriptor?.toString('hex'),
      ea: st.extendedAttributes?.toString('hex'),
      reparse: st.reparseData?.toString('hex'),
      streams,
    });
  }
  return out;
}

/** The model resolved (hard links take their target's content) in the dump's shape. */
export function expectedDump(model: Map<string, ModelEntry>): Map<string, Omit<Dumped, 'fileId'> & { path: string }> {
  const out = new Map<string, Omit<Dumped, 'fileId'> & { path: string }>();
  for (const [path, e0] of model) {
    const e = e0.linkTo !== undefined ? model.get(e0.linkTo)! : e0;
    out.set(path.toUpperCase(), {
      path,
      dir: e.dir,
      attributes: expectedAttributes(e),
      times: e.times,
      data: e.dir ? undefined : (e.data ?? Buffer.alloc(0)).toString('hex'),
      sd: e.sd?.toString('hex'),
      ea: e.ea?.toString('hex'),
      reparse: e.reparse?.toString('hex'),
      streams: Object.fromEntries(Object.entries(e.streams ?? {}).map(([k, v]) => [k, v.toString('hex')])),
    });
  }
  return out;
}

export function stripIds(d: Map<string, Dumped & { path: string }>): Map<string, Omit<Dumped, 'fileId'> & { path: string }> {
  return new Map([...d].map(([k, { fileId: _f, ...rest }]) => [k, rest]));
}
