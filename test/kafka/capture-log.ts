/** A real pino logger whose lines the test reads back. */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/log.ts';

/** A logger at `level` and the parsed entries it has written so far. */
export function captureLog(level = 'debug'): { log: Logger; entries: Record<string, unknown>[] } {
  const entries: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) entries.push(JSON.parse(line));
      callback();
    },
  });
  return { log: pino({ level }, stream), entries };
}
