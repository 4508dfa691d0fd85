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
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    // First signal: stop gracefully. Second: the user means it.
    if (signals > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    controller.abort(new Error(`received ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const ctx = processContext(controller.signal);
  main(process.argv.slice(2), ctx).then(
    (code) => {
      if (process.stderr.isTTY) process.stderr.write('\r\x1b[2K');
      process.exitCode = code;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
    (err: unknown) => {
      process.stderr.write(`xct-sentinel: ${describeError(err)}\n`);
      process.exitCode = 1;
    },
  );
}
