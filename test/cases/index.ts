// Every kernel case, for the CPU suite and the GPU suite alike.
import { attentionCases } from './attention.js';
import { coreCases } from './core.js';
import { normCases } from './norm.js';
import type { LargeCase, OpCase } from './types.js';

export function allCases(): OpCase[] {
  return [...coreCases(), ...normCases(), ...attentionCases()];
}

/** Real-size cases the GPU suite runs (compared with the CPU twin on a sample). */
export function largeCases(): LargeCase[] {
  return [];
}
