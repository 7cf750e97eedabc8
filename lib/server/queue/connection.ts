// What API nodes and workers share about the Redis queue: loading BullMQ and ioredis only when a
// queue is asked for (the single-process server needs neither), the connections, the queue and
// key names, what a job carries in Redis, and how a failure's code survives the trip.
//
// Why BullMQ: it is the maintained Redis job queue of the Node ecosystem, and it already does what
// a GPU job queue needs: a lock per running job renewed while the worker lives, stalled jobs (a
// dead worker's) handed to another worker, bounded retries, progress and completion events across
// processes (Redis streams), and cancellation of a running job through an AbortSignal.
import type { Redis, RedisOptions } from 'ioredis';

import { StepVideoError } from '../../errors.js';
import type { VideoJobRequest } from '../requests.js';

export type BullMQ = typeof import('bullmq');
type RedisClass = typeof import('ioredis').Redis;

export interface QueueLibraries {
  bullmq: BullMQ;
  Redis: RedisClass;
}

/** BullMQ and ioredis, imported on first use; ERR_UNSUPPORTED naming the packages when missing. */
export async function loadQueueLibraries(): Promise<QueueLibraries> {
  try {
    const [bullmq, ioredis] = await Promise.all([import('bullmq'), import('ioredis')]);
    return { bullmq, Redis: ioredis.Redis };
  } catch (error) {
    throw new StepVideoError('ERR_UNSUPPORTED', `the Redis queue needs the npm packages bullmq and ioredis (npm install bullmq ioredis): ${(error as Error).message}`);
  }
}

/** The roles a worker can take, one BullMQ queue each. */
export const ROLES = ['video', 'caption', 'vae'] as const;
export type Role = (typeof ROLES)[number];

export const QUEUE_NAMES: Readonly<Record<Role, string>> = { video: 'videos', caption: 'captions', vae: 'vae' };

/** Default BullMQ key prefix; several deployments can share one Redis with different prefixes. */
export const DEFAULT_PREFIX = 'stepvideo';

/** The pub/sub channel that carries cancellations (a job id per message) to every worker and API node. */
export const cancelChannel = (prefix: string): string => `${prefix}:cancel`;
/** The pub/sub channel of live previews ({ id, step, total, width, height, png } as JSON): ephemeral, nothing stored. */
export const previewChannel = (prefix: string): string => `${prefix}:preview`;
/** Set when a job is cancelled, so a worker that takes it later (or missed the message) drops it. */
export const cancelKey = (prefix: string, id: string): string => `${prefix}:cancelled:${id}`;
export const CANCEL_TTL_S = 7 * 24 * 3600;

/** Job ids are UUIDs made by the API node; anything else read from Redis is refused before it names a key or a file. */
export const isJobId = (id: unknown): id is string => typeof id === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id);

/** The redis:// or rediss:// (TLS) URL, checked; user, password, database and TLS pass through to ioredis unchanged. */
export function checkRedisUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StepVideoError('ERR_USAGE', `--queue must be a redis:// or rediss:// URL (got '${url}')`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new StepVideoError('ERR_USAGE', `--queue must be a redis:// or rediss:// URL (got the scheme '${parsed.protocol}')`);
  return url;
}

/** The URL without its password, for logs. */
export function redactRedisUrl(url: string): string {
  const parsed = new URL(url);
  if (parsed.password !== '') parsed.password = '***';
  return parsed.toString();
}

/**
 * A connection. 'blocking' ones (workers, event readers, subscribers) retry every command until Redis
 * is back, as BullMQ requires; 'command' ones (an API node's) fail fast, so a request during an
 * outage gets a 503 instead of hanging. Both reconnect on their own.
 */
export function connect(libraries: QueueLibraries, url: string, kind: 'blocking' | 'command'): Redis {
  const options: RedisOptions =
    kind === 'blocking' ? { maxRetriesPerRequest: null } : { maxRetriesPerRequest: 1, enableOfflineQueue: false };
  const client = new libraries.Redis(url, { ...options, retryStrategy: (times) => Math.min(times * 100, 2000) });
  // Connection errors are retried by ioredis; without a listener each one would be an unhandled 'error' event.
  client.on('error', () => undefined);
  return client;
}

/** What a video job carries in Redis. */
export interface VideoJobData {
  request: VideoJobRequest;
}

/** What a worker returns for a video job: the file's name in the results folder, never a path. */
export interface VideoJobReturn {
  file: string;
  bytes: number;
  seed: string;
  size: { frames: number; height: number; width: number };
}

/** A caption or VAE request: its input (the prompts, or an upload's name in the results folder). */
export interface RoleJobData {
  prompts?: string[];
  upload?: string;
}

/** A caption or VAE reply: a safetensors file's name in the results folder. */
export interface RoleJobReturn {
  reply: string;
}

/** A failure as BullMQ stores it (one string): "<code>: <message>". */
export const encodeFailure = (code: string, message: string): string => `${code}: ${message}`;

export function decodeFailure(reason: string | undefined): { code: string; message: string } {
  const match = /^([A-Za-z_]+): ([\s\S]*)$/.exec(reason ?? '');
  if (match) return { code: match[1]!, message: match[2]! };
  // BullMQ's own reasons ("job stalled more than allowable limit") carry no code.
  return { code: 'worker_failed', message: reason || 'the job failed' };
}
