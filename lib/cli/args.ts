// A small, strict command-line parser: `--name value`, `--name=value`, repeatable options, flags.
// Unknown options and missing values are usage errors (ERR_USAGE) that name the option.
import { StepVideoError } from '../errors.js';

export interface OptionSpec {
  name: string;
  type: 'string' | 'number' | 'integer' | 'boolean';
  description: string;
  /** May be given several times; the value is then an array in order of appearance. */
  repeatable?: boolean;
  default?: string | number | boolean;
  /** Allowed values (strings). */
  choices?: readonly string[];
  /** Shown in help, e.g. "FILE". */
  placeholder?: string;
}

export interface ParsedArgs {
  positionals: string[];
  options: Record<string, string | number | boolean | Array<string | number>>;
}

function convert(spec: OptionSpec, raw: string): string | number {
  if (spec.type === 'number' || spec.type === 'integer') {
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || (spec.type === 'integer' && !Number.isInteger(value))) {
      throw new StepVideoError('ERR_USAGE', `option --${spec.name} needs ${spec.type === 'integer' ? 'an integer' : 'a number'}`, { got: raw });
    }
    return value;
  }
  if (spec.choices && !spec.choices.includes(raw)) {
    throw new StepVideoError('ERR_USAGE', `option --${spec.name} has an unknown value`, { expected: spec.choices.join(' | '), got: raw });
  }
  return raw;
}

export function parseArgs(argv: readonly string[], specs: readonly OptionSpec[]): ParsedArgs {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const positionals: string[] = [];
  const options: ParsedArgs['options'] = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = byName.get(name);
    if (spec === undefined) {
      throw new StepVideoError('ERR_USAGE', `unknown option --${name}`, { expected: specs.map((s) => `--${s.name}`).join(', ') || 'no options' });
    }
    let value: string | number | boolean;
    if (spec.type === 'boolean') {
      if (eq !== -1) {
        const raw = arg.slice(eq + 1);
        if (raw !== 'true' && raw !== 'false') throw new StepVideoError('ERR_USAGE', `option --${name} is a flag`, { expected: 'true or false', got: raw });
        value = raw === 'true';
      } else {
        value = true;
      }
    } else {
      let raw: string | undefined;
      if (eq !== -1) raw = arg.slice(eq + 1);
      else {
        raw = argv[i + 1];
        if (raw === undefined || (raw.startsWith('--') && raw.length > 2)) throw new StepVideoError('ERR_USAGE', `option --${name} needs a value`);
        i++;
      }
      value = convert(spec, raw);
    }
    if (spec.repeatable) {
      const list = (options[name] as Array<string | number> | undefined) ?? [];
      list.push(value as string | number);
      options[name] = list;
    } else {
      if (name in options) throw new StepVideoError('ERR_USAGE', `option --${name} given twice`);
      options[name] = value;
    }
  }
  for (const spec of specs) {
    if (!(spec.name in options) && spec.default !== undefined) options[spec.name] = spec.default;
  }
  return { positionals, options };
}

export function requireOption<T extends string | number>(parsed: ParsedArgs, name: string): T {
  const value = parsed.options[name];
  if (value === undefined) throw new StepVideoError('ERR_USAGE', `missing required option --${name}`);
  return value as T;
}

export function formatOptions(specs: readonly OptionSpec[]): string {
  const rows = specs.map((s) => {
    const left = `--${s.name}${s.type === 'boolean' ? '' : ` <${s.placeholder ?? (s.choices ? s.choices.join('|') : s.type === 'string' ? 'value' : 'n')}>`}`;
    const right = s.description + (s.default !== undefined ? ` (default ${String(s.default)})` : '') + (s.repeatable ? ' (repeatable)' : '');
    return [left, right] as const;
  });
  const width = Math.max(0, ...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`).join('\n');
}
