// `stepvideo worker --queue URL --results DIR`: loads the pipeline on one device and runs the jobs
// `stepvideo serve --queue` API nodes put on the Redis queue, writing videos to the shared results
// folder. SIGTERM or Ctrl-C: no new jobs; the running one finishes within --grace seconds or is
// handed back to the queue, then the process exits 0. A second signal exits at once (the job then
// returns to the queue once its lock expires, --stall-timeout).
import { StepVideoError } from '../../errors.js';
import { ROLES, type Role } from '../../server/queue/connection.js';
import { StepVideoWorker } from '../../server/queue/worker.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { MODEL_OPTIONS, describeDiTWeights, loadPipeline } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import { PREVIEWS_OPTION, QUEUE_PREFIX_OPTION, REQUEST_LIMIT_OPTIONS, previewEvery, requestLimits } from '../server-options.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS,
  { name: 'queue', type: 'string', description: 'the Redis queue (redis://[user:password@]host:port[/db], rediss:// for TLS)', placeholder: 'URL' },
  QUEUE_PREFIX_OPTION,
  { name: 'results', type: 'string', description: 'the results folder shared with the API nodes (a mounted volume)', placeholder: 'DIR' },
  { name: 'concurrency', type: 'integer', description: 'video jobs run at once (one per GPU is the rule)', default: 1, placeholder: 'N' },
  { name: 'roles', type: 'string', description: `queues to take, comma-separated: ${ROLES.join(', ')}`, default: ROLES.join(','), placeholder: 'LIST' },
  { name: 'grace', type: 'number', description: 'seconds a running job may take to finish after SIGTERM before it is handed back', default: 30, placeholder: 'S' },
  { name: 'stall-timeout', type: 'number', description: "seconds after which a dead worker's job is given to another worker", default: 30, placeholder: 'S' },
  PREVIEWS_OPTION,
  ...REQUEST_LIMIT_OPTIONS,
];

export async function workerCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(`usage: stepvideo worker --queue URL --results DIR [options]\n\n${formatOptions(OPTIONS)}`);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const o = parsed.options;
  if (o.queue === undefined) throw new StepVideoError('ERR_USAGE', 'stepvideo worker needs --queue redis://HOST:PORT');
  if (o.results === undefined) throw new StepVideoError('ERR_USAGE', 'stepvideo worker needs --results DIR: the folder shared with the API nodes');
  const roles = (o.roles as string).split(',').map((r) => r.trim());
  const unknown = roles.find((r) => !(ROLES as readonly string[]).includes(r));
  if (unknown !== undefined || roles.length === 0) throw new StepVideoError('ERR_USAGE', 'option --roles has an unknown value', { expected: ROLES.join(', '), got: unknown ?? '' });
  if ((o.concurrency as number) < 1) throw new StepVideoError('ERR_USAGE', 'option --concurrency must be at least 1', { got: o.concurrency as number });
  const limits = requestLimits(o);
  for (const name of ['grace', 'stall-timeout']) {
    if (!((o[name] as number) >= 0)) throw new StepVideoError('ERR_USAGE', `option --${name} must be a number of seconds, 0 or more`, { got: o[name] });
  }
  if ((o['stall-timeout'] as number) < 1) throw new StepVideoError('ERR_USAGE', 'option --stall-timeout must be at least 1 second', { got: o['stall-timeout'] });

  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const pipeline = await loadPipeline(parsed, context, reporter);
  reporter.finish();
  const worker = new StepVideoWorker(pipeline, {
    queue: o.queue as string,
    resultsDir: o.results as string,
    concurrency: o.concurrency as number,
    roles: roles as Role[],
    stallTimeoutMs: (o['stall-timeout'] as number) * 1000,
    previewEvery: previewEvery(o),
    prefix: o['queue-prefix'] as string,
    limits,
    ...(o.quiet === true ? {} : { log: (line: string) => context.stderr(`stepvideo worker: ${line}`) }),
  });
  try {
    await worker.start();
    context.stderr(`stepvideo worker: ready (${pipeline.device.name}${describeDiTWeights(pipeline)}${pipeline.builtin ? ', built-in test model' : ''}); Ctrl-C or SIGTERM stops`);
    await new Promise<void>((resolve) => {
      if (context.signal.aborted) resolve();
      else context.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    context.stderr(`stepvideo worker: stopping (${worker.running} job(s) running: ${o.grace} s to finish, then handed back)`);
    await worker.stop((o.grace as number) * 1000);
    context.stderr('stepvideo worker: stopped');
    return 0;
  } finally {
    await worker.stop(0).catch(() => undefined);
    pipeline.dispose();
  }
}
