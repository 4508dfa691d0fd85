import { parseArgs } from 'node:util';
import { UsageError } from '../errors.ts';
import { PRECISIONS, precisionName } from '../inference/load-model.ts';

/** The shape `node:util` parseArgs takes, restricted to what our commands use. */
export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Parse one command's arguments strictly: unknown flags and missing values are usage errors. */
export function parseOptions(command: string, args: readonly string[], spec: OptionSpec, positionals = 0) {
  try {
    const parsed = parseArgs({
      args: [...args],
      options: spec,
      strict: true,
      allowPositionals: positionals > 0,
    });
    if (parsed.positionals.length > positionals)
      throw new UsageError(`${command}: unexpected argument "${parsed.positionals[positionals]}"`, {
        option: String(parsed.positionals[positionals]),
      });
    return { values: parsed.values as Values, positionals: parsed.positionals };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // parseArgs says "Unknown option '--x'" or "Option '--x <value>' argument missing": keep its
    // words (they name the option) but give it our code so the CLI exits 2 with the help hint.
    const message = err instanceof Error ? err.message : String(err);
    const option = /'(-{1,2}[\w-]+)/.exec(message)?.[1];
    throw new UsageError(
      `${command}: ${message.replace(/\. To specify.*$/s, '')}`,
      option ? { option } : {},
      {
        cause: err,
      },
    );
  }
}

/** A string option, or `fallback` when absent. */
export function stringOption(values: Values, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

/** An integer option within [min, max]. */
export function intOption(values: Values, name: string, fallback: number, min: number, max: number): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(v))
    throw new UsageError(`--${name} must be an integer, got "${raw}"`, { option: `--${name}` });
  if (v < min || v > max)
    throw new UsageError(`--${name} must be from ${min} to ${max}, got ${v}`, { option: `--${name}` });
  return v;
}

/** A finite number option that must be > `above`. */
export function positiveOption(values: Values, name: string, fallback: number, above = 0): number {
  const raw = stringOption(values, name);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v))
    throw new UsageError(`--${name} must be a number, got "${raw}"`, { option: `--${name}` });
  if (v <= above) throw new UsageError(`--${name} must be > ${above}, got ${v}`, { option: `--${name}` });
  return v;
}

/** One of a fixed set of words. */
/**
 * `--model` (or `fallback`) in `--precision`'s arithmetic: NAME for fp32 (the default), NAME-int8
 * for int8, the INT8 model shipped beside it.
 */
export function modelOption(values: Values, fallback: string): string {
  return precisionName(
    stringOption(values, 'model') ?? fallback,
    choiceOption(values, 'precision', PRECISIONS, 'fp32'),
  );
}

export function choiceOption<T extends string>(
  values: Values,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = stringOption(values, name);
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw))
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${raw}"`, {
      option: `--${name}`,
    });
  return raw as T;
}
