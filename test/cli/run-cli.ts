import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliResult {
  /** The exit code; null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The run outlived `timeoutMs` and was stopped (SIGTERM, then SIGKILL 10 s later). */
  timedOut: boolean;
}

/**
 * Run the real CLI in a child process (through tsx, as the sources are TypeScript). A run that
 * outlives `timeoutMs` is stopped and still resolves, with whatever it printed, so a hang fails its
 * test with the child's own words instead of a bare timeout.
 */
export function runCli(
  args: string[],
  options: { cwd?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise<CliResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let kill: NodeJS.Timeout | undefined;
    const stop = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    }, options.timeoutMs ?? 120_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(stop);
      clearTimeout(kill);
      if (timedOut)
        stderr += `\n[run-cli] timed out after ${options.timeoutMs ?? 120_000} ms and was stopped`;
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
