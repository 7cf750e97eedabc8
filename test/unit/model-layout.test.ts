// Finding the parts of the released layout from whichever folder --model names: the root, a part's
// own folder, or a folder on the way to it (hunyuan_clip/ for its clip_text_encoder/), on the tiny
// golden model (in the released layout); and the errors where that would be a guess.
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { type StepVideoError } from '../../lib/errors.js';
import { LAYOUT_FOLDERS, type LayoutFolder, resolveModelRoot, resolvePartDir } from '../../lib/models/layout.js';
import { requireGolden, tinyModelDir } from '../helpers/golden.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-layout-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What each `stepvideo run` component looks for (its part and a file in it). */
const COMPONENT_PARTS: Array<[LayoutFolder, string]> = [
  ['transformer', 'config.json'],
  ['vae', 'vae_v2.safetensors'],
  ['step_llm', 'config.json'],
  ['hunyuan_clip/clip_text_encoder', 'config.json'],
];

function thrown(body: () => unknown): StepVideoError {
  try {
    body();
  } catch (error) {
    return error as StepVideoError;
  }
  throw new Error('expected an error');
}

describe.runIf(requireGolden())('the released layout (tiny golden model)', () => {
  it('finds every component from the root, from its own folder, and from every folder on the way', () => {
    for (const [part, marker] of COMPONENT_PARTS) {
      const expected = path.join(tinyModelDir, part);
      const segments = part.split('/');
      for (let depth = 0; depth <= segments.length; depth++) {
        const given = path.join(tinyModelDir, ...segments.slice(0, depth));
        expect(resolvePartDir(given, part, marker), `${part} from ${given}`).toBe(expected);
      }
    }
  });

  it('takes a renamed folder holding the part for that part', () => {
    const renamed = path.join(work, 'my-clip');
    cpSync(path.join(tinyModelDir, 'hunyuan_clip', 'clip_text_encoder', 'config.json'), path.join(renamed, 'config.json'));
    expect(resolvePartDir(renamed, 'hunyuan_clip/clip_text_encoder', 'config.json')).toBe(renamed);
  });

  it('never takes another part of the layout for the one asked for, and lists where it looked', () => {
    // step_llm/ and vae/ have a config.json too: taking them for the DiT or CLIP would be a guess.
    for (const [given, part] of [
      ['step_llm', 'transformer'],
      ['vae', 'hunyuan_clip/clip_text_encoder'],
      ['hunyuan_clip/clip_text_encoder', 'step_llm'],
      ['hunyuan_clip/tokenizer', 'hunyuan_clip/clip_text_encoder'],
    ] as const) {
      const dir = path.join(tinyModelDir, given);
      const error = thrown(() => resolvePartDir(dir, part, 'config.json'));
      expect(error.code).toBe('ERR_WEIGHTS_MISSING');
      expect(error.file).toBe(dir);
      expect(error.message).toContain(`is the layout's ${path.basename(given)}/ folder, not ${part}/`);
      expect(error.message).toContain(path.join(dir, part, 'config.json'));
    }
    const empty = path.join(work, 'empty');
    mkdirSync(empty, { recursive: true });
    const error = thrown(() => resolvePartDir(empty, 'hunyuan_clip/clip_text_encoder', 'config.json'));
    expect(error.message).toContain('--model naming the model root, hunyuan_clip/ or hunyuan_clip/clip_text_encoder/');
    for (const looked of ['hunyuan_clip/clip_text_encoder/config.json', 'clip_text_encoder/config.json', 'config.json']) expect(error.message).toContain(path.join(empty, looked));
  });

  it('finds the model root from the root or any folder of the layout', () => {
    expect(resolveModelRoot(tinyModelDir)).toBe(tinyModelDir);
    for (const folder of LAYOUT_FOLDERS) expect(resolveModelRoot(path.join(tinyModelDir, folder)), folder).toBe(tinyModelDir);
  });

  it('refuses a folder that is neither a root nor inside one, saying what is missing where', () => {
    expect(thrown(() => resolveModelRoot(path.join(work, 'nowhere')))).toMatchObject({ code: 'ERR_WEIGHTS_MISSING', message: expect.stringContaining('model folder not found') });
    // A part copied out of its root: its parent is no root.
    const loose = path.join(work, 'loose', 'transformer');
    cpSync(path.join(tinyModelDir, 'transformer', 'config.json'), path.join(loose, 'config.json'));
    const error = thrown(() => resolveModelRoot(loose));
    expect(error.code).toBe('ERR_WEIGHTS_MISSING');
    expect(error.message).toContain('missing transformer/, vae/, step_llm/, hunyuan_clip/');
    expect(error.message).toContain(`or in ${path.join(work, 'loose')} above it`);
    // A folder not named as in the layout is not looked above.
    const other = path.join(tinyModelDir, 'cases');
    expect(thrown(() => resolveModelRoot(other)).message).not.toContain('above it');
  });
});
