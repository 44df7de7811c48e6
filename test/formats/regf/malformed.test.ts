import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHive, writeHive, type RegKey, type HiveKey } from '../../../src/formats/regf/index.js';
import { isInvalidArgument, isWinsnapError, type WinsnapError } from '../../../src/services/errdefs.js';

const BASE = 4096;

function sample(): Buffer {
  const tree: HiveKey = {
    name: 'ROOT',
    values: [
      { name: 'small', type: 3, data: Buffer.from([1, 2]) },
      { name: 'str', type: 1, data: Buffer.from('hello\0', 'utf16le') },
      { name: 'big', type: 3, data: Buffer.alloc(20000, 7) },
    ],
    subkeys: [
      { name: 'A', subkeys: [{ name: 'A1' }, { name: 'A2', values: [{ name: 'v', type: 4, data: Buffer.alloc(4) }] }] },
      { name: 'B', className: Buffer.from('cls', 'utf16le') },
    ],
  };
  return writeHive(tree, { minorVersion: 5 });
}

function fixChecksum(b: Buffer): Buffer {
  let c = 0;
  for (let i = 0; i < 508; i += 4) c ^= b.readUInt32LE(i);
  c >>>= 0;
  b.writeUInt32LE(c === 0 ? 1 : c === 0xffffffff ? 0xfffffffe : c, 508);
  return b;
}

/** Parses, walks the whole tree and reads every value; returns the error or undefined. */
function fullRead(b: Buffer): unknown {
  try {
    const h = parseHive(b);
    const walk = (k: RegKey): void => {
      k.classBytes();
      k.security();
      for (const v of k.values()) v.data();
    };
    h.root.toTree();
    const visit = (k: RegKey, depth: number): void => {
      walk(k);
      if (depth < 600) for (const s of k.subkeys()) visit(s, depth + 1);
    };
    visit(h.root, 0);
    return undefined;
  } catch (e) {
    return e;
  }
}

function expectInvalid(b: Buffer, re: RegExp, offset?: number): void {
  const e = fullRead(b);
  assert.ok(isInvalidArgument(e), `expected InvalidArgument, got ${String(e)}`);
  assert.match((e as Error).message, re);
  if (offset !== undefined) assert.equal((e as WinsnapError).context.offset, offset, (e as Error).message);
}

/** Offsets (relative to the hive bins) of structures, found by reading the valid sample. */
function locate(b: Buffer) {
  const h = parseHive(b);
  const root = h.root;
  const a = root.get('A')!;
  const nkPos = (k: RegKey) => BASE + k.offset + 4;
  return {
    h,
    rootNk: nkPos(root),
    aNk: nkPos(a),
    a1: a.get('A1')!,
    a2Nk: nkPos(a.get('A2')!),
    big: root.value('big')!,
    small: root.value('small')!,
    subkeyListOf: (k: RegKey) => b.readUInt32LE(nkPos(k) + 28),
    valueListOf: (k: RegKey) => b.readUInt32LE(nkPos(k) + 40),
    skOf: (k: RegKey) => b.readUInt32LE(nkPos(k) + 44),
  };
}

test('the unmodified sample reads cleanly', () => {
  assert.equal(fullRead(sample()), undefined);
});

test('base block corruptions name the offending offset', () => {
  expectInvalid(sample().subarray(0, 1000), /shorter than the 4096-byte base block/, 0);
  let b = sample();
  b.write('regx', 0, 'latin1');
  expectInvalid(b, /bad signature/, 0);
  b = sample();
  b[100] ^= 1;
  expectInvalid(b, /checksum mismatch/, 508);
  assert.equal(parseHive(b, { ignoreChecksum: true }).root.name, 'ROOT');
  b = sample();
  b.writeUInt32LE(7, 24);
  expectInvalid(fixChecksum(b), /unsupported hive version 1\.7/, 20);
  b = sample();
  b.writeUInt32LE(2, 20);
  expectInvalid(fixChecksum(b), /unsupported hive version 2\./, 20);
  b = sample();
  b.writeUInt32LE(1, 28);
  expectInvalid(fixChecksum(b), /not a primary hive file/, 28);
  b = sample();
  b.writeUInt32LE(9, 4);
  expectInvalid(fixChecksum(b), /dirty/, 4);
  assert.equal(parseHive(b, { allowDirty: true }).root.name, 'ROOT');
  b = sample();
  b.writeUInt32LE(b.readUInt32LE(40) + 100, 40);
  expectInvalid(fixChecksum(b), /not a positive multiple of 4096/, 40);
  b = sample();
  b.writeUInt32LE(b.readUInt32LE(40) + 4096, 40);
  expectInvalid(fixChecksum(b), /runs past the end/, 40);
  expectInvalid(sample().subarray(0, 4096 + 4096), /runs past the end|truncated/, 40);
  b = sample();
  b.writeUInt32LE(b.readUInt32LE(40), 36);
  expectInvalid(fixChecksum(b), /root cell offset .* outside/, 36);
});

