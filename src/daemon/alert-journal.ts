import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutputError } from '../errors.ts';

/** Inside each scan's store: the ids of the alerts already emitted (see AlertJournal). */
export const ALERT_JOURNAL_FILE = 'xct-sentinel-alerts.journal';

/**
 * The alert ids a scan has emitted, one per line, each appended and synced once every sink has
 * acknowledged the alert (the daemon writes a refusing sink again until it does; stopped before,
 * it leaves the id out, so the next start emits the alert). A restarted daemon reads it to emit
 * nothing twice. A crash between a
 * sink's acknowledgement and the append (microseconds) is the one window in which an alert can be
 * emitted again after a restart, under the same id, so consumers can still drop it.
 */
export class AlertJournal {
  readonly #path: string;
  readonly #ids: Set<string>;
  #tail: Promise<void> = Promise.resolve();

  private constructor(path: string, ids: Set<string>) {
    this.#path = path;
    this.#ids = ids;
  }

  /** Open the journal at `path`, reading what an earlier run recorded (none if there is no file). */
  static async open(path: string): Promise<AlertJournal> {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new OutputError(`cannot read the alert journal ${path}`, { path }, { cause });
    }
    const ids = new Set<string>();
    // A line cut short by a crash has no newline yet: that alert was not journaled.
    const lines = text.split('\n');
    lines.pop();
    for (const line of lines) if (line.trim() !== '') ids.add(line.trim());
    return new AlertJournal(path, ids);
  }

  has(alertId: string): boolean {
    return this.#ids.has(alertId);
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Record an emitted alert; durable when the promise resolves. */
  record(alertId: string): Promise<void> {
    this.#ids.add(alertId);
    const write = this.#tail.then(async () => {
      try {
        await mkdir(dirname(this.#path), { recursive: true });
        const file = await open(this.#path, 'a');
        try {
          await file.write(`${alertId}\n`);
          await file.datasync();
        } finally {
          await file.close();
        }
      } catch (cause) {
        throw new OutputError(
          `cannot append to the alert journal ${this.#path}`,
          { path: this.#path },
          { cause },
        );
      }
    });
    this.#tail = write.catch(() => undefined);
    return write;
  }
}
