// `stepvideo generate`: filled in by the pipeline (issue 7).
import { StepVideoError } from '../../errors.js';
import type { CommandContext } from './types.js';

export async function generateCommand(_argv: readonly string[], _context: CommandContext): Promise<number> {
  throw new StepVideoError('ERR_UNSUPPORTED', 'stepvideo generate is not available yet in this version; use `stepvideo run <component>`');
}
