// Pure logic of the server (SSE wire format, request validation), the eval harness (prompt and
// category files, the HTML report) and the built-in model's tokenizer files made in code.
import { describe, expect, it } from 'vitest';

import { escapeHtml, renderReportHtml } from '../../lib/eval/html.js';
import { type EvalReport, parseCategories, parsePrompts, promptId } from '../../lib/eval/index.js';
import { buildStepSentencePieceModel, learnMerges } from '../../lib/pipeline/builtin/sentencepiece-model.js';
import { buildWordPieceVocab } from '../../lib/pipeline/builtin/wordpiece-vocab.js';
import { NEG_MAGIC, POS_MAGIC } from '../../lib/sampler/scheduler.js';
import { HttpError, errorBody, statusOfError } from '../../lib/server/http.js';
import { DEFAULT_LIMITS, parseCaptionRequest, parseVideoRequest } from '../../lib/server/requests.js';
import { formatSseEvent } from '../../lib/server/sse.js';
import { StepVideoError } from '../../lib/errors.js';
import { SentencePieceProcessor } from '../../lib/tokenizers/sentencepiece.js';
import { StepTokenizer } from '../../lib/tokenizers/step-tokenizer.js';
import { BertTokenizer } from '../../lib/tokenizers/wordpiece.js';

