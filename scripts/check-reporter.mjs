// vitest reporter of the GPU check (scripts/gpu-check.mjs): appends one JSON line per finished test,
// per test file that failed to load, and per error raised outside any test (a crashed fork among
// them) to $STEPVIDEO_CHECK_JSONL as they happen, so a run stopped at its time budget still says
// what ran. vitest's own JSON reporter writes only at the end, which a stopped run never reaches.
import { appendFileSync } from 'node:fs';

const file = process.env.STEPVIDEO_CHECK_JSONL;
const write = (record) => {
  if (file) appendFileSync(file, `${JSON.stringify(record)}\n`);
};
const firstLine = (error) => String(error?.message ?? error).split('\n')[0].slice(0, 400);

export default class CheckReporter {
  onInit(vitest) {
    this.namePattern = vitest.config.testNamePattern; // -t
  }

  onTestCaseResult(test) {
    const result = test.result();
    // Tests left out by -t are reported as skipped; they were never meant to run.
    if (result.state === 'skipped' && this.namePattern && !this.namePattern.test(test.fullName)) return;
    write({
      kind: 'test',
      file: test.module.relativeModuleId,
      name: test.fullName,
      state: result.state,
      ms: Math.round(test.diagnostic()?.duration ?? 0),
      ...(result.errors?.length ? { error: firstLine(result.errors[0]) } : {}),
    });
  }

  onTestModuleEnd(module) {
    write({ kind: 'file', file: module.relativeModuleId, ms: Math.round(module.diagnostic().duration) });
    // Errors while collecting (an import that throws, a suite body that throws: a required GPU or
    // golden missing) leave the file without test results; they count as failures.
    for (const error of module.errors()) write({ kind: 'file-error', file: module.relativeModuleId, error: firstLine(error) });
  }

  onTestRunEnd(modules, unhandledErrors, reason) {
    for (const error of unhandledErrors) write({ kind: 'unhandled', error: firstLine(error) });
    write({ kind: 'end', reason });
  }
}
