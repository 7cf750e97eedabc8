// `stepvideo generate` through the built CLI (dist/, refreshed by `npm test`'s pretest step) with the
// built-in model: the file it writes, plain progress lines off a terminal, Ctrl-C (SIGINT to the
// child: exit 130, no partial output), MP4 through the bundled ffmpeg, a broken FFMPEG_PATH, and bad arguments.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { locateFfmpeg } from '../../lib/video/writers.js';
import { leftovers, probeVideo, runCliToEnd, spawnCli } from '../helpers/pipeline.js';
import { FFMPEG_TOOLS, pathWithout } from '../helpers/bare-path.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-cli-generate-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const tiny = ['--frames', '17', '--height', '64', '--width', '64', '--steps', '3'];

describe('stepvideo generate (built CLI, built-in model)', () => {
  it('writes an MP4, prints its path, says it runs the built-in model, and prints plain progress lines', async () => {
    const out = path.join(work, 'cat.mp4');
    const { code, stdout, stderr } = await runCliToEnd(['generate', 'a cat on a sofa', '--out', out, '--seed', '3', ...tiny, '--device', 'cpu']);
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe(out);
    expect(probeVideo(out)).toMatchObject({ codec: 'h264', pixFmt: 'yuv420p', width: 64, height: 64, frames: 17, fps: '25/1' });
    expect(stderr).toContain('built-in test model');
    expect(stderr).toContain('--model <dir>');
    expect(stderr).toContain('seed 3');
    expect(stderr).toMatch(/step 3\/3, .*ETA/);
    expect(stderr).toMatch(/chunk 1\/1/);
    expect(stderr).not.toMatch(/[\r\x1b]/); // stderr is a pipe here: no redrawing
  });

  it('writes Y4M and PNG frames without ffmpeg, identical for the same seed', async () => {
    const noFfmpeg = { FFMPEG_PATH: path.join(work, 'no-such-ffmpeg') };
    const a = path.join(work, 'a.y4m');
    const b = path.join(work, 'b.y4m');
    for (const file of [a, b]) {
      const { code, stderr } = await runCliToEnd(['generate', 'waves at sunset', '--out', file, '--seed', '8', ...tiny], { env: noFfmpeg });
      expect(code, stderr).toBe(0);
    }
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);
    const frames = path.join(work, 'frames');
    const { code, stderr } = await runCliToEnd(['generate', 'waves at sunset', '--out', frames, '--format', 'png', '--seed', '8', ...tiny], { env: noFfmpeg });
    expect(code, stderr).toBe(0);
    expect(readdirSync(frames)).toHaveLength(17);
  });

  it('writes an MP4 with the bundled ffmpeg when PATH has no ffmpeg', async () => {
    const out = path.join(work, 'bundled.mp4');
    const env = { PATH: pathWithout(path.join(work, 'path-without-ffmpeg'), [FFMPEG_TOOLS]), FFMPEG_PATH: '' };
    const { code, stdout, stderr } = await runCliToEnd(['generate', 'a cat on a sofa', '--out', out, '--seed', '3', ...tiny, '--device', 'cpu'], { env });
    expect(code, stderr).toBe(0);
    expect(stdout.trim()).toBe(out);
    const bundled = locateFfmpeg(env).ffmpeg;
    expect(bundled?.source, 'the optional dependency @ffmpeg-installer/ffmpeg is required here (npm ci installs it)').toBe('bundled');
    expect(probeVideo(out, bundled!.path)).toEqual({ codec: 'h264', pixFmt: 'yuv420p', width: 64, height: 64, frames: 17, fps: '25/1' });
  });

  it('names an FFMPEG_PATH that does not run, and the alternatives, before loading anything', async () => {
    const missing = path.join(work, 'no-such-ffmpeg');
    const { code, stdout, stderr } = await runCliToEnd(['generate', 'a cat', '--out', path.join(work, 'x.mp4'), ...tiny], { env: { FFMPEG_PATH: missing } });
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^stepvideo: error \[ERR_FFMPEG\]: FFMPEG_PATH names an ffmpeg that cannot be run .*--format png.*--format y4m/m);
    expect(stderr).toContain(missing);
    expect(stderr).not.toContain('loaded');
    expect(existsSync(path.join(work, 'x.mp4'))).toBe(false);
  });

  it('stops on Ctrl-C (SIGINT): exit 130, the partial output removed', async () => {
    const out = path.join(work, 'interrupted.mp4');
    const cli = spawnCli(['generate', 'a long video', '--out', out, '--frames', '17', '--height', '128', '--width', '128', '--steps', '500', '--seed', '1']);
    await cli.waitForStderr(/step 2\/500/);
    cli.child.kill('SIGINT');
    const { code } = await cli.exited;
    expect(code, cli.stderr()).toBe(130);
    expect(cli.stderr()).toMatch(/interrupted/);
    expect(cli.stderr()).toMatch(/ERR_ABORTED/);
    expect(cli.stdout()).toBe('');
    expect(existsSync(out)).toBe(false);
    expect(leftovers(work)).toEqual([]);
  });

  it('stops on Ctrl-C while the video is being written, leaving nothing behind', async () => {
    const out = path.join(work, 'interrupted-writing.y4m');
    const cli = spawnCli(['generate', 'a long video', '--out', out, '--frames', '340', '--height', '64', '--width', '64', '--steps', '1', '--seed', '1']);
    await cli.waitForStderr(/chunk 2\/20/);
    cli.child.kill('SIGINT');
    const { code } = await cli.exited;
    expect(code, cli.stderr()).toBe(130);
    expect(existsSync(out)).toBe(false);
    expect(leftovers(work)).toEqual([]);
  });

  it('refuses bad arguments with a usage error naming the problem', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['generate'], /ERR_USAGE.*missing the prompt/],
      [['generate', 'a cat', '--fps', '30'], /ERR_USAGE.*unknown option --fps/],
      [['generate', 'a cat', '--frames', 'many'], /ERR_USAGE.*--frames needs an integer/],
      [['generate', 'a cat', '--steps'], /ERR_USAGE.*--steps needs a value/],
      [['generate', 'a cat', '--format', 'avi'], /ERR_USAGE.*--format has an unknown value/],
      [['generate', 'a cat', '--out', 'x.avi'], /ERR_USAGE.*cannot tell the format from --out x\.avi/],
      [['generate', 'a cat', '--out', 'x.mp4', '--format', 'y4m'], /ERR_USAGE.*does not fit --format y4m/],
      [['generate', 'a cat', '--seed', '-1'], /ERR_USAGE.*--seed must not be negative/],
      [['generate', 'a cat', '--device', 'tpu'], /ERR_USAGE.*--device has an unknown value/],
      [['generate', 'a cat', '--model', path.join(work, 'missing-model'), '--format', 'y4m', '--out', path.join(work, 'm.y4m')], /ERR_WEIGHTS_MISSING.*model folder not found/],
      [['generate', 'a cat', '--frames', '0', '--format', 'y4m', '--out', path.join(work, 'z.y4m'), '--device', 'cpu'], /ERR_ARGUMENT.*frames must be a positive integer/],
    ];
    for (const [args, pattern] of cases) {
      const { code, stderr } = await runCliToEnd(args);
      expect(code, args.join(' ')).toBe(1);
      expect(stderr, args.join(' ')).toMatch(pattern);
      expect(stderr.trim().split('\n').filter((l) => l.startsWith('stepvideo: error')).length).toBe(1);
    }
  });

  it('prints its usage with --help', async () => {
    const { code, stdout } = await runCliToEnd(['generate', '--help']);
    expect(code).toBe(0);
    for (const option of ['--model', '--out', '--frames', '--height', '--width', '--steps', '--cfg-scale', '--time-shift', '--seed', '--turbo', '--negative', '--device', '--format']) expect(stdout).toContain(option);
  });
});
