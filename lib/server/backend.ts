// What the HTTP layer serves from. Two kinds: LocalBackend (lib/server/local.ts) runs everything on
// the pipeline loaded in this process; QueueBackend (lib/server/queue/client.ts) puts the work on a
// Redis queue for `stepvideo worker` processes on any machine and holds no model itself.
import type { HostTensor } from '../io/safetensors.js';
import type { VideoJobs } from './jobs.js';

export interface ServerBackend {
  /** Valid once open() has resolved. */
  readonly jobs: VideoJobs;
  /** Called once before the server listens, with the folder finished videos go to. */
  open(resultsDir: string): Promise<void>;
  /** Fields added to /v1/health. */
  describe(): Promise<Record<string, unknown>>;
  /** The caption role of the official server (spec §6.1): y, y_mask, clip_embedding. */
  captions(prompts: string[], signal: AbortSignal): Promise<Record<string, HostTensor>>;
  /** The VAE role: the body's tensors (checked here) to { samples: frames }. */
  decode(samples: HostTensor | undefined, names: readonly string[], signal: AbortSignal): Promise<Record<string, HostTensor>>;
  close(): Promise<void>;
}
