// Runs the golden `dit_case` through StepVideoDiT and collects the output and every captured
// intermediate, for the CPU (f32) and GPU (f32, bf16) suites alike.
import { expect } from 'vitest';

import { readSafetensors } from '../../lib/io/safetensors.js';
import type { HostTensor } from '../../lib/io/safetensors.js';
import type { StepVideoDiT } from '../../lib/models/dit/index.js';
import { Tensor } from '../../lib/tensor.js';
import { allFinite, relErr } from './compare.js';
import { casePath } from './golden.js';

export interface Captured {
  shape: number[];
  data: Float32Array;
}

export async function readDiTCase(): Promise<Map<string, HostTensor>> {
  return readSafetensors(casePath('dit_case.safetensors'));
}

/** The case's inputs, uploaded in the model's dtype and device. */
export function uploadDiTInputs(model: StepVideoDiT, golden: Map<string, HostTensor>) {
  const up = (name: string) => {
    const t = golden.get(name)!;
    return Tensor.from(t.data as Float32Array, t.shape, { dtype: model.dtype, device: model.device });
  };
  return {
    latents: up('hidden_states'),
    y: up('encoder_hidden_states'),
    clip: up('encoder_hidden_states_2'),
    mask: golden.get('encoder_attention_mask')!.data as Float32Array,
    timestep: Array.from(golden.get('timestep')!.data as Float32Array),
  };
}

/** One forward over the golden inputs; returns the output and the captured intermediates (read back). */
export async function runDiTCase(model: StepVideoDiT, golden: Map<string, HostTensor>): Promise<{ output: Captured; inter: Map<string, Captured> }> {
  const { latents, y, clip, mask, timestep } = uploadDiTInputs(model, golden);
  const context = model.prepareContext({ y, clip, mask });
  const reads: Array<Promise<[string, Captured]>> = [];
  try {
    const out = await model.forward(latents, timestep, context, {
      capture: (name, t) => {
        const shape = [...t.shape];
        reads.push(t.toFloat32().then((data) => [name, { shape, data }]));
      },
    });
    const output = { shape: [...out.shape], data: await out.toFloat32() };
    out.dispose();
    return { output, inter: new Map(await Promise.all(reads)) };
  } finally {
    for (const t of [latents, y, clip]) t.dispose();
    context.dispose();
  }
}

/**
 * Compares every golden `inter.*` tensor and `output` (layouts as the golden's); returns the rel errors.
 * `tolerance.inter` is one limit for every intermediate, or a limit per golden key (`inter.<name>`).
 */
export function compareDiTCase(
  golden: Map<string, HostTensor>,
  run: { output: Captured; inter: Map<string, Captured> },
  tolerance: { output: number; inter: number | ((name: string) => number) },
  reference = 'output',
): Map<string, number> {
  const errors = new Map<string, number>();
  const check = (name: string, got: Captured | undefined, want: HostTensor, limit: number) => {
    expect(got, `${name} was not captured`).toBeDefined();
    expect(got!.shape, `${name} layout`).toEqual(want.shape);
    expect(allFinite(got!.data), `${name}: non-finite values`).toBe(true);
    const rel = relErr(got!.data, want.data as Float32Array);
    errors.set(name, rel);
    expect(rel, `${name}: rel err ${rel.toExponential(3)} > ${limit.toExponential(3)}`).toBeLessThanOrEqual(limit);
  };
  const interNames = [...golden.keys()].filter((name) => name.startsWith('inter.'));
  expect(interNames.length).toBe(10);
  const interLimit = (name: string) => (typeof tolerance.inter === 'number' ? tolerance.inter : tolerance.inter(name));
  for (const name of interNames) check(name, run.inter.get(name.slice('inter.'.length)), golden.get(name)!, interLimit(name));
  check(reference, run.output, golden.get(reference)!, tolerance.output);
  return errors;
}
