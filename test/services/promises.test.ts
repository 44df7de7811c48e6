/**
 * Promise helpers: `later` leaves a failure for the awaiting caller without an unhandled
 * rejection; PendingJobs keeps only pending jobs, waits for all of them (also ones added while
 * waiting) and rethrows the first failure after every job has settled.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { later, PendingJobs } from '../../src/services/promises.js';

describe('promises', () => {
  test('later: a rejection awaited after other work is still seen by the caller', async () => {
    const p = later(Promise.reject(new Error('boom')));
    await sleep(5);
    await assert.rejects(p, /boom/);
  });

  test('PendingJobs forgets finished jobs and waits for the rest', async () => {
    const jobs = new PendingJobs();
    const done: number[] = [];
    for (let i = 0; i < 1000; i++) jobs.add(Promise.resolve(i).then((v) => void done.push(v)));
    await sleep(1);
    assert.equal(jobs.size, 0, 'finished jobs are not kept');
    jobs.add(sleep(20).then(() => void done.push(-1)));
    assert.equal(jobs.size, 1);
    await jobs.settled();
    assert.equal(done.length, 1001);
    assert.equal(done[1000], -1);
  });

  test('PendingJobs.settled rethrows the first failure, after every job has settled', async () => {
    const jobs = new PendingJobs();
    let slowDone = false;
    jobs.add(sleep(30).then(() => (slowDone = true)));
    jobs.add(Promise.reject(new Error('first')));
    jobs.add(sleep(5).then(() => Promise.reject(new Error('second'))));
    await assert.rejects(jobs.settled(), /first/);
    assert.equal(slowDone, true);
    assert.equal(jobs.size, 0);
  });
});
