// The execution context: where and how ops run. Every op is enqueued through one (its native twin,
// native/exec_context.h, carries the device, the work and copy streams, a slot for a communication
// stream, the workspace, the cuBLASLt handle and the kernel policy to the launchers).
//
// Which context an op uses: the one made current for the op's device by `context.run(fn)` (scoped
// to fn and everything it awaits, via AsyncLocalStorage, so concurrent jobs in one process can run
// with different kernel choices), else the device's default context (`device.context`).
import { AsyncLocalStorage } from 'node:async_hooks';

import type { NativeContextHandle, NativeCopyEvent, NativeOps } from './addon-types.js';
import type { Device } from './device.js';
import { StepVideoError } from './errors.js';
import type { KernelPolicy } from './kernel-policy.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** The contexts made current by run(), per device. */
const current = new AsyncLocalStorage<ReadonlyMap<Device, ExecutionContext>>();

export class ExecutionContext {
  readonly device: Device;
  /** The kernel choices of the ops enqueued through this context (lib/kernel-policy.ts). */
  readonly policy: Readonly<KernelPolicy>;
  readonly #native: NativeContextHandle;

  /** @internal Use device.context or context.withPolicy(). The native side checks the policy's values. */
  constructor(device: Device, policy: KernelPolicy) {
    this.device = device;
    this.policy = Object.freeze({ ...policy });
    const p = this.policy;
    this.#native = new native.NativeContext(
      device.index, p.attention, p.hopperSchedule, p.hopperStages, p.hopperInAuto, p.conv, p.gemm, p.gemmAutotune, p.fp8FastAccum,
    );
  }

  /** @internal The native ops, bound to this context (lib/ops.ts and lib/kernels/ call them). */
  get ops(): NativeOps {
    return this.#native;
  }

  /** A context on the same device and streams with some kernel choices changed. */
  withPolicy(changes: Partial<KernelPolicy>): ExecutionContext {
    if (!this.device.isCuda && Object.keys(changes).length > 0) {
      throw new StepVideoError('ERR_DEVICE', 'the CPU backend has one kernel per op: no kernel policy to set', { got: this.device.name });
    }
    return new ExecutionContext(this.device, { ...this.policy, ...changes });
  }

  /**
   * Runs `fn` with this context current for its device: every op on that device enqueued by fn,
   * or by anything fn awaits, goes through this context. Other devices keep theirs.
   */
  run<T>(fn: () => T): T {
    const outer = current.getStore();
    const contexts = new Map(outer ?? []);
    contexts.set(this.device, this);
    return current.run(contexts, fn);
  }

  /**
   * Uploads host tensor `src` into `dst` (on this context's device, same dtype and size) after the
   * work enqueued so far, on the copy stream, so that it overlaps the work enqueued next. Returns
   * the event to pass to waitFor() before `dst` is used (null on the CPU, where the copy runs in
   * program order). The copy reads `src` as it is when the copy stream gets to it: its contents must
   * be complete (a host tensor written by Tensor.from is filled on the CPU queue: await
   * Device.cpu.synchronize() first). `src` may be disposed right after the call.
   */
  upload(dst: Tensor, src: Tensor): NativeCopyEvent | null {
    return this.#native.upload(dst.handle, src.handle);
  }

  /** Work enqueued through this context's stream from now on waits for an upload (null: nothing to wait for). */
  waitFor(event: NativeCopyEvent | null): void {
    this.#native.waitFor(event);
  }

  toString(): string {
    return `ExecutionContext(${this.device.name})`;
  }
}

/** The context an op on `device` uses now: the one run() made current, else the device's default. */
export function contextFor(device: Device): ExecutionContext {
  return current.getStore()?.get(device) ?? device.context;
}

/** The native ops of the context current for `device` (the typed op wrappers' one way to native code). */
export function opsOn(device: Device): NativeOps {
  return contextFor(device).ops;
}
