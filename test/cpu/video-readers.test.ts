// Reading videos through ffmpeg (lib/video/readers.ts): an MP4 written by the MP4 writer read back
// (frame count, size, rate, pixels within the codec's loss), with the ffmpeg the library finds and
// with the bundled @ffmpeg-installer build alone (the CI machine has only that one); the errors for
// inputs that are not videos; and an abort that kills ffmpeg. ffmpeg is required here, as in
// test/unit/video.test.ts: none at all fails these tests (npm ci installs the bundled one).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { type DecodedVideo, type RgbFrames, locateFfmpeg, openVideoWriter, readVideo, requireFfmpeg, resetFfmpegLookup } from '../../lib/video/index.js';
import { FFMPEG_TOOLS, pathWithout } from '../helpers/bare-path.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-readers-cpu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A smooth moving gradient: what x264 at CRF 25 keeps well, so a decoding error cannot hide in codec noise. */
function gradientFrames(count: number, height: number, width: number): RgbFrames {
  const data = new Uint8Array(count * height * width * 3);
  for (let t = 0; t < count; t++)
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const p = ((t * height + y) * width + x) * 3;
        data[p] = 40 + x + 2 * t;
        data[p + 1] = 30 + 2 * y;
        data[p + 2] = 220 - Math.floor(x / 2) - y;
      }
  return { width, height, count, data };
}

function meanAbsoluteError(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

/** Runs `body` with these variables (undefined: unset) and a fresh ffmpeg lookup, then restores both. */
async function withFfmpegEnv<T>(vars: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const assign = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    resetFfmpegLookup();
  };
  assign(vars);
  try {
    return await body();
  } finally {
    assign(saved);
  }
}

const noFfmpegPath = pathWithout(path.join(work, 'path-without-ffmpeg'), [FFMPEG_TOOLS]);
const bundledOnly = { PATH: noFfmpegPath, FFMPEG_PATH: undefined };

const [width, height, count] = [96, 64, 8];
const frames = gradientFrames(count, height, width);
const written = new Map<number, string>();

/** The gradient as an MP4 at this CRF (0: lossless in YUV), written once. No denoise filter: it blends frames, which is the writer's business, not the reader's. */
async function gradientMp4(crf: 0 | 25): Promise<string> {
  let file = written.get(crf);
  if (file === undefined) {
    const writer = openVideoWriter(path.join(work, `gradient-crf${crf}.mp4`), { format: 'mp4', width, height, fps: 25, crf, denoise: false });
    await writer.write(frames);
    file = await writer.finish();
    written.set(crf, file);
  }
  return file;
}

// Bounds, in mean absolute error over all samples (RGB8 levels).
// - Lossless (CRF 0): only the two colour conversions remain: the writer's rgb24 -> yuv420p (ffmpeg's
//   default: limited range, chroma filtered to half size) and the reader's yuv420p -> rgb24 (the
//   reader asks for interpolated chroma and exact rounding). Rounding alone is up to 1.6 levels per
//   sample, about 0.4 on average; the chroma filter on a gradient whose chroma changes by at most
//   1.5 levels per pixel adds little. Measured 0.40 with ffmpeg 5.1 and the bundled 2018 build; bound
//   0.8. Without the reader's flags (each chroma sample for its whole 2x2 block) it measured 1.3.
// - CRF 25 (the writer's default quality): x264's quantisation on top, measured 1.24 with both
//   builds; bound 2.5. An R/B exchange gives a mean error far above that (checked below).
const BOUNDS = { 0: 0.8, 25: 2.5 } as const;

function checkGradient(video: DecodedVideo, crf: 0 | 25, label: string): void {
  expect({ width: video.width, height: video.height, count: video.count, format: video.format, fps: video.fps }, label).toEqual({ width, height, count, format: 'mp4', fps: 25 });
  expect(video.data.length).toBe(count * height * width * 3);
  expect(meanAbsoluteError(video.data, frames.data), `${label}, CRF ${crf}: mean absolute error in RGB8 levels`).toBeLessThanOrEqual(BOUNDS[crf]);
}

