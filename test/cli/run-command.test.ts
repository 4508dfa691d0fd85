import { PassThrough } from 'node:stream';
import t from 'tap';
import type { CommandContext } from '../../src/cli/command-context.ts';
import { runCommand } from '../../src/cli/run-command.ts';

const context = (): CommandContext => ({
  stdout: new PassThrough(),
  stderr: new PassThrough(),
  signal: new AbortController().signal,
  shutdownTimeoutMs: 1000,
  progress: () => undefined,
});

t.test('--file-root is for a Kafka source, and said so before anything starts', async (t) => {
  const dir = t.testdir();
  await t.rejects(runCommand(['--watch', dir, '--out', dir, '--file-root', dir], context()), {
    code: 'ERR_USAGE',
    context: { option: '--file-root' },
    message: /--file-root applies to a Kafka source/,
  });
});

t.test('run --help names --file-root and what happens without it', async (t) => {
  const ctx = context();
  let text = '';
  ctx.stdout.on('data', (d: Buffer) => {
    text += d.toString();
  });
  t.equal(await runCommand(['--help'], ctx), 0);
  t.match(text, /--file-root DIR.*\n.*\n.*dead-letter topic unread/);
});
