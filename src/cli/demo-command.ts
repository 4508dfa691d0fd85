import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLiveScanner } from '../sim/live-scanner.ts';
import type { CommandContext } from './command-context.ts';
import { parseOptions } from './parse-options.ts';

/** `npm start`: a live simulated scan into a temporary folder, with nothing else to set up. */
export async function demoCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  parseOptions('demo', args, {});
  const out = await mkdtemp(join(tmpdir(), 'xct-sentinel-demo-'));
  ctx.stdout.write(`simulating a live scan of a Li|polymer|Li cell into ${out}\n`);
  const result = await runLiveScanner({
    out,
    seed: 1,
    size: 256,
    slices: 64,
    rate: 20,
    signal: ctx.signal,
    onSlice: ({ z }) => ctx.progress(`slice ${z + 1}/64`),
  });
  ctx.stdout.write(
    `scan complete: ${result.slices} slices in ${result.scanDir}\nground truth: ${result.truthPath}\n`,
  );
  return 0;
}
