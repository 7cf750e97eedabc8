// `stepvideo dpo` and `stepvideo run dpo-loss` on the built-in model (CPU): pairs of latents and of
// Y4M videos (VAE-encoded once, then read from the cache), per-step progress and the final line,
// atomic checkpoints, resume, Ctrl-C saving a checkpoint; the component's loss and gradients equal
// the library's DPO step on the same inputs.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type HostTensor, readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../lib/io/safetensors.js';
import { LoraAdapter } from '../../lib/models/dit/lora.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { Tensor } from '../../lib/tensor.js';
import { dpoStep } from '../../lib/training/dpo-step.js';
import { openVideoWriter } from '../../lib/video/writers.js';
import { runCliToEnd, spawnCli, testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-dpo-cli-'));
let sv: StepVideo;
const FINAL = /^dpo: (\d+) steps, loss (\d+\.\d+) -> (\d+\.\d+), reward accuracy (\d+)%$/m;

async function writeLatents(name: string, data: Float32Array, shape: number[]): Promise<string> {
  const file = path.join(work, name);
  await writeSafetensors(file, { latents: { dtype: 'f32', shape, data } });
  return file;
}

async function writeY4m(name: string, shade: (t: number, y: number, x: number, c: number) => number): Promise<string> {
  const [count, height, width] = [17, 32, 32];
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[((t * height + y) * width + x) * 3 + c] = shade(t, y, x, c);
  const writer = openVideoWriter(path.join(work, name), { format: 'y4m', width, height });
  await writer.write({ width, height, count, data });
  return writer.finish();
}

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  const rng = new Rng(5);
  const lines = [];
  for (let i = 0; i < 2; i++) {
    const chosen = await writeLatents(`c${i}.safetensors`, randn(rng, 256), [2, 8, 4, 4]);
    const rejected = await writeLatents(`r${i}.safetensors`, randn(rng, 256, 1, 0.3), [1, 2, 8, 4, 4]);
    lines.push({ prompt: `pair ${i}`, chosen: path.basename(chosen), rejected });
  }
  const smooth = await writeY4m('smooth.y4m', (t, y, x, c) => (40 + 4 * x + 2 * y + 3 * t + 20 * c) & 255);
  const noisy = await writeY4m('noisy.y4m', (t, y, x, c) => ((x * 73 + y * 151 + t * 29 + c * 17) * 2654435761) >>> 24);
  lines.push({ prompt: 'a smooth gradient', chosen: smooth, rejected: noisy });
  writeFileSync(path.join(work, 'pairs.jsonl'), `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`);
});

