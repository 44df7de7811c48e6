import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseHive, writeHive, DEFAULT_KEY_SECURITY, type HiveKey } from '../../../src/formats/regf/index.js';
import { modelCompare, treeArb } from './arbitraries.js';
import type { MKey } from './validators.js';

/** What the reader must return for a tree we wrote: sorted subkeys, default timestamps and security. */
function expected(k: MKey, root = true): unknown {
  return {
    name: k.name,
    lastWritten: k.lastWritten ?? 0n,
    flags: root ? 0x0008 /* KEY_NO_DELETE, the writer's root default */ : 0,
    className: k.className && k.className.length > 0 ? k.className.toString('hex') : undefined,
    security: DEFAULT_KEY_SECURITY.toString('hex'),
    values: (k.values ?? []).map((v) => ({ name: v.name, type: v.type, data: v.data.toString('hex') })),
    subkeys: [...(k.subkeys ?? [])].sort((a, b) => modelCompare(a.name, b.name)).map((s) => expected(s, false)),
  };
}

function actual(k: HiveKey): unknown {
  return {
    name: k.name,
    lastWritten: k.lastWritten,
    flags: k.flags,
    className: k.className?.toString('hex'),
    security: k.security?.toString('hex'),
    values: (k.values ?? []).map((v) => ({ name: v.name, type: v.type, data: v.data.toString('hex') })),
    subkeys: (k.subkeys ?? []).map(actual),
  };
}

test('property: write → parse gives back the tree (all minor versions)', () => {
  fc.assert(
    fc.property(treeArb(), fc.constantFrom(3 as const, 4 as const, 5 as const, 6 as const), (tree, minor) => {
      const h = parseHive(writeHive(tree as HiveKey, { minorVersion: minor }));
      assert.equal(h.header.minorVersion, minor);
      assert.deepEqual(actual(h.root.toTree()), expected(tree));
    }),
    { numRuns: 200 },
  );
});

test('property: layered fields, access bits and tombstones round-trip; the writer sets the layered-keys flag', () => {
  const layered = fc.record({
    layerSemantics: fc.constantFrom(0 as const, 1 as const, 2 as const, 3 as const),
    inheritClass: fc.boolean(),
    accessBits: fc.integer({ min: 0, max: 255 }),
    nameLengthHighBits: fc.integer({ min: 0, max: 0xffff }),
    tomb: fc.boolean(),
  });
  fc.assert(
    fc.property(layered, (l) => {
      const tree: HiveKey = {
        name: 'R',
        subkeys: [
          {
            name: 'k',
            layerSemantics: l.layerSemantics,
            inheritClass: l.inheritClass,
            accessBits: l.accessBits,
            nameLengthHighBits: l.nameLengthHighBits,
            values: l.tomb ? [{ name: 'gone', type: 0, data: Buffer.alloc(0), tombstone: true }] : [],
          },
        ],
      };
      const buf = writeHive(tree, { minorVersion: 6 });
      const h = parseHive(buf);
      const k = h.key('k')!;
      assert.equal(k.layerSemantics, l.layerSemantics);
      assert.equal(k.inheritClass, l.inheritClass);
      assert.equal(k.accessBits, l.accessBits);
      assert.equal(k.nameLengthHighBits, l.nameLengthHighBits);
      const isLayered = l.layerSemantics !== 0 || l.inheritClass || l.tomb;
      assert.equal(h.header.flags, isLayered ? 2 : 0);
      if (l.tomb) {
        const v = k.value('gone')!;
        assert.equal(v.isTombstone, true);
        // Spec: a tombstone value has type REG_NONE, size 0 and data offset 0xFFFFFFFF.
        const vk = 4096 + v.offset + 4;
        assert.equal(buf.readUInt32LE(vk + 4), 0);
        assert.equal(buf.readUInt32LE(vk + 8), 0xffffffff);
        assert.equal(buf.readUInt16LE(vk + 16) & 2, 2);
      }
    }),
    { numRuns: 100 },
  );
});
