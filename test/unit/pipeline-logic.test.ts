// Pure logic of the pipeline: request normalisation (the official floors, with warnings), the
// caption rows, the memory estimate and its fail-fast check, progress and ETA math, the CLI's
// progress lines and output naming.
import { describe, expect, it } from 'vitest';

import { defaultOutputName, resolveFormat } from '../../lib/cli/output.js';
import { ProgressReporter, describeProgress } from '../../lib/cli/progress-reporter.js';
import type { Device } from '../../lib/device.js';
import { isStepVideoError } from '../../lib/errors.js';
import { parseClipConfig } from '../../lib/models/clip/config.js';
import { parseDiTConfig } from '../../lib/models/dit/config.js';
import { ConfigJson } from '../../lib/models/json-config.js';
import { parseStepLlmConfig } from '../../lib/models/step-llm/config.js';
import { RELEASED_VAE_CONFIG } from '../../lib/models/vae/config.js';
import { type ModelDims, SAFETY_MARGIN, estimateJobMemory, formatBytes, requireMemory } from '../../lib/pipeline/memory.js';
import { RELEASED_DEFAULT_VIDEO, floorToMultiple, normalizeVideoSize, resolveJob } from '../../lib/pipeline/options.js';
import { EtaTracker, formatDuration, progressBar } from '../../lib/pipeline/progress.js';
import { formatFromPath } from '../../lib/pipeline/video.js';
import { NEG_MAGIC, POS_MAGIC } from '../../lib/sampler/scheduler.js';

const defaults = { frames: 17, height: 128, width: 128 };

