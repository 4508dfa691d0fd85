/**
 * The store's files on disk, written so a crash never leaves a torn one: each key goes to a temp
 * file, is synced and renamed into place; the folders those renames change are synced at `flush()`.
 * Temp files a killed writer left are cleared when a store is taken up again.
 */
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { AbsolutePath } from '@zarrita/storage';
import FileSystemStore from '@zarrita/storage/fs';

/** `.<name>.<pid>.<n>.tmp`: a DurableFileStore write in progress, or left by a process killed mid-write. */
const TEMP_FILE = /^\..+\.(\d+)\.\d+\.tmp$/;

/**
 * Remove the temp files a writer killed mid-write left in a store it is taking up again: those of
 * this process id (a reused one) and of processes no longer running. They were never renamed into
 * place, so no reader saw them; left alone they would pile up over crashes.
 */
export async function removeStaleTemps(root: string): Promise<void> {
  const alive = (pid: number): boolean => {
    if (pid === process.pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    const match = entry.isFile() ? TEMP_FILE.exec(entry.name) : null;
    if (match && !alive(Number(match[1]))) await unlink(join(entry.parentPath, entry.name)).catch(() => {});
  }
}

/**
 * FileSystemStore writes files in place, so a crash mid-write leaves a truncated chunk that readers
 * decode as garbage. This one writes a temp file, syncs it and renames it into place, so a key holds
 * either its old bytes or its new ones. The folder entries those renames (and new folders) change
 * become durable at the next `flush()`: one sync per folder per slice instead of one per chunk.
 */
export class DurableFileStore extends FileSystemStore {
  readonly #durable: boolean;
  // Folders known to exist: saves a mkdir per chunk.
  readonly #dirs = new Map<string, Promise<void>>();
  // Folders whose entries changed since the last flush took them.
  readonly #unsynced = new Set<string>();
  // Folder syncs in progress, whoever started them.
  readonly #syncing = new Set<Promise<void>>();
  #temps = 0;

  constructor(root: string, durable: boolean) {
    super(resolve(root));
    this.#durable = durable;
  }

  override async set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    const file = join(this.root, key.slice(1));
    const dir = dirname(file);
    await this.ensureDir(dir);
    const temp = join(dir, `.${basename(file)}.${process.pid}.${++this.#temps}.tmp`);
    try {
      const handle = await open(temp, 'w');
      try {
        await handle.writeFile(value);
        if (this.#durable) await handle.datasync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw err;
    }
    this.markChanged(dir);
  }

  /** Make every `set` that has resolved so far durable (sync the folders their renames touched). */
  async flush(): Promise<void> {
    for (const dir of this.#unsynced) {
      const sync = syncDir(dir);
      this.#syncing.add(sync);
      const settle = (): void => {
        this.#syncing.delete(sync);
      };
      sync.then(settle, settle);
    }
    this.#unsynced.clear();
    // Also wait for syncs other callers started: they may hold folders our own writes changed.
    await Promise.all([...this.#syncing]);
  }

  /** Create `dir` and its parents (memoized per folder); `flush()` makes them durable. */
  ensureDir(dir: string): Promise<void> {
    let ready = this.#dirs.get(dir);
    if (ready === undefined) {
      ready = this.#makeDir(dir);
      this.#dirs.set(dir, ready);
      // A failed mkdir must not poison later tries (the disk may have been freed meanwhile).
      ready.catch(() => this.#dirs.delete(dir));
    }
    return ready;
  }

  /** Forget which folders exist, after some were removed. */
  forgetDirs(): void {
    this.#dirs.clear();
  }

  /** Note that `dir`'s entries changed outside `set` (files removed), for the next flush. */
  markChanged(dir: string): void {
    if (this.#durable) this.#unsynced.add(dir);
  }

  async #makeDir(dir: string): Promise<void> {
    const parent = dirname(dir);
    if (dir !== this.root && parent !== dir) await this.ensureDir(parent);
    const created = await mkdir(dir, { recursive: true });
    if (created === undefined) return;
    // Each folder mkdir made is a new entry in its parent.
    for (let d = dir; ; d = dirname(d)) {
      this.markChanged(dirname(d));
      if (d === created || dirname(d) === d) break;
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
