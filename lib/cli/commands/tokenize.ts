// `stepvideo tokenize`: a JSON array of strings in, `{ "input_ids": [[...]], "attention_mask": [[...]] }` out.
import { readFile } from 'node:fs/promises';

import { StepVideoError, asStepVideoError } from '../../errors.js';
import { loadTokenizer } from '../../tokenizers/index.js';
import { writeFileAtomic } from '../../util/files.js';
import { type OptionSpec, formatOptions, parseArgs, requireOption } from '../args.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  { name: 'kind', type: 'string', description: 'which tokenizer', choices: ['step-llm', 'clip'] },
  { name: 'tokenizer', type: 'string', description: 'step-llm: the SentencePiece .model file; clip: the tokenizer folder or vocab.txt', placeholder: 'PATH' },
  { name: 'input', type: 'string', description: 'JSON file holding an array of strings', placeholder: 'FILE' },
  { name: 'output', type: 'string', description: 'JSON file to write ids and masks to', placeholder: 'FILE' },
  { name: 'max-length', type: 'integer', description: 'padded length (default 320 for step-llm, 77 for clip)' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export const tokenizeUsage = `usage: stepvideo tokenize --kind step-llm|clip --tokenizer <PATH> --input <texts.json> --output <ids.json> [--max-length N]\n\n${formatOptions(OPTIONS)}`;

export async function tokenizeCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(tokenizeUsage);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const kind = requireOption<'step-llm' | 'clip'>(parsed, 'kind');
  const tokenizerPath = requireOption<string>(parsed, 'tokenizer');
  const inputFile = requireOption<string>(parsed, 'input');
  const outputFile = requireOption<string>(parsed, 'output');
  const maxLength = parsed.options['max-length'] as number | undefined;
  if (maxLength !== undefined && (maxLength < 2 || maxLength > 1_000_000)) {
    throw new StepVideoError('ERR_USAGE', 'option --max-length out of range', { expected: '2 .. 1000000', got: maxLength });
  }
  let texts: unknown;
  try {
    texts = JSON.parse(await readFile(inputFile, 'utf8'));
  } catch (error) {
    throw asStepVideoError(error, error instanceof SyntaxError ? 'ERR_ARGUMENT' : 'ERR_IO', 'cannot read the input texts', { file: inputFile });
  }
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) {
    throw new StepVideoError('ERR_ARGUMENT', 'input must be a JSON array of strings', { file: inputFile });
  }
  const tokenizer = loadTokenizer(kind, tokenizerPath);
  const batch = tokenizer.encodeBatch(texts as string[], maxLength);
  await writeFileAtomic(outputFile, JSON.stringify(batch));
  context.stderr(`stepvideo tokenize: ${texts.length} text(s) -> ${outputFile}`);
  return 0;
}
