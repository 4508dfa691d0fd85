#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { describeError, isXctError } from '../errors.ts';
import { alertsCommand } from './alerts-command.ts';
import { benchCommand } from './bench-command.ts';
import { type CommandContext, processContext } from './command-context.ts';
import { demoCommand } from './demo-command.ts';
import { evalCommand } from './eval-command.ts';
import { replayCommand } from './replay-command.ts';
import { runCommand } from './run-command.ts';
import { SIMULATE_HELP, simulateCommand } from './simulate-command.ts';
import { tuneHeap } from './tune-heap.ts';

/** A finished command whose process is still alive this long after is made to exit. */
const LINGER_MS = 3000;

type Command = (args: readonly string[], ctx: CommandContext) => Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  alerts: { run: alertsCommand, summary: 'follow dendrite alerts on a Kafka topic (lines or JSON)' },
  bench: {
    run: benchCommand,
    summary: 'benchmark the pipeline: throughput vs bare ONNX Runtime, latency, memory',
  },
  demo: { run: demoCommand, summary: 'simulate a live scan and watch it (what `npm start` runs)' },
  eval: { run: evalCommand, summary: 'score a shipped model on held-out simulated scans' },
  replay: { run: replayCommand, summary: 'replay an archived scan (folder, TIFF, HDF5, Zarr) as if live' },
  run: {
    run: runCommand,
    summary: 'the daemon: watch a scanner folder, segment live, write masks, raise alerts',
  },
  simulate: { run: simulateCommand, summary: 'synthetic Li-metal XCT scanner: live scan, dataset, preview' },
};

const HELP = `Usage: xct-sentinel <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  .join('\n')}

Run \`xct-sentinel <command> --help\` for a command's options.
`;

/** Run the CLI with these arguments; resolves to the process exit code. */
export async function main(argv: readonly string[], ctx: CommandContext): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    ctx.stdout.write(name === 'help' && args[0] === 'simulate' ? SIMULATE_HELP : HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    ctx.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    ctx.stderr.write(`xct-sentinel: unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  try {
    return await command.run(args, ctx);
  } catch (err) {
    if (ctx.signal.aborted && !isXctError(err)) {
      ctx.stderr.write('xct-sentinel: stopped\n');
      return 130;
    }
    ctx.stderr.write(`xct-sentinel ${name}: ${describeError(err)}\n`);
    if (isXctError(err, 'ERR_USAGE')) {
      ctx.stderr.write(`Run \`xct-sentinel ${name} --help\` for its options.\n`);
      return 2;
    }
    return 1;
  }
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

// Only act when run as a program, never on import (tests import `main`).
if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/xct-sentinel')) {
  tuneHeap();
  const controller = new AbortController();
  const ctx = processContext(controller.signal);
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    const code = signal === 'SIGINT' ? 130 : 143;
    // Second signal: the user means it. Progress on disk is consistent at every moment (a slice
    // counts as done only once its outputs are), so a hard stop loses nothing a restart cannot redo.
    if (signals > 1) process.exit(code);
    controller.abort(new Error(`received ${signal}`));
    // First signal: stop gracefully, but never longer than the deadline.
    setTimeout(() => {
      process.stderr.write(
        `xct-sentinel: still stopping ${ctx.shutdownTimeoutMs / 1000} s after ${signal}; exiting now\n`,
      );
      process.exit(code);
    }, ctx.shutdownTimeoutMs).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const finish = (code: number) => {
    process.exitCode = code;
    // Everything is flushed and closed by now. A client library that keeps a socket or a timer
    // alive must not keep a finished command (and a script waiting on it) from exiting.
    setTimeout(() => {
      const left = process.getActiveResourcesInfo().filter((r) => r !== 'Timeout');
      process.stderr.write(`xct-sentinel: exiting with ${left.join(', ') || 'timers'} still open\n`);
      process.exit(code);
    }, LINGER_MS).unref();
  };
  main(process.argv.slice(2), ctx).then(
    (code) => {
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
      finish(code);
    },
    (err: unknown) => {
      process.stderr.write(`xct-sentinel: ${describeError(err)}\n`);
      finish(1);
    },
  );
}