describe('video size normalisation (official floors)', () => {
  it('floors frames to a multiple of 17 and sizes to multiples of 16, with a minimum of one unit', () => {
    expect(floorToMultiple(204, 17)).toBe(204);
    expect(floorToMultiple(220, 17)).toBe(204);
    expect(floorToMultiple(16, 17)).toBe(17);
    expect(floorToMultiple(1, 16)).toBe(16);
    expect(floorToMultiple(545, 16)).toBe(544);
  });

  it('reports every change as a warning and keeps exact values silent', () => {
    const exact = normalizeVideoSize({ frames: 34, height: 544, width: 992 }, defaults);
    expect(exact).toEqual({ size: { frames: 34, height: 544, width: 992 }, warnings: [] });
    const floored = normalizeVideoSize({ frames: 40, height: 550, width: 8 }, defaults);
    expect(floored.size).toEqual({ frames: 34, height: 544, width: 16 });
    expect(floored.warnings).toHaveLength(3);
    expect(floored.warnings[0]).toMatch(/frames 40 .*multiple of 17.*using 34/);
    expect(floored.warnings[1]).toMatch(/height 550 .*using 544/);
    expect(floored.warnings[2]).toMatch(/width 8 .*using 16/);
  });

  it('fills in the defaults and refuses values that mean nothing', () => {
    expect(normalizeVideoSize({}, RELEASED_DEFAULT_VIDEO).size).toEqual({ frames: 204, height: 544, width: 992 });
    for (const bad of [0, -17, 17.5, Number.NaN, Infinity, '17' as unknown as number]) {
      expect(() => normalizeVideoSize({ frames: bad }, defaults)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    }
  });
});

describe('job resolution', () => {
  it('builds the official caption rows: [prompt + pos magic, neg magic] under guidance', () => {
    const job = resolveJob({ prompt: 'a cat', seed: 7 }, defaults);
    expect(job.captionRows).toEqual([`a cat${POS_MAGIC}`, NEG_MAGIC]);
    expect(job.settings).toEqual({ steps: 50, cfgScale: 9, timeShift: 13 });
    expect(job.seed).toBe(7n);
  });

  it('uses the given negative prompt and magic, and one row without guidance', () => {
    expect(resolveJob({ prompt: 'a', negativePrompt: 'blurry', positiveMagic: '', seed: 1 }, defaults).captionRows).toEqual(['a', 'blurry']);
    expect(resolveJob({ prompt: 'a', cfgScale: 1, positiveMagic: '!', seed: 1 }, defaults).captionRows).toEqual(['a!']);
  });

  it('applies the turbo preset with overrides on top', () => {
    expect(resolveJob({ prompt: 'a', preset: 'turbo', seed: 1 }, defaults).settings).toEqual({ steps: 15, cfgScale: 5, timeShift: 17 });
    expect(resolveJob({ prompt: 'a', preset: 'turbo', steps: 10, seed: 1 }, defaults).settings.steps).toBe(10);
  });

  it('draws a seed when none is given and validates given ones', () => {
    const a = resolveJob({ prompt: 'a' }, defaults).seed;
    expect(a >= 0n && a < 2n ** 32n).toBe(true);
    expect(resolveJob({ prompt: 'a', seed: 2n ** 64n - 1n }, defaults).seed).toBe(2n ** 64n - 1n);
    for (const seed of [-1, 1.5, 2n ** 64n]) expect(() => resolveJob({ prompt: 'a', seed }, defaults)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
  });

  it('refuses an empty prompt, bad settings and wrong types', () => {
    for (const request of [{ prompt: '' }, { prompt: '   ' }, { prompt: 3 }, { prompt: 'a', steps: 0 }, { prompt: 'a', cfgScale: -1 }, { prompt: 'a', timeShift: 0 }, { prompt: 'a', negativePrompt: 5 }, { prompt: 'a', preset: 'fast' }]) {
      expect(() => resolveJob(request as never, defaults), JSON.stringify(request)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    }
  });
});

/** The released model's dimensions (spec §2, §3, §5; Step-LLM numbers as the largest plausible). */
function releasedDims(): ModelDims {
  return {
    dit: parseDiTConfig({}),
    vae: RELEASED_VAE_CONFIG,
    llm: parseStepLlmConfig(ConfigJson.from({ hidden_size: 6144, num_attention_heads: 48, num_attention_groups: 4, num_layers: 48, ffn_hidden_size: 16384, layernorm_epsilon: 1e-5, padded_vocab_size: 65536 })),
    clip: parseClipConfig(ConfigJson.from({ vocab_size: 47020, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096, max_position_embeddings: 512 })),
  };
}

describe('memory estimate', () => {
  const bf16 = { model: 2, clip: 4 };

  it('counts the stages of a released-size job in the expected ranges', () => {
    const estimate = estimateJobMemory(releasedDims(), { frames: 204, height: 544, width: 992, guidance: true }, bf16, 'cuda');
    const GiB = 2 ** 30;
    // DiT: 75,888 tokens × 2 rows × (4·6144 + 24576) × 2 bytes ≈ 14 GiB, plus context and latents.
    expect(estimate.stages.denoise / GiB).toBeGreaterThan(13);
    expect(estimate.stages.denoise / GiB).toBeLessThan(20);
    // VAE chunk: 20 frames × 544 × 992 × (2·256 + 3·128) × 2 bytes ≈ 18 GiB at the first full-resolution block.
    expect(estimate.stages.decode / GiB).toBeGreaterThan(17);
    expect(estimate.stages.decode / GiB).toBeLessThan(22);
    expect(estimate.peakBytes).toBe(Math.ceil(Math.max(...Object.values(estimate.stages)) * SAFETY_MARGIN));
  });

  it('grows linearly with the tokens in the DiT, per chunk in the VAE, and roughly halves without guidance', () => {
    const dims = releasedDims();
    const at = (frames: number, side: number, guidance = true) => estimateJobMemory(dims, { frames, height: side, width: side, guidance }, bf16, 'cuda').stages;
    // The DiT holds every token at once: memory is affine in the frame count.
    expect(at(68, 256).denoise - at(17, 256).denoise).toBeCloseTo(3 * (at(34, 256).denoise - at(17, 256).denoise), -3);
    // The VAE decodes one 17-frame chunk at a time: the length hardly matters (only the latents grow), the area does.
    expect(at(68, 256).decode / at(17, 256).decode).toBeCloseTo(1, 2);
    expect(at(17, 512).decode).toBeGreaterThan(3.9 * at(17, 256).decode);
    expect(at(204, 544, false).denoise).toBeLessThan(0.6 * at(204, 544).denoise);
  });

  it('counts every queued temporary on the CPU, only the live set on CUDA', () => {
    const size = { frames: 204, height: 544, width: 992, guidance: true };
    const cpu = estimateJobMemory(releasedDims(), size, { model: 4, clip: 4 }, 'cpu');
    const gpu = estimateJobMemory(releasedDims(), size, { model: 4, clip: 4 }, 'cuda');
    expect(cpu.stages.denoise).toBeGreaterThan(4 * gpu.stages.denoise);
    expect(cpu.stages.text).toBeGreaterThan(gpu.stages.text);
    expect(cpu.stages.decode).toBe(gpu.stages.decode);
  });

  it('fails fast with ERR_CUDA_OOM on a GPU and ERR_OOM on the host, naming the estimate and the free memory', () => {
    const gpu = { isCuda: true, name: 'cuda:0' } as Device;
    const needed = 50 * 2 ** 30;
    try {
      requireMemory('a 204-frame 992x544 video', needed, { denoise: 16 * 2 ** 30, decode: needed }, gpu, 12 * 2 ** 30);
      expect.unreachable();
    } catch (error) {
      expect(isStepVideoError(error, 'ERR_CUDA_OOM')).toBe(true);
      expect((error as Error).message).toMatch(/GPU memory on cuda:0 for a 204-frame 992x544 video: it needs about 50\.0 GiB \(denoise 16\.0 GiB, decode 50\.0 GiB\), 12\.0 GiB is free/);
    }
    const cpu = { isCuda: false, name: 'cpu' } as Device;
    expect(() => requireMemory('x', 2048, { decode: 2048 }, cpu, 1024)).toThrow(expect.objectContaining({ code: 'ERR_OOM', message: expect.stringMatching(/host memory.*2\.0 KiB.*1\.0 KiB is free/) }));
    expect(() => requireMemory('x', 1024, { decode: 1024 }, cpu, 1024)).not.toThrow();
  });

  it('formats byte counts', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 2 ** 30)).toBe('3.0 GiB');
  });
});

