import { describe, expect, it } from 'vitest';

import { type OptionSpec, parseArgs } from '../../lib/cli/args.js';
import { isStepVideoError } from '../../lib/errors.js';

const specs: OptionSpec[] = [
  { name: 'model', type: 'string', description: '' },
  { name: 'inputs', type: 'string', description: '', repeatable: true },
  { name: 'steps', type: 'integer', description: '', default: 50 },
  { name: 'cfg-scale', type: 'number', description: '' },
  { name: 'device', type: 'string', description: '', choices: ['cpu', 'cuda'] },
  { name: 'turbo', type: 'boolean', description: '' },
];

function usageError(argv: string[]): string {
  try {
    parseArgs(argv, specs);
  } catch (error) {
    expect(isStepVideoError(error, 'ERR_USAGE')).toBe(true);
    return (error as Error).message;
  }
  throw new Error('no error');
}

describe('parseArgs', () => {
  it('reads values, repeats, flags, defaults and positionals', () => {
    const parsed = parseArgs(['dit', '--model', 'm', '--inputs=a', '--inputs', 'b', '--cfg-scale', '7.5', '--turbo', 'x'], specs);
    expect(parsed.positionals).toEqual(['dit', 'x']);
    expect(parsed.options).toEqual({ model: 'm', inputs: ['a', 'b'], 'cfg-scale': 7.5, turbo: true, steps: 50 });
  });

  it('names the problem in usage errors', () => {
    expect(usageError(['--frobnicate'])).toContain('--frobnicate');
    expect(usageError(['--model'])).toContain('needs a value');
    expect(usageError(['--model', '--turbo'])).toContain('needs a value');
    expect(usageError(['--steps', '2.5'])).toContain('integer');
    expect(usageError(['--cfg-scale', 'abc'])).toContain('number');
    expect(usageError(['--device', 'tpu'])).toContain('cpu | cuda');
    expect(usageError(['--model', 'a', '--model', 'b'])).toContain('twice');
    expect(usageError(['--turbo=yes'])).toContain('flag');
  });

  it('keeps negative numbers as values and treats -- as the end of options', () => {
    expect(parseArgs(['--cfg-scale', '-1'], specs).options['cfg-scale']).toBe(-1);
    expect(parseArgs(['--', '--model'], specs).positionals).toEqual(['--model']);
  });
});
