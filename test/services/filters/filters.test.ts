/**
 * Cases and expected results from containerd's filters/filter_test.go (1.6), plus
 * malformed filters, OR semantics of several filters and a property test against a
 * reference evaluation written here.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { kindOf, type WinsnapError } from '../../../src/services/errdefs.js';
import { parseFilter, parseFilters, type Adaptor } from '../../../src/services/filters/index.js';
import { compileGoRegexp } from '../../../src/services/filters/regexp.js';

interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}

const corpus: Entry[] = [
  { name: 'foo', labels: { foo: 'true' } },
  { name: 'bar' },
  { name: 'foo', labels: { foo: 'present', 'more complex label': 'present' } },
  { name: 'bar', labels: { bar: 'true' } },
  { name: 'fooer', labels: { 'more complex label with \\ and "': 'present' } },
  { name: 'fooer', labels: { 'more complex label with \\ and ".post': 'present' } },
  { name: 'baz', other: 'too complex, yo' },
  { name: 'bazo', other: 'abc' },
  { name: 'compound', labels: { foo: 'omg_asdf.asdf-qwer' } },
];

const adapt = (e: Entry): Adaptor => ({
  field(path) {
    switch (path[0]) {
      case 'name':
        return e.name.length > 0 ? e.name : undefined;
      case 'other':
        return e.other && e.other.length > 0 ? e.other : undefined;
      case 'labels': {
        const k = path.slice(1).join('.');
        return e.labels && k in e.labels ? e.labels[k] : undefined;
      }
      default:
        return undefined;
    }
  },
});

const cases: Array<{ name: string; input: string; expected?: number[]; err?: string }> = [
  { name: 'Empty', input: '', expected: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
  { name: 'Present', input: 'name', expected: [0, 1, 2, 3, 4, 5, 6, 7, 8] },
  { name: 'LabelPresent', input: 'labels.foo', expected: [0, 2, 8] },
  { name: 'NameAndLabelPresent', input: 'labels.foo,name', expected: [0, 2, 8] },
  { name: 'LabelValue', input: 'labels.foo==true', expected: [0] },
  { name: 'LabelValuePunctuated', input: 'labels.foo==omg_asdf.asdf-qwer', expected: [8] },
  {
    name: 'LabelValueNoAltQuoting',
    input: 'labels.|foo|==omg_asdf.asdf-qwer',
    err: 'filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered',
  },
  { name: 'Name', input: 'name==bar', expected: [1, 3] },
  { name: 'NameNotEqual', input: 'name!=bar', expected: [0, 2, 4, 5, 6, 7, 8] },
  { name: 'NameAndLabelPresent2', input: 'name==bar,labels.bar', expected: [3] },
  { name: 'QuotedValue', input: 'other=="too complex, yo"', expected: [6] },
  { name: 'RegexpValue', input: 'other~=[abc]+,name!=foo', expected: [6, 7] },
  { name: 'RegexpQuotedValue', input: 'other~=/[abc]+/,name!=foo', expected: [6, 7] },
  { name: 'RegexpQuotedValue2', input: 'other~=/[abc]{1,2}/,name!=foo', expected: [6, 7] },
  { name: 'RegexpQuotedValueGarbage', input: 'other~=/[abc]{0,1}"\\//,name!=foo', expected: [] },
  { name: 'NameAndLabelValue', input: 'name==bar,labels.bar==true', expected: [3] },
  { name: 'NameAndLabelValueNoMatch', input: 'name==bar,labels.bar==wrong', expected: [] },
  { name: 'LabelQuotedFieldPathPresent', input: 'name==foo,labels."more complex label"', expected: [2] },
  { name: 'LabelQuotedFieldPathPresentWithQuoted', input: 'labels."more complex label with \\\\ and \\""==present', expected: [4] },
  {
    name: 'LabelQuotedFieldPathPresentWithQuotedEmbed',
    input: 'labels."more complex label with \\\\ and \\"".post==present',
    expected: [5],
  },
  {
    name: 'LabelQuotedFieldPathPresentWithQuotedEmbedInvalid',
    input: 'labels.?"more complex label with \\\\ and \\"".post==present',
    err: 'filters: parse error: [labels. >|?|< "more complex label with \\\\ and \\"".post==present]: expected field or quoted',
  },
  { name: 'TrailingComma', input: 'name==foo,', err: 'filters: parse error: [name==foo,]: expected field or quoted' },
  { name: 'TrailingFieldSeparator', input: 'labels.', err: 'filters: parse error: [labels.]: expected field or quoted' },
  {
    name: 'MissingValue',
    input: 'image~=,id?=?fbaq',
    err: 'filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted',
  },
  {
    name: 'FieldQuotedLiteralNotTerminated',
    input: 'labels.ns/key==value',
    err: 'filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated',
  },
  {
    name: 'ValueQuotedLiteralNotTerminated',
    input: 'labels.key==/value',
    err: 'filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated',
  },
];

describe('filters: containerd filter_test.go cases', () => {
  for (const c of cases) {
    test(c.name, () => {
      if (c.err) {
        assert.throws(
          () => parseFilter(c.input),
          (e: WinsnapError) => {
            assert.equal(kindOf(e), 'InvalidArgument');
            assert.equal(e.detail, c.err);
            return true;
          },
        );
        return;
      }
      const f = parseFilter(c.input);
      const got = corpus.map((e, i) => (f.match(adapt(e)) ? i : -1)).filter((i) => i >= 0);
      assert.deepEqual(got, c.expected);
    });
  }
});

describe('filters: more malformed input and semantics', () => {
  test('malformed filters are InvalidArgument with a position', () => {
    for (const bad of ['name==', 'name=', 'name===x', 'name!x', '"unterminated', 'labels."a\\qb"', 'a,,b', 'a b', '==x', 'labels.x~=/(/', 'x\u0000y', 'name==a,', 'labels.a|labels.b']) {
      assert.throws(() => parseFilter(bad), (e: Error) => kindOf(e) === 'InvalidArgument' && /parse error/.test(e.message), bad);
    }
  });

  test('several filters are OR-ed; none matches all', () => {
    const f = parseFilters(['name==foo', 'name==bar']);
    assert.deepEqual(corpus.filter((e) => f.match(adapt(e))).map((e) => e.name), ['foo', 'bar', 'foo', 'bar']);
    assert.equal(parseFilters([]).match(adapt({ name: 'x' })), true);
  });

  test('!= matches absent fields, == does not', () => {
    assert.equal(parseFilter('labels.x!=1').match(adapt({ name: 'a' })), true);
    assert.equal(parseFilter('labels.x==1').match(adapt({ name: 'a' })), false);
  });

  test('whitespace is skipped before tokens but not before a separator (as containerd)', () => {
    assert.equal(parseFilter(' name== foo,labels.foo').match(adapt(corpus[0]!)), true);
    assert.throws(() => parseFilter('name==foo ,labels.foo'), /unexpected input/);
  });

  test('an unquoted value cannot start with "." (containerd scanner), a quoted one can', () => {
    assert.throws(() => parseFilter('labels.a==.x'), /expected value or quoted/);
    assert.equal(parseFilter('labels.a==".x"').match({ field: () => '.x' }), true);
  });

  test('Go regexp forms are translated', () => {
    assert.ok(compileGoRegexp('(?i)^ABC$').test('abc'));
    assert.ok(compileGoRegexp('\\Afoo\\z').test('foo'));
    assert.ok(!compileGoRegexp('\\Afoo\\z').test('foox'));
    assert.ok(compileGoRegexp('^[[:digit:]]+$').test('123'));
    assert.ok(compileGoRegexp('^\\pL+$').test('héllo'));
    assert.equal(compileGoRegexp('(?P<x>a)').exec('a')?.groups?.x, 'a');
    assert.throws(() => compileGoRegexp('(a)\\1'));
    assert.throws(() => compileGoRegexp('a(?=b)'));
  });
});

describe('filters: property test against a reference evaluation', () => {
  test('label equality / presence / inequality agree with direct evaluation', () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9_]{0,6}$/);
    // a value may not start with '.' unquoted: containerd's scanner reads it as a separator
    const val = fc.stringMatching(/^[a-z0-9_][a-z0-9_.-]{0,5}$/);
    fc.assert(
      fc.property(fc.dictionary(key, val, { maxKeys: 4 }), key, val, fc.constantFrom('==', '!=', ''), (labels, k, v, op) => {
        const f = parseFilter(op === '' ? `labels.${k}` : `labels.${k}${op}${v}`);
        const a: Adaptor = { field: (p) => (p[0] === 'labels' && p.slice(1).join('.') in labels ? labels[p.slice(1).join('.')] : undefined) };
        const has = Object.prototype.hasOwnProperty.call(labels, k);
        const expected = op === '' ? has : op === '==' ? has && labels[k] === v : (has ? labels[k] : '') !== v;
        assert.equal(f.match(a), expected);
      }),
      { numRuns: 500 },
    );
  });

  test('quoted values round-trip any printable string', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/[\u0000-\u001f\u007f\u2028\u2029\ud800-\udfff]/.test(s)), (s) => {
        const quoted = JSON.stringify(s);
        const f = parseFilter(`name==${quoted}`);
        assert.equal(f.match({ field: (p) => (p[0] === 'name' ? s : undefined) }), true);
      }),
      { numRuns: 300 },
    );
  });
});