describe('reading MP4 through ffmpeg', () => {
  it('reads the MP4 writer output back: frame count, size, rate and pixels within the codec loss', async () => {
    // The ffmpeg the library finds (requireFfmpeg names what to do when there is none).
    const ffmpeg = requireFfmpeg();
    for (const crf of [0, 25] as const) checkGradient(await readVideo(await gradientMp4(crf)), crf, `${ffmpeg.source} ${ffmpeg.version}`);
    const video = await readVideo(await gradientMp4(25));
    const first = await readVideo(await gradientMp4(25), { maxFrames: 3 });
    expect(first.count).toBe(3);
    expect(Buffer.from(first.data).equals(Buffer.from(video.data.subarray(0, 3 * width * height * 3)))).toBe(true);
    // The bound tells defects apart: the frames with R and B exchanged are this far from themselves.
    const swapped = Uint8Array.from(frames.data);
    for (let i = 0; i < swapped.length; i += 3) [swapped[i], swapped[i + 2]] = [frames.data[i + 2]!, frames.data[i]!];
    expect(meanAbsoluteError(swapped, frames.data)).toBeGreaterThan(10 * BOUNDS[25]);
  });

  it('reads it with the bundled ffmpeg when PATH has none', async () => {
    const bundled = locateFfmpeg(bundledOnly).ffmpeg;
    expect(bundled?.source, 'the optional dependency @ffmpeg-installer/ffmpeg is required here (npm ci installs it)').toBe('bundled');
    for (const crf of [0, 25] as const) {
      const file = await gradientMp4(crf);
      const video = await withFfmpegEnv(bundledOnly, async () => {
        expect(requireFfmpeg().source).toBe('bundled');
        return readVideo(file);
      });
      checkGradient(video, crf, `bundled ${bundled!.version}`);
    }
  });

  it('names the file when it is missing, not a video, or has no video stream, and ERR_FFMPEG when ffmpeg is missing', async () => {
    const missing = path.join(work, 'missing.mp4');
    await expect(readVideo(missing)).rejects.toMatchObject({ code: 'ERR_IO', file: missing });
    const text = path.join(work, 'notes.mp4');
    writeFileSync(text, 'this is not a video\n'.repeat(50));
    await expect(readVideo(text)).rejects.toMatchObject({ code: 'ERR_IO', file: text, message: expect.stringMatching(/ffmpeg cannot decode the video \(exit \d+\): \S/) });
    // Sound only: a WAV file has no video stream to map.
    const wav = path.join(work, 'tone.wav');
    const made = spawnSync(requireFfmpeg().path, ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=0.1', wav]);
    expect(made.status, made.stderr?.toString()).toBe(0);
    await expect(readVideo(wav)).rejects.toMatchObject({ code: 'ERR_IO', file: wav });
    const empty = path.join(work, 'empty.webm');
    writeFileSync(empty, '');
    await expect(readVideo(empty)).rejects.toMatchObject({ code: 'ERR_IO', file: empty });
    if (process.getuid?.() !== 0) {
      // (root reads everything, so this part only means something for other users)
      const locked = path.join(work, 'locked.mp4');
      writeFileSync(locked, readFileSync(await gradientMp4(25)));
      chmodSync(locked, 0o000);
      await expect(readVideo(locked)).rejects.toMatchObject({ code: 'ERR_IO', file: locked });
    }
    const broken = path.join(work, 'no-such-ffmpeg');
    const file = await gradientMp4(25);
    await withFfmpegEnv({ FFMPEG_PATH: broken }, async () => {
      await expect(readVideo(file)).rejects.toMatchObject({ code: 'ERR_FFMPEG', file: broken, message: expect.stringContaining('FFMPEG_PATH names an ffmpeg that cannot be run') });
    });
  });

  it('kills ffmpeg when the signal aborts', async () => {
    // A FIFO nobody writes to: ffmpeg blocks opening it and lives until it is killed, so the abort
    // always lands while it runs.
    const fifo = path.join(work, 'never-written.mp4');
    const made = spawnSync('mkfifo', [fifo]);
    expect(made.status, `mkfifo: ${made.stderr?.toString()}`).toBe(0);
    const controller = new AbortController();
    const reading = readVideo(fifo, { signal: controller.signal });
    reading.catch(() => {}); // observed below
    const ffmpegPid = async (): Promise<number | undefined> => {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          if (readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(fifo)) return Number(entry);
        } catch {
          // gone meanwhile
        }
      }
      return undefined;
    };
    let pid: number | undefined;
    for (let i = 0; i < 200 && pid === undefined; i++) {
      pid = await ffmpegPid();
      if (pid === undefined) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(pid, 'an ffmpeg process reading the FIFO').toBeDefined();
    controller.abort(new Error('stop'));
    await expect(reading).rejects.toMatchObject({ code: 'ERR_ABORTED', file: fifo });
    // The promise settles only after ffmpeg exited and was reaped.
    expect(existsSync(`/proc/${pid}`)).toBe(false);
  });
});
