// Collectives between the ranks of one job. One process drives every rank: the ops of a rank are
// enqueued on its device through that device's execution context, and JavaScript only enqueues, so
// one thread keeps N devices busy (as one thread keeps one device busy today); a rank's failure is
// an exception in that one thread, which stops every rank at once. The communicator moves tensors
// between ranks: CopyCommunicator with copies (the CPU simulation of N devices in CI, and ranks that
// share one GPU); an NCCL communicator, on the contexts' communication streams, is the multi-GPU
// implementation of the same interface.
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';
import type { Tensor } from '../tensor.js';

export interface Communicator {
  /** Number of ranks. */
  readonly size: number;
  /** The device of each rank (ranks of a simulation may share one). */
  readonly devices: readonly Device[];
  /**
   * All-to-all: parts[s][r] is what rank s sends to rank r (on rank s's device). Returns, for every
   * rank r, the parts from ranks 0..size-1 in rank order, on rank r's device, owned by the caller.
   * The parts sent stay the caller's too.
   */
  allToAll(parts: ReadonlyArray<ReadonlyArray<Tensor>>): Promise<Tensor[][]>;
}

/**
 * A communicator made of copies: every part is copied to its receiver's device (a copy even where
 * sender and receiver share a device, so no two ranks ever hold the same memory, as on N GPUs).
 */
export class CopyCommunicator implements Communicator {
  readonly size: number;
  readonly devices: readonly Device[];

  constructor(devices: readonly Device[]) {
    if (devices.length < 1) throw new StepVideoError('ERR_ARGUMENT', 'a communicator needs at least one rank');
    this.size = devices.length;
    this.devices = [...devices];
  }

  /** `size` ranks on one device: the CPU simulation of several devices, or virtual ranks on one GPU. */
  static virtual(device: Device, size: number): CopyCommunicator {
    if (!Number.isInteger(size) || size < 1) throw new StepVideoError('ERR_ARGUMENT', 'the number of ranks must be a positive integer', { got: size });
    return new CopyCommunicator(Array.from({ length: size }, () => device));
  }

  async allToAll(parts: ReadonlyArray<ReadonlyArray<Tensor>>): Promise<Tensor[][]> {
    if (parts.length !== this.size || parts.some((row) => row.length !== this.size)) {
      throw new StepVideoError('ERR_ARGUMENT', `all-to-all needs ${this.size} x ${this.size} parts`, { got: parts.map((row) => row.length) });
    }
    const received: Tensor[][] = Array.from({ length: this.size }, () => []);
    try {
      for (let r = 0; r < this.size; r++) {
        for (let s = 0; s < this.size; s++) received[r]!.push(await parts[s]![r]!.to(this.devices[r]!));
      }
    } catch (error) {
      for (const row of received) for (const t of row) t.dispose();
      throw error;
    }
    return received;
  }
}