afterAll(() => {
  sv?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('stepvideo dpo', () => {
  it('trains on latents and videos, prints each step and the final line, checkpoints, and resumes from the latent cache', async () => {
    const out = path.join(work, 'lora.safetensors');
    const args = ['dpo', '--pairs', path.join(work, 'pairs.jsonl'), '--out', out, '--device', 'cpu', '--rank', '2', '--lr', '1e-3', '--seed', '4', '--save-every', '2'];
    const first = await runCliToEnd([...args, '--steps', '3']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe(out);
    expect(first.stderr.match(/^step \d\/3: loss \d+\.\d{4}, reward accuracy \d+%, margin /gm)).toHaveLength(3);
    expect(first.stderr).toMatch(/encoded .*smooth\.y4m/);
    expect(first.stderr).toMatch(/encoded .*noisy\.y4m/);
    expect(first.stderr).toMatch(/checkpoint at step 2 ->/);
    const line = FINAL.exec(first.stderr);
    expect(line, first.stderr).not.toBeNull();
    expect(line![1]).toBe('3');
    // The adapter loads as generate --lora loads it: every Linear of both blocks, rank 2.
    using adapter = await LoraAdapter.load(out, { config: sv.dit.config, device: sv.dit.device, dtype: 'f32' });
    expect(adapter.targets).toHaveLength(14);
    expect(adapter.rank).toBe(2);
    const checkpoint = path.join(work, 'lora.checkpoint.safetensors');
    expect((await readSafetensorsHeader(checkpoint)).metadata.step).toBe('3');
    expect(readdirSync(work).filter((n) => n.includes('.tmp-'))).toEqual([]);

    const resumed = await runCliToEnd([...args, '--steps', '5', '--resume', checkpoint]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).not.toMatch(/encoded/);
    expect(resumed.stderr.match(/^step \d\/5:/gm)).toEqual(['step 4/5:', 'step 5/5:']);
    expect(FINAL.exec(resumed.stderr)![1]).toBe('5');
    expect((await readSafetensorsHeader(checkpoint)).metadata.step).toBe('5');
  }, 240_000);

  it('Ctrl-C writes a checkpoint of the finished steps and exits 130; bad pairs are usage errors', async () => {
    const out = path.join(work, 'interrupted.safetensors');
    const cli = spawnCli(['dpo', '--pairs', path.join(work, 'pairs.jsonl'), '--out', out, '--device', 'cpu', '--rank', '2', '--steps', '10000', '--save-every', '0']);
    await cli.waitForStderr(/^step 2\/10000:/m);
    cli.child.kill('SIGINT');
    const { code } = await cli.exited;
    expect(code, cli.stderr()).toBe(130);
    const saved = /checkpoint at step (\d+) ->/.exec(cli.stderr());
    expect(saved, cli.stderr()).not.toBeNull();
    expect(Number(saved![1])).toBeGreaterThanOrEqual(2);
    expect((await readSafetensorsHeader(path.join(work, 'interrupted.checkpoint.safetensors'))).metadata.step).toBe(saved![1]);

    writeFileSync(path.join(work, 'bad.jsonl'), '{"prompt": "x", "chosen": "c0.safetensors"}\n');
    const bad = await runCliToEnd(['dpo', '--pairs', path.join(work, 'bad.jsonl'), '--out', out, '--device', 'cpu']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/ERR_ARGUMENT.*pairs line 1 needs a non-empty string 'rejected'/);
    const missing = await runCliToEnd(['dpo', '--out', out]);
    expect(missing.stderr).toMatch(/ERR_USAGE.*--pairs/);
  }, 240_000);
});

describe('stepvideo run dpo-loss', () => {
  it("writes the loss and a gradient per LoRA tensor, equal to the library's DPO step", async () => {
    const rng = new Rng(17);
    const encoded = await sv.text.encodePrompts(['a kite over the sea']);
    using y = encoded.y;
    using clip = encoded.clip;
    const f32 = async (t: Tensor): Promise<HostTensor> => ({ dtype: 'f32', shape: [...t.shape], data: await t.toFloat32() });
    const inputs = new Map<string, HostTensor>([
      ['chosen', { dtype: 'f32', shape: [1, 2, 8, 4, 4], data: randn(rng, 256) }],
      ['rejected', { dtype: 'f32', shape: [1, 2, 8, 4, 4], data: randn(rng, 256) }],
      ['noise', { dtype: 'f32', shape: [1, 2, 8, 4, 4], data: randn(rng, 256) }],
      ['sigma', { dtype: 'f32', shape: [1], data: Float32Array.of(0.7) }],
      ['encoder_hidden_states', await f32(y)],
      ['encoder_hidden_states_2', await f32(clip)],
      ['encoder_attention_mask', { dtype: 'i32', shape: [1, encoded.yMask.length], data: encoded.yMask }],
      ['lora_alpha', { dtype: 'f32', shape: [], data: Float32Array.of(4) }],
    ]);
    const lora = new Map<string, HostTensor>();
    for (const [name, shape] of [['transformer_blocks.1.attn1.wqkv.lora_A.weight', [2, 128]], ['transformer_blocks.1.attn1.wqkv.lora_B.weight', [384, 2]], ['transformer_blocks.0.ff.net.2.lora_A.weight', [2, 512]], ['transformer_blocks.0.ff.net.2.lora_B.weight', [128, 2]]] as const) {
      lora.set(name, { dtype: 'f32', shape: [...shape], data: randn(rng, shape[0] * shape[1], 0.05) });
    }
    const file = path.join(work, 'case.safetensors');
    await writeSafetensors(file, new Map([...inputs, ...lora]));
    const output = path.join(work, 'dpo-loss.safetensors');
    const run = await runCliToEnd(['run', 'dpo-loss', '--model', sv.modelDir, '--inputs', file, '--output', output, '--device', 'cpu', '--beta', '50']);
    expect(run.code, run.stderr).toBe(0);
    const written = await readSafetensors(output);
    expect([...written.keys()].sort()).toEqual(['grad.transformer_blocks.0.ff.net.2.lora_A.weight', 'grad.transformer_blocks.0.ff.net.2.lora_B.weight', 'grad.transformer_blocks.1.attn1.wqkv.lora_A.weight', 'grad.transformer_blocks.1.attn1.wqkv.lora_B.weight', 'loss']);

    using adapter = LoraAdapter.fromTensors(new Map([...lora, ['lora_alpha', inputs.get('lora_alpha')!]]), { config: sv.dit.config, device: sv.dit.device, dtype: 'f32' });
    const tensor = (name: string) => Tensor.from(inputs.get(name)!.data as Float32Array, inputs.get(name)!.shape);
    using chosen = tensor('chosen');
    using rejected = tensor('rejected');
    using noise = tensor('noise');
    const expected = await dpoStep(sv.dit, adapter, { chosen, rejected, noise, sigma: [0.7], text: { y, clip, mask: encoded.yMask } }, { beta: 50 });
    try {
      expect((written.get('loss')!.data as Float32Array)[0]).toBe(Math.fround(expected.loss.loss));
      for (const [key, kind, name] of [['1.attn1.wqkv', 'a', 'transformer_blocks.1.attn1.wqkv.lora_A.weight'], ['0.ff.net.2', 'b', 'transformer_blocks.0.ff.net.2.lora_B.weight']] as const) {
        const g = expected.grads!.get(key)![kind];
        expect(Array.from(written.get(`grad.${name}`)!.data as Float32Array)).toEqual(Array.from(await g.toFloat32()));
      }
    } finally {
      for (const g of expected.grads!.values()) [g.a, g.b].forEach((t) => t.dispose());
    }

    const noLora = path.join(work, 'no-lora.safetensors');
    await writeSafetensors(noLora, inputs);
    const refused = await runCliToEnd(['run', 'dpo-loss', '--model', sv.modelDir, '--inputs', noLora, '--output', output, '--device', 'cpu']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERR_ARGUMENT.*no LoRA tensor/);
  }, 240_000);
});
