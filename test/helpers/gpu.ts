// The GPU suites run only where a CUDA device answers; elsewhere they are reported as skipped,
// with the reason in the suite name. Outputs are NaN-poisoned at allocation while they run.
//
// STEPVIDEO_REQUIRE_GPU=1 (set by a run whose purpose is the GPU, e.g. the device check): a suite
// that finds no CUDA device fails instead, with the reason no device answered (no driver, a driver
// too old for the addon's cudart, an addon built without CUDA, ...), so a green GPU run always
// means the GPU tests ran.
import { describe, it } from 'vitest';

import { cudaAvailable, cudaUnavailableReason } from '../../lib/device.js';
import { native } from '../../lib/native.js';

export const gpuAvailable = cudaAvailable();
export const gpuSkipReason = gpuAvailable ? '' : cudaUnavailableReason() || 'no CUDA device';
export const gpuRequired = process.env.STEPVIDEO_REQUIRE_GPU === '1';

export function describeGpu(name: string, body: () => void): void {
  if (!gpuAvailable) {
    if (gpuRequired) {
      // One failing test in place of the suite (its body would only fail at its first CUDA call).
      describe(name, () => {
        it('finds a CUDA device (STEPVIDEO_REQUIRE_GPU=1)', () => {
          throw new Error(`no CUDA device answers: ${gpuSkipReason}; STEPVIDEO_REQUIRE_GPU=1 makes this a failure`);
        });
      });
      return;
    }
    describe.skip(`${name} [skipped: ${gpuSkipReason}]`, body);
    return;
  }
  native.setPoison(true);
  describe(name, body);
}
