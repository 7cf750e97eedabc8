// The text encoders on CUDA. Golden cases: f32 within 1e-4 of the float64 reference, bf16 within
// 1.25x the official bf16 run's error r (never NaN) and within 2.25 r of the official bf16 output
// (neither encoder has a quantisation quirk, so the twin is the reference: docs/TOLERANCES.md, "Text
// encoders and VAE goldens, bf16"). Real widths (random weights; the released
// Step-LLM head/group counts are an assumption, see benchmarks/text/README.md): CUDA against the
// CPU twin. The caption encoder end to end against the CPU one. Device memory returns to its
// baseline after dispose and after an abort.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

import { Device, getDevice } from '../../lib/device.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { ClipTextEncoder } from '../../lib/models/clip/index.js';
import { clipWeightSpec, parseClipConfig } from '../../lib/models/clip/config.js';
import type { ComputeDType } from '../../lib/models/compute-dtype.js';
import { ConfigJson } from '../../lib/models/json-config.js';
import { StepLlm } from '../../lib/models/step-llm/index.js';
import { parseStepLlmConfig, stepLlmWeightSpec } from '../../lib/models/step-llm/config.js';
import { CaptionEncoder } from '../../lib/models/caption-encoder.js';
import { randomWeights } from '../../lib/models/weight-source.js';
import { bf16Tolerance, expectRelErr } from '../helpers/compare.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';
import { describeGpu, fitEmulated } from '../helpers/gpu.js';
import { bf16VsOfficial } from '../helpers/tolerances.js';

