// Where the golden reference folders live, and how a suite behaves when they are absent.
// Default: ../shared/golden beside the project root. STEPVIDEO_GOLDEN_DIR overrides it.
// With STEPVIDEO_REQUIRE_GOLDEN=1 (CI) a missing folder fails the suite instead of skipping it.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const goldenRoot = process.env.STEPVIDEO_GOLDEN_DIR
  ? path.resolve(process.env.STEPVIDEO_GOLDEN_DIR)
  : path.resolve(projectRoot, '..', 'shared', 'golden');

/** Folder of the tiny model set: transformer/, vae/, step_llm/, hunyuan_clip/, cases/. */
export const tinyModelDir = path.join(goldenRoot, 'stepvideo-tiny');
export const casesDir = path.join(tinyModelDir, 'cases');

export const goldenRequired = process.env.STEPVIDEO_REQUIRE_GOLDEN === '1';
export const goldenPresent = existsSync(path.join(tinyModelDir, 'manifest.json'));

/**
 * Call at the top of a golden suite: returns true when the suite should run. When the goldens are
 * missing it throws if they are required (so CI goes red) and otherwise returns false so the
 * suite can be skipped with the reason printed.
 */
export function requireGolden(): boolean {
  if (goldenPresent) return true;
  const message = `golden references not found at ${tinyModelDir} (set STEPVIDEO_GOLDEN_DIR)`;
  if (goldenRequired) throw new Error(`${message}; STEPVIDEO_REQUIRE_GOLDEN=1 makes this a failure`);
  console.warn(`skipping golden suite: ${message}`);
  return false;
}

export function casePath(name: string): string {
  return path.join(casesDir, name);
}
