/**
 * The raw ↔ VHDX conversion pipeline (reads ahead, writes behind, over a ring of buffers):
 * every task's data reaches `consume` in order and stays intact until its write finishes,
 * however slow the writes; an error stops it only after everything in flight has settled.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { pipeline } from '../../../src/formats/vhdx/convert.js';

const CHUNK = 64;

test('data arrives in task order and a buffer is not refilled before its write has finished', async () => {
  const tasks = Array.from({ length: 40 }, (_, i) => i);
  const seen: number[] = [];
  const written: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  await pipeline(
    tasks,
    CHUNK,
    async (buf, t) => {
      await sleep(t % 3); // reads finish out of order
      buf.fill(t);
      return buf.subarray(0, CHUNK - (t % 5));
    },
    (data, t) => {
      seen.push(t);
      assert.equal(data.length, CHUNK - (t % 5));
      if (t % 4 === 0) return undefined; // nothing to write: the buffer is free at once
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      return (async () => {
        await sleep(5); // slow writes
        assert.ok(data.every((b) => b === t), `task ${t}: its buffer was refilled while being written`);
        written.push(t);
        inFlight--;
      })();
    },
  );
  assert.deepEqual(seen, tasks);
  assert.deepEqual(written.sort((a, b) => a - b), tasks.filter((t) => t % 4 !== 0));
  assert.ok(maxInFlight >= 2, `writes overlapped (${maxInFlight} at most)`);
});

test('a failing read rejects the pipeline after the writes in flight have settled', async () => {
  let started = 0;
  let finished = 0;
  await assert.rejects(
    pipeline(
      [0, 1, 2, 3, 4, 5, 6, 7],
      CHUNK,
      async (buf, t) => {
        if (t === 5) throw new Error('read failed at 5');
        return buf;
      },
      () => {
        started++;
        return sleep(10).then(() => void finished++);
      },
    ),
    /read failed at 5/,
  );
  assert.equal(started, 5);
  assert.equal(finished, started, 'every started write had finished');
});

test('no tasks: nothing is read or written', async () => {
  await pipeline([], CHUNK, () => assert.fail('read'), () => assert.fail('consume'));
});
