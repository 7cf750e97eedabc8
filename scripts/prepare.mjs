#!/usr/bin/env node
// The `prepare` step: compiles lib/ to dist/. When npm re-runs lifecycle scripts because
// `npx stepvideo` installs this checkout into its cache (npm_command=exec), an existing dist/ is
// kept, so the first npx call does not wait for a rebuild.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli', 'main.js');
if (process.env.npm_command === 'exec' && existsSync(cli)) process.exit(0);
const require = createRequire(import.meta.url);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
chmodSync(cli, 0o755);
