/**
 * When a file is completely written, judged from its size, mtime and inode alone: a file whose
 * signature stays the same for `stabilityMs` is complete, unless it has 0 bytes (then it is not a
 * slice, but not being written either). A rename into place changes the inode and starts the wait
 * again. Pure: the caller stats the file and passes the clock.
 */

/** What a stat says of a file, as far as completeness goes. */
export interface FileSig {
  size: number;
  mtimeMs: number;
  ino: number;
}

export function sameSig(a: FileSig, b: FileSig): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/**
 * - `changed`: new or different since the last look; the wait starts now.
 * - `settling`: unchanged, for less than `stabilityMs`.
 * - `complete`: unchanged for `stabilityMs`, with bytes in it.
 * - `empty`: unchanged for `stabilityMs` at 0 bytes.
 */
export type FileState = 'changed' | 'settling' | 'complete' | 'empty';

export function fileState(
  last: { sig: FileSig | undefined; since: number },
  sig: FileSig,
  now: number,
  stabilityMs: number,
): FileState {
  if (last.sig === undefined || !sameSig(last.sig, sig)) return 'changed';
  if (now - last.since < stabilityMs) return 'settling';
  return sig.size > 0 ? 'complete' : 'empty';
}
