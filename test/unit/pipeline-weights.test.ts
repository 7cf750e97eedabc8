// How the pipeline holds the DiT's weights (issue 15, A): the CLI's --weights / --stream-weights
// parsed into StepVideo.load's `weights` and `streaming`, the streaming budget resolved against the
// DiT's exact memory model, and the pipeline's estimates made from that model (FP8 smaller by the
// weight bytes, streamed blocks counted in host memory, the denoising stage the DiT's own count).
import { describe, expect, it } from 'vitest';

import { parseArgs } from '../../lib/cli/args.js';
import { MODEL_OPTIONS, ditWeightOptions } from '../../lib/cli/pipeline-options.js';
import { isStepVideoError } from '../../lib/errors.js';
import { ditWeightBytes, estimateDiTMemory } from '../../lib/models/dit/index.js';
import {
  LOAD_MARGIN,
  STREAMING_BUDGET_TOO_SMALL,
  computeBytes,
  estimateJobMemory,
  estimateLoadMemory,
  resolveStreaming,
} from '../../lib/pipeline/memory.js';
import { CLIP_TOKENS, LLM_TOKENS } from '../../lib/tokenizers/caption-lengths.js';
import { releasedDims } from '../helpers/model-dims.js';

const GB = 1e9;

function errorOf(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return expect.unreachable('no error was thrown');
}

describe('--weights and --stream-weights', () => {
  const parse = (...argv: string[]) => ditWeightOptions(parseArgs(argv, MODEL_OPTIONS));

  it('map to StepVideo.load options: fp8 / bf16 (the compute dtype) and a device budget in GB', () => {
    expect(parse()).toEqual({});
    expect(parse('--weights', 'fp8')).toEqual({ weights: 'fp8' });
    expect(parse('--weights', 'bf16')).toEqual({ weights: 'model' });
    expect(parse('--stream-weights', '20')).toEqual({ streaming: { deviceBudgetBytes: 20 * GB } });
    expect(parse('--weights=fp8', '--stream-weights=1.5')).toEqual({ weights: 'fp8', streaming: { deviceBudgetBytes: 1.5 * GB } });
  });

  it('refuse what means nothing with ERR_USAGE naming the option', () => {
    for (const argv of [['--weights', 'int4'], ['--stream-weights', '0'], ['--stream-weights', '-3'], ['--stream-weights', 'lots'], ['--stream-weights']]) {
      const error = errorOf(() => parse(...argv));
      expect(isStepVideoError(error, 'ERR_USAGE'), `${argv.join(' ')}: ${String(error)}`).toBe(true);
      expect((error as Error).message, argv.join(' ')).toMatch(/--(weights|stream-weights)/);
    }
  });
});

describe('the streaming budget', () => {
  const { dit } = releasedDims();
  const resident = (weights: 'model' | 'fp8') => ditWeightBytes(dit, 'bf16', { weights }).device;
  const streamed = (weights: 'model' | 'fp8') => ditWeightBytes(dit, 'bf16', { weights, streaming: true }).device;

  it('streams when asked, never by default, and with a budget only when the resident weights exceed it', () => {
    expect(resolveStreaming(undefined, dit, 'bf16', 'model')).toBe(false);
    expect(resolveStreaming(false, dit, 'bf16', 'model')).toBe(false);
    expect(resolveStreaming(true, dit, 'bf16', 'model')).toBe(true);
    // bf16: 58.7 GB resident; FP8: 29.7 GB.
    expect(resolveStreaming({ deviceBudgetBytes: 80 * GB }, dit, 'bf16', 'model')).toBe(false);
    expect(resolveStreaming({ deviceBudgetBytes: 40 * GB }, dit, 'bf16', 'model')).toBe(true);
    expect(resolveStreaming({ deviceBudgetBytes: 40 * GB }, dit, 'bf16', 'fp8')).toBe(false);
    expect(resolveStreaming({ deviceBudgetBytes: 20 * GB }, dit, 'bf16', 'fp8')).toBe(true);
    expect(resolveStreaming({ deviceBudgetBytes: resident('model') }, dit, 'bf16', 'model')).toBe(false);
    expect(resolveStreaming({ deviceBudgetBytes: streamed('model') }, dit, 'bf16', 'model')).toBe(true);
  });

  it('is ERR_ARGUMENT naming streaming.deviceBudgetBytes when even the streamed weights do not fit, or when it is no budget', () => {
    const tooSmall = errorOf(() => resolveStreaming({ deviceBudgetBytes: streamed('fp8') - 1 }, dit, 'bf16', 'fp8'));
    expect(isStepVideoError(tooSmall, 'ERR_ARGUMENT')).toBe(true);
    expect((tooSmall as Error).message.startsWith(STREAMING_BUDGET_TOO_SMALL)).toBe(true);
    expect((tooSmall as Error).message).toContain(`at least ${streamed('fp8')} bytes`);
    for (const bad of [{ deviceBudgetBytes: 0 }, { deviceBudgetBytes: -1 }, { deviceBudgetBytes: Number.NaN }, { deviceBudgetBytes: '20' }, {}, 'yes', null]) {
      const error = errorOf(() => resolveStreaming(bad as never, dit, 'bf16', 'model'));
      expect(isStepVideoError(error, 'ERR_ARGUMENT'), JSON.stringify(bad)).toBe(true);
      expect((error as Error).message).toContain('deviceBudgetBytes');
    }
  });
});

