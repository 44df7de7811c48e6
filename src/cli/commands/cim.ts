/**
 * `winsnap cim ls|stat|cat|tree|info IMAGE [PATH]`: inspect a CimFS image (src/formats/cim) on
 * any OS. PATH uses "\\" or "/" separators and is case-insensitive, as in the image. `cat`
 * takes `--stream NAME` (or PATH "file:stream") for an alternate data stream. `--json` prints
 * one JSON document.
 */
import type { Command } from 'commander';
import { CimReader, splitStreamPath, type CimStat } from '../../formats/cim/index.js';
import { decodeEaBuffer } from '../../formats/wintar/ea.js';
import { decodeReparsePoint } from '../../formats/wintar/reparse.js';
import { FILE_ATTRIBUTE, FILETIME_UNIX_EPOCH } from '../../formats/wintar/index.js';
import { invalidArgument } from '../../services/errdefs.js';
import { printJson, tabwrite } from '../format.js';

interface JsonOpt {
  json?: boolean;
}

async function withReader<T>(image: string, fn: (r: CimReader) => Promise<T>): Promise<T> {
  const r = await CimReader.open(image);
  try {
    return await fn(r);
  } finally {
    await r.close();
  }
}

function attrString(a: number): string {
  const flags: [number, string][] = [
    [FILE_ATTRIBUTE.DIRECTORY, 'D'],
    [FILE_ATTRIBUTE.READONLY, 'R'],
    [FILE_ATTRIBUTE.HIDDEN, 'H'],
    [FILE_ATTRIBUTE.SYSTEM, 'S'],
    [FILE_ATTRIBUTE.ARCHIVE, 'A'],
    [FILE_ATTRIBUTE.SPARSE_FILE, 'P'],
    [FILE_ATTRIBUTE.REPARSE_POINT, 'L'],
  ];
  return flags.map(([b, c]) => (a & b ? c : '-')).join('');
}

function attrNames(a: number): string[] {
  return Object.entries(FILE_ATTRIBUTE)
    .filter(([, v]) => (a & v) !== 0)
    .map(([k]) => k);
}

function filetimeIso(ft: bigint): string {
  if (ft === 0n) return '0';
  const ms = (ft - FILETIME_UNIX_EPOCH) / 10000n;
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? ft.toString() : d.toISOString();
}

function linkTarget(st: CimStat): string | undefined {
  if (!st.reparseData) return undefined;
  try {
    return decodeReparsePoint(st.reparseData).target;
  } catch {
    return `<reparse tag 0x${st.reparseTag.toString(16)}>`;
  }
}

function statJson(path: string, st: CimStat): Record<string, unknown> {
  let eas: unknown;
  if (st.extendedAttributes) {
    try {
      eas = decodeEaBuffer(st.extendedAttributes).map((e) => ({ name: e.name, flags: e.flags, value: e.value.toString('base64') }));
    } catch (e) {
      eas = { error: (e as Error).message, raw: st.extendedAttributes.toString('base64') };
    }
  }
  return {
    path,
    fileId: st.fileId,
    attributes: st.attributes,
    attributeNames: attrNames(st.attributes),
    size: st.size,
    sparse: st.sparse,
    peImage: st.peImage,
    creationTime: st.creationTime,
    lastWriteTime: st.lastWriteTime,
    changeTime: st.changeTime,
    lastAccessTime: st.lastAccessTime,
    securityDescriptor: st.securityDescriptor?.toString('base64'),
    extendedAttributes: eas,
    reparseTag: st.reparseData ? st.reparseTag : undefined,
    reparseData: st.reparseData?.toString('base64'),
    linkTarget: linkTarget(st),
    streams: st.streams,
    parentFileId: st.parentFileId,
  };
}

