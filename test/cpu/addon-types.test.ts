// One typed native surface (lib/addon-types.ts): the binary exports exactly the names typed there,
// importing the library loads nothing until the first call (a missing addon is reported then), and
// the op codes of lib/ops.ts are the ones native/kernels.h defines.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import { ADDON_EXPORTS, CONTEXT_METHODS } from '../../lib/addon-types.js';
import { addonSource, native } from '../../lib/native.js';
import { BINARY, REDUCE, UNARY } from '../../lib/ops.js';
import { projectRoot } from '../helpers/cli.js';

const EMULATOR_HOOKS = ['emulatorInjectFailure', 'emulatorSetMemoryCapacity', 'emulatorMemory'];

describe('the native surface', () => {
  it('the loaded binary exports exactly the typed names (the emulator hooks only in emulated builds)', () => {
    const binary = createRequire(import.meta.url)(addonSource().path) as Record<string, unknown>;
    const typed = ADDON_EXPORTS.filter((name) => native.build.cudaEmulated || !EMULATOR_HOOKS.includes(name));
    expect(Object.keys(binary).sort()).toEqual([...typed].sort());
  });

  it('every op is a method of the native execution context, and the context has no untyped method', () => {
    const binary = createRequire(import.meta.url)(addonSource().path) as { NativeContext: { prototype: object } };
    const methods = Object.getOwnPropertyNames(binary.NativeContext.prototype).filter((name) => name !== 'constructor' && name !== 'device');
    expect(methods.sort()).toEqual([...CONTEXT_METHODS].sort());
  });

  it('loads the addon at the first call, not at import: a missing one is ERR_NATIVE_LOAD naming it, then', () => {
    const script = `
      const { native } = await import(${JSON.stringify(path.join(projectRoot, 'dist', 'native.js'))});
      console.log('imported');
      try { native.cpuThreadCount(); } catch (error) { console.log(error.code, error.message.split('\\n')[1]); }`;
    const missing = path.join(projectRoot, 'no-such-build');
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, STEPVIDEO_BUILD_DIR: 'no-such-build', STEPVIDEO_ADDON: '' },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe(`imported\nERR_NATIVE_LOAD   ${path.join(missing, 'Release', 'stepvideo.node')}: not found\n`);
  });
});

describe('op codes', () => {
  it("lib/ops.ts numbers the binary, unary and reduce ops as native/kernels.h does", () => {
    const inCodeOrder = (table: Record<string, number>) => Object.entries(table).sort((a, b) => a[1] - b[1]).map(([name]) => name);
    expect(native.opCodes()).toEqual({ binary: inCodeOrder(BINARY), unary: inCodeOrder(UNARY), reduce: inCodeOrder(REDUCE) });
  });
});
