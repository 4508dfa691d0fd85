import { ConfigError } from '../errors.ts';

// setTimeout fires at once for longer delays, which would end every scan immediately.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Timing knobs and symlink policy of `watchFolder`; every field has a default. */
export interface WatchFolderOptions {
  /** A scan ends after no new or changed file in its folder for this long. */
  idleTimeoutMs?: number;
  /** How long a gap in z waits for its slice while later slices are waiting. */
  missingSliceTimeoutMs?: number;
  /** A file whose size, mtime and inode stay unchanged this long is completely written. */
  stabilityMs?: number;
  /** How often a file being written is checked (and chokidar's interval when polling). */
  pollMs?: number;
  /** Follow symlinks anywhere; by default a symlink leading outside the root is refused. */
  followSymlinks?: boolean;
  /** Poll the file system instead of OS events (network shares, some containers). */
  usePolling?: boolean;
  /** The z the scanner's numbering starts at; lower numbers are never waited for. */
  firstSlice?: number;
}

/** The defaults of every `watchFolder` option. */
export const WATCH_FOLDER_DEFAULTS: Readonly<Required<WatchFolderOptions>> = Object.freeze({
  idleTimeoutMs: 60_000,
  missingSliceTimeoutMs: 10_000,
  stabilityMs: 300,
  pollMs: 50,
  followSymlinks: false,
  usePolling: false,
  firstSlice: 0,
});

/** Every option, filled in. */
export type ResolvedWatchOptions = Required<WatchFolderOptions>;

/** Check every option once and fill in defaults; a bad value is a ConfigError naming the option. */
export function normalizeWatchOptions(options: WatchFolderOptions): ResolvedWatchOptions {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError('watchFolder: options must be an object', { option: 'options' });
  }
  const known = Object.keys(WATCH_FOLDER_DEFAULTS);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new ConfigError(`watchFolder: unknown option "${key}"; known options: ${known.join(', ')}`, {
        option: key,
      });
    }
  }
  const out: ResolvedWatchOptions = { ...WATCH_FOLDER_DEFAULTS };
  const ms = (key: 'idleTimeoutMs' | 'missingSliceTimeoutMs' | 'stabilityMs' | 'pollMs', min: number) => {
    const value: unknown = options[key];
    if (value === undefined) return;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_TIMER_MS) {
      throw new ConfigError(
        `watchFolder: ${key} must be a number of milliseconds ${min === 0 ? '>= 0' : '> 0'} and <= ${MAX_TIMER_MS}, got ${String(value)}`,
        { option: key },
      );
    }
    out[key] = value;
  };
  ms('idleTimeoutMs', Number.MIN_VALUE);
  ms('missingSliceTimeoutMs', 0);
  ms('stabilityMs', 0);
  ms('pollMs', Number.MIN_VALUE);
  for (const key of ['followSymlinks', 'usePolling'] as const) {
    const value: unknown = options[key];
    if (value === undefined) continue;
    if (typeof value !== 'boolean') {
      throw new ConfigError(`watchFolder: ${key} must be true or false, got ${String(value)}`, {
        option: key,
      });
    }
    out[key] = value;
  }
  const first: unknown = options.firstSlice;
  if (first !== undefined) {
    if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0) {
      throw new ConfigError(`watchFolder: firstSlice must be an integer >= 0, got ${String(first)}`, {
        option: 'firstSlice',
      });
    }
    out.firstSlice = first;
  }
  return out;
}
