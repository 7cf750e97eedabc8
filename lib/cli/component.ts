// The contract between `stepvideo run <component>` and the model code. A component names its
// inputs (the official forward's argument names), its outputs and options, and runs on host
// tensors read from safetensors files; the CLI does argument parsing, file I/O, validation and
// error reporting around it.
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';
import type { HostTensor, TensorData } from '../io/safetensors.js';

// --model may be the released root or any folder of the layout on the way to the component's own.
export { resolvePartDir } from '../models/layout.js';

export interface ComponentOption {
  name: string;
  type: 'number' | 'string' | 'boolean';
  description: string;
  default?: number | string | boolean;
}

export interface ComponentInput {
  name: string;
  description: string;
  /** Optional inputs may be absent; the component then uses its default. */
  optional?: boolean;
}

export interface ComponentContext {
  /** The --model folder as given: the released layout's root or a folder of it (see resolvePartDir). */
  modelDir: string;
  inputs: ReadonlyMap<string, HostTensor>;
  device: Device;
  /** Compute dtype: f32 (CPU reference numerics) or bf16 (GPU path). */
  dtype: 'f32' | 'bf16';
  options: Readonly<Record<string, number | string | boolean>>;
  signal: AbortSignal;
  /** Progress/info lines for the terminal (stderr). */
  log: (message: string) => void;
}

export interface Component {
  name: string;
  description: string;
  inputs: readonly ComponentInput[];
  outputs: readonly string[];
  options?: readonly ComponentOption[];
  /** Inputs taken by pattern besides the named ones (LoRA tensors, say). */
  acceptsInput?(name: string): boolean;
  run(context: ComponentContext): Promise<Record<string, TensorData>>;
}

/** The named input, or ERR_ARGUMENT naming what is missing. */
export function requireInput(context: ComponentContext, name: string): HostTensor {
  const input = context.inputs.get(name);
  if (input === undefined) {
    throw new StepVideoError('ERR_ARGUMENT', `missing input tensor '${name}'`, { tensor: name, expected: 'a tensor of that name in one of the --inputs files' });
  }
  return input;
}

/** --sequence-parallel and --cfg-parallel of `stepvideo run dit` and `run sample` (lib/models/dit/parallel.ts). */
export const PARALLEL_COMPONENT_OPTIONS: readonly ComponentOption[] = [
  { name: 'sequence-parallel', type: 'number', description: "split each DiT forward's tokens over N ranks (Ulysses; N divides the heads); on one device the ranks simulate N devices" },
  { name: 'cfg-parallel', type: 'boolean', description: 'the conditional and unconditional rows on two groups of ranks at once (needs both: a cfg scale above 1)' },
];

/** "sequence parallel 4 x CFG parallel: 8 ranks on cpu" for the log. */
export function describeParallelism(model: { sequenceParallel: number; cfgParallel: boolean; ranks: number; device: { name: string } }): string {
  const parts = [`sequence parallel ${model.sequenceParallel}`, ...(model.cfgParallel ? ['CFG parallel'] : [])];
  return `${parts.join(' x ')}: ${model.ranks} ranks on ${model.device.name}`;
}
