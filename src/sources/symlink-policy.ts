import { lstat, realpath } from 'node:fs/promises';
import { isAbsolute, relative, sep } from 'node:path';

/**
 * Whether the folder source may read a path: anything that is not a symlink, and a symlink whose
 * target lies inside the watched root (its real path, `realRoot`). A symlink to nothing or out of
 * the root is refused with the reason; `follow` (the operator's `followSymlinks`) allows every link.
 */
export type SymlinkVerdict =
  | { ok: true }
  /** Gone before it could be looked at: its unlink event follows; nothing to say. */
  | { ok: false; gone: true }
  | { ok: false; gone: false; kind: 'dangling' | 'outside'; reason: string; cause?: unknown };

export async function symlinkVerdict(
  path: string,
  root: { dir: string; real: string },
  follow: boolean,
): Promise<SymlinkVerdict> {
  if (follow) return { ok: true };
  try {
    if (!(await lstat(path)).isSymbolicLink()) return { ok: true };
  } catch {
    return { ok: false, gone: true };
  }
  let target: string;
  try {
    target = await realpath(path);
  } catch (cause) {
    return { ok: false, gone: false, kind: 'dangling', reason: 'is a symlink to nothing', cause };
  }
  if (isInside(root.real, target)) return { ok: true };
  return {
    ok: false,
    gone: false,
    kind: 'outside',
    reason: `is a symlink to ${target}, outside ${root.dir}; not followed (set followSymlinks to allow)`,
  };
}

/** Whether `path` lies strictly inside `dir` (both resolved). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !isAbsolute(rel) && rel !== '..' && !rel.startsWith(`..${sep}`);
}
