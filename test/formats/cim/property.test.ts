/**
 * Property: random trees (Unicode names, files, directories, hard links, ADS, SD/EA/reparse
 * pools, attributes, times), written and read back, match an independent model; a random fork
 * on top matches the model with the same edits; lookups are case-insensitive per the spec's
 * upcase rule (each UTF-16 unit → its single-unit simple uppercase, else itself).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { join } from 'node:path';
import { rmSync, mkdirSync } from 'node:fs';
import { CimWriter } from '../../../src/formats/cim/writer.js';
import { CimReader } from '../../../src/formats/cim/reader.js';
import { encodeEaBuffer } from '../../../src/formats/wintar/ea.js';
import { tempDir } from '../../helpers/tools.js';
import { dumpImage, expectedDump, stripIds, writeModel, type ModelEntry } from './model.js';

/** The spec's upcase rule, written here independently of src/formats/common/upcase.ts. */
function specFold(s: string): string {
  let o = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const u = c >= 0xd800 && c <= 0xdfff ? String.fromCharCode(c) : String.fromCharCode(c).toUpperCase();
    o += u.length === 1 ? u : String.fromCharCode(c);
  }
  return o;
}

const nameArb = fc
  .oneof(
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 8 }),
    fc.constantFrom('a', 'A', 'ß', 'SS', 'é', 'É', 'ǅ', 'ǆ', 'Ǆ', 'ı', 'I', 'i', '🙂', 'x'.repeat(255)),
  )
  .map((s) => s.replace(/[\0\\/:]/g, '_'))
  .filter((s) => s.length >= 1 && s.length <= 255 && s !== '.' && s !== '..');

const SDS = [Buffer.from('010004800000000000000000000000001400000002000800000000000000', 'hex'), Buffer.from('01000480000000000000000000000000', 'hex')];
const EAS = [encodeEaBuffer([{ name: 'A_B', value: Buffer.from([1, 2, 3]), flags: 0 }]), encodeEaBuffer([{ name: 'X', value: Buffer.alloc(0), flags: 0x80 }, { name: 'Y', value: Buffer.from('yy'), flags: 0 }])];
const RPS = [Buffer.from('0c0000a00c000000000000000000000000000000', 'hex'), Buffer.from('030000a0080000000000000000000000', 'hex')];

const opArb = fc.record({
  kind: fc.constantFrom('file', 'file', 'file', 'dir', 'dir', 'link', 'ads'),
  parent: fc.nat(),
  name: nameArb,
  data: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ minLength: 4096, maxLength: 5000 })),
  attrs: fc.integer({ min: 0, max: 0x7fff }),
  times: fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 10n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  sd: fc.integer({ min: -1, max: SDS.length - 1 }),
  ea: fc.integer({ min: -1, max: EAS.length - 1 }),
  rp: fc.integer({ min: -3, max: RPS.length - 1 }),
});

/** Applies ops to a model keyed by path, as a CIM namespace behaves (names unique under specFold). */
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** Opens the image at `path`, checks that it holds exactly model `m`, then runs `more` on it. */
async function checkImage(path: string, m: Map<string, ModelEntry>, more?: (r: CimReader) => Promise<void>): Promise<void> {
  const r = await CimReader.open(path);
  try {
    assert.deepEqual(stripIds(await dumpImage(r)), expectedDump(m));
    await more?.(r);
  } finally {
    await r.close();
  }
}

