// `stepvideo tokenize` end to end (the CLI contract) against the golden tokenizer cases, and its
// error behaviour.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';
import { casePath, requireGolden, tinyModelDir } from '../helpers/golden.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe.runIf(requireGolden())('stepvideo tokenize', () => {
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let sp: { texts: string[]; models: Record<string, { input_ids: number[][]; attention_mask: number[][] }> };
  let bert: { texts: string[]; input_ids: number[][]; attention_mask: number[][] };
  beforeAll(() => {
    sp = JSON.parse(readFileSync(casePath('sentencepiece_case.json'), 'utf8')) as typeof sp;
    bert = JSON.parse(readFileSync(casePath('bert_tokenizer_case.json'), 'utf8')) as typeof bert;
  });

  for (const model of ['bpe', 'unigram']) {
    it(`step-llm (${model}) matches the golden ids and masks for every text`, async () => {
      const input = path.join(work, `sp-${model}.json`);
      const output = path.join(work, `sp-${model}-out.json`);
      writeFileSync(input, JSON.stringify(sp.texts));
      const result = await runCli(['tokenize', '--kind', 'step-llm', '--tokenizer', path.join(tinyModelDir, 'step_llm', `sp_${model}.model`), '--input', input, '--output', output]);
      expect(result.code, result.stderr).toBe(0);
      const got = JSON.parse(readFileSync(output, 'utf8')) as { input_ids: number[][]; attention_mask: number[][] };
      expect(got.input_ids).toEqual(sp.models[model]!.input_ids);
      expect(got.attention_mask).toEqual(sp.models[model]!.attention_mask);
    });
  }

  it('clip matches the golden ids and masks for every text', async () => {
    const input = path.join(work, 'bert.json');
    const output = path.join(work, 'bert-out.json');
    writeFileSync(input, JSON.stringify(bert.texts));
    const result = await runCli(['tokenize', '--kind', 'clip', '--tokenizer', path.join(tinyModelDir, 'hunyuan_clip', 'tokenizer'), '--input', input, '--output', output, '--max-length', '77']);
    expect(result.code, result.stderr).toBe(0);
    const got = JSON.parse(readFileSync(output, 'utf8')) as { input_ids: number[][]; attention_mask: number[][] };
    expect(got.input_ids).toEqual(bert.input_ids);
    expect(got.attention_mask).toEqual(bert.attention_mask);
  });

  it('fails with one line and exit code 1 on bad input', async () => {
    const notJson = path.join(work, 'bad.json');
    writeFileSync(notJson, '{ not json');
    const numbers = path.join(work, 'numbers.json');
    writeFileSync(numbers, '[1, 2]');
    const good = path.join(work, 'good.json');
    writeFileSync(good, '["hello"]');
    const corruptModel = path.join(work, 'corrupt.model');
    writeFileSync(corruptModel, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]));
    const out = path.join(work, 'never.json');
    const cases: Array<[string[], RegExp]> = [
      [['tokenize', '--kind', 'step-llm'], /missing required option --tokenizer/],
      [['tokenize', '--kind', 'gpt', '--tokenizer', 'x', '--input', good, '--output', out], /unknown value/],
      [['tokenize', '--kind', 'clip', '--tokenizer', path.join(tinyModelDir, 'hunyuan_clip', 'tokenizer'), '--input', notJson, '--output', out], /bad\.json/],
      [['tokenize', '--kind', 'clip', '--tokenizer', path.join(tinyModelDir, 'hunyuan_clip', 'tokenizer'), '--input', numbers, '--output', out], /array of strings/],
      [['tokenize', '--kind', 'step-llm', '--tokenizer', path.join(work, 'missing.model'), '--input', good, '--output', out], /missing\.model/],
      [['tokenize', '--kind', 'step-llm', '--tokenizer', corruptModel, '--input', good, '--output', out], /ERR_TOKENIZER.*corrupt\.model/],
      [['tokenize', '--kind', 'clip', '--tokenizer', path.join(tinyModelDir, 'hunyuan_clip', 'tokenizer'), '--input', path.join(work, 'absent.json'), '--output', out], /ERR_IO.*absent\.json/],
    ];
    for (const [args, pattern] of cases) {
      const result = await runCli(args);
      expect(result.code, args.join(' ')).toBe(1);
      const lines = result.stderr.trim().split('\n');
      expect(lines, result.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^stepvideo: error \[ERR_[A-Z_]+\]: /);
      expect(lines[0]).toMatch(pattern);
    }
    expect(() => readFileSync(out)).toThrow();
  });
});