test('hive bin and cell corruptions', () => {
  let b = sample();
  b.write('hbix', BASE, 'latin1');
  expectInvalid(b, /missing 'hbin' signature/, BASE);
  b = sample();
  b.writeUInt32LE(4096, BASE + 4);
  expectInvalid(b, /declares offset/, BASE + 4);
  b = sample();
  b.writeUInt32LE(1000, BASE + 8);
  expectInvalid(b, /bad size 1000/, BASE + 8);
  b = sample();
  b.writeInt32LE(-12, BASE + 32); // first cell: size not a multiple of 8
  expectInvalid(b, /bad size -12/, BASE + 32);
  b = sample();
  b.writeInt32LE(-(1 << 20), BASE + 32); // runs past its bin
  expectInvalid(b, /bad size/, BASE + 32);
});

test('record corruptions: wrong signatures, bad offsets, lengths, counts and cycles', () => {
  const L = locate(sample());
  let b = sample();
  // root offset into the middle of a cell
  b.writeUInt32LE(b.readUInt32LE(36) + 8, 36);
  expectInvalid(fixChecksum(b), /is not an allocated cell/);
  // root offset at a vk cell
  b = sample();
  b.writeUInt32LE(L.small.offset, 36);
  expectInvalid(fixChecksum(b), /signature 'vk' \(expected 'nk'\)/);
  // name length beyond the cell
  b = sample();
  b.writeUInt16LE(500, L.aNk + 72);
  expectInvalid(b, /name length 500 runs past/, L.aNk + 72);
  // subkey count that does not match the lists
  b = sample();
  b.writeUInt32LE(3, L.aNk + 20);
  expectInvalid(b, /declares 3 subkeys but its subkey lists hold 2/);
  // unknown subkey list signature
  b = sample();
  const aList = BASE + L.subkeyListOf(L.h.root.get('A')!) + 4;
  b.write('zz', aList, 'latin1');
  expectInvalid(b, /has signature 'zz' \(lf, lh, li or ri expected\)/, aList);
  // element count larger than the list cell
  b = sample();
  b.writeUInt16LE(400, aList + 2);
  expectInvalid(b, /400 elements do not fit/);
  // index root pointing to itself: ri → ri
  b = sample();
  b.write('ri', aList, 'latin1');
  b.writeUInt16LE(1, aList + 2);
  b.writeUInt32LE(L.subkeyListOf(L.h.root.get('A')!), aList + 4);
  expectInvalid(b, /referenced twice|points to another index root/);
  // index root listing the same leaf twice: rewrite A's list as ri [rootList, rootList]
  b = sample();
  const rootList = L.subkeyListOf(L.h.root);
  b.write('ri', aList, 'latin1');
  b.writeUInt16LE(2, aList + 2);
  b.writeUInt32LE(rootList, aList + 4);
  b.writeUInt32LE(rootList, aList + 8);
  expectInvalid(b, /referenced twice \(cycle\)/);
  // a subkey entry pointing back to the root: a cycle through the tree
  b = sample();
  b.writeUInt32LE(b.readUInt32LE(36), aList + 4); // A's first element → root nk
  expectInvalid(b, /reachable twice \(subkey cycle or shared node\)/);
  // value list offset to nowhere
  b = sample();
  b.writeUInt32LE(0x7ffffff0, L.a2Nk + 40);
  expectInvalid(b, /value list of key .* is not an allocated cell/);
  // value count larger than the list cell
  b = sample();
  b.writeUInt32LE(1000, L.rootNk + 36);
  expectInvalid(b, /value list .* shorter than 4000/);
  // security offset at a non-sk cell
  b = sample();
  b.writeUInt32LE(L.small.offset, L.aNk + 44);
  expectInvalid(b, /security cell .* signature 'vk' \(expected 'sk'\)/);
  // class name longer than its cell
  b = sample();
  const bNk = BASE + L.h.root.get('B')!.offset + 4;
  b.writeUInt16LE(200, bNk + 74);
  expectInvalid(b, /class name .* shorter than 200/);
  // inline data longer than 4 bytes
  b = sample();
  const smallVk = BASE + L.small.offset + 4;
  b.writeUInt32LE(0x80000005, smallVk + 4);
  expectInvalid(b, /inline data of 5 bytes/, smallVk + 4);
  // data larger than its cell without a db record
  b = sample();
  const strVk = BASE + L.h.root.value('str')!.offset + 4;
  b.writeUInt32LE(5000, strVk + 4);
  expectInvalid(b, /do not fit the .*-byte data cell and it is not a big data/);
  // big data with the wrong segment count
  b = sample();
  const bigVk = BASE + L.big.offset + 4;
  const db = BASE + b.readUInt32LE(bigVk + 8) + 4;
  b.writeUInt16LE(3, db + 2);
  expectInvalid(b, /big data record has 3 segments for 20000 bytes \(2 expected\)/, db + 2);
  // big data segment pointing at a small cell
  b = sample();
  const segList = BASE + b.readUInt32LE(db + 4) + 4;
  b.writeUInt32LE(L.small.offset, segList + 4);
  expectInvalid(b, /big data segment 1 .* shorter than 3656/);
  // value name longer than the vk cell
  b = sample();
  b.writeUInt16LE(300, smallVk + 2);
  expectInvalid(b, /name length 300 runs past/, smallVk + 2);
  // security descriptor size beyond the sk cell
  b = sample();
  const sk = BASE + L.skOf(L.h.root) + 4;
  b.writeUInt32LE(100000, sk + 16);
  expectInvalid(b, /descriptor size 100000 runs past/, sk + 16);
});

