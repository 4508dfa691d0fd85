/**
 * Every error the daemon raises on purpose. Each has a stable `code` (never parse messages), the
 * context that locates it (file, option, scan, slice, model…) and the underlying `cause`.
 */

/** Where an error happened: whatever of these the raising stage knows. */
export interface ErrorContext {
  /** A file or folder the error is about. */
  path?: string;
  /** A CLI option or config key path, e.g. `--rate` or `sink.kafka.brokers[0]`. */
  option?: string;
  scanId?: string;
  slice?: number;
  topic?: string;
  partition?: number;
  offset?: string;
  model?: string;
  /** The pipeline stage that raised it (source, decode, tile, infer, stitch, sink…). */
  stage?: string;
}

/** Base class: a `code` that callers switch on, context fields, and the cause. */
export abstract class XctError extends Error {
  abstract readonly code: string;
  readonly context: ErrorContext;
  /** Whether repeating the same operation may succeed (broker hiccup, file still being written). */
  readonly canRetry: boolean;

  constructor(
    message: string,
    context: ErrorContext = {},
    options: { cause?: unknown; canRetry?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.context = context;
    this.canRetry = options.canRetry ?? false;
  }
}

/** A command-line option is unknown, missing or out of range. */
export class UsageError extends XctError {
  readonly code = 'ERR_USAGE';
}

/** A configuration file or value is invalid; `context.option` holds the key path. */
export class ConfigError extends XctError {
  readonly code = 'ERR_CONFIG';
}

/** A file could not be decoded (not a TIFF, truncated, unsupported dtype…). */
export class DecodeError extends XctError {
  readonly code = 'ERR_DECODE';
}

/** A source misbehaved: the watched folder, a Kafka topic, an archive being replayed. */
export class SourceError extends XctError {
  readonly code = 'ERR_SOURCE';
}

/** Writing an output (slice file, Zarr chunk, dataset) failed. */
export class OutputError extends XctError {
  readonly code = 'ERR_OUTPUT';
}

/** A model file is missing, corrupt, or does not match its card. */
export class ModelError extends XctError {
  readonly code = 'ERR_MODEL';
}

/** An evaluation could not be scored: the daemon under test did not finish a scan it was given. */
export class EvaluationError extends XctError {
  readonly code = 'ERR_EVAL';
}

/** Narrow an unknown error to ours, optionally to some codes only. */
export function isXctError(err: unknown, ...codes: string[]): err is XctError {
  return err instanceof XctError && (codes.length === 0 || codes.includes(err.code));
}

/** One line that says what went wrong and where, for the terminal. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  let text = err.message;
  let cause: unknown = err.cause;
  // Follow the cause chain so "could not write slice" also says "EACCES: permission denied".
  while (cause instanceof Error) {
    if (!text.includes(cause.message)) text += `: ${cause.message}`;
    cause = cause.cause;
  }
  return text;
}
