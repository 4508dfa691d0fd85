import type { Writable } from 'node:stream';

/** What a command gets from the CLI: where to print, how to show progress, when to stop. */
export interface CommandContext {
  stdout: Writable;
  stderr: Writable;
  /** Aborted by SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** A transient progress line: redrawn in place on a terminal, silent in a pipe. */
  progress(line: string): void;
}

/** A context over the process streams; progress is drawn only when stderr is a terminal. */
export function processContext(signal: AbortSignal): CommandContext {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    signal,
    progress(line) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1b[2K${line}`);
    },
  };
}
