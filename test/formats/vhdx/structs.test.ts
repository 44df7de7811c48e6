/** Codecs: GUID binary form, CRC-32C, header/region/parent-locator round trips (fast-check). */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import { runTool, tempDir } from '../../helpers/tools.js';
import { REGION_BAT, REGION_METADATA } from '../../../src/formats/vhdx/constants.js';
import { deriveGuid, guidBytes, readGuid } from '../../../src/formats/vhdx/guid.js';
import {
  encodeHeader,
  encodeParentLocator,
  encodeRegionTable,
  parseHeader,
  parseParentLocator,
  parseRegionTable,
} from '../../../src/formats/vhdx/structs.js';

let dir: string;
let cleanup: () => void;
before(() => ({ path: dir, cleanup } = tempDir('vhdx-structs-')));
after(() => cleanup());

const guidArb = fc.uuid().map((u) => u.toLowerCase());

describe('VHDX structures', () => {
  it('CRC-32C is the Castagnoli CRC (check value of "123456789" is 0xE3069283)', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });

  it('GUIDs use the MS binary form: the region table qemu-img writes decodes to the spec GUIDs', () => {
    const p = join(dir, 'q.vhdx');
    assert.equal(runTool('qemu-img', ['create', '-f', 'vhdx', p, '16M']).status, 0);
    const f = readFileSync(p);
    const rt = parseRegionTable(f.subarray(192 * 1024), 192 * 1024);
    assert.ok(rt.entries, rt.problem);
    assert.deepEqual(new Set(rt.entries!.map((e) => e.guid)), new Set([REGION_BAT, REGION_METADATA]));
    assert.equal(guidBytes(REGION_BAT).toString('hex'), '6677c22d23f600429d64115e9bfd4a08');
    const h = parseHeader(f.subarray(64 * 1024), 64 * 1024);
    assert.ok(h.header, h.problem);
    assert.equal(h.header!.version, 1);
  });

  it('header round trip', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), guidArb, guidArb, guidArb, fc.integer({ min: 0, max: 4095 }), (seq, a, b, c, mb) => {
        const h = { sequenceNumber: seq, fileWriteGuid: a, dataWriteGuid: b, logGuid: c, logVersion: 0, version: 1, logLength: mb * 1048576, logOffset: (mb + 1) * 1048576 };
        assert.deepEqual(parseHeader(encodeHeader(h), 0).header, h);
      }),
    );
  });

  it('region table round trip', () => {
    const entry = fc.record({ guid: guidArb, fileOffset: fc.integer({ min: 1, max: 1 << 20 }).map((x) => x * 1048576), length: fc.integer({ min: 1, max: 4095 }).map((x) => x * 1048576), required: fc.boolean() }).map((r) => ({ ...r }));
    fc.assert(fc.property(fc.array(entry, { maxLength: 40 }), (entries) => {
      assert.deepEqual(parseRegionTable(encodeRegionTable(entries), 0).entries, entries);
    }));
  });

  it('parent locator round trip (UTF-16LE keys and values)', () => {
    const str = fc.string({ minLength: 1, maxLength: 60, unit: 'grapheme' }).filter((s) => !s.includes('\0'));
    fc.assert(fc.property(guidArb, fc.uniqueArray(fc.tuple(str, str), { selector: (t) => t[0], maxLength: 8 }), (type, entries) => {
      const loc = { locatorType: type, entries };
      assert.deepEqual(parseParentLocator(encodeParentLocator(loc), 0), loc);
    }));
  });

  it('derived GUIDs are stable, input-sensitive and RFC 4122 shaped', () => {
    const a = deriveGuid('x', 1, 'y');
    assert.equal(a, deriveGuid('x', 1, 'y'));
    assert.notEqual(a, deriveGuid('x', 2, 'y'));
    assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(readGuid(guidBytes(a), 0), a);
  });
});
