import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kindOf } from '../../src/services/errdefs.js';
import {
  goJsonStrings,
  isReadOnly,
  optionValue,
  parentCimPaths,
  parentCimPathsOption,
  parentLayerPaths,
  parentLayerPathsOption,
  LAYER_CIM_PATH_FLAG,
  MERGED_CIM_PATH_FLAG,
  BLOCK_CIM_TYPE_FLAG,
} from '../../src/services/mount.js';

test('Go json.Marshal of []string: nil is null, HTML escaped, backslashes doubled', () => {
  assert.equal(goJsonStrings(null), 'null');
  assert.equal(goJsonStrings([]), '[]');
  assert.equal(goJsonStrings(['C:\\a\\b', 'x<y>&z', 'q"\u2028']), '["C:\\\\a\\\\b","x\\u003cy\\u003e\\u0026z","q\\"\\u2028"]');
});

test('option helpers round-trip and parse as containerd does', () => {
  const m = { type: 'windows-layer', source: '/s', options: ['ro', parentLayerPathsOption(['/a', '/b'])] };
  assert.equal(isReadOnly(m), true);
  assert.deepEqual(parentLayerPaths(m), ['/a', '/b']);
  assert.deepEqual(parentLayerPaths({ type: 'bind', source: '/s', options: ['rw', 'parentLayerPaths=null'] }), []);
  assert.deepEqual(parentLayerPaths({ type: 'bind', source: '/s', options: ['rw'] }), []);
  assert.equal(isReadOnly({ type: 'bind', source: '/', options: ['rw', 'rox'] }), false);
  const c = { type: 'CimFS', source: '/s', options: [`${LAYER_CIM_PATH_FLAG}/x.cim`, parentCimPathsOption(['/p.cim'])] };
  assert.equal(optionValue(c, 'cimpath='), '/x.cim');
  assert.deepEqual(parentCimPaths(c), ['/p.cim']);
  assert.equal(MERGED_CIM_PATH_FLAG, 'mergedCIMPath=');
  assert.equal(BLOCK_CIM_TYPE_FLAG, 'blockCIMType=');
});

test('malformed parent lists are InvalidArgument', () => {
  for (const bad of ['parentLayerPaths=[', 'parentLayerPaths={"a":1}', 'parentLayerPaths=[1,2]']) {
    assert.throws(() => parentLayerPaths({ type: 'windows-layer', source: '/', options: [bad] }), (e: Error) => kindOf(e) === 'InvalidArgument');
  }
});
