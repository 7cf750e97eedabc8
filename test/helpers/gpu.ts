// The GPU suites run only where a CUDA device answers; elsewhere they are reported as skipped,
// with the reason in the suite name. Outputs are NaN-poisoned at allocation while they run.
//
// STEPVIDEO_REQUIRE_GPU=1 (set by a run whose purpose is the GPU, e.g. the device check): a suite
// that finds no CUDA device fails instead, with the reason no device answered (no driver, a driver
// too old for the addon's cudart, an addon built without CUDA, ...), so a green GPU run always
// means the GPU tests ran.
import { describe, it } from 'vitest';

import { cudaAvailable, cudaUnavailableReason, getDevice } from '../../lib/device.js';
import type { KernelPolicy } from '../../lib/kernel-policy.js';
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

// ---- the emulated CUDA device ----
//
// An addon built with STEPVIDEO_CUDA=emulate runs the real cuda/ sources on the CPU (cuda/emulator/),
// about 1000x slower than a GPU. There the real-size cases are replaced by the largest shape that fits
// the CI time, keeping what each case is for (several key tiles and a ring that wraps, partial last
// tiles, odd sizes, both batch items, masks), and the test or suite name says so with the reason.
// On a real GPU (and on the CPU-only build) nothing changes.

/** True when the CUDA device is the emulated one (native.build.cudaEmulated). */
export const emulatedDevice = gpuAvailable && native.build.cudaEmulated === true;

/**
 * ` [emulated device: <change>]` on the emulated device, '' elsewhere: append it to the name of a test
 * or suite whose shapes `fitEmulated` replaced there.
 */
export function emulatedNote(change: string): string {
  return emulatedDevice ? ` [emulated device: ${change}]` : '';
}

/**
 * `real` on a GPU, `emulated` on the emulated device. `change` says what was replaced and why (e.g.
 * 'N 75,888 -> 768 to fit CI time'); `.note` is `emulatedNote(change)`, for the test name.
 */
export function fitEmulated<T>(real: T, emulated: T, change: string): { value: T; note: string } {
  return emulatedDevice ? { value: emulated, note: emulatedNote(change) } : { value: real, note: '' };
}

/**
 * A test that cannot run on the emulated device at all (its point is a size, a memory or a speed only
 * a GPU has): `it` elsewhere; on the emulated device skipped, with the reason in its name. Prefer
 * shrinking (fitEmulated) wherever a smaller shape keeps what the test is for.
 */
export function itUnlessEmulated(name: string, reason: string, fn: () => Promise<void> | void, timeout?: number): void {
  if (emulatedDevice) it.skip(`${name} [emulated device: skipped, ${reason}]`, fn);
  else it(name, fn, timeout);
}

/** As itUnlessEmulated, for a whole suite (its hooks do not run either where it is skipped). */
export function describeUnlessEmulated(name: string, reason: string, body: () => void): void {
  if (emulatedDevice) describe.skip(`${name} [emulated device: skipped, ${reason}]`, body);
  else describe(name, body);
}

// ---- kernel choices ----

/**
 * Runs fn (sync or async) with these kernel choices on cuda:0: an execution context derived from
 * the current one is current for fn and everything it awaits (lib/context.ts).
 */
export function withPolicy<T>(changes: Partial<KernelPolicy>, fn: () => T): T {
  return getDevice('cuda').withKernelPolicy(changes, fn);
}
