/**
 * fast-check generators for registry trees. The alphabet is chosen so that JavaScript's
 * toUpperCase and the registry's one-to-one upcase agree (ASCII, é/É, ü/Ü, ω/Ω, 日, 本), which
 * lets tests compute uniqueness and sort order on their own.
 */
import fc from 'fast-check';
import type { MKey, MValue } from './validators.js';

const ALPHABET = [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -_.', 'é', 'É', 'ü', 'Ü', 'ω', 'Ω', '日', '本'];

export const upper = (s: string): string => s.toUpperCase();

/** Uppercase code-unit order for the alphabet above. */
export function modelCompare(a: string, b: string): number {
  const A = upper(a);
  const B = upper(b);
  for (let i = 0; i < Math.min(A.length, B.length); i++) {
    const d = A.charCodeAt(i) - B.charCodeAt(i);
    if (d !== 0) return d;
  }
  return A.length - B.length;
}

export const nameArb = (min = 1, max = 12): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...ALPHABET), { minLength: min, maxLength: max }).map((a) => a.join(''));

const text = nameArb(0, 20);

export function valueDataArb(type: number): fc.Arbitrary<Buffer> {
  switch (type) {
    case 1:
    case 2:
    case 6:
      return text.map((s) => Buffer.from(s + '\0', 'utf16le'));
    case 4:
    case 5:
      return fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a));
    case 11:
      return fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a));
    case 7:
      return fc.array(nameArb(1, 8), { minLength: 0, maxLength: 3 }).map((items) => Buffer.from(items.map((s) => s + '\0').join('') + '\0', 'utf16le'));
    default:
      return fc.oneof(
        { weight: 20, arbitrary: fc.uint8Array({ minLength: 0, maxLength: 40 }) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: 16340, maxLength: 40000 }) },
      ).map((a) => Buffer.from(a));
  }
}

export const typeArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 0, max: 11 }) },
  { weight: 1, arbitrary: fc.integer({ min: 12, max: 0xffffffff }) },
);

export const valueArb = (nameMin = 0): fc.Arbitrary<MValue> =>
  fc.tuple(nameArb(nameMin, 10), typeArb).chain(([name, type]) => valueDataArb(type).map((data) => ({ name, type, data })));

export const valuesArb: fc.Arbitrary<MValue[]> = fc.uniqueArray(valueArb(), { maxLength: 5, selector: (v) => upper(v.name) });

const timeArb = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 1n << 61n }) /* up to year ~8900: hivexml prints 4-digit years */);
const classArb = fc.option(nameArb(1, 8).map((s) => Buffer.from(s, 'utf16le')), { nil: undefined, freq: 4 });

/** Random trees: up to `depth` levels, a few children each. */
export function treeArb(): fc.Arbitrary<MKey> {
  const { key } = fc.letrec<{ key: MKey; children: MKey[] }>((tie) => ({
    key: fc.record({
      name: nameArb(),
      values: valuesArb,
      lastWritten: timeArb,
      className: classArb,
      subkeys: tie('children'),
    }) as fc.Arbitrary<MKey>,
    children: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant([] as MKey[]),
      fc.uniqueArray(tie('key'), { maxLength: 4, selector: (k) => upper(k.name) }),
    ) as fc.Arbitrary<MKey[]>,
  }));
  return key.map((k) => ({ ...k, name: 'ROOT' }));
}
