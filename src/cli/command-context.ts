import type { Writable } from 'node:stream';

/** What a command gets from the CLI: where to print, how to show progress, when to stop. */
export interface CommandContext {
  stdout: Writable;
  stderr: Writable;
  /** Aborted by SIGINT/SIGTERM. */
  signal: AbortSignal;
  /**
   * After the first SIGINT/SIGTERM the command has this long to finish its in-flight work and flush
   * its outputs; then the process exits anyway. A command may change it (the daemon's
   * `--shutdown-timeout`).
   */
  shutdownTimeoutMs: number;
  /** A transient progress line: redrawn in place on a terminal, silent in a pipe. */
  progress(line: string): void;
}

/** How long a stopping command may take to flush before the process exits regardless. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 30_000;

/** A context over the process streams; progress is drawn only when stderr is a terminal. */
export function processContext(signal: AbortSignal): CommandContext {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    signal,
    shutdownTimeoutMs: DEFAULT_SHUTDOWN_TIMEOUT_MS,
    progress(line) {
      if (!tty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      process.stderr.write(`\r\x1b[2K${line}`);
    },
  };
}
