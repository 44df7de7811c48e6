import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  WinsnapError,
  fromGrpc,
  toGrpc,
  notFound,
  failedPrecondition,
  kindOf,
  toWinsnapError,
  GRPC_CODE,
} from '../../src/services/errdefs.js';

test('messages end with the containerd sentinel text', () => {
  const e = notFound('snapshot k1 does not exist', { key: 'k1' });
  assert.equal(e.message, 'snapshot k1 does not exist: not found');
  assert.equal(e.kind, 'NotFound');
  assert.equal(e.context.key, 'k1');
});

test('wrap keeps the kind and prefixes the message', () => {
  const e = failedPrecondition('cannot remove snapshot with child').wrap('failed to remove');
  assert.equal(e.message, 'failed to remove: cannot remove snapshot with child: failed precondition');
  assert.equal(e.kind, 'FailedPrecondition');
});

test('gRPC mapping matches containerd errdefs.ToGRPC / FromGRPC', () => {
  assert.deepEqual(toGrpc(notFound('x')), { code: 5, message: 'x: not found' });
  assert.equal(toGrpc(new WinsnapError('NotImplemented', 'y')).code, 12);
  assert.equal(toGrpc(new Error('plain')).code, 2);
  for (const [kind, code] of Object.entries(GRPC_CODE)) {
    const back = fromGrpc(code, `detail: ${new WinsnapError(kind as never, '').message}`);
    assert.equal(back.kind, kind);
    assert.equal(back.detail, 'detail');
  }
  assert.equal(fromGrpc(99, 'weird').kind, 'Unknown');
  assert.equal(fromGrpc(5, 'not found').detail, '');
});

test('node fs errors map to kinds', () => {
  assert.equal(kindOf(Object.assign(new Error('x'), { code: 'ENOENT' })), 'NotFound');
  assert.equal(kindOf(Object.assign(new Error('x'), { code: 'EEXIST' })), 'AlreadyExists');
  assert.equal(kindOf(new Error('x')), 'Unknown');
  assert.equal(toWinsnapError(new Error('boom'), 'ctx').message, 'ctx: boom: unknown');
});