async function apply(w: CimWriter, m: Map<string, ModelEntry>, ops: Op[]): Promise<void> {
  for (const op of ops) {
    const dirs = ['', ...[...m].filter(([, e]) => e.dir).map(([p]) => p)];
    const files = [...m].filter(([, e]) => !e.dir).map(([p]) => p);
    const parent = dirs[op.parent % dirs.length]!;
    const path = parent === '' ? op.name : `${parent}\\${op.name}`;
    const clash = [...m.keys()].find((k) => specFold(k) === specFold(path));
    if (clash !== undefined) continue; // keep the model simple: no replacement in this property
    if (op.kind === 'link') {
      if (files.length === 0) continue;
      const target = files[op.parent % files.length]!;
      const t = m.get(target)!;
      m.set(path, t.linkTo !== undefined ? m.get(t.linkTo)! : t);
      await w.createHardLink(path, target);
      continue;
    }
    if (op.kind === 'ads') {
      if (files.length === 0) continue;
      const target = files[op.parent % files.length]!;
      const e = m.get(target)!;
      const sname = op.name.slice(0, 50);
      const existing = Object.keys(e.streams ?? {}).find((k) => specFold(k) === specFold(sname));
      const streams = { ...(e.streams ?? {}) };
      if (existing !== undefined) delete streams[existing];
      streams[sname] = Buffer.from(op.data);
      e.streams = streams;
      await w.createAlternateStream(`${target}:${sname}`, op.data.length);
      if (op.data.length > 0) await w.write(op.data);
      await w.closeStream();
      continue;
    }
    const dir = op.kind === 'dir';
    const e: ModelEntry = {
      dir,
      attributes: op.attrs & ~0x10,
      times: op.times,
      data: dir ? undefined : Buffer.from(op.data),
      sd: op.sd >= 0 ? SDS[op.sd] : undefined,
      ea: op.ea >= 0 ? EAS[op.ea] : undefined,
      reparse: op.rp >= 0 ? RPS[op.rp] : undefined,
    };
    // An all-zero non-empty SPARSE_FILE stream is stored sparse: still reads back as zeros.
    await writeModel(w, new Map([[path, e]]));
    m.set(path, e);
  }
}

test('property: random trees and forks round-trip', async () => {
  const d = tempDir('cim-prop-');
  let run = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { maxLength: 15 }), fc.array(fc.nat(), { maxLength: 5 }), async (ops, forkOps, dels) => {
        const dir = join(d.path, `r${run++}`);
        mkdirSync(dir);
        try {
          const m = new Map<string, ModelEntry>();
          const w = await CimWriter.create(dir, 'base');
          await apply(w, m, ops);
          await w.commit();
          await checkImage(join(dir, 'base.cim'), m, async (r) => {
            // Case-insensitive lookup of every path with ASCII case swapped.
            for (const p of m.keys()) {
              const swapped = p.replace(/[a-zA-Z]/g, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()));
              assert.equal(await r.resolve(swapped), await r.resolve(p), swapped);
            }
          });
          // Fork: delete some entries, add more.
          const m2 = new Map([...m]);
          const w2 = await CimWriter.create(dir, 'child', { parentName: 'base' });
          for (const k of dels) {
            const keys = [...m2.keys()];
            if (keys.length === 0) break;
            const victim = keys[k % keys.length]!;
            await w2.deletePath(victim);
            const pre = specFold(`${victim}\\`);
            for (const x of keys) if (x === victim || specFold(x).startsWith(pre)) m2.delete(x);
          }
          await apply(w2, m2, forkOps);
          await w2.commit();
          await checkImage(join(dir, 'child.cim'), m2);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 30 },
    );
  } finally {
    d.cleanup();
  }
});

test('a name with a control character takes an alternate stream (fast-check counterexample, seed -1769729241)', async () => {
  const d = tempDir('cim-ctl-');
  try {
    const dir = join(d.path, 'r');
    mkdirSync(dir);
    const m = new Map<string, ModelEntry>();
    const w = await CimWriter.create(dir, 'base');
    const base = { parent: 0, attrs: 0, times: [0n, 0n, 0n, 0n] as [bigint, bigint, bigint, bigint], sd: 0, ea: 0, rp: 0 };
    await apply(w, m, [
      { ...base, kind: 'file', name: '\n_', data: new Uint8Array(0) },
      { ...base, kind: 'ads', name: '_', data: new Uint8Array(4097) },
    ]);
    await w.commit();
    await checkImage(join(dir, 'base.cim'), m);
  } finally {
    d.cleanup();
  }
});
