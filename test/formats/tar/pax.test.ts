/**
 * PAX records and PAX times. Expected values: the record grammar of POSIX pax (lengths
 * counted by hand, including the digit-count rollover), Go archive/tar's published PAX time
 * vectors (strconv_test.go: value ↔ string), and Python's tarfile, which encodes records
 * with its own code (compared on random records).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { runTool, tempDir } from '../../helpers/tools.js';
import { encodePaxRecords, parsePaxRecords, parsePaxTime, formatPaxTime, type TarTime } from '../../../src/formats/tar/index.js';

/** Nanoseconds since the epoch → floor seconds + nsec. */
function fromNs(ns: bigint): TarTime {
  let sec = ns / 1_000_000_000n;
  let nsec = ns % 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return { sec, nsec: Number(nsec) };
}

// [string, value in ns] — from Go's TestFormatPAXTime / TestParsePAXTime vectors.
const TIMES: [string, bigint][] = [
  ['1350244992', 1350244992_000000000n],
  ['1350244992.3', 1350244992_300000000n],
  ['1350244992.0239601', 1350244992_023960100n],
  ['1350244992.023960108', 1350244992_023960108n],
  ['1.999999999', 1_999999999n],
  ['1.001', 1_001000000n],
  ['0.000000001', 1n],
  ['0', 0n],
  ['-1.999999999', -1_999999999n],
  ['-1', -1_000000000n],
  ['-1.001', -1_001000000n],
  ['-1.000000001', -1_000000001n],
  ['-1350244992.3', -1350244992_300000000n],
];

test('PAX time strings format and parse exactly (Go vectors)', () => {
  for (const [s, ns] of TIMES) {
    assert.equal(formatPaxTime(fromNs(ns)), s, `format ${ns}`);
    assert.deepEqual(parsePaxTime(s), fromNs(ns), `parse ${s}`);
  }
  // Parsing only: extra precision is truncated toward zero; a trailing '.' is accepted.
  assert.deepEqual(parsePaxTime('1350244992.0239601089'), fromNs(1350244992_023960108n));
  assert.deepEqual(parsePaxTime('-1.0000000019'), fromNs(-1_000000001n));
  assert.deepEqual(parsePaxTime('1.'), fromNs(1_000000000n));
  assert.deepEqual(parsePaxTime('-5.98'), fromNs(-5_980000000n));
  for (const bad of ['', '-', '+', '+1', '.5', '-1.-1', '1e5', '0.123456789abcdef', 'foo', '\0', ' 1', '1 ', '99999999999999999999999999999999999999999999999', '98765\ufe5243210']) {
    assert.equal(parsePaxTime(bad), undefined, JSON.stringify(bad));
  }
});

test('record lengths count their own digits (rollover at 9→10 and 99→100 bytes)', () => {
  const enc = (v: string) => encodePaxRecords([{ key: 'a', value: Buffer.from(v) }]).toString('latin1');
  assert.equal(enc(''), '5 a=\n');
  assert.equal(enc('xxxx'), '9 a=xxxx\n');
  assert.equal(enc('xxxxx'), '11 a=xxxxx\n'); // 10 would not count its second digit
  assert.equal(enc('v'.repeat(93)), `99 a=${'v'.repeat(93)}\n`);
  assert.equal(enc('v'.repeat(94)), `101 a=${'v'.repeat(94)}\n`);
  assert.equal(enc('v'.repeat(95)), `102 a=${'v'.repeat(95)}\n`);
  const recs = parsePaxRecords(Buffer.from(`5 a=\n101 a=${'v'.repeat(94)}\n13 b=x\ny=z\n=\n`), { offset: 0 });
  assert.deepEqual(
    recs.map((r) => [r.key, r.value.toString('latin1')]),
    [
      ['a', ''],
      ['a', 'v'.repeat(94)],
      ['b', 'x\ny=z\n='], // a value may hold newlines and '=': the length decides
    ],
  );
});

test('binary values survive parse(encode(x)) for random records', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record({
          key: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }).map((s) => s.replace(/[=\0\n]/g, 'k')),
          value: fc.uint8Array({ maxLength: 2000 }).map((u) => Buffer.from(u)),
        }),
        { maxLength: 10 },
      ),
      (records) => {
        const back = parsePaxRecords(encodePaxRecords(records), { offset: 0 });
        assert.deepEqual(
          back.map((r) => [r.key, r.value.toString('hex')]),
          records.map((r) => [r.key, r.value.toString('hex')]),
        );
      },
    ),
    { numRuns: 300 },
  );
});

test("our record encoding equals Python tarfile's for the same records", () => {
  const sample = fc.sample(
    fc.array(
      fc.record({
        key: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).map((s) => `K.${s.replace(/[=\0\n]/g, 'k')}`),
        value: fc.string({ unit: 'grapheme', maxLength: 150 }),
      }),
      { minLength: 1, maxLength: 6 },
    ),
    { numRuns: 20, seed: 42 },
  );
  const tmp = tempDir('winsnap-pax-');
  try {
    const script = `
import json, sys, tarfile
cases = json.load(open(sys.argv[1]))
for i, recs in enumerate(cases):
    tf = tarfile.open(sys.argv[2] + "/%d.tar" % i, "w", format=tarfile.PAX_FORMAT)
    ti = tarfile.TarInfo("f")
    ti.pax_headers = dict((r["key"], r["value"]) for r in recs)
    tf.addfile(ti)
    tf.close()
`;
    // Python keeps one value per key (a dict): make keys unique like it does.
    const cases = sample.map((recs) => [...new Map(recs.map((r) => [r.key, r])).values()]);
    const json = join(tmp.path, 'cases.json');
    writeFileSync(json, JSON.stringify(cases));
    const r = runTool('python3', ['-c', script, json, tmp.path]);
    assert.equal(r.status, 0, r.stderr);
    cases.forEach((recs, i) => {
      const tar = readFileSync(join(tmp.path, `${i}.tar`));
      const size = parseInt(tar.subarray(124, 136).toString('latin1').replace(/\0.*$/, '').trim(), 8);
      const pyBody = tar.subarray(512, 512 + size);
      const ours = encodePaxRecords(recs.map((x) => ({ key: x.key, value: Buffer.from(x.value, 'utf8') })));
      assert.equal(ours.toString('utf8'), pyBody.toString('utf8'));
    });
  } finally {
    tmp.cleanup();
  }
});

