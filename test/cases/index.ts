// Every kernel case, for the CPU suite and the GPU suite alike.
import { attentionCases, attentionLargeCases } from './attention.js';
import { attentionBackwardCases } from './attention-backward.js';
import { convCases, convLargeCases } from './conv.js';
import { coreCases } from './core.js';
import { embeddingCases, embeddingLargeCases } from './embedding.js';
import { normCases } from './norm.js';
import { normBackwardCases } from './norm-backward.js';
import { residualCases } from './residual.js';
import { randomCases, randomLargeCases } from './random.js'; import { samplerCases, samplerLargeCases } from './sampler.js';
import { ropeCases, ropeLargeCases } from './split-heads.js';
import { splitHeadsBackwardCases } from './split-heads-backward.js';
import { swigluCases, swigluLargeCases } from './swiglu.js';
import type { LargeCase, OpCase } from './types.js';
import { vaeCases, vaeLargeCases } from './vae.js';
import { edgeCases } from './edges.js';
import { fp8Cases, fp8LargeCases } from './fp8.js'; import { linearCases, linearLargeCases } from './linear.js';

export function allCases(): OpCase[] {
  return [...coreCases(), ...normCases(), ...normBackwardCases(), ...residualCases(), ...attentionCases(), ...attentionBackwardCases(), ...embeddingCases(), ...swigluCases(), ...ropeCases(), ...splitHeadsBackwardCases(), ...randomCases(), ...samplerCases(), ...convCases(), ...vaeCases(), ...edgeCases(), ...fp8Cases(), ...linearCases()];
}

/** Real-size cases the GPU suite runs (compared with the CPU twin on a sample). */
export function largeCases(): LargeCase[] {
  return [...attentionLargeCases(), ...embeddingLargeCases(), ...swigluLargeCases(), ...ropeLargeCases(), ...randomLargeCases(), ...samplerLargeCases(), ...convLargeCases(), ...vaeLargeCases(), ...fp8LargeCases(), ...linearLargeCases()];
}
