// Where a generated video goes and in which format: --format, the --out extension, or the
// official default name (the first 50 characters of the prompt and the time).
import path from 'node:path';

import { StepVideoError } from '../errors.js';
import { formatFromPath } from '../pipeline/video.js';
import type { VideoFormat } from '../video/writers.js';

/** The official file name: the first 50 characters of the prompt, then the date and time. */
export function defaultOutputName(prompt: string, extension: string, now = new Date()): string {
  const stem = prompt.slice(0, 50).replace(/[\\/:*?"<>|\u0000-\u001f]/g, '_').trim() || 'video';
  const stamp = now.toISOString().replace(/\..*$/, '').replace(/[-:]/g, '').replace('T', '-');
  return `${stem}-${stamp}${extension}`;
}

/** The format of an output: --format, else the --out extension, else mp4; a contradiction is ERR_USAGE. */
export function resolveFormat(format: string | undefined, out: string | undefined): VideoFormat {
  let fromPath: VideoFormat | undefined;
  if (out !== undefined) {
    try {
      fromPath = formatFromPath(out);
    } catch {
      fromPath = undefined;
    }
  }
  if (format !== undefined) {
    if (out !== undefined && path.extname(out) !== '' && fromPath !== format) {
      throw new StepVideoError('ERR_USAGE', `--out ${out} does not fit --format ${format}`, { expected: format === 'png' ? 'a folder name (no extension)' : `a .${format} file` });
    }
    return format as VideoFormat;
  }
  if (out !== undefined && fromPath === undefined) {
    throw new StepVideoError('ERR_USAGE', `cannot tell the format from --out ${out}`, { expected: 'a .mp4 or .y4m file, a folder name for PNG frames, or --format' });
  }
  return fromPath ?? 'mp4';
}
