// What every CLI command receives: output sinks and the process-wide abort signal (Ctrl-C).
export interface CommandContext {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  signal: AbortSignal;
  /** Whether stderr is a terminal (progress bars redraw in place only then). */
  interactive: boolean;
}
