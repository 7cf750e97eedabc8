// The caption encoder end to end on the tiny golden folder (CPU, float32): tokenizers → Step-LLM and
// Hunyuan-CLIP → { y, yMask, clip } laid out as the official caption server returns them.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { CaptionEncoder } from '../../lib/models/caption-encoder.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';

interface TokenCase {
  texts: string[];
  input_ids: number[][];
  attention_mask: number[][];
}

describe.runIf(requireGolden())('CaptionEncoder.encodePrompts on the golden folder (CPU)', () => {
  // Texts whose BERT ids fit the tiny CLIP's 120-entry vocabulary (the golden vocab.txt is larger):
  // three English prompts and the empty prompt.
  const picks = [28, 29, 35, 30];
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let sp: { texts: string[]; models: Record<string, TokenCase> };
  let bert: TokenCase;
  let prompts: string[];
  beforeAll(() => {
    sp = JSON.parse(readFileSync(casePath('sentencepiece_case.json'), 'utf8')) as { texts: string[]; models: Record<string, TokenCase> };
    bert = JSON.parse(readFileSync(casePath('bert_tokenizer_case.json'), 'utf8')) as TokenCase;
    prompts = picks.map((i) => sp.texts[i]!);
  });

  it('returns y [B,320,D], yMask [B,397] = 77 ones + the Step-LLM mask, clip [B,77,D]; y and clip equal the encoders run alone', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    {
      using encoder = await CaptionEncoder.load(tinyModelDir, { device: 'cpu', tokenizerModel: 'step_llm/sp_bpe.model' });
      const { y, yMask, clip } = await encoder.encodePrompts(prompts);
      using yOwned = y;
      using clipOwned = clip;
      expect(yOwned.shape).toEqual([4, 320, 256]);
      expect(clipOwned.shape).toEqual([4, 77, 64]);
      expect([yOwned.dtype, clipOwned.dtype]).toEqual(['f32', 'f32']);
      expect(yMask).toBeInstanceOf(Int32Array);
      expect(yMask.length).toBe(4 * 397);
      picks.forEach((textIndex, b) => {
        const row = Array.from(yMask.subarray(b * 397, (b + 1) * 397));
        expect(row.slice(0, 77)).toEqual(new Array(77).fill(1));
        expect(row.slice(77)).toEqual(sp.models.bpe!.attention_mask[textIndex]);
      });

      // y: Step-LLM alone on the golden tokenizer ids of these texts.
      const llmIds = Int32Array.from(picks.flatMap((i) => sp.models.bpe!.input_ids[i]!));
      using alone = await encoder.llm.forward(llmIds, [4, 320]);
      expect(Array.from(await yOwned.toFloat32())).toEqual(Array.from(await alone.toFloat32()));

      // clip: Hunyuan-CLIP alone on the golden BERT ids and masks.
      const clipIds = Int32Array.from(picks.flatMap((i) => bert.input_ids[i]!));
      const clipMask = Int32Array.from(picks.flatMap((i) => bert.attention_mask[i]!));
      using clipAlone = await encoder.clip.forward(clipIds, clipMask, [4, 77]);
      expect(Array.from(await clipOwned.toFloat32())).toEqual(Array.from(await clipAlone.toFloat32()));
    }
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('encodes each prompt independently of its batch neighbours', async () => {
    using encoder = await CaptionEncoder.load(tinyModelDir, { device: 'cpu', tokenizerModel: 'step_llm/sp_unigram.model' });
    const both = await encoder.encodePrompts([prompts[0]!, prompts[1]!]);
    const single = await encoder.encodePrompts([prompts[1]!]);
    const [yBoth, ySingle] = [await both.y.toFloat32(), await single.y.toFloat32()];
    expect(Array.from(ySingle)).toEqual(Array.from(yBoth.subarray(320 * 256)));
    expect(Array.from(single.yMask)).toEqual(Array.from(both.yMask.subarray(397)));
    for (const t of [both.y, both.clip, single.y, single.clip]) t.dispose();
  });

  it('reports CLIP token ids past the model vocabulary (the golden Chinese texts) as ERR_ARGUMENT and frees y', async () => {
    using encoder = await CaptionEncoder.load(tinyModelDir, { device: 'cpu', tokenizerModel: 'step_llm/sp_bpe.model' });
    const baseline = Device.cpu.memory().bytesInUse;
    await expect(encoder.encodePrompts([prompts[0]!, sp.texts[0]!])).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'input_ids', message: expect.stringContaining('< 120') });
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('rejects bad prompt lists and a missing tokenizer, and honours an aborted signal', async () => {
    await expect(CaptionEncoder.load(tinyModelDir, { device: 'cpu' })).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_(IO|TOKENIZER)$/) });
    using encoder = await CaptionEncoder.load(tinyModelDir, { device: 'cpu', tokenizerModel: 'step_llm/sp_bpe.model' });
    const baseline = Device.cpu.memory().bytesInUse;
    await expect(encoder.encodePrompts([])).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    await expect(encoder.encodePrompts([1 as unknown as string])).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    const controller = new AbortController();
    const pending = encoder.encodePrompts(prompts, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
    await expect(CaptionEncoder.load(tinyModelDir, { device: 'cpu', tokenizerModel: 'step_llm/sp_bpe.model', outputDType: 'bf16' })).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED' });
  });
});
