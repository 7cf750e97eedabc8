// flowMatchSigmas against the official scheduler's sigmas (cases/scheduler.safetensors) for every
// stored (steps, shift): within 1e-6 absolute, and in fact the identical float32 values.
import { describe, expect, it } from 'vitest';

import { readSafetensors } from '../../lib/io/safetensors.js';
import { flowMatchSigmas, flowMatchTimesteps } from '../../lib/sampler/scheduler.js';
import { maxAbsErr } from '../helpers/compare.js';
import { casePath, requireGolden } from '../helpers/golden.js';

describe.runIf(requireGolden())('flow-matching schedule vs the official scheduler', async () => {
  const stored = await readSafetensors(casePath('scheduler.safetensors'));
  const keys = [...stored.keys()].filter((k) => /^sigmas_\d+_\d+(\.\d+)?$/.test(k));

  it('has the four documented schedules', () => {
    expect(keys.sort()).toEqual(['sigmas_15_17', 'sigmas_30_13', 'sigmas_3_13', 'sigmas_50_13']);
  });

  for (const key of keys) {
    const [, steps, shift] = key.split('_').map(Number) as [number, number, number];
    it(`${key}: same float32 values`, () => {
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