export function register(program: Command): void {
  const cim = program.command('cim').description('inspect CimFS images (.cim + region files) on any OS');

  cim
    .command('ls')
    .description('list a directory in a CIM image')
    .argument('<image>', 'path to <name>.cim')
    .argument('[path]', 'directory inside the image', '')
    .option('--json', 'print JSON')
    .action(async (image: string, path: string, opts: JsonOpt) => {
      await withReader(image, async (r) => {
        const id = await r.resolve(path);
        const st = await r.statById(id);
        const entries = st.isDirectory ? await r.readdirById(id) : [{ name: path.split(/[\\/]/).pop() ?? path, fileId: id }];
        const rows: { name: string; st: CimStat }[] = [];
        for (const e of entries) rows.push({ name: e.name, st: await r.statById(e.fileId) });
        if (opts.json) {
          printJson(rows.map(({ name, st: s }) => statJson(name, s)));
          return;
        }
        process.stdout.write(
          tabwrite(
            rows.map(({ name, st: s }) => {
              const t = linkTarget(s);
              return [attrString(s.attributes), s.isDirectory ? '-' : String(s.size), filetimeIso(s.lastWriteTime), name + (t ? ` -> ${t}` : '') + (s.streams.length ? ` [${s.streams.map((x) => x.name).join(', ')}]` : '')];
            }),
          ),
        );
      });
    });

  cim
    .command('stat')
    .description('show one entry of a CIM image: attributes, times, SD, EAs, reparse data, streams')
    .argument('<image>', 'path to <name>.cim')
    .argument('[path]', 'entry inside the image (default: the root)', '')
    .option('--json', 'print JSON')
    .action(async (image: string, path: string, opts: JsonOpt) => {
      await withReader(image, async (r) => {
        const st = await r.stat(path);
        const j = statJson(path === '' ? '\\' : path, st);
        if (opts.json) {
          printJson(j);
          return;
        }
        const rows: string[][] = [
          ['Path:', String(j.path)],
          ['FileId:', String(st.fileId)],
          ['Attributes:', `0x${st.attributes.toString(16).padStart(8, '0')} ${attrNames(st.attributes).join('|')}`],
          ['Size:', `${st.size}${st.sparse ? ' (sparse)' : ''}${st.peImage ? ' (PE image)' : ''}`],
          ['Created:', filetimeIso(st.creationTime)],
          ['Written:', filetimeIso(st.lastWriteTime)],
          ['Changed:', filetimeIso(st.changeTime)],
          ['Accessed:', filetimeIso(st.lastAccessTime)],
          ['SD:', st.securityDescriptor ? `${st.securityDescriptor.length} bytes ${st.securityDescriptor.toString('hex')}` : '-'],
          ['EAs:', Array.isArray(j.extendedAttributes) ? (j.extendedAttributes as { name: string }[]).map((e) => e.name).join(', ') : st.extendedAttributes ? 'undecodable' : '-'],
          ['Reparse:', st.reparseData ? `tag 0x${st.reparseTag.toString(16)} -> ${linkTarget(st)}` : '-'],
          ['Streams:', st.streams.length ? st.streams.map((s) => `${s.name} (${s.size})`).join(', ') : '-'],
        ];
        process.stdout.write(tabwrite(rows));
      });
    });

  cim
    .command('cat')
    .description('write a file (or an alternate data stream) from a CIM image to stdout')
    .argument('<image>', 'path to <name>.cim')
    .argument('<path>', 'file inside the image; "file:stream" for an alternate stream')
    .option('--stream <name>', 'alternate data stream name')
    .action(async (image: string, path: string, opts: { stream?: string }) => {
      await withReader(image, async (r) => {
        let file = path;
        let stream = opts.stream;
        const m = splitStreamPath(path);
        if (stream === undefined && m) [file, stream] = m;
        for await (const chunk of r.read(file, stream)) {
          if (!process.stdout.write(chunk)) await new Promise((res) => process.stdout.once('drain', res));
        }
      });
    });

  cim
    .command('tree')
    .description('print the tree under a directory of a CIM image')
    .argument('<image>', 'path to <name>.cim')
    .argument('[path]', 'directory inside the image', '')
    .action(async (image: string, path: string) => {
      await withReader(image, async (r) => {
        const rootId = await r.resolve(path);
        const out: string[] = [path === '' ? '\\' : path];
        const seen = new Set<number>([rootId]);
        const visit = async (id: number, prefix: string): Promise<void> => {
          const entries = await r.readdirById(id);
          for (const [i, e] of entries.entries()) {
            const last = i === entries.length - 1;
            const st = await r.statById(e.fileId);
            const t = linkTarget(st);
            out.push(`${prefix}${last ? '└── ' : '├── '}${e.name}${st.isDirectory ? '\\' : ''}${t ? ` -> ${t}` : ''}`);
            if (st.isDirectory) {
              if (seen.has(e.fileId)) throw invalidArgument(`directory file ID ${e.fileId} appears twice (cyclic image)`, { entry: e.name });
              seen.add(e.fileId);
              await visit(e.fileId, prefix + (last ? '    ' : '│   '));
            }
          }
          if (out.length > 4096) {
            process.stdout.write(out.join('\n') + '\n');
            out.length = 0;
          }
        };
        const st = await r.statById(rootId);
        if (st.isDirectory) await visit(rootId, '');
        process.stdout.write(out.length ? out.join('\n') + '\n' : '');
      });
    });

  cim
    .command('info')
    .description('show a CIM image header: region sets, parents, file count')
    .argument('<image>', 'path to <name>.cim')
    .option('--json', 'print JSON')
    .action(async (image: string, opts: JsonOpt) => {
      await withReader(image, async (r) => {
        const j = {
          image,
          version: '2.0',
          regionSet: r.regionSet,
          parents: r.parents,
          regionFiles: r.regionPaths(),
          files: r.fileCount,
          rootFileId: r.rootId,
        };
        if (opts.json) {
          printJson(j);
          return;
        }
        process.stdout.write(
          tabwrite([
            ['Image:', image],
            ['Version:', '2.0'],
            ['Region set:', `${r.regionSet.guid} (${r.regionSet.count} regions)`],
            ['Parents:', r.parents.length ? r.parents.map((p) => `${p.guid} (${p.count})`).join(', ') : '-'],
            ['Files:', String(r.fileCount)],
          ]),
        );
      });
    });
}