test('a 600-level deep chain is rejected, not overflowed', () => {
  // Build a chain of 600 keys by writing 500 levels (the writer's limit is 512) twice over:
  // the leaf of the first half is patched to point to the top of the second half.
  let deep: HiveKey = { name: 'leaf' };
  for (let i = 0; i < 500; i++) deep = { name: `k${i}`, subkeys: [deep] };
  const b = writeHive({ name: 'R', subkeys: [deep, { name: 'z', subkeys: [{ name: 'x' }] }] });
  const h = parseHive(b);
  let leaf = h.root.get('k499')!;
  while (leaf.subkeyCount > 0) leaf = leaf.subkeys()[0];
  // Make 'leaf' (depth 501) point to the root's subkey list: the walk goes 'k499' … again.
  const leafNk = BASE + leaf.offset + 4;
  const rootNk = BASE + h.root.offset + 4;
  b.writeUInt32LE(2, leafNk + 20);
  b.writeUInt32LE(b.readUInt32LE(rootNk + 28), leafNk + 28);
  const e = fullRead(b);
  assert.ok(isInvalidArgument(e));
  assert.match((e as Error).message, /reachable twice|deeper than 512/);
});

test('property: random byte corruption gives a result or InvalidArgument, never another error', () => {
  const good = sample();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.boolean(),
      (edits, fix) => {
        const b = Buffer.from(good);
        for (const [at, v] of edits) b[at] = v;
        if (fix) fixChecksum(b);
        const e = fullRead(b);
        if (e !== undefined) {
          assert.ok(isWinsnapError(e) && isInvalidArgument(e), `unexpected ${e instanceof Error ? e.stack : String(e)}`);
        }
      },
    ),
    { numRuns: 600 },
  );
});

test('property: structure-targeted corruption (cell area only, checksum kept valid)', () => {
  const good = sample();
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: BASE, max: good.length - 4 }), fc.integer({ min: 0, max: 0xffffffff })), {
        minLength: 1,
        maxLength: 4,
      }),
      (edits) => {
        const b = Buffer.from(good);
        for (const [at, v] of edits) b.writeUInt32LE(v, at - (at % 4));
        const e = fullRead(b);
        if (e !== undefined) assert.ok(isInvalidArgument(e), `unexpected ${e instanceof Error ? e.stack : String(e)}`);
      },
    ),
    { numRuns: 600 },
  );
});
