// `stepvideo eval` as a smoke test with the built-in model (through the built CLI): a few prompts of
// the Step-Video-T2V-Eval list with --limit write videos, thumbnails and the report; a second run
// skips them; a run with other settings redoes them.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import type { EvalReport } from '../../lib/eval/index.js';
import { runCliToEnd } from '../helpers/pipeline.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-eval-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sharedEval = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..', '..', 'shared', 'eval');

/** The benchmark's files when present (../shared/eval), else a small stand-in in the same format. */
function promptFiles(): { prompts: string; categories: string } {
  const prompts = path.join(sharedEval, 'Step-Video-T2V-Eval.txt');
  const categories = path.join(sharedEval, 'categories.json');
  if (existsSync(prompts) && existsSync(categories)) return { prompts, categories };
  const own = { prompts: path.join(work, 'prompts.txt'), categories: path.join(work, 'categories.json') };
  writeFileSync(own.prompts, '一名足球运动员在球场上带球奔跑。\n篮球运动员跳起投篮。\n网球选手准备发球。\n一碗热气腾腾的面条。');
  writeFileSync(own.categories, JSON.stringify({ categories: [{ name: 'Sports', first_line: 1, last_line: 3 }, { name: 'Food', first_line: 4, last_line: 4 }] }));
  return own;
}

const size = ['--frames', '17', '--height', '32', '--width', '32', '--steps', '2', '--format', 'y4m'];

describe('stepvideo eval (built CLI, built-in model)', () => {
  it('generates a few prompts with a report, then skips them on a re-run', async () => {
    const { prompts, categories } = promptFiles();
    const out = path.join(work, 'run');
    const first = await runCliToEnd(['eval', '--prompts', prompts, '--categories', categories, '--out', out, '--limit', '3', ...size]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ done: 3, failed: 0, skipped: 0 });
    expect(readdirSync(path.join(out, 'videos')).sort()).toEqual(['001.y4m', '002.y4m', '003.y4m']);
    expect(readdirSync(path.join(out, 'thumbnails')).sort()).toEqual(['001-first.png', '001-middle.png', '001-preview.png', '002-first.png', '002-middle.png', '002-preview.png', '003-first.png', '003-middle.png', '003-preview.png']);
    // The last live preview of each video: a PNG.
    expect(readFileSync(path.join(out, 'thumbnails', '002-preview.png')).subarray(1, 4).toString('latin1')).toBe('PNG');
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as EvalReport;
    expect(report.entries.map((e) => [e.line, e.status, e.category, e.seed])).toEqual([
      [1, 'done', 'Sports', '1'],
      [2, 'done', 'Sports', '2'],
      [3, 'done', 'Sports', '3'],
    ]);
    expect(report.entries[0]!.prompt).toBe(readFileSync(prompts, 'utf8').split('\n')[0]!.trim());
    expect(report.entries.every((e) => e.seconds > 0)).toBe(true);
    expect(report.config).toMatchObject({ model: 'built-in test model', device: 'cpu', frames: 17, height: 32, width: 32, steps: 2, format: 'y4m' });
    expect(report.categories.find((c) => c.name === 'Sports')).toMatchObject({ done: 3, failed: 0 });
    expect(report.categories.reduce((n, c) => n + c.prompts, 0)).toBe(report.totals.prompts);
    const html = readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).toContain('<img src="thumbnails/002-middle.png"');
    expect(html).toContain('<img src="thumbnails/002-preview.png" alt="002 last live preview"');
    expect(report.entries.map((e) => e.preview)).toEqual(['thumbnails/001-preview.png', 'thumbnails/002-preview.png', 'thumbnails/003-preview.png']);
    expect(html).toContain('<a href="videos/003.y4m">');
    const firstVideo = readFileSync(path.join(out, 'videos', '001.y4m'));

    const second = await runCliToEnd(['eval', '--prompts', prompts, '--categories', categories, '--out', out, '--limit', '3', ...size]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ done: 3, failed: 0, skipped: 3 });
    expect(second.stderr.match(/skipped \(already done\)/g)).toHaveLength(3);
    expect(second.stderr).not.toMatch(/generating prompt/);
    expect(readFileSync(path.join(out, 'videos', '001.y4m')).equals(firstVideo)).toBe(true);

    // Other settings: the earlier videos do not count; the first prompts are made again, one more is added.
    const third = await runCliToEnd(['eval', '--prompts', prompts, '--categories', categories, '--out', out, '--limit', '4', ...size, '--seed', '1000']);
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ done: 4, skipped: 0 });
    expect(readFileSync(path.join(out, 'videos', '001.y4m')).equals(firstVideo)).toBe(false);
  });

  it('refuses missing inputs with a clear error', async () => {
    const missing = await runCliToEnd(['eval', '--prompts', path.join(work, 'none.txt'), '--out', path.join(work, 'x'), ...size]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_IO.*cannot read the prompts file/);
    const noOut = await runCliToEnd(['eval', '--prompts', 'p.txt']);
    expect(noOut.code).toBe(1);
    expect(noOut.stderr).toMatch(/ERR_USAGE.*missing required option --out/);
  });
});
