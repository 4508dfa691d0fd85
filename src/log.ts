import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger };

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/**
 * The daemon's logger on stderr: pino JSON lines for machines (a pipe, a file, journald), one
 * readable line per entry when stderr is a terminal (`XCT_LOG_FORMAT=json|text` forces either).
 */
export function createLogger(
  options: { level?: string; name?: string; format?: 'json' | 'text' } = {},
): Logger {
  const format =
    options.format ??
    (process.env.XCT_LOG_FORMAT === 'json' || process.env.XCT_LOG_FORMAT === 'text'
      ? process.env.XCT_LOG_FORMAT
      : process.stderr.isTTY
        ? 'text'
        : 'json');
  const json = pino.destination({ fd: 2, sync: true });
  const destination: DestinationStream =
    format === 'json'
      ? json
      : {
          write: (line: string) => {
            json.write(`${formatLogLine(line)}\n`);
          },
        };
  return pino(
    { name: options.name ?? 'xct-sentinel', level: options.level ?? process.env.XCT_LOG_LEVEL ?? 'info' },
    destination,
  );
}

/** One pino JSON line as a terminal line: time, level, scan and slice when known, message, error. */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.trimEnd();
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 19) : '--:--:--';
  const level = (LEVELS[entry.level as number] ?? String(entry.level)).padEnd(5);
  const where = [
    entry.scanId !== undefined ? `scan ${String(entry.scanId)}` : '',
    entry.slice !== undefined ? `slice ${String(entry.slice)}` : '',
  ]
    .filter(Boolean)
    .join(' ');
  const err = entry.err as { message?: string } | undefined;
  const msg = String(entry.msg ?? '');
  const detail = err?.message && !msg.includes(err.message) ? ` (${err.message})` : '';
  return `${time} ${level} ${where ? `[${where}] ` : ''}${msg}${detail}`;
}

/** A logger that drops everything: for library calls whose caller does not want logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