describe("the pipeline's estimates use the DiT's memory model", () => {
  const dims = releasedDims();
  const size = { frames: 204, height: 544, width: 992, guidance: true };

  it('load: the DiT part is its memory model; FP8 is smaller by exactly the weight bytes the model drops', () => {
    const bf16 = estimateLoadMemory(dims, 'bf16');
    const fp8 = estimateLoadMemory(dims, 'bf16', { weights: 'fp8' });
    const saved = ditWeightBytes(dims.dit, 'bf16').device - ditWeightBytes(dims.dit, 'bf16', { weights: 'fp8' }).device;
    expect(bf16.parts.dit).toBe(29_342_478_400 * 2); // spec §2.2
    expect(bf16.parts.dit - fp8.parts.dit).toBe(saved);
    expect(fp8.parts.dit / bf16.parts.dit).toBeLessThan(0.55);
    expect({ ...fp8.parts, dit: 0 }).toEqual({ ...bf16.parts, dit: 0 });
    const sum = (e: typeof bf16) => Object.values(e.parts).reduce((a, b) => a + b, 0);
    expect(bf16.deviceBytes).toBe(Math.ceil(sum(bf16) * LOAD_MARGIN));
    expect(bf16.hostBytes).toBe(0);
  });

  it('load: streamed, the device holds the global tensors and two slots, the host every block', () => {
    for (const weights of ['model', 'fp8'] as const) {
      const estimate = estimateLoadMemory(dims, 'bf16', { weights, streaming: true });
      const exact = ditWeightBytes(dims.dit, 'bf16', { weights, streaming: true });
      expect(estimate.parts.dit, weights).toBe(exact.device);
      expect(estimate.hostBytes, weights).toBe(exact.host);
      expect(estimate.parts.dit, weights).toBeLessThan(4 * GB);
    }
  });

  it('a whole job with FP8 weights needs the weight bytes (times the load margin) less than with bf16 weights', () => {
    const job = (weights: 'model' | 'fp8') => estimateJobMemory(dims, size, computeBytes('bf16'), 'cuda', { weights });
    const total = (weights: 'model' | 'fp8') => estimateLoadMemory(dims, 'bf16', { weights }).deviceBytes + job(weights).peakBytes;
    const saved = ditWeightBytes(dims.dit, 'bf16').device - ditWeightBytes(dims.dit, 'bf16', { weights: 'fp8' }).device;
    expect(Math.abs(total('model') - total('fp8') - saved * LOAD_MARGIN)).toBeLessThanOrEqual(1);
    // The job's peak is the VAE at this size; FP8's per-row activation quantization adds a little to the denoising stage.
    expect(job('fp8').peakBytes).toBe(job('model').peakBytes);
    expect(job('fp8').stages.denoise).toBeGreaterThan(job('model').stages.denoise);
    expect(job('fp8').stages.denoise).toBeLessThan(1.2 * job('model').stages.denoise);
  });

  it("denoise = the DiT's context, input and forward peak (CUDA: the live set; CPU queue: two blocks in flight), the f32 latents and the captions", () => {
    const latent: [number, number, number] = [36, 34, 62];
    const extras = latent[0] * dims.dit.inChannels * latent[1] * latent[2] * 4 + 2 * (LLM_TOKENS * dims.llm.hiddenSize + CLIP_TOKENS * dims.clip.hiddenSize) * 4;
    for (const [queue, dtype, execution] of [['cuda', 'bf16', {}], ['cuda', 'bf16', { weights: 'fp8' }], ['cuda', 'f32', {}], ['cpu', 'f32', {}], ['cpu', 'f32', { weights: 'fp8' }]] as const) {
      const dit = estimateDiTMemory({ config: dims.dit, batch: 2, latent, text: { llm: LLM_TOKENS, clip: CLIP_TOKENS }, dtype, backend: queue, execution });
      const forward = queue === 'cpu' ? dit.queuedPeakBytes : dit.forwardPeakBytes;
      const job = estimateJobMemory(dims, size, computeBytes(dtype), queue, execution);
      expect(job.stages.denoise, `${queue} ${dtype} ${JSON.stringify(execution)}`).toBe(dit.contextBytes + dit.inputBytes + forward + extras);
    }
  });

  it('counts more on a CPU queue that runs behind than the live set, and no more than the work between two waits', () => {
    const dit = estimateDiTMemory({ config: dims.dit, batch: 2, latent: [36, 34, 62], text: { llm: LLM_TOKENS, clip: CLIP_TOKENS }, dtype: 'f32', backend: 'cpu' });
    expect(dit.queuedPeakBytes).toBeGreaterThan(dit.forwardPeakBytes);
    // At most the pre-block work and two blocks are in flight: each block allocates about 22 activations.
    expect(dit.queuedPeakBytes).toBeLessThan(dit.forwardPeakBytes + 2 * 24 * dit.activationBytes);
  });
});
