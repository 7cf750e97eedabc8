// `stepvideo serve`: the HTTP server (see lib/server/index.ts for the routes). Without --queue it
// loads the pipeline and runs every job in this process; with --queue redis://… it is a stateless
// API node that loads no model and puts jobs on the Redis queue for `stepvideo worker` processes.
// Prints the base URL on stdout once listening; Ctrl-C or SIGTERM shuts down.
import { StepVideoError } from '../../errors.js';
import { DEFAULT_LIMITS, StepVideoServer, createStepVideoServer } from '../../server/index.js';
import { QueueBackend } from '../../server/queue/client.js';
import { redactRedisUrl } from '../../server/queue/connection.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { MODEL_OPTIONS, describeDiTWeights, loadPipeline } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import { PREVIEWS_OPTION, QUEUE_PREFIX_OPTION, REQUEST_LIMIT_OPTIONS, previewEvery, requestLimits } from '../server-options.js';
import type { CommandContext } from './types.js';

/** The environment variable that holds the API token when --token is not given. */
export const TOKEN_VARIABLE = 'STEPVIDEO_API_TOKEN';

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS,
  { name: 'queue', type: 'string', description: 'put jobs on this Redis queue for `stepvideo worker` processes instead of running them here (redis://[user:password@]host:port[/db], rediss:// for TLS); no model is loaded', placeholder: 'URL' },
  QUEUE_PREFIX_OPTION,
  { name: 'host', type: 'string', description: 'address to bind (use 0.0.0.0 to accept other machines)', default: '127.0.0.1', placeholder: 'ADDR' },
  { name: 'port', type: 'integer', description: 'port (0: any free port)', default: 8080, placeholder: 'N' },
  { name: 'token', type: 'string', description: `require "Authorization: Bearer TOKEN" on every route but /v1/health (default: $${TOKEN_VARIABLE} if set)`, placeholder: 'TOKEN' },
  { name: 'results', type: 'string', description: 'folder for finished videos (with --queue: the folder the workers share; default: a temporary folder, removed on exit)', placeholder: 'DIR' },
  { name: 'max-queue', type: 'integer', description: 'jobs allowed to wait (more: 429 with Retry-After)', default: DEFAULT_LIMITS.maxQueued, placeholder: 'N' },
  { name: 'max-finished', type: 'integer', description: 'finished jobs kept with their videos; older ones are deleted', default: DEFAULT_LIMITS.maxFinished, placeholder: 'N' },
  PREVIEWS_OPTION,
  ...REQUEST_LIMIT_OPTIONS,
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
  for (const name of ['max-queue', 'max-finished']) {
    if ((o[name] as number) < 1) throw new StepVideoError('ERR_USAGE', `option --${name} must be at least 1`, { got: o[name] });
  }
  const queue = o.queue as string | undefined;
  if (queue !== undefined) {
    const modelOption = MODEL_OPTIONS.find((spec) => o[spec.name] !== undefined && spec.default === undefined);
    if (modelOption) throw new StepVideoError('ERR_USAGE', `--${modelOption.name} is a worker's option: with --queue the API node loads no model (pass it to stepvideo worker)`);
  }
  const log = o.quiet === true ? undefined : (line: string) => context.stderr(`stepvideo serve: ${line}`);
  const options = {
    host: o.host as string,
    port,
    ...(o.results !== undefined ? { resultsDir: o.results as string } : {}),
    token: (o.token as string | undefined) ?? process.env[TOKEN_VARIABLE],
    previewEvery: previewEvery(o),
    limits: { maxQueued: o['max-queue'] as number, maxFinished: o['max-finished'] as number, ...requestLimits(o) },
    ...(log ? { log } : {}),
  };

  let server: StepVideoServer;
  let dispose = () => undefined as void;
  let describe: string;
  if (queue !== undefined) {
    if (o.results === undefined) throw new StepVideoError('ERR_USAGE', 'serve --queue needs --results DIR: the folder the workers write videos to (a shared volume)');
    const limits = { ...DEFAULT_LIMITS, ...options.limits };
    server = new StepVideoServer(new QueueBackend(queue, limits, { prefix: o['queue-prefix'] as string, ...(log ? { log } : {}) }), options);
    describe = `API node on the queue ${redactRedisUrl(queue)}`;
  } else {
    const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
    const pipeline = await loadPipeline(parsed, context, reporter);
    reporter.finish();
    server = createStepVideoServer(pipeline, options);
    dispose = () => pipeline.dispose();
    describe = `${pipeline.device.name}${describeDiTWeights(pipeline)}${pipeline.builtin ? ', built-in test model' : ''}`;
  }
  try {
    const url = await server.listen();
    context.stderr(`stepvideo serve: listening on ${url} (${describe}${options.token ? ', token required' : ''}); Ctrl-C stops`);
    context.stdout(url);
    await new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      else context.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    context.stderr('stepvideo serve: shutting down');
    return 130;
  } finally {
    await server.close();
    dispose();
  }
}
