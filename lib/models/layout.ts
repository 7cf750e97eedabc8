// The released folder layout (stepfun-ai/stepvideo-t2v; Turbo is the same): the model root holds
// transformer/, vae/, step_llm/ and hunyuan_clip/ (itself clip_text_encoder/ and tokenizer/).
// A model folder given by the user may be the root or any folder of the layout: each part is
// found from wherever it was pointed, as long as that cannot be mistaken for another part.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { StepVideoError } from '../errors.js';

/** The top-level parts, all of which the pipeline needs. */
export const RELEASED_PARTS = ['transformer', 'vae', 'step_llm', 'hunyuan_clip'] as const;

/** Every folder of the layout, by its path from the root. */
export const LAYOUT_FOLDERS = [...RELEASED_PARTS, 'hunyuan_clip/clip_text_encoder', 'hunyuan_clip/tokenizer'] as const;
export type LayoutFolder = (typeof LAYOUT_FOLDERS)[number];

const FOLDER_NAMES: ReadonlySet<string> = new Set(LAYOUT_FOLDERS.map((folder) => folder.split('/').at(-1)!));

/** 'hunyuan_clip/clip_text_encoder' -> 'the model root, hunyuan_clip/ or hunyuan_clip/clip_text_encoder/'. */
function levelsOf(part: LayoutFolder): string {
  const segments = part.split('/');
  const levels = ['the model root', ...segments.map((_, i) => `${segments.slice(0, i + 1).join('/')}/`)];
  return `${levels.slice(0, -1).join(', ')} or ${levels.at(-1)}`;
}

/**
 * The folder of one part of the layout, found from `dir`: the root, the part's own folder, or a
 * folder on the way to it (hunyuan_clip/ for hunyuan_clip/clip_text_encoder/); `marker` is a file
 * the part holds. `dir` itself is taken for the part only when it is not named after another
 * folder of the layout (step_llm/ also has a config.json). ERR_WEIGHTS_MISSING lists every place
 * looked at.
 */
export function resolvePartDir(dir: string, part: LayoutFolder, marker: string): string {
  const segments = part.split('/');
  const name = path.basename(path.resolve(dir));
  const tried: string[] = [];
  for (let level = 0; level <= segments.length; level++) {
    const isPartItself = level === segments.length;
    if (isPartItself && FOLDER_NAMES.has(name) && name !== segments.at(-1)) continue;
    const candidate = path.join(dir, ...segments.slice(level));
    tried.push(path.join(candidate, marker));
    if (existsSync(path.join(candidate, marker))) return candidate;
  }
  const other = FOLDER_NAMES.has(name) && name !== segments.at(-1) ? `; ${dir} is the layout's ${name}/ folder, not ${part}/` : '';
  throw new StepVideoError('ERR_WEIGHTS_MISSING', `no ${part}/ folder with ${marker} found${other}`, {
    file: dir,
    expected: `--model naming ${levelsOf(part)}`,
    got: `none of ${tried.join(', ')}`,
  });
}

function missingParts(root: string): string[] {
  return RELEASED_PARTS.filter((part) => !existsSync(path.join(root, part)));
}

/**
 * The model root for a folder that is the root or a folder of the layout inside one (transformer/,
 * hunyuan_clip/clip_text_encoder/, ...): the root is recognised by holding all four parts, and is
 * looked for only above folders named as the layout names them.
 */
export function resolveModelRoot(dir: string): string {
  if (!existsSync(dir)) throw new StepVideoError('ERR_WEIGHTS_MISSING', 'model folder not found', { file: dir });
  const missing = missingParts(dir);
  if (missing.length === 0) return dir;
  const looked: string[] = [];
  for (const folder of LAYOUT_FOLDERS) {
    const depth = folder.split('/').length;
    let root = dir;
    for (let i = 0; i < depth; i++) root = path.dirname(root);
    if (path.relative(root, dir).split(path.sep).join('/') !== folder) continue;
    if (missingParts(root).length === 0) return root;
    looked.push(root);
  }
  throw new StepVideoError('ERR_WEIGHTS_MISSING', 'the model folder does not have the released layout', {
    file: dir,
    expected: `transformer/, vae/, step_llm/ and hunyuan_clip/ (as in stepfun-ai/stepvideo-t2v) in it${looked.length > 0 ? ` or in ${looked.join(', ')} above it` : ''}`,
    got: `missing ${missing.map((m) => `${m}/`).join(', ')}`,
  });
}