describe('progress and ETA', () => {
  it('estimates the time left from the mean time per unit', () => {
    let now = 1000;
    const tracker = new EtaTracker(50, () => now);
    expect(Number.isNaN(tracker.at(0).etaMs)).toBe(true);
    now += 4000; // 2 steps in 4 s
    expect(tracker.at(2)).toEqual({ elapsedMs: 4000, etaMs: 96_000, fraction: 0.04 });
    now += 1000; // half a step more (blocks count as fractions of a step)
    expect(tracker.at(2.5).etaMs).toBeCloseTo((5000 / 2.5) * 47.5, 6);
    now += 95_000;
    expect(tracker.at(50)).toEqual({ elapsedMs: 100_000, etaMs: 0, fraction: 1 });
    expect(tracker.at(60).fraction).toBe(1); // clamped
  });

  it('formats durations and bars', () => {
    expect(formatDuration(Number.NaN)).toBe('?');
    expect(formatDuration(40)).toBe('40 ms');
    expect(formatDuration(4200)).toBe('4.2 s');
    expect(formatDuration(42_400)).toBe('42 s');
    expect(formatDuration(185_000)).toBe('3 min 05 s');
    expect(formatDuration(3_720_000)).toBe('1 h 02 min');
    expect(progressBar(0.5, 10)).toBe('[#####.....]');
    expect(progressBar(2, 4)).toBe('[####]');
    expect(progressBar(Number.NaN, 4)).toBe('[....]');
  });

  it('describes each stage, marking what ends a line', () => {
    const step = describeProgress({ stage: 'denoise', step: 3, total: 50, elapsedMs: 6000, etaMs: 94_000, fraction: 0.06 });
    expect(step).toEqual({ text: expect.stringMatching(/^denoising \[#.*\] step 3\/50, 2\.0 s\/step, ETA 1 min 34 s$/), final: true });
    const block = describeProgress({ stage: 'denoise', step: 3, total: 50, block: 10, blocks: 48, elapsedMs: 6500, etaMs: 1, fraction: 0.07 });
    expect(block.final).toBe(false);
    expect(block.text).toContain('step 4/50 block 10/48');
    expect(describeProgress({ stage: 'load', part: 'dit', loadedBytes: 10, totalBytes: 20, fraction: 0.5 }).final).toBe(false);
    expect(describeProgress({ stage: 'load', part: 'dit', loadedBytes: 20, totalBytes: 20, fraction: 1 }).text).toBe('loaded dit (20 B)');
    expect(describeProgress({ stage: 'decode', chunk: 2, total: 12, elapsedMs: 1, etaMs: 5000, fraction: 2 / 12 }).text).toMatch(/chunk 2\/12, ETA 5\.0 s/);
    expect(describeProgress({ stage: 'write', frames: 17, totalFrames: 17, path: '/x.mp4', done: true, fraction: 1 }).text).toBe('wrote /x.mp4');
    expect(describeProgress({ stage: 'prepare', dir: '/c/builtin-v1', done: false, fraction: 0 })).toEqual({ text: 'making the built-in test model in /c/builtin-v1 (once)', final: false });
  });

  it('redraws in place on a terminal and prints whole lines otherwise', () => {
    const updates = [
      { stage: 'denoise', step: 0, total: 2, block: 1, blocks: 2, elapsedMs: 1, etaMs: 3, fraction: 0.25 },
      { stage: 'denoise', step: 1, total: 2, elapsedMs: 2, etaMs: 2, fraction: 0.5 },
      { stage: 'denoise', step: 2, total: 2, elapsedMs: 4, etaMs: 0, fraction: 1 },
      { stage: 'decode', chunk: 1, total: 1, elapsedMs: 5, etaMs: 0, fraction: 1 },
    ] as const;
    const plain: string[] = [];
    const reporter = new ProgressReporter(false, { write: () => expect.unreachable('no raw writes off a terminal'), line: (l) => plain.push(l) });
    for (const u of updates) reporter.update(u);
    expect(plain).toHaveLength(3); // two finished steps and the chunk; the block update is not a line
    expect(plain.join('')).not.toMatch(/[\r\x1b]/);

    let screen = '';
    const tty = new ProgressReporter(true, { write: (t) => (screen += t), line: (l) => (screen += `${l}\n`) });
    for (const u of updates) tty.update(u);
    tty.message('note');
    expect(screen.match(/\r\x1b\[2K/g)).toHaveLength(4);
    // Stage change and message each end the open line; the step lines overwrite one another.
    expect(screen.split('\n').filter((l) => l !== '')).toHaveLength(3);
  });
});

describe('output naming and formats', () => {
  it('names the output after the prompt and the time, as the official script', () => {
    const at = new Date('2025-03-17T10:20:30.456Z');
    expect(defaultOutputName('a cat / on: the "beach"', '.mp4', at)).toBe('a cat _ on_ the _beach_-20250317-102030.mp4');
    expect(defaultOutputName('x'.repeat(80), '', at)).toBe(`${'x'.repeat(50)}-20250317-102030`);
  });

  it('tells the format from --format and --out, and refuses contradictions', () => {
    expect(formatFromPath('a/b.MP4')).toBe('mp4');
    expect(formatFromPath('b.y4m')).toBe('y4m');
    expect(formatFromPath('frames')).toBe('png');
    expect(() => formatFromPath('b.avi')).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    expect(resolveFormat(undefined, undefined)).toBe('mp4');
    expect(resolveFormat(undefined, 'x.y4m')).toBe('y4m');
    expect(resolveFormat('png', 'frames')).toBe('png');
    expect(resolveFormat('y4m', undefined)).toBe('y4m');
    expect(() => resolveFormat('png', 'x.mp4')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
    expect(() => resolveFormat(undefined, 'x.avi')).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
});