const llmDir = path.join(tinyModelDir, 'step_llm');
const clipDir = path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder');
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-text-gpu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describeGpu('text encoders on CUDA', () => {
  if (!requireGolden()) return;
  const manifest = JSON.parse(readFileSync(path.join(tinyModelDir, 'manifest.json'), 'utf8')) as {
    cases: { step_llm: { official_bf16_rel_err: number }; clip: { official_bf16_rel_err: number } };
  };
  const llmBf16Limit = 1.25 * manifest.cases.step_llm.official_bf16_rel_err;
  const clipBf16Limit = 1.25 * manifest.cases.clip.official_bf16_rel_err;

  /** Runs `body`, then checks that CUDA memory is back where it was. */
  async function noLeak(body: () => Promise<void>): Promise<void> {
    const cuda = getDevice('cuda');
    await cuda.synchronize();
    const baseline = cuda.memory().bytesInUse;
    await body();
    await cuda.synchronize();
    expect(cuda.memory().bytesInUse, 'CUDA bytes in use after dispose').toBe(baseline);
  }

  async function llmCase(): Promise<{ ids: Int32Array; shape: [number, number]; y: Float32Array; yOfficial: Float32Array }> {
    const golden = await readSafetensors(casePath('step_llm_case.safetensors'));
    return {
      ids: golden.get('input_ids')!.data as Int32Array,
      shape: golden.get('input_ids')!.shape as [number, number],
      y: golden.get('y')!.data as Float32Array,
      yOfficial: golden.get('y_bf16_official')!.data as Float32Array,
    };
  }

  async function clipCase(): Promise<{ ids: Int32Array; mask: Int32Array; shape: [number, number]; hidden: Float32Array; hiddenOfficial: Float32Array }> {
    const golden = await readSafetensors(casePath('clip_case.safetensors'));
    return {
      ids: golden.get('input_ids')!.data as Int32Array,
      mask: golden.get('attention_mask')!.data as Int32Array,
      shape: golden.get('input_ids')!.shape as [number, number],
      hidden: golden.get('last_hidden_state')!.data as Float32Array,
      hiddenOfficial: golden.get('last_hidden_state_bf16_official')!.data as Float32Array,
    };
  }

  it('Step-LLM golden, f32: within 1e-4 of the reference and 1e-5 of the CPU twin', async () => {
    const { ids, shape, y } = await llmCase();
    await noLeak(async () => {
      using model = await StepLlm.load(llmDir, { device: 'cuda', dtype: 'f32' });
      using out = await model.forward(ids, shape);
      const got = await out.toFloat32();
      const rel = expectRelErr(got, y, 1e-4, 'step_llm_case y (CUDA f32)');
      using twin = await StepLlm.load(llmDir, { device: 'cpu' });
      using cpuOut = await twin.forward(ids, shape);
      expectRelErr(got, await cpuOut.toFloat32(), 1e-5, 'Step-LLM CUDA f32 vs CPU twin');
      console.log(`step_llm_case CUDA f32 rel err ${rel.toExponential(3)}`);
    });
  });

  it('Step-LLM golden, bf16 (the default on CUDA): within 1.25x the official bf16 error, 2.25x of the official bf16 output', async () => {
    const { ids, shape, y, yOfficial } = await llmCase();
    await noLeak(async () => {
      using model = await StepLlm.load(llmDir, { device: 'cuda' });
      expect(model.dtype).toBe('bf16');
      using out = await model.forward(ids, shape);
      expect(out.dtype).toBe('bf16');
      const got = await out.toFloat32();
      const rel = expectRelErr(got, y, llmBf16Limit, 'step_llm_case y (CUDA bf16)');
      const toOfficial = expectRelErr(got, yOfficial, bf16VsOfficial(manifest.cases.step_llm.official_bf16_rel_err), 'step_llm_case y (CUDA bf16) vs the official bf16 output');
      console.log(`step_llm_case CUDA bf16 rel err ${rel.toExponential(3)} (limit ${llmBf16Limit.toExponential(3)}), ${toOfficial.toExponential(3)} to the official bf16 output`);
    });
  });

  it('Step-LLM with fp32_residual_connection: f32 residual stream, bf16 layers, within the same bound', async () => {
    const dir = path.join(work, 'llm-fp32-residual');
    mkdirSync(dir, { recursive: true });
    const config = JSON.parse(readFileSync(path.join(llmDir, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, fp32_residual_connection: true }));
    copyFileSync(path.join(llmDir, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const { ids, shape, y, yOfficial } = await llmCase();
    await noLeak(async () => {
      using model = await StepLlm.load(dir, { device: 'cuda', dtype: 'bf16' });
      using out = await model.forward(ids, shape);
      expect(out.dtype).toBe('f32');
      // An f32 residual stream rounds at fewer points than the official bf16 run: the same bounds.
      const got = await out.toFloat32();
      const rel = expectRelErr(got, y, llmBf16Limit, 'step_llm_case y (CUDA bf16, f32 residual)');
      expectRelErr(got, yOfficial, bf16VsOfficial(manifest.cases.step_llm.official_bf16_rel_err), 'step_llm_case y (CUDA bf16, f32 residual) vs the official bf16 output');
      console.log(`step_llm_case CUDA bf16 + fp32 residual rel err ${rel.toExponential(3)}`);
    });
  });

  it('Hunyuan-CLIP golden: f32 within 1e-4 (from .bin and from safetensors), bf16 within 1.25x the official error', async () => {
    const { ids, mask, shape, hidden, hiddenOfficial } = await clipCase();
    await noLeak(async () => {
      using model = await ClipTextEncoder.load(clipDir, { device: 'cuda' });
      expect(model.dtype).toBe('f32');
      using out = await model.forward(ids, mask, shape);
      const got = await out.toFloat32();
      const rel = expectRelErr(got, hidden, 1e-4, 'clip_case (CUDA f32)');
      using fromSafetensors = await ClipTextEncoder.load(clipDir, { device: 'cuda', weightsFile: path.join(clipDir, 'model.safetensors') });
      using again = await fromSafetensors.forward(ids, mask, shape);
      expectRelErr(await again.toFloat32(), got, 1e-6, 'clip from safetensors vs .bin (CUDA f32)');
      using bf16 = await ClipTextEncoder.load(clipDir, { device: 'cuda', dtype: 'bf16' });
      using outBf16 = await bf16.forward(ids, mask, shape);
      expect(outBf16.dtype).toBe('bf16');
      const gotBf16 = await outBf16.toFloat32();
      const relBf16 = expectRelErr(gotBf16, hidden, clipBf16Limit, 'clip_case (CUDA bf16)');
      expectRelErr(gotBf16, hiddenOfficial, bf16VsOfficial(manifest.cases.clip.official_bf16_rel_err), 'clip_case (CUDA bf16) vs the official bf16 output');
      console.log(`clip_case CUDA f32 rel err ${rel.toExponential(3)}, bf16 ${relBf16.toExponential(3)} (limit ${clipBf16Limit.toExponential(3)})`);
    });
  });

  // Real widths with random weights whose values are bf16 numbers, so the f32 CPU twin runs the
  // very model the bf16 GPU run holds. On the emulated device (test/helpers/gpu.ts) the weights are
  // uploaded and multiplied at a few GFLOP/s: a quarter of the width, with the real head size,
  // grouping into several groups, an FFN much wider than the model, the CLIP vocabulary and masks.
  const llmWidth = fitEmulated(
    { hidden: 6144, heads: 48, ffn: 16384 },
    { hidden: 1536, heads: 12, ffn: 4096 },
    '6144 -> 1536 wide (48 -> 12 heads of 128, 4 groups), F 16384 -> 4096 to fit CI time',
  );
  async function realWidthStepLlm(device: Device, dtype: ComputeDType): Promise<StepLlm> {
    const { hidden, heads, ffn } = llmWidth.value;
    const config = parseStepLlmConfig(
      ConfigJson.from({ hidden_size: hidden, num_attention_heads: heads, num_attention_groups: 4, num_layers: 1, ffn_hidden_size: ffn, layernorm_epsilon: 1e-5, padded_vocab_size: 1024 }),
    );
    return new StepLlm(config, randomWeights(stepLlmWeightSpec(config), { device, dtype, seed: 11, bf16Values: true }), device, dtype);
  }

  it(`Step-LLM at the real width (6144, 48 heads / 4 groups, F 16384; one layer): CUDA f32 and bf16 vs the CPU twin${llmWidth.note}`, async () => {
    const shape: [number, number] = [2, 16];
    const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 131 + 7) % 1024);
    let expected: Float32Array;
    {
      using twin = await realWidthStepLlm(Device.cpu, 'f32');
      using out = await twin.forward(ids, shape);
      expected = await out.toFloat32();
    }
    await noLeak(async () => {
      for (const dtype of ['f32', 'bf16'] as const) {
        using model = await realWidthStepLlm(getDevice('cuda'), dtype);
        using out = await model.forward(ids, shape);
        const rel = expectRelErr(await out.toFloat32(), expected, dtype === 'f32' ? 1e-5 : llmBf16Limit, `real-width Step-LLM ${dtype}`);
        console.log(`real-width Step-LLM layer CUDA ${dtype} vs CPU twin rel err ${rel.toExponential(3)}`);
      }
    });
  }, 600_000);

  const clipWidth = fitEmulated(
    { hidden: 1024, heads: 16, intermediate: 4096 },
    { hidden: 256, heads: 4, intermediate: 1024 },
    '1024 -> 256 wide (16 -> 4 heads of 64), 4096 -> 1024 to fit CI time',
  );
  it(`Hunyuan-CLIP at the real width (1024, 16 heads, 4096, vocab 47020; two layers, masks [77, 23]): CUDA f32 and bf16 vs the CPU twin${clipWidth.note}`, async () => {
    const { hidden, heads, intermediate } = clipWidth.value;
    const config = parseClipConfig(
      ConfigJson.from({ vocab_size: 47020, hidden_size: hidden, num_hidden_layers: 2, num_attention_heads: heads, intermediate_size: intermediate, max_position_embeddings: 512 }),
    );
    const make = (device: Device, dtype: ComputeDType) => new ClipTextEncoder(config, randomWeights(clipWeightSpec(config), { device, dtype, seed: 12, bf16Values: true }), device, dtype);
    const shape: [number, number] = [2, 77];
    const ids = Int32Array.from({ length: 154 }, (_, i) => (i * 7919 + 101) % 47020);
    const mask = Int32Array.from({ length: 154 }, (_, i) => (i < 77 ? 1 : i - 77 < 23 ? 1 : 0));
    let expected: Float32Array;
    {
      using twin = make(Device.cpu, 'f32');
      using out = await twin.forward(ids, mask, shape);
      expected = await out.toFloat32();
    }
    await noLeak(async () => {
      for (const dtype of ['f32', 'bf16'] as const) {
        using model = make(getDevice('cuda'), dtype);
        using out = await model.forward(ids, mask, shape);
        const rel = expectRelErr(await out.toFloat32(), expected, dtype === 'f32' ? 1e-5 : clipBf16Limit, `real-width CLIP ${dtype}`);
        console.log(`real-width CLIP CUDA ${dtype} vs CPU twin rel err ${rel.toExponential(3)}`);
      }
    });
  }, 600_000);

  it('encodePrompts on CUDA (Step-LLM bf16, CLIP f32, bf16 outputs) against the CPU encoder; abort frees everything', async () => {
    const prompts = ['A golden retriever runs along the beach at sunset, waves crashing behind it.', '', 'Time-lapse of clouds rolling over snow-capped mountains, cinematic lighting.'];
    const options = { tokenizerModel: 'step_llm/sp_bpe.model' };
    using cpu = await CaptionEncoder.load(tinyModelDir, { ...options, device: 'cpu' });
    const reference = await cpu.encodePrompts(prompts);
    const [yRef, clipRef] = [await reference.y.toFloat32(), await reference.clip.toFloat32()];
    reference.y.dispose();
    reference.clip.dispose();
    await noLeak(async () => {
      using encoder = await CaptionEncoder.load(tinyModelDir, { ...options, device: 'cuda' });
      expect([encoder.llm.dtype, encoder.clip.dtype, encoder.outputDType]).toEqual(['bf16', 'f32', 'bf16']);
      const { y, yMask, clip } = await encoder.encodePrompts(prompts);
      using yOwned = y;
      using clipOwned = clip;
      expect([yOwned.shape, clipOwned.shape]).toEqual([[3, 320, 256], [3, 77, 64]]);
      expect([yOwned.dtype, clipOwned.dtype]).toEqual(['bf16', 'bf16']);
      expect(Array.from(yMask)).toEqual(Array.from(reference.yMask));
      const relY = expectRelErr(await yOwned.toFloat32(), yRef, llmBf16Limit, 'encodePrompts y (CUDA) vs CPU');
      const relClip = expectRelErr(await clipOwned.toFloat32(), clipRef, bf16Tolerance(clipRef), 'encodePrompts clip (CUDA, f32 then bf16) vs CPU');
      console.log(`encodePrompts CUDA vs CPU: y rel ${relY.toExponential(3)}, clip rel ${relClip.toExponential(3)}`);

      const controller = new AbortController();
      const pending = encoder.encodePrompts(prompts, { signal: controller.signal });
      controller.abort();
      await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    });
  });

  it('rejects out-of-range token ids on the host before anything reaches the GPU', async () => {
    const { ids, shape } = await llmCase();
    await noLeak(async () => {
      using model = await StepLlm.load(llmDir, { device: 'cuda' });
      const bad = Int32Array.from(ids);
      bad[5] = 1 << 20;
      await expect(model.forward(bad, shape)).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'input_ids' });
    });
  });
});
