// flowMatchSigmas against the official scheduler's sigmas (cases/scheduler.safetensors) for every
// stored (steps, shift): within 1e-6 absolute, and in fact the identical float32 values.
import { beforeAll, describe, expect, it } from 'vitest';

import { type HostTensor, readSafetensors } from '../../lib/io/safetensors.js';
import { flowMatchSigmas, flowMatchTimesteps } from '../../lib/sampler/scheduler.js';
import { maxAbsErr } from '../helpers/compare.js';
import { casePath, requireGolden } from '../helpers/golden.js';

// The schedules the golden manifest documents; the file must hold exactly these.
const DOCUMENTED = ['sigmas_15_17', 'sigmas_30_13', 'sigmas_3_13', 'sigmas_50_13'];

describe.runIf(requireGolden())('flow-matching schedule vs the official scheduler', () => {
  // Read in beforeAll, not while collecting: without the goldens the suite is skipped, not an ENOENT.
  let stored: Map<string, HostTensor>;
  beforeAll(async () => {
    stored = await readSafetensors(casePath('scheduler.safetensors'));
  });

  it('has the four documented schedules', () => {
    const keys = [...stored.keys()].filter((k) => /^sigmas_\d+_\d+(\.\d+)?$/.test(k));
    expect(keys.sort()).toEqual(DOCUMENTED);
  });

  for (const key of DOCUMENTED) {
    const [, steps, shift] = key.split('_').map(Number) as [number, number, number];
    it(`${key}: same float32 values`, () => {
      expect(stored.has(key), `${key} in scheduler.safetensors`).toBe(true);
      const expected = stored.get(key)!.data as Float32Array;
      const sigmas = flowMatchSigmas(steps, shift);
      expect(sigmas.length).toBe(expected.length);
      const error = maxAbsErr(sigmas, expected);
      expect(error).toBeLessThanOrEqual(1e-6);
      // torch's symmetric linspace and float32 shift, reproduced: not one bit differs.
      expect(Array.from(new Uint32Array(sigmas.buffer))).toEqual(Array.from(new Uint32Array(expected.buffer, expected.byteOffset, expected.length)));
      expect(Array.from(flowMatchTimesteps(steps, shift))).toEqual(Array.from(expected.subarray(0, steps)));
    });
  }
});
