// `stepvideo run <component>`: loads one component from a folder in the released layout, feeds it
// tensors read by name from safetensors files, writes its outputs by name.
import { parseDType } from '../../dtype.js';
import { type Device, getDevice } from '../../device.js';
import { StepVideoError } from '../../errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { defaultComputeDType } from '../../models/compute-dtype.js';
import { type OptionSpec, type ParsedArgs, formatOptions, parseArgs, requireOption } from '../args.js';
import type { Component } from '../component.js';
import { componentLoaders, componentNames } from '../components/index.js';
import type { CommandContext } from './types.js';

const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: 'model', type: 'string', description: 'model folder in the released layout', placeholder: 'DIR' },
  { name: 'inputs', type: 'string', description: 'safetensors file with input tensors (a name found in an earlier file wins)', repeatable: true, placeholder: 'FILE' },
  { name: 'output', type: 'string', description: 'safetensors file to write the outputs to', placeholder: 'FILE' },
  { name: 'device', type: 'string', description: 'cpu or cuda (default: cuda when a GPU answers)', choices: ['cpu', 'cuda'] },
  { name: 'dtype', type: 'string', description: 'compute precision (default: float32 on cpu, bfloat16 on cuda)', choices: ['float32', 'bfloat16'] },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export function runUsage(component?: Component): string {
  const head = 'usage: stepvideo run <component> --model <DIR> --inputs <FILE> [--inputs <FILE>] --output <FILE> [--device cpu|cuda] [--dtype float32|bfloat16] [component options]';
  if (component === undefined) return `${head}\n\ncomponents: ${componentNames().join(', ')}\n\n${formatOptions(COMMON_OPTIONS)}`;
  const inputs = component.inputs.map((i) => `  ${i.name}${i.optional ? ' (optional)' : ''}: ${i.description}`).join('\n');
  const extra = component.options?.length ? `\n\n${component.name} options:\n${formatOptions(componentOptionSpecs(component))}` : '';
  return `${head}\n\n${component.name}: ${component.description}\n\ninputs:\n${inputs}\n\noutputs: ${component.outputs.join(', ')}${extra}`;
}

function componentOptionSpecs(component: Component): OptionSpec[] {
  return (component.options ?? []).map((o) => ({ name: o.name, type: o.type, description: o.description, ...(o.default !== undefined ? { default: o.default } : {}) }));
}

function isFloatArray(data: HostTensor['data']): data is Float32Array {
  return data instanceof Float32Array;
}

/** Rejects NaN/Inf in float inputs, naming the file and tensor. */
function checkFinite(name: string, tensor: HostTensor, file: string): void {
  if (tensor.dtype === 'f32' && isFloatArray(tensor.data)) {
    const index = tensor.data.findIndex((v) => !Number.isFinite(v));
    if (index !== -1) throw new StepVideoError('ERR_NOT_FINITE', `input contains ${tensor.data[index]} at element ${index}`, { tensor: name, file });
  } else if (tensor.dtype === 'bf16' || tensor.dtype === 'f16') {
    const bits = tensor.data as Uint16Array;
    const exponentMask = tensor.dtype === 'bf16' ? 0x7f80 : 0x7c00;
    const index = bits.findIndex((b) => (b & exponentMask) === exponentMask);
    if (index !== -1) throw new StepVideoError('ERR_NOT_FINITE', `input contains a non-finite value at element ${index}`, { tensor: name, file });
  }
}

export async function readInputs(files: readonly string[], wanted: { has(name: string): boolean }): Promise<Map<string, HostTensor>> {
  const inputs = new Map<string, HostTensor>();
  for (const file of files) {
    const tensors = await readSafetensors(file);
    for (const [name, tensor] of tensors) {
      if (!wanted.has(name) || inputs.has(name)) continue; // extra tensors ignored; earlier files win
      checkFinite(name, tensor, file);
      inputs.set(name, tensor);
    }
  }
  return inputs;
}

export function resolveComputeDevice(parsed: ParsedArgs): { device: Device; dtype: 'f32' | 'bf16' } {
  const device = getDevice((parsed.options.device as 'cpu' | 'cuda' | undefined) ?? undefined);
  const requested = parsed.options.dtype as string | undefined;
  const dtype = requested ? parseDType(requested) : defaultComputeDType(device);
  if (dtype !== 'f32' && dtype !== 'bf16') throw new StepVideoError('ERR_USAGE', 'unsupported --dtype', { expected: 'float32 or bfloat16', got: requested });
  if (dtype === 'bf16' && !device.isCuda) {
    throw new StepVideoError('ERR_UNSUPPORTED', 'the CPU backend computes in float32; use --dtype float32 or --device cuda');
  }
  return { device, dtype };
}

export async function runCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    context.stdout(runUsage());
    return name === undefined ? 1 : 0;
  }
  const loader = componentLoaders[name];
  if (loader === undefined) {
    throw new StepVideoError('ERR_USAGE', `unknown component '${name}'`, { expected: componentNames().join(', ') });
  }
  const component = await loader();
  if (rest.includes('--help') || rest.includes('-h')) {
    context.stdout(runUsage(component));
    return 0;
  }
  const parsed = parseArgs(rest, [...COMMON_OPTIONS, ...componentOptionSpecs(component)]);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const modelDir = requireOption<string>(parsed, 'model');
  const inputFiles = (parsed.options.inputs as string[] | undefined) ?? [];
  if (inputFiles.length === 0) throw new StepVideoError('ERR_USAGE', 'missing required option --inputs');
  const outputFile = requireOption<string>(parsed, 'output');
  const { device, dtype } = resolveComputeDevice(parsed);

  const named = new Set(component.inputs.map((i) => i.name));
  const wanted = { has: (name: string) => named.has(name) || (component.acceptsInput?.(name) ?? false) };
  const inputs = await readInputs(inputFiles, wanted);
  for (const input of component.inputs) {
    if (!input.optional && !inputs.has(input.name)) {
      throw new StepVideoError('ERR_ARGUMENT', `missing input tensor '${input.name}'`, { tensor: input.name, expected: `a tensor of that name in ${inputFiles.join(', ')}` });
    }
  }
  const options: Record<string, number | string | boolean> = {};
  for (const spec of component.options ?? []) {
    const value = parsed.options[spec.name];
    if (value !== undefined) options[spec.name] = value as number | string | boolean;
  }
  const started = performance.now();
  const outputs = await component.run({ modelDir, inputs, device, dtype, options, signal: context.signal, log: context.stderr });
  await writeSafetensors(outputFile, outputs);
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  const summary = Object.entries(outputs).map(([n, t]) => `${n} [${t.shape.join(', ')}]`).join(', ');
  context.stderr(`stepvideo run ${component.name}: ${summary} -> ${outputFile} (${device.name}, ${dtype === 'f32' ? 'float32' : 'bfloat16'}, ${seconds} s)`);
  return 0;
}
