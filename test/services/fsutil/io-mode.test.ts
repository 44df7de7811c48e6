/**
 * oneShotIoMode: WINSNAP_IO forces either mode; otherwise synchronous I/O on machines of at
 * most two cores, the thread pool on bigger ones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { oneShotIoMode } from '../../../src/services/fsutil/io-mode.js';

test('WINSNAP_IO forces the mode; an unknown value is ignored', () => {
  assert.equal(oneShotIoMode({ WINSNAP_IO: 'sync' }), 'sync');
  assert.equal(oneShotIoMode({ WINSNAP_IO: 'pool' }), 'pool');
  assert.equal(oneShotIoMode({ WINSNAP_IO: 'fast' }), oneShotIoMode({}));
});

test('by default: sync on at most two cores, else the pool', () => {
  assert.equal(oneShotIoMode({}), availableParallelism() <= 2 ? 'sync' : 'pool');
});
