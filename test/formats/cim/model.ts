/**
 * Test helpers: an independent expected model of a CIM namespace (plain maps, no code from
 * src/formats/cim), a writer driver, and a dump of what the reader sees, for comparisons.
 */
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { encodeEaBuffer } from '../../../src/formats/wintar/ea.js';
import { encodeReparsePoint } from '../../../src/formats/wintar/reparse.js';

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

/** Everything the reader reports, keyed by path. */
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
    out.set(e.path, {
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
    out.set(path, {
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

const T = (n: number): [bigint, bigint, bigint, bigint] => [
  132000000000000000n + BigInt(n),
  132000000000000001n + BigInt(n),
  132000000000000002n + BigInt(n),
  0xfedcba9876543210n,
];
const SD_A = Buffer.from('0100048014000000300000000000000000000000010100000000000512000000010100000000000512000000', 'hex');
const SD_B = Buffer.from('01000480140000002000000000000000000000000101000000000001000000000101000000000001000000', 'hex');

/** A tree covering every record kind. */
export function sampleModel(): Map<string, ModelEntry> {
  const m = new Map<string, ModelEntry>();
  const dir = (attrs = 0, n = 0, extra: Partial<ModelEntry> = {}): ModelEntry => ({ dir: true, attributes: attrs, times: T(n), ...extra });
  const file = (data: Buffer, attrs = 0x20, n = 0, extra: Partial<ModelEntry> = {}): ModelEntry => ({ dir: false, attributes: attrs, times: T(n), data, ...extra });
  m.set('Files', dir(0, 1, { sd: SD_A }));
  m.set('Files\\Windows', dir(0x4 | 0x2, 2, { sd: SD_A }));
  m.set('Files\\Windows\\empty.txt', file(Buffer.alloc(0), 0x20, 3, { sd: SD_A }));
  m.set('Files\\Windows\\small.dll', file(Buffer.from('MZ small file data'), 0x1 | 0x20, 4, { sd: SD_B }));
  const big = Buffer.alloc(3 * 4096 + 17);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
  m.set('Files\\Windows\\big.bin', file(big, 0x20, 5, { sd: SD_A }));
  m.set('Files\\Windows\\dup-of-big.bin', file(Buffer.from(big), 0x20, 6, { sd: SD_A }));
  m.set('Files\\Windows\\ads.txt', file(Buffer.from('main'), 0x20, 7, { streams: { 'Zone.Identifier': Buffer.from('[ZoneTransfer]\r\nZoneId=3\r\n'), empty: Buffer.alloc(0), Big: big } }));
  m.set('Files\\Windows\\ea.txt', file(Buffer.from('x'), 0x20, 8, { ea: encodeEaBuffer([{ name: 'LX.UID', value: Buffer.from([1, 0, 0, 0]), flags: 0 }, { name: 'SECOND', value: Buffer.from('v'), flags: 0x80 }]) }));
  m.set('Files\\Windows\\ea2.txt', file(Buffer.from('y'), 0x20, 9, { ea: encodeEaBuffer([{ name: 'LX.UID', value: Buffer.from([1, 0, 0, 0]), flags: 0 }, { name: 'SECOND', value: Buffer.from('v'), flags: 0x80 }]) }));
  m.set('Files\\link-to-small.dll', { dir: false, attributes: 0, times: T(0), linkTo: 'Files\\Windows\\small.dll' });
  m.set('Files\\symlink', file(Buffer.alloc(0), 0x20, 10, { reparse: encodeReparsePoint({ target: 'Windows\\small.dll', isMountPoint: false }) }));
  m.set('Files\\junction', dir(0, 11, { reparse: encodeReparsePoint({ target: 'C:\\Windows', isMountPoint: true }) }));
  m.set('Files\\Ünïcödé 名前 🙂.txt', file(Buffer.from('unicode'), 0x20, 12));
  m.set('Files\\ß', file(Buffer.from('eszett'), 0x20, 13));
  m.set('Files\\sparse.vhd', file(Buffer.alloc(9000), 0x200 | 0x20, 14));
  m.set('Files\\notsparse-zero', file(Buffer.alloc(100), 0x20, 15));
  let p = 'Files';
  for (let i = 0; i < 40; i++) {
    p += `\\d${i}`;
    m.set(p, dir(0, 100 + i));
  }
  m.set(`${p}\\${'n'.repeat(255)}`, file(Buffer.from('deep'), 0x20, 200));
  m.set('Files\\Many', dir());
  for (let i = 0; i < 1100; i++) m.set(`Files\\Many\\f${(i * 7919) % 1100}_${i % 3 === 0 ? 'A' : 'a'}`, file(Buffer.from(`c${i % 50}`), 0x20, i));
  m.set('Hives', dir(0, 0));
  return m;
}

