#!/usr/bin/env node
// The stepvideo command line. Every failure ends as one line on stderr naming what went wrong and
// where, with exit code 1 (stack traces only with --verbose); Ctrl-C aborts the running job
// cleanly (exit 130), a second Ctrl-C exits at once.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { StepVideoError, isStepVideoError } from '../errors.js';
import type { CommandContext } from './commands/types.js';

type Command = (argv: readonly string[], context: CommandContext) => Promise<number>;

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  generate: { summary: 'generate a video from a prompt', load: async () => (await import('./commands/generate.js')).generateCommand },
  serve: { summary: 'serve video jobs (the OpenAI Videos API), captions and VAE decoding over HTTP', load: async () => (await import('./commands/serve.js')).serveCommand },
  worker: { summary: 'run the jobs of a Redis queue that `serve --queue` API nodes fill', load: async () => (await import('./commands/worker.js')).workerCommand },
  'calibrate-cache': { summary: "fit the teacache step cache's coefficients on a model", load: async () => (await import('./commands/calibrate-cache.js')).calibrateCacheCommand },
  dpo: { summary: 'fine-tune the DiT on preference pairs with a LoRA (Video-DPO)', load: async () => (await import('./commands/dpo.js')).dpoCommand },
  eval: { summary: 'generate the videos of a prompt list (Step-Video-T2V-Eval) with a report', load: async () => (await import('./commands/eval.js')).evalCommand },
  run: { summary: 'run one model component on tensors from safetensors files', load: async () => (await import('./commands/run.js')).runCommand },
  tokenize: { summary: 'tokenize texts with the Step-LLM or CLIP tokenizer', load: async () => (await import('./commands/tokenize.js')).tokenizeCommand },
  info: { summary: 'show the build, devices and backends', load: async () => (await import('./commands/info.js')).infoCommand },
};

function version(): string {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: stepvideo <command> [options]\n\ncommands:\n${rows.join('\n')}\n\nstepvideo <command> --help shows a command's options.`;
}

export function formatError(error: unknown, verbose: boolean): string {
  if (isStepVideoError(error)) {
    const line = `stepvideo: error [${error.code}]: ${error.message.replace(/\n+/g, ' | ')}`;
    return verbose && error.stack ? `${line}\n${error.stack}` : line;
  }
  const message = error instanceof Error ? error.message : String(error);
  const line = `stepvideo: error [ERR_INTERNAL]: ${message.replace(/\n+/g, ' | ')}`;
  return verbose && error instanceof Error && error.stack ? `${line}\n${error.stack}` : line;
}

export async function main(argv: readonly string[]): Promise<number> {
  const verbose = argv.includes('--verbose');
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\nstepvideo: interrupted, stopping (Ctrl-C again to exit at once)\n');
      controller.abort(new StepVideoError('ERR_ABORTED', 'interrupted by the user'));
    } else {
      process.exit(130);
    }
  };
  // SIGTERM (process managers, `kill`) stops the same way: serve and worker shut down cleanly on it.
  let terminations = 0;
  const onSigterm = () => {
    terminations++;
    if (terminations === 1) controller.abort(new StepVideoError('ERR_ABORTED', 'terminated (SIGTERM)'));
    else process.exit(143);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  const context: CommandContext = {
    stdout: (text) => process.stdout.write(`${text}\n`),
    stderr: (text) => process.stderr.write(`${text}\n`),
    signal: controller.signal,
    interactive: process.stderr.isTTY === true,
  };
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      context.stdout(usage());
      return name === undefined ? 1 : 0;
    }
    if (name === '--version' || name === '-v') {
      context.stdout(version());
      return 0;
    }
    const command = commands[name];
    if (command === undefined) throw new StepVideoError('ERR_USAGE', `unknown command '${name}'`, { expected: Object.keys(commands).join(', ') });
    return await (await command.load())(rest, context);
  } catch (error) {
    context.stderr(formatError(error, verbose));
    return isStepVideoError(error, 'ERR_ABORTED') ? 130 : 1;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
  }
}

const invokedDirectly = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === (await import('node:fs')).realpathSync(process.argv[1]);
if (invokedDirectly) {
  process.on('uncaughtException', (error) => {
    process.stderr.write(`${formatError(error, process.argv.includes('--verbose'))}\n`);
    process.exit(1);
  });
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`${formatError(error, process.argv.includes('--verbose'))}\n`);
    process.exit(1);
  });
  const code = await main(process.argv.slice(2));
  // Let stdout/stderr drain, then exit with the command's status (pending GPU work is not awaited).
  process.exitCode = code;
  setImmediate(() => process.exit(code));
}
