// `stepvideo serve`: the HTTP server over one loaded pipeline (see lib/server/index.ts for the
// routes). Prints the base URL on stdout once listening; Ctrl-C cancels the jobs and shuts down
// (exit 130).
import { StepVideoError } from '../../errors.js';
import { DEFAULT_LIMITS, createStepVideoServer } from '../../server/index.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { MODEL_OPTIONS, describeDiTWeights, loadPipeline } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS,
  { name: 'host', type: 'string', description: 'address to bind (use 0.0.0.0 to accept other machines)', default: '127.0.0.1', placeholder: 'ADDR' },
  { name: 'port', type: 'integer', description: 'port (0: any free port)', default: 8080, placeholder: 'N' },
  { name: 'results', type: 'string', description: 'folder for finished videos (default: a temporary folder, removed on exit)', placeholder: 'DIR' },
  { name: 'max-queue', type: 'integer', description: 'jobs allowed to wait', default: DEFAULT_LIMITS.maxQueued, placeholder: 'N' },
  { name: 'max-frames', type: 'integer', description: 'largest frames a job may ask for', default: DEFAULT_LIMITS.maxFrames, placeholder: 'N' },
  { name: 'max-size', type: 'integer', description: 'largest height/width a job may ask for', default: DEFAULT_LIMITS.maxSize, placeholder: 'N' },
  { name: 'max-steps', type: 'integer', description: 'largest steps a job may ask for', default: DEFAULT_LIMITS.maxSteps, placeholder: 'N' },
  { name: 'quiet', type: 'boolean', description: 'no per-job log lines' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export async function serveCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(`usage: stepvideo serve [options]\n\n${formatOptions(OPTIONS)}`);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const o = parsed.options;
  const port = o.port as number;
  if (port < 0 || port > 65535) throw new StepVideoError('ERR_USAGE', 'option --port must be in [0, 65535]', { got: port });
  for (const name of ['max-queue', 'max-frames', 'max-size', 'max-steps']) {
    if ((o[name] as number) < 1) throw new StepVideoError('ERR_USAGE', `option --${name} must be at least 1`, { got: o[name] });
  }

  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const pipeline = await loadPipeline(parsed, context, reporter);
  reporter.finish();
  const server = createStepVideoServer(pipeline, {
    host: o.host as string,
    port,
    ...(o.results !== undefined ? { resultsDir: o.results as string } : {}),
    limits: { maxQueued: o['max-queue'] as number, maxFrames: o['max-frames'] as number, maxSize: o['max-size'] as number, maxSteps: o['max-steps'] as number },
    ...(o.quiet === true ? {} : { log: (line: string) => context.stderr(`stepvideo serve: ${line}`) }),
  });
  try {
    const url = await server.listen();
    context.stderr(`stepvideo serve: listening on ${url} (${pipeline.device.name}${describeDiTWeights(pipeline)}${pipeline.builtin ? ', built-in test model' : ''}); Ctrl-C stops`);
    context.stdout(url);
    await new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      else context.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    context.stderr('stepvideo serve: shutting down');
    return 130;
  } finally {
    await server.close();
    pipeline.dispose();
  }
}
