// The GPU suites run only where a CUDA device answers; elsewhere they are reported as skipped,
// with the reason in the suite name. Outputs are NaN-poisoned at allocation while they run.
import { describe } from 'vitest';

import { cudaAvailable, cudaUnavailableReason } from '../../lib/device.js';
import { native } from '../../lib/native.js';

export const gpuAvailable = cudaAvailable();
export const gpuSkipReason = gpuAvailable ? '' : cudaUnavailableReason() || 'no CUDA device';

export function describeGpu(name: string, body: () => void): void {
  if (!gpuAvailable) {
    describe.skip(`${name} [skipped: ${gpuSkipReason}]`, body);
    return;
  }
  native.setPoison(true);
  describe(name, body);
}
