import { setFlagsFromString } from 'node:v8';

/** Old-generation headroom after each full collection, as V8's growing percent (factor 1 + p/100). */
export const HEAP_GROWING_PERCENT = 300;

/**
 * Let the heap grow to four times what survives a full collection before the next one starts.
 *
 * The daemon keeps a small heap (~15 MB live) but turns over megabytes of slice buffers per slice,
 * each surviving long enough to be promoted. With V8's default heuristics that small heap starts a
 * full (incremental) collection every two 512² slices: ~24 per 48 slices, each about 7 ms on the
 * daemon's thread plus marking on V8's helper threads, all of it CPU that the model's threads lose
 * on a 2-core machine. At 300% there are ~3 per 48 slices (measured on this project's bench:
 * daemon thread 25 → 21 ms per slice, V8 helpers 14 → 7 ms, throughput +4%); the heap limit stays a
 * small multiple of the live heap, and `--max-old-space-size` still caps it.
 *
 * Process-wide, so only the program entry calls it, and not when the user set the flag themselves.
 */
export function tuneHeap(execArgv: readonly string[] = process.execArgv): boolean {
  if (execArgv.some((a) => /^--heap[-_]growing[-_]percent\b/.test(a))) return false;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  return true;
}
