// What API nodes and workers share about the queue (lib/server/queue/connection.ts): the Redis URL
// check (TLS and passwords pass through, passwords never logged), job ids that may name keys and
// files, and failure codes surviving BullMQ's one-string reason.
import { describe, expect, it } from 'vitest';

import * as stepvideo from '../../lib/index.js';
import { checkRedisUrl, decodeFailure, encodeFailure, isJobId, redactRedisUrl } from '../../lib/server/queue/connection.js';

describe('the queue connection', () => {
  it('takes redis:// and rediss:// URLs with user, password and database as given; refuses anything else', () => {
    for (const url of ['redis://127.0.0.1:6379', 'rediss://user:s3cret@redis.internal:6380/2', 'redis://:p%40ss@host:1']) expect(checkRedisUrl(url)).toBe(url);
    for (const url of ['http://host:6379', 'host:6379', '', 'redis//host']) expect(() => checkRedisUrl(url), url).toThrow(/redis:\/\/ or rediss:\/\//);
  });

  it('never prints a password', () => {
    expect(redactRedisUrl('rediss://user:s3cret@redis.internal:6380/2')).toBe('rediss://user:***@redis.internal:6380/2');
    expect(redactRedisUrl('redis://127.0.0.1:6379')).toBe('redis://127.0.0.1:6379');
  });

  it('accepts only the UUIDs API nodes make as job ids', () => {
    expect(isJobId('3f0e1c2a-9b7d-4e5f-8a6b-1c2d3e4f5a6b')).toBe(true);
    for (const id of ['../../etc/passwd', '3f0e1c2a-9b7d-4e5f-8a6b-1c2d3e4f5a6b/..', '', 'x', 42, undefined, '3F0E1C2A-9B7D-4E5F-8A6B-1C2D3E4F5A6B']) expect(isJobId(id), String(id)).toBe(false);
  });

  it('keeps a failure’s code through the reason string', () => {
    expect(decodeFailure(encodeFailure('invalid_field', "'height' must be in [1, 64]\nsecond line"))).toEqual({ code: 'invalid_field', message: "'height' must be in [1, 64]\nsecond line" });
    expect(decodeFailure(encodeFailure('ERR_CUDA_OOM', 'out of memory: 3 GiB'))).toEqual({ code: 'ERR_CUDA_OOM', message: 'out of memory: 3 GiB' });
    expect(decodeFailure('job stalled more than allowable limit')).toEqual({ code: 'worker_failed', message: 'job stalled more than allowable limit' });
    expect(decodeFailure(undefined)).toEqual({ code: 'worker_failed', message: 'the job failed' });
  });
});

describe('the package root', () => {
  it('exports the server backends and the queue worker', () => {
    for (const name of ['StepVideoServer', 'createStepVideoServer', 'LocalBackend', 'QueueBackend', 'StepVideoWorker', 'toOpenAIVideo'] as const) expect(typeof stepvideo[name], name).toBe('function');
  });
});
