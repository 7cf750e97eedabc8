#!/usr/bin/env node
// node launch_bounds.mjs <cuda source> <copy>: the copy the emulated build compiles. On a GPU,
// `__launch_bounds__(max threads, ...)` is compiled into the kernel (ptxas budgets registers for that
// many threads) and the driver refuses a launch with a larger block. The emulator has no such
// metadata, so each kernel that declares bounds gets, as the first statement of its body,
// `::sv::emu::check_launch_bounds(__FILE__, __LINE__, <the same arguments>)`, on the line of its
// opening brace; the attribute itself stays (the emulator's header defines it away). A `#line`
// directive keeps the compiler's messages and __FILE__ naming the original file, and line numbers
// do not move.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const [source, copy] = process.argv.slice(2);
if (!source || !copy) {
  console.error('usage: node launch_bounds.mjs <cuda source> <copy>');
  process.exit(2);
}

/** The index just past the parenthesis that closes the one at `open`. */
function closing(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) return i + 1;
  }
  throw new Error(`${source}: unbalanced parentheses from offset ${open}`);
}

const text = readFileSync(source, 'utf8');
let out = '';
let done = 0;
let seen = 0;
const attribute = /__global__\s+void\s+__launch_bounds__\s*\(/g;
for (let match; (match = attribute.exec(text)) !== null; ) {
  seen++;
  const open = match.index + match[0].length - 1;
  const end = closing(text, open);
  const bounds = text.slice(open + 1, end - 1).replace(/\s+/g, ' ').trim(); // one line: line numbers stay
  const parameters = text.indexOf('(', end); // the kernel's name comes first, then its parameters
  const body = closing(text, parameters);
  const brace = /^\s*\{/.exec(text.slice(body));
  if (brace === null) continue; // a declaration: the definition carries the check
  const at = body + brace[0].length;
  out += text.slice(done, at) + ` ::sv::emu::check_launch_bounds(__FILE__, __LINE__, ${bounds});`;
  done = at;
  attribute.lastIndex = at;
}
out += text.slice(done);
// Every attribute in a form this reads, or the build stops: a bound the emulator skipped would be unchecked.
const written = (text.match(/__launch_bounds__\s*\(/g) ?? []).length;
if (written !== seen) {
  console.error(`${source}: ${written - seen} __launch_bounds__ not in the form "__global__ void __launch_bounds__(...) name(...)"`);
  process.exit(1);
}

mkdirSync(path.dirname(copy), { recursive: true });
writeFileSync(copy, `#line 1 "${path.resolve(source)}"\n${out}`);
