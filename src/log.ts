import { type Logger, pino } from 'pino';

export type { Logger };

/** The daemon's logger: pino JSON lines on stderr; `silent` in tests that do not read logs. */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino(
    { name: options.name ?? 'xct-sentinel', level: options.level ?? process.env.XCT_LOG_LEVEL ?? 'info' },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A logger that drops everything: for library calls whose caller does not want logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
