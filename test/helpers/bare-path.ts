// A PATH for child processes on a host that lacks some tools: one folder of links to every program
// on the current PATH except those named, so tests can show what works without a compiler, CMake,
// nvcc or a system ffmpeg on a machine that has them.
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import path from 'node:path';

/** Compilers and build tools: what an install from prebuilt binaries must not need. */
export const BUILD_TOOLS = /^(gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|x86_64-linux-gnu-.*|cmake|ctest|cpack|ccmake|nvcc|make|gmake|ninja|ld|ld\..*|as)(-[0-9.]+)?$/;
/** ffmpeg's programs. */
export const FFMPEG_TOOLS = /^(ffmpeg|ffprobe|ffplay)$/;

/** Makes `dir` (created) a folder of links to the programs of `basePath` whose names match no pattern; returns it as a PATH. */
export function pathWithout(dir: string, excluded: readonly RegExp[], basePath = process.env.PATH ?? ''): string {
  mkdirSync(dir, { recursive: true });
  const linked = new Set<string>();
  for (const folder of basePath.split(path.delimiter).filter(Boolean)) {
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch {
      continue; // a PATH entry that does not exist
    }
    for (const name of names) {
      if (linked.has(name) || excluded.some((pattern) => pattern.test(name))) continue;
      linked.add(name); // the first on PATH wins, as for a shell
      symlinkSync(path.join(folder, name), path.join(dir, name));
    }
  }
  return dir;
}