describe('server-sent events', () => {
  it('formats an event with its id and one data line per payload line', () => {
    expect(formatSseEvent('progress', '{"step":1}', '7')).toBe('event: progress\nid: 7\ndata: {"step":1}\n\n');
    expect(formatSseEvent('note', 'a\nb\r\nc\rd')).toBe('event: note\ndata: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(formatSseEvent('empty', '')).toBe('event: empty\ndata: \n\n');
  });

  it('refuses line breaks in names and ids (they would split the event)', () => {
    expect(() => formatSseEvent('a\nb', 'x')).toThrow();
    expect(() => formatSseEvent('a', 'x', '1\n2')).toThrow();
  });
});

describe('server request validation', () => {
  const limits = DEFAULT_LIMITS;
  const reject = (body: Record<string, unknown>, pattern: RegExp) => {
    try {
      parseVideoRequest(body, limits);
      expect.unreachable(`accepted ${JSON.stringify(body)}`);
    } catch (error) {
      expect(error).toBeInstanceOf(HttpError);
      expect((error as HttpError).status).toBe(400);
      expect((error as HttpError).message).toMatch(pattern);
    }
  };

  it('accepts a full request and fills format and crop', () => {
    const request = parseVideoRequest({ prompt: 'a cat', negativePrompt: 'dark', frames: 34, height: 64, width: 96, steps: 4, cfgScale: 7.5, timeShift: 13, seed: 42, preset: 'turbo', format: 'y4m', crop: false }, limits);
    expect(request).toEqual({ prompt: 'a cat', negativePrompt: 'dark', frames: 34, height: 64, width: 96, steps: 4, cfgScale: 7.5, timeShift: 13, seed: 42, preset: 'turbo', format: 'y4m', crop: false });
    expect(parseVideoRequest({ prompt: 'x' }, limits)).toEqual({ prompt: 'x', format: 'mp4', crop: true });
  });

  it('names the field of every wrong type, range or unknown key', () => {
    reject({}, /'prompt' is required/);
    reject({ prompt: '  ' }, /'prompt' must not be empty/);
    reject({ prompt: 7 }, /'prompt' must be a string/);
    reject({ prompt: 'x'.repeat(limits.maxPromptChars + 1) }, /'prompt' is longer/);
    reject({ prompt: 'a', frames: '17' }, /'frames' must be an integer/);
    reject({ prompt: 'a', frames: 17.5 }, /'frames' must be an integer/);
    reject({ prompt: 'a', frames: 205 }, /'frames' must be in \[1, 204\]/);
    reject({ prompt: 'a', height: 0 }, /'height' must be in/);
    reject({ prompt: 'a', width: 4096 }, /'width' must be in \[1, 1024\]/);
    reject({ prompt: 'a', steps: 101 }, /'steps'/);
    reject({ prompt: 'a', cfgScale: 'high' }, /'cfgScale' must be a number/);
    reject({ prompt: 'a', timeShift: 0 }, /'timeShift' must be in \(0/);
    reject({ prompt: 'a', seed: -1 }, /'seed'/);
    reject({ prompt: 'a', preset: 'fast' }, /'preset' must be one of 'base', 'turbo'/);
    reject({ prompt: 'a', format: 'png' }, /'format' must be one of 'mp4', 'y4m'/);
    reject({ prompt: 'a', crop: 'yes' }, /'crop' must be true or false/);
    reject({ prompt: 'a', fps: 30 }, /unknown field\(s\) 'fps'/);
  });

  it('validates caption requests', () => {
    expect(parseCaptionRequest({ prompts: ['a', 'b'] }, limits)).toEqual(['a', 'b']);
    for (const [body, pattern] of [
      [{}, /'prompts' must be an array/],
      [{ prompts: [] }, /1 to 16 prompts/],
      [{ prompts: Array(17).fill('a') }, /1 to 16 prompts/],
      [{ prompts: ['a', 3] }, /'prompts\[1\]' must be a string/],
      [{ prompts: ['a'], extra: 1 }, /unknown field/],
    ] as const) {
      expect(() => parseCaptionRequest(body as Record<string, unknown>, limits)).toThrow(pattern);
    }
  });

  it('maps library errors to HTTP statuses', () => {
    expect(statusOfError(new StepVideoError('ERR_ARGUMENT', 'x'))).toBe(400);
    expect(statusOfError(new StepVideoError('ERR_CUDA_OOM', 'x'))).toBe(507);
    expect(statusOfError(new StepVideoError('ERR_INTERNAL', 'x'))).toBe(500);
    expect(statusOfError(new Error('x'))).toBe(500);
    expect(errorBody(new HttpError(404, 'unknown_job', "no job 'x'"))).toEqual({ error: { status: 404, code: 'unknown_job', message: "no job 'x'", type: 'invalid_request_error', param: null } });
  });
});

describe('eval inputs and report', () => {
  it('reads one prompt per line, keeping line numbers as ids and skipping blank lines', () => {
    const categories = parseCategories({ categories: [{ name: 'Sports', first_line: 1, last_line: 2 }, { name: 'Food', first_line: 3, last_line: 4 }] });
    const prompts = parsePrompts('\uFEFF  run fast \r\nswim\n\n cook \nextra', categories);
    expect(prompts).toEqual([
      { line: 1, prompt: 'run fast', category: 'Sports' },
      { line: 2, prompt: 'swim', category: 'Sports' },
      { line: 4, prompt: 'cook', category: 'Food' },
      { line: 5, prompt: 'extra', category: 'Uncategorized' },
    ]);
    expect(promptId(7)).toBe('007');
    expect(promptId(128)).toBe('128');
  });

  it('refuses malformed category files', () => {
    for (const json of [null, {}, { categories: {} }, { categories: [{ name: 'x', first_line: 3, last_line: 2 }] }, { categories: [{ name: 1, first_line: 1, last_line: 2 }] }]) {
      expect(() => parseCategories(json)).toThrow(expect.objectContaining({ code: 'ERR_ARGUMENT' }));
    }
  });

  it('renders an escaped static page with thumbnails, counts and links', () => {
    const report: EvalReport = {
      format: 'stepvideo-eval-report',
      version: 1,
      promptsFile: '/p.txt',
      categoriesFile: null,
      config: { steps: 3, model: '<dir>' },
      configKey: 'k',
      updatedAt: 'now',
      entries: [
        { line: 1, id: '001', prompt: 'a <b>cat</b> & "dog"', category: 'Animals', status: 'done', seed: '1', video: 'videos/001.mp4', thumbnails: ['thumbnails/001-first.png', 'thumbnails/001-middle.png'], seconds: 1.25, configKey: 'k', finishedAt: 'x' },
        { line: 2, id: '002', prompt: 'b', category: 'Animals', status: 'failed', seed: '2', error: 'boom <x>', seconds: 0.5, configKey: 'k', finishedAt: 'x' },
      ],
      categories: [{ name: 'Animals', prompts: 3, done: 1, failed: 1 }],
      totals: { prompts: 3, done: 1, failed: 1, skippedThisRun: 0, seconds: 1.25 },
    };
    const html = renderReportHtml(report);
    expect(html).toContain('a &lt;b&gt;cat&lt;/b&gt; &amp; &quot;dog&quot;');
    expect(html).not.toContain('<b>cat</b>');
    expect(html).toContain('<img src="thumbnails/001-middle.png"');
    expect(html).toContain('<a href="videos/001.mp4">');
    expect(html).toContain('failed: boom &lt;x&gt;');
    expect(html).toContain('Animals <small>1 / 3 done, 1 failed</small>');
    expect(html).toContain('&lt;dir&gt;');
    expect(html).not.toMatch(/<script/i);
    expect(escapeHtml(`'`)).toBe('&#39;');
  });
});

describe('built-in tokenizer files', () => {
  const model = buildStepSentencePieceModel();
  const sp = new SentencePieceProcessor(model.bytes, 'builtin.model');

  it('is a BPE SentencePiece model with byte fallback and the Step special pieces', () => {
    expect(sp.modelType).toBe('bpe');
    expect(sp.byteFallback).toBe(true);
    expect(sp.vocabSize).toBe(model.vocabSize);
    expect(() => new StepTokenizer(sp)).not.toThrow(); // the official wrapper's assertions
    expect(sp.pieceToId('<s>')).toBe(StepTokenizer.BOS);
    expect(sp.pieceToId('</s>')).toBe(StepTokenizer.EOS);
  });

  it('learns merges deterministically and uses them', () => {
    expect(learnMerges(40)).toEqual(learnMerges(40));
    const merges = learnMerges(300);
    expect(merges.length).toBeGreaterThan(200); // until every training word is one piece
    expect(new Set(merges).size).toBe(merges.length);
    const words = sp.encode('the camera');
    expect(words.length).toBeLessThan('the camera'.length); // merged, not one id per character
    expect(sp.decode(words)).toBe('the camera');
  });

  it('falls back to UTF-8 bytes for text outside the vocabulary and round-trips it', () => {
    for (const text of [POS_MAGIC, `a dog ${NEG_MAGIC} 🐕`, 'Mixed CASE, punctuation!?']) {
      const ids = sp.encode(text);
      expect(ids.every((id) => id >= 0 && id < model.vocabSize)).toBe(true);
      expect(sp.decode(ids)).toBe(text);
    }
    const magic = new StepTokenizer(sp).encodeOne(POS_MAGIC);
    expect(magic.attentionMask.filter((m) => m === 1).length).toBeLessThanOrEqual(320);
  });

  it('has a WordPiece vocabulary BertTokenizer accepts, covering the magic strings', () => {
    const vocab = buildWordPieceVocab();
    expect(new Set(vocab).size).toBe(vocab.length);
    const tokenizer = new BertTokenizer(vocab, { doLowerCase: true, tokenizeChineseChars: true });
    const encoded = tokenizer.encode([`A red car${NEG_MAGIC}`], 77);
    const ids = encoded.inputIds[0]!;
    expect(ids[0]).toBe(tokenizer.clsId);
    expect(ids).not.toContain(tokenizer.unkId); // letters, CJK characters and punctuation are all in the vocabulary
  });
});
