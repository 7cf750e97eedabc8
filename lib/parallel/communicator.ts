// Collectives between the ranks of one job. One process drives every rank: the ops of a rank are
// enqueued on its device through that device's execution context, and JavaScript only enqueues, so
// one thread keeps N devices busy (as one thread keeps one device busy today); a rank's failure is
// an exception in that one thread, which stops every rank at once. The communicator moves tensors
// between ranks: CopyCommunicator with copies (the CPU simulation of N devices in CI, and ranks that
// share one GPU); an NCCL communicator, on the contexts' communication streams, is the multi-GPU
// implementation of the same interface.
import type { NativeNcclGroup } from '../addon-types.js';
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';
import { native } from '../native.js';
import { Tensor } from '../tensor.js';

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
    checkGrid(parts, this.size);
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

/**
 * The communicator of ranks on distinct CUDA devices: NCCL (loaded at run time, cuda/nccl.h), one
 * communicator per device, collectives on each device's work stream. Creating one without NCCL is
 * ERR_UNSUPPORTED naming what to install.
 */
export class NcclCommunicator implements Communicator {
  readonly size: number;
  readonly devices: readonly Device[];
  readonly #group: NativeNcclGroup;

  constructor(devices: readonly Device[]) {
    if (devices.some((d) => !d.isCuda) || new Set(devices).size !== devices.length) {
      throw new StepVideoError('ERR_ARGUMENT', 'an NCCL communicator has one rank per CUDA device', { got: devices.map((d) => d.name).join(', ') });
    }
    this.size = devices.length;
    this.devices = [...devices];
    this.#group = native.ncclGroupCreate(devices.map((d) => d.index));
  }

  async allToAll(parts: ReadonlyArray<ReadonlyArray<Tensor>>): Promise<Tensor[][]> {
    checkGrid(parts, this.size);
    const received: Tensor[][] = Array.from({ length: this.size }, (_, r) => parts.map((row) => Tensor.empty(row[r]!.shape, row[r]!.dtype, this.devices[r]!)));
    try {
      native.ncclAllToAll(this.#group, parts.map((row) => row.map((t) => t.handle)), received.map((row) => row.map((t) => t.handle)));
    } catch (error) {
      for (const row of received) for (const t of row) t.dispose();
      throw error;
    }
    return received;
  }
}

/**
 * The communicator for ranks on these devices: NCCL where every rank has a CUDA device of its own
 * and NCCL loads; copies otherwise (ranks sharing a device, the CPU, or no NCCL: `onFallback`
 * hears why).
 */
export function communicatorFor(devices: readonly Device[], onFallback?: (why: string) => void): Communicator {
  const distinctGpus = devices.length > 1 && devices.every((d) => d.isCuda) && new Set(devices).size === devices.length;
  if (!distinctGpus) return new CopyCommunicator(devices);
  try {
    return new NcclCommunicator(devices);
  } catch (error) {
    if (!(error instanceof StepVideoError) || error.code !== 'ERR_UNSUPPORTED') throw error;
    onFallback?.(`${error.message}; the ranks exchange by copies through the host meanwhile (slow)`);
    return new CopyCommunicator(devices);
  }
}

/** An all-to-all takes size x size parts. */
function checkGrid(parts: ReadonlyArray<ReadonlyArray<Tensor>>, size: number): void {
  if (parts.length !== size || parts.some((row) => row.length !== size)) {
    throw new StepVideoError('ERR_ARGUMENT', `all-to-all needs ${size} x ${size} parts`, { got: parts.map((row) => row.length) });
  }
}
